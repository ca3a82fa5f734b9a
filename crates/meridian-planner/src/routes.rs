//! Shortest legal paths through a product's state model, so user-defined models with more
//! states (e.g. Offline > Bootstrap > Standby > Leader) plan as naturally as the built-ins.

use meridian_model::{StateId, StateModel};

/// The states after `from` on a shortest legal path to `to` (empty when `from == to`), or
/// `None` when `to` is unreachable. Paths never pass through `avoid` unless it is `to`.
pub fn path(
    model: &StateModel,
    from: StateId,
    to: StateId,
    avoid: Option<StateId>,
) -> Option<Vec<StateId>> {
    if from == to {
        return Some(Vec::new());
    }
    let n = model.states.len();
    let mut previous: Vec<Option<StateId>> = vec![None; n];
    let mut seen = vec![false; n];
    seen[from.index()] = true;
    let mut frontier = vec![from];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &state in &frontier {
            // Transitions in declaration order: deterministic among equal-length paths.
            for &(a, b) in &model.transitions {
                if a != state || seen[b.index()] || (Some(b) == avoid && b != to) {
                    continue;
                }
                seen[b.index()] = true;
                previous[b.index()] = Some(a);
                if b == to {
                    let mut path = vec![to];
                    let mut cursor = a;
                    while cursor != from {
                        path.push(cursor);
                        cursor = previous[cursor.index()]?;
                    }
                    path.reverse();
                    return Some(path);
                }
                next.push(b);
            }
        }
        frontier = next;
    }
    None
}

/// The next state on the way from `from` to `to`.
pub fn next_hop(
    model: &StateModel,
    from: StateId,
    to: StateId,
    avoid: Option<StateId>,
) -> Option<StateId> {
    path(model, from, to, avoid).and_then(|p| p.first().copied())
}

/// `next_hop` between every pair of a model's states, avoiding its leader state or not,
/// worked out once per plan: the scheduler asks on nearly every attempt to move a replica,
/// and each search allocates.
pub struct Hops {
    states: usize,
    /// By `[avoid_leader][from][to]`, flattened.
    next: Vec<Option<StateId>>,
}

impl Hops {
    pub fn new(model: &StateModel) -> Hops {
        let states = model.states.len();
        let ids = || (0..states).map(|s| StateId(s as u8));
        let mut next = Vec::with_capacity(2 * states * states);
        for avoid in [None, model.leader] {
            for from in ids() {
                next.extend(ids().map(|to| next_hop(model, from, to, avoid)));
            }
        }
        Hops { states, next }
    }

    /// `next_hop(model, from, to, avoid)` where `avoid` is the model's leader state if
    /// `avoid_leader`, else `None`.
    pub fn next(&self, from: StateId, to: StateId, avoid_leader: bool) -> Option<StateId> {
        let table = usize::from(avoid_leader) * self.states * self.states;
        self.next[table + from.index() * self.states + to.index()]
    }
}

/// The state a leader steps down to: `preferred` when the model allows it directly, else the
/// first state the model lets a leader go to that is not the initial one.
pub fn demotion(
    model: &StateModel,
    leader: StateId,
    preferred: Option<StateId>,
) -> Option<StateId> {
    if let Some(state) = preferred {
        if state != leader && state != model.initial && model.allows(leader, state) {
            return Some(state);
        }
    }
    model
        .transitions
        .iter()
        .find(|&&(a, b)| a == leader && b != model.initial)
        .map(|&(_, b)| b)
}
