use proptest::prelude::*;

use super::*;
use crate::test_fleet::{node, parse, region, tiny_fleet, DAY_S, HOUR_S};

fn spec(yaml: &str) -> FaultSpec {
    parse(yaml)
}

fn schedule(yaml: &str, seed: u64, duration_s: f64) -> FaultSchedule {
    let fleet = tiny_fleet();
    match FaultSchedule::new(&spec(yaml), &fleet, seed, duration_s) {
        Ok(schedule) => schedule,
        Err(error) => panic!("test spec does not resolve: {error}"),
    }
}

fn error(yaml: &str) -> SpecError {
    let fleet = tiny_fleet();
    match FaultSchedule::new(&spec(yaml), &fleet, 1, DAY_S) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(error) => error,
    }
}

fn names(fleet: &Fleet, nodes: &[NodeId]) -> Vec<String> {
    nodes
        .iter()
        .map(|&node| fleet.topology.node_name(node).to_string())
        .collect()
}

fn dim(fleet: &Fleet, name: &str) -> DimId {
    fleet.dims.get(name).expect("a default dimension")
}

fn domain(fleet: &Fleet, name: &str) -> DomainId {
    fleet
        .topology
        .domain_by_name(name)
        .expect("a domain of the test fleet")
}

#[test]
fn node_crash_is_down_until_it_recovers() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events: [ { node_crash: { node: n03, at: 2h, recover_after: 30m } } ]",
        1,
        DAY_S,
    );
    let n03 = node(&fleet, "n03");
    assert!(!schedule.at(2.0 * HOUR_S - 1.0).is_node_down(n03));
    assert!(schedule.at(2.0 * HOUR_S).is_node_down(n03));
    assert_eq!(
        names(&fleet, &schedule.at(2.2 * HOUR_S).nodes_down()),
        ["n03"]
    );
    assert!(!schedule.at(2.5 * HOUR_S).is_node_down(n03));
    assert!(schedule.at(2.5 * HOUR_S).is_quiet());
    let events = schedule.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].description, "node n03 down for 30m");
    assert!(!events[0].random);
}

#[test]
fn node_crash_without_recovery_lasts_to_the_end() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events: [ { node_crash: { node: gpu1, at: 1h } } ]",
        1,
        DAY_S,
    );
    assert!(schedule.at(DAY_S - 1.0).is_node_down(node(&fleet, "gpu1")));
    assert_eq!(schedule.events()[0].end_s, None);
    assert_eq!(
        schedule.events()[0].description,
        "node gpu1 down until the end"
    );
    assert_eq!(schedule.next_change_after(HOUR_S), None);
}

#[test]
fn pdu_loss_takes_down_every_node_under_it() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events:
  - { pdu_loss: { pdu: pdu-3, at: 1h, recover_after: 1h } }
  - { pdu_loss: { pdu: r01, at: 5h, recover_after: 1h } }",
        1,
        DAY_S,
    );
    let down = schedule.at(1.5 * HOUR_S).nodes_down();
    assert_eq!(names(&fleet, &down), ["n11", "n12", "n13", "gpu1"]);
    assert!(schedule.at(2.0 * HOUR_S).nodes_down().is_empty());
    let rack = schedule.at(5.5 * HOUR_S).nodes_down();
    assert_eq!(names(&fleet, &rack), ["n01", "n02", "n03"]);
    assert_eq!(
        schedule.events()[0].description,
        "pdu pdu-3 loses power (4 nodes down) for 1h"
    );
}

#[test]
fn link_degradation_scales_net_capacity_and_overlaps_multiply() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events:
  - { link_degradation: { domain: r01, at: 3h, duration: 2h, capacity_factor: 0.5 } }
  - { link_degradation: { domain: r01, at: 4h, duration: 2h, capacity_factor: 0.5 } }
  - { link_degradation: { between: [ap-south, us-east], at: 3h, capacity_factor: 0.2 } }",
        1,
        DAY_S,
    );
    let (r01, net) = (domain(&fleet, "r01"), dim(&fleet, "net_mbps"));
    assert_eq!(schedule.at(3.5 * HOUR_S).capacity_factor(r01, net), 0.5);
    let both = schedule.at(4.5 * HOUR_S);
    assert_eq!(both.capacity_factor(r01, net), 0.25);
    assert_eq!(
        both.capacity_factors().len(),
        1,
        "one entry per domain and dimension"
    );
    assert_eq!(both.capacity_factor(r01, dim(&fleet, "cpu")), 1.0);
    assert_eq!(schedule.at(5.5 * HOUR_S).capacity_factor(r01, net), 0.5);
    let (us, ap) = (region(&fleet, "us-east"), region(&fleet, "ap-south"));
    assert_eq!(both.region_link_factor(ap, us), 0.2);
    assert_eq!(both.region_link_factor(us, ap), 0.2);
    assert_eq!(schedule.at(HOUR_S).region_link_factor(us, ap), 1.0);
    assert_eq!(
        schedule.events()[0].description,
        "rack r01 at 50% net_mbps for 2h"
    );
}

#[test]
fn slow_disk_scales_the_nodes_disk_bandwidth_and_iops() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events: [ { slow_disk: { node: n05, at: 1h, duration: 4h, factor: 0.2 } } ]",
        1,
        DAY_S,
    );
    let state = schedule.at(2.0 * HOUR_S);
    let n05 = fleet.topology.node_domain(node(&fleet, "n05"));
    assert_eq!(state.capacity_factor(n05, dim(&fleet, "disk_mbps")), 0.2);
    assert_eq!(state.capacity_factor(n05, dim(&fleet, "disk_iops")), 0.2);
    assert_eq!(state.capacity_factor(n05, dim(&fleet, "net_mbps")), 1.0);
    assert!(!state.is_node_down(node(&fleet, "n05")));
}

#[test]
fn region_partition_cuts_both_directions() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events: [ { region_partition: { regions: [us-east, ap-south], at: 10h, duration: 20m } } ]",
        1,
        DAY_S,
    );
    let (us, ap) = (region(&fleet, "us-east"), region(&fleet, "ap-south"));
    let state = schedule.at(10.1 * HOUR_S);
    assert!(state.is_partitioned(us, ap) && state.is_partitioned(ap, us));
    assert_eq!(state.partitioned(), [(us, ap)]);
    assert!(!schedule.at(10.5 * HOUR_S).is_partitioned(us, ap));
}

#[test]
fn telemetry_loss_is_global_or_scoped() {
    let fleet = tiny_fleet();
    let schedule = schedule(
        "events:
  - { telemetry_loss: { at: 1h, duration: 15m } }
  - { telemetry_loss: { at: 3h, duration: 15m, scope: r11 } }
  - { telemetry_loss: { at: 5h, duration: 15m, scope: n02 } }",
        1,
        DAY_S,
    );
    let global = schedule.at(HOUR_S + 60.0);
    assert!(global.telemetry_lost_everywhere());
    assert_eq!(
        global.telemetry_lost_nodes().len(),
        fleet.topology.nodes.len()
    );
    let rack = schedule.at(3.0 * HOUR_S + 60.0);
    assert!(!rack.telemetry_lost_everywhere());
    assert_eq!(
        names(&fleet, &rack.telemetry_lost_nodes()),
        ["n11", "n12", "n13"]
    );
    let one = schedule.at(5.0 * HOUR_S + 60.0);
    assert!(one.is_telemetry_lost(node(&fleet, "n02")));
    assert!(!one.is_telemetry_lost(node(&fleet, "n01")));
}

#[test]
fn controller_crash_stops_decisions_for_its_duration() {
    let schedule = schedule(
        "events: [ { controller_crash: { at: 14h, duration: 10m } } ]",
        1,
        DAY_S,
    );
    assert!(!schedule.at(14.0 * HOUR_S - 1.0).is_controller_down());
    assert!(schedule.at(14.0 * HOUR_S).is_controller_down());
    assert!(!schedule.at(14.0 * HOUR_S + 600.0).is_controller_down());
    assert_eq!(schedule.events()[0].description, "controller down for 10m");
}

#[test]
fn next_change_skips_quiet_periods() {
    let schedule = schedule(
        "events:
  - { node_crash: { node: n01, at: 2h, recover_after: 1h } }
  - { controller_crash: { at: 2h, duration: 30m } }
  - { slow_disk: { node: n02, at: 10h, factor: 0.5 } }",
        1,
        DAY_S,
    );
    assert_eq!(schedule.next_change_after(0.0), Some(2.0 * HOUR_S));
    assert_eq!(schedule.next_change_after(2.0 * HOUR_S), Some(2.5 * HOUR_S));
    assert_eq!(schedule.next_change_after(2.5 * HOUR_S), Some(3.0 * HOUR_S));
    assert_eq!(
        schedule.next_change_after(3.0 * HOUR_S),
        Some(10.0 * HOUR_S)
    );
    assert_eq!(schedule.next_change_after(10.0 * HOUR_S), None);
}

#[test]
fn unknown_names_are_errors_at_their_field() {
    let cases = [
        (
            "events: [ { node_crash: { node: n01, at: 1h } }, { node_crash: { node: n3, at: 1h } } ]",
            "faults.events[1].node_crash.node",
            "unknown node \"n3\" (did you mean n03, n13?)",
        ),
        (
            "events: [ { pdu_loss: { pdu: pdu-9, at: 1h } } ]",
            "faults.events[0].pdu_loss.pdu",
            "unknown power domain \"pdu-9\" (did you mean pdu-1, pdu-2, pdu-3?)",
        ),
        (
            "events: [ { pdu_loss: { pdu: use-sp1, at: 1h } } ]",
            "faults.events[0].pdu_loss.pdu",
            "\"use-sp1\" is a spine, not a power domain above the nodes",
        ),
        (
            "events: [ { link_degradation: { domain: pdu-1, at: 1h, capacity_factor: 0.5 } } ]",
            "faults.events[0].link_degradation.domain",
            "\"pdu-1\" is a pdu, not a network domain above the nodes",
        ),
        (
            "events: [ { region_partition: { regions: [us-east, eu-west], at: 1h } } ]",
            "faults.events[0].region_partition.regions[1]",
            "unknown region \"eu-west\"",
        ),
        (
            "events: [ { telemetry_loss: { at: 1h, duration: 5m, scope: r12 } } ]",
            "faults.events[0].telemetry_loss.scope",
            "unknown node or domain \"r12\" (did you mean n12, r02, r11?); write `all` or a node or domain name",
        ),
    ];
    for (yaml, path, message) in cases {
        let error = error(yaml);
        assert_eq!(error.path, path, "{yaml}");
        assert_eq!(error.message, message, "{yaml}");
    }
}

#[test]
fn bad_values_are_errors_at_their_field() {
    let cases = [
        ("events: [ { node_crash: { node: n01, at: 2d } } ]", "faults.events[0].node_crash.at"),
        ("events: [ { node_crash: { node: n01, at: 1h, recover_after: 0s } } ]", "faults.events[0].node_crash.recover_after"),
        ("events: [ { link_degradation: { at: 1h, capacity_factor: 0.5 } } ]", "faults.events[0].link_degradation"),
        ("events: [ { link_degradation: { domain: r01, between: [us-east, ap-south], at: 1h, capacity_factor: 0.5 } } ]", "faults.events[0].link_degradation"),
        ("events: [ { link_degradation: { domain: r01, at: 1h, capacity_factor: 1.5 } } ]", "faults.events[0].link_degradation.capacity_factor"),
        ("events: [ { slow_disk: { node: n01, at: 1h, factor: -0.1 } } ]", "faults.events[0].slow_disk.factor"),
        ("events: [ { region_partition: { regions: [us-east, us-east], at: 1h } } ]", "faults.events[0].region_partition.regions"),
        ("events: [ { controller_crash: { at: 1h, duration: 0s } } ]", "faults.events[0].controller_crash.duration"),
        ("random: { node_crashes_per_day: -1 }", "faults.random.node_crashes_per_day"),
        ("random: { node_crashes_per_day: 1000000 }", "faults.random.node_crashes_per_day"),
        ("random: { mean_recovery: 0s }", "faults.random.mean_recovery"),
        ("random: { slow_disk_factor: 2 }", "faults.random.slow_disk_factor"),
    ];
    for (yaml, path) in cases {
        assert_eq!(error(yaml).path, path, "{yaml}");
    }
}

const STORM: &str = "random:
  node_crashes_per_day: 6
  pdu_losses_per_day: 2
  link_degradations_per_day: 4
  slow_disks_per_day: 3
  region_partitions_per_day: 1
  telemetry_losses_per_day: 2
  controller_crashes_per_day: 2
  mean_recovery: 20m";

#[test]
fn storm_is_fixed_by_the_seed() {
    let first = schedule(STORM, 7, 3.0 * DAY_S);
    let again = schedule(STORM, 7, 3.0 * DAY_S);
    let other = schedule(STORM, 8, 3.0 * DAY_S);
    assert_eq!(first.events(), again.events());
    assert_ne!(first.events(), other.events());
    let count = first.events().len();
    assert!((30..=90).contains(&count), "expected about 60, got {count}");
    assert!(first.events().iter().all(|event| event.random));
    assert!(first
        .events()
        .windows(2)
        .all(|pair| pair[0].start_s <= pair[1].start_s));
    for event in first.events() {
        assert!(event.start_s < 3.0 * DAY_S);
        let length_s = event.end_s.unwrap() - event.start_s;
        assert!(length_s >= RANDOM_FAULT_S_MIN);
        assert!(event.description.starts_with("random: "));
    }
}

#[test]
fn storm_kinds_draw_from_their_own_streams() {
    let crashes = |events: &[FaultEvent]| -> Vec<FaultEvent> {
        events
            .iter()
            .filter(|event| matches!(event.fault, Fault::NodeCrash { .. }))
            .cloned()
            .collect()
    };
    let storm = schedule(STORM, 7, 3.0 * DAY_S);
    let only_crashes = schedule(
        "random: { node_crashes_per_day: 6, mean_recovery: 20m }",
        7,
        3.0 * DAY_S,
    );
    assert_eq!(crashes(storm.events()), only_crashes.events());
}

#[test]
fn storm_targets_fit_their_kind() {
    let fleet = tiny_fleet();
    let storm = schedule(STORM, 3, 10.0 * DAY_S);
    let pdus = ["pdu-1", "pdu-2", "pdu-3"].map(|name| domain(&fleet, name));
    let links = ["use-sp1", "r01", "r02", "r11"].map(|name| domain(&fleet, name));
    for event in storm.events() {
        match &event.fault {
            Fault::PowerLoss { domain, nodes } => {
                assert!(pdus.contains(domain));
                assert_eq!(*nodes, fleet.topology.nodes_under(*domain));
            }
            Fault::LinkDegradation {
                link: Link::Domain(domain),
                capacity_factor,
            } => {
                assert!(links.contains(domain), "{}", event.description);
                assert_eq!(*capacity_factor, 0.5);
            }
            Fault::SlowDisk { node, domain, .. } => {
                assert_eq!(*domain, fleet.topology.node_domain(*node));
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The state at any time is exactly the events in force then, and nothing changes
    /// between `t` and `next_change_after(t)`.
    #[test]
    fn state_matches_events_and_is_constant_between_changes(
        seed in any::<u64>(),
        t_s in 0.0..(2.0 * DAY_S),
        along in 0.0..1.0f64,
    ) {
        let fleet = tiny_fleet();
        let schedule = schedule(STORM, seed, 2.0 * DAY_S);
        let state = schedule.at(t_s);
        for node in fleet.topology.node_ids() {
            let expected = schedule.events().iter().any(|event| {
                event.is_active(t_s)
                    && match &event.fault {
                        Fault::NodeCrash { node: crashed } => *crashed == node,
                        Fault::PowerLoss { nodes, .. } => nodes.contains(&node),
                        _ => false,
                    }
            });
            prop_assert_eq!(state.is_node_down(node), expected);
        }
        let controller = schedule.events().iter().any(|event| {
            event.is_active(t_s) && event.fault == Fault::ControllerCrash
        });
        prop_assert_eq!(state.is_controller_down(), controller);
        let next_s = schedule.next_change_after(t_s).unwrap_or(2.0 * DAY_S);
        prop_assert!(next_s > t_s);
        let mut later = schedule.at(t_s + (next_s - t_s) * along);
        later.t_s = t_s;
        prop_assert_eq!(later, state);
    }
}
