//! The generic process actuator against real processes: launch, restart after a crash,
//! adoption by a new actuator instance (an agent restart), state changes, stop.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use meridian_agent::config::HookConfig;
use meridian_agent::{
    Actuator, ProcessActuator, ProcessConfig, Progress, ReplicaContext, TransitionContext,
};
use meridian_wire::{Health, TransitionId};

/// Fields drop in order: processes are killed before their pid files are deleted.
struct Fixture {
    _cleanup: Cleanup,
    _dir: tempfile::TempDir,
    run_dir: PathBuf,
    replica_dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_dir = dir.path().join("run");
        let replica_dir = dir.path().join("replicas/orders/3");
        Fixture {
            _cleanup: Cleanup(run_dir.clone()),
            run_dir,
            replica_dir,
            _dir: dir,
        }
    }

    fn actuator(&self, config: ProcessConfig) -> ProcessActuator {
        ProcessActuator::new("db", "n1", config, &self.run_dir).expect("valid config")
    }

    fn ctx(&self, id: &str, epoch: i64) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch,
            replica: replica("orders", 3),
            product: "db".into(),
            replica_dir: self.replica_dir.clone(),
            progress: Progress::default(),
        }
    }

    fn replica_context(&self) -> ReplicaContext {
        self.ctx("observe", 1).replica_context()
    }

    fn pid_file(&self) -> PathBuf {
        self.run_dir.join("orders/3.pid")
    }

    fn pid(&self) -> u32 {
        pid_in(&self.pid_file()).expect("a pid file")
    }

    fn file(&self, name: &str) -> Option<String> {
        read_trimmed(&self.replica_dir.join(name))
    }

    fn launches(&self) -> usize {
        line_count(&self.replica_dir.join("starts"))
    }
}

/// Launch counts are written by the workload itself, a moment after it starts.
async fn wait_launches(fixture: &Fixture, count: usize) {
    wait_for(&format!("{count} launches"), || {
        (fixture.launches() == count).then_some(())
    })
    .await;
    // None beyond: give a stray second launch the time to show.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(fixture.launches(), count);
}

async fn wait_file(fixture: &Fixture, name: &str, expected: &str) {
    let what = format!("{name} = {expected}");
    wait_for(&what, || {
        (fixture.file(name).as_deref() == Some(expected)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn starts_with_the_replica_environment_reports_heat_and_stops_cleanly() {
    bounded(async {
        let fixture = Fixture::new();
        let actuator = fixture.actuator(workload());
        actuator
            .start(&fixture.ctx("t1", 7), "Follower")
            .await
            .expect("start");
        wait_file(&fixture, "state", "Follower").await;
        wait_file(&fixture, "epoch", "7").await;
        let pid = fixture.pid();
        assert!(alive(pid));

        let observed = actuator.observe(&fixture.replica_context()).await;
        assert_eq!(observed.health, Health::Serving);
        let dimensions: Vec<&str> = observed.heat.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(dimensions, ["cpu", "mem_gib"]);
        assert!(observed
            .heat
            .iter()
            .all(|(_, v)| v.is_finite() && *v >= 0.0));

        // A second start is a no-op: same process, one launch.
        actuator
            .start(&fixture.ctx("t1", 7), "Follower")
            .await
            .expect("start again");
        assert_eq!(fixture.pid(), pid);
        wait_launches(&fixture, 1).await;

        actuator
            .stop(&fixture.ctx("t2", 7), "Follower")
            .await
            .expect("stop");
        assert!(!alive(pid), "the workload is gone once stop returns");
        assert!(!fixture.pid_file().exists());
        assert!(
            !fixture.replica_dir.exists(),
            "stop removes the replica's data"
        );
        let observed = actuator.observe(&fixture.replica_context()).await;
        assert_eq!(observed.health, Health::Failing, "nothing runs");
        actuator
            .stop(&fixture.ctx("t2", 7), "Follower")
            .await
            .expect("stopping twice is fine");
    })
    .await;
}

#[tokio::test]
async fn a_killed_workload_is_restarted() {
    bounded(async {
        let fixture = Fixture::new();
        let actuator = fixture.actuator(workload());
        actuator
            .start(&fixture.ctx("t1", 1), "Leader")
            .await
            .expect("start");
        let first = fixture.pid();
        wait_launches(&fixture, 1).await;
        kill9(first);
        let second = wait_for("a relaunch", || {
            pid_in(&fixture.pid_file()).filter(|pid| *pid != first && alive(*pid))
        })
        .await;
        assert!(!alive(first));
        wait_launches(&fixture, 2).await;
        wait_file(&fixture, "state", "Leader").await;
        let observed = actuator.observe(&fixture.replica_context()).await;
        assert_eq!(observed.health, Health::Serving);
        actuator
            .stop(&fixture.ctx("t2", 1), "Leader")
            .await
            .expect("stop");
        assert!(!alive(second));
    })
    .await;
}

#[tokio::test]
async fn a_new_actuator_adopts_the_running_workload_instead_of_starting_another() {
    bounded(async {
        let fixture = Fixture::new();
        let first = fixture.actuator(workload());
        first
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("start");
        let pid = fixture.pid();
        drop(first); // the agent "crashes": supervision ends, the workload runs on
        assert!(alive(pid));

        let second = fixture.actuator(workload());
        second
            .ensure_running(&fixture.replica_context(), "Follower")
            .await
            .expect("adopt");
        assert_eq!(fixture.pid(), pid, "the same process");
        wait_launches(&fixture, 1).await;
        let observed = second.observe(&fixture.replica_context()).await;
        assert_eq!(observed.health, Health::Serving);

        // The adopted process is supervised: killed, it comes back.
        kill9(pid);
        let relaunched = wait_for("a relaunch of the adopted workload", || {
            pid_in(&fixture.pid_file()).filter(|p| *p != pid && alive(*p))
        })
        .await;
        second
            .stop(&fixture.ctx("t2", 1), "Follower")
            .await
            .expect("stop");
        assert!(!alive(relaunched));
    })
    .await;
}

#[tokio::test]
async fn a_state_change_restarts_into_the_new_state_once() {
    bounded(async {
        let fixture = Fixture::new();
        let actuator = fixture.actuator(workload());
        actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("start");
        let follower = fixture.pid();
        // Let the workload record its launch before it is replaced.
        wait_launches(&fixture, 1).await;
        actuator
            .promote(&fixture.ctx("t2", 2), "Follower", "Leader", None)
            .await
            .expect("promote");
        let leader = fixture.pid();
        assert_ne!(leader, follower);
        assert!(
            !alive(follower),
            "the old process is gone before the new one runs"
        );
        wait_file(&fixture, "state", "Leader").await;
        wait_file(&fixture, "epoch", "2").await;

        // Repeated (as after a crash mid-way): converged already, nothing restarts.
        actuator
            .promote(&fixture.ctx("t2", 2), "Follower", "Leader", None)
            .await
            .expect("promote again");
        assert_eq!(fixture.pid(), leader);
        wait_launches(&fixture, 2).await;

        actuator
            .demote(&fixture.ctx("t3", 2), "Leader", "Follower")
            .await
            .expect("demote");
        wait_file(&fixture, "state", "Follower").await;
        assert!(!alive(leader));
        actuator
            .stop(&fixture.ctx("t4", 2), "Follower")
            .await
            .expect("stop");
    })
    .await;
}

#[tokio::test]
async fn a_state_change_hook_runs_instead_of_a_restart_and_survives_adoption() {
    bounded(async {
        let fixture = Fixture::new();
        let mut config = workload();
        config.state_change = Some(HookConfig {
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo \"$MERIDIAN_PREVIOUS_STATE->{state}\" > hook".into(),
            ],
            timeout_ms: 5_000,
        });
        let actuator = fixture.actuator(config.clone());
        actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("start");
        let pid = fixture.pid();
        actuator
            .promote(&fixture.ctx("t2", 1), "Follower", "Leader", None)
            .await
            .expect("promote");
        assert_eq!(fixture.file("hook").as_deref(), Some("Follower->Leader"));
        assert_eq!(fixture.pid(), pid, "no restart");
        wait_launches(&fixture, 1).await;

        // The pid file now says Leader: a new actuator adopts it as such, with no hook run.
        drop(actuator);
        std::fs::remove_file(fixture.replica_dir.join("hook")).expect("remove hook output");
        let adopter = fixture.actuator(config);
        adopter
            .ensure_running(&fixture.replica_context(), "Leader")
            .await
            .expect("adopt");
        assert_eq!(fixture.pid(), pid);
        assert_eq!(
            fixture.file("hook"),
            None,
            "already Leader: nothing to change"
        );
        adopter
            .stop(&fixture.ctx("t3", 1), "Leader")
            .await
            .expect("stop");
        assert!(!alive(pid));
    })
    .await;
}

#[tokio::test]
async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
    bounded(async {
        let fixture = Fixture::new();
        let mut config = workload();
        // The start returns once the health check passes, which is after the trap is set
        // (an ignored signal stays ignored across the `exec sleep`).
        config.command[2] = format!("trap '' TERM; touch trapped; {}", config.command[2]);
        config.health = Some(HookConfig {
            command: vec!["/bin/sh".into(), "-c".into(), "test -f trapped".into()],
            timeout_ms: 1_000,
        });
        config.stop_grace_ms = 200;
        let actuator = fixture.actuator(config);
        actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("start");
        let pid = fixture.pid();
        let began = std::time::Instant::now();
        actuator
            .stop(&fixture.ctx("t2", 1), "Follower")
            .await
            .expect("stop");
        assert!(
            began.elapsed() >= std::time::Duration::from_millis(200),
            "waited the grace"
        );
        assert!(!alive(pid));
    })
    .await;
}

#[tokio::test]
async fn starts_wait_for_the_health_check_and_fail_without_it() {
    bounded(async {
        let fixture = Fixture::new();
        let health = |timeout_ms| HookConfig {
            command: vec!["/bin/sh".into(), "-c".into(), "test -f ready".into()],
            timeout_ms,
        };
        let mut config = workload();
        config.command[2] = format!("(sleep 0.3; touch ready) & {}", config.command[2]);
        config.health = Some(health(1_000));
        let actuator = fixture.actuator(config);
        actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("healthy within the start timeout");
        assert!(
            fixture.replica_dir.join("ready").exists(),
            "start waited for health"
        );
        std::fs::remove_file(fixture.replica_dir.join("ready")).expect("unready");
        let observed = actuator.observe(&fixture.replica_context()).await;
        assert_eq!(
            observed.health,
            Health::Failing,
            "alive but not answering its check"
        );
        actuator
            .stop(&fixture.ctx("t2", 1), "Follower")
            .await
            .expect("stop");

        let mut never = workload();
        never.health = Some(health(1_000));
        never.start_timeout_ms = 300;
        let actuator = fixture.actuator(never);
        let error = actuator
            .start(&fixture.ctx("t3", 1), "Follower")
            .await
            .expect_err("never healthy");
        assert!(
            error.to_string().contains("not healthy within 300 ms"),
            "{error}"
        );
        actuator
            .stop(&fixture.ctx("t4", 1), "Follower")
            .await
            .expect("stop");
    })
    .await;
}

#[tokio::test]
async fn a_command_that_cannot_launch_fails_the_start() {
    bounded(async {
        let fixture = Fixture::new();
        let config = ProcessConfig::new(vec!["/nonexistent/program".into()]);
        let actuator = fixture.actuator(config);
        let error = actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect_err("cannot launch");
        assert!(
            error.to_string().contains("/nonexistent/program"),
            "{error}"
        );
        actuator
            .stop(&fixture.ctx("t2", 1), "Follower")
            .await
            .expect("stop");
        assert!(!Path::new(&fixture.pid_file()).exists());
    })
    .await;
}

#[tokio::test]
async fn a_corrupt_pid_file_is_an_error_naming_it_not_a_second_launch() {
    bounded(async {
        let fixture = Fixture::new();
        std::fs::create_dir_all(fixture.run_dir.join("orders")).expect("mkdir");
        std::fs::write(fixture.pid_file(), "{ truncated").expect("write");
        let actuator = fixture.actuator(workload());
        let error = actuator
            .ensure_running(&fixture.replica_context(), "Follower")
            .await
            .expect_err("corrupt pid file");
        assert!(error.to_string().contains("3.pid"), "{error}");
        assert_eq!(fixture.launches(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_failing_hook_fails_the_change_and_the_replica_stays_supervised() {
    bounded(async {
        let fixture = Fixture::new();
        let mut config = workload();
        config.state_change = Some(HookConfig {
            command: vec!["/bin/sh".into(), "-c".into(), "exit 4".into()],
            timeout_ms: 5_000,
        });
        let actuator = fixture.actuator(config);
        actuator
            .start(&fixture.ctx("t1", 1), "Follower")
            .await
            .expect("start");
        let pid = fixture.pid();
        wait_launches(&fixture, 1).await;
        let error = actuator
            .promote(&fixture.ctx("t2", 1), "Follower", "Leader", None)
            .await
            .expect_err("the hook fails");
        assert!(error.to_string().contains("status 4"), "{error}");
        assert_eq!(fixture.pid(), pid);

        // Still supervised, still a Follower.
        kill9(pid);
        wait_for("a relaunch after the failed hook", || {
            pid_in(&fixture.pid_file()).filter(|p| *p != pid && alive(*p))
        })
        .await;
        wait_launches(&fixture, 2).await;
        assert_eq!(fixture.file("state").as_deref(), Some("Follower"));
        actuator
            .stop(&fixture.ctx("t3", 1), "Follower")
            .await
            .expect("stop");
    })
    .await;
}
