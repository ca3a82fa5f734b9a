//! The LP relaxation bound: it sees couplings the per-level bounds miss, and it is a bound —
//! the solver never beats it.

use meridian_model::Fleet;
use meridian_solver::relaxation::relaxed_bound;
use meridian_solver::{quality, solve, Mode, Options};

/// Two equal nodes, but one sits under a PDU that allows a quarter of its power. Ten replicas of
/// 1 cpu + 1 W each: the per-level bounds say 0.5 utilization per node, yet every watt kept off
/// the tight PDU lands on the other node.
const TIGHT_PDU: &str = r#"
name: tight-pdu
topology:
  network:
    levels: [rack, node]
    domains:
      - { name: ra, children: [a] }
      - { name: rb, children: [b] }
  power:
    levels: [pdu, rack, node]
    domains:
      - { name: pdu1, capacity: { power_w: 2.5 }, children: [ra] }
      - { name: pdu2, capacity: { power_w: 100 }, children: [rb] }
nodes:
  - { name: a, capacity: { cpu: 10, power_w: 10 } }
  - { name: b, capacity: { cpu: 10, power_w: 10 } }
groups:
  - name: jobs
    product: ai
    partitions: 10
    counts: { Active: 1 }
    size_gib: 1
    heat:
      Active: { cpu: 1, power_w: 1 }
"#;

#[test]
fn a_tight_pdu_raises_the_bound_to_what_the_lp_proves() {
    let fleet = Fleet::from_yaml(TIGHT_PDU, "tight-pdu.yaml").expect("valid fleet");
    let bound = relaxed_bound(&fleet).expect("the LP solves");
    // Node level: bound 0.5 of 10. PDU level: bound 10 / 102.5. With `a` units of heat on node
    // a, the worst ratios are pdu1 at (a / 2.5) / (10 / 102.5) = 4.1 a and node b at
    // ((10 - a) / 10) / 0.5; they meet at a = 10 / 21.5.
    let expected = 4.1 * 10.0 / 21.5;
    assert!(
        (bound.worst_ratio - expected).abs() < 1e-6,
        "LP bound {} expected {expected}",
        bound.worst_ratio
    );
}

#[test]
fn no_solution_beats_the_relaxation_on_generated_fleets() {
    for seed in [1u64, 2, 3] {
        let spec = meridian_gen::GenSpec::new(60, 3000, seed);
        let yaml = meridian_gen::generate_yaml(&spec).expect("generates");
        let fleet = Fleet::from_yaml(&yaml, "generated").expect("valid fleet");
        let bound = relaxed_bound(&fleet).expect("the LP solves");
        let options = Options {
            mode: Mode::Full,
            seed,
            ..Options::default()
        };
        let solution = solve(&fleet, &[], &options);
        assert!(solution.is_complete(), "seed {seed} solves");
        let worst = quality(&fleet, &solution.placement)
            .first()
            .map_or(1.0, |row| row.ratio);
        println!(
            "seed {seed}: solver worst ratio {worst:.3}, LP bound {:.3} ({} cells), gap {:.1}%",
            bound.worst_ratio,
            bound.cells,
            100.0 * (worst / bound.worst_ratio - 1.0)
        );
        assert!(bound.worst_ratio >= 1.0 - 1e-6, "seed {seed}: {bound:?}");
        assert!(
            worst >= bound.worst_ratio - 1e-6,
            "seed {seed}: the solver's {worst} beats the bound {}",
            bound.worst_ratio
        );
    }
}
