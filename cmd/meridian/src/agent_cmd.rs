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

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Who the token is for (shown in the audit log).
    #[arg(long)]
    pub name: String,
    /// read, operator, admin or agent.
    #[arg(long)]
    pub role: String,
    /// The node an agent token may sync as.
    #[arg(long)]
    pub node: Option<String>,
}

/// Prints a new random token, and the tokens-file entry that admits it by its SHA-256 (so the
/// file holds no secret).
pub fn token(args: TokenArgs) -> Result<ExitCode> {
    let roles = ["read", "operator", "admin", "agent"];
    if !roles.contains(&args.role.as_str()) {
        anyhow::bail!("--role {}: expected one of {}", args.role, roles.join(", "));
    }
    if (args.role == "agent") != args.node.is_some() {
        anyhow::bail!("--node is required for agent tokens and only for them");
    }
    let token = meridian_api::generate_token().map_err(|e| anyhow!("random token: {e}"))?;
    let digest = meridian_api::token_sha256_hex(&token);
    let node = args
        .node
        .as_ref()
        .map(|n| format!(", node: {n}"))
        .unwrap_or_default();
    println!("token: {token}");
    println!(
        "tokens file entry:\n  - {{name: {}, role: {}{node}, sha256: {digest}}}",
        args.name, args.role
    );
    Ok(ExitCode::SUCCESS)
}
