//! `meridian demo --real`: the control plane driving real products on this machine —
//! PostgreSQL 15 shards, Redis 7 stream partitions and model servers — with every agent its
//! own process. It writes real data, drains a rack under write load while one agent is
//! killed with SIGKILL mid-copy and restarted, then checks that not one acknowledged write
//! was lost and that every copy matches its leader. It installs nothing: PostgreSQL and Redis
//! must be there (Debian: postgresql-15 redis-server).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::demo::{
    credentials, last_plan, print_plans, settle_within, start_controller, Api, Credentials,
    DemoArgs,
};

const FLEET: &str = include_str!("../../../examples/real-products.yaml");
const FLEET_FILE: &str = "examples/real-products.yaml";
const HEARTBEAT_MS: u64 = 200;
/// The planner's fastest copy: slow enough that copies of tens of MB take seconds, so the
/// throttle and the progress reports are visible.
const RATE_MAX_MBPS: f64 = 8.0;
const PLACEMENT_LIMIT: Duration = Duration::from_secs(240);
const INITDB: &str = "/usr/lib/postgresql/15/bin/initdb";
/// Rows written into each database partition before the drain (~200 bytes each).
const ROWS: i64 = 100_000;
const STREAM_ENTRIES: usize = 2_000;
const WEIGHTS_BYTES: usize = 24_000_000;

/// One agent process.
struct AgentProcess {
    node: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl AgentProcess {
    fn spawn(&mut self, exe: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(exe)
            .args(["agent", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the agent of {}", self.node))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL to the agent alone: the node's servers (and any copy it started) run on.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub async fn demo(args: DemoArgs) -> Result<()> {
    prerequisites()?;
    let dir = tempfile::Builder::new()
        .prefix("meridian-demo-real-")
        .tempdir()
        .context("temporary directory")?;
    // PostgreSQL runs as `postgres` when we are root: it must reach its data directories.
    set_mode(dir.path(), 0o755)?;
    let exe = std::env::current_exe().context("finding the meridian binary")?;
    let Credentials {
        nodes,
        admin,
        tokens,
        agent_tokens,
    } = credentials(FLEET, FLEET_FILE)?;
    write_weights(&dir.path().join("blobs"), "assistant")?;

    println!(
        "== Meridian with real products on {FLEET_FILE}: PostgreSQL 15, Redis 7, model servers\n"
    );
    let (_controller, api) = start_controller(dir.path(), tokens, admin, FLEET, |config| {
        config.planner.rate_max = RATE_MAX_MBPS;
        config.planner.rate_min = 1.0;
        // An agent that crashes and is restarted within a second or two is not a dead node:
        // the demo restarts one, and its node keeps its replicas.
        config.detector.acceptable_pause_ms = 3_000.0;
    })
    .await?;
    println!(
        "controller: {} (embedded redb store), copies booked at up to {RATE_MAX_MBPS} MB/s",
        api.url
    );
    let mut agents = Vec::new();
    let mut taken = Vec::new();
    for (index, name) in nodes.iter().enumerate() {
        let config = write_agent_config(
            dir.path(),
            &exe,
            name,
            index,
            &api.url,
            &agent_tokens[name],
            &mut taken,
        )?;
        let mut agent = AgentProcess {
            node: name.clone(),
            config,
            log: dir.path().join(format!("agent-{name}.log")),
            child: None,
        };
        agent.spawn(&exe)?;
        agents.push(agent);
    }
    println!(
        "agents: {} processes, logs in {}\n",
        agents.len(),
        dir.path().display()
    );

    let outcome = scenario(&api, &exe, &mut agents).await;
    if outcome.is_ok() && args.keep_running {
        println!(
            "\nStill running. Try:\n  meridian status --controller {} --token {}\nCtrl-C to stop.",
            api.url, api.token
        );
        crate::logging::shutdown_signal().await;
    }
    for agent in &mut agents {
        agent.stop();
    }
    stop_servers_under(dir.path());
    if outcome.is_err() {
        // Keep the evidence.
        let kept = dir.keep();
        eprintln!("logs and data kept in {}", kept.display());
    }
    outcome
}

fn prerequisites() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new(INITDB).is_file() {
        missing.push("postgresql-15");
    }
    let redis = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !redis.is_ok_and(|s| s.success()) {
        missing.push("redis-server");
    }
    if !missing.is_empty() {
        bail!(
            "`meridian demo --real` runs real PostgreSQL and Redis servers; missing: {} \
             (Debian: apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Model weights in the blob directory, with their digest.
fn write_weights(blobs: &Path, group: &str) -> Result<()> {
    use sha2::Digest;
    std::fs::create_dir_all(blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let weights: Vec<u8> = (0..WEIGHTS_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let digest = format!("{:x}  {group}.bin\n", sha2::Sha256::digest(&weights));
    std::fs::write(blobs.join(format!("{group}.bin")), &weights).context("writing weights")?;
    std::fs::write(blobs.join(format!("{group}.bin.sha256")), digest).context("writing digest")?;
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("a free port")?;
    Ok(listener.local_addr().context("a free port")?.port())
}

/// The first port of `len` consecutive ports on 127.0.0.1 that are all free now, searched
/// from a start that differs per process and agent. Below the kernel's ephemeral range
/// (32768 and up on Linux), where outgoing connections would take ports between this check
/// and the servers' start; the tests' fixed ranges sit lower still (21000-23999).
fn free_block(len: u16, index: usize, taken: &[u16]) -> Result<u16> {
    const FIRST: u16 = 24_000;
    const BLOCKS: u16 = 87;
    let start = ((std::process::id() as usize * 7 + index * 13) % BLOCKS as usize) as u16;
    for step in 0..BLOCKS {
        let base = FIRST + ((start + step) % BLOCKS) * 100;
        let free = !taken.contains(&base)
            && (base..base + len).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base);
        }
    }
    bail!("no block of {len} free ports on 127.0.0.1 between {FIRST} and 32700")
}

fn write_agent_config(
    dir: &Path,
    exe: &Path,
    node: &str,
    index: usize,
    url: &str,
    token: &str,
    taken: &mut Vec<u16>,
) -> Result<PathBuf> {
    // Each agent its own port ranges, from a block free right now: two agents (or two demos)
    // on one machine must not pick the same port.
    let base = free_block(80, index, taken)?;
    taken.push(base);
    let exe = exe.to_string_lossy();
    let run_as = if is_root() {
        "\n      run_as: postgres"
    } else {
        ""
    };
    let yaml = format!(
        r#"node: {node}
controllers: [{url}]
token: {token}
state_dir: {state}
heartbeat_ms: {HEARTBEAT_MS}
registration:
  data_address: 127.0.0.1:{data_port}
products:
  db:
    postgres:{run_as}
      ports: {{first: {pg_first}, last: {pg_last}}}
      verify_tables: [demo_orders]
  stream:
    redis:
      ports: {{first: {redis_first}, last: {redis_last}}}
      relay_ports: {{first: {relay_first}, last: {relay_last}}}
  ai:
    model_server:
      server:
        command: ["{exe}", model-server, --dir, "{{dir}}", --state, "{{state}}"]
        health: {{command: ["{exe}", model-server, --check, --dir, "{{dir}}"], timeout_ms: 2000}}
        stop_grace_ms: 1000
      ports: {{first: {model_first}, last: {model_last}}}
      blob_dir: {blobs}
      weights: "{{group}}.bin"
      gpu_mem_gib: 16
      gpu_mem_gib_capacity: 48
"#,
        state = dir.join("agents").join(node).display(),
        data_port = free_port()?,
        pg_first = base,
        pg_last = base + 19,
        redis_first = base + 20,
        redis_last = base + 39,
        relay_first = base + 40,
        relay_last = base + 59,
        model_first = base + 60,
        model_last = base + 79,
        blobs = dir.join("blobs").display(),
    );
    let file = dir.join(format!("agent-{node}.yaml"));
    std::fs::write(&file, yaml).with_context(|| format!("writing {}", file.display()))?;
    // Fail here, with the file and field, rather than in six agent logs.
    meridian_agent::AgentConfig::from_yaml_file(&file).map_err(|e| anyhow!("{e}"))?;
    Ok(file)
}

/// Every replica an agent reports: (group, partition) → [(node, state, endpoint, health)].
type Placement = BTreeMap<(String, u64), Vec<(String, String, Option<String>, String)>>;

async fn placement(api: &Api) -> Result<Placement> {
    let nodes = api.get("/v1/nodes").await?;
    let mut out = Placement::new();
    for node in nodes["nodes"].as_array().into_iter().flatten() {
        let name = node["name"].as_str().unwrap_or("?").to_string();
        for replica in node["replicas"].as_array().into_iter().flatten() {
            let key = (
                replica["replica"]["group"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
                replica["replica"]["partition"].as_u64().unwrap_or(0),
            );
            out.entry(key).or_default().push((
                name.clone(),
                replica["state"].as_str().unwrap_or("?").to_string(),
                replica["endpoint"].as_str().map(str::to_string),
                replica["health"].as_str().unwrap_or("?").to_string(),
            ));
        }
    }
    Ok(out)
}

fn leader_of(placement: &Placement, group: &str, partition: u64) -> Option<(String, String)> {
    placement
        .get(&(group.to_string(), partition))?
        .iter()
        .find(|(_, state, _, health)| state == "Leader" && health == "serving")
        .and_then(|(node, _, endpoint, _)| Some((node.clone(), endpoint.clone()?)))
}

fn print_placement(placement: &Placement) {
    for ((group, partition), replicas) in placement {
        let list: Vec<String> = replicas
            .iter()
            .map(|(node, state, endpoint, _)| {
                format!("{node} {state} {}", endpoint.as_deref().unwrap_or("-"))
            })
            .collect();
        println!("   {group}/{partition}: {}", list.join(", "));
    }
}

async fn pg(endpoint: &str) -> Result<tokio_postgres::Client> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("endpoint `{endpoint}` is not host:port"))?;
    let user = if is_root() {
        "postgres".to_string()
    } else {
        whoami()
    };
    let config = format!("host={host} port={port} user={user} dbname=postgres connect_timeout=5");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {endpoint}"))?;
    tokio::spawn(connection);
    Ok(client)
}

fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| "postgres".to_string(), |u| u.name)
}

async fn redis_connection(endpoint: &str) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{endpoint}/"))
        .with_context(|| format!("redis at {endpoint}"))?;
    client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connecting to Redis at {endpoint}"))
}

async fn scenario(api: &Api, exe: &Path, agents: &mut [AgentProcess]) -> Result<()> {
    println!("1. place orders (db, 2 × 3), events (stream, 2 × 3), assistant (ai, 2 replicas)");
    let started = Instant::now();
    let plans = settle_within(api, 0, "initial placement", PLACEMENT_LIMIT).await?;
    print_plans(&plans, started.elapsed());
    let mut seen = last_plan(&plans);
    let placed = wait_serving(api, Duration::from_secs(60)).await?;
    print_placement(&placed);

    println!("\n2. write data: {ROWS} rows into each orders partition, {STREAM_ENTRIES} entries into each events partition");
    for partition in 0..2 {
        let (_, endpoint) = leader_of(&placed, "orders", partition)
            .ok_or_else(|| anyhow!("orders/{partition} has no serving leader"))?;
        let client = pg(&endpoint).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS demo_orders (id bigint PRIMARY KEY, body text NOT NULL);
                 INSERT INTO demo_orders SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, {ROWS}) g
                 ON CONFLICT DO NOTHING;"
            ))
            .await
            .with_context(|| format!("loading orders/{partition}"))?;
        let (_, endpoint) = leader_of(&placed, "events", partition)
            .ok_or_else(|| anyhow!("events/{partition} has no serving leader"))?;
        let mut redis = redis_connection(&endpoint).await?;
        let payload = "x".repeat(1000);
        for _ in 0..STREAM_ENTRIES {
            let _: String = redis::cmd("XADD")
                .arg("events")
                .arg("*")
                .arg("payload")
                .arg(&payload)
                .query_async(&mut redis)
                .await
                .context("XADD")?;
        }
    }
    let answers = infer_all(&placed).await?;
    for (node, answer) in &answers {
        println!("   assistant on {node}: {answer}");
    }

    let (leader_node, _) =
        leader_of(&placed, "orders", 0).ok_or_else(|| anyhow!("orders/0 has no leader"))?;
    let rack = format!("rack-{}", &leader_node[..1]);
    println!("\n3. drain {rack} (it holds the leader of orders/0) while a client keeps writing to orders/0,");
    println!("   and kill -9 one agent mid-copy, then restart it");
    let writer = Writer::start(api, ROWS + 1);
    let started = Instant::now();
    api.send(
        reqwest::Method::POST,
        &format!("/v1/nodes/{rack}/drain"),
        String::new(),
        "application/json",
    )
    .await?;
    let killed = kill_an_agent_mid_copy(api, exe, agents, seen).await?;
    let plans = settle_within(api, seen, "draining the rack", PLACEMENT_LIMIT).await?;
    print_plans(&plans, started.elapsed());
    seen = last_plan(&plans);
    let _ = seen;
    let after = wait_serving(api, Duration::from_secs(60)).await?;
    let acknowledged = writer.stop().await;
    print_placement(&after);
    match killed {
        Some((node, mb)) => println!("   {node}'s agent was killed at {mb:.1} MB into a copy; restarted, it finished the copy"),
        None => println!("   (no copy was running long enough to kill an agent under it)"),
    }

    println!("\n4. verify");
    verify(&after, &acknowledged).await?;
    println!("\nall checks passed; `meridian status` shows plans, copies and lag: try it with --keep-running");
    Ok(())
}

/// Waits until every replica reports serving; the placement then.
async fn wait_serving(api: &Api, limit: Duration) -> Result<Placement> {
    let started = Instant::now();
    loop {
        let placed = placement(api).await?;
        let all = placed
            .values()
            .flatten()
            .all(|(_, _, _, health)| health == "serving");
        if all && !placed.is_empty() {
            return Ok(placed);
        }
        if started.elapsed() > limit {
            bail!("replicas not all serving after {limit:?}: {placed:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn infer_all(placed: &Placement) -> Result<Vec<(String, String)>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("http client")?;
    let mut answers = Vec::new();
    for (node, _, endpoint, _) in placed
        .get(&("assistant".to_string(), 0))
        .into_iter()
        .flatten()
    {
        let endpoint = endpoint
            .as_deref()
            .ok_or_else(|| anyhow!("assistant on {node}: no endpoint"))?;
        let answer: Value = http
            .post(format!("http://{endpoint}/v1/infer"))
            .json(&serde_json::json!({"prompt": "where is my order?"}))
            .send()
            .await
            .with_context(|| format!("inference on {node}"))?
            .json()
            .await
            .with_context(|| format!("inference on {node}"))?;
        answers.push((node.clone(), answer.to_string()));
    }
    Ok(answers)
}

/// Waits for a copy to be under way, kills its target's agent with SIGKILL, and restarts it
/// half a second later. Returns the node and how many MB the copy had done.
async fn kill_an_agent_mid_copy(
    api: &Api,
    exe: &Path,
    agents: &mut [AgentProcess],
    since_plan: u64,
) -> Result<Option<(String, f64)>> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let plans = api.get("/v1/plans").await?;
        for plan in plans["plans"].as_array().into_iter().flatten() {
            let Some(id) = plan["id"].as_u64().filter(|id| *id > since_plan) else {
                continue;
            };
            let detail = api.get(&format!("/v1/plans/{id}")).await?;
            for step in detail["steps"].as_array().into_iter().flatten() {
                for command in step["commands"].as_array().into_iter().flatten() {
                    let copying = command["action"]["kind"] == "replicate"
                        && command["status"]["status"] == "running";
                    let done = command["status"]["bytes_done"].as_u64().unwrap_or(0);
                    if !copying || done < 2_000_000 {
                        continue;
                    }
                    let node = command["node"].as_str().unwrap_or("?").to_string();
                    let Some(agent) = agents.iter_mut().find(|a| a.node == node) else {
                        continue;
                    };
                    // What an operator sees now (`meridian status`).
                    let status = api.get("/v1/status").await?;
                    let nodes = api.get("/v1/nodes").await?;
                    let report =
                        crate::status_cmd::render(&status, &nodes, std::slice::from_ref(&detail));
                    println!("   meridian status:");
                    for line in report.lines() {
                        println!("   | {line}");
                    }
                    println!(
                        "   {}: kill -9 of {node}'s agent at {:.1} MB",
                        step["description"].as_str().unwrap_or("a copy"),
                        done as f64 / 1e6
                    );
                    agent.kill9();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    agent.spawn(exe)?;
                    return Ok(Some((node, done as f64 / 1e6)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// A client writing to orders/0 while the drain moves its leader: one row per id, each id
/// tried once; a row counts as acknowledged only when its commit returned.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<i64>>,
}

impl Writer {
    fn start(api: &Api, first_id: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let api = Api {
            url: api.url.clone(),
            token: api.token.clone(),
            http: api.http.clone(),
        };
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut id = first_id;
            let mut client: Option<tokio_postgres::Client> = None;
            while !flag.load(Ordering::Relaxed) {
                if client.is_none() {
                    let leader = placement(&api)
                        .await
                        .ok()
                        .and_then(|p| leader_of(&p, "orders", 0));
                    if let Some((_, endpoint)) = leader {
                        client = pg(&endpoint).await.ok();
                    }
                    if client.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let Some(connected) = &client else { continue };
                let written = connected
                    .execute(
                        "INSERT INTO demo_orders VALUES ($1, 'written during the drain')",
                        &[&id],
                    )
                    .await;
                match written {
                    Ok(_) => acknowledged.push(id),
                    // Fenced (read-only, shut down) or moved: find the leader again.
                    Err(_) => client = None,
                }
                id += 1;
            }
            acknowledged
        });
        Writer { stop, task }
    }

    async fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

async fn verify(placed: &Placement, acknowledged: &[i64]) -> Result<()> {
    // Every write acknowledged during the drain is on the new leader.
    let (node, endpoint) =
        leader_of(placed, "orders", 0).ok_or_else(|| anyhow!("orders/0 has no leader"))?;
    let client = pg(&endpoint).await?;
    let rows = client
        .query("SELECT id FROM demo_orders WHERE id > $1", &[&ROWS])
        .await
        .context("reading the writes made during the drain")?;
    let present: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<&i64> = acknowledged
        .iter()
        .filter(|id| !present.contains(id))
        .collect();
    if !lost.is_empty() {
        bail!(
            "{} acknowledged writes are missing on the new leader {node}: {lost:?}",
            lost.len()
        );
    }
    println!(
        "   orders/0: all {} writes acknowledged during the drain are on the new leader {node}",
        acknowledged.len()
    );
    // Every copy has what its leader has.
    for partition in 0..2 {
        let (leader, endpoint) = leader_of(placed, "orders", partition)
            .ok_or_else(|| anyhow!("orders/{partition} has no leader"))?;
        let expected = table_fingerprint(&endpoint).await?;
        for (node, _, endpoint, _) in &placed[&("orders".to_string(), partition)] {
            let endpoint = endpoint
                .as_deref()
                .ok_or_else(|| anyhow!("{node}: no endpoint"))?;
            let found = wait_fingerprint(endpoint, &expected).await?;
            if found != expected {
                bail!("orders/{partition} on {node}: {found:?}, leader {leader} has {expected:?}");
            }
        }
        println!(
            "   orders/{partition}: {} rows, identical on all replicas (count and md5)",
            expected.0
        );
        let (leader, endpoint) = leader_of(placed, "events", partition)
            .ok_or_else(|| anyhow!("events/{partition} has no leader"))?;
        let expected = stream_fingerprint(&endpoint).await?;
        for (node, _, endpoint, _) in &placed[&("events".to_string(), partition)] {
            let endpoint = endpoint
                .as_deref()
                .ok_or_else(|| anyhow!("{node}: no endpoint"))?;
            let found = stream_fingerprint(endpoint).await?;
            if found != expected {
                bail!("events/{partition} on {node}: {found:?}, leader {leader} has {expected:?}");
            }
        }
        if expected.0 != STREAM_ENTRIES as u64 {
            bail!(
                "events/{partition}: {} entries, {STREAM_ENTRIES} written",
                expected.0
            );
        }
        println!(
            "   events/{partition}: {} entries, same last id on all replicas",
            expected.0
        );
    }
    let answers = infer_all(placed).await?;
    let models: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(_, a)| {
            serde_json::from_str::<Value>(a)
                .map(|v| v["model"].to_string())
                .unwrap_or_default()
        })
        .collect();
    if models.len() != 1 {
        bail!("model replicas disagree on their weights: {answers:?}");
    }
    println!(
        "   assistant: {} replicas answer from the same verified weights",
        answers.len()
    );
    Ok(())
}

async fn table_fingerprint(endpoint: &str) -> Result<(i64, String)> {
    let client = pg(endpoint).await?;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(md5(string_agg(id::text || body, ',' ORDER BY id)), '') FROM demo_orders",
            &[],
        )
        .await
        .with_context(|| format!("fingerprint at {endpoint}"))?;
    Ok((row.get(0), row.get(1)))
}

/// A follower may trail its leader by a moment: wait for it to match (bounded).
async fn wait_fingerprint(endpoint: &str, expected: &(i64, String)) -> Result<(i64, String)> {
    let started = Instant::now();
    loop {
        let found = table_fingerprint(endpoint).await?;
        if &found == expected || started.elapsed() > Duration::from_secs(20) {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Entries and the last entry's id, once the replica has them all (bounded wait).
async fn stream_fingerprint(endpoint: &str) -> Result<(u64, String)> {
    let started = Instant::now();
    let mut redis = redis_connection(endpoint).await?;
    loop {
        let length: u64 = redis::cmd("XLEN")
            .arg("events")
            .query_async(&mut redis)
            .await?;
        let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg("events")
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut redis)
            .await
            .with_context(|| format!("XREVRANGE at {endpoint}"))?;
        let last = last
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_default();
        if length == STREAM_ENTRIES as u64 || started.elapsed() > Duration::from_secs(20) {
            return Ok((length, last));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops every process the demo's agents left running (servers keep running when an agent
/// stops, by design): anything whose command line names the demo's directory, and the
/// PostgreSQL postmasters (their children exit with them).
fn stop_servers_under(dir: &Path) {
    // Redis rewrites its process title (`redis-server 127.0.0.1:port`) and PostgreSQL's
    // backends carry no path: their pid files say who they are.
    for pid_file in files_named(dir, &["redis.pid", "postmaster.pid"]) {
        let first = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if let Some(pid) = first
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let marker = dir.to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&marker) && pid != std::process::id() as i32 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Files under `dir` with one of `names`, at any depth (bounded).
fn files_named(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0;
    while let Some(directory) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| names.contains(&n))
            {
                found.push(path);
            }
        }
    }
    found
}
