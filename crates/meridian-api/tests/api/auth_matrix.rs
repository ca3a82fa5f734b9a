//! Every route × every kind of caller: who gets in (2xx), who is unknown (401) and who is
//! too weak (403); a refused change changes nothing.

use axum::http::{header, Method, StatusCode};
use meridian_api::{routes, Access, Role, RouteInfo, RouteMethod};
use meridian_store::Store;
use serde_json::json;

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Unknown,
    Read,
    Operator,
    Admin,
    /// The agent of `n01`, the node the sync route is called for.
    AgentOfNode,
    /// The agent of `n02`.
    AgentOfOtherNode,
}

const CALLERS: [Caller; 7] = [
    Caller::Nobody,
    Caller::Unknown,
    Caller::Read,
    Caller::Operator,
    Caller::Admin,
    Caller::AgentOfNode,
    Caller::AgentOfOtherNode,
];

impl Caller {
    fn token(self) -> Option<&'static str> {
        match self {
            Caller::Nobody => None,
            Caller::Unknown => Some(UNKNOWN),
            Caller::Read => Some(READ),
            Caller::Operator => Some(OPERATOR),
            Caller::Admin => Some(ADMIN),
            Caller::AgentOfNode => Some(AGENT_N01),
            Caller::AgentOfOtherNode => Some(AGENT_N02),
        }
    }

    fn role(self) -> Option<Role> {
        match self {
            Caller::Nobody | Caller::Unknown => None,
            Caller::Read => Some(Role::Read),
            Caller::Operator => Some(Role::Operator),
            Caller::Admin => Some(Role::Admin),
            Caller::AgentOfNode | Caller::AgentOfOtherNode => Some(Role::Agent),
        }
    }
}

/// The status class the rules promise: 2xx (`OK` stands for any), 401 or 403.
fn expected(access: Access, caller: Caller) -> StatusCode {
    let Some(role) = caller.role() else {
        return if access == Access::Public {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
    };
    let allowed = match access {
        Access::Public => true,
        Access::Role(needed) => role.includes(needed),
        Access::NodeAgent => role == Role::Admin || caller == Caller::AgentOfNode,
    };
    if allowed {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    }
}

fn method(route: &RouteInfo) -> Method {
    match route.method {
        RouteMethod::Get => Method::GET,
        RouteMethod::Post => Method::POST,
        RouteMethod::Put => Method::PUT,
    }
}

/// The route's path with real names, and a valid body.
fn concrete(route: &RouteInfo, plan: u64) -> (String, Payload) {
    let path = route
        .path
        .replace("{group}", "orders-db")
        .replace("{partition}", "0")
        .replace("{replica}", "0")
        .replace("{id}", &plan.to_string())
        .replace("{name}", "n03")
        .replace("{node}", "n01");
    let payload = match (route.method, route.path) {
        (RouteMethod::Put, "/v1/fleet") => Payload::Yaml(SMALL.to_string()),
        (RouteMethod::Post, "/v1/plans/dry-run") => Payload::Json(json!({ "drain": ["r01"] })),
        (RouteMethod::Post, p) if p.ends_with("/sync") => {
            Payload::Json(serde_json::to_value(report("n01")).expect("json"))
        }
        _ => Payload::None,
    };
    (path, payload)
}

fn is_plan_change(route: &RouteInfo) -> bool {
    route.path.starts_with("/v1/plans/{id}/")
}

/// What only the API's changes move: the spec in the store and the operators' marks on nodes.
/// (The store, not the controller's copy: that one follows the store asynchronously.)
async fn marks(harness: &Harness) -> String {
    let spec_key = meridian_store::keys::Keys::default().spec();
    let spec = harness.store.get(&spec_key).await.expect("store");
    let nodes: Vec<_> = harness
        .controller
        .nodes()
        .into_iter()
        .map(|n| (n.name, n.admin.cordoned, n.admin.draining))
        .collect();
    format!("{:?} {nodes:?}", spec.map(|e| e.mod_revision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_roles_it_documents() {
    let harness = leading().await;
    let plan = harness.proposed_plan().await;
    let mut table = routes();
    // Plan changes first, while the proposal is fresh (a new spec or a drain supersedes it).
    table.sort_by_key(|route| !is_plan_change(route));
    let mut plan_changes_done = 0;
    for route in &table {
        for caller in CALLERS {
            let (path, payload) = concrete(route, plan);
            let before = marks(&harness).await;
            let reply = if is_plan_change(route) {
                harness.change_plan(&path, caller.token()).await
            } else {
                harness
                    .call(method(route), &path, caller.token(), payload)
                    .await
            };
            let want = expected(route.access, caller);
            let what = format!(
                "{} {path} as {caller:?}: {} {}",
                route.method.as_str(),
                reply.status,
                reply.text()
            );
            match want {
                StatusCode::OK if is_plan_change(route) => {
                    // The first allowed caller moves the plan on; later ones find it moved.
                    assert!(
                        reply.status == StatusCode::OK || reply.status == StatusCode::CONFLICT,
                        "{what}"
                    );
                    plan_changes_done += usize::from(reply.status == StatusCode::OK);
                }
                StatusCode::OK => assert!(reply.status.is_success(), "{what}"),
                _ => {
                    assert_eq!(reply.status, want, "{what}");
                    assert!(reply.json()["error"].is_string(), "{what}");
                    assert_eq!(
                        marks(&harness).await,
                        before,
                        "a refused request changed something: {what}"
                    );
                }
            }
            if want == StatusCode::UNAUTHORIZED {
                let challenge = reply
                    .headers
                    .get(header::WWW_AUTHENTICATE)
                    .expect("challenge");
                assert!(
                    challenge.to_str().expect("ascii").starts_with("Bearer"),
                    "{what}"
                );
            }
        }
    }
    assert_eq!(
        plan_changes_done, 4,
        "approve, pause, resume and cancel each succeeded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_plan_change_leaves_the_plan_as_it_was() {
    let harness = leading().await;
    let plan = harness.proposed_plan().await;
    for token in [READ, AGENT_N01] {
        let reply = harness
            .post(&format!("/v1/plans/{plan}/approve"), token)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    }
    let reply = harness
        .call(
            Method::POST,
            &format!("/v1/plans/{plan}/cancel"),
            None,
            Payload::None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let status = harness.controller.plan(plan).expect("plan").status;
    assert_eq!(status, meridian_controller::records::PlanStatus::Proposed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_headers_are_401_not_500() {
    let harness = leading().await;
    for value in [
        "Basic cmVhZDpyZWFk",
        "Bearer",
        "Bearer    ",
        "token-without-scheme",
    ] {
        let request = axum::http::Request::builder()
            .uri("/v1/status")
            .header(header::AUTHORIZATION, value)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = tower::ServiceExt::oneshot(harness.router.clone(), request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
    }
    let mut bytes = b"Bearer ".to_vec();
    bytes.extend([0xff, 0xfe]);
    let request = axum::http::Request::builder()
        .uri("/v1/status")
        .header(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_bytes(&bytes).expect("opaque"),
        )
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(harness.router.clone(), request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
