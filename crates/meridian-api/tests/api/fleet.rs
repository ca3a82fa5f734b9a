//! The spec, its task groups, the placement, explain, status and metrics.

use axum::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_fleet_is_422_with_located_problems_and_changes_nothing() {
    let harness = leading().await;
    let before = harness.get("/v1/fleet", READ).await.json();
    let broken = SMALL
        .replace("partitions: 16", "partitions: -16")
        .replace("spread: rack\n", "spread: shelf\n");
    let reply = harness
        .call(Method::PUT, "/v1/fleet", Some(ADMIN), Payload::Yaml(broken))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let body = reply.json();
    let problems = body["problems"].as_array().expect("problems");
    assert!(!problems.is_empty(), "{body}");
    for problem in problems {
        assert!(
            problem["line"].as_u64().is_some_and(|l| l > 0),
            "no line: {problem}"
        );
        assert_eq!(problem["file"], "request body", "{problem}");
        assert!(
            problem["message"].is_string() && problem["path"].is_string(),
            "{problem}"
        );
    }
    let after = harness.get("/v1/fleet", READ).await.json();
    assert_eq!(
        after["revision"], before["revision"],
        "the spec revision did not move"
    );
    assert_eq!(after["yaml"], before["yaml"]);
    let garbage = harness
        .call(
            Method::PUT,
            "/v1/fleet",
            Some(ADMIN),
            Payload::Yaml("groups: [".into()),
        )
        .await;
    assert_eq!(
        garbage.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        garbage.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_fleet_replaces_the_spec_and_reads_back() {
    let harness = leading().await;
    let before = harness.get("/v1/fleet", READ).await.json()["revision"]
        .as_i64()
        .expect("revision");
    let edited = SMALL.replace("partitions: 24", "partitions: 20");
    let reply = harness
        .call(
            Method::PUT,
            "/v1/fleet",
            Some(ADMIN),
            Payload::Yaml(edited.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let revision = reply.json()["revision"].as_i64().expect("revision");
    assert!(revision > before);
    // Eventually, not at once: the controller's spec watch may still be applying the previous
    // revision it read just before this PUT, and briefly put it back (reported upstream).
    let controller = harness.controller.clone();
    wait_for("the new spec", move || {
        controller.spec().is_some_and(|s| s.revision == revision)
    })
    .await;
    let fleet = harness.get("/v1/fleet", READ).await.json();
    assert_eq!(fleet["revision"], revision);
    assert_eq!(fleet["yaml"], edited);
    let clicks = harness.get("/v1/tasks/clicks", READ).await.json();
    assert_eq!(clicks["partitions"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_list_groups_with_constraints_and_where_partitions_run() {
    let harness = leading().await;
    harness.sync_every_node().await;
    let tasks = harness.get("/v1/tasks", READ).await.json();
    let names: Vec<&str> = tasks["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders-db", "profiles-db", "clicks", "llm-chat"]);
    let orders = harness.get("/v1/tasks/orders-db", READ).await;
    assert_eq!(orders.status, StatusCode::OK, "{}", orders.text());
    let orders = orders.json();
    assert_eq!(orders["product"], "db");
    assert_eq!(orders["partitions"], 16);
    assert_eq!(orders["size_gib"], 120.0);
    assert_eq!(
        orders["replicas_per_partition"],
        orders["states"]
            .as_object()
            .expect("states")
            .values()
            .map(|v| v.as_u64().expect("count"))
            .sum::<u64>()
    );
    let constraints = &orders["constraints"];
    let spread: Vec<&str> = constraints["spread"]
        .as_array()
        .expect("spread")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        spread.contains(&"rack") && spread.contains(&"pdu"),
        "{spread:?}"
    );
    assert_eq!(constraints["regions"], serde_json::json!(["us-east"]));
    assert_eq!(constraints["selector"]["disk"], "nvme");
    let partitions = orders["partitions_running"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 16);
    let first = &partitions[0]["replicas"][0];
    assert_eq!(
        (first["node"].as_str(), first["state"].as_str()),
        (Some("n01"), Some("Leader"))
    );
    assert_eq!(first["node_liveness"], "alive");
    let profiles = harness.get("/v1/tasks/profiles-db", READ).await.json();
    assert_eq!(
        profiles["constraints"]["anti_affinity"][0]["group"],
        "orders-db"
    );
    assert_eq!(profiles["constraints"]["regions"], Value::Null);
    assert_eq!(
        harness.get("/v1/tasks/nope", READ).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_and_explain_show_what_agents_report() {
    let harness = leading().await;
    harness.sync_every_node().await;
    let placement = harness.get("/v1/placement", READ).await;
    assert_eq!(placement.status, StatusCode::OK, "{}", placement.text());
    let placement = placement.json();
    assert_eq!(placement["placement"]["fleet"], "small");
    let orders = &placement["placement"]["groups"][0];
    assert_eq!(orders["group"], "orders-db");
    assert_eq!(
        orders["partitions"][0],
        serde_json::json!([{ "node": "n01", "state": "Leader" }])
    );
    assert_eq!(placement["surplus"], serde_json::json!([]));
    let explain = harness.get("/v1/explain/orders-db/0/0", READ).await;
    assert_eq!(explain.status, StatusCode::OK, "{}", explain.text());
    let explain = explain.json();
    assert_eq!(
        (explain["node"].as_str(), explain["state"].as_str()),
        (Some("n01"), Some("Leader"))
    );
    let unplaced = harness.get("/v1/explain/orders-db/1/0", READ).await;
    assert_eq!(
        unplaced.status,
        StatusCode::NOT_FOUND,
        "{}",
        unplaced.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_events_metrics_and_health() {
    let harness = leading().await;
    let status = harness.get("/v1/status", READ).await.json();
    assert_eq!(status["leading"], true);
    assert_eq!(status["id"], "c1");
    assert_eq!(status["leader"]["api_url"], "https://c1.example:7400");
    let events = harness.get("/v1/events", READ).await.json();
    let texts: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("leads with epoch")),
        "{texts:?}"
    );
    let metrics = harness.get("/metrics", READ).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let content_type = metrics
        .headers
        .get(header::CONTENT_TYPE)
        .expect("type")
        .to_str()
        .expect("ascii");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        metrics.text().contains("meridian_is_leader 1"),
        "{}",
        metrics.text()
    );
    let health = harness
        .call(Method::GET, "/healthz", None, Payload::None)
        .await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_spec_reads_are_404_and_changes_409() {
    let harness = leading_without_fleet().await;
    for path in [
        "/v1/fleet",
        "/v1/tasks",
        "/v1/tasks/orders-db",
        "/v1/placement",
    ] {
        let reply = harness.get(path, READ).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text()
        );
    }
    let cordon = harness.post("/v1/nodes/n01/cordon", OPERATOR).await;
    assert_eq!(cordon.status, StatusCode::CONFLICT, "{}", cordon.text());
    let reply = harness
        .call(
            Method::PUT,
            "/v1/fleet",
            Some(ADMIN),
            Payload::Yaml(SMALL.into()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(harness.get("/v1/tasks", READ).await.status, StatusCode::OK);
}
