//! Shedding excess: the first phase of a rebalance.
//!
//! In rounds, the peak is shaved: every domain whose pressure (utilization over its level's
//! balance target) is above a ceiling a little below the current peak gives up just enough
//! replicas to get under it — from its hottest nodes, the fewest bytes per unit of excess heat
//! first — and the shed replicas are placed again by the same search a full solve uses, which
//! still prefers each replica's current node. A round that does not lower the peak is undone
//! and ends the shedding; the local search (`rebalance`) then polishes. Only the final
//! difference from the current placement is data that moves: a shed replica that lands back
//! home moves nothing.

use meridian_model::{DomainId, NodeId, StateId};

use crate::context::Context;
use crate::solve::{place_slots, Options};
use crate::state::State;

/// Upper bound on the share of replicas one round may lift.
const SHED_SHARE_MAX: f64 = 0.25;
/// Each round's ceiling is this fraction below the current peak pressure.
const SHED_STEP: f64 = 0.04;
/// Upper bound on rounds.
const SHED_ROUNDS_MAX: usize = 64;

/// The highest pressure of any domain in any dimension, and the excess potential: the sum
/// over domains and dimensions of (pressure − goal)² where pressure exceeds `goal`. A round is
/// kept when it lowers the potential — it may leave an unfixable peak (a pinned replica, a
/// pool with no room) where it was while lowering everything else.
pub fn pressure_summary(context: &Context, state: &State, goal: f64) -> (f64, f64) {
    let mut peak = 0.0f64;
    let mut potential = 0.0;
    for domain in context.fleet.topology.domain_ids() {
        for dim in 0..context.dims {
            let pressure =
                context.pressure(domain, dim, state.used[domain.index() * context.dims + dim]);
            peak = peak.max(pressure);
            if pressure > goal {
                potential += (pressure - goal) * (pressure - goal);
            }
        }
    }
    (peak, potential)
}

/// Per domain and dimension, the load above target: `(domain, dim, excess)`, worst first.
fn over_target(context: &Context, state: &State, ceiling: f64) -> Vec<(DomainId, usize, f64)> {
    let fleet = context.fleet;
    let mut over = Vec::new();
    for domain in fleet.topology.domain_ids() {
        let level = fleet.topology.domain(domain).level;
        for dim in 0..context.dims {
            let limit = fleet.limit[domain.index() * context.dims + dim];
            if !limit.is_finite() || limit <= 0.0 {
                continue;
            }
            let target = limit * context.balance_target(level, dim) * ceiling;
            let used = state.used[domain.index() * context.dims + dim];
            if used > target {
                over.push((domain, dim, used - target));
            }
        }
    }
    over.sort_by(|a, b| {
        let relative =
            |e: &(DomainId, usize, f64)| e.2 / fleet.limit[e.0.index() * context.dims + e.1];
        relative(b)
            .total_cmp(&relative(a))
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    over
}

/// Lifts replicas off over-target domains. Returns the lifted slots with where they were.
fn lift(
    context: &Context,
    state: &mut State,
    node_slots: &mut [Vec<u32>],
    ceiling: f64,
) -> Vec<(usize, NodeId, StateId)> {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let lift_max = (fleet.slot_count as f64 * SHED_SHARE_MAX) as usize;
    let mut lifted = Vec::new();
    for (domain, dim, _) in over_target(context, state, ceiling) {
        let level = topology.domain(domain).level;
        let limit = fleet.limit[domain.index() * context.dims + dim];
        let target = limit * context.balance_target(level, dim) * ceiling;
        let mut nodes: Vec<NodeId> = context.nodes_under(domain).to_vec();
        let load = |state: &State, n: NodeId| {
            let d = topology.node_domain(n);
            let node_limit = fleet.limit[d.index() * context.dims + dim];
            if node_limit > 0.0 {
                state.used[d.index() * context.dims + dim] / node_limit
            } else {
                0.0
            }
        };
        nodes.sort_by(|a, b| load(state, *b).total_cmp(&load(state, *a)).then(a.cmp(b)));
        'nodes: for node in nodes {
            let mut slots: Vec<(f64, usize)> = node_slots[node.index()]
                .iter()
                .map(|&s| s as usize)
                .filter(|&slot| !context.fleet.slot_pinned_on(slot, node))
                .filter_map(|slot| {
                    let group = fleet.group(state.group_of(slot));
                    let heat = group.heat[state.slots[slot].state.index()][dim];
                    (heat > 0.0).then(|| (group.size_gib / heat, slot))
                })
                .collect();
            slots.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (_, slot) in slots {
                if state.used[domain.index() * context.dims + dim] <= target {
                    break 'nodes;
                }
                if lifted.len() >= lift_max {
                    return lifted;
                }
                let replica_state = state.slots[slot].state;
                state.unplace(context, slot);
                node_slots[node.index()].retain(|&s| s as usize != slot);
                lifted.push((slot, node, replica_state));
            }
        }
    }
    lifted
}

/// Sheds excess in rounds (see the module documentation). If a lifted replica finds no node,
/// or the round does not lower the peak, the round's replicas all go back where they were
/// (they fit there before), so shedding never loses a replica or makes the peak worse.
/// Returns how many replicas were lifted in rounds that were kept.
pub fn shed_excess(
    context: &Context,
    state: &mut State,
    current: impl Fn(usize) -> Option<NodeId>,
    options: &Options,
) -> usize {
    let fleet = context.fleet;
    let mut node_slots: Vec<Vec<u32>> = vec![Vec::new(); fleet.topology.nodes.len()];
    for (slot, s) in state.slots.iter().enumerate() {
        if let Some(node) = s.node() {
            node_slots[node.index()].push(slot as u32);
        }
    }
    let goal = 1.0 + options.tolerance;
    let (start_peak, mut potential) = pressure_summary(context, state, goal);
    let mut peak = start_peak;
    let mut kept = 0;
    for round in 0..SHED_ROUNDS_MAX {
        let ceiling = (start_peak * (1.0 - SHED_STEP).powi(round as i32 + 1)).max(goal);
        let lifted = lift(context, state, &mut node_slots, ceiling);
        if !lifted.is_empty() {
            let slots: Vec<usize> = lifted.iter().map(|l| l.0).collect();
            let (_, failed) = place_slots(context, state, slots.clone(), &current, options.seed);
            let (peak_after, after) = pressure_summary(context, state, goal);
            // Kept only if the excess shrank and no domain rose above the old peak.
            if failed > 0 || after >= potential || peak_after > peak + 1e-12 {
                for &slot in &slots {
                    state.unplace(context, slot);
                }
                for &(slot, node, replica_state) in &lifted {
                    state.place(context, slot, node, replica_state);
                    node_slots[node.index()].push(slot as u32);
                }
            } else {
                for &slot in &slots {
                    if let Some(node) = state.slots[slot].node() {
                        node_slots[node.index()].push(slot as u32);
                    }
                }
                kept += lifted.len();
                potential = after;
                peak = peak_after;
            }
        }
        if ceiling <= goal {
            break;
        }
    }
    kept
}
