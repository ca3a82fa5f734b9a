//! Finding a node for one replica: a bounded best-first search down the network tree.
//!
//! Each network domain the search enters decides some constraints for good (the domains every
//! node under it shares: the rack, and through the rack its PDU and feed). A subtree is queued
//! under its exact partial score plus an estimate of what the levels below it will add; the
//! estimate orders the search but is not a bound, and after the first node is queued only a few
//! more subtrees are opened. So the node returned is the best the search saw, scored exactly as
//! [`score_node`] scores it — usually, not provably, the best of the fleet (the tests measure
//! how often). Until a node is found the search is exhaustive: if any node can take the
//! replica, it finds one.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use meridian_model::{DomainId, GroupId, LevelId, NodeId, StateId};

use crate::context::Context;
use crate::score::{Rejection, Score};
use crate::state::State;

/// Weight of the sum of every domain's pressure beside the peak. The peak alone says nothing
/// about the levels below the hottest one (every node of a hot rack would tie); the sum lets
/// each level's utilization count, so node, rack, PDU and spine are balanced together.
pub const PRESSURE_SUM_WEIGHT: f64 = 0.2;

/// Once some node is in the queue, how many more subtrees the search may open looking for a
/// better one. Bounds the work per replica on large fleets (a few racks, not all of them);
/// the estimate orders subtrees so the ones opened are the likeliest to hold the best node.
pub const EXPANSIONS_AFTER_FIRST_NODE_MAX: usize = 3;

/// Bound on queue pops for one search, far above any real fleet's need (every domain once).
pub const SEARCH_POPS_MAX: usize = 50_000_000;

/// One replica looking for a node.
pub struct Request {
    pub group: GroupId,
    pub partition: u32,
    pub state: StateId,
    /// Dimensions in which the replica has heat, with the amount.
    pub heat: Vec<(usize, f64)>,
    /// Domains (at the group's spread levels) already holding a replica of the partition.
    pub taken: Vec<DomainId>,
    /// The node the replica is on now; every other node pays the movement term.
    pub current: Option<NodeId>,
    /// A domain the replica must not land under: the hot domain a rebalance move leaves.
    /// (Drained domains and failed nodes are closed in the state for every request.)
    pub exclude: Option<DomainId>,
    /// Soft affinity: at this level, domains holding the partner partition.
    pub affinity: Vec<(LevelId, Vec<DomainId>)>,
    pub gravity_weight: f64,
    pub movement_penalty: f64,
}

impl Request {
    /// Builds the request for `slot` given the current state (siblings, partners).
    pub fn for_slot(
        context: &Context,
        state: &State,
        slot: usize,
        replica_state: StateId,
        current: Option<NodeId>,
    ) -> Request {
        let fleet = context.fleet;
        let (group_id, partition, _) = fleet.locate_slot(slot);
        let group = fleet.group(group_id);
        let topology = &fleet.topology;
        let heat = group.heat[replica_state.index()]
            .iter()
            .enumerate()
            .filter(|(_, h)| **h > 0.0)
            .map(|(x, h)| (x, *h))
            .collect();
        let first = group.partition_slot(partition);
        let mut taken = Vec::new();
        for sibling in first..first + group.replicas_per_partition() {
            if sibling == slot {
                continue;
            }
            if let Some(node) = state.node_of(sibling) {
                taken.extend(
                    group
                        .spread
                        .iter()
                        .filter_map(|&level| topology.ancestor_at(node, level)),
                );
            }
        }
        let affinity = group
            .affinity
            .iter()
            .map(|&(other, level)| {
                let partner = fleet.group(other);
                let p = partition % partner.partitions;
                let start = partner.partition_slot(p);
                let domains = (start..start + partner.replicas_per_partition())
                    .filter_map(|s| state.node_of(s))
                    .filter_map(|n| topology.ancestor_at(n, level))
                    .collect();
                (level, domains)
            })
            .collect();
        let model = fleet.product_of(group_id);
        let objectives = &fleet.objectives;
        Request {
            group: group_id,
            partition,
            state: replica_state,
            heat,
            taken,
            current,
            exclude: None,
            affinity,
            gravity_weight: objectives.gravity
                * model.gravity_weight[replica_state.index()]
                * context.latency_scale,
            movement_penalty: objectives.movement * group.size_gib * context.size_scale,
        }
    }
}

/// Evaluates the domains newly decided on entering a search step, folding into `score`.
pub fn evaluate_domains(
    context: &Context,
    state: &State,
    request: &Request,
    domains: &[DomainId],
    score: &mut Score,
) -> Result<(), Rejection> {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let dims = context.dims;
    for &domain in domains {
        let mut pressure = 0.0f64;
        if request.exclude == Some(domain) || state.is_closed(domain) {
            return Err(Rejection::Excluded { domain });
        }
        let level = topology.domain(domain).level;
        let base = domain.index() * dims;
        for &(x, h) in &request.heat {
            let limit = fleet.limit[base + x];
            if !limit.is_finite() {
                continue;
            }
            let after = state.used[base + x] + h;
            if after > limit * (1.0 + 1e-12) {
                return Err(Rejection::Capacity {
                    domain,
                    dim: x,
                    need: h,
                    free: (limit - state.used[base + x]).max(0.0),
                });
            }
            pressure = pressure.max(context.pressure(domain, x, after));
        }
        score.peak_pressure = score.peak_pressure.max(pressure);
        score.pressure_sum += pressure;
        if request.taken.contains(&domain) {
            return Err(Rejection::Spread { domain });
        }
        for &(other, relation_level) in &context.anti_affinity[request.group.index()] {
            if relation_level == level && state.occupancy(other, domain) > 0 {
                return Err(Rejection::AntiAffinity {
                    group: other,
                    domain,
                });
            }
        }
        if Some(level) == topology.region_level {
            score.gravity += gravity(context, request, domain);
            score.cost += egress_cost(context, request, domain);
        }
        for (affinity_level, partners) in &request.affinity {
            if *affinity_level == level && !partners.is_empty() && !partners.contains(&domain) {
                score.affinity += fleet.objectives.affinity;
            }
        }
    }
    score.balance =
        fleet.objectives.balance * (score.peak_pressure + PRESSURE_SUM_WEIGHT * score.pressure_sum);
    Ok(())
}

fn gravity(context: &Context, request: &Request, region_domain: DomainId) -> f64 {
    let topology = &context.fleet.topology;
    let Some(region) = topology.region_of_domain(region_domain) else {
        return 0.0;
    };
    let access = &context.fleet.group(request.group).access;
    let latency: f64 = access
        .iter()
        .map(|&(from, share)| share * topology.latency(from, region))
        .sum();
    latency * request.gravity_weight
}

/// Monthly $ of serving this group's reads from `region_domain`, weighted and scaled.
fn egress_cost(context: &Context, request: &Request, region_domain: DomainId) -> f64 {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let group = fleet.group(request.group);
    if group.reads_gib_per_month == 0.0 {
        return 0.0;
    }
    let Some(region) = topology.region_of_domain(region_domain) else {
        return 0.0;
    };
    let per_gib: f64 = group
        .access
        .iter()
        .map(|&(from, share)| share * topology.transfer_cost_per_gb(from, region))
        .sum();
    fleet.objectives.cost * group.reads_gib_per_month * per_gib * context.cost_scale
}

/// Node-level terms: storage price and movement.
fn finish_node(context: &Context, request: &Request, node: NodeId, score: &mut Score) {
    let fleet = context.fleet;
    let info = &fleet.topology.nodes[node.index()];
    let size_gib = fleet.group(request.group).size_gib;
    score.cost += fleet.objectives.cost * info.cost_per_gib_month * size_gib * context.cost_scale;
    if request.current.is_some_and(|current| current != node) {
        score.movement = request.movement_penalty;
    }
}

/// The full score of one node for `request`, or the first constraint it breaks.
pub fn score_node(
    context: &Context,
    state: &State,
    request: &Request,
    node: NodeId,
) -> Result<Score, Rejection> {
    let fleet = context.fleet;
    if !fleet
        .group(request.group)
        .node_allowed(&fleet.topology, node)
    {
        return Err(Rejection::Eligibility);
    }
    let mut path = Vec::new();
    let mut cursor = Some(fleet.topology.node_domain(node));
    while let Some(domain) = cursor {
        path.push(domain);
        cursor = fleet.topology.domain(domain).network_parent;
    }
    let mut score = Score::default();
    for &domain in path.iter().rev() {
        evaluate_domains(
            context,
            state,
            request,
            context.newly_covered(domain),
            &mut score,
        )?;
    }
    finish_node(context, request, node, &mut score);
    Ok(score)
}

struct Entry {
    /// Order of exploration: the partial score plus an estimate of what the levels below add.
    key: f64,
    tie: u64,
    domain: DomainId,
    /// Index of the exact score of the domains decided so far (the full score for a node) in
    /// the search's score arena: the heap moves entries on every push and pop, so they stay
    /// small.
    score: u32,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: `BinaryHeap` pops the largest, we want the lowest key.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .total_cmp(&self.key)
            .then(other.tie.cmp(&self.tie))
            .then(other.domain.cmp(&self.domain))
    }
}

/// A lower bound on the node-level pressure any node under `domain` would reach with the
/// replica: per dimension, the coolest node's utilization plus the replica's heat over the
/// largest node limit there. Never more than the truth, so it only orders the search.
fn node_pressure_estimate(
    context: &Context,
    state: &State,
    request: &Request,
    domain: DomainId,
) -> f64 {
    let node_level = context.fleet.topology.node_level;
    let mut estimate = 0.0f64;
    for &(x, h) in &request.heat {
        let coolest = state.node_utilization_min(domain, x, context.dims);
        let limit = context.node_limit_max(domain, x);
        if coolest.is_finite() && limit > 0.0 {
            estimate = estimate.max((coolest + h / limit) / context.balance_target(node_level, x));
        }
    }
    estimate
}

/// What the levels below `domain` will likely add: the node level from the coolest node
/// under it, each other undecided level (rack, PDU, ...) from its level's average. Making keys
/// at every depth estimates of a full score lets the search dive to a good node instead of
/// opening every spine before any rack. Returns (peak, sum) of the estimated pressures.
fn estimate_below(
    context: &Context,
    state: &State,
    request: &Request,
    level_average: &[f64],
    domain: DomainId,
) -> (f64, f64) {
    // The coolest node per dimension is optimistic (the minima may come from different nodes);
    // the node whose own peak is lowest is a realistic second opinion. Take the larger.
    let node =
        node_pressure_estimate(context, state, request, domain).max(state.node_peak_min(domain));
    let (mut peak, mut sum) = (node, node);
    for &level in context.levels_below(domain) {
        // Levels between this domain and the node: their average. (Each subtree's coolest
        // domain per level was tried as well; it cost more and placed no better.)
        let level_peak = level_average[level.index()];
        peak = peak.max(level_peak);
        sum += level_peak;
    }
    (peak, sum)
}

/// Per level, the pressure an average domain of it would reach with the replica: the same for
/// every subtree a search looks at, so computed once per search.
fn level_averages(context: &Context, state: &State, request: &Request) -> Vec<f64> {
    let levels = context.fleet.topology.levels.len();
    (0..levels)
        .map(|l| {
            let level = meridian_model::LevelId(l as u16);
            let mut level_peak = 0.0f64;
            for &(x, h) in &request.heat {
                let cell = l * context.dims + x;
                let limit = context.level_limit_sum[cell];
                if limit > 0.0 {
                    let average = (state.level_used(level, x, context.dims)
                        + h * context.level_limited_count[cell])
                        / limit;
                    level_peak = level_peak.max(average / context.balance_target(level, x));
                }
            }
            level_peak
        })
        .collect()
}

/// A cheap, well-mixed hash (splitmix64) for seeded tie-breaks between equal scores.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The best node for `request`, with its score; `None` if no node satisfies every constraint.
pub fn best_node(
    context: &Context,
    state: &State,
    request: &Request,
    seed: u64,
) -> Option<(NodeId, Score)> {
    let salt = mix(seed ^ (request.group.0 as u64) << 32 ^ request.partition as u64);
    let level_average = level_averages(context, state, request);
    // The heap and the score arena are reused from search to search (one search per replica
    // placed: a million at 1M replicas); only their allocations carry over, never contents.
    let (mut heap, mut scores) = SEARCH_BUFFERS.with_borrow_mut(std::mem::take);
    heap.clear();
    scores.clear();
    let found = search(
        context,
        state,
        request,
        (salt, &level_average),
        (&mut heap, &mut scores),
    );
    SEARCH_BUFFERS.with_borrow_mut(|buffers| *buffers = (heap, scores));
    found
}

thread_local! {
    static SEARCH_BUFFERS: std::cell::RefCell<(BinaryHeap<Entry>, Vec<Score>)> =
        const { std::cell::RefCell::new((BinaryHeap::new(), Vec::new())) };
}

/// The best-first search of `best_node`, on the buffers it lends.
fn search(
    context: &Context,
    state: &State,
    request: &Request,
    (salt, level_average): (u64, &[f64]),
    (heap, scores): (&mut BinaryHeap<Entry>, &mut Vec<Score>),
) -> Option<(NodeId, Score)> {
    let fleet = context.fleet;
    let topology = &fleet.topology;
    let balance_weight = fleet.objectives.balance;
    let push = |heap: &mut BinaryHeap<Entry>,
                scores: &mut Vec<Score>,
                domain: DomainId,
                parent: Score|
     -> bool {
        if context.eligible_under(request.group, domain) == 0 {
            return false;
        }
        let mut score = parent;
        if evaluate_domains(
            context,
            state,
            request,
            context.newly_covered(domain),
            &mut score,
        )
        .is_err()
        {
            return false;
        }
        let key = match topology.domain(domain).node {
            Some(node) => {
                // A node's eligible count (checked above) is 1 exactly when the group may use it.
                finish_node(context, request, node, &mut score);
                score.total()
            }
            None => {
                let (estimate_peak, estimate_sum) =
                    estimate_below(context, state, request, level_average, domain);
                let peak = score.peak_pressure.max(estimate_peak);
                score.total()
                    + balance_weight
                        * (peak - score.peak_pressure + PRESSURE_SUM_WEIGHT * estimate_sum)
            }
        };
        heap.push(Entry {
            key,
            tie: mix(salt ^ domain.0 as u64),
            domain,
            score: scores.len() as u32,
        });
        scores.push(score);
        topology.domain(domain).node.is_some()
    };
    for &root in &context.roots {
        push(heap, scores, root, Score::default());
    }
    let mut node_seen = false;
    let mut expansions_after_node = 0usize;
    for _ in 0..SEARCH_POPS_MAX {
        let entry = heap.pop()?;
        let domain = topology.domain(entry.domain);
        let score = scores[entry.score as usize];
        if let Some(node) = domain.node {
            return Some((node, score));
        }
        if node_seen {
            if expansions_after_node >= EXPANSIONS_AFTER_FIRST_NODE_MAX {
                continue;
            }
            expansions_after_node += 1;
        }
        for &child in &domain.network_children {
            node_seen |= push(heap, scores, child, score);
        }
    }
    None
}
