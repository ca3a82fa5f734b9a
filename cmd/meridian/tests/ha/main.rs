//! The control plane with real processes: a 3-member etcd cluster, three controllers, six
//! agents running real workload processes. Kill -9 the leading controller mid-plan, kill an
//! agent, stop every controller — and check what the agents actually executed.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::{Cluster, NODES};
use serde_json::Value;

/// Every workload pid the agents' pid files name, by file.
fn workload_pids(dir: &Path) -> BTreeMap<String, u32> {
    meridian_agent::process::pidfile::all_under(dir)
        .into_iter()
        .map(|(path, record)| (path.to_string_lossy().into_owned(), record.pid))
        .collect()
}

fn alive(pid: u32) -> bool {
    // A zombie has no cmdline; a live `sleep` does.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// No transition ran twice on any agent, and no agent ran a command older than one it had
/// already run (so once an agent heard a new leader, the old one's commands were refused).
fn check_executed(cluster: &Cluster) -> usize {
    let mut total = 0;
    for node in NODES {
        let records = meridian_agent::journal::read_executed_log(&cluster.agent_state_dir(node))
            .expect("executed.log parses");
        let ids: BTreeSet<_> = records
            .iter()
            .filter(|r| !r.resumed)
            .map(|r| &r.id)
            .collect();
        assert_eq!(
            ids.len(),
            records.iter().filter(|r| !r.resumed).count(),
            "{node} ran a transition twice: {records:#?}"
        );
        for pair in records.windows(2) {
            assert!(
                pair[0].epoch <= pair[1].epoch,
                "{node} accepted epoch {} after epoch {}: {records:#?}",
                pair[1].epoch,
                pair[0].epoch
            );
        }
        total += records.len();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_fail_over_mid_plan_and_agents_keep_serving() {
    let mut cluster = Cluster::start(3).await;
    let (first_leader, first_epoch) = cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.wait_converged(&[], Duration::from_secs(60)).await;

    // A plan with copies, hand-offs and stops: drain n1 (its replicas move to n2, same rack).
    cluster.post(&first_leader, "/v1/nodes/n1/drain").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let plan_id = loop {
        let plans = cluster
            .get(&first_leader, "/v1/plans")
            .await
            .unwrap_or(Value::Null);
        let running = plans["plans"].as_array().and_then(|plans| {
            plans.iter().find(|p| {
                p["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("draining: n1"))
                    && p["steps_done"].as_u64() < p["steps_total"].as_u64()
            })
        });
        if let Some(plan) = running {
            break plan["id"].as_u64().expect("plan id");
        }
        assert!(
            Instant::now() < deadline,
            "no drain plan seen running (did it finish between polls?): {plans}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let before_kill = workload_pids(cluster.dir.path());

    // Kill -9 the leader mid-plan; time until another controller leads (and answers agents).
    let killed = Instant::now();
    let index = cluster
        .controllers
        .iter()
        .position(|(url, _)| *url == first_leader)
        .expect("leader is ours");
    cluster.controllers[index].1.kill_group();
    let (second_leader, second_epoch) = cluster.wait_leader(Duration::from_secs(10)).await;
    let failover = killed.elapsed();
    eprintln!("failover after kill -9 of the leader: {failover:?}");
    assert_ne!(second_leader, first_leader);
    assert!(second_epoch > first_epoch);
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );

    // The new leader finishes the plan: n1 empties, spread holds.
    cluster
        .wait_converged(&["n1"], Duration::from_secs(60))
        .await;
    let plan = cluster
        .get(&second_leader, &format!("/v1/plans/{plan_id}"))
        .await
        .expect("the drain plan");
    assert_eq!(plan["status"], "done", "{plan:#}");
    // No node was declared dead while agents were finding the new leader.
    let nodes = cluster
        .get(&second_leader, "/v1/nodes")
        .await
        .expect("nodes");
    for node in nodes["nodes"].as_array().expect("a node list") {
        assert_eq!(node["liveness"], "alive", "{node:#}");
    }
    let executed = check_executed(&cluster);
    assert!(executed > 0);

    // Workloads the drain did not touch kept running through the failover.
    let after = workload_pids(cluster.dir.path());
    for (file, pid) in &before_kill {
        if !file.contains("/n1/") && after.get(file) == Some(pid) {
            assert!(
                alive(*pid),
                "{file}: workload {pid} died during the failover"
            );
        }
    }
    let untouched = before_kill
        .iter()
        .filter(|(f, p)| !f.contains("/n1/") && after.get(*f) == Some(*p))
        .count();
    assert!(
        untouched >= 6,
        "most workloads were never restarted ({untouched})"
    );

    // Kill an agent with its workloads (a node dies): its replicas are repaired elsewhere.
    cluster.agents.get_mut("n3").expect("agent n3").kill_group();
    cluster
        .wait_converged(&["n1", "n3"], Duration::from_secs(60))
        .await;
    check_executed(&cluster);

    // Stop every controller: agents keep serving what they run.
    let serving = workload_pids(cluster.dir.path());
    let serving: Vec<u32> = serving
        .iter()
        .filter(|(f, _)| !f.contains("/n1/") && !f.contains("/n3/"))
        .map(|(_, p)| *p)
        .filter(|p| alive(*p))
        .collect();
    assert!(serving.len() >= 12, "{serving:?}");
    for (_, controller) in cluster.controllers.iter_mut() {
        controller.kill_group();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for pid in &serving {
        assert!(alive(*pid), "workload {pid} stopped without controllers");
    }
    for node in ["n2", "n4", "n5", "n6"] {
        assert!(
            cluster.agents.get_mut(node).expect("agent").is_running(),
            "agent {node} exited without controllers"
        );
    }
}
