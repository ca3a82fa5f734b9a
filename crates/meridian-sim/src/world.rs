//! What is where in one simulated fleet: every partition's replicas (serving, or still being
//! copied), and the copies in flight. Each strategy runs on its own `World`; the engine
//! changes it only through the methods here, which keep the physical facts straight (a copy
//! lands only on the node it was copying to, a replica never appears twice on one node).

use meridian_model::placement::Replica;
use meridian_model::{Fleet, GroupId, NodeId, Placement, StateId};

/// Flat indices of every (group, partition) of the base fleet: `PartId`s are stable for a
/// whole run, whichever groups are active.
#[derive(Debug, Clone)]
pub struct PartIndex {
    /// First part of each group; one extra entry holds the total.
    offsets: Vec<usize>,
}

pub type PartId = usize;

impl PartIndex {
    pub fn new(fleet: &Fleet) -> PartIndex {
        let mut offsets = Vec::with_capacity(fleet.groups.len() + 1);
        let mut next = 0usize;
        for group in &fleet.groups {
            offsets.push(next);
            next += group.partitions as usize;
        }
        offsets.push(next);
        PartIndex { offsets }
    }

    pub fn count(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    pub fn id(&self, group: GroupId, partition: u32) -> PartId {
        self.offsets[group.index()] + partition as usize
    }

    pub fn locate(&self, part: PartId) -> (GroupId, u32) {
        let g = self.offsets.partition_point(|&o| o <= part) - 1;
        (GroupId(g as u32), (part - self.offsets[g]) as u32)
    }

    /// The parts of one group.
    pub fn of_group(&self, group: GroupId) -> std::ops::Range<PartId> {
        self.offsets[group.index()]..self.offsets[group.index() + 1]
    }
}

/// One replica as the world holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub node: NodeId,
    pub state: StateId,
    /// False while its data is still being copied in: it holds disk but serves nothing.
    pub ready: bool,
}

/// A step of one of the plans being carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRef {
    pub plan: u32,
    pub position: u32,
}

/// A copy in flight, moving a partition's data from `source` to `target`.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub part: PartId,
    pub source: NodeId,
    pub target: NodeId,
    pub bytes_left: f64,
    pub bytes_total: f64,
    /// The rate it asks for (MB/s): booked by the planner, or the rebalancer's throttle.
    pub rate_wanted: f64,
    /// The rate it got in the last tick (MB/s), after throttles and shared links.
    pub rate: f64,
    /// Load on each resource per MB/s (see `meridian_planner::path::Resources`).
    pub unit: Vec<(usize, f64)>,
    /// The replica to drop once this copy lands (a move), if any.
    pub then_drop: Option<NodeId>,
    /// The plan step this copy executes, if a planner made it.
    pub step: Option<StepRef>,
    /// How long it has made no progress (every path throttled shut), seconds.
    pub stalled_s: f64,
}

#[derive(Debug, Clone)]
pub struct World {
    pub parts: PartIndex,
    pub replicas: Vec<Vec<Held>>,
    pub transfers: Vec<Transfer>,
    /// Counts changes to `replicas`, so checkers can skip ticks where nothing moved.
    pub changes: u64,
}

impl World {
    /// The world with `placement` (of the full base fleet) serving.
    pub fn new(fleet: &Fleet, placement: &Placement) -> World {
        let parts = PartIndex::new(fleet);
        let mut replicas = vec![Vec::new(); parts.count()];
        for replica in placement.replicas(fleet) {
            replicas[parts.id(replica.group, replica.partition)].push(Held {
                node: replica.node,
                state: replica.state,
                ready: true,
            });
        }
        World {
            parts,
            replicas,
            transfers: Vec::new(),
            changes: 0,
        }
    }

    pub fn held_at(&self, part: PartId, node: NodeId) -> Option<&Held> {
        self.replicas[part].iter().find(|h| h.node == node)
    }

    fn held_at_mut(&mut self, part: PartId, node: NodeId) -> Option<&mut Held> {
        self.replicas[part].iter_mut().find(|h| h.node == node)
    }

    /// Starts copying `part` to `target` (arriving in `state`). False, changing nothing, if
    /// the target already holds the partition or the source holds no serving replica.
    pub fn start_copy(&mut self, part: PartId, state: StateId, transfer: Transfer) -> bool {
        let source_serving = self.held_at(part, transfer.source).is_some_and(|h| h.ready);
        if !source_serving || self.held_at(part, transfer.target).is_some() {
            return false;
        }
        self.replicas[part].push(Held {
            node: transfer.target,
            state,
            ready: false,
        });
        self.transfers.push(transfer);
        self.changes += 1;
        true
    }

    /// A replica that starts empty (nothing to copy from).
    pub fn start_empty(&mut self, part: PartId, node: NodeId, state: StateId) -> bool {
        if self.held_at(part, node).is_some() {
            return false;
        }
        self.replicas[part].push(Held {
            node,
            state,
            ready: true,
        });
        self.changes += 1;
        true
    }

    pub fn set_state(&mut self, part: PartId, node: NodeId, from: StateId, to: StateId) -> bool {
        match self.held_at_mut(part, node) {
            Some(held) if held.ready && held.state == from => {
                held.state = to;
                self.changes += 1;
                true
            }
            _ => false,
        }
    }

    /// Moves leadership atomically: `from` steps down to `demote_to` as `to` steps up.
    pub fn hand_off(
        &mut self,
        part: PartId,
        (from, demote_to): (NodeId, StateId),
        (to, leader): (NodeId, StateId),
    ) -> bool {
        let ok = self
            .held_at(part, from)
            .is_some_and(|h| h.ready && h.state == leader)
            && self
                .held_at(part, to)
                .is_some_and(|h| h.ready && h.state != leader);
        if !ok {
            return false;
        }
        if let Some(h) = self.held_at_mut(part, from) {
            h.state = demote_to;
        }
        if let Some(h) = self.held_at_mut(part, to) {
            h.state = leader;
        }
        self.changes += 1;
        true
    }

    /// Removes the replica on `node`, and any copy into or out of it.
    pub fn drop_replica(&mut self, part: PartId, node: NodeId) -> bool {
        let before = self.replicas[part].len();
        self.replicas[part].retain(|h| h.node != node);
        self.transfers
            .retain(|t| !(t.part == part && (t.target == node || t.source == node)));
        let dropped = self.replicas[part].len() < before;
        self.changes += u64::from(dropped);
        dropped
    }

    /// Advances every transfer by `dt_s` at its current rate; lands the finished ones and
    /// returns them (their `then_drop` is the caller's to apply).
    pub fn advance(&mut self, dt_s: f64) -> Vec<Transfer> {
        let mut landed = Vec::new();
        let mut i = 0;
        while i < self.transfers.len() {
            let t = &mut self.transfers[i];
            t.bytes_left -= t.rate * crate::BYTES_PER_MB * dt_s;
            t.stalled_s = if t.rate > 0.0 {
                0.0
            } else {
                t.stalled_s + dt_s
            };
            if t.bytes_left <= 0.0 {
                let t = self.transfers.swap_remove(i);
                if let Some(h) = self.held_at_mut(t.part, t.target) {
                    h.ready = true;
                }
                landed.push(t);
            } else {
                i += 1;
            }
        }
        self.changes += landed.len() as u64;
        // swap_remove reorders; keep the order deterministic and independent of it.
        landed.sort_by_key(|t| (t.part, t.target));
        self.transfers.sort_by_key(|t| (t.part, t.target));
        landed
    }

    /// Gives up the copies that have made no progress for `timeout_s` (their partial
    /// replicas are dropped) and returns them.
    pub fn abort_stalled(&mut self, timeout_s: f64) -> Vec<Transfer> {
        let stalled: Vec<Transfer> = self
            .transfers
            .iter()
            .filter(|t| t.stalled_s >= timeout_s)
            .cloned()
            .collect();
        for t in &stalled {
            self.drop_replica(t.part, t.target);
        }
        stalled
    }

    /// Serving replicas (ready, on nodes that are up) as the solver and planner read them,
    /// against the base fleet's groups.
    pub fn serving(&self, down: &[bool]) -> Vec<Replica> {
        let mut out = Vec::new();
        for (part, held) in self.replicas.iter().enumerate() {
            let (group, partition) = self.parts.locate(part);
            for h in held {
                if h.ready && !down[h.node.index()] {
                    out.push(Replica {
                        group,
                        partition,
                        node: h.node,
                        state: h.state,
                    });
                }
            }
        }
        out
    }
}
