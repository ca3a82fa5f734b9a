//! The etcd store against real etcd clusters run by `LocalCluster`: the store conformance
//! suite, leader failover with fencing, a leader cut off from etcd, a lost member, and change
//! waits across clients.

use std::time::{Duration, Instant};

use meridian_etcd::local_cluster::LocalCluster;
use meridian_etcd::{EtcdOptions, EtcdStore};
use meridian_store::{conformance, Commit, Compare, Store, StoreError, Txn};

/// The lease TTL of every campaign here: etcd's minimum with the harness's timings.
const TTL: Duration = Duration::from_secs(1);

fn options() -> EtcdOptions {
    EtcdOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(2),
    }
}

async fn cluster(members: usize) -> (LocalCluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = LocalCluster::start(members, dir.path())
        .await
        .expect("start a local etcd cluster");
    (cluster, dir)
}

async fn connect(cluster: &LocalCluster) -> EtcdStore {
    EtcdStore::connect(&cluster.client_endpoints(), options())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_store_conformance_suite_on_three_members() {
    let (cluster, _dir) = cluster(3).await;
    let store = connect(&cluster).await;
    conformance::check_all(&store, "/conformance/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_leader_stops_renewing_and_the_old_fence_fails() {
    let (cluster, _dir) = cluster(3).await;
    let first_store = connect(&cluster).await;
    let second_store = connect(&cluster).await;
    let election = "/failover/election";

    let first = first_store
        .campaign(election, b"first".to_vec(), TTL)
        .await
        .expect("first campaign");
    let fence = first.fence();
    let write = Txn::fenced(fence.clone()).put("/failover/data", b"from first".to_vec());
    assert!(matches!(
        first_store.commit(write.clone()).await.expect("commit"),
        Commit::Applied { .. }
    ));

    let standby = tokio::spawn(async move {
        second_store
            .campaign(election, b"second".to_vec(), TTL)
            .await
            .map(|leadership| (leadership, second_store))
    });
    tokio::time::sleep(TTL + TTL / 2).await;
    assert!(
        !standby.is_finished(),
        "the standby waits while the leader renews"
    );
    assert!(first.is_held());

    // As if the leader's process were killed: no resign, keep-alives just stop.
    let dropped_at = Instant::now();
    drop(first);
    let (second, second_store) = tokio::time::timeout(TTL * 4, standby)
        .await
        .expect("the standby is elected within a few TTLs")
        .expect("standby task")
        .expect("standby campaign");
    let takeover = dropped_at.elapsed();
    println!("takeover after the leader stopped: {takeover:?} (lease TTL {TTL:?})");
    assert!(
        takeover <= TTL + Duration::from_millis(1500),
        "takeover took {takeover:?}"
    );
    assert!(second.is_held());
    assert!(
        second.epoch() > fence.epoch,
        "a later leader has a larger epoch"
    );

    assert_eq!(
        first_store.commit(write).await.expect("stale commit"),
        Commit::Fenced,
        "the deposed leader's writes are fenced off"
    );
    let leader = second_store
        .leader(election)
        .await
        .expect("leader")
        .expect("someone leads");
    assert_eq!(
        (leader.value.as_slice(), leader.epoch),
        (&b"second"[..], second.epoch())
    );
    let data = second_store
        .get("/failover/data")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(data.value, b"from first");
    second.resign().await.expect("resign");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_etcd_stops_believing_it_leads_within_the_ttl() {
    let (mut cluster, _dir) = cluster(3).await;
    let store = connect(&cluster).await;
    let leadership = store
        .campaign("/cutoff/election", b"leader".to_vec(), TTL)
        .await
        .expect("campaign");
    // Let a few keep-alives go by, so the deadline rests on renewals, not on the grant.
    tokio::time::sleep(TTL).await;
    assert!(leadership.is_held());

    let killed_at = Instant::now();
    for member in 0..cluster.len() {
        cluster.kill(member).expect("kill");
    }
    let mut last_held = Duration::ZERO;
    loop {
        // Read the clock first: if is_held() then says yes, it said so at this time or later.
        let checked_at = Instant::now().duration_since(killed_at);
        if !leadership.is_held() {
            let seen_at = Instant::now().duration_since(killed_at);
            println!(
                "stopped believing it leads between {last_held:?} and {seen_at:?} after etcd \
                 went away (lease TTL {TTL:?})"
            );
            break;
        }
        assert!(
            checked_at < TTL,
            "still believes it leads {checked_at:?} after etcd went away"
        );
        last_held = checked_at;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_millis(500), leadership.lost())
        .await
        .expect("lost() resolves once is_held() is false");

    let started = Instant::now();
    let commit = store
        .commit(Txn::fenced(leadership.fence()).put("/cutoff/x", b"x".to_vec()))
        .await;
    assert!(
        matches!(commit, Err(StoreError::Unavailable(ref message)) if message.contains("127.0.0.1")),
        "a commit without etcd fails as unavailable, naming the endpoints: {commit:?}"
    );
    assert!(started.elapsed() < options().request_timeout + Duration::from_secs(1));
}

/// Creates `key` if absent, or swaps it from `expected`, under `fence`; returns the revision.
async fn swap(
    store: &EtcdStore,
    fence: meridian_store::Fence,
    key: &str,
    expected: Option<i64>,
    value: &[u8],
) -> Commit {
    let compare = match expected {
        None => Compare::Absent { key: key.into() },
        Some(revision) => Compare::ModRevision {
            key: key.into(),
            revision,
        },
    };
    store
        .commit(Txn::fenced(fence).compare(compare).put(key, value.to_vec()))
        .await
        .expect("commit")
}

fn applied(commit: Commit) -> i64 {
    match commit {
        Commit::Applied { revision } => revision,
        other => panic!("expected the commit to apply, got {other:?}"),
    }
}

/// Waits (bounded) until the store serves a linearizable read again, e.g. while the surviving
/// members elect a new raft leader; returns how long that took.
async fn until_serving(store: &EtcdStore) -> Duration {
    let started = Instant::now();
    loop {
        match store.list("/quorum/").await {
            Ok(_) => return started.elapsed(),
            Err(StoreError::Unavailable(message)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no service for 10 s with a quorum up: {message}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_working_with_one_of_three_members_killed() {
    let (mut cluster, _dir) = cluster(3).await;
    let store = connect(&cluster).await;
    let key = "/quorum/k";
    let leadership = store
        .campaign("/quorum/election", b"a".to_vec(), TTL)
        .await
        .expect("campaign");
    let created = applied(swap(&store, leadership.fence(), key, None, b"1").await);

    // A follower dies: nothing notices, not even a leader on a 1 s lease.
    let raft_leader = cluster
        .raft_leader()
        .await
        .expect("status")
        .expect("a leader");
    let follower = (raft_leader + 1) % cluster.len();
    cluster.kill(follower).expect("kill a follower");
    // A request in flight to a member at the instant it dies fails, its outcome unknown (as
    // with any etcd client); give the client a moment to see the connection close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let swapped = applied(swap(&store, leadership.fence(), key, Some(created), b"2").await);
    assert_eq!(
        swap(&store, leadership.fence(), key, Some(created), b"3").await,
        Commit::Conflict,
        "a stale swap conflicts"
    );
    tokio::time::sleep(TTL).await;
    assert!(
        leadership.is_held(),
        "keep-alives reach the surviving members"
    );
    cluster
        .restart(follower)
        .await
        .expect("restart the follower");

    // The raft leader dies: after a new raft election everything works again.
    let raft_leader = cluster
        .raft_leader()
        .await
        .expect("status")
        .expect("a leader");
    cluster.kill(raft_leader).expect("kill the raft leader");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let outage = until_serving(&store).await;
    println!("served again {outage:?} after the raft leader was killed");

    // The old leadership may have lapsed during the raft election (a 1 s lease is shorter
    // than that can take); a new campaign works either way.
    leadership.resign().await.expect("resign");
    let other = connect(&cluster).await;
    let second = other
        .campaign("/quorum/election", b"b".to_vec(), TTL)
        .await
        .expect("campaign with a member down");
    assert!(second.is_held());
    assert!(second.epoch() > leadership.epoch());
    assert_eq!(
        swap(&other, leadership.fence(), key, Some(swapped), b"4").await,
        Commit::Fenced
    );
    let latest = applied(swap(&other, second.fence(), key, Some(swapped), b"4").await);

    let waiter = {
        let other = other.clone();
        tokio::spawn(async move {
            other
                .wait_change("/quorum/", latest, Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .commit(Txn::default().put("/quorum/woke", b"1".to_vec()))
        .await
        .expect("put");
    let woke = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("wakes")
        .expect("task")
        .expect("wait_change");
    assert!(woke > latest);
    second.resign().await.expect("resign");
    assert!(!second.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_wakes_on_a_write_from_another_client() {
    let (cluster, _dir) = cluster(1).await;
    let waiting = connect(&cluster).await;
    let writing = connect(&cluster).await;
    let seen = waiting.list("/wake/").await.expect("list").revision;
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let revision = waiting
            .wait_change("/wake/", seen, Duration::from_secs(10))
            .await;
        (revision, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A write outside the prefix does not wake it.
    writing
        .commit(Txn::default().put("/wakeless", b"0".to_vec()))
        .await
        .expect("put");
    let Commit::Applied { revision } = writing
        .commit(Txn::default().put("/wake/k", b"1".to_vec()))
        .await
        .expect("put")
    else {
        panic!("an unconditional put applies")
    };
    let (woke, waited) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait wakes")
        .expect("task");
    let woke = woke.expect("wait_change");
    assert!(
        woke >= revision,
        "woke at {woke}, the write was at {revision}"
    );
    assert!(waited < Duration::from_secs(2), "woke after {waited:?}");

    // A quiet wait returns at its timeout with the current revision.
    let started = Instant::now();
    let quiet = writing
        .wait_change("/wake/", woke, Duration::from_millis(300))
        .await
        .expect("quiet wait");
    assert!(quiet >= woke);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2));

    // A wait from a revision etcd compacted away returns at once: the caller re-reads.
    let mut raw = etcd_client::Client::connect(cluster.client_endpoints(), None)
        .await
        .expect("raw client");
    raw.compact(quiet, None).await.expect("compact");
    let started = Instant::now();
    let after_compaction = writing
        .wait_change("/wake/", seen, Duration::from_secs(10))
        .await
        .expect("wait from a compacted revision");
    assert!(after_compaction >= quiet);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_key_is_deleted_behind_its_back_loses_at_once() {
    let (cluster, _dir) = cluster(1).await;
    let store = connect(&cluster).await;
    let leadership = store
        .campaign("/deleted/election", b"leader".to_vec(), TTL * 5)
        .await
        .expect("campaign");
    assert!(leadership.is_held());
    let operator = connect(&cluster).await;
    operator
        .commit(Txn::default().delete("/deleted/election"))
        .await
        .expect("delete");
    tokio::time::timeout(Duration::from_secs(2), leadership.lost())
        .await
        .expect("the key's watch sees the delete long before the lease would expire");
    assert!(!leadership.is_held());
    assert_eq!(
        store
            .commit(Txn::fenced(leadership.fence()).put("/deleted/x", b"x".to_vec()))
            .await
            .expect("commit"),
        Commit::Fenced
    );
    leadership
        .resign()
        .await
        .expect("resigning a lost leadership is harmless");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_fast_naming_the_endpoint() {
    // A port nobody listens on (picked, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let result = EtcdStore::connect(
        std::slice::from_ref(&endpoint),
        EtcdOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
        },
    )
    .await;
    match result {
        Err(StoreError::Unavailable(message)) => assert!(message.contains(&endpoint), "{message}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        EtcdStore::connect(&[], EtcdOptions::default()).await,
        Err(StoreError::Other(_))
    ));
}
