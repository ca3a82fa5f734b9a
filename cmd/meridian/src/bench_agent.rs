//! `meridian bench-agent`: how many commands per second one agent executes end to end — the
//! real controller (embedded redb store, REST API on 127.0.0.1) hands a plan of N replica
//! starts to one real agent, which journals, executes and reports each; timed from the plan's
//! creation until the controller has recorded every command done. Twice: with an actuator that
//! does nothing (the agent and controller pipeline alone) and with the process actuator
//! starting a real workload process per replica.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use clap::Args;

use meridian_agent::{Actuator, ActuatorError, Observation, ReplicaContext, TransitionContext};
use meridian_api::{Identity, Role, Tokens};
use meridian_controller::{Controller, ControllerConfig};
use meridian_wire::{Health, Source};

#[derive(Args, Debug)]
pub struct BenchAgentArgs {
    /// Replicas started through the no-op actuator.
    #[arg(long, default_value_t = 2000)]
    pub noop: usize,
    /// Replicas started as real processes.
    #[arg(long, default_value_t = 100)]
    pub processes: usize,
    /// Transitions one agent runs at once.
    #[arg(long, default_value_t = 8)]
    pub concurrent: usize,
}

/// Does nothing, successfully: what is left is the agent's own work per command.
struct Noop;

#[async_trait]
impl Actuator for Noop {
    async fn start(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }
    async fn replicate(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &Source,
        _: u64,
        _: f64,
    ) -> Result<(), ActuatorError> {
        Ok(())
    }
    async fn promote(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<(), ActuatorError> {
        Ok(())
    }
    async fn demote(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, ActuatorError> {
        Ok(None)
    }
    async fn stop(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }
    async fn observe(&self, _: &ReplicaContext) -> Observation {
        Observation {
            health: Health::Serving,
            heat: Vec::new(),
            endpoint: None,
        }
    }
    async fn ensure_running(&self, _: &ReplicaContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }
}

fn fleet(replicas: usize) -> String {
    format!(
        r#"name: bench-agent
topology:
  network:
    levels: [rack, node]
    domains:
      - {{ name: r1, children: [n1] }}
node_classes:
  big:
    capacity: {{ cpu: 1000000, mem_gib: 1000000 }}
nodes:
  - {{ name: n1, class: big }}
groups:
  - name: tasks
    product: ai
    partitions: {replicas}
    counts: {{ Active: 1 }}
    size_gib: 0
    heat:
      Active: {{ cpu: 1, mem_gib: 1 }}
"#
    )
}

pub fn run(args: BenchAgentArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let noop = runtime.block_on(measure(args.noop, args.concurrent, true))?;
    let processes = runtime.block_on(measure(args.processes, args.concurrent, false))?;
    println!("| actuator | commands | seconds | commands/s |");
    println!("|---|---:|---:|---:|");
    for (name, (count, seconds)) in [("no-op", noop), ("process (real workloads)", processes)] {
        println!(
            "| {name} | {count} | {seconds:.2} | {:.0} |",
            count as f64 / seconds
        );
    }
    println!(
        "\none agent, {} transitions at once, heartbeat 100 ms; `meridian bench-agent --noop {} --processes {}`",
        args.concurrent, args.noop, args.processes
    );
    Ok(ExitCode::SUCCESS)
}

async fn measure(replicas: usize, concurrent: usize, noop: bool) -> Result<(usize, f64)> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let admin = meridian_api::generate_token().map_err(|e| anyhow!("{e}"))?;
    let agent_token = meridian_api::generate_token().map_err(|e| anyhow!("{e}"))?;
    let mut tokens = Tokens::empty();
    tokens
        .add_plain(
            Identity {
                name: "admin".into(),
                role: Role::Admin,
                node: None,
            },
            &admin,
        )
        .map_err(|e| anyhow!(e))?;
    tokens
        .add_plain(
            Identity {
                name: "agent".into(),
                role: Role::Agent,
                node: Some("n1".into()),
            },
            &agent_token,
        )
        .map_err(|e| anyhow!(e))?;
    let mut config = ControllerConfig::new("bench", "http://127.0.0.1");
    config.heartbeat = Duration::from_millis(100);
    config.tick = Duration::from_millis(20);
    config.settle = Duration::from_millis(500);
    let store = meridian_store::redb_store::RedbStore::open(
        &dir.path().join("m.redb"),
        &[&config.keys.election()],
    )
    .map_err(|e| anyhow!("{e}"))?;
    Controller::seed_spec(&store, &config.keys.spec(), &fleet(replicas))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let controller = Controller::new(config, Arc::new(store));
    let router = meridian_api::router(
        Arc::clone(&controller),
        meridian_api::ApiConfig::new(tokens),
    );
    let server = meridian_api::serve("127.0.0.1:0".parse()?, router, None, std::future::pending())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let run = tokio::spawn(Arc::clone(&controller).run(std::future::pending()));
    let exe = std::env::current_exe()?;
    let yaml = format!(
        "node: n1\ncontrollers: [http://{}]\ntoken: {agent_token}\nstate_dir: {}\nheartbeat_ms: 100\ntransitions_concurrent_max: {concurrent}\nproducts:\n  ai:\n    command: [{:?}, workload, --dir, '{{dir}}', --state, '{{state}}']\n    health: {{command: [test, -f, '{{dir}}/ready'], timeout_ms: 1000}}\n",
        server.local_addr(),
        dir.path().join("agent").to_string_lossy(),
        exe.to_string_lossy()
    );
    let agent_config =
        meridian_agent::AgentConfig::from_yaml_str(&yaml, &dir.path().join("agent.yaml"))
            .map_err(|e| anyhow!("{e}"))?;
    let actuators = if noop {
        let mut actuators: meridian_agent::Actuators = BTreeMap::new();
        actuators.insert("ai".to_string(), Arc::new(Noop) as Arc<dyn Actuator>);
        actuators
    } else {
        meridian_agent::actuators(&agent_config).map_err(|e| anyhow!("{e}"))?
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(meridian_agent::run_with(agent_config, actuators, async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut started: Option<Instant> = None;
    let seconds = loop {
        let plans = controller.plans();
        if started.is_none() && !plans.is_empty() {
            started = Some(Instant::now());
        }
        if let (Some(t), Some(plan)) = (started, plans.first()) {
            if plan.steps.iter().all(|s| s.is_done()) {
                break t.elapsed().as_secs_f64();
            }
        }
        if Instant::now() > deadline {
            let events: Vec<String> = controller.events().into_iter().map(|e| e.text).collect();
            bail!(
                "the agent did not finish {replicas} starts; the controller's events:\n{}",
                events.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = stop.send(());
    let _ = agent.await;
    run.abort();
    if !noop {
        crate::workloads::kill_all(&dir.path().join("agent"));
    }
    Ok((replicas, seconds))
}
