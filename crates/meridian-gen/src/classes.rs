//! The machine types of a generated fleet and what each can hold.
//!
//! Quantities are dense arrays over the model's default dimensions, in their order, so the
//! arithmetic of heat scaling stays simple; names appear only when the document is written.

use std::collections::BTreeMap;

use meridian_model::dims::DEFAULT_DIMENSIONS;
use meridian_model::spec::{NodeClassSpec, QuantitySpec};

/// Dimensions, by index into [`DEFAULT_DIMENSIONS`].
pub const DIMENSIONS: usize = DEFAULT_DIMENSIONS.len();
pub const CPU: usize = 0;
pub const MEM_GIB: usize = 1;
pub const DISK_GIB: usize = 2;
pub const DISK_IOPS: usize = 3;
pub const DISK_MBPS: usize = 4;
pub const NET_MBPS: usize = 5;
pub const GPU_MEM_GIB: usize = 6;
pub const POWER_W: usize = 7;

pub type Quantities = [f64; DIMENSIONS];

/// Label every storage node carries; db groups select on it.
pub const STORAGE_LABEL: (&str, &str) = ("disk", "nvme");
/// Label every GPU node carries; ai groups select on it.
pub const GPU_LABEL: (&str, &str) = ("gpu", "h100");

/// Which nodes a group's replicas can use when the fleet is built: pools are sized apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pool {
    Storage,
    Gpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeClass {
    Storage,
    StorageLarge,
    Gpu,
}

impl NodeClass {
    pub const ALL: [NodeClass; 3] = [NodeClass::Storage, NodeClass::StorageLarge, NodeClass::Gpu];

    pub fn name(self) -> &'static str {
        match self {
            NodeClass::Storage => "storage",
            NodeClass::StorageLarge => "storage-large",
            NodeClass::Gpu => "gpu",
        }
    }

    pub fn pool(self) -> Pool {
        match self {
            NodeClass::Storage | NodeClass::StorageLarge => Pool::Storage,
            NodeClass::Gpu => Pool::Gpu,
        }
    }

    /// cpu, mem_gib, disk_gib, disk_iops, disk_mbps, net_mbps, gpu_mem_gib, power_w.
    pub fn capacity(self) -> Quantities {
        match self {
            NodeClass::Storage => [
                64.0, 512.0, 15_360.0, 400_000.0, 6_000.0, 50_000.0, 0.0, 800.0,
            ],
            NodeClass::StorageLarge => [
                96.0, 768.0, 23_040.0, 600_000.0, 9_000.0, 75_000.0, 0.0, 1_200.0,
            ],
            NodeClass::Gpu => [
                96.0, 2_048.0, 15_360.0, 300_000.0, 12_000.0, 200_000.0, 640.0, 10_200.0,
            ],
        }
    }

    fn label(self) -> (&'static str, &'static str) {
        match self.pool() {
            Pool::Storage => STORAGE_LABEL,
            Pool::Gpu => GPU_LABEL,
        }
    }

    fn cost_per_gib_month(self) -> f64 {
        match self {
            NodeClass::Storage => 0.08,
            NodeClass::StorageLarge => 0.06,
            NodeClass::Gpu => 0.12,
        }
    }

    pub fn spec(self) -> NodeClassSpec {
        let (key, value) = self.label();
        NodeClassSpec {
            capacity: quantity_spec(&self.capacity()),
            labels: BTreeMap::from([(key.to_string(), value.to_string())]),
            cost_per_gib_month: Some(self.cost_per_gib_month()),
        }
    }
}

impl Pool {
    /// The smallest node class of the pool, in every dimension: heat is sized against it so
    /// a replica that fits the reference fits every node of the pool.
    pub fn reference(self) -> NodeClass {
        match self {
            Pool::Storage => NodeClass::Storage,
            Pool::Gpu => NodeClass::Gpu,
        }
    }
}

/// The named, sparse form of a dense vector: zero entries are left out.
pub fn quantity_spec(values: &Quantities) -> QuantitySpec {
    DEFAULT_DIMENSIONS
        .iter()
        .zip(values)
        .filter(|(_, value)| **value != 0.0)
        .map(|(name, value)| (name.to_string(), *value))
        .collect()
}

/// `value` rounded to `digits` significant digits, so documents stay short and readable.
pub fn round_significant(value: f64, digits: i32) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let magnitude = value.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - magnitude);
    (value * scale).round() / scale
}

/// `value` rounded up to a multiple of `step`: capacities round up so rounding never takes
/// away room that feasibility was computed with.
pub fn round_up(value: f64, step: f64) -> f64 {
    (value / step).ceil() * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_the_model_dimensions() {
        let named = [
            (CPU, "cpu"),
            (MEM_GIB, "mem_gib"),
            (DISK_GIB, "disk_gib"),
            (DISK_IOPS, "disk_iops"),
            (DISK_MBPS, "disk_mbps"),
            (NET_MBPS, "net_mbps"),
            (GPU_MEM_GIB, "gpu_mem_gib"),
            (POWER_W, "power_w"),
        ];
        for (index, name) in named {
            assert_eq!(DEFAULT_DIMENSIONS[index], name);
        }
    }

    #[test]
    fn reference_class_is_the_smallest_of_its_pool() {
        for class in NodeClass::ALL {
            let reference = class.pool().reference().capacity();
            for (dim, value) in class.capacity().iter().enumerate() {
                assert!(reference[dim] <= *value, "{} dim {dim}", class.name());
            }
        }
    }

    #[test]
    fn rounds_to_significant_digits() {
        assert_eq!(round_significant(0.123_456, 4), 0.1235);
        assert_eq!(round_significant(123_456.0, 3), 123_000.0);
        assert_eq!(round_significant(0.0, 3), 0.0);
        assert_eq!(round_up(1_001.0, 1_000.0), 2_000.0);
    }
}
