//! One function per subcommand: parse files, call the pure core, print.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};

use meridian_model::check::check as check_placement;
use meridian_model::DomainId;
use meridian_solver::{Mode, Options};

use crate::{input, report};

#[derive(Args)]
pub struct ValidateArgs {
    /// Fleet file (YAML).
    pub fleet: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Place everything from scratch (the current placement only weighs movement).
    Full,
    /// Keep what is valid, place what is missing.
    Repair,
}

#[derive(Args)]
pub struct SolveArgs {
    /// Fleet file (YAML).
    pub fleet: String,
    /// Current placement (JSON, as written by `solve --out`).
    #[arg(long)]
    pub current: Option<String>,
    /// Default: `repair` with --current, `full` without.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Skip the rebalance pass (only place what is missing).
    #[arg(long)]
    pub no_rebalance: bool,
    /// Stop rebalancing when every domain is within this fraction of its level's lower bound.
    #[arg(long, default_value_t = 0.02)]
    pub tolerance: f64,
    /// Upper bound on rebalance moves.
    #[arg(long, default_value_t = 1_000_000)]
    pub moves_max: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Empty a domain (node, rack, pdu, ...) of replicas; repeatable.
    #[arg(long)]
    pub drain: Vec<String>,
    /// Treat a node as failed: its replicas are lost and re-placed; repeatable.
    #[arg(long)]
    pub fail: Vec<String>,
    /// Write the target placement here (JSON).
    #[arg(long)]
    pub out: Option<String>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    pub fleet: String,
    pub placement: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExplainArgs {
    pub fleet: String,
    pub placement: String,
    /// GROUP/PARTITION[/REPLICA], e.g. orders-db/3/0 (replica 0 is the leader where there is one).
    pub replica: String,
    #[arg(long)]
    pub json: bool,
}

pub fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let text = input::read(&args.fleet)?;
    match meridian_model::Fleet::from_yaml(&text, &args.fleet) {
        Ok(fleet) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": true, "nodes": fleet.topology.nodes.len(), "domains": fleet.topology.domains.len(), "groups": fleet.groups.len(), "replicas": fleet.slot_count })
                );
            } else {
                println!(
                    "{}: valid — {} nodes, {} domains, {} groups, {} replicas",
                    args.fleet,
                    fleet.topology.nodes.len(),
                    fleet.topology.domains.len(),
                    fleet.groups.len(),
                    fleet.slot_count
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "valid": false, "problems": problems.0 })
                );
            } else {
                eprint!("{problems}");
            }
            Ok(ExitCode::from(2))
        }
    }
}

pub fn domains(
    fleet: &meridian_model::Fleet,
    names: &[String],
    what: &str,
) -> Result<Vec<DomainId>> {
    names
        .iter()
        .map(|name| {
            fleet
                .topology
                .domain_by_name(name)
                .ok_or_else(|| anyhow!("--{what} `{name}`: no such domain or node"))
        })
        .collect()
}

pub fn solve(args: SolveArgs) -> Result<ExitCode> {
    let fleet = input::fleet(&args.fleet)?;
    let mut notes = Vec::new();
    let current = match &args.current {
        Some(path) => {
            let resolved = input::placement(&fleet, path)?;
            notes.extend(resolved.dropped);
            resolved.replicas
        }
        None => Vec::new(),
    };
    let failed = domains(&fleet, &args.fail, "fail")?;
    if let Some(bad) = failed
        .iter()
        .find(|d| fleet.topology.domain(**d).node.is_none())
    {
        return Err(anyhow!(
            "--fail `{}` is not a node (use --drain for larger domains)",
            fleet.topology.domain(*bad).name
        ));
    }
    let mut drain = domains(&fleet, &args.drain, "drain")?;
    drain.extend(failed);
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        return Err(anyhow!("--tolerance must be a number ≥ 0"));
    }
    let mode = match (args.mode, args.current.is_some()) {
        (Some(ModeArg::Full), _) | (None, false) => Mode::Full,
        (Some(ModeArg::Repair), _) | (None, true) => Mode::Repair,
    };
    let options = Options {
        mode,
        seed: args.seed,
        rebalance: !args.no_rebalance,
        tolerance: args.tolerance,
        moves_max: args.moves_max,
        drain,
        cordon: Vec::new(),
    };
    let mut solution = meridian_solver::solve(&fleet, &current, &options);
    solution.notes.splice(0..0, notes);
    let doc = solution.placement.to_doc(&fleet);
    if let Some(out) = &args.out {
        let text = serde_json::to_string(&doc).context("serializing the placement")?;
        std::fs::write(out, text).with_context(|| format!("cannot write `{out}`"))?;
    }
    let quality = meridian_solver::quality(&fleet, &solution.placement);
    if args.json {
        let value = serde_json::json!({ "stats": solution.stats, "failures": solution.failures, "notes": solution.notes, "quality": quality, "placement": doc });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        report::solution(&fleet, &solution, &quality, args.out.as_deref());
    }
    Ok(if solution.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn check(args: CheckArgs) -> Result<ExitCode> {
    let fleet = input::fleet(&args.fleet)?;
    let resolved = input::placement(&fleet, &args.placement)?;
    let violations = check_placement(&fleet, &resolved.replicas);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "violations": violations, "dropped": resolved.dropped })
            )?
        );
    } else {
        for note in &resolved.dropped {
            println!("note: {note}");
        }
        for violation in &violations {
            println!("{:?}: {}", violation.kind, violation.message);
        }
        println!(
            "{} replicas checked, {} violation(s)",
            resolved.replicas.len(),
            violations.len()
        );
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let fleet = input::fleet(&args.fleet)?;
    let resolved = input::placement(&fleet, &args.placement)?;
    let (placement, _) = meridian_solver::current::to_slots(&fleet, &resolved.replicas);
    let (group, partition, index) = input::replica_ref(&args.replica)?;
    let explanation = meridian_solver::explain(&fleet, &placement, &group, partition, index)
        .map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        report::explanation(&explanation);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct GenArgs {
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 400)]
    pub nodes: usize,
    /// Replicas over all groups (the generator comes close, not always exact).
    #[arg(long, default_value_t = 20_000)]
    pub replicas: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Regions in the fleet.
    #[arg(long)]
    pub regions: Option<usize>,
    /// Total steady demand over capacity in the busiest dimensions (e.g. 0.6).
    #[arg(long)]
    pub utilization: Option<f64>,
    /// Write the fleet here (YAML); stdout when absent.
    #[arg(long)]
    pub out: Option<String>,
    /// Also write a feasible but badly balanced starting placement here (JSON).
    #[arg(long)]
    pub skewed_out: Option<String>,
    /// How strongly the starting placement piles onto few nodes (Zipf exponent).
    #[arg(long, default_value_t = 1.2)]
    pub skew: f64,
}

pub fn gen(args: GenArgs) -> Result<ExitCode> {
    let mut spec = meridian_gen::GenSpec::new(args.nodes, args.replicas, args.seed);
    if let Some(regions) = args.regions {
        spec.regions = regions;
    }
    if let Some(utilization) = args.utilization {
        spec.target_utilization = utilization;
    }
    let yaml = meridian_gen::generate_yaml(&spec).map_err(|e| anyhow!("{}", e.message))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &yaml).with_context(|| format!("cannot write `{path}`"))?
        }
        None => print!("{yaml}"),
    }
    if let Some(path) = &args.skewed_out {
        let fleet = meridian_model::Fleet::from_yaml(&yaml, "generated")
            .map_err(|p| anyhow!("the generator wrote an invalid fleet (a bug): {p}"))?;
        let doc = meridian_gen::skewed_placement(&fleet, args.seed, args.skew)
            .map_err(|e| anyhow!("{}", e.message))?;
        std::fs::write(path, serde_json::to_string(&doc)?)
            .with_context(|| format!("cannot write `{path}`"))?;
    }
    Ok(ExitCode::SUCCESS)
}
