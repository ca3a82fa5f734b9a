//! The protocol between the controller and node agents (JSON over HTTP).
//!
//! Agents pull: each agent posts a [`SyncRequest`] to the leading controller every heartbeat
//! interval (and at once when a transition finishes), reporting what it runs and how its
//! transitions went; the answer is a [`SyncResponse`] with the leader's epoch and the commands
//! for that node. Pulling keeps agents in charge of their own pace, lets any controller
//! answer after a failover without knowing agents' addresses, and means an agent that cannot
//! reach a controller simply keeps what it runs.
//!
//! Safety rules the types carry:
//! - Every [`Command`] has an `epoch` (the leading controller's fencing epoch). An agent
//!   remembers the highest epoch it has seen (durably) and refuses anything older.
//! - Every command has a [`TransitionId`], stable across controller failovers (derived from
//!   the plan and step), so a command sent twice runs once: the agent answers a repeat from
//!   its journal.
//! - Replicas are named by group name and partition, not by solver ids, so the wire stays
//!   meaningful across spec changes.

use serde::{Deserialize, Serialize};

/// The leading controller's fencing epoch (its election key's create revision in the store).
pub type Epoch = i64;

/// Path of the agents' sync endpoint; `{node}` is the agent's node name.
pub const SYNC_PATH: &str = "/v1/agents/{node}/sync";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub group: String,
    pub partition: u32,
}

impl std::fmt::Display for ReplicaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group, self.partition)
    }
}

/// A transition's identity, e.g. `plan-7/step-12`: the same step of the same plan always has
/// the same id, whichever controller sends it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransitionId(pub String);

impl std::fmt::Display for TransitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a copy reads from, or which replica a follower follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub node: String,
    /// The source agent's data address (`host:port`), if it serves one.
    pub address: Option<String>,
    /// The source replica's own endpoint (a PostgreSQL or Redis `host:port`, a model
    /// server's URL), as its agent last reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// What a transition does to one replica on the agent's node. States are the product's
/// state names (e.g. `Leader`, `Follower`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Start a replica that has nothing to copy (a new partition), in `state`.
    Start { state: String },
    /// Copy the partition's data from `source` at no more than `rate_mbps` (MB/s, the rate the
    /// planner booked on the path) and start the replica in `state`.
    Replicate {
        state: String,
        source: Source,
        bytes: u64,
        rate_mbps: f64,
    },
    /// Move the replica into the leader state. Sent only once the old leader is fenced
    /// (demoted or gone). `handoff` is where the demoted leader stopped (see
    /// [`TransitionReport::handoff`]): the replica must have everything up to it before it
    /// takes writes. None when the old leader died instead of being demoted.
    Promote {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handoff: Option<String>,
    },
    /// Move the replica out of the leader state (or between two non-leader states).
    Demote { from: String, to: String },
    /// Stop the replica and remove it from this node.
    Stop { from: String },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Start { .. } => "start",
            Action::Replicate { .. } => "replicate",
            Action::Promote { .. } => "promote",
            Action::Demote { .. } => "demote",
            Action::Stop { .. } => "stop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub id: TransitionId,
    pub epoch: Epoch,
    pub replica: ReplicaKey,
    pub action: Action,
    /// The product (state model) of the replica's group, so the agent picks its actuator.
    pub product: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Running and answering its health check.
    Serving,
    /// Being created or copied.
    Starting,
    /// Expected to run but not answering (crashed, restarting).
    Failing,
}

/// One replica the agent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub replica: ReplicaKey,
    pub product: String,
    pub state: String,
    pub health: Health,
    /// Measured heat, by dimension name (e.g. `cpu`, `mem_gib`).
    #[serde(default)]
    pub heat: Vec<(String, f64)>,
    /// Where the replica serves (a `host:port` or URL), for peers that copy from it or
    /// follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TransitionStatus {
    Running {
        bytes_done: u64,
        /// How far a copying replica trails its source, in bytes, when the product says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lag_bytes: Option<u64>,
    },
    Done,
    Failed {
        error: String,
    },
    /// Not run: the epoch was stale, or the command is illegal on this node.
    Refused {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionReport {
    pub id: TransitionId,
    #[serde(flatten)]
    pub status: TransitionStatus,
    /// For a finished demotion: the product's position where the replica stopped taking
    /// writes (a PostgreSQL LSN, a Redis replication offset). The controller hands it to the
    /// promotion that follows, which waits until its replica has caught up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
}

/// A partition's serving leader, told to the nodes holding its other replicas so they
/// follow it (a PostgreSQL standby's `primary_conninfo`, a Redis `REPLICAOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderHint {
    pub replica: ReplicaKey,
    pub leader: Source,
}

/// What an agent says about its node when it first syncs (and after every restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Capacity by dimension name, as the agent measured or was configured with.
    pub capacity: Vec<(String, f64)>,
    pub labels: Vec<(String, String)>,
    /// Where this agent serves data to peers (`host:port`), if it does.
    pub data_address: Option<String>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub node: String,
    /// Changes every time the agent process starts, so the controller tells a restart from a
    /// late message.
    pub incarnation: u64,
    /// The highest epoch the agent has accepted commands from.
    pub epoch_seen: Epoch,
    #[serde(default)]
    pub registration: Option<Registration>,
    pub replicas: Vec<ReplicaStatus>,
    /// Transitions the controller has not acknowledged yet.
    pub transitions: Vec<TransitionReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub epoch: Epoch,
    /// The leading controller's id.
    pub leader: String,
    pub commands: Vec<Command>,
    /// Transition reports the controller has recorded durably: the agent stops resending
    /// them.
    pub acknowledged: Vec<TransitionId>,
    /// How long until the next sync, in milliseconds.
    pub heartbeat_ms: u64,
    /// The leader of each partition this node holds a non-leader replica of, where one
    /// serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaders: Vec<LeaderHint>,
}

/// A controller that is not the leader answers syncs with this (HTTP 503), naming the leader
/// if it knows one, so agents go there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotLeader {
    pub leader_api: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_as_tagged_json() {
        let command = Command {
            id: TransitionId("plan-3/step-1".into()),
            epoch: 42,
            replica: ReplicaKey {
                group: "orders".into(),
                partition: 7,
            },
            action: Action::Replicate {
                state: "Follower".into(),
                source: Source {
                    node: "n1".into(),
                    address: Some("127.0.0.1:7001".into()),
                    endpoint: Some("127.0.0.1:5433".into()),
                },
                bytes: 1 << 30,
                rate_mbps: 100.0,
            },
            product: "db".into(),
        };
        let json = serde_json::to_string(&command).expect("serialize");
        assert!(json.contains(r#""kind":"replicate""#), "{json}");
        let back: Command = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, command);
    }

    #[test]
    fn transition_reports_flatten_their_status() {
        let report = TransitionReport {
            id: TransitionId("plan-1/step-0".into()),
            status: TransitionStatus::Failed {
                error: "disk full".into(),
            },
            handoff: None,
        };
        let json = serde_json::to_string(&report).expect("serialize");
        assert_eq!(
            json,
            r#"{"id":"plan-1/step-0","status":"failed","error":"disk full"}"#
        );
        assert_eq!(
            serde_json::from_str::<TransitionReport>(&json).expect("parse"),
            report
        );
    }
}
