//! Products and their state models, in the manner of Helix: named states, legal transitions,
//! how many replicas of a partition sit in each state, and which state is the leader.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::StateId;
use crate::problem::ProblemSink;
use crate::spec::ProductSpec;

/// States per product are few; bounding them keeps per-state arrays tiny.
pub const STATES_MAX: usize = 16;
/// Replicas per partition, over all states. Far above any real replication factor; the bound
/// keeps per-partition arrays small and sums of counts from overflowing.
pub const REPLICAS_PER_PARTITION_MAX: u32 = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct StateModel {
    pub name: String,
    pub states: Vec<String>,
    /// The state a replica is in before it exists and after it is dropped.
    pub initial: StateId,
    pub transitions: Vec<(StateId, StateId)>,
    /// Default replicas per partition in each state (zero for the initial state).
    pub counts: Vec<u32>,
    /// The state of which a partition has at most one.
    pub leader: Option<StateId>,
    pub min_serving: u32,
    pub gravity_weight: Vec<f64>,
}

impl StateModel {
    pub fn state(&self, name: &str) -> Option<StateId> {
        self.states
            .iter()
            .position(|s| s == name)
            .map(|i| StateId(i as u8))
    }

    pub fn state_name(&self, state: StateId) -> &str {
        &self.states[state.index()]
    }

    pub fn allows(&self, from: StateId, to: StateId) -> bool {
        self.transitions.contains(&(from, to))
    }

    /// States reachable from `from` by legal transitions (including `from`).
    pub fn reachable_from(&self, from: StateId) -> Vec<bool> {
        let mut seen = vec![false; self.states.len()];
        let mut stack = vec![from];
        seen[from.index()] = true;
        while let Some(state) = stack.pop() {
            for &(a, b) in &self.transitions {
                if a == state && !seen[b.index()] {
                    seen[b.index()] = true;
                    stack.push(b);
                }
            }
        }
        seen
    }
}

fn builtin(
    states: &[&str],
    transitions: &[&str],
    counts: &[(&str, u32)],
    leader: Option<&str>,
    min_serving: u32,
    gravity: &[(&str, f64)],
) -> ProductSpec {
    ProductSpec {
        states: states.iter().map(|s| s.to_string()).collect(),
        initial: None,
        transitions: transitions.iter().map(|s| s.to_string()).collect(),
        counts: counts.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        leader: leader.map(str::to_string),
        min_serving: Some(min_serving),
        gravity_weight: gravity.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
    }
}

/// The product models Meridian ships: a replicated database, a replicated stream, and an
/// AI inference deployment. A fleet file may redefine them or add its own.
pub fn builtin_products() -> BTreeMap<String, ProductSpec> {
    let mut products = BTreeMap::new();
    products.insert(
        "db".to_string(),
        builtin(
            &["Offline", "Follower", "Leader"],
            &[
                "Offline>Follower",
                "Follower>Leader",
                "Leader>Follower",
                "Follower>Offline",
            ],
            &[("Leader", 1), ("Follower", 2)],
            Some("Leader"),
            2,
            &[("Leader", 1.0), ("Follower", 0.5)],
        ),
    );
    products.insert(
        "stream".to_string(),
        builtin(
            &["Offline", "Replica", "Leader"],
            &[
                "Offline>Replica",
                "Replica>Leader",
                "Leader>Replica",
                "Replica>Offline",
            ],
            &[("Leader", 1), ("Replica", 2)],
            Some("Leader"),
            2,
            &[("Leader", 1.0), ("Replica", 0.3)],
        ),
    );
    products.insert(
        "ai".to_string(),
        builtin(
            &["Offline", "Active"],
            &["Offline>Active", "Active>Offline"],
            &[("Active", 2)],
            None,
            1,
            &[("Active", 1.0)],
        ),
    );
    products
}

/// Resolves and validates one product; `path` is where it sits in the document.
pub fn resolve_product(
    name: &str,
    spec: &ProductSpec,
    path: &str,
    sink: &mut ProblemSink,
) -> Option<StateModel> {
    let before = sink.count();
    if spec.states.len() < 2 || spec.states.len() > STATES_MAX {
        sink.report(
            format!("{path}.states"),
            format!("a product needs 2 to {STATES_MAX} states (an initial one and at least one serving one), found {}", spec.states.len()),
        );
        return None;
    }
    for (i, state) in spec.states.iter().enumerate() {
        if spec.states[..i].contains(state) {
            sink.report(
                format!("{path}.states[{i}]"),
                format!("state `{state}` is listed twice"),
            );
        }
    }
    let lookup = |state: &str| {
        spec.states
            .iter()
            .position(|s| s == state)
            .map(|i| StateId(i as u8))
    };
    let initial = match &spec.initial {
        None => StateId(0),
        Some(state) => lookup(state).unwrap_or_else(|| {
            sink.report(
                format!("{path}.initial"),
                format!("unknown state `{state}`"),
            );
            StateId(0)
        }),
    };
    let mut transitions = Vec::new();
    for (i, text) in spec.transitions.iter().enumerate() {
        let at = format!("{path}.transitions[{i}]");
        let Some((from, to)) = text.split_once('>') else {
            sink.report(at, format!("transition `{text}` must be written `From>To`"));
            continue;
        };
        match (lookup(from.trim()), lookup(to.trim())) {
            (Some(a), Some(b)) if a != b => transitions.push((a, b)),
            (Some(_), Some(_)) => sink.report(at, format!("transition `{text}` goes nowhere")),
            _ => sink.report(
                at,
                format!("transition `{text}` names a state not in `states`"),
            ),
        }
    }
    let leader = spec.leader.as_ref().and_then(|state| {
        let found = lookup(state);
        if found.is_none() {
            sink.report(format!("{path}.leader"), format!("unknown state `{state}`"));
        }
        found
    });
    let mut model = StateModel {
        name: name.to_string(),
        states: spec.states.clone(),
        initial,
        transitions,
        counts: vec![0; spec.states.len()],
        leader,
        min_serving: 0,
        gravity_weight: vec![1.0; spec.states.len()],
    };
    model.counts = resolve_counts(&model, &spec.counts, &format!("{path}.counts"), sink)?;
    for (state, weight) in &spec.gravity_weight {
        match lookup(state) {
            Some(s) if weight.is_finite() && *weight >= 0.0 => {
                model.gravity_weight[s.index()] = *weight
            }
            Some(_) => sink.report(
                format!("{path}.gravity_weight.{state}"),
                "weight must be a finite number ≥ 0",
            ),
            None => sink.report(
                format!("{path}.gravity_weight.{state}"),
                format!("unknown state `{state}`"),
            ),
        }
    }
    let total: u32 = model.counts.iter().sum();
    model.min_serving = spec.min_serving.unwrap_or(total);
    if model.min_serving > total {
        sink.report(
            format!("{path}.min_serving"),
            format!(
                "min_serving {} is more than the {total} replicas the counts ask for",
                model.min_serving
            ),
        );
    }
    check_reachability(&model, path, sink);
    (sink.count() == before).then_some(model)
}

/// Validates per-state counts against a model: known states, none for the initial state, at
/// most one leader, at least one replica.
pub fn resolve_counts(
    model: &StateModel,
    counts: &BTreeMap<String, u32>,
    path: &str,
    sink: &mut ProblemSink,
) -> Option<Vec<u32>> {
    let before = sink.count();
    let mut resolved = vec![0u32; model.states.len()];
    for (state, count) in counts {
        match model.state(state) {
            None => sink.report(
                format!("{path}.{state}"),
                format!(
                    "unknown state `{state}` (product `{}` has {})",
                    model.name,
                    model.states.join(", ")
                ),
            ),
            Some(s) if s == model.initial && *count > 0 => sink.report(
                format!("{path}.{state}"),
                format!("`{state}` is the initial state; replicas are not counted in it"),
            ),
            Some(s) if Some(s) == model.leader && *count > 1 => sink.report(
                format!("{path}.{state}"),
                format!(
                    "a partition has at most one `{state}` (it is the leader state), not {count}"
                ),
            ),
            Some(_) if *count > REPLICAS_PER_PARTITION_MAX => sink.report(
                format!("{path}.{state}"),
                format!("{count} replicas per partition is more than the {REPLICAS_PER_PARTITION_MAX} supported"),
            ),
            Some(s) => resolved[s.index()] = *count,
        }
    }
    let total: u64 = resolved.iter().map(|&count| u64::from(count)).sum();
    if total == 0 {
        sink.report(path.to_string(), "counts place no replica at all");
    } else if total > u64::from(REPLICAS_PER_PARTITION_MAX) {
        sink.report(
            path.to_string(),
            format!("{total} replicas per partition is more than the {REPLICAS_PER_PARTITION_MAX} supported"),
        );
    }
    (sink.count() == before).then_some(resolved)
}

fn check_reachability(model: &StateModel, path: &str, sink: &mut ProblemSink) {
    let from_initial = model.reachable_from(model.initial);
    for (i, &count) in model.counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let state = &model.states[i];
        if !from_initial[i] {
            sink.report(
                format!("{path}.transitions"),
                format!(
                    "state `{state}` has replicas but cannot be reached from `{}`",
                    model.states[model.initial.index()]
                ),
            );
        }
        if !model.reachable_from(StateId(i as u8))[model.initial.index()] {
            sink.report(
                format!("{path}.transitions"),
                format!(
                    "a `{state}` replica could never be dropped: no path back to `{}`",
                    model.states[model.initial.index()]
                ),
            );
        }
    }
}
