//! Plans for concrete changes on readable fleets.

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
