//! Static facts the solver precomputes once per fleet: which nodes each group may use, which
//! domains become known at each step of the tree search, and the lower bounds that balance is
//! measured against.

use meridian_model::{DomainId, Fleet, GroupId, LevelId, NodeId};

/// Precomputed, immutable per-fleet data.
pub struct Context<'a> {
    pub fleet: &'a Fleet,
    pub dims: usize,
    /// Per group: its eligibility class (groups with the same selector and regions share one).
    pub class_of_group: Vec<usize>,
    /// `eligible[class][domain]`: nodes under the domain that the class may use.
    pub eligible: Vec<Vec<u32>>,
    /// Domains first covered when the search enters a network domain: those shared by every
    /// node under it but not by every node under its parent (CSR over domains).
    newly_offsets: Vec<u32>,
    newly_ids: Vec<DomainId>,
    /// Roots of the search: the network tree's roots.
    pub roots: Vec<DomainId>,
    /// Balance targets: lower bound of utilization per `level * dims + dim` (0 = none).
    pub lower_bound: Vec<f64>,
    /// Anti-affinity relations per group, both directions: (other group, level).
    pub anti_affinity: Vec<Vec<(GroupId, LevelId)>>,
    /// Per (group, level) pairs that need domain occupancy counts.
    pub tracked: Vec<Vec<LevelId>>,
    /// Nodes under each domain, in either tree (CSR over domains).
    under_offsets: Vec<u32>,
    under_ids: Vec<NodeId>,
    /// Per network domain: the levels (above node) whose domains are decided somewhere below it,
    /// e.g. rack, pdu and feed below a spine (CSR over domains).
    below_offsets: Vec<u32>,
    below_levels: Vec<LevelId>,
    /// Per `level * dims + dim`: total limit and count of the level's limited domains.
    pub level_limit_sum: Vec<f64>,
    pub level_limited_count: Vec<f64>,
    /// Per `domain * dims + dim`: 1 / (limit × balance target), 0 where unlimited; turns a
    /// load into a pressure with one multiplication on the search's hot path.
    pressure_scale: Vec<f64>,
    /// Network domains ordered leaves first (children before parents).
    bottom_up: Vec<DomainId>,
    /// Per `domain * dims + dim`: the largest node limit under the domain (network tree).
    node_limit_max: Vec<f64>,
    pub latency_scale: f64,
    /// 1 / the dearest replica-month in $ (storage plus egress), to scale the cost term.
    pub cost_scale: f64,
    pub size_scale: f64,
}

impl<'a> Context<'a> {
    pub fn new(fleet: &'a Fleet) -> Self {
        let topology = &fleet.topology;
        let (class_of_group, eligible) = eligibility(fleet);
        let (newly_offsets, newly_ids) = newly_covered(fleet);
        let anti_affinity = symmetric_anti_affinity(fleet);
        let mut tracked = vec![Vec::new(); fleet.groups.len()];
        for (g, relations) in anti_affinity.iter().enumerate() {
            for &(other, level) in relations {
                for group in [g, other.index()] {
                    if !tracked[group].contains(&level) {
                        tracked[group].push(level);
                    }
                }
            }
        }
        for group in &fleet.groups {
            for &(other, level) in &group.affinity {
                if !tracked[other.index()].contains(&level) {
                    tracked[other.index()].push(level);
                }
            }
        }
        let max_latency = topology
            .latency_ms
            .iter()
            .copied()
            .filter(|l| l.is_finite())
            .fold(0.0, f64::max);
        let max_price = topology
            .nodes
            .iter()
            .map(|n| n.cost_per_gib_month)
            .fold(0.0, f64::max);
        let max_egress = topology.cost_per_gb.iter().copied().fold(0.0, f64::max);
        // The dearest replica-month any group could cost: scales the cost term into [0, 1].
        let max_cost = fleet
            .groups
            .iter()
            .map(|g| g.size_gib * max_price + g.reads_gib_per_month * max_egress)
            .fold(0.0, f64::max);
        let max_size = fleet.groups.iter().map(|g| g.size_gib).fold(0.0, f64::max);
        let (under_offsets, under_ids) = nodes_under(fleet);
        let dims = fleet.dims_count();
        let mut bottom_up: Vec<DomainId> = topology
            .domain_ids()
            .filter(|d| {
                topology.domain(*d).network_parent.is_some() || topology.network_roots.contains(d)
            })
            .collect();
        bottom_up.sort_by_key(|d| (std::cmp::Reverse(depth(fleet, *d)), *d));
        let mut node_limit_max = vec![0.0f64; topology.domains.len() * dims];
        for node in topology.node_ids() {
            let mut cursor = Some(topology.node_domain(node));
            let limits = fleet.limit_of(topology.node_domain(node)).to_vec();
            while let Some(domain) = cursor {
                for (x, &limit) in limits.iter().enumerate() {
                    if limit.is_finite() {
                        let slot = &mut node_limit_max[domain.index() * dims + x];
                        *slot = slot.max(limit);
                    }
                }
                cursor = topology.domain(domain).network_parent;
            }
        }
        let (below_offsets, below_levels) = levels_below(fleet, &newly_offsets, &newly_ids);
        let mut level_limit_sum = vec![0.0; topology.levels.len() * dims];
        let mut level_limited_count = vec![0.0; topology.levels.len() * dims];
        for domain in topology.domain_ids() {
            let level = topology.domain(domain).level.index();
            for (x, &limit) in fleet.limit_of(domain).iter().enumerate() {
                if limit.is_finite() && limit > 0.0 {
                    level_limit_sum[level * dims + x] += limit;
                    level_limited_count[level * dims + x] += 1.0;
                }
            }
        }
        let mut context = Context {
            fleet,
            pressure_scale: Vec::new(),
            below_offsets,
            below_levels,
            level_limit_sum,
            level_limited_count,
            bottom_up,
            node_limit_max,
            under_offsets,
            under_ids,
            dims: fleet.dims_count(),
            class_of_group,
            eligible,
            newly_offsets,
            newly_ids,
            roots: topology.network_roots.clone(),
            lower_bound: crate::bounds::lower_bounds(fleet).pooled,
            anti_affinity,
            tracked,
            latency_scale: if max_latency > 0.0 {
                1.0 / max_latency
            } else {
                0.0
            },
            cost_scale: if max_cost > 0.0 { 1.0 / max_cost } else { 0.0 },
            size_scale: if max_size > 0.0 { 1.0 / max_size } else { 0.0 },
        };
        context.pressure_scale = (0..topology.domains.len() * dims)
            .map(|cell| {
                let domain = DomainId((cell / dims) as u32);
                let limit = fleet.limit[cell];
                if limit.is_finite() && limit > 0.0 {
                    1.0 / (limit
                        * context.balance_target(topology.domain(domain).level, cell % dims))
                } else {
                    0.0
                }
            })
            .collect();
        context
    }

    /// Domains whose constraints are first decided when the search enters `domain`.
    pub fn newly_covered(&self, domain: DomainId) -> &[DomainId] {
        let start = self.newly_offsets[domain.index()] as usize;
        let end = self.newly_offsets[domain.index() + 1] as usize;
        &self.newly_ids[start..end]
    }

    /// Levels (above node) decided somewhere below `domain` in the search.
    pub fn levels_below(&self, domain: DomainId) -> &[LevelId] {
        let start = self.below_offsets[domain.index()] as usize;
        let end = self.below_offsets[domain.index() + 1] as usize;
        &self.below_levels[start..end]
    }

    pub fn bottom_up(&self) -> &[DomainId] {
        &self.bottom_up
    }

    pub fn node_limit_max(&self, domain: DomainId, dim: usize) -> f64 {
        self.node_limit_max[domain.index() * self.dims + dim]
    }

    pub fn nodes_under(&self, domain: DomainId) -> &[NodeId] {
        let start = self.under_offsets[domain.index()] as usize;
        let end = self.under_offsets[domain.index() + 1] as usize;
        &self.under_ids[start..end]
    }

    pub fn eligible_under(&self, group: GroupId, domain: DomainId) -> u32 {
        self.eligible[self.class_of_group[group.index()]][domain.index()]
    }

    pub fn lower_bound(&self, level: LevelId, dim: usize) -> f64 {
        self.lower_bound[level.index() * self.dims + dim]
    }

    /// The utilization balance aims at for a level and dimension: its lower bound, floored so
    /// near-idle dimensions do not drive decisions. Search and rebalance both use this.
    pub fn balance_target(&self, level: LevelId, dim: usize) -> f64 {
        self.lower_bound(level, dim)
            .max(crate::score::BALANCE_TARGET_FLOOR)
    }

    /// Utilization of a limit over its balance target (0 for unlimited domains).
    pub fn pressure(&self, domain: DomainId, dim: usize, load: f64) -> f64 {
        load * self.pressure_scale[domain.index() * self.dims + dim]
    }
}

/// Per group its pool, and per pool the count of its nodes under every domain.
fn eligibility(fleet: &Fleet) -> (Vec<usize>, Vec<Vec<u32>>) {
    let topology = &fleet.topology;
    let pools = crate::pools::pools(fleet);
    let eligible = pools
        .nodes
        .iter()
        .map(|members| {
            let mut counts = vec![0u32; topology.domains.len()];
            for node in topology.node_ids().filter(|n| members[n.index()]) {
                for domain in topology.chain(node) {
                    counts[domain.index()] += 1;
                }
            }
            counts
        })
        .collect();
    (pools.of_group, eligible)
}

/// For each network domain X: the domains every node under X shares, minus those every node
/// under X's parent shares. Entering X in the search decides exactly these.
fn newly_covered(fleet: &Fleet) -> (Vec<u32>, Vec<DomainId>) {
    let topology = &fleet.topology;
    let count = topology.domains.len();
    let mut covered: Vec<Option<Vec<DomainId>>> = vec![None; count];
    // Nodes first: their chain. Then fold upward through network parents by intersection.
    for node in topology.node_ids() {
        let mut chain: Vec<DomainId> = topology.chain(node).to_vec();
        chain.sort();
        covered[topology.node_domain(node).index()] = Some(chain);
    }
    let mut order: Vec<DomainId> = topology.domain_ids().collect();
    order.sort_by_key(|d| std::cmp::Reverse(depth(fleet, *d)));
    for domain in order {
        let Some(parent) = topology.domain(domain).network_parent else {
            continue;
        };
        let Some(mine) = covered[domain.index()].clone() else {
            continue;
        };
        let merged = match covered[parent.index()].take() {
            None => mine.into_iter().filter(|d| *d != domain).collect(),
            Some(existing) => existing.into_iter().filter(|d| mine.contains(d)).collect(),
        };
        covered[parent.index()] = Some(merged);
    }
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    for domain in topology.domain_ids() {
        let mine = covered[domain.index()].as_deref().unwrap_or(&[]);
        let parent = topology
            .domain(domain)
            .network_parent
            .and_then(|p| covered[p.index()].as_deref())
            .unwrap_or(&[]);
        ids.extend(mine.iter().filter(|d| !parent.contains(d)));
        offsets.push(ids.len() as u32);
    }
    (offsets, ids)
}

/// For each domain: levels of the domains its first node sits under that are not yet decided
/// when the search enters it (the node level aside). Trees are near-uniform, so the first node
/// speaks for the subtree.
fn levels_below(
    fleet: &Fleet,
    newly_offsets: &[u32],
    newly_ids: &[DomainId],
) -> (Vec<u32>, Vec<LevelId>) {
    let topology = &fleet.topology;
    let newly = |d: DomainId| {
        &newly_ids[newly_offsets[d.index()] as usize..newly_offsets[d.index() + 1] as usize]
    };
    let mut first_node = vec![None; topology.domains.len()];
    for node in topology.node_ids() {
        let mut cursor = Some(topology.node_domain(node));
        while let Some(domain) = cursor {
            if first_node[domain.index()].is_some() {
                break;
            }
            first_node[domain.index()] = Some(node);
            cursor = topology.domain(domain).network_parent;
        }
    }
    let mut offsets = vec![0u32];
    let mut levels = Vec::new();
    for domain in topology.domain_ids() {
        if let Some(node) = first_node[domain.index()] {
            let mut decided: Vec<DomainId> = Vec::new();
            let mut cursor = Some(domain);
            while let Some(d) = cursor {
                decided.extend_from_slice(newly(d));
                cursor = topology.domain(d).network_parent;
            }
            let start = levels.len();
            for &d in topology.chain(node) {
                let level = topology.domain(d).level;
                if !decided.contains(&d)
                    && level != topology.node_level
                    && !levels[start..].contains(&level)
                {
                    levels.push(level);
                }
            }
        }
        offsets.push(levels.len() as u32);
    }
    (offsets, levels)
}

fn depth(fleet: &Fleet, domain: DomainId) -> usize {
    let mut depth = 0;
    let mut cursor = fleet.topology.domain(domain).network_parent;
    while let Some(parent) = cursor {
        depth += 1;
        cursor = fleet.topology.domain(parent).network_parent;
    }
    depth
}

fn symmetric_anti_affinity(fleet: &Fleet) -> Vec<Vec<(GroupId, LevelId)>> {
    let mut relations = vec![Vec::new(); fleet.groups.len()];
    for group in &fleet.groups {
        for &(other, level) in &group.anti_affinity {
            for (from, to) in [(group.id, other), (other, group.id)] {
                if !relations[from.index()].contains(&(to, level)) {
                    relations[from.index()].push((to, level));
                }
            }
        }
    }
    relations
}

fn nodes_under(fleet: &Fleet) -> (Vec<u32>, Vec<NodeId>) {
    let topology = &fleet.topology;
    let mut lists: Vec<Vec<NodeId>> = vec![Vec::new(); topology.domains.len()];
    for node in topology.node_ids() {
        for domain in topology.chain(node) {
            lists[domain.index()].push(node);
        }
    }
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    for list in lists {
        ids.extend(list);
        offsets.push(ids.len() as u32);
    }
    (offsets, ids)
}
