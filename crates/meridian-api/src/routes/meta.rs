//! Routes about the service itself: health, its OpenAPI document, Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::errors::ApiError;

/// What prometheus-client's text encoder produces.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
}

/// The process answers; says nothing about leadership (see `/v1/status`), so a load balancer
/// keeps followers in rotation and they redirect.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

pub async fn openapi() -> Result<Response, ApiError> {
    let json = crate::openapi::document_json().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.controller.metrics.render();
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response()
}
