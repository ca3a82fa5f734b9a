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
    /// Per resource, side by side: every check reads both, for resources all over the fleet,
    /// so keeping them in one place halves the cache misses.
    cells: Vec<Cell>,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    load: f64,
    /// The limit; a resource that starts above it (the fleet changed under the placement)
    /// may carry its starting load, never more.
    allowed: f64,
}

/// Tolerance for float sums: loads are added and removed in different orders.
const SLACK: f64 = 1e-9;

impl Ledger {
    /// Steady load of `current` (replicas on `failed` nodes are gone).
    pub fn new(fleet: &Fleet, current: &Placement, failed: &[NodeId]) -> Ledger {
        let resources = Resources::new(fleet);
        let mut load = vec![0.0; resources.count()];
        // Slot by slot in order, each group's slots running up to the next group's first (as
        // `Fleet::locate_slot` has it), without locating each of a million slots.
        for (g, group) in fleet.groups.iter().enumerate() {
            let end = fleet
                .groups
                .get(g + 1)
                .map_or(current.slots.len(), |next| next.slot_offset);
            for s in &current.slots[group.slot_offset..end] {
                let Some(node) = s.node() else { continue };
                if failed.contains(&node) {
                    continue;
                }
                let heat = &group.heat[s.state.index()];
                for &domain in fleet.topology.chain(node) {
                    let row = resources.domain(domain, 0);
                    for (cell, &h) in load[row..row + heat.len()].iter_mut().zip(heat) {
                        *cell += h;
                    }
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
        debug_assert_eq!(allowed.len(), load.len());
        let cells = load
            .iter()
            .zip(&allowed)
            .map(|(&load, &limit)| Cell {
                load,
                allowed: limit.max(load),
            })
            .collect();
        Ledger { resources, cells }
    }

    pub fn free(&self, resource: usize) -> f64 {
        let cell = &self.cells[resource];
        cell.allowed - cell.load
    }

    /// The first resource a set of increases would push over its limit.
    pub fn first_overflow(&self, deltas: &[(usize, f64)]) -> Option<usize> {
        deltas.iter().find_map(|&(r, amount)| {
            let Cell { load, allowed } = self.cells[r];
            let over = amount > 0.0 && load + amount > allowed + SLACK * allowed.abs().max(1.0);
            over.then_some(r)
        })
    }

    pub fn apply(&mut self, deltas: &[(usize, f64)], sign: f64) {
        for &(r, amount) in deltas {
            self.cells[r].load += sign * amount;
        }
    }

    /// Steady heat of one replica on `node`'s chain, as resource deltas.
    pub fn heat_deltas(&self, fleet: &Fleet, node: NodeId, heat: &[f64]) -> Vec<(usize, f64)> {
        self.chain_deltas(fleet, node, heat.len(), |x| heat[x])
    }

    /// `heat_of(x)` for each of `dims` dimensions on every domain of `node`'s chain, zeros
    /// left out, as resource deltas. The heat is a function so a change of state can be
    /// booked without first building its per-dimension vector; the result is sized once
    /// (the planner asks for one of these per step it tries).
    pub fn chain_deltas(
        &self,
        fleet: &Fleet,
        node: NodeId,
        dims: usize,
        heat_of: impl Fn(usize) -> f64,
    ) -> Vec<(usize, f64)> {
        let chain = fleet.topology.chain(node);
        let nonzero = (0..dims).filter(|&x| heat_of(x) != 0.0).count();
        let mut deltas = Vec::with_capacity(chain.len() * nonzero);
        for &domain in chain {
            for x in 0..dims {
                let h = heat_of(x);
                if h != 0.0 {
                    deltas.push((self.resources.domain(domain, x), h));
                }
            }
        }
        debug_assert_eq!(deltas.len(), chain.len() * nonzero);
        deltas
    }

    /// Books `chain_deltas(fleet, node, dims, heat_of)` times `sign` without building them,
    /// for heat booked once and never looked at again.
    pub fn apply_chain(
        &mut self,
        fleet: &Fleet,
        node: NodeId,
        dims: usize,
        heat_of: impl Fn(usize) -> f64,
        sign: f64,
    ) {
        for &domain in fleet.topology.chain(node) {
            for x in 0..dims {
                let h = heat_of(x);
                if h != 0.0 {
                    self.cells[self.resources.domain(domain, x)].load += sign * h;
                }
            }
        }
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
