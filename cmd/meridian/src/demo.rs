//! `meridian demo`: the control plane on this machine, no setup needed. An embedded controller
//! (redb store, REST API on 127.0.0.1) and twelve node agents running real workload processes
//! on the example fleet; then a scenario through the API: place a database, add a stream, fail
//! a node, drain a rack. Everything it starts is stopped at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;

use meridian_api::{Identity, Role, Tokens};
use meridian_controller::{Controller, ControllerConfig};
use meridian_model::Fleet;

const FLEET: &str = include_str!("../../../examples/control-plane.yaml");
const FLEET_FILE: &str = "examples/control-plane.yaml";

/// The workload the demo adds: a stream with three replicas per partition on three racks.
const CLICKS: &str = r#"
  - name: clicks
    product: stream
    partitions: 4
    size_gib: 1
    heat:
      Leader:  { cpu: 2, mem_gib: 8, disk_gib: 1, disk_iops: 1500, disk_mbps: 120, net_mbps: 900, power_w: 25 }
      Replica: { cpu: 1, mem_gib: 8, disk_gib: 1, disk_iops: 1000, disk_mbps: 80, net_mbps: 500, power_w: 15 }
    spread: rack
"#;

const HEARTBEAT_MS: u64 = 200;
const STEP_LIMIT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the controller and agents running after the scenario, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Run real products instead of stand-in processes: PostgreSQL shards, Redis streams and
    /// model servers, each agent a separate process (needs Debian's postgresql-15 and
    /// redis-server; installs nothing).
    #[arg(long)]
    pub real: bool,
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    crate::logging::init_quiet();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.real {
        runtime.block_on(crate::demo_real::demo(args))?;
    } else {
        runtime.block_on(demo(args))?;
    }
    Ok(ExitCode::SUCCESS)
}

struct Node {
    name: String,
    state_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// The demo's client of the API, as an operator would use it.
pub(crate) struct Api {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: String,
        kind: &str,
    ) -> Result<Value> {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", kind)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path}: {status}: {body}");
        }
        Ok(body)
    }
}

async fn demo(args: DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let Credentials {
        nodes: node_names,
        admin,
        tokens,
        agent_tokens,
    } = credentials(FLEET, FLEET_FILE)?;

    println!("== Meridian control plane demo on {FLEET_FILE} (12 nodes, 4 racks)\n");
    let (controller, api) = start_controller(dir.path(), tokens, admin, FLEET, |_| {}).await?;
    println!(
        "controller: {} (embedded redb store in {})",
        api.url,
        dir.path().display()
    );
    let mut nodes = Vec::new();
    for name in &node_names {
        nodes.push(start_agent(
            dir.path(),
            name,
            &api.url,
            &agent_tokens[name],
        )?);
    }
    println!(
        "agents: {} started, each running its replicas as real processes\n",
        nodes.len()
    );

    let outcome = scenario(&api, &controller, &mut nodes, &node_names).await;
    if outcome.is_ok() && args.keep_running {
        println!("\nStill running. Try:\n  curl -H 'Authorization: Bearer {}' {}/v1/plans\nCtrl-C to stop.", api.token, api.url);
        crate::logging::shutdown_signal().await;
    }
    stop_everything(&mut nodes).await;
    outcome
}

/// The fleet's nodes, an admin token, and a token per node's agent (bound to its node).
pub(crate) struct Credentials {
    pub nodes: Vec<String>,
    pub admin: String,
    pub tokens: Tokens,
    pub agent_tokens: BTreeMap<String, String>,
}

pub(crate) fn credentials(fleet: &str, file: &str) -> Result<Credentials> {
    let fleet = Fleet::from_yaml(fleet, file).map_err(|p| anyhow!("{p}"))?;
    let nodes: Vec<String> = fleet
        .topology
        .node_ids()
        .map(|n| fleet.topology.node_name(n).to_string())
        .collect();
    let admin = meridian_api::generate_token().map_err(|e| anyhow!("random token: {e}"))?;
    let mut tokens = Tokens::empty();
    tokens
        .add_plain(identity("demo-admin", Role::Admin, None), &admin)
        .map_err(|e| anyhow!(e))?;
    let mut agent_tokens = BTreeMap::new();
    for name in &nodes {
        let token = meridian_api::generate_token().map_err(|e| anyhow!("random token: {e}"))?;
        let agent = identity(&format!("agent-{name}"), Role::Agent, Some(name));
        tokens.add_plain(agent, &token).map_err(|e| anyhow!(e))?;
        agent_tokens.insert(name.clone(), token);
    }
    Ok(Credentials {
        nodes,
        admin,
        tokens,
        agent_tokens,
    })
}

fn identity(name: &str, role: Role, node: Option<&str>) -> Identity {
    Identity {
        name: name.to_string(),
        role,
        node: node.map(str::to_string),
    }
}

/// An embedded controller on a redb store in `dir`, seeded with `fleet`, its API on a free
/// port of 127.0.0.1; `tune` adjusts its configuration.
pub(crate) async fn start_controller(
    dir: &Path,
    tokens: Tokens,
    admin: String,
    fleet: &str,
    tune: impl FnOnce(&mut ControllerConfig),
) -> Result<(Arc<Controller>, Api)> {
    let mut config = ControllerConfig::new("demo", "http://127.0.0.1");
    config.heartbeat = Duration::from_millis(HEARTBEAT_MS);
    config.tick = Duration::from_millis(50);
    config.settle = Duration::from_millis(4 * HEARTBEAT_MS);
    config.replan_interval_min = Duration::from_millis(200);
    config.detector = meridian_controller::detector::DetectorOptions {
        first_interval_ms: HEARTBEAT_MS as f64,
        std_dev_min_ms: HEARTBEAT_MS as f64 / 4.0,
        acceptable_pause_ms: HEARTBEAT_MS as f64,
        rejoin_ms: 60_000,
        ..Default::default()
    };
    tune(&mut config);
    let store = meridian_store::redb_store::RedbStore::open(
        &dir.join("meridian.redb"),
        &[&config.keys.election()],
    )
    .map_err(|e| anyhow!("{e}"))?;
    Controller::seed_spec(&store, &config.keys.spec(), fleet)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let controller = Controller::new(config, Arc::new(store));
    let router = meridian_api::router(
        Arc::clone(&controller),
        meridian_api::ApiConfig::new(tokens),
    );
    let server = meridian_api::serve(
        "127.0.0.1:0".parse().context("address")?,
        router,
        None,
        std::future::pending(),
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(Arc::clone(&controller).run(std::future::pending()));
    let api = Api {
        url,
        token: admin,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("http client")?,
    };
    Ok((controller, api))
}

fn start_agent(dir: &Path, node: &str, url: &str, token: &str) -> Result<Node> {
    let exe = std::env::current_exe().context("finding the meridian binary")?;
    let state_dir = dir.join("agents").join(node);
    let workload = format!(
        "[{exe:?}, workload, --dir, '{{dir}}', --state, '{{state}}']",
        exe = exe.to_string_lossy()
    );
    let product = format!(
        "    command: {workload}\n    health: {{command: [test, -f, '{{dir}}/ready'], timeout_ms: 1000}}\n    stop_grace_ms: 500\n"
    );
    let yaml = format!(
        "node: {node}\ncontrollers: [{url}]\ntoken: {token}\nstate_dir: {state}\nheartbeat_ms: {HEARTBEAT_MS}\nproducts:\n  db:\n{product}  stream:\n{product}",
        state = state_dir.to_string_lossy()
    );
    let config =
        meridian_agent::AgentConfig::from_yaml_str(&yaml, &dir.join(format!("agent-{node}.yaml")))
            .map_err(|e| anyhow!("{e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let name = node.to_string();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = meridian_agent::run(config, shutdown).await {
            eprintln!("agent {name}: {e}");
        }
    });
    Ok(Node {
        name: node.to_string(),
        state_dir,
        stop: Some(stop),
        task,
    })
}

/// Waits until the leader has no plan under way and every partition is fully placed; returns
/// the plans made meanwhile.
pub(crate) async fn settle(api: &Api, since_plan: u64, what: &str) -> Result<Vec<Value>> {
    settle_within(api, since_plan, what, STEP_LIMIT).await
}

/// [`settle`], giving up after `limit`.
pub(crate) async fn settle_within(
    api: &Api,
    since_plan: u64,
    what: &str,
    limit: Duration,
) -> Result<Vec<Value>> {
    let started = Instant::now();
    loop {
        let status = api.get("/v1/status").await?;
        let plans = api.get("/v1/plans").await?;
        let new: Vec<Value> = plans["plans"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter(|p| p["id"].as_u64() > Some(since_plan))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(failed) = new.iter().find(|p| p["status"] == "failed") {
            let id = failed["id"].as_u64().unwrap_or(0);
            let detail = api.get(&format!("/v1/plans/{id}")).await?;
            let errors: Vec<String> = detail["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|step| step["commands"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["status"]["error"].as_str().map(str::to_string))
                .collect();
            bail!("{what}: plan {id} failed: {}", errors.join("; "));
        }
        let finished = !new.is_empty()
            && status["plans_active"] == 0
            && new.iter().all(|p| p["status"] == "done");
        if finished {
            return Ok(new);
        }
        if started.elapsed() > limit {
            bail!("{what}: not done after {limit:?}; plans: {plans:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn print_plans(plans: &[Value], elapsed: Duration) {
    for p in plans {
        println!(
            "   plan {}: {} steps ({}) — {}",
            p["id"],
            p["steps_total"],
            p["reason"].as_str().unwrap_or(""),
            p["status"].as_str().unwrap_or("?")
        );
    }
    println!("   converged in {:.1} s", elapsed.as_secs_f64());
}

pub(crate) fn last_plan(plans: &[Value]) -> u64 {
    plans
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .max()
        .unwrap_or(0)
}

async fn replica_counts(api: &Api) -> Result<BTreeMap<String, usize>> {
    let nodes = api.get("/v1/nodes").await?;
    let mut counts = BTreeMap::new();
    for node in nodes["nodes"].as_array().into_iter().flatten() {
        let name = node["name"].as_str().unwrap_or("?").to_string();
        let alive = node["liveness"] == "alive";
        let replicas = node["replicas"].as_array().map_or(0, |r| r.len());
        if alive {
            counts.insert(name, replicas);
        }
    }
    Ok(counts)
}

async fn scenario(
    api: &Api,
    controller: &Controller,
    nodes: &mut [Node],
    names: &[String],
) -> Result<()> {
    println!("1. place the database `orders` (6 partitions × leader + 2 followers, one per rack)");
    let started = Instant::now();
    let plans = settle(api, 0, "initial placement").await?;
    print_plans(&plans, started.elapsed());
    let mut seen = last_plan(&plans);

    println!(
        "\n2. add a workload: PUT /v1/fleet with a stream `clicks` (4 partitions × 3 replicas)"
    );
    let spec = format!("{}{CLICKS}", FLEET.trim_end());
    let started = Instant::now();
    let put = api
        .send(reqwest::Method::PUT, "/v1/fleet", spec, "application/yaml")
        .await?;
    println!("   spec revision {}", put["revision"]);
    let plans = settle(api, seen, "adding clicks").await?;
    print_plans(&plans, started.elapsed());
    seen = last_plan(&plans);

    let counts = replica_counts(api).await?;
    let (victim, lost) = counts
        .iter()
        .max_by_key(|(_, c)| **c)
        .map(|(n, c)| (n.clone(), *c))
        .ok_or_else(|| anyhow!("no live nodes"))?;
    println!(
        "\n3. fail a node: {victim} dies with its {lost} replicas (agent and workloads killed)"
    );
    let started = Instant::now();
    if let Some(node) = nodes.iter_mut().find(|n| n.name == victim) {
        kill_node(node).await;
    }
    let plans = settle(api, seen, "repairing the dead node").await?;
    let detected = controller
        .events()
        .into_iter()
        .find(|e| e.text.contains(&format!("`{victim}`")) && e.text.contains("-> Dead"))
        .map(|e| e.text);
    if let Some(text) = detected {
        println!("   detected: {text} (phi-accrual on {HEARTBEAT_MS} ms heartbeats)");
    }
    print_plans(&plans, started.elapsed());
    seen = last_plan(&plans);

    let rack = "rack-b2";
    if !names.iter().any(|n| n.starts_with("b2-")) {
        bail!("{FLEET_FILE} has no nodes in {rack}");
    }
    println!("\n4. drain a rack: POST /v1/nodes/{rack}/drain (make-before-break moves off all three nodes)");
    let started = Instant::now();
    api.send(
        reqwest::Method::POST,
        &format!("/v1/nodes/{rack}/drain"),
        String::new(),
        "application/json",
    )
    .await?;
    let plans = settle(api, seen, "draining the rack").await?;
    print_plans(&plans, started.elapsed());
    let counts = replica_counts(api).await?;
    let left: usize = counts
        .iter()
        .filter(|(n, _)| n.starts_with("b2-"))
        .map(|(_, c)| c)
        .sum();
    if left != 0 {
        bail!("{left} replicas are still on {rack}");
    }

    println!("\nreplicas per live node now:");
    for (node, count) in &counts {
        println!("   {node:<6} {count:>2} {}", "█".repeat(*count));
    }
    let status = api.get("/v1/status").await?;
    println!(
        "\nleader `{}` at epoch {}; {} plans; API: {}/openapi.json, metrics at {}/metrics",
        status["id"].as_str().unwrap_or("?"),
        status["epoch"],
        seen + plans.len() as u64,
        api.url,
        api.url
    );
    Ok(())
}

/// A node failure: the agent stops syncing and its workloads die with it.
async fn kill_node(node: &mut Node) {
    node.task.abort();
    crate::workloads::kill_all(&node.state_dir);
}

/// Stops every agent, then the workloads they leave running (agents never stop workloads on
/// their own shutdown: a restarted agent adopts them).
async fn stop_everything(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
    }
    for node in nodes.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut node.task).await;
        crate::workloads::kill_all(&node.state_dir);
    }
}
