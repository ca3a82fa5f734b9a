//! The engine end to end on the small example fleet: a node crash, a PDU loss and a flash
//! crowd; every strategy runs, Meridian's never breaks an invariant, and a run is a pure
//! function of its inputs.

use meridian_sim::scenario::Scenario;
use meridian_sim::simulate::{simulate, Results};

const SCENARIO: &str = "
name: small-storm
fleet: ../../../examples/small.yaml
duration: 6h
tick: 1m
control_interval: 5m
sample: 30m
seed: 3
strategies: [static, unified, oracle]
workload:
  default: { daily_amplitude: 0.3, noise: 0.05 }
  flash_crowds:
    - { group: clicks, at: 2h, duration: 1h, factor: 2.5 }
faults:
  events:
    - node_crash: { node: n02, at: 1h }
    - pdu_loss: { pdu: euw1-pdu-2, at: 3h, recover_after: 1h }
";

fn run() -> Results {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/small-storm.yaml");
    let scenario = Scenario::from_yaml(SCENARIO, file).unwrap_or_else(|e| panic!("{e}"));
    simulate(scenario, &|_, _| {}).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn meridian_repairs_without_breaking_invariants_and_runs_replay() {
    let first = run();
    let names: Vec<&str> = first.outcomes.iter().map(|o| o.strategy.as_str()).collect();
    assert_eq!(names, ["static", "unified", "oracle"]);
    for o in &first.outcomes {
        println!("{} {:?}", o.strategy, o.summary);
    }
    let by = |name: &str| {
        &first
            .outcomes
            .iter()
            .find(|o| o.strategy == name)
            .unwrap()
            .summary
    };
    for name in ["unified", "oracle"] {
        assert_eq!(
            by(name).invariant_violations,
            0,
            "{name}: {:?}",
            by(name).violations
        );
        assert!(
            by(name).copies > 0,
            "{name} repaired nothing after a node crash"
        );
        assert!(
            by(name).below_min_s < by("static").below_min_s,
            "{name} should restore redundancy the static placement never restores"
        );
    }
    let again = run();
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "same scenario, same seed: byte-identical results"
    );
}

/// A strategy that breaks residency on purpose: the checkers must see it.
struct Rogue {
    done: bool,
}

impl meridian_sim::strategy::Strategy for Rogue {
    fn name(&self) -> &str {
        "rogue"
    }

    fn decide(&mut self, view: &meridian_sim::strategy::View) -> meridian_sim::strategy::Decision {
        use meridian_sim::strategy::{Decision, Move, MoveAction};
        if std::mem::replace(&mut self.done, true) {
            return Decision::Idle;
        }
        let fleet = view.base;
        let group = fleet.group_by_name("orders-db").unwrap();
        let part = view.parts.of_group(group).start;
        let held = view.world.replicas[part][0];
        let outside = fleet.topology.node_by_name("n21").unwrap(); // eu-west: not allowed
        Decision::Moves(vec![Move {
            part,
            action: MoveAction::Copy {
                source: held.node,
                target: outside,
                state: held.state,
                rate_mbps: 100.0,
                then_drop: None,
            },
        }])
    }
}

#[test]
fn the_checkers_catch_a_strategy_that_breaks_residency() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/small-storm.yaml");
    let scenario = Scenario::from_yaml(SCENARIO, file).unwrap_or_else(|e| panic!("{e}"));
    let initial = meridian_sim::simulate::initial_placement(&scenario).unwrap();
    let setup = meridian_sim::engine::Setup {
        base: &scenario.fleet,
        initial: &initial,
        workload: &scenario.workload,
        faults: &scenario.faults,
        duration_s: 3600.0,
        tick_s: 60.0,
        control_interval_s: 300.0,
        failover_s: 30.0,
        sample_s: 600.0,
    };
    let outcome = meridian_sim::engine::run(&setup, &mut Rogue { done: false }, &mut |_| {});
    let s = &outcome.summary;
    assert!(
        s.invariant_violations > 0,
        "the residency breach went unseen"
    );
    assert!(
        s.violations[0].contains("orders-db/0") && s.violations[0].contains("n21"),
        "{:?}",
        s.violations
    );
}
