//! The engine of a node-local rebalancer, the kind every product ships today (Cruise Control
//! for Kafka, Helix's rebalancers for databases, a scheduler for inference), modelled honestly:
//! it is good at what it sees — replica counts, node capacities, its own moves in flight — and
//! blind to everything above the node (ToR uplinks, spines, PDUs, feeds, region links). Its
//! copies run at a fixed throttle whatever path they take; the engine measures the damage.
//!
//! One decision is three passes over the same view, each in id order so that the same input
//! gives the same moves: *repair* (re-replicate partitions that lost replicas), *shed* (move
//! replicas off nodes above the high-water mark, leadership first where the product allows a
//! hand-off), and optionally *count balance* (Helix-like: no node holds far more replicas than
//! the average). Every pass works on a running model of the load it sees, updated by the moves
//! already chosen in this decision, as Cruise Control's optimizer does with its proposals.

use meridian_model::{Fleet, Group, GroupId, NodeId, ProductId, StateId, StateModel};

use crate::strategy::{Move, MoveAction, View};
use crate::world::{Held, PartId};

/// Shed replicas from a node once its seen utilization passes this fraction of capacity.
pub const HIGH_WATER_DEFAULT: f64 = 0.80;
/// Moves started per decision, over all passes.
pub const MOVES_PER_ROUND_DEFAULT: usize = 20;
/// Copies in flight per node (as source or target), Cruise Control's per-broker concurrency.
pub const MOVES_PER_NODE_DEFAULT: usize = 2;
/// The replication throttle every copy runs at, MB/s.
pub const RATE_MBPS_DEFAULT: f64 = 100.0;
/// Target searches (each a scan over every node) per decision: bounds a decision's work when
/// nothing fits anywhere (a region down), at the price of trying the lowest ids first.
pub const SEARCHES_PER_ROUND_DEFAULT: usize = 256;

/// The groups a rebalancer manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// One product's groups: a silo.
    Product(ProductId),
}

/// What a rebalancer sees of a node's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sight {
    /// Only the replicas it manages: a product's balancer knows its own tasks, not the
    /// neighbours'.
    Managed,
    /// Every replica on the node, as OS metrics show whole-node usage.
    WholeNode,
}

/// How a target is chosen among the nodes that qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The node with the lowest seen utilization (max over the fit dimensions); ties by id.
    LeastUtilized,
    /// The first node in id order, as a simple scheduler's first-fit does.
    FirstFit,
}

/// Everything that makes one rebalancer differ from another.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub scope: Scope,
    pub sight: Sight,
    /// Dimensions whose utilization makes a node hot (names; none known = every dimension).
    pub watch_dims: Vec<String>,
    /// Dimensions a target must have room in (names; none known = every dimension).
    pub fit_dims: Vec<String>,
    pub choice: Choice,
    /// Fraction of a node's capacity above which it sheds, and below which a target of a
    /// rebalancing move must stay.
    pub high_water: f64,
    /// Shed hot nodes (off: repair only, as a plain scheduler).
    pub rebalance: bool,
    /// Move leadership off a hot node by hand-off before copying anything (Kafka's preferred
    /// leader election, Helix's master handoff).
    pub hand_off_leaders: bool,
    /// Helix-like count balance: move replicas off a node holding more than this multiple of
    /// the average count per eligible node.
    pub count_skew_max: Option<f64>,
    pub moves_per_round: usize,
    pub moves_per_node: usize,
    pub rate_mbps: f64,
    pub searches_per_round: usize,
}

impl Default for Options {
    /// A generic whole-node rebalancer over every group.
    fn default() -> Options {
        Options {
            scope: Scope::All,
            sight: Sight::WholeNode,
            watch_dims: Vec::new(),
            fit_dims: Vec::new(),
            choice: Choice::LeastUtilized,
            high_water: HIGH_WATER_DEFAULT,
            rebalance: true,
            hand_off_leaders: true,
            count_skew_max: None,
            moves_per_round: MOVES_PER_ROUND_DEFAULT,
            moves_per_node: MOVES_PER_NODE_DEFAULT,
            rate_mbps: RATE_MBPS_DEFAULT,
            searches_per_round: SEARCHES_PER_ROUND_DEFAULT,
        }
    }
}

/// A rebalancer: stateless between decisions, since all it remembers (its moves in flight) is
/// in the view's transfers.
#[derive(Debug, Clone)]
pub struct Rebalancer {
    options: Options,
}

impl Rebalancer {
    pub fn new(options: Options) -> Rebalancer {
        Rebalancer { options }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The moves to start now: repairs first, then shedding, then count balance.
    pub fn decide(&self, view: &View) -> Vec<Move> {
        let mut round = Round::new(view, &self.options);
        round.repair();
        if self.options.rebalance {
            round.shed_hot();
            if let Some(skew) = self.options.count_skew_max {
                round.balance_counts(skew);
            }
        }
        debug_assert!(round.moves.len() <= self.options.moves_per_round);
        round.moves
    }
}

/// Dimension names resolved against the fleet; every dimension if none is known.
fn resolve_dims(fleet: &Fleet, names: &[String]) -> Vec<usize> {
    let mut dims: Vec<usize> = names
        .iter()
        .filter_map(|name| fleet.dims.get(name))
        .map(|dim| dim.index())
        .collect();
    dims.sort_unstable();
    dims.dedup();
    if dims.is_empty() {
        dims = (0..fleet.dims_count()).collect();
    }
    dims
}

/// The state a new replica arrives in: a follower-like state reached from the initial state in
/// one legal transition, preferring one the group keeps replicas in and one that is not the
/// leader; lowest id among equals.
pub fn arrival_state(model: &StateModel, group: &Group) -> Option<StateId> {
    let candidates = (0..model.states.len())
        .map(|i| StateId(i as u8))
        .filter(|&s| s != model.initial && model.allows(model.initial, s));
    candidates.min_by_key(|&s| {
        let kept = group.counts.get(s.index()).is_some_and(|&count| count > 0);
        (!kept, Some(s) == model.leader, s)
    })
}

/// Load over capacity; a dimension a node lacks is full as soon as anything needs it.
fn ratio(load: f64, capacity: f64) -> f64 {
    if capacity.is_infinite() {
        0.0
    } else if capacity > 0.0 {
        load / capacity
    } else if load > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Whether `node` keeps a partition's replicas apart at every spread level of its group.
fn spread_ok(fleet: &Fleet, group: &Group, node: NodeId, others: &[NodeId]) -> bool {
    let topology = &fleet.topology;
    group.spread.iter().all(|&level| {
        let Some(domain) = topology.ancestor_at(node, level) else {
            return true;
        };
        others
            .iter()
            .all(|&other| topology.ancestor_at(other, level) != Some(domain))
    })
}

/// What a target must satisfy, beyond the group's static filters.
struct Want<'w> {
    part: PartId,
    group: &'w Group,
    heat: &'w [f64],
    /// The partition's other replicas on up nodes, for spread.
    others: &'w [NodeId],
    /// The data is copied (needs a free in-flight slot), not started empty.
    copy: bool,
    /// Must stay below the high-water mark after the move.
    below_high_water: bool,
    /// Count balance: must end with fewer replicas than this.
    count_below: Option<usize>,
}

/// Where the data of a repaired replica comes from.
enum Source {
    Copy(NodeId),
    /// No ready replica on an up node: the new replica starts empty.
    Start,
    /// Every possible source is at its in-flight limit: wait.
    Busy,
}

/// One decision in progress: the load the rebalancer sees, updated by its own moves.
struct Round<'a> {
    view: &'a View<'a>,
    options: &'a Options,
    watch: Vec<usize>,
    fit: Vec<usize>,
    dims: usize,
    /// Seen load, node-major (`load[node * dims + dim]`).
    load: Vec<f64>,
    /// Replicas of managed groups per node (up nodes only).
    count: Vec<usize>,
    /// Managed parts with a replica on each node, in part order.
    on_node: Vec<Vec<PartId>>,
    /// Copies in flight per node, as source or target.
    in_flight: Vec<usize>,
    /// Parts left alone: a copy in flight, or already moved in this decision.
    settled: Vec<bool>,
    moves: Vec<Move>,
    searches_left: usize,
}

impl<'a> Round<'a> {
    fn new(view: &'a View<'a>, options: &'a Options) -> Round<'a> {
        let fleet = view.base;
        let dims = fleet.dims_count();
        let nodes = fleet.topology.nodes.len();
        let parts = view.world.replicas.len().min(view.parts.count());
        let mut round = Round {
            view,
            options,
            watch: resolve_dims(fleet, &options.watch_dims),
            fit: resolve_dims(fleet, &options.fit_dims),
            dims,
            load: vec![0.0; nodes * dims],
            count: vec![0; nodes],
            on_node: vec![Vec::new(); nodes],
            in_flight: vec![0; nodes],
            settled: vec![false; parts],
            moves: Vec::new(),
            searches_left: options.searches_per_round,
        };
        round.observe();
        round
    }

    /// Reads the world: load and counts per node, and this rebalancer's copies in flight.
    fn observe(&mut self) {
        let view = self.view;
        for part in 0..self.settled.len() {
            let (group, _) = view.parts.locate(part);
            let managed = self.manages(group);
            let seen = match self.options.sight {
                Sight::Managed => managed,
                Sight::WholeNode => view.active.get(group.index()).copied().unwrap_or(false),
            };
            for held in &view.world.replicas[part] {
                if self.is_down(held.node) || held.node.index() >= self.count.len() {
                    continue;
                }
                if seen {
                    let heat = self.heat(group, held.state);
                    self.add_load(held.node, heat, 1.0);
                }
                if managed {
                    self.count[held.node.index()] += 1;
                    self.on_node[held.node.index()].push(part);
                }
            }
        }
        for transfer in &view.world.transfers {
            let live = !self.is_down(transfer.source) && !self.is_down(transfer.target);
            if !live || transfer.part >= self.settled.len() {
                continue;
            }
            let (group, _) = view.parts.locate(transfer.part);
            if self.manages(group) {
                self.settled[transfer.part] = true;
                self.bump_in_flight(transfer.source);
                self.bump_in_flight(transfer.target);
            }
        }
    }

    fn manages(&self, group: GroupId) -> bool {
        let active = self.view.active.get(group.index()).copied();
        let in_scope = match self.options.scope {
            Scope::All => true,
            Scope::Product(product) => self
                .view
                .base
                .groups
                .get(group.index())
                .is_some_and(|g| g.product == product),
        };
        active == Some(true) && in_scope
    }

    fn model(&self, group: GroupId) -> Option<&'a StateModel> {
        let fleet = self.view.base;
        let group = fleet.groups.get(group.index())?;
        fleet.products.get(group.product.index())
    }

    /// Nodes the view does not list are taken as down: nothing is placed on what is unknown.
    fn is_down(&self, node: NodeId) -> bool {
        self.view.down.get(node.index()).copied().unwrap_or(true)
    }

    /// Observed heat of one replica of `group` in `state` (empty if the view has none).
    fn heat(&self, group: GroupId, state: StateId) -> &'a [f64] {
        self.view
            .heat
            .get(group.index())
            .and_then(|states| states.get(state.index()))
            .map_or(&[], Vec::as_slice)
    }

    fn add_load(&mut self, node: NodeId, heat: &[f64], sign: f64) {
        let start = node.index() * self.dims;
        if let Some(load) = self.load.get_mut(start..start + self.dims) {
            for (slot, h) in load.iter_mut().zip(heat) {
                *slot += sign * h;
            }
        }
    }

    fn bump_in_flight(&mut self, node: NodeId) {
        if let Some(slot) = self.in_flight.get_mut(node.index()) {
            *slot += 1;
        }
    }

    fn slot_free(&self, node: NodeId) -> bool {
        self.in_flight
            .get(node.index())
            .is_some_and(|&n| n < self.options.moves_per_node)
    }

    fn budget_spent(&self) -> bool {
        self.moves.len() >= self.options.moves_per_round
    }

    /// Seen utilization of `node` over `dims` if `extra` were added: max of load / capacity.
    fn utilization(&self, node: NodeId, dims: &[usize], extra: &[f64]) -> f64 {
        let topology = &self.view.base.topology;
        let capacity = topology.capacity_of(topology.node_domain(node));
        let start = node.index() * self.dims;
        dims.iter()
            .map(|&d| {
                let load = self.load.get(start + d).copied().unwrap_or(0.0);
                let more = extra.get(d).copied().unwrap_or(0.0);
                ratio(load + more, capacity.get(d).copied().unwrap_or(0.0))
            })
            .fold(0.0, f64::max)
    }

    /// Whether `heat` fits in what the rebalancer sees free on `node`, in the fit dimensions.
    fn fits(&self, node: NodeId, heat: &[f64]) -> bool {
        let topology = &self.view.base.topology;
        let capacity = topology.capacity_of(topology.node_domain(node));
        let start = node.index() * self.dims;
        self.fit.iter().all(|&d| {
            let more = heat.get(d).copied().unwrap_or(0.0);
            let load = self.load.get(start + d).copied().unwrap_or(0.0);
            more <= 0.0 || load + more <= capacity.get(d).copied().unwrap_or(0.0)
        })
    }

    fn is_hot(&self, node: NodeId) -> bool {
        self.utilization(node, &self.watch, &[]) > self.options.high_water
    }

    fn eligible(&self, node: NodeId, want: &Want) -> bool {
        let fleet = self.view.base;
        let count_ok = want
            .count_below
            .is_none_or(|limit| self.count.get(node.index()).is_some_and(|&c| c + 1 < limit));
        !self.is_down(node)
            && count_ok
            && want.group.node_allowed(&fleet.topology, node)
            && self.view.world.held_at(want.part, node).is_none()
            && (!want.copy || self.slot_free(node))
            && spread_ok(fleet, want.group, node, want.others)
            && self.fits(node, want.heat)
            && (!want.below_high_water
                || self.utilization(node, &self.watch, want.heat) < self.options.high_water)
    }

    /// The best node for `want`, by the rebalancer's choice rule; ties go to the lowest id.
    fn choose_target(&mut self, want: &Want) -> Option<NodeId> {
        if self.searches_left == 0 {
            return None;
        }
        self.searches_left -= 1;
        let mut best: Option<((f64, f64), NodeId)> = None;
        for node in self.view.base.topology.node_ids() {
            if !self.eligible(node, want) {
                continue;
            }
            if self.options.choice == Choice::FirstFit {
                return Some(node);
            }
            let utilization = self.utilization(node, &self.fit, &[]);
            let key = match want.count_below {
                Some(_) => (self.count[node.index()] as f64, utilization),
                None => (utilization, 0.0),
            };
            if best.is_none_or(|(best_key, _)| key < best_key) {
                best = Some((key, node));
            }
        }
        best.map(|(_, node)| node)
    }

    /// Starts `action` on `part`, moving `heat` from `leaving` (if any) to `target` in the
    /// seen load, and booking in-flight slots for copies.
    fn record(&mut self, part: PartId, action: MoveAction, heat: &[f64], target: NodeId) {
        let (source, leaving) = match &action {
            MoveAction::Copy {
                source, then_drop, ..
            } => (Some(*source), *then_drop),
            MoveAction::HandOff { from, .. } => (None, Some(*from)),
            MoveAction::Start { .. } | MoveAction::Drop { .. } => (None, None),
        };
        debug_assert!(leaving != Some(target), "a move must go somewhere else");
        debug_assert!(source != Some(target), "a copy must go somewhere else");
        self.add_load(target, heat, 1.0);
        if let Some(node) = leaving {
            self.add_load(node, heat, -1.0);
        }
        if let Some(source) = source {
            self.bump_in_flight(source);
            self.bump_in_flight(target);
        }
        let counts_move = !matches!(action, MoveAction::HandOff { .. });
        if counts_move {
            if let Some(c) = self.count.get_mut(target.index()) {
                *c += 1;
            }
            if let Some(c) = leaving.and_then(|node| self.count.get_mut(node.index())) {
                *c = c.saturating_sub(1);
            }
        }
        if let Some(slot) = self.settled.get_mut(part) {
            *slot = true;
        }
        self.moves.push(Move { part, action });
    }

    /// Replicas of `part` on up nodes, except the one on `except`.
    fn others(&self, part: PartId, except: Option<NodeId>) -> Vec<NodeId> {
        self.view.world.replicas[part]
            .iter()
            .filter(|h| Some(h.node) != except && !self.is_down(h.node))
            .map(|h| h.node)
            .collect()
    }
}

/// Repair: re-replicate partitions that have fewer serving replicas than their group asks for.
impl Round<'_> {
    fn repair(&mut self) {
        let fleet = self.view.base;
        for group in &fleet.groups {
            if !self.manages(group.id) {
                continue;
            }
            let Some(model) = fleet.products.get(group.product.index()) else {
                continue;
            };
            let Some(state) = arrival_state(model, group) else {
                continue;
            };
            for part in self.view.parts.of_group(group.id) {
                if self.budget_spent() {
                    return;
                }
                if !self.settled.get(part).copied().unwrap_or(true) {
                    self.repair_part(group, model, part, state);
                }
            }
        }
    }

    /// Adds the replicas `part` lacks, from one source, to distinct targets.
    fn repair_part(&mut self, group: &Group, model: &StateModel, part: PartId, state: StateId) {
        let held = &self.view.world.replicas[part];
        let serving = held
            .iter()
            .filter(|h| h.ready && h.state != model.initial && !self.is_down(h.node))
            .count();
        let missing = group.replicas_per_partition().saturating_sub(serving);
        if missing == 0 {
            return;
        }
        let source = self.pick_source(held, model);
        if matches!(source, Source::Busy) {
            return;
        }
        let heat = self.heat(group.id, state);
        let mut others = self.others(part, None);
        for _ in 0..missing {
            if self.budget_spent() {
                break;
            }
            let want = Want {
                part,
                group,
                heat,
                others: &others,
                copy: matches!(source, Source::Copy(_)),
                below_high_water: false,
                count_below: None,
            };
            let Some(target) = self.choose_target(&want) else {
                break;
            };
            let action = match source {
                Source::Copy(source) => MoveAction::Copy {
                    source,
                    target,
                    state,
                    rate_mbps: self.options.rate_mbps,
                    then_drop: None,
                },
                Source::Start | Source::Busy => MoveAction::Start {
                    node: target,
                    state,
                },
            };
            self.record(part, action, heat, target);
            others.push(target);
            if let Source::Copy(source) = source {
                if !self.slot_free(source) {
                    break;
                }
            }
        }
    }

    /// A ready replica on an up node with an in-flight slot free, followers before the leader,
    /// then by node id.
    fn pick_source(&self, held: &[Held], model: &StateModel) -> Source {
        let mut ready: Vec<&Held> = held
            .iter()
            .filter(|h| h.ready && h.state != model.initial && !self.is_down(h.node))
            .collect();
        if ready.is_empty() {
            return Source::Start;
        }
        ready.sort_by_key(|h| (Some(h.state) == model.leader, h.node));
        ready
            .iter()
            .find(|h| self.slot_free(h.node))
            .map_or(Source::Busy, |h| Source::Copy(h.node))
    }
}

/// Shedding: move load off nodes above the high-water mark.
impl Round<'_> {
    fn shed_hot(&mut self) {
        let mut hot: Vec<(f64, NodeId)> = self
            .view
            .base
            .topology
            .node_ids()
            .filter(|&n| !self.is_down(n) && !self.on_node[n.index()].is_empty())
            .map(|n| (self.utilization(n, &self.watch, &[]), n))
            .filter(|&(u, _)| u > self.options.high_water)
            .collect();
        hot.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, node) in hot {
            if self.budget_spent() {
                return;
            }
            self.shed(node);
        }
    }

    /// The watched dimension in which `node` is most utilized.
    fn breaching_dim(&self, node: NodeId) -> Option<usize> {
        self.watch.iter().copied().max_by(|&a, &b| {
            let ua = self.utilization(node, &[a], &[]);
            let ub = self.utilization(node, &[b], &[]);
            ua.total_cmp(&ub).then(b.cmp(&a))
        })
    }

    /// Managed, unsettled, ready replicas on `node` (leaders or followers), hottest first in
    /// `dim`, ties by part; replicas that add nothing in `dim` are left, as moving them would
    /// not cool the node.
    fn candidates(&self, node: NodeId, dim: usize, leaders: bool) -> Vec<(PartId, Held)> {
        let mut out: Vec<(f64, PartId, Held)> = Vec::new();
        for &part in &self.on_node[node.index()] {
            if self.settled.get(part).copied().unwrap_or(true) {
                continue;
            }
            let (group, _) = self.view.parts.locate(part);
            let leader = self.model(group).and_then(|m| m.leader);
            let Some(held) = self.view.world.held_at(part, node).copied() else {
                continue;
            };
            let is_leader = Some(held.state) == leader;
            let heat = self
                .heat(group, held.state)
                .get(dim)
                .copied()
                .unwrap_or(0.0);
            if held.ready && is_leader == leaders && heat > 0.0 {
                out.push((heat, part, held));
            }
        }
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter()
            .map(|(_, part, held)| (part, held))
            .collect()
    }

    fn shed(&mut self, node: NodeId) {
        let Some(dim) = self.breaching_dim(node) else {
            return;
        };
        if self.options.hand_off_leaders {
            for (part, held) in self.candidates(node, dim, true) {
                if !self.is_hot(node) || self.budget_spent() {
                    return;
                }
                self.hand_off(part, held);
            }
        }
        for (part, held) in self.candidates(node, dim, false) {
            if !self.is_hot(node) || self.budget_spent() || !self.slot_free(node) {
                return;
            }
            self.move_off(part, held, None);
        }
    }

    /// Copies the follower `held` of `part` to the best target and drops it there once landed.
    /// `count_below` makes it a count-balancing move. True if a move was started.
    fn move_off(&mut self, part: PartId, held: Held, count_below: Option<usize>) -> bool {
        let fleet = self.view.base;
        let (group_id, _) = self.view.parts.locate(part);
        let Some(group) = fleet.groups.get(group_id.index()) else {
            return false;
        };
        let heat = self.heat(group_id, held.state);
        let others = self.others(part, Some(held.node));
        let want = Want {
            part,
            group,
            heat,
            others: &others,
            copy: true,
            below_high_water: true,
            count_below,
        };
        let Some(target) = self.choose_target(&want) else {
            return false;
        };
        let action = MoveAction::Copy {
            source: held.node,
            target,
            state: held.state,
            rate_mbps: self.options.rate_mbps,
            then_drop: Some(held.node),
        };
        self.record(part, action, heat, target);
        true
    }

    /// Hands leadership of `part` from `leader` to its coolest follower that stays below the
    /// high-water mark with the leader's extra heat; the cheapest way to cool a node.
    fn hand_off(&mut self, part: PartId, leader: Held) {
        let (group, _) = self.view.parts.locate(part);
        let Some(model) = self.model(group) else {
            return;
        };
        let leader_heat = self.heat(group, leader.state);
        let mut best: Option<(f64, NodeId, Vec<f64>)> = None;
        for follower in &self.view.world.replicas[part] {
            let serving_follower =
                follower.ready && follower.state != model.initial && follower.state != leader.state;
            if follower.node == leader.node || !serving_follower || self.is_down(follower.node) {
                continue;
            }
            let follower_heat = self.heat(group, follower.state);
            let extra: Vec<f64> = (0..self.dims)
                .map(|d| {
                    let lead = leader_heat.get(d).copied().unwrap_or(0.0);
                    (lead - follower_heat.get(d).copied().unwrap_or(0.0)).max(0.0)
                })
                .collect();
            let after = self.utilization(follower.node, &self.watch, &extra);
            let better = best.as_ref().is_none_or(|(u, _, _)| after < *u);
            if after < self.options.high_water && self.fits(follower.node, &extra) && better {
                best = Some((after, follower.node, extra));
            }
        }
        if let Some((_, to, extra)) = best {
            let action = MoveAction::HandOff {
                from: leader.node,
                to,
            };
            self.record(part, action, &extra, to);
        }
    }
}

/// Count balance (Helix-like): no node far above the average number of replicas.
impl<'a> Round<'a> {
    fn balance_counts(&mut self, skew: f64) {
        let fleet = self.view.base;
        let filters = self.distinct_filters();
        let eligible: Vec<NodeId> = fleet
            .topology
            .node_ids()
            .filter(|&n| !self.is_down(n))
            .filter(|&n| filters.iter().any(|g| g.node_allowed(&fleet.topology, n)))
            .collect();
        if eligible.is_empty() {
            return;
        }
        let total: usize = eligible.iter().map(|n| self.count[n.index()]).sum();
        let threshold = skew * total as f64 / eligible.len() as f64;
        let mut crowded: Vec<NodeId> = eligible
            .into_iter()
            .filter(|n| self.count[n.index()] as f64 > threshold)
            .collect();
        crowded.sort_by_key(|n| (std::cmp::Reverse(self.count[n.index()]), *n));
        for node in crowded {
            if self.budget_spent() {
                return;
            }
            self.thin(node, threshold);
        }
    }

    /// One managed group per distinct (selector, regions): fleets have thousands of groups
    /// but few kinds of filter, and every node is checked against each.
    fn distinct_filters(&self) -> Vec<&'a Group> {
        let mut filters: Vec<&'a Group> = Vec::new();
        for group in &self.view.base.groups {
            let known = filters
                .iter()
                .any(|f| f.selector == group.selector && f.regions == group.regions);
            if self.manages(group.id) && !known {
                filters.push(group);
            }
        }
        filters
    }

    /// Moves followers off `node`, lowest part first, until it is at or under `threshold`.
    fn thin(&mut self, node: NodeId, threshold: f64) {
        let parts = self.on_node[node.index()].clone();
        for part in parts {
            let crowded = self.count[node.index()] as f64 > threshold;
            if !crowded || self.budget_spent() || !self.slot_free(node) {
                return;
            }
            if self.settled.get(part).copied().unwrap_or(true) {
                continue;
            }
            let Some(held) = self.view.world.held_at(part, node).copied() else {
                continue;
            };
            let (group, _) = self.view.parts.locate(part);
            let leader = self.model(group).and_then(|m| m.leader);
            if held.ready && Some(held.state) != leader {
                let count_below = self.count[node.index()];
                self.move_off(part, held, Some(count_below));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fleet and a hand-built view for the rebalancers' tests.

    use meridian_model::{Fleet, NodeId, Placement};
    use meridian_planner::path::Resources;

    use crate::strategy::{Move, MoveAction, View};
    use crate::world::{Held, PartIndex, Transfer, World};

    /// Four storage racks of two nodes under one spine (which nobody here can see), and a GPU
    /// rack of three. Nodes are small so a few replicas make them hot.
    pub(crate) const FLEET: &str = "
name: rebalancer-test
topology:
  network:
    levels: [spine, rack, node]
    domains:
      - name: sp1
        capacity: { net_mbps: 2000 }
        children:
          - { name: r1, children: [a1, b1] }
          - { name: r2, children: [a2, b2] }
          - { name: r3, children: [a3, b3] }
          - { name: r4, children: [a4, b4] }
          - { name: r5, children: [g1, g2, g3] }
node_classes:
  small:
    capacity: { cpu: 10, mem_gib: 64, disk_gib: 1000, disk_iops: 10000, disk_mbps: 500, net_mbps: 1000, power_w: 300 }
    labels: { kind: storage }
  gpu:
    capacity: { cpu: 10, mem_gib: 64, disk_gib: 1000, net_mbps: 1000, gpu_mem_gib: 80, power_w: 1000 }
    labels: { gpu: h100 }
nodes:
  - { name: g1, class: gpu }
  - { name: g2, class: gpu }
  - { name: g3, class: gpu }
  - { name: a1, class: small }
  - { name: b1, class: small }
  - { name: a2, class: small }
  - { name: b2, class: small }
  - { name: a3, class: small }
  - { name: b3, class: small }
  - { name: a4, class: small }
  - { name: b4, class: small }
groups:
  - name: ledger
    product: db
    partitions: 2
    size_gib: 10
    spread: [rack]
    selector: { kind: storage }
    heat:
      Leader: { cpu: 2, disk_gib: 10, net_mbps: 40, power_w: 10 }
      Follower: { cpu: 1, disk_gib: 10, net_mbps: 20, power_w: 5 }
  - name: events
    product: stream
    partitions: 6
    size_gib: 10
    selector: { kind: storage }
    heat:
      Leader: { cpu: 1, net_mbps: 200, disk_mbps: 50 }
      Replica: { cpu: 0.5, net_mbps: 150, disk_mbps: 40 }
  - name: logs
    product: stream
    partitions: 6
    counts: { Leader: 1, Replica: 1 }
    size_gib: 1
    selector: { kind: storage }
    heat:
      Leader: { cpu: 0.1 }
      Replica: { cpu: 1.6 }
  - name: kv
    product: db
    partitions: 8
    size_gib: 1
    selector: { kind: storage }
    heat:
      Leader: { cpu: 0.1 }
      Follower: { cpu: 0.1 }
  - name: chat
    product: ai
    partitions: 1
    counts: { Active: 1 }
    size_gib: 100
    selector: { gpu: h100 }
    heat:
      Active: { cpu: 2, gpu_mem_gib: 60, net_mbps: 100 }
  - name: embed
    product: ai
    partitions: 1
    counts: { Active: 1 }
    size_gib: 10
    selector: { gpu: h100 }
    heat:
      Active: { cpu: 1, gpu_mem_gib: 10 }
";

    /// Everything a `View` borrows, owned, with every group inactive until a test says.
    pub(crate) struct Fixture {
        pub fleet: Fleet,
        pub parts: PartIndex,
        pub heat: Vec<Vec<Vec<f64>>>,
        pub active: Vec<bool>,
        pub down: Vec<bool>,
        pub world: World,
        pub steady: Vec<f64>,
    }

    impl Fixture {
        pub(crate) fn new() -> Fixture {
            let fleet = match Fleet::from_yaml(FLEET, "rebalancer-test.yaml") {
                Ok(fleet) => fleet,
                Err(problems) => panic!("the test fleet is invalid:\n{problems}"),
            };
            let world = World::new(&fleet, &Placement::empty(&fleet));
            Fixture {
                parts: PartIndex::new(&fleet),
                heat: fleet.groups.iter().map(|g| g.heat.clone()).collect(),
                active: vec![false; fleet.groups.len()],
                down: vec![false; fleet.topology.nodes.len()],
                steady: vec![0.0; Resources::new(&fleet).count()],
                world,
                fleet,
            }
        }

        pub(crate) fn node(&self, name: &str) -> NodeId {
            self.fleet.topology.node_by_name(name).expect("a test node")
        }

        pub(crate) fn name(&self, node: NodeId) -> &str {
            self.fleet.topology.node_name(node)
        }

        pub(crate) fn part(&self, group: &str, partition: u32) -> usize {
            let group = self.fleet.group_by_name(group).expect("a test group");
            self.parts.id(group, partition)
        }

        pub(crate) fn activate(&mut self, group: &str) {
            let group = self.fleet.group_by_name(group).expect("a test group");
            self.active[group.index()] = true;
        }

        pub(crate) fn kill(&mut self, node: &str) {
            let node = self.node(node);
            self.down[node.index()] = true;
        }

        /// Puts a ready replica of `group`/`partition` on `node` in `state`, and its heat on
        /// every domain above the node in the observed steady load.
        pub(crate) fn place(&mut self, group: &str, partition: u32, node: &str, state: &str) {
            let group_id = self.fleet.group_by_name(group).expect("a test group");
            let product = &self.fleet.products[self.fleet.group(group_id).product.index()];
            let state = product.state(state).expect("a state of the product");
            let node = self.node(node);
            let part = self.parts.id(group_id, partition);
            self.world.replicas[part].push(Held {
                node,
                state,
                ready: true,
            });
            let resources = Resources::new(&self.fleet);
            let heat = &self.heat[group_id.index()][state.index()];
            for &domain in self.fleet.topology.chain(node) {
                for (dim, h) in heat.iter().enumerate() {
                    self.steady[resources.domain(domain, dim)] += h;
                }
            }
        }

        /// A copy of `part` in flight from `source` to `target` (a replica of `state` there,
        /// not ready yet).
        pub(crate) fn copying(&mut self, group: &str, partition: u32, from: &str, to: &str) {
            let part = self.part(group, partition);
            let (source, target) = (self.node(from), self.node(to));
            let state = self.world.replicas[part]
                .iter()
                .find(|h| h.node == source)
                .map(|h| h.state)
                .expect("the source holds the partition");
            self.world.replicas[part].push(Held {
                node: target,
                state,
                ready: false,
            });
            self.world.transfers.push(Transfer {
                part,
                source,
                target,
                bytes_left: 1e9,
                bytes_total: 1e9,
                rate_wanted: 100.0,
                rate: 100.0,
                unit: Vec::new(),
                then_drop: None,
                step: None,
                stalled_s: 0.0,
            });
        }

        pub(crate) fn view(&self) -> View<'_> {
            View {
                t_s: 0.0,
                base: &self.fleet,
                parts: &self.parts,
                heat: &self.heat,
                active: &self.active,
                access: &[],
                down: &self.down,
                world: &self.world,
                steady: &self.steady,
                resources: Resources::new(&self.fleet),
                busy: false,
                in_progress: &[],
            }
        }

        /// Nodes a move touches, by name: (source or hand-off origin, target).
        pub(crate) fn ends(&self, action: &Move) -> (String, String) {
            let (from, to) = match action.action {
                MoveAction::Copy { source, target, .. } => (source, target),
                MoveAction::HandOff { from, to } => (from, to),
                MoveAction::Start { node, .. } | MoveAction::Drop { node } => (node, node),
            };
            (self.name(from).to_string(), self.name(to).to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Fixture;
    use super::*;

    fn generic() -> Rebalancer {
        Rebalancer::new(Options::default())
    }

    /// Ledger p0 on racks r1, r2, r3 with p1 loading b3 and b4: when a3 dies, the repair must
    /// avoid r1 and r2 (spread), the GPU nodes (selector), and pick the emptiest of the rest.
    fn ledger_with_a3_down() -> Fixture {
        let mut fx = Fixture::new();
        fx.activate("ledger");
        fx.place("ledger", 0, "a1", "Leader");
        fx.place("ledger", 0, "a2", "Follower");
        fx.place("ledger", 0, "a3", "Follower");
        fx.place("ledger", 1, "b3", "Leader");
        fx.place("ledger", 1, "b4", "Follower");
        fx.place("ledger", 1, "b1", "Follower");
        fx.kill("a3");
        fx
    }

    #[test]
    fn repair_picks_an_allowed_spread_respecting_least_utilized_node_and_a_ready_follower() {
        let fx = ledger_with_a3_down();
        let moves = generic().decide(&fx.view());
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!(moves[0].part, fx.part("ledger", 0));
        let follower = fx.fleet.products[fx.fleet.groups[0].product.index()].state("Follower");
        match moves[0].action {
            MoveAction::Copy {
                source,
                target,
                state,
                rate_mbps,
                then_drop,
            } => {
                assert_eq!(fx.name(source), "a2", "a ready follower on an up node");
                assert_eq!(fx.name(target), "a4", "r4's empty node");
                assert_eq!(Some(state), follower);
                assert_eq!(rate_mbps, RATE_MBPS_DEFAULT);
                assert_eq!(then_drop, None);
            }
            ref other => panic!("expected a copy, got {other:?}"),
        }
    }

    #[test]
    fn repair_starts_empty_replicas_when_no_ready_copy_survives() {
        let mut fx = ledger_with_a3_down();
        fx.kill("a1");
        fx.kill("a2");
        let moves = generic().decide(&fx.view());
        let part = fx.part("ledger", 0);
        let starts: Vec<&Move> = moves.iter().filter(|m| m.part == part).collect();
        assert_eq!(starts.len(), 3, "{moves:?}");
        let mut racks: Vec<String> = Vec::new();
        for m in starts {
            let MoveAction::Start { node, .. } = m.action else {
                panic!("expected a start, got {m:?}");
            };
            let rack = fx.fleet.topology.level_by_name("rack").expect("rack level");
            let domain = fx.fleet.topology.ancestor_at(node, rack).expect("a rack");
            racks.push(fx.fleet.topology.domain(domain).name.clone());
        }
        racks.sort();
        racks.dedup();
        assert_eq!(racks.len(), 3, "one per rack: {racks:?}");
    }

    #[test]
    fn a_partition_with_a_copy_in_flight_is_left_alone() {
        let mut fx = ledger_with_a3_down();
        fx.copying("ledger", 0, "a2", "b4");
        let moves = generic().decide(&fx.view());
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn arrival_state_is_the_first_step_out_of_the_initial_state() {
        let fx = Fixture::new();
        for (group, expected) in [
            ("ledger", "Follower"),
            ("events", "Replica"),
            ("chat", "Active"),
        ] {
            let id = fx.fleet.group_by_name(group).expect("group");
            let group = fx.fleet.group(id);
            let model = &fx.fleet.products[group.product.index()];
            let state = arrival_state(model, group).map(|s| model.state_name(s).to_string());
            assert_eq!(state.as_deref(), Some(expected));
        }
    }

    #[test]
    fn ratio_treats_missing_capacity_as_full_and_unlimited_as_empty() {
        assert_eq!(ratio(1.0, 0.0), f64::INFINITY);
        assert_eq!(ratio(0.0, 0.0), 0.0);
        assert_eq!(ratio(5.0, f64::INFINITY), 0.0);
        assert_eq!(ratio(5.0, 10.0), 0.5);
    }

    #[test]
    fn a_view_with_missing_tables_gives_no_moves_and_no_panic() {
        let fx = ledger_with_a3_down();
        let mut view = fx.view();
        view.heat = &[];
        view.active = &[];
        assert!(generic().decide(&view).is_empty());
        let mut view = fx.view();
        view.down = &[];
        assert!(
            generic().decide(&view).is_empty(),
            "unknown nodes are not targets"
        );
    }

    #[test]
    fn an_empty_view_gives_no_moves() {
        let fx = Fixture::new();
        assert!(generic().decide(&fx.view()).is_empty());
    }
}
