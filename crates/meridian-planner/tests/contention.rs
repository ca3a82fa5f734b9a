//! Two products, one spine: a database follower moves and an inference replica pulls its
//! weights, both across spine `s1`'s uplink. Each copy alone fits at full rate; together at
//! full rate they would not. The plan must slow or serialize them so the uplink stays under
//! its limit at every instant.

mod common;

use common::placement;
use meridian_model::Fleet;
use meridian_planner::{plan, Action, Options, Resource};

const FLEET: &str = r#"
name: shared-spine
topology:
  network:
    levels: [zone, spine, rack, node]
    domains:
      - name: z1
        children:
          - name: s1
            capacity: { net_mbps: 2400 }
            children:
              - { name: ra, children: [a1, a2] }
              - { name: rg, children: [g1] }
          - name: s2
            children:
              - { name: rb, children: [b1, g2] }
  power:
    levels: [feed, pdu, rack, node]
    domains:
      - name: f1
        children:
          - { name: p1, children: [ra, rg] }
          - { name: p2, children: [rb] }
node_classes:
  storage: { capacity: { cpu: 32, disk_gib: 4000, disk_mbps: 2000, net_mbps: 25000 }, labels: { disk: nvme } }
  gpu: { capacity: { cpu: 32, disk_gib: 4000, disk_mbps: 2000, net_mbps: 25000, gpu_mem_gib: 80 }, labels: { gpu: h100 } }
nodes:
  - { name: a1, class: storage }
  - { name: a2, class: storage }
  - { name: b1, class: storage }
  - { name: g1, class: gpu }
  - { name: g2, class: gpu }
groups:
  - name: orders
    product: db
    partitions: 1
    counts: { Leader: 1, Follower: 1 }
    size_gib: 100
    heat:
      Leader: { cpu: 2, disk_gib: 100 }
      Follower: { cpu: 1, disk_gib: 100 }
    selector: { disk: nvme }
  - name: llm
    product: ai
    partitions: 1
    counts: { Active: 1 }
    size_gib: 50
    heat:
      Active: { cpu: 4, gpu_mem_gib: 40, disk_gib: 50 }
    selector: { gpu: h100 }
"#;

/// Load on `domain`'s `net_mbps` from copies in flight at time `t` (nothing steady uses it).
fn copy_load_at(
    plan: &meridian_planner::Plan,
    domain: meridian_model::DomainId,
    net: usize,
    t: f64,
) -> f64 {
    plan.steps
        .iter()
        .filter(|s| s.start <= t && t < s.end)
        .filter_map(|s| match &s.action {
            Action::Replicate { loads, .. } => Some(loads),
            _ => None,
        })
        .flatten()
        .filter(|l| l.resource == Resource::Domain { domain, dim: net })
        .map(|l| l.amount)
        .sum()
}

/// The database follower moves a2 -> b1 and the inference replica g1 -> g2: both cross `s1`.
fn both_moves(fleet: &Fleet) -> (meridian_model::Placement, meridian_model::Placement) {
    let current = placement(
        fleet,
        &[
            ("orders", "a1", "Leader"),
            ("orders", "a2", "Follower"),
            ("llm", "g1", "Active"),
        ],
    );
    let target = placement(
        fleet,
        &[
            ("orders", "a1", "Leader"),
            ("orders", "b1", "Follower"),
            ("llm", "g2", "Active"),
        ],
    );
    (current, target)
}

#[test]
fn two_products_sharing_a_spine_are_throttled_under_its_limit() {
    let fleet = Fleet::from_yaml(FLEET, "shared-spine.yaml").expect("valid fleet");
    let (current, target) = both_moves(&fleet);
    let options = Options::default();
    let s1 = fleet.topology.domain_by_name("s1").expect("s1");
    let net = fleet.dims.get("net_mbps").expect("net_mbps").index();
    let limit = fleet.limit_of(s1)[net];

    // The collision is real: both copies at full rate would need more than the spine has.
    let full_rate_mbps = options.rate_max * 8.0;
    assert!(full_rate_mbps <= limit, "each copy alone fits");
    assert!(
        2.0 * full_rate_mbps > limit,
        "both at once at full rate would not"
    );

    let plan = plan(&fleet, &current, &target, &options, 0.0);
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    let copies: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Replicate { .. }))
        .collect();
    assert_eq!(copies.len(), 2, "one copy per product");
    for copy in &copies {
        let Action::Replicate { loads, .. } = &copy.action else {
            unreachable!()
        };
        assert!(
            loads.iter().any(|l| l.resource
                == Resource::Domain {
                    domain: s1,
                    dim: net
                }),
            "both copies cross s1"
        );
    }
    // At every instant the spine carries at most its limit.
    let mut times: Vec<f64> = plan.steps.iter().flat_map(|s| [s.start, s.end]).collect();
    times.sort_by(f64::total_cmp);
    let mut peak = 0.0f64;
    println!("  time (s)   s1 net_mbps in use of {limit:.0}");
    for &t in &times {
        let load = copy_load_at(&plan, s1, net, t).max(0.0);
        println!(
            "  {t:>8.1}   {load:>6.0} {}",
            "#".repeat((load / limit * 40.0).round() as usize)
        );
        peak = peak.max(load);
    }
    assert!(
        peak <= limit * (1.0 + 1e-9),
        "s1 peaked at {peak} over its limit {limit}"
    );
    // And the plan used it: the second copy was slowed (or delayed), not dropped.
    assert!(
        peak > full_rate_mbps,
        "the copies overlap at a reduced rate: peak {peak}"
    );
    // Make-before-break: the old follower and the old inference replica go only after their
    // copies finish.
    for step in &plan.steps {
        if let Action::Drop { node, .. } = step.action {
            let copy = copies
                .iter()
                .find(|c| c.group == step.group)
                .expect("a copy for the group");
            assert!(
                step.start >= copy.end,
                "drop on {} before its replacement arrived",
                fleet.topology.node_name(node)
            );
        }
    }
}

/// A copy of an earlier plan still holds most of `s1` until t = 600 s: this plan's copies
/// across `s1` must not count on that room, so they fit what is left until it ends, and the
/// independent replay (which books the same in-flight load) finds nothing over the limit.
#[test]
fn copies_in_flight_from_an_earlier_plan_keep_their_room_until_they_end() {
    let fleet = Fleet::from_yaml(FLEET, "shared-spine.yaml").expect("valid fleet");
    let (current, target) = both_moves(&fleet);
    let s1 = fleet.topology.domain_by_name("s1").expect("s1");
    let net = fleet.dims.get("net_mbps").expect("net_mbps").index();
    let limit = fleet.limit_of(s1)[net];
    let held = limit - 400.0; // 50 MB/s left for this plan until the earlier copy ends
    let options = Options {
        in_flight: vec![meridian_planner::InFlight {
            loads: vec![meridian_planner::Load {
                resource: Resource::Domain {
                    domain: s1,
                    dim: net,
                },
                amount: held,
            }],
            until: 600.0,
        }],
        ..Options::default()
    };
    let plan = plan(&fleet, &current, &target, &options, 0.0);
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    let mut times: Vec<f64> = plan.steps.iter().flat_map(|s| [s.start, s.end]).collect();
    times.push(599.0);
    for t in times {
        let earlier = if t < 600.0 { held } else { 0.0 };
        let load = copy_load_at(&plan, s1, net, t) + earlier;
        assert!(
            load <= limit * (1.0 + 1e-9),
            "s1 at {load} of {limit} at t={t}"
        );
    }
    let report = meridian_planner::replay::replay(&fleet, &current, &target, &options, &plan);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    // And with the earlier copy's room counted, the same plan would overload s1.
    let unaware = meridian_planner::plan(&fleet, &current, &target, &Options::default(), 0.0);
    let report = meridian_planner::replay::replay(&fleet, &current, &target, &options, &unaware);
    assert!(
        !report.violations.is_empty(),
        "a plan that ignores the copy in flight should overload s1 under replay"
    );
}
