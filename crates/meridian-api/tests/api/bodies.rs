//! Bad input of every kind gets a JSON 4xx, never a 5xx or a panic: malformed JSON, wrong
//! shapes and content types, oversized bodies, path parameters of the wrong type, and random
//! bytes on every route that takes a body.

use axum::http::{Method, StatusCode};
use meridian_api::{routes, RouteMethod, BODY_BYTES_MAX, FLEET_BODY_BYTES_MAX};
use proptest::prelude::*;
use serde_json::json;

use crate::common::*;

fn assert_error(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert!(
        reply.json()["error"].is_string(),
        "{what}: {}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_misshapen_json_are_4xx_with_a_message() {
    let harness = leading().await;
    let dry_run =
        |payload| harness.call(Method::POST, "/v1/plans/dry-run", Some(OPERATOR), payload);
    let syntax = dry_run(Payload::Raw("application/json", b"{\"fail\": [".to_vec())).await;
    assert_error(&syntax, StatusCode::BAD_REQUEST, "truncated JSON");
    assert!(syntax.json()["error"]
        .as_str()
        .expect("text")
        .contains("invalid JSON"));
    let shape = dry_run(Payload::Json(json!({ "fail": 3 }))).await;
    assert_error(&shape, StatusCode::UNPROCESSABLE_ENTITY, "wrong type");
    let unknown = dry_run(Payload::Json(json!({ "fial": ["n01"] }))).await;
    assert_error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "unknown field");
    let text = dry_run(Payload::Raw("text/plain", b"{}".to_vec())).await;
    assert_error(&text, StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain");
    let sync = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N01),
            Payload::Json(json!({ "node": "n01" })),
        )
        .await;
    assert_error(
        &sync,
        StatusCode::UNPROCESSABLE_ENTITY,
        "sync without its fields",
    );
    let no_type = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N01),
            Payload::None,
        )
        .await;
    assert_error(
        &no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "sync without a body",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_uploads_need_yaml_text() {
    let harness = leading().await;
    let put = |payload| harness.call(Method::PUT, "/v1/fleet", Some(ADMIN), payload);
    let json_body = put(Payload::Raw("application/json", SMALL.as_bytes().to_vec())).await;
    assert_error(
        &json_body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "JSON content type",
    );
    let untyped = put(Payload::None).await;
    assert_error(
        &untyped,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no content type",
    );
    let binary = put(Payload::Raw("text/yaml", vec![b'a', 0xff, 0xfe, b'\n'])).await;
    assert_error(&binary, StatusCode::BAD_REQUEST, "not UTF-8");
    let text_yaml = put(Payload::Raw(
        "text/yaml; charset=utf-8",
        SMALL.as_bytes().to_vec(),
    ))
    .await;
    assert_eq!(text_yaml.status, StatusCode::OK, "{}", text_yaml.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_and_the_fleet_route_allows_more() {
    let harness = leading().await;
    let revision = harness.controller.spec().expect("spec").revision;
    let huge = vec![b' '; FLEET_BODY_BYTES_MAX + 1];
    let fleet = harness
        .call(
            Method::PUT,
            "/v1/fleet",
            Some(ADMIN),
            Payload::Raw("application/yaml", huge),
        )
        .await;
    assert_error(&fleet, StatusCode::PAYLOAD_TOO_LARGE, "fleet over 4 MiB");
    // Agents' syncs carry every replica of a node: they share the large limit.
    let sync = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N01),
            Payload::Raw("application/json", vec![b' '; FLEET_BODY_BYTES_MAX + 1]),
        )
        .await;
    assert_error(&sync, StatusCode::PAYLOAD_TOO_LARGE, "sync over 4 MiB");
    assert_eq!(harness.controller.spec().expect("spec").revision, revision);
    // A fleet file well over the default limit is fine on its own route.
    let padding = "# padding\n".repeat(2 * BODY_BYTES_MAX / 10);
    let big_fleet = format!("{SMALL}\n{padding}");
    assert!(big_fleet.len() > 2 * BODY_BYTES_MAX);
    let accepted = harness
        .call(
            Method::PUT,
            "/v1/fleet",
            Some(ADMIN),
            Payload::Yaml(big_fleet),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    let over = vec![b' '; BODY_BYTES_MAX + 1];
    for (method, path, token) in [
        (Method::POST, "/v1/plans/dry-run", OPERATOR),
        (Method::POST, "/v1/nodes/n01/cordon", OPERATOR),
        (Method::POST, "/v1/plans/1/approve", OPERATOR),
    ] {
        let reply = harness
            .call(
                method,
                path,
                Some(token),
                Payload::Raw("application/json", over.clone()),
            )
            .await;
        assert_error(&reply, StatusCode::PAYLOAD_TOO_LARGE, path);
    }
    let n01 = harness.get("/v1/nodes/n01", READ).await.json();
    assert_eq!(
        n01["admin"]["cordoned"], false,
        "the oversized cordon did nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_of_the_wrong_type_are_400() {
    let harness = leading().await;
    for path in [
        "/v1/explain/orders-db/zero/0",
        "/v1/explain/orders-db/-1/0",
        "/v1/explain/orders-db/0/x",
        "/v1/explain/orders-db/99999999999/0",
        "/v1/plans/abc",
        "/v1/plans/-3",
    ] {
        assert_error(
            &harness.get(path, READ).await,
            StatusCode::BAD_REQUEST,
            path,
        );
    }
    assert_error(
        &harness.post("/v1/plans/1.5/approve", OPERATOR).await,
        StatusCode::BAD_REQUEST,
        "plan id",
    );
    assert_error(
        &harness.get("/v1/explain/orders-db/9999/0", READ).await,
        StatusCode::NOT_FOUND,
        "partition",
    );
    assert_error(
        &harness.get("/v1/explain/nope/0/0", READ).await,
        StatusCode::NOT_FOUND,
        "group",
    );
    assert_error(
        &harness.get("/v1/nodes/nope", READ).await,
        StatusCode::NOT_FOUND,
        "node",
    );
    assert_error(
        &harness.get("/v1/nope", READ).await,
        StatusCode::NOT_FOUND,
        "route",
    );
    let wrong_method = harness
        .call(Method::DELETE, "/v1/fleet", Some(ADMIN), Payload::None)
        .await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "DELETE");
}

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/yaml")),
        Just(Some("text/plain")),
        Just(Some("application/json; charset=utf-8")),
    ]
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Near misses of valid JSON reach the deserializer instead of the syntax check.
        "[{}\\[\\]\":,a-z0-9 ]{0,64}".prop_map(String::into_bytes),
        Just(b"{\"node\": \"n01\", \"incarnation\": -1}".to_vec()),
        Just(b"groups: [".to_vec()),
    ]
}

#[test]
fn random_bodies_on_every_route_never_get_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let harness = runtime.block_on(leading());
    let writes: Vec<_> = routes()
        .into_iter()
        .filter(|r| r.method != RouteMethod::Get)
        .collect();
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(index in 0..writes.len(), content_type in content_types(), body in bodies())| {
        let route = writes[index];
        let method = match route.method {
            RouteMethod::Put => Method::PUT,
            _ => Method::POST,
        };
        let path = route
            .path
            .replace("{id}", "1")
            .replace("{name}", "n05")
            .replace("{node}", "n01");
        let payload = match content_type {
            Some(content_type) => Payload::Raw(content_type, body),
            None => Payload::Raw("application/octet-stream", body),
        };
        let reply = runtime.block_on(harness.call(method, &path, Some(ADMIN), payload));
        prop_assert!(!reply.status.is_server_error(), "{path}: {} {}", reply.status, reply.text());
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&reply.bytes).is_ok(), "{path}: not JSON");
    });
    drop(harness);
}
