//! Prints a generated fleet: `cargo run -p meridian-gen --example generate -- NODES REPLICAS SEED`.

use meridian_gen::{generate_yaml, GenSpec};

fn main() {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let [nodes, replicas, seed] = arguments[..] else {
        eprintln!("usage: generate NODES REPLICAS SEED");
        std::process::exit(2);
    };
    match generate_yaml(&GenSpec::new(nodes as usize, replicas as usize, seed)) {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
