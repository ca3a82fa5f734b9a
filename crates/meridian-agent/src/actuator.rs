//! What a product implements so the agent can run its replicas.
//!
//! The agent decides *whether* a transition runs (fencing, journal, legality); an actuator
//! decides *how*. Every method must be idempotent: the agent calls it again after a crash
//! mid-way, and a second call must converge on the same end state — never a second copy of
//! the replica, never two processes acting as leader. The agent runs one method at a time
//! per replica, so an actuator need not guard against itself on one replica, only across
//! replicas.
//!
//! Each replica has its own directory ([`TransitionContext::replica_dir`]), created and
//! owned by the actuator; copies publish their progress in bytes through [`Progress`], and
//! honor `rate_mbps`, the rate the planner booked on every link and disk of the path (going
//! faster would break the capacity invariant for everyone else on that path).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use meridian_wire::{Epoch, Health, ReplicaKey, Source, TransitionId};

use crate::durable::StateError;

/// The actuators of an agent, by product name.
pub type Actuators = BTreeMap<String, Arc<dyn Actuator>>;

/// Bytes copied so far by a running transition, shared between the actuator (which writes)
/// and the agent (which reports it each sync).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn set_bytes_done(&self, bytes_done: u64) {
        self.0.store(bytes_done, Ordering::Relaxed);
    }

    pub fn add_bytes_done(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn bytes_done(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One replica as an actuator sees it outside a transition.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaContext {
    pub replica: ReplicaKey,
    pub product: String,
    pub replica_dir: PathBuf,
    /// The highest epoch the agent has accepted: workloads get it (`MERIDIAN_EPOCH`) so a
    /// product with its own fencing can reject a deposed leader's writes.
    pub epoch: Epoch,
}

/// One transition being executed.
#[derive(Debug, Clone)]
pub struct TransitionContext {
    pub id: TransitionId,
    /// The epoch of the command (never below any the agent has accepted before it).
    pub epoch: Epoch,
    pub replica: ReplicaKey,
    pub product: String,
    pub replica_dir: PathBuf,
    pub progress: Progress,
}

impl TransitionContext {
    pub fn replica_context(&self) -> ReplicaContext {
        ReplicaContext {
            replica: self.replica.clone(),
            product: self.product.clone(),
            replica_dir: self.replica_dir.clone(),
            epoch: self.epoch,
        }
    }
}

/// What an actuator sees of a replica it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub health: Health,
    /// Measured load by dimension name (`cpu` in cores, `mem_gib`, ...).
    pub heat: Vec<(String, f64)>,
}

/// Why an actuator could not do what it was asked; reported to the controller as the
/// transition's failure.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Failed(String),
}

impl ActuatorError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> ActuatorError {
        ActuatorError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Runs the replicas of one product on this node.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// Starts a replica that has nothing to copy, in `state`. Already running in `state`:
    /// nothing to do.
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError>;

    /// Copies `bytes` of the replica's data from `source` at no more than `rate_mbps` MB/s,
    /// verifies it, and starts the replica in `state`. A repeat after a crash resumes or
    /// restarts the copy; it never leaves two copies.
    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError>;

    /// Moves the replica from `from` into the leader state `to`. The controller sends it only
    /// once the old leader is fenced.
    async fn promote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
    ) -> Result<(), ActuatorError>;

    /// Moves the replica out of the leader state (or between two other states). When it
    /// returns, the replica no longer acts in `from`.
    async fn demote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
    ) -> Result<(), ActuatorError>;

    /// Stops the replica and removes it, data included, from this node. Already gone:
    /// nothing to do.
    async fn stop(&self, ctx: &TransitionContext, from: &str) -> Result<(), ActuatorError>;

    /// The replica's health and heat, for the next report. Must return within a few seconds
    /// (the agent gives up on it past that and reports the replica failing).
    async fn observe(&self, replica: &ReplicaContext) -> Observation;

    /// On agent start: makes the replica run in `state`, adopting what still runs from
    /// before the restart instead of starting a second copy.
    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError>;
}
