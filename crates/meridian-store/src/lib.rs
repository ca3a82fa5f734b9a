//! Meridian's durable state behind one trait.
//!
//! Every value lives under a key with the store-wide revision of its last change; writes are
//! transactions that apply only if their compares hold (compare-and-swap on a key's
//! revision) and, for a controller, only while it still leads: a [`Fence`] names the
//! election key and the epoch (the key's create revision) the writer was elected under. Two
//! controllers can therefore never both commit: the deposed one's fence no longer matches.
//!
//! Implementations: [`memory::MemoryStore`] (tests), [`redb_store::RedbStore`] (the
//! embedded zero-setup default for a single controller) and `meridian_etcd::EtcdStore` (HA).

mod changes;
pub mod conformance;
pub mod keys;
mod local;
pub mod memory;
pub mod redb_store;

use std::time::Duration;

use async_trait::async_trait;

/// The store-wide revision: it grows with every applied commit.
pub type Revision = i64;

/// A leader's fencing epoch: the create revision of the election key it holds. A later leader
/// always has a larger epoch.
pub type Epoch = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the commit that created the key (it resets after a delete).
    pub create_revision: Revision,
    /// The revision of the commit that last wrote the key.
    pub mod_revision: Revision,
}

/// Keys under a prefix, read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub revision: Revision,
}

/// A condition a commit needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent { key: String },
    /// The key exists and was last written at `revision`.
    ModRevision { key: String, revision: Revision },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// Writes are accepted only while the election key still exists with this create revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub election_key: String,
    pub epoch: Epoch,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub fence: Option<Fence>,
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn fenced(fence: Fence) -> Txn {
        Txn {
            fence: Some(fence),
            ..Txn::default()
        }
    }

    pub fn compare(mut self, compare: Compare) -> Txn {
        self.compares.push(compare);
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Txn {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Txn {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Applied {
        revision: Revision,
    },
    /// A compare failed; nothing was written.
    Conflict,
    /// The fence no longer holds (another controller leads, or nobody does); nothing was
    /// written.
    Fenced,
}

/// Who leads an election, as the store says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// What the leader published when it won (e.g. its id and API address).
    pub value: Vec<u8>,
    pub epoch: Epoch,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data corrupt at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Entry>>;

    /// Every key starting with `prefix`, in key order, read at one revision.
    async fn list(&self, prefix: &str) -> Result<Listing>;

    async fn commit(&self, txn: Txn) -> Result<Commit>;

    /// Waits until a key under `prefix` changes at a revision after `after`, or `timeout`
    /// passes; returns the store's revision then. It may return early (callers re-read and
    /// compare), never late.
    async fn wait_change(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision>;

    /// Waits until this candidate leads `election` (publishing `value` under the election
    /// key), holding it with a lease of `ttl`.
    async fn campaign(
        &self,
        election: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<Box<dyn Leadership>>;

    /// Who leads `election`: in every store, the election key's value and create revision.
    async fn leader(&self, election: &str) -> Result<Option<LeaderInfo>> {
        Ok(self.get(election).await?.map(|e| LeaderInfo {
            value: e.value,
            epoch: e.create_revision,
        }))
    }
}

/// Leadership won in a campaign. Dropping it stops keeping it alive; the lease then expires.
#[async_trait]
pub trait Leadership: Send + Sync {
    fn epoch(&self) -> Epoch;

    /// The fence every write of this leader carries.
    fn fence(&self) -> Fence;

    /// True while the lease is known to be alive: the last keep-alive was acknowledged less
    /// than a lease period ago, counting from when it was *sent*, so a leader cut off from
    /// the store stops believing it leads before the store can elect another.
    fn is_held(&self) -> bool;

    /// Resolves once leadership is lost (lease expired or revoked, key deleted).
    async fn lost(&self);

    /// Gives leadership up at once so a standby can take over without waiting for the lease.
    async fn resign(&self) -> Result<()>;
}
