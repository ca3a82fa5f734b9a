//! What to generate: the knobs of a synthetic fleet, with defaults and their checks.

use std::fmt;

/// Most regions a generated fleet may have (names and link tables stay readable).
pub const REGIONS_MAX: usize = 16;
/// Fewest nodes per region: every region needs four racks so that rack-spread groups with
/// three replicas that must stay in one region (residency) can be placed with room to spare.
pub const NODES_PER_REGION_MIN: usize = 6;
/// Bounds that keep generation time and memory predictable.
pub const NODES_MAX: usize = 1_000_000;
pub const REPLICAS_MAX: usize = 100_000_000;
/// Highest utilization one may ask for: node headroom is 5%, and a fleet packed tighter than
/// this leaves the solver (and the skewed start) no room to move replicas at all.
pub const TARGET_UTILIZATION_MAX: f64 = 0.85;

/// The parameters of a synthetic fleet. The same spec always yields the same fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    /// Total machines, GPU nodes included.
    pub nodes: usize,
    /// Replicas to create across all groups; the result is within a few of this.
    pub replicas: usize,
    pub seed: u64,
    /// Regions (top of the network tree). Default 2.
    pub regions: usize,
    /// Total steady demand ÷ total node capacity in the most loaded dimension of each node
    /// pool (storage nodes for db and stream, GPU nodes for ai). Default 0.6.
    pub target_utilization: f64,
    /// Storage nodes per rack. Default 20.
    pub nodes_per_rack: usize,
    /// Share of nodes that are GPU nodes (label `gpu: h100`). Default 0.06.
    pub gpu_fraction: f64,
    /// Mean replicas per group; the number of groups follows from it. Default 500.
    pub replicas_per_group: usize,
    /// Share of racks, spines and PDUs built with little slack above their expected load, so
    /// that they bind before the nodes under them do. Default 0.1.
    pub tight_fraction: f64,
    /// Largest steady heat of one replica, as a fraction of the smallest node of its pool in
    /// any dimension. Keeps every replica small next to a node. Default 0.08.
    pub replica_heat_max: f64,
}

impl GenSpec {
    /// A spec with the given size and seed and every other knob at its default.
    pub fn new(nodes: usize, replicas: usize, seed: u64) -> GenSpec {
        GenSpec {
            nodes,
            replicas,
            seed,
            regions: 2,
            target_utilization: 0.6,
            nodes_per_rack: 20,
            gpu_fraction: 0.06,
            replicas_per_group: 500,
            tight_fraction: 0.1,
            replica_heat_max: 0.08,
        }
    }

    /// Checks every knob, naming the first that is out of range.
    pub fn validate(&self) -> Result<(), GenError> {
        if !(1..=REGIONS_MAX).contains(&self.regions) {
            return Err(GenError::new(format!(
                "regions must be 1..={REGIONS_MAX}, not {}",
                self.regions
            )));
        }
        let nodes_min = NODES_PER_REGION_MIN * self.regions;
        if self.nodes < nodes_min || self.nodes > NODES_MAX {
            return Err(GenError::new(format!(
                "nodes must be {nodes_min}..={NODES_MAX} for {} region(s) (at least {NODES_PER_REGION_MIN} per region), not {}",
                self.regions, self.nodes
            )));
        }
        if self.replicas == 0 || self.replicas > REPLICAS_MAX {
            return Err(GenError::new(format!(
                "replicas must be 1..={REPLICAS_MAX}, not {}",
                self.replicas
            )));
        }
        let fractions = [
            (
                "target_utilization",
                self.target_utilization,
                TARGET_UTILIZATION_MAX,
            ),
            ("gpu_fraction", self.gpu_fraction, 0.5),
            ("tight_fraction", self.tight_fraction, 1.0),
            ("replica_heat_max", self.replica_heat_max, 0.5),
        ];
        for (name, value, max) in fractions {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(GenError::new(format!(
                    "{name} must be in [0, {max}], not {value}"
                )));
            }
        }
        if self.target_utilization == 0.0 || self.replica_heat_max == 0.0 {
            return Err(GenError::new(
                "target_utilization and replica_heat_max must be above 0",
            ));
        }
        if self.nodes_per_rack == 0 || self.replicas_per_group == 0 {
            return Err(GenError::new(
                "nodes_per_rack and replicas_per_group must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Why a fleet or a placement could not be generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenError {
    pub message: String,
}

impl GenError {
    pub fn new(message: impl Into<String>) -> GenError {
        GenError {
            message: message.into(),
        }
    }
}

impl fmt::Display for GenError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for GenError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(GenSpec::new(200, 10_000, 1).validate(), Ok(()));
    }

    #[test]
    fn rejects_too_few_nodes_per_region() {
        let mut spec = GenSpec::new(10, 100, 1);
        spec.regions = 2;
        let error = spec.validate().unwrap_err();
        assert!(error.message.contains("at least 6 per region"), "{error}");
    }

    #[test]
    fn rejects_non_finite_fractions() {
        let mut spec = GenSpec::new(200, 100, 1);
        spec.target_utilization = f64::NAN;
        assert!(spec.validate().is_err());
        spec.target_utilization = 0.95;
        assert!(spec.validate().is_err());
    }
}
