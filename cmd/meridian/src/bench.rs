//! `meridian bench`: measures the solver on generated fleets of growing size and writes a
//! markdown report. Each size runs in its own child process so its peak memory is its own.
//!
//! Timing lives here, in the shell: the core never reads a clock.

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};

use meridian_model::{Fleet, NodeId};
use meridian_solver::{Engine, Mode, Options};

#[derive(Args)]
pub struct BenchArgs {
    /// Replica counts to measure, comma-separated (nodes = replicas / 100).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 1_000_000])]
    pub sizes: Vec<usize>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How unbalanced the generated starting placement is (see `meridian gen --skew`).
    #[arg(long, default_value_t = 1.2)]
    pub skew: f64,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub report: Option<String>,
    /// Largest size at which to solve the LP relaxation bound (it grows with groups × racks).
    #[arg(long, default_value_t = 100_000)]
    pub lp_max: usize,
}

#[derive(Args)]
pub struct BenchOneArgs {
    #[arg(long)]
    pub replicas: usize,
    #[arg(long)]
    pub seed: u64,
    #[arg(long)]
    pub skew: f64,
    #[arg(long)]
    pub lp: bool,
}

/// One size's measurements (the child's JSON output).
#[derive(Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub nodes: usize,
    pub domains: usize,
    pub replicas: usize,
    pub dimensions: usize,
    pub generate_s: f64,
    pub parse_s: f64,
    pub full_solve_s: f64,
    pub full_placed: usize,
    /// Worst peak/lower-bound ratio per level after the full solve: (level, dimension, ratio).
    pub full_worst: Vec<(String, String, f64)>,
    /// The LP relaxation's worst ratio (no placement does better) and the time to solve it.
    pub relaxed: Option<(meridian_solver::relaxation::RelaxedBound, f64)>,
    pub engine_load_s: f64,
    pub repair_lost: usize,
    pub repair_engine_ms: f64,
    pub repair_stateless_s: f64,
    pub skewed_worst_before: f64,
    pub rebalance_s: f64,
    pub rebalance_worst_after: Vec<(String, String, f64)>,
    pub rebalance_moves: usize,
    pub rebalance_swaps: usize,
    pub rebalance_moved_gib: f64,
    /// Lower bound on the GiB any placement must move to reach the node-level peaks reached.
    pub rebalance_moved_gib_bound: f64,
    pub total_gib: f64,
    pub peak_rss_mib: f64,
    /// Plans for a rack drain and a zone evacuation from the full solve.
    pub plans: Vec<crate::bench_plan::PlanMeasurement>,
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Worst ratio per level, over dimensions.
fn worst_per_level(rows: &[meridian_solver::LevelQuality]) -> Vec<(String, String, f64)> {
    let mut worst: Vec<(String, String, f64)> = Vec::new();
    for row in rows {
        match worst.iter_mut().find(|(level, ..)| *level == row.level) {
            Some(entry) if entry.2 >= row.ratio => {}
            Some(entry) => *entry = (row.level.clone(), row.dimension.clone(), row.ratio),
            None => worst.push((row.level.clone(), row.dimension.clone(), row.ratio)),
        }
    }
    worst
}

pub fn run_one(args: BenchOneArgs) -> Result<ExitCode> {
    let spec = meridian_gen::GenSpec::new(args.replicas / 100, args.replicas, args.seed);
    let start = Instant::now();
    let yaml = meridian_gen::generate_yaml(&spec).map_err(|e| anyhow!("{}", e.message))?;
    let generate_s = seconds(start);
    let start = Instant::now();
    let fleet = Fleet::from_yaml(&yaml, "generated").map_err(|p| anyhow!("{p}"))?;
    let parse_s = seconds(start);
    drop(yaml);

    let start = Instant::now();
    let full = meridian_solver::solve(
        &fleet,
        &[],
        &Options {
            mode: Mode::Full,
            seed: args.seed,
            ..Options::default()
        },
    );
    let full_solve_s = seconds(start);
    if !full.is_complete() {
        bail!(
            "the generated fleet did not solve: {:?}",
            full.failures.first()
        );
    }
    let full_worst = worst_per_level(&meridian_solver::quality(&fleet, &full.placement));
    let relaxed = if args.lp {
        let start = Instant::now();
        let bound = meridian_solver::relaxation::relaxed_bound(&fleet).map_err(|e| anyhow!(e))?;
        Some((bound, seconds(start)))
    } else {
        None
    };

    // Repair after the busiest node fails: the in-memory engine, then the stateless path.
    // Nodes holding a pinned replica are passed over: a pin on a dead node cannot be repaired
    // (it is the operator's to lift), whatever the solver does.
    let mut per_node = vec![0usize; fleet.topology.nodes.len()];
    for slot in &full.placement.slots {
        if let Some(node) = slot.node() {
            per_node[node.index()] += 1;
        }
    }
    let mut pinned = vec![false; per_node.len()];
    for pin in fleet.groups.iter().flat_map(|g| &g.pins) {
        pinned[pin.node.index()] = true;
    }
    let busiest = NodeId(
        (0..per_node.len())
            .filter(|&n| !pinned[n])
            .max_by_key(|&n| (per_node[n], std::cmp::Reverse(n)))
            .unwrap_or(0) as u32,
    );
    let start = Instant::now();
    let mut engine = Engine::new(&fleet, &full.placement, args.seed);
    let engine_load_s = seconds(start);
    let start = Instant::now();
    let report = engine.fail_node(busiest);
    let repair_engine_ms = seconds(start) * 1000.0;
    if report.failed > 0 {
        bail!(
            "repair after a node failure left {} replicas unplaced",
            report.failed
        );
    }
    drop(engine);
    let current = full.placement.replicas(&fleet);
    let drain = vec![fleet.topology.node_domain(busiest)];
    let start = Instant::now();
    let stateless = meridian_solver::solve(
        &fleet,
        &current,
        &Options {
            mode: Mode::Repair,
            seed: args.seed,
            rebalance: false,
            drain,
            ..Options::default()
        },
    );
    let repair_stateless_s = seconds(start);
    if !stateless.is_complete() {
        bail!("stateless repair failed");
    }
    let mut plans = crate::bench_plan::measure_plans(&fleet, &full.placement, args.seed)?;
    drop(full);
    let zone_infeasible = plans
        .iter()
        .any(|p| p.infeasible.is_some() && p.change.starts_with("zone"));

    // Rebalance from a feasible but skewed start.
    let skewed = meridian_gen::skewed_placement(&fleet, args.seed, args.skew)
        .map_err(|e| anyhow!("{}", e.message))?;
    let skewed = skewed
        .resolve(&fleet, "skewed")
        .map_err(|p| anyhow!("{p}"))?
        .replicas;
    let (skewed_slots, _) = meridian_solver::current::to_slots(&fleet, &skewed);
    let skewed_worst_before = meridian_solver::quality(&fleet, &skewed_slots)
        .first()
        .map_or(0.0, |row| row.ratio);
    let start = Instant::now();
    let rebalanced = meridian_solver::solve(
        &fleet,
        &skewed,
        &Options {
            mode: Mode::Repair,
            seed: args.seed,
            ..Options::default()
        },
    );
    let rebalance_s = seconds(start);
    let after_rows = meridian_solver::quality(&fleet, &rebalanced.placement);
    let mut node_peaks = vec![f64::INFINITY; fleet.dims_count()];
    for row in after_rows.iter().filter(|row| row.level == "node") {
        if let Some(dim) = fleet.dims.get(&row.dimension) {
            node_peaks[dim.index()] = row.peak;
        }
    }
    let rebalance_moved_gib_bound =
        meridian_solver::movement_lower_bound(&fleet, &skewed_slots, &node_peaks);
    let total_gib = fleet
        .groups
        .iter()
        .map(|g| g.size_gib * g.slot_count() as f64)
        .sum();
    // Peak RSS is this size's solve: read before the extra fleet below exists.
    let peak_rss = peak_rss_mib();
    if zone_infeasible {
        plans.push(crate::bench_plan::evacuable_zone_plan(
            args.replicas,
            args.seed,
        )?);
    }
    let measurement = Measurement {
        nodes: fleet.topology.nodes.len(),
        domains: fleet.topology.domains.len(),
        replicas: fleet.slot_count,
        dimensions: fleet.dims_count(),
        generate_s,
        parse_s,
        full_solve_s,
        full_placed: fleet.slot_count,
        full_worst,
        engine_load_s,
        repair_lost: report.lost,
        repair_engine_ms,
        repair_stateless_s,
        skewed_worst_before,
        rebalance_s,
        rebalance_worst_after: worst_per_level(&meridian_solver::quality(
            &fleet,
            &rebalanced.placement,
        )),
        rebalance_moves: rebalanced.stats.rebalance_moves,
        rebalance_swaps: rebalanced.stats.leader_swaps,
        rebalance_moved_gib: rebalanced.stats.moved_gib,
        rebalance_moved_gib_bound,
        total_gib,
        relaxed,
        peak_rss_mib: peak_rss,
        plans,
    };
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("locating the meridian binary")?;
    let mut rows = Vec::new();
    for &replicas in &args.sizes {
        eprintln!("bench: {replicas} replicas ...");
        let output = Command::new(&exe)
            .args([
                "bench-one",
                "--replicas",
                &replicas.to_string(),
                "--seed",
                &args.seed.to_string(),
                "--skew",
                &args.skew.to_string(),
            ])
            .args((replicas <= args.lp_max).then_some("--lp"))
            .output()
            .context("running a bench child")?;
        if !output.status.success() {
            bail!(
                "bench at {replicas} replicas failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let measurement: Measurement =
            serde_json::from_slice(&output.stdout).context("reading a bench child's result")?;
        rows.push(measurement);
    }
    let report = render(&args, &rows);
    print!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).with_context(|| format!("cannot write `{path}`"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn levels(worst: &[(String, String, f64)]) -> String {
    worst
        .iter()
        .map(|(level, dim, ratio)| format!("{level} {ratio:.3} ({dim})"))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn render(args: &BenchArgs, rows: &[Measurement]) -> String {
    let mut out = String::new();
    let sizes: Vec<String> = args.sizes.iter().map(|s| s.to_string()).collect();
    out.push_str(&format!(
        "Command: `meridian bench --sizes {} --seed {} --skew {} --lp-max {}`\n\n",
        sizes.join(","),
        args.seed,
        args.skew,
        args.lp_max
    ));
    out.push_str("| replicas | nodes | domains | full solve | peak RSS | repair, engine | repair, stateless | worst peak/bound after full solve |\n|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for m in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} s | {:.0} MiB | {:.1} ms ({} lost) | {:.2} s | {} |\n",
            m.replicas,
            m.nodes,
            m.domains,
            m.full_solve_s,
            m.peak_rss_mib,
            m.repair_engine_ms,
            m.repair_lost,
            m.repair_stateless_s,
            levels(&m.full_worst)
        ));
    }
    out.push_str("\nRebalance from a feasible, skewed start (`meridian gen --skew`):\n\n| replicas | worst peak/bound before | after, per level | time | moves | leader hand-offs | data moved | must move at least |\n|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for m in rows {
        out.push_str(&format!(
            "| {} | {:.3} | {} | {:.2} s | {} | {} | {:.0} GiB of {:.0} ({:.1}%) | {:.0} GiB ({:.1}%) |\n",
            m.replicas,
            m.skewed_worst_before,
            levels(&m.rebalance_worst_after),
            m.rebalance_s,
            m.rebalance_moves,
            m.rebalance_swaps,
            m.rebalance_moved_gib,
            m.total_gib,
            100.0 * m.rebalance_moved_gib / m.total_gib.max(1e-9),
            m.rebalance_moved_gib_bound,
            100.0 * m.rebalance_moved_gib_bound / m.total_gib.max(1e-9)
        ));
    }
    out.push_str("\nAgainst the LP relaxation bound (`meridian_solver::relaxation`: no placement, even a fractional one, has a lower worst ratio):\n\n| replicas | worst ratio after full solve | LP bound | above the LP bound | LP size (variables × constraints, cells) | LP time |\n|---:|---:|---:|---:|---|---:|\n");
    for m in rows {
        let worst = m.full_worst.iter().map(|w| w.2).fold(0.0, f64::max);
        match &m.relaxed {
            Some((bound, time)) => out.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.1}% | {} × {}, {} cells | {:.2} s |\n",
                m.replicas,
                worst,
                bound.worst_ratio,
                100.0 * (worst / bound.worst_ratio - 1.0),
                bound.variables,
                bound.constraints,
                bound.cells,
                time
            )),
            None => out.push_str(&format!(
                "| {} | {:.3} | not computed (above --lp-max) | | | |\n",
                m.replicas, worst
            )),
        }
    }
    out.push_str("\nPlans (`meridian_planner::plan`, default throttles: 200 MB/s per copy, 2 copies per node) for a drain of the busiest rack and an evacuation of the busiest zone that can be evacuated; planner time only:\n\n| replicas | change | copies | steps | plan time | copies/s | makespan | lower bound | makespan / bound | bound set by |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for m in rows {
        for p in &m.plans {
            if let Some(why) = &p.infeasible {
                out.push_str(&format!(
                    "| {} | {} | — | — | — | — | — | — | — | not possible on this fleet: {} |\n",
                    m.replicas, p.change, why
                ));
                continue;
            }
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.2} s | {:.0} | {:.1} h | {:.1} h | {:.2} | {} |\n",
                m.replicas,
                p.change,
                p.copies,
                p.steps,
                p.plan_s,
                p.copies as f64 / p.plan_s.max(1e-9),
                p.makespan_s / 3600.0,
                p.bound_s / 3600.0,
                p.makespan_s / p.bound_s.max(1e-9),
                p.bottleneck
            ));
        }
    }
    out.push_str("\nAlso measured: generation and parsing (not part of the solve):\n\n| replicas | generate | parse + validate | load into engine |\n|---:|---:|---:|---:|\n");
    for m in rows {
        out.push_str(&format!(
            "| {} | {:.2} s | {:.2} s | {:.2} s |\n",
            m.replicas, m.generate_s, m.parse_s, m.engine_load_s
        ));
    }
    out
}
