//! The replay checker on hand-built plans over a tiny fleet: a correct plan passes, and every
//! invariant broken on purpose is reported, naming what broke it.

mod common;

use meridian_model::placement::UNASSIGNED;
use meridian_model::{Fleet, GroupId, NodeId, Placement, StateId};
use meridian_planner::replay::{
    apply_until, replay, replicas_at, required_loads, Invariant, Report,
};
use meridian_planner::{
    Action, Blocked, Load, MakespanBound, Options, Plan, Reason, Resource, Step,
};

/// Two racks in `east`, one in `west`; every node alike. `orders` (db, east only), `clicks`
/// (stream, anywhere) and `sessions` (db with one follower, east only), one partition each.
const TINY: &str = r#"
name: tiny
topology:
  network:
    levels: [region, rack, node]
    domains:
      - name: east
        children:
          - { name: r1, capacity: { net_mbps: R1_NET }, children: [a1, a2] }
          - { name: r2, capacity: { net_mbps: 10000 }, children: [a3, a4] }
      - name: west
        children:
          - { name: r3, capacity: { net_mbps: 10000 }, children: [w1, w2] }
  power:
    levels: [pdu, rack, node]
    domains:
      - { name: p1, capacity: { power_w: 10000 }, children: [r1, r2] }
      - { name: p2, capacity: { power_w: 10000 }, children: [r3] }
  links:
    - { between: [east, west], latency_ms: 70, cost_per_gb: 0.02, net_mbps: 2000 }
node_classes:
  box:
    capacity: { cpu: 16, mem_gib: 64, disk_gib: 1000, disk_mbps: 2000, net_mbps: 20000, power_w: 1000 }
nodes:
  - { name: a1, class: box }
  - { name: a2, class: box }
  - { name: a3, class: box }
  - { name: a4, class: box }
  - { name: w1, class: box }
  - { name: w2, class: box }
groups:
  - name: orders
    product: db
    partitions: 1
    size_gib: 1
    regions: [east]
    heat:
      Leader: { cpu: 2, disk_gib: 1, net_mbps: 200, power_w: 20 }
      Follower: { cpu: 1, disk_gib: 1, net_mbps: 100, power_w: 10 }
  - name: clicks
    product: stream
    partitions: 1
    size_gib: 1
    heat:
      Leader: { cpu: 2, net_mbps: 200 }
      Replica: { cpu: 1, net_mbps: 100 }
  - name: sessions
    product: db
    partitions: 1
    counts: { Leader: 1, Follower: 1 }
    size_gib: 1
    regions: [east]
    heat:
      Leader: { cpu: 2, net_mbps: 200 }
      Follower: { cpu: 1, net_mbps: 100 }
"#;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn fleet_with_rack_net(r1_net_mbps: f64) -> Fleet {
    let text = TINY.replace("R1_NET", &r1_net_mbps.to_string());
    Fleet::from_yaml(&text, "test.yaml").expect("the tiny fleet is valid")
}

fn tiny() -> Fleet {
    fleet_with_rack_net(10000.0)
}

fn node(fleet: &Fleet, name: &str) -> NodeId {
    fleet
        .topology
        .node_by_name(name)
        .expect("a node of the tiny fleet")
}

fn group(fleet: &Fleet, name: &str) -> GroupId {
    fleet
        .group_by_name(name)
        .expect("a group of the tiny fleet")
}

fn state(fleet: &Fleet, group_name: &str, name: &str) -> StateId {
    fleet
        .product_of(group(fleet, group_name))
        .state(name)
        .expect("a state of the group's product")
}

/// A placement with partition 0 of each named group on the given (node, state) pairs.
fn placement(fleet: &Fleet, partitions: &[(&str, &[(&str, &str)])]) -> Placement {
    let replicas: Vec<(&str, u32, &str, &str)> = partitions
        .iter()
        .flat_map(|&(group, replicas)| replicas.iter().map(move |&(n, s)| (group, 0, n, s)))
        .collect();
    common::placement_of(fleet, &replicas)
}

fn step(fleet: &Fleet, id: u32, group_name: &str, start: f64, action: Action) -> Step {
    Step {
        id,
        group: group(fleet, group_name),
        partition: 0,
        start,
        end: start,
        action,
        reason: Reason {
            after: Vec::new(),
            waited_for: None,
            rate_limited_by: None,
            priority: String::new(),
        },
        burst: Vec::new(),
    }
}

/// A correct copy of `group_name`/0 at `rate` MB/s, booking exactly what its path needs.
fn copy(
    fleet: &Fleet,
    id: u32,
    group_name: &str,
    path: (&str, &str),
    start: f64,
    rate: f64,
) -> Step {
    let (source, target) = (node(fleet, path.0), node(fleet, path.1));
    let bytes = fleet.group(group(fleet, group_name)).size_bytes();
    let arrives = if group_name == "clicks" {
        "Replica"
    } else {
        "Follower"
    };
    let action = Action::Replicate {
        source,
        target,
        state: state(fleet, group_name, arrives),
        bytes,
        rate,
        loads: required_loads(fleet, source, target, rate),
    };
    let mut step = step(fleet, id, group_name, start, action);
    step.end = start + bytes / (rate * 1e6);
    step
}

fn drop(fleet: &Fleet, id: u32, group_name: &str, node_name: &str, from: &str, at: f64) -> Step {
    let action = Action::Drop {
        node: node(fleet, node_name),
        from: state(fleet, group_name, from),
    };
    step(fleet, id, group_name, at, action)
}

fn transition(fleet: &Fleet, id: u32, node_name: &str, from: &str, to: &str, at: f64) -> Step {
    let action = Action::Transition {
        node: node(fleet, node_name),
        from: state(fleet, "orders", from),
        to: state(fleet, "orders", to),
    };
    step(fleet, id, "orders", at, action)
}

fn plan_of(steps: Vec<Step>) -> Plan {
    let end = steps.iter().map(|s| s.end).fold(0.0, f64::max);
    let bytes = steps
        .iter()
        .map(|s| match s.action {
            Action::Replicate { bytes, .. } => bytes,
            _ => 0.0,
        })
        .sum();
    Plan {
        start: 0.0,
        end,
        steps,
        blocked: Vec::new(),
        bound: MakespanBound {
            seconds: 0.0,
            bottleneck: String::new(),
        },
        bytes,
    }
}

fn orders_at(fleet: &Fleet, replicas: &[(&str, &str)]) -> Placement {
    placement(fleet, &[("orders", replicas)])
}

fn start_orders(fleet: &Fleet) -> Placement {
    orders_at(
        fleet,
        &[("a1", "Leader"), ("a2", "Follower"), ("a3", "Follower")],
    )
}

/// Seconds one GiB takes at `rate` MB/s.
fn copy_seconds(rate: f64) -> f64 {
    GIB / (rate * 1e6)
}

fn show(report: &Report) -> String {
    report
        .violations
        .iter()
        .map(|v| format!("  {v}\n"))
        .collect()
}

fn assert_clean(report: &Report) {
    assert!(
        report.is_clean(),
        "expected no violations, got:\n{}",
        show(report)
    );
}

/// Asserts that `invariant` is reported with a message containing every one of `words`.
fn assert_reports(report: &Report, invariant: Invariant, words: &[&str]) {
    let found = report
        .of(invariant)
        .any(|v| words.iter().all(|w| v.message.contains(w)));
    assert!(
        found,
        "expected a {invariant} violation mentioning {words:?}, got:\n{}",
        show(report)
    );
}

fn assert_only(report: &Report, invariants: &[Invariant]) {
    let stray: Vec<_> = report
        .violations
        .iter()
        .filter(|v| !invariants.contains(&v.invariant))
        .collect();
    assert!(stray.is_empty(), "unexpected violations:\n{}", show(report));
}

#[test]
fn required_loads_follow_the_network_tree_up_to_the_common_ancestor() {
    let fleet = tiny();
    let net = fleet.dims.get("net_mbps").expect("net_mbps").index();
    let disk = fleet.dims.get("disk_mbps").expect("disk_mbps").index();
    let names = |from: &str, to: &str| -> Vec<(String, f64)> {
        let mut loads: Vec<(String, f64)> =
            required_loads(&fleet, node(&fleet, from), node(&fleet, to), 100.0)
                .into_iter()
                .map(|l| {
                    let name = match l.resource {
                        Resource::Domain { domain, dim } if dim == net => {
                            format!("net {}", fleet.topology.domain(domain).name)
                        }
                        Resource::Domain { domain, dim } if dim == disk => {
                            format!("disk {}", fleet.topology.domain(domain).name)
                        }
                        other => format!("{other:?}"),
                    };
                    (name, l.amount)
                })
                .collect();
        loads.sort_by(|a, b| a.0.cmp(&b.0));
        loads
    };
    let pairs = |list: &[(&str, f64)]| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = list.iter().map(|(n, a)| (n.to_string(), *a)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    // Same rack: only the two NICs.
    assert_eq!(
        names("a1", "a2"),
        pairs(&[
            ("disk a1", 100.0),
            ("disk a2", 100.0),
            ("net a1", 800.0),
            ("net a2", 800.0)
        ])
    );
    // Across racks: the NICs and both ToR uplinks, not the region they share.
    assert_eq!(
        names("a1", "a4"),
        pairs(&[
            ("disk a1", 100.0),
            ("disk a4", 100.0),
            ("net a1", 800.0),
            ("net a4", 800.0),
            ("net r1", 800.0),
            ("net r2", 800.0)
        ])
    );
    // Across regions: everything up to both roots, and the link in the copy's direction.
    let across = names("a1", "w1");
    assert_eq!(across.len(), 9, "{across:?}");
    assert!(across.iter().any(|(n, a)| n == "net east" && *a == 800.0));
    assert!(across.iter().any(|(n, a)| n == "net west" && *a == 800.0));
    let link = required_loads(&fleet, node(&fleet, "a1"), node(&fleet, "w1"), 100.0)
        .into_iter()
        .find(|l| matches!(l.resource, Resource::Link { .. }))
        .expect("a link load");
    let east = fleet.topology.region_by_name("east").expect("east");
    let west = fleet.topology.region_by_name("west").expect("west");
    assert_eq!(
        link.resource,
        Resource::Link {
            from: east,
            to: west
        }
    );
    assert_eq!(link.amount, 800.0);
}

#[test]
fn a_make_before_break_move_is_clean_and_its_usage_is_traced() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let d = copy_seconds(100.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", d),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_clean(&report);
    let r1 = report
        .usage
        .iter()
        .find(|u| u.name == "rack r1 net_mbps")
        .expect("the copy crosses r1's uplink");
    // Leader 200 + follower 100 steady, 800 Mb/s while the copy runs, then the follower leaves.
    assert_eq!(r1.points, vec![(0.0, 300.0), (0.0, 1100.0), (d, 200.0)]);
    assert_eq!(r1.peak, 1100.0);
    assert_eq!(r1.limit, 10000.0);
    // r2 carries the new follower's steady heat from the copy's start.
    let r2 = report
        .usage
        .iter()
        .find(|u| u.name == "rack r2 net_mbps")
        .expect("the copy crosses r2's uplink");
    assert_eq!(r2.points, vec![(0.0, 100.0), (0.0, 1000.0), (d, 200.0)]);
    assert!(!report.usage.iter().any(|u| u.name.starts_with("link")));
}

#[test]
fn a_leader_move_with_an_atomic_hand_off_is_clean() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a4", "Leader"), ("a2", "Follower"), ("a3", "Follower")],
    );
    let d = copy_seconds(200.0);
    let follower = state(&fleet, "orders", "Follower");
    let hand_off = Action::HandOff {
        from: node(&fleet, "a1"),
        to: node(&fleet, "a4"),
        demote_to: follower,
        promote_from: follower,
    };
    let mut after = step(&fleet, 2, "orders", d, hand_off);
    after.reason.after = vec![1];
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a1", "a4"), 0.0, 200.0),
        after,
        drop(&fleet, 3, "orders", "a1", "Follower", d),
    ]);
    assert_clean(&replay(
        &fleet,
        &current,
        &target,
        &Options::default(),
        &plan,
    ));
}

#[test]
fn an_over_capacity_copy_on_a_tor_uplink_is_reported() {
    // r1's uplink carries 300 Mb/s of steady heat; an 800 Mb/s copy does not fit under 1000.
    let fleet = fleet_with_rack_net(1000.0);
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let d = copy_seconds(100.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", d),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Capacity,
        &["rack r1 net_mbps", "1100", "1000", "orders/0", "a2", "a4"],
    );
    assert_only(&report, &[Invariant::Capacity]);
    assert_eq!(report.violations[0].step, Some(1));
}

#[test]
fn a_resource_that_starts_over_its_limit_may_not_get_worse() {
    // r1 starts at 300 Mb/s under a 250 limit (the fleet shrank under its placement).
    let fleet = fleet_with_rack_net(250.0);
    let current = start_orders(&fleet);
    // Moving a3 within r2 leaves r1 alone: clean, though r1 stays over its limit.
    let within = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a2", "Follower"), ("a4", "Follower")],
    );
    let d = copy_seconds(100.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a3", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a3", "Follower", d),
    ]);
    assert_clean(&replay(
        &fleet,
        &current,
        &within,
        &Options::default(),
        &plan,
    ));
    // Copying out of r1 adds 800 to it: reported against its starting load.
    let out = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", d),
    ]);
    let report = replay(&fleet, &current, &out, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Capacity,
        &["rack r1 net_mbps", "300", "starting load"],
    );
}

#[test]
fn a_missing_link_load_is_reported_and_still_counted() {
    let fleet = tiny();
    let current = placement(
        &fleet,
        &[(
            "clicks",
            &[("a1", "Leader"), ("a2", "Replica"), ("a3", "Replica")],
        )],
    );
    let target = placement(
        &fleet,
        &[(
            "clicks",
            &[("a1", "Leader"), ("w1", "Replica"), ("a3", "Replica")],
        )],
    );
    let d = copy_seconds(100.0);
    let mut moving = copy(&fleet, 1, "clicks", ("a2", "w1"), 0.0, 100.0);
    if let Action::Replicate { loads, .. } = &mut moving.action {
        loads.retain(|l| !matches!(l.resource, Resource::Link { .. }));
    }
    let plan = plan_of(vec![moving, drop(&fleet, 2, "clicks", "a2", "Replica", d)]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(&report, Invariant::Loads, &["link east>west", "800"]);
    assert_only(&report, &[Invariant::Loads]);
    // The checker counts what the path needs even when the plan forgot to book it.
    let link = report
        .usage
        .iter()
        .find(|u| u.name == "link east>west")
        .expect("the link is traced");
    assert_eq!(link.peak, 800.0);
    assert_eq!(link.limit, 2000.0);
}

#[test]
fn a_copy_over_the_region_link_is_reported() {
    let fleet = tiny();
    let current = placement(
        &fleet,
        &[(
            "clicks",
            &[("a1", "Leader"), ("a2", "Replica"), ("a3", "Replica")],
        )],
    );
    let target = placement(
        &fleet,
        &[(
            "clicks",
            &[("a1", "Leader"), ("w1", "Replica"), ("a3", "Replica")],
        )],
    );
    // 300 MB/s = 2400 Mb/s over a 2000 Mb/s link.
    let d = copy_seconds(300.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "clicks", ("a2", "w1"), 0.0, 300.0),
        drop(&fleet, 2, "clicks", "a2", "Replica", d),
    ]);
    let options = Options {
        rate_max: 1000.0,
        ..Options::default()
    };
    let report = replay(&fleet, &current, &target, &options, &plan);
    assert_reports(
        &report,
        Invariant::Capacity,
        &["link east>west", "2400", "2000"],
    );
    assert_only(&report, &[Invariant::Capacity]);
}

#[test]
fn dropping_before_the_copy_lands_breaks_availability() {
    let fleet = tiny();
    let current = placement(
        &fleet,
        &[("sessions", &[("a1", "Leader"), ("a2", "Follower")])],
    );
    let target = placement(
        &fleet,
        &[("sessions", &[("a1", "Leader"), ("a3", "Follower")])],
    );
    let plan = plan_of(vec![
        copy(&fleet, 1, "sessions", ("a1", "a3"), 0.0, 100.0),
        drop(&fleet, 2, "sessions", "a2", "Follower", 1.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Availability,
        &["sessions/0", "1 serving", "floor of 2", "a2"],
    );
    assert_only(&report, &[Invariant::Availability]);
    assert_eq!(report.violations[0].step, Some(2));
    assert_eq!(report.violations[0].time, 1.0);
}

#[test]
fn dropping_a_copy_source_mid_copy_is_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", 1.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(&report, Invariant::Legality, &["drops a2", "copy step 1"]);
}

#[test]
fn two_leaders_at_once_are_reported_and_a_hand_off_is_not() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Follower"), ("a2", "Leader"), ("a3", "Follower")],
    );
    let plan = plan_of(vec![
        transition(&fleet, 1, "a2", "Follower", "Leader", 0.0),
        transition(&fleet, 2, "a1", "Leader", "Follower", 0.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Leader,
        &["orders/0", "2 replicas in Leader", "a1", "a2"],
    );
    assert_only(&report, &[Invariant::Leader]);
    assert_eq!(report.violations[0].step, Some(1));
    // Demoting first leaves a moment with no leader, which is allowed.
    let plan = plan_of(vec![
        transition(&fleet, 1, "a1", "Leader", "Follower", 0.0),
        transition(&fleet, 2, "a2", "Follower", "Leader", 0.0),
    ]);
    assert_clean(&replay(
        &fleet,
        &current,
        &target,
        &Options::default(),
        &plan,
    ));
}

#[test]
fn a_replica_landing_in_a_disallowed_region_is_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("w1", "Follower"), ("a3", "Follower")],
    );
    let options = Options {
        rate_max: 1000.0,
        ..Options::default()
    };
    let d = copy_seconds(100.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "w1"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", d),
    ]);
    let report = replay(&fleet, &current, &target, &options, &plan);
    assert_reports(
        &report,
        Invariant::Residency,
        &["orders/0", "w1", "region west", "east"],
    );
    assert_only(&report, &[Invariant::Residency]);
}

#[test]
fn an_illegal_transition_is_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    // db has no Leader>Offline: a leader must step down before it leaves.
    let target = orders_at(&fleet, &[("a2", "Follower"), ("a3", "Follower")]);
    let plan = plan_of(vec![drop(&fleet, 1, "orders", "a1", "Leader", 0.0)]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Legality,
        &["orders/0", "Leader>Offline"],
    );
    assert_only(&report, &[Invariant::Legality]);
    // A copy may not arrive as the leader either (no Offline>Leader).
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a2", "Follower"), ("a3", "Follower")],
    );
    let mut straight_to_leader = copy(&fleet, 1, "orders", ("a1", "a4"), 0.0, 100.0);
    if let Action::Replicate { state: arrival, .. } = &mut straight_to_leader.action {
        *arrival = state(&fleet, "orders", "Leader");
    }
    let report = replay(
        &fleet,
        &current,
        &target,
        &Options::default(),
        &plan_of(vec![straight_to_leader]),
    );
    assert_reports(&report, Invariant::Legality, &["Offline>Leader"]);
    assert_reports(&report, Invariant::Leader, &["2 replicas in Leader"]);
}

#[test]
fn steps_on_replicas_that_are_not_there_are_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let plan = plan_of(vec![
        // a4 holds nothing; a2 is a Follower, not a Leader; a3 is already there.
        drop(&fleet, 1, "orders", "a4", "Follower", 0.0),
        transition(&fleet, 2, "a2", "Leader", "Follower", 0.0),
        copy(&fleet, 3, "orders", ("a1", "a3"), 0.0, 100.0),
    ]);
    let report = replay(&fleet, &current, &current, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Legality,
        &["drops the replica of orders/0 on a4, but there is none"],
    );
    assert_reports(
        &report,
        Invariant::Legality,
        &["as Leader, but it is Follower"],
    );
    assert_reports(
        &report,
        Invariant::Legality,
        &["a3, which already holds a replica"],
    );
    // Skipped, so the placement is unchanged and the target (= current) is met.
    assert_only(&report, &[Invariant::Legality]);
}

#[test]
fn starting_an_empty_replica_while_one_serves_is_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let start = Action::Start {
        node: node(&fleet, "a4"),
        state: state(&fleet, "orders", "Follower"),
    };
    let plan = plan_of(vec![
        step(&fleet, 1, "orders", 0.0, start),
        drop(&fleet, 2, "orders", "a2", "Follower", 0.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(&report, Invariant::Legality, &["with no data", "Replicate"]);
    // A new partition has nothing to copy from: starting it is fine.
    let empty = Placement::empty(&fleet);
    let target = orders_at(&fleet, &[("a4", "Follower")]);
    let start = Action::Start {
        node: node(&fleet, "a4"),
        state: state(&fleet, "orders", "Follower"),
    };
    let plan = plan_of(vec![step(&fleet, 1, "orders", 0.0, start)]);
    assert_clean(&replay(&fleet, &empty, &target, &Options::default(), &plan));
}

#[test]
fn a_plan_that_stops_short_of_the_target_is_reported_unless_blocked() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let mut plan = plan_of(Vec::new());
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Target,
        &["orders/0 ends with", "a2 Follower", "a4 Follower"],
    );
    assert_only(&report, &[Invariant::Target]);
    plan.blocked.push(Blocked {
        group: group(&fleet, "orders"),
        partition: 0,
        what: "move a2 to a4".to_string(),
        why: "test".to_string(),
    });
    assert_clean(&replay(
        &fleet,
        &current,
        &target,
        &Options::default(),
        &plan,
    ));
}

#[test]
fn a_copy_whose_length_does_not_match_its_bytes_and_rate_is_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let mut quick = copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0);
    quick.end = 5.0;
    let plan = plan_of(vec![
        quick,
        drop(&fleet, 2, "orders", "a2", "Follower", 5.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Duration,
        &["takes 5.000000s", "10.737418s"],
    );
    assert_only(&report, &[Invariant::Duration]);
    let mut small = copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0);
    if let Action::Replicate { bytes, .. } = &mut small.action {
        *bytes = 1e9;
    }
    small.end = 10.0;
    let plan = plan_of(vec![
        small,
        drop(&fleet, 2, "orders", "a2", "Follower", 10.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Duration,
        &["copies 1000000000 bytes", "1073741824"],
    );
}

#[test]
fn replicas_on_failed_nodes_are_lost_and_untouchable() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a2", "Follower"), ("a4", "Follower")],
    );
    let options = Options {
        failed: vec![node(&fleet, "a3")],
        // Restoring lost redundancy ignores windows.
        windows: vec![(1000.0, 2000.0)],
        ..Options::default()
    };
    let plan = plan_of(vec![copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0)]);
    let report = replay(&fleet, &current, &target, &options, &plan);
    assert_clean(&report);
    // a3's heat is gone: r2 starts empty.
    let r2 = report
        .usage
        .iter()
        .find(|u| u.name == "rack r2 net_mbps")
        .expect("r2 traced");
    assert_eq!(r2.points[0], (0.0, 0.0));
    // Copying from the failed node, or dropping it, is reported.
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a3", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a3", "Follower", 20.0),
    ]);
    let report = replay(&fleet, &current, &target, &options, &plan);
    assert_reports(&report, Invariant::Legality, &["source a3 has failed"]);
    assert_reports(&report, Invariant::Legality, &["node a3 has failed"]);
}

#[test]
fn throttles_are_checked() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let mut clicks_current = current.clone();
    let clicks_first = fleet.group(group(&fleet, "clicks")).partition_slot(0);
    for (k, (n, s)) in [("a1", "Leader"), ("a2", "Replica"), ("a3", "Replica")]
        .iter()
        .enumerate()
    {
        clicks_current.slots[clicks_first + k].node = node(&fleet, n).0;
        clicks_current.slots[clicks_first + k].state = state(&fleet, "clicks", s);
    }
    let mut clicks_target = clicks_current.clone();
    clicks_target.slots[clicks_first + 1].node = node(&fleet, "a4").0;
    let mut both_target = clicks_target.clone();
    both_target.slots[fleet.group(group(&fleet, "orders")).partition_slot(0) + 1].node =
        node(&fleet, "a4").0;
    let d = copy_seconds(100.0);
    // Two 100 MB/s copies from a2 to a4 at once, before the only window opens, against
    // one copy per node, 50 MB/s per copy and 150 MB/s in all.
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        copy(&fleet, 2, "clicks", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 3, "orders", "a2", "Follower", d),
        drop(&fleet, 4, "clicks", "a2", "Replica", d),
    ]);
    let options = Options {
        moves_per_node_max: 1,
        bytes_per_hour_max: Some(150.0 * 1e6 * 3600.0),
        rate_max: 50.0,
        windows: vec![(5.0, 100.0)],
        ..Options::default()
    };
    let report = replay(&fleet, &clicks_current, &both_target, &options, &plan);
    assert_reports(
        &report,
        Invariant::Throttle,
        &["2 copies in flight touching a2", "moves_per_node_max 1"],
    );
    assert_reports(
        &report,
        Invariant::Throttle,
        &["200 MB/s", "bytes_per_hour_max"],
    );
    assert_reports(&report, Invariant::Throttle, &["above rate_max 50"]);
    assert_reports(&report, Invariant::Throttle, &["outside every copy window"]);
    assert_only(&report, &[Invariant::Throttle]);
}

#[test]
fn steps_out_of_order_or_ahead_of_what_they_wait_for_are_reported() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let d = copy_seconds(100.0);
    let mut early = drop(&fleet, 2, "orders", "a2", "Follower", d - 1.0);
    early.reason.after = vec![1, 7];
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a1", "a4"), 5.0, 100.0),
        early,
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(
        &report,
        Invariant::Ordering,
        &["waits for step 1, which ends at"],
    );
    assert_reports(
        &report,
        Invariant::Ordering,
        &["waits for step 7, which the plan does not have"],
    );
    let plan = plan_of(vec![
        drop(&fleet, 2, "orders", "a2", "Follower", d + 5.0),
        copy(&fleet, 1, "orders", ("a1", "a4"), 0.0, 100.0),
    ]);
    let report = replay(&fleet, &current, &target, &Options::default(), &plan);
    assert_reports(&report, Invariant::Ordering, &["steps are sorted by start"]);
}

#[test]
fn references_the_fleet_does_not_have_are_reported_without_panicking() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let mut bad_group = drop(&fleet, 1, "orders", "a2", "Follower", 0.0);
    bad_group.group = GroupId(99);
    let mut bad_partition = drop(&fleet, 2, "orders", "a2", "Follower", 0.0);
    bad_partition.partition = 5;
    let bad_node = step(
        &fleet,
        3,
        "orders",
        0.0,
        Action::Drop {
            node: NodeId(999),
            from: StateId(1),
        },
    );
    let bad_state = step(
        &fleet,
        4,
        "orders",
        0.0,
        Action::Drop {
            node: node(&fleet, "a2"),
            from: StateId(40),
        },
    );
    let mut bad_load = copy(&fleet, 5, "orders", ("a2", "a4"), 0.0, 100.0);
    if let Action::Replicate { loads, .. } = &mut bad_load.action {
        loads.push(Load {
            resource: Resource::Domain {
                domain: meridian_model::DomainId(12345),
                dim: 0,
            },
            amount: 1.0,
        });
        loads.push(Load {
            resource: Resource::Domain {
                domain: meridian_model::DomainId(0),
                dim: 0,
            },
            amount: f64::NAN,
        });
    }
    let mut bad_time = drop(&fleet, 6, "orders", "a2", "Follower", f64::NAN);
    bad_time.end = f64::NAN;
    let plan = plan_of(vec![
        bad_group,
        bad_partition,
        bad_node,
        bad_state,
        bad_load,
        bad_time,
    ]);
    let report = replay(&fleet, &current, &current, &Options::default(), &plan);
    assert_reports(&report, Invariant::Legality, &["group #99"]);
    assert_reports(&report, Invariant::Legality, &["partition 5 of orders"]);
    assert_reports(&report, Invariant::Legality, &["node #999"]);
    assert_reports(&report, Invariant::Legality, &["state #40"]);
    assert_reports(&report, Invariant::Loads, &["12345"]);
    assert_reports(&report, Invariant::Loads, &["NaN"]);
    assert_reports(&report, Invariant::Ordering, &["times are finite"]);
    // A placement of the wrong size is reported, not indexed.
    let short = Placement { slots: Vec::new() };
    let report = replay(&fleet, &short, &current, &Options::default(), &plan);
    assert_reports(&report, Invariant::Input, &["0 slots"]);
    assert_eq!(
        apply_until(&fleet, &short, &Options::default(), &plan, 10.0),
        short
    );
}

#[test]
fn apply_until_keeps_finished_work_only() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let d = copy_seconds(100.0);
    let options = Options::default();
    // The drop waits 5 s after the copy lands.
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 100.0),
        drop(&fleet, 2, "orders", "a2", "Follower", d + 5.0),
    ]);
    assert_clean(&replay(&fleet, &current, &target, &options, &plan));
    // Mid-copy: nothing has landed.
    assert_eq!(apply_until(&fleet, &current, &options, &plan, 1.0), current);
    // Landed, not yet dropped: four replicas, three slots; a2 is on its way out.
    assert_eq!(
        replicas_at(&fleet, &current, &options, &plan, d + 1.0).len(),
        4
    );
    assert_eq!(
        apply_until(&fleet, &current, &options, &plan, d + 1.0),
        target
    );
    // Done: the target, with a1 and a3 in the slots they had.
    let done = apply_until(&fleet, &current, &options, &plan, d + 5.0);
    assert_eq!(done, target);
    // A re-plan from the applied placement has nothing left to do.
    assert_clean(&replay(
        &fleet,
        &done,
        &target,
        &options,
        &plan_of(Vec::new()),
    ));
}

#[test]
fn apply_until_frees_the_slots_of_failed_nodes() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let options = Options {
        failed: vec![node(&fleet, "a2")],
        ..Options::default()
    };
    let plan = plan_of(vec![copy(&fleet, 1, "orders", ("a3", "a4"), 0.0, 100.0)]);
    let applied = apply_until(&fleet, &current, &options, &plan, 100.0);
    let first = fleet.group(group(&fleet, "orders")).partition_slot(0);
    let nodes: Vec<u32> = applied.slots[first..first + 3]
        .iter()
        .map(|s| s.node)
        .collect();
    assert_eq!(
        nodes,
        vec![
            node(&fleet, "a1").0,
            node(&fleet, "a4").0,
            node(&fleet, "a3").0
        ]
    );
    // Mid-copy, the lost replica's slot is simply empty.
    let applied = apply_until(&fleet, &current, &options, &plan, 1.0);
    assert_eq!(applied.slots[first + 1].node, UNASSIGNED);
}

#[test]
fn a_copy_below_rate_min_is_a_deadlock_break_only_when_nothing_earlier_is_in_flight() {
    let fleet = tiny();
    let current = start_orders(&fleet);
    let target = orders_at(
        &fleet,
        &[("a1", "Leader"), ("a4", "Follower"), ("a3", "Follower")],
    );
    let options = Options::default();
    // Alone, a 5 MB/s crawl is how a stuck plan moves at all.
    let slow = copy_seconds(5.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "orders", ("a2", "a4"), 0.0, 5.0),
        drop(&fleet, 2, "orders", "a2", "Follower", slow),
    ]);
    assert_clean(&replay(&fleet, &current, &target, &options, &plan));
    // Behind a copy still running, it should have waited for the room that copy frees.
    let mut two = start_orders(&fleet);
    let clicks_first = fleet.group(group(&fleet, "clicks")).partition_slot(0);
    for (k, (n, s)) in [("a1", "Leader"), ("a2", "Replica"), ("a3", "Replica")]
        .iter()
        .enumerate()
    {
        two.slots[clicks_first + k].node = node(&fleet, n).0;
        two.slots[clicks_first + k].state = state(&fleet, "clicks", s);
    }
    let mut both = two.clone();
    both.slots[clicks_first + 1].node = node(&fleet, "w2").0;
    both.slots[fleet.group(group(&fleet, "orders")).partition_slot(0) + 1].node =
        node(&fleet, "a4").0;
    let fast = copy_seconds(100.0);
    let plan = plan_of(vec![
        copy(&fleet, 1, "clicks", ("a3", "w2"), 0.0, 100.0),
        copy(&fleet, 2, "orders", ("a2", "a4"), 1.0, 5.0),
        drop(&fleet, 3, "clicks", "a2", "Replica", fast),
        drop(&fleet, 4, "orders", "a2", "Follower", 1.0 + slow),
    ]);
    let report = replay(&fleet, &two, &both, &options, &plan);
    assert_reports(
        &report,
        Invariant::Throttle,
        &["below rate_min 10", "1 earlier copies are in flight"],
    );
    assert_only(&report, &[Invariant::Throttle]);
}
