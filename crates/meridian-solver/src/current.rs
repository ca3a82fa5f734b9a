//! Mapping a placement document (what runs now) onto the fleet's replica slots.

use meridian_model::placement::{Replica, Slot, UNASSIGNED};
use meridian_model::{Fleet, Placement};

/// Lays `replicas` into slots: each replica takes a free slot of its own state in its
/// partition, else a free slot of another state (it will be promoted or demoted there).
/// Replicas beyond a partition's count get no slot and are reported as surplus.
pub fn to_slots(fleet: &Fleet, replicas: &[Replica]) -> (Placement, Vec<Replica>) {
    let mut placement = Placement::empty(fleet);
    let mut leftovers = Vec::new();
    let mut surplus = Vec::new();
    for replica in replicas {
        if !take_slot(fleet, &mut placement.slots, replica, true) {
            leftovers.push(*replica);
        }
    }
    for replica in leftovers {
        if !take_slot(fleet, &mut placement.slots, &replica, false) {
            surplus.push(replica);
        }
    }
    (placement, surplus)
}

fn take_slot(fleet: &Fleet, slots: &mut [Slot], replica: &Replica, same_state: bool) -> bool {
    let group = fleet.group(replica.group);
    let first = group.partition_slot(replica.partition);
    let range = first..first + group.replicas_per_partition();
    if slots[range.clone()]
        .iter()
        .any(|s| s.node == replica.node.0)
    {
        return false; // A second replica of the partition on one node is never kept.
    }
    for index in range {
        let slot = &mut slots[index];
        if slot.node == UNASSIGNED && (!same_state || slot.state == replica.state) {
            slot.node = replica.node.0;
            return true;
        }
    }
    false
}
