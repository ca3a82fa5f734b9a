//! The one interface every placement strategy meets, so they all see the same inputs: what
//! the fleet's telemetry shows at a decision time, and what is where. A strategy answers with
//! intents — a timed plan (Meridian's planner) or moves to start now (the rebalancers it is
//! compared with) — and the engine carries them out on the strategy's own world.

use meridian_model::{Fleet, NodeId, RegionId, StateId};
use meridian_planner::path::Resources;

use crate::world::{PartId, PartIndex, World};

/// What a strategy sees when it decides.
pub struct View<'a> {
    pub t_s: f64,
    /// The fleet as declared: topology, capacities, products and groups (declared heat).
    pub base: &'a Fleet,
    pub parts: &'a PartIndex,
    /// Heat per group and state as telemetry last showed it (`heat[group][state][dim]`).
    pub heat: &'a [Vec<Vec<f64>>],
    /// Groups that exist (have arrived).
    pub active: &'a [bool],
    /// Where each group is read from, as telemetry last showed it: shares by region that sum
    /// to 1 (empty for a group nobody reads).
    pub access: &'a [Vec<(RegionId, f64)>],
    /// Nodes known to be down.
    pub down: &'a [bool],
    /// What is where, copies in flight included.
    pub world: &'a World,
    /// Steady load per resource as telemetry last showed it (`Resources` indexing: every
    /// dimension of every domain of both trees, then region links).
    pub steady: &'a [f64],
    pub resources: Resources,
    /// The strategy's last decision is still being carried out (copies in flight or plan
    /// steps not yet run).
    pub busy: bool,
    /// Per partition: a copy into it is in flight, or a plan step for it has not ended.
    pub in_progress: &'a [bool],
}

impl View<'_> {
    /// Observed heat of one replica of `part` in `state`.
    pub fn replica_heat(&self, part: PartId, state: StateId) -> &[f64] {
        let (group, _) = self.parts.locate(part);
        &self.heat[group.index()][state.index()]
    }
}

/// One thing to start now.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveAction {
    /// Copy the partition's data from `source` to `target` at `rate_mbps` (MB/s); the new
    /// replica arrives in `state`. With `then_drop`, the replica there leaves once the copy
    /// lands (make-before-break).
    Copy {
        source: NodeId,
        target: NodeId,
        state: StateId,
        rate_mbps: f64,
        then_drop: Option<NodeId>,
    },
    /// A replica with nothing to copy from starts empty.
    Start {
        node: NodeId,
        state: StateId,
    },
    /// Leadership moves from `from` to `to` in one step.
    HandOff {
        from: NodeId,
        to: NodeId,
    },
    Drop {
        node: NodeId,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub part: PartId,
    pub action: MoveAction,
}

pub enum Decision {
    Idle,
    /// Meridian's planner's timed steps (groups and partitions of the base fleet); the engine
    /// starts each step at its time once the steps planned to end before it have ended.
    Plan(meridian_planner::Plan),
    Moves(Vec<Move>),
}

pub trait Strategy: Send {
    fn name(&self) -> &str;
    /// Called at every control interval while the control loop is up.
    fn decide(&mut self, view: &View) -> Decision;
    /// Copies this strategy starts may be slowed by the engine to keep every domain on their
    /// path within its limit (Meridian's executor only ever slows or stops work). Rebalancers
    /// that do not know the shared links run at the rate they asked for.
    fn throttles_to_limits(&self) -> bool {
        false
    }
}
