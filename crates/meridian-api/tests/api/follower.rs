//! A controller that does not lead sends callers to the one that does.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_503_naming_the_leader() {
    let leader = leading().await;
    let follower = start(&leader.store, "c2");
    let controller = follower.controller.clone();
    wait_for("the follower to learn the leader", || {
        controller.known_leader().is_some()
    })
    .await;
    assert!(
        follower.controller.leading_epoch().is_none(),
        "c1 leads, not c2"
    );
    let leader_api = "https://c1.example:7400";

    let reads = [
        "/v1/fleet",
        "/v1/tasks",
        "/v1/tasks/orders-db",
        "/v1/placement",
        "/v1/plans",
        "/v1/plans/1",
        "/v1/nodes",
        "/v1/nodes/n01",
        "/v1/explain/orders-db/0/0",
    ];
    for path in reads {
        let reply = follower.get(path, READ).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.text()
        );
        assert_eq!(reply.json()["leader_api"], leader_api, "{path}");
    }
    let changes = [
        (Method::POST, "/v1/nodes/n01/cordon", Payload::None),
        (Method::POST, "/v1/plans/1/approve", Payload::None),
        (Method::POST, "/v1/plans/dry-run", Payload::Json(json!({}))),
        (Method::PUT, "/v1/fleet", Payload::Yaml(SMALL.into())),
    ];
    for (method, path, payload) in changes {
        let reply = follower.call(method, path, Some(ADMIN), payload).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.text()
        );
        assert_eq!(reply.json()["leader_api"], leader_api, "{path}");
    }
    let sync = follower
        .call(
            Method::POST,
            "/v1/agents/n01/sync",
            Some(AGENT_N01),
            Payload::Json(serde_json::to_value(report("n01")).expect("json")),
        )
        .await;
    assert_eq!(
        sync.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        sync.text()
    );
    let not_leader: meridian_wire::NotLeader =
        serde_json::from_slice(&sync.bytes).expect("wire NotLeader");
    assert_eq!(not_leader.leader_api.as_deref(), Some(leader_api));

    // The follower still describes itself.
    let status = follower.get("/v1/status", READ).await.json();
    assert_eq!(
        (status["leading"].as_bool(), status["id"].as_str()),
        (Some(false), Some("c2"))
    );
    assert_eq!(status["leader"]["api_url"], leader_api);
    assert_eq!(
        follower.get("/v1/events", READ).await.status,
        StatusCode::OK
    );
    // Auth still comes first: a follower does not tell strangers where the leader is.
    let stranger = follower
        .call(Method::GET, "/v1/nodes", None, Payload::None)
        .await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
}
