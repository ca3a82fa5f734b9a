//! The OpenAPI document against what is served: the same routes with the same roles, both
//! ways, and real responses that fit the documented schemas.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use meridian_api::{routes, RouteMethod};
use serde_json::{json, Value};

use crate::common::*;

async fn served_document(harness: &Harness) -> Value {
    let reply = harness
        .call(Method::GET, "/openapi.json", None, Payload::None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

/// (METHOD, path, role) of every documented operation.
fn documented(document: &Value) -> BTreeSet<(String, String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let role = operation["x-meridian-role"].as_str().unwrap_or("MISSING");
            operations.insert((method.to_uppercase(), path.clone(), role.to_string()));
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_served_routes_with_their_roles() {
    let harness = leading().await;
    let document = served_document(&harness).await;
    assert_eq!(document["openapi"], "3.1.0");
    let served: BTreeSet<(String, String, String)> = routes()
        .iter()
        .map(|r| {
            (
                r.method.as_str().to_string(),
                r.path.to_string(),
                r.access.name().to_string(),
            )
        })
        .collect();
    let documented = documented(&document);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented (or with another role): {undocumented:#?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served (or with another role): {unserved:#?}"
    );

    // And the router really answers each documented operation: anonymous calls reach the
    // gate (401) or, on public routes, the handler; never "no such route".
    for (method, path, role) in &documented {
        let concrete = path
            .replace("{group}", "orders-db")
            .replace("{partition}", "0")
            .replace("{replica}", "0")
            .replace("{id}", "1")
            .replace("{name}", "n01")
            .replace("{node}", "n01");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let reply = harness
            .call(method.clone(), &concrete, None, Payload::None)
            .await;
        let expected = if role == "public" {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(
            reply.status,
            expected,
            "{method} {concrete}: {}",
            reply.text()
        );
    }
    // Every protected operation declares bearer security, public ones declare none.
    for route in routes() {
        let operation = &document["paths"][route.path][route.method.as_str().to_lowercase()];
        let public = route.access == meridian_api::Access::Public;
        assert_eq!(
            operation["security"] == json!([]),
            public,
            "{} {}",
            route.method.as_str(),
            route.path
        );
        if !public {
            assert!(
                operation["responses"]["401"].is_object(),
                "{} {} documents 401",
                route.method.as_str(),
                route.path
            );
        }
        if route.method != RouteMethod::Get && !public {
            assert!(operation["responses"]["403"].is_object());
        }
    }
}

/// A small JSON Schema checker for the subset the document uses: `$ref`, `type` (one or a
/// list), `properties`, `required`, `additionalProperties`, `items`, `prefixItems`, `enum`,
/// `allOf`, `oneOf`. Returns the first mismatch.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    check_fields(document, schema, value, at, true)
}

/// `closed`: fields the schema does not name are mismatches (off inside `allOf`, where each
/// part names only its own; the union is checked by the caller).
fn check_fields(
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    closed: bool,
) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &document["components"]["schemas"][name];
        assert!(target.is_object(), "dangling $ref {reference}");
        return check_fields(document, target, value, at, closed);
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check_fields(document, part, value, at, false)?;
        }
        if let (true, Value::Object(object)) = (closed, value) {
            for key in object.keys() {
                if !all.iter().any(|part| names_field(document, part, key)) {
                    return Err(format!("{at}.{key}: undocumented field"));
                }
            }
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let matches = one
            .iter()
            .filter(|s| check(document, s, value, at).is_ok())
            .count();
        if matches != 1 {
            return Err(format!("{at}: {matches} of oneOf match {value}"));
        }
    }
    if let Some(types) = types_of(schema) {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !fits {
            return Err(format!("{at}: expected {types:?}, got {value}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Value::Object(object) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().expect("name");
            if !object.contains_key(key) {
                return Err(format!("{at}: missing `{key}` in {value}"));
            }
        }
        for (key, field) in object {
            let here = format!("{at}.{key}");
            match (&schema["properties"][key], &schema["additionalProperties"]) {
                (Value::Null, Value::Bool(false)) => return Err(format!("{here}: not allowed")),
                (Value::Null, Value::Object(_)) => {
                    check(document, &schema["additionalProperties"], field, &here)?
                }
                (Value::Null, _) if closed && schema["properties"].is_object() => {
                    return Err(format!("{here}: undocumented field"))
                }
                (Value::Null, _) => {}
                (property, _) => check(document, property, field, &here)?,
            }
        }
    }
    if let Value::Array(items) = value {
        let prefix = schema["prefixItems"].as_array();
        for (index, item) in items.iter().enumerate() {
            let here = format!("{at}[{index}]");
            match prefix.and_then(|p| p.get(index)) {
                Some(item_schema) => check(document, item_schema, item, &here)?,
                None if schema["items"].is_object() => {
                    check(document, &schema["items"], item, &here)?
                }
                None => {}
            }
        }
    }
    Ok(())
}

fn names_field(document: &Value, schema: &Value, key: &str) -> bool {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            names_field(document, &document["components"]["schemas"][name], key)
        }
        None => schema["properties"][key].is_object(),
    }
}

fn types_of(schema: &Value) -> Option<Vec<&str>> {
    match &schema["type"] {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn response_schema<'d>(document: &'d Value, method: &str, path: &str, status: u16) -> &'d Value {
    let mut response = &document["paths"][path][method]["responses"][status.to_string()];
    if let Some(reference) = response["$ref"].as_str() {
        response = &document["components"]["responses"]
            [reference.trim_start_matches("#/components/responses/")];
    }
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "no JSON schema for {method} {path} {status}"
    );
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_fit_their_documented_schemas() {
    let harness = leading().await;
    let plan = harness.proposed_plan().await;
    let document = served_document(&harness).await;
    let plan_path = format!("/v1/plans/{plan}");
    let calls: Vec<(Method, &str, String, Option<&str>, Payload)> = vec![
        (
            Method::GET,
            "/healthz",
            "/healthz".into(),
            None,
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/status",
            "/v1/status".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/fleet",
            "/v1/fleet".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/tasks",
            "/v1/tasks".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/tasks/{group}",
            "/v1/tasks/orders-db".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/placement",
            "/v1/placement".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/plans",
            "/v1/plans".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/plans/{id}",
            plan_path.clone(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/nodes",
            "/v1/nodes".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/nodes/{name}",
            "/v1/nodes/n01".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/explain/{group}/{partition}/{replica}",
            "/v1/explain/orders-db/0/0".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/events",
            "/v1/events".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::POST,
            "/v1/plans/dry-run",
            "/v1/plans/dry-run".into(),
            Some(OPERATOR),
            Payload::Json(json!({ "fail": ["n05"] })),
        ),
        (
            Method::POST,
            "/v1/plans/{id}/approve",
            format!("{plan_path}/approve"),
            Some(OPERATOR),
            Payload::None,
        ),
        (
            Method::POST,
            "/v1/nodes/{name}/cordon",
            "/v1/nodes/r02/cordon".into(),
            Some(OPERATOR),
            Payload::None,
        ),
        (
            Method::POST,
            "/v1/agents/{node}/sync",
            "/v1/agents/n01/sync".into(),
            Some(AGENT_N01),
            Payload::Json(serde_json::to_value(report("n01")).expect("json")),
        ),
        (
            Method::PUT,
            "/v1/fleet",
            "/v1/fleet".into(),
            Some(ADMIN),
            Payload::Yaml(SMALL.into()),
        ),
        // Errors have their schema too.
        (
            Method::GET,
            "/v1/status",
            "/v1/status".into(),
            None,
            Payload::None,
        ),
        (
            Method::GET,
            "/v1/tasks/{group}",
            "/v1/tasks/nope".into(),
            Some(READ),
            Payload::None,
        ),
        (
            Method::PUT,
            "/v1/fleet",
            "/v1/fleet".into(),
            Some(ADMIN),
            Payload::Yaml("name: [".into()),
        ),
    ];
    for (method, template, path, token, payload) in calls {
        let reply = harness.call(method.clone(), &path, token, payload).await;
        let schema = response_schema(
            &document,
            &method.as_str().to_lowercase(),
            template,
            reply.status.as_u16(),
        );
        if let Err(mismatch) = check(&document, schema, &reply.json(), "$") {
            panic!("{method} {path} ({}): {mismatch}", reply.status);
        }
    }
    // The request schemas accept what the wire types produce.
    let sync = serde_json::to_value(report("n01")).expect("json");
    check(
        &document,
        &json!({ "$ref": "#/components/schemas/SyncRequest" }),
        &sync,
        "$",
    )
    .expect("SyncRequest");
    let what_if = serde_json::to_value(meridian_controller::ops::WhatIf::default()).expect("json");
    check(
        &document,
        &json!({ "$ref": "#/components/schemas/WhatIf" }),
        &what_if,
        "$",
    )
    .expect("WhatIf");
}
