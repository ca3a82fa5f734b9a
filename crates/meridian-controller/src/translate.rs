//! A planner's plan as the commands agents execute.
//!
//! Every planner step becomes one [`StepRecord`] with its commands in the order they must run:
//! an atomic leader hand-off becomes "demote the old leader" then "promote the new one", so the
//! partition never has two leaders (invariant 3); the promotion is only sent once the
//! demotion is reported done.

use meridian_model::{Fleet, GroupId, NodeId, StateId};
use meridian_planner::{Action as PlanAction, Plan};
use meridian_wire::{Action, ReplicaKey, Source};

use crate::records::{CommandRecord, CommandStatus, StepRecord};

pub fn steps(fleet: &Fleet, plan: &Plan) -> Vec<StepRecord> {
    let index_of: std::collections::HashMap<u32, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, i))
        .collect();
    plan.steps
        .iter()
        .map(|step| StepRecord {
            id: step.id,
            description: meridian_planner::doc::describe_step(fleet, step),
            start_s: step.start - plan.start,
            end_s: step.end - plan.start,
            after: step
                .reason
                .after
                .iter()
                .filter_map(|id| index_of.get(id).copied())
                .collect(),
            commands: commands(fleet, step.group, step.partition, &step.action),
        })
        .collect()
}

fn commands(
    fleet: &Fleet,
    group: GroupId,
    partition: u32,
    action: &PlanAction,
) -> Vec<CommandRecord> {
    let model = fleet.product_of(group);
    let state = |s: StateId| model.state_name(s).to_string();
    let leader = model.leader;
    let command = |node: NodeId, action: Action| CommandRecord {
        handoff: None,
        node: fleet.topology.node_name(node).to_string(),
        product: model.name.clone(),
        replica: ReplicaKey {
            group: fleet.group(group).name.clone(),
            partition,
        },
        action,
        status: CommandStatus::Pending,
    };
    match action {
        PlanAction::Replicate {
            source,
            target,
            state: arrival,
            bytes,
            rate,
            ..
        } => vec![command(
            *target,
            Action::Replicate {
                state: state(*arrival),
                source: Source {
                    node: fleet.topology.node_name(*source).to_string(),
                    address: None,
                    endpoint: None,
                },
                bytes: bytes.max(0.0).round() as u64,
                rate_mbps: *rate,
            },
        )],
        PlanAction::Start { node, state: s } => {
            vec![command(*node, Action::Start { state: state(*s) })]
        }
        PlanAction::Transition { node, from, to } => {
            let promotes = Some(*to) == leader;
            let (from, to) = (state(*from), state(*to));
            let action = if promotes {
                Action::Promote {
                    from,
                    to,
                    handoff: None,
                }
            } else {
                Action::Demote { from, to }
            };
            vec![command(*node, action)]
        }
        PlanAction::HandOff {
            from,
            to,
            demote_to,
            promote_from,
        } => {
            let leader_name = leader.map(state).unwrap_or_default();
            vec![
                command(
                    *from,
                    Action::Demote {
                        from: leader_name.clone(),
                        to: state(*demote_to),
                    },
                ),
                command(
                    *to,
                    Action::Promote {
                        from: state(*promote_from),
                        to: leader_name,
                        handoff: None,
                    },
                ),
            ]
        }
        PlanAction::Drop { node, from } => {
            vec![command(*node, Action::Stop { from: state(*from) })]
        }
    }
}
