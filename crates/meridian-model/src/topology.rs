//! The physical topology: two trees over the same nodes.
//!
//! The *network* tree (e.g. region > zone > spine > rack > node) and the *power* tree (e.g.
//! feed > pdu > rack > node) share their lower levels: the power tree's first level that is
//! also a network level (usually `rack`) is where they join, and everything below it is the
//! same domain in both. Every domain, of either tree, may carry capacities in any dimension.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::dims::Dimensions;
use crate::ids::{DomainId, LevelId, NodeId, RegionId};

/// `u32::MAX` marks "no domain" in dense per-node tables.
pub const NO_DOMAIN: u32 = u32::MAX;
/// Bound on tree depth; keeps per-node ancestor chains short and loops bounded.
pub const LEVELS_MAX: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub name: String,
    /// Depth in the network tree (0 = root level), if the level is part of it.
    pub network_depth: Option<u8>,
    /// Depth in the power tree, if the level is part of it.
    pub power_depth: Option<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub name: String,
    pub level: LevelId,
    pub network_parent: Option<DomainId>,
    pub power_parent: Option<DomainId>,
    pub network_children: Vec<DomainId>,
    pub power_children: Vec<DomainId>,
    /// Set when this domain is a node.
    pub node: Option<NodeId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub domain: DomainId,
    pub class: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cost_per_gib_month: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub name: String,
    /// The region's domain; `None` for the implicit single region of a fleet without one.
    pub domain: Option<DomainId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    pub levels: Vec<Level>,
    pub node_level: LevelId,
    pub domains: Vec<Domain>,
    pub nodes: Vec<NodeInfo>,
    pub network_roots: Vec<DomainId>,
    pub power_roots: Vec<DomainId>,
    pub region_level: Option<LevelId>,
    pub regions: Vec<Region>,
    /// Region × region matrices, row-major.
    pub latency_ms: Vec<f64>,
    pub cost_per_gb: Vec<f64>,
    pub link_net_mbps: Vec<f64>,
    /// Raw capacity, domain-major: `capacity[domain * dims + dim]`; unset is +∞ above the
    /// node level and 0 at nodes (a node has only what it declares).
    pub capacity: Vec<f64>,
    pub dims_count: usize,
    /// Every domain a node sits under, in either tree, itself included (CSR layout).
    pub(crate) chain_offsets: Vec<u32>,
    pub(crate) chain_ids: Vec<DomainId>,
    /// `ancestor_at_level[level][node]`: the node's domain at that level, or `NO_DOMAIN`.
    pub(crate) ancestor_at_level: Vec<Vec<u32>>,
    pub node_region: Vec<RegionId>,
    #[serde(skip)]
    pub(crate) names: HashMap<String, DomainId>,
}

impl Topology {
    pub fn domain(&self, id: DomainId) -> &Domain {
        &self.domains[id.index()]
    }

    pub fn domain_by_name(&self, name: &str) -> Option<DomainId> {
        self.names.get(name).copied()
    }

    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.domain_by_name(name)
            .and_then(|d| self.domains[d.index()].node)
    }

    pub fn level_by_name(&self, name: &str) -> Option<LevelId> {
        self.levels
            .iter()
            .position(|l| l.name == name)
            .map(|i| LevelId(i as u16))
    }

    pub fn level_name(&self, level: LevelId) -> &str {
        &self.levels[level.index()].name
    }

    pub fn node_domain(&self, node: NodeId) -> DomainId {
        self.nodes[node.index()].domain
    }

    pub fn node_name(&self, node: NodeId) -> &str {
        &self.domains[self.node_domain(node).index()].name
    }

    /// All domains `node` sits under, in both trees, itself included.
    pub fn chain(&self, node: NodeId) -> &[DomainId] {
        let start = self.chain_offsets[node.index()] as usize;
        let end = self.chain_offsets[node.index() + 1] as usize;
        &self.chain_ids[start..end]
    }

    /// The node's domain at `level`, if the node is under one.
    pub fn ancestor_at(&self, node: NodeId, level: LevelId) -> Option<DomainId> {
        let raw = self.ancestor_at_level[level.index()][node.index()];
        (raw != NO_DOMAIN).then_some(DomainId(raw))
    }

    pub fn region_of(&self, node: NodeId) -> RegionId {
        self.node_region[node.index()]
    }

    /// The region whose domain is `domain`, if it is one.
    pub fn region_of_domain(&self, domain: DomainId) -> Option<RegionId> {
        self.regions
            .iter()
            .position(|r| r.domain == Some(domain))
            .map(|i| RegionId(i as u16))
    }

    pub fn region_by_name(&self, name: &str) -> Option<RegionId> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .map(|i| RegionId(i as u16))
    }

    pub fn latency(&self, a: RegionId, b: RegionId) -> f64 {
        self.latency_ms[a.index() * self.regions.len() + b.index()]
    }

    pub fn transfer_cost_per_gb(&self, a: RegionId, b: RegionId) -> f64 {
        self.cost_per_gb[a.index() * self.regions.len() + b.index()]
    }

    pub fn capacity_of(&self, domain: DomainId) -> &[f64] {
        let start = domain.index() * self.dims_count;
        &self.capacity[start..start + self.dims_count]
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    pub fn domain_ids(&self) -> impl Iterator<Item = DomainId> {
        (0..self.domains.len() as u32).map(DomainId)
    }

    /// Nodes under `domain` (in either tree), in id order.
    pub fn nodes_under(&self, domain: DomainId) -> Vec<NodeId> {
        self.node_ids()
            .filter(|&n| self.chain(n).contains(&domain))
            .collect()
    }

    /// Children used to walk down from `domain` when searching for a node: the network tree's.
    pub fn search_children(&self, domain: DomainId) -> &[DomainId] {
        &self.domains[domain.index()].network_children
    }

    pub fn dims_count(&self) -> usize {
        self.dims_count
    }

    /// Human description of a dimension's capacity at a domain, e.g. `rack r01 net_mbps`.
    pub fn describe(&self, domain: DomainId, dims: &Dimensions, dim: usize) -> String {
        let d = &self.domains[domain.index()];
        format!(
            "{} {} {}",
            self.level_name(d.level),
            d.name,
            dims.names()[dim]
        )
    }
}
