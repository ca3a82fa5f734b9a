//! examples/medium.yaml is the generator's output for its parameters, byte for byte, so the
//! example can never drift from the generator. Regenerate it with
//! `cargo run -p meridian-gen --example generate -- 400 20000 7 > examples/medium.yaml`.

use meridian_gen::{generate_yaml, GenSpec};
use meridian_model::Fleet;

const MEDIUM: &str = include_str!("../../../examples/medium.yaml");

#[test]
fn medium_example_is_the_generator_output() {
    let generated = generate_yaml(&GenSpec::new(400, 20_000, 7)).unwrap_or_else(|e| panic!("{e}"));
    let first_difference = generated
        .lines()
        .zip(MEDIUM.lines())
        .position(|(a, b)| a != b);
    assert!(
        generated == MEDIUM,
        "examples/medium.yaml differs from the generator at line {:?}; regenerate it",
        first_difference.map(|i| i + 1)
    );
}

#[test]
fn medium_example_loads() {
    let fleet = Fleet::from_yaml(MEDIUM, "examples/medium.yaml").unwrap_or_else(|p| panic!("{p}"));
    assert_eq!(fleet.topology.nodes.len(), 400);
    assert!(fleet.replica_count().abs_diff(20_000) <= 5);
    assert!(MEDIUM.len() < 1_500_000);
}
