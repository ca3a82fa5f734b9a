//! What operators (through the API or CLI) can ask of the leader, and what they can read.
//! Every change is validated first, written to the store fenced by the leader's epoch, and
//! only then applied in memory, so a refused or failed request changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use meridian_model::{Fleet, NodeId};
use meridian_store::{Commit, Compare, Txn};
use meridian_wire::{Registration, ReplicaStatus};

use crate::controller::{Controller, LeaderView};
use crate::detector::Liveness;
use crate::planning::{propose, Inputs};
use crate::records::{NodeAdmin, PlanRecord, PlanStatus};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("this controller does not lead")]
    NotLeader(Option<LeaderView>),
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or breaks a rule; nothing was changed.
    #[error("{message}")]
    Invalid {
        message: String,
        problems: Vec<meridian_model::Problem>,
    },
    /// The request is well formed but not possible now (e.g. approve a finished plan).
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(String),
}

fn invalid(message: impl Into<String>) -> OpError {
    OpError::Invalid {
        message: message.into(),
        problems: Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeChange {
    Cordon,
    Uncordon,
    Drain,
    /// Stops a drain (and lifts the cordon a drain implies).
    Undrain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanChange {
    Approve,
    Pause,
    Resume,
    Cancel,
}

/// A what-if: the plan the controller would make if these nodes failed or were drained (and,
/// optionally, with another spec). Nothing is stored or sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatIf {
    /// Node or domain names.
    pub fail: Vec<String>,
    /// Node or domain names.
    pub drain: Vec<String>,
    /// A fleet file to plan against instead of the current spec.
    pub spec: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    pub liveness: Liveness,
    pub phi: f64,
    pub admin: NodeAdmin,
    pub registration: Option<Registration>,
    pub incarnation: u64,
    pub replicas: Vec<ReplicaStatus>,
    pub last_sync_ms_ago: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: String,
    pub leading: bool,
    pub epoch: Option<i64>,
    pub leader: Option<LeaderView>,
    pub leading_for_ms: Option<u64>,
    pub spec_revision: Option<i64>,
    pub nodes: BTreeMap<String, usize>,
    pub plans_active: usize,
}

impl Controller {
    fn require_leader(&self) -> Result<meridian_store::Fence, OpError> {
        let inner = self.lock();
        match inner.leader.as_ref() {
            Some(l) if l.loaded && l.leadership.is_held() => Ok(l.leadership.fence()),
            _ => Err(OpError::NotLeader(inner.known_leader.clone())),
        }
    }

    fn fleet(&self) -> Result<std::sync::Arc<Fleet>, OpError> {
        self.spec()
            .map(|s| s.fleet)
            .ok_or_else(|| OpError::Conflict("no fleet spec loaded yet (PUT /v1/fleet)".into()))
    }

    async fn commit(&self, txn: Txn) -> Result<i64, OpError> {
        match self.store.commit(txn).await {
            Ok(Commit::Applied { revision }) => Ok(revision),
            Ok(Commit::Fenced) => Err(OpError::NotLeader(None)),
            Ok(Commit::Conflict) => Err(OpError::Conflict(
                "changed concurrently; read it again and retry".into(),
            )),
            Err(e) => Err(OpError::Store(e.to_string())),
        }
    }

    /// Replaces the fleet spec after validating it; returns the new revision.
    pub async fn put_spec(&self, yaml: &str) -> Result<i64, OpError> {
        let fence = self.require_leader()?;
        Fleet::from_yaml(yaml, "request body").map_err(|problems| OpError::Invalid {
            message: problems.to_string(),
            problems: problems.0,
        })?;
        let txn = Txn::fenced(fence).put(self.config.keys.spec(), yaml.as_bytes().to_vec());
        let revision = self.commit(txn).await?;
        self.reload_spec().await.map_err(|e| OpError::Store(e.0))?;
        self.wake();
        Ok(revision)
    }

    /// Seeds the spec if the store has none (a controller started with `--fleet`).
    pub async fn seed_spec(
        store: &dyn meridian_store::Store,
        key: &str,
        yaml: &str,
    ) -> Result<bool, OpError> {
        Fleet::from_yaml(yaml, "--fleet").map_err(|problems| OpError::Invalid {
            message: problems.to_string(),
            problems: problems.0,
        })?;
        let txn = Txn::default()
            .compare(Compare::Absent {
                key: key.to_string(),
            })
            .put(key, yaml.as_bytes().to_vec());
        match store.commit(txn).await {
            Ok(Commit::Applied { .. }) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(OpError::Store(e.to_string())),
        }
    }

    /// Nodes a name stands for: the node itself, or every node under a domain.
    fn nodes_named(fleet: &Fleet, name: &str) -> Result<Vec<NodeId>, OpError> {
        if let Some(node) = fleet.topology.node_by_name(name) {
            return Ok(vec![node]);
        }
        match fleet.topology.domain_by_name(name) {
            Some(domain) => Ok(fleet.topology.nodes_under(domain)),
            None => Err(OpError::NotFound(format!(
                "no node or domain named `{name}` in the fleet"
            ))),
        }
    }

    /// Cordons, drains or releases a node or every node under a domain.
    pub async fn change_nodes(
        &self,
        name: &str,
        change: NodeChange,
    ) -> Result<Vec<(String, NodeAdmin)>, OpError> {
        let fence = self.require_leader()?;
        let fleet = self.fleet()?;
        let nodes = Self::nodes_named(&fleet, name)?;
        let mut txn = Txn::fenced(fence);
        let mut updated = Vec::new();
        {
            let inner = self.lock();
            for node in nodes {
                let node_name = fleet.topology.node_name(node).to_string();
                let (admin, revision) = inner.admin.get(&node_name).cloned().unwrap_or_default();
                let mut next = admin.clone();
                match change {
                    NodeChange::Cordon => next.cordoned = true,
                    NodeChange::Uncordon => next.cordoned = false,
                    NodeChange::Drain => next.draining = true,
                    NodeChange::Undrain => next.draining = false,
                }
                let key = self.config.keys.node_admin(&node_name);
                txn = txn.compare(match revision {
                    Some(revision) => Compare::ModRevision {
                        key: key.clone(),
                        revision,
                    },
                    None => Compare::Absent { key: key.clone() },
                });
                let value = serde_json::to_vec(&next).map_err(|e| invalid(e.to_string()))?;
                txn = txn.put(key, value);
                updated.push((node_name, next));
            }
        }
        let revision = self.commit(txn).await?;
        let mut inner = self.lock();
        for (node, admin) in &updated {
            inner
                .admin
                .insert(node.clone(), (admin.clone(), Some(revision)));
        }
        inner.event(format!("{change:?} {name} ({} nodes)", updated.len()));
        drop(inner);
        self.wake();
        Ok(updated)
    }

    /// Approves, pauses, resumes or cancels a plan; the change is durable when this returns.
    pub async fn change_plan(&self, id: u64, change: PlanChange) -> Result<PlanRecord, OpError> {
        let fence = self.require_leader()?;
        // Held from the read to the write, serialized with the persist rounds, so the
        // compare sees the latest write.
        let _one_at_a_time = self.persisting.lock().await;
        let (record, revision) = {
            let inner = self.lock();
            let entry = inner
                .plans
                .get(&id)
                .ok_or_else(|| OpError::NotFound(format!("no plan {id}")))?;
            (entry.record.clone(), entry.revision)
        };
        let from = record.status;
        let to = match (change, from) {
            (PlanChange::Approve, _) => PlanStatus::Running,
            (PlanChange::Pause, _) => PlanStatus::Paused,
            (PlanChange::Resume, _) => PlanStatus::Running,
            (PlanChange::Cancel, PlanStatus::Proposed) => PlanStatus::Cancelled,
            (PlanChange::Cancel, _) => PlanStatus::Cancelling,
        };
        let legal = from.can_become(to)
            && !(change == PlanChange::Resume && from != PlanStatus::Paused)
            && !(change == PlanChange::Approve && from != PlanStatus::Proposed);
        if !legal {
            return Err(OpError::Conflict(format!(
                "plan {id} is {from:?}; it cannot {change:?}"
            )));
        }
        let mut next = record;
        next.status = to;
        let key = self.config.keys.plan(id);
        let compare = match revision {
            Some(revision) => Compare::ModRevision {
                key: key.clone(),
                revision,
            },
            None => Compare::Absent { key: key.clone() },
        };
        let value = serde_json::to_vec(&next).map_err(|e| invalid(e.to_string()))?;
        let new_revision = self
            .commit(Txn::fenced(fence).compare(compare).put(key, value))
            .await?;
        let mut inner = self.lock();
        if let Some(entry) = inner.plans.get_mut(&id) {
            // Anything recorded since the read (agents' reports) is kept; only the status is
            // the operator's.
            entry.record.status = to;
            entry.revision = Some(new_revision);
            entry.dirty = true;
        }
        inner.event(format!("plan {id}: {change:?} ({from:?} -> {to:?})"));
        let record = inner.plans.get(&id).map(|e| e.record.clone());
        drop(inner);
        self.wake();
        record.ok_or_else(|| OpError::NotFound(format!("no plan {id}")))
    }

    /// The plan the controller would make under `what_if`; nothing is stored or sent.
    pub async fn dry_run(&self, what_if: WhatIf) -> Result<PlanRecord, OpError> {
        self.require_leader()?;
        let fleet = match &what_if.spec {
            Some(yaml) => std::sync::Arc::new(Fleet::from_yaml(yaml, "spec").map_err(|p| {
                OpError::Invalid {
                    message: p.to_string(),
                    problems: p.0,
                }
            })?),
            None => self.fleet()?,
        };
        let mut fail = Vec::new();
        for name in &what_if.fail {
            fail.extend(Self::nodes_named(&fleet, name)?);
        }
        let mut drain = Vec::new();
        for name in &what_if.drain {
            drain.extend(Self::nodes_named(&fleet, name)?);
        }
        let mut nodes = self.lock().node_states(&fleet);
        nodes.down.extend(fail);
        nodes.down.sort();
        nodes.down.dedup();
        nodes.draining.extend(drain);
        let planner = self.config.planner.clone();
        let seed = self.config.seed;
        let revision = self.spec().map_or(0, |s| s.revision);
        let proposal = tokio::task::spawn_blocking(move || {
            propose(&Inputs {
                fleet: &fleet,
                observed: &nodes.observed,
                down: nodes.down,
                cordoned: nodes.cordoned,
                draining: nodes.draining,
                planner,
                seed,
            })
        })
        .await
        .map_err(|e| OpError::Store(format!("planning failed: {e}")))?;
        Ok(PlanRecord {
            id: 0,
            reason: "dry run".into(),
            status: PlanStatus::Proposed,
            created_epoch: self.leading_epoch().unwrap_or(0),
            created_unix_ms: crate::controller::unix_ms(),
            spec_revision: revision,
            decision_ms: 0,
            makespan_s: proposal.plan.makespan(),
            bytes: proposal.plan.bytes,
            blocked: proposal
                .plan
                .blocked
                .iter()
                .map(|b| format!("{}: {}", b.what, b.why))
                .collect(),
            unplaced: proposal.unplaced,
            steps: proposal.steps,
        })
    }

    /// Why a running replica sits where it does (solver explain on the observed placement).
    pub fn explain(
        &self,
        group: &str,
        partition: u32,
        replica: usize,
    ) -> Result<meridian_solver::Explanation, OpError> {
        let fleet = self.fleet()?;
        let (placement, _) = self.observed_placement(&fleet);
        meridian_solver::explain(&fleet, &placement, group, partition, replica)
            .map_err(OpError::NotFound)
    }

    /// The placement agents report (live nodes only), and replicas it has no slot for.
    pub fn observed_placement(
        &self,
        fleet: &Fleet,
    ) -> (
        meridian_model::Placement,
        Vec<meridian_model::placement::Replica>,
    ) {
        let observed = self.lock().node_states(fleet).observed;
        // Replicas the fleet has no slot for are not part of the placement.
        let (replicas, _orphans) = crate::planning::resolve(fleet, &observed, &[]);
        meridian_solver::current::to_slots(fleet, &replicas)
    }

    pub fn nodes(&self) -> Vec<NodeView> {
        let now_ms = self.now_ms();
        let inner = self.lock();
        let mut names: Vec<String> = inner.nodes.keys().cloned().collect();
        if let Some(spec) = &inner.spec {
            names.extend(
                spec.fleet
                    .topology
                    .node_ids()
                    .map(|n| spec.fleet.topology.node_name(n).to_string()),
            );
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let state = inner.nodes.get(&name).cloned().unwrap_or_default();
                NodeView {
                    liveness: inner.liveness_of(&name),
                    phi: inner.detector.phi(&name, now_ms),
                    admin: inner
                        .admin
                        .get(&name)
                        .map(|(a, _)| a.clone())
                        .unwrap_or_default(),
                    registration: state.registration,
                    incarnation: state.incarnation,
                    replicas: state.replicas,
                    last_sync_ms_ago: state.last_sync_ms.map(|t| now_ms.saturating_sub(t)),
                    name,
                }
            })
            .collect()
    }

    pub fn status(&self) -> Status {
        let now_ms = self.now_ms();
        let inner = self.lock();
        let leading = inner
            .leader
            .as_ref()
            .is_some_and(|l| l.leadership.is_held());
        let mut nodes = BTreeMap::new();
        for liveness in inner.liveness.values() {
            *nodes
                .entry(format!("{liveness:?}").to_lowercase())
                .or_insert(0) += 1;
        }
        Status {
            id: self.config.id.clone(),
            leading,
            epoch: inner.leader.as_ref().map(|l| l.epoch),
            leader: inner.known_leader.clone(),
            leading_for_ms: inner
                .leader
                .as_ref()
                .map(|l| now_ms.saturating_sub(l.since_ms)),
            spec_revision: inner.spec.as_ref().map(|s| s.revision),
            nodes,
            plans_active: inner
                .plans
                .values()
                .filter(|e| !e.record.status.is_final())
                .count(),
        }
    }
}
