//! Helpers shared by the agent's integration tests: real workload processes, a fake
//! controller on 127.0.0.1, bounded polling, and cleanup of every process a test started.

#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use meridian_agent::{Actuators, AgentConfig, AgentError, ProcessConfig, ProductConfig};
use meridian_wire::{
    Action, Command, Epoch, LeaderHint, NotLeader, ReplicaKey, SyncRequest, SyncResponse,
    TransitionId, TransitionReport, TransitionStatus,
};
use tokio::task::JoinHandle;

/// Every wait in these tests gives up after this: a hang is a failure, not a stuck suite.
pub const DEADLINE: Duration = Duration::from_secs(10);
pub const TOKEN: &str = "test-token";

/// A workload that records each launch (`starts`, one line per launch) and its state
/// (`state`) in its replica directory, then sleeps. The sleep ends by itself, so nothing
/// outlives a crashed test for long.
pub fn workload() -> ProcessConfig {
    let script = "echo \"$MERIDIAN_STATE\" > state; echo \"$MERIDIAN_EPOCH\" > epoch; \
                  echo launch >> starts; exec sleep 60";
    let mut config = ProcessConfig::new(vec!["/bin/sh".into(), "-c".into(), script.into()]);
    config.stop_grace_ms = 2_000;
    config.restart_backoff_initial_ms = 50;
    config.restart_backoff_max_ms = 400;
    config.start_timeout_ms = 5_000;
    config
}

pub fn replica(group: &str, partition: u32) -> ReplicaKey {
    ReplicaKey {
        group: group.into(),
        partition,
    }
}

/// Polls `check` every 20 ms until it gives `Some`, panicking with `what` at [`DEADLINE`].
pub async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').map_or(0, |i| i + 1)..]
        .split_whitespace()
        .next()
        .unwrap_or("Z");
    !matches!(state, "Z" | "X")
}

pub fn kill9(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
}

/// The pid a replica's pid file names.
pub fn pid_in(pid_file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
}

/// Kills, on drop, every process named by a pid file under `root`: tests leave no
/// workloads behind, whether they pass or panic.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut stack = vec![self.0.clone()];
        let mut visited = 0;
        while let Some(directory) = stack.pop() {
            visited += 1;
            if visited > 10_000 {
                break;
            }
            let Ok(entries) = std::fs::read_dir(&directory) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "pid") {
                    if let Some(pid) = pid_in(&path).filter(|p| alive(*p)) {
                        let pid = nix::unistd::Pid::from_raw(pid as i32);
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fake controller.

#[derive(Default)]
struct Inner {
    epoch: Epoch,
    /// Answer 503 naming this leader (or none) instead of leading.
    not_leader: Option<Option<String>>,
    /// Sent on every sync until the agent reports them final, as the real controller does.
    pending: Vec<Command>,
    requests: Vec<SyncRequest>,
    /// Sent on every sync.
    leaders: Vec<LeaderHint>,
}

/// A controller on 127.0.0.1 that leads at an epoch the test sets, resends its commands
/// until they are reported final, and acknowledges every final report.
pub struct FakeController {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: JoinHandle<()>,
}

impl FakeController {
    pub async fn start(epoch: Epoch) -> FakeController {
        let inner = Arc::new(Mutex::new(Inner {
            epoch,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1/agents/{node}/sync", post(sync))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        FakeController { url, inner, server }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake controller lock")
    }

    pub fn send(&self, command: Command) {
        self.lock().pending.push(command);
    }

    pub fn set_epoch(&self, epoch: Epoch) {
        self.lock().epoch = epoch;
    }

    pub fn not_leader(&self, leader_api: Option<String>) {
        self.lock().not_leader = Some(leader_api);
    }

    pub fn set_leaders(&self, leaders: Vec<LeaderHint>) {
        self.lock().leaders = leaders;
    }

    /// The latest report of `id`.
    pub fn report_of(&self, id: &str) -> Option<TransitionReport> {
        let inner = self.lock();
        inner.requests.iter().rev().find_map(|request| {
            request
                .transitions
                .iter()
                .find(|report| report.id.0 == id)
                .cloned()
        })
    }

    pub fn requests(&self) -> Vec<SyncRequest> {
        self.lock().requests.clone()
    }

    /// The latest status the agent reported for `id`.
    pub fn status_of(&self, id: &str) -> Option<TransitionStatus> {
        let inner = self.lock();
        inner.requests.iter().rev().find_map(|request| {
            request
                .transitions
                .iter()
                .find(|report| report.id.0 == id)
                .map(|report| report.status.clone())
        })
    }

    /// Waits until the agent reports `id` final, and returns that status.
    pub async fn final_status(&self, id: &str) -> TransitionStatus {
        wait_for(&format!("a final report of {id}"), || {
            self.status_of(id)
                .filter(|s| !matches!(s, TransitionStatus::Running { .. }))
        })
        .await
    }

    /// Waits for `count` more sync requests than there are now.
    pub async fn more_syncs(&self, count: usize) {
        let target = self.requests().len() + count;
        wait_for("more syncs", || {
            (self.requests().len() >= target).then_some(())
        })
        .await;
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn sync(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(request): Json<SyncRequest>,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut inner = inner.lock().expect("fake controller lock");
    if let Some(leader_api) = inner.not_leader.clone() {
        let body = Json(NotLeader { leader_api });
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let finished: Vec<TransitionId> = request
        .transitions
        .iter()
        .filter(|r| !matches!(r.status, TransitionStatus::Running { .. }))
        .map(|r| r.id.clone())
        .collect();
    inner.pending.retain(|c| !finished.contains(&c.id));
    inner.requests.push(request);
    Json(SyncResponse {
        epoch: inner.epoch,
        leader: "fake".into(),
        commands: inner.pending.clone(),
        acknowledged: finished,
        heartbeat_ms: 50,
        leaders: inner.leaders.clone(),
    })
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Agents.

pub fn command(id: &str, epoch: Epoch, replica: ReplicaKey, action: Action) -> Command {
    Command {
        id: TransitionId(id.into()),
        epoch,
        replica,
        action,
        product: "db".into(),
    }
}

pub fn start(state: &str) -> Action {
    Action::Start {
        state: state.into(),
    }
}

/// An agent configuration for node `n1` with the product `db` running [`workload`].
pub fn agent_config(state_dir: &Path, controllers: &[String]) -> AgentConfig {
    let text = format!(
        "node: n1\ncontrollers: [{}]\ntoken: {TOKEN}\nstate_dir: {}\nheartbeat_ms: 50\n\
         request_timeout_ms: 1000\nsync_backoff_initial_ms: 20\nsync_backoff_max_ms: 100\n\
         registration:\n  capacity: {{cpu: 8}}\n",
        controllers.join(", "),
        state_dir.display()
    );
    let mut config =
        AgentConfig::from_yaml_str(&text, Path::new("test-agent.yaml")).expect("test config");
    config
        .products
        .insert("db".into(), ProductConfig::Process(workload()));
    config
}

/// An agent running in a task until [`RunningAgent::stop`].
pub struct RunningAgent {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AgentError>>,
}

impl RunningAgent {
    pub fn spawn(config: AgentConfig) -> RunningAgent {
        let actuators = meridian_agent::actuators(&config).expect("actuators");
        RunningAgent::spawn_with(config, actuators)
    }

    pub fn spawn_with(config: AgentConfig, actuators: Actuators) -> RunningAgent {
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(meridian_agent::run_with(config, actuators, async move {
            let _ = stopped.await;
        }));
        RunningAgent {
            shutdown: Some(shutdown),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let joined = tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("agent stops within the deadline");
        joined.expect("agent task").expect("agent ran");
    }
}

/// Runs `future` with the whole test bounded by twice [`DEADLINE`].
pub async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE * 2, future)
        .await
        .expect("test finished within its bound")
}
