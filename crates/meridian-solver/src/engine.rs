//! The solver kept in memory between changes, as a controller keeps it.
//!
//! A stateless `solve --current` re-reads and re-checks every replica: O(replicas). A
//! controller instead keeps the engine and tells it what changed; repairing a failed node or a
//! drained rack then costs only the replicas that sat there — this is the path whose latency
//! matters when a rack loses power.

use serde::Serialize;

use meridian_model::{DomainId, Fleet, GroupId, NodeId, Placement};

use crate::context::Context;
use crate::diagnose::Failure;
use crate::repair::restore_leaders;
use crate::solve::place_slots;
use crate::state::State;

pub struct Engine<'a> {
    context: Context<'a>,
    state: State,
    /// Slots on each node, kept in step with `state`.
    node_slots: Vec<Vec<u32>>,
    seed: u64,
}

/// What one repair changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Replicas the change took away (they sat under the closed domain).
    pub lost: usize,
    /// (slot, new node) for every replica placed anew.
    pub placed: Vec<(usize, NodeId)>,
    /// Survivors promoted to leader in place.
    pub promotions: usize,
    pub failures: Vec<Failure>,
    pub failed: usize,
}

impl<'a> Engine<'a> {
    /// Loads a placement (normally a solver's output) into memory.
    pub fn new(fleet: &'a Fleet, placement: &Placement, seed: u64) -> Engine<'a> {
        let context = Context::new(fleet);
        let state = State::new(&context, placement.slots.clone());
        let mut node_slots = vec![Vec::new(); fleet.topology.nodes.len()];
        for (slot, s) in state.slots.iter().enumerate() {
            if let Some(node) = s.node() {
                node_slots[node.index()].push(slot as u32);
            }
        }
        Engine {
            context,
            state,
            node_slots,
            seed,
        }
    }

    /// A node died: its replicas are lost and re-placed elsewhere.
    pub fn fail_node(&mut self, node: NodeId) -> RepairReport {
        let domain = self.context.fleet.topology.node_domain(node);
        self.close(domain)
    }

    /// Empties a domain (node, rack, PDU, ...) and keeps anything from landing there.
    pub fn close(&mut self, domain: DomainId) -> RepairReport {
        self.state.close(domain);
        let fleet = self.context.fleet;
        let mut evicted = Vec::new();
        for &node in self.context.nodes_under(domain) {
            for slot in std::mem::take(&mut self.node_slots[node.index()]) {
                self.state.unplace(&self.context, slot as usize);
                evicted.push(slot as usize);
            }
        }
        let mut partitions: Vec<(GroupId, u32)> = evicted
            .iter()
            .map(|&slot| {
                let (group, partition, _) = fleet.locate_slot(slot);
                (group, partition)
            })
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        let promotions = restore_leaders(&self.context, &mut self.state, &partitions);
        // Promotion swaps states between slots of a partition; re-collect what is unplaced.
        let unplaced: Vec<usize> = partitions
            .iter()
            .flat_map(|&(g, p)| {
                let group = fleet.group(g);
                let first = group.partition_slot(p);
                first..first + group.replicas_per_partition()
            })
            .filter(|&slot| self.state.slots[slot].node().is_none())
            .collect();
        let (failures, failed) = place_slots(
            &self.context,
            &mut self.state,
            unplaced.clone(),
            |_| None,
            self.seed,
        );
        let mut placed = Vec::new();
        for slot in unplaced {
            if let Some(node) = self.state.slots[slot].node() {
                self.node_slots[node.index()].push(slot as u32);
                placed.push((slot, node));
            }
        }
        RepairReport {
            lost: evicted.len(),
            placed,
            promotions,
            failures,
            failed,
        }
    }

    pub fn placement(&self) -> Placement {
        Placement {
            slots: self.state.slots.clone(),
        }
    }
}
