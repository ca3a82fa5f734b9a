//! The PostgreSQL actuator against real PostgreSQL 15 servers on 127.0.0.1: a copy at the
//! booked rate, a leader moved under write load with every acknowledged write checked, a
//! promotion that must refuse, and a copy interrupted by an agent crash.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use meridian_agent::products::postgres::server;
use meridian_agent::products::postgres::{PostgresActuator, PostgresConfig};
use meridian_agent::products::support::PortRange;
use meridian_agent::{Actuator, Progress, TransitionContext};
use meridian_wire::{Action, Health, Source, TransitionId, TransitionStatus};

const BIN: &str = "/usr/lib/postgresql/15/bin";

struct Fixture {
    dir: tempfile::TempDir,
    first_port: u16,
}

/// Stops every server under the fixture, pass or fail.
impl Drop for Fixture {
    fn drop(&mut self) {
        for node in ["n1", "n2", "n3"] {
            let data = self.replica_dir(node).join("pgdata");
            if data.join("postmaster.pid").exists() {
                let mut command = std::process::Command::new(format!("{BIN}/pg_ctl"));
                command.args(["stop", "-m", "immediate", "-D"]).arg(&data);
                if nix::unistd::geteuid().is_root() {
                    use std::os::unix::process::CommandExt;
                    if let Ok(Some(user)) = nix::unistd::User::from_name("postgres") {
                        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
                    }
                }
                let _ = command.output();
            }
        }
    }
}

impl Fixture {
    /// None when PostgreSQL is not installed (the test says so and passes).
    fn new(first_port: u16) -> Option<Fixture> {
        if !Path::new(BIN).join("initdb").is_file() {
            eprintln!("skipped: PostgreSQL 15 is not installed ({BIN}/initdb)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        Some(Fixture { dir, first_port })
    }

    fn actuator(&self, node: &str) -> PostgresActuator {
        self.actuator_with(node, 30_000)
    }

    fn actuator_with(&self, node: &str, catch_up_timeout_ms: u64) -> PostgresActuator {
        let index = node[1..].parse::<u16>().expect("n<digit>");
        let first = self.first_port + 10 * index;
        let config = PostgresConfig {
            bin_dir: PathBuf::from(BIN),
            run_as: nix::unistd::geteuid()
                .is_root()
                .then(|| "postgres".to_string()),
            ports: PortRange {
                first,
                last: first + 9,
            },
            leader_state: "Leader".into(),
            database: "postgres".into(),
            verify_tables: vec!["orders".into()],
            catch_up_timeout_ms,
            start_timeout_ms: 30_000,
            settings: Default::default(),
        };
        PostgresActuator::new("db", config, self.dir.path().join(node)).expect("valid config")
    }

    fn replica_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("orders/0")
    }

    fn ctx(&self, node: &str, id: &str, epoch: i64) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch,
            replica: replica("orders", 0),
            product: "db".into(),
            replica_dir: self.replica_dir(node),
            progress: Progress::default(),
        }
    }

    async fn endpoint(&self, actuator: &PostgresActuator, node: &str) -> String {
        let observed = actuator
            .observe(&self.ctx(node, "x", 1).replica_context())
            .await;
        observed.endpoint.expect("an endpoint")
    }
}

async fn client(endpoint: &str) -> tokio_postgres::Client {
    server::connect(endpoint, "postgres", Duration::from_secs(5))
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

/// A leader on n1 with `rows` rows of ~200 bytes in `orders`.
async fn leader_with_rows(fixture: &Fixture, rows: i64) -> (PostgresActuator, String) {
    let n1 = fixture.actuator("n1");
    n1.start(&fixture.ctx("n1", "t1", 1), "Leader")
        .await
        .expect("start the leader");
    let endpoint = fixture.endpoint(&n1, "n1").await;
    client(&endpoint)
        .await
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, body text NOT NULL);
             INSERT INTO orders SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("load");
    (n1, endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_holds_the_booked_rate_and_catches_up() {
    let Some(fixture) = Fixture::new(22_000) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_rows(&fixture, 100_000).await;
        let n2 = fixture.actuator("n2");
        let ctx = fixture.ctx("n2", "t2", 1);
        let booked = 8.0;
        let from = source("n1", &leader);
        let copying = n2.replicate(&ctx, "Follower", &from, 0, booked);
        tokio::pin!(copying);
        let mut samples: Vec<(Instant, u64)> = Vec::new();
        let outcome = loop {
            tokio::select! {
                outcome = &mut copying => break outcome,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    samples.push((Instant::now(), ctx.progress.bytes_done()));
                }
            }
        };
        outcome.expect("replicate");
        // The rate over the copy's middle (pg_basebackup's first and last moments are WAL).
        let moving: Vec<_> = samples.iter().filter(|(_, b)| *b > 1_000_000).collect();
        let (first, last) = (
            moving.first().expect("samples"),
            moving.last().expect("samples"),
        );
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        assert!(seconds >= 2.0, "long enough to measure: {seconds:.1} s");
        let rate = (last.1 - first.1) as f64 / seconds / 1e6;
        eprintln!("pg_basebackup: {rate:.2} MB/s against {booked} MB/s booked");
        assert!(
            (rate - booked).abs() <= 0.1 * booked,
            "{rate:.2} MB/s against {booked}"
        );

        let follower = fixture.endpoint(&n2, "n2").await;
        let expected = server::fingerprint(&client(&leader).await, "orders")
            .await
            .expect("fp");
        let found = server::fingerprint(&client(&follower).await, "orders")
            .await
            .expect("fp");
        assert_eq!(found, expected);
        let observed = n2.observe(&ctx.replica_context()).await;
        assert_eq!(observed.health, Health::Serving, "streaming");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_moves_under_write_load_without_losing_an_acknowledged_write() {
    let Some(fixture) = Fixture::new(22_100) else {
        return;
    };
    bounded(async {
        let (n1, old) = leader_with_rows(&fixture, 1_000).await;
        let n2 = fixture.actuator("n2");
        n2.replicate(
            &fixture.ctx("n2", "t2", 1),
            "Follower",
            &source("n1", &old),
            0,
            50.0,
        )
        .await
        .expect("replicate");
        let new = fixture.endpoint(&n2, "n2").await;

        // A client writes all along, to whichever server takes its writes.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, old, new) = (Arc::clone(&stop), old.clone(), new.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut id = 1_000_000i64;
                while !stop.load(Ordering::Relaxed) {
                    for endpoint in [&old, &new] {
                        let Ok(c) =
                            server::connect(endpoint, "postgres", Duration::from_millis(300)).await
                        else {
                            continue;
                        };
                        if c.execute("INSERT INTO orders VALUES ($1, 'during the move')", &[&id])
                            .await
                            .is_ok()
                        {
                            acknowledged.push((id, endpoint.clone()));
                        }
                        id += 1;
                    }
                }
                acknowledged
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let handoff = n1
            .demote(&fixture.ctx("n1", "t3", 2), "Leader", "Follower")
            .await
            .expect("demote")
            .expect("a handoff");
        // The old leader takes no writes once demote returned.
        let refused = client(&old)
            .await
            .execute("INSERT INTO orders VALUES (-1, 'after the demotion')", &[])
            .await;
        let error = refused.expect_err("the old leader is a read-only standby");
        assert!(
            error.to_string().contains("read-only") || format!("{error:?}").contains("read-only"),
            "{error:?}"
        );
        n2.promote(
            &fixture.ctx("n2", "t4", 2),
            "Follower",
            "Leader",
            Some(&handoff),
        )
        .await
        .expect("promote");
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let acknowledged = writer.await.expect("writer");
        let on_old = acknowledged.iter().filter(|(_, e)| *e == old).count();
        let on_new = acknowledged.iter().filter(|(_, e)| *e == new).count();
        assert!(
            on_old > 0 && on_new > 0,
            "writes before ({on_old}) and after ({on_new}) the move"
        );

        let rows = client(&new)
            .await
            .query("SELECT id FROM orders WHERE id >= 1000000", &[])
            .await
            .expect("read");
        let present: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

        // The old leader follows the new one and catches up.
        n1.follow(
            &fixture.ctx("n1", "f", 2).replica_context(),
            "Follower",
            &source("n2", &new),
        )
        .await
        .expect("follow");
        let expected = server::fingerprint(&client(&new).await, "orders")
            .await
            .expect("fp");
        let deadline = Instant::now() + Duration::from_secs(30);
        while fingerprint_at(&old).await.as_deref() != Some(expected.as_str()) {
            assert!(Instant::now() < deadline, "the old leader did not catch up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

async fn fingerprint_at(endpoint: &str) -> Option<String> {
    let c = server::connect(endpoint, "postgres", Duration::from_millis(500))
        .await
        .ok()?;
    server::fingerprint(&c, "orders").await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_short_of_the_handoff_is_refused() {
    let Some(fixture) = Fixture::new(22_200) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_rows(&fixture, 100).await;
        let n2 = fixture.actuator("n2");
        n2.replicate(
            &fixture.ctx("n2", "t2", 1),
            "Follower",
            &source("n1", &leader),
            0,
            50.0,
        )
        .await
        .expect("replicate");
        let beyond = r#"{"lsn":"FF/0","tables":{}}"#;
        let config_ctx = fixture.ctx("n2", "t3", 2);
        // Catch-up waits its full timeout: a short one for these refusals.
        let short = fixture.actuator_with("n2", 1_000);
        let error = short
            .promote(&config_ctx, "Follower", "Leader", Some(beyond))
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("refusing to promote"), "{error}");
        assert!(
            error.to_string().contains("FF/0"),
            "names the handoff: {error}"
        );
        let wrong_table = format!(
            r#"{{"lsn":"0/0","tables":{{"orders":"{}"}}}}"#,
            "100:not-the-md5"
        );
        let error = short
            .promote(&config_ctx, "Follower", "Leader", Some(&wrong_table))
            .await
            .expect_err("refused");
        assert!(error.to_string().contains("table orders"), "{error}");
        let follower = fixture.endpoint(&n2, "n2").await;
        let in_recovery: bool = client(&follower)
            .await
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("query")
            .get(0);
        assert!(in_recovery, "still a standby after the refusals");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_by_an_agent_crash_is_redone_cleanly() {
    let Some(fixture) = Fixture::new(22_300) else {
        return;
    };
    bounded(async {
        let (_n1, leader) = leader_with_rows(&fixture, 60_000).await;
        let expected = server::fingerprint(&client(&leader).await, "orders")
            .await
            .expect("fp");
        let ctx = fixture.ctx("n2", "t2", 1);
        {
            // kill -9 of the agent: the future is forgotten; pg_basebackup runs on.
            let n2 = fixture.actuator("n2");
            let from = source("n1", &leader);
            let mut copying = Box::pin(n2.replicate(&ctx, "Follower", &from, 0, 4.0));
            let cut = tokio::time::timeout(Duration::from_millis(1_500), copying.as_mut()).await;
            assert!(cut.is_err(), "still copying at the crash");
            std::mem::forget(copying);
        }
        assert!(fixture.replica_dir("n2").join("pgdata.partial").exists());
        let n2 = fixture.actuator("n2");
        n2.replicate(
            &fixture.ctx("n2", "t2", 1),
            "Follower",
            &source("n1", &leader),
            0,
            50.0,
        )
        .await
        .expect("the copy is redone");
        let follower = fixture.endpoint(&n2, "n2").await;
        let found = server::fingerprint(&client(&follower).await, "orders")
            .await
            .expect("fp");
        assert_eq!(found, expected);
        let leader_rows = server::fingerprint(&client(&leader).await, "orders")
            .await
            .expect("fp");
        assert_eq!(leader_rows, expected, "the source is intact");
        // Idempotent: again, and nothing changes.
        n2.replicate(
            &fixture.ctx("n2", "t2", 1),
            "Follower",
            &source("n1", &leader),
            0,
            50.0,
        )
        .await
        .expect("a repeat");
    })
    .await;
}

/// Through the agent's loop: a promotion from a deposed controller's epoch is refused before
/// PostgreSQL sees it, and the standby stays a standby; the current epoch's promotion runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_epoch_promotion_never_reaches_the_server() {
    let Some(fixture) = Fixture::new(22_400) else {
        return;
    };
    bounded(async {
        let controller = FakeController::start(5).await;
        let state_dir = fixture.dir.path().join("agent");
        let mut config = agent_config(&state_dir, std::slice::from_ref(&controller.url));
        // The agent's replicas directory is where the fixture's actuator for n1 keeps them.
        config.replicas_dir = fixture.dir.path().join("n1");
        let mut actuators = meridian_agent::Actuators::new();
        actuators.insert(
            "db".into(),
            std::sync::Arc::new(fixture.actuator("n1")) as std::sync::Arc<dyn Actuator>,
        );
        let agent = RunningAgent::spawn_with(config, actuators);
        let orders = replica("orders", 0);
        controller.send(command("t1", 5, orders.clone(), start("Follower")));
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        let endpoint = fixture.endpoint(&fixture.actuator("n1"), "n1").await;
        let standby = |endpoint: String| async move {
            let row = client(&endpoint)
                .await
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .expect("query");
            row.get::<_, bool>(0)
        };
        assert!(standby(endpoint.clone()).await);

        let promote = Action::Promote {
            from: "Follower".into(),
            to: "Leader".into(),
            handoff: None,
        };
        controller.send(command("stale", 4, orders.clone(), promote.clone()));
        let status = controller.final_status("stale").await;
        assert_eq!(
            status,
            TransitionStatus::Refused {
                reason: "stale epoch 4 < 5".into()
            }
        );
        assert!(standby(endpoint.clone()).await, "still a standby");

        controller.send(command("current", 5, orders, promote));
        assert_eq!(
            controller.final_status("current").await,
            TransitionStatus::Done
        );
        assert!(!standby(endpoint).await, "promoted by the current epoch");
        agent.stop().await;
    })
    .await;
}
