//! Builds a [`Topology`] from the fleet file's trees, reporting every structural problem.

use std::collections::{BTreeMap, HashMap};

use crate::dims::Dimensions;
use crate::ids::{DomainId, LevelId, NodeId, RegionId};
use crate::problem::ProblemSink;
use crate::spec::{ChildSpec, DomainSpec, NodeClassSpec, NodeSpec, QuantitySpec, TopologySpec};
use crate::topology::{Domain, Level, NodeInfo, Region, Topology, LEVELS_MAX, NO_DOMAIN};

/// Parses a capacity or heat map into a dense vector, reporting unknown dimensions and
/// negative or non-finite values at `path.<dimension>`.
pub fn parse_quantities(
    spec: &QuantitySpec,
    dims: &Dimensions,
    fill: f64,
    path: &str,
    what: &str,
    sink: &mut ProblemSink,
) -> Vec<f64> {
    let mut values = vec![fill; dims.len()];
    for (name, &value) in spec {
        let at = format!("{path}.{name}");
        match dims.get(name) {
            None => sink.report(
                at,
                format!(
                    "unknown dimension `{name}` (known: {}; add it under `dimensions.extra`)",
                    dims.names().join(", ")
                ),
            ),
            Some(_) if !value.is_finite() => {
                sink.report(at, format!("{what} must be a finite number"))
            }
            Some(_) if value < 0.0 => sink.report(at, format!("negative {what} {value}")),
            Some(dim) => values[dim.index()] = value,
        }
    }
    values
}

#[derive(Clone, Copy)]
enum Tree {
    Network,
    Power,
}

/// The power tree's levels and the depth at which it joins the network tree.
#[derive(Clone, Copy)]
struct PowerLevels<'a> {
    ids: &'a [LevelId],
    join_depth: usize,
}

struct Builder<'a> {
    dims: &'a Dimensions,
    levels: Vec<Level>,
    domains: Vec<Domain>,
    capacity: Vec<Vec<f64>>,
    names: HashMap<String, DomainId>,
    nodes: Vec<NodeInfo>,
    node_specs: HashMap<&'a str, (usize, &'a NodeSpec)>,
    classes: &'a BTreeMap<String, NodeClassSpec>,
    /// Where each domain is defined in the document, so later checks can point at it.
    paths: Vec<String>,
}

impl<'a> Builder<'a> {
    fn level_id(&mut self, name: &str) -> LevelId {
        if let Some(i) = self.levels.iter().position(|l| l.name == name) {
            return LevelId(i as u16);
        }
        self.levels.push(Level {
            name: name.to_string(),
            network_depth: None,
            power_depth: None,
        });
        LevelId((self.levels.len() - 1) as u16)
    }

    fn new_domain(
        &mut self,
        name: &str,
        level: LevelId,
        capacity: Vec<f64>,
        path: &str,
        sink: &mut ProblemSink,
    ) -> Option<DomainId> {
        if self.names.contains_key(name) {
            sink.report(
                format!("{path}.name"),
                format!("name `{name}` is used by another domain or node; names must be unique"),
            );
            return None;
        }
        let id = DomainId(self.domains.len() as u32);
        self.domains.push(Domain {
            name: name.to_string(),
            level,
            network_parent: None,
            power_parent: None,
            network_children: Vec::new(),
            power_children: Vec::new(),
            node: None,
        });
        self.capacity.push(capacity);
        self.names.insert(name.to_string(), id);
        self.paths.push(path.to_string());
        Some(id)
    }

    /// Adds one domain of either tree with its capacity, links it under `parent` in that tree,
    /// and reports a domain without children. Returns `None` if the name is taken.
    fn tree_domain(
        &mut self,
        spec: &DomainSpec,
        level: LevelId,
        parent: Option<DomainId>,
        tree: Tree,
        path: &str,
        sink: &mut ProblemSink,
    ) -> Option<DomainId> {
        let capacity = parse_quantities(
            &spec.capacity,
            self.dims,
            f64::INFINITY,
            &format!("{path}.capacity"),
            "capacity",
            sink,
        );
        let id = self.new_domain(&spec.name, level, capacity, path, sink)?;
        if let Some(parent) = parent {
            match tree {
                Tree::Network => self.domains[parent.index()].network_children.push(id),
                Tree::Power => self.domains[parent.index()].power_children.push(id),
            }
        }
        match tree {
            Tree::Network => self.domains[id.index()].network_parent = parent,
            Tree::Power => self.domains[id.index()].power_parent = parent,
        }
        if spec.children.is_empty() {
            let message = format!(
                "{} `{}` has no children",
                self.levels[level.index()].name,
                spec.name
            );
            sink.report(format!("{path}.children"), message);
        }
        Some(id)
    }

    /// Adds one network domain and its subtree; `depth` indexes `levels`.
    fn network_domain(
        &mut self,
        spec: &DomainSpec,
        levels: &[LevelId],
        depth: usize,
        parent: Option<DomainId>,
        path: &str,
        sink: &mut ProblemSink,
    ) {
        let Some(id) = self.tree_domain(spec, levels[depth], parent, Tree::Network, path, sink)
        else {
            return;
        };
        let child_depth = depth + 1;
        let child_is_node = child_depth == levels.len() - 1;
        for (i, child) in spec.children.iter().enumerate() {
            let at = format!("{path}.children[{i}]");
            match (child, child_is_node) {
                (ChildSpec::Reference(name), true) => self.place_node(name, id, &at, sink),
                (ChildSpec::Domain(inner), false) => self.network_domain(inner, levels, child_depth, Some(id), &at, sink),
                (ChildSpec::Domain(_), true) => sink.report(at, "nodes are listed by name here and defined under `nodes:`"),
                (ChildSpec::Reference(name), false) => sink.report(
                    at,
                    format!("`{name}` is a name, but a {} is expected here (an object with `name` and `children`)", self.levels[levels[child_depth].index()].name),
                ),
            }
        }
    }

    fn place_node(&mut self, name: &str, parent: DomainId, path: &str, sink: &mut ProblemSink) {
        let Some(&(spec_index, spec)) = self.node_specs.get(name) else {
            sink.report(
                path.to_string(),
                format!("node `{name}` is not defined under `nodes:`"),
            );
            return;
        };
        let node_path = format!("nodes[{spec_index}]");
        let class = match &spec.class {
            None => None,
            Some(class) => match self.classes.get(class) {
                Some(found) => Some(found),
                None => {
                    sink.report(
                        format!("{node_path}.class"),
                        format!("unknown node class `{class}`"),
                    );
                    None
                }
            },
        };
        let mut capacity = vec![0.0; self.dims.len()];
        let mut labels = BTreeMap::new();
        let mut cost = 0.0;
        if let (Some(class), Some(class_name)) = (class, &spec.class) {
            let from_class = parse_quantities(
                &class.capacity,
                self.dims,
                0.0,
                &format!("node_classes.{class_name}.capacity"),
                "capacity",
                sink,
            );
            capacity.copy_from_slice(&from_class);
            labels.extend(class.labels.clone());
            cost = class.cost_per_gib_month.unwrap_or(0.0);
        }
        let own = parse_quantities(
            &spec.capacity,
            self.dims,
            f64::NAN,
            &format!("{node_path}.capacity"),
            "capacity",
            sink,
        );
        for (slot, value) in capacity.iter_mut().zip(own) {
            if !value.is_nan() {
                *slot = value;
            }
        }
        labels.extend(spec.labels.clone());
        if let Some(own_cost) = spec.cost_per_gib_month {
            cost = own_cost;
        }
        if !(cost.is_finite() && cost >= 0.0) {
            sink.report(
                format!("{node_path}.cost_per_gib_month"),
                "price must be a finite number ≥ 0",
            );
        }
        let node_level = self.level_id("node");
        let Some(id) = self.new_domain(name, node_level, capacity, path, sink) else {
            sink.report(
                path.to_string(),
                format!("node `{name}` is placed twice in the network tree"),
            );
            return;
        };
        let node = NodeId(self.nodes.len() as u32);
        self.domains[id.index()].network_parent = Some(parent);
        self.domains[id.index()].node = Some(node);
        self.domains[parent.index()].network_children.push(id);
        self.nodes.push(NodeInfo {
            domain: id,
            class: spec.class.clone(),
            labels,
            cost_per_gib_month: cost,
        });
    }

    /// Adds one power-only domain; at the last power-only level, children name network domains.
    /// `levels.ids[depth]` is this domain's level; `levels.join_depth` is where the trees join.
    fn power_domain(
        &mut self,
        spec: &DomainSpec,
        levels: PowerLevels,
        depth: usize,
        parent: Option<DomainId>,
        path: &str,
        sink: &mut ProblemSink,
    ) {
        let Some(id) = self.tree_domain(spec, levels.ids[depth], parent, Tree::Power, path, sink)
        else {
            return;
        };
        let join_level = levels.ids[levels.join_depth];
        for (i, child) in spec.children.iter().enumerate() {
            let at = format!("{path}.children[{i}]");
            match (child, depth + 1 == levels.join_depth) {
                (ChildSpec::Domain(inner), false) => {
                    self.power_domain(inner, levels, depth + 1, Some(id), &at, sink)
                }
                (ChildSpec::Reference(name), true) => {
                    self.attach_power(name, id, join_level, &at, sink)
                }
                (ChildSpec::Domain(_), true) => sink.report(
                    at,
                    format!(
                        "list the {}s this domain feeds by name",
                        self.levels[join_level.index()].name
                    ),
                ),
                (ChildSpec::Reference(name), false) => sink.report(
                    at,
                    format!("`{name}` is a name, but an inline domain is expected at this level"),
                ),
            }
        }
    }

    fn attach_power(
        &mut self,
        name: &str,
        parent: DomainId,
        join_level: LevelId,
        path: &str,
        sink: &mut ProblemSink,
    ) {
        let join_name = self.levels[join_level.index()].name.clone();
        let Some(&child) = self.names.get(name) else {
            sink.report(
                path.to_string(),
                format!("no {join_name} named `{name}` in the network tree"),
            );
            return;
        };
        let domain = &self.domains[child.index()];
        if domain.level != join_level {
            let level = self.levels[domain.level.index()].name.clone();
            sink.report(
                path.to_string(),
                format!("`{name}` is a {level}, but a {join_name} is expected here"),
            );
        } else if let Some(existing) = domain.power_parent {
            let existing = self.domains[existing.index()].name.clone();
            sink.report(path.to_string(), format!("{join_name} `{name}` is already fed by `{existing}`; a domain has one power parent"));
        } else {
            self.domains[child.index()].power_parent = Some(parent);
            self.domains[parent.index()].power_children.push(child);
        }
    }
}

/// Builds and checks the topology. Returns `None` when a problem makes it unusable.
///
/// `node_positions[i]` is the index in the document's `nodes` list of `node_specs[i]` (they
/// differ when an entry of the list could not be read), for the paths of problems.
pub fn build_topology(
    spec: &TopologySpec,
    node_specs: &[NodeSpec],
    node_positions: &[usize],
    classes: &BTreeMap<String, NodeClassSpec>,
    dims: &Dimensions,
    sink: &mut ProblemSink,
) -> Option<Topology> {
    let before = sink.count();
    let mut builder = Builder {
        dims,
        levels: Vec::new(),
        domains: Vec::new(),
        capacity: Vec::new(),
        names: HashMap::new(),
        nodes: Vec::new(),
        node_specs: HashMap::new(),
        classes,
        paths: Vec::new(),
    };
    let position = |i: usize| node_positions.get(i).copied().unwrap_or(i);
    for (i, node) in node_specs.iter().enumerate() {
        if builder
            .node_specs
            .insert(node.name.as_str(), (position(i), node))
            .is_some()
        {
            sink.report(
                format!("nodes[{}].name", position(i)),
                format!("node `{}` is defined twice", node.name),
            );
        }
    }
    let network_levels = check_levels(&spec.network.levels, "topology.network.levels", sink)?;
    if network_levels.last().map(String::as_str) != Some("node") {
        sink.report(
            "topology.network.levels",
            "the network tree's last level must be `node`",
        );
        return None;
    }
    if network_levels.len() < 2 {
        sink.report(
            "topology.network.levels",
            "the network tree needs at least one level above `node`",
        );
        return None;
    }
    let network_ids: Vec<LevelId> = network_levels
        .iter()
        .map(|name| builder.level_id(name))
        .collect();
    for (depth, level) in network_ids.iter().enumerate() {
        builder.levels[level.index()].network_depth = Some(depth as u8);
    }
    let mut network_roots = Vec::new();
    for (i, domain) in spec.network.domains.iter().enumerate() {
        let root = builder.domains.len();
        builder.network_domain(
            domain,
            &network_ids,
            0,
            None,
            &format!("topology.network.domains[{i}]"),
            sink,
        );
        if root < builder.domains.len() {
            network_roots.push(DomainId(root as u32));
        }
    }
    for (i, node) in node_specs.iter().enumerate() {
        if !builder.names.contains_key(&node.name) {
            sink.report(
                format!("nodes[{}]", position(i)),
                format!("node `{}` is not placed in the network tree", node.name),
            );
        }
    }
    if builder.nodes.is_empty() {
        sink.report("topology.network", "the fleet has no nodes");
    }
    let power_roots = match &spec.power {
        Some(power) => build_power(&mut builder, power, &network_levels, sink)?,
        None => Vec::new(),
    };
    let regions = build_regions(spec, &builder, &network_levels, sink);
    if sink.count() > before {
        return None;
    }
    let (region_level, regions) = regions?;
    let topology = finish(
        builder,
        network_roots,
        power_roots,
        region_level,
        regions,
        spec,
        sink,
    );
    (sink.count() == before).then_some(topology)
}

fn check_levels(levels: &[String], path: &str, sink: &mut ProblemSink) -> Option<Vec<String>> {
    if levels.len() > LEVELS_MAX {
        sink.report(path, format!("at most {LEVELS_MAX} levels are supported"));
        return None;
    }
    for (i, level) in levels.iter().enumerate() {
        if levels[..i].contains(level) {
            sink.report(
                format!("{path}[{i}]"),
                format!("level `{level}` is listed twice"),
            );
            return None;
        }
    }
    Some(levels.to_vec())
}

fn build_power(
    builder: &mut Builder,
    power: &crate::spec::TreeSpec,
    network_levels: &[String],
    sink: &mut ProblemSink,
) -> Option<Vec<DomainId>> {
    let levels = check_levels(&power.levels, "topology.power.levels", sink)?;
    let Some(join_depth) = levels.iter().position(|l| network_levels.contains(l)) else {
        sink.report("topology.power.levels", "the power tree must end in levels of the network tree (e.g. `rack, node`) so both trees share their nodes");
        return None;
    };
    let network_join = network_levels
        .iter()
        .position(|l| *l == levels[join_depth])
        .unwrap_or(0);
    if levels[join_depth..] != network_levels[network_join..] {
        sink.report(
            "topology.power.levels",
            format!(
                "below `{}` the power tree's levels ({}) must be the network tree's ({})",
                levels[join_depth],
                levels[join_depth..].join(", "),
                network_levels[network_join..].join(", ")
            ),
        );
        return None;
    }
    if join_depth == 0 {
        sink.report(
            "topology.power.levels",
            "the power tree needs at least one level of its own above the shared ones (e.g. `pdu`)",
        );
        return None;
    }
    let ids: Vec<LevelId> = levels.iter().map(|name| builder.level_id(name)).collect();
    for (depth, level) in ids.iter().enumerate() {
        builder.levels[level.index()].power_depth = Some(depth as u8);
    }
    let mut roots = Vec::new();
    for (i, domain) in power.domains.iter().enumerate() {
        let root = builder.domains.len();
        builder.power_domain(
            domain,
            PowerLevels {
                ids: &ids,
                join_depth,
            },
            0,
            None,
            &format!("topology.power.domains[{i}]"),
            sink,
        );
        if root < builder.domains.len() {
            roots.push(DomainId(root as u32));
        }
    }
    // Below the join, both trees are the same: a domain's power parent is its network parent.
    let join_level = ids[join_depth];
    for index in 0..builder.domains.len() {
        let domain = &builder.domains[index];
        let level = &builder.levels[domain.level.index()];
        if domain.level == join_level {
            if domain.power_parent.is_none() {
                let message = format!(
                    "{} `{}` is not fed by any {} of the power tree",
                    level.name,
                    domain.name,
                    levels[join_depth - 1]
                );
                // Reported where the unfed domain is defined: that names it, and the fix is
                // to list it under one of the power tree's domains.
                sink.report(builder.paths[index].clone(), message);
            }
        } else if level.power_depth.is_some() && level.network_depth.is_some() {
            builder.domains[index].power_parent = builder.domains[index].network_parent;
        }
    }
    Some(roots)
}

fn build_regions(
    spec: &TopologySpec,
    builder: &Builder,
    network_levels: &[String],
    sink: &mut ProblemSink,
) -> Option<(Option<LevelId>, Vec<Region>)> {
    let wanted = spec
        .region_level
        .clone()
        .unwrap_or_else(|| "region".to_string());
    let level = builder
        .levels
        .iter()
        .position(|l| l.name == wanted && l.network_depth.is_some());
    let level = match (level, &spec.region_level) {
        (Some(level), _) => Some(LevelId(level as u16)),
        (None, Some(_)) => {
            sink.report(
                "topology.region_level",
                format!(
                    "`{wanted}` is not a level of the network tree ({})",
                    network_levels.join(", ")
                ),
            );
            return None;
        }
        (None, None) => None,
    };
    let regions = match level {
        Some(level) => builder
            .domains
            .iter()
            .enumerate()
            .filter(|(_, d)| d.level == level)
            .map(|(i, d)| Region {
                name: d.name.clone(),
                domain: Some(DomainId(i as u32)),
            })
            .collect(),
        None => vec![Region {
            name: "default".to_string(),
            domain: None,
        }],
    };
    Some((level, regions))
}

fn finish(
    builder: Builder,
    network_roots: Vec<DomainId>,
    power_roots: Vec<DomainId>,
    region_level: Option<LevelId>,
    regions: Vec<Region>,
    spec: &TopologySpec,
    sink: &mut ProblemSink,
) -> Topology {
    let dims_count = builder.dims.len();
    let node_level = LevelId(
        builder
            .levels
            .iter()
            .position(|l| l.name == "node")
            .unwrap_or(0) as u16,
    );
    let mut chain_offsets = vec![0u32];
    let mut chain_ids = Vec::new();
    let mut ancestor_at_level = vec![vec![NO_DOMAIN; builder.nodes.len()]; builder.levels.len()];
    let mut node_region = vec![RegionId(0); builder.nodes.len()];
    for (n, node) in builder.nodes.iter().enumerate() {
        let start = chain_ids.len();
        let mut cursor = Some(node.domain);
        while let Some(domain) = cursor {
            chain_ids.push(domain);
            cursor = builder.domains[domain.index()].network_parent;
        }
        let mut cursor = builder.domains[node.domain.index()].power_parent;
        while let Some(domain) = cursor {
            if !chain_ids[start..].contains(&domain) {
                chain_ids.push(domain);
            }
            cursor = builder.domains[domain.index()].power_parent;
        }
        chain_offsets.push(chain_ids.len() as u32);
        for &domain in &chain_ids[start..] {
            let level = builder.domains[domain.index()].level;
            ancestor_at_level[level.index()][n] = domain.0;
            if Some(level) == region_level {
                let region = regions
                    .iter()
                    .position(|r| r.domain == Some(domain))
                    .unwrap_or(0);
                node_region[n] = RegionId(region as u16);
            }
        }
    }
    let region_count = regions.len();
    let local = spec.local_latency_ms.unwrap_or(1.0);
    if !(local.is_finite() && local >= 0.0) {
        sink.report(
            "topology.local_latency_ms",
            "latency must be a finite number ≥ 0",
        );
    }
    let mut latency_ms = vec![f64::NAN; region_count * region_count];
    let mut cost_per_gb = vec![0.0; region_count * region_count];
    let mut link_net_mbps = vec![f64::INFINITY; region_count * region_count];
    for r in 0..region_count {
        latency_ms[r * region_count + r] = local;
    }
    let find = |name: &str| regions.iter().position(|r| r.name == name);
    for (i, link) in spec.links.iter().enumerate() {
        let path = format!("topology.links[{i}]");
        let (Some(a), Some(b)) = (find(&link.between[0]), find(&link.between[1])) else {
            sink.report(
                format!("{path}.between"),
                format!(
                    "`{}` and `{}` must both be regions",
                    link.between[0], link.between[1]
                ),
            );
            continue;
        };
        if a == b {
            sink.report(
                format!("{path}.between"),
                "a link joins two different regions",
            );
            continue;
        }
        let checks = [
            ("latency_ms", link.latency_ms),
            ("cost_per_gb", link.cost_per_gb),
            ("net_mbps", link.net_mbps.unwrap_or(0.0)),
        ];
        for (field, value) in checks {
            if !(value.is_finite() && value >= 0.0) {
                sink.report(
                    format!("{path}.{field}"),
                    format!("{field} must be a finite number ≥ 0"),
                );
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            latency_ms[x * region_count + y] = link.latency_ms;
            cost_per_gb[x * region_count + y] = link.cost_per_gb;
            link_net_mbps[x * region_count + y] = link.net_mbps.unwrap_or(f64::INFINITY);
        }
    }
    for a in 0..region_count {
        for b in a + 1..region_count {
            if latency_ms[a * region_count + b].is_nan() {
                sink.report("topology.links", format!("regions `{}` and `{}` have no link; add one with their latency_ms and cost_per_gb", regions[a].name, regions[b].name));
            }
        }
    }
    Topology {
        levels: builder.levels,
        node_level,
        domains: builder.domains,
        nodes: builder.nodes,
        network_roots,
        power_roots,
        region_level,
        regions,
        latency_ms,
        cost_per_gb,
        link_net_mbps,
        capacity: builder.capacity.concat(),
        dims_count,
        chain_offsets,
        chain_ids,
        ancestor_at_level,
        node_region,
        names: builder.names,
    }
}
