//! Task groups: a database, a topic, a model deployment — partitions × replicas of one product,
//! with a heat profile per state and placement constraints.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dims::Dimensions;
use crate::ids::{GroupId, LevelId, NodeId, ProductId, RegionId, StateId};
use crate::problem::ProblemSink;
use crate::product::{resolve_counts, StateModel};
use crate::spec::GroupSpec;
use crate::topology::Topology;
use crate::topology_build::parse_quantities;

/// Bound on partitions per group, so slot indices fit comfortably and loops are bounded.
pub const PARTITIONS_MAX: u32 = 16_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct Pin {
    pub partition: u32,
    pub node: NodeId,
    pub state: Option<StateId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub product: ProductId,
    pub partitions: u32,
    /// Replicas per partition in each state of the product.
    pub counts: Vec<u32>,
    /// The state of each replica slot of a partition: leader first, then by falling heat.
    pub slot_states: Vec<StateId>,
    pub size_gib: f64,
    /// Steady heat of one replica, per state, as dense vectors over the dimensions.
    pub heat: Vec<Vec<f64>>,
    /// Bursts some transitions put on the replica's node for a while.
    pub transition_heat: Vec<TransitionHeat>,
    /// Levels at which a partition's replicas sit in distinct domains (always includes node).
    pub spread: Vec<LevelId>,
    /// Allowed regions; `None` = anywhere.
    pub regions: Option<Vec<RegionId>>,
    pub selector: BTreeMap<String, String>,
    pub affinity: Vec<(GroupId, LevelId)>,
    pub anti_affinity: Vec<(GroupId, LevelId)>,
    pub pins: Vec<Pin>,
    /// Share of reads per region, summing to 1 (empty = no gravity preference).
    pub access: Vec<(RegionId, f64)>,
    /// Data read from one replica per month, GiB (prices egress across regions).
    pub reads_gib_per_month: f64,
    /// Index of this group's first slot in a placement's flat slot array.
    pub slot_offset: usize,
}

/// A transition's burst: `heat` on top of the steady heat, for `seconds` from the transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionHeat {
    pub from: StateId,
    pub to: StateId,
    pub seconds: f64,
    pub heat: Vec<f64>,
}

impl Group {
    /// The burst of the transition `from` → `to`, if the group declares one.
    pub fn burst(&self, from: StateId, to: StateId) -> Option<&TransitionHeat> {
        self.transition_heat
            .iter()
            .find(|t| t.from == from && t.to == to)
    }

    pub fn replicas_per_partition(&self) -> usize {
        self.slot_states.len()
    }

    pub fn slot_count(&self) -> usize {
        self.partitions as usize * self.slot_states.len()
    }

    /// The first slot of `partition` in a flat slot array.
    pub fn partition_slot(&self, partition: u32) -> usize {
        self.slot_offset + partition as usize * self.slot_states.len()
    }

    pub fn size_bytes(&self) -> f64 {
        self.size_gib * 1024.0 * 1024.0 * 1024.0
    }

    /// Whether `node` satisfies this group's static filters: selector labels and residency.
    pub fn node_allowed(&self, topology: &Topology, node: NodeId) -> bool {
        let labels = &topology.nodes[node.index()].labels;
        let labels_match = self.selector.iter().all(|(k, v)| labels.get(k) == Some(v));
        let region_ok = match &self.regions {
            None => true,
            Some(regions) => regions.contains(&topology.region_of(node)),
        };
        labels_match && region_ok
    }
}

pub struct GroupContext<'a> {
    pub dims: &'a Dimensions,
    pub topology: &'a Topology,
    pub products: &'a [StateModel],
    pub group_names: &'a BTreeMap<String, GroupId>,
}

fn level_id(
    topology: &Topology,
    name: &str,
    path: String,
    sink: &mut ProblemSink,
) -> Option<LevelId> {
    let found = topology.level_by_name(name);
    if found.is_none() {
        let known: Vec<&str> = topology.levels.iter().map(|l| l.name.as_str()).collect();
        sink.report(
            path,
            format!(
                "unknown level `{name}`: this fleet's trees have {}",
                known.join(", ")
            ),
        );
    }
    found
}

/// Resolves one group. Returns `None` if any problem was reported for it.
pub fn resolve_group(
    id: GroupId,
    spec: &GroupSpec,
    path: &str,
    context: &GroupContext,
    sink: &mut ProblemSink,
) -> Option<Group> {
    let before = sink.count();
    let topology = context.topology;
    let Some(product_index) = context.products.iter().position(|p| p.name == spec.product) else {
        let known: Vec<&str> = context.products.iter().map(|p| p.name.as_str()).collect();
        sink.report(
            format!("{path}.product"),
            format!(
                "unknown product `{}` (known: {})",
                spec.product,
                known.join(", ")
            ),
        );
        return None;
    };
    let model = &context.products[product_index];
    if spec.partitions == 0 || spec.partitions > PARTITIONS_MAX {
        sink.report(
            format!("{path}.partitions"),
            format!(
                "partitions must be 1..={PARTITIONS_MAX}, not {}",
                spec.partitions
            ),
        );
    }
    let counts = match &spec.counts {
        Some(counts) => resolve_counts(model, counts, &format!("{path}.counts"), sink)?,
        None => model.counts.clone(),
    };
    let replicas: u32 = counts.iter().sum();
    if replicas < model.min_serving {
        sink.report(
            format!("{path}.counts"),
            format!(
                "{replicas} replicas per partition is fewer than product `{}`'s min_serving {}",
                model.name, model.min_serving
            ),
        );
    }
    if !(spec.reads_gib_per_month.is_finite() && spec.reads_gib_per_month >= 0.0) {
        sink.report(
            format!("{path}.reads_gib_per_month"),
            "reads_gib_per_month must be a finite number ≥ 0",
        );
    }
    if !(spec.size_gib.is_finite() && spec.size_gib >= 0.0) {
        sink.report(
            format!("{path}.size_gib"),
            "size_gib must be a finite number ≥ 0",
        );
    }
    let heat = resolve_heat(spec, model, &counts, path, context.dims, sink);
    let transition_heat = resolve_transition_heat(spec, model, path, context.dims, sink);
    let spread = resolve_spread(spec, topology, replicas, path, sink);
    let regions = spec.regions.as_ref().map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let found = topology.region_by_name(name);
                if found.is_none() {
                    sink.report(
                        format!("{path}.regions[{i}]"),
                        format!("unknown region `{name}`"),
                    );
                }
                found
            })
            .collect::<Vec<_>>()
    });
    let mut relations = |list: Vec<(&String, &String)>, field: &str| -> Vec<(GroupId, LevelId)> {
        let mut resolved = Vec::new();
        for (i, (group, level)) in list.into_iter().enumerate() {
            let other = context.group_names.get(group).copied();
            if other.is_none() {
                sink.report(
                    format!("{path}.{field}[{i}].group"),
                    format!("unknown group `{group}`"),
                );
            }
            let level = level_id(topology, level, format!("{path}.{field}[{i}].level"), sink);
            if let (Some(other), Some(level)) = (other, level) {
                resolved.push((other, level));
            }
        }
        resolved
    };
    let affinity = relations(
        spec.affinity.iter().map(|a| (&a.group, &a.level)).collect(),
        "affinity",
    );
    let anti_affinity = relations(
        spec.anti_affinity
            .iter()
            .map(|a| (&a.group, &a.level))
            .collect(),
        "anti_affinity",
    );
    let access = resolve_access(spec, topology, path, sink);
    let mut group = Group {
        id,
        name: spec.name.clone(),
        product: ProductId(product_index as u16),
        partitions: spec.partitions,
        slot_states: slot_states(model, &counts, &heat),
        counts,
        size_gib: spec.size_gib,
        heat,
        transition_heat,
        spread,
        regions,
        selector: spec.selector.clone(),
        affinity,
        anti_affinity,
        pins: Vec::new(),
        access,
        reads_gib_per_month: spec.reads_gib_per_month,
        slot_offset: 0,
    };
    check_some_node_allowed(&group, topology, path, sink);
    group.pins = resolve_pins(spec, &group, model, topology, path, sink);
    (sink.count() == before).then_some(group)
}

fn resolve_heat(
    spec: &GroupSpec,
    model: &StateModel,
    counts: &[u32],
    path: &str,
    dims: &Dimensions,
    sink: &mut ProblemSink,
) -> Vec<Vec<f64>> {
    let mut heat = vec![vec![0.0; dims.len()]; model.states.len()];
    for (state, quantities) in &spec.heat {
        let at = format!("{path}.heat.{state}");
        match model.state(state) {
            None => sink.report(
                at,
                format!(
                    "unknown state `{state}` (product `{}` has {})",
                    model.name,
                    model.states.join(", ")
                ),
            ),
            Some(s) if s == model.initial => sink.report(
                at,
                format!("`{state}` is the initial state; it has no heat"),
            ),
            Some(s) => heat[s.index()] = parse_quantities(quantities, dims, 0.0, &at, "heat", sink),
        }
    }
    for (i, &count) in counts.iter().enumerate() {
        if count > 0 && !spec.heat.contains_key(&model.states[i]) {
            sink.report(
                format!("{path}.heat"),
                format!(
                    "no heat given for state `{}`, which has {count} replica(s) per partition",
                    model.states[i]
                ),
            );
        }
    }
    heat
}

fn resolve_transition_heat(
    spec: &GroupSpec,
    model: &StateModel,
    path: &str,
    dims: &Dimensions,
    sink: &mut ProblemSink,
) -> Vec<TransitionHeat> {
    let mut out = Vec::new();
    for (key, burst) in &spec.transition_heat {
        let at = format!("{path}.transition_heat.{key}");
        let Some((from, to)) = key.split_once('>') else {
            sink.report(at, format!("`{key}` must be written `From>To`"));
            continue;
        };
        let (Some(from), Some(to)) = (model.state(from.trim()), model.state(to.trim())) else {
            sink.report(
                at,
                format!(
                    "`{key}` names a state product `{}` does not have ({})",
                    model.name,
                    model.states.join(", ")
                ),
            );
            continue;
        };
        if !model.allows(from, to) {
            sink.report(
                at,
                format!("product `{}` has no transition `{key}`", model.name),
            );
            continue;
        }
        if !(burst.seconds.is_finite() && burst.seconds > 0.0) {
            sink.report(
                format!("{at}.seconds"),
                "seconds must be a finite number > 0",
            );
            continue;
        }
        let heat = parse_quantities(&burst.heat, dims, 0.0, &format!("{at}.heat"), "heat", sink);
        out.push(TransitionHeat {
            from,
            to,
            seconds: burst.seconds,
            heat,
        });
    }
    out
}

fn resolve_spread(
    spec: &GroupSpec,
    topology: &Topology,
    replicas: u32,
    path: &str,
    sink: &mut ProblemSink,
) -> Vec<LevelId> {
    let mut spread = vec![topology.node_level];
    let names = spec.spread.as_ref().map(|s| s.to_vec()).unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let Some(level) = level_id(topology, name, format!("{path}.spread[{i}]"), sink) else {
            continue;
        };
        let mut usable: Vec<u32> = topology
            .node_ids()
            .filter(|&n| group_allows(spec, topology, n))
            .filter_map(|n| topology.ancestor_at(n, level))
            .map(|d| d.0)
            .collect();
        usable.sort_unstable();
        usable.dedup();
        if (usable.len() as u32) < replicas {
            sink.report(format!("{path}.spread"), format!("{replicas} replicas per partition need {replicas} distinct {name}s, but only {} hold nodes this group may use (selector and regions)", usable.len()));
        }
        if !spread.contains(&level) {
            spread.push(level);
        }
    }
    spread
}

/// Selector and residency straight from the spec (used before the group is resolved).
fn group_allows(spec: &GroupSpec, topology: &Topology, node: crate::ids::NodeId) -> bool {
    let labels = &topology.nodes[node.index()].labels;
    let labels_match = spec.selector.iter().all(|(k, v)| labels.get(k) == Some(v));
    let region = &topology.regions[topology.region_of(node).index()].name;
    labels_match
        && spec
            .regions
            .as_ref()
            .is_none_or(|allowed| allowed.contains(region))
}

fn resolve_access(
    spec: &GroupSpec,
    topology: &Topology,
    path: &str,
    sink: &mut ProblemSink,
) -> Vec<(RegionId, f64)> {
    let mut access = Vec::new();
    for (region, &weight) in &spec.access {
        let at = format!("{path}.access.{region}");
        match topology.region_by_name(region) {
            None => sink.report(at, format!("unknown region `{region}`")),
            Some(_) if !(weight.is_finite() && weight >= 0.0) => {
                sink.report(at, "access share must be a finite number ≥ 0")
            }
            Some(r) => access.push((r, weight)),
        }
    }
    let total: f64 = access.iter().map(|(_, w)| w).sum();
    if total > 0.0 {
        access.iter_mut().for_each(|(_, w)| *w /= total);
    } else {
        access.clear();
    }
    access
}

/// Slot order inside a partition: the leader first (placed first: it is the hottest and the
/// one whose spread matters most), then states by falling total heat.
fn slot_states(model: &StateModel, counts: &[u32], heat: &[Vec<f64>]) -> Vec<StateId> {
    let mut states: Vec<StateId> = (0..counts.len())
        .map(|i| StateId(i as u8))
        .filter(|s| counts[s.index()] > 0)
        .collect();
    states.sort_by(|a, b| {
        let leader_first = (Some(*b) == model.leader).cmp(&(Some(*a) == model.leader));
        let heat_a: f64 = heat[a.index()].iter().sum();
        let heat_b: f64 = heat[b.index()].iter().sum();
        leader_first.then(heat_b.total_cmp(&heat_a)).then(a.cmp(b))
    });
    states
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, counts[s.index()] as usize))
        .collect()
}

fn check_some_node_allowed(group: &Group, topology: &Topology, path: &str, sink: &mut ProblemSink) {
    if topology.node_ids().any(|n| group.node_allowed(topology, n)) {
        return;
    }
    let selector: Vec<String> = group
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // Point at what narrows the choice: the selector, or (without one) the regions.
    let at = if group.selector.is_empty() {
        format!("{path}.regions")
    } else {
        format!("{path}.selector")
    };
    sink.report(
        at,
        format!(
            "no node satisfies this group's selector [{}] within its allowed regions",
            selector.join(", ")
        ),
    );
}

fn resolve_pins(
    spec: &GroupSpec,
    group: &Group,
    model: &StateModel,
    topology: &Topology,
    path: &str,
    sink: &mut ProblemSink,
) -> Vec<crate::group::Pin> {
    let mut pins = Vec::new();
    let mut per_partition: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, pin) in spec.pins.iter().enumerate() {
        let at = format!("{path}.pins[{i}]");
        if pin.partition >= group.partitions {
            sink.report(
                format!("{at}.partition"),
                format!(
                    "partition {} does not exist (the group has {})",
                    pin.partition, group.partitions
                ),
            );
            continue;
        }
        let Some(node) = topology.node_by_name(&pin.node) else {
            sink.report(format!("{at}.node"), format!("unknown node `{}`", pin.node));
            continue;
        };
        if !group.node_allowed(topology, node) {
            sink.report(
                format!("{at}.node"),
                format!(
                    "node `{}` fails the group's selector or residency",
                    pin.node
                ),
            );
        }
        let state = match &pin.state {
            None => None,
            Some(name) => match model.state(name) {
                Some(s) if group.counts[s.index()] > 0 => Some(s),
                _ => {
                    sink.report(
                        format!("{at}.state"),
                        format!("state `{name}` has no replicas in this group"),
                    );
                    continue;
                }
            },
        };
        let count = per_partition.entry(pin.partition).or_default();
        *count += 1;
        if *count > group.replicas_per_partition() {
            sink.report(
                at.clone(),
                format!(
                    "more pins than the {} replicas of partition {}",
                    group.replicas_per_partition(),
                    pin.partition
                ),
            );
        }
        if pins
            .iter()
            .any(|p: &Pin| p.partition == pin.partition && p.node == node)
        {
            sink.report(
                at,
                format!(
                    "partition {} is pinned to `{}` twice",
                    pin.partition, pin.node
                ),
            );
            continue;
        }
        pins.push(Pin {
            partition: pin.partition,
            node,
            state,
        });
    }
    pins
}
