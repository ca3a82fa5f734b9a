//! [`EtcdStore`]: the [`Store`] trait on etcd's KV, transactions and watches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, CompareOp, ConnectOptions, GetOptions, KeyValue, TxnOp, TxnOpResponse};
use meridian_store::{
    Commit, Compare, Entry, Leadership, Listing, Op, Result, Revision, Store, StoreError, Txn,
};
use tokio::time::Instant;

use crate::error::CallError;
use crate::leadership;
use crate::watch::{KeyWatch, WatchNext};

/// The pause before sending again a call that could not connect: short, since another member
/// is likely up (a balanced channel picks among all endpoints).
const RESEND_PAUSE_MIN: Duration = Duration::from_millis(5);
const RESEND_PAUSE_MAX: Duration = Duration::from_millis(200);
/// How long `wait_change` backs off before it re-opens a watch that broke (a member died):
/// short, because the wait has a deadline of its own and other members are likely fine.
const REWATCH_BACKOFF_MIN: Duration = Duration::from_millis(20);
const REWATCH_BACKOFF_MAX: Duration = Duration::from_millis(500);

const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Which failed attempts of a call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Only attempts that never reached etcd: for writes, where one that reached etcd may
    /// have applied even though its answer was lost.
    IfNeverSent,
    /// Any attempt that failed for want of a working cluster: for reads, and for writes whose
    /// repeat does no harm.
    IfTransient,
}

/// Bounds on talking to etcd. Every call is bounded: a store that cannot reach its cluster
/// fails with [`StoreError::Unavailable`] instead of hanging the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// How long [`EtcdStore::connect`] waits for the cluster to answer a first read.
    pub connect_timeout: Duration,
    /// How long one request (a read, a commit, opening a watch, a lease call) may take.
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> EtcdOptions {
        EtcdOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The store on an etcd cluster. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    shared: Arc<Shared>,
}

struct Shared {
    /// The endpoints as given, for error messages.
    endpoints: String,
    options: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.shared.endpoints)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (e.g. `http://127.0.0.1:2379`) and checks that it
    /// serves a linearizable read, so a misconfigured address fails here rather than at the
    /// first commit.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(StoreError::Other("no etcd endpoints given".to_string()));
        }
        if options.connect_timeout.is_zero() || options.request_timeout.is_zero() {
            return Err(StoreError::Other(format!(
                "etcd timeouts must be positive, got {options:?}"
            )));
        }
        let joined = endpoints.join(",");
        let client_options = ConnectOptions::new()
            // Short enough that a call finding a dead member still has time to try another.
            .with_connect_timeout(options.connect_timeout.min(options.request_timeout / 2))
            .with_timeout(options.request_timeout)
            // A member cut off from its cluster's leader refuses at once instead of serving
            // stale reads or holding requests until they time out.
            .with_require_leader(true)
            // Notices a silently dead connection under an open watch or keep-alive stream
            // within seconds, not at the OS's TCP timeout. No more often than every 5 s:
            // etcd closes connections that ping more often (--grpc-keepalive-min-time).
            .with_keep_alive(HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT);
        let connect = Client::connect(endpoints, Some(client_options));
        let client = match tokio::time::timeout(options.connect_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                return Err(CallError::Etcd(error).into_store_error(&joined, "connect"))
            }
            Err(_) => {
                return Err(CallError::TimedOut(options.connect_timeout)
                    .into_store_error(&joined, "connect"))
            }
        };
        let store = EtcdStore {
            client,
            shared: Arc::new(Shared {
                endpoints: joined,
                options,
            }),
        };
        let bound = store.shared.options.connect_timeout;
        let probe = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_limit(1);
        store
            .call_within(bound, Resend::IfTransient, |mut c| {
                let probe = probe.clone();
                async move { c.get("", Some(probe)).await }
            })
            .await
            .map_err(|e| store.fail("connect", e))?;
        Ok(store)
    }

    /// The endpoints this store was connected with, comma-separated (as errors name them).
    pub fn endpoints(&self) -> &str {
        &self.shared.endpoints
    }

    /// The bounds this store was connected with.
    pub fn options(&self) -> &EtcdOptions {
        &self.shared.options
    }

    /// Runs one etcd call within the request timeout. `make` builds the call from a client
    /// handle; it is called again for a failed attempt that `resend` allows.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        resend: Resend,
        make: F,
    ) -> std::result::Result<T, CallError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call_within(self.shared.options.request_timeout, resend, make)
            .await
    }

    /// [`EtcdStore::call`] within `bound`. Bounding it here, not only in the transport,
    /// matters: with every endpoint down the balanced channel can wait for a ready endpoint
    /// forever. Attempts are sent again after a short pause, until the bound, when `resend`
    /// allows: the balancer still picks a dead member now and then, and a member that just
    /// died or lost its leader fails what it was sent.
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        bound: Duration,
        resend: Resend,
        mut make: F,
    ) -> std::result::Result<T, CallError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::from_std(crate::later(std::time::Instant::now(), bound));
        let mut pause = RESEND_PAUSE_MIN;
        loop {
            let error = match tokio::time::timeout_at(deadline, make(self.client.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => CallError::Etcd(error),
                Err(_) => return Err(CallError::TimedOut(bound)),
            };
            let may_resend = match resend {
                Resend::IfNeverSent => error.was_never_sent(),
                Resend::IfTransient => error.is_transient(),
            };
            if !may_resend || Instant::now() + pause >= deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESEND_PAUSE_MAX);
        }
    }

    /// [`EtcdStore::call`], with the failure told as a [`StoreError`] that names `what` failed.
    pub(crate) async fn request<T, F, Fut>(&self, what: &str, resend: Resend, make: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.call(resend, make)
            .await
            .map_err(|e| self.fail(what, e))
    }

    pub(crate) fn fail(&self, what: &str, error: CallError) -> StoreError {
        error.into_store_error(&self.shared.endpoints, what)
    }

    /// The store's revision now (one cheap read of at most one key).
    async fn current_revision(&self, prefix: &str) -> Result<Revision> {
        let options = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_limit(1);
        let response = self
            .request("read revision", Resend::IfTransient, |mut c| {
                let options = options.clone();
                async move { c.get(prefix, Some(options)).await }
            })
            .await?;
        header_revision(response.header())
    }

    /// Waits on one watch of `prefix` from `after + 1` until a change, a compaction, a break or
    /// `deadline`. `None` means the watch broke before anything was seen.
    async fn wait_once(
        &self,
        prefix: &str,
        after: Revision,
        deadline: Instant,
    ) -> Result<Option<Revision>> {
        let mut watch = KeyWatch::open(self, prefix, true, after.saturating_add(1)).await?;
        let next = watch.next(deadline).await;
        watch.cancel().await;
        Ok(match next {
            WatchNext::Events { revision, .. } => Some(revision),
            // The history after `after` is gone: return now; the caller re-reads.
            WatchNext::Compacted { revision } => Some(revision),
            WatchNext::TimedOut => Some(self.current_revision(prefix).await?),
            WatchNext::Broken => None,
        })
    }
}

/// The revision an answer was read at. etcd always sends a header; one without is a broken
/// proxy or server, never a revision to trust.
pub(crate) fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Other("etcd answered without a response header".to_string()))
}

pub(crate) fn entry(kv: &KeyValue) -> Result<Entry> {
    let key = kv.key_str().map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: format!("key is not UTF-8: {e}"),
    })?;
    Ok(Entry {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The etcd compares for a transaction's fence and compares.
fn compares(txn: &Txn) -> Vec<etcd_client::Compare> {
    let mut compares = Vec::with_capacity(txn.compares.len() + 1);
    if let Some(fence) = &txn.fence {
        compares.push(etcd_client::Compare::create_revision(
            fence.election_key.as_str(),
            CompareOp::Equal,
            fence.epoch,
        ));
    }
    for compare in &txn.compares {
        match compare {
            // etcd reports 0 as the create revision of a key that does not exist.
            Compare::Absent { key } => compares.push(etcd_client::Compare::create_revision(
                key.as_str(),
                CompareOp::Equal,
                0,
            )),
            Compare::ModRevision { key, revision } => {
                compares.push(etcd_client::Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    *revision,
                ));
                if *revision <= 0 {
                    // A missing key has mod revision 0 in etcd, but the contract says this
                    // compare needs the key to exist.
                    compares.push(etcd_client::Compare::version(
                        key.as_str(),
                        CompareOp::Greater,
                        0,
                    ));
                }
            }
        }
    }
    compares
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Put { key, .. } | Op::Delete { key } => key,
    }
}

/// Each key's last op, in order. etcd refuses a transaction that writes one key twice; keeping
/// the last op per key gives the values the ops would give applied in order. (One difference
/// stays: a delete then a put of the same key keeps the key's create revision in etcd, where
/// the local stores give it a new one.)
fn last_op_per_key(ops: &[Op]) -> Vec<&Op> {
    let last: HashMap<&str, usize> = ops
        .iter()
        .enumerate()
        .map(|(index, op)| (op_key(op), index))
        .collect();
    ops.iter()
        .enumerate()
        .filter(|(index, op)| last.get(op_key(op)) == Some(index))
        .map(|(_, op)| op)
        .collect()
}

fn operations(txn: &Txn) -> Vec<TxnOp> {
    last_op_per_key(&txn.ops)
        .into_iter()
        .map(|op| match op {
            Op::Put { key, value } => TxnOp::put(key.as_str(), value.clone(), None),
            Op::Delete { key } => TxnOp::delete(key.as_str(), None),
        })
        .collect()
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let response = self
            .request("get", Resend::IfTransient, |mut c| async move {
                c.get(key, None).await
            })
            .await?;
        response.kvs().first().map(entry).transpose()
    }

    /// etcd returns a range in key (byte) order, which is `str` order.
    async fn list(&self, prefix: &str) -> Result<Listing> {
        let response = self
            .request("list", Resend::IfTransient, |mut c| async move {
                c.get(prefix, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        let revision = header_revision(response.header())?;
        let entries = response.kvs().iter().map(entry).collect::<Result<_>>()?;
        Ok(Listing { entries, revision })
    }

    /// One etcd transaction. When it fails and is fenced, its else-branch reads the election
    /// key, so `Fenced` and `Conflict` are told apart in the same round trip.
    async fn commit(&self, txn: Txn) -> Result<Commit> {
        let mut request = etcd_client::Txn::new()
            .when(compares(&txn))
            .and_then(operations(&txn));
        if let Some(fence) = &txn.fence {
            request = request.or_else(vec![TxnOp::get(fence.election_key.as_str(), None)]);
        }
        let response = self
            .request("commit", Resend::IfNeverSent, |mut c| {
                let request = request.clone();
                async move { c.txn(request).await }
            })
            .await?;
        let revision = header_revision(response.header())?;
        if response.succeeded() {
            return Ok(Commit::Applied { revision });
        }
        let Some(fence) = &txn.fence else {
            return Ok(Commit::Conflict);
        };
        let fence_holds = response.op_responses().iter().any(|op| match op {
            TxnOpResponse::Get(read) => read
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == fence.epoch),
            _ => false,
        });
        Ok(if fence_holds {
            Commit::Conflict
        } else {
            Commit::Fenced
        })
    }

    /// An etcd watch of `prefix` from `after + 1`. A watch that breaks (its member died) is
    /// re-opened, with backoff, until the deadline; the watch is always cancelled.
    async fn wait_change(
        &self,
        prefix: &str,
        after: Revision,
        timeout: Duration,
    ) -> Result<Revision> {
        let deadline = Instant::from_std(crate::later(std::time::Instant::now(), timeout));
        let mut backoff = REWATCH_BACKOFF_MIN;
        loop {
            if let Some(revision) = self.wait_once(prefix, after, deadline).await? {
                return Ok(revision);
            }
            let now = Instant::now();
            if now >= deadline {
                return self.current_revision(prefix).await;
            }
            tokio::time::sleep_until(deadline.min(now + backoff)).await;
            backoff = (backoff * 2).min(REWATCH_BACKOFF_MAX);
        }
    }

    async fn campaign(
        &self,
        election: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<Box<dyn Leadership>> {
        leadership::campaign(self, election, value, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_op_per_key_is_kept_in_order() {
        let txn = Txn::default()
            .put("a", b"1".to_vec())
            .put("b", b"1".to_vec())
            .delete("a")
            .put("c", b"1".to_vec())
            .put("b", b"2".to_vec());
        let kept = last_op_per_key(&txn.ops);
        assert_eq!(
            kept,
            vec![
                &Op::Delete {
                    key: "a".to_string()
                },
                &Op::Put {
                    key: "c".to_string(),
                    value: b"1".to_vec()
                },
                &Op::Put {
                    key: "b".to_string(),
                    value: b"2".to_vec()
                },
            ]
        );
        assert_eq!(operations(&txn).len(), 3);
    }

    #[test]
    fn a_mod_revision_compare_on_revision_zero_also_needs_the_key() {
        let txn = Txn::default().compare(Compare::ModRevision {
            key: "k".to_string(),
            revision: 0,
        });
        assert_eq!(compares(&txn).len(), 2);
        let fenced = Txn::fenced(meridian_store::Fence {
            election_key: "e".to_string(),
            epoch: 3,
        })
        .compare(Compare::Absent {
            key: "k".to_string(),
        });
        assert_eq!(compares(&fenced).len(), 2);
    }
}
