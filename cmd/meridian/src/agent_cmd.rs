//! `meridian agent`: the node agent (see docs/control-plane.md), and `meridian workload`, a
//! stand-in workload process for demos and tests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration file (YAML; see crates/meridian-agent/src/config.rs).
    #[arg(long)]
    pub config: PathBuf,
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    crate::logging::init();
    let config =
        meridian_agent::AgentConfig::from_yaml_file(&args.config).map_err(|e| anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(meridian_agent::run(
            config,
            crate::logging::shutdown_signal(),
        ))
        .map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct WorkloadArgs {
    /// The replica's directory: `ready` is written there once started.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long)]
    pub state: String,
}

/// A replica that does nothing but exist: marks itself ready (for the agent's health check)
/// and waits to be stopped.
pub fn workload(args: WorkloadArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    std::fs::write(args.dir.join("ready"), format!("{}\n", args.state))
        .with_context(|| format!("writing {}/ready", args.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::logging::shutdown_signal());
    Ok(ExitCode::SUCCESS)
}
