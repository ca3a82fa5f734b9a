//! `meridian bench-control`: how fast the control plane reacts to a node failure at fleet
//! sizes, measured on a real controller (embedded redb store, the real reconcile loop, solver
//! and planner) with in-process agents that sync like real ones but execute nothing, so the
//! figure is the controller's own.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use meridian_controller::detector::DetectorOptions;
use meridian_controller::sim_agent::SimAgent;
use meridian_controller::{Controller, ControllerConfig};
use meridian_model::Fleet;
use meridian_wire::ReplicaKey;

#[derive(Args, Debug)]
pub struct BenchControlArgs {
    /// Replica counts of the generated fleets (about 100 replicas per node).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub sizes: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How often the simulated agents sync, ms.
    #[arg(long, default_value_t = 200)]
    pub heartbeat_ms: u64,
}

struct Row {
    replicas: usize,
    nodes: usize,
    lost: usize,
    detect_s: f64,
    decision_ms: u64,
    dead_to_dispatch_s: f64,
    steps: usize,
}

pub fn run(args: BenchControlArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut rows = Vec::new();
    for &size in &args.sizes {
        eprintln!("bench-control: {size} replicas ...");
        rows.push(runtime.block_on(node_failure(size, &args))?);
    }
    println!("| replicas | nodes | replicas lost | detection (s) | decision: solve + plan (ms) | declared dead → first command sent (s) | repair steps |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {} | {:.3} | {} |",
            r.replicas, r.nodes, r.lost, r.detect_s, r.decision_ms, r.dead_to_dispatch_s, r.steps
        );
    }
    println!(
        "\nheartbeat {} ms; phi threshold 8; embedded redb store; `meridian bench-control --sizes {}`",
        args.heartbeat_ms,
        args.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
    );
    Ok(ExitCode::SUCCESS)
}

fn config(heartbeat_ms: u64) -> ControllerConfig {
    let mut config = ControllerConfig::new("bench", "http://127.0.0.1:0");
    config.heartbeat = Duration::from_millis(heartbeat_ms);
    config.tick = Duration::from_millis(20);
    // As in production: hear from every agent before the first decision.
    config.settle = Duration::from_millis(5 * heartbeat_ms);
    config.replan_interval_min = Duration::from_millis(0);
    config.detector = DetectorOptions {
        first_interval_ms: heartbeat_ms as f64,
        std_dev_min_ms: heartbeat_ms as f64 / 4.0,
        acceptable_pause_ms: heartbeat_ms as f64,
        rejoin_ms: 3_600_000,
        ..DetectorOptions::default()
    };
    config
}

/// Agents preloaded with a solved placement of `fleet`.
fn agents_for(fleet: &Fleet, seed: u64) -> Result<Vec<SimAgent>> {
    let solution = meridian_solver::solve(
        fleet,
        &[],
        &meridian_solver::Options {
            mode: meridian_solver::Mode::Full,
            seed,
            ..meridian_solver::Options::default()
        },
    );
    if !solution.is_complete() {
        bail!("the generated fleet did not solve");
    }
    let mut by_node: BTreeMap<String, SimAgent> = BTreeMap::new();
    for node in fleet.topology.node_ids() {
        let name = fleet.topology.node_name(node).to_string();
        by_node.insert(name.clone(), SimAgent::new(&name));
    }
    for replica in solution.placement.replicas(fleet) {
        let group = fleet.group(replica.group);
        let model = fleet.product_of(replica.group);
        let node = fleet.topology.node_name(replica.node);
        if let Some(agent) = by_node.get_mut(node) {
            agent.replicas.insert(
                ReplicaKey {
                    group: group.name.clone(),
                    partition: replica.partition,
                },
                (
                    model.name.clone(),
                    model.state_name(replica.state).to_string(),
                ),
            );
        }
    }
    Ok(by_node.into_values().collect())
}

async fn node_failure(size: usize, args: &BenchControlArgs) -> Result<Row> {
    let spec = meridian_gen::GenSpec::new(size / 100, size, args.seed);
    let yaml = meridian_gen::generate_yaml(&spec).map_err(|e| anyhow!("{}", e.message))?;
    let fleet = Fleet::from_yaml(&yaml, "generated").map_err(|p| anyhow!("{p}"))?;
    let agents = agents_for(&fleet, args.seed)?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let config = config(args.heartbeat_ms);
    let store = meridian_store::redb_store::RedbStore::open(
        &dir.path().join("meridian.redb"),
        &[&config.keys.election()],
    )
    .map_err(|e| anyhow!("{e}"))?;
    Controller::seed_spec(&store, &config.keys.spec(), &yaml)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let controller = Controller::new(config, Arc::new(store));
    let run = tokio::spawn(Arc::clone(&controller).run(std::future::pending()));
    let victim = agents
        .iter()
        .max_by_key(|a| a.replicas.len())
        .map(|a| a.node.clone())
        .ok_or_else(|| anyhow!("no nodes"))?;
    let lost = agents
        .iter()
        .find(|a| a.node == victim)
        .map_or(0, |a| a.replicas.len());
    let silence = Arc::new(AtomicBool::new(false));
    let syncing = tokio::spawn(sync_forever(
        Arc::clone(&controller),
        agents,
        victim.clone(),
        Arc::clone(&silence),
        Duration::from_millis(args.heartbeat_ms),
    ));
    // Steady state: the leader has heard everyone and decided there is nothing to do.
    let nodes = fleet.topology.nodes.len();
    wait(Duration::from_secs(120), "the first decision", || {
        let status = controller.status();
        controller.metrics.decisions.get() >= 1
            && status.plans_active == 0
            && status.nodes.get("alive") == Some(&nodes)
    })
    .await?;
    if controller.metrics.plans_created.get() > 0 {
        bail!(
            "the controller planned moves on a fleet in its solved state: {:#?}",
            controller.events()
        );
    }
    let decisions_before = controller.metrics.decisions.get();
    let silenced_unix_ms = meridian_controller::controller::unix_ms();
    let silenced = Instant::now();
    silence.store(true, Ordering::SeqCst);
    let repaired = wait(
        Duration::from_secs(120),
        "the repair plan's first command",
        || {
            controller.metrics.decisions.get() > decisions_before
                && controller.plans().iter().any(|p| {
                    p.reason.contains("nodes down") && p.steps.iter().any(|s| s.is_started())
                })
        },
    )
    .await;
    if let Err(e) = repaired {
        let events: Vec<String> = controller.events().into_iter().map(|e| e.text).collect();
        let victim_view = controller.nodes().into_iter().find(|n| n.name == victim);
        let status = format!(
            "{}\nvictim {victim}: {:?}",
            serde_json::to_string_pretty(&controller.status()).unwrap_or_default(),
            victim_view.map(|v| (v.liveness, v.phi, v.last_sync_ms_ago, v.replicas.len()))
        );
        bail!(
            "{e}; the controller's events:\n{}\nstatus: {status}\nmetrics:\n{}",
            events.join("\n"),
            controller.metrics.render()
        );
    }
    let dispatched = silenced.elapsed().as_secs_f64();
    let plan = controller
        .plans()
        .into_iter()
        .find(|p| p.reason.contains("nodes down"))
        .ok_or_else(|| anyhow!("no repair plan"))?;
    let dead_unix_ms = controller
        .events()
        .iter()
        .find(|e| e.text.contains(&format!("`{victim}`")) && e.text.contains("-> Dead"))
        .map(|e| e.unix_ms)
        .ok_or_else(|| anyhow!("the node was never declared dead"))?;
    let detect_s = dead_unix_ms.saturating_sub(silenced_unix_ms) as f64 / 1000.0;
    syncing.abort();
    run.abort();
    Ok(Row {
        replicas: size,
        nodes: fleet.topology.nodes.len(),
        lost,
        detect_s,
        decision_ms: plan.decision_ms,
        dead_to_dispatch_s: (dispatched - detect_s).max(0.0),
        steps: plan.steps.len(),
    })
}

async fn sync_forever(
    controller: Arc<Controller>,
    mut agents: Vec<SimAgent>,
    victim: String,
    silence: Arc<AtomicBool>,
    heartbeat: Duration,
) {
    loop {
        let round = Instant::now();
        for agent in agents.iter_mut() {
            if agent.node == victim && silence.load(Ordering::SeqCst) {
                continue;
            }
            agent.sync(&controller);
        }
        tokio::time::sleep(heartbeat.saturating_sub(round.elapsed())).await;
    }
}

async fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
