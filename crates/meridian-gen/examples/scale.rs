//! Times generation, loading, a skewed start and its check at one size:
//! `cargo run --release -p meridian-gen --example scale -- NODES REPLICAS SEED SKEW`.

use std::time::Instant;

use meridian_gen::{generate_yaml, skewed_placement, GenSpec};
use meridian_model::check::check;
use meridian_model::Fleet;

fn main() {
    let arguments: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [nodes, replicas, seed, skew] = arguments[..] else {
        eprintln!("usage: scale NODES REPLICAS SEED SKEW");
        std::process::exit(2);
    };
    let spec = GenSpec::new(nodes as usize, replicas as usize, seed as u64);
    let started = Instant::now();
    let text = match generate_yaml(&spec) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    eprintln!("generate: {:?}, {} bytes", started.elapsed(), text.len());
    let started = Instant::now();
    let fleet = match Fleet::from_yaml(&text, "generated") {
        Ok(fleet) => fleet,
        Err(problems) => {
            eprintln!("{problems}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "load: {:?}, {} replicas",
        started.elapsed(),
        fleet.replica_count()
    );
    let started = Instant::now();
    let doc = match skewed_placement(&fleet, seed as u64, skew) {
        Ok(doc) => doc,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    eprintln!("skewed placement: {:?}", started.elapsed());
    let started = Instant::now();
    let resolved = doc.resolve(&fleet, "skewed").unwrap_or_default();
    let violations = check(&fleet, &resolved.replicas);
    eprintln!(
        "check: {:?}, {} violations",
        started.elapsed(),
        violations.len()
    );
    for violation in violations.iter().take(5) {
        eprintln!("  {}", violation.message);
    }
}
