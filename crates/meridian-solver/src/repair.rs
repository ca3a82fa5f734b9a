//! Incremental repair: keep every current replica that breaks nothing, promote survivors to
//! replace lost leaders, and leave only what is truly missing for the search to place.

use std::collections::BTreeMap;

use meridian_model::placement::Slot;
use meridian_model::{GroupId, NodeId, StateId};

use crate::context::Context;
use crate::search::{score_node, Request};
use crate::state::State;

/// Places the valid part of `current` into `state`. Big replicas go first so that, where a
/// domain is over its limit (capacity shrank, a task grew), the small, cheap-to-move ones are
/// the ones evicted. Replicas under closed domains (drained, failed) are evicted too.
/// Returns evictions counted by the constraint that evicted them.
pub fn evict_invalid(
    context: &Context,
    state: &mut State,
    current: &[Slot],
) -> Vec<(String, usize)> {
    let fleet = context.fleet;
    let mut order: Vec<usize> = (0..current.len())
        .filter(|&s| current[s].node().is_some())
        .collect();
    order.sort_by(|&a, &b| {
        let size = |s: usize| fleet.group(state.group_of(s)).size_gib;
        size(b).total_cmp(&size(a)).then(a.cmp(&b))
    });
    let mut evicted: BTreeMap<&'static str, usize> = BTreeMap::new();
    for slot in order {
        let node = NodeId(current[slot].node);
        let wanted = current[slot].state;
        let request = Request::for_slot(context, state, slot, wanted, Some(node));
        match score_node(context, state, &request, node) {
            Ok(_) => {
                state.slots[slot].state = wanted;
                state.place(context, slot, node, wanted);
            }
            Err(rejection) => *evicted.entry(rejection.constraint()).or_default() += 1,
        }
    }
    evicted
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Every partition of every group, for a repair that looks at the whole fleet.
pub fn all_partitions(context: &Context) -> Vec<(GroupId, u32)> {
    context
        .fleet
        .groups
        .iter()
        .flat_map(|g| (0..g.partitions).map(move |p| (g.id, p)))
        .collect()
}

/// For each given partition that lost its leader but kept another replica, promote the
/// survivor whose node best absorbs the leader's extra heat (no data moves).
/// Returns the number of promotions.
pub fn restore_leaders(
    context: &Context,
    state: &mut State,
    partitions: &[(GroupId, u32)],
) -> usize {
    let fleet = context.fleet;
    let mut promotions = 0;
    for &(group_id, partition) in partitions {
        let group = fleet.group(group_id);
        let Some(leader) = fleet.products[group.product.index()].leader else {
            continue;
        };
        let first = group.partition_slot(partition);
        let slots = first..first + group.replicas_per_partition();
        let Some(leader_slot) = slots.clone().find(|&s| state.slots[s].state == leader) else {
            continue;
        };
        if state.slots[leader_slot].node().is_some() {
            continue;
        }
        let survivors: Vec<usize> = slots.filter(|&s| state.slots[s].node().is_some()).collect();
        let mut best: Option<(f64, usize)> = None;
        for survivor in survivors {
            let node = NodeId(state.slots[survivor].node);
            let demoted = state.slots[survivor].state;
            if let Some(pressure) =
                promotion_pressure(context, state, survivor, node, demoted, leader)
            {
                if best.is_none_or(|(p, _)| pressure < p) {
                    best = Some((pressure, survivor));
                }
            }
        }
        if let Some((_, survivor)) = best {
            let demoted = state.slots[survivor].state;
            state.set_state(context, survivor, leader);
            state.slots[leader_slot].state = demoted;
            promotions += 1;
        }
    }
    promotions
}

/// The peak pressure a promotion would cause on the survivor's node chain, or `None` if it
/// would break a constraint there.
fn promotion_pressure(
    context: &Context,
    state: &mut State,
    slot: usize,
    node: NodeId,
    from: StateId,
    to: StateId,
) -> Option<f64> {
    state.unplace(context, slot);
    let request = Request::for_slot(context, state, slot, to, Some(node));
    let result = score_node(context, state, &request, node);
    state.place(context, slot, node, from);
    result.ok().map(|score| score.peak_pressure)
}
