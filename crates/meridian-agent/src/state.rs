//! The agent's durable state (`agent.json` in the state directory): the highest epoch it has
//! accepted, and the last known assignment — what this node should run, by replica.
//!
//! The epoch is what fencing rests on: it is written before any command of the response that
//! raised it is accepted, so no agent restart can make a deposed leader's commands acceptable
//! again. The assignment changes only when a transition is done, so after a crash the agent
//! brings back what was actually achieved, never a half-done copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meridian_wire::{Epoch, ReplicaKey};
use serde::{Deserialize, Serialize};

use crate::durable::{self, StateError};

pub const STATE_FILE: &str = "agent.json";

/// The on-disk format this agent writes and reads.
const FORMAT: u32 = 1;

/// One replica this node should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    pub product: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentState {
    pub epoch_seen: Epoch,
    pub assignment: BTreeMap<ReplicaKey, Assigned>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    epoch_seen: Epoch,
    assignment: Vec<AssignedReplica>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignedReplica {
    replica: ReplicaKey,
    product: String,
    state: String,
}

/// Reads and writes `agent.json`.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    /// Opens the state in `state_dir` (creating the directory); a new agent starts at epoch
    /// 0 with nothing assigned.
    pub fn open(state_dir: &Path) -> Result<(StateStore, AgentState), StateError> {
        durable::create_dir(state_dir)?;
        let path = state_dir.join(STATE_FILE);
        let state = match durable::read_json::<StateFile>(&path)? {
            None => AgentState::default(),
            Some(file) => from_file(&path, file)?,
        };
        Ok((StateStore { path }, state))
    }

    pub fn save(&self, state: &AgentState) -> Result<(), StateError> {
        let assignment = state
            .assignment
            .iter()
            .map(|(replica, assigned)| AssignedReplica {
                replica: replica.clone(),
                product: assigned.product.clone(),
                state: assigned.state.clone(),
            })
            .collect();
        let file = StateFile {
            format: FORMAT,
            epoch_seen: state.epoch_seen,
            assignment,
        };
        durable::write_json(&self.path, &file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn from_file(path: &Path, file: StateFile) -> Result<AgentState, StateError> {
    if file.format != FORMAT {
        let reason = format!(
            "format {} is not one this agent reads ({FORMAT})",
            file.format
        );
        return Err(StateError::corrupt(path, reason));
    }
    let mut assignment = BTreeMap::new();
    for entry in file.assignment {
        let assigned = Assigned {
            product: entry.product,
            state: entry.state,
        };
        if assignment.insert(entry.replica.clone(), assigned).is_some() {
            let reason = format!("replica {} is assigned twice", entry.replica);
            return Err(StateError::corrupt(path, reason));
        }
    }
    Ok(AgentState {
        epoch_seen: file.epoch_seen,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(partition: u32) -> ReplicaKey {
        ReplicaKey {
            group: "orders".into(),
            partition,
        }
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, state) = StateStore::open(dir.path()).expect("open");
        assert_eq!(state, AgentState::default());
        let mut state = AgentState {
            epoch_seen: 7,
            ..AgentState::default()
        };
        let assigned = Assigned {
            product: "db".into(),
            state: "Leader".into(),
        };
        state.assignment.insert(replica(1), assigned);
        store.save(&state).expect("save");
        let (_, reloaded) = StateStore::open(dir.path()).expect("reopen");
        assert_eq!(reloaded, state);
    }

    #[test]
    fn a_replica_assigned_twice_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = r#"{"replica":{"group":"g","partition":0},"product":"db","state":"L"}"#;
        let text = format!(r#"{{"format":1,"epoch_seen":1,"assignment":[{entry},{entry}]}}"#);
        std::fs::write(dir.path().join(STATE_FILE), text).expect("write");
        let error = StateStore::open(dir.path()).expect_err("corrupt");
        assert!(error.to_string().contains("assigned twice"), "{error}");
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = r#"{"format":9,"epoch_seen":1,"assignment":[]}"#;
        std::fs::write(dir.path().join(STATE_FILE), text).expect("write");
        let error = StateStore::open(dir.path()).expect_err("unknown format");
        assert!(error.to_string().contains("format 9"), "{error}");
    }
}
