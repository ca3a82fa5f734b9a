//! The transition journal (`journal.json`) and the audit log of executions (`executed.log`).
//!
//! The journal maps each transition id the agent has accepted to its command and status, so
//! that a command sent again (controllers resend whatever is in flight on every sync, and a
//! new leader resends after a failover) is answered from here instead of running twice. It
//! is bounded: entries the controller has not acknowledged stay (at most
//! [`UNACKNOWLEDGED_MAX`]), and of the acknowledged, finished ones the last
//! [`FINISHED_KEPT_MAX`] stay to answer late repeats.
//!
//! `executed.log` gets one JSON line each time an actuator is actually called for a
//! transition, written after the journal says `running` and before the actuator starts, so a
//! crash can never hide an execution from it. It only grows; operators rotate it by renaming
//! (each append reopens the file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meridian_wire::{Command, Epoch, ReplicaKey, TransitionId, TransitionStatus};
use serde::{Deserialize, Serialize};

use crate::actuator::Progress;
use crate::durable::{self, StateError};

pub const JOURNAL_FILE: &str = "journal.json";
pub const EXECUTED_LOG: &str = "executed.log";

/// Finished, acknowledged entries kept to answer repeats that arrive late.
pub const FINISHED_KEPT_MAX: usize = 1024;
/// Entries the controller has not acknowledged; new commands wait (unrecorded, so the
/// controller sends them again) while the journal is this full.
pub const UNACKNOWLEDGED_MAX: usize = 4096;

const FORMAT: u32 = 1;

/// Where a transition is. `Queued` and `Running` are both reported as running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EntryStatus {
    Queued,
    Running,
    Done {
        /// What a demotion reported for its successor (see [`Actuator::demote`]).
        ///
        /// [`Actuator::demote`]: crate::actuator::Actuator::demote
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handoff: Option<String>,
    },
    Failed {
        error: String,
    },
    Refused {
        reason: String,
    },
}

impl EntryStatus {
    pub fn is_final(&self) -> bool {
        !matches!(self, EntryStatus::Queued | EntryStatus::Running)
    }

    /// The status as reported, with the progress of a running transition.
    pub fn to_wire(&self, progress: Option<&Progress>) -> TransitionStatus {
        match self {
            EntryStatus::Queued | EntryStatus::Running => TransitionStatus::Running {
                bytes_done: progress.map_or(0, Progress::bytes_done),
                lag_bytes: progress.and_then(Progress::lag_bytes),
            },
            EntryStatus::Done { .. } => TransitionStatus::Done,
            EntryStatus::Failed { error } => TransitionStatus::Failed {
                error: error.clone(),
            },
            EntryStatus::Refused { reason } => TransitionStatus::Refused {
                reason: reason.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub command: Command,
    pub status: EntryStatus,
    /// The controller has durably recorded this (final) status.
    pub acknowledged: bool,
    /// Arrival order: the order transitions of one replica run in, and the order kept.
    pub sequence: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    format: u32,
    next_sequence: u64,
    entries: Vec<Entry>,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    entries: BTreeMap<TransitionId, Entry>,
    next_sequence: u64,
    /// Changed since the last `persist`.
    dirty: bool,
}

impl Journal {
    pub fn open(state_dir: &Path) -> Result<Journal, StateError> {
        durable::create_dir(state_dir)?;
        let path = state_dir.join(JOURNAL_FILE);
        let Some(file) = durable::read_json::<JournalFile>(&path)? else {
            return Ok(Journal {
                path,
                entries: BTreeMap::new(),
                next_sequence: 0,
                dirty: false,
            });
        };
        if file.format != FORMAT {
            let reason = format!(
                "format {} is not one this agent reads ({FORMAT})",
                file.format
            );
            return Err(StateError::corrupt(&path, reason));
        }
        let mut entries = BTreeMap::new();
        for entry in file.entries {
            if entry.sequence >= file.next_sequence {
                let reason = format!("{} has a sequence from the future", entry.command.id);
                return Err(StateError::corrupt(&path, reason));
            }
            let id = entry.command.id.clone();
            if entries.insert(id.clone(), entry).is_some() {
                return Err(StateError::corrupt(&path, format!("{id} appears twice")));
            }
        }
        Ok(Journal {
            path,
            entries,
            next_sequence: file.next_sequence,
            dirty: false,
        })
    }

    pub fn get(&self, id: &TransitionId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Records a command with its first status. Replaces only a refusal (a refused command
    /// never ran, and a later copy of it, e.g. from a new leader, deserves a fresh look).
    pub fn insert(&mut self, command: Command, status: EntryStatus) {
        let replaced = self.entries.get(&command.id).map(|e| &e.status);
        assert!(
            matches!(replaced, None | Some(EntryStatus::Refused { .. })),
            "journal entries that may have run are never replaced"
        );
        let entry = Entry {
            command,
            status,
            acknowledged: false,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        self.entries.insert(entry.command.id.clone(), entry);
        self.dirty = true;
    }

    /// A new status is always reported, so it clears the acknowledgement.
    pub fn set_status(&mut self, id: &TransitionId, status: EntryStatus) {
        let Some(entry) = self.entries.get_mut(id) else {
            debug_assert!(false, "status for unknown transition {id}");
            return;
        };
        debug_assert!(!entry.status.is_final(), "{id} is already final");
        entry.status = status;
        entry.acknowledged = false;
        self.dirty = true;
    }

    /// The controller asked again about a transition it had acknowledged: report it again.
    pub fn report_again(&mut self, id: &TransitionId) {
        if let Some(entry) = self.entries.get_mut(id) {
            if entry.acknowledged {
                entry.acknowledged = false;
                self.dirty = true;
            }
        }
    }

    /// Marks final entries acknowledged (an acknowledgement of an unfinished one is ignored:
    /// the controller cannot have recorded an outcome that does not exist yet), then prunes.
    pub fn acknowledge(&mut self, ids: &[TransitionId]) {
        for id in ids {
            if let Some(entry) = self.entries.get_mut(id) {
                if entry.status.is_final() && !entry.acknowledged {
                    entry.acknowledged = true;
                    self.dirty = true;
                }
            }
        }
        self.prune();
    }

    fn prune(&mut self) {
        let mut finished: Vec<(u64, TransitionId)> = self
            .entries
            .values()
            .filter(|e| e.acknowledged && e.status.is_final())
            .map(|e| (e.sequence, e.command.id.clone()))
            .collect();
        if finished.len() <= FINISHED_KEPT_MAX {
            return;
        }
        finished.sort();
        let excess = finished.len() - FINISHED_KEPT_MAX;
        for (_, id) in finished.into_iter().take(excess) {
            self.entries.remove(&id);
        }
        self.dirty = true;
    }

    /// Entries to report, oldest first.
    pub fn unacknowledged(&self) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = self.entries.values().filter(|e| !e.acknowledged).collect();
        out.sort_by_key(|e| e.sequence);
        out
    }

    pub fn unacknowledged_count(&self) -> usize {
        self.entries.values().filter(|e| !e.acknowledged).count()
    }

    /// Entries not finished (queued, or running when the agent last stopped), oldest first.
    pub fn pending(&self) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| !e.status.is_final())
            .collect();
        out.sort_by_key(|e| e.sequence);
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the journal if it changed. Callers persist before acting on what they recorded.
    pub fn persist(&mut self) -> Result<(), StateError> {
        if !self.dirty {
            return Ok(());
        }
        let mut entries: Vec<Entry> = self.entries.values().cloned().collect();
        entries.sort_by_key(|e| e.sequence);
        let file = JournalFile {
            format: FORMAT,
            next_sequence: self.next_sequence,
            entries,
        };
        durable::write_json(&self.path, &file)?;
        self.dirty = false;
        Ok(())
    }
}

/// One execution of a transition, as `executed.log` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutedRecord {
    pub id: TransitionId,
    pub epoch: Epoch,
    pub replica: ReplicaKey,
    pub product: String,
    /// `start`, `replicate`, `promote`, `demote` or `stop`.
    pub action: String,
    /// Run again because the agent stopped while it was running.
    pub resumed: bool,
}

#[derive(Debug)]
pub struct ExecutedLog {
    path: PathBuf,
}

impl ExecutedLog {
    pub fn open(state_dir: &Path) -> ExecutedLog {
        ExecutedLog {
            path: state_dir.join(EXECUTED_LOG),
        }
    }

    pub fn append(&self, record: &ExecutedRecord) -> Result<(), StateError> {
        let line = serde_json::to_string(record)
            .map_err(|e| StateError::io(&self.path, "encode", std::io::Error::other(e)))?;
        durable::append_line(&self.path, &line)
    }
}

/// Reads `executed.log` from a state directory (empty if there is none yet).
pub fn read_executed_log(state_dir: &Path) -> Result<Vec<ExecutedRecord>, StateError> {
    let path = state_dir.join(EXECUTED_LOG);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io(&path, "read", e)),
    };
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let record = serde_json::from_str(line)
            .map_err(|e| StateError::corrupt(&path, format!("line {}: {e}", index + 1)))?;
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use meridian_wire::Action;

    use super::*;

    fn command(id: &str) -> Command {
        Command {
            id: TransitionId(id.into()),
            epoch: 1,
            replica: ReplicaKey {
                group: "g".into(),
                partition: 0,
            },
            action: Action::Start {
                state: "Leader".into(),
            },
            product: "db".into(),
        }
    }

    fn id(text: &str) -> TransitionId {
        TransitionId(text.into())
    }

    #[test]
    fn entries_survive_a_reopen_in_arrival_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::open(dir.path()).expect("open");
        journal.insert(command("b"), EntryStatus::Queued);
        journal.insert(command("a"), EntryStatus::Queued);
        journal.set_status(&id("b"), EntryStatus::Running);
        journal.persist().expect("persist");
        let reopened = Journal::open(dir.path()).expect("reopen");
        let pending: Vec<&str> = reopened
            .pending()
            .iter()
            .map(|e| e.command.id.0.as_str())
            .collect();
        assert_eq!(pending, ["b", "a"]);
        assert_eq!(
            reopened.get(&id("b")).map(|e| &e.status),
            Some(&EntryStatus::Running)
        );
    }

    #[test]
    fn only_finished_entries_are_acknowledged_and_the_kept_ones_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut journal = Journal::open(dir.path()).expect("open");
        journal.insert(command("running"), EntryStatus::Running);
        journal.acknowledge(&[id("running")]);
        assert_eq!(
            journal.unacknowledged_count(),
            1,
            "not finished, not acknowledged"
        );

        let total = FINISHED_KEPT_MAX + 10;
        let ids: Vec<TransitionId> = (0..total).map(|i| id(&format!("t{i}"))).collect();
        for transition in &ids {
            journal.insert(command(&transition.0), EntryStatus::Done { handoff: None });
        }
        journal.acknowledge(&ids);
        assert_eq!(journal.len(), FINISHED_KEPT_MAX + 1);
        assert!(
            journal.get(&id("t0")).is_none(),
            "the oldest finished go first"
        );
        assert!(journal.get(&ids[total - 1]).is_some());
        assert!(journal.get(&id("running")).is_some());

        journal.report_again(&ids[total - 1]);
        assert_eq!(journal.unacknowledged_count(), 2);
    }

    #[test]
    fn a_duplicate_id_on_disk_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = serde_json::to_string(&Entry {
            command: command("x"),
            status: EntryStatus::Done { handoff: None },
            acknowledged: false,
            sequence: 0,
        })
        .expect("encode");
        let text = format!(r#"{{"format":1,"next_sequence":2,"entries":[{entry},{entry}]}}"#);
        std::fs::write(dir.path().join(JOURNAL_FILE), text).expect("write");
        let error = Journal::open(dir.path()).expect_err("corrupt");
        assert!(error.to_string().contains("journal.json"), "{error}");
        assert!(error.to_string().contains("appears twice"), "{error}");
    }

    #[test]
    fn the_executed_log_reads_back_and_names_a_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_executed_log(dir.path()).expect("empty").is_empty());
        let log = ExecutedLog::open(dir.path());
        let record = ExecutedRecord {
            id: id("t"),
            epoch: 3,
            replica: command("t").replica,
            product: "db".into(),
            action: "start".into(),
            resumed: false,
        };
        log.append(&record).expect("append");
        assert_eq!(read_executed_log(dir.path()).expect("read"), vec![record]);
        durable::append_line(&dir.path().join(EXECUTED_LOG), "garbage").expect("append");
        let error = read_executed_log(dir.path()).expect_err("bad line");
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
