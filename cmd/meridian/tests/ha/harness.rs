//! Real processes on 127.0.0.1: an etcd cluster, `meridian controller`s and `meridian agent`s,
//! each in its own process group so a test can kill a whole "node" (agent and workloads) or a
//! controller with SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meridian_etcd::local_cluster::LocalCluster;
use serde_json::Value;

pub const ADMIN: &str = "admin-token-0123456789abcdef";

/// Three racks of two nodes; one database of four partitions (leader + two followers each,
/// one replica per rack).
pub const FLEET: &str = r#"
name: ha-test
topology:
  network:
    levels: [zone, rack, node]
    domains:
      - name: z1
        children:
          - { name: r1, children: [n1, n2] }
          - { name: r2, children: [n3, n4] }
          - { name: r3, children: [n5, n6] }
node_classes:
  box:
    capacity: { cpu: 16, mem_gib: 64, disk_gib: 1000, net_mbps: 10000, disk_mbps: 1000 }
nodes:
  - { name: n1, class: box }
  - { name: n2, class: box }
  - { name: n3, class: box }
  - { name: n4, class: box }
  - { name: n5, class: box }
  - { name: n6, class: box }
groups:
  - name: orders
    product: db
    partitions: 4
    size_gib: 1
    heat:
      Leader: { cpu: 2, mem_gib: 4, disk_gib: 1 }
      Follower: { cpu: 1, mem_gib: 4, disk_gib: 1 }
    spread: rack
"#;

pub const NODES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];

fn agent_token(node: &str) -> String {
    format!("agent-token-{node}-0123456789")
}

/// A process in its own group; dropping it kills the group.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    fn spawn(name: &str, mut command: Command, log: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc { child }
    }

    /// SIGKILL to the whole process group: the process and everything it started.
    pub fn kill_group(&mut self) {
        let pgid = self.child.id();
        // `--`: procps' kill would read `-<pgid>` as a signal name.
        let killed = Command::new("kill")
            .args(["-9", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        if killed.is_ok_and(|s| s.success()) {
            let _ = self.child.wait();
        } else {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill_group();
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub etcd: LocalCluster,
    pub controllers: Vec<(String, Proc)>,
    pub agents: BTreeMap<String, Proc>,
    pub http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_meridian")
}

impl Drop for Cluster {
    /// A failed run keeps its directory (logs of every controller and agent, their state) so
    /// the failure can be read afterwards; a passing run cleans up.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "kept the cluster's logs and state in {}",
                self.dir.path().display()
            );
        }
    }
}

impl Cluster {
    pub async fn start(controllers: usize) -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let etcd = LocalCluster::start(3, &dir.path().join("etcd"))
            .await
            .expect("etcd cluster (Debian's etcd-server must be installed)");
        write_files(dir.path());
        let mut cluster = Cluster {
            dir,
            etcd,
            controllers: Vec::new(),
            agents: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        };
        for i in 0..controllers {
            cluster.start_controller(&format!("c{}", i + 1));
        }
        for node in NODES {
            cluster.start_agent(node);
        }
        cluster
    }

    pub fn start_controller(&mut self, id: &str) {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(binary());
        command
            .arg("controller")
            .args(["--id", id, "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--store",
                &format!("etcd:{}", self.etcd.client_endpoints().join(",")),
            ])
            .args(["--fleet", &self.path("fleet.yaml")])
            .args(["--tokens", &self.path("tokens.yaml")])
            .args([
                "--lease-ttl",
                "1s",
                "--heartbeat",
                "200ms",
                "--settle",
                "1s",
            ])
            .args(["--rejoin-after", "60s"])
            .env("RUST_LOG", "info");
        let log = self.dir.path().join(format!("{id}.log"));
        self.controllers.push((url, Proc::spawn(id, command, &log)));
    }

    pub fn start_agent(&mut self, node: &str) {
        let controllers: Vec<String> = self.controllers.iter().map(|(u, _)| u.clone()).collect();
        let config = format!(
            "node: {node}\ncontrollers: {controllers:?}\ntoken: {token}\nstate_dir: {dir}\nheartbeat_ms: 200\nsync_backoff_max_ms: 500\nproducts:\n  db:\n    command: [/bin/sh, -c, 'sleep 1; echo $MERIDIAN_STATE > ready; exec sleep 100000']\n    health: {{command: [test, -f, '{{dir}}/ready'], timeout_ms: 1000}}\n    stop_grace_ms: 200\n",
            token = agent_token(node),
            dir = self.path(&format!("agents/{node}")),
        );
        let file = self.dir.path().join(format!("agent-{node}.yaml"));
        std::fs::write(&file, config).expect("agent config");
        let mut command = Command::new(binary());
        command
            .arg("agent")
            .args(["--config", &file.to_string_lossy()])
            .env("RUST_LOG", "info");
        let log = self.dir.path().join(format!("agent-{node}.log"));
        self.agents
            .insert(node.to_string(), Proc::spawn(node, command, &log));
    }

    pub fn path(&self, relative: &str) -> String {
        self.dir
            .path()
            .join(relative)
            .to_string_lossy()
            .into_owned()
    }

    pub fn agent_state_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("agents").join(node)
    }

    pub async fn get(&self, url: &str, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{url}{path}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    pub async fn post(&self, url: &str, path: &str) -> Value {
        let response = self
            .http
            .post(format!("{url}{path}"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    /// The URL of the leading controller and its epoch, if one leads.
    pub async fn leader(&self) -> Option<(String, i64)> {
        for (url, _) in &self.controllers {
            if let Some(status) = self.get(url, "/v1/status").await {
                if status["leading"] == Value::Bool(true) {
                    return Some((url.clone(), status["epoch"].as_i64()?));
                }
            }
        }
        None
    }

    pub async fn wait_leader(&self, limit: Duration) -> (String, i64) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(Instant::now() < deadline, "no controller leads");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every partition's replicas as agents report them to the leader: (node, state, health).
    pub async fn placement(&self) -> Option<BTreeMap<u64, Vec<(String, String, String)>>> {
        let (leader, _) = self.leader().await?;
        let nodes = self.get(&leader, "/v1/nodes").await?;
        let mut out: BTreeMap<u64, Vec<(String, String, String)>> = BTreeMap::new();
        for node in nodes["nodes"].as_array()? {
            if node["liveness"] != "alive" {
                continue;
            }
            for r in node["replicas"].as_array()? {
                out.entry(r["replica"]["partition"].as_u64()?)
                    .or_default()
                    .push((
                        node["name"].as_str()?.to_string(),
                        r["state"].as_str()?.to_string(),
                        r["health"].as_str()?.to_string(),
                    ));
            }
        }
        Some(out)
    }

    /// Waits until every partition has one serving leader and two serving followers on three
    /// racks, none on `avoid`, and no plan is active.
    pub async fn wait_converged(&self, avoid: &[&str], limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(placement) = self.placement().await {
                let good = placement.len() == 4
                    && placement.values().all(|replicas| healthy(replicas, avoid));
                let idle = match self.leader().await {
                    Some((url, _)) => self
                        .get(&url, "/v1/status")
                        .await
                        .is_some_and(|s| s["plans_active"] == 0),
                    None => false,
                };
                if good && idle {
                    return;
                }
                last = Some(placement);
            }
            assert!(
                Instant::now() < deadline,
                "no convergence (avoiding {avoid:?}); last placement: {last:#?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn rack_of(node: &str) -> &'static str {
    match node {
        "n1" | "n2" => "r1",
        "n3" | "n4" => "r2",
        _ => "r3",
    }
}

fn healthy(replicas: &[(String, String, String)], avoid: &[&str]) -> bool {
    let serving = |state: &str| {
        replicas
            .iter()
            .filter(|(_, s, h)| s == state && h == "serving")
            .count()
    };
    let racks: std::collections::BTreeSet<&str> =
        replicas.iter().map(|(n, _, _)| rack_of(n)).collect();
    replicas.len() == 3
        && serving("Leader") == 1
        && serving("Follower") == 2
        && racks.len() == 3
        && replicas
            .iter()
            .all(|(n, _, _)| !avoid.contains(&n.as_str()))
}

fn write_files(dir: &Path) {
    std::fs::write(dir.join("fleet.yaml"), FLEET).expect("fleet file");
    let mut tokens = format!("tokens:\n  - {{name: admin, role: admin, token: {ADMIN}}}\n");
    for node in NODES {
        tokens.push_str(&format!(
            "  - {{name: agent-{node}, role: agent, node: {node}, token: {}}}\n",
            agent_token(node)
        ));
    }
    std::fs::write(dir.join("tokens.yaml"), tokens).expect("tokens file");
}
