//! Load on every resource of the fleet: the steady heat of serving replicas summed up both
//! trees, and the traffic of copies in flight along their network path. Indexed like the
//! planner's ledger (`meridian_planner::path::Resources`), so the two count the same things.

use meridian_model::{Fleet, NodeId, RegionId};
use meridian_planner::path::{Network, Resources};

use crate::faults::FaultState;
use crate::world::World;

/// Steady load of every serving replica (ready, on a node that is up) with `heat[group][state]`.
/// Summed per node first, then carried up each node's chain: a node's replicas share every
/// ancestor, so this costs replicas × dims + nodes × chain × dims, not replicas × chain × dims.
pub fn steady_load(
    fleet: &Fleet,
    resources: Resources,
    world: &World,
    heat: &[Vec<Vec<f64>>],
    down: &[bool],
) -> Vec<f64> {
    let dims = resources.dims;
    let nodes = fleet.topology.nodes.len();
    let mut per_node = vec![0.0; nodes * dims];
    for (part, held) in world.replicas.iter().enumerate() {
        let (group, _) = world.parts.locate(part);
        for h in held.iter().filter(|h| h.ready && !down[h.node.index()]) {
            let row = &mut per_node[h.node.index() * dims..(h.node.index() + 1) * dims];
            for (slot, value) in row.iter_mut().zip(&heat[group.index()][h.state.index()]) {
                *slot += value;
            }
        }
    }
    let mut load = vec![0.0; resources.count()];
    for n in 0..nodes {
        let row = &per_node[n * dims..(n + 1) * dims];
        if row.iter().all(|&v| v == 0.0) {
            continue;
        }
        for &domain in fleet.topology.chain(NodeId(n as u32)) {
            let base = resources.domain(domain, 0);
            for (x, value) in row.iter().enumerate() {
                load[base + x] += value;
            }
        }
    }
    load
}

/// Load per MB/s of a copy from `source` to `target` on each resource it crosses.
pub fn copy_unit(
    fleet: &Fleet,
    network: &Network,
    resources: &Resources,
    source: NodeId,
    target: NodeId,
) -> Vec<(usize, f64)> {
    network.per_rate(fleet, resources, source, target)
}

/// Physical capacity of every resource now: declared capacity (domains) or link bandwidth
/// (region pairs), times the factors faults impose; a partitioned region pair carries
/// nothing. Unset capacities are infinite.
pub fn capacity_now(fleet: &Fleet, resources: Resources, faults: &FaultState) -> Vec<f64> {
    let mut capacity = fleet.topology.capacity.clone();
    capacity.extend_from_slice(&fleet.topology.link_net_mbps);
    apply_faults(&mut capacity, resources, faults);
    capacity
}

/// The limit placed load may reach (capacity × (1 − headroom), what the solver and planner
/// book against), under the same faults as [`capacity_now`].
pub fn limit_now(fleet: &Fleet, resources: Resources, faults: &FaultState) -> Vec<f64> {
    let mut limit = fleet.limit.clone();
    limit.extend_from_slice(&fleet.topology.link_net_mbps);
    apply_faults(&mut limit, resources, faults);
    limit
}

fn apply_faults(values: &mut [f64], resources: Resources, faults: &FaultState) {
    for factor in faults.capacity_factors() {
        values[resources.domain(factor.domain, factor.dim.index())] *= factor.factor;
    }
    let both_ways = |(a, b): (RegionId, RegionId)| {
        [
            resources.link(a.index(), b.index()),
            resources.link(b.index(), a.index()),
        ]
    };
    for link in faults.region_link_factors() {
        for r in both_ways(link.regions) {
            values[r] *= link.factor;
        }
    }
    for &pair in faults.partitioned() {
        for r in both_ways(pair) {
            values[r] = 0.0;
        }
    }
}
