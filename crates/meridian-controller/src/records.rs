//! What the controller keeps in the store, as JSON: plans with their progress, operator marks
//! on nodes, agents' last reports, and the target placement.

use serde::{Deserialize, Serialize};

use meridian_store::{Epoch, Revision};
use meridian_wire::{Action, ReplicaKey, ReplicaStatus};

/// A plan's lifecycle. Legal changes (anything else is refused):
/// Proposed → Running | Cancelled; Running ⇄ Paused; Running | Paused → Cancelling → Cancelled;
/// Running → Done | Failed | Superseded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Waiting for an operator's approval.
    Proposed,
    Running,
    /// No new step starts; steps already sent finish.
    Paused,
    /// No new step starts; becomes Cancelled once the steps already sent finish.
    Cancelling,
    Cancelled,
    Done,
    /// A step failed; the controller plans again from what the agents report.
    Failed,
    /// The world changed under it (a node died, the spec changed): no new step starts, and a
    /// new plan is made once the steps already sent finish.
    Superseded,
}

impl PlanStatus {
    /// Statuses from which nothing will ever be dispatched or awaited again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PlanStatus::Cancelled | PlanStatus::Done | PlanStatus::Failed | PlanStatus::Superseded
        )
    }

    /// Whether new steps may start.
    pub fn dispatches(self) -> bool {
        self == PlanStatus::Running
    }

    pub fn can_become(self, next: PlanStatus) -> bool {
        use PlanStatus::*;
        matches!(
            (self, next),
            (Proposed, Running)
                | (Proposed, Cancelled)
                | (Running, Paused)
                | (Paused, Running)
                | (Running | Paused, Cancelling)
                | (Cancelling, Cancelled)
                | (Running | Paused | Cancelling, Done)
                | (Running | Paused | Cancelling, Failed)
                | (Running | Paused, Superseded)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CommandStatus {
    Pending,
    /// Sent to the agent (at least once) by the leader of `epoch`.
    Sent {
        epoch: Epoch,
    },
    Running {
        bytes_done: u64,
        /// How far the copy trails its source, when the product says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lag_bytes: Option<u64>,
    },
    Done,
    Failed {
        error: String,
    },
}

/// One command of a step, for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub node: String,
    pub product: String,
    pub replica: ReplicaKey,
    pub action: Action,
    pub status: CommandStatus,
    /// What a finished demotion reported: where the old leader stopped taking writes. The
    /// promotion of the same step waits for its replica to catch up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: u32,
    /// What the step does, in words (`copy orders/3 n1 → n4 at 120 MB/s`).
    pub description: String,
    /// Seconds from the plan's start, as scheduled.
    pub start_s: f64,
    pub end_s: f64,
    /// Steps (indices in the plan) that must finish first: make-before-break, the new
    /// leader's home being ready.
    #[serde(default)]
    pub after: Vec<usize>,
    /// Run one after the other (a leader hand-off demotes the old leader first).
    pub commands: Vec<CommandRecord>,
}

impl StepRecord {
    pub fn is_done(&self) -> bool {
        self.commands
            .iter()
            .all(|c| c.status == CommandStatus::Done)
    }

    pub fn failure(&self) -> Option<&str> {
        self.commands.iter().find_map(|c| match &c.status {
            CommandStatus::Failed { error } => Some(error.as_str()),
            _ => None,
        })
    }

    /// A step that only brings up new replicas with nothing to copy: it frees nothing and
    /// holds no transient heat, so later steps need not wait for it to finish.
    pub fn only_starts(&self) -> bool {
        self.commands
            .iter()
            .all(|c| matches!(c.action, meridian_wire::Action::Start { .. }))
    }

    pub fn is_started(&self) -> bool {
        self.commands
            .iter()
            .any(|c| c.status != CommandStatus::Pending)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub id: u64,
    /// Why it was made (`node n3 failed`, `rack r1 draining`, `spec revision 12`).
    pub reason: String,
    pub status: PlanStatus,
    pub created_epoch: Epoch,
    /// Unix milliseconds, for people (the controller never orders by wall time).
    pub created_unix_ms: u64,
    pub spec_revision: Revision,
    /// How long solving and planning took, ms.
    #[serde(default)]
    pub decision_ms: u64,
    pub makespan_s: f64,
    pub bytes: f64,
    /// Changes the planner could not schedule, and why.
    pub blocked: Vec<String>,
    /// Replicas the solver could not place, and why.
    pub unplaced: Vec<String>,
    pub steps: Vec<StepRecord>,
}

impl PlanRecord {
    pub fn steps_done(&self) -> usize {
        self.steps.iter().filter(|s| s.is_done()).count()
    }

    /// Transition id of command `index` of step `step`: stable, so a new leader resending it
    /// is recognized by the agent.
    pub fn transition_id(&self, step: u32, index: usize) -> meridian_wire::TransitionId {
        meridian_wire::TransitionId(format!("plan-{}/step-{step}/{index}", self.id))
    }
}

/// Operator marks on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAdmin {
    /// Nothing new lands; what runs there stays.
    pub cordoned: bool,
    /// Everything moves off (make-before-break).
    pub draining: bool,
}

/// An agent's last report, kept so a new leader and the API know what ran where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedRecord {
    pub node: String,
    pub incarnation: u64,
    pub replicas: Vec<ReplicaStatus>,
}

#[cfg(test)]
mod tests {
    use super::PlanStatus::*;

    #[test]
    fn plan_lifecycle_allows_only_its_table() {
        assert!(Proposed.can_become(Running));
        assert!(Running.can_become(Paused) && Paused.can_become(Running));
        assert!(!Done.can_become(Running), "a finished plan never restarts");
        assert!(!Cancelled.can_become(Running));
        assert!(!Proposed.can_become(Paused), "approve first");
        assert!(Cancelling.can_become(Cancelled) && !Cancelling.can_become(Running));
    }
}

/// The desired placement of one group, as the last decision made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub placement: meridian_model::placement::GroupPlacementDoc,
    pub spec_revision: Revision,
    /// The plan that moves toward it (none if nothing had to move).
    pub plan: Option<u64>,
    pub decided_unix_ms: u64,
}
