//! The redis actuator against real redis-servers on 127.0.0.1: a copy held to its booked
//! rate, a leader moved under write load without losing an acknowledged entry, promotions
//! refused short of their handoff, a copy interrupted by an agent crash, and every method
//! repeated without a second server. Skipped (with a message) only where redis-server is not
//! installed.

#[path = "redis/fixture.rs"]
mod fixture;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fixture::*;
use meridian_agent::products::redis::handoff::{Handoff, StreamKey, StreamTip};
use meridian_agent::Actuator;
use meridian_wire::Health;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_through_the_relay_holds_the_booked_rate() {
    let Some(fixture) = Fixture::new(23_100) else {
        return;
    };
    bounded(async {
        let n1 = fixture.actuator("n1", 30_000);
        n1.start(&fixture.ctx("n1", "t1"), LEADER)
            .await
            .expect("start the leader");
        let leader = fixture.endpoint(&n1, "n1").await;
        // 24 MB of incompressible entries: 4 s at 6 MB/s.
        let (entries, booked) = (24_000, 6.0);
        load(&leader, "events", entries, 1_000).await;

        // Another stream takes writes all along: the copy's catch-up and its verification
        // (at one replication position) hold against a moving source.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, leader) = (Arc::clone(&stop), leader.clone());
            tokio::spawn(async move {
                let mut c = connection(&leader).await;
                while !stop.load(Ordering::Relaxed) {
                    let _: String = redis::cmd("XADD")
                        .arg("side")
                        .arg("*")
                        .arg("p")
                        .arg("meanwhile")
                        .query_async(&mut c)
                        .await
                        .expect("the leader takes writes during the copy");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };

        let n2 = fixture.actuator("n2", 30_000);
        let ctx = fixture.ctx("n2", "t2");
        let from = source("n1", &leader);
        let copying = n2.replicate(&ctx, REPLICA, &from, 24_000_000, booked);
        tokio::pin!(copying);
        let mut samples: Vec<(Instant, u64)> = Vec::new();
        let outcome = loop {
            tokio::select! {
                outcome = &mut copying => break outcome,
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    samples.push((Instant::now(), ctx.progress.bytes_done()));
                }
            }
        };
        outcome.expect("replicate");
        stop.store(true, Ordering::Relaxed);
        writer.await.expect("writer");

        // The rate while the snapshot moved: from the first sample with bytes to the last
        // one short of the data loaded (the snapshot is at least that; after it only the
        // side writes trickle through).
        let total = ctx.progress.bytes_done();
        let moving: Vec<&(Instant, u64)> = samples
            .iter()
            .filter(|(_, bytes)| *bytes > 0 && *bytes < 24_000_000)
            .collect();
        let (first, last) = (
            moving.first().expect("moving"),
            moving.last().expect("moving"),
        );
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        assert!(seconds >= 3.0, "long enough to measure: {seconds:.1} s");
        let rate = (last.1 - first.1) as f64 / seconds / 1e6;
        eprintln!(
            "full sync through the relay: {rate:.2} MB/s against {booked} MB/s booked, \
             {total} bytes"
        );
        assert!(
            (rate - booked).abs() <= 0.1 * booked,
            "{rate:.2} MB/s against {booked} booked"
        );
        assert!(
            total >= 24_000_000,
            "the whole snapshot went through the relay: {total}"
        );
        assert_eq!(ctx.progress.lag_bytes(), Some(0));

        let follower = fixture.endpoint(&n2, "n2").await;
        assert_eq!(xlen(&follower).await, entries as u64);
        assert_eq!(last_id(&follower).await, last_id(&leader).await);
        // Linked to the source directly now, by a partial resync: one full sync in all.
        let master_port = info_field(&follower, "replication", "master_port").await;
        assert_eq!(master_port, Some(fixture.port("n1").to_string()));
        let full_syncs = info_field(&leader, "stats", "sync_full").await;
        assert_eq!(
            full_syncs.as_deref(),
            Some("1"),
            "no second, unthrottled copy"
        );
        let observed = n2.observe(&ctx.replica_context()).await;
        assert_eq!(observed.health, Health::Serving);
        assert!(
            try_write(&follower).await.is_err(),
            "a replica takes no writes"
        );
        let side_length = |endpoint: String| async move {
            let mut c = connection(&endpoint).await;
            let length: u64 = redis::cmd("XLEN")
                .arg("side")
                .query_async(&mut c)
                .await
                .expect("XLEN");
            length
        };
        let written = side_length(leader.clone()).await;
        assert!(
            written > 100,
            "the source was written to during the copy: {written}"
        );
        wait_until("the side writes to reach the replica", || async {
            side_length(follower.clone()).await == written
        })
        .await;
    })
    .await;
}

/// Which writes the writer sent when: before the demotion returned, or after.
const BEFORE_DEMOTE: u8 = 0;
const AFTER_DEMOTE: u8 = 1;

#[derive(Debug)]
struct Acknowledged {
    /// 0: the old leader, 1: the new one.
    server: usize,
    id: String,
    sent_in: u8,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_moves_under_write_load_without_losing_an_acknowledged_entry() {
    let Some(fixture) = Fixture::new(23_200) else {
        return;
    };
    bounded(async {
        let n1 = fixture.actuator("n1", 30_000);
        n1.start(&fixture.ctx("n1", "t1"), LEADER)
            .await
            .expect("start");
        let old = fixture.endpoint(&n1, "n1").await;
        load(&old, "events", 100, 100).await;
        let n2 = fixture.actuator("n2", 30_000);
        let from = source("n1", &old);
        n2.replicate(&fixture.ctx("n2", "t2"), REPLICA, &from, 0, 50.0)
            .await
            .expect("replicate");
        let new = fixture.endpoint(&n2, "n2").await;

        // The writer offers every entry to both servers: whichever takes it acknowledged it.
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(BEFORE_DEMOTE));
        let writer = {
            let (stop, phase) = (Arc::clone(&stop), Arc::clone(&phase));
            let servers = [old.clone(), new.clone()];
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut connections =
                    [connection(&servers[0]).await, connection(&servers[1]).await];
                while !stop.load(Ordering::Relaxed) {
                    for (server, c) in connections.iter_mut().enumerate() {
                        let sent_in = phase.load(Ordering::SeqCst);
                        let added: redis::RedisResult<String> = redis::cmd("XADD")
                            .arg("events")
                            .arg("*")
                            .arg("p")
                            .arg("during the move")
                            .query_async(c)
                            .await;
                        if let Ok(id) = added {
                            acknowledged.push(Acknowledged {
                                server,
                                id,
                                sent_in,
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                acknowledged
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let handoff = n1
            .demote(&fixture.ctx("n1", "t3"), LEADER, REPLICA)
            .await
            .expect("demote")
            .expect("a handoff");
        phase.store(AFTER_DEMOTE, Ordering::SeqCst);
        let refused = try_write(&old).await;
        assert!(
            refused.is_err(),
            "the demoted leader took a write: {refused:?}"
        );
        let observed = n1.observe(&fixture.replica("n1")).await;
        assert_eq!(
            observed.health,
            Health::Starting,
            "fenced, awaiting its leader"
        );

        n2.promote(&fixture.ctx("n2", "t4"), REPLICA, LEADER, Some(&handoff))
            .await
            .expect("promote");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let acknowledged = writer.await.expect("writer");

        let by = |server: usize| acknowledged.iter().filter(move |a| a.server == server);
        assert!(
            by(0).count() > 0,
            "the old leader took writes before the move"
        );
        assert!(by(1).count() > 0, "the new leader took writes after it");
        let late: Vec<_> = by(0).filter(|a| a.sent_in != BEFORE_DEMOTE).collect();
        assert!(
            late.is_empty(),
            "the old leader took writes after its demotion: {late:?}"
        );
        let early: Vec<_> = by(1).filter(|a| a.sent_in == BEFORE_DEMOTE).collect();
        assert!(
            early.is_empty(),
            "two leaders took writes at once: {early:?}"
        );
        let present = ids(&new).await;
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|a| !present.contains(&a.id))
            .collect();
        assert!(lost.is_empty(), "acknowledged entries lost: {lost:?}");
        let observed = n2.observe(&fixture.replica("n2")).await;
        assert_eq!(observed.health, Health::Serving);

        // The old leader follows the new one and catches up.
        n1.follow(&fixture.replica("n1"), REPLICA, &source("n2", &new))
            .await
            .expect("follow");
        load(&new, "events", 10, 100).await;
        wait_until("the old leader to catch up", || async {
            xlen(&old).await == xlen(&new).await && last_id(&old).await == last_id(&new).await
        })
        .await;
        wait_until("the old leader to serve as a replica", || async {
            n1.observe(&fixture.replica("n1")).await.health == Health::Serving
        })
        .await;
        assert!(try_write(&old).await.is_err(), "a replica takes no writes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_short_of_the_handoff_is_refused() {
    let Some(fixture) = Fixture::new(23_300) else {
        return;
    };
    bounded(async {
        let n1 = fixture.actuator("n1", 30_000);
        n1.start(&fixture.ctx("n1", "t1"), LEADER)
            .await
            .expect("start");
        let leader = fixture.endpoint(&n1, "n1").await;
        load(&leader, "events", 10, 100).await;
        fixture
            .actuator("n2", 30_000)
            .replicate(
                &fixture.ctx("n2", "t2"),
                REPLICA,
                &source("n1", &leader),
                0,
                50.0,
            )
            .await
            .expect("replicate");
        // Waiting for a handoff takes the whole catch-up timeout: a short one for refusals.
        let n2 = fixture.actuator("n2", 1_000);
        let follower = fixture.endpoint(&n2, "n2").await;
        let replid = info_field(&leader, "replication", "master_replid")
            .await
            .expect("replid");
        let offset: u64 = info_field(&leader, "replication", "master_repl_offset")
            .await
            .and_then(|o| o.parse().ok())
            .expect("offset");
        let last = last_id(&leader).await.expect("entries");
        let tip = |length: u64| StreamTip {
            length,
            last_id: Some(last.clone()),
        };
        let handoff = |offset: u64, length: u64| {
            let streams = [(StreamKey(b"events".to_vec()), tip(length))].into();
            Handoff {
                replid: replid.clone(),
                offset,
                streams,
            }
            .encode()
            .expect("json")
        };

        let beyond = handoff(offset + 1_000_000, 10);
        let error = n2
            .promote(&fixture.ctx("n2", "t3"), REPLICA, LEADER, Some(&beyond))
            .await
            .expect_err("short of the offset");
        let message = error.to_string();
        assert!(message.contains("refusing to promote"), "{message}");
        assert!(
            message.contains(&format!("{replid}:{}", offset + 1_000_000)),
            "{message}"
        );

        let wrong_stream = handoff(offset, 11);
        let error = n2
            .promote(
                &fixture.ctx("n2", "t4"),
                REPLICA,
                LEADER,
                Some(&wrong_stream),
            )
            .await
            .expect_err("the stream differs");
        let message = error.to_string();
        assert!(message.contains("refusing to promote"), "{message}");
        assert!(message.contains("stream `events`: length 10"), "{message}");
        assert!(message.contains("length 11"), "{message}");

        let garbage = n2
            .promote(&fixture.ctx("n2", "t5"), REPLICA, LEADER, Some("offset 12"))
            .await
            .expect_err("not a handoff");
        assert!(
            garbage.to_string().contains("handoff `offset 12`"),
            "{garbage}"
        );

        // The leader is alive and takes writes: it did not die, and a promotion without a
        // handoff would make two leaders.
        let two_leaders = n2
            .promote(&fixture.ctx("n2", "t6"), REPLICA, LEADER, None)
            .await
            .expect_err("its master is alive");
        assert!(
            two_leaders.to_string().contains("alive and takes writes"),
            "{two_leaders}"
        );
        let misnamed = n2
            .promote(
                &fixture.ctx("n2", "t7"),
                REPLICA,
                "Primary",
                Some(&wrong_stream),
            )
            .await
            .expect_err("not the configured leader state");
        assert!(misnamed.to_string().contains("leader_state"), "{misnamed}");

        // Still a replica of the leader, taking no writes.
        let role = info_field(&follower, "replication", "role").await;
        assert_eq!(role.as_deref(), Some("slave"));
        assert!(try_write(&follower).await.is_err());
        assert_eq!(
            n2.observe(&fixture.replica("n2")).await.health,
            Health::Serving
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_by_an_agent_crash_completes_when_run_again() {
    let Some(fixture) = Fixture::new(23_400) else {
        return;
    };
    bounded(async {
        let n1 = fixture.actuator("n1", 30_000);
        n1.start(&fixture.ctx("n1", "t1"), LEADER)
            .await
            .expect("start");
        let leader = fixture.endpoint(&n1, "n1").await;
        load(&leader, "events", 10_000, 1_000).await;
        let last = last_id(&leader).await;
        let from = source("n1", &leader);
        let ctx = fixture.ctx("n2", "t2");
        {
            let n2 = fixture.actuator("n2", 30_000);
            let copying = n2.replicate(&ctx, REPLICA, &from, 10_000_000, 2.0);
            let cut = tokio::time::timeout(Duration::from_millis(2_000), copying).await;
            // kill -9 of the agent: the relay lives in the agent's process and dies with it
            // (dropping the future aborts its tasks and closes its sockets, as the kernel
            // would); redis-server, mid-sync, runs on.
            assert!(cut.is_err(), "still copying at the crash");
        }
        let relayed = ctx.progress.bytes_done();
        assert!(relayed > 0, "the copy was under way");
        assert!(relayed < 10_000_000, "and not done: {relayed}");
        assert_eq!(servers_on(fixture.port("n2")), 1);

        // A new agent runs the same transition again.
        let n2 = fixture.actuator("n2", 30_000);
        let ctx = fixture.ctx("n2", "t2");
        n2.replicate(&ctx, REPLICA, &from, 10_000_000, 50.0)
            .await
            .expect("the copy completes");
        let follower = fixture.endpoint(&n2, "n2").await;
        assert_eq!(xlen(&follower).await, 10_000);
        assert_eq!(last_id(&follower).await, last);
        assert_eq!(xlen(&leader).await, 10_000, "the source is intact");
        assert_eq!(last_id(&leader).await, last);
        assert_eq!(servers_on(fixture.port("n1")), 1);
        assert_eq!(servers_on(fixture.port("n2")), 1, "one server per replica");
        assert!(
            ctx.progress.bytes_done() >= 10_000_000,
            "the repeat copied it all"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_twice_converges_on_one_server() {
    let Some(fixture) = Fixture::new(23_500) else {
        return;
    };
    bounded(async {
        let n1 = fixture.actuator("n1", 30_000);
        let n2 = fixture.actuator("n2", 30_000);
        for _ in 0..2 {
            n1.start(&fixture.ctx("n1", "t1"), LEADER)
                .await
                .expect("start leader");
            n2.start(&fixture.ctx("n2", "t2"), REPLICA)
                .await
                .expect("start replica");
        }
        let (p1, p2) = (fixture.port("n1"), fixture.port("n2"));
        assert_eq!((servers_on(p1), servers_on(p2)), (1, 1));
        let (e1, e2) = (
            fixture.endpoint(&n1, "n1").await,
            fixture.endpoint(&n2, "n2").await,
        );
        load(&e1, "events", 50, 100).await;
        assert!(try_write(&e2).await.is_err(), "a new non-leader is fenced");
        assert_eq!(
            n2.observe(&fixture.replica("n2")).await.health,
            Health::Starting
        );

        for _ in 0..2 {
            n2.replicate(
                &fixture.ctx("n2", "t3"),
                REPLICA,
                &source("n1", &e1),
                0,
                50.0,
            )
            .await
            .expect("replicate");
        }
        assert_eq!(xlen(&e2).await, 50);

        let first = n1
            .demote(&fixture.ctx("n1", "t4"), LEADER, REPLICA)
            .await
            .expect("demote");
        let again = n1
            .demote(&fixture.ctx("n1", "t4"), LEADER, REPLICA)
            .await
            .expect("again");
        assert!(first.is_some());
        assert_eq!(first, again, "a repeat returns the same handoff");
        assert!(try_write(&e1).await.is_err());
        for _ in 0..2 {
            n2.promote(&fixture.ctx("n2", "t5"), REPLICA, LEADER, first.as_deref())
                .await
                .expect("promote");
        }
        try_write(&e2).await.expect("the new leader takes writes");
        for _ in 0..2 {
            n1.follow(&fixture.replica("n1"), REPLICA, &source("n2", &e2))
                .await
                .expect("follow");
        }
        wait_until("the old leader to follow", || async {
            xlen(&e1).await == xlen(&e2).await
        })
        .await;
        assert_eq!((servers_on(p1), servers_on(p2)), (1, 1));

        // An agent restart adopts both servers: same processes.
        let pid = |node: &str| std::fs::read_to_string(fixture.replica_dir(node).join("redis.pid"));
        let before = (pid("n1").expect("pid"), pid("n2").expect("pid"));
        let (r1, r2) = (
            fixture.actuator("n1", 30_000),
            fixture.actuator("n2", 30_000),
        );
        r1.ensure_running(&fixture.replica("n1"), REPLICA)
            .await
            .expect("adopt n1");
        r2.ensure_running(&fixture.replica("n2"), LEADER)
            .await
            .expect("adopt n2");
        assert_eq!((pid("n1").expect("pid"), pid("n2").expect("pid")), before);

        // Servers killed with the agent come back in their roles, data kept (AOF).
        let written = xlen(&e2).await;
        for node in ["n1", "n2"] {
            let pid: i32 = pid(node).expect("pid").trim().parse().expect("pid");
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .expect("kill");
        }
        wait_until("the servers to die", || async {
            servers_on(p1) + servers_on(p2) == 0
        })
        .await;
        r2.ensure_running(&fixture.replica("n2"), LEADER)
            .await
            .expect("restart n2");
        r1.ensure_running(&fixture.replica("n1"), REPLICA)
            .await
            .expect("restart n1");
        assert_eq!(xlen(&e2).await, written, "the leader's entries survived");
        try_write(&e2).await.expect("still the leader");
        assert!(try_write(&e1).await.is_err(), "still fenced");
        wait_until("the replica to follow again", || async {
            xlen(&e1).await == xlen(&e2).await
        })
        .await;

        for _ in 0..2 {
            r1.stop(&fixture.ctx("n1", "t6"), REPLICA)
                .await
                .expect("stop");
        }
        assert_eq!(servers_on(p1), 0);
        assert!(
            !fixture.replica_dir("n1").exists(),
            "the replica's data is gone"
        );
        assert_eq!(
            r1.observe(&fixture.replica("n1")).await.health,
            Health::Failing
        );
        // A replica whose data is gone is not recreated empty, in any state: the
        // controller repairs it with a copy at a booked rate.
        for state in [LEADER, REPLICA] {
            let error = r1
                .ensure_running(&fixture.replica("n1"), state)
                .await
                .expect_err("no data");
            assert!(
                error.to_string().contains("not recreating it empty"),
                "{error}"
            );
        }
        let error = r1
            .follow(&fixture.replica("n1"), REPLICA, &source("n2", &e2))
            .await
            .expect_err("nothing to follow with");
        assert!(
            error.to_string().contains("no server was ever created"),
            "{error}"
        );
        assert_eq!(servers_on(p1), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_as_the_configured_user() {
    let Some(fixture) = Fixture::new(23_600) else {
        return;
    };
    let Ok(user) = meridian_agent::products::support::RunAs::lookup("nobody") else {
        eprintln!("SKIPPED: no user `nobody` on this machine");
        return;
    };
    bounded(async {
        // The user must reach its replica directory through the agent's directories.
        fixture.open_to_everyone();
        let mut config = fixture.config("n1", 30_000);
        config.run_as = Some("nobody".into());
        let n1 = meridian_agent::products::redis::RedisActuator::new(
            "stream",
            config,
            fixture.replicas_root("n1"),
        )
        .expect("valid config");
        n1.start(&fixture.ctx("n1", "t1"), LEADER)
            .await
            .expect("start");
        let endpoint = fixture.endpoint(&n1, "n1").await;
        let pid =
            std::fs::read_to_string(fixture.replica_dir("n1").join("redis.pid")).expect("pid file");
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
        let uid = user.uid.as_raw().to_string();
        assert!(
            uid_line.split_whitespace().skip(1).all(|id| id == uid),
            "{uid_line}"
        );
        try_write(&endpoint).await.expect("the leader takes writes");
        // The fence is saved by the server itself (CONFIG REWRITE), as that user.
        n1.demote(&fixture.ctx("n1", "t2"), LEADER, REPLICA)
            .await
            .expect("demote");
        let config =
            std::fs::read_to_string(fixture.replica_dir("n1").join("redis.conf")).expect("config");
        assert!(config.contains("-@write"), "fence saved: {config}");
        let port = fixture.port("n1");
        n1.stop(&fixture.ctx("n1", "t3"), REPLICA)
            .await
            .expect("stop");
        assert_eq!(servers_on(port), 0);
    })
    .await;
}

#[test]
fn the_agents_yaml_configures_a_redis_product() {
    let yaml = "node: n1\ncontrollers: [\"http://127.0.0.1:1\"]\ntoken: t\nstate_dir: /tmp/x\n\
                products:\n  stream:\n    redis:\n      ports: {first: 47700, last: 47709}\n      \
                relay_ports: {first: 47710, last: 47719}\n      settings: {maxmemory: 1gb}\n";
    let config = meridian_agent::AgentConfig::from_yaml_str(yaml, std::path::Path::new("a.yaml"))
        .expect("valid");
    let actuators = meridian_agent::actuators(&config).expect("actuators");
    assert!(actuators.contains_key("stream"));
    let reserved = yaml.replace("maxmemory: 1gb", "replicaof: 10.0.0.1 6379");
    let error =
        meridian_agent::AgentConfig::from_yaml_str(&reserved, std::path::Path::new("a.yaml"))
            .expect_err("reserved");
    assert!(
        error.to_string().contains("redis.settings.replicaof"),
        "{error}"
    );
}
