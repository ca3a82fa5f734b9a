//! Resource dimensions: a registry of named quantities that heat and capacity are measured in.
//!
//! The default set covers what every fleet has; a fleet file adds its own (an SSD endurance
//! budget, a licence count, ...) without code changes. Everything downstream works on dense
//! vectors indexed by [`DimId`], so adding a dimension costs one slot, not a code path.

use serde::Serialize;

/// The dimensions every fleet has, in this order (their ids are stable).
pub const DEFAULT_DIMENSIONS: [&str; 8] = [
    "cpu",
    "mem_gib",
    "disk_gib",
    "disk_iops",
    "disk_mbps",
    "net_mbps",
    "gpu_mem_gib",
    "power_w",
];

/// Upper bound on dimensions, so per-dimension vectors stay small and loops bounded.
pub const DIMENSIONS_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DimId(pub u16);

impl DimId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dimensions {
    names: Vec<String>,
}

impl Default for Dimensions {
    fn default() -> Self {
        Self {
            names: DEFAULT_DIMENSIONS
                .iter()
                .map(|name| name.to_string())
                .collect(),
        }
    }
}

impl Dimensions {
    /// Adds a dimension; returns `Err` with a reason if the name is taken, malformed or over
    /// the limit.
    pub fn add(&mut self, name: &str) -> Result<DimId, String> {
        if self.get(name).is_some() {
            return Err(format!("dimension `{name}` is already defined"));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "dimension name `{name}` must be non-empty letters, digits or `_`"
            ));
        }
        if self.names.len() >= DIMENSIONS_MAX {
            return Err(format!("at most {DIMENSIONS_MAX} dimensions are supported"));
        }
        self.names.push(name.to_string());
        Ok(DimId((self.names.len() - 1) as u16))
    }

    pub fn get(&self, name: &str) -> Option<DimId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| DimId(i as u16))
    }

    pub fn name(&self, dim: DimId) -> &str {
        &self.names[dim.index()]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = DimId> + '_ {
        (0..self.names.len()).map(|i| DimId(i as u16))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// A dense vector over all dimensions (heat or capacity). Missing entries are zero for heat
/// and infinite (unconstrained) for capacity; the constructors say which.
pub type DimVec = Box<[f64]>;

pub fn zeros(dims: &Dimensions) -> DimVec {
    vec![0.0; dims.len()].into_boxed_slice()
}

pub fn unlimited(dims: &Dimensions) -> DimVec {
    vec![f64::INFINITY; dims.len()].into_boxed_slice()
}
