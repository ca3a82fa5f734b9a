//! The controller's state and the operations on it that the API, the agents' syncs and the
//! reconcile loop share. One mutex guards the in-memory state; it is never held across an
//! await (store IO happens outside it, with the results applied after).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use meridian_model::Fleet;
use meridian_store::{Epoch, Leadership, Revision, Store};
use meridian_wire::{Registration, ReplicaStatus, TransitionId};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::ControllerConfig;
use crate::detector::{Detector, Liveness};
use crate::metrics::Metrics;
use crate::records::{NodeAdmin, PlanRecord};

/// Events kept for the API's "recent decisions".
const EVENTS_MAX: usize = 200;

pub struct Controller {
    pub(crate) config: ControllerConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) inner: Mutex<Inner>,
    /// Wakes the reconcile loop early (an agent reported, an operator acted).
    pub(crate) wake: Notify,
    /// One persist round at a time, so an acknowledgement never overtakes its write.
    pub(crate) persisting: tokio::sync::Mutex<()>,
    clock: Instant,
    pub metrics: Metrics,
}

/// The fleet spec the controller works from.
#[derive(Clone)]
pub struct Spec {
    pub fleet: Arc<Fleet>,
    pub yaml: String,
    pub revision: Revision,
}

/// Who leads, as this controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LeaderView {
    pub id: String,
    pub api_url: String,
    #[serde(default)]
    pub epoch: Epoch,
}

pub(crate) struct LeaderState {
    pub leadership: Arc<dyn Leadership>,
    pub epoch: Epoch,
    pub since_ms: u64,
    pub settle_until_ms: u64,
    pub next_plan_id: u64,
    pub last_plan_ms: Option<u64>,
    /// Plans and marks are loaded from the store: only then may agents' reports be matched
    /// against plans (a report matched against nothing would be acknowledged and lost).
    pub loaded: bool,
    /// The world the last decision was made for; no new decision while it is unchanged.
    pub decided_for: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NodeState {
    pub registration: Option<Registration>,
    pub incarnation: u64,
    pub replicas: Vec<ReplicaStatus>,
    pub observed_dirty: bool,
    pub observed_revision: Option<Revision>,
    /// Final transition reports recorded in memory, to acknowledge once persisted.
    pub acks_pending: Vec<TransitionId>,
    /// Persisted: sent in the next answer, then forgotten.
    pub acks_durable: Vec<TransitionId>,
    pub last_sync_ms: Option<u64>,
}

pub(crate) struct PlanEntry {
    pub record: PlanRecord,
    /// The plan key's revision in the store (None: not written yet).
    pub revision: Option<Revision>,
    pub dirty: bool,
    /// The world it was made for (a proposal the world moved away from is superseded).
    pub world: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub unix_ms: u64,
    pub text: String,
}

pub(crate) struct Inner {
    pub leader: Option<LeaderState>,
    pub known_leader: Option<LeaderView>,
    pub spec: Option<Spec>,
    pub admin: BTreeMap<String, (NodeAdmin, Option<Revision>)>,
    pub nodes: BTreeMap<String, NodeState>,
    pub detector: Detector,
    pub liveness: BTreeMap<String, Liveness>,
    pub leaders: crate::leaders::LeaderIndex,
    pub plans: BTreeMap<u64, PlanEntry>,
    /// The desired placement by group, with each key's store revision and whether it is
    /// written yet.
    pub targets: BTreeMap<String, TargetEntry>,
    pub events: VecDeque<Event>,
}

pub(crate) struct TargetEntry {
    pub record: crate::records::TargetRecord,
    pub revision: Option<Revision>,
    pub dirty: bool,
}

impl Inner {
    pub fn event(&mut self, text: String) {
        tracing::info!(target: "meridian::controller", "{text}");
        if self.events.len() == EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(Event {
            unix_ms: unix_ms(),
            text,
        });
    }

    pub fn epoch(&self) -> Option<Epoch> {
        self.leader.as_ref().map(|l| l.epoch)
    }

    /// Whether `state` is the leader state of `product` (false for unknown products).
    pub fn is_leader_state(&self, product: &str, state: &str) -> bool {
        self.spec.as_ref().is_some_and(|spec| {
            spec.fleet.products.iter().any(|model| {
                model.name == product
                    && model
                        .leader
                        .is_some_and(|l| model.states[l.index()] == state)
            })
        })
    }

    /// Re-reads which partitions `node` leads from its last report.
    pub fn index_leaders_of(&mut self, node: &str) {
        let replicas = self
            .nodes
            .get(node)
            .map(|n| n.replicas.clone())
            .unwrap_or_default();
        let mut index = std::mem::take(&mut self.leaders);
        index.record(node, &replicas, |product, state| {
            self.is_leader_state(product, state)
        });
        self.leaders = index;
    }

    pub fn liveness_of(&self, node: &str) -> Liveness {
        self.liveness.get(node).copied().unwrap_or(Liveness::Dead)
    }

    /// What decisions (and what-ifs) start from: live nodes' replicas, and the down,
    /// cordoned and draining nodes of `fleet`.
    pub fn node_states(&self, fleet: &Fleet) -> crate::planning::NodeStates {
        let mut states = crate::planning::NodeStates::default();
        for node in fleet.topology.node_ids() {
            let name = fleet.topology.node_name(node);
            if self.liveness_of(name) == Liveness::Alive {
                if let Some(state) = self.nodes.get(name) {
                    states
                        .observed
                        .push((name.to_string(), state.replicas.clone()));
                }
            } else {
                states.down.push(node);
            }
            if let Some((admin, _)) = self.admin.get(name) {
                if admin.cordoned {
                    states.cordoned.push(node);
                }
                if admin.draining {
                    states.draining.push(node);
                }
            }
        }
        states
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Controller {
    pub fn new(config: ControllerConfig, store: Arc<dyn Store>) -> Arc<Controller> {
        let detector = Detector::new(config.detector.clone());
        Arc::new(Controller {
            config,
            store,
            inner: Mutex::new(Inner {
                leader: None,
                known_leader: None,
                spec: None,
                admin: BTreeMap::new(),
                nodes: BTreeMap::new(),
                detector,
                liveness: BTreeMap::new(),
                leaders: Default::default(),
                plans: BTreeMap::new(),
                targets: BTreeMap::new(),
                events: VecDeque::new(),
            }),
            wake: Notify::new(),
            persisting: tokio::sync::Mutex::new(()),
            clock: Instant::now(),
            metrics: Metrics::new(),
        })
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Milliseconds on this process's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation leaves the state consistent before anything can panic, so a poisoned
        // lock still guards sound data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader's epoch if this controller leads and its lease is alive.
    pub fn leading_epoch(&self) -> Option<Epoch> {
        let inner = self.lock();
        let leader = inner.leader.as_ref()?;
        (leader.loaded && leader.leadership.is_held()).then_some(leader.epoch)
    }

    pub fn known_leader(&self) -> Option<LeaderView> {
        self.lock().known_leader.clone()
    }

    pub fn spec(&self) -> Option<Spec> {
        self.lock().spec.clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    pub fn plans(&self) -> Vec<PlanRecord> {
        self.lock()
            .plans
            .values()
            .map(|p| p.record.clone())
            .collect()
    }

    /// The desired placement, by group, as the last decisions made it.
    pub fn targets(&self) -> Vec<crate::records::TargetRecord> {
        self.lock()
            .targets
            .values()
            .map(|t| t.record.clone())
            .collect()
    }

    pub fn plan(&self, id: u64) -> Option<PlanRecord> {
        self.lock().plans.get(&id).map(|p| p.record.clone())
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
