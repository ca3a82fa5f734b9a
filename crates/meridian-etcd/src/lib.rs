//! Meridian's store on an etcd cluster: the HA choice, where several controllers share one
//! state and elect a leader.
//!
//! [`EtcdStore`] implements [`meridian_store::Store`] with etcd's own primitives, so the
//! guarantees are etcd's (linearizable reads and transactions, Jepsen-checked) rather than
//! ours:
//!
//! - a commit is one etcd transaction; the fence is a compare on the election key's create
//!   revision, so a deposed leader's write can never apply, whatever the timing;
//! - change waits are etcd watches;
//! - leadership is a key attached to a lease; the key's create revision is the epoch.
//!
//! [`local_cluster::LocalCluster`] runs a real etcd cluster of N members on 127.0.0.1 for
//! tests and demos.

mod error;
mod leadership;
pub mod local_cluster;
mod store;
mod watch;

pub use store::{EtcdOptions, EtcdStore};

/// `at + by`, or a point decades away if that would overflow (a caller's `Duration::MAX`
/// means "no limit", never a panic).
pub(crate) fn later(at: std::time::Instant, by: std::time::Duration) -> std::time::Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(by)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}
