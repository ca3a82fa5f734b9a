//! The `meridian` command end to end: real files in, real process, exit codes and output.

use std::path::PathBuf;
use std::process::{Command, Output};

fn meridian(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .output()
        .expect("meridian runs")
}

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/small.yaml")
        .display()
        .to_string()
}

fn scratch(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("meridian-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_the_example() {
    let out = meridian(&["validate", &example()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid — 26 nodes"));
}

#[test]
fn validate_names_file_line_and_path_of_every_problem() {
    let bad = scratch("bad.yaml");
    let original = std::fs::read_to_string(example()).unwrap();
    let broken = original
        .replace("partitions: 16", "partitions: 16\n    partitons: 3")
        .replace(
            "spread: rack\n    access: { us-east: 0.3",
            "spread: shelf\n    access: { us-east: 0.3",
        );
    std::fs::write(&bad, &broken).unwrap();
    let out = meridian(&["validate", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let typo_line = broken
        .lines()
        .position(|l| l.contains("partitons"))
        .unwrap()
        + 1;
    assert!(stderr.contains(&format!("{bad}:")), "{stderr}");
    assert!(stderr.contains("partitons"), "{stderr}");
    assert!(
        stderr.contains(&format!(":{typo_line}:"))
            || stderr.contains(&format!(":{}:", typo_line - 1)),
        "line {typo_line} expected in {stderr}"
    );
}

#[test]
fn solve_then_check_then_explain() {
    let target = scratch("target.json");
    let out = meridian(&["solve", &example(), "--out", &target]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("placed 160 / 160"));
    let out = meridian(&["check", &example(), &target]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("160 replicas checked, 0 violation(s)"));
    let out = meridian(&["explain", &example(), &target, "orders-db/3/0", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let explanation: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(explanation["state"], "Leader");
    assert!(
        explanation["rejected_by"]["eligibility"][0]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(!explanation["binding"].as_array().unwrap().is_empty());
}

#[test]
fn failing_a_node_repairs_only_its_replicas() {
    let target = scratch("before.json");
    assert!(meridian(&["solve", &example(), "--out", &target])
        .status
        .success());
    let out = meridian(&[
        "solve",
        &example(),
        "--current",
        &target,
        "--fail",
        "n05",
        "--no-rebalance",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    let lost = before["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p.as_array().unwrap().iter())
        })
        .filter(|r| r["node"] == "n05")
        .count();
    assert!(lost > 0);
    assert_eq!(result["stats"]["moved"].as_u64().unwrap() as usize, lost);
    let placed = result["placement"]["groups"].to_string();
    assert!(!placed.contains("\"n05\""));
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let out = meridian(&["solve", &example(), "--drain", "no-such-rack"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no-such-rack"));
    let out = meridian(&["validate", "/nonexistent/fleet.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = meridian(&["explain", &example(), &example(), "orders-db/0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a valid placement"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_runs_the_control_plane_scenario_to_the_end() {
    let out = meridian(&["demo"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for step in [
        "1. place",
        "2. add a workload",
        "3. fail a node",
        "4. drain a rack",
    ] {
        assert!(stdout.contains(step), "{stdout}");
    }
    assert_eq!(stdout.matches("converged in").count(), 4, "{stdout}");
    assert!(
        stdout.contains("rack-b2") && stdout.contains("/openapi.json"),
        "{stdout}"
    );
}

/// Real PostgreSQL, Redis and model servers, every agent a process: the drain under write
/// load, an agent killed mid-copy, and the demo's own checks (no acknowledged write lost,
/// every copy equal to its leader). Needs postgresql-15 and redis-server (.ci/run installs
/// them); without them the demo must say which packages are missing.
#[test]
fn demo_real_moves_real_data_and_loses_nothing() {
    let out = meridian(&["demo", "--real"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let installed = std::path::Path::new("/usr/lib/postgresql/15/bin/initdb").is_file()
        && std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(!out.status.success());
        assert!(stderr.contains("apt-get install"), "{stderr}");
        eprintln!("skipped the real run: PostgreSQL or Redis missing");
        return;
    }
    assert!(out.status.success(), "{stdout}{stderr}");
    for expected in [
        "writes acknowledged during the drain are on the new leader",
        "identical on all replicas",
        "same last id on all replicas",
        "answer from the same verified weights",
        "all checks passed",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(
        stdout.contains("kill -9 of") && stdout.contains("restarted, it finished the copy"),
        "an agent was killed mid-copy: {stdout}"
    );
    assert!(
        stdout.contains(" (running): ")
            && stdout.contains("replicate on")
            && stdout.contains("GB ("),
        "`meridian status` showed the running copy with its bytes: {stdout}"
    );
}

#[test]
fn tour_runs_clean() {
    let out = meridian(&["tour"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("independent check: 0 violation(s)"));
    assert!(stdout.contains("independent check after repair: 0 violation(s)"));
}

#[test]
fn plan_a_drain_then_explain_a_step_and_write_json() {
    let out_path = scratch("plan.json");
    let out = meridian(&["plan", &example(), "--drain", "r12", "--out", &out_path]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("plan for `small`"), "{stdout}");
    assert!(
        stdout.contains("independent replay: every invariant holds"),
        "{stdout}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let steps = doc["steps"].as_array().expect("steps");
    let copy = steps
        .iter()
        .find(|s| s["kind"] == "replicate")
        .expect("draining a rack copies replicas out of it");
    assert!(copy["rate"].as_f64().unwrap() > 0.0);
    assert!(!copy["loads"].as_array().unwrap().is_empty());
    // Nothing may stay on or arrive under the drained rack.
    for step in steps.iter().filter(|s| s["kind"] == "replicate") {
        let node = step["node"].as_str().unwrap();
        assert!(
            !["n25", "n26", "n27", "n28"].contains(&node),
            "copy into r12: {step}"
        );
    }
    let id = copy["id"].as_u64().unwrap().to_string();
    let out = meridian(&["plan", &example(), "--drain", "r12", "--explain", &id]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("step {id}: copy")), "{stdout}");
    assert!(stdout.contains("loads while it runs"), "{stdout}");
}

#[test]
fn plan_rejects_bad_throttles_with_the_flag_named() {
    for (args, expected) in [
        (vec!["--window", "10-5"], "--window `10-5`"),
        (vec!["--moves-per-domain", "shelf=2"], "no level `shelf`"),
        (
            vec!["--priority", "db"],
            "--priority `db` must be written NAME=VALUE",
        ),
        (
            vec!["--rate-min", "500"],
            "--rate-min (500) is above --rate-max",
        ),
        (vec!["--fail", "r01"], "--fail `r01` is not a node"),
    ] {
        let fleet = example();
        let mut all = vec!["plan", fleet.as_str()];
        all.extend(args.iter().copied());
        let out = meridian(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_reader_that_stops_early_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["gen", "--nodes", "2000", "--replicas", "200000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meridian runs");
    let mut first = [0u8; 64];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    // The pipe closes here, long before the fleet is written out.
    let out = child.wait_with_output().expect("meridian ends");
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}
