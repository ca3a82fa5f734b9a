//! Placement quality: peak utilization per level and dimension against the simple lower bound
//! (total demand over total limit at that level), and the data a solution moves.

use serde::Serialize;

use meridian_model::{Fleet, LevelId, Placement};

use crate::bounds::lower_bounds;

#[derive(Debug, Clone, Serialize)]
pub struct LevelQuality {
    pub level: String,
    pub dimension: String,
    /// Highest utilization of the limit (capacity less headroom) among the level's domains.
    pub peak: f64,
    /// The pooled lower bound (see `bounds`): no placement can have a lower peak.
    pub lower_bound: f64,
    /// Total demand over total limit, ignoring pools (≤ `lower_bound`).
    pub simple_bound: f64,
    /// peak / lower_bound: 1.0 is perfect balance.
    pub ratio: f64,
}

/// Quality rows for every level and dimension with a defined bound, worst ratio first.
pub fn quality(fleet: &Fleet, placement: &Placement) -> Vec<LevelQuality> {
    let topology = &fleet.topology;
    let dims = fleet.dims_count();
    let mut used = vec![0.0; topology.domains.len() * dims];
    for (slot, s) in placement.slots.iter().enumerate() {
        let Some(node) = s.node() else { continue };
        let (group, ..) = fleet.locate_slot(slot);
        let heat = &fleet.group(group).heat[s.state.index()];
        for &domain in topology.chain(node) {
            for (x, h) in heat.iter().enumerate() {
                used[domain.index() * dims + x] += h;
            }
        }
    }
    let bounds = lower_bounds(fleet);
    let mut rows = Vec::new();
    for (l, level) in topology.levels.iter().enumerate() {
        for x in 0..dims {
            let bound = bounds.pooled[l * dims + x];
            if bound <= 0.0 {
                continue;
            }
            let peak = topology
                .domain_ids()
                .filter(|d| topology.domain(*d).level == LevelId(l as u16))
                .map(|d| used[d.index() * dims + x] / fleet.limit[d.index() * dims + x])
                .fold(0.0, f64::max);
            rows.push(LevelQuality {
                level: level.name.clone(),
                dimension: fleet.dims.names()[x].clone(),
                peak,
                lower_bound: bound,
                simple_bound: bounds.simple[l * dims + x],
                ratio: peak / bound,
            });
        }
    }
    rows.sort_by(|a, b| {
        b.ratio
            .total_cmp(&a.ratio)
            .then(a.level.cmp(&b.level))
            .then(a.dimension.cmp(&b.dimension))
    });
    rows
}

/// A lower bound on the data (GiB) any placement must move away from `before` to bring every
/// node to at most `peak[dim]` utilization of its limit in each dimension: per node, the
/// excess heat in its worst dimension times the fewest GiB per unit of that heat among the
/// replicas on it. Valid for any target placement; used to judge how much a rebalance moved.
pub fn movement_lower_bound(fleet: &Fleet, before: &Placement, peak: &[f64]) -> f64 {
    let topology = &fleet.topology;
    let dims = fleet.dims_count();
    let mut used = vec![0.0; topology.nodes.len() * dims];
    let mut cheapest = vec![f64::INFINITY; topology.nodes.len() * dims];
    for (slot, s) in before.slots.iter().enumerate() {
        let Some(node) = s.node() else { continue };
        let (group, ..) = fleet.locate_slot(slot);
        let group = fleet.group(group);
        for (x, &h) in group.heat[s.state.index()].iter().enumerate() {
            if h > 0.0 {
                used[node.index() * dims + x] += h;
                let cell = &mut cheapest[node.index() * dims + x];
                *cell = cell.min(group.size_gib / h);
            }
        }
    }
    let mut total = 0.0;
    for node in topology.node_ids() {
        let limit = fleet.limit_of(topology.node_domain(node));
        let mut worst = 0.0f64;
        for x in 0..dims {
            let cell = node.index() * dims + x;
            let excess = used[cell] - peak[x] * limit[x];
            if excess > 0.0 && cheapest[cell].is_finite() {
                worst = worst.max(excess * cheapest[cell]);
            }
        }
        total += worst;
    }
    total
}
