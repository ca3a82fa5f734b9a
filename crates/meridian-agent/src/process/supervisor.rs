//! Keeps one workload process running: launches it (or adopts one a previous agent left),
//! relaunches it when it exits after a bounded exponential backoff, and stops it with SIGTERM
//! then SIGKILL when asked. One supervisor per replica, as a task.
//!
//! Dropping a [`Supervisor`] without [`Supervisor::stop`] ends the supervision but leaves
//! the process running, as an agent crash would: the next agent adopts it from its pid file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use meridian_wire::Epoch;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::launch::{self, CommandLine};
use super::pidfile::{self, PidRecord};
use super::procfs::{self, ProcessIdentity};
use crate::durable::StateError;

/// How often an adopted process (not our child, so no exit notification) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(100);
/// After SIGKILL, how long to wait for the process to go before declaring it unkillable.
const KILL_WAIT_MAX: Duration = Duration::from_secs(5);

/// What to run and where its pid file goes.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    pub line: CommandLine,
    pub state: String,
    pub epoch: Epoch,
    pub pid_file: PathBuf,
    pub output_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub stop_grace: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Before the first launch has an outcome.
    Launching,
    Running {
        identity: ProcessIdentity,
    },
    /// Exited or could not launch; launching again after a backoff.
    Backoff {
        error: String,
    },
    Stopped,
}

/// What the supervisor and its owner both touch, under one lock so that the pid file always
/// names the live process with the latest state.
struct Shared {
    spec: LaunchSpec,
    /// The live process, once launched or adopted; `None` after it exits.
    running: Option<ProcessIdentity>,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(shared: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Supervisor {
    shared: SharedRef,
    status: watch::Receiver<Status>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts supervising: adopts `adopt` if given (a live process matching the pid file),
    /// else launches `spec`.
    pub fn start(spec: LaunchSpec, adopt: Option<ProcessIdentity>, timing: Timing) -> Supervisor {
        let shared = Arc::new(Mutex::new(Shared {
            spec,
            running: None,
        }));
        let (status_tx, status_rx) = watch::channel(Status::Launching);
        let (stop_tx, stop_rx) = oneshot::channel();
        let channels = Channels {
            shared: shared.clone(),
            status: status_tx,
            stop: stop_rx,
        };
        let task = tokio::spawn(supervise(channels, adopt, timing));
        Supervisor {
            shared,
            status: status_rx,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub fn state(&self) -> String {
        lock(&self.shared).spec.state.clone()
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Changes what later launches run (a state change applied by a hook, without a
    /// restart). When it returns, the pid file of the live process records the new state,
    /// so an agent restarting now adopts it as such.
    pub fn replace_spec(&self, spec: LaunchSpec) -> Result<(), StateError> {
        let mut shared = lock(&self.shared);
        shared.spec = spec;
        match shared.running {
            Some(identity) => write_pid_file(&shared.spec, identity),
            None => Ok(()),
        }
    }

    /// Waits for the current launch's outcome: the process identity, or why it is not
    /// running.
    pub async fn wait_launched(&mut self, timeout: Duration) -> Result<ProcessIdentity, String> {
        let waited = tokio::time::timeout(
            timeout,
            self.status.wait_for(|s| !matches!(s, Status::Launching)),
        )
        .await;
        let status = match waited {
            Err(_) => return Err(format!("not launched within {} ms", timeout.as_millis())),
            Ok(Err(_)) => return Err("supervision ended".into()),
            Ok(Ok(status)) => status.clone(),
        };
        match status {
            Status::Running { identity } => Ok(identity),
            Status::Backoff { error } => Err(error),
            Status::Launching | Status::Stopped => Err("not running".into()),
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after the grace period) and the supervision;
    /// removes the pid file. An error means the process may still run.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            // The task may have ended already (it never does by itself, short of a panic).
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(|e| format!("supervision failed: {e}"))?;
        }
        match self.status() {
            Status::Stopped => Ok(()),
            Status::Running { identity } => Err(format!(
                "process {} did not exit after SIGKILL",
                identity.pid
            )),
            other => Err(format!("supervision ended as {other:?}")),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Channels {
    shared: SharedRef,
    status: watch::Sender<Status>,
    stop: oneshot::Receiver<()>,
}

/// The process being supervised.
enum Running {
    /// Launched by this supervisor: the kernel tells us when it exits.
    Child {
        child: tokio::process::Child,
        identity: ProcessIdentity,
    },
    /// Left by a previous agent: polled through `/proc`.
    Adopted(ProcessIdentity),
}

enum Outcome {
    Exited(String),
    Stop,
    /// The owner went away without asking for a stop: leave the process be.
    Detach,
}

async fn supervise(mut channels: Channels, adopt: Option<ProcessIdentity>, timing: Timing) {
    let mut backoff = timing.backoff_initial;
    let mut adopted = adopt;
    loop {
        let launched = match adopted.take() {
            Some(identity) => {
                lock(&channels.shared).running = Some(identity);
                Ok(Running::Adopted(identity))
            }
            None => launch(&channels.shared).await,
        };
        let spec = lock(&channels.shared).spec.clone();
        match launched {
            Ok(mut running) => {
                let identity = running.identity();
                channels.status.send_replace(Status::Running { identity });
                let began = Instant::now();
                let outcome = watch_process(&mut running, &mut channels).await;
                if !matches!(outcome, Outcome::Detach) {
                    lock(&channels.shared).running = None;
                }
                match outcome {
                    Outcome::Stop => return stop(running, timing, &channels).await,
                    Outcome::Detach => return,
                    Outcome::Exited(how) => {
                        tracing::warn!(pid = identity.pid, state = %spec.state, "workload {how}");
                        channels.status.send_replace(Status::Backoff { error: how });
                        if began.elapsed() >= timing.backoff_max {
                            backoff = timing.backoff_initial;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(state = %spec.state, "workload did not launch: {error}");
                channels.status.send_replace(Status::Backoff { error });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            stop = &mut channels.stop => {
                if stop.is_ok() {
                    // Nothing runs: only the pid file is left to clean.
                    let removed = pidfile::remove(&spec.pid_file);
                    if let Err(error) = removed {
                        tracing::warn!("{error}");
                    }
                    channels.status.send_replace(Status::Stopped);
                }
                return;
            }
        }
        backoff = (backoff * 2).min(timing.backoff_max);
    }
}

/// Waits until the process exits or a stop is asked.
async fn watch_process(running: &mut Running, channels: &mut Channels) -> Outcome {
    tokio::select! {
        how = running.wait() => Outcome::Exited(how),
        stop = &mut channels.stop => if stop.is_ok() { Outcome::Stop } else { Outcome::Detach },
    }
}

async fn stop(mut running: Running, timing: Timing, channels: &Channels) {
    if terminate(&mut running, timing.stop_grace).await {
        let pid_file = lock(&channels.shared).spec.pid_file.clone();
        if let Err(error) = pidfile::remove(&pid_file) {
            tracing::warn!("{error}");
        }
        channels.status.send_replace(Status::Stopped);
    } else {
        let identity = running.identity();
        channels.status.send_replace(Status::Running { identity });
    }
}

/// SIGTERM, wait up to `grace`, SIGKILL, wait up to [`KILL_WAIT_MAX`]. True once the process
/// is gone.
async fn terminate(running: &mut Running, grace: Duration) -> bool {
    if !running.signal(Signal::SIGTERM) {
        return true;
    }
    if tokio::time::timeout(grace, running.wait()).await.is_ok() {
        return true;
    }
    tracing::warn!(
        pid = running.identity().pid,
        "no exit after SIGTERM: SIGKILL"
    );
    if !running.signal(Signal::SIGKILL) {
        return true;
    }
    tokio::time::timeout(KILL_WAIT_MAX, running.wait())
        .await
        .is_ok()
}

/// Launches the shared spec and records the process in the pid file, under the shared lock
/// so that a concurrent spec change cannot interleave with the record.
async fn launch(shared: &SharedRef) -> Result<Running, String> {
    let spec = lock(shared).spec.clone();
    std::fs::create_dir_all(&spec.line.dir)
        .map_err(|e| format!("{}: {e}", spec.line.dir.display()))?;
    let mut child = launch::spawn(&spec.line, &spec.output_file)?;
    let identity = child
        .id()
        .and_then(|pid| procfs::read_stat(pid).map(|stat| (pid, stat.start_ticks)))
        .map(|(pid, start_ticks)| ProcessIdentity { pid, start_ticks });
    let Some(identity) = identity else {
        let how = child.wait().await.map(launch::describe);
        return Err(format!(
            "exited at once ({})",
            how.unwrap_or_else(|e| e.to_string())
        ));
    };
    let recorded = {
        let mut shared = lock(shared);
        let written = write_pid_file(&shared.spec, identity);
        if written.is_ok() {
            shared.running = Some(identity);
        }
        written
    };
    if let Err(error) = recorded {
        // Without a pid file a restarted agent would start a second copy: do not run.
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(error.to_string());
    }
    tracing::info!(pid = identity.pid, state = %spec.state, "workload launched");
    Ok(Running::Child { child, identity })
}

fn write_pid_file(spec: &LaunchSpec, identity: ProcessIdentity) -> Result<(), StateError> {
    let record = PidRecord {
        pid: identity.pid,
        start_ticks: identity.start_ticks,
        state: spec.state.clone(),
        epoch: spec.epoch,
    };
    pidfile::write(&spec.pid_file, &record)
}

impl Running {
    fn identity(&self) -> ProcessIdentity {
        match self {
            Running::Child { identity, .. } | Running::Adopted(identity) => *identity,
        }
    }

    /// Waits for exit and says how it ended. Cancel-safe.
    async fn wait(&mut self) -> String {
        match self {
            Running::Child { child, .. } => match child.wait().await {
                Ok(status) => launch::describe(status),
                Err(e) => format!("could not be waited for: {e}"),
            },
            Running::Adopted(identity) => {
                while procfs::is_alive(*identity) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                "exited (adopted: status unknown)".to_string()
            }
        }
    }

    /// Sends `signal` if the process is still there; false if it is gone.
    fn signal(&mut self, signal: Signal) -> bool {
        let identity = self.identity();
        let present = match self {
            // Until reaped, our child's pid cannot be reused.
            Running::Child { child, .. } => matches!(child.try_wait(), Ok(None)),
            Running::Adopted(identity) => procfs::is_alive(*identity),
        };
        if !present {
            return false;
        }
        let Ok(pid) = i32::try_from(identity.pid) else {
            return false;
        };
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) => true,
            Err(nix::errno::Errno::ESRCH) => false,
            Err(error) => {
                tracing::error!(pid, "cannot send {signal}: {error}");
                true
            }
        }
    }
}
