//! The Redis actuator against real redis-server processes on 127.0.0.1: a copy through the
//! relay at the booked rate, a leader moved under write load with every acknowledged entry
//! checked, a promotion that must refuse, and a copy interrupted by an agent crash.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use meridian_agent::products::redis::{RedisActuator, RedisConfig};
use meridian_agent::products::support::PortRange;
use meridian_agent::{Actuator, Progress, TransitionContext};
use meridian_wire::{Health, Source, TransitionId};
use sha2::{Digest, Sha256};

struct Fixture {
    dir: tempfile::TempDir,
    first_port: u16,
}

/// Shuts every server of the fixture down, pass or fail.
impl Drop for Fixture {
    fn drop(&mut self) {
        for node in ["n1", "n2"] {
            let pid = std::fs::read_to_string(self.replica_dir(node).join("redis.pid"));
            if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                let pid = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

impl Fixture {
    fn new(first_port: u16) -> Option<Fixture> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        Some(Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            first_port,
        })
    }

    fn actuator(&self, node: &str, catch_up_timeout_ms: u64) -> RedisActuator {
        let index = node[1..].parse::<u16>().expect("n<digit>");
        let first = self.first_port + 20 * index;
        let config = RedisConfig {
            server: PathBuf::from("redis-server"),
            run_as: None,
            ports: PortRange {
                first,
                last: first + 9,
            },
            relay_ports: PortRange {
                first: first + 10,
                last: first + 19,
            },
            leader_state: "Leader".into(),
            catch_up_timeout_ms,
            start_timeout_ms: 10_000,
            settings: Default::default(),
        };
        RedisActuator::new("stream", config, self.dir.path().join(node)).expect("valid config")
    }

    fn replica_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("events/0")
    }

    fn ctx(&self, node: &str, id: &str) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch: 1,
            replica: replica("events", 0),
            product: "stream".into(),
            replica_dir: self.replica_dir(node),
            progress: Progress::default(),
        }
    }

    async fn endpoint(&self, actuator: &RedisActuator, node: &str) -> String {
        let observed = actuator
            .observe(&self.ctx(node, "x").replica_context())
            .await;
        observed.endpoint.expect("an endpoint")
    }
}

async fn connection(endpoint: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{endpoint}/"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn source(node: &str, endpoint: &str) -> Source {
    Source {
        node: node.into(),
        address: None,
        endpoint: Some(endpoint.into()),
    }
}

/// A leader on n1 with `entries` stream entries of ~1 KB.
async fn leader_with_entries(fixture: &Fixture, entries: usize) -> (RedisActuator, String) {
    let n1 = fixture.actuator("n1", 30_000);
    n1.start(&fixture.ctx("n1", "t1"), "Leader")
        .await
        .expect("start the leader");
    let endpoint = fixture.endpoint(&n1, "n1").await;
    let mut c = connection(&endpoint).await;
    // Incompressible payloads (hashes): the full sync's RDB is LZF-compressed, and a copy
    // must move as many bytes as it claims.
    let mut pipe = redis::pipe();
    for entry in 0..entries {
        let payload: String = (0..16)
            .map(|k| format!("{:x}", Sha256::digest(format!("{entry}/{k}"))))
            .collect();
        pipe.cmd("XADD")
            .arg("events")
            .arg("*")
            .arg("p")
            .arg(payload)
            .ignore();
    }
    let () = pipe.query_async(&mut c).await.expect("load");
    (n1, endpoint)
}

async fn xlen(endpoint: &str) -> u64 {
    let mut c = connection(endpoint).await;
    redis::cmd("XLEN")
        .arg("events")
        .query_async(&mut c)
        .await
        .expect("XLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_through_the_relay_holds_the_booked_rate() {
    let Some(fixture) = Fixture::new(45_000) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_entries(&fixture, 25_000).await;
        let n2 = fixture.actuator("n2", 30_000);
        let ctx = fixture.ctx("n2", "t2");
        let booked = 6.0;
        let from = source("n1", &leader);
        let copying = n2.replicate(&ctx, "Replica", &from, 25_000_000, booked);
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
        let moving: Vec<_> = samples.iter().filter(|(_, b)| *b > 500_000).collect();
        let (first, last) = (
            moving.first().expect("samples"),
            moving.last().expect("samples"),
        );
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        assert!(seconds >= 2.0, "long enough to measure: {seconds:.1} s");
        let rate = (last.1 - first.1) as f64 / seconds / 1e6;
        eprintln!("redis full sync through the relay: {rate:.2} MB/s against {booked} MB/s booked");
        assert!(
            (rate - booked).abs() <= 0.1 * booked,
            "{rate:.2} MB/s against {booked}"
        );
        let follower = fixture.endpoint(&n2, "n2").await;
        assert_eq!(xlen(&follower).await, 25_000);
        let observed = n2.observe(&ctx.replica_context()).await;
        assert_eq!(
            observed.health,
            Health::Serving,
            "linked to the source directly"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_moves_under_write_load_without_losing_an_acknowledged_entry() {
    let Some(fixture) = Fixture::new(45_100) else {
        return;
    };
    bounded(async {
        let (n1, old) = leader_with_entries(&fixture, 100).await;
        let n2 = fixture.actuator("n2", 30_000);
        n2.replicate(
            &fixture.ctx("n2", "t2"),
            "Replica",
            &source("n1", &old),
            0,
            50.0,
        )
        .await
        .expect("replicate");
        let new = fixture.endpoint(&n2, "n2").await;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, old, new) = (Arc::clone(&stop), old.clone(), new.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let (mut a, mut b) = (connection(&old).await, connection(&new).await);
                while !stop.load(Ordering::Relaxed) {
                    for c in [&mut a, &mut b] {
                        let added: redis::RedisResult<String> = redis::cmd("XADD")
                            .arg("events")
                            .arg("*")
                            .arg("p")
                            .arg("during the move")
                            .query_async(c)
                            .await;
                        if let Ok(id) = added {
                            acknowledged.push(id);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                acknowledged
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let handoff = n1
            .demote(&fixture.ctx("n1", "t3"), "Leader", "Replica")
            .await
            .expect("demote")
            .expect("a handoff");
        let mut c = connection(&old).await;
        let refused: redis::RedisResult<String> = redis::cmd("XADD")
            .arg("events")
            .arg("*")
            .arg("p")
            .arg("late")
            .query_async(&mut c)
            .await;
        assert!(refused.is_err(), "the demoted leader refuses writes");
        n2.promote(
            &fixture.ctx("n2", "t4"),
            "Replica",
            "Leader",
            Some(&handoff),
        )
        .await
        .expect("promote");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let acknowledged = writer.await.expect("writer");
        assert!(!acknowledged.is_empty());
        let mut c = connection(&new).await;
        let present: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
            .arg("events")
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .expect("XRANGE");
        let present: std::collections::BTreeSet<String> =
            present.into_iter().map(|(id, _)| id).collect();
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|id| !present.contains(*id))
            .collect();
        assert!(lost.is_empty(), "acknowledged entries lost: {lost:?}");

        // The old leader follows the new one and catches up.
        n1.follow(
            &fixture.ctx("n1", "f").replica_context(),
            "Replica",
            &source("n2", &new),
        )
        .await
        .expect("follow");
        let expected = xlen(&new).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while xlen(&old).await != expected {
            assert!(Instant::now() < deadline, "the old leader did not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_short_of_the_handoff_is_refused() {
    let Some(fixture) = Fixture::new(45_200) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_entries(&fixture, 10).await;
        fixture
            .actuator("n2", 30_000)
            .replicate(
                &fixture.ctx("n2", "t2"),
                "Replica",
                &source("n1", &leader),
                0,
                50.0,
            )
            .await
            .expect("replicate");
        // Catch-up waits its full timeout: a short one for this refusal.
        let n2 = fixture.actuator("n2", 1_000);
        let beyond = r#"{"replid":"0000","offset":999999999,"streams":{}}"#;
        let error = n2
            .promote(&fixture.ctx("n2", "t3"), "Replica", "Leader", Some(beyond))
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("refusing to promote"), "{error}");
        let follower = fixture.endpoint(&n2, "n2").await;
        let mut c = connection(&follower).await;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await.expect("ROLE");
        assert!(
            format!("{:?}", role[0]).contains("slave"),
            "still a replica: {role:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_by_an_agent_crash_completes_when_run_again() {
    let Some(fixture) = Fixture::new(45_300) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_entries(&fixture, 10_000).await;
        let ctx = fixture.ctx("n2", "t2");
        {
            let n2 = fixture.actuator("n2", 30_000);
            let from = source("n1", &leader);
            let mut copying = Box::pin(n2.replicate(&ctx, "Replica", &from, 10_000_000, 2.0));
            let cut = tokio::time::timeout(Duration::from_millis(1_500), copying.as_mut()).await;
            assert!(cut.is_err(), "still copying at the crash");
            // kill -9 of the agent: the relay lives in the agent's process and dies with it
            // (dropping the future does exactly that); redis-server, mid-sync, runs on.
            drop(copying);
        }
        let n2 = fixture.actuator("n2", 30_000);
        n2.replicate(
            &fixture.ctx("n2", "t2"),
            "Replica",
            &source("n1", &leader),
            10_000_000,
            50.0,
        )
        .await
        .expect("the copy completes");
        let follower = fixture.endpoint(&n2, "n2").await;
        assert_eq!(xlen(&follower).await, 10_000);
        assert_eq!(xlen(&leader).await, 10_000, "the source is intact");
    })
    .await;
}
