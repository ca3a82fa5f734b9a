//! From what agents report to a target and a plan: the controller's one decision, pure (no
//! clock, no IO), so a decision can be replayed from its inputs.

use meridian_model::placement::Replica;
use meridian_model::{DomainId, Fleet, NodeId, Placement};
use meridian_planner::Plan;
use meridian_solver::{Mode, Options as SolverOptions};
use meridian_wire::{Action, ReplicaStatus};

use crate::records::{CommandRecord, CommandStatus, StepRecord};

/// The fleet's nodes as the leader sees them: what live nodes run, and which nodes are down,
/// cordoned or draining (node ids in the fleet's order).
#[derive(Debug, Clone, Default)]
pub struct NodeStates {
    pub observed: Vec<(String, Vec<ReplicaStatus>)>,
    pub down: Vec<NodeId>,
    pub cordoned: Vec<NodeId>,
    pub draining: Vec<NodeId>,
}

/// What the decision is made from.
pub struct Inputs<'a> {
    pub fleet: &'a Fleet,
    /// Each live node's replicas, as its agent reported them.
    pub observed: &'a [(String, Vec<ReplicaStatus>)],
    /// Nodes gone (dead, never registered, quarantined): their replicas are lost.
    pub down: Vec<NodeId>,
    /// Nothing new lands here.
    pub cordoned: Vec<NodeId>,
    /// Everything moves off (the nodes still serve as copy sources meanwhile).
    pub draining: Vec<NodeId>,
    pub planner: meridian_planner::Options,
    pub seed: u64,
}

pub struct Proposal {
    pub current: Placement,
    pub target: Placement,
    pub plan: Plan,
    /// The plan's steps as commands, then stops of replicas the spec no longer has.
    pub steps: Vec<StepRecord>,
    /// Replicas the solver could not place, with why.
    pub unplaced: Vec<String>,
}

impl Proposal {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A replica an agent runs that the fleet has no slot for.
pub(crate) struct Orphan {
    node: String,
    status: ReplicaStatus,
    why: String,
}

pub fn propose(inputs: &Inputs) -> Proposal {
    let fleet = inputs.fleet;
    let (replicas, mut orphans) = resolve(fleet, inputs.observed, &inputs.down);
    let (current, surplus) = meridian_solver::current::to_slots(fleet, &replicas);
    orphans.extend(surplus.iter().filter_map(|r| surplus_orphan(inputs, r)));
    let node_domains = |nodes: &[NodeId]| -> Vec<DomainId> {
        nodes
            .iter()
            .map(|&n| fleet.topology.node_domain(n))
            .collect()
    };
    let mut drain = node_domains(&inputs.down);
    drain.extend(node_domains(&inputs.draining));
    let solution = meridian_solver::solve(
        fleet,
        &replicas,
        &SolverOptions {
            mode: Mode::Repair,
            seed: inputs.seed,
            // The control plane repairs and drains; heat-driven rebalancing comes with
            // forecasts (it needs measured heat to be worth its moves).
            rebalance: false,
            drain,
            cordon: node_domains(&inputs.cordoned),
            ..SolverOptions::default()
        },
    );
    let options = meridian_planner::Options {
        failed: inputs.down.clone(),
        ..inputs.planner.clone()
    };
    let plan = meridian_planner::plan(fleet, &current, &solution.placement, &options, 0.0);
    let mut steps = crate::translate::steps(fleet, &plan);
    steps.extend(cleanup_steps(&plan, steps.len(), orphans));
    let unplaced = solution
        .failures
        .iter()
        .map(|f| format!("{}/{} ({}): {}", f.group, f.partition, f.state, f.summary))
        .collect();
    Proposal {
        current,
        target: solution.placement,
        plan,
        steps,
        unplaced,
    }
}

/// Reported replicas (of nodes not in `down`) as solver replicas; those the fleet does not
/// know are orphans.
pub(crate) fn resolve(
    fleet: &Fleet,
    observed: &[(String, Vec<ReplicaStatus>)],
    down: &[NodeId],
) -> (Vec<Replica>, Vec<Orphan>) {
    let mut replicas = Vec::new();
    let mut orphans = Vec::new();
    for (node_name, statuses) in observed {
        let Some(node) = fleet.topology.node_by_name(node_name) else {
            continue;
        };
        if down.contains(&node) {
            continue;
        }
        for status in statuses {
            let orphan = |why: String| Orphan {
                node: node_name.clone(),
                status: status.clone(),
                why,
            };
            let Some(group) = fleet.group_by_name(&status.replica.group) else {
                orphans.push(orphan(format!(
                    "group `{}` is not in the fleet",
                    status.replica.group
                )));
                continue;
            };
            if status.replica.partition >= fleet.group(group).partitions {
                orphans.push(orphan(format!(
                    "group `{}` has {} partitions",
                    status.replica.group,
                    fleet.group(group).partitions
                )));
                continue;
            }
            let Some(state) = fleet.product_of(group).state(&status.state) else {
                orphans.push(orphan(format!(
                    "state `{}` is not in its product's model",
                    status.state
                )));
                continue;
            };
            replicas.push(Replica {
                group,
                partition: status.replica.partition,
                node,
                state,
            });
        }
    }
    (replicas, orphans)
}

fn surplus_orphan(inputs: &Inputs, replica: &Replica) -> Option<Orphan> {
    let fleet = inputs.fleet;
    let node = fleet.topology.node_name(replica.node);
    let group = &fleet.group(replica.group).name;
    let (_, statuses) = inputs.observed.iter().find(|(n, _)| n == node)?;
    let status = statuses
        .iter()
        .find(|s| &s.replica.group == group && s.replica.partition == replica.partition)?;
    Some(Orphan {
        node: node.to_string(),
        status: status.clone(),
        why: "more replicas than the group asks for".to_string(),
    })
}

/// Stops of orphans, after everything else (the plan may still copy from them).
fn cleanup_steps(plan: &Plan, first_index: usize, orphans: Vec<Orphan>) -> Vec<StepRecord> {
    let end_s = plan.makespan();
    orphans
        .into_iter()
        .enumerate()
        .map(|(i, orphan)| StepRecord {
            id: (first_index + i) as u32,
            description: format!(
                "stop {} on {} ({})",
                orphan.status.replica, orphan.node, orphan.why
            ),
            start_s: end_s,
            end_s,
            after: Vec::new(),
            commands: vec![CommandRecord {
                handoff: None,
                node: orphan.node,
                product: orphan.status.product.clone(),
                replica: orphan.status.replica.clone(),
                action: Action::Stop {
                    from: orphan.status.state.clone(),
                },
                status: CommandStatus::Pending,
            }],
        })
        .collect()
}
