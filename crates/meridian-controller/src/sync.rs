//! An agent's sync: take its report, hand it its commands.

use meridian_wire::{
    Action, Command, LeaderHint, NotLeader, ReplicaKey, Source, SyncRequest, SyncResponse,
    TransitionReport, TransitionStatus,
};

use crate::controller::{Controller, Inner};
use crate::records::{CommandStatus, PlanRecord};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this controller does not lead")]
    NotLeader(NotLeader),
    #[error("node `{0}` is not in the fleet")]
    UnknownNode(String),
}

/// Parses `plan-<id>/step-<index>/<command>`.
fn parse_id(id: &str) -> Option<(u64, usize, usize)> {
    let rest = id.strip_prefix("plan-")?;
    let (plan, rest) = rest.split_once("/step-")?;
    let (step, command) = rest.split_once('/')?;
    Some((
        plan.parse().ok()?,
        step.parse().ok()?,
        command.parse().ok()?,
    ))
}

impl Controller {
    pub fn sync(&self, request: SyncRequest) -> Result<SyncResponse, SyncError> {
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        let Some(epoch) = inner
            .leader
            .as_ref()
            .filter(|l| l.loaded && l.leadership.is_held())
            .map(|l| l.epoch)
        else {
            let leader_api = inner.known_leader.as_ref().map(|l| l.api_url.clone());
            return Err(SyncError::NotLeader(NotLeader { leader_api }));
        };
        let node = request.node.clone();
        if let Some(spec) = &inner.spec {
            if spec.fleet.topology.node_by_name(&node).is_none() {
                return Err(SyncError::UnknownNode(node));
            }
        }
        inner.detector.heartbeat(&node, now_ms);
        let mut changed = record_node(&mut inner, &request, now_ms);
        for report in &request.transitions {
            changed |= record_transition(&mut inner, &node, report);
        }
        let commands = commands_for(&inner, &node, epoch);
        let leaders = leader_hints(&inner, &node, &request);
        self.metrics.commands_sent.inc_by(commands.len() as u64);
        let state = inner.nodes.entry(node).or_default();
        let acknowledged = std::mem::take(&mut state.acks_durable);
        drop(inner);
        if changed {
            self.wake();
        }
        Ok(SyncResponse {
            epoch,
            leader: self.config.id.clone(),
            commands,
            acknowledged,
            heartbeat_ms: self.config.heartbeat.as_millis() as u64,
            leaders,
        })
    }
}

/// Updates what the node runs; true if it changed.
fn record_node(inner: &mut Inner, request: &SyncRequest, now_ms: u64) -> bool {
    let mut restarted = None;
    let state = inner.nodes.entry(request.node.clone()).or_default();
    if let Some(registration) = &request.registration {
        state.registration = Some(registration.clone());
    }
    if state.incarnation != request.incarnation {
        if state.incarnation != 0 {
            restarted = Some(request.incarnation);
        }
        state.incarnation = request.incarnation;
        state.observed_dirty = true;
    }
    state.last_sync_ms = Some(now_ms);
    // Compared field by field: this runs on every heartbeat of every node.
    let same = |a: &meridian_wire::ReplicaStatus, b: &meridian_wire::ReplicaStatus| {
        a.replica == b.replica
            && a.state == b.state
            && a.health == b.health
            && a.endpoint == b.endpoint
    };
    let changed = state.replicas.len() != request.replicas.len()
        || !state
            .replicas
            .iter()
            .zip(&request.replicas)
            .all(|(a, b)| same(a, b));
    state.observed_dirty |= changed;
    state.replicas = request.replicas.clone();
    if changed {
        inner.index_leaders_of(&request.node);
    }
    if let Some(incarnation) = restarted {
        inner.event(format!(
            "agent on `{}` restarted (incarnation {incarnation})",
            request.node
        ));
    }
    changed
}

/// Applies one transition report to its plan; true if the plan changed.
fn record_transition(inner: &mut Inner, node: &str, report: &TransitionReport) -> bool {
    let final_report = !matches!(report.status, TransitionStatus::Running { .. });
    let located = parse_id(&report.id.0).and_then(|(plan, step, command)| {
        let entry = inner.plans.get_mut(&plan)?;
        let record = entry
            .record
            .steps
            .get_mut(step)?
            .commands
            .get_mut(command)?;
        (record.node == node).then_some((entry, step, command))
    });
    let Some((entry, step, command)) = located else {
        // Not ours to record (an old plan long gone): acknowledge so the agent forgets it.
        if final_report {
            inner
                .nodes
                .entry(node.to_string())
                .or_default()
                .acks_durable
                .push(report.id.clone());
        }
        return false;
    };
    let record = &mut entry.record.steps[step].commands[command];
    if report.status == TransitionStatus::Done && record.handoff.is_none() {
        record.handoff = report.handoff.clone();
    }
    let current = &mut record.status;
    let next = match &report.status {
        TransitionStatus::Running {
            bytes_done,
            lag_bytes,
        } => match current {
            CommandStatus::Sent { .. } | CommandStatus::Running { .. } => CommandStatus::Running {
                bytes_done: *bytes_done,
                lag_bytes: *lag_bytes,
            },
            _ => current.clone(),
        },
        TransitionStatus::Done => CommandStatus::Done,
        TransitionStatus::Failed { error } => CommandStatus::Failed {
            error: error.clone(),
        },
        TransitionStatus::Refused { reason } if reason.starts_with("stale epoch") => {
            // Sent by a deposed leader and refused: this leader sends it again.
            current.clone()
        }
        TransitionStatus::Refused { reason } => CommandStatus::Failed {
            error: format!("refused: {reason}"),
        },
    };
    let changed =
        *current != next && !matches!(current, CommandStatus::Done | CommandStatus::Failed { .. });
    if changed {
        *current = next;
        entry.dirty = true;
    }
    if final_report {
        // Acknowledged once the plan is persisted (the next persist round writes it, or
        // wrote it already if this report is a repeat).
        let state = inner.nodes.entry(node.to_string()).or_default();
        state.acks_pending.push(report.id.clone());
    }
    changed
}

/// Commands handed to one agent per sync. An agent given thousands at once falls behind its
/// own heartbeat while journaling them (measured: 2000 at once got a healthy agent declared
/// dead at a 100 ms heartbeat); the rest follow on its next syncs, which come as soon as
/// transitions finish.
pub const COMMANDS_PER_SYNC_MAX: usize = 64;

/// The commands for `node` that are sent and not finished (at most
/// [`COMMANDS_PER_SYNC_MAX`], oldest first), stamped with this leader's epoch.
fn commands_for(inner: &Inner, node: &str, epoch: i64) -> Vec<Command> {
    let mut out = Vec::new();
    for entry in inner.plans.values() {
        for (s, c) in crate::dispatch::in_flight(&entry.record) {
            let record = &entry.record.steps[s].commands[c];
            if record.node != node {
                continue;
            }
            if out.len() == COMMANDS_PER_SYNC_MAX {
                return out;
            }
            let mut action = record.action.clone();
            match &mut action {
                Action::Replicate { source, .. } => {
                    if !readable(inner, &source.node, &record.replica) {
                        // A copy reads from a replica that is up: one the plan has just started
                        // (or one restarting) is waited for, and its endpoint is known then.
                        continue;
                    }
                    *source = source_of(inner, &source.node, &record.replica);
                }
                Action::Promote { handoff, .. } => {
                    *handoff = entry.record.steps[s]
                        .commands
                        .iter()
                        .find(|c| {
                            matches!(c.action, Action::Demote { .. }) && c.replica == record.replica
                        })
                        .and_then(|demoted| demoted.handoff.clone());
                }
                _ => {}
            }
            out.push(Command {
                id: entry.record.transition_id(s as u32, c),
                epoch,
                replica: record.replica.clone(),
                action,
                product: record.product.clone(),
            });
        }
    }
    out
}

/// Whether `node`'s agent last reported `replica` up (serving, or starting — a standby
/// waiting for its leader can be copied from) and, if its product has endpoints, where.
fn readable(inner: &Inner, node: &str, replica: &ReplicaKey) -> bool {
    inner.nodes.get(node).is_some_and(|n| {
        n.replicas.iter().any(|r| {
            &r.replica == replica
                && r.health != meridian_wire::Health::Failing
                && (r.endpoint.is_some() || r.health == meridian_wire::Health::Serving)
        })
    })
}

/// `replica` on `node`, with the addresses its agent last reported: the agent's data
/// address and the replica's own endpoint.
fn source_of(inner: &Inner, node: &str, replica: &ReplicaKey) -> Source {
    let state = inner.nodes.get(node);
    Source {
        node: node.to_string(),
        address: state
            .and_then(|n| n.registration.as_ref())
            .and_then(|r| r.data_address.clone()),
        endpoint: state
            .and_then(|n| n.replicas.iter().find(|r| &r.replica == replica))
            .and_then(|r| r.endpoint.clone()),
    }
}

/// The serving leader of each partition `node` reports a non-leader replica of, on another
/// live node.
fn leader_hints(inner: &Inner, node: &str, request: &SyncRequest) -> Vec<LeaderHint> {
    request
        .replicas
        .iter()
        .filter(|r| !inner.is_leader_state(&r.product, &r.state))
        .filter_map(|r| {
            let claim = inner.leaders.leader(&r.replica, |n| {
                n != node && inner.liveness_of(n) == crate::detector::Liveness::Alive
            })?;
            Some(LeaderHint {
                replica: r.replica.clone(),
                leader: Source {
                    node: claim.node.clone(),
                    address: inner
                        .nodes
                        .get(&claim.node)
                        .and_then(|n| n.registration.as_ref())
                        .and_then(|reg| reg.data_address.clone()),
                    endpoint: claim.endpoint.clone(),
                },
            })
        })
        .collect()
}

/// For tests and the API: a plan's command by transition id.
pub fn find_command<'p>(
    plan: &'p PlanRecord,
    id: &str,
) -> Option<&'p crate::records::CommandRecord> {
    let (plan_id, step, command) = parse_id(id)?;
    (plan_id == plan.id).then_some(())?;
    plan.steps.get(step)?.commands.get(command)
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn transition_ids_parse_back() {
        assert_eq!(parse_id("plan-12/step-3/1"), Some((12, 3, 1)));
        assert_eq!(parse_id("plan-x/step-3/1"), None);
        assert_eq!(parse_id("bogus"), None);
    }
}
