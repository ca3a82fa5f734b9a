//! The fleet: status, the spec, its task groups, and where replicas run.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use meridian_controller::ops::{NodeView, Status};
use meridian_model::placement::PlacementDoc;
use meridian_model::{Fleet, Group};
use meridian_wire::Health;

use super::AppState;
use crate::errors::ApiError;
use crate::extract::{ApiPath, YamlText};

pub async fn status(State(state): State<AppState>) -> Json<Status> {
    Json(state.controller.status())
}

#[derive(Serialize)]
pub struct FleetSpec {
    revision: i64,
    yaml: String,
}

fn current_fleet(state: &AppState) -> Result<meridian_controller::controller::Spec, ApiError> {
    state.require_leading()?;
    state
        .controller
        .spec()
        .ok_or_else(|| ApiError::not_found("no fleet spec loaded yet (PUT /v1/fleet)"))
}

pub async fn get_fleet(State(state): State<AppState>) -> Result<Json<FleetSpec>, ApiError> {
    let spec = current_fleet(&state)?;
    Ok(Json(FleetSpec {
        revision: spec.revision,
        yaml: spec.yaml,
    }))
}

#[derive(Serialize)]
pub struct Revision {
    revision: i64,
}

pub async fn put_fleet(
    State(state): State<AppState>,
    YamlText(yaml): YamlText,
) -> Result<Json<Revision>, ApiError> {
    let revision = state.controller.put_spec(&yaml).await?;
    Ok(Json(Revision { revision }))
}

#[derive(Serialize)]
pub struct LevelLink {
    group: String,
    level: String,
}

/// A group's placement rules, by name.
#[derive(Serialize)]
pub struct Constraints {
    /// Levels at which a partition's replicas sit in distinct domains.
    spread: Vec<String>,
    /// Allowed regions (null: anywhere).
    regions: Option<Vec<String>>,
    selector: BTreeMap<String, String>,
    affinity: Vec<LevelLink>,
    anti_affinity: Vec<LevelLink>,
    pins: usize,
}

#[derive(Serialize)]
pub struct TaskGroup {
    name: String,
    product: String,
    partitions: u32,
    replicas_per_partition: usize,
    /// Replicas per partition in each state (states with none left out).
    states: BTreeMap<String, u32>,
    size_gib: f64,
    constraints: Constraints,
}

fn task_group(fleet: &Fleet, group: &Group) -> TaskGroup {
    let topology = &fleet.topology;
    let model = &fleet.products[group.product.index()];
    let link = |&(other, level): &(meridian_model::GroupId, meridian_model::LevelId)| LevelLink {
        group: fleet.group(other).name.clone(),
        level: topology.level_name(level).to_string(),
    };
    TaskGroup {
        name: group.name.clone(),
        product: model.name.clone(),
        partitions: group.partitions,
        replicas_per_partition: group.replicas_per_partition(),
        states: model
            .states
            .iter()
            .zip(&group.counts)
            .filter(|(_, &count)| count > 0)
            .map(|(state, &count)| (state.clone(), count))
            .collect(),
        size_gib: group.size_gib,
        constraints: Constraints {
            spread: group
                .spread
                .iter()
                .map(|&level| topology.level_name(level).to_string())
                .collect(),
            regions: group.regions.as_ref().map(|regions| {
                regions
                    .iter()
                    .map(|r| topology.regions[r.index()].name.clone())
                    .collect()
            }),
            selector: group.selector.clone(),
            affinity: group.affinity.iter().map(link).collect(),
            anti_affinity: group.anti_affinity.iter().map(link).collect(),
            pins: group.pins.len(),
        },
    }
}

#[derive(Serialize)]
pub struct TaskGroups {
    tasks: Vec<TaskGroup>,
}

pub async fn tasks(State(state): State<AppState>) -> Result<Json<TaskGroups>, ApiError> {
    let fleet = current_fleet(&state)?.fleet;
    let tasks = fleet.groups.iter().map(|g| task_group(&fleet, g)).collect();
    Ok(Json(TaskGroups { tasks }))
}

/// One replica as its agent reports it.
#[derive(Serialize)]
pub struct RunningReplica {
    node: String,
    state: String,
    health: Health,
    /// The node's liveness as the controller judges it.
    node_liveness: meridian_controller::detector::Liveness,
}

#[derive(Serialize)]
pub struct PartitionView {
    partition: u32,
    replicas: Vec<RunningReplica>,
}

#[derive(Serialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    group: TaskGroup,
    partitions_running: Vec<PartitionView>,
}

/// Where each partition of `group` runs, from what the agents report.
fn running(group: &Group, nodes: &[NodeView]) -> Vec<PartitionView> {
    let mut partitions: Vec<PartitionView> = (0..group.partitions)
        .map(|partition| PartitionView {
            partition,
            replicas: Vec::new(),
        })
        .collect();
    for node in nodes {
        for status in &node.replicas {
            if status.replica.group != group.name {
                continue;
            }
            let Some(view) = partitions.get_mut(status.replica.partition as usize) else {
                continue;
            };
            view.replicas.push(RunningReplica {
                node: node.name.clone(),
                state: status.state.clone(),
                health: status.health,
                node_liveness: node.liveness,
            });
        }
    }
    partitions
}

pub async fn task(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let fleet = current_fleet(&state)?.fleet;
    let group = fleet
        .group_by_name(&name)
        .map(|id| fleet.group(id))
        .ok_or_else(|| ApiError::not_found(format!("no task group named `{name}`")))?;
    let nodes = state.controller.nodes();
    Ok(Json(TaskDetail {
        group: task_group(&fleet, group),
        partitions_running: running(group, &nodes),
    }))
}

/// A replica the observed placement has no slot for (more replicas than the spec asks).
#[derive(Serialize)]
pub struct SurplusReplica {
    group: String,
    partition: u32,
    node: String,
    state: String,
}

#[derive(Serialize)]
pub struct PlacementView {
    placement: PlacementDoc,
    surplus: Vec<SurplusReplica>,
}

fn placement_view(controller: &meridian_controller::Controller, fleet: &Fleet) -> PlacementView {
    let (placement, surplus) = controller.observed_placement(fleet);
    let surplus = surplus
        .iter()
        .map(|replica| SurplusReplica {
            group: fleet.group(replica.group).name.clone(),
            partition: replica.partition,
            node: fleet.topology.node_name(replica.node).to_string(),
            state: fleet
                .product_of(replica.group)
                .state_name(replica.state)
                .to_string(),
        })
        .collect();
    PlacementView {
        placement: placement.to_doc(fleet),
        surplus,
    }
}

pub async fn placement(State(state): State<AppState>) -> Result<Json<PlacementView>, ApiError> {
    let fleet = current_fleet(&state)?.fleet;
    let controller = Arc::clone(&state.controller);
    // Laying replicas into slots is linear in the fleet: keep it off the async workers.
    let view = tokio::task::spawn_blocking(move || placement_view(&controller, &fleet))
        .await
        .map_err(|e| ApiError::internal(format!("placement failed: {e}")))?;
    Ok(Json(view))
}
