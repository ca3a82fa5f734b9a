//! Settling: the last phase of a rebalance, which takes back moves that were not needed.
//!
//! Shedding and the local search move whatever lowers the peak; some of those moves turn out
//! not to matter once everything else has moved. Each moved replica, biggest first, goes back
//! to its current node if that keeps every hard constraint and leaves every domain on the way
//! at or below the peak its level has now — so no level's peak rises, and less data moves.

use meridian_model::placement::Slot;
use meridian_model::LevelId;

use crate::context::Context;
use crate::search::{score_node, Request};
use crate::state::State;

/// Per `level * dims + dim`, the highest pressure among that level's domains.
fn level_peaks(context: &Context, state: &State) -> Vec<f64> {
    let topology = &context.fleet.topology;
    let mut peaks = vec![0.0f64; topology.levels.len() * context.dims];
    for domain in topology.domain_ids() {
        let level = topology.domain(domain).level.index();
        for dim in 0..context.dims {
            let pressure =
                context.pressure(domain, dim, state.used[domain.index() * context.dims + dim]);
            let slot = &mut peaks[level * context.dims + dim];
            *slot = slot.max(pressure);
        }
    }
    peaks
}

/// Returns moved replicas home where that costs no level its peak. Returns how many went back.
pub fn return_home(context: &Context, state: &mut State, current: &[Slot]) -> usize {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let peaks = level_peaks(context, state);
    let mut moved: Vec<usize> = (0..state.slots.len())
        .filter(|&slot| {
            let home = current[slot].node();
            home.is_some() && state.slots[slot].node().is_some() && state.slots[slot].node() != home
        })
        .collect();
    moved.sort_by(|&a, &b| {
        let size = |s: usize| fleet.group(state.group_of(s)).size_gib;
        size(b).total_cmp(&size(a)).then(a.cmp(&b))
    });
    let mut returned = 0;
    for slot in moved {
        let (Some(home), Some(away)) = (current[slot].node(), state.slots[slot].node()) else {
            continue;
        };
        if state.node_closed(context, home) {
            continue;
        }
        let replica_state = state.slots[slot].state;
        state.unplace(context, slot);
        let request = Request::for_slot(context, state, slot, replica_state, Some(home));
        let fits_peaks = score_node(context, state, &request, home).is_ok()
            && topology.chain(home).iter().all(|&domain| {
                let level: LevelId = topology.domain(domain).level;
                request.heat.iter().all(|&(dim, heat)| {
                    let after = context.pressure(
                        domain,
                        dim,
                        state.used[domain.index() * context.dims + dim] + heat,
                    );
                    after <= peaks[level.index() * context.dims + dim] + 1e-12
                })
            });
        let node = if fits_peaks { home } else { away };
        state.place(context, slot, node, replica_state);
        returned += usize::from(fits_peaks);
    }
    returned
}
