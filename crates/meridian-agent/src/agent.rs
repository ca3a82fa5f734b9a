//! The agent loop: restore, then sync, accept, dispatch and record, until shutdown.
//!
//! Order matters for safety, so each step says what it persists before what it does:
//! 1. On start, every replica of the last known assignment is brought back
//!    (`ensure_running`) before anything else — no controller needed. Transitions the
//!    journal holds unfinished are queued again, but nothing runs before the first answered
//!    sync, which may carry a newer epoch that fences them.
//! 2. A response's epoch, if higher, is written to disk before any of its commands is
//!    looked at. If that write fails, none is.
//! 3. An accepted command is journaled (`queued`) before it is queued; a running one is
//!    journaled (`running`) and logged to `executed.log` before its actuator is called.
//! 4. A finished transition updates the assignment on disk, then the journal, then the
//!    agent syncs at once to report it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use meridian_wire::{
    Command, Epoch, LeaderHint, ReplicaKey, Source, SyncRequest, SyncResponse, TransitionId,
    TransitionReport,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use crate::actuator::{Actuator, ActuatorError, Actuators, Progress, TransitionContext};
use crate::config::{AgentConfig, ProductConfig};
use crate::durable::StateError;
use crate::executor::{Executor, Finished, Job, Work};
use crate::intake;
use crate::journal::{EntryStatus, ExecutedLog, ExecutedRecord, Journal, UNACKNOWLEDGED_MAX};
use crate::paths::{encode_component, replica_dir};
use crate::process::ProcessActuator;
use crate::products::exec::ExecActuator;
use crate::products::model::ModelServerActuator;
use crate::products::postgres::PostgresActuator;
use crate::products::redis::RedisActuator;
use crate::report::{self, Replicas};
use crate::state::{AgentState, StateStore};
use crate::sync::{ControllerClient, SyncError};

/// Commands taken from one response; the rest wait for the next sync (the controller
/// sends whatever is unfinished again).
pub const COMMANDS_PER_SYNC_MAX: usize = 1024;
/// Transition reports sent in one sync, oldest first.
pub const REPORTS_PER_SYNC_MAX: usize = 1024;
/// Bounds on the heartbeat a controller may ask for.
pub const HEARTBEAT_MIN: Duration = Duration::from_millis(20);
pub const HEARTBEAT_MAX: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("configuration: {field}: {reason}")]
    Config { field: String, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Actuator(#[from] ActuatorError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The actuator of each configured product. Generic processes keep their pid files under
/// `<state_dir>/run/<product>`.
pub fn actuators(config: &AgentConfig) -> Result<Actuators, AgentError> {
    let mut actuators = Actuators::new();
    for (name, product) in &config.products {
        let actuator: Arc<dyn Actuator> = match product {
            ProductConfig::Process(process) => {
                let run_dir = config.state_dir.join("run").join(encode_component(name));
                let actuator = ProcessActuator::new(name, &config.node, process.clone(), run_dir)?;
                Arc::new(actuator)
            }
            ProductConfig::Exec(exec) => {
                Arc::new(ExecActuator::new(name, &config.node, exec.clone())?)
            }
            ProductConfig::ModelServer(model) => Arc::new(ModelServerActuator::new(
                name,
                &config.node,
                model.clone(),
                config.state_dir.join("run").join(encode_component(name)),
                config.replicas_dir.clone(),
                config.data_token.as_ref().map(|t| t.expose().to_string()),
            )?),
            ProductConfig::Postgres(postgres) => Arc::new(PostgresActuator::new(
                name,
                postgres.clone(),
                config.replicas_dir.clone(),
            )?),
            ProductConfig::Redis(redis) => Arc::new(RedisActuator::new(
                name,
                redis.clone(),
                config.replicas_dir.clone(),
            )?),
        };
        actuators.insert(name.clone(), actuator);
    }
    Ok(actuators)
}

/// Runs the agent with the actuators its configuration describes, until `shutdown`
/// completes. Workloads keep running after it returns (a restarted agent adopts them).
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let actuators = actuators(&config)?;
    run_with(config, actuators, shutdown).await
}

/// Runs the agent with the given actuators (by product name), until `shutdown` completes.
/// Errors only on start (configuration, unreadable state); once running, it logs failures
/// and keeps going.
pub async fn run_with(
    config: AgentConfig,
    actuators: Actuators,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    config
        .validate()
        .map_err(|(field, reason)| AgentError::Config { field, reason })?;
    let span = tracing::info_span!("agent", node = %config.node);
    async move {
        let data_server = start_data_server(&config).await?;
        let (mut agent, finished) = Agent::open(config, actuators)?;
        agent.restore().await;
        agent.serve(shutdown, finished).await;
        if let Some(server) = data_server {
            server.abort();
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// Serves replica exports to peers on `registration.data_address`, if one is configured.
async fn start_data_server(
    config: &AgentConfig,
) -> Result<Option<tokio::task::JoinHandle<()>>, AgentError> {
    let Some(address) = &config.registration.data_address else {
        return Ok(None);
    };
    let listener =
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| AgentError::Config {
                field: "registration.data_address".into(),
                reason: format!("cannot listen on {address}: {e}"),
            })?;
    let router = crate::data_server::router(config.replicas_dir.clone(), config.data_token.clone());
    tracing::info!(%address, "serving replica data to peers");
    Ok(Some(tokio::spawn(crate::data_server::serve(
        listener, router,
    ))))
}

struct Agent {
    config: AgentConfig,
    actuators: Actuators,
    state: AgentState,
    state_store: StateStore,
    /// The in-memory state has changes the disk does not (a write failed).
    state_unsaved: bool,
    journal: Journal,
    executed: ExecutedLog,
    client: ControllerClient,
    executor: Executor,
    incarnation: u64,
    /// A controller has answered since start: registration was delivered, and transitions
    /// may run (the answer's epoch fenced anything stale).
    synced: bool,
    /// The leader each replica was last pointed at ([`Work::Follow`]). In memory only: after
    /// a restart the first hint points each replica again, which actuators take as a no-op
    /// when nothing changed.
    following: BTreeMap<ReplicaKey, Source>,
}

impl Agent {
    fn open(
        config: AgentConfig,
        actuators: Actuators,
    ) -> Result<(Agent, mpsc::Receiver<Finished>), AgentError> {
        let (state_store, state) = StateStore::open(&config.state_dir)?;
        let journal = Journal::open(&config.state_dir)?;
        let executed = ExecutedLog::open(&config.state_dir);
        let client = ControllerClient::new(
            config.controllers.clone(),
            config.token.clone(),
            config.node.clone(),
            Duration::from_millis(config.request_timeout_ms),
        )?;
        let (executor, finished) = Executor::new(config.transitions_concurrent_max);
        tracing::info!(
            epoch_seen = state.epoch_seen,
            replicas = state.assignment.len(),
            "state loaded"
        );
        let agent = Agent {
            config,
            actuators,
            state,
            state_store,
            state_unsaved: false,
            journal,
            executed,
            client,
            executor,
            incarnation: incarnation(),
            synced: false,
            following: BTreeMap::new(),
        };
        Ok((agent, finished))
    }

    fn replicas(&self) -> Replicas<'_> {
        Replicas {
            assignment: &self.state.assignment,
            replicas_dir: &self.config.replicas_dir,
            epoch: self.state.epoch_seen,
        }
    }

    /// Brings back the last known assignment and queues unfinished transitions again.
    async fn restore(&mut self) {
        for (replica, assigned) in &self.state.assignment {
            let Some(actuator) = self.actuators.get(&assigned.product) else {
                let product = &assigned.product;
                tracing::error!(%replica, %product, "no actuator for this product");
                continue;
            };
            let context = self.replicas().context(replica, &assigned.product);
            match actuator.ensure_running(&context, &assigned.state).await {
                Ok(()) => tracing::info!(%replica, state = %assigned.state, "running"),
                Err(error) => tracing::error!(%replica, "cannot bring back: {error}"),
            }
        }
        for entry in self.journal.pending() {
            tracing::info!(id = %entry.command.id, "unfinished transition queued again");
            self.executor
                .enqueue(entry.command.replica.clone(), entry.command.id.clone());
        }
    }

    async fn serve(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut finished: mpsc::Receiver<Finished>,
    ) {
        tokio::pin!(shutdown);
        let mut next_sync = Instant::now();
        let mut failures: u32 = 0;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = finished.recv() => {
                    self.finish(done);
                    self.dispatch();
                    next_sync = Instant::now();
                }
                () = tokio::time::sleep_until(next_sync) => {
                    let outcome = tokio::select! {
                        () = &mut shutdown => None,
                        outcome = self.sync_once() => Some(outcome),
                    };
                    let Some(outcome) = outcome else { break };
                    let delay = match outcome {
                        Ok(heartbeat) => {
                            failures = 0;
                            heartbeat
                        }
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            tracing::warn!(failures, "sync failed, workloads run on: {error}");
                            self.backoff(failures)
                        }
                    };
                    self.dispatch();
                    next_sync = Instant::now() + delay;
                }
            }
        }
        tracing::info!("stopping; workloads keep running");
        self.executor.shutdown().await;
    }

    fn backoff(&self, failures: u32) -> Duration {
        let initial = Duration::from_millis(self.config.sync_backoff_initial_ms);
        let max = Duration::from_millis(self.config.sync_backoff_max_ms);
        let doublings = failures.saturating_sub(1).min(20);
        initial.saturating_mul(1 << doublings).min(max)
    }

    /// One sync: report, then apply the answer. Returns the wait until the next one.
    async fn sync_once(&mut self) -> Result<Duration, SyncError> {
        let request = self.request().await;
        let response = self.client.sync(&request).await?;
        if !self.synced {
            tracing::info!(leader = %response.leader, epoch = response.epoch, "registered");
        }
        self.synced = true;
        Ok(self.apply(response))
    }

    async fn request(&self) -> SyncRequest {
        let mut replicas = report::observe_all(&self.replicas(), &self.actuators).await;
        for (replica, id, action) in self.executor.running() {
            if self.state.assignment.contains_key(replica) {
                continue;
            }
            let product = self.journal.get(id).map(|e| e.command.product.as_str());
            if let Some(starting) = report::starting(replica, product.unwrap_or_default(), action) {
                replicas.push(starting);
            }
        }
        let transitions = self
            .journal
            .unacknowledged()
            .into_iter()
            .take(REPORTS_PER_SYNC_MAX)
            .map(|entry| TransitionReport {
                id: entry.command.id.clone(),
                status: entry
                    .status
                    .to_wire(self.executor.progress(&entry.command.id)),
                handoff: match &entry.status {
                    EntryStatus::Done { handoff } => handoff.clone(),
                    _ => None,
                },
            })
            .collect();
        SyncRequest {
            node: self.config.node.clone(),
            incarnation: self.incarnation,
            epoch_seen: self.state.epoch_seen,
            registration: (!self.synced).then(|| report::registration(&self.config.registration)),
            replicas,
            transitions,
        }
    }

    /// Applies an answer: epoch first (durably), then acknowledgements, then commands.
    fn apply(&mut self, response: SyncResponse) -> Duration {
        let heartbeat = match response.heartbeat_ms {
            0 => Duration::from_millis(self.config.heartbeat_ms),
            ms => Duration::from_millis(ms).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX),
        };
        if response.epoch > self.state.epoch_seen {
            tracing::info!(
                from = self.state.epoch_seen,
                to = response.epoch,
                "new epoch"
            );
            self.state.epoch_seen = response.epoch;
            self.state_unsaved = true;
        }
        if !self.save_state() {
            tracing::error!("epoch not durable: no command accepted until it is");
            return heartbeat;
        }
        if response.epoch < self.state.epoch_seen {
            // A deposed leader's word that it recorded a report may not survive into the
            // current leader's view: keep reporting until the current one acknowledges.
            tracing::warn!(epoch = response.epoch, "answer from a deposed leader");
        } else {
            self.journal.acknowledge(&response.acknowledged);
        }
        self.accept(&response.commands, response.epoch);
        if let Err(error) = self.journal.persist() {
            tracing::error!("{error}");
        }
        if response.epoch == self.state.epoch_seen {
            self.follow_leaders(&response.leaders);
        }
        heartbeat
    }

    /// Points idle replicas at their partition's leader where it changed. A replica with
    /// transitions queued or running is left alone: its transitions change what it follows,
    /// and the next hint comes after them.
    fn follow_leaders(&mut self, hints: &[LeaderHint]) {
        for hint in hints {
            let Some(assigned) = self.state.assignment.get(&hint.replica) else {
                continue;
            };
            if self.following.get(&hint.replica) == Some(&hint.leader)
                || self.executor.is_busy(&hint.replica)
                || !self.executor.has_room()
            {
                continue;
            }
            let Some(actuator) = self.actuators.get(&assigned.product).cloned() else {
                continue;
            };
            let replica = &hint.replica;
            tracing::info!(%replica, leader = %hint.leader.node, "following");
            let context = self.replicas().context(replica, &assigned.product);
            self.executor.launch(Job {
                actuator,
                ctx: TransitionContext {
                    id: TransitionId(format!("follow/{replica}")),
                    epoch: context.epoch,
                    replica: context.replica,
                    product: context.product,
                    replica_dir: context.replica_dir,
                    progress: Progress::default(),
                },
                work: Work::Follow {
                    state: assigned.state.clone(),
                    leader: hint.leader.clone(),
                },
                rollback_on_failure: false,
            });
        }
    }

    /// Writes the state if it has unsaved changes; true when the disk matches memory.
    fn save_state(&mut self) -> bool {
        if !self.state_unsaved {
            return true;
        }
        match self.state_store.save(&self.state) {
            Ok(()) => {
                self.state_unsaved = false;
                true
            }
            Err(error) => {
                tracing::error!("{error}");
                false
            }
        }
    }

    /// Journals each new command as queued (and queues it) or refused; repeats are answered
    /// from the journal.
    fn accept(&mut self, commands: &[Command], response_epoch: Epoch) {
        if commands.len() > COMMANDS_PER_SYNC_MAX {
            tracing::warn!(
                count = commands.len(),
                "taking the first {COMMANDS_PER_SYNC_MAX} commands"
            );
        }
        let products: Vec<&str> = self.actuators.keys().map(String::as_str).collect();
        for command in commands.iter().take(COMMANDS_PER_SYNC_MAX) {
            let previous = self.journal.get(&command.id).map(|e| e.status.clone());
            match &previous {
                // A refusal ran nothing: the command deserves a fresh look (a new leader
                // sends the same id with its own, current epoch).
                Some(EntryStatus::Refused { .. }) => {}
                Some(_) => {
                    self.journal.report_again(&command.id);
                    continue;
                }
                None if self.journal.unacknowledged_count() >= UNACKNOWLEDGED_MAX => {
                    tracing::warn!(id = %command.id, "journal full: command left for a later sync");
                    continue;
                }
                None => {}
            }
            let epoch_seen = self.state.epoch_seen;
            match intake::check_arrival(command, epoch_seen, response_epoch, &products) {
                Err(reason)
                    if previous
                        == Some(EntryStatus::Refused {
                            reason: reason.clone(),
                        }) =>
                {
                    self.journal.report_again(&command.id);
                }
                Err(reason) => {
                    tracing::warn!(id = %command.id, "refused: {reason}");
                    self.journal
                        .insert(command.clone(), EntryStatus::Refused { reason });
                }
                Ok(()) => {
                    let (id, replica) = (&command.id, &command.replica);
                    tracing::info!(%id, %replica, action = command.action.name(), "accepted");
                    self.journal.insert(command.clone(), EntryStatus::Queued);
                    self.executor
                        .enqueue(command.replica.clone(), command.id.clone());
                }
            }
        }
    }

    /// Starts what may start: each replica's next transition, checked again against the
    /// epoch and assignment of this moment.
    fn dispatch(&mut self) {
        if !self.synced {
            return;
        }
        // Bounded: every pass takes one transition off a queue.
        for _ in 0..self.executor.queued_len() {
            let Some((replica, id)) = self.executor.next_startable() else {
                break;
            };
            if !self.start_transition(replica, id) {
                break;
            }
        }
        if let Err(error) = self.journal.persist() {
            tracing::error!("{error}");
        }
    }

    /// Refuses, or journals, logs and launches one transition. False if the journal could
    /// not be written (the transition waits, and dispatching stops for now).
    fn start_transition(&mut self, replica: ReplicaKey, id: TransitionId) -> bool {
        let Some(entry) = self
            .journal
            .get(&id)
            .filter(|e| !e.status.is_final())
            .cloned()
        else {
            return true;
        };
        let command = entry.command;
        let actuator = match self.executable(&command) {
            Ok(actuator) => actuator,
            Err(reason) => {
                tracing::warn!(%id, "refused: {reason}");
                self.journal
                    .set_status(&id, EntryStatus::Refused { reason });
                return true;
            }
        };
        let resumed = entry.status == EntryStatus::Running;
        self.journal.set_status(&id, EntryStatus::Running);
        if let Err(error) = self.journal.persist() {
            tracing::error!("not starting {id}: {error}");
            if !resumed {
                self.journal.set_status(&id, EntryStatus::Queued);
            }
            self.executor.requeue_front(replica, id);
            return false;
        }
        let record = ExecutedRecord {
            id: id.clone(),
            epoch: command.epoch,
            replica: replica.clone(),
            product: command.product.clone(),
            action: command.action.name().to_string(),
            resumed,
        };
        if let Err(error) = self.executed.append(&record) {
            // Nothing runs unaudited.
            let error = format!("not run: {error}");
            self.journal.set_status(&id, EntryStatus::Failed { error });
            return true;
        }
        let job = self.job(command, actuator);
        self.executor.launch(job);
        true
    }

    /// The actuator to run `command` with, if it may run now.
    fn executable(&self, command: &Command) -> Result<Arc<dyn Actuator>, String> {
        intake::check_execution(command, self.state.epoch_seen, &self.state.assignment)?;
        self.actuators
            .get(&command.product)
            .cloned()
            .ok_or_else(|| format!("unknown product `{}`", command.product))
    }

    fn job(&self, command: Command, actuator: Arc<dyn Actuator>) -> Job {
        Job {
            rollback_on_failure: intake::rolls_back_on_failure(&command, &self.state.assignment),
            ctx: TransitionContext {
                id: command.id,
                epoch: command.epoch,
                replica_dir: replica_dir(&self.config.replicas_dir, &command.replica),
                replica: command.replica,
                product: command.product,
                progress: Progress::default(),
            },
            work: Work::Transition(command.action),
            actuator,
        }
    }

    /// Records a worker's outcome: the assignment first (on success), then the journal.
    fn finish(&mut self, done: Finished) {
        self.executor.finish(&done.replica);
        if let Work::Follow { leader, .. } = done.work {
            match done.outcome {
                Ok(_) => {
                    self.following.insert(done.replica, leader);
                }
                Err(error) => {
                    let replica = &done.replica;
                    tracing::warn!(%replica, "cannot follow {}: {error}", leader.node);
                }
            }
            return;
        }
        // A transition changes what the replica follows (or whether it follows at all).
        self.following.remove(&done.replica);
        let Some(entry) = self.journal.get(&done.id).cloned() else {
            tracing::error!(id = %done.id, "finished a transition the journal does not hold");
            return;
        };
        let status = match done.outcome {
            Ok(handoff) => {
                intake::apply_done(&mut self.state.assignment, &entry.command);
                self.state_unsaved = true;
                if self.save_state() {
                    EntryStatus::Done { handoff }
                } else {
                    let error = format!(
                        "done, but {} could not be written",
                        self.state_store.path().display()
                    );
                    EntryStatus::Failed { error }
                }
            }
            Err(error) => EntryStatus::Failed { error },
        };
        self.journal.set_status(&done.id, status);
        if let Err(error) = self.journal.persist() {
            tracing::error!("{error}");
        }
    }
}

/// Distinct for every start of the agent (nanoseconds of the wall clock), never 0.
fn incarnation() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(now.as_nanos()).unwrap_or(u64::MAX).max(1)
}
