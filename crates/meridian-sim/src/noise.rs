//! Stateless randomness: hashes and smooth value noise that are pure functions of their inputs.
//!
//! A stateful RNG advanced per sample would make `workload.at(t)` depend on which times were
//! sampled before, so a strategy that looks ahead (the oracle) or a tick size change would
//! reshuffle everyone's noise. Hashing `(seed, group, knot)` instead gives the same value at the
//! same time whatever the sampling order.

/// √3: scales the centred Irwin–Hall sum of four uniforms (variance 1/3) to unit variance.
const SQRT_3: f64 = 1.732_050_807_568_877_2;

/// SplitMix64's finalizer: a fast bijective mix whose output bits all depend on all input bits.
pub(crate) fn mix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Combines two keys; order matters, so `(seed, a)` and `(a, seed)` differ.
pub(crate) fn combine(a: u64, b: u64) -> u64 {
    mix64(a ^ mix64(b))
}

/// FNV-1a of a name, mixed: keys noise by name so adding a group leaves others' noise alone.
pub(crate) fn hash_name(name: &str) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01B3);
    }
    mix64(hash)
}

/// A zero-mean, unit-variance value at knot `index`: the Irwin–Hall sum of four 16-bit
/// uniforms from one hash, centred and scaled. Bounded to ±2√3, so no freak outliers, and
/// plain arithmetic (no libm), so the same on every platform.
fn knot_value(key: u64, index: i64) -> f64 {
    let hash = combine(key, index as u64);
    let sum: f64 = (0..4)
        .map(|lane| {
            let bits = (hash >> (16 * lane)) & 0xFFFF;
            (bits as f64 + 0.5) / 65_536.0
        })
        .sum();
    (sum - 2.0) * SQRT_3
}

/// Smooth noise at `t_s`: knot values every `knot_s` seconds, joined by smoothstep so the curve
/// and its slope are continuous. Unit variance at knots, a little less between them.
pub(crate) fn smooth_noise(key: u64, t_s: f64, knot_s: f64) -> f64 {
    debug_assert!(knot_s > 0.0, "knot spacing must be positive");
    let position = t_s / knot_s;
    let knot = position.floor();
    let fraction = position - knot;
    let weight = fraction * fraction * (3.0 - 2.0 * fraction);
    let index = knot as i64;
    let before = knot_value(key, index);
    let after = knot_value(key, index.wrapping_add(1));
    before + (after - before) * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knot_values_are_centred_unit_variance_and_bounded() {
        let count = 20_000;
        let values: Vec<f64> = (0..count).map(|i| knot_value(7, i)).collect();
        let mean = values.iter().sum::<f64>() / count as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.05, "variance {variance}");
        assert!(values.iter().all(|v| v.abs() <= 2.0 * SQRT_3));
    }

    #[test]
    fn noise_passes_through_knots_and_is_continuous() {
        let key = combine(1, hash_name("orders-db"));
        assert_eq!(smooth_noise(key, 7_200.0, 3_600.0), knot_value(key, 2));
        let just_before = smooth_noise(key, 7_199.999, 3_600.0);
        assert!((just_before - knot_value(key, 2)).abs() < 1e-6);
        assert!(smooth_noise(key, -10.0, 3_600.0).is_finite());
    }

    #[test]
    fn keys_separate_streams() {
        assert_ne!(hash_name("a"), hash_name("b"));
        assert_ne!(combine(1, 2), combine(2, 1));
        assert_ne!(knot_value(combine(1, 5), 0), knot_value(combine(2, 5), 0));
    }
}
