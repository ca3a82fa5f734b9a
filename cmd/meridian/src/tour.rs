//! `meridian tour`: the core on the built-in example fleet, no setup needed: solve, check,
//! explain, fail a node, repair, and plan the recovery; then a simulated day of a datacenter
//! where per-product rebalancers and Meridian each run the fleet.

use std::process::ExitCode;

use anyhow::{anyhow, Result};

use meridian_model::check::check;
use meridian_model::Fleet;
use meridian_solver::{Mode, Options};

use crate::report;

const EXAMPLE: &str = include_str!("../../../examples/small.yaml");
const DATACENTER: &str = include_str!("../../../examples/sim/datacenter.yaml");
const DATACENTER_FLEET: &str = include_str!("../../../examples/sim/datacenter-fleet.yaml");

/// Step 5: `examples/sim/datacenter.yaml` with the siloed rebalancers and Meridian. True if
/// Meridian broke no invariant.
fn simulate_datacenter() -> Result<bool> {
    println!("\n== 5. a simulated day in a datacenter: per-product rebalancers vs Meridian\n");
    let mut scenario = meridian_sim::scenario::Scenario::from_yaml_with(
        DATACENTER,
        "examples/sim/datacenter.yaml",
        &|_| Ok(DATACENTER_FLEET.to_string()),
    )
    .map_err(|e| anyhow!("{e}"))?;
    scenario.spec.strategies = vec!["siloed".to_string(), "unified".to_string()];
    let results =
        meridian_sim::simulate::simulate(scenario, &|_, _| {}).map_err(|e| anyhow!("{e}"))?;
    println!(
        "{:<9} {:>10} {:>22} {:>24} {:>20}",
        "strategy", "p99 (ms)", "time over capacity", "of it with its copies", "below min replicas"
    );
    for o in &results.outcomes {
        let s = &o.summary;
        println!(
            "{:<9} {:>10.1} {:>20.1} h {:>22.1} h {:>18.1} h",
            o.strategy,
            s.latency_p99_ms,
            s.saturation_s / 3600.0,
            s.saturation_with_copies_s / 3600.0,
            s.below_min_s / 3600.0
        );
    }
    // The shared domain (above the nodes) siloed kept over capacity longest.
    let shared = results.outcomes.first().and_then(|o| {
        o.saturated
            .iter()
            .find(|(name, _)| !name.starts_with("node "))
    });
    if let Some((name, s)) = shared {
        println!(
            "\nshared domain siloed overloaded longest: {name}, over capacity for {:.1} h (peak {:.0}%)",
            s.seconds / 3600.0,
            100.0 * s.worst
        );
    }
    println!("(`meridian sim examples/sim/datacenter.yaml --out DIR` runs all five strategies with plots)");
    Ok(results
        .outcomes
        .iter()
        .filter(|o| o.strategy == "unified")
        .all(|o| o.summary.invariant_violations == 0))
}

pub fn run() -> Result<ExitCode> {
    let fleet = Fleet::from_yaml(EXAMPLE, "examples/small.yaml").map_err(|p| anyhow!("{p}"))?;
    println!("== 1. full solve of examples/small.yaml\n");
    let options = Options {
        mode: Mode::Full,
        ..Options::default()
    };
    let solved = meridian_solver::solve(&fleet, &[], &options);
    report::solution(
        &fleet,
        &solved,
        &meridian_solver::quality(&fleet, &solved.placement),
        None,
    );
    let replicas = solved.placement.replicas(&fleet);
    let violations = check(&fleet, &replicas);
    println!("\nindependent check: {} violation(s)", violations.len());

    println!("\n== 2. explain orders-db/0 (its leader)\n");
    let explanation = meridian_solver::explain(&fleet, &solved.placement, "orders-db", 0, 0)
        .map_err(|e| anyhow!(e))?;
    report::explanation(&explanation);

    let victim = explanation.node.clone();
    println!("\n== 3. node `{victim}` fails: incremental repair\n");
    let failed = fleet
        .topology
        .domain_by_name(&victim)
        .ok_or_else(|| anyhow!("no node {victim}"))?;
    let lost = replicas
        .iter()
        .filter(|r| fleet.topology.node_name(r.node) == victim)
        .count();
    let repair = Options {
        mode: Mode::Repair,
        rebalance: false,
        drain: vec![failed],
        ..Options::default()
    };
    let repaired = meridian_solver::solve(&fleet, &replicas, &repair);
    report::solution(
        &fleet,
        &repaired,
        &meridian_solver::quality(&fleet, &repaired.placement),
        None,
    );
    let after = repaired.placement.replicas(&fleet);
    let moved_elsewhere = after
        .iter()
        .filter(|r| {
            !replicas.contains(r)
                && !replicas
                    .iter()
                    .any(|b| b.group == r.group && b.partition == r.partition && b.node == r.node)
        })
        .count();
    println!("\nreplicas lost with `{victim}`: {lost}; replicas on new nodes after repair: {moved_elsewhere} (the minimum: only the lost ones move)");
    let violations_after = check(&fleet, &after);
    println!(
        "independent check after repair: {} violation(s)",
        violations_after.len()
    );

    println!(
        "\n== 4. plan the recovery: copies from survivors, throttled on every link they cross\n"
    );
    let node = fleet
        .topology
        .domain(failed)
        .node
        .ok_or_else(|| anyhow!("{victim} is not a node"))?;
    let plan_options = meridian_planner::Options {
        failed: vec![node],
        ..meridian_planner::Options::default()
    };
    let plan = meridian_planner::plan(
        &fleet,
        &solved.placement,
        &repaired.placement,
        &plan_options,
        0.0,
    );
    crate::plan_cmd::human(&fleet, &plan, 16, None);
    let replayed = meridian_planner::replay::replay(
        &fleet,
        &solved.placement,
        &repaired.placement,
        &plan_options,
        &plan,
    );
    crate::plan_cmd::replay_summary(&replayed, 4);
    let simulated_cleanly = simulate_datacenter()?;
    Ok(
        if violations.is_empty()
            && violations_after.is_empty()
            && repaired.is_complete()
            && plan.blocked.is_empty()
            && replayed.is_clean()
            && simulated_cleanly
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
