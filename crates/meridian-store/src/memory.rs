//! An in-memory store: the same semantics as the durable ones, for unit tests and the
//! simulator-style tests of the controller. Never a production choice (it forgets on exit).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::changes::{wait_until, Changes};
use crate::local::{self, Stored, Table};
use crate::{Commit, Entry, Leadership, Listing, Result, Revision, Store, Txn};

struct State {
    data: BTreeMap<String, Stored>,
    revision: Revision,
    changes: Changes,
}

impl Table for BTreeMap<String, Stored> {
    fn read(&self, key: &str) -> Result<Option<Stored>> {
        Ok(self.get(key).cloned())
    }

    fn write(&mut self, key: &str, stored: Stored) -> Result<()> {
        self.insert(key.to_string(), stored);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        BTreeMap::remove(self, key);
        Ok(())
    }
}

/// Cheap to clone: clones share the data.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            state: Arc::new(Mutex::new(State {
                data: BTreeMap::new(),
                revision: 0,
                changes: Changes::new(0),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every commit is applied in
        // full before the guard drops), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let state = self.lock();
        Ok(state
            .data
            .get(key)
            .cloned()
            .map(|s| s.entry(key.to_string())))
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let state = self.lock();
        let entries = state
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, s)| s.clone().entry(k.clone()))
            .collect();
        Ok(Listing {
            entries,
            revision: state.revision,
        })
    }

    async fn commit(&self, txn: Txn) -> Result<Commit> {
        let mut state = self.lock();
        let revision = state.revision + 1;
        let (commit, written) = local::apply(&mut state.data, &txn, revision)?;
        if let Commit::Applied { .. } = commit {
            state.revision = revision;
            state.changes.record(revision, written);
        }
        Ok(commit)
    }

    async fn wait_change(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision> {
        let receiver = self.lock().changes.subscribe();
        wait_until(receiver, timeout, || {
            self.lock().changes.changed_since(prefix, after)
        })
        .await;
        Ok(self.lock().revision)
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
