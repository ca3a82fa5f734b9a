//! Human durations in scenario files: `90s`, `15m`, `6h`, `2d`, `1h30m`, `1.5h`, `500ms`.
//!
//! Scenario times are written by people and read in reviews, so they carry their unit; a bare
//! number (`at: 90`) is rejected instead of guessed at. Inside the simulator every time is
//! seconds as `f64` (`t_s`), counted from the start of the scenario.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Longest duration accepted (100 years): keeps every time finite and far from f64's limits.
pub const DURATION_S_MAX: f64 = 100.0 * 365.0 * 86_400.0;

/// Units, longest suffix first so `ms` is not read as `m` followed by garbage.
const UNITS: [(&str, f64); 6] = [
    ("ms", 0.001),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3_600.0),
    ("d", 86_400.0),
    ("w", 604_800.0),
];

/// A duration as written in a scenario file; [`HumanDuration::seconds`] is what code uses.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct HumanDuration(f64);

impl HumanDuration {
    /// A duration of `seconds`; for building specs in code. Clamped to `[0, DURATION_S_MAX]`.
    pub fn from_seconds(seconds: f64) -> HumanDuration {
        HumanDuration(if seconds.is_nan() {
            0.0
        } else {
            seconds.clamp(0.0, DURATION_S_MAX)
        })
    }

    pub fn seconds(self) -> f64 {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration_s(self.0))
    }
}

/// Parses a duration: one or more `<number><unit>` parts (units ms, s, m, h, d, w), optionally
/// separated by spaces; the parts add up. The error says what was wrong and what is accepted.
pub fn parse_duration_s(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(duration_error(text, "it is empty"));
    }
    let mut rest = trimmed;
    let mut total_s = 0.0;
    // Each pass consumes at least one character, so the loop is bounded by the text's length.
    while !rest.is_empty() {
        let number_length = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_length == 0 {
            return Err(duration_error(text, "expected a number"));
        }
        let number: f64 = rest[..number_length]
            .parse()
            .map_err(|_| duration_error(text, "a number is malformed"))?;
        rest = &rest[number_length..];
        let Some(&(unit, scale)) = UNITS.iter().find(|(unit, _)| rest.starts_with(unit)) else {
            return Err(duration_error(text, "every number needs a unit"));
        };
        rest = rest[unit.len()..].trim_start();
        total_s += number * scale;
    }
    if !total_s.is_finite() || total_s > DURATION_S_MAX {
        return Err(duration_error(text, "it is longer than 100 years"));
    }
    Ok(total_s)
}

fn duration_error(text: &str, reason: &str) -> String {
    format!(
        "invalid duration \"{text}\": {reason} (write e.g. 90s, 15m, 6h, 2d, 1h30m; units ms, s, m, h, d, w)"
    )
}

/// Formats seconds the way a person would write them: `1h30m`, `2d`, `45s`, `0.5s`.
pub fn format_duration_s(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "forever".to_string();
    }
    if seconds < 1.0 || (seconds.fract() != 0.0 && seconds < 60.0) {
        return format!("{}s", (seconds * 1000.0).round() / 1000.0);
    }
    let mut remaining = seconds.round() as u64;
    let mut text = String::new();
    for (unit, scale) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let count = remaining / scale;
        remaining %= scale;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
        }
    }
    if text.is_empty() {
        text.push_str("0s");
    }
    text
}

/// Checks a scenario's length, which every time in it is checked against.
pub(crate) fn check_scenario_duration(duration_s: f64) -> Result<(), crate::spec_error::SpecError> {
    if duration_s.is_finite() && (0.0..=DURATION_S_MAX).contains(&duration_s) {
        Ok(())
    } else {
        Err(crate::spec_error::SpecError::new(
            "duration",
            format!("must be between 0s and 100 years, not {duration_s} s"),
        ))
    }
}

/// The time `at` in seconds, or an error at `path` unless it falls inside the run
/// (`[0, duration_s)`): an event that can never happen is a mistake in the scenario, not
/// something to skip quietly.
pub(crate) fn time_within(
    path: &str,
    at: HumanDuration,
    duration_s: f64,
) -> Result<f64, crate::spec_error::SpecError> {
    if at.seconds() >= duration_s {
        return Err(crate::spec_error::SpecError::new(
            path,
            format!(
                "{at} is not before the scenario ends ({})",
                format_duration_s(duration_s)
            ),
        ));
    }
    Ok(at.seconds())
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl DurationVisitor {
    fn bare_number<E: de::Error>(value: impl fmt::Display) -> E {
        E::custom(format!(
            "duration {value} has no unit: write e.g. {value}s, {value}m or {value}h"
        ))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 90s, 15m, 6h or 2d")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        parse_duration_s(text).map(HumanDuration).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<HumanDuration, E> {
        Err(Self::bare_number(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<HumanDuration, E> {
        Err(Self::bare_number(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<HumanDuration, E> {
        Err(Self::bare_number(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration_s("90s"), Ok(90.0));
        assert_eq!(parse_duration_s("15m"), Ok(900.0));
        assert_eq!(parse_duration_s("6h"), Ok(21_600.0));
        assert_eq!(parse_duration_s("2d"), Ok(172_800.0));
        assert_eq!(parse_duration_s("1w"), Ok(604_800.0));
        assert_eq!(parse_duration_s("500ms"), Ok(0.5));
        assert_eq!(parse_duration_s("0s"), Ok(0.0));
    }

    #[test]
    fn parses_fractions_and_compounds() {
        assert_eq!(parse_duration_s("1.5h"), Ok(5_400.0));
        assert_eq!(parse_duration_s("1h30m"), Ok(5_400.0));
        assert_eq!(parse_duration_s(" 1d 2h "), Ok(93_600.0));
    }

    #[test]
    fn rejects_what_it_cannot_read_and_says_why() {
        for bad in ["", "90", "6x", "h", "1..5h", "-5m", "5 m x", "1e3s"] {
            let error = parse_duration_s(bad).unwrap_err();
            assert!(error.contains("invalid duration"), "{bad}: {error}");
            assert!(error.contains("90s, 15m"), "{bad}: {error}");
        }
        assert!(parse_duration_s("1000000w")
            .unwrap_err()
            .contains("100 years"));
    }

    #[test]
    fn deserializes_from_yaml_and_refuses_bare_numbers() {
        let parsed: HumanDuration = serde_yaml_ng::from_str("45m").unwrap();
        assert_eq!(parsed.seconds(), 2_700.0);
        let error = serde_yaml_ng::from_str::<HumanDuration>("90").unwrap_err();
        assert!(error.to_string().contains("has no unit"), "{error}");
        let error = serde_yaml_ng::from_str::<HumanDuration>("2.5").unwrap_err();
        assert!(error.to_string().contains("2.5s"), "{error}");
    }

    #[test]
    fn formats_like_a_person() {
        assert_eq!(format_duration_s(5_400.0), "1h30m");
        assert_eq!(format_duration_s(172_800.0), "2d");
        assert_eq!(format_duration_s(45.0), "45s");
        assert_eq!(format_duration_s(0.5), "0.5s");
        assert_eq!(format_duration_s(0.0), "0s");
        assert_eq!(format_duration_s(f64::INFINITY), "forever");
        assert_eq!(HumanDuration::from_seconds(90.0).to_string(), "1m30s");
    }
}
