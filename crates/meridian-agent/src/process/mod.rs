//! The generic actuator: each replica is one process running a configured command.
//!
//! It suits any product that can be told its role at launch (`MERIDIAN_STATE` or a
//! `{state}` argument) or through a hook, and that replicates itself once started as a
//! follower. It moves no data of its own: [`Actuator::replicate`] starts the replica in its
//! arrival state and leaves the copy to the product. Products whose data the agent must
//! move, verify and throttle (PostgreSQL base backups, Redis full syncs, model weights) get
//! actuators of their own; they publish bytes through the context's progress and honor the
//! booked rate.
//!
//! Idempotency comes from converging on a desired state rather than replaying steps: each
//! call finds what runs (a supervised process, or one a previous agent left, named by its pid
//! file), and changes only what differs. State changes restart the process with the new
//! `MERIDIAN_STATE` — the old process has exited before the new one starts, so a demoted
//! leader never overlaps its successor on this node — unless a `state_change` hook is
//! configured, which then runs instead.

pub(crate) mod launch;
pub mod pidfile;
pub(crate) mod procfs;
mod supervisor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use meridian_wire::{Health, ReplicaKey, Source};
use tokio::time::Instant;

use crate::actuator::{Actuator, ActuatorError, Observation, ReplicaContext, TransitionContext};
use crate::config::ProcessConfig;
use launch::{CommandLine, Placeholders};
use procfs::CpuSample;
use supervisor::{LaunchSpec, Status, Supervisor, Timing};

/// Between two health checks while a start waits for the first pass.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Runs one product's replicas as supervised processes.
pub struct ProcessActuator {
    product: String,
    node: String,
    config: ProcessConfig,
    /// Pid files and workload output, one subdirectory per group.
    run_dir: PathBuf,
    /// One slot per replica; its lock serializes work on that replica.
    slots: Mutex<BTreeMap<ReplicaKey, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Default)]
struct Slot {
    supervisor: Option<Supervisor>,
    cpu: Option<CpuSample>,
}

/// What a convergence waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// The process is launched (or adopted).
    Launched,
    /// ... and, with a health check configured, has passed it once.
    Healthy,
}

impl ProcessActuator {
    /// An actuator for `product` on `node`, keeping pid files under `run_dir`. Two actuators
    /// on the same `run_dir` see the same workloads: that is how a restarted agent adopts
    /// them.
    pub fn new(
        product: impl Into<String>,
        node: impl Into<String>,
        config: ProcessConfig,
        run_dir: impl Into<PathBuf>,
    ) -> Result<ProcessActuator, ActuatorError> {
        let product = product.into();
        config.validate().map_err(|(field, reason)| {
            ActuatorError::Failed(format!("products.{product}.{field}: {reason}"))
        })?;
        Ok(ProcessActuator {
            product,
            node: node.into(),
            config,
            run_dir: run_dir.into(),
            slots: Mutex::new(BTreeMap::new()),
        })
    }

    fn slot(&self, replica: &ReplicaKey) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.entry(replica.clone()).or_default().clone()
    }

    fn existing_slot(&self, replica: &ReplicaKey) -> Option<Arc<tokio::sync::Mutex<Slot>>> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(replica).cloned()
    }

    /// Drops a replica's slot once nobody holds it (a call waiting on its lock keeps it, so
    /// two calls can never work on two different slots of one replica).
    fn forget(&self, replica: &ReplicaKey) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots
            .get(replica)
            .is_some_and(|slot| Arc::strong_count(slot) == 1)
        {
            slots.remove(replica);
        }
    }

    fn timing(&self) -> Timing {
        Timing {
            stop_grace: Duration::from_millis(self.config.stop_grace_ms),
            backoff_initial: Duration::from_millis(self.config.restart_backoff_initial_ms),
            backoff_max: Duration::from_millis(self.config.restart_backoff_max_ms),
        }
    }

    fn placeholders(&self, replica: &ReplicaContext, state: &str) -> Placeholders {
        Placeholders {
            replica: replica.replica.clone(),
            state: state.to_string(),
            node: self.node.clone(),
            dir: replica.replica_dir.clone(),
            epoch: replica.epoch,
            extra: Vec::new(),
        }
    }

    fn command_line(&self, template: &[String], values: &Placeholders) -> CommandLine {
        let mut env: Vec<(String, String)> = self.config.env.clone().into_iter().collect();
        env.extend(values.environment());
        CommandLine {
            argv: values.render(template),
            env,
            dir: values.dir.clone(),
        }
    }

    fn spec(&self, replica: &ReplicaContext, state: &str) -> LaunchSpec {
        let values = self.placeholders(replica, state);
        LaunchSpec {
            line: self.command_line(&self.config.command, &values),
            state: state.to_string(),
            epoch: replica.epoch,
            pid_file: pidfile::path(&self.run_dir, &replica.replica),
            output_file: pidfile::output_path(&self.run_dir, &replica.replica),
        }
    }

    /// A supervisor over the process a previous agent left running, if its pid file names a
    /// live one.
    fn adopt(&self, replica: &ReplicaContext) -> Result<Option<Supervisor>, ActuatorError> {
        let path = pidfile::path(&self.run_dir, &replica.replica);
        let Some(record) = pidfile::read(&path)? else {
            return Ok(None);
        };
        if !procfs::is_alive(record.identity()) {
            return Ok(None);
        }
        tracing::info!(
            replica = %replica.replica, pid = record.pid, state = %record.state,
            "adopting a running workload"
        );
        let adopted_context = ReplicaContext {
            epoch: record.epoch,
            ..replica.clone()
        };
        let spec = self.spec(&adopted_context, &record.state);
        Ok(Some(Supervisor::start(
            spec,
            Some(record.identity()),
            self.timing(),
        )))
    }

    /// Makes the replica run in `state`: adopts or launches it if nothing is supervised,
    /// changes its state if it differs, then waits for `readiness`.
    async fn converge(
        &self,
        replica: &ReplicaContext,
        state: &str,
        readiness: Readiness,
    ) -> Result<(), ActuatorError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.start_timeout_ms);
        let slot = self.slot(&replica.replica);
        let mut slot = slot.lock().await;
        std::fs::create_dir_all(&replica.replica_dir)
            .map_err(|e| ActuatorError::io(format!("{}", replica.replica_dir.display()), e))?;
        if slot.supervisor.is_none() {
            slot.supervisor = self.adopt(replica)?;
        }
        match &slot.supervisor {
            None => {
                let spec = self.spec(replica, state);
                slot.supervisor = Some(Supervisor::start(spec, None, self.timing()));
            }
            Some(supervisor) if supervisor.state() == state => {}
            Some(_) => {
                self.change_state(&mut slot.supervisor, replica, state)
                    .await?
            }
        }
        let Some(supervisor) = slot.supervisor.as_mut() else {
            return Err(ActuatorError::Failed(format!(
                "{}: not supervised",
                replica.replica
            )));
        };
        let timeout = deadline.saturating_duration_since(Instant::now());
        supervisor
            .wait_launched(timeout)
            .await
            .map_err(|e| ActuatorError::Failed(format!("{}: {e}", replica.replica)))?;
        drop(slot);
        if readiness == Readiness::Healthy {
            self.wait_healthy(replica, state, deadline).await?;
        }
        Ok(())
    }

    /// Applies a state change to the supervised replica in `current`: through the hook if
    /// configured (the supervisor stays, whatever the hook's outcome), else by stopping the
    /// old process and launching a new one.
    async fn change_state(
        &self,
        current: &mut Option<Supervisor>,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        let previous = current.as_ref().map(Supervisor::state).unwrap_or_default();
        tracing::info!(replica = %replica.replica, from = %previous, to = %state, "state change");
        let Some(hook) = &self.config.state_change else {
            if let Some(old) = current.take() {
                old.stop()
                    .await
                    .map_err(|e| ActuatorError::Failed(format!("{}: {e}", replica.replica)))?;
            }
            let spec = self.spec(replica, state);
            *current = Some(Supervisor::start(spec, None, self.timing()));
            return Ok(());
        };
        let values = self.placeholders(replica, state);
        let mut line = self.command_line(&hook.command, &values);
        line.env.push(("MERIDIAN_PREVIOUS_STATE".into(), previous));
        let output = pidfile::output_path(&self.run_dir, &replica.replica);
        let timeout = Duration::from_millis(hook.timeout_ms);
        launch::run_to_completion(&line, timeout, Some(&output))
            .await
            .map_err(|e| ActuatorError::Failed(format!("state_change hook: {e}")))?;
        if let Some(supervisor) = current.as_ref() {
            supervisor.replace_spec(self.spec(replica, state))?;
        }
        Ok(())
    }

    async fn wait_healthy(
        &self,
        replica: &ReplicaContext,
        state: &str,
        deadline: Instant,
    ) -> Result<(), ActuatorError> {
        if self.config.health.is_none() {
            return Ok(());
        }
        let mut last_error = String::from("no check finished");
        while Instant::now() < deadline {
            match self.check_health(replica, state).await {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
        Err(ActuatorError::Failed(format!(
            "{}: not healthy within {} ms: {last_error}",
            replica.replica, self.config.start_timeout_ms
        )))
    }

    /// Runs the health check once; `Ok` if there is none.
    async fn check_health(&self, replica: &ReplicaContext, state: &str) -> Result<(), String> {
        let Some(health) = &self.config.health else {
            return Ok(());
        };
        let line = self.command_line(&health.command, &self.placeholders(replica, state));
        launch::run_to_completion(&line, Duration::from_millis(health.timeout_ms), None).await
    }

    /// Stops whatever runs for the replica (supervised or left by a previous agent), then
    /// removes its pid file and directory.
    async fn remove(&self, replica: &ReplicaContext) -> Result<(), ActuatorError> {
        let handle = self.slot(&replica.replica);
        let mut slot = handle.lock().await;
        if slot.supervisor.is_none() {
            slot.supervisor = self.adopt(replica)?;
        }
        if let Some(supervisor) = slot.supervisor.take() {
            supervisor
                .stop()
                .await
                .map_err(|e| ActuatorError::Failed(format!("{}: {e}", replica.replica)))?;
        }
        pidfile::remove(&pidfile::path(&self.run_dir, &replica.replica))?;
        remove_dir(&replica.replica_dir)?;
        drop(slot);
        drop(handle);
        self.forget(&replica.replica);
        Ok(())
    }
}

fn remove_dir(path: &Path) -> Result<(), ActuatorError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ActuatorError::io(format!("remove {}", path.display()), e)),
    }
}

#[async_trait]
impl Actuator for ProcessActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        debug_assert_eq!(ctx.product, self.product);
        self.converge(&ctx.replica_context(), state, Readiness::Healthy)
            .await
    }

    /// Starts the replica in its arrival state; the product copies its own data (see the
    /// module documentation). Progress stays at 0: this actuator moves no bytes.
    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        tracing::debug!(
            replica = %ctx.replica, source = %source.node, bytes, rate_mbps,
            "generic replicate: starting the replica, the product copies its own data"
        );
        self.converge(&ctx.replica_context(), state, Readiness::Healthy)
            .await
    }

    /// The workload sees its new state in `MERIDIAN_STATE` after a restart; a generic
    /// process has no replication position to wait for.
    async fn promote(
        &self,
        ctx: &TransitionContext,
        _from: &str,
        to: &str,
        _handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        self.converge(&ctx.replica_context(), to, Readiness::Healthy)
            .await
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        _from: &str,
        to: &str,
    ) -> Result<Option<String>, ActuatorError> {
        self.converge(&ctx.replica_context(), to, Readiness::Healthy)
            .await
            .map(|()| None)
    }

    async fn stop(&self, ctx: &TransitionContext, _from: &str) -> Result<(), ActuatorError> {
        self.remove(&ctx.replica_context()).await
    }

    async fn observe(&self, replica: &ReplicaContext) -> Observation {
        let failing = Observation::failing();
        let Some(slot) = self.existing_slot(&replica.replica) else {
            return failing;
        };
        // Busy: a transition is changing this replica right now.
        let Ok(mut slot) = slot.try_lock() else {
            return Observation::starting();
        };
        let Some(supervisor) = &slot.supervisor else {
            return failing;
        };
        let state = supervisor.state();
        let identity = match supervisor.status() {
            Status::Running { identity } => identity,
            Status::Launching => return Observation::starting(),
            Status::Backoff { .. } | Status::Stopped => return failing,
        };
        let heat = procfs::measure_heat(identity, &mut slot.cpu);
        drop(slot);
        let health = match self.check_health(replica, &state).await {
            Ok(()) => Health::Serving,
            Err(error) => {
                tracing::debug!(replica = %replica.replica, "health check failed: {error}");
                Health::Failing
            }
        };
        Observation {
            health,
            heat,
            endpoint: None,
        }
    }

    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        self.converge(replica, state, Readiness::Launched).await
    }
}
