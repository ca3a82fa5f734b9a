//! Plans through the API: summaries, the full record, the operator's lifecycle, dry runs.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_is_listed_read_and_walked_through_its_lifecycle() {
    let harness = leading().await;
    let id = harness.proposed_plan().await;
    let list = harness.get("/v1/plans", READ).await.json();
    let summary = list["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .find(|p| p["id"] == id)
        .expect("the proposal is listed")
        .clone();
    assert_eq!(summary["status"], "proposed");
    assert!(
        summary["steps_total"].as_u64().expect("steps") > 0,
        "{summary}"
    );
    assert_eq!(summary["steps_done"], 0);
    let record = harness.get(&format!("/v1/plans/{id}"), READ).await.json();
    assert_eq!(record["id"], id);
    assert_eq!(
        record["steps"].as_array().expect("steps").len() as u64,
        summary["steps_total"].as_u64().expect("steps")
    );

    for (change, status) in [
        ("approve", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("cancel", "cancelling"),
    ] {
        let reply = harness
            .change_plan(&format!("/v1/plans/{id}/{change}"), Some(OPERATOR))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{change}: {}", reply.text());
        assert_eq!(reply.json()["status"], status, "{change}");
    }
    let again = harness
        .change_plan(&format!("/v1/plans/{id}/approve"), Some(OPERATOR))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let missing = harness.post("/v1/plans/9999/approve", OPERATOR).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    assert_eq!(
        harness.get("/v1/plans/9999", READ).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_plan_without_storing_anything() {
    let harness = leading().await;
    harness.sync_every_node().await;
    let plans_before = harness.controller.plans().len();
    let empty = harness
        .call(
            Method::POST,
            "/v1/plans/dry-run",
            Some(OPERATOR),
            Payload::None,
        )
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text());
    assert_eq!(empty.json()["id"], 0);
    let drain = harness
        .call(
            Method::POST,
            "/v1/plans/dry-run",
            Some(OPERATOR),
            Payload::Json(json!({ "drain": ["n01"] })),
        )
        .await;
    assert_eq!(drain.status, StatusCode::OK, "{}", drain.text());
    assert_eq!(drain.json()["status"], "proposed");
    let unknown = harness
        .call(
            Method::POST,
            "/v1/plans/dry-run",
            Some(OPERATOR),
            Payload::Json(json!({ "fail": ["n99"] })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    let invalid = harness
        .call(
            Method::POST,
            "/v1/plans/dry-run",
            Some(OPERATOR),
            Payload::Json(json!({ "spec": "name: x\n" })),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.text()
    );
    assert!(!invalid.json()["problems"]
        .as_array()
        .expect("problems")
        .is_empty());
    assert!(
        harness.controller.plans().len() <= plans_before + 1,
        "dry runs store no plan"
    );
    assert!(harness.controller.plans().iter().all(|p| p.id != 0));
}
