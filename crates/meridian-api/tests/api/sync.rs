//! The agents' sync over the API: a report in, commands stamped with the leader's epoch out.

use axum::http::{Method, StatusCode};
use meridian_controller::records::CommandStatus;
use meridian_wire::SyncResponse;

use crate::common::*;

fn body(node: &str) -> Payload {
    Payload::Json(serde_json::to_value(report(node)).expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_syncs_and_gets_its_commands_with_the_leaders_epoch() {
    let harness = leading().await;
    let epoch = harness.controller.leading_epoch().expect("leads");
    let reply = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N01),
            body("n01"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let response: SyncResponse = serde_json::from_slice(&reply.bytes).expect("SyncResponse");
    assert_eq!((response.epoch, response.leader.as_str()), (epoch, "c1"));
    let n01 = harness.get("/v1/nodes/n01", READ).await.json();
    assert_eq!(
        n01["replicas"][0]["replica"]["group"], "orders-db",
        "the report was recorded"
    );

    // Approve the proposal; once its first commands are sent, their node's sync returns them.
    let plan = harness.proposed_plan().await;
    assert_eq!(
        harness
            .change_plan(&format!("/v1/plans/{plan}/approve"), Some(OPERATOR))
            .await
            .status,
        StatusCode::OK
    );
    let controller = harness.controller.clone();
    let sent_node = move || {
        controller.plan(plan).and_then(|record| {
            record.steps.iter().flat_map(|s| &s.commands).find_map(|c| {
                matches!(c.status, CommandStatus::Sent { .. }).then(|| c.node.clone())
            })
        })
    };
    let probe = sent_node.clone();
    wait_for("a command sent", move || probe().is_some()).await;
    let node = sent_node().expect("node");
    let reply = harness
        .call(
            Method::POST,
            &format!("/v1/agents/{node}/sync"),
            Some(ADMIN),
            body(&node),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let response: SyncResponse = serde_json::from_slice(&reply.bytes).expect("SyncResponse");
    assert!(!response.commands.is_empty(), "{node} has commands");
    assert!(response.commands.iter().all(|c| c.epoch == epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_for_another_node_is_refused_and_records_nothing() {
    let harness = leading().await;
    let refused = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N02),
            body("n01"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let refused = harness
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(OPERATOR),
            body("n01"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let n01 = harness.get("/v1/nodes/n01", READ).await.json();
    assert_eq!(
        n01["last_sync_ms_ago"],
        serde_json::Value::Null,
        "no sync was recorded"
    );
    assert_eq!(n01["replicas"], serde_json::json!([]));

    // The body must speak for the path's node, whoever the caller is.
    let mismatch = harness
        .call(
            Method::POST,
            "/v1/agents/n02/sync",
            Some(AGENT_N02),
            body("n01"),
        )
        .await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mismatch.text()
    );
    let mismatch = harness
        .call(
            Method::POST,
            "/v1/agents/n02/sync",
            Some(ADMIN),
            body("n01"),
        )
        .await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mismatch.text()
    );
    assert_eq!(
        harness.get("/v1/nodes/n01", READ).await.json()["last_sync_ms_ago"],
        serde_json::Value::Null
    );

    let unknown = harness
        .call(
            Method::POST,
            "/v1/agents/n99/sync",
            Some(ADMIN),
            body("n99"),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
}
