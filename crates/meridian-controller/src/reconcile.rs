//! One round of the leader's reconcile loop: judge liveness, advance plans, decide anew when
//! the world changed, persist.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use meridian_model::NodeId;

use crate::controller::{unix_ms, Controller, Inner, PlanEntry};
use crate::detector::Liveness;
use crate::dispatch;
use crate::planning::{propose, Inputs};
use crate::records::{CommandStatus, PlanRecord, PlanStatus};

/// The controller lost leadership (or its store) and must step down.
#[derive(Debug, thiserror::Error)]
#[error("stepping down: {0}")]
pub struct StepDown(pub String);

/// What a decision is made from, copied out of the lock.
pub(crate) struct DecisionInputs {
    spec: crate::controller::Spec,
    nodes: crate::planning::NodeStates,
    world: u64,
    reason: String,
}

impl Controller {
    pub(crate) async fn reconcile(&self) -> Result<(), StepDown> {
        let started = std::time::Instant::now();
        let now_ms = self.now_ms();
        let decision = {
            let mut inner = self.lock();
            let Some(leader) = inner.leader.as_ref() else {
                return Err(StepDown("not leading".into()));
            };
            if !leader.leadership.is_held() {
                return Err(StepDown("lease no longer held".into()));
            }
            self.judge_liveness(&mut inner, now_ms);
            self.advance_plans(&mut inner);
            self.decision_due(&mut inner, now_ms)
        };
        if let Some(inputs) = decision {
            self.decide(inputs).await;
        }
        self.persist().await?;
        self.update_gauges();
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn judge_liveness(&self, inner: &mut Inner, now_ms: u64) {
        let liveness = inner.detector.evaluate(now_ms);
        let mut changes = Vec::new();
        for (node, &now) in &liveness {
            let before = inner.liveness.get(node).copied();
            if before != Some(now) {
                changes.push((node.clone(), before, now));
            }
        }
        inner.liveness = liveness;
        for (node, before, now) in changes {
            let was = before.map_or("Unknown".to_string(), |b| format!("{b:?}"));
            inner.event(format!("node `{node}`: {was} -> {now:?}"));
            if now != Liveness::Alive && before == Some(Liveness::Alive) {
                fail_commands_on(inner, &node);
            }
        }
    }

    /// Finishes plans whose steps are all done or one failed; sends what is ready.
    fn advance_plans(&self, inner: &mut Inner) {
        let Some(epoch) = inner.epoch() else { return };
        let mut events = Vec::new();
        for entry in inner.plans.values_mut() {
            let record = &mut entry.record;
            let in_flight = dispatch::in_flight(record).count();
            let next = if record.steps.iter().all(|s| s.is_done()) && !record.status.is_final() {
                Some(PlanStatus::Done)
            } else if record.steps.iter().any(|s| s.failure().is_some())
                && matches!(record.status, PlanStatus::Running | PlanStatus::Paused)
            {
                Some(PlanStatus::Failed)
            } else if record.status == PlanStatus::Cancelling && in_flight == 0 {
                Some(PlanStatus::Cancelled)
            } else {
                None
            };
            if let Some(next) = next {
                events.push(format!(
                    "plan {}: {:?} -> {next:?}",
                    record.id, record.status
                ));
                record.status = next;
                entry.dirty = true;
            }
            if record.status.is_final() {
                continue;
            }
            for (s, c) in dispatch::ready(record) {
                record.steps[s].commands[c].status = CommandStatus::Sent { epoch };
                entry.dirty = true;
            }
        }
        for event in events {
            inner.event(event);
        }
    }

    /// Inputs for a new decision, if one is due: leadership settled, nothing running, the
    /// world changed since the last decision, and not too soon after the last plan.
    fn decision_due(&self, inner: &mut Inner, now_ms: u64) -> Option<DecisionInputs> {
        let spec = inner.spec.clone()?;
        let world = world_fingerprint(inner);
        let leader = inner.leader.as_ref()?;
        if now_ms < leader.settle_until_ms || leader.decided_for == Some(world) {
            return None;
        }
        let recent = leader.last_plan_ms.is_some_and(|t| {
            now_ms.saturating_sub(t) < self.config.replan_interval_min.as_millis() as u64
        });
        // A proposal waiting for approval is replaced when the world moves on; anything
        // running finishes first (its bookings must stay honest).
        for entry in inner.plans.values_mut() {
            if entry.record.status == PlanStatus::Proposed && entry.world != world {
                entry.record.status = PlanStatus::Superseded;
                entry.dirty = true;
            }
        }
        let busy = inner.plans.values().any(|e| {
            !e.record.status.is_final() || dispatch::in_flight(&e.record).next().is_some()
        });
        if busy || recent {
            return None;
        }
        Some(inputs(inner, spec, world))
    }

    async fn decide(&self, inputs: DecisionInputs) {
        let started = std::time::Instant::now();
        let planner = self.config.planner.clone();
        let seed = self.config.seed;
        let DecisionInputs {
            spec,
            nodes,
            world,
            reason,
        } = inputs;
        let fleet = Arc::clone(&spec.fleet);
        // The solver and planner are CPU work: keep them off the async workers.
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
        .await;
        let decision_ms = started.elapsed().as_millis() as u64;
        self.metrics
            .decision_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.decisions.inc();
        let proposal = match proposal {
            Ok(p) => p,
            Err(e) => {
                self.lock().event(format!("decision failed: {e}"));
                return;
            }
        };
        self.export_utilization(&spec.fleet, &proposal.current);
        let target_docs = proposal.target.to_doc(&spec.fleet).groups;
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        let Some(next_plan_id) = inner.leader.as_ref().map(|l| l.next_plan_id) else {
            return;
        };
        let plan_id = (!proposal.is_empty()).then_some(next_plan_id);
        record_targets(&mut inner, target_docs, spec.revision, plan_id);
        let Some(leader) = inner.leader.as_mut() else {
            return;
        };
        leader.decided_for = Some(world);
        if proposal.is_empty() {
            if !proposal.unplaced.is_empty() {
                let text = format!(
                    "nothing to do, but {} replicas cannot be placed: {}",
                    proposal.unplaced.len(),
                    proposal.unplaced.join("; ")
                );
                inner.event(text);
            }
            return;
        }
        let id = leader.next_plan_id;
        leader.next_plan_id += 1;
        leader.last_plan_ms = Some(now_ms);
        let epoch = leader.epoch;
        let status = if self.config.auto_approve {
            PlanStatus::Running
        } else {
            PlanStatus::Proposed
        };
        let record = PlanRecord {
            id,
            reason: reason.clone(),
            status,
            created_epoch: epoch,
            created_unix_ms: unix_ms(),
            spec_revision: spec.revision,
            decision_ms,
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
        };
        inner.event(format!(
            "plan {id} ({:?}): {} steps, {:.1} GB, {:.0} s scheduled — {}",
            status,
            record.steps.len(),
            record.bytes / 1e9,
            record.makespan_s,
            reason
        ));
        self.metrics.plans_created.inc();
        inner.plans.insert(
            id,
            PlanEntry {
                record,
                revision: None,
                dirty: true,
                world,
            },
        );
        drop(inner);
        self.wake();
    }

    /// Sets `domain_utilization` for every domain above the nodes (racks, PDUs, spines, ...):
    /// steady heat of what runs under it over its limit. Nodes are left out on purpose: at
    /// 10k nodes × 8 dimensions they would swamp Prometheus, and the API has them.
    fn export_utilization(
        &self,
        fleet: &meridian_model::Fleet,
        current: &meridian_model::Placement,
    ) {
        let loads = meridian_model::check::domain_loads(fleet, &current.replicas(fleet));
        let topology = &fleet.topology;
        let dims = fleet.dims_count();
        for domain in topology.domain_ids() {
            let info = topology.domain(domain);
            if info.level == topology.node_level {
                continue;
            }
            for dim in 0..dims {
                let limit = fleet.limit[domain.index() * dims + dim];
                if !(limit.is_finite() && limit > 0.0) {
                    continue;
                }
                let labels = crate::metrics::DomainLabels {
                    level: topology.level_name(info.level).to_string(),
                    domain: info.name.clone(),
                    dim: fleet.dims.names()[dim].clone(),
                };
                self.metrics
                    .utilization
                    .get_or_create(&labels)
                    .set(loads[domain.index() * dims + dim] / limit);
            }
        }
    }

    fn update_gauges(&self) {
        let inner = self.lock();
        let mut steps: BTreeMap<&str, i64> = BTreeMap::new();
        let mut moves = 0;
        for entry in inner.plans.values() {
            if entry.record.status.is_final() && dispatch::in_flight(&entry.record).next().is_none()
            {
                continue;
            }
            for step in &entry.record.steps {
                let status = if step.is_done() {
                    "done"
                } else if step.failure().is_some() {
                    "failed"
                } else if step.is_started() {
                    "running"
                } else {
                    "pending"
                };
                *steps.entry(status).or_default() += 1;
            }
            moves += dispatch::in_flight(&entry.record)
                .filter(|&(s, c)| {
                    matches!(
                        entry.record.steps[s].commands[c].action,
                        meridian_wire::Action::Replicate { .. }
                    )
                })
                .count() as i64;
        }
        for status in ["pending", "running", "done", "failed"] {
            let labels = crate::metrics::StatusLabels {
                status: status.to_string(),
            };
            self.metrics
                .plan_steps
                .get_or_create(&labels)
                .set(steps.get(status).copied().unwrap_or(0));
        }
        self.metrics.moves_in_flight.set(moves);
        let mut by_liveness: BTreeMap<String, i64> = BTreeMap::new();
        for liveness in inner.liveness.values() {
            *by_liveness
                .entry(format!("{liveness:?}").to_lowercase())
                .or_default() += 1;
        }
        for status in ["alive", "dead", "rejoining", "quarantined"] {
            let labels = crate::metrics::StatusLabels {
                status: status.to_string(),
            };
            self.metrics
                .nodes
                .get_or_create(&labels)
                .set(by_liveness.get(status).copied().unwrap_or(0));
        }
    }
}

/// Keeps the groups' desired placements; only groups whose placement changed are rewritten.
fn record_targets(
    inner: &mut Inner,
    docs: Vec<meridian_model::placement::GroupPlacementDoc>,
    spec_revision: i64,
    plan: Option<u64>,
) {
    for doc in docs {
        let unchanged = inner
            .targets
            .get(&doc.group)
            .is_some_and(|t| t.record.placement == doc);
        if unchanged {
            continue;
        }
        let revision = inner.targets.get(&doc.group).and_then(|t| t.revision);
        inner.targets.insert(
            doc.group.clone(),
            crate::controller::TargetEntry {
                record: crate::records::TargetRecord {
                    placement: doc,
                    spec_revision,
                    plan,
                    decided_unix_ms: unix_ms(),
                },
                revision,
                dirty: true,
            },
        );
    }
}

/// Commands sent to a node that just died will never finish there: they fail, and the plans
/// that sent them stop (a new decision repairs from what is left).
fn fail_commands_on(inner: &mut Inner, node: &str) {
    let mut events = Vec::new();
    for entry in inner.plans.values_mut() {
        let mut hit = false;
        for step in &mut entry.record.steps {
            for command in &mut step.commands {
                let pending_here = command.node == node
                    && !matches!(
                        command.status,
                        CommandStatus::Done | CommandStatus::Failed { .. }
                    );
                if pending_here && command.status != CommandStatus::Pending {
                    command.status = CommandStatus::Failed {
                        error: format!("node `{node}` was declared dead"),
                    };
                    hit = true;
                } else if pending_here {
                    hit = true;
                }
            }
        }
        let status = entry.record.status;
        if hit
            && matches!(
                status,
                PlanStatus::Running | PlanStatus::Paused | PlanStatus::Proposed
            )
        {
            entry.record.status = PlanStatus::Superseded;
            events.push(format!(
                "plan {} superseded: node `{node}` died under it",
                entry.record.id
            ));
        }
        entry.dirty |= hit;
    }
    for event in events {
        inner.event(event);
    }
}

/// What decisions depend on: the spec, which nodes are usable, operator marks, and what the
/// live nodes run (health changes excluded: a replica starting up is not a new world).
fn world_fingerprint(inner: &Inner) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    if let Some(spec) = &inner.spec {
        spec.revision.hash(&mut hasher);
    }
    for (node, state) in &inner.nodes {
        let alive = inner.liveness_of(node) == Liveness::Alive;
        (node, alive).hash(&mut hasher);
        if alive {
            for r in &state.replicas {
                (&r.replica, &r.state).hash(&mut hasher);
            }
        }
    }
    for (node, (admin, _)) in &inner.admin {
        (node, admin.cordoned, admin.draining).hash(&mut hasher);
    }
    hasher.finish()
}

fn inputs(inner: &Inner, spec: crate::controller::Spec, world: u64) -> DecisionInputs {
    let nodes = inner.node_states(&spec.fleet);
    let reason = reason(inner, &nodes.down, &nodes.draining, &spec);
    DecisionInputs {
        spec,
        nodes,
        world,
        reason,
    }
}

/// Why a decision is made, in words, for the plan record and the event log.
fn reason(
    inner: &Inner,
    down: &[NodeId],
    draining: &[NodeId],
    spec: &crate::controller::Spec,
) -> String {
    let topology = &spec.fleet.topology;
    let names = |nodes: &[NodeId]| -> String {
        let list: Vec<&str> = nodes
            .iter()
            .take(5)
            .map(|&n| topology.node_name(n))
            .collect();
        let more = nodes.len().saturating_sub(5);
        if more > 0 {
            format!("{} and {more} more", list.join(", "))
        } else {
            list.join(", ")
        }
    };
    let dead: Vec<NodeId> = down
        .iter()
        .copied()
        .filter(|&n| inner.nodes.contains_key(topology.node_name(n)))
        .collect();
    let mut parts = vec![format!("spec revision {}", spec.revision)];
    if !dead.is_empty() {
        parts.push(format!("nodes down: {}", names(&dead)));
    }
    if !draining.is_empty() {
        parts.push(format!("draining: {}", names(draining)));
    }
    parts.join("; ")
}
