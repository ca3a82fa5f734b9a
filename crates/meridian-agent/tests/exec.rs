//! The exec actuator with real hook scripts: a toy product that keeps its data in a file,
//! copies it from a peer's directory, hands off between leaders, and the failure paths —
//! a failing hook, a hook past its timeout (its whole process group killed), and a hook
//! left running by a dead agent (killed before the transition runs again).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use meridian_agent::config::HookConfig;
use meridian_agent::products::exec::config::{ExecConfig, ExecHooks};
use meridian_agent::products::exec::ExecActuator;
use meridian_agent::{Actuator, Progress, TransitionContext};
use meridian_wire::{Health, Source, TransitionId};

/// A product whose replica is `<dir>/data`; every hook logs its call to `<dir>/calls`.
const SCRIPT: &str = r#"#!/bin/sh
set -eu
echo "$MERIDIAN_ACTION id=$MERIDIAN_ID state=$MERIDIAN_STATE from=$MERIDIAN_FROM handoff=$MERIDIAN_HANDOFF" >> "$MERIDIAN_REPLICA_DIR/calls"
case "$MERIDIAN_ACTION" in
  start) [ -f data ] || echo "v1" > data ;;
  replicate)
    [ "$MERIDIAN_RATE_MBPS" = "25" ] || { echo "booked rate not passed: $MERIDIAN_RATE_MBPS" >&2; exit 4; }
    cp "$MERIDIAN_SOURCE_ENDPOINT/data" data.partial
    echo "meridian:progress bytes_done=$(wc -c < data.partial) lag_bytes=0"
    mv data.partial data ;;
  demote) echo "meridian:handoff $(cat data)@$MERIDIAN_EPOCH" ;;
  promote) echo "$MERIDIAN_HANDOFF" > promoted-with ;;
  observe) echo "meridian:endpoint $MERIDIAN_REPLICA_DIR"; echo "meridian:heat disk_gib=0.5" ;;
  stop) rm -f data ;;
esac
"#;

struct Fixture {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("product.sh");
        write_executable(&script, SCRIPT);
        Fixture { dir, script }
    }

    fn hook(&self, timeout_ms: u64) -> HookConfig {
        HookConfig {
            command: vec![self.script.display().to_string()],
            timeout_ms,
        }
    }

    fn actuator(&self) -> ExecActuator {
        let hook = Some(self.hook(10_000));
        let config = ExecConfig {
            hooks: ExecHooks {
                start: self.hook(10_000),
                stop: self.hook(10_000),
                replicate: hook.clone(),
                promote: hook.clone(),
                demote: hook.clone(),
                follow: None,
                observe: Some(self.hook(2_000)),
                ensure_running: None,
            },
            env: Default::default(),
        };
        ExecActuator::new("batch", "n1", config).expect("valid config")
    }

    fn replica_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("orders/0")
    }

    fn ctx(&self, node: &str, id: &str) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch: 7,
            replica: replica("orders", 0),
            product: "batch".into(),
            replica_dir: self.replica_dir(node),
            progress: Progress::default(),
        }
    }
}

/// A pid a script wrote with `echo $! > file`.
fn plain_pid(file: &Path) -> Option<u32> {
    read_trimmed(file)?.parse().ok()
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[tokio::test]
async fn hooks_run_a_product_through_copy_hand_off_and_stop() {
    bounded(async {
        let fixture = Fixture::new();
        let actuator = fixture.actuator();
        actuator
            .start(&fixture.ctx("n1", "plan-1/step-0/0"), "Leader")
            .await
            .expect("start");
        let source = Source {
            node: "n1".into(),
            address: None,
            endpoint: Some(fixture.replica_dir("n1").display().to_string()),
        };
        let copy = fixture.ctx("n2", "plan-2/step-0/0");
        actuator
            .replicate(&copy, "Follower", &source, 3, 25.0)
            .await
            .expect("replicate");
        assert_eq!(copy.progress.bytes_done(), 3, "the hook's progress line");
        assert_eq!(copy.progress.lag_bytes(), Some(0));
        let copied = std::fs::read_to_string(fixture.replica_dir("n2").join("data"));
        assert_eq!(copied.expect("copied data"), "v1\n");

        let observed = actuator
            .observe(&fixture.ctx("n2", "x").replica_context())
            .await;
        assert_eq!(observed.health, Health::Serving);
        let n2 = fixture.replica_dir("n2").display().to_string();
        assert_eq!(observed.endpoint.as_deref(), Some(n2.as_str()));
        assert_eq!(observed.heat, vec![("disk_gib".to_string(), 0.5)]);

        let handoff = actuator
            .demote(&fixture.ctx("n1", "plan-3/step-0/0"), "Leader", "Follower")
            .await
            .expect("demote");
        assert_eq!(handoff.as_deref(), Some("v1@7"));
        actuator
            .promote(
                &fixture.ctx("n2", "plan-3/step-0/1"),
                "Follower",
                "Leader",
                handoff.as_deref(),
            )
            .await
            .expect("promote");
        let promoted_with =
            std::fs::read_to_string(fixture.replica_dir("n2").join("promoted-with"));
        assert_eq!(promoted_with.expect("promote saw the handoff"), "v1@7\n");

        actuator
            .stop(&fixture.ctx("n1", "plan-3/step-1/0"), "Follower")
            .await
            .expect("stop");
        assert!(!fixture.replica_dir("n1").exists());
        let observed = actuator
            .observe(&fixture.ctx("n1", "x").replica_context())
            .await;
        assert_eq!(
            observed.health,
            Health::Failing,
            "a stopped replica is gone"
        );
        let calls =
            std::fs::read_to_string(fixture.replica_dir("n2").join("calls")).expect("calls");
        assert!(
            calls.contains("replicate id=plan-2/step-0/0 state=Follower"),
            "{calls}"
        );
        assert!(
            calls.contains("promote id=plan-3/step-0/1 state=Leader from=Follower handoff=v1@7"),
            "{calls}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_hook_fails_the_transition_with_its_stderr() {
    bounded(async {
        let fixture = Fixture::new();
        let failing = fixture.dir.path().join("fail.sh");
        write_executable(&failing, "#!/bin/sh\necho 'disk on fire' >&2\nexit 3\n");
        let mut actuator_config = ExecConfig {
            hooks: ExecHooks {
                start: HookConfig {
                    command: vec![failing.display().to_string()],
                    timeout_ms: 5_000,
                },
                stop: fixture.hook(5_000),
                replicate: None,
                promote: None,
                demote: None,
                follow: None,
                observe: None,
                ensure_running: None,
            },
            env: Default::default(),
        };
        actuator_config
            .env
            .insert("PRODUCT_HOME".into(), "/opt/x".into());
        let actuator = ExecActuator::new("batch", "n1", actuator_config).expect("valid");
        let error = actuator
            .start(&fixture.ctx("n1", "plan-1/step-0/0"), "Leader")
            .await
            .expect_err("the hook fails");
        let error = error.to_string();
        assert!(error.contains("start hook"), "{error}");
        assert!(error.contains("exited with status 3"), "{error}");
        assert!(error.contains("disk on fire"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_everything_it_started() {
    bounded(async {
        let fixture = Fixture::new();
        let slow = fixture.dir.path().join("slow.sh");
        // A child in the background, then wait: only a group kill ends both.
        write_executable(
            &slow,
            "#!/bin/sh\nsleep 1000 &\necho $! > \"$MERIDIAN_REPLICA_DIR/child\"\nwait\n",
        );
        let config = ExecConfig {
            hooks: ExecHooks {
                start: HookConfig {
                    command: vec![slow.display().to_string()],
                    timeout_ms: 300,
                },
                stop: fixture.hook(5_000),
                replicate: None,
                promote: None,
                demote: None,
                follow: None,
                observe: None,
                ensure_running: None,
            },
            env: Default::default(),
        };
        let actuator = ExecActuator::new("batch", "n1", config).expect("valid");
        let error = actuator
            .start(&fixture.ctx("n1", "plan-1/step-0/0"), "Leader")
            .await
            .expect_err("times out");
        assert!(
            error.to_string().contains("did not finish within 300 ms"),
            "{error}"
        );
        let child = plain_pid(&fixture.replica_dir("n1").join("child")).expect("child pid");
        wait_for("the hook's child to die", || (!alive(child)).then_some(())).await;
    })
    .await;
}

#[tokio::test]
async fn a_hook_left_running_by_a_dead_agent_is_killed_before_the_transition_runs_again() {
    bounded(async {
        let fixture = Fixture::new();
        let copy = fixture.dir.path().join("copy.sh");
        // First run: a long copy in the background (it would outlive the agent). A second
        // run finds the marker and finishes at once.
        write_executable(
            &copy,
            "#!/bin/sh\nif [ -f second ]; then exit 0; fi\ntouch second\nsleep 1000 &\necho $! > copier\nwait\n",
        );
        let hook = HookConfig {
            command: vec![copy.display().to_string()],
            timeout_ms: 60_000,
        };
        let config = ExecConfig {
            hooks: ExecHooks {
                start: fixture.hook(5_000),
                stop: fixture.hook(5_000),
                replicate: Some(hook),
                promote: None,
                demote: None,
                follow: None,
                observe: None,
                ensure_running: None,
            },
            env: Default::default(),
        };
        let source = Source {
            node: "n1".into(),
            address: None,
            endpoint: None,
        };
        let ctx = fixture.ctx("n2", "plan-1/step-0/0");
        {
            // kill -9 of the agent mid-copy: nothing of the transition is dropped or cleaned
            // up (the future is forgotten, not dropped), so the hook and its copier run on.
            let actuator = ExecActuator::new("batch", "n2", config.clone()).expect("valid");
            let mut copying = Box::pin(actuator.replicate(&ctx, "Follower", &source, 10, 5.0));
            let outcome = tokio::time::timeout(Duration::from_millis(500), copying.as_mut()).await;
            assert!(outcome.is_err(), "still copying when the agent dies");
            std::mem::forget(copying);
        }
        let copier = plain_pid(&fixture.replica_dir("n2").join("copier")).expect("copier pid");
        assert!(alive(copier), "the copier outlived its agent");

        // A new agent runs the same transition again: the leftover copier dies first.
        let actuator = ExecActuator::new("batch", "n2", config).expect("valid");
        actuator
            .replicate(&ctx, "Follower", &source, 10, 5.0)
            .await
            .expect("the second run completes");
        wait_for("the leftover copier to die", || (!alive(copier)).then_some(())).await;
    })
    .await;
}

#[test]
fn configurations_name_the_bad_field() {
    let bad = |edit: &dyn Fn(&mut ExecConfig)| {
        let mut config = ExecConfig {
            hooks: ExecHooks {
                start: HookConfig {
                    command: vec!["/bin/true".into()],
                    timeout_ms: 1000,
                },
                stop: HookConfig {
                    command: vec!["/bin/true".into()],
                    timeout_ms: 1000,
                },
                replicate: None,
                promote: None,
                demote: None,
                follow: None,
                observe: None,
                ensure_running: None,
            },
            env: Default::default(),
        };
        edit(&mut config);
        config.validate().expect_err("invalid").0
    };
    assert_eq!(bad(&|c| c.hooks.stop.command.clear()), "hooks.stop.command");
    assert_eq!(
        bad(&|c| c.hooks.observe = Some(HookConfig {
            command: vec!["/bin/true".into()],
            timeout_ms: 60_000
        })),
        "hooks.observe.timeout_ms"
    );
    assert_eq!(
        bad(&|c| {
            c.env.insert("MERIDIAN_STATE".into(), "x".into());
        }),
        "env.MERIDIAN_STATE"
    );
}
