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

/// How far a running transition got: bytes copied so far and, once the product can say,
/// how far the copy trails its source. Shared between the actuator (which writes) and the
/// agent (which reports it each sync).
#[derive(Debug, Clone)]
pub struct Progress(Arc<ProgressCounters>);

#[derive(Debug)]
struct ProgressCounters {
    bytes_done: AtomicU64,
    /// `u64::MAX` while unknown.
    lag_bytes: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(ProgressCounters {
            bytes_done: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(u64::MAX),
        }))
    }
}

impl Progress {
    pub fn set_bytes_done(&self, bytes_done: u64) {
        self.0.bytes_done.store(bytes_done, Ordering::Relaxed);
    }

    pub fn add_bytes_done(&self, bytes: u64) {
        self.0.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn bytes_done(&self) -> u64 {
        self.0.bytes_done.load(Ordering::Relaxed)
    }

    pub fn set_lag_bytes(&self, lag_bytes: u64) {
        self.0
            .lag_bytes
            .store(lag_bytes.min(u64::MAX - 1), Ordering::Relaxed);
    }

    pub fn lag_bytes(&self) -> Option<u64> {
        Some(self.0.lag_bytes.load(Ordering::Relaxed)).filter(|&lag| lag != u64::MAX)
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
    /// Where the replica serves (`host:port` or a URL), if peers reach it directly: the
    /// controller passes it on to replicas that copy from it or follow it.
    pub endpoint: Option<String>,
}

impl Observation {
    /// Expected to run but not answering.
    pub fn failing() -> Observation {
        Observation {
            health: Health::Failing,
            heat: Vec::new(),
            endpoint: None,
        }
    }

    /// Being created, copied or changed by a transition.
    pub fn starting() -> Observation {
        Observation {
            health: Health::Starting,
            heat: Vec::new(),
            endpoint: None,
        }
    }
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
    /// once the old leader is fenced. `handoff` is the position the demoted leader reported
    /// ([`Actuator::demote`]): the replica must have caught up to it before it takes writes,
    /// and must refuse (fail) rather than promote without it. None when the old leader died.
    async fn promote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError>;

    /// Moves the replica out of the leader state (or between two other states). When it
    /// returns, the replica no longer acts in `from`: a demoted leader takes no more writes.
    /// Returns the product's position where writes stopped (an LSN, an offset), if it has
    /// one, for the successor's promotion to wait for.
    async fn demote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
    ) -> Result<Option<String>, ActuatorError>;

    /// Points a non-leader replica at its partition's serving leader (the controller says
    /// which, and says again when it changes). Idempotent; the agent never runs it while a
    /// transition runs on the replica. Products without replication need nothing.
    async fn follow(
        &self,
        replica: &ReplicaContext,
        state: &str,
        leader: &Source,
    ) -> Result<(), ActuatorError> {
        let _ = (replica, state, leader);
        Ok(())
    }

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
