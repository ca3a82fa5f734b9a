//! Which faults are in force at one instant, in the shape the engine applies them.

use meridian_model::{DimId, DomainId, NodeId, RegionId};

/// A domain's capacity in one dimension runs at `factor` of normal (overlapping faults on
/// the same domain and dimension multiply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityFactor {
    pub domain: DomainId,
    pub dim: DimId,
    pub factor: f64,
}

/// The link between two regions (`regions.0 < regions.1`, both directions) runs at `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionLinkFactor {
    pub regions: (RegionId, RegionId),
    pub factor: f64,
}

/// The faults in force at `t_s`. Lists are sorted, so equal states compare equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultState {
    pub(crate) t_s: f64,
    pub(crate) node_down: Vec<bool>,
    pub(crate) capacity_factors: Vec<CapacityFactor>,
    pub(crate) region_link_factors: Vec<RegionLinkFactor>,
    pub(crate) partitioned: Vec<(RegionId, RegionId)>,
    pub(crate) telemetry_lost_all: bool,
    pub(crate) telemetry_lost: Vec<bool>,
    pub(crate) controller_down: bool,
}

impl FaultState {
    pub(crate) fn reset(&mut self, t_s: f64, nodes: usize) {
        self.t_s = t_s;
        self.node_down.clear();
        self.node_down.resize(nodes, false);
        self.capacity_factors.clear();
        self.region_link_factors.clear();
        self.partitioned.clear();
        self.telemetry_lost_all = false;
        self.telemetry_lost.clear();
        self.telemetry_lost.resize(nodes, false);
        self.controller_down = false;
    }

    /// Sorts the lists and merges repeats: factors multiply, partitions dedup.
    pub(crate) fn normalize(&mut self) {
        self.capacity_factors
            .sort_by_key(|entry| (entry.domain, entry.dim));
        self.capacity_factors.dedup_by(|later, kept| {
            let same = later.domain == kept.domain && later.dim == kept.dim;
            if same {
                kept.factor *= later.factor;
            }
            same
        });
        self.region_link_factors.sort_by_key(|entry| entry.regions);
        self.region_link_factors.dedup_by(|later, kept| {
            let same = later.regions == kept.regions;
            if same {
                kept.factor *= later.factor;
            }
            same
        });
        self.partitioned.sort_unstable();
        self.partitioned.dedup();
    }

    pub fn t_s(&self) -> f64 {
        self.t_s
    }

    /// Whether the node is down (crashed, or its power is lost).
    pub fn is_node_down(&self, node: NodeId) -> bool {
        self.node_down.get(node.index()).copied().unwrap_or(false)
    }

    /// Nodes down, in id order.
    pub fn nodes_down(&self) -> Vec<NodeId> {
        flagged(&self.node_down)
    }

    /// `node_down` by `NodeId` index.
    pub fn node_down(&self) -> &[bool] {
        &self.node_down
    }

    /// Reduced capacities, sorted by domain then dimension, one entry per pair.
    pub fn capacity_factors(&self) -> &[CapacityFactor] {
        &self.capacity_factors
    }

    /// The factor on `domain`'s capacity in `dim`: 1 unless a fault reduces it.
    pub fn capacity_factor(&self, domain: DomainId, dim: DimId) -> f64 {
        self.capacity_factors
            .binary_search_by_key(&(domain, dim), |entry| (entry.domain, entry.dim))
            .map_or(1.0, |index| self.capacity_factors[index].factor)
    }

    /// Reduced region-to-region links, sorted by region pair.
    pub fn region_link_factors(&self) -> &[RegionLinkFactor] {
        &self.region_link_factors
    }

    /// The factor on the link between `a` and `b` (either order): 1 unless degraded.
    pub fn region_link_factor(&self, a: RegionId, b: RegionId) -> f64 {
        let pair = (a.min(b), a.max(b));
        self.region_link_factors
            .binary_search_by_key(&pair, |entry| entry.regions)
            .map_or(1.0, |index| self.region_link_factors[index].factor)
    }

    /// Region pairs with no traffic between them, each as `(lower id, higher id)`, sorted.
    pub fn partitioned(&self) -> &[(RegionId, RegionId)] {
        &self.partitioned
    }

    /// Whether `a` and `b` (either order) cannot reach each other.
    pub fn is_partitioned(&self, a: RegionId, b: RegionId) -> bool {
        self.partitioned
            .binary_search(&(a.min(b), a.max(b)))
            .is_ok()
    }

    /// Whether every node's telemetry is stale.
    pub fn telemetry_lost_everywhere(&self) -> bool {
        self.telemetry_lost_all
    }

    /// Whether the strategies see stale telemetry for `node`.
    pub fn is_telemetry_lost(&self, node: NodeId) -> bool {
        self.telemetry_lost_all
            || self
                .telemetry_lost
                .get(node.index())
                .copied()
                .unwrap_or(false)
    }

    /// Nodes whose telemetry is stale, in id order (every node if lost everywhere).
    pub fn telemetry_lost_nodes(&self) -> Vec<NodeId> {
        if self.telemetry_lost_all {
            return (0..self.telemetry_lost.len() as u32).map(NodeId).collect();
        }
        flagged(&self.telemetry_lost)
    }

    /// Whether the control loop is down: no strategy decides anything now.
    pub fn is_controller_down(&self) -> bool {
        self.controller_down
    }

    /// True when no fault is in force.
    pub fn is_quiet(&self) -> bool {
        !self.node_down.contains(&true)
            && self.capacity_factors.is_empty()
            && self.region_link_factors.is_empty()
            && self.partitioned.is_empty()
            && !self.telemetry_lost_all
            && !self.telemetry_lost.contains(&true)
            && !self.controller_down
    }
}

fn flagged(flags: &[bool]) -> Vec<NodeId> {
    flags
        .iter()
        .enumerate()
        .filter(|&(_, &flag)| flag)
        .map(|(index, _)| NodeId(index as u32))
        .collect()
}
