//! A leading controller on an in-memory store with the small example fleet, its API router,
//! and one token per role; requests go through `tower::ServiceExt::oneshot` (no sockets).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use meridian_api::{ApiConfig, Identity, Role, Tokens};
use meridian_controller::detector::DetectorOptions;
use meridian_controller::{Controller, ControllerConfig};
use meridian_store::memory::MemoryStore;
use meridian_wire::{Health, ReplicaKey, ReplicaStatus, SyncRequest};
use serde_json::Value;
use tower::ServiceExt;

pub const SMALL: &str = include_str!("../../../../examples/small.yaml");

pub const READ: &str = "read-token-0123456789abcdef";
pub const OPERATOR: &str = "operator-token-0123456789abcdef";
pub const ADMIN: &str = "admin-token-0123456789abcdef";
/// The agent of node `n01`.
pub const AGENT_N01: &str = "agent-n01-token-0123456789abcdef";
/// The agent of node `n02`.
pub const AGENT_N02: &str = "agent-n02-token-0123456789abcdef";
/// Well-formed but in no tokens file.
pub const UNKNOWN: &str = "unknown-token-0123456789abcdef";

pub fn tokens() -> Tokens {
    let mut tokens = Tokens::empty();
    let entries = [
        ("reader", Role::Read, None, READ),
        ("ops", Role::Operator, None, OPERATOR),
        ("root", Role::Admin, None, ADMIN),
        ("agent-n01", Role::Agent, Some("n01"), AGENT_N01),
        ("agent-n02", Role::Agent, Some("n02"), AGENT_N02),
    ];
    for (name, role, node, token) in entries {
        let identity = Identity {
            name: name.into(),
            role,
            node: node.map(String::from),
        };
        tokens.add_plain(identity, token).expect("test token");
    }
    tokens
}

pub fn controller_config(id: &str) -> ControllerConfig {
    let mut config = ControllerConfig::new(id, &format!("https://{id}.example:7400"));
    config.settle = Duration::ZERO;
    config.tick = Duration::from_millis(10);
    config.replan_interval_min = Duration::ZERO;
    // Plans wait as proposals, so tests can approve, pause and cancel them.
    config.auto_approve = false;
    // One sync keeps a node alive for the whole test: the tests' agents sync once.
    config.detector = DetectorOptions {
        acceptable_pause_ms: 600_000.0,
        ..DetectorOptions::default()
    };
    config
}

pub struct Harness {
    pub store: MemoryStore,
    pub controller: Arc<Controller>,
    pub router: Router,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A controller running on `store`, not necessarily leading.
pub fn start(store: &MemoryStore, id: &str) -> Harness {
    let controller = Controller::new(controller_config(id), Arc::new(store.clone()));
    let task = tokio::spawn(controller.clone().run(std::future::pending()));
    let router = meridian_api::router(controller.clone(), ApiConfig::new(tokens()));
    Harness {
        store: store.clone(),
        controller,
        router,
        task,
    }
}

/// A leading controller with the small fleet loaded.
pub async fn leading() -> Harness {
    let harness = leading_without_fleet().await;
    harness
        .controller
        .put_spec(SMALL)
        .await
        .expect("small fleet");
    harness
}

pub async fn leading_without_fleet() -> Harness {
    let harness = start(&MemoryStore::new(), "c1");
    let controller = harness.controller.clone();
    wait_for("leadership", || controller.leading_epoch().is_some()).await;
    harness
}

pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What a request carries.
pub enum Payload {
    None,
    Json(Value),
    Yaml(String),
    Raw(&'static str, Vec<u8>),
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

pub async fn send(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    payload: Payload,
) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let (content_type, body) = match payload {
        Payload::None => (None, Vec::new()),
        Payload::Json(value) => (Some("application/json"), value.to_string().into_bytes()),
        Payload::Yaml(text) => (Some("application/yaml"), text.into_bytes()),
        Payload::Raw(content_type, bytes) => (Some(content_type), bytes),
    };
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Body::from(body)).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Reply {
        status,
        headers,
        bytes,
    }
}

impl Harness {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        payload: Payload,
    ) -> Reply {
        send(&self.router, method, path, token, payload).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), Payload::None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str) -> Reply {
        self.call(Method::POST, path, Some(token), Payload::None)
            .await
    }

    /// A plan change, tried again while it loses the race with the controller's own write of
    /// the plan: `Controller::change_plan` reads the plan's store revision before it takes
    /// the persist lock, so a persist round in between makes its compare fail with a 409
    /// "changed concurrently" (reported upstream; a client retries the same way).
    pub async fn change_plan(&self, path: &str, token: Option<&str>) -> Reply {
        for _ in 0..20 {
            let reply = self.call(Method::POST, path, token, Payload::None).await;
            let raced = reply.status == StatusCode::CONFLICT
                && reply.text().contains("changed concurrently");
            if !raced {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{path} kept racing the controller")
    }

    /// Every node of the fleet syncs once ([`report`]); returns once the controller has
    /// judged them all alive (it does so on its next round).
    pub async fn sync_every_node(&self) {
        let spec = self.controller.spec().expect("spec");
        let topology = &spec.fleet.topology;
        for node in topology.node_ids() {
            self.controller
                .sync(report(topology.node_name(node)))
                .expect("sync");
        }
        let controller = self.controller.clone();
        wait_for("every node alive", move || {
            controller
                .nodes()
                .iter()
                .all(|n| n.liveness == meridian_controller::detector::Liveness::Alive)
        })
        .await;
    }

    /// Waits for a plan waiting for approval (made once the nodes are alive); its id.
    pub async fn proposed_plan(&self) -> u64 {
        self.sync_every_node().await;
        let controller = self.controller.clone();
        let proposed = move || {
            controller
                .plans()
                .into_iter()
                .find(|p| p.status == meridian_controller::records::PlanStatus::Proposed)
                .map(|p| p.id)
        };
        let check = proposed.clone();
        wait_for("a proposed plan", move || check().is_some()).await;
        proposed().expect("proposed plan")
    }
}

/// What the tests' agents report: nothing runs, except on `n01` the leader of `orders-db/0`
/// (so there is a replica to explain and to find in the placement).
pub fn report(node: &str) -> SyncRequest {
    let replicas = if node == "n01" {
        vec![ReplicaStatus {
            replica: ReplicaKey {
                group: "orders-db".into(),
                partition: 0,
            },
            product: "db".into(),
            state: "Leader".into(),
            health: Health::Serving,
            heat: Vec::new(),
            endpoint: None,
        }]
    } else {
        Vec::new()
    };
    SyncRequest {
        node: node.to_string(),
        incarnation: 1,
        epoch_seen: 0,
        registration: None,
        replicas,
        transitions: Vec::new(),
    }
}
