//! The route table: every route's method, path, access rule and handler in one list. The
//! router is built from it and `routes()` publishes it, so the OpenAPI test can check the
//! document against exactly what is served.

mod agents;
mod fleet;
mod meta;
mod nodes;
mod plans;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use meridian_controller::Controller;

use crate::auth::Role;
use crate::errors::ApiError;
use crate::guard::{gate, Gate};
use crate::ApiConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    Get,
    Post,
    Put,
}

impl RouteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            RouteMethod::Get => MethodFilter::GET,
            RouteMethod::Post => MethodFilter::POST,
            RouteMethod::Put => MethodFilter::PUT,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// A token whose role includes this one.
    Role(Role),
    /// The agent token bound to the path's `{node}`, or an admin token.
    NodeAgent,
}

impl Access {
    /// The name the OpenAPI document gives it (`x-meridian-role`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Role(role) => role.name(),
            Access::NodeAgent => "agent",
        }
    }
}

/// Which body size limit a route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// [`crate::ApiConfig::body_bytes_max`].
    Default,
    /// [`crate::ApiConfig::fleet_body_bytes_max`]: fleet files are large.
    Fleet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: RouteMethod,
    /// With `{param}` placeholders, as in the OpenAPI document.
    pub path: &'static str,
    pub access: Access,
    pub body_limit: BodyLimit,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub controller: Arc<Controller>,
}

impl AppState {
    /// Most reads show the leader's view of the world (a follower's copy is stale or empty),
    /// so a follower answers them with 503 and where the leader is, like the operations.
    pub fn require_leading(&self) -> Result<(), ApiError> {
        if self.controller.leading_epoch().is_some() {
            return Ok(());
        }
        Err(ApiError::not_leader(
            self.controller.known_leader().map(|l| l.api_url),
        ))
    }
}

struct Route {
    info: RouteInfo,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: RouteMethod, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route {
        info: RouteInfo {
            method,
            path,
            access,
            body_limit: BodyLimit::Default,
        },
        handler: on(method.filter(), handler),
    }
}

impl Route {
    fn with_body_limit(mut self, body_limit: BodyLimit) -> Route {
        self.info.body_limit = body_limit;
        self
    }
}

fn table() -> Vec<Route> {
    use RouteMethod::{Get, Post, Put};
    let read = Access::Role(Role::Read);
    let operator = Access::Role(Role::Operator);
    let admin = Access::Role(Role::Admin);
    vec![
        route(Get, "/healthz", Access::Public, meta::healthz),
        route(Get, "/openapi.json", Access::Public, meta::openapi),
        route(Get, "/metrics", read, meta::metrics),
        route(Get, "/v1/status", read, fleet::status),
        route(Get, "/v1/fleet", read, fleet::get_fleet),
        route(Put, "/v1/fleet", admin, fleet::put_fleet).with_body_limit(BodyLimit::Fleet),
        route(Get, "/v1/tasks", read, fleet::tasks),
        route(Get, "/v1/tasks/{group}", read, fleet::task),
        route(Get, "/v1/placement", read, fleet::placement),
        route(Get, "/v1/plans", read, plans::list),
        route(Get, "/v1/plans/{id}", read, plans::get),
        route(Post, "/v1/plans/dry-run", operator, plans::dry_run),
        route(Post, "/v1/plans/{id}/approve", operator, plans::approve),
        route(Post, "/v1/plans/{id}/pause", operator, plans::pause),
        route(Post, "/v1/plans/{id}/resume", operator, plans::resume),
        route(Post, "/v1/plans/{id}/cancel", operator, plans::cancel),
        route(Get, "/v1/nodes", read, nodes::list),
        route(Get, "/v1/nodes/{name}", read, nodes::get),
        route(Post, "/v1/nodes/{name}/cordon", operator, nodes::cordon),
        route(Post, "/v1/nodes/{name}/uncordon", operator, nodes::uncordon),
        route(Post, "/v1/nodes/{name}/drain", operator, nodes::drain),
        route(Post, "/v1/nodes/{name}/undrain", operator, nodes::undrain),
        route(
            Get,
            "/v1/explain/{group}/{partition}/{replica}",
            read,
            nodes::explain,
        ),
        route(Get, "/v1/events", read, nodes::events),
        route(
            Post,
            meridian_wire::SYNC_PATH,
            Access::NodeAgent,
            agents::sync,
        )
        // A node reports every replica it runs: thousands on a big node.
        .with_body_limit(BodyLimit::Fleet),
    ]
}

/// Every route the router serves.
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

pub(crate) fn build(controller: Arc<Controller>, config: ApiConfig) -> Router {
    let tokens = Arc::new(config.tokens);
    let mut router = Router::new();
    for Route { info, handler } in table() {
        let limit = match info.body_limit {
            BodyLimit::Default => config.body_bytes_max,
            BodyLimit::Fleet => config.fleet_body_bytes_max,
        };
        let gate_state = Gate {
            tokens: Arc::clone(&tokens),
            route: info,
        };
        let handler = handler
            .layer(DefaultBodyLimit::max(limit))
            .route_layer(axum::middleware::from_fn_with_state(gate_state, gate));
        router = router.route(info.path, handler);
    }
    router
        .fallback(|| async { ApiError::not_found("no such route (see /openapi.json)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route (see /openapi.json)",
            )
        })
        .with_state(AppState { controller })
}
