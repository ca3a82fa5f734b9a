use meridian_store::memory::MemoryStore;
use meridian_store::redb_store::RedbStore;
use meridian_store::{conformance, Store, Txn};

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    conformance::check_all(&MemoryStore::new(), "/t/").await;
}

#[tokio::test]
async fn redb_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("meridian.redb"), &[]).expect("open");
    conformance::check_all(&store, "/t/").await;
}

#[tokio::test]
async fn redb_store_keeps_data_and_revisions_across_reopen_and_clears_a_dead_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meridian.redb");
    let (revision, epoch) = {
        let store = RedbStore::open(&path, &["/m/election"]).expect("open");
        store
            .commit(Txn::default().put("/m/spec", b"fleet".to_vec()))
            .await
            .expect("put");
        let leadership = store
            .campaign(
                "/m/election",
                b"c1".to_vec(),
                std::time::Duration::from_secs(1),
            )
            .await
            .expect("campaign");
        (
            store.list("/m/").await.expect("list").revision,
            leadership.epoch(),
        )
        // The process "dies" holding leadership: the store is dropped without a resign.
    };
    let store = RedbStore::open(&path, &["/m/election"]).expect("reopen");
    assert_eq!(
        store
            .get("/m/spec")
            .await
            .expect("get")
            .expect("kept")
            .value,
        b"fleet"
    );
    assert!(
        store.get("/m/election").await.expect("get").is_none(),
        "stale leader cleared"
    );
    assert!(store.list("/m/").await.expect("list").revision > revision);
    let leadership = store
        .campaign(
            "/m/election",
            b"c2".to_vec(),
            std::time::Duration::from_secs(1),
        )
        .await
        .expect("campaign");
    assert!(leadership.epoch() > epoch, "epochs grow across restarts");
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meridian.redb");
    let _first = RedbStore::open(&path, &[]).expect("open");
    let second = RedbStore::open(&path, &[]);
    assert!(second.is_err(), "redb must refuse a second owner");
}
