//! Seeded synthetic fleets and workloads for Meridian: realistic skew, any size.
//!
//! [`generate`] builds a fleet file from a [`GenSpec`]: a two-tree topology (network region >
//! zone > spine > rack > node, power feed > PDU > rack > node) with GPU racks and a few tight
//! ToRs, spines and PDUs; db, stream and ai groups with lognormal sizes and Zipf-like heat,
//! scaled so the fleet is as busy as asked. Every generated fleet is feasible by
//! construction. [`skewed_placement`] gives a feasible but badly balanced starting
//! placement for any fleet, the kind of start a rebalance is meant to fix.
//!
//! Deterministic: the same spec (seed included) always yields byte-identical output. All
//! randomness comes from ChaCha8 seeded by the spec, one stream per concern, so changing how
//! the workload is drawn does not reshuffle the topology.

mod capacity;
mod classes;
mod constraints;
mod document;
pub mod emit;
mod heat;
mod layout;
mod open_list;
mod products;
mod skew;
mod spec;
mod workload;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use document::FleetDocument;
pub use skew::{skewed_placement, skewed_slots};
pub use spec::{
    GenError, GenSpec, NODES_MAX, NODES_PER_REGION_MIN, REGIONS_MAX, REPLICAS_MAX,
    TARGET_UTILIZATION_MAX,
};

use meridian_model::dims::DEFAULT_DIMENSIONS;

use crate::classes::Pool;

/// Random streams, one per concern (see the crate documentation).
const STREAM_LAYOUT: u64 = 1;
const STREAM_WORKLOAD: u64 = 2;
const STREAM_CONSTRAINTS: u64 = 3;
const STREAM_CAPACITY: u64 = 4;
const STREAM_LINKS: u64 = 5;

/// A generated fleet and the facts about it a caller wants to print.
#[derive(Debug, Clone)]
pub struct Generated {
    pub document: FleetDocument,
    pub summary: Summary,
}

/// What was generated, in numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub nodes: usize,
    pub gpu_nodes: usize,
    pub racks: usize,
    pub pdus: usize,
    pub groups: usize,
    /// Replicas over all groups; close to, not always exactly, the number asked for.
    pub replicas: usize,
    /// Expected utilization of the storage pool per dimension (name, total heat ÷ capacity).
    pub storage_utilization: Vec<(String, f64)>,
    /// The same for the GPU pool (all zero without ai groups).
    pub gpu_utilization: Vec<(String, f64)>,
    pub tight_racks: usize,
    pub tight_spines: usize,
    pub tight_pdus: usize,
}

impl Generated {
    /// The fleet file: compact YAML, one line per node, with a header saying what it is.
    pub fn to_yaml(&self, spec: &GenSpec) -> String {
        let value = serde_yaml_ng::to_value(&self.document)
            .unwrap_or_else(|error| unreachable!("a fleet document has only string keys: {error}"));
        emit::to_compact_yaml(&value, &self.header(spec))
    }

    fn header(&self, spec: &GenSpec) -> Vec<String> {
        let summary = &self.summary;
        let busy = |utilization: &[(String, f64)]| -> String {
            let mut ranked: Vec<&(String, f64)> =
                utilization.iter().filter(|(_, u)| *u > 0.0).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked
                .iter()
                .take(3)
                .map(|(name, u)| format!("{name} {u:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            format!(
                "Synthetic fleet from meridian-gen: nodes={} replicas={} seed={} regions={} target_utilization={}.",
                spec.nodes, spec.replicas, spec.seed, spec.regions, spec.target_utilization
            ),
            "Generated: regenerate it rather than editing it by hand.".to_string(),
            format!(
                "{} nodes ({} GPU) in {} racks under {} PDUs; {} groups with {} replicas.",
                summary.nodes, summary.gpu_nodes, summary.racks, summary.pdus, summary.groups, summary.replicas
            ),
            format!("Expected node utilization, busiest dimensions: storage {}; gpu {}.", busy(&summary.storage_utilization), busy(&summary.gpu_utilization)),
            format!(
                "Built tight (little slack above their expected load): racks {}, spines {}, PDUs {}.",
                summary.tight_racks, summary.tight_spines, summary.tight_pdus
            ),
        ]
    }
}

/// Generates the fleet described by `spec`.
pub fn generate(spec: &GenSpec) -> Result<Generated, GenError> {
    spec.validate()?;
    let rng = |stream: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(stream);
        rng
    };
    let layout = layout::Layout::build(spec, &mut rng(STREAM_LAYOUT));
    let gpu_nodes = layout.nodes_in(Pool::Gpu).count();
    let mut groups = workload::plan_groups(spec, gpu_nodes, &mut rng(STREAM_WORKLOAD));
    let pools = heat::scale(&mut groups, &layout, spec);
    constraints::apply(&mut groups, &layout, &mut rng(STREAM_CONSTRAINTS));
    let capacities = capacity::plan(
        &layout,
        &pools,
        spec.tight_fraction,
        &mut rng(STREAM_CAPACITY),
    );
    let name = format!(
        "synthetic-{}n-{}r-s{}",
        spec.nodes, spec.replicas, spec.seed
    );
    let document = document::assemble(name, &layout, &capacities, &groups, &mut rng(STREAM_LINKS));
    let named = |pool: Pool| -> Vec<(String, f64)> {
        let utilization = pools
            .iter()
            .find(|(p, _)| *p == pool)
            .map(|(_, u)| *u)
            .unwrap_or_default();
        DEFAULT_DIMENSIONS
            .iter()
            .zip(utilization)
            .map(|(name, u)| (name.to_string(), u))
            .collect()
    };
    let summary = Summary {
        nodes: layout.nodes.len(),
        gpu_nodes,
        racks: layout.racks.len(),
        pdus: layout.pdus.len(),
        groups: groups.len(),
        replicas: groups.iter().map(workload::GroupPlan::replicas).sum(),
        storage_utilization: named(Pool::Storage),
        gpu_utilization: named(Pool::Gpu),
        tight_racks: capacities.tight_racks.len(),
        tight_spines: capacities.tight_spines.len(),
        tight_pdus: capacities.tight_pdus.len(),
    };
    Ok(Generated { document, summary })
}

/// Generates the fleet described by `spec` as fleet-file text (see [`Generated::to_yaml`]).
pub fn generate_yaml(spec: &GenSpec) -> Result<String, GenError> {
    Ok(generate(spec)?.to_yaml(spec))
}
