//! Runs accepted transitions: concurrently across replicas, one at a time per replica in
//! arrival order, at most `concurrent_max` at once. A replica's work also includes
//! re-pointing it at a new leader ([`Work::Follow`]), which takes the replica like a
//! transition does, so the two never overlap. Decisions (whether a transition may run, what
//! its outcome means) are the agent's; this module only queues, launches workers and hands
//! their outcomes back over a channel.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use meridian_wire::{Action, ReplicaKey, Source, TransitionId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::actuator::{Actuator, ActuatorError, Progress, TransitionContext};

/// What a job does to its replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A transition the controller commanded (journaled, reported).
    Transition(Action),
    /// Follow the partition's leader (the controller's hint; not journaled: the next hint
    /// repeats it).
    Follow { state: String, leader: Source },
}

impl Work {
    pub fn name(&self) -> &'static str {
        match self {
            Work::Transition(action) => action.name(),
            Work::Follow { .. } => "follow",
        }
    }
}

/// One piece of work to execute.
pub struct Job {
    pub actuator: Arc<dyn Actuator>,
    pub ctx: TransitionContext,
    pub work: Work,
    /// On failure, stop the replica again: the transition was creating it, and a partial
    /// replica must not linger.
    pub rollback_on_failure: bool,
}

/// A worker's outcome: for a transition, the handoff a demotion reported.
#[derive(Debug)]
pub struct Finished {
    pub id: TransitionId,
    pub replica: ReplicaKey,
    pub work: Work,
    pub outcome: Result<Option<String>, String>,
}

pub struct Executor {
    queues: BTreeMap<ReplicaKey, VecDeque<TransitionId>>,
    /// The work each busy replica runs, with its progress.
    running: BTreeMap<ReplicaKey, (TransitionId, Work, Progress)>,
    workers: JoinSet<()>,
    finished: mpsc::Sender<Finished>,
    concurrent_max: usize,
}

impl Executor {
    pub fn new(concurrent_max: usize) -> (Executor, mpsc::Receiver<Finished>) {
        assert!(
            concurrent_max > 0,
            "at least one transition must be able to run"
        );
        // Every worker sends exactly one outcome, and at most `concurrent_max` run.
        let (finished, receiver) = mpsc::channel(concurrent_max);
        let executor = Executor {
            queues: BTreeMap::new(),
            running: BTreeMap::new(),
            workers: JoinSet::new(),
            finished,
            concurrent_max,
        };
        (executor, receiver)
    }

    pub fn enqueue(&mut self, replica: ReplicaKey, id: TransitionId) {
        self.queues.entry(replica).or_default().push_back(id);
    }

    /// Puts a transition back at the head of its replica's queue (it could not start).
    pub fn requeue_front(&mut self, replica: ReplicaKey, id: TransitionId) {
        self.queues.entry(replica).or_default().push_front(id);
    }

    pub fn queued_len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Takes the next transition that may start now: the head of a queue whose replica runs
    /// nothing, while fewer than the maximum run.
    pub fn next_startable(&mut self) -> Option<(ReplicaKey, TransitionId)> {
        if self.running.len() >= self.concurrent_max {
            return None;
        }
        let replica = self
            .queues
            .keys()
            .find(|replica| !self.running.contains_key(*replica))?
            .clone();
        let queue = self.queues.get_mut(&replica)?;
        let id = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&replica);
        }
        id.map(|id| (replica, id))
    }

    /// Starts a worker for `job`; its replica is busy until [`Executor::finish`].
    pub fn launch(&mut self, job: Job) {
        let replica = job.ctx.replica.clone();
        assert!(
            !self.running.contains_key(&replica),
            "one transition per replica at a time"
        );
        let entry = (
            job.ctx.id.clone(),
            job.work.clone(),
            job.ctx.progress.clone(),
        );
        self.running.insert(replica, entry);
        let span = tracing::info_span!(
            "transition", id = %job.ctx.id, replica = %job.ctx.replica, action = job.work.name()
        );
        let finished = self.finished.clone();
        self.workers.spawn(work(job, finished).instrument(span));
    }

    pub fn finish(&mut self, replica: &ReplicaKey) {
        self.running.remove(replica);
        // Collect finished workers so the set does not grow.
        while self.workers.try_join_next().is_some() {}
    }

    /// The progress of a running transition.
    pub fn progress(&self, id: &TransitionId) -> Option<&Progress> {
        self.running
            .values()
            .find(|(running, _, _)| running == id)
            .map(|(_, _, progress)| progress)
    }

    /// Whether `replica` runs something now or has transitions waiting.
    pub fn is_busy(&self, replica: &ReplicaKey) -> bool {
        self.running.contains_key(replica) || self.queues.contains_key(replica)
    }

    /// Whether a job may start now (fewer than the maximum run).
    pub fn has_room(&self) -> bool {
        self.running.len() < self.concurrent_max
    }

    /// The transitions running now, by replica.
    pub fn running(&self) -> impl Iterator<Item = (&ReplicaKey, &TransitionId, &Action)> {
        self.running
            .iter()
            .filter_map(|(replica, (id, work, _))| match work {
                Work::Transition(action) => Some((replica, id, action)),
                Work::Follow { .. } => None,
            })
    }

    /// Abandons running workers (the agent is stopping; their transitions are still
    /// `running` in the journal and resume at the next start).
    pub async fn shutdown(&mut self) {
        self.workers.shutdown().await;
        self.running.clear();
    }
}

async fn work(job: Job, finished: mpsc::Sender<Finished>) {
    let started = std::time::Instant::now();
    let mut outcome = execute(&*job.actuator, &job.ctx, &job.work)
        .await
        .map_err(|e| e.to_string());
    if let Err(error) = &outcome {
        tracing::warn!("failed: {error}");
        if job.rollback_on_failure {
            outcome = Err(rollback(&job, error).await);
        }
    } else {
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "done");
    }
    let report = Finished {
        id: job.ctx.id.clone(),
        replica: job.ctx.replica.clone(),
        work: job.work,
        outcome,
    };
    // The receiver is gone only when the agent stops: the journal still has the transition.
    let _ = finished.send(report).await;
}

async fn execute(
    actuator: &dyn Actuator,
    ctx: &TransitionContext,
    work: &Work,
) -> Result<Option<String>, ActuatorError> {
    let action = match work {
        Work::Transition(action) => action,
        Work::Follow { state, leader } => {
            return actuator
                .follow(&ctx.replica_context(), state, leader)
                .await
                .map(|()| None);
        }
    };
    match action {
        Action::Start { state } => actuator.start(ctx, state).await.map(|()| None),
        Action::Replicate {
            state,
            source,
            bytes,
            rate_mbps,
        } => actuator
            .replicate(ctx, state, source, *bytes, *rate_mbps)
            .await
            .map(|()| None),
        Action::Promote { from, to, handoff } => actuator
            .promote(ctx, from, to, handoff.as_deref())
            .await
            .map(|()| None),
        Action::Demote { from, to } => actuator.demote(ctx, from, to).await,
        Action::Stop { from } => actuator.stop(ctx, from).await.map(|()| None),
    }
}

/// Removes what a failed creation left; the error says whether that worked.
async fn rollback(job: &Job, error: &str) -> String {
    let Work::Transition(action) = &job.work else {
        return error.to_string();
    };
    let state = crate::intake::target_state(action).unwrap_or_default();
    match job.actuator.stop(&job.ctx, state).await {
        Ok(()) => format!("{error} (rolled back)"),
        Err(rollback) => format!("{error} (rollback failed too: {rollback})"),
    }
}
