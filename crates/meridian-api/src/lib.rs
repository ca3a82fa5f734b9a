//! Meridian's REST/JSON API: everything the controller offers, over HTTP.
//!
//! - [`router`] builds the axum router over an `Arc<Controller>`; the route table
//!   ([`routes()`]) gives every route its access rule, and `GET /openapi.json` describes them
//!   all (checked against the table by test).
//! - Auth ([`auth`]): bearer tokens from a tokens file, each with a role: `read` < `operator` <
//!   `admin`, and `agent` (only its own node's sync). Missing or unknown token: 401; too weak:
//!   403. The gate runs before any body is read, so a refused request changes nothing.
//! - Every mutating request is logged at info level (target `meridian::audit`) with the
//!   caller's token name and the outcome.
//! - Errors are JSON (`{"error", "problems"?, "leader_api"?}`); a follower answers with 503 and
//!   where the leader is.
//! - [`serve`] runs it on a socket, optionally over TLS (rustls).

pub mod auth;
pub mod errors;
mod extract;
mod guard;
pub mod openapi;
pub mod routes;
mod serve;
pub mod tls;

use std::sync::Arc;

use meridian_controller::Controller;

pub use auth::{generate_token, token_sha256_hex, Identity, Role, Tokens, TokensError};
pub use errors::ApiError;
pub use guard::Caller;
pub use routes::{routes, Access, RouteInfo, RouteMethod};
pub use serve::{serve, ServeError, Server};
pub use tls::{TlsError, TlsFiles};

/// Body limit of every route but `PUT /v1/fleet` and agents' syncs.
pub const BODY_BYTES_MAX: usize = 256 << 10;
/// Body limit of `PUT /v1/fleet` (fleet files of large fleets are big) and of agents' syncs
/// (a node reports every replica it runs).
pub const FLEET_BODY_BYTES_MAX: usize = 4 << 20;

pub struct ApiConfig {
    pub tokens: Tokens,
    pub body_bytes_max: usize,
    pub fleet_body_bytes_max: usize,
}

impl ApiConfig {
    pub fn new(tokens: Tokens) -> ApiConfig {
        ApiConfig {
            tokens,
            body_bytes_max: BODY_BYTES_MAX,
            fleet_body_bytes_max: FLEET_BODY_BYTES_MAX,
        }
    }
}

/// The API over `controller`.
pub fn router(controller: Arc<Controller>, config: ApiConfig) -> axum::Router {
    routes::build(controller, config)
}
