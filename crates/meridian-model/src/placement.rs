//! Placements: which node holds each replica, in which state.
//!
//! Two forms. [`Placement`] is the solver's dense form: one [`Slot`] per replica the fleet asks
//! for, laid out group by group, partition by partition. [`PlacementDoc`] is the JSON users
//! read and write (docs/placement.schema.json): replicas by group and partition, by name.

use serde::{Deserialize, Serialize};

use crate::fleet::Fleet;
use crate::ids::{GroupId, NodeId, StateId};
use crate::problem::{Problem, Problems};

pub const UNASSIGNED: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// The node, or `UNASSIGNED`.
    pub node: u32,
    pub state: StateId,
}

impl Slot {
    pub fn node(self) -> Option<NodeId> {
        (self.node != UNASSIGNED).then_some(NodeId(self.node))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub slots: Vec<Slot>,
}

impl Placement {
    /// Every replica unassigned, each slot in its group's designated state.
    pub fn empty(fleet: &Fleet) -> Placement {
        let mut slots = Vec::with_capacity(fleet.slot_count);
        for group in &fleet.groups {
            for _ in 0..group.partitions {
                slots.extend(group.slot_states.iter().map(|&state| Slot {
                    node: UNASSIGNED,
                    state,
                }));
            }
        }
        Placement { slots }
    }

    pub fn assigned_count(&self) -> usize {
        self.slots.iter().filter(|s| s.node != UNASSIGNED).count()
    }

    /// Every assigned replica, in slot order.
    pub fn replicas(&self, fleet: &Fleet) -> Vec<Replica> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| {
                let node = s.node()?;
                let (group, partition, _) = fleet.locate_slot(slot);
                Some(Replica {
                    group,
                    partition,
                    node,
                    state: s.state,
                })
            })
            .collect()
    }

    /// The document form, with names.
    pub fn to_doc(&self, fleet: &Fleet) -> PlacementDoc {
        let groups = fleet
            .groups
            .iter()
            .map(|group| {
                let model = &fleet.products[group.product.index()];
                let per = group.replicas_per_partition();
                let partitions = (0..group.partitions as usize)
                    .map(|p| {
                        let start = group.slot_offset + p * per;
                        self.slots[start..start + per]
                            .iter()
                            .filter_map(|slot| {
                                slot.node().map(|node| ReplicaDoc {
                                    node: fleet.topology.node_name(node).to_string(),
                                    state: model.state_name(slot.state).to_string(),
                                })
                            })
                            .collect()
                    })
                    .collect();
                GroupPlacementDoc {
                    group: group.name.clone(),
                    partitions,
                }
            })
            .collect();
        PlacementDoc {
            fleet: fleet.name.clone(),
            groups,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlacementDoc {
    pub fleet: String,
    pub groups: Vec<GroupPlacementDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupPlacementDoc {
    pub group: String,
    /// `partitions[p]` lists partition p's replicas.
    pub partitions: Vec<Vec<ReplicaDoc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplicaDoc {
    pub node: String,
    pub state: String,
}

/// One replica as a document states it, resolved to ids; the checker's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub group: GroupId,
    pub partition: u32,
    pub node: NodeId,
    pub state: StateId,
}

/// What reading a placement document against a fleet found.
#[derive(Debug, Clone, Default)]
pub struct ResolvedDoc {
    pub replicas: Vec<Replica>,
    /// Replicas the fleet no longer has room for: on nodes it no longer has (a failed or
    /// removed node), or of partitions/groups it no longer has. Not errors: input to repair.
    pub dropped: Vec<String>,
}

impl PlacementDoc {
    pub fn from_json(text: &str, file: &str) -> Result<PlacementDoc, Problems> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            Problems(vec![Problem {
                file: file.to_string(),
                line: Some(inner.line()),
                path: if path == "." { String::new() } else { path },
                message: format!("not a valid placement: {inner}"),
            }])
        })
    }

    /// Resolves names against `fleet`. Unknown states are errors (the document is wrong);
    /// unknown nodes, groups and partitions are dropped with a note (the fleet changed).
    pub fn resolve(&self, fleet: &Fleet, file: &str) -> Result<ResolvedDoc, Problems> {
        let mut problems = Vec::new();
        let mut resolved = ResolvedDoc::default();
        for (g, group_doc) in self.groups.iter().enumerate() {
            let Some(group_id) = fleet.group_by_name(&group_doc.group) else {
                resolved
                    .dropped
                    .push(format!("group `{}` is not in the fleet", group_doc.group));
                continue;
            };
            let group = fleet.group(group_id);
            let model = fleet.product_of(group_id);
            for (p, replicas) in group_doc.partitions.iter().enumerate() {
                if p as u32 >= group.partitions {
                    resolved
                        .dropped
                        .push(format!("group `{}` has no partition {p}", group.name));
                    continue;
                }
                for (r, replica) in replicas.iter().enumerate() {
                    let Some(state) = model.state(&replica.state) else {
                        problems.push(Problem {
                            file: file.to_string(),
                            line: None,
                            path: format!("groups[{g}].partitions[{p}][{r}].state"),
                            message: format!(
                                "unknown state `{}` for product `{}`",
                                replica.state, model.name
                            ),
                        });
                        continue;
                    };
                    let Some(node) = fleet.topology.node_by_name(&replica.node) else {
                        resolved.dropped.push(format!(
                            "{}/{p}: node `{}` is not in the fleet",
                            group.name, replica.node
                        ));
                        continue;
                    };
                    resolved.replicas.push(Replica {
                        group: group_id,
                        partition: p as u32,
                        node,
                        state,
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(Problems(problems))
        }
    }
}
