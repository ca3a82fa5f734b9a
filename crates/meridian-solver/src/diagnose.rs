//! Infeasibility reports: when no node can take a replica, say which constraint stopped each
//! candidate, the closest miss and by how much, and what would relax it.

use std::collections::BTreeMap;

use serde::Serialize;

use meridian_model::{DomainId, Fleet};

use crate::context::Context;
use crate::score::Rejection;
use crate::search::{score_node, Request};
use crate::state::State;

#[derive(Debug, Clone, Serialize)]
pub struct Shortfall {
    pub domain: String,
    pub level: String,
    pub dimension: String,
    pub need: f64,
    pub free: f64,
    pub short_by: f64,
    pub capacity: f64,
    pub headroom: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub group: String,
    pub partition: u32,
    pub state: String,
    /// One line: the reason in words.
    pub summary: String,
    /// Candidate nodes rejected, by constraint.
    pub rejected_by: BTreeMap<String, usize>,
    /// The capacity miss closest to fitting, if capacity stopped any candidate.
    pub closest: Option<Shortfall>,
    /// Changes that would let the replica be placed.
    pub relax: Vec<String>,
}

/// Describes one rejection in words.
pub fn describe(context: &Context, rejection: &Rejection) -> String {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let name = |d: &DomainId| {
        format!(
            "{} `{}`",
            topology.level_name(topology.domain(*d).level),
            topology.domain(*d).name
        )
    };
    match rejection {
        Rejection::Eligibility => "fails the group's selector or residency".to_string(),
        Rejection::Excluded { domain } => format!(
            "{} is closed (drained or failed) or being relieved",
            name(domain)
        ),
        Rejection::Capacity {
            domain,
            dim,
            need,
            free,
        } => format!(
            "{} {}: needs {need:.2}, {free:.2} free under its limit",
            name(domain),
            fleet.dims.names()[*dim]
        ),
        Rejection::Spread { domain } => {
            format!("{} already holds a replica of this partition", name(domain))
        }
        Rejection::AntiAffinity { group, domain } => format!(
            "{} holds group `{}`, which this group avoids",
            name(domain),
            fleet.group(*group).name
        ),
        Rejection::Pin => "the partition is pinned elsewhere".to_string(),
    }
}

pub fn diagnose(context: &Context, state: &State, request: &Request, _slot: usize) -> Failure {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let mut rejected_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut closest: Option<(f64, DomainId, usize, f64, f64)> = None;
    let mut spread_domains: Vec<DomainId> = Vec::new();
    let mut feasible = 0usize;
    for node in topology.node_ids() {
        match score_node(context, state, request, node) {
            Ok(_) => feasible += 1,
            Err(rejection) => {
                *rejected_by
                    .entry(rejection.constraint().to_string())
                    .or_default() += 1;
                match rejection {
                    Rejection::Capacity {
                        domain,
                        dim,
                        need,
                        free,
                    } if closest
                        .as_ref()
                        .is_none_or(|(short, ..)| need - free < *short) =>
                    {
                        closest = Some((need - free, domain, dim, need, free));
                    }
                    Rejection::Spread { domain } if !spread_domains.contains(&domain) => {
                        spread_domains.push(domain)
                    }
                    _ => {}
                }
            }
        }
    }
    let group = fleet.group(request.group);
    let model = fleet.product_of(request.group);
    let closest =
        closest.map(|(_, domain, dim, need, free)| shortfall(fleet, domain, dim, need, free));
    let mut relax = Vec::new();
    if let Some(miss) = &closest {
        relax.push(format!(
            "free or add {:.2} {} under {} `{}` (capacity {:.2}, headroom {:.0}%)",
            miss.short_by,
            miss.dimension,
            miss.level,
            miss.domain,
            miss.capacity,
            miss.headroom * 100.0
        ));
        if miss.headroom > 0.0 && miss.capacity.is_finite() && miss.capacity > 0.0 {
            let used = miss.capacity * (1.0 - miss.headroom) - miss.free;
            let allowed = 1.0 - (used + miss.need) / miss.capacity;
            if allowed >= 0.0 {
                relax.push(format!(
                    "or lower headroom `{}.{}` to {:.3}",
                    miss.level,
                    miss.dimension,
                    allowed.max(0.0)
                ));
            }
        }
    }
    if rejected_by.contains_key("spread") {
        let levels: Vec<&str> = group
            .spread
            .iter()
            .map(|l| topology.level_name(*l))
            .collect();
        relax.push(format!("spread over [{}] rules out {} domain(s) already holding this partition; add fault domains or relax the spread level", levels.join(", "), spread_domains.len()));
    }
    if rejected_by.contains_key("eligibility") {
        relax.push("widen the group's selector or allowed regions".to_string());
    }
    if rejected_by.contains_key("anti_affinity") {
        relax.push("relax the group's anti_affinity".to_string());
    }
    let total = topology.nodes.len();
    let mut parts: Vec<String> = rejected_by
        .iter()
        .map(|(k, v)| format!("{v} by {k}"))
        .collect();
    if feasible > 0 {
        parts.push(format!(
            "{feasible} feasible but not reachable by the search (a bug: please report)"
        ));
    }
    Failure {
        group: group.name.clone(),
        partition: request.partition,
        state: model.state_name(request.state).to_string(),
        summary: format!("0 of {total} nodes can take it: {}", parts.join(", ")),
        rejected_by,
        closest,
        relax,
    }
}

fn shortfall(fleet: &Fleet, domain: DomainId, dim: usize, need: f64, free: f64) -> Shortfall {
    let topology = &fleet.topology;
    let level = topology.domain(domain).level;
    Shortfall {
        domain: topology.domain(domain).name.clone(),
        level: topology.level_name(level).to_string(),
        dimension: fleet.dims.names()[dim].clone(),
        need,
        free,
        short_by: need - free,
        capacity: topology.capacity_of(domain)[dim],
        headroom: fleet.headroom_at(level, dim),
    }
}
