//! Cordon and drain through the API, on nodes and on whole domains.

use axum::http::StatusCode;
use serde_json::Value;

use crate::common::*;

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {nodes}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordon_shows_in_the_node_list_and_a_refused_drain_does_nothing() {
    let harness = leading().await;
    let reply = harness.post("/v1/nodes/n03/cordon", OPERATOR).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        serde_json::json!({ "changed": [{ "node": "n03", "cordoned": true, "draining": false }] })
    );
    let nodes = harness.get("/v1/nodes", READ).await.json();
    assert_eq!(node(&nodes, "n03")["admin"]["cordoned"], true);
    assert_eq!(node(&nodes, "n04")["admin"]["cordoned"], false);
    assert_eq!(
        harness.get("/v1/nodes/n03", READ).await.json()["admin"]["cordoned"],
        true
    );

    for token in [READ, AGENT_N01] {
        let refused = harness.post("/v1/nodes/n04/drain", token).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    }
    let refused = harness.post("/v1/nodes/r02/cordon", UNKNOWN).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let nodes = harness.get("/v1/nodes", READ).await.json();
    for view in nodes["nodes"].as_array().expect("nodes") {
        let expect_cordoned = view["name"] == "n03";
        assert_eq!(view["admin"]["cordoned"], expect_cordoned, "{view}");
        assert_eq!(view["admin"]["draining"], false, "{view}");
    }

    let uncordon = harness.post("/v1/nodes/n03/uncordon", OPERATOR).await;
    assert_eq!(uncordon.json()["changed"][0]["cordoned"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_name_drains_every_node_under_it() {
    let harness = leading().await;
    let reply = harness.post("/v1/nodes/r01/drain", OPERATOR).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let changed: Vec<&str> = body["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .filter_map(|c| c["node"].as_str())
        .collect();
    assert_eq!(changed, ["n01", "n02", "n03", "n04"]);
    let nodes = harness.get("/v1/nodes", READ).await.json();
    assert_eq!(node(&nodes, "n02")["admin"]["draining"], true);
    assert_eq!(node(&nodes, "n05")["admin"]["draining"], false);
    let undrain = harness.post("/v1/nodes/r01/undrain", OPERATOR).await;
    assert_eq!(undrain.status, StatusCode::OK);
    let unknown = harness.post("/v1/nodes/r99/drain", OPERATOR).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
}
