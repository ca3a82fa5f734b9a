//! The fleet as a strategy's solver sees it at one decision: the declared topology and
//! constraints, with each group's heat and readers as observed (not as declared), and groups
//! that have not arrived yet holding no partitions. Group ids stay those of the base fleet, so replicas
//! read back from a solution map onto the simulated world unchanged.

use meridian_model::{Fleet, RegionId};

/// `access` replaces a group's declared readers where it is not empty.
pub fn fleet_view(
    base: &Fleet,
    heat: &[Vec<Vec<f64>>],
    access: &[Vec<(RegionId, f64)>],
    active: &[bool],
) -> Fleet {
    let mut fleet = base.clone();
    let mut offset = 0;
    for (g, group) in fleet.groups.iter_mut().enumerate() {
        group.heat.clone_from(&heat[g]);
        if let Some(observed) = access.get(g).filter(|a| !a.is_empty()) {
            group.access.clone_from(observed);
        }
        if !active[g] {
            group.partitions = 0;
            group.pins.clear();
        }
        group.slot_offset = offset;
        offset += group.slot_count();
    }
    fleet.slot_count = offset;
    fleet
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_model::GroupId;

    #[test]
    fn inactive_groups_hold_no_slots_and_ids_stay() {
        let base = crate::test_fleet::tiny_fleet();
        let heat: Vec<Vec<Vec<f64>>> = base.groups.iter().map(|g| g.heat.clone()).collect();
        let mut active = vec![true; base.groups.len()];
        active[0] = false;
        let view = fleet_view(&base, &heat, &[], &active);
        assert_eq!(view.groups[0].partitions, 0);
        assert_eq!(
            view.slot_count,
            base.slot_count - base.groups[0].slot_count()
        );
        let last = GroupId((base.groups.len() - 1) as u32);
        assert_eq!(view.group(last).name, base.group(last).name);
        let (group, partition, _) = view.locate_slot(0);
        assert_ne!(group, GroupId(0));
        assert_eq!(partition, 0);
    }
}
