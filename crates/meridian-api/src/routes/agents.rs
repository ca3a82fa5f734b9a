//! The agents' sync (see `meridian_wire`): a report in, the node's commands out.

use axum::extract::State;
use axum::Json;

use meridian_wire::{SyncRequest, SyncResponse};

use super::AppState;
use crate::errors::ApiError;
use crate::extract::{ApiPath, JsonBody};

/// The gate has already checked that the token may sync as the path's node; the body must
/// then speak for that same node, or an agent could report (and take commands) for another.
pub async fn sync(
    State(state): State<AppState>,
    ApiPath(node): ApiPath<String>,
    JsonBody(request): JsonBody<SyncRequest>,
) -> Result<Json<SyncResponse>, ApiError> {
    if request.node != node {
        return Err(ApiError::bad_request(format!(
            "the body syncs node `{}` but the path names `{node}`",
            request.node
        )));
    }
    Ok(Json(state.controller.sync(request)?))
}
