//! The contract every [`Store`] keeps, as checks any implementation's tests run against it
//! (the memory and redb stores here, etcd in meridian-etcd). Each check panics with what broke.

use std::time::Duration;

use crate::{Commit, Compare, Store, Txn};

/// Runs every check under `root` (a prefix no one else uses).
pub async fn check_all(store: &dyn Store, root: &str) {
    compare_and_swap(store, &format!("{root}cas/")).await;
    list_reads_one_prefix_in_order(store, &format!("{root}list/")).await;
    deletes_reset_create_revision(store, &format!("{root}delete/")).await;
    fence_rejects_after_resign(store, &format!("{root}fence/")).await;
    wait_change_sees_writes_and_deletes(store, &format!("{root}wait/")).await;
}

pub async fn compare_and_swap(store: &dyn Store, root: &str) {
    let key = format!("{root}k");
    let first = store
        .commit(
            Txn::default()
                .compare(Compare::Absent { key: key.clone() })
                .put(&key, b"1".to_vec()),
        )
        .await
        .expect("create");
    let Commit::Applied { revision } = first else {
        panic!("creating an absent key must apply, got {first:?}")
    };
    let again = store
        .commit(
            Txn::default()
                .compare(Compare::Absent { key: key.clone() })
                .put(&key, b"2".to_vec()),
        )
        .await
        .expect("second create");
    assert_eq!(again, Commit::Conflict, "a second create must conflict");
    let entry = store.get(&key).await.expect("get").expect("key exists");
    assert_eq!(entry.value, b"1");
    assert_eq!(entry.mod_revision, revision);
    let swap = |expected| {
        Txn::default()
            .compare(Compare::ModRevision {
                key: key.clone(),
                revision: expected,
            })
            .put(&key, b"3".to_vec())
    };
    let swapped = store.commit(swap(revision)).await.expect("swap");
    let Commit::Applied { revision: later } = swapped else {
        panic!("a swap on the current revision must apply, got {swapped:?}")
    };
    assert!(later > revision, "revisions grow");
    assert_eq!(
        store.commit(swap(revision)).await.expect("stale swap"),
        Commit::Conflict
    );
    let entry = store.get(&key).await.expect("get").expect("key exists");
    assert_eq!(
        (entry.value.as_slice(), entry.create_revision),
        (&b"3"[..], revision)
    );
}

pub async fn list_reads_one_prefix_in_order(store: &dyn Store, root: &str) {
    for name in ["b", "a", "c"] {
        store
            .commit(Txn::default().put(format!("{root}in/{name}"), name.as_bytes().to_vec()))
            .await
            .expect("put");
    }
    store
        .commit(Txn::default().put(format!("{root}inx"), b"outside".to_vec()))
        .await
        .expect("put");
    let listing = store.list(&format!("{root}in/")).await.expect("list");
    let keys: Vec<_> = listing.entries.iter().map(|e| e.key.as_str()).collect();
    let expected: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("{root}in/{n}"))
        .collect();
    assert_eq!(keys, expected);
    assert!(
        listing.revision
            >= listing
                .entries
                .iter()
                .map(|e| e.mod_revision)
                .max()
                .unwrap_or(0)
    );
}

pub async fn deletes_reset_create_revision(store: &dyn Store, root: &str) {
    let key = format!("{root}k");
    store
        .commit(Txn::default().put(&key, b"1".to_vec()))
        .await
        .expect("put");
    let before = store
        .get(&key)
        .await
        .expect("get")
        .expect("exists")
        .create_revision;
    store
        .commit(Txn::default().delete(&key))
        .await
        .expect("delete");
    assert!(
        store.get(&key).await.expect("get").is_none(),
        "deleted key is gone"
    );
    store
        .commit(Txn::default().put(&key, b"2".to_vec()))
        .await
        .expect("put");
    let after = store
        .get(&key)
        .await
        .expect("get")
        .expect("exists")
        .create_revision;
    assert!(after > before, "a recreated key has a new create revision");
}

pub async fn fence_rejects_after_resign(store: &dyn Store, root: &str) {
    let election = format!("{root}election");
    let leadership = store
        .campaign(&election, b"one".to_vec(), Duration::from_secs(5))
        .await
        .expect("campaign");
    assert!(leadership.is_held());
    let leader = store
        .leader(&election)
        .await
        .expect("leader")
        .expect("someone leads");
    assert_eq!(
        (leader.value.as_slice(), leader.epoch),
        (&b"one"[..], leadership.epoch())
    );
    let fenced = Txn::fenced(leadership.fence()).put(format!("{root}data"), b"x".to_vec());
    assert!(matches!(
        store.commit(fenced.clone()).await.expect("commit"),
        Commit::Applied { .. }
    ));
    leadership.resign().await.expect("resign");
    assert_eq!(store.commit(fenced).await.expect("commit"), Commit::Fenced);
    let next = store
        .campaign(&election, b"two".to_vec(), Duration::from_secs(5))
        .await
        .expect("campaign again");
    assert!(
        next.epoch() > leadership.epoch(),
        "a later leader has a larger epoch"
    );
    let stale = Txn::fenced(leadership.fence()).put(format!("{root}data"), b"y".to_vec());
    assert_eq!(store.commit(stale).await.expect("commit"), Commit::Fenced);
    next.resign().await.expect("resign");
}

pub async fn wait_change_sees_writes_and_deletes(store: &dyn Store, root: &str) {
    let seen = store.list(root).await.expect("list").revision;
    let quiet = store
        .wait_change(root, seen, Duration::from_millis(50))
        .await
        .expect("wait");
    assert!(quiet >= seen);
    store
        .commit(Txn::default().put(format!("{root}k"), b"1".to_vec()))
        .await
        .expect("put");
    let woke = tokio_free_timeout(store.wait_change(root, seen, Duration::from_secs(10))).await;
    assert!(woke > seen, "a write under the prefix wakes the wait");
    store
        .commit(Txn::default().delete(format!("{root}k")))
        .await
        .expect("delete");
    let woke_again =
        tokio_free_timeout(store.wait_change(root, woke, Duration::from_secs(10))).await;
    assert!(
        woke_again > woke,
        "a delete under the prefix wakes the wait"
    );
}

async fn tokio_free_timeout(
    wait: impl std::future::Future<Output = crate::Result<crate::Revision>>,
) -> crate::Revision {
    wait.await.expect("wait_change")
}
