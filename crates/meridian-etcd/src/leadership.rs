//! Leader election on etcd: the election key is attached to a lease the leader keeps alive;
//! the key's create revision is the epoch every write of that leader is fenced with.
//!
//! Safety does not rest on timing: a deposed leader's writes fail their fence compare in etcd.
//! Timing only decides how soon a leader *stops trying*: [`Leadership::is_held`] counts the
//! lease from when the last acknowledged keep-alive was *sent*. etcd renews a lease when it
//! processes the keep-alive, which is later, so the leader's own deadline always comes first:
//! a leader cut off from etcd stops believing it leads before etcd can elect another.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    CompareOp, Event, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, TxnOp,
    TxnOpResponse,
};
use meridian_store::{Epoch, Fence, Leadership, Result, Revision, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::CallError;
use crate::later;
use crate::store::{header_revision, EtcdStore, Resend};
use crate::watch::{KeyWatch, WatchNext};

/// How often a leader renews its lease, as a fraction of the TTL: two renewals may be lost
/// before the lease is in danger.
const KEEP_ALIVES_PER_TTL: u32 = 3;
/// How long a candidate waits on one watch of the taken key before it re-checks with a read
/// (a guard against a missed event; the watch normally wakes it at the delete).
const CANDIDATE_WATCH_MAX: Duration = Duration::from_secs(5);
/// Backoff between failed attempts of the background tasks and the candidate's watch.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How many times in a row a candidate may fail to watch the taken key, or find its lease gone
/// before it could use it, before the campaign fails (the caller decides whether to retry).
const CANDIDATE_FAILURES_MAX: u32 = 10;

/// The lease TTL etcd is asked for: `ttl` rounded up to whole seconds, at least 1 s (etcd's
/// unit; it may grant more, e.g. its minimum TTL).
fn lease_seconds(ttl: Duration) -> i64 {
    let whole = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    i64::try_from(whole.max(1)).unwrap_or(i64::MAX)
}

/// Doubling backoff between `BACKOFF_MIN` and a maximum.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next: BACKOFF_MIN.min(max),
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN.min(self.max);
    }
}

/// Aborts a background task when dropped, so dropping a leadership (or a campaign future)
/// stops its keep-alives and watches.
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    fn abort(&self) {
        self.0.abort();
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the holder of a lease knows about it.
struct LeaseState {
    /// The TTL the caller asked for: the lease etcd holds is at least this long.
    ttl: Duration,
    /// The send time of the last acknowledged keep-alive (or grant), plus `ttl`.
    held_until: Mutex<Instant>,
    /// Set once the lease is known lost (TTL 0, key deleted or replaced, resigned, expired).
    lost: watch::Sender<bool>,
}

impl LeaseState {
    fn new(ttl: Duration, held_until: Instant) -> LeaseState {
        LeaseState {
            ttl,
            held_until: Mutex::new(held_until),
            lost: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Instant> {
        // An Instant is always consistent, so a poisoned lock is still usable.
        self.held_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held_until(&self) -> Instant {
        *self.lock()
    }

    fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    fn is_held(&self) -> bool {
        !self.is_lost() && Instant::now() < self.held_until()
    }

    /// A keep-alive sent at `sent` was acknowledged with `granted` left on the lease.
    fn acknowledged(&self, sent: Instant, granted: Duration) {
        let until = later(sent, self.ttl.min(granted));
        let mut held_until = self.lock();
        if until > *held_until {
            *held_until = until;
        }
    }

    fn lose(&self) {
        self.lost.send_replace(true);
    }

    /// Resolves once the lease is lost or its deadline passes without a renewal.
    async fn wait_lost(&self) {
        let mut lost = self.lost.subscribe();
        loop {
            if *lost.borrow_and_update() {
                return;
            }
            let until = self.held_until();
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                changed = lost.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
            }
        }
    }
}

/// A granted lease and the task that keeps it alive.
struct Lease {
    id: i64,
    state: Arc<LeaseState>,
    keeper: AbortOnDrop,
}

impl Lease {
    async fn grant(store: &EtcdStore, ttl: Duration) -> Result<Lease> {
        let sent = Instant::now();
        let asked = lease_seconds(ttl);
        let granted = store
            // A repeated grant at worst leaves a lease with no keys, which expires.
            .request("grant lease", Resend::IfTransient, |mut c| async move {
                c.lease_grant(asked, None).await
            })
            .await?;
        if granted.ttl() <= 0 {
            return Err(StoreError::Other(format!(
                "etcd at {} granted a lease with TTL {}: {}",
                store.endpoints(),
                granted.ttl(),
                granted.error()
            )));
        }
        let state = LeaseState::new(ttl, sent);
        state.acknowledged(sent, seconds(granted.ttl()));
        let state = Arc::new(state);
        let keeper = tokio::spawn(keep_alive(store.clone(), granted.id(), Arc::clone(&state)));
        Ok(Lease {
            id: granted.id(),
            state,
            keeper: AbortOnDrop(keeper),
        })
    }
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl).unwrap_or(0))
}

/// The keep-alive channel of a lease, opened on first use and after a failure.
type KeepAliveChannel = Option<(LeaseKeeper, LeaseKeepAliveStream)>;

/// Sends one keep-alive and returns the TTL etcd answered with, within `bound`.
async fn renew_once(
    store: &EtcdStore,
    id: i64,
    channel: &mut KeepAliveChannel,
    bound: Duration,
) -> std::result::Result<i64, CallError> {
    if let Some((keeper, stream)) = channel {
        let renew = async {
            keeper.keep_alive().await?;
            stream.message().await
        };
        return match tokio::time::timeout(bound, renew).await {
            Ok(Ok(Some(answer))) => Ok(answer.ttl()),
            Ok(Ok(None)) => Err(CallError::Etcd(etcd_client::Error::LeaseKeepAliveError(
                "keep-alive stream ended".to_string(),
            ))),
            Ok(Err(error)) => Err(CallError::Etcd(error)),
            Err(_) => Err(CallError::TimedOut(bound)),
        };
    }
    // Opening the channel sends the first keep-alive and fails if the answer has TTL 0.
    let opened = store
        .call_within(bound, Resend::IfTransient, |mut c| async move {
            c.lease_keep_alive(id).await
        })
        .await?;
    *channel = Some(opened);
    Ok(i64::MAX)
}

/// Keeps the lease alive every TTL/3, one keep-alive in flight at a time (so each answer is
/// known to answer the request sent at `sent`), until the lease is lost or its deadline passes.
async fn keep_alive(store: EtcdStore, id: i64, state: Arc<LeaseState>) {
    let period = (state.ttl / KEEP_ALIVES_PER_TTL).max(Duration::from_millis(1));
    let mut channel: KeepAliveChannel = None;
    let mut next = later(Instant::now(), period);
    loop {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        if state.is_lost() {
            return;
        }
        let sent = Instant::now();
        let Some(remaining) = state.held_until().checked_duration_since(sent) else {
            state.lose();
            return;
        };
        next = later(sent, period);
        // No answer before the deadline is as good as none at all.
        let bound = remaining.min(store.options().request_timeout);
        match renew_once(&store, id, &mut channel, bound).await {
            Ok(ttl) if ttl > 0 => state.acknowledged(sent, seconds(ttl)),
            Ok(_) => {
                state.lose();
                return;
            }
            Err(error) if error.is_lease_gone() => {
                state.lose();
                return;
            }
            // A late answer would be taken for the next request's: start a new channel.
            Err(_) => channel = None,
        }
    }
}

/// Takes the election key when free (`create_revision == 0`), else waits for its delete.
pub(crate) async fn campaign(
    store: &EtcdStore,
    election: &str,
    value: Vec<u8>,
    ttl: Duration,
) -> Result<Box<dyn Leadership>> {
    if ttl.is_zero() {
        return Err(StoreError::Other(
            "a leadership TTL must be positive".to_string(),
        ));
    }
    let mut lease = Lease::grant(store, ttl).await?;
    let mut failures = 0;
    let mut backoff = Backoff::new(BACKOFF_MAX.min(ttl));
    loop {
        if !lease.state.is_held() {
            // Lost while waiting (etcd was unreachable for a TTL): the old one may be gone.
            failures += 1;
            lease = Lease::grant(store, ttl).await?;
        }
        match try_take(store, election, &value, lease.id).await {
            Ok(Taken::Won { epoch }) => {
                let fence = Fence {
                    election_key: election.to_string(),
                    epoch,
                };
                return Ok(Box::new(EtcdLeadership::start(store, fence, lease)));
            }
            Ok(Taken::Held { revision }) => {
                if wait_for_delete(store, election, revision).await.is_err() {
                    failures += 1;
                    tokio::time::sleep(backoff.next()).await;
                } else {
                    failures = 0;
                    backoff.reset();
                }
            }
            Err(error) if error.is_lease_gone() => {
                failures += 1;
                lease.state.lose();
            }
            Err(error) => return Err(store.fail("campaign", error)),
        }
        if failures > CANDIDATE_FAILURES_MAX {
            return Err(StoreError::Unavailable(format!(
                "campaign for {election}: {failures} failures in a row at etcd {}",
                store.endpoints()
            )));
        }
    }
}

enum Taken {
    Won {
        epoch: Epoch,
    },
    /// Someone holds the key; the answer was read at `revision`.
    Held {
        revision: Revision,
    },
}

async fn try_take(
    store: &EtcdStore,
    election: &str,
    value: &[u8],
    lease: i64,
) -> std::result::Result<Taken, CallError> {
    let put = PutOptions::new().with_lease(lease);
    let txn = etcd_client::Txn::new()
        .when(vec![etcd_client::Compare::create_revision(
            election,
            CompareOp::Equal,
            0,
        )])
        .and_then(vec![TxnOp::put(election, value.to_vec(), Some(put))])
        .or_else(vec![TxnOp::get(election, None)]);
    // Sending it again is harmless: if an earlier attempt took the key, the key carries our
    // lease, which the answer shows.
    let answer = store
        .call(Resend::IfTransient, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
    let Some(revision) = answer.header().map(|h| h.revision()) else {
        return Err(CallError::Etcd(etcd_client::Error::Internal(
            "etcd answered a campaign without a response header".to_string(),
        )));
    };
    if answer.succeeded() {
        // The put created the key in this transaction: its create revision is the
        // transaction's revision.
        return Ok(Taken::Won { epoch: revision });
    }
    let holder = answer.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(read) => read
            .kvs()
            .first()
            .map(|kv| (kv.lease(), kv.create_revision())),
        _ => None,
    });
    match holder {
        // An earlier attempt of this transaction took the key, and its answer was lost.
        Some((holder_lease, create_revision)) if holder_lease == lease => Ok(Taken::Won {
            epoch: create_revision,
        }),
        _ => Ok(Taken::Held { revision }),
    }
}

/// Waits (bounded) until `election` is deleted after `revision`. Ok also on timeout or a
/// compaction: the caller re-checks with its transaction either way.
async fn wait_for_delete(store: &EtcdStore, election: &str, revision: Revision) -> Result<()> {
    let mut watch = KeyWatch::open(store, election, false, revision.saturating_add(1)).await?;
    let deadline = tokio::time::Instant::now() + CANDIDATE_WATCH_MAX;
    let outcome = loop {
        match watch.next(deadline).await {
            WatchNext::Events { events, .. } => {
                if events.iter().any(|e| e.event_type() == EventType::Delete) {
                    break Ok(());
                }
            }
            WatchNext::Compacted { .. } | WatchNext::TimedOut => break Ok(()),
            WatchNext::Broken => {
                break Err(StoreError::Unavailable(format!(
                    "watch of {election} at etcd {} broke",
                    store.endpoints()
                )))
            }
        }
    };
    watch.cancel().await;
    outcome
}

/// Leadership of one election, held through a lease.
struct EtcdLeadership {
    store: EtcdStore,
    fence: Fence,
    lease: Lease,
    /// Watches the election key, so a delete or a replacement is noticed at once.
    watcher: AbortOnDrop,
}

impl EtcdLeadership {
    fn start(store: &EtcdStore, fence: Fence, lease: Lease) -> EtcdLeadership {
        let watcher = tokio::spawn(watch_key(
            store.clone(),
            fence.clone(),
            Arc::clone(&lease.state),
        ));
        EtcdLeadership {
            store: store.clone(),
            fence,
            lease,
            watcher: AbortOnDrop(watcher),
        }
    }
}

impl Drop for EtcdLeadership {
    fn drop(&mut self) {
        // The tasks stop with their handles; the lease then expires in etcd.
        self.lease.state.lose();
    }
}

/// True if the election key still exists with the leader's create revision; also returns the
/// revision the answer was read at.
async fn key_still_ours(store: &EtcdStore, fence: &Fence) -> Result<(bool, Revision)> {
    let key = fence.election_key.as_str();
    let answer = store
        .request(
            "read election key",
            Resend::IfTransient,
            |mut c| async move { c.get(key, None).await },
        )
        .await?;
    let ours = answer
        .kvs()
        .first()
        .is_some_and(|kv| kv.create_revision() == fence.epoch);
    Ok((ours, header_revision(answer.header())?))
}

/// Watches the election key until it is deleted or replaced (then marks the lease lost), or
/// until the lease is lost otherwise. Broken watches are re-opened with backoff.
async fn watch_key(store: EtcdStore, fence: Fence, state: Arc<LeaseState>) {
    let watching = async {
        let mut from = fence.epoch.saturating_add(1);
        let mut backoff = Backoff::new(BACKOFF_MAX.min(state.ttl));
        loop {
            match watch_key_from(&store, &fence, from).await {
                KeyWatchEnd::Gone => {
                    state.lose();
                    return;
                }
                KeyWatchEnd::Resume { from: next } => {
                    from = next;
                    backoff.reset();
                }
                KeyWatchEnd::Failed { from: next } => {
                    from = next;
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        }
    };
    tokio::select! {
        () = state.wait_lost() => {}
        () = watching => {}
    }
}

enum KeyWatchEnd {
    /// The key was deleted or replaced.
    Gone,
    /// Still ours as of `from - 1`; watch again from `from`.
    Resume { from: Revision },
    /// The watch could not be opened or broke; retry from `from` after a pause.
    Failed { from: Revision },
}

/// How long one watch of the leader's key stays open before it is re-opened (idle watches are
/// cheap; re-opening bounds how long a silently dead stream goes unnoticed).
const LEADER_WATCH_MAX: Duration = Duration::from_secs(30);

/// A delete of the key, or a put that made a new key (another create revision), ends the
/// leadership of `epoch`.
fn ends_leadership(event: &Event, epoch: Epoch) -> bool {
    event.event_type() == EventType::Delete
        || event.kv().is_some_and(|kv| kv.create_revision() != epoch)
}

async fn watch_key_from(store: &EtcdStore, fence: &Fence, from: Revision) -> KeyWatchEnd {
    let Ok(mut watch) = KeyWatch::open(store, &fence.election_key, false, from).await else {
        return KeyWatchEnd::Failed { from };
    };
    let deadline = tokio::time::Instant::now() + LEADER_WATCH_MAX;
    let mut from = from;
    let end = loop {
        match watch.next(deadline).await {
            WatchNext::Events { events, .. } => {
                if events
                    .iter()
                    .any(|event| ends_leadership(event, fence.epoch))
                {
                    break KeyWatchEnd::Gone;
                }
                for kv in events.iter().filter_map(Event::kv) {
                    from = from.max(kv.mod_revision().saturating_add(1));
                }
            }
            WatchNext::Compacted { .. } => {
                break match key_still_ours(store, fence).await {
                    Ok((true, revision)) => KeyWatchEnd::Resume {
                        from: revision.saturating_add(1),
                    },
                    Ok((false, _)) => KeyWatchEnd::Gone,
                    Err(_) => KeyWatchEnd::Failed { from },
                };
            }
            WatchNext::TimedOut => break KeyWatchEnd::Resume { from },
            WatchNext::Broken => break KeyWatchEnd::Failed { from },
        }
    };
    watch.cancel().await;
    end
}

#[async_trait]
impl Leadership for EtcdLeadership {
    fn epoch(&self) -> Epoch {
        self.fence.epoch
    }

    fn fence(&self) -> Fence {
        self.fence.clone()
    }

    fn is_held(&self) -> bool {
        self.lease.state.is_held()
    }

    async fn lost(&self) {
        self.lease.state.wait_lost().await;
    }

    /// Stops leading at once (before telling etcd, so this process never acts as leader after
    /// it decided to resign), then deletes the key under the fence and revokes the lease.
    async fn resign(&self) -> Result<()> {
        self.lease.state.lose();
        self.lease.keeper.abort();
        self.watcher.abort();
        let delete = etcd_client::Txn::new()
            .when(vec![etcd_client::Compare::create_revision(
                self.fence.election_key.as_str(),
                CompareOp::Equal,
                self.fence.epoch,
            )])
            .and_then(vec![TxnOp::delete(self.fence.election_key.as_str(), None)]);
        self.store
            // A fenced delete: repeating it changes nothing.
            .request("resign", Resend::IfTransient, |mut c| {
                let delete = delete.clone();
                async move { c.txn(delete).await }
            })
            .await?;
        let id = self.lease.id;
        match self
            .store
            .call(Resend::IfTransient, |mut c| async move {
                c.lease_revoke(id).await
            })
            .await
        {
            Ok(_) => Ok(()),
            // Already expired or revoked (a second resign): nothing left to give up.
            Err(error) if error.is_lease_gone() => Ok(()),
            Err(error) => Err(self.store.fail("revoke lease", error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ttl_rounds_up_to_whole_seconds() {
        assert_eq!(lease_seconds(Duration::from_millis(1)), 1);
        assert_eq!(lease_seconds(Duration::from_secs(1)), 1);
        assert_eq!(lease_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(lease_seconds(Duration::from_secs(5)), 5);
        assert_eq!(lease_seconds(Duration::MAX), i64::MAX);
    }

    #[test]
    fn held_counts_from_the_send_time_and_never_moves_back() {
        let start = Instant::now();
        let state = LeaseState::new(Duration::from_secs(1), start);
        assert!(!state.is_held(), "nothing acknowledged yet");
        state.acknowledged(start, Duration::from_secs(10));
        assert_eq!(state.held_until(), start + Duration::from_secs(1));
        state.acknowledged(start - Duration::from_millis(500), Duration::from_secs(1));
        assert_eq!(state.held_until(), start + Duration::from_secs(1));
        state.acknowledged(start, Duration::from_millis(200));
        assert_eq!(state.held_until(), start + Duration::from_secs(1));
        assert!(state.is_held());
        state.lose();
        assert!(!state.is_held());
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(150));
        let waits: Vec<_> = (0..4).map(|_| backoff.next()).collect();
        assert_eq!(
            waits,
            [50, 100, 150, 150].map(Duration::from_millis).to_vec()
        );
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(50));
    }
}
