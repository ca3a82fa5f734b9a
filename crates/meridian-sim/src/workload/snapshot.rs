//! Every group's workload at one instant, in flat arrays indexed by group (and region).

use meridian_model::{GroupId, RegionId};

use super::heat::{GroupLoad, HeatScaling};

/// The workload of every group at `t_s`. Built by [`super::Workload::at`]; reusable across
/// samples with [`super::Workload::at_into`] so a long run allocates once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub(crate) t_s: f64,
    pub(crate) regions: usize,
    pub(crate) active: Vec<bool>,
    pub(crate) load: Vec<f64>,
    pub(crate) size: Vec<f64>,
    /// Group-major: `access[group * regions + region]`.
    pub(crate) access: Vec<f64>,
}

impl Snapshot {
    /// Sizes the arrays for `groups` × `regions` and zeroes them.
    pub(crate) fn reset(&mut self, t_s: f64, groups: usize, regions: usize) {
        self.t_s = t_s;
        self.regions = regions;
        self.active.clear();
        self.active.resize(groups, false);
        self.load.clear();
        self.load.resize(groups, 0.0);
        self.size.clear();
        self.size.resize(groups, 0.0);
        self.access.clear();
        self.access.resize(groups * regions, 0.0);
    }

    pub fn t_s(&self) -> f64 {
        self.t_s
    }

    pub fn group_count(&self) -> usize {
        self.active.len()
    }

    /// Whether the group exists yet (see `arrivals`); an inactive group has no load or access.
    pub fn active(&self, group: GroupId) -> bool {
        self.active[group.index()]
    }

    /// Multiplier on the group's rate-like heat; equals the sum of its access over regions.
    pub fn load(&self, group: GroupId) -> f64 {
        self.load[group.index()]
    }

    /// Multiplier on the group's size-like heat.
    pub fn size(&self, group: GroupId) -> f64 {
        self.size[group.index()]
    }

    pub fn group(&self, group: GroupId) -> GroupLoad {
        GroupLoad {
            active: self.active(group),
            load: self.load(group),
            size: self.size(group),
        }
    }

    /// Access to the group from each region, indexed by `RegionId`, in the same units as
    /// `load`: a group at its level reading only from one region has access 1.0 there.
    pub fn access(&self, group: GroupId) -> &[f64] {
        let start = group.index() * self.regions;
        &self.access[start..start + self.regions]
    }

    /// The regions the group is read from, with their access, in region order.
    pub fn access_by_region(&self, group: GroupId) -> Vec<(RegionId, f64)> {
        self.access(group)
            .iter()
            .enumerate()
            .filter(|&(_, &access)| access > 0.0)
            .map(|(region, &access)| (RegionId(region as u16), access))
            .collect()
    }

    /// `heat` (one replica's declared heat) scaled by this group's multipliers.
    pub fn scaled_heat(&self, scaling: &HeatScaling, group: GroupId, heat: &[f64]) -> Vec<f64> {
        scaling.apply(heat, self.group(group))
    }
}
