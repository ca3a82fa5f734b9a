//! `meridian sim`: run a scenario with every strategy it names and write the report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use clap::Args;

use meridian_sim::scenario::Scenario;

#[derive(Args)]
pub struct SimArgs {
    /// Scenario file (YAML; docs/sim-scenario.md).
    pub scenario: String,
    /// Directory for the report (report.md, results.json, plots); created if missing.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only these strategies (comma-separated), overriding the scenario's list.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
}

/// Progress on standard error, one line per strategy, only when someone is watching.
fn progress_printer() -> impl Fn(&str, f64) + Sync {
    let shown = Mutex::new(Vec::<(String, u32)>::new());
    let terminal = std::io::stderr().is_terminal();
    move |name: &str, share: f64| {
        if !terminal {
            return;
        }
        let percent = (share * 100.0) as u32;
        let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
        match shown.iter_mut().find(|(n, _)| n == name) {
            Some((_, p)) if *p / 10 == percent / 10 => return,
            Some((_, p)) => *p = percent,
            None => shown.push((name.to_string(), percent)),
        }
        let line: Vec<String> = shown.iter().map(|(n, p)| format!("{n} {p:>3}%")).collect();
        eprint!("\r  {}", line.join("  "));
    }
}

pub fn run(args: SimArgs) -> Result<ExitCode> {
    let mut scenario = Scenario::read(&args.scenario).map_err(|e| anyhow!("{e}"))?;
    if !args.strategies.is_empty() {
        for name in &args.strategies {
            if !meridian_sim::scenario::STRATEGIES.contains(&name.as_str()) {
                return Err(anyhow!(
                    "--strategies: unknown strategy `{name}` (known: {})",
                    meridian_sim::scenario::STRATEGIES.join(", ")
                ));
            }
        }
        scenario.spec.strategies = args.strategies.clone();
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let command = command.replacen(&std::env::args().next().unwrap_or_default(), "meridian", 1);
    let progress = progress_printer();
    let results =
        meridian_sim::simulate::simulate(scenario, &progress).map_err(|e| anyhow!("{e}"))?;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let plots = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
            let plots = meridian_sim::plots::write_plots(&results, dir)
                .with_context(|| format!("cannot write plots into `{}`", dir.display()))?;
            let json = serde_json::to_string_pretty(&results)?;
            std::fs::write(dir.join("results.json"), json)?;
            plots
        }
        None => Vec::new(),
    };
    let markdown = meridian_sim::report::markdown(&results, &command, &plots);
    if let Some(dir) = &args.out {
        std::fs::write(dir.join("report.md"), &markdown)?;
    }
    print!("{markdown}");
    let unified_broke = results.outcomes.iter().any(|o| {
        matches!(o.strategy.as_str(), "unified" | "oracle") && o.summary.invariant_violations > 0
    });
    Ok(if unified_broke {
        eprintln!("error: Meridian's strategy violated an invariant (a bug): see the report");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
