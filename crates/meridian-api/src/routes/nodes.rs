//! Nodes and what the operator does to them; explanations; the event log.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use meridian_controller::controller::Event;
use meridian_controller::ops::{NodeChange, NodeView};

use super::AppState;
use crate::errors::ApiError;
use crate::extract::{ApiPath, NoBody};

#[derive(Serialize)]
pub struct NodeList {
    nodes: Vec<NodeView>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    state.require_leading()?;
    Ok(Json(NodeList {
        nodes: state.controller.nodes(),
    }))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<NodeView>, ApiError> {
    state.require_leading()?;
    state
        .controller
        .nodes()
        .into_iter()
        .find(|node| node.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no node named `{name}`")))
}

#[derive(Serialize)]
pub struct ChangedNode {
    node: String,
    cordoned: bool,
    draining: bool,
}

#[derive(Serialize)]
pub struct NodesChanged {
    changed: Vec<ChangedNode>,
}

/// `name` may be a node or any domain (a rack, a PDU…): every node under it changes.
async fn change(
    state: AppState,
    name: &str,
    change: NodeChange,
) -> Result<Json<NodesChanged>, ApiError> {
    let changed = state.controller.change_nodes(name, change).await?;
    Ok(Json(NodesChanged {
        changed: changed
            .into_iter()
            .map(|(node, admin)| ChangedNode {
                node,
                cordoned: admin.cordoned,
                draining: admin.draining,
            })
            .collect(),
    }))
}

pub async fn cordon(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoBody,
) -> Result<Json<NodesChanged>, ApiError> {
    change(state, &name, NodeChange::Cordon).await
}

pub async fn uncordon(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoBody,
) -> Result<Json<NodesChanged>, ApiError> {
    change(state, &name, NodeChange::Uncordon).await
}

pub async fn drain(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoBody,
) -> Result<Json<NodesChanged>, ApiError> {
    change(state, &name, NodeChange::Drain).await
}

pub async fn undrain(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: NoBody,
) -> Result<Json<NodesChanged>, ApiError> {
    change(state, &name, NodeChange::Undrain).await
}

pub async fn explain(
    State(state): State<AppState>,
    ApiPath((group, partition, replica)): ApiPath<(String, u32, usize)>,
) -> Result<Response, ApiError> {
    state.require_leading()?;
    let controller = Arc::clone(&state.controller);
    // Explaining scores every candidate node: CPU work, kept off the async workers.
    let explanation =
        tokio::task::spawn_blocking(move || controller.explain(&group, partition, replica))
            .await
            .map_err(|e| ApiError::internal(format!("explain failed: {e}")))??;
    Ok(Json(explanation).into_response())
}

#[derive(Serialize)]
pub struct Events {
    events: Vec<Event>,
}

/// This controller's recent decisions (a follower's own, too: they say why it stepped down).
pub async fn events(State(state): State<AppState>) -> Json<Events> {
    Json(Events {
        events: state.controller.events(),
    })
}
