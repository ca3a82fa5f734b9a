//! Real redis-servers for the redis actuator's tests: one temporary agent root per test with
//! a replicas directory per node, port ranges per node, clients with generous timeouts, and
//! a guard that kills every server the test started (by pid file) however the test ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meridian_agent::products::redis::{RedisActuator, RedisConfig};
use meridian_agent::products::support::PortRange;
use meridian_agent::{Actuator, Progress, ReplicaContext, TransitionContext};
use meridian_wire::{ReplicaKey, Source, TransitionId};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

/// Every test's whole body gives up after this: a hang is a failure, not a stuck suite.
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);
/// Every wait inside a test gives up after this.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(20);
/// Ports per node: servers in the first half, relays in the second.
const PORTS_PER_NODE: u16 = 20;

pub const LEADER: &str = "Leader";
pub const REPLICA: &str = "Replica";

pub struct Fixture {
    dir: tempfile::TempDir,
    first_port: u16,
}

impl Fixture {
    /// `None`, with a message, when redis-server is not installed: the one reason to skip.
    pub fn new(first_port: u16) -> Option<Fixture> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            eprintln!(
                "SKIPPED: redis-server is not installed (Debian: apt-get install redis-server)"
            );
            return None;
        }
        Some(Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            first_port,
        })
    }

    pub fn config(&self, node: &str, catch_up_timeout_ms: u64) -> RedisConfig {
        let index: u16 = node[1..].parse().expect("nodes are n<digit>");
        let first = self.first_port + PORTS_PER_NODE * index;
        let half = PORTS_PER_NODE / 2;
        let mut config = RedisConfig::new(
            PortRange {
                first,
                last: first + half - 1,
            },
            PortRange {
                first: first + half,
                last: first + PORTS_PER_NODE - 1,
            },
        );
        config.catch_up_timeout_ms = catch_up_timeout_ms;
        config.start_timeout_ms = 10_000;
        config
    }

    /// The actuator of `node`, as an agent on that node would build it. Building a second
    /// one for the same node is what an agent restart looks like.
    pub fn actuator(&self, node: &str, catch_up_timeout_ms: u64) -> RedisActuator {
        RedisActuator::new(
            "stream",
            self.config(node, catch_up_timeout_ms),
            self.replicas_root(node),
        )
        .expect("valid config")
    }

    pub fn replicas_root(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("replicas")
    }

    pub fn replica_dir(&self, node: &str) -> PathBuf {
        self.replicas_root(node).join("events").join("0")
    }

    pub fn ctx(&self, node: &str, id: &str) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch: 1,
            replica: ReplicaKey {
                group: "events".into(),
                partition: 0,
            },
            product: "stream".into(),
            replica_dir: self.replica_dir(node),
            progress: Progress::default(),
        }
    }

    pub fn replica(&self, node: &str) -> ReplicaContext {
        self.ctx(node, "none").replica_context()
    }

    /// The endpoint `node`'s replica reports.
    pub async fn endpoint(&self, actuator: &RedisActuator, node: &str) -> String {
        let observed = actuator.observe(&self.replica(node)).await;
        observed.endpoint.expect("an endpoint")
    }

    /// Lets another user through the test's directory (a tempdir is the test's alone).
    pub fn open_to_everyone(&self) {
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(self.dir.path(), open).expect("chmod");
    }

    pub fn port(&self, node: &str) -> u16 {
        let text = std::fs::read_to_string(self.replica_dir(node).join("port")).expect("port");
        text.trim().parse().expect("a port")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for pid_file in pid_files(self.dir.path()) {
            let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
            else {
                continue;
            };
            // Only a redis-server: the pid may have been reused.
            if command_line(pid).is_some_and(|line| line.contains("redis-server")) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// `<root>/<node>/replicas/<group>/<partition>/redis.pid`, wherever they are.
fn pid_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name == "redis.pid") {
                found.push(path);
            }
        }
    }
    found
}

fn command_line(pid: u32) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&bytes).replace('\0', " "))
}

/// How many redis-server processes listen on `port` (by their process title,
/// `redis-server 127.0.0.1:<port>`): one per replica, never two.
pub fn servers_on(port: u16) -> usize {
    let needle = format!("127.0.0.1:{port}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(command_line)
        .filter(|line| {
            line.contains("redis-server") && line.split_whitespace().any(|w| w == needle)
        })
        .count()
}

pub fn source(node: &str, endpoint: &str) -> Source {
    Source {
        node: node.into(),
        address: None,
        endpoint: Some(endpoint.into()),
    }
}

pub async fn connection(endpoint: &str) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(format!("redis://{endpoint}/"))
        .expect("url")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

/// Appends `entries` entries of `payload_bytes` incompressible bytes each to stream `key`
/// (incompressible, so a snapshot is as large as the data and a copy's duration is known).
pub async fn load(endpoint: &str, key: &str, entries: usize, payload_bytes: usize) {
    let mut c = connection(endpoint).await;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64: fast, and plenty random for compression.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let batch = 500;
    for start in (0..entries).step_by(batch) {
        let mut pipe = redis::pipe();
        for _ in start..(start + batch).min(entries) {
            let payload: Vec<u8> = (0..payload_bytes.div_ceil(8))
                .flat_map(|_| next().to_le_bytes())
                .take(payload_bytes)
                .collect();
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("p")
                .arg(payload)
                .ignore();
        }
        let () = pipe.query_async(&mut c).await.expect("load");
    }
}

pub async fn xlen(endpoint: &str) -> u64 {
    let mut c = connection(endpoint).await;
    redis::cmd("XLEN")
        .arg("events")
        .query_async(&mut c)
        .await
        .expect("XLEN")
}

pub async fn last_id(endpoint: &str) -> Option<String> {
    let mut c = connection(endpoint).await;
    let last: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
        .arg("events")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("XREVRANGE");
    last.into_iter().next().map(|(id, _)| id)
}

pub async fn ids(endpoint: &str) -> std::collections::BTreeSet<String> {
    let mut c = connection(endpoint).await;
    let all: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
        .arg("events")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("XRANGE");
    all.into_iter().map(|(id, _)| id).collect()
}

pub async fn info(endpoint: &str, section: &str) -> String {
    let mut c = connection(endpoint).await;
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut c)
        .await
        .expect("INFO")
}

/// One field of `INFO <section>`.
pub async fn info_field(endpoint: &str, section: &str, field: &str) -> Option<String> {
    let text = info(endpoint, section).await;
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix(&format!("{field}:"))
            .map(str::to_string)
    })
}

/// An XADD to `endpoint`: the id if the server took it, the error if it refused.
pub async fn try_write(endpoint: &str) -> Result<String, String> {
    let mut c = connection(endpoint).await;
    redis::cmd("XADD")
        .arg("events")
        .arg("*")
        .arg("p")
        .arg("probe")
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())
}

/// Polls `check` every 50 ms until it holds, panicking with `what` after [`WAIT_DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT_DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a test body within [`TEST_DEADLINE`].
pub async fn bounded(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("the test finished within its deadline");
}
