//! What the single-process stores share: how a transaction is checked and applied to a
//! key-value table, and leadership without leases (one process owns the data, so leadership
//! lasts until it is resigned or the process ends).

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::{Commit, Compare, Entry, Epoch, Fence, Leadership, Op, Result, Revision, Store, Txn};

/// A key's value with its revisions, as the local stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

impl Stored {
    pub(crate) fn entry(self, key: String) -> Entry {
        Entry {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        }
    }
}

/// The table a transaction reads and writes.
pub(crate) trait Table {
    fn read(&self, key: &str) -> Result<Option<Stored>>;
    fn write(&mut self, key: &str, stored: Stored) -> Result<()>;
    fn remove(&mut self, key: &str) -> Result<()>;
}

/// Checks `txn` against `table` and applies it at `revision` if it holds. Returns the outcome
/// and the keys written (for change waits).
pub(crate) fn apply(
    table: &mut impl Table,
    txn: &Txn,
    revision: Revision,
) -> Result<(Commit, Vec<String>)> {
    if let Some(fence) = &txn.fence {
        let holds = table
            .read(&fence.election_key)?
            .is_some_and(|s| s.create_revision == fence.epoch);
        if !holds {
            return Ok((Commit::Fenced, Vec::new()));
        }
    }
    for compare in &txn.compares {
        let holds = match compare {
            Compare::Absent { key } => table.read(key)?.is_none(),
            Compare::ModRevision { key, revision } => table
                .read(key)?
                .is_some_and(|s| s.mod_revision == *revision),
        };
        if !holds {
            return Ok((Commit::Conflict, Vec::new()));
        }
    }
    let mut written = Vec::with_capacity(txn.ops.len());
    for op in &txn.ops {
        match op {
            Op::Put { key, value } => {
                let create_revision = table.read(key)?.map_or(revision, |s| s.create_revision);
                table.write(
                    key,
                    Stored {
                        value: value.clone(),
                        create_revision,
                        mod_revision: revision,
                    },
                )?;
                written.push(key.clone());
            }
            Op::Delete { key } => {
                table.remove(key)?;
                written.push(key.clone());
            }
        }
    }
    Ok((Commit::Applied { revision }, written))
}

/// Campaigns on a local store: takes the election key when it is free, else waits for it.
pub(crate) async fn campaign<S: Store + 'static>(
    store: Arc<S>,
    election: &str,
    value: Vec<u8>,
) -> Result<Box<dyn Leadership>> {
    loop {
        let txn = Txn::default()
            .compare(Compare::Absent {
                key: election.to_string(),
            })
            .put(election, value.clone());
        match store.commit(txn).await? {
            Commit::Applied { revision } => {
                return Ok(Box::new(LocalLeadership {
                    store,
                    fence: Fence {
                        election_key: election.to_string(),
                        epoch: revision,
                    },
                }))
            }
            Commit::Conflict | Commit::Fenced => {
                // Read before waiting: if the key went away since the commit, try again at
                // once rather than wait for a change that already happened.
                let listing = store.list(election).await?;
                if listing.entries.iter().any(|e| e.key == election) {
                    store
                        .wait_change(election, listing.revision, Duration::from_secs(3600))
                        .await?;
                }
            }
        }
    }
}

struct LocalLeadership<S: Store> {
    store: Arc<S>,
    fence: Fence,
}

impl<S: Store> LocalLeadership<S> {
    async fn still_leads(&self) -> Result<bool> {
        Ok(self
            .store
            .get(&self.fence.election_key)
            .await?
            .is_some_and(|e| e.create_revision == self.fence.epoch))
    }
}

#[async_trait]
impl<S: Store> Leadership for LocalLeadership<S> {
    fn epoch(&self) -> Epoch {
        self.fence.epoch
    }

    fn fence(&self) -> Fence {
        self.fence.clone()
    }

    fn is_held(&self) -> bool {
        // One process owns a local store: nobody else can take the key behind our back; a
        // resign is ours.
        true
    }

    async fn lost(&self) {
        loop {
            let Ok(listing) = self.store.list(&self.fence.election_key).await else {
                return;
            };
            if !self.still_leads().await.unwrap_or(false) {
                return;
            }
            let wait = self.store.wait_change(
                &self.fence.election_key,
                listing.revision,
                Duration::from_secs(3600),
            );
            if wait.await.is_err() {
                return;
            }
        }
    }

    async fn resign(&self) -> Result<()> {
        if self.still_leads().await? {
            let txn = Txn::fenced(self.fence.clone()).delete(self.fence.election_key.clone());
            self.store.commit(txn).await?;
        }
        Ok(())
    }
}
