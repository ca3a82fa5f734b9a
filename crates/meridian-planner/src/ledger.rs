//! The booking ledger: the load every resource carries right now (steady heat of the replicas
//! present plus the transient heat of copies in flight), and what it may carry.
//!
//! The scheduler only ever books at the present instant and nothing it has booked grows later
//! (a copy's heat is fixed for its duration; steady heat of a new replica is booked when its
//! copy starts), so a booking that fits now fits for its whole duration: capacity holds at
//! every instant without a time-indexed search.

use meridian_model::{Fleet, NodeId, Placement};

use crate::path::Resources;

#[derive(Clone)]
pub struct Ledger {
    pub resources: Resources,
    pub load: Vec<f64>,
    /// Limit per resource; a resource that starts above its limit (the fleet changed under
    /// the placement) may carry its starting load, never more.
    pub allowed: Vec<f64>,
}

/// Tolerance for float sums: loads are added and removed in different orders.
const SLACK: f64 = 1e-9;

impl Ledger {
    /// Steady load of `current` (replicas on `failed` nodes are gone).
    pub fn new(fleet: &Fleet, current: &Placement, failed: &[NodeId]) -> Ledger {
        let resources = Resources::new(fleet);
        let mut load = vec![0.0; resources.count()];
        for (slot, s) in current.slots.iter().enumerate() {
            let Some(node) = s.node() else { continue };
            if failed.contains(&node) {
                continue;
            }
            let (group, ..) = fleet.locate_slot(slot);
            let heat = &fleet.group(group).heat[s.state.index()];
            for &domain in fleet.topology.chain(node) {
                for (x, &h) in heat.iter().enumerate() {
                    load[resources.domain(domain, x)] += h;
                }
            }
        }
        let topology = &fleet.topology;
        let mut allowed: Vec<f64> = fleet.limit.clone();
        for from in 0..resources.regions {
            for to in 0..resources.regions {
                allowed.push(topology.link_net_mbps[from * resources.regions + to]);
            }
        }
        for (a, l) in allowed.iter_mut().zip(&load) {
            *a = a.max(*l);
        }
        Ledger {
            resources,
            load,
            allowed,
        }
    }

    pub fn free(&self, resource: usize) -> f64 {
        self.allowed[resource] - self.load[resource]
    }

    /// The first resource a set of increases would push over its limit.
    pub fn first_overflow(&self, deltas: &[(usize, f64)]) -> Option<usize> {
        deltas.iter().find_map(|&(r, amount)| {
            let over = amount > 0.0
                && self.load[r] + amount > self.allowed[r] + SLACK * self.allowed[r].abs().max(1.0);
            over.then_some(r)
        })
    }

    pub fn apply(&mut self, deltas: &[(usize, f64)], sign: f64) {
        for &(r, amount) in deltas {
            self.load[r] += sign * amount;
        }
    }

    /// Steady heat of one replica on `node`'s chain, as resource deltas.
    pub fn heat_deltas(&self, fleet: &Fleet, node: NodeId, heat: &[f64]) -> Vec<(usize, f64)> {
        let mut deltas = Vec::new();
        for &domain in fleet.topology.chain(node) {
            for (x, &h) in heat.iter().enumerate() {
                if h != 0.0 {
                    deltas.push((self.resources.domain(domain, x), h));
                }
            }
        }
        deltas
    }

    /// The fastest rate (MB/s) a copy with these per-MB/s costs can run at now, and the
    /// resource that limits it (`None` if nothing does short of infinity).
    pub fn rate_room(&self, per_rate: &[(usize, f64)]) -> (f64, Option<usize>) {
        let mut best = (f64::INFINITY, None);
        for &(r, coefficient) in per_rate {
            let room = (self.free(r) / coefficient).max(0.0);
            if room < best.0 {
                best = (room, Some(r));
            }
        }
        best
    }

    /// A readable name for a resource, e.g. `rack r07 net_mbps` or `link us-east>eu-west`.
    pub fn name(&self, fleet: &Fleet, resource: usize) -> String {
        describe(fleet, &self.resources, resource)
    }
}

pub fn describe(fleet: &Fleet, resources: &Resources, resource: usize) -> String {
    let topology = &fleet.topology;
    match resources.resource(resource) {
        crate::plan::Resource::Domain { domain, dim } => {
            topology.describe(domain, &fleet.dims, dim)
        }
        crate::plan::Resource::Link { from, to } => format!(
            "link {}>{}",
            topology.regions[from.index()].name,
            topology.regions[to.index()].name
        ),
    }
}
