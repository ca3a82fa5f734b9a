//! One pid file per replica (`<run_dir>/<group>/<partition>.pid`, JSON), so that a restarted
//! agent adopts the workloads its predecessor left running instead of starting second
//! copies. It records the process's identity (pid and start time) and the state and epoch it
//! was launched with.

use std::path::{Path, PathBuf};

use meridian_wire::{Epoch, ReplicaKey};
use serde::{Deserialize, Serialize};

use super::procfs::ProcessIdentity;
use crate::durable::{self, StateError};
use crate::paths::encode_component;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PidRecord {
    pub pid: u32,
    pub start_ticks: u64,
    pub state: String,
    pub epoch: Epoch,
}

impl PidRecord {
    pub fn identity(&self) -> ProcessIdentity {
        ProcessIdentity {
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }
}

pub fn path(run_dir: &Path, replica: &ReplicaKey) -> PathBuf {
    run_dir
        .join(encode_component(&replica.group))
        .join(format!("{}.pid", replica.partition))
}

/// Where the workload's standard output and error go.
pub fn output_path(run_dir: &Path, replica: &ReplicaKey) -> PathBuf {
    run_dir
        .join(encode_component(&replica.group))
        .join(format!("{}.out", replica.partition))
}

/// `None` if there is no pid file. A pid file that does not parse is an error: guessing
/// "nothing runs" could start a second copy of a live workload.
pub fn read(path: &Path) -> Result<Option<PidRecord>, StateError> {
    durable::read_json(path)
}

pub fn write(path: &Path, record: &PidRecord) -> Result<(), StateError> {
    if let Some(directory) = path.parent() {
        durable::create_dir(directory)?;
    }
    durable::write_json(path, record)
}

pub fn remove(path: &Path) -> Result<(), StateError> {
    durable::remove_file(path)
}

/// Every pid file under `dir` (an agent's state directory, say), with its record; files that
/// do not parse are skipped. For operators' tools and tests that need the workloads an agent
/// left running (the agent itself reads each replica's file by its path).
pub fn all_under(dir: &Path) -> Vec<(PathBuf, PidRecord)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "pid") {
                if let Ok(Some(record)) = read(&path) {
                    out.push((path, record));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
