//! The agent's data server: peers copy replica files from it (model weights), at the rate
//! the planner booked, which the *reader* enforces. It serves only what an actuator put in a
//! replica's `export/` directory, read-only, with Range requests so an interrupted copy
//! resumes where it stopped, and HEAD for sizes.
//!
//! `GET /v1/replicas/{group}/{partition}/export/{name}`; with a `data_token` configured,
//! peers must send it as a bearer token.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use meridian_wire::ReplicaKey;
use tower_http::services::ServeFile;

use crate::config::Token;
use crate::paths::replica_dir;

/// Where a replica's exported files are, under its directory.
pub const EXPORT_DIR: &str = "export";

/// The URL of a file `replica` exports on the agent serving data at `address`
/// (`host:port`).
pub fn export_url(address: &str, replica: &ReplicaKey, name: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(&format!("http://{address}/"))
        .map_err(|e| format!("data address `{address}`: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("data address `{address}` cannot take a path"))?
        .extend([
            "v1",
            "replicas",
            &replica.group,
            &replica.partition.to_string(),
            EXPORT_DIR,
            name,
        ]);
    Ok(url)
}

struct Shared {
    replicas_dir: PathBuf,
    token: Option<Token>,
}

/// The data server's routes over the replicas under `replicas_dir`.
pub fn router(replicas_dir: PathBuf, token: Option<Token>) -> Router {
    let shared = Arc::new(Shared {
        replicas_dir,
        token,
    });
    Router::new()
        .route(
            "/v1/replicas/{group}/{partition}/export/{name}",
            get(exported),
        )
        .with_state(shared)
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!("data server stopped: {error}");
    }
}

async fn exported(
    State(shared): State<Arc<Shared>>,
    Path((group, partition, name)): Path<(String, u32, String)>,
    request: Request,
) -> Response {
    if let Some(token) = &shared.token {
        let expected = format!("Bearer {}", token.expose());
        let given = request.headers().get(header::AUTHORIZATION);
        if given.and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    if !is_plain_name(&name) || group.is_empty() {
        return (StatusCode::BAD_REQUEST, "not a file name").into_response();
    }
    let replica = ReplicaKey { group, partition };
    let file = replica_dir(&shared.replicas_dir, &replica)
        .join(EXPORT_DIR)
        .join(&name);
    match tower::ServiceExt::oneshot(ServeFile::new(file), request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// One path component of letters, digits, `.`, `_`, `-`, not starting with a dot: no way
/// out of the export directory.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_served() {
        for good in ["weights", "model.bin", "weights.sha256", "a-b_c"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "../x", "a b", "a\0"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
