//! Plans: list, read, what-if, and the operator's lifecycle changes.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use meridian_controller::ops::{PlanChange, WhatIf};
use meridian_controller::records::{PlanRecord, PlanStatus};

use super::AppState;
use crate::errors::ApiError;
use crate::extract::{ApiPath, NoBody, OptionalJsonBody};

#[derive(Serialize)]
pub struct PlanSummary {
    id: u64,
    reason: String,
    status: PlanStatus,
    steps_done: usize,
    steps_total: usize,
    bytes: f64,
    makespan_s: f64,
    created_unix_ms: u64,
    created_epoch: i64,
    spec_revision: i64,
    blocked: usize,
    unplaced: usize,
}

impl From<&PlanRecord> for PlanSummary {
    fn from(plan: &PlanRecord) -> PlanSummary {
        PlanSummary {
            id: plan.id,
            reason: plan.reason.clone(),
            status: plan.status,
            steps_done: plan.steps_done(),
            steps_total: plan.steps.len(),
            bytes: plan.bytes,
            makespan_s: plan.makespan_s,
            created_unix_ms: plan.created_unix_ms,
            created_epoch: plan.created_epoch,
            spec_revision: plan.spec_revision,
            blocked: plan.blocked.len(),
            unplaced: plan.unplaced.len(),
        }
    }
}

#[derive(Serialize)]
pub struct PlanList {
    plans: Vec<PlanSummary>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<PlanList>, ApiError> {
    state.require_leading()?;
    let plans = state
        .controller
        .plans()
        .iter()
        .map(PlanSummary::from)
        .collect();
    Ok(Json(PlanList { plans }))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<PlanRecord>, ApiError> {
    state.require_leading()?;
    state
        .controller
        .plan(id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no plan {id}")))
}

/// An empty body asks what the controller would do now, with nothing failed or drained.
pub async fn dry_run(
    State(state): State<AppState>,
    OptionalJsonBody(what_if): OptionalJsonBody<WhatIf>,
) -> Result<Json<PlanRecord>, ApiError> {
    Ok(Json(state.controller.dry_run(what_if).await?))
}

async fn change(
    state: AppState,
    id: u64,
    change: PlanChange,
) -> Result<Json<PlanRecord>, ApiError> {
    Ok(Json(state.controller.change_plan(id, change).await?))
}

pub async fn approve(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
    _: NoBody,
) -> Result<Json<PlanRecord>, ApiError> {
    change(state, id, PlanChange::Approve).await
}

pub async fn pause(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
    _: NoBody,
) -> Result<Json<PlanRecord>, ApiError> {
    change(state, id, PlanChange::Pause).await
}

pub async fn resume(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
    _: NoBody,
) -> Result<Json<PlanRecord>, ApiError> {
    change(state, id, PlanChange::Resume).await
}

pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u64>,
    _: NoBody,
) -> Result<Json<PlanRecord>, ApiError> {
    change(state, id, PlanChange::Cancel).await
}
