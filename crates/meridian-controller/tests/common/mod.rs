//! A controller on an in-memory store and agents simulated in-process (they apply commands
//! at once), to test the control loop's logic quickly and deterministically in what it
//! decides; the real-process tests live in cmd/meridian/tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use meridian_controller::detector::DetectorOptions;
pub use meridian_controller::sim_agent::SimAgent;
use meridian_controller::{Controller, ControllerConfig};
use meridian_store::memory::MemoryStore;
use meridian_wire::ReplicaKey;

/// Three racks of two nodes; one db group of four partitions (a leader and two followers each,
/// one replica per rack).
pub const FLEET: &str = r#"
name: tiny
topology:
  network:
    levels: [zone, rack, node]
    domains:
      - name: z1
        children:
          - { name: r1, children: [n1, n2] }
          - { name: r2, children: [n3, n4] }
          - { name: r3, children: [n5, n6] }
node_classes:
  box:
    capacity: { cpu: 16, mem_gib: 64, disk_gib: 1000, net_mbps: 10000, disk_mbps: 1000 }
nodes:
  - { name: n1, class: box }
  - { name: n2, class: box }
  - { name: n3, class: box }
  - { name: n4, class: box }
  - { name: n5, class: box }
  - { name: n6, class: box }
groups:
  - name: orders
    product: db
    partitions: 4
    size_gib: 1
    heat:
      Leader: { cpu: 2, mem_gib: 4, disk_gib: 1 }
      Follower: { cpu: 1, mem_gib: 4, disk_gib: 1 }
    spread: rack
"#;

pub fn config(id: &str) -> ControllerConfig {
    let mut config = ControllerConfig::new(id, &format!("http://{id}"));
    config.settle = Duration::from_millis(0);
    config.tick = Duration::from_millis(10);
    config.replan_interval_min = Duration::from_millis(0);
    config.heartbeat = Duration::from_millis(20);
    config.detector = DetectorOptions {
        first_interval_ms: 20.0,
        std_dev_min_ms: 10.0,
        acceptable_pause_ms: 100.0,
        rejoin_ms: 300,
        ..DetectorOptions::default()
    };
    config
}

pub async fn leading(store: &MemoryStore, id: &str) -> Arc<Controller> {
    leading_with_task(store, id).await.0
}

/// A leading controller and its task (abort it to kill the controller without a goodbye).
pub async fn leading_with_task(
    store: &MemoryStore,
    id: &str,
) -> (Arc<Controller>, tokio::task::JoinHandle<()>) {
    let controller = Controller::new(config(id), Arc::new(store.clone()));
    let task = tokio::spawn(controller.clone().run(std::future::pending()));
    wait_for("leadership", || controller.leading_epoch().is_some()).await;
    (controller, task)
}

pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every replica the agents run, by partition: (node, state).
pub fn placement(agents: &[SimAgent]) -> BTreeMap<ReplicaKey, Vec<(String, String)>> {
    let mut out: BTreeMap<ReplicaKey, Vec<(String, String)>> = BTreeMap::new();
    for agent in agents {
        for (replica, (_, state)) in &agent.replicas {
            out.entry(replica.clone())
                .or_default()
                .push((agent.node.clone(), state.clone()));
        }
    }
    out
}

/// True when every partition has a leader and two followers on three distinct racks.
pub fn converged(agents: &[SimAgent], rack_of: impl Fn(&str) -> &'static str) -> bool {
    let placement = placement(agents);
    placement.len() == 4
        && placement.values().all(|replicas| {
            let leaders = replicas.iter().filter(|(_, s)| s == "Leader").count();
            let followers = replicas.iter().filter(|(_, s)| s == "Follower").count();
            let racks: BTreeSet<&str> = replicas.iter().map(|(n, _)| rack_of(n)).collect();
            leaders == 1 && followers == 2 && racks.len() == 3
        })
}

pub fn rack_of(node: &str) -> &'static str {
    match node {
        "n1" | "n2" => "r1",
        "n3" | "n4" => "r2",
        _ => "r3",
    }
}

/// No transition id ran twice on any agent.
pub fn assert_nothing_ran_twice(agents: &[SimAgent]) {
    for agent in agents {
        let unique: BTreeSet<_> = agent.executed.iter().collect();
        assert_eq!(
            unique.len(),
            agent.executed.len(),
            "{} ran a transition twice",
            agent.node
        );
    }
}

/// At most one leader per partition.
pub fn assert_one_leader(agents: &[SimAgent]) {
    for (replica, replicas) in placement(agents) {
        let leaders = replicas.iter().filter(|(_, s)| s == "Leader").count();
        assert!(
            leaders <= 1,
            "{replica} has {leaders} leaders: {replicas:?}"
        );
    }
}
