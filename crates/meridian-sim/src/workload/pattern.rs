//! Group selectors: an exact group name, or a prefix ending in `*` (`orders-*`; `*` is all).

use std::collections::BTreeSet;

use meridian_model::{Fleet, GroupId};

use crate::spec_error::{close_names, SpecError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupPattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

impl<'a> GroupPattern<'a> {
    /// Reads a selector; a `*` anywhere but at the end is an error at `path`.
    pub(crate) fn parse(text: &'a str, path: &str) -> Result<GroupPattern<'a>, SpecError> {
        if text.is_empty() {
            return Err(SpecError::new(
                path,
                "a group name or a prefix ending in `*`",
            ));
        }
        let (body, is_prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(SpecError::new(
                path,
                format!("\"{text}\": `*` may only end a pattern (`orders-*`)"),
            ));
        }
        Ok(if is_prefix {
            GroupPattern::Prefix(body)
        } else {
            GroupPattern::Exact(body)
        })
    }

    pub(crate) fn matches(self, name: &str) -> bool {
        match self {
            GroupPattern::Exact(exact) => name == exact,
            GroupPattern::Prefix(prefix) => name.starts_with(prefix),
        }
    }

    /// Higher is more specific: an exact name beats every prefix, a longer prefix a shorter.
    pub(crate) fn specificity(self) -> usize {
        match self {
            GroupPattern::Exact(_) => usize::MAX,
            GroupPattern::Prefix(prefix) => prefix.len(),
        }
    }
}

/// The groups `text` selects, in id order; an error at `path` if it is malformed or selects
/// none (a selector that matches nothing is almost always a typo).
pub(crate) fn select_groups(
    fleet: &Fleet,
    text: &str,
    path: &str,
) -> Result<Vec<GroupId>, SpecError> {
    let pattern = GroupPattern::parse(text, path)?;
    let selected: Vec<GroupId> = fleet
        .groups
        .iter()
        .filter(|group| pattern.matches(&group.name))
        .map(|group| group.id)
        .collect();
    if selected.is_empty() {
        return Err(SpecError::new(path, no_match_message(fleet, pattern, text)));
    }
    Ok(selected)
}

/// `no group matches "ordrs-*" (did you mean orders-*?)`.
fn no_match_message(fleet: &Fleet, pattern: GroupPattern, text: &str) -> String {
    let names = fleet.groups.iter().map(|group| group.name.as_str());
    let close = match pattern {
        GroupPattern::Exact(name) => close_names(name, names),
        GroupPattern::Prefix(prefix) => {
            // Compare against the groups' own prefixes of about the same length.
            let length = prefix.chars().count();
            let prefixes: BTreeSet<String> = names
                .flat_map(|name| {
                    [length, length + 1].map(|n| name.chars().take(n).collect::<String>())
                })
                .collect();
            close_names(prefix, prefixes.iter().map(String::as_str))
                .into_iter()
                .map(|prefix| format!("{prefix}*"))
                .collect()
        }
    };
    if close.is_empty() {
        format!("no group matches \"{text}\"")
    } else {
        format!(
            "no group matches \"{text}\" (did you mean {}?)",
            close.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_and_prefix() {
        assert_eq!(
            GroupPattern::parse("orders-db", "p").unwrap(),
            GroupPattern::Exact("orders-db")
        );
        assert_eq!(
            GroupPattern::parse("orders-*", "p").unwrap(),
            GroupPattern::Prefix("orders-")
        );
        assert_eq!(
            GroupPattern::parse("*", "p").unwrap(),
            GroupPattern::Prefix("")
        );
        assert!(GroupPattern::parse("or*ders", "p").is_err());
        assert!(GroupPattern::parse("", "p").is_err());
    }

    #[test]
    fn exact_beats_longer_prefix_beats_shorter() {
        let exact = GroupPattern::Exact("orders-db");
        let long = GroupPattern::Prefix("orders-d");
        let short = GroupPattern::Prefix("orders-");
        assert!(exact.specificity() > long.specificity());
        assert!(long.specificity() > short.specificity());
        assert!(short.specificity() > GroupPattern::Prefix("").specificity());
        assert!(long.matches("orders-db") && !long.matches("orders-ui"));
    }
}
