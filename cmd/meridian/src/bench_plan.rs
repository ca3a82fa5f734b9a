//! The planner's part of `meridian bench`: plan a rack drain and a zone evacuation on the
//! solved fleet, timing the planner alone (the solver's repair that computes the target is
//! measured elsewhere).

use std::time::Instant;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use meridian_model::{DomainId, Fleet, LevelId, Placement};
use meridian_solver::{Mode, Options};

#[derive(Debug, Default, Serialize, Deserialize)]
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
    /// Set when no domain of the level could be emptied (the solver's reason).
    pub infeasible: Option<String>,
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
    let mut domains: Vec<DomainId> = topology
        .domain_ids()
        .filter(|d| topology.domain(*d).level == level && count[d.index()] > 0)
        .collect();
    domains.sort_by_key(|d| (std::cmp::Reverse(count[d.index()]), *d));
    domains
}

/// The fleet with the pins inside `domain` lifted: an operator emptying a domain lifts the
/// pins that hold replicas there first (a pinned replica cannot leave).
fn unpinned(fleet: &Fleet, domain: DomainId) -> Fleet {
    let mut unpinned = fleet.clone();
    for group in &mut unpinned.groups {
        group
            .pins
            .retain(|pin| !fleet.topology.chain(pin.node).contains(&domain));
    }
    unpinned
}

/// The plan for emptying `domain`, or the solver's reason it cannot be emptied.
fn measure(
    fleet: &Fleet,
    current: &Placement,
    domain: DomainId,
    what: &str,
    seed: u64,
) -> std::result::Result<PlanMeasurement, String> {
    let fleet = &unpinned(fleet, domain);
    let change = format!(
        "{} `{}` {what}",
        fleet
            .topology
            .level_name(fleet.topology.domain(domain).level),
        fleet.topology.domain(domain).name
    );
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
    if let Some(failure) = target.failures.first() {
        return Err(format!(
            "{change}: {}/{} {}: {}",
            failure.group, failure.partition, failure.state, failure.summary
        ));
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
    Ok(PlanMeasurement {
        change,
        copies,
        steps: plan.steps.len(),
        blocked: plan.blocked.len(),
        plan_s,
        makespan_s: plan.makespan(),
        bound_s: plan.bound.seconds,
        bottleneck: plan.bound.bottleneck.clone(),
        bytes: plan.bytes,
        infeasible: None,
    })
}

const LEVELS: [(&str, &str); 2] = [("rack", "drain"), ("zone", "evacuation")];

/// The plan for emptying the busiest of the first `tries` domains of `level` that can be
/// emptied; if none can, a row saying why each could not.
fn first_plannable(
    fleet: &Fleet,
    current: &Placement,
    level: LevelId,
    what: &str,
    tries: usize,
    seed: u64,
) -> PlanMeasurement {
    let mut reasons = Vec::new();
    for domain in candidates(fleet, current, level).into_iter().take(tries) {
        match measure(fleet, current, domain, what, seed) {
            Ok(m) => return m,
            Err(why) => reasons.push(why),
        }
    }
    PlanMeasurement {
        change: format!("{} {what}", fleet.topology.level_name(level)),
        infeasible: Some(reasons.join("; ")),
        ..PlanMeasurement::default()
    }
}

/// Utilization of the fleet generated for a zone evacuation when the benchmark's own fleet
/// cannot lose a zone (two zones per region at 60% cannot fit in one).
pub const EVACUABLE_UTILIZATION: f64 = 0.35;

/// The zone evacuation on a fleet of the same shape generated with room to lose a zone,
/// trying every zone (GPU racks fall unevenly into zones, and a zone holding most of a
/// region's GPUs cannot be left even then).
pub fn evacuable_zone_plan(replicas: usize, seed: u64) -> Result<PlanMeasurement> {
    let mut spec = meridian_gen::GenSpec::new(replicas / 100, replicas, seed);
    spec.target_utilization = EVACUABLE_UTILIZATION;
    let yaml = meridian_gen::generate_yaml(&spec).map_err(|e| anyhow!("{}", e.message))?;
    let fleet = Fleet::from_yaml(&yaml, "generated").map_err(|p| anyhow!("{p}"))?;
    drop(yaml);
    let solved = meridian_solver::solve(
        &fleet,
        &[],
        &Options {
            mode: Mode::Full,
            seed,
            ..Options::default()
        },
    );
    if !solved.is_complete() {
        return Err(anyhow!("the evacuable fleet did not solve"));
    }
    let level = fleet
        .topology
        .level_by_name("zone")
        .ok_or_else(|| anyhow!("no zone level"))?;
    let note = format!(
        "(fleet generated at {:.0}% utilization)",
        100.0 * EVACUABLE_UTILIZATION
    );
    let mut m = first_plannable(
        &fleet,
        &solved.placement,
        level,
        "evacuation",
        usize::MAX,
        seed,
    );
    m.change = format!("{} {note}", m.change);
    Ok(m)
}

/// Plans draining the busiest rack and evacuating a zone: the busiest that can be emptied,
/// trying up to three (residency and capacity can make a zone impossible to leave; then the
/// row says why). Pins inside the domain are lifted first.
pub fn measure_plans(
    fleet: &Fleet,
    current: &Placement,
    seed: u64,
) -> Result<Vec<PlanMeasurement>> {
    let topology = &fleet.topology;
    let mut out = Vec::new();
    for (level, what) in LEVELS {
        let Some(level) = topology.level_by_name(level) else {
            continue;
        };
        out.push(first_plannable(fleet, current, level, what, 3, seed));
    }
    if out.is_empty() {
        return Err(anyhow!("the fleet has neither racks nor zones to empty"));
    }
    Ok(out)
}
