//! `meridian plan`: how to get from the current placement to a target, step by step.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use meridian_model::{Fleet, NodeId, Placement};
use meridian_planner::doc::describe_step;
use meridian_planner::{Options, Plan};
use meridian_solver::Mode;

use crate::commands::domains;
use crate::input;

#[derive(Args)]
pub struct PlanArgs {
    /// Fleet file (YAML).
    pub fleet: String,
    /// Current placement (JSON, as `solve --out` writes). Default: a full solve of the fleet.
    #[arg(long)]
    pub current: Option<String>,
    /// Target placement. Default: the solver's repair of the current placement after the
    /// changes below (--drain, --fail), with rebalancing unless --no-rebalance.
    #[arg(long)]
    pub target: Option<String>,
    /// Empty a domain (node, rack, pdu, ...); repeatable.
    #[arg(long)]
    pub drain: Vec<String>,
    /// A node has failed: its replicas are lost and re-created from survivors; repeatable.
    #[arg(long)]
    pub fail: Vec<String>,
    /// Only restore what the changes require; do not rebalance.
    #[arg(long)]
    pub no_rebalance: bool,
    /// Fastest a single copy may run, MB/s.
    #[arg(long, default_value_t = 200.0)]
    pub rate_max: f64,
    /// Slowest a copy may run; below this it waits for capacity, MB/s.
    #[arg(long, default_value_t = 10.0)]
    pub rate_min: f64,
    /// Copies in flight touching one node.
    #[arg(long, default_value_t = 2)]
    pub moves_per_node: u32,
    /// Copies in flight through one domain of a level, as LEVEL=N (e.g. rack=4); repeatable.
    #[arg(long)]
    pub moves_per_domain: Vec<String>,
    /// Bytes all copies may move per hour, in GB.
    #[arg(long)]
    pub gb_per_hour: Option<f64>,
    /// Priority of a product's steps, as PRODUCT=N (higher first); repeatable.
    #[arg(long)]
    pub priority: Vec<String>,
    /// A maintenance window, START-END in seconds on the plan's clock; repeatable. Copies that
    /// restore lost redundancy ignore windows.
    #[arg(long)]
    pub window: Vec<String>,
    /// The plan's start time, seconds.
    #[arg(long, default_value_t = 0.0)]
    pub now: f64,
    /// Seed for the solver when it computes the current or target placement.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Say why step N starts when it does and runs at its rate.
    #[arg(long)]
    pub explain: Option<u32>,
    /// Print every step (default: the first 40).
    #[arg(long)]
    pub all: bool,
    /// Print the load over time of the resources whose name contains this text (e.g.
    /// `rack r07`, `spine`, `link`); repeatable.
    #[arg(long)]
    pub usage: Vec<String>,
    /// Write the plan here (JSON).
    #[arg(long)]
    pub out: Option<String>,
    /// Print the whole plan as JSON.
    #[arg(long)]
    pub json: bool,
}

fn pair<'a>(text: &'a str, what: &str) -> Result<(&'a str, &'a str)> {
    text.split_once('=')
        .ok_or_else(|| anyhow!("--{what} `{text}` must be written NAME=VALUE"))
}

fn options(fleet: &Fleet, args: &PlanArgs, failed: Vec<NodeId>) -> Result<Options> {
    let positive = |value: f64, what: &str| {
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(anyhow!("--{what} must be a number > 0"))
        }
    };
    let rate_max = positive(args.rate_max, "rate-max")?;
    let rate_min = positive(args.rate_min, "rate-min")?;
    if rate_min > rate_max {
        bail!("--rate-min ({rate_min}) is above --rate-max ({rate_max})");
    }
    if args.moves_per_node == 0 {
        bail!("--moves-per-node must be at least 1");
    }
    let mut moves_per_domain_max = Vec::new();
    for text in &args.moves_per_domain {
        let (level, n) = pair(text, "moves-per-domain")?;
        let level_id = fleet
            .topology
            .level_by_name(level)
            .ok_or_else(|| anyhow!("--moves-per-domain `{text}`: no level `{level}`"))?;
        let n: u32 =
            n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                anyhow!("--moves-per-domain `{text}`: N must be a whole number ≥ 1")
            })?;
        moves_per_domain_max.push((level_id, n));
    }
    let mut product_priority = Vec::new();
    for text in &args.priority {
        let (product, n) = pair(text, "priority")?;
        let id = fleet
            .products
            .iter()
            .position(|p| p.name == product)
            .ok_or_else(|| anyhow!("--priority `{text}`: no product `{product}`"))?;
        let n: i32 = n
            .parse()
            .map_err(|_| anyhow!("--priority `{text}`: N must be a whole number"))?;
        product_priority.push((meridian_model::ProductId(id as u16), n));
    }
    let mut windows = Vec::new();
    for text in &args.window {
        let bad = || anyhow!("--window `{text}` must be START-END in seconds, START < END");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let (a, b): (f64, f64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(bad());
        }
        windows.push((a, b));
    }
    let bytes_per_hour_max = match args.gb_per_hour {
        Some(gb) => Some(positive(gb, "gb-per-hour")? * 1e9),
        None => None,
    };
    Ok(Options {
        rate_max,
        rate_min,
        moves_per_node_max: args.moves_per_node,
        moves_per_domain_max,
        bytes_per_hour_max,
        product_priority,
        windows,
        failed,
        in_flight: Vec::new(),
    })
}

fn load_placement(fleet: &Fleet, path: &str) -> Result<Placement> {
    let resolved = input::placement(fleet, path)?;
    let (placement, surplus) = meridian_solver::current::to_slots(fleet, &resolved.replicas);
    if !surplus.is_empty() {
        bail!(
            "{path}: {} replicas beyond their partitions' counts",
            surplus.len()
        );
    }
    Ok(placement)
}

pub fn run(args: PlanArgs) -> Result<ExitCode> {
    let fleet = input::fleet(&args.fleet)?;
    let failed_domains = domains(&fleet, &args.fail, "fail")?;
    let mut failed = Vec::new();
    for d in &failed_domains {
        match fleet.topology.domain(*d).node {
            Some(node) => failed.push(node),
            None => bail!(
                "--fail `{}` is not a node (use --drain for larger domains)",
                fleet.topology.domain(*d).name
            ),
        }
    }
    let options = options(&fleet, &args, failed)?;
    let current = match &args.current {
        Some(path) => load_placement(&fleet, path)?,
        None => {
            let solved = meridian_solver::solve(
                &fleet,
                &[],
                &meridian_solver::Options {
                    mode: Mode::Full,
                    seed: args.seed,
                    ..Default::default()
                },
            );
            if !solved.is_complete() {
                bail!("the fleet has no complete placement to start from (see `meridian solve`)");
            }
            solved.placement
        }
    };
    let target = match &args.target {
        Some(path) => load_placement(&fleet, path)?,
        None => {
            let mut drain = domains(&fleet, &args.drain, "drain")?;
            drain.extend(failed_domains);
            let solved = meridian_solver::solve(
                &fleet,
                &current.replicas(&fleet),
                &meridian_solver::Options {
                    mode: Mode::Repair,
                    seed: args.seed,
                    rebalance: !args.no_rebalance,
                    drain,
                    ..Default::default()
                },
            );
            if !solved.is_complete() {
                let first = solved
                    .failures
                    .first()
                    .map(|f| format!("{f:?}"))
                    .unwrap_or_default();
                bail!(
                    "no target placement satisfies every constraint after these changes: {first}"
                );
            }
            solved.placement
        }
    };
    let plan = meridian_planner::plan(&fleet, &current, &target, &options, args.now);
    let doc = plan.to_doc(&fleet);
    if let Some(out) = &args.out {
        let text = serde_json::to_string(&doc).context("serializing the plan")?;
        std::fs::write(out, text).with_context(|| format!("cannot write `{out}`"))?;
    }
    if let Some(id) = args.explain {
        let step = plan
            .step(id)
            .ok_or_else(|| anyhow!("--explain {id}: the plan has {} steps", plan.steps.len()))?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&doc.steps[step.id as usize])?
            );
        } else {
            explain(&fleet, &plan, id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = meridian_planner::replay::replay(&fleet, &current, &target, &options, &plan);
    if args.json {
        let value = serde_json::json!({ "plan": doc, "replay": report });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        human(
            &fleet,
            &plan,
            if args.all { usize::MAX } else { 40 },
            args.out.as_deref(),
        );
        replay_summary(&report, 6);
        for wanted in &args.usage {
            usage_over_time(&report, &plan, wanted);
        }
    }
    Ok(if plan.blocked.is_empty() && report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The independent replay's verdict and the resources the plan's copies load hardest.
pub fn replay_summary(report: &meridian_planner::replay::Report, busiest: usize) {
    if report.is_clean() {
        println!("independent replay: every invariant holds at every instant (capacity, min serving replicas, one leader, residency, legal transitions)");
    } else {
        println!(
            "independent replay: {} violation(s)",
            report.violations.len() + report.omitted
        );
        for v in report.violations.iter().take(10) {
            println!("  t={:.0}s: {}", v.time, v.message);
        }
    }
    let mut usage: Vec<&meridian_planner::replay::Usage> = report
        .usage
        .iter()
        .filter(|u| u.limit.is_finite() && u.limit > 0.0)
        .collect();
    usage.sort_by(|a, b| {
        (b.peak / b.limit)
            .total_cmp(&(a.peak / a.limit))
            .then(a.name.cmp(&b.name))
    });
    if !usage.is_empty() {
        println!("busiest resources the copies cross (peak during the plan, of the limit):");
        for u in usage.into_iter().take(busiest) {
            let start = u.points.first().map_or(0.0, |p| p.1);
            println!(
                "  {:<36} {:>5.1}% at the start, peak {:>5.1}%",
                u.name,
                100.0 * start / u.limit,
                100.0 * u.peak / u.limit
            );
        }
    }
}

/// The load of every resource whose name contains `wanted`, at each instant it changes.
fn usage_over_time(report: &meridian_planner::replay::Report, plan: &Plan, wanted: &str) {
    let matching: Vec<_> = report
        .usage
        .iter()
        .filter(|u| u.name.contains(wanted))
        .collect();
    if matching.is_empty() {
        println!("usage `{wanted}`: no resource of that name carries a copy in this plan");
    }
    for u in matching {
        if u.limit.is_finite() {
            println!("{} over the plan (limit {:.0}):", u.name, u.limit);
        } else {
            println!("{} over the plan (no limit set):", u.name);
        }
        for &(t, load) in &u.points {
            let share = if u.limit.is_finite() && u.limit > 0.0 {
                load / u.limit
            } else {
                0.0
            };
            println!(
                "  {:>9} {:>12.0} {:>6.1}% {}",
                duration(t - plan.start),
                load,
                100.0 * share,
                "#".repeat((share * 40.0).round().clamp(0.0, 60.0) as usize)
            );
        }
    }
}

pub fn human(fleet: &Fleet, plan: &Plan, shown: usize, out: Option<&str>) {
    let copies = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, meridian_planner::Action::Replicate { .. }))
        .count();
    println!(
        "plan for `{}`: {} steps ({} copies, {:.1} GB), makespan {}, lower bound {} ({})",
        fleet.name,
        plan.steps.len(),
        copies,
        plan.bytes / 1e9,
        duration(plan.makespan()),
        duration(plan.bound.seconds),
        plan.bound.bottleneck
    );
    println!("  {:>5} {:>9} {:>9}  step", "id", "start", "end");
    for step in plan.steps.iter().take(shown) {
        println!(
            "  {:>5} {:>9} {:>9}  {}",
            step.id,
            duration(step.start - plan.start),
            duration(step.end - plan.start),
            describe_step(fleet, step)
        );
    }
    if plan.steps.len() > shown {
        println!("  ... {} more (--all, or --json)", plan.steps.len() - shown);
    }
    for blocked in &plan.blocked {
        println!(
            "blocked: {}/{}: {} — {}",
            fleet.group(blocked.group).name,
            blocked.partition,
            blocked.what,
            blocked.why
        );
    }
    if let Some(out) = out {
        println!("plan written to {out}");
    }
}

fn explain(fleet: &Fleet, plan: &Plan, id: u32) {
    let Some(step) = plan.step(id) else { return };
    println!("step {id}: {}", describe_step(fleet, step));
    println!(
        "  runs {} .. {} (plan time)",
        duration(step.start - plan.start),
        duration(step.end - plan.start)
    );
    let reason = &step.reason;
    if reason.after.is_empty() {
        println!("  ordering: depends on no earlier step");
    } else {
        println!("  ordering: after");
        for &before in &reason.after {
            if let Some(b) = plan.step(before) {
                println!("    step {before}: {}", describe_step(fleet, b));
            }
        }
    }
    match &reason.waited_for {
        Some(why) => println!("  waited for: {why}"),
        None => println!("  waited for: nothing — it ran as soon as it was ready"),
    }
    if let meridian_planner::Action::Replicate { rate, loads, .. } = &step.action {
        match &reason.rate_limited_by {
            Some(why) => println!("  rate {rate:.0} MB/s, limited by {why}"),
            None => println!("  rate {rate:.0} MB/s (rate_max)"),
        }
        println!("  loads while it runs:");
        for load in loads {
            println!(
                "    {:<40} +{:.0}",
                meridian_planner::doc::resource_name(fleet, load.resource),
                load.amount
            );
        }
    }
    if !step.burst.is_empty() {
        println!("  transition burst until it ends:");
        for load in &step.burst {
            println!(
                "    {:<40} +{:.0}",
                meridian_planner::doc::resource_name(fleet, load.resource),
                load.amount
            );
        }
    }
    println!("  priority: {}", reason.priority);
}

/// `95 s`, `12m05s`, `3h20m`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}
