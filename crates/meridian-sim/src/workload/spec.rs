//! The `workload:` section of a scenario file, as written. See docs/sim-scenario.md.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::duration::HumanDuration;
use crate::spec_error::{check_above, check_range, SpecError};

/// How a scenario's load changes over time. Every field is optional: an empty section keeps
/// every group at the steady heat its fleet file declares.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Each region's clock; a region not listed runs on UTC.
    pub regions: BTreeMap<String, RegionClock>,
    /// The profile of every group that no key of `groups` matches.
    pub default: Profile,
    /// Overrides keyed by group name or by a prefix ending in `*` (`orders-*`, or `*` for all).
    /// A group takes the single most specific matching key — its exact name, else the longest
    /// matching prefix — and that key's fields replace the default's; fields it leaves out
    /// keep the default's values.
    pub groups: BTreeMap<String, ProfileOverride>,
    pub flash_crowds: Vec<FlashCrowd>,
    pub regime_changes: Vec<RegimeChange>,
    pub arrivals: Vec<Arrival>,
    pub random_flash_crowds: Option<RandomFlashCrowds>,
}

/// Where a region's day starts: its offset from UTC, in hours (`-5`, `5.5`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionClock {
    pub utc_offset_hours: f64,
}

/// A group's load over time: a level, seasons, a trend and noise.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Multiplier on the group's declared heat around which everything else varies.
    pub level: f64,
    /// Daily swing, a fraction of the level: 0.4 is ±40%, highest at `peak_hour`.
    pub daily_amplitude: f64,
    /// Weekend dip, a fraction: 0.3 is 30% less load on Saturday and Sunday (local time).
    pub weekly_amplitude: f64,
    /// Local hour (0–24) of the daily peak, in each reading region's own time zone.
    pub peak_hour: f64,
    /// Compound growth of load per day: 0.02 is +2% a day.
    pub trend_per_day: f64,
    /// Relative standard deviation of smooth (hourly) noise on the load.
    pub noise: f64,
    /// Compound growth of data size per day (size-like heat: disk and memory).
    pub size_growth_per_day: f64,
}

impl Default for Profile {
    /// Flat: the declared heat at all times, peaking (if given an amplitude) mid-afternoon.
    fn default() -> Self {
        Profile {
            level: 1.0,
            daily_amplitude: 0.0,
            weekly_amplitude: 0.0,
            peak_hour: 14.0,
            trend_per_day: 0.0,
            noise: 0.0,
            size_growth_per_day: 0.0,
        }
    }
}

impl Profile {
    /// Checks every field's range; `path` is the profile's place (`workload.default`).
    pub fn validate(&self, path: &str) -> Result<(), SpecError> {
        check_above(&format!("{path}.level"), self.level, 0.0)?;
        check_range(
            &format!("{path}.daily_amplitude"),
            self.daily_amplitude,
            0.0,
            1.0,
        )?;
        check_range(
            &format!("{path}.weekly_amplitude"),
            self.weekly_amplitude,
            0.0,
            1.0,
        )?;
        check_range(&format!("{path}.peak_hour"), self.peak_hour, 0.0, 24.0)?;
        // Below −100% a day, compound growth has no meaning.
        check_above(&format!("{path}.trend_per_day"), self.trend_per_day, -1.0)?;
        check_range(&format!("{path}.noise"), self.noise, 0.0, 1.0)?;
        check_above(
            &format!("{path}.size_growth_per_day"),
            self.size_growth_per_day,
            -1.0,
        )
    }
}

/// A profile's fields for some groups; each one left out keeps the default profile's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileOverride {
    pub level: Option<f64>,
    pub daily_amplitude: Option<f64>,
    pub weekly_amplitude: Option<f64>,
    pub peak_hour: Option<f64>,
    pub trend_per_day: Option<f64>,
    pub noise: Option<f64>,
    pub size_growth_per_day: Option<f64>,
}

impl ProfileOverride {
    /// `base` with this override's fields in place of its own.
    pub fn apply(&self, base: &Profile) -> Profile {
        Profile {
            level: self.level.unwrap_or(base.level),
            daily_amplitude: self.daily_amplitude.unwrap_or(base.daily_amplitude),
            weekly_amplitude: self.weekly_amplitude.unwrap_or(base.weekly_amplitude),
            peak_hour: self.peak_hour.unwrap_or(base.peak_hour),
            trend_per_day: self.trend_per_day.unwrap_or(base.trend_per_day),
            noise: self.noise.unwrap_or(base.noise),
            size_growth_per_day: self.size_growth_per_day.unwrap_or(base.size_growth_per_day),
        }
    }
}

/// A sudden rush on some groups: load rises to `factor` × its usual value within the first
/// tenth of `duration`, then decays exponentially back to normal by the end.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashCrowd {
    /// A group name or a prefix ending in `*`.
    pub group: String,
    pub at: HumanDuration,
    pub duration: HumanDuration,
    /// Peak load as a multiple of the load without the crowd (≥ 1).
    pub factor: f64,
    /// Where the crowd reads from; without it, every region's access grows in proportion.
    #[serde(default)]
    pub region: Option<String>,
}

/// A lasting change from `at` on: the level multiplies by `factor`, and/or the access shares
/// by region are replaced by `access` (normalized to sum 1).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeChange {
    pub group: String,
    pub at: HumanDuration,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub access: Option<BTreeMap<String, f64>>,
}

/// Groups that do not exist before `at`: a new database, a model deployment being rolled out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    pub group: String,
    pub at: HumanDuration,
}

/// Flash crowds drawn from the seed: a Poisson process of `per_day` crowds, each on one group
/// chosen uniformly (among those `group` matches), with factor and duration drawn uniformly
/// from their ranges.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFlashCrowds {
    pub per_day: f64,
    pub factor_min: f64,
    pub factor_max: f64,
    pub duration_min: HumanDuration,
    pub duration_max: HumanDuration,
    /// Which groups crowds may hit: a name or prefix ending in `*`; all groups by default.
    pub group: String,
}

impl Default for RandomFlashCrowds {
    fn default() -> Self {
        RandomFlashCrowds {
            per_day: 0.0,
            factor_min: 2.0,
            factor_max: 5.0,
            duration_min: HumanDuration::from_seconds(600.0),
            duration_max: HumanDuration::from_seconds(3_600.0),
            group: "*".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_flat() {
        let spec: WorkloadSpec = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(spec, WorkloadSpec::default());
        assert_eq!(spec.default.level, 1.0);
        assert!(spec.default.validate("workload.default").is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = serde_yaml_ng::from_str::<WorkloadSpec>("default: { daly_amplitude: 0.4 }")
            .unwrap_err()
            .to_string();
        assert!(error.contains("daly_amplitude"), "{error}");
        let error = serde_yaml_ng::from_str::<WorkloadSpec>("flash_crowd: []")
            .unwrap_err()
            .to_string();
        assert!(error.contains("flash_crowd"), "{error}");
    }

    #[test]
    fn override_keeps_fields_it_leaves_out() {
        let base = Profile {
            daily_amplitude: 0.4,
            noise: 0.1,
            ..Profile::default()
        };
        let partial = ProfileOverride {
            noise: Some(0.0),
            ..ProfileOverride::default()
        };
        let merged = partial.apply(&base);
        assert_eq!(merged.daily_amplitude, 0.4);
        assert_eq!(merged.noise, 0.0);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Profile {
            daily_amplitude: 1.5,
            ..Profile::default()
        };
        let error = bad.validate("workload.groups.orders-*").unwrap_err();
        assert_eq!(error.path, "workload.groups.orders-*.daily_amplitude");
        let bad = Profile {
            trend_per_day: -1.0,
            ..Profile::default()
        };
        assert_eq!(
            bad.validate("workload.default").unwrap_err().path,
            "workload.default.trend_per_day"
        );
    }
}
