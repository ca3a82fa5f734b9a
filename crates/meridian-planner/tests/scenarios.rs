//! Plans for concrete changes on readable fleets.

mod common;

use meridian_model::{Fleet, Placement};
use meridian_planner::{plan, Action, Options};
use meridian_solver::{solve, Mode};

fn small() -> Fleet {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/small.yaml"
    ))
    .expect("examples/small.yaml");
    Fleet::from_yaml(&text, "small.yaml").expect("valid")
}

fn full(fleet: &Fleet) -> Placement {
    let solution = solve(
        fleet,
        &[],
        &meridian_solver::Options {
            mode: Mode::Full,
            ..Default::default()
        },
    );
    assert!(solution.is_complete());
    solution.placement
}

#[test]
fn a_node_failure_plans_copies_from_survivors() {
    let fleet = small();
    let current = full(&fleet);
    let node = fleet.topology.node_by_name("n01").expect("n01");
    let target = solve(
        &fleet,
        &current.replicas(&fleet),
        &meridian_solver::Options {
            drain: vec![fleet.topology.node_domain(node)],
            ..Default::default()
        },
    );
    assert!(target.is_complete());
    let options = Options {
        failed: vec![node],
        ..Options::default()
    };
    let plan = plan(&fleet, &current, &target.placement, &options, 0.0);
    for step in &plan.steps {
        println!(
            "{:>8.1} {:>8.1} {}/{} {:?}",
            step.start,
            step.end,
            fleet.group(step.group).name,
            step.partition,
            step.action
        );
    }
    println!("blocked {:?}", plan.blocked);
    println!("bound {:?} makespan {}", plan.bound, plan.makespan());
    assert!(plan.blocked.is_empty());
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Replicate { .. })));
}

/// Promotion bursts: each new leader catches up for a minute at 600 Mb/s on its NIC, and node
/// `b` has 1,000. Two leaders moving to `b` at once would need 1,200; the plan hands the second
/// over when the first burst ends, and replay checks every instant.
#[test]
fn promotion_bursts_are_booked_and_serialized_on_the_node_they_load() {
    let text = r#"
name: bursts
topology:
  network:
    levels: [rack, node]
    domains:
      - { name: r1, children: [a, b] }
nodes:
  - { name: a, capacity: { cpu: 16, net_mbps: 1000 } }
  - { name: b, capacity: { cpu: 16, net_mbps: 1000 } }
groups:
  - name: orders
    product: db
    partitions: 2
    counts: { Leader: 1, Follower: 1 }
    size_gib: 10
    heat:
      Leader: { cpu: 2 }
      Follower: { cpu: 1 }
    transition_heat:
      Follower>Leader: { seconds: 60, heat: { net_mbps: 600 } }
"#;
    let fleet = Fleet::from_yaml(text, "bursts.yaml").expect("valid");
    let current = common::placement_of(
        &fleet,
        &[
            ("orders", 0, "a", "Leader"),
            ("orders", 0, "b", "Follower"),
            ("orders", 1, "a", "Leader"),
            ("orders", 1, "b", "Follower"),
        ],
    );
    let target = common::placement_of(
        &fleet,
        &[
            ("orders", 0, "b", "Leader"),
            ("orders", 0, "a", "Follower"),
            ("orders", 1, "b", "Leader"),
            ("orders", 1, "a", "Follower"),
        ],
    );
    let options = Options::default();
    let plan = plan(&fleet, &current, &target, &options, 0.0);
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    let hand_offs: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::HandOff { .. }))
        .collect();
    assert_eq!(hand_offs.len(), 2);
    for step in &hand_offs {
        assert_eq!(step.end - step.start, 60.0, "the burst lasts a minute");
        assert!(!step.burst.is_empty(), "the burst is booked");
    }
    assert_eq!(hand_offs[0].start, 0.0);
    assert_eq!(
        hand_offs[1].start, 60.0,
        "the second waits for the first burst to end"
    );
    let report = meridian_planner::replay::replay(&fleet, &current, &target, &options, &plan);
    assert!(report.is_clean(), "{:?}", report.violations);
    // A plan that ignores the burst is caught by the replay.
    let mut careless = plan.clone();
    for step in &mut careless.steps {
        step.burst.clear();
        step.end = step.start;
        step.start = 0.0;
        step.end = 0.0;
    }
    careless.end = 0.0;
    let report = meridian_planner::replay::replay(&fleet, &current, &target, &options, &careless);
    assert!(!report.is_clean(), "dropping the bursts must be reported");
}
