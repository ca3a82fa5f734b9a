//! Properties of the solver over random fleets: hard constraints always hold (checked by the
//! model's independent checker), results are deterministic, repair moves only what it must,
//! the tree search finds the node the score ranks best, and infeasibility is reported.

mod fleets;

use meridian_model::check::{check, ViolationKind};
use meridian_model::placement::Replica;
use meridian_model::{Fleet, Placement};
use meridian_solver::context::Context;
use meridian_solver::search::{best_node, score_node, Request};
use meridian_solver::state::State;
use meridian_solver::{solve, Engine, Mode, Options};
use proptest::prelude::*;

use fleets::{fleet_yaml, strategies, Shape};

/// Shapes whose validation fails (e.g. spread asking for more racks than a region has) are
/// skipped: validation is tested on its own; here we want solvable-looking inputs.
fn load(shape: &Shape) -> Option<Fleet> {
    Fleet::from_yaml(&fleet_yaml(shape), "prop.yaml").ok()
}

/// Random fleet shapes that pass validation, with their fleets.
fn loaded() -> impl Strategy<Value = (Shape, Fleet)> {
    strategies::shape().prop_filter_map("the shape fails validation", |shape| {
        load(&shape).map(|fleet| (shape, fleet))
    })
}

fn replicas(fleet: &Fleet, placement: &Placement) -> Vec<Replica> {
    placement
        .to_doc(fleet)
        .resolve(fleet, "solution")
        .expect("solver output resolves")
        .replicas
}

fn full(seed: u64) -> Options {
    Options {
        mode: Mode::Full,
        seed,
        ..Options::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_hard_constraint_holds((_, fleet) in loaded(), seed in 0u64..1000) {
        let solution = solve(&fleet, &[], &full(seed));
        let violations = check(&fleet, &replicas(&fleet, &solution.placement));
        if solution.is_complete() {
            prop_assert!(violations.is_empty(), "violations: {violations:?}");
        } else {
            // Unplaced replicas show up as missing counts, and as nothing else.
            prop_assert!(violations.iter().all(|v| v.kind == ViolationKind::Count), "violations: {violations:?}");
            prop_assert!(solution.failures.iter().all(|f| !f.summary.is_empty() && !f.rejected_by.is_empty()));
        }
    }

    #[test]
    fn same_inputs_and_seed_give_the_same_placement((_, fleet) in loaded(), seed in 0u64..1000) {
        let a = solve(&fleet, &[], &full(seed));
        let b = solve(&fleet, &[], &full(seed));
        prop_assert_eq!(a.placement, b.placement);
    }

    #[test]
    fn repair_after_node_loss_moves_only_the_lost_replicas((_, fleet) in loaded(), seed in 0u64..1000, victim in 0usize..1000) {
        let before = solve(&fleet, &[], &full(seed));
        prop_assume!(before.is_complete());
        let current = replicas(&fleet, &before.placement);
        let failed = meridian_model::NodeId((victim % fleet.topology.nodes.len()) as u32);
        let lost = current.iter().filter(|r| r.node == failed).count();
        let options = Options { mode: Mode::Repair, seed, rebalance: false, drain: vec![fleet.topology.node_domain(failed)], ..Options::default() };
        let after = solve(&fleet, &current, &options);
        // Every lost replica is re-placed or reported as unplaceable; nothing else moves.
        let unplaced = after.stats.replicas - after.stats.placed;
        prop_assert_eq!(after.stats.moved + unplaced, lost);
        prop_assert_eq!(after.is_complete(), unplaced == 0);
        prop_assert_eq!(after.stats.kept, current.len() - lost);
        let placed = replicas(&fleet, &after.placement);
        prop_assert!(placed.iter().all(|r| r.node != failed));
        let violations: Vec<_> = check(&fleet, &placed).into_iter().filter(|v| v.kind != ViolationKind::Count || after.is_complete()).collect();
        prop_assert!(violations.is_empty(), "violations: {violations:?}");
        // Survivors keep their node (a follower may be promoted in place).
        for replica in current.iter().filter(|r| r.node != failed) {
            prop_assert!(placed.iter().any(|p| p.group == replica.group && p.partition == replica.partition && p.node == replica.node));
        }
    }

    #[test]
    fn the_in_memory_engine_repairs_a_failed_rack_minimally((_, fleet) in loaded(), seed in 0u64..1000, victim in 0usize..1000) {
        let before = solve(&fleet, &[], &full(seed));
        prop_assume!(before.is_complete());
        let racks: Vec<_> = fleet.topology.domain_ids().filter(|d| fleet.topology.level_name(fleet.topology.domain(*d).level) == "rack").collect();
        let rack = racks[victim % racks.len()];
        let mut engine = Engine::new(&fleet, &before.placement, seed);
        let report = engine.close(rack);
        let after = engine.placement();
        let lost: Vec<usize> = (0..fleet.slot_count).filter(|&s| before.placement.slots[s].node().is_some_and(|n| fleet.topology.chain(n).contains(&rack))).collect();
        prop_assert_eq!(report.lost, lost.len());
        prop_assert_eq!(report.placed.len() + report.failed, lost.len());
        // Nothing outside the rack moved; roles may change only by promotion.
        for slot in 0..fleet.slot_count {
            let old = before.placement.slots[slot].node();
            if old.is_some_and(|n| !fleet.topology.chain(n).contains(&rack)) {
                let survived = (0..fleet.slot_count).any(|t| after.slots[t].node() == old && fleet.locate_slot(t).0 == fleet.locate_slot(slot).0 && fleet.locate_slot(t).1 == fleet.locate_slot(slot).1);
                prop_assert!(survived, "slot {slot} left its node");
            }
        }
        let placed = replicas(&fleet, &after);
        prop_assert!(placed.iter().all(|r| !fleet.topology.chain(r.node).contains(&rack)));
        let violations: Vec<_> = check(&fleet, &placed).into_iter().filter(|v| v.kind != ViolationKind::Count || report.failed == 0).collect();
        prop_assert!(violations.is_empty(), "violations: {violations:?}");
    }

    #[test]
    fn rebalance_keeps_every_constraint_and_never_raises_the_peak((_, fleet) in loaded(), seed in 0u64..1000) {
        let start = solve(&fleet, &[], &Options { mode: Mode::Full, seed, rebalance: false, ..Options::default() });
        prop_assume!(start.is_complete());
        let current = replicas(&fleet, &start.placement);
        let after = solve(&fleet, &current, &Options { mode: Mode::Repair, seed, ..Options::default() });
        prop_assert!(after.is_complete());
        let violations = check(&fleet, &replicas(&fleet, &after.placement));
        prop_assert!(violations.is_empty(), "violations: {violations:?}");
        let context = Context::new(&fleet);
        let peak = |placement: &Placement| meridian_solver::shed::pressure_summary(&context, &State::new(&context, placement.slots.clone()), 1.0).0;
        prop_assert!(peak(&after.placement) <= peak(&start.placement) + 1e-9, "peak rose from {} to {}", peak(&start.placement), peak(&after.placement));
        // Pinned replicas never leave their pinned node.
        for group in &fleet.groups {
            for pin in &group.pins {
                let first = group.partition_slot(pin.partition);
                let held = (first..first + group.replicas_per_partition()).any(|s| after.placement.slots[s].node() == Some(pin.node));
                prop_assert!(held);
            }
        }
    }

    #[test]
    fn after_capacity_shrinks_repair_moves_only_from_domains_over_their_limit((shape, fleet) in loaded(), seed in 0u64..1000, shrink in 0.5f64..0.95) {
        let before = solve(&fleet, &[], &full(seed));
        prop_assume!(before.is_complete());
        // The same fleet with smaller nodes: as if every task had grown by 1 / shrink.
        let mut smaller_shape = shape.clone();
        smaller_shape.capacity_scale *= shrink;
        let smaller = load(&smaller_shape);
        prop_assume!(smaller.is_some());
        let smaller = smaller.unwrap();
        let current = before.placement.to_doc(&fleet).resolve(&smaller, "current").unwrap().replicas;
        let options = Options { mode: Mode::Repair, seed, rebalance: false, ..Options::default() };
        let after = solve(&smaller, &current, &options);
        let placed = replicas(&smaller, &after.placement);
        let violations: Vec<_> = check(&smaller, &placed).into_iter().filter(|v| v.kind != ViolationKind::Count || after.is_complete()).collect();
        prop_assert!(violations.is_empty(), "violations: {violations:?}");
        // Domains over their limit under the old placement are the only places replicas leave.
        let over = check(&smaller, &current).into_iter().filter(|v| v.kind == ViolationKind::Capacity).count();
        let context = Context::new(&smaller);
        let old_state = State::new(&context, meridian_solver::current::to_slots(&smaller, &current).0.slots);
        let over_limit = |domain: meridian_model::DomainId| (0..context.dims).any(|x| old_state.used_of(domain, context.dims)[x] > smaller.limit_of(domain)[x] * (1.0 + 1e-9));
        for replica in &current {
            if smaller.topology.chain(replica.node).iter().all(|d| !over_limit(*d)) {
                prop_assert!(placed.iter().any(|p| p.group == replica.group && p.partition == replica.partition && p.node == replica.node), "a replica under no over-limit domain moved");
            }
        }
        if over == 0 {
            prop_assert_eq!(after.stats.moved, 0);
        }
    }

    #[test]
    fn a_node_joining_moves_nothing_in_repair((shape, fleet) in loaded(), seed in 0u64..1000) {
        let before = solve(&fleet, &[], &full(seed));
        prop_assume!(before.is_complete());
        let current = replicas(&fleet, &before.placement);
        let mut grown_shape = shape.clone();
        grown_shape.extra_node = true;
        let grown = load(&grown_shape).expect("adding a node keeps a fleet valid");
        let current_doc = before.placement.to_doc(&fleet);
        let in_grown = current_doc.resolve(&grown, "current").unwrap().replicas;
        prop_assert_eq!(in_grown.len(), current.len());
        let options = Options { mode: Mode::Repair, seed, rebalance: false, ..Options::default() };
        let after = solve(&grown, &in_grown, &options);
        prop_assert_eq!(after.stats.moved, 0);
        prop_assert_eq!(after.stats.kept, current.len());
    }

    #[test]
    fn the_search_is_complete_and_scores_exactly((_, fleet) in loaded(), seed in 0u64..1000, pick in 0usize..10_000) {
        let solution = solve(&fleet, &[], &full(seed));
        let context = Context::new(&fleet);
        let mut state = State::new(&context, solution.placement.slots.clone());
        let slot = pick % fleet.slot_count;
        let replica_state = state.slots[slot].state;
        let current = state.unplace(&context, slot);
        let request = Request::for_slot(&context, &state, slot, replica_state, current);
        let feasible = fleet.topology.node_ids().any(|n| score_node(&context, &state, &request, n).is_ok());
        match best_node(&context, &state, &request, seed) {
            Some((node, score)) => {
                let direct = score_node(&context, &state, &request, node);
                prop_assert!(direct.is_ok(), "the search returned a node that breaks {direct:?}");
                prop_assert!((direct.unwrap().total() - score.total()).abs() < 1e-9);
            }
            None => prop_assert!(!feasible, "a feasible node exists but the search found none"),
        }
    }
}

/// On a fleet with more racks than the search opens, measure how far the search's choice is
/// from the best node an exhaustive scan finds, over many replicas.
#[test]
fn the_search_stays_close_to_the_exhaustive_best() {
    let groups = (0..6)
        .map(|i| fleets::GroupShape {
            product: ["db", "stream", "ai"][i % 3],
            partitions: 60,
            cpu: 1.0 + i as f64 * 0.3,
            net_mbps: 100.0 + 40.0 * i as f64,
            size_gib: 20.0,
            spread: "rack",
            region: None,
            anti_affinity_with_previous: false,
        })
        .collect();
    let shape = Shape {
        regions: 2,
        racks_per_region: 20,
        nodes_per_rack: 8,
        racks_per_pdu: 2,
        groups,
        capacity_scale: 1.0,
        pdu_power_w: 30000.0,
        rack_net_mbps: 40000.0,
        extra_node: false,
    };
    let fleet = Fleet::from_yaml(&fleet_yaml(&shape), "wide.yaml").unwrap();
    let solution = solve(&fleet, &[], &full(3));
    assert!(solution.is_complete());
    let context = Context::new(&fleet);
    let mut state = State::new(&context, solution.placement.slots.clone());
    let mut gaps = Vec::new();
    for slot in (0..fleet.slot_count).step_by(7) {
        let replica_state = state.slots[slot].state;
        let Some(node) = state.unplace(&context, slot) else {
            continue;
        };
        let request = Request::for_slot(&context, &state, slot, replica_state, None);
        let best = fleet
            .topology
            .node_ids()
            .filter_map(|n| score_node(&context, &state, &request, n).ok())
            .map(|s| s.total())
            .fold(f64::INFINITY, f64::min);
        let (_, found) =
            best_node(&context, &state, &request, 3).expect("a replica that was placed has a node");
        gaps.push(found.total() / best - 1.0);
        state.place(&context, slot, node, replica_state);
    }
    gaps.sort_by(f64::total_cmp);
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let exact = gaps.iter().filter(|g| **g < 1e-12).count();
    println!(
        "{} searches: {exact} found the exhaustive best; mean gap {:.3}%, worst {:.3}%",
        gaps.len(),
        mean * 100.0,
        gaps[gaps.len() - 1] * 100.0
    );
    assert!(
        gaps[0] >= -1e-12,
        "the search cannot beat an exhaustive scan"
    );
    assert!(mean <= 0.01, "mean gap {mean}");
}

#[test]
fn an_impossible_fleet_gets_a_precise_report() {
    let shape = Shape {
        regions: 1,
        racks_per_region: 3,
        nodes_per_rack: 2,
        racks_per_pdu: 1,
        groups: vec![fleets::GroupShape {
            product: "db",
            partitions: 40,
            cpu: 8.0,
            net_mbps: 100.0,
            size_gib: 10.0,
            spread: "rack",
            region: None,
            anti_affinity_with_previous: false,
        }],
        capacity_scale: 0.5,
        pdu_power_w: 100000.0,
        rack_net_mbps: 1.0e6,
        extra_node: false,
    };
    let fleet = Fleet::from_yaml(&fleet_yaml(&shape), "tight.yaml").unwrap();
    let solution = solve(&fleet, &[], &full(1));
    assert!(!solution.is_complete());
    let failure = &solution.failures[0];
    assert!(failure.rejected_by.contains_key("capacity"), "{failure:?}");
    let closest = failure
        .closest
        .as_ref()
        .expect("a capacity miss names the closest domain");
    assert_eq!(closest.dimension, "cpu");
    assert!(closest.short_by > 0.0);
    assert!(
        failure.relax.iter().any(|r| r.contains("cpu")),
        "{:?}",
        failure.relax
    );
}
