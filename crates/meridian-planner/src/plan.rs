//! What a plan is: timed steps, each one transition (or an atomic leader hand-off) of one
//! replica of one partition, with the transient heat it books.
//!
//! Semantics, which the scheduler produces and `replay` checks independently:
//! - Times are seconds on the caller's clock (`now` is the plan's start).
//! - A `Replicate` step occupies `[start, end)`. From `start` the target node carries the new
//!   replica's steady heat in its arrival state (space and memory are taken as the copy
//!   begins) and every resource in `loads` carries the copy's transient heat; at `end` the
//!   transient heat is released and the replica serves.
//! - Every other step changes steady heat at once at `start`. It is instantaneous (`end` =
//!   `start`) unless its transitions declare a burst (`transition_heat`): then its `burst`
//!   loads sit on the nodes until `end`.
//! - Steps that happen at the same instant apply in the order of the plan's `steps` list.

use serde::Serialize;

use meridian_model::{DomainId, GroupId, NodeId, RegionId, StateId};

/// A resource a copy loads: one dimension of a domain, or one direction of a region link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Resource {
    Domain {
        domain: DomainId,
        dim: usize,
    },
    /// Traffic from the first region to the second (links are full duplex).
    Link {
        from: RegionId,
        to: RegionId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Load {
    pub resource: Resource,
    /// In the resource's unit (Mb/s for `net_mbps` and links, MB/s for `disk_mbps`).
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Copy the partition's data from `source` to `target`, which arrives in `state` (the
    /// first state after the initial one on its way to its target state).
    Replicate {
        source: NodeId,
        target: NodeId,
        state: StateId,
        bytes: f64,
        /// MB/s.
        rate: f64,
        loads: Vec<Load>,
    },
    /// Start a replica that has nothing to copy from (no serving replica of its partition
    /// exists, e.g. a new partition): it arrives in `state` at once.
    Start { node: NodeId, state: StateId },
    /// One legal transition of a replica that is already there.
    Transition {
        node: NodeId,
        from: StateId,
        to: StateId,
    },
    /// The leader moves from `from` to `to` in one atomic step: `from` leaves the leader state
    /// for `demote_to`, `to` enters it from `promote_from`. The partition has exactly one
    /// leader before and after, never zero or two.
    HandOff {
        from: NodeId,
        to: NodeId,
        demote_to: StateId,
        promote_from: StateId,
    },
    /// The replica leaves the fleet (its last transition, into the initial state).
    Drop { node: NodeId, from: StateId },
}

/// Why a step starts when it does and runs at its rate, for `plan --explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Steps that had to finish first (make-before-break, the leader's new home being ready).
    pub after: Vec<u32>,
    /// What held the step back past the moment it was ready, if anything.
    pub waited_for: Option<String>,
    /// What limited a copy's rate below the maximum, if anything.
    pub rate_limited_by: Option<String>,
    /// Replica counts and priority that ordered it among the steps ready at the same time.
    pub priority: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: u32,
    pub group: GroupId,
    pub partition: u32,
    pub start: f64,
    pub end: f64,
    pub action: Action,
    pub reason: Reason,
    /// Extra heat the step's transitions put on their nodes during `[start, end)` (a group's
    /// declared `transition_heat`, e.g. a promotion's catch-up burst); the state changes at
    /// `start`. Empty for copies (their transient heat is in the action) and for transitions
    /// without a burst, which are instantaneous.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burst: Vec<Load>,
}

/// A change the planner could not schedule, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    pub group: GroupId,
    pub partition: u32,
    pub what: String,
    pub why: String,
}

/// A lower bound on any plan's makespan, and what sets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MakespanBound {
    pub seconds: f64,
    /// E.g. `rack r07 net_mbps: 1.2 TB must cross, 9 Gb/s free`.
    pub bottleneck: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub start: f64,
    pub end: f64,
    pub steps: Vec<Step>,
    pub blocked: Vec<Blocked>,
    pub bound: MakespanBound,
    pub bytes: f64,
}

impl Plan {
    pub fn makespan(&self) -> f64 {
        self.end - self.start
    }

    pub fn step(&self, id: u32) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}
