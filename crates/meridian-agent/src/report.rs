//! What the agent tells the controller each sync: its replicas (health and heat, observed
//! now) and its registration.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meridian_wire::{Action, Epoch, Health, Registration, ReplicaKey, ReplicaStatus};
use tokio::task::JoinSet;

use crate::actuator::{Actuators, Observation, ReplicaContext};
use crate::config::RegistrationConfig;
use crate::paths::replica_dir;
use crate::state::Assigned;

/// An actuator's observation taking longer than this is reported as failing: one stuck
/// replica must not stop the node's reports.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn registration(config: &RegistrationConfig) -> Registration {
    Registration {
        capacity: config.capacity.clone().into_iter().collect(),
        labels: config.labels.clone().into_iter().collect(),
        data_address: config.data_address.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Where the assigned replicas are.
pub struct Replicas<'a> {
    pub assignment: &'a BTreeMap<ReplicaKey, Assigned>,
    pub replicas_dir: &'a Path,
    pub epoch: Epoch,
}

impl Replicas<'_> {
    pub fn context(&self, replica: &ReplicaKey, product: &str) -> ReplicaContext {
        ReplicaContext {
            replica: replica.clone(),
            product: product.to_string(),
            replica_dir: replica_dir(self.replicas_dir, replica),
            epoch: self.epoch,
        }
    }
}

/// Observes every assigned replica concurrently, each bounded by [`OBSERVE_TIMEOUT`]; a
/// replica whose product has no actuator here is failing. Sorted by replica.
pub async fn observe_all(replicas: &Replicas<'_>, actuators: &Actuators) -> Vec<ReplicaStatus> {
    let mut observations = JoinSet::new();
    let mut out = Vec::with_capacity(replicas.assignment.len());
    for (replica, assigned) in replicas.assignment {
        let Some(actuator) = actuators.get(&assigned.product).cloned() else {
            out.push(status(replica, assigned, Observation::failing()));
            continue;
        };
        let context = replicas.context(replica, &assigned.product);
        let assigned = assigned.clone();
        observations.spawn(async move {
            let observed = tokio::time::timeout(OBSERVE_TIMEOUT, actuator.observe(&context)).await;
            status(
                &context.replica,
                &assigned,
                observed.unwrap_or_else(|_| Observation::failing()),
            )
        });
    }
    while let Some(joined) = observations.join_next().await {
        match joined {
            Ok(replica_status) => out.push(replica_status),
            Err(error) => tracing::error!("observing a replica failed: {error}"),
        }
    }
    out.sort_by(|a, b| a.replica.cmp(&b.replica));
    out
}

/// Replicas being created right now are reported as starting, in the state they will have.
pub fn starting(replica: &ReplicaKey, product: &str, action: &Action) -> Option<ReplicaStatus> {
    let state = match action {
        Action::Start { state } | Action::Replicate { state, .. } => state,
        _ => return None,
    };
    Some(ReplicaStatus {
        replica: replica.clone(),
        product: product.to_string(),
        state: state.clone(),
        health: Health::Starting,
        heat: Vec::new(),
        endpoint: None,
    })
}

fn status(replica: &ReplicaKey, assigned: &Assigned, observed: Observation) -> ReplicaStatus {
    ReplicaStatus {
        replica: replica.clone(),
        product: assigned.product.clone(),
        state: assigned.state.clone(),
        health: observed.health,
        heat: observed.heat,
        endpoint: observed.endpoint,
    }
}
