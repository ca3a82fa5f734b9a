//! The planner's part of `meridian bench`: plan a rack drain and a zone evacuation on the
//! solved fleet, timing the planner alone (the solver's repair that computes the target is
//! measured elsewhere).

use std::time::Instant;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use meridian_model::{DomainId, Fleet, LevelId, Placement};
use meridian_solver::{Mode, Options};

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanMeasurement {
    /// `rack r0042 drain`, `zone us-east-b evacuation`.
    pub change: String,
    pub copies: usize,
    pub steps: usize,
    pub blocked: usize,
    pub plan_s: f64,
    pub makespan_s: f64,
    pub bound_s: f64,
    pub bottleneck: String,
    pub bytes: f64,
}

/// Domains of `level` ordered by how many replicas sit under them, most first.
fn candidates(fleet: &Fleet, placement: &Placement, level: LevelId) -> Vec<DomainId> {
    let topology = &fleet.topology;
    let mut count = vec![0usize; topology.domains.len()];
    for slot in &placement.slots {
        if let Some(node) = slot.node() {
            if let Some(d) = topology.ancestor_at(node, level) {
                count[d.index()] += 1;
            }
        }
    }
    let mut pinned = vec![false; topology.domains.len()];
    for group in &fleet.groups {
        for pin in &group.pins {
            if let Some(d) = topology.ancestor_at(pin.node, level) {
                pinned[d.index()] = true;
            }
        }
    }
    let mut domains: Vec<DomainId> = topology
        .domain_ids()
        .filter(|d| {
            topology.domain(*d).level == level && !pinned[d.index()] && count[d.index()] > 0
        })
        .collect();
    domains.sort_by_key(|d| (std::cmp::Reverse(count[d.index()]), *d));
    domains
}

fn measure(
    fleet: &Fleet,
    current: &Placement,
    domain: DomainId,
    what: &str,
    seed: u64,
) -> Result<Option<PlanMeasurement>> {
    let target = meridian_solver::solve(
        fleet,
        &current.replicas(fleet),
        &Options {
            mode: Mode::Repair,
            seed,
            rebalance: false,
            drain: vec![domain],
            ..Options::default()
        },
    );
    if !target.is_complete() {
        return Ok(None);
    }
    let start = Instant::now();
    let plan = meridian_planner::plan(
        fleet,
        current,
        &target.placement,
        &meridian_planner::Options::default(),
        0.0,
    );
    let plan_s = start.elapsed().as_secs_f64();
    let copies = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, meridian_planner::Action::Replicate { .. }))
        .count();
    Ok(Some(PlanMeasurement {
        change: format!(
            "{} `{}` {what}",
            fleet
                .topology
                .level_name(fleet.topology.domain(domain).level),
            fleet.topology.domain(domain).name
        ),
        copies,
        steps: plan.steps.len(),
        blocked: plan.blocked.len(),
        plan_s,
        makespan_s: plan.makespan(),
        bound_s: plan.bound.seconds,
        bottleneck: plan.bound.bottleneck.clone(),
        bytes: plan.bytes,
    }))
}

/// Plans draining the busiest rack and evacuating the busiest zone that can be evacuated
/// (trying up to three: residency can make a zone impossible to leave), pins inside lifted.
pub fn measure_plans(
    fleet: &Fleet,
    current: &Placement,
    seed: u64,
) -> Result<Vec<PlanMeasurement>> {
    let topology = &fleet.topology;
    let mut out = Vec::new();
    for (level, what, tries) in [("rack", "drain", 3), ("zone", "evacuation", 3)] {
        let Some(level) = topology.level_by_name(level) else {
            continue;
        };
        let mut found = false;
        for domain in candidates(fleet, current, level).into_iter().take(tries) {
            if let Some(m) = measure(fleet, current, domain, what, seed)? {
                out.push(m);
                found = true;
                break;
            }
        }
        if !found {
            return Err(anyhow!(
                "no {what} of a {} could be solved",
                topology.level_name(level)
            ));
        }
    }
    Ok(out)
}
