//! The solver's entry points: full solve, incremental repair, and rebalance.

use serde::Serialize;

use meridian_model::placement::{Replica, Slot};
use meridian_model::{DomainId, Fleet, NodeId, Placement};

use crate::context::Context;
use crate::current::to_slots;
use crate::diagnose::{diagnose, Failure};
use crate::rebalance::rebalance;
use crate::repair::{all_partitions, evict_invalid, restore_leaders};
use crate::search::{best_node, mix, Request};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Place every replica from scratch; the current placement only informs the movement term.
    Full,
    /// Keep every current replica that breaks nothing; place only what is missing.
    #[default]
    Repair,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub mode: Mode,
    pub seed: u64,
    /// After placing, move replicas off domains whose utilization exceeds their level's lower
    /// bound by more than `tolerance` (a fraction of that bound).
    pub rebalance: bool,
    pub tolerance: f64,
    /// Upper bound on rebalance moves in one solve.
    pub moves_max: usize,
    /// Domains to empty (drain): no replica may stay or land under them.
    pub drain: Vec<DomainId>,
    /// Domains closed to new replicas (cordon): what runs there stays, nothing new lands.
    pub cordon: Vec<DomainId>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Repair,
            seed: 0,
            rebalance: true,
            tolerance: 0.02,
            moves_max: 1_000_000,
            drain: Vec::new(),
            cordon: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub replicas: usize,
    pub placed: usize,
    /// Replicas kept on their current node.
    pub kept: usize,
    /// Replicas that had no current node (new, or lost with a failed node).
    pub added: usize,
    /// Replicas on a node other than their current one (new copies of data).
    pub moved: usize,
    pub moved_gib: f64,
    /// Role changes without data movement (promote/demote).
    pub state_changes: usize,
    /// Of the moves, how many the rebalance made (the rest repaired something).
    pub rebalance_moves: usize,
    pub leader_swaps: usize,
    /// Current replicas dropped because they broke a constraint, by constraint.
    pub evicted: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Solution {
    #[serde(skip)]
    pub placement: Placement,
    pub stats: Stats,
    /// Replicas that could not be placed, each with the reason and what would relax it.
    pub failures: Vec<Failure>,
    /// Notes about the input (replicas on nodes that no longer exist, surplus replicas).
    pub notes: Vec<String>,
}

impl Solution {
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Bound on failures reported in detail; the rest are counted.
pub const FAILURES_REPORTED_MAX: usize = 20;

/// Solves `fleet` from `current` (replicas as they run now; may be empty).
pub fn solve(fleet: &Fleet, current: &[Replica], options: &Options) -> Solution {
    let context = Context::new(fleet);
    let (current_slots, surplus) = to_slots(fleet, current);
    let mut notes: Vec<String> = surplus
        .iter()
        .map(|r| {
            format!(
                "{}/{}: surplus replica on `{}` will be dropped",
                fleet.group(r.group).name,
                r.partition,
                fleet.topology.node_name(r.node)
            )
        })
        .collect();
    let mut stats = Stats {
        replicas: fleet.slot_count,
        ..Stats::default()
    };
    let mut state = State::new(&context, Placement::empty(fleet).slots);
    for &domain in &options.drain {
        state.close(domain);
    }
    if options.mode == Mode::Repair {
        stats.evicted = evict_invalid(&context, &mut state, &current_slots.slots);
        restore_leaders(&context, &mut state, &all_partitions(&context));
    }
    // Closed only now, so the replicas already there were kept above.
    for &domain in &options.cordon {
        state.close(domain);
    }
    let unplaced: Vec<usize> = (0..state.slots.len())
        .filter(|&s| state.slots[s].node().is_none())
        .collect();
    let current_nodes = |slot: usize| current_slots.slots[slot].node();
    let (failures, failed_count) =
        place_slots(&context, &mut state, unplaced, current_nodes, options.seed);
    if failed_count > failures.len() {
        notes.push(format!(
            "{} more replicas could not be placed; the first {} are detailed",
            failed_count - failures.len(),
            failures.len()
        ));
    }
    if options.rebalance && failures.is_empty() {
        // A full solve is already balanced by construction; shedding is for placements that
        // grew unbalanced (a skewed start, a fleet that changed under them).
        if options.mode == Mode::Repair {
            crate::shed::shed_excess(&context, &mut state, current_nodes, options);
        }
        let outcome = rebalance(&context, &mut state, &current_slots.slots, options);
        crate::settle::return_home(&context, &mut state, &current_slots.slots);
        stats.rebalance_moves = outcome.moves;
        stats.leader_swaps = outcome.swaps;
    }
    fill_stats(&context, &state, &current_slots.slots, &mut stats);
    Solution {
        placement: Placement { slots: state.slots },
        stats,
        failures,
        notes,
    }
}

/// Places `slots` hardest first (see [`placement_order`]), each on its best node. Returns the
/// detailed failures (at most `FAILURES_REPORTED_MAX`) and how many slots failed in all.
pub fn place_slots(
    context: &Context,
    state: &mut State,
    slots: Vec<usize>,
    current: impl Fn(usize) -> Option<NodeId>,
    seed: u64,
) -> (Vec<Failure>, usize) {
    let mut failures = Vec::new();
    let mut failed_count = 0usize;
    for slot in placement_order(context, state, slots) {
        let wanted = state.slots[slot].state;
        if let Some(pinned) = pinned_node(context, state, slot) {
            place_pinned(
                context,
                state,
                slot,
                pinned,
                &mut failures,
                &mut failed_count,
            );
            continue;
        }
        let request = Request::for_slot(context, state, slot, wanted, current(slot));
        match best_node(context, state, &request, seed ^ mix(slot as u64)) {
            Some((node, _)) => state.place(context, slot, node, wanted),
            None => {
                failed_count += 1;
                if failures.len() < FAILURES_REPORTED_MAX {
                    failures.push(diagnose(context, state, &request, slot));
                }
            }
        }
    }
    (failures, failed_count)
}

fn fill_stats(context: &Context, state: &State, current: &[Slot], stats: &mut Stats) {
    for (slot, now) in state.slots.iter().enumerate() {
        let Some(node) = now.node() else { continue };
        stats.placed += 1;
        let group = context.fleet.group(state.group_of(slot));
        match current[slot].node() {
            Some(before) if before == node => {
                stats.kept += 1;
                if current[slot].state != now.state {
                    stats.state_changes += 1;
                }
            }
            Some(_) => {
                stats.moved += 1;
                stats.moved_gib += group.size_gib;
            }
            None => stats.added += 1,
        }
    }
}

/// Unplaced slots, hardest first: pinned, then partitions with the fewest live replicas
/// (restore redundancy first), then groups with the fewest eligible nodes, then the hottest
/// replicas relative to an average node (first-fit-decreasing), then slot order.
fn placement_order(context: &Context, state: &State, slots: Vec<usize>) -> Vec<usize> {
    let fleet = context.fleet;
    let node_count = fleet.topology.nodes.len().max(1) as f64;
    let mut mean_limit = vec![0.0; context.dims];
    for node in fleet.topology.node_ids() {
        for (x, value) in fleet
            .limit_of(fleet.topology.node_domain(node))
            .iter()
            .enumerate()
        {
            mean_limit[x] += value / node_count;
        }
    }
    let mut keys: Vec<(u8, u32, u32, i64, usize)> = Vec::new();
    for slot in slots {
        let group_id = state.group_of(slot);
        let group = fleet.group(group_id);
        let (_, partition, _) = fleet.locate_slot(slot);
        let first = group.partition_slot(partition);
        let live = (first..first + group.replicas_per_partition())
            .filter(|&s| state.slots[s].node().is_some())
            .count() as u32;
        let pinned = u8::from(group.pins.iter().all(|p| p.partition != partition));
        let eligible: u32 = context
            .roots
            .iter()
            .map(|r| context.eligible_under(group_id, *r))
            .sum();
        let heat = &group.heat[state.slots[slot].state.index()];
        let relative = heat
            .iter()
            .zip(&mean_limit)
            .filter(|(_, l)| **l > 0.0)
            .map(|(h, l)| h / l)
            .fold(0.0, f64::max);
        keys.push((pinned, live, eligible, -(relative * 1e9) as i64, slot));
    }
    keys.sort_unstable();
    keys.into_iter().map(|k| k.4).collect()
}

/// The node a pin holds for `slot`, if the partition has a pin not yet honored.
fn pinned_node(context: &Context, state: &State, slot: usize) -> Option<NodeId> {
    let fleet = context.fleet;
    let (group_id, partition, _) = fleet.locate_slot(slot);
    let group = fleet.group(group_id);
    let first = group.partition_slot(partition);
    let siblings = first..first + group.replicas_per_partition();
    group
        .pins
        .iter()
        .filter(|pin| {
            pin.partition == partition && pin.state.is_none_or(|s| s == state.slots[slot].state)
        })
        .find(|pin| !siblings.clone().any(|s| state.slots[s].node == pin.node.0))
        .map(|pin| pin.node)
}

fn place_pinned(
    context: &Context,
    state: &mut State,
    slot: usize,
    node: NodeId,
    failures: &mut Vec<Failure>,
    failed: &mut usize,
) {
    let wanted = state.slots[slot].state;
    let request = Request::for_slot(context, state, slot, wanted, None);
    match crate::search::score_node(context, state, &request, node) {
        Ok(_) => state.place(context, slot, node, wanted),
        Err(rejection) => {
            *failed += 1;
            if failures.len() < FAILURES_REPORTED_MAX {
                let mut failure = diagnose(context, state, &request, slot);
                failure.summary = format!(
                    "pinned to `{}`, which cannot take it: {}",
                    context.fleet.topology.node_name(node),
                    crate::diagnose::describe(context, &rejection)
                );
                failures.push(failure);
            }
        }
    }
}
