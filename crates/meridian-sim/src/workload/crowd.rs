//! Flash crowds: their shape over time, and the random ones drawn from the seed.

use meridian_model::{Fleet, GroupId, RegionId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::pattern::select_groups;
use super::spec::RandomFlashCrowds;
use crate::noise::combine;
use crate::spec_error::{check_above, check_range, SpecError};

/// Share of a crowd's duration spent ramping up: crowds arrive fast.
const RISE_FRACTION: f64 = 0.1;
/// Decay rate over the rest of the duration: the excess falls to e^−4 ≈ 2% before the final
/// correction takes it to exactly zero at the end.
const DECAY_RATE: f64 = 4.0;
/// Random crowds per scenario at most: bounds the drawing loop and every group's crowd list.
pub const RANDOM_CROWDS_MAX: usize = 10_000;
/// Keeps the random crowds' stream apart from every other use of the seed.
const RANDOM_CROWDS_STREAM: u64 = 0x6372_6F77_6473; // "crowds"

/// One flash crowd, resolved: it multiplies the load of its groups by `1 + extra × shape`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Crowd {
    pub start_s: f64,
    pub duration_s: f64,
    /// Peak factor less one: the extra load at the top, relative to the usual load.
    pub extra: f64,
    pub region: Option<RegionId>,
}

impl Crowd {
    /// The extra load at `t_s`, relative to the load without the crowd (0 outside it).
    pub(crate) fn extra_at(&self, t_s: f64) -> f64 {
        self.extra * crowd_shape((t_s - self.start_s) / self.duration_s)
    }

    pub(crate) fn end_s(&self) -> f64 {
        self.start_s + self.duration_s
    }
}

/// A crowd's size, 0..=1 of its peak, at `progress` through its duration: a linear rise over
/// the first tenth, then an exponential decay shifted so it reaches exactly 0 at the end (no
/// step when the crowd ends). Zero outside `[0, 1)`.
pub(crate) fn crowd_shape(progress: f64) -> f64 {
    if !(0.0..1.0).contains(&progress) {
        return 0.0;
    }
    if progress < RISE_FRACTION {
        return progress / RISE_FRACTION;
    }
    let decay_progress = (progress - RISE_FRACTION) / (1.0 - RISE_FRACTION);
    let floor = (-DECAY_RATE).exp();
    (((-DECAY_RATE * decay_progress).exp() - floor) / (1.0 - floor)).max(0.0)
}

/// A random crowd on one group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RandomCrowd {
    pub group: GroupId,
    pub crowd: Crowd,
}

/// Draws the random crowds of a whole run up front, from their own ChaCha8 stream: a Poisson
/// process of `per_day` crowds over `[0, duration_s)`.
pub(crate) fn draw_random_crowds(
    spec: &RandomFlashCrowds,
    fleet: &Fleet,
    seed: u64,
    duration_s: f64,
) -> Result<Vec<RandomCrowd>, SpecError> {
    const PATH: &str = "workload.random_flash_crowds";
    validate_random(spec, duration_s)?;
    let eligible = select_groups(fleet, &spec.group, &format!("{PATH}.group"))?;
    if spec.per_day == 0.0 {
        return Ok(Vec::new());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(combine(seed, RANDOM_CROWDS_STREAM));
    let gaps_s = Exp::new(spec.per_day / 86_400.0)
        .map_err(|error| SpecError::new(format!("{PATH}.per_day"), error.to_string()))?;
    let mut crowds = Vec::new();
    let mut t_s = gaps_s.sample(&mut rng);
    while t_s < duration_s && crowds.len() < RANDOM_CROWDS_MAX {
        let group = eligible[rng.random_range(0..eligible.len())];
        let factor = rng.random_range(spec.factor_min..=spec.factor_max);
        let length_s = rng.random_range(spec.duration_min.seconds()..=spec.duration_max.seconds());
        crowds.push(RandomCrowd {
            group,
            crowd: Crowd {
                start_s: t_s,
                duration_s: length_s,
                extra: factor - 1.0,
                region: None,
            },
        });
        t_s += gaps_s.sample(&mut rng);
    }
    Ok(crowds)
}

fn validate_random(spec: &RandomFlashCrowds, duration_s: f64) -> Result<(), SpecError> {
    const PATH: &str = "workload.random_flash_crowds";
    let expected = spec.per_day * duration_s / 86_400.0;
    check_range(&format!("{PATH}.per_day"), spec.per_day, 0.0, f64::MAX)?;
    if expected > RANDOM_CROWDS_MAX as f64 / 2.0 {
        return Err(SpecError::new(
            format!("{PATH}.per_day"),
            format!(
                "{} a day over this scenario is about {expected:.0} crowds; at most {} are supported",
                spec.per_day,
                RANDOM_CROWDS_MAX / 2
            ),
        ));
    }
    check_range(
        &format!("{PATH}.factor_min"),
        spec.factor_min,
        1.0,
        f64::MAX,
    )?;
    check_range(
        &format!("{PATH}.factor_max"),
        spec.factor_max,
        spec.factor_min,
        f64::MAX,
    )?;
    check_above(
        &format!("{PATH}.duration_min"),
        spec.duration_min.seconds(),
        0.0,
    )?;
    if spec.duration_max < spec.duration_min {
        return Err(SpecError::new(
            format!("{PATH}.duration_max"),
            format!(
                "{} is shorter than duration_min {}",
                spec.duration_max, spec.duration_min
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rises_fast_then_decays_to_zero() {
        assert_eq!(crowd_shape(-0.01), 0.0);
        assert_eq!(crowd_shape(0.0), 0.0);
        assert!((crowd_shape(0.05) - 0.5).abs() < 1e-12);
        assert!((crowd_shape(RISE_FRACTION) - 1.0).abs() < 1e-12);
        assert!(crowd_shape(0.3) < crowd_shape(0.2));
        assert!(crowd_shape(0.999) < 0.01);
        assert_eq!(crowd_shape(1.0), 0.0);
    }

    #[test]
    fn shape_is_continuous() {
        let steps = 10_000;
        let mut previous = crowd_shape(0.0);
        for step in 1..=steps {
            let value = crowd_shape(step as f64 / steps as f64);
            assert!((value - previous).abs() < 0.002, "jump at step {step}");
            previous = value;
        }
    }
}
