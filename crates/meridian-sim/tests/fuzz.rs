//! Fuzzing by simulation (VOPR-style): random scenarios — random workloads, random fault
//! storms, random fleets — with Meridian's strategy inside; no invariant may ever break. A
//! failing seed is printed with the scenario it made; add it to `REGRESSIONS` so it is run
//! forever after.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use meridian_sim::scenario::Scenario;
use meridian_sim::simulate::simulate;

/// Seeds that once failed: 10 — a planned promotion ran after the product had elected a
/// leader on its own (two leaders); agents now refuse a promotion while another leads.
const REGRESSIONS: [u64; 1] = [10];
/// Random seeds per test run; `MERIDIAN_FUZZ_SEEDS` overrides, for long soaks.
const SEEDS: u64 = 40;

/// The scenario's fleet line, and how many regions the fleet has.
fn fleet_source(rng: &mut ChaCha8Rng) -> (String, usize) {
    if rng.random_bool(0.5) {
        ("fleet: ../../../examples/small.yaml".to_string(), 2)
    } else {
        let nodes = rng.random_range(24..=60);
        let replicas = nodes * rng.random_range(8..=20);
        let regions = rng.random_range(1..=2);
        let utilization = rng.random_range(0.3..0.6);
        let line = format!(
            "gen: {{ nodes: {nodes}, replicas: {replicas}, seed: {}, regions: {regions}, utilization: {utilization:.2} }}",
            rng.random_range(0..1000)
        );
        (line, regions)
    }
}

/// A random scenario: 6–12 hours, random seasonality and crowds, a random fault storm.
fn scenario(seed: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (fleet, regions) = fleet_source(&mut rng);
    let hours = rng.random_range(6..=12);
    let rate = |rng: &mut ChaCha8Rng, max: f64| rng.random_range(0.0..max);
    format!(
        "name: fuzz-{seed}
{fleet}
duration: {hours}h
tick: 2m
control_interval: 10m
sample: 1h
seed: {seed}
strategies: [unified, oracle]
workload:
  default: {{ daily_amplitude: {:.2}, noise: {:.2}, trend_per_day: {:.2} }}
  random_flash_crowds: {{ per_day: {:.1}, factor_min: 1.5, factor_max: 3, duration_min: 10m, duration_max: 1h }}
faults:
  random:
    node_crashes_per_day: {:.1}
    pdu_losses_per_day: {:.1}
    link_degradations_per_day: {:.1}
    slow_disks_per_day: {:.1}
    telemetry_losses_per_day: {:.1}
    controller_crashes_per_day: {:.1}
    region_partitions_per_day: {:.1}
    mean_recovery: 40m
",
        rng.random_range(0.0..0.4),
        rng.random_range(0.0..0.1),
        rng.random_range(-0.05..0.1),
        rate(&mut rng, 6.0),
        rate(&mut rng, 12.0),
        rate(&mut rng, 3.0),
        rate(&mut rng, 6.0),
        rate(&mut rng, 4.0),
        rate(&mut rng, 4.0),
        rate(&mut rng, 4.0),
        if regions > 1 { rate(&mut rng, 3.0) } else { 0.0 },
    )
}

/// Whether the seed ran (false: its random fleet could not even be placed at t=0).
fn check(seed: u64) -> Result<bool, String> {
    let text = scenario(seed);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz.yaml");
    let scenario = match Scenario::from_yaml(&text, file) {
        Ok(s) => s,
        // A random fleet that cannot hold its own workload is not a finding.
        Err(e) => return Err(format!("seed {seed}: scenario did not load: {e}\n{text}")),
    };
    let results = match simulate(scenario, &|_, _| {}) {
        Ok(r) => r,
        Err(e) if e.contains("cannot be placed at t=0") => return Ok(false),
        Err(e) => return Err(format!("seed {seed}: {e}\n{text}")),
    };
    for outcome in &results.outcomes {
        let s = &outcome.summary;
        if s.invariant_violations > 0 {
            return Err(format!(
                "seed {seed}: {} broke {} invariants, first: {:?}\nscenario:\n{text}",
                outcome.strategy, s.invariant_violations, s.violations
            ));
        }
        println!(
            "seed {seed} {}: {} copies, {} decisions, {:.0} partition-s below min",
            outcome.strategy, s.copies, s.decisions, s.below_min_s
        );
    }
    Ok(true)
}

#[test]
fn meridian_never_breaks_an_invariant_in_random_storms() {
    let seeds: u64 = std::env::var("MERIDIAN_FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let mut failures = Vec::new();
    let mut ran = 0;
    for seed in REGRESSIONS.into_iter().chain(1..=seeds) {
        match check(seed) {
            Ok(true) => ran += 1,
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        ran * 2 >= seeds,
        "only {ran} of {seeds} random scenarios could be placed at all: the fuzzer tests nothing"
    );
}
