//! A validated, resolved fleet: the input to the solver. Built from a YAML fleet file.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml_ng::Value;

use crate::dims::Dimensions;
use crate::group::{resolve_group, Group, GroupContext};
use crate::ids::{DomainId, GroupId, LevelId};
use crate::line_index::LineIndex;
use crate::problem::{ProblemSink, Problems};
use crate::product::{builtin_products, resolve_product, StateModel};
use crate::spec::{
    DimensionsSpec, GroupSpec, NodeClassSpec, NodeSpec, ObjectivesSpec, PoliciesSpec, ProductSpec,
    TopologySpec,
};
use crate::topology::Topology;
use crate::topology_build::build_topology;

/// Weights of the solver's soft objectives; see docs/solver.md.
pub type Objectives = ObjectivesSpec;

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub name: String,
    pub dims: Dimensions,
    pub topology: Topology,
    pub products: Vec<StateModel>,
    pub groups: Vec<Group>,
    pub objectives: Objectives,
    /// Reserved fraction per level and dimension: `headroom[level * dims + dim]`.
    pub headroom: Vec<f64>,
    /// What placed heat may reach: capacity × (1 − headroom), `limit[domain * dims + dim]`.
    pub limit: Vec<f64>,
    pub slot_count: usize,
}

const TOP_LEVEL_KEYS: [&str; 9] = [
    "name",
    "dimensions",
    "topology",
    "node_classes",
    "nodes",
    "policies",
    "objectives",
    "products",
    "groups",
];

/// Deserializes one section of the document, reporting a failure at its path and line.
fn section<T: DeserializeOwned>(
    value: Option<&Value>,
    path: &str,
    sink: &mut ProblemSink,
) -> Option<T> {
    let value = value.cloned().unwrap_or(Value::Null);
    let value = if value.is_null() {
        Value::Mapping(Default::default())
    } else {
        value
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            let inner = error.path().to_string();
            let full = match inner.as_str() {
                "." | "" => path.to_string(),
                inner if inner.starts_with('[') => format!("{path}{inner}"),
                inner => format!("{path}.{inner}"),
            };
            sink.report(full, error.into_inner().to_string());
            None
        }
    }
}

/// Deserializes every element of a list section, so one bad entry does not hide the others.
/// Each entry comes with its index in the document: once a bad entry is left out, later
/// entries' problems must still name their own place (`nodes[7]`, not `nodes[6]`).
fn list_section<T: DeserializeOwned>(
    value: Option<&Value>,
    path: &str,
    sink: &mut ProblemSink,
) -> (Vec<usize>, Vec<T>) {
    match value {
        None | Some(Value::Null) => (Vec::new(), Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                section(Some(item), &format!("{path}[{i}]"), sink).map(|parsed| (i, parsed))
            })
            .unzip(),
        Some(_) => {
            sink.report(path, "expected a list");
            (Vec::new(), Vec::new())
        }
    }
}

impl Fleet {
    /// Parses and validates a fleet file. `file` names the input in problems.
    /// Reports every problem it can find; never panics on any input.
    pub fn from_yaml(text: &str, file: &str) -> Result<Fleet, Problems> {
        let index = LineIndex::build(text);
        let mut sink = ProblemSink::new(file, &index);
        let document: Value = match serde_yaml_ng::from_str(text) {
            Ok(document) => document,
            Err(error) => {
                // The parser may place an error past the last line (at the end of input, or
                // counting U+2028 as a line break); the last line is where to look then.
                let last_line = text.lines().count().max(1);
                let line = error.location().map(|l| l.line().clamp(1, last_line));
                sink.report_at_line(line, String::new(), format!("not valid YAML: {error}"));
                return Err(sink.into_problems());
            }
        };
        let Value::Mapping(top) = &document else {
            sink.report(
                "",
                "a fleet file is a mapping with `topology`, `nodes`, `groups`, ...",
            );
            return Err(sink.into_problems());
        };
        for key in top.keys() {
            // Section names are strings; another scalar key (`0:`, `~:`) is named as YAML
            // writes it, and a collection used as a key is `?` (as the line index names it).
            let rendered = match key {
                Value::String(text) => text.clone(),
                Value::Null | Value::Bool(_) | Value::Number(_) => serde_yaml_ng::to_string(key)
                    .map(|text| text.trim().to_string())
                    .unwrap_or_default(),
                Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "?".to_string(),
            };
            let name = rendered.as_str();
            if !TOP_LEVEL_KEYS.contains(&name) {
                sink.report(
                    name,
                    format!(
                        "unknown section `{name}` (expected one of {})",
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                );
            }
        }
        let get = |key: &str| top.get(key);
        let name: Option<String> = get("name").and_then(|v| v.as_str()).map(str::to_string);
        let dimensions: Option<DimensionsSpec> =
            section(get("dimensions"), "dimensions", &mut sink);
        let topology: Option<TopologySpec> = match get("topology") {
            None => {
                sink.report("", "missing section `topology`");
                None
            }
            value => section(value, "topology", &mut sink),
        };
        let classes: Option<BTreeMap<String, NodeClassSpec>> =
            section(get("node_classes"), "node_classes", &mut sink);
        let (node_positions, nodes): (Vec<usize>, Vec<NodeSpec>) =
            list_section(get("nodes"), "nodes", &mut sink);
        let policies: Option<PoliciesSpec> = section(get("policies"), "policies", &mut sink);
        let objectives: Option<ObjectivesSpec> =
            section(get("objectives"), "objectives", &mut sink);
        let products: Option<BTreeMap<String, ProductSpec>> =
            section(get("products"), "products", &mut sink);
        let (group_positions, groups): (Vec<usize>, Vec<GroupSpec>) =
            list_section(get("groups"), "groups", &mut sink);
        let (
            Some(dimensions),
            Some(topology),
            Some(classes),
            Some(policies),
            Some(objectives),
            Some(products),
        ) = (
            dimensions, topology, classes, policies, objectives, products,
        )
        else {
            return Err(sink.into_problems());
        };
        let parts = Parts {
            name: name.unwrap_or_else(|| "fleet".to_string()),
            dimensions,
            topology,
            classes,
            nodes,
            node_positions,
            policies,
            objectives,
            products,
            groups,
            group_positions,
        };
        let fleet = resolve(parts, &mut sink);
        match fleet {
            Some(fleet) if sink.is_empty() => Ok(fleet),
            _ => Err(sink.into_problems()),
        }
    }

    pub fn dims_count(&self) -> usize {
        self.dims.len()
    }

    pub fn limit_of(&self, domain: DomainId) -> &[f64] {
        let d = self.dims.len();
        &self.limit[domain.index() * d..domain.index() * d + d]
    }

    pub fn headroom_at(&self, level: LevelId, dim: usize) -> f64 {
        self.headroom[level.index() * self.dims.len() + dim]
    }

    pub fn group_by_name(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(|i| GroupId(i as u32))
    }

    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.index()]
    }

    pub fn product_of(&self, group: GroupId) -> &StateModel {
        &self.products[self.groups[group.index()].product.index()]
    }

    /// Total number of replicas over all groups.
    pub fn replica_count(&self) -> usize {
        self.slot_count
    }

    /// Whether a pin holds the replica in `slot` on `node`: it must neither move nor be
    /// shed from there.
    pub fn slot_pinned_on(&self, slot: usize, node: crate::ids::NodeId) -> bool {
        let (group, partition, _) = self.locate_slot(slot);
        self.group(group)
            .pins
            .iter()
            .any(|pin| pin.partition == partition && pin.node == node)
    }

    /// Maps a flat slot index back to (group, partition, replica index within the partition).
    pub fn locate_slot(&self, slot: usize) -> (GroupId, u32, usize) {
        let g = self.groups.partition_point(|g| g.slot_offset <= slot) - 1;
        let group = &self.groups[g];
        let within = slot - group.slot_offset;
        let per = group.replicas_per_partition();
        (GroupId(g as u32), (within / per) as u32, within % per)
    }
}

struct Parts {
    name: String,
    dimensions: DimensionsSpec,
    topology: TopologySpec,
    classes: BTreeMap<String, NodeClassSpec>,
    nodes: Vec<NodeSpec>,
    /// Index in the document's `nodes` list of each entry of `nodes`.
    node_positions: Vec<usize>,
    policies: PoliciesSpec,
    objectives: ObjectivesSpec,
    products: BTreeMap<String, ProductSpec>,
    groups: Vec<GroupSpec>,
    /// Index in the document's `groups` list of each entry of `groups`.
    group_positions: Vec<usize>,
}

fn resolve(parts: Parts, sink: &mut ProblemSink) -> Option<Fleet> {
    let mut dims = Dimensions::default();
    for (i, extra) in parts.dimensions.extra.iter().enumerate() {
        if let Err(reason) = dims.add(extra) {
            sink.report(format!("dimensions.extra[{i}]"), reason);
        }
    }
    let topology = build_topology(
        &parts.topology,
        &parts.nodes,
        &parts.node_positions,
        &parts.classes,
        &dims,
        sink,
    );
    let mut product_specs = builtin_products();
    product_specs.extend(parts.products.clone());
    let products: Vec<StateModel> = product_specs
        .iter()
        .filter_map(|(name, spec)| {
            let path = if parts.products.contains_key(name) {
                format!("products.{name}")
            } else {
                format!("(built-in product {name})")
            };
            resolve_product(name, spec, &path, sink)
        })
        .collect();
    check_objectives(&parts.objectives, sink);
    let topology = topology?;
    let headroom = resolve_headroom(&parts.policies, &topology, &dims, sink);
    let mut group_names = BTreeMap::new();
    for (i, group) in parts.groups.iter().enumerate() {
        if group_names
            .insert(group.name.clone(), GroupId(i as u32))
            .is_some()
        {
            sink.report(
                format!("groups[{}].name", parts.group_positions[i]),
                format!("group `{}` is defined twice", group.name),
            );
        }
    }
    let context = GroupContext {
        dims: &dims,
        topology: &topology,
        products: &products,
        group_names: &group_names,
    };
    let mut groups = Vec::new();
    for (i, spec) in parts.groups.iter().enumerate() {
        if let Some(group) = resolve_group(
            GroupId(i as u32),
            spec,
            &format!("groups[{}]", parts.group_positions[i]),
            &context,
            sink,
        ) {
            groups.push(group);
        }
    }
    if groups.len() != parts.groups.len() {
        return None;
    }
    let mut slot_count = 0;
    for group in &mut groups {
        group.slot_offset = slot_count;
        slot_count += group.slot_count();
    }
    let limit = compute_limits(&topology, &headroom, dims.len());
    Some(Fleet {
        name: parts.name,
        dims,
        topology,
        products,
        groups,
        objectives: parts.objectives,
        headroom,
        limit,
        slot_count,
    })
}

fn check_objectives(objectives: &ObjectivesSpec, sink: &mut ProblemSink) {
    let weights = [
        ("balance", objectives.balance),
        ("movement", objectives.movement),
        ("gravity", objectives.gravity),
        ("cost", objectives.cost),
        ("affinity", objectives.affinity),
    ];
    for (name, weight) in weights {
        if !(weight.is_finite() && weight >= 0.0) {
            sink.report(
                format!("objectives.{name}"),
                "weight must be a finite number ≥ 0",
            );
        }
    }
}

/// Headroom keys are `level.dimension` with `*` wildcards; the most specific key wins.
fn resolve_headroom(
    policies: &PoliciesSpec,
    topology: &Topology,
    dims: &Dimensions,
    sink: &mut ProblemSink,
) -> Vec<f64> {
    let levels = topology.levels.len();
    let d = dims.len();
    // Specificity per cell: 0 = none, 1 = `*.*`, 2 = `*.dim`, 3 = `level.*`, 4 = `level.dim`.
    let mut specificity = vec![0u8; levels * d];
    let mut headroom = vec![0.0; levels * d];
    for (key, &fraction) in &policies.headroom {
        let path = format!("policies.headroom.{key}");
        let Some((level, dim)) = key.split_once('.') else {
            sink.report(
                path,
                format!("key `{key}` must be `level.dimension` (either may be `*`)"),
            );
            continue;
        };
        if !(fraction.is_finite() && (0.0..1.0).contains(&fraction)) {
            sink.report(
                path.clone(),
                format!("headroom is a fraction in [0, 1), not {fraction}"),
            );
            continue;
        }
        let level_ids: Vec<usize> = match level {
            "*" => (0..levels).collect(),
            name => match topology.level_by_name(name) {
                Some(l) => vec![l.index()],
                None => {
                    sink.report(path.clone(), format!("unknown level `{name}`"));
                    continue;
                }
            },
        };
        let dim_ids: Vec<usize> = match dim {
            "*" => (0..d).collect(),
            name => match dims.get(name) {
                Some(id) => vec![id.index()],
                None => {
                    sink.report(path.clone(), format!("unknown dimension `{name}`"));
                    continue;
                }
            },
        };
        let rank = 1 + u8::from(dim != "*") + 2 * u8::from(level != "*");
        for &l in &level_ids {
            for &x in &dim_ids {
                let cell = l * d + x;
                if rank > specificity[cell] {
                    specificity[cell] = rank;
                    headroom[cell] = fraction;
                }
            }
        }
    }
    headroom
}

fn compute_limits(topology: &Topology, headroom: &[f64], d: usize) -> Vec<f64> {
    let mut limit = topology.capacity.clone();
    for (index, domain) in topology.domains.iter().enumerate() {
        for x in 0..d {
            limit[index * d + x] *= 1.0 - headroom[domain.level.index() * d + x];
        }
    }
    limit
}
