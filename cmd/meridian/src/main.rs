//! `meridian`: the command-line face of Meridian's core.
//!
//! Exit codes: 0 success, 1 the answer is "no" (infeasible, violations found), 2 bad input.

/// `print!` and `println!` for this crate: std's panic when stdout is closed early (`meridian
/// plan ... | head`); these end the process quietly instead. Defined before the modules so
/// every one of them uses them.
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(error)
        }
    }};
}

macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::stdout_failed(error)
        }
    }};
}

/// Standard output is gone: a reader that stopped reading (a closed pipe) is not an error;
/// anything else is reported on standard error.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {error}");
    std::process::exit(2);
}

mod agent_cmd;
mod bench;
mod bench_agent;
mod bench_control;
#[cfg(feature = "etcd")]
mod bench_failover;
mod bench_plan;
mod commands;
mod controller_cmd;
mod demo;
mod demo_real;
mod input;
mod logging;
mod model_server;
mod plan_cmd;
mod report;
mod sim_cmd;
mod status_cmd;
mod tour;
mod workloads;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Physical-aware placement for shared fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A control plane on this machine: a controller, twelve agents, real workload processes;
    /// add a workload, fail a node, drain a rack (no setup needed).
    Demo(demo::DemoArgs),
    /// The core on the built-in example fleet: solve, check, explain, fail a node and repair,
    /// plan the recovery, simulate a day.
    Tour,
    /// Validate a fleet file; report every problem with file, line and path.
    Validate(commands::ValidateArgs),
    /// Compute a target placement (full solve, or repair/rebalance of a current one).
    Solve(commands::SolveArgs),
    /// Verify a placement against every hard constraint.
    Check(commands::CheckArgs),
    /// Say why a replica is where it is.
    Explain(commands::ExplainArgs),
    /// Plan the safe, throttled steps from the current placement to a target.
    Plan(plan_cmd::PlanArgs),
    /// Generate a seeded synthetic fleet (and optionally a skewed starting placement).
    Gen(commands::GenArgs),
    /// Simulate a scenario with several strategies (static, siloed, unified, ...); report.
    Sim(sim_cmd::SimArgs),
    /// Measure solve, repair and rebalance on generated fleets; print a markdown report.
    Bench(bench::BenchArgs),
    /// Time controller failover after kill -9 of the leader (real processes, local etcd).
    #[cfg(feature = "etcd")]
    BenchFailover(bench_failover::BenchFailoverArgs),
    /// Run a node agent: executes the controller's commands, keeps serving without it.
    Agent(agent_cmd::AgentArgs),
    /// Make a bearer token for the API and its tokens-file entry.
    Token(agent_cmd::TokenArgs),
    /// A stand-in workload process (used by `meridian demo`).
    #[command(hide = true)]
    Workload(agent_cmd::WorkloadArgs),
    /// A stand-in inference server that loads verified weights (used by `meridian demo --real`).
    #[command(hide = true)]
    ModelServer(model_server::ModelServerArgs),
    /// Run a controller: reconcile loop, leader election, REST API (see docs/control-plane.md).
    Controller(controller_cmd::ControllerArgs),
    /// What the control plane is doing: leader, node liveness, running plans with each copy's
    /// bytes and lag.
    Status(status_cmd::StatusArgs),
    /// Measure one agent's command throughput end to end (markdown).
    BenchAgent(bench_agent::BenchAgentArgs),
    /// Measure the control plane's reaction to a node failure at fleet sizes (markdown).
    BenchControl(bench_control::BenchControlArgs),
    /// One size of `bench`, run in a child process (prints JSON).
    #[command(hide = true)]
    BenchOne(bench::BenchOneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for every HTTP client and server in the process (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Tour => tour::run(),
        Command::Agent(args) => agent_cmd::run(args),
        Command::Workload(args) => agent_cmd::workload(args),
        Command::ModelServer(args) => model_server::run(args),
        Command::Token(args) => agent_cmd::token(args),
        #[cfg(feature = "etcd")]
        Command::BenchFailover(args) => bench_failover::run(args),
        Command::Validate(args) => commands::validate(args),
        Command::Solve(args) => commands::solve(args),
        Command::Check(args) => commands::check(args),
        Command::Explain(args) => commands::explain(args),
        Command::Gen(args) => commands::gen(args),
        Command::Plan(args) => plan_cmd::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchOne(args) => bench::run_one(args),
        Command::BenchControl(args) => bench_control::run(args),
        Command::BenchAgent(args) => bench_agent::run(args),
        Command::Controller(args) => controller_cmd::run(args),
        Command::Status(args) => status_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
