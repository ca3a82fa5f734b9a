//! The gate in front of every route: authenticate the bearer token, check the route's access
//! rule, and write the audit line of every mutating request. It runs before any extractor, so
//! a refused request is answered before its body is read and can change nothing.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{bearer_token, Identity, Role, Tokens};
use crate::errors::ApiError;
use crate::routes::{Access, RouteInfo};

/// The path parameter naming the node of an agent route.
pub(crate) const NODE_PARAM: &str = "node";

#[derive(Clone)]
pub(crate) struct Gate {
    pub tokens: Arc<Tokens>,
    pub route: RouteInfo,
}

/// Who made a request (in the request's extensions for handlers that care).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Identity>);

pub(crate) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let node = match gate.route.access {
        Access::NodeAgent => path_node(&mut parts).await,
        _ => None,
    };
    let mut audit = Audit {
        route: gate.route,
        mutating: !matches!(parts.method, Method::GET | Method::HEAD),
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        caller: None,
    };
    let identity = match authenticate(&gate.tokens, gate.route.access, &parts.headers) {
        Ok(identity) => identity,
        Err(error) => return audit.refused(error),
    };
    audit.caller = identity.map(|i| i.name.clone());
    if let Some(identity) = identity {
        if let Err(error) = permit(identity, gate.route.access, node.as_deref()) {
            return audit.refused(error);
        }
    }
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(Caller(identity.cloned()));
    let response = next.run(request).await;
    audit.log(response.status().as_u16(), false);
    response
}

/// The `{node}` the route was called for.
async fn path_node(parts: &mut axum::http::request::Parts) -> Option<String> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    params
        .iter()
        .find(|(key, _)| *key == NODE_PARAM)
        .map(|(_, value)| value.to_string())
}

/// The caller a route needs: `None` on a public route, else the token's owner (401 when the
/// token is missing, malformed or unknown).
fn authenticate<'t>(
    tokens: &'t Tokens,
    access: Access,
    headers: &HeaderMap,
) -> Result<Option<&'t Identity>, ApiError> {
    if access == Access::Public {
        return Ok(None);
    }
    let Some(header) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "this endpoint needs `Authorization: Bearer <token>`",
            false,
        ));
    };
    let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::unauthorized("the Authorization header must be `Bearer <token>`", false)
    })?;
    tokens
        .identify(token)
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("unknown token", true))
}

/// Whether a known caller may use a route (403 if not).
fn permit(identity: &Identity, access: Access, path_node: Option<&str>) -> Result<(), ApiError> {
    let allowed = match access {
        Access::Public => true,
        Access::Role(needed) => identity.role.includes(needed),
        Access::NodeAgent => match identity.role {
            Role::Admin => true,
            Role::Agent => path_node.is_some() && identity.node.as_deref() == path_node,
            _ => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(refusal(identity, access, path_node)))
    }
}

fn refusal(identity: &Identity, access: Access, path_node: Option<&str>) -> String {
    let who = format!("`{}` ({})", identity.name, identity.role);
    match (access, identity.role, &identity.node) {
        (Access::NodeAgent, Role::Agent, Some(own)) => format!(
            "{who} may sync only as node `{own}`, not `{}`",
            path_node.unwrap_or("?")
        ),
        (Access::NodeAgent, _, _) => {
            format!("{who} cannot sync: this needs the node's agent token or an admin token")
        }
        (_, Role::Agent, _) => format!("{who} may only sync its own node"),
        (Access::Role(needed), _, _) => format!("{who} cannot do this: it needs the {needed} role"),
        (Access::Public, _, _) => format!("{who} is refused"),
    }
}

/// The audit trail: one line per mutating request, refused ones included, naming the
/// caller's token (`-` when there is none or it is unknown) and the status answered.
struct Audit {
    route: RouteInfo,
    mutating: bool,
    method: Method,
    path: String,
    caller: Option<String>,
}

impl Audit {
    fn refused(&self, error: ApiError) -> Response {
        self.log(error.status.as_u16(), true);
        error.into_response()
    }

    /// Agents' syncs are logged at debug level: every agent posts one per heartbeat, and they
    /// are the agents' reports rather than anyone's decision (refused syncs stay at info).
    fn log(&self, status: u16, refused: bool) {
        if !self.mutating {
            return;
        }
        let (method, path) = (&self.method, self.path.as_str());
        let caller = self.caller.as_deref().unwrap_or("-");
        if self.route.access == Access::NodeAgent && !refused {
            tracing::debug!(target: "meridian::audit", %method, path, caller, status, "request");
        } else {
            tracing::info!(target: "meridian::audit", %method, path, caller, status, "request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let mut tokens = Tokens::empty();
        let add = |tokens: &mut Tokens, name: &str, role, node: Option<&str>| {
            let identity = Identity {
                name: name.into(),
                role,
                node: node.map(String::from),
            };
            tokens
                .add_plain(identity, &format!("{name}-0123456789abcdef"))
                .expect("token");
        };
        add(&mut tokens, "reader", Role::Read, None);
        add(&mut tokens, "admin", Role::Admin, None);
        add(&mut tokens, "agent", Role::Agent, Some("n1"));
        tokens
    }

    fn bearer(name: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {name}-0123456789abcdef");
        headers.insert(header::AUTHORIZATION, value.parse().expect("header"));
        headers
    }

    fn authorize<'t>(
        tokens: &'t Tokens,
        access: Access,
        headers: &HeaderMap,
        path_node: Option<&str>,
    ) -> Result<Option<&'t Identity>, ApiError> {
        let identity = authenticate(tokens, access, headers)?;
        if let Some(identity) = identity {
            permit(identity, access, path_node)?;
        }
        Ok(identity)
    }

    #[test]
    fn agents_sync_only_as_their_own_node() {
        let tokens = tokens();
        let sync = Access::NodeAgent;
        assert!(authorize(&tokens, sync, &bearer("agent"), Some("n1")).is_ok());
        let other = authorize(&tokens, sync, &bearer("agent"), Some("n2")).expect_err("n2");
        assert!(
            other.body.error.contains("only as node `n1`"),
            "{}",
            other.body.error
        );
        assert!(authorize(&tokens, sync, &bearer("admin"), Some("n2")).is_ok());
        assert!(authorize(&tokens, sync, &bearer("reader"), Some("n1")).is_err());
        let read = Access::Role(Role::Read);
        assert!(authorize(&tokens, read, &bearer("agent"), None).is_err());
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_401() {
        let tokens = tokens();
        let read = Access::Role(Role::Read);
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic eDp5".parse().expect("header"));
        for headers in [HeaderMap::new(), basic, bearer("nobody")] {
            let error = authorize(&tokens, read, &headers, None).expect_err("401");
            assert_eq!(error.status.as_u16(), 401);
        }
        assert!(authorize(&tokens, Access::Public, &HeaderMap::new(), None).is_ok());
    }
}
