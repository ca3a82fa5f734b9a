//! A whole simulation: the initial placement every strategy starts from, each strategy's run
//! on its own world (two at a time on their own threads — they share nothing mutable, so
//! the result does not depend on which runs first), and the events that happened.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use meridian_model::placement::Replica;
use meridian_model::{GroupId, Placement, RegionId};
use meridian_solver::{Mode, Options as SolverOptions};

use crate::engine::{self, Outcome, Setup};
use crate::scenario::Scenario;
use crate::strategies;
use crate::strategy::Strategy;
use crate::view::fleet_view;

/// Everything a report needs.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub scenario: String,
    pub fleet: String,
    pub nodes: usize,
    pub replicas: usize,
    pub duration_s: f64,
    pub tick_s: f64,
    pub seed: u64,
    /// Workload and fault events, in time order: `(start, end, description)`.
    pub events: Vec<(f64, Option<f64>, String)>,
    pub outcomes: Vec<Outcome>,
}

/// Access by region as shares that sum to 1 (empty if nobody reads).
pub fn shares(access: &[(RegionId, f64)]) -> Vec<(RegionId, f64)> {
    let total: f64 = access.iter().map(|a| a.1).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    access.iter().map(|&(r, a)| (r, a / total)).collect()
}

/// Threads strategies run on.
const THREADS: usize = 2;

/// The placement every strategy starts from: the solver's, for the heat and groups of t = 0.
pub fn initial_placement(scenario: &Scenario) -> Result<Placement, String> {
    let base = &scenario.fleet;
    let snapshot = scenario.workload.at(0.0);
    let scaling = scenario.workload.heat_scaling();
    let heat: Vec<Vec<Vec<f64>>> = base
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let load = snapshot.group(GroupId(g as u32));
            group.heat.iter().map(|h| scaling.apply(h, load)).collect()
        })
        .collect();
    let active: Vec<bool> = (0..base.groups.len())
        .map(|g| snapshot.active(GroupId(g as u32)))
        .collect();
    let access: Vec<Vec<(RegionId, f64)>> = (0..base.groups.len())
        .map(|g| shares(&snapshot.access_by_region(GroupId(g as u32))))
        .collect();
    let view = fleet_view(base, &heat, &access, &active);
    let solution = meridian_solver::solve(
        &view,
        &[],
        &SolverOptions {
            mode: Mode::Full,
            seed: scenario.spec.seed,
            ..SolverOptions::default()
        },
    );
    if let Some(f) = solution.failures.first() {
        return Err(format!(
            "the fleet cannot be placed at t=0: {}/{} {}: {}",
            f.group, f.partition, f.state, f.summary
        ));
    }
    let replicas: Vec<Replica> = solution.placement.replicas(&view);
    let (placement, _) = meridian_solver::current::to_slots(base, &replicas);
    Ok(placement)
}

fn make_strategy(
    name: &str,
    scenario: &Scenario,
    workload: &Arc<crate::workload::Workload>,
) -> Box<dyn Strategy> {
    use strategies::unified::{Foresight, Unified, UnifiedOptions};
    let options = UnifiedOptions {
        seed: scenario.spec.seed,
        ..UnifiedOptions::default()
    };
    match name {
        "unified" => Box::new(Unified::new(options)),
        "oracle" => Box::new(Unified::oracle(
            options,
            Foresight {
                workload: Arc::clone(workload),
                horizon_s: scenario.spec.oracle_horizon.seconds(),
                step_s: scenario.spec.control_interval.seconds(),
            },
        )),
        "reactive" => Box::new(strategies::reactive::Reactive::new()),
        "siloed" => Box::new(strategies::siloed::Siloed::new()),
        _ => Box::new(strategies::fixed::Fixed),
    }
}

/// Runs every strategy the scenario names; `progress(strategy, share done)`.
pub fn simulate(
    scenario: Scenario,
    progress: &(dyn Fn(&str, f64) + Sync),
) -> Result<Results, String> {
    let initial = initial_placement(&scenario)?;
    let workload = Arc::new(scenario.workload.clone());
    let spec = &scenario.spec;
    let setup = Setup {
        base: &scenario.fleet,
        initial: &initial,
        workload: &workload,
        faults: &scenario.faults,
        duration_s: spec.duration.seconds(),
        tick_s: spec.tick.seconds(),
        control_interval_s: spec.control_interval.seconds(),
        failover_s: spec.failover.seconds(),
        sample_s: spec.sample.seconds(),
    };
    let names = &spec.strategies;
    let outcomes: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; names.len()]);
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..THREADS.min(names.len()) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(name) = names.get(i) else { break };
                let mut strategy = make_strategy(name, &scenario, &workload);
                let outcome = engine::run(&setup, strategy.as_mut(), &mut |share| {
                    progress(name, share)
                });
                outcomes.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
            });
        }
    });
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let mut events: Vec<(f64, Option<f64>, String)> = scenario
        .workload
        .events()
        .iter()
        .map(|e| (e.start_s, e.end_s, e.description.clone()))
        .chain(
            scenario
                .faults
                .events()
                .iter()
                .map(|e| (e.start_s, e.end_s, e.description.clone())),
        )
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    Ok(Results {
        scenario: spec.name.clone(),
        fleet: scenario.fleet.name.clone(),
        nodes: scenario.fleet.topology.nodes.len(),
        replicas: scenario.fleet.replica_count(),
        duration_s: spec.duration.seconds(),
        tick_s: spec.tick.seconds(),
        seed: spec.seed,
        events,
        outcomes,
    })
}
