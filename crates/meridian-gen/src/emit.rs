//! A compact YAML writer: block style for structure, flow style for the small leaves.
//!
//! serde_yaml_ng writes everything in block style, one scalar per line, which turns a fleet
//! of 10k nodes into a file of 100k lines. People write fleet files with one line per node
//! (`- { name: n00001, class: storage }`); this writer does the same:
//! - a collection of scalars is written in flow style (`{ cpu: 4 }`, `[rack, pdu]`);
//! - a collection holding both scalars and collections is written in flow style when it fits
//!   on one line (`{ name: r0001, capacity: { net_mbps: 40000 }, children: [n1, n2] }`);
//! - a collection of collections, or one too long for a line, is written in block style.
//!
//! Entries whose value is null or an empty collection are left out: in a fleet file every
//! such field has a default, and leaving them out keeps the file short.

use serde_yaml_ng::Value;

/// Longest flow line for a collection that holds collections (scalar-only ones are exempt:
/// a rack's node list is one line however many nodes it has).
const FLOW_WIDTH_MAX: usize = 240;
const INDENT: usize = 2;

/// Writes `value` (a mapping at the top) as YAML, after `header` comment lines.
pub fn to_compact_yaml(value: &Value, header: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    let value = pruned(value);
    match &value {
        Value::Mapping(mapping) => {
            for (i, (key, item)) in mapping.iter().enumerate() {
                if i > 0 && is_collection(item) {
                    out.push('\n');
                }
                write_entry(&mut out, key, item, 0);
            }
        }
        other => {
            write_block(&mut out, other, 0);
        }
    }
    out
}

/// `value` without mapping entries that are null or empty collections, at any depth.
fn pruned(value: &Value) -> Value {
    match value {
        Value::Mapping(mapping) => Value::Mapping(
            mapping
                .iter()
                .filter(|(_, v)| !is_empty(v))
                .map(|(k, v)| (k.clone(), pruned(v)))
                .collect(),
        ),
        Value::Sequence(items) => Value::Sequence(items.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Mapping(mapping) => mapping.is_empty(),
        Value::Sequence(items) => items.is_empty(),
        _ => false,
    }
}

fn is_collection(value: &Value) -> bool {
    matches!(value, Value::Mapping(_) | Value::Sequence(_))
}

fn children(value: &Value) -> Vec<&Value> {
    match value {
        Value::Mapping(mapping) => mapping.values().collect(),
        Value::Sequence(items) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// The one-line form of `value`, if it should be written on one line.
fn flow_if_fits(value: &Value) -> Option<String> {
    if !is_collection(value) {
        return Some(scalar(value));
    }
    let items = children(value);
    let nested = items.iter().filter(|v| is_collection(v)).count();
    if nested > 0 && nested == items.len() {
        return None;
    }
    if items
        .iter()
        .any(|v| children(v).iter().any(|w| is_collection(w)))
    {
        return None;
    }
    let text = flow(value);
    (nested == 0 || text.len() <= FLOW_WIDTH_MAX).then_some(text)
}

fn flow(value: &Value) -> String {
    match value {
        Value::Mapping(mapping) if mapping.is_empty() => "{}".to_string(),
        Value::Mapping(mapping) => {
            let entries: Vec<String> = mapping
                .iter()
                .map(|(k, v)| format!("{}: {}", key(k), flow(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Sequence(items) => {
            let entries: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", entries.join(", "))
        }
        other => scalar(other),
    }
}

fn write_entry(out: &mut String, name: &Value, value: &Value, indent: usize) {
    push_indent(out, indent);
    out.push_str(&key(name));
    out.push(':');
    match flow_if_fits(value) {
        Some(text) => {
            out.push(' ');
            out.push_str(&text);
            out.push('\n');
        }
        None => {
            out.push('\n');
            write_block(out, value, indent + INDENT);
        }
    }
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Mapping(mapping) => {
            for (name, item) in mapping {
                write_entry(out, name, item, indent);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                write_item(out, item, indent);
            }
        }
        other => {
            push_indent(out, indent);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// One `- ` item of a block sequence. A block mapping starts on the dash's line.
fn write_item(out: &mut String, item: &Value, indent: usize) {
    push_indent(out, indent);
    out.push_str("- ");
    if let Some(text) = flow_if_fits(item) {
        out.push_str(&text);
        out.push('\n');
        return;
    }
    match item {
        Value::Mapping(mapping) => {
            let mut first = true;
            for (name, value) in mapping {
                let mut entry = String::new();
                write_entry(&mut entry, name, value, indent + INDENT);
                if first {
                    out.push_str(&entry[indent + INDENT..]);
                    first = false;
                } else {
                    out.push_str(&entry);
                }
            }
        }
        other => {
            out.push('\n');
            write_block(out, other, indent + INDENT);
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn key(value: &Value) -> String {
    flow(value)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number_text(number),
        Value::String(text) => string(text),
        Value::Mapping(_) | Value::Sequence(_) => flow(value),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, flow(&tagged.value)),
    }
}

/// Integral floats print without `.0`: `40000` reads better than `40000.0` and loads the same
/// into an `f64` field.
fn number_text(number: &serde_yaml_ng::Number) -> String {
    match number.as_f64() {
        Some(float)
            if number.is_f64()
                && float.is_finite()
                && float.fract() == 0.0
                && float.abs() < 1e15 =>
        {
            format!("{}", float as i64)
        }
        _ => number.to_string(),
    }
}

/// Plain when unambiguous (identifiers like `n00001`, `us-east`, `rack.net_mbps`, `node.*`),
/// double-quoted otherwise.
fn string(text: &str) -> String {
    let starts_well = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let plain_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '*'));
    const RESERVED: [&str; 12] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "inf", "nan", "infinity",
    ];
    if starts_well && plain_chars && !RESERVED.contains(&text.to_ascii_lowercase().as_str()) {
        return text.to_string();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        let written = to_compact_yaml(&value, &[]);
        let again: Value = serde_yaml_ng::from_str(&written).unwrap();
        assert_eq!(
            to_compact_yaml(&again, &[]),
            written,
            "not stable:\n{written}"
        );
        written
    }

    #[test]
    fn leaves_are_flow_and_structure_is_block() {
        let text = "name: x\nnodes:\n  - name: n1\n    class: storage\ngroups:\n  - name: g\n    heat:\n      Leader:\n        cpu: 4\n    spread: [rack, pdu]\n";
        let written = round_trip(text);
        assert_eq!(written, "name: x\n\nnodes:\n  - { name: n1, class: storage }\n\ngroups:\n  - name: g\n    heat:\n      Leader: { cpu: 4 }\n    spread: [rack, pdu]\n");
    }

    #[test]
    fn drops_nulls_and_empty_collections() {
        let written = round_trip("a: null\nb: {}\nc: []\nd: { e: [], f: 1 }\n");
        assert_eq!(written, "d: { f: 1 }\n");
    }

    #[test]
    fn quotes_what_would_read_as_something_else() {
        let written =
            round_trip("a: 'yes'\nb: '12'\nc: 'x: y'\nd: \"tab\\there\"\ne: ''\nf: 1.5\ng: 2.0\n");
        assert_eq!(
            written,
            "a: \"yes\"\nb: \"12\"\nc: \"x: y\"\nd: \"tab\\there\"\ne: \"\"\nf: 1.5\ng: 2\n"
        );
    }

    #[test]
    fn long_mixed_collections_become_block() {
        let names: Vec<String> = (0..40).map(|i| format!("node-number-{i}")).collect();
        let text = format!(
            "racks:\n  - name: r1\n    capacity: {{ net_mbps: 1 }}\n    children: [{}]\n",
            names.join(", ")
        );
        let written = round_trip(&text);
        assert!(written.starts_with("racks:\n  - name: r1\n    capacity: { net_mbps: 1 }\n    children: [node-number-0,"), "{written}");
    }
}
