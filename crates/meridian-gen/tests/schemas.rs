//! docs/fleet.schema.json and docs/placement.schema.json describe what the model reads: the
//! examples and generated fleets are valid, and so are the placements made for them; typical
//! mistakes the model rejects are rejected by the schema too.

use meridian_gen::{generate_yaml, skewed_placement, GenSpec};
use meridian_model::Fleet;
use serde_json::Value;

const FLEET_SCHEMA: &str = include_str!("../../../docs/fleet.schema.json");
const PLACEMENT_SCHEMA: &str = include_str!("../../../docs/placement.schema.json");
const SMALL: &str = include_str!("../../../examples/small.yaml");
const MEDIUM: &str = include_str!("../../../examples/medium.yaml");

fn schema(text: &str) -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("schema is not JSON: {e}"));
    jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("not a valid JSON Schema: {e}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"))
}

/// The YAML document as the JSON value a schema validator reads.
fn yaml_as_json(text: &str) -> Value {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn examples_match_the_fleet_schema() {
    let validator = schema(FLEET_SCHEMA);
    for (name, text) in [("small", SMALL), ("medium", MEDIUM)] {
        let found = errors(&validator, &yaml_as_json(text));
        assert!(found.is_empty(), "examples/{name}.yaml: {found:#?}");
    }
}

#[test]
fn generated_fleets_match_the_fleet_schema() {
    let validator = schema(FLEET_SCHEMA);
    for regions in [1, 3] {
        let text = generate_yaml(&GenSpec {
            regions,
            ..GenSpec::new(90, 2_000, 4)
        })
        .unwrap();
        let found = errors(&validator, &yaml_as_json(&text));
        assert!(found.is_empty(), "{regions} regions: {found:#?}");
    }
}

#[test]
fn schema_rejects_what_the_model_rejects() {
    let validator = schema(FLEET_SCHEMA);
    let mistakes = [
        ("    partitions: 16\n", "    partitons: 16\n"),
        ("{ net_mbps: 200000 }", "{ net_mbps: -5 }"),
        ("  headroom:\n", "  headroom:\n    rack.net_mbps.x: 2\n"),
        ("    spread: rack\n", "    spread: { level: rack }\n"),
        ("name: small\n", "name: small\nnodez: []\n"),
    ];
    for (from, to) in mistakes {
        assert!(SMALL.contains(from), "{from:?} is not in small.yaml");
        let text = SMALL.replacen(from, to, 1);
        assert!(
            Fleet::from_yaml(&text, "mutated").is_err(),
            "the model accepts {to:?}"
        );
        assert!(
            !errors(&validator, &yaml_as_json(&text)).is_empty(),
            "the schema accepts {to:?}"
        );
    }
}

#[test]
fn placements_match_the_placement_schema() {
    let validator = schema(PLACEMENT_SCHEMA);
    for (name, text) in [("small", SMALL), ("medium", MEDIUM)] {
        let fleet = Fleet::from_yaml(text, name).unwrap_or_else(|p| panic!("{p}"));
        let doc = skewed_placement(&fleet, 1, 1.0).unwrap_or_else(|e| panic!("{e}"));
        let found = errors(&validator, &serde_json::to_value(&doc).unwrap());
        assert!(found.is_empty(), "{name}: {found:#?}");
    }
    let wrong = serde_json::json!({ "fleet": "small", "groups": [{ "group": "a", "partitions": [[{ "node": "n01" }]] }] });
    assert!(!errors(&validator, &wrong).is_empty());
}
