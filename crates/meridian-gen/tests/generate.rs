//! Generated fleets load, are deterministic, and admit a skewed placement that the
//! independent checker accepts.

use meridian_gen::{generate, generate_yaml, skewed_placement, GenSpec};
use meridian_model::check::check;
use meridian_model::Fleet;

fn load(spec: &GenSpec) -> (String, Fleet) {
    let text = generate_yaml(spec).unwrap_or_else(|e| panic!("{e}"));
    let fleet = Fleet::from_yaml(&text, "generated.yaml").unwrap_or_else(|p| panic!("{p}"));
    (text, fleet)
}

#[test]
fn same_seed_same_fleet_and_other_seed_other_fleet() {
    let spec = GenSpec::new(200, 10_000, 11);
    let first = generate_yaml(&spec).unwrap();
    assert_eq!(first, generate_yaml(&spec).unwrap());
    let other = generate_yaml(&GenSpec {
        seed: 12,
        ..spec.clone()
    })
    .unwrap();
    assert_ne!(first, other);
}

#[test]
fn generated_fleet_loads_with_the_counts_asked_for() {
    let spec = GenSpec::new(200, 10_000, 5);
    let generated = generate(&spec).unwrap();
    let (text, fleet) = load(&spec);
    assert_eq!(fleet.topology.nodes.len(), 200);
    assert_eq!(fleet.topology.regions.len(), 2);
    assert_eq!(fleet.replica_count(), generated.summary.replicas);
    assert!(
        fleet.replica_count().abs_diff(10_000) <= 5,
        "{} replicas",
        fleet.replica_count()
    );
    assert_eq!(fleet.groups.len(), generated.summary.groups);
    let lines = text.lines().count();
    assert!(
        lines < 200 + 40 * fleet.groups.len() + 200,
        "{lines} lines: nodes should take one line each"
    );
    let products: Vec<&str> = fleet
        .groups
        .iter()
        .map(|g| fleet.products[g.product.index()].name.as_str())
        .collect();
    for product in ["db", "stream", "ai"] {
        assert!(products.contains(&product), "no {product} group");
    }
}

#[test]
fn every_generated_fleet_is_feasible_under_a_skewed_start() {
    let sizes = [
        (200, 10_000, 1),
        (60, 600, 2),
        (12, 40, 3),
        (500, 5_000, 4),
        (300, 30_000, 5),
    ];
    for (nodes, replicas, seed) in sizes {
        let spec = GenSpec::new(nodes, replicas, seed);
        let (_, fleet) = load(&spec);
        for skew in [0.0, 1.2, 3.0] {
            let doc = skewed_placement(&fleet, seed, skew)
                .unwrap_or_else(|e| panic!("{nodes}/{replicas} skew {skew}: {e}"));
            let resolved = doc
                .resolve(&fleet, "skewed")
                .unwrap_or_else(|p| panic!("{p}"));
            assert!(resolved.dropped.is_empty());
            assert_eq!(resolved.replicas.len(), fleet.replica_count());
            let violations = check(&fleet, &resolved.replicas);
            assert!(
                violations.is_empty(),
                "{nodes}/{replicas} skew {skew}: {:?}",
                &violations[..violations.len().min(5)]
            );
        }
    }
}

/// Sizes, region counts and utilizations drawn from the seed, so many shapes get tried.
#[test]
fn feasible_across_seeds_shapes_and_utilizations() {
    for seed in 0..24u64 {
        let regions = 1 + (seed % 3) as usize;
        let nodes = 6 * regions + (seed * 37 % 250) as usize;
        let replicas = 50 + (seed * 7919 % 20_000) as usize;
        let target_utilization = [0.4, 0.6, 0.8][(seed % 3) as usize];
        let spec = GenSpec {
            regions,
            target_utilization,
            ..GenSpec::new(nodes, replicas, seed)
        };
        let (_, fleet) = load(&spec);
        let skew = (seed % 4) as f64;
        let doc = skewed_placement(&fleet, seed, skew).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        let resolved = doc.resolve(&fleet, "skewed").unwrap();
        let violations = check(&fleet, &resolved.replicas);
        assert!(
            violations.is_empty(),
            "{spec:?}: {:?}",
            &violations[..violations.len().min(5)]
        );
    }
}

#[test]
fn one_region_and_many_regions_work() {
    for regions in [1, 5] {
        let spec = GenSpec {
            regions,
            ..GenSpec::new(40 * regions, 4_000, 8)
        };
        let (_, fleet) = load(&spec);
        assert_eq!(fleet.topology.regions.len(), regions);
        let doc = skewed_placement(&fleet, 8, 1.0).unwrap();
        let resolved = doc.resolve(&fleet, "skewed").unwrap();
        assert!(check(&fleet, &resolved.replicas).is_empty());
    }
}

/// Each node's highest share of its limit over all dimensions.
fn node_peaks(fleet: &Fleet, replicas: &[meridian_model::placement::Replica]) -> Vec<f64> {
    let dims = fleet.dims_count();
    let mut used = vec![0.0; fleet.topology.nodes.len() * dims];
    for replica in replicas {
        for (dim, heat) in fleet.group(replica.group).heat[replica.state.index()]
            .iter()
            .enumerate()
        {
            used[replica.node.index() * dims + dim] += heat;
        }
    }
    let mut peaks: Vec<f64> = fleet
        .topology
        .node_ids()
        .map(|node| {
            let limit = fleet.limit_of(fleet.topology.node_domain(node));
            (0..dims)
                .filter(|&d| limit[d] > 0.0)
                .map(|d| used[node.index() * dims + d] / limit[d])
                .fold(0.0, f64::max)
        })
        .collect();
    peaks.sort_by(f64::total_cmp);
    peaks
}

#[test]
fn skewed_start_is_badly_balanced() {
    let spec = GenSpec::new(200, 10_000, 21);
    let (_, fleet) = load(&spec);
    let doc = skewed_placement(&fleet, 21, 1.5).unwrap();
    let resolved = doc.resolve(&fleet, "skewed").unwrap();
    let peaks = node_peaks(&fleet, &resolved.replicas);
    let at = |quantile: f64| peaks[((peaks.len() - 1) as f64 * quantile) as usize];
    // A balanced placement would put every node near the target, 0.6 of capacity.
    assert!(at(0.1) < 0.3, "the least loaded tenth is at {:.2}", at(0.1));
    assert!(at(0.5) > 0.8, "half the nodes are below {:.2}", at(0.5));
}

#[test]
fn invalid_specs_are_errors_not_panics() {
    assert!(generate_yaml(&GenSpec::new(3, 100, 1)).is_err());
    assert!(generate_yaml(&GenSpec::new(100, 0, 1)).is_err());
    let (_, fleet) = load(&GenSpec::new(60, 300, 1));
    assert!(skewed_placement(&fleet, 1, f64::NAN).is_err());
    assert!(skewed_placement(&fleet, 1, -1.0).is_err());
}

#[test]
fn small_example_takes_a_skewed_start_too() {
    let text = include_str!("../../../examples/small.yaml");
    let fleet = Fleet::from_yaml(text, "examples/small.yaml").unwrap_or_else(|p| panic!("{p}"));
    let doc = skewed_placement(&fleet, 3, 1.0).unwrap_or_else(|e| panic!("{e}"));
    let resolved = doc.resolve(&fleet, "skewed").unwrap();
    assert!(check(&fleet, &resolved.replicas).is_empty());
}
