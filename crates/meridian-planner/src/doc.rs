//! The plan as a document: names instead of ids, for `meridian plan --json` and the API.

use serde::Serialize;

use meridian_model::Fleet;

use crate::ledger::describe;
use crate::path::Resources;
use crate::plan::{Action, Plan, Reason, Resource, Step};

#[derive(Debug, Clone, Serialize)]
pub struct PlanDoc {
    pub fleet: String,
    pub start: f64,
    pub end: f64,
    pub makespan_s: f64,
    pub lower_bound_s: f64,
    pub bottleneck: String,
    pub bytes: f64,
    pub steps: Vec<StepDoc>,
    pub blocked: Vec<BlockedDoc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepDoc {
    pub id: u32,
    pub group: String,
    pub partition: u32,
    pub start: f64,
    pub end: f64,
    /// `replicate`, `start`, `transition`, `hand_off` or `drop`.
    pub kind: &'static str,
    /// Node the step acts on (the target of a copy, the new leader of a hand-off).
    pub node: String,
    /// Source of a copy, old leader of a hand-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_state: Option<String>,
    pub to_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<f64>,
    /// MB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loads: Vec<LoadDoc>,
    /// A transition's burst on its node(s) during the step (see `transition_heat`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub burst: Vec<LoadDoc>,
    pub reason: Reason,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadDoc {
    pub resource: String,
    pub amount: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockedDoc {
    pub group: String,
    pub partition: u32,
    pub what: String,
    pub why: String,
}

pub fn resource_name(fleet: &Fleet, resource: Resource) -> String {
    let resources = Resources::new(fleet);
    let index = match resource {
        Resource::Domain { domain, dim } => resources.domain(domain, dim),
        Resource::Link { from, to } => resources.link(from.index(), to.index()),
    };
    describe(fleet, &resources, index)
}

pub fn step_doc(fleet: &Fleet, step: &Step) -> StepDoc {
    let topology = &fleet.topology;
    let model = fleet.product_of(step.group);
    let node = |n: meridian_model::NodeId| topology.node_name(n).to_string();
    let state = |s: meridian_model::StateId| model.state_name(s).to_string();
    let mut doc = StepDoc {
        id: step.id,
        group: fleet.group(step.group).name.clone(),
        partition: step.partition,
        start: step.start,
        end: step.end,
        kind: "",
        node: String::new(),
        from_node: None,
        from_state: None,
        to_state: String::new(),
        bytes: None,
        rate: None,
        loads: Vec::new(),
        burst: step
            .burst
            .iter()
            .map(|l| LoadDoc {
                resource: resource_name(fleet, l.resource),
                amount: l.amount,
            })
            .collect(),
        reason: step.reason.clone(),
    };
    match &step.action {
        Action::Replicate {
            source,
            target,
            state: arrival,
            bytes,
            rate,
            loads,
        } => {
            doc.kind = "replicate";
            doc.node = node(*target);
            doc.from_node = Some(node(*source));
            doc.from_state = Some(state(model.initial));
            doc.to_state = state(*arrival);
            doc.bytes = Some(*bytes);
            doc.rate = Some(*rate);
            doc.loads = loads
                .iter()
                .map(|l| LoadDoc {
                    resource: resource_name(fleet, l.resource),
                    amount: l.amount,
                })
                .collect();
        }
        Action::Start { node: n, state: s } => {
            doc.kind = "start";
            doc.node = node(*n);
            doc.from_state = Some(state(model.initial));
            doc.to_state = state(*s);
        }
        Action::Transition { node: n, from, to } => {
            doc.kind = "transition";
            doc.node = node(*n);
            doc.from_state = Some(state(*from));
            doc.to_state = state(*to);
        }
        Action::HandOff {
            from,
            to,
            promote_from,
            ..
        } => {
            doc.kind = "hand_off";
            doc.node = node(*to);
            doc.from_node = Some(node(*from));
            doc.from_state = Some(state(*promote_from));
            doc.to_state = model.leader.map_or_else(|| "leader".to_string(), state);
        }
        Action::Drop { node: n, from } => {
            doc.kind = "drop";
            doc.node = node(*n);
            doc.from_state = Some(state(*from));
            doc.to_state = state(model.initial);
        }
    }
    doc
}

/// One line per step for people: `copy orders-db/3 n05 -> n02 (Follower) 120 GB at 200 MB/s`.
pub fn describe_step(fleet: &Fleet, step: &Step) -> String {
    let d = step_doc(fleet, step);
    let who = format!("{}/{}", d.group, d.partition);
    match d.kind {
        "replicate" => format!(
            "copy {who} {} -> {} ({}), {:.1} GB at {:.0} MB/s",
            d.from_node.unwrap_or_default(),
            d.node,
            d.to_state,
            d.bytes.unwrap_or(0.0) / 1e9,
            d.rate.unwrap_or(0.0)
        ),
        "start" => format!(
            "start {who} on {} ({}), nothing to copy",
            d.node, d.to_state
        ),
        "transition" => format!(
            "{who} on {}: {} -> {}",
            d.node,
            d.from_state.unwrap_or_default(),
            d.to_state
        ),
        "hand_off" => format!(
            "hand-off {who}: leader {} -> {}",
            d.from_node.unwrap_or_default(),
            d.node
        ),
        _ => format!(
            "drop {who} on {} ({})",
            d.node,
            d.from_state.unwrap_or_default()
        ),
    }
}

impl Plan {
    pub fn to_doc(&self, fleet: &Fleet) -> PlanDoc {
        PlanDoc {
            fleet: fleet.name.clone(),
            start: self.start,
            end: self.end,
            makespan_s: self.makespan(),
            lower_bound_s: self.bound.seconds,
            bottleneck: self.bound.bottleneck.clone(),
            bytes: self.bytes,
            steps: self.steps.iter().map(|s| step_doc(fleet, s)).collect(),
            blocked: self
                .blocked
                .iter()
                .map(|b| BlockedDoc {
                    group: fleet.group(b.group).name.clone(),
                    partition: b.partition,
                    what: b.what.clone(),
                    why: b.why.clone(),
                })
                .collect(),
        }
    }
}
