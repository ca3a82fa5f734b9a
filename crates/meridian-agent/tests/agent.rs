//! The whole agent against a fake controller on 127.0.0.1, with real workload processes.
//! `executed.log` is the witness that nothing ran twice and nothing refused ran at all.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use std::sync::Arc;

use async_trait::async_trait;
use meridian_agent::{
    read_executed_log, Actuator, ActuatorError, Actuators, AgentConfig, ExecutedRecord,
    Observation, ReplicaContext, TransitionContext,
};
use meridian_wire::{Action, Health, LeaderHint, ReplicaKey, Source, TransitionStatus};
use tokio::sync::watch;

/// One node's agent directory. Fields drop in order: workloads die before their files go.
struct Node {
    _cleanup: Cleanup,
    dir: tempfile::TempDir,
    state_dir: PathBuf,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let state_dir = dir.path().join("state");
        Node {
            _cleanup: Cleanup(state_dir.clone()),
            dir,
            state_dir,
        }
    }

    fn config(&self, controllers: &[String]) -> AgentConfig {
        agent_config(&self.state_dir, controllers)
    }

    fn config_for(&self, controller: &FakeController) -> AgentConfig {
        self.config(std::slice::from_ref(&controller.url))
    }

    fn replica_dir(&self, replica: &ReplicaKey) -> PathBuf {
        self.state_dir
            .join("replicas")
            .join(&replica.group)
            .join(replica.partition.to_string())
    }

    fn pid(&self, replica: &ReplicaKey) -> Option<u32> {
        let file = format!("{}.pid", replica.partition);
        pid_in(
            &self
                .state_dir
                .join("run/db")
                .join(&replica.group)
                .join(file),
        )
    }

    fn launches(&self, replica: &ReplicaKey) -> usize {
        line_count(&self.replica_dir(replica).join("starts"))
    }

    fn executed(&self) -> Vec<ExecutedRecord> {
        read_executed_log(&self.state_dir).expect("executed.log reads")
    }

    fn executed_ids(&self) -> Vec<String> {
        self.executed().into_iter().map(|r| r.id.0).collect()
    }
}

/// A URL where nothing listens.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

fn promote() -> Action {
    Action::Promote {
        from: "Follower".into(),
        to: "Leader".into(),
        handoff: None,
    }
}

fn refusal(status: TransitionStatus) -> String {
    match status {
        TransitionStatus::Refused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn runs_a_start_then_a_promote_and_reports_them_done() {
    bounded(async {
        let controller = FakeController::start(3).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(node.config_for(&controller));
        let orders = replica("orders", 0);

        controller.send(command("t1", 3, orders.clone(), start("Follower")));
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        controller.send(command("t2", 3, orders.clone(), promote()));
        assert_eq!(controller.final_status("t2").await, TransitionStatus::Done);
        let state = node.replica_dir(&orders).join("state");
        wait_for("the workload in state Leader", || {
            (read_trimmed(&state).as_deref() == Some("Leader")).then_some(())
        })
        .await;

        // The replica is reported, as Leader, serving, with measured heat.
        controller.more_syncs(2).await;
        let last = controller.requests().pop().expect("a request");
        assert_eq!(last.epoch_seen, 3);
        let reported = last
            .replicas
            .iter()
            .find(|r| r.replica == orders)
            .expect("reported");
        assert_eq!(
            (reported.state.as_str(), reported.health),
            ("Leader", Health::Serving)
        );
        assert!(
            reported.heat.iter().any(|(d, _)| d == "cpu"),
            "{:?}",
            reported.heat
        );

        // Registration goes with the first sync only.
        let requests = controller.requests();
        assert!(requests[0].registration.is_some());
        assert!(requests[1..].iter().all(|r| r.registration.is_none()));

        // Resent on every sync until reported, each ran exactly once.
        assert_eq!(node.executed_ids(), ["t1", "t2"]);
        let pid = node.pid(&orders).expect("pid file");
        agent.stop().await;
        assert!(
            alive(pid),
            "stopping the agent leaves its workloads running"
        );
    })
    .await;
}

#[tokio::test]
async fn a_command_sent_again_runs_once() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(node.config_for(&controller));
        let orders = replica("orders", 1);
        let once = command("t1", 1, orders.clone(), start("Follower"));
        controller.send(once.clone());
        controller.send(once.clone()); // twice in the same response
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);

        // Acknowledged and forgotten by the controller, then sent once more (a new leader
        // replaying its plan): answered from the journal.
        let before = controller.requests().len();
        controller.send(once);
        wait_for("t1 reported again", || {
            let requests = controller.requests();
            requests[before..]
                .iter()
                .flat_map(|r| &r.transitions)
                .any(|t| t.id.0 == "t1" && t.status == TransitionStatus::Done)
                .then_some(())
        })
        .await;
        controller.more_syncs(2).await;
        assert_eq!(node.executed_ids(), ["t1"]);
        assert_eq!(node.launches(&orders), 1);
        agent.stop().await;
    })
    .await;
}

#[tokio::test]
async fn stale_epochs_are_refused_and_never_run() {
    bounded(async {
        let controller = FakeController::start(5).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(node.config_for(&controller));
        controller.send(command("t1", 5, replica("orders", 0), start("Follower")));
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);

        // A command from an older epoch, in the current leader's answer.
        controller.send(command("old", 4, replica("orders", 1), start("Follower")));
        assert_eq!(
            refusal(controller.final_status("old").await),
            "stale epoch 4 < 5"
        );

        // A deposed leader (epoch 4) still answering.
        controller.set_epoch(4);
        controller.send(command("deposed", 4, replica("orders", 2), start("Leader")));
        assert_eq!(
            refusal(controller.final_status("deposed").await),
            "stale epoch 4 < 5"
        );

        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(node.state_dir.join("agent.json")).expect("agent.json"),
        )
        .expect("json");
        assert_eq!(state["epoch_seen"], 5, "the highest epoch is on disk");
        assert_eq!(node.executed_ids(), ["t1"]);
        assert!(!node.replica_dir(&replica("orders", 1)).exists());
        assert!(!node.replica_dir(&replica("orders", 2)).exists());
        agent.stop().await;
    })
    .await;
}

#[tokio::test]
async fn illegal_commands_are_refused_with_a_reason() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(node.config_for(&controller));
        controller.send(command("absent", 1, replica("orders", 0), promote()));
        let reason = refusal(controller.final_status("absent").await);
        assert!(reason.contains("not on this node"), "{reason}");

        let mut unknown = command("unknown", 1, replica("orders", 0), start("Follower"));
        unknown.product = "kafka".into();
        controller.send(unknown);
        let reason = refusal(controller.final_status("unknown").await);
        assert!(reason.contains("unknown product `kafka`"), "{reason}");

        controller.send(command("t1", 1, replica("orders", 0), start("Follower")));
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        controller.send(command("second", 1, replica("orders", 0), start("Leader")));
        let reason = refusal(controller.final_status("second").await);
        assert!(reason.contains("already runs here as Follower"), "{reason}");
        assert_eq!(node.executed_ids(), ["t1"]);
        agent.stop().await;
    })
    .await;
}

#[tokio::test]
async fn keeps_serving_the_last_assignment_when_no_controller_answers() {
    bounded(async {
        let node = Node::new();
        let orders = replica("orders", 0);
        {
            let controller = FakeController::start(1).await;
            let agent = RunningAgent::spawn(node.config_for(&controller));
            controller.send(command("t1", 1, orders.clone(), start("Leader")));
            assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
            agent.stop().await;
        } // the controller is gone too
        let pid = node.pid(&orders).expect("pid file");
        wait_for("the launch recorded", || {
            (node.launches(&orders) == 1).then_some(())
        })
        .await;

        let agent = RunningAgent::spawn(node.config(&[dead_url().await, dead_url().await]));
        // Several sync rounds fail meanwhile (backoff is 20-100 ms here).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(alive(pid), "the workload was adopted and kept");
        assert_eq!(node.pid(&orders), Some(pid));
        assert_eq!(node.launches(&orders), 1, "not started a second time");

        // Still supervised without any controller: a crash is repaired.
        kill9(pid);
        let relaunched = wait_for("a relaunch without controllers", || {
            node.pid(&orders).filter(|p| *p != pid && alive(*p))
        })
        .await;
        let state = node.replica_dir(&orders).join("state");
        wait_for("relaunched as Leader", || {
            (read_trimmed(&state).as_deref() == Some("Leader")).then_some(())
        })
        .await;
        agent.stop().await;
        assert!(alive(relaunched));
        assert_eq!(node.executed_ids(), ["t1"]);
    })
    .await;
}

#[tokio::test]
async fn follows_a_follower_to_the_leader_past_a_dead_controller() {
    bounded(async {
        let leader = FakeController::start(2).await;
        let follower = FakeController::start(2).await;
        follower.not_leader(Some(leader.url.clone()));
        let node = Node::new();
        let controllers = [dead_url().await, follower.url.clone()];
        let agent = RunningAgent::spawn(node.config(&controllers));
        leader.send(command("t1", 2, replica("orders", 0), start("Follower")));
        assert_eq!(leader.final_status("t1").await, TransitionStatus::Done);
        assert!(
            follower.requests().is_empty(),
            "the follower never answered a sync"
        );
        agent.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_transition_interrupted_by_an_agent_restart_resumes_once() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let allow = node.dir.path().join("allow");
        let config = gated_config(&node, &controller, 30_000);
        let orders = replica("orders", 0);

        let agent = RunningAgent::spawn(config.clone());
        controller.send(command("t1", 1, orders.clone(), start("Follower")));
        wait_for("t1 running", || {
            (node.executed_ids() == ["t1"]).then_some(())
        })
        .await;
        wait_for("the launch recorded", || {
            (node.launches(&orders) == 1).then_some(())
        })
        .await;
        wait_for("t1 reported running", || {
            matches!(
                controller.status_of("t1"),
                Some(TransitionStatus::Running { .. })
            )
            .then_some(())
        })
        .await;
        agent.stop().await; // mid-transition: the start waits for a health check

        std::fs::write(&allow, b"").expect("allow health");
        let agent = RunningAgent::spawn(config);
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        let executed = node.executed();
        let resumed: Vec<bool> = executed.iter().map(|r| r.resumed).collect();
        assert_eq!(resumed, [false, true], "{executed:?}");
        assert_eq!(
            node.launches(&orders),
            1,
            "the resumed start adopted the workload"
        );
        agent.stop().await;
    })
    .await;
}

async fn start_error(node: &Node) -> String {
    let run = meridian_agent::run(node.config(&[dead_url().await]), std::future::pending());
    bounded(run)
        .await
        .expect_err("refuses to start")
        .to_string()
}

#[tokio::test]
async fn corrupt_state_files_stop_the_agent_with_an_error_naming_them() {
    let node = Node::new();
    std::fs::create_dir_all(&node.state_dir).expect("mkdir");
    let state = node.state_dir.join("agent.json");
    std::fs::write(&state, b"{\"format\":1,\"epoch_seen\":").expect("write");
    let error = start_error(&node).await;
    assert!(
        error.contains("agent.json") && error.contains("corrupt"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&state).expect("kept"),
        b"{\"format\":1,\"epoch_seen\":",
        "left as found"
    );

    std::fs::remove_file(&state).expect("remove");
    std::fs::write(node.state_dir.join("journal.json"), b"[]").expect("write");
    let error = start_error(&node).await;
    assert!(
        error.contains("journal.json") && error.contains("corrupt"),
        "{error}"
    );
    assert!(!Path::new(&node.state_dir.join("executed.log")).exists());
}

/// The agent's configuration with a health check that passes once `allow` exists.
fn gated_config(node: &Node, controller: &FakeController, start_timeout_ms: u64) -> AgentConfig {
    let allow = node.dir.path().join("allow");
    let mut config = node.config_for(controller);
    let Some(meridian_agent::ProductConfig::Process(product)) = config.products.get_mut("db")
    else {
        panic!("db is a generic process");
    };
    product.health = Some(meridian_agent::config::HookConfig {
        command: vec!["test".into(), "-f".into(), allow.display().to_string()],
        timeout_ms: 1_000,
    });
    product.start_timeout_ms = start_timeout_ms;
    config
}

#[tokio::test]
async fn a_queued_command_is_fenced_by_an_epoch_that_arrives_while_it_waits() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(gated_config(&node, &controller, 30_000));
        let orders = replica("orders", 0);
        controller.send(command("t1", 1, orders.clone(), start("Follower")));
        controller.send(command("t2", 1, orders.clone(), promote()));
        wait_for("t1 running", || {
            (node.executed_ids() == ["t1"]).then_some(())
        })
        .await;

        // A new leader takes over while t2 waits behind t1.
        controller.set_epoch(2);
        controller.more_syncs(2).await;
        std::fs::write(node.dir.path().join("allow"), b"").expect("allow health");
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        assert_eq!(
            refusal(controller.final_status("t2").await),
            "stale epoch 1 < 2"
        );
        assert_eq!(
            node.executed_ids(),
            ["t1"],
            "the fenced promotion never ran"
        );
        agent.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_failed_start_is_rolled_back() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let agent = RunningAgent::spawn(gated_config(&node, &controller, 300));
        let orders = replica("orders", 0);
        controller.send(command("t1", 1, orders.clone(), start("Follower")));
        let TransitionStatus::Failed { error } = controller.final_status("t1").await else {
            panic!("the start should fail");
        };
        assert!(
            error.contains("not healthy") && error.contains("rolled back"),
            "{error}"
        );
        assert!(
            !node.replica_dir(&orders).exists(),
            "no partial replica left"
        );
        assert_eq!(node.pid(&orders), None);
        controller.more_syncs(1).await;
        let last = controller.requests().pop().expect("a request");
        assert!(last.replicas.is_empty(), "{:?}", last.replicas);
        agent.stop().await;
    })
    .await;
}

/// A product whose copies go in two halves, the second once the test releases it: the agent
/// must report the bytes done meanwhile.
struct HalfwayCopy {
    release: watch::Receiver<bool>,
}

#[async_trait]
impl Actuator for HalfwayCopy {
    async fn start(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        _state: &str,
        _source: &Source,
        bytes: u64,
        _rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        ctx.progress.set_bytes_done(bytes / 2);
        let mut release = self.release.clone();
        release
            .wait_for(|go| *go)
            .await
            .map_err(|e| ActuatorError::Failed(e.to_string()))?;
        ctx.progress.set_bytes_done(bytes);
        Ok(())
    }

    async fn promote(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn demote(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, ActuatorError> {
        Ok(None)
    }

    async fn stop(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn observe(&self, _: &ReplicaContext) -> Observation {
        Observation {
            health: Health::Serving,
            heat: vec![("disk_gib".into(), 1.0)],
            endpoint: None,
        }
    }

    async fn ensure_running(&self, _: &ReplicaContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_copy_reports_its_bytes_while_it_runs() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let (release, released) = watch::channel(false);
        let mut actuators = Actuators::new();
        let actuator: Arc<dyn Actuator> = Arc::new(HalfwayCopy { release: released });
        actuators.insert("db".into(), actuator);
        let agent = RunningAgent::spawn_with(node.config_for(&controller), actuators);
        let orders = replica("orders", 0);
        let copy = Action::Replicate {
            state: "Follower".into(),
            source: Source {
                node: "n2".into(),
                address: Some("127.0.0.1:1".into()),
                endpoint: None,
            },
            bytes: 1_000,
            rate_mbps: 50.0,
        };
        controller.send(command("t1", 1, orders.clone(), copy));
        wait_for("half the bytes reported", || {
            let halfway = TransitionStatus::Running {
                bytes_done: 500,
                lag_bytes: None,
            };
            (controller.status_of("t1") == Some(halfway)).then_some(())
        })
        .await;
        let last = controller.requests().pop().expect("a request");
        let copying = last
            .replicas
            .iter()
            .find(|r| r.replica == orders)
            .expect("reported");
        assert_eq!(
            (copying.state.as_str(), copying.health),
            ("Follower", Health::Starting)
        );

        release.send_replace(true);
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        controller.more_syncs(1).await;
        let last = controller.requests().pop().expect("a request");
        let copied = last
            .replicas
            .iter()
            .find(|r| r.replica == orders)
            .expect("reported");
        assert_eq!(copied.health, Health::Serving);
        assert_eq!(copied.heat, vec![("disk_gib".to_string(), 1.0)]);
        agent.stop().await;
    })
    .await;
}

/// Records hand-offs and re-pointings; a copy holds its replica until released.
struct Recorder {
    follows: std::sync::Mutex<Vec<(ReplicaKey, String)>>,
    promoted_with: std::sync::Mutex<Vec<Option<String>>>,
    release: watch::Receiver<bool>,
}

#[async_trait]
impl Actuator for Recorder {
    async fn start(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn replicate(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &Source,
        _: u64,
        _: f64,
    ) -> Result<(), ActuatorError> {
        let mut release = self.release.clone();
        release
            .wait_for(|go| *go)
            .await
            .map_err(|e| ActuatorError::Failed(e.to_string()))?;
        Ok(())
    }

    async fn promote(
        &self,
        _: &TransitionContext,
        _: &str,
        _: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        let mut promoted = self.promoted_with.lock().expect("lock");
        promoted.push(handoff.map(str::to_string));
        Ok(())
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, ActuatorError> {
        Ok(Some(format!("lsn-of-{}", ctx.id)))
    }

    async fn follow(
        &self,
        replica: &ReplicaContext,
        _: &str,
        leader: &Source,
    ) -> Result<(), ActuatorError> {
        let mut follows = self.follows.lock().expect("lock");
        follows.push((replica.replica.clone(), leader.node.clone()));
        Ok(())
    }

    async fn stop(&self, _: &TransitionContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }

    async fn observe(&self, _: &ReplicaContext) -> Observation {
        Observation {
            health: Health::Serving,
            heat: Vec::new(),
            endpoint: Some("127.0.0.1:5433".into()),
        }
    }

    async fn ensure_running(&self, _: &ReplicaContext, _: &str) -> Result<(), ActuatorError> {
        Ok(())
    }
}

fn hint(replica: &ReplicaKey, node: &str) -> LeaderHint {
    LeaderHint {
        replica: replica.clone(),
        leader: Source {
            node: node.into(),
            address: None,
            endpoint: Some(format!("{node}:5432")),
        },
    }
}

#[tokio::test]
async fn demotions_report_their_handoff_and_idle_followers_follow_each_new_leader_once() {
    bounded(async {
        let controller = FakeController::start(1).await;
        let node = Node::new();
        let (release, released) = watch::channel(false);
        let recorder = Arc::new(Recorder {
            follows: Default::default(),
            promoted_with: Default::default(),
            release: released,
        });
        let mut actuators = Actuators::new();
        actuators.insert("db".into(), recorder.clone() as Arc<dyn Actuator>);
        let agent = RunningAgent::spawn_with(node.config_for(&controller), actuators);
        let (a, b) = (replica("orders", 0), replica("orders", 1));

        // a: a leader, demoted: its report carries what the actuator returned.
        controller.send(command("t1", 1, a.clone(), start("Leader")));
        assert_eq!(controller.final_status("t1").await, TransitionStatus::Done);
        let demote = Action::Demote {
            from: "Leader".into(),
            to: "Follower".into(),
        };
        controller.send(command("t2", 1, a.clone(), demote));
        assert_eq!(controller.final_status("t2").await, TransitionStatus::Done);
        let report = controller.report_of("t2").expect("reported");
        assert_eq!(report.handoff.as_deref(), Some("lsn-of-t2"));
        let last = controller.requests().pop().expect("a request");
        let reported = last.replicas.iter().find(|r| r.replica == a).expect("a");
        assert_eq!(reported.endpoint.as_deref(), Some("127.0.0.1:5433"));

        // The promotion is given the handoff by the controller; the agent passes it on.
        let promote = Action::Promote {
            from: "Follower".into(),
            to: "Leader".into(),
            handoff: Some("lsn-of-t2".into()),
        };
        controller.send(command("t3", 1, a.clone(), promote));
        assert_eq!(controller.final_status("t3").await, TransitionStatus::Done);
        assert_eq!(
            *recorder.promoted_with.lock().expect("lock"),
            vec![Some("lsn-of-t2".to_string())]
        );

        // b: copying while its leader is named: not re-pointed mid-copy.
        let copy = Action::Replicate {
            state: "Follower".into(),
            source: Source {
                node: "n2".into(),
                address: None,
                endpoint: Some("n2:5432".into()),
            },
            bytes: 10,
            rate_mbps: 10.0,
        };
        controller.send(command("t4", 1, b.clone(), copy));
        controller.set_leaders(vec![hint(&b, "n2")]);
        controller.more_syncs(3).await;
        assert!(recorder.follows.lock().expect("lock").is_empty());

        // Copy done: followed once, however many syncs repeat the hint; again on a change.
        release.send_replace(true);
        assert_eq!(controller.final_status("t4").await, TransitionStatus::Done);
        controller.more_syncs(5).await;
        assert_eq!(
            *recorder.follows.lock().expect("lock"),
            vec![(b.clone(), "n2".to_string())]
        );
        controller.set_leaders(vec![hint(&b, "n3")]);
        controller.more_syncs(5).await;
        assert_eq!(
            *recorder.follows.lock().expect("lock"),
            vec![(b.clone(), "n2".to_string()), (b.clone(), "n3".to_string())]
        );

        // A stale leader's hint is not followed.
        controller.set_epoch(0);
        controller.set_leaders(vec![hint(&b, "n9")]);
        controller.more_syncs(5).await;
        assert_eq!(recorder.follows.lock().expect("lock").len(), 2);
        agent.stop().await;
    })
    .await;
}
