//! Rebalance: lower the peak utilization at every level toward its lower bound, moving as
//! little data as possible.
//!
//! Repeatedly take the domain and dimension furthest above its level's lower bound, and relieve
//! it with the cheapest change that lowers the peak: first a leader hand-off (swap roles with
//! a follower elsewhere; no data moves), then a replica move, cheapest bytes per unit of heat
//! first. Stop when every domain is within tolerance of its bound or nothing helps.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use meridian_model::placement::Slot;
use meridian_model::{DomainId, NodeId, StateId};

use crate::context::Context;
use crate::search::{best_node, mix, Request};
use crate::solve::Options;
use crate::state::State;

/// Nodes of a hot domain tried per relief attempt, and replicas per node.
const HOT_NODES_TRIED_MAX: usize = 4;
const REPLICAS_TRIED_MAX: usize = 8;
/// Hot spots that could not be relieved, one after another, before the local search stops:
/// past that point it is spending its time where nothing can be done.
const FAILURES_IN_A_ROW_MAX: usize = 256;

pub struct Outcome {
    pub moves: usize,
    pub swaps: usize,
}

#[derive(PartialEq)]
struct Hot {
    ratio: f64,
    domain: DomainId,
    dim: usize,
}
impl Eq for Hot {}
impl PartialOrd for Hot {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hot {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ratio
            .total_cmp(&other.ratio)
            .then(other.domain.cmp(&self.domain))
            .then(other.dim.cmp(&self.dim))
    }
}

/// Pressure of `domain` in `dim` as it stands.
fn ratio(context: &Context, state: &State, domain: DomainId, dim: usize) -> f64 {
    context.pressure(domain, dim, state.used[domain.index() * context.dims + dim])
}

/// Highest pressure over a node's chain, in the replica's dimensions, if `heat` were added.
fn chain_ratio_with(context: &Context, state: &State, node: NodeId, heat: &[f64]) -> f64 {
    let mut worst = 0.0f64;
    for &domain in context.fleet.topology.chain(node) {
        for (x, &h) in heat.iter().enumerate() {
            if h != 0.0 {
                worst = worst.max(context.pressure(
                    domain,
                    x,
                    state.used[domain.index() * context.dims + x] + h,
                ));
            }
        }
    }
    worst
}

/// Queues every dimension of `domain` whose pressure is above `goal`.
fn queue_if_hot(
    context: &Context,
    state: &State,
    heap: &mut BinaryHeap<Hot>,
    domain: DomainId,
    goal: f64,
) {
    for dim in 0..context.dims {
        let ratio = ratio(context, state, domain, dim);
        if ratio > goal {
            heap.push(Hot { ratio, domain, dim });
        }
    }
}

pub fn rebalance(
    context: &Context,
    state: &mut State,
    current: &[Slot],
    options: &Options,
) -> Outcome {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let mut node_slots: Vec<Vec<u32>> = vec![Vec::new(); topology.nodes.len()];
    for (slot, s) in state.slots.iter().enumerate() {
        if let Some(node) = s.node() {
            node_slots[node.index()].push(slot as u32);
        }
    }
    let goal = 1.0 + options.tolerance;
    let mut heap = BinaryHeap::new();
    for domain in topology.domain_ids() {
        queue_if_hot(context, state, &mut heap, domain, goal);
    }
    let mut outcome = Outcome { moves: 0, swaps: 0 };
    let mut stuck: BTreeSet<(DomainId, usize)> = BTreeSet::new();
    let iterations_max = options.moves_max.saturating_mul(4).max(16);
    let mut failures_in_a_row = 0usize;
    for _ in 0..iterations_max {
        let Some(hot) = heap.pop() else { break };
        let now = ratio(context, state, hot.domain, hot.dim);
        if now <= 1.0 + options.tolerance || stuck.contains(&(hot.domain, hot.dim)) {
            continue;
        }
        if now + 1e-12 < hot.ratio {
            heap.push(Hot { ratio: now, ..hot });
            continue;
        }
        if outcome.moves >= options.moves_max {
            break;
        }
        match relieve(context, state, &mut node_slots, current, &hot, now, options) {
            Some((changed, moved)) => {
                failures_in_a_row = 0;
                if moved {
                    outcome.moves += 1;
                } else {
                    outcome.swaps += 1;
                }
                // The relieved domain may still be hot: it goes back in the queue, and so does
                // every domain that took load.
                queue_if_hot(context, state, &mut heap, hot.domain, goal);
                for node in changed {
                    for &domain in topology.chain(node) {
                        queue_if_hot(context, state, &mut heap, domain, goal);
                    }
                }
            }
            None => {
                stuck.insert((hot.domain, hot.dim));
                failures_in_a_row += 1;
                if failures_in_a_row >= FAILURES_IN_A_ROW_MAX {
                    break;
                }
            }
        }
    }
    outcome
}

/// Tries one change that lowers `hot`'s ratio without raising any other above `now`.
/// Returns the nodes whose load grew and whether data moved.
fn relieve(
    context: &Context,
    state: &mut State,
    node_slots: &mut [Vec<u32>],
    current: &[Slot],
    hot: &Hot,
    now: f64,
    options: &Options,
) -> Option<(Vec<NodeId>, bool)> {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let mut nodes: Vec<NodeId> = context.nodes_under(hot.domain).to_vec();
    let load = |n: &NodeId| state.used[topology.node_domain(*n).index() * context.dims + hot.dim];
    let hottest_first = |a: &NodeId, b: &NodeId| load(b).total_cmp(&load(a)).then(a.cmp(b));
    if nodes.len() > HOT_NODES_TRIED_MAX {
        nodes.select_nth_unstable_by(HOT_NODES_TRIED_MAX, hottest_first);
        nodes.truncate(HOT_NODES_TRIED_MAX);
    }
    nodes.sort_by(hottest_first);
    // Hand-offs first on every hot node: they move no data and cost no search.
    for &node in &nodes {
        if let Some(partner) = try_leader_swap(context, state, node_slots, node, hot, now) {
            return Some((vec![partner], false));
        }
    }
    for &node in &nodes {
        if let Some(target) = try_move(context, state, node_slots, current, node, hot, now, options)
        {
            return Some((vec![target], true));
        }
    }
    None
}

/// Replicas on `node` that carry heat in `dim`, cheapest to move (bytes per heat) first.
fn candidates(
    context: &Context,
    state: &State,
    node_slots: &[Vec<u32>],
    node: NodeId,
    dim: usize,
) -> Vec<usize> {
    let fleet = context.fleet;
    let mut list: Vec<(f64, usize)> = node_slots[node.index()]
        .iter()
        .map(|&s| s as usize)
        .filter_map(|slot| {
            let group = fleet.group(state.group_of(slot));
            let heat = group.heat[state.slots[slot].state.index()][dim];
            (heat > 0.0 && !context.fleet.slot_pinned_on(slot, node))
                .then(|| (group.size_gib / heat, slot))
        })
        .collect();
    list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    // Replicas of one group in one state are interchangeable here: if the cheapest cannot
    // move, neither can the others. Trying one per kind reaches the kinds that can (e.g. a
    // group free to use GPU nodes among many confined to storage nodes).
    let mut kinds: Vec<(meridian_model::GroupId, StateId)> = Vec::new();
    let mut chosen = Vec::new();
    for (_, slot) in list {
        let kind = (state.group_of(slot), state.slots[slot].state);
        if !kinds.contains(&kind) {
            kinds.push(kind);
            chosen.push(slot);
            if chosen.len() == REPLICAS_TRIED_MAX {
                break;
            }
        }
    }
    chosen
}

fn try_leader_swap(
    context: &Context,
    state: &mut State,
    node_slots: &[Vec<u32>],
    node: NodeId,
    hot: &Hot,
    now: f64,
) -> Option<NodeId> {
    let fleet = context.fleet;
    for slot in candidates(context, state, node_slots, node, hot.dim) {
        let group = fleet.group(state.group_of(slot));
        let leader = fleet.products[group.product.index()].leader;
        let leader_state = state.slots[slot].state;
        if leader != Some(leader_state) {
            continue;
        }
        let (_, partition, _) = fleet.locate_slot(slot);
        let first = group.partition_slot(partition);
        for sibling in first..first + group.replicas_per_partition() {
            let Some(other) = state.node_of(sibling) else {
                continue;
            };
            if sibling == slot
                || context.fleet.slot_pinned_on(sibling, other)
                || fleet.topology.chain(other).contains(&hot.domain)
                || state.node_closed(context, other)
            {
                continue;
            }
            let follower_state = state.slots[sibling].state;
            let delta: Vec<f64> = group.heat[leader_state.index()]
                .iter()
                .zip(&group.heat[follower_state.index()])
                .map(|(l, f)| (l - f).max(0.0))
                .collect();
            if delta[hot.dim] <= 0.0
                || !fits(context, state, other, &delta)
                || chain_ratio_with(context, state, other, &delta) >= now - 1e-9
            {
                continue;
            }
            state.set_state(context, slot, follower_state);
            state.set_state(context, sibling, leader_state);
            return Some(other);
        }
    }
    None
}

fn fits(context: &Context, state: &State, node: NodeId, heat: &[f64]) -> bool {
    let fleet = context.fleet;
    fleet.topology.chain(node).iter().all(|domain| {
        let base = domain.index() * context.dims;
        heat.iter().enumerate().all(|(x, &h)| {
            h == 0.0 || state.used[base + x] + h <= fleet.limit[base + x] * (1.0 + 1e-12)
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn try_move(
    context: &Context,
    state: &mut State,
    node_slots: &mut [Vec<u32>],
    current: &[Slot],
    node: NodeId,
    hot: &Hot,
    now: f64,
    options: &Options,
) -> Option<NodeId> {
    let fleet = context.fleet;
    let seed = options.seed;
    for slot in candidates(context, state, node_slots, node, hot.dim) {
        let replica_state: StateId = state.slots[slot].state;
        let heat = fleet.group(state.group_of(slot)).heat[replica_state.index()].clone();
        state.unplace(context, slot);
        let mut request =
            Request::for_slot(context, state, slot, replica_state, current[slot].node());
        request.exclude = Some(hot.domain);
        let found = best_node(context, state, &request, seed ^ mix(slot as u64 ^ 0xA5A5));
        match found {
            Some((target, _)) if chain_ratio_with(context, state, target, &heat) < now - 1e-9 => {
                state.place(context, slot, target, replica_state);
                node_slots[node.index()].retain(|&s| s as usize != slot);
                node_slots[target.index()].push(slot as u32);
                return Some(target);
            }
            _ => state.place(context, slot, node, replica_state),
        }
    }
    None
}
