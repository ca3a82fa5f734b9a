//! Explain: why a replica sits where it does — the constraints that bind it, the objective
//! terms of its node, and the runner-up node and what it lost on.

use std::collections::BTreeMap;

use serde::Serialize;

use meridian_model::{Fleet, NodeId, Placement};

use crate::context::Context;
use crate::diagnose::describe;
use crate::score::Score;
use crate::search::{score_node, Request};
use crate::state::State;

#[derive(Debug, Clone, Serialize)]
pub struct DomainLoad {
    pub domain: String,
    pub level: String,
    /// The replica's dimensions: (name, utilization of the limit with the replica, limit).
    pub utilization: Vec<(String, f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub node: String,
    pub score: Score,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub group: String,
    pub partition: u32,
    pub state: String,
    pub node: String,
    pub score: Score,
    pub total: f64,
    /// Every domain the replica loads, with its utilization in the replica's dimensions.
    pub chain: Vec<DomainLoad>,
    /// The tightest limits along the chain, tightest first.
    pub binding: Vec<String>,
    /// Nodes ruled out, by constraint, with one example each.
    pub rejected_by: BTreeMap<String, (usize, String)>,
    pub feasible_alternatives: usize,
    pub runner_up: Option<Candidate>,
    pub why_not_runner_up: String,
}

/// Explains replica `index` of `partition` of `group` in `placement`. Scores are evaluated on
/// the final placement with this replica lifted out, exactly as the search scores a node.
pub fn explain(
    fleet: &Fleet,
    placement: &Placement,
    group: &str,
    partition: u32,
    index: usize,
) -> Result<Explanation, String> {
    let group_id = fleet
        .group_by_name(group)
        .ok_or_else(|| format!("unknown group `{group}`"))?;
    let g = fleet.group(group_id);
    if partition >= g.partitions {
        return Err(format!(
            "group `{group}` has partitions 0..{}",
            g.partitions
        ));
    }
    if index >= g.replicas_per_partition() {
        return Err(format!(
            "a partition of `{group}` has replicas 0..{}",
            g.replicas_per_partition()
        ));
    }
    let slot = g.partition_slot(partition) + index;
    let context = Context::new(fleet);
    let mut state = State::new(&context, placement.slots.clone());
    let replica_state = state.slots[slot].state;
    let node = state
        .unplace(&context, slot)
        .ok_or_else(|| format!("{group}/{partition} replica {index} is not placed"))?;
    let request = Request::for_slot(&context, &state, slot, replica_state, Some(node));
    let model = fleet.product_of(group_id);
    let score = score_node(&context, &state, &request, node).map_err(|r| {
        format!(
            "the replica's own node breaks a constraint: {}",
            describe(&context, &r)
        )
    })?;
    let mut rejected_by: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut ranked: Vec<(f64, NodeId, Score)> = Vec::new();
    for candidate in fleet.topology.node_ids() {
        match score_node(&context, &state, &request, candidate) {
            Ok(s) if candidate != node => ranked.push((s.total(), candidate, s)),
            Ok(_) => {}
            Err(rejection) => {
                let entry = rejected_by
                    .entry(rejection.constraint().to_string())
                    .or_insert((
                        0,
                        format!(
                            "{}: {}",
                            fleet.topology.node_name(candidate),
                            describe(&context, &rejection)
                        ),
                    ));
                entry.0 += 1;
            }
        }
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let runner_up = ranked.first().map(|(total, n, s)| Candidate {
        node: fleet.topology.node_name(*n).to_string(),
        score: *s,
        total: *total,
    });
    let why = why_not(&score, runner_up.as_ref());
    let chain = chain_loads(&context, &state, &request, node);
    let binding = binding(&chain);
    Ok(Explanation {
        group: group.to_string(),
        partition,
        state: model.state_name(replica_state).to_string(),
        node: fleet.topology.node_name(node).to_string(),
        total: score.total(),
        score,
        chain,
        binding,
        rejected_by,
        feasible_alternatives: ranked.len(),
        runner_up,
        why_not_runner_up: why,
    })
}

fn chain_loads(
    context: &Context,
    state: &State,
    request: &Request,
    node: NodeId,
) -> Vec<DomainLoad> {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    topology
        .chain(node)
        .iter()
        .map(|&domain| {
            let base = domain.index() * context.dims;
            let utilization = request
                .heat
                .iter()
                .filter(|(x, _)| fleet.limit[base + x].is_finite())
                .map(|&(x, h)| {
                    let limit = fleet.limit[base + x];
                    let after = state.used[base + x] + h;
                    (
                        fleet.dims.names()[x].clone(),
                        if limit > 0.0 {
                            after / limit
                        } else {
                            f64::INFINITY
                        },
                        limit,
                    )
                })
                .collect();
            DomainLoad {
                domain: topology.domain(domain).name.clone(),
                level: topology
                    .level_name(topology.domain(domain).level)
                    .to_string(),
                utilization,
            }
        })
        .collect()
}

fn binding(chain: &[DomainLoad]) -> Vec<String> {
    let mut all: Vec<(f64, String)> = chain
        .iter()
        .flat_map(|d| {
            d.utilization.iter().map(move |(dim, u, limit)| {
                (
                    *u,
                    format!(
                        "{} `{}` {dim}: {:.1}% of limit {limit:.1}",
                        d.level,
                        d.domain,
                        u * 100.0
                    ),
                )
            })
        })
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(3).map(|(_, s)| s).collect()
}

fn why_not(chosen: &Score, runner_up: Option<&Candidate>) -> String {
    let Some(other) = runner_up else {
        return "no other node satisfies every hard constraint".to_string();
    };
    let terms = [
        ("balance", other.score.balance - chosen.balance),
        ("gravity", other.score.gravity - chosen.gravity),
        ("cost", other.score.cost - chosen.cost),
        ("movement", other.score.movement - chosen.movement),
        ("affinity", other.score.affinity - chosen.affinity),
    ];
    let margin = other.total - chosen.total();
    let worst = terms
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("balance", 0.0));
    if margin > 0.0 {
        format!(
            "`{}` scores {:.4} more in total, mostly on {} (+{:.4})",
            other.node, margin, worst.0, worst.1
        )
    } else if margin == 0.0 {
        format!(
            "`{}` ties; the seeded tie-break chose this node",
            other.node
        )
    } else {
        format!("`{}` now scores {:.4} less: loads changed after this replica was placed; a rebalance would weigh moving it (movement costs {:.4})", other.node, -margin, other.score.movement)
    }
}
