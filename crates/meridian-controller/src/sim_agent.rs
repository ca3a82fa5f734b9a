//! An agent simulated in-process: it applies commands at once (no processes, no data), keeps a
//! journal like the real agent and records what it executed. For the control loop's tests and
//! for `meridian bench-control`, which measure the controller, not the actuators; the real agent
//! (meridian-agent) is tested with real processes.

use std::collections::{BTreeMap, BTreeSet};

use meridian_wire::{
    Action, Health, ReplicaKey, ReplicaStatus, SyncRequest, TransitionId, TransitionReport,
    TransitionStatus,
};

use crate::Controller;

/// An agent that applies commands at once, keeps a journal like the real one, and records
/// what it executed.
pub struct SimAgent {
    pub node: String,
    pub incarnation: u64,
    pub epoch_seen: i64,
    pub replicas: BTreeMap<ReplicaKey, (String, String)>,
    /// Each transition's outcome, with the handoff a demotion reported.
    journal: BTreeMap<TransitionId, (TransitionStatus, Option<String>)>,
    unacknowledged: BTreeSet<TransitionId>,
    pub executed: Vec<TransitionId>,
    pub refused: Vec<(TransitionId, i64)>,
    /// Each promotion run, with the handoff it was given.
    pub promoted: Vec<(TransitionId, Option<String>)>,
    /// The leader node each replica was last told to follow.
    pub following: BTreeMap<ReplicaKey, String>,
}

impl SimAgent {
    pub fn new(node: &str) -> SimAgent {
        SimAgent {
            node: node.to_string(),
            incarnation: 1,
            epoch_seen: 0,
            replicas: BTreeMap::new(),
            journal: BTreeMap::new(),
            unacknowledged: BTreeSet::new(),
            executed: Vec::new(),
            refused: Vec::new(),
            promoted: Vec::new(),
            following: BTreeMap::new(),
        }
    }

    fn request(&self) -> SyncRequest {
        SyncRequest {
            node: self.node.clone(),
            incarnation: self.incarnation,
            epoch_seen: self.epoch_seen,
            registration: None,
            replicas: self
                .replicas
                .iter()
                .map(|(replica, (product, state))| ReplicaStatus {
                    replica: replica.clone(),
                    product: product.clone(),
                    state: state.clone(),
                    health: Health::Serving,
                    heat: vec![],
                    endpoint: Some(format!("sim://{}/{replica}", self.node)),
                })
                .collect(),
            transitions: self
                .unacknowledged
                .iter()
                .map(|id| TransitionReport {
                    id: id.clone(),
                    status: self.journal[id].0.clone(),
                    handoff: self.journal[id].1.clone(),
                })
                .collect(),
        }
    }

    /// One sync with `controller`; false if it does not lead.
    pub fn sync(&mut self, controller: &Controller) -> bool {
        let Ok(response) = controller.sync(self.request()) else {
            return false;
        };
        for id in &response.acknowledged {
            self.unacknowledged.remove(id);
        }
        self.epoch_seen = self.epoch_seen.max(response.epoch);
        for hint in response.leaders {
            self.following.insert(hint.replica, hint.leader.node);
        }
        for command in response.commands {
            if command.epoch < self.epoch_seen {
                self.refused.push((command.id.clone(), command.epoch));
                continue;
            }
            if self.journal.contains_key(&command.id) {
                // Already run: report its outcome again (the controller asking means it
                // has not recorded it).
                self.unacknowledged.insert(command.id.clone());
                continue;
            }
            let replica = command.replica.clone();
            let mut handoff = None;
            let status = match &command.action {
                Action::Start { state } | Action::Replicate { state, .. } => {
                    self.replicas
                        .insert(replica, (command.product.clone(), state.clone()));
                    TransitionStatus::Done
                }
                Action::Promote { to, .. } | Action::Demote { to, .. } => {
                    match self.replicas.get_mut(&replica) {
                        Some(entry) => {
                            entry.1 = to.clone();
                            if let Action::Promote { handoff, .. } = &command.action {
                                self.promoted.push((command.id.clone(), handoff.clone()));
                            } else {
                                // Where this leader stopped: unique per demotion.
                                handoff = Some(format!("{}@{}", self.node, command.id));
                            }
                            TransitionStatus::Done
                        }
                        None => TransitionStatus::Refused {
                            reason: format!("no replica {replica} here"),
                        },
                    }
                }
                Action::Stop { .. } => {
                    self.replicas.remove(&replica);
                    TransitionStatus::Done
                }
            };
            self.executed.push(command.id.clone());
            self.journal.insert(command.id.clone(), (status, handoff));
            self.unacknowledged.insert(command.id);
        }
        true
    }
}
