//! The embedded store: one redb file, the zero-setup default for a single controller.
//!
//! redb holds an exclusive lock on its file, so one process owns the data; an election key
//! left by a process that died is therefore stale and is cleared on open (its holder cannot be
//! alive). Every commit is one redb write transaction (durable on return).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::changes::{wait_until, Changes};
use crate::local::{self, Stored, Table};
use crate::{Commit, Entry, Leadership, Listing, Result, Revision, Store, StoreError, Txn};

/// key → create revision (8 bytes LE) ‖ mod revision (8 bytes LE) ‖ value.
const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("data");
/// `revision` → the store-wide revision.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
const HEADER_BYTES: usize = 16;

pub struct RedbStore {
    db: Arc<Database>,
    changes: Arc<Mutex<Changes>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn encode(stored: &Stored) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + stored.value.len());
    bytes.extend_from_slice(&stored.create_revision.to_le_bytes());
    bytes.extend_from_slice(&stored.mod_revision.to_le_bytes());
    bytes.extend_from_slice(&stored.value);
    bytes
}

fn decode(key: &str, bytes: &[u8]) -> Result<Stored> {
    if bytes.len() < HEADER_BYTES {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: format!("{} bytes, shorter than the 16-byte header", bytes.len()),
        });
    }
    let (create, rest) = bytes.split_at(8);
    let (modified, value) = rest.split_at(8);
    let revision = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    Ok(Stored {
        value: value.to_vec(),
        create_revision: revision(create),
        mod_revision: revision(modified),
    })
}

struct RedbTable<'t>(redb::Table<'t, &'static str, &'static [u8]>);

impl Table for RedbTable<'_> {
    fn read(&self, key: &str) -> Result<Option<Stored>> {
        match self.0.get(key).map_err(unavailable)? {
            Some(bytes) => Ok(Some(decode(key, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn write(&mut self, key: &str, stored: Stored) -> Result<()> {
        self.0
            .insert(key, encode(&stored).as_slice())
            .map_err(unavailable)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        self.0.remove(key).map_err(unavailable)?;
        Ok(())
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path`, clearing the election key under each of
    /// `election_keys` (left by a dead process; see the module comment).
    pub fn open(path: &Path, election_keys: &[&str]) -> Result<RedbStore> {
        let db = Database::create(path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let store = RedbStore {
            db: Arc::new(db),
            changes: Arc::new(Mutex::new(Changes::new(0))),
        };
        let revision = store.init(election_keys)?;
        *store.lock_changes() = Changes::new(revision);
        Ok(store)
    }

    fn init(&self, election_keys: &[&str]) -> Result<Revision> {
        let write = self.db.begin_write().map_err(unavailable)?;
        let revision = {
            let mut meta = write.open_table(META).map_err(unavailable)?;
            let mut data = write.open_table(DATA).map_err(unavailable)?;
            for key in election_keys {
                data.remove(*key).map_err(unavailable)?;
            }
            let revision = meta
                .get(REVISION)
                .map_err(unavailable)?
                .map_or(0, |v| v.value());
            // Clearing stale keys is a change: the next revision is new.
            let revision = revision + 1;
            meta.insert(REVISION, revision).map_err(unavailable)?;
            revision
        };
        write.commit().map_err(unavailable)?;
        Ok(revision)
    }

    fn lock_changes(&self) -> MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn revision(&self) -> Result<Revision> {
        let read = self.db.begin_read().map_err(unavailable)?;
        let meta = read.open_table(META).map_err(unavailable)?;
        Ok(meta
            .get(REVISION)
            .map_err(unavailable)?
            .map_or(0, |v| v.value()))
    }

    fn commit_blocking(&self, txn: &Txn) -> Result<Commit> {
        let write = self.db.begin_write().map_err(unavailable)?;
        let (commit, written) = {
            let mut meta = write.open_table(META).map_err(unavailable)?;
            let revision = meta
                .get(REVISION)
                .map_err(unavailable)?
                .map_or(0, |v| v.value())
                + 1;
            let mut table = RedbTable(write.open_table(DATA).map_err(unavailable)?);
            let (commit, written) = local::apply(&mut table, txn, revision)?;
            if let Commit::Applied { revision } = commit {
                meta.insert(REVISION, revision).map_err(unavailable)?;
            }
            (commit, written)
        };
        match commit {
            Commit::Applied { revision } => {
                write.commit().map_err(unavailable)?;
                self.lock_changes().record(revision, written);
            }
            Commit::Conflict | Commit::Fenced => write.abort().map_err(unavailable)?,
        }
        Ok(commit)
    }
}

impl Clone for RedbStore {
    fn clone(&self) -> Self {
        RedbStore {
            db: Arc::clone(&self.db),
            changes: Arc::clone(&self.changes),
        }
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let read = self.db.begin_read().map_err(unavailable)?;
        let data = read.open_table(DATA).map_err(unavailable)?;
        match data.get(key).map_err(unavailable)? {
            Some(bytes) => Ok(Some(decode(key, bytes.value())?.entry(key.to_string()))),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let read = self.db.begin_read().map_err(unavailable)?;
        let data = read.open_table(DATA).map_err(unavailable)?;
        let meta = read.open_table(META).map_err(unavailable)?;
        let revision = meta
            .get(REVISION)
            .map_err(unavailable)?
            .map_or(0, |v| v.value());
        let mut entries = Vec::new();
        for item in data.range(prefix..).map_err(unavailable)? {
            let (key, bytes) = item.map_err(unavailable)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            entries.push(decode(key, bytes.value())?.entry(key.to_string()));
        }
        Ok(Listing { entries, revision })
    }

    async fn commit(&self, txn: Txn) -> Result<Commit> {
        self.commit_blocking(&txn)
    }

    async fn wait_change(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision> {
        let receiver = self.lock_changes().subscribe();
        wait_until(receiver, timeout, || {
            self.lock_changes().changed_since(prefix, after)
        })
        .await;
        self.revision()
    }

    async fn campaign(
        &self,
        election: &str,
        value: Vec<u8>,
        _ttl: Duration,
    ) -> Result<Box<dyn Leadership>> {
        local::campaign(Arc::new(self.clone()), election, value).await
    }
}
