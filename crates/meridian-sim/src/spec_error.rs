//! A mistake in a scenario's `workload:` or `faults:` section, named by where it is.
//!
//! Serde already reports malformed YAML (a wrong type, an unknown field, a bad duration). What
//! it cannot see is a name that does not resolve against the fleet or a number outside its
//! range; those come back as a [`SpecError`] whose `path` is the field inside the scenario, so
//! the message reads like the fleet validator's: `workload.flash_crowds[2].group: ...`.

use std::fmt;

/// Most suggestions offered for an unknown name: enough to spot a typo, short enough to read.
const SUGGESTIONS_MAX: usize = 3;
/// Names longer than this are not compared (edit distance is quadratic in length).
const SUGGESTION_NAME_LENGTH_MAX: usize = 64;

/// One problem with a scenario section: `path` locates the field, `message` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl SpecError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for SpecError {}

/// The message for a name that does not resolve: `unknown node "n3" (did you mean n03?)`.
pub(crate) fn unknown_name<'a>(
    what: &str,
    name: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> String {
    let close = close_names(name, known);
    if close.is_empty() {
        format!("unknown {what} \"{name}\"")
    } else {
        format!(
            "unknown {what} \"{name}\" (did you mean {}?)",
            close.join(", ")
        )
    }
}

/// Up to [`SUGGESTIONS_MAX`] of the names in `known` closest to `name` (within a small edit
/// distance), by name so the message is deterministic. Only used on the error path.
pub(crate) fn close_names<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    if name.chars().count() > SUGGESTION_NAME_LENGTH_MAX {
        return Vec::new();
    }
    // A third of the name, at least one edit: `n3` → `n03`, `ordrs` → `orders`.
    let distance_max = (name.chars().count() / 3).max(1);
    let mut close: Vec<(usize, &str)> = known
        .into_iter()
        .filter(|candidate| candidate.chars().count() <= SUGGESTION_NAME_LENGTH_MAX)
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= distance_max)
        .collect();
    close.sort_unstable();
    close.dedup();
    // Only the closest: `orders-*` is a better guess than `orders*` for `ordrs-*`.
    let best = close.first().map_or(0, |&(distance, _)| distance);
    close
        .into_iter()
        .take_while(|&(distance, _)| distance == best)
        .take(SUGGESTIONS_MAX)
        .map(|(_, candidate)| candidate.to_string())
        .collect()
}

/// Levenshtein distance over chars, one row of memory.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, char_a) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &char_b) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(char_a != char_b);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Checks that `value` is finite and within `[min, max]`; the message names the range.
pub(crate) fn check_range(path: &str, value: f64, min: f64, max: f64) -> Result<(), SpecError> {
    if value.is_finite() && value >= min && value <= max {
        Ok(())
    } else {
        Err(SpecError::new(
            path,
            format!("must be a number in [{min}, {max}], not {value}"),
        ))
    }
}

/// Checks that `value` is finite and strictly greater than `min`.
pub(crate) fn check_above(path: &str, value: f64, min: f64) -> Result<(), SpecError> {
    if value.is_finite() && value > min {
        Ok(())
    } else {
        Err(SpecError::new(
            path,
            format!("must be a finite number > {min}, not {value}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_path_then_message() {
        let error = SpecError::new("faults.events[0].node_crash.node", "unknown node \"n99\"");
        assert_eq!(
            error.to_string(),
            "faults.events[0].node_crash.node: unknown node \"n99\""
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("n3", "n03"), 1);
        assert_eq!(edit_distance("ordrs", "orders"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn suggests_close_names_closest_first() {
        let known = ["n01", "n02", "n03", "gpu1", "r03"];
        assert_eq!(close_names("n3", known), vec!["n03"]);
        assert_eq!(close_names("n0", known), vec!["n01", "n02", "n03"]);
        assert!(close_names("spine-9", known).is_empty());
        assert_eq!(
            unknown_name("node", "gpu3", known),
            "unknown node \"gpu3\" (did you mean gpu1?)"
        );
    }

    #[test]
    fn range_checks_reject_nan_and_bounds() {
        assert!(check_range("x", 0.5, 0.0, 1.0).is_ok());
        assert!(check_range("x", f64::NAN, 0.0, 1.0).is_err());
        assert!(check_range("x", 1.5, 0.0, 1.0).is_err());
        assert!(check_above("x", 0.0, 0.0).is_err());
        assert!(check_above("x", f64::INFINITY, 0.0).is_err());
        assert_eq!(
            check_range("a.b", 2.0, 0.0, 1.0).unwrap_err().to_string(),
            "a.b: must be a number in [0, 1], not 2"
        );
    }
}
