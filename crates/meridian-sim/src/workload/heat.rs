//! How a group's load and size multipliers apply to its declared heat, dimension by dimension.

use meridian_model::dims::Dimensions;

/// Dimensions that hold data and so follow the data's size: they grow with
/// `size_growth_per_day`, not with load.
pub const SIZE_DIMENSIONS: [&str; 2] = ["disk_gib", "mem_gib"];
/// Dimensions that neither load nor size change: model weights in GPU memory are as large at
/// night as at noon, and do not grow.
pub const FIXED_DIMENSIONS: [&str; 1] = ["gpu_mem_gib"];

/// Which multiplier a dimension takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimScaling {
    /// Rates (cpu, iops, MB/s, Mb/s, watts, and any extra dimension a fleet adds): × load.
    Rate,
    /// Sizes (`disk_gib`, `mem_gib`): × size.
    Size,
    /// `gpu_mem_gib`: unchanged while the group is active.
    Fixed,
}

/// A group's multipliers at one instant. An inactive group has no heat at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupLoad {
    pub active: bool,
    /// Multiplier on rate-like heat.
    pub load: f64,
    /// Multiplier on size-like heat.
    pub size: f64,
}

/// Each dimension's [`DimScaling`], decided once per fleet by dimension name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeatScaling {
    dims: Vec<DimScaling>,
}

impl HeatScaling {
    pub fn for_dimensions(dims: &Dimensions) -> HeatScaling {
        let dims = dims
            .names()
            .iter()
            .map(|name| {
                if SIZE_DIMENSIONS.contains(&name.as_str()) {
                    DimScaling::Size
                } else if FIXED_DIMENSIONS.contains(&name.as_str()) {
                    DimScaling::Fixed
                } else {
                    DimScaling::Rate
                }
            })
            .collect();
        HeatScaling { dims }
    }

    pub fn dims(&self) -> &[DimScaling] {
        &self.dims
    }

    /// `heat` (one replica's declared heat) as it is under `load`.
    pub fn apply(&self, heat: &[f64], load: GroupLoad) -> Vec<f64> {
        let mut out = vec![0.0; heat.len()];
        self.apply_into(heat, load, &mut out);
        out
    }

    /// [`HeatScaling::apply`] into a buffer the caller reuses across groups.
    pub fn apply_into(&self, heat: &[f64], load: GroupLoad, out: &mut [f64]) {
        debug_assert_eq!(
            heat.len(),
            self.dims.len(),
            "heat has one entry per dimension"
        );
        debug_assert_eq!(out.len(), heat.len(), "output has one entry per dimension");
        for ((out, &value), &scaling) in out.iter_mut().zip(heat).zip(&self.dims) {
            *out = if !load.active {
                0.0
            } else {
                match scaling {
                    DimScaling::Rate => value * load.load,
                    DimScaling::Size => value * load.size,
                    DimScaling::Fixed => value,
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_default_dimensions_by_name() {
        let mut dims = Dimensions::default();
        dims.add("ssd_writes_gib_day").unwrap();
        let scaling = HeatScaling::for_dimensions(&dims);
        let by_name = |name: &str| scaling.dims()[dims.get(name).unwrap().index()];
        assert_eq!(by_name("cpu"), DimScaling::Rate);
        assert_eq!(by_name("disk_gib"), DimScaling::Size);
        assert_eq!(by_name("mem_gib"), DimScaling::Size);
        assert_eq!(by_name("gpu_mem_gib"), DimScaling::Fixed);
        assert_eq!(by_name("power_w"), DimScaling::Rate);
        assert_eq!(by_name("ssd_writes_gib_day"), DimScaling::Rate);
    }

    #[test]
    fn applies_each_multiplier_and_zeroes_inactive_groups() {
        let dims = Dimensions::default();
        let scaling = HeatScaling::for_dimensions(&dims);
        let heat = [4.0, 24.0, 120.0, 8000.0, 200.0, 1200.0, 80.0, 60.0];
        let load = GroupLoad {
            active: true,
            load: 2.0,
            size: 1.5,
        };
        assert_eq!(
            scaling.apply(&heat, load),
            vec![8.0, 36.0, 180.0, 16000.0, 400.0, 2400.0, 80.0, 120.0]
        );
        let inactive = GroupLoad {
            active: false,
            ..load
        };
        assert!(scaling.apply(&heat, inactive).iter().all(|&x| x == 0.0));
    }
}
