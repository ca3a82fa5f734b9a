//! Replays a plan independently of the scheduler and checks every invariant.
//!
//! A checker kept apart from the code it checks, like the checkers of TigerBeetle's VOPR: it
//! shares nothing with the scheduler (no ledger, no routes), so a mistake in how the
//! scheduler books heat cannot hide by being repeated here. Everything is recomputed from the
//! fleet model: the steady heat each replica puts on its node's chain, the network path a
//! copy's bytes take, the region link they cross.
//!
//! Events are replayed in time order. At one instant, copies that end come first (a step may
//! rely on a copy that ends as it starts: `[start, end)`), then the steps that start, in the
//! plan's order. Invariants are checked after every event, not only once per instant: the
//! plan's order *is* its meaning (an atomic hand-off exists precisely because a promotion
//! followed by a demotion would hold two leaders in between).
//!
//! A step that cannot be applied at all (it names a replica that is not there, or a node the
//! fleet does not have) is reported and skipped; a step that can be applied but breaks a rule
//! (an illegal transition, a disallowed node, a short booking) is reported and applied, so one
//! mistake does not cascade into reports about everything after it. Bad input never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use meridian_model::placement::{Replica, Slot, UNASSIGNED};
use meridian_model::topology::LEVELS_MAX;
use meridian_model::{DomainId, Fleet, GroupId, NodeId, Placement, StateId, StateModel};

use crate::options::Options;
use crate::plan::{Action, Load, Plan, Resource, Step};

/// Relative slack on loads, limits and times: sums of many heats drift in their last bits.
const TOLERANCE: f64 = 1e-9;
/// Relative slack on a copy's length against its bytes and rate: times get rounded.
const DURATION_TOLERANCE: f64 = 1e-6;
/// Violations kept in one report. A badly broken plan repeats one mistake at every step;
/// the first thousand say all there is to say, and the count of the rest is kept.
pub const VIOLATIONS_MAX: usize = 1000;
/// Copy rates are MB/s.
const BYTES_PER_MB: f64 = 1e6;
/// `net_mbps` and links are in Mb/s, copy rates in MB/s.
const BITS_PER_BYTE: f64 = 8.0;
const SECONDS_PER_HOUR: f64 = 3600.0;
/// No usage row for a cell.
const UNTRACKED: u32 = u32::MAX;

/// Which rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    /// A domain or link over its limit (or over its starting load, where that is higher).
    Capacity,
    /// A copy books less than the path its bytes take needs.
    Loads,
    /// A copy's length does not match its bytes and rate, or its bytes its group's size.
    Duration,
    /// A partition's serving replicas fall below its floor.
    Availability,
    /// Two replicas of one partition in the leader state.
    Leader,
    /// A replica lands on a node its group may not use (selector, regions).
    Residency,
    /// A step the state model, or the replicas present, do not allow.
    Legality,
    /// Steps out of time order, ending before they start, or before what they wait for.
    Ordering,
    /// The plan does not end at the target placement.
    Target,
    /// A copy over one of the user's throttles: rate, copies per node, bytes per hour, windows.
    Throttle,
    /// The current or target placement does not fit the fleet.
    Input,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::Capacity => "capacity",
            Invariant::Loads => "loads",
            Invariant::Duration => "duration",
            Invariant::Availability => "availability",
            Invariant::Leader => "leader",
            Invariant::Residency => "residency",
            Invariant::Legality => "legality",
            Invariant::Ordering => "ordering",
            Invariant::Target => "target",
            Invariant::Throttle => "throttle",
            Invariant::Input => "input",
        };
        f.write_str(name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub time: f64,
    /// The step that broke the rule (its id), if one did.
    pub step: Option<u32>,
    pub invariant: Invariant,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(id) => write!(f, "t={:.3}s step {id} [{}] ", self.time, self.invariant)?,
            None => write!(f, "t={:.3}s [{}] ", self.time, self.invariant)?,
        }
        f.write_str(&self.message)
    }
}

/// One resource's load over the plan: steady heat plus every copy in flight on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub resource: Resource,
    /// E.g. `rack r07 net_mbps` or `link us-east>eu-west`.
    pub name: String,
    /// The fleet's limit (+∞ where none is set). A resource that starts above it is held to
    /// its starting load, `points[0].1`, instead.
    pub limit: f64,
    /// `(time, load)`: the load at the plan's start, then after each instant it changes.
    pub points: Vec<(f64, f64)>,
    /// The highest load at any moment, between the steps of one instant included.
    pub peak: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The first [`VIOLATIONS_MAX`] violations, in the order the replay met them.
    pub violations: Vec<Violation>,
    /// Violations past the first [`VIOLATIONS_MAX`], counted but not kept.
    pub omitted: usize,
    /// Every resource some copy loads, in `Resource` order.
    pub usage: Vec<Usage>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn of(&self, invariant: Invariant) -> impl Iterator<Item = &Violation> + '_ {
        self.violations
            .iter()
            .filter(move |v| v.invariant == invariant)
    }
}

/// Replays `plan` from `current` and reports every invariant it breaks, with the load over
/// time of every resource its copies use. `options` supplies the failed nodes and the
/// throttles the copies must respect.
pub fn replay(
    fleet: &Fleet,
    current: &Placement,
    target: &Placement,
    options: &Options,
    plan: &Plan,
) -> Report {
    let mut replay = Replay::new(fleet, plan, options, true);
    if !replay.load_current(current) {
        return replay.into_report();
    }
    replay.track_usage();
    replay.load_in_flight();
    replay.check_order();
    replay.run(f64::INFINITY);
    replay.check_target(target);
    replay.into_report()
}

/// The replicas present once every step finished by `time` has applied: a copy that ends by
/// `time` has landed, an instantaneous step that starts by `time` has happened, a copy still
/// running has not arrived. Replicas on failed nodes are left out: they are lost. This is the
/// exact state, which a partition may hold more replicas in than it has slots (a new replica
/// that serves before the old one is dropped).
pub fn replicas_at(
    fleet: &Fleet,
    current: &Placement,
    options: &Options,
    plan: &Plan,
    time: f64,
) -> Vec<Replica> {
    let mut replay = Replay::new(fleet, plan, options, false);
    if !replay.load_current(current) {
        return Vec::new();
    }
    replay.run(time);
    replay.landed()
}

/// [`replicas_at`] in slot form, so a re-plan can start from it. Each partition keeps the
/// slots whose node is unchanged; new replicas fill free slots of their own state first, then
/// any free slot. Replicas on failed nodes are gone (they would hold a slot a replacement
/// needs). Where a partition holds more replicas than slots, the ones the plan drops soonest
/// after `time` are left out: they are on their way out. A `current` that does not fit the
/// fleet is returned unchanged.
pub fn apply_until(
    fleet: &Fleet,
    current: &Placement,
    options: &Options,
    plan: &Plan,
    time: f64,
) -> Placement {
    if current.slots.len() != fleet.slot_count {
        return current.clone();
    }
    let mut by_partition: BTreeMap<(GroupId, u32), Vec<Replica>> = BTreeMap::new();
    for replica in replicas_at(fleet, current, options, plan, time) {
        by_partition
            .entry((replica.group, replica.partition))
            .or_default()
            .push(replica);
    }
    let mut placement = current.clone();
    for group in &fleet.groups {
        for partition in 0..group.partitions {
            let mut replicas = by_partition
                .remove(&(group.id, partition))
                .unwrap_or_default();
            let per = group.replicas_per_partition();
            if replicas.len() > per {
                replicas = leave_out_leaving(plan, replicas, per, time);
            }
            let first = group.partition_slot(partition);
            let slots = &mut placement.slots[first..first + per];
            fill_slots(slots, &group.slot_states, &replicas);
        }
    }
    placement
}

/// Keeps the `per` replicas the plan keeps longest after `time` (never dropped first).
fn leave_out_leaving(
    plan: &Plan,
    mut replicas: Vec<Replica>,
    per: usize,
    time: f64,
) -> Vec<Replica> {
    let dropped_at = |replica: &Replica| -> f64 {
        plan.steps
            .iter()
            .filter(|s| s.group == replica.group && s.partition == replica.partition)
            .filter(|s| s.start > time)
            .filter(|s| matches!(s.action, Action::Drop { node, .. } if node == replica.node))
            .map(|s| s.start)
            .fold(f64::INFINITY, f64::min)
    };
    // Stable: among replicas the plan treats alike, the earlier one (slot order) stays.
    replicas.sort_by(|a, b| dropped_at(b).total_cmp(&dropped_at(a)));
    replicas.truncate(per);
    replicas
}

/// Lays one partition's replicas into its slots (see [`apply_until`]).
fn fill_slots(slots: &mut [Slot], slot_states: &[StateId], replicas: &[Replica]) {
    let mut placed = vec![false; replicas.len()];
    let mut fresh: Vec<Slot> = slot_states
        .iter()
        .map(|&state| Slot {
            node: UNASSIGNED,
            state,
        })
        .collect();
    for (k, slot) in slots.iter().enumerate() {
        let kept = (0..replicas.len()).find(|&r| !placed[r] && replicas[r].node.0 == slot.node);
        if let (Some(r), Some(cell)) = (kept, fresh.get_mut(k)) {
            *cell = Slot {
                node: replicas[r].node.0,
                state: replicas[r].state,
            };
            placed[r] = true;
        }
    }
    for same_state in [true, false] {
        for (r, replica) in replicas.iter().enumerate() {
            if placed[r] {
                continue;
            }
            let free = fresh
                .iter_mut()
                .find(|s| s.node == UNASSIGNED && (!same_state || s.state == replica.state));
            if let Some(cell) = free {
                *cell = Slot {
                    node: replica.node.0,
                    state: replica.state,
                };
                placed[r] = true;
            }
        }
    }
    for (slot, cell) in slots.iter_mut().zip(fresh) {
        *slot = cell;
    }
}

/// What a copy must book, recomputed from the topology: `net_mbps` on every network domain
/// from each endpoint up to (not including) their lowest common ancestor, `disk_mbps` on
/// both endpoint nodes, and the region link when the endpoints' regions differ. Dimensions
/// the fleet does not have are skipped.
pub fn required_loads(fleet: &Fleet, source: NodeId, target: NodeId, rate: f64) -> Vec<Load> {
    let topology = &fleet.topology;
    let mut loads = Vec::new();
    if let Some(net) = fleet.dims.get("net_mbps") {
        let up = network_ancestors(fleet, source);
        let down = network_ancestors(fleet, target);
        let common = up.iter().find(|d| down.contains(d)).copied();
        let below = |path: &[DomainId]| -> Vec<DomainId> {
            path.iter()
                .take_while(|&&d| Some(d) != common)
                .copied()
                .collect()
        };
        for domain in below(&up).into_iter().chain(below(&down)) {
            loads.push(Load {
                resource: Resource::Domain {
                    domain,
                    dim: net.index(),
                },
                amount: rate * BITS_PER_BYTE,
            });
        }
    }
    if let Some(disk) = fleet.dims.get("disk_mbps") {
        for node in [source, target] {
            loads.push(Load {
                resource: Resource::Domain {
                    domain: topology.node_domain(node),
                    dim: disk.index(),
                },
                amount: rate,
            });
        }
    }
    let (from, to) = (topology.region_of(source), topology.region_of(target));
    if from != to {
        loads.push(Load {
            resource: Resource::Link { from, to },
            amount: rate * BITS_PER_BYTE,
        });
    }
    loads
}

/// The node's domain and every network-tree domain above it, nearest first.
fn network_ancestors(fleet: &Fleet, node: NodeId) -> Vec<DomainId> {
    let topology = &fleet.topology;
    let mut path = vec![topology.node_domain(node)];
    // Validated trees have no cycles; the bound keeps a broken one from looping forever.
    for _ in 0..=LEVELS_MAX {
        let Some(&last) = path.last() else { break };
        match topology.domain(last).network_parent {
            Some(parent) => path.push(parent),
            None => break,
        }
    }
    path
}

/// E.g. `rack r07 net_mbps` or `link us-east>eu-west`; `None` for a resource the fleet lacks.
pub fn resource_label(fleet: &Fleet, resource: Resource) -> Option<String> {
    let topology = &fleet.topology;
    match resource {
        Resource::Domain { domain, dim } => (domain.index() < topology.domains.len()
            && dim < fleet.dims_count())
        .then(|| topology.describe(domain, &fleet.dims, dim)),
        Resource::Link { from, to } => {
            let name = |r: meridian_model::RegionId| {
                topology.regions.get(r.index()).map(|r| r.name.clone())
            };
            Some(format!("link {}>{}", name(from)?, name(to)?))
        }
    }
}

fn over(load: f64, allowed: f64) -> bool {
    load > allowed + TOLERANCE * allowed.abs().max(1.0)
}

fn later(a: f64, b: f64) -> bool {
    a > b + TOLERANCE * a.abs().max(b.abs()).max(1.0)
}

/// A replica present during the replay.
#[derive(Debug, Clone, Copy)]
struct Held {
    node: NodeId,
    state: StateId,
    /// The copy still filling it (its step's index in the plan), if any.
    copying: Option<usize>,
}

/// A copy in flight.
#[derive(Debug, Clone)]
struct Flight {
    partition: usize,
    source: NodeId,
    target: NodeId,
    start: f64,
    rate: f64,
    /// Cells and amounts it holds: the larger of what it booked and what its path needs.
    loads: Vec<(usize, f64)>,
}

/// A step's partition, checked against the fleet.
#[derive(Debug, Clone, Copy)]
struct At {
    group: GroupId,
    partition: u32,
    /// Index over all partitions of all groups.
    global: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    serving: usize,
    leaders: usize,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    time: f64,
    ends: bool,
    index: usize,
}

/// The arguments of a `Replicate` step.
#[derive(Debug, Clone, Copy)]
struct CopyArgs<'p> {
    source: NodeId,
    target: NodeId,
    state: StateId,
    bytes: f64,
    rate: f64,
    loads: &'p [Load],
}

/// The replay's world and, when `checking`, its findings. Loads live in one array of cells:
/// `domain * dims + dim` for domains, then `domains * dims + from * regions + to` for links.
struct Replay<'a> {
    fleet: &'a Fleet,
    plan: &'a Plan,
    options: &'a Options,
    checking: bool,
    failed: Vec<bool>,
    /// First global partition index of each group.
    partition_base: Vec<usize>,
    partitions: Vec<Vec<Held>>,
    /// Serving replicas each partition keeps: min(min_serving, serving at the start).
    floor: Vec<usize>,
    /// Partitions that start short of replicas: their copies restore redundancy.
    short: Vec<bool>,
    load: Vec<f64>,
    limit: Vec<f64>,
    allowed: Vec<f64>,
    flights: BTreeMap<usize, Flight>,
    /// Transition bursts held until their step ends: cells and amounts.
    bursts: BTreeMap<usize, Vec<(usize, f64)>>,
    skipped: Vec<bool>,
    /// Cells changed by the event being applied, with their deltas.
    touched: Vec<(usize, f64)>,
    usage: Vec<Usage>,
    usage_of_cell: Vec<u32>,
    time: f64,
    step: Option<u32>,
    /// What the event being applied does, for capacity reports.
    cause: String,
    violations: Vec<Violation>,
    omitted: usize,
    /// `options.in_flight` is in `load` (only when checking a whole plan).
    in_flight_loaded: bool,
}

impl<'a> Replay<'a> {
    fn new(fleet: &'a Fleet, plan: &'a Plan, options: &'a Options, checking: bool) -> Self {
        let topology = &fleet.topology;
        let mut failed = vec![false; topology.nodes.len()];
        for node in &options.failed {
            if let Some(flag) = failed.get_mut(node.index()) {
                *flag = true;
            }
        }
        let mut partition_base = Vec::with_capacity(fleet.groups.len());
        let mut partitions = 0;
        for group in &fleet.groups {
            partition_base.push(partitions);
            partitions += group.partitions as usize;
        }
        let mut limit = fleet.limit.clone();
        limit.extend_from_slice(&topology.link_net_mbps);
        let cells = limit.len();
        Replay {
            fleet,
            plan,
            options,
            checking,
            failed,
            partition_base,
            partitions: vec![Vec::new(); partitions],
            floor: vec![0; partitions],
            short: vec![false; partitions],
            load: vec![0.0; cells],
            allowed: limit.clone(),
            limit,
            flights: BTreeMap::new(),
            bursts: BTreeMap::new(),
            skipped: vec![false; plan.steps.len()],
            touched: Vec::new(),
            usage: Vec::new(),
            usage_of_cell: vec![UNTRACKED; cells],
            time: plan.start,
            step: None,
            cause: String::new(),
            violations: Vec::new(),
            omitted: 0,
            in_flight_loaded: false,
        }
    }

    fn into_report(self) -> Report {
        Report {
            violations: self.violations,
            omitted: self.omitted,
            usage: self.usage,
        }
    }

    fn report(&mut self, invariant: Invariant, message: String) {
        if !self.checking {
            return;
        }
        if self.violations.len() >= VIOLATIONS_MAX {
            self.omitted += 1;
            return;
        }
        self.violations.push(Violation {
            time: self.time,
            step: self.step,
            invariant,
            message,
        });
    }

    // ----- names -------------------------------------------------------------------------

    fn node_name(&self, node: NodeId) -> &'a str {
        self.fleet.topology.node_name(node)
    }

    fn state_name(&self, group: GroupId, state: StateId) -> &'a str {
        self.fleet.product_of(group).state_name(state)
    }

    fn label(&self, at: At) -> String {
        format!("{}/{}", self.fleet.group(at.group).name, at.partition)
    }

    fn cell_name(&self, cell: usize) -> String {
        self.resource_of(cell)
            .and_then(|r| resource_label(self.fleet, r))
            .unwrap_or_else(|| format!("resource #{cell}"))
    }

    // ----- cells -------------------------------------------------------------------------

    fn cell_of(&self, resource: Resource) -> Option<usize> {
        let topology = &self.fleet.topology;
        let dims = self.fleet.dims_count();
        let regions = topology.regions.len();
        match resource {
            Resource::Domain { domain, dim } => (domain.index() < topology.domains.len()
                && dim < dims)
                .then(|| domain.index() * dims + dim),
            Resource::Link { from, to } => (from.index() < regions && to.index() < regions)
                .then(|| topology.domains.len() * dims + from.index() * regions + to.index()),
        }
    }

    fn resource_of(&self, cell: usize) -> Option<Resource> {
        let topology = &self.fleet.topology;
        let dims = self.fleet.dims_count().max(1);
        let regions = topology.regions.len().max(1);
        let domain_cells = topology.domains.len() * self.fleet.dims_count();
        if cell < domain_cells {
            return Some(Resource::Domain {
                domain: DomainId((cell / dims) as u32),
                dim: cell % dims,
            });
        }
        let link = cell - domain_cells;
        (link < regions * regions).then(|| Resource::Link {
            from: meridian_model::RegionId((link / regions) as u16),
            to: meridian_model::RegionId((link % regions) as u16),
        })
    }

    fn shift(&mut self, cell: usize, delta: f64) {
        if let Some(load) = self.load.get_mut(cell) {
            *load += delta;
            self.touched.push((cell, delta));
        }
    }

    /// Adds (`sign` 1) or removes (-1) one replica's steady heat on its node's whole chain.
    fn heat(&mut self, group: GroupId, node: NodeId, state: StateId, sign: f64) {
        let fleet = self.fleet;
        let dims = fleet.dims_count();
        let Some(heat) = fleet.group(group).heat.get(state.index()) else {
            return;
        };
        for &domain in fleet.topology.chain(node) {
            for (dim, &amount) in heat.iter().enumerate().take(dims) {
                if amount != 0.0 {
                    self.shift(domain.index() * dims + dim, sign * amount);
                }
            }
        }
    }

    // ----- the starting placement ----------------------------------------------------------

    /// Loads the starting placement; `false` when it does not fit the fleet at all.
    fn load_current(&mut self, current: &Placement) -> bool {
        let fleet = self.fleet;
        if current.slots.len() != fleet.slot_count {
            self.report(
                Invariant::Input,
                format!(
                    "the current placement has {} slots, the fleet {}",
                    current.slots.len(),
                    fleet.slot_count
                ),
            );
            return false;
        }
        for group in &fleet.groups {
            for partition in 0..group.partitions {
                let at = At {
                    group: group.id,
                    partition,
                    global: self.partition_base[group.id.index()] + partition as usize,
                };
                let first = group.partition_slot(partition);
                for slot in &current.slots[first..first + group.replicas_per_partition()] {
                    self.load_slot(at, *slot);
                }
                let model = fleet.product_of(group.id);
                let serving = self.counts(at).serving;
                self.floor[at.global] = serving.min(model.min_serving as usize);
                self.short[at.global] =
                    self.partitions[at.global].len() < group.replicas_per_partition();
            }
        }
        self.touched.clear();
        for (allowed, load) in self.allowed.iter_mut().zip(&self.load) {
            *allowed = allowed.max(*load);
        }
        true
    }

    /// An earlier plan's copies still running hold their loads until they end. They are not
    /// this plan's to check (they may have been booked against a lower load), but nothing this
    /// plan books may count on their room.
    fn load_in_flight(&mut self) {
        self.in_flight_loaded = true;
        let resources = crate::path::Resources::new(self.fleet);
        for flight in &self.options.in_flight {
            for load in &flight.loads {
                self.load[resources.index(load.resource)] += load.amount;
            }
        }
    }

    /// Gives back what in-flight copies ending by `time` held.
    fn release_in_flight(&mut self, time: f64, released: &mut [bool]) {
        if !self.in_flight_loaded {
            return;
        }
        let resources = crate::path::Resources::new(self.fleet);
        for (flight, done) in self.options.in_flight.iter().zip(released.iter_mut()) {
            if !*done && flight.until <= time {
                *done = true;
                for load in &flight.loads {
                    self.load[resources.index(load.resource)] -= load.amount;
                }
            }
        }
    }

    fn load_slot(&mut self, at: At, slot: Slot) {
        let Some(node) = slot.node() else { return };
        let model = self.fleet.product_of(at.group);
        if node.index() >= self.fleet.topology.nodes.len()
            || slot.state.index() >= model.states.len()
        {
            let message = format!(
                "the current placement puts a replica of {} on node #{} in state #{}, which the fleet does not have",
                self.label(at),
                node.0,
                slot.state.0
            );
            self.report(Invariant::Input, message);
            return;
        }
        if self.failed[node.index()] {
            return; // Lost with its node: no heat, not serving, not a source.
        }
        if self.find(at.global, node).is_some() {
            let message = format!(
                "the current placement has two replicas of {} on {}",
                self.label(at),
                self.node_name(node)
            );
            self.report(Invariant::Input, message);
            return;
        }
        self.partitions[at.global].push(Held {
            node,
            state: slot.state,
            copying: None,
        });
        self.heat(at.group, node, slot.state, 1.0);
    }

    /// One usage row per resource any copy loads (as booked or as its path needs).
    fn track_usage(&mut self) {
        let fleet = self.fleet;
        let nodes = fleet.topology.nodes.len();
        let mut resources = BTreeSet::new();
        for step in &self.plan.steps {
            resources.extend(step.burst.iter().map(|l| l.resource));
            let Action::Replicate {
                source,
                target,
                loads,
                ..
            } = &step.action
            else {
                continue;
            };
            resources.extend(loads.iter().map(|l| l.resource));
            if source.index() < nodes && target.index() < nodes && source != target {
                let needed = required_loads(fleet, *source, *target, 1.0);
                resources.extend(needed.iter().map(|l| l.resource));
            }
        }
        for resource in resources {
            let Some(cell) = self.cell_of(resource) else {
                continue;
            };
            self.usage_of_cell[cell] = self.usage.len() as u32;
            self.usage.push(Usage {
                resource,
                name: self.cell_name(cell),
                limit: self.limit[cell],
                points: vec![(self.plan.start, self.load[cell])],
                peak: self.load[cell],
            });
        }
    }

    // ----- the replay ----------------------------------------------------------------------

    /// Applies every event at or before `until`, in order.
    fn run(&mut self, until: f64) {
        let plan = self.plan;
        let mut events = Vec::with_capacity(plan.steps.len() * 2);
        for (index, step) in plan.steps.iter().enumerate() {
            if !(step.start.is_finite() && step.end.is_finite()) {
                self.skipped[index] = true;
                continue;
            }
            events.push(Event {
                time: step.start,
                ends: false,
                index,
            });
            let lasts = matches!(step.action, Action::Replicate { .. }) || !step.burst.is_empty();
            if lasts && step.end > step.start {
                events.push(Event {
                    time: step.end,
                    ends: true,
                    index,
                });
            }
        }
        events.sort_by(|a, b| {
            a.time
                .total_cmp(&b.time)
                .then(b.ends.cmp(&a.ends))
                .then(a.index.cmp(&b.index))
        });
        let mut released = vec![false; self.options.in_flight.len()];
        for event in events {
            if event.time > until {
                break;
            }
            self.release_in_flight(event.time, &mut released);
            self.time = event.time;
            if event.ends {
                self.end(event.index);
            } else {
                self.start(event.index);
            }
        }
    }

    fn locate(&mut self, step: &Step) -> Option<At> {
        let fleet = self.fleet;
        let Some(group) = fleet.groups.get(step.group.index()) else {
            let message = format!(
                "names group #{}, which the fleet does not have",
                step.group.0
            );
            self.report(Invariant::Legality, message);
            return None;
        };
        if step.partition >= group.partitions {
            let message = format!(
                "names partition {} of {}, which has {}",
                step.partition, group.name, group.partitions
            );
            self.report(Invariant::Legality, message);
            return None;
        }
        Some(At {
            group: group.id,
            partition: step.partition,
            global: self.partition_base[group.id.index()] + step.partition as usize,
        })
    }

    fn start(&mut self, index: usize) {
        let plan = self.plan;
        let step = &plan.steps[index];
        self.step = Some(step.id);
        let Some(at) = self.locate(step) else {
            self.skipped[index] = true;
            return;
        };
        let before = self.counts(at);
        let applied = match step.action {
            Action::Replicate {
                source,
                target,
                state,
                bytes,
                rate,
                ref loads,
            } => {
                let copy = CopyArgs {
                    source,
                    target,
                    state,
                    bytes,
                    rate,
                    loads,
                };
                self.replicate(index, at, copy)
            }
            Action::Start { node, state } => self.start_replica(at, node, state),
            Action::Transition { node, from, to } => self.transition(at, node, from, to),
            Action::HandOff {
                from,
                to,
                demote_to,
                promote_from,
            } => self.hand_off(at, (from, to), demote_to, promote_from),
            Action::Drop { node, from } => self.drop_replica(at, node, from),
        };
        if !applied {
            self.skipped[index] = true;
        } else {
            self.start_burst(index, at);
        }
        self.settle();
        self.judge_partition(at, before);
    }

    /// The bursts a step's transitions must book (`transition_heat`), as (cell, amount), and
    /// how long they last.
    fn required_burst(&self, step: &Step) -> (Vec<(usize, f64)>, f64) {
        let fleet = self.fleet;
        let group = fleet.group(step.group);
        let initial = fleet.product_of(step.group).initial;
        let leader = fleet.product_of(step.group).leader;
        let transitions: Vec<(NodeId, StateId, StateId)> = match step.action {
            Action::Replicate { .. } => Vec::new(),
            Action::Start { node, state } => vec![(node, initial, state)],
            Action::Transition { node, from, to } => vec![(node, from, to)],
            Action::HandOff {
                from,
                to,
                demote_to,
                promote_from,
            } => match leader {
                Some(leader) => vec![(to, promote_from, leader), (from, leader, demote_to)],
                None => Vec::new(),
            },
            Action::Drop { node, from } => vec![(node, from, initial)],
        };
        let dims = fleet.dims_count();
        let mut cells: Vec<(usize, f64)> = Vec::new();
        let mut seconds = 0.0f64;
        for (node, from, to) in transitions {
            let Some(burst) = group.burst(from, to) else {
                continue;
            };
            if node.index() >= fleet.topology.nodes.len() {
                continue;
            }
            seconds = seconds.max(burst.seconds);
            for &domain in fleet.topology.chain(node) {
                for (dim, &amount) in burst.heat.iter().enumerate().take(dims) {
                    if amount != 0.0 {
                        cells.push((domain.index() * dims + dim, amount));
                    }
                }
            }
        }
        cells.sort_by_key(|c| c.0);
        let mut merged: Vec<(usize, f64)> = Vec::new();
        for (cell, amount) in cells {
            match merged.last_mut() {
                Some(last) if last.0 == cell => last.1 += amount,
                _ => merged.push((cell, amount)),
            }
        }
        (merged, seconds)
    }

    /// Books what a step's transitions burst for its duration; checks it books at least what
    /// the fleet declares, for as long.
    fn start_burst(&mut self, index: usize, at: At) {
        let step = &self.plan.steps[index];
        let (required, seconds) = self.required_burst(step);
        let mut held: Vec<(usize, f64)> = Vec::new();
        for load in &step.burst {
            if let Some(cell) = self.cell_of(load.resource) {
                held.push((cell, load.amount));
            }
        }
        for &(cell, amount) in &required {
            let booked: f64 = held.iter().filter(|h| h.0 == cell).map(|h| h.1).sum();
            if later(amount, booked) {
                let message = format!(
                    "{}: books {booked:.3} of the {amount:.3} its transition bursts on {}",
                    self.label(at),
                    self.cell_name(cell)
                );
                self.report(Invariant::Loads, message);
                held.push((cell, amount - booked));
            }
        }
        if !required.is_empty()
            && ((step.end - step.start) - seconds).abs() > 1e-6 * seconds.max(1.0)
        {
            let message = format!(
                "{}: its burst lasts {:.3} s, the fleet declares {seconds:.3} s",
                self.label(at),
                step.end - step.start
            );
            self.report(Invariant::Duration, message);
        }
        if held.is_empty() || step.end <= step.start {
            return;
        }
        self.cause = format!("the burst of {}", self.label(at));
        for &(cell, amount) in &held {
            self.shift(cell, amount);
        }
        self.bursts.insert(index, held);
    }

    fn end(&mut self, index: usize) {
        if let Some(held) = self.bursts.remove(&index) {
            for (cell, amount) in held {
                self.shift(cell, -amount);
            }
            self.settle();
            return;
        }
        let Some(flight) = self.flights.remove(&index) else {
            return; // Skipped at its start.
        };
        let step = &self.plan.steps[index];
        self.step = Some(step.id);
        let at = At {
            group: step.group,
            partition: step.partition,
            global: flight.partition,
        };
        self.cause = format!(
            "the copy of {} to {} ending",
            self.label(at),
            self.node_name(flight.target)
        );
        let before = self.counts(at);
        self.land(index, flight);
        self.settle();
        self.judge_partition(at, before);
    }

    /// A copy finishes: its replica serves and its transient loads are released.
    fn land(&mut self, index: usize, flight: Flight) {
        if let Some(held) = self.partitions[flight.partition]
            .iter_mut()
            .find(|h| h.copying == Some(index))
        {
            held.copying = None;
        }
        for &(cell, amount) in &flight.loads {
            self.shift(cell, -amount);
        }
    }

    // ----- checks after every event ----------------------------------------------------------

    fn counts(&self, at: At) -> Counts {
        let model = self.fleet.product_of(at.group);
        let held = &self.partitions[at.global];
        Counts {
            serving: held
                .iter()
                .filter(|h| h.copying.is_none() && h.state != model.initial)
                .count(),
            leaders: held
                .iter()
                .filter(|h| Some(h.state) == model.leader)
                .count(),
        }
    }

    /// Records usage and checks capacity on every cell the event changed (by its net change:
    /// a hand-off takes heat off a rack and puts some back within one event).
    fn settle(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_by_key(|&(cell, _)| cell);
        let mut i = 0;
        while i < touched.len() {
            let cell = touched[i].0;
            let mut delta = 0.0;
            while i < touched.len() && touched[i].0 == cell {
                delta += touched[i].1;
                i += 1;
            }
            self.record(cell);
            if delta > 0.0 && over(self.load[cell], self.allowed[cell]) {
                let message = format!(
                    "{} carries {:.3}, over its limit {:.3}{}, with {}",
                    self.cell_name(cell),
                    self.load[cell],
                    self.allowed[cell],
                    if self.allowed[cell] > self.limit[cell] {
                        " (its starting load: it started over the fleet's limit)"
                    } else {
                        ""
                    },
                    self.cause
                );
                self.report(Invariant::Capacity, message);
            }
        }
        touched.clear();
        self.touched = touched;
    }

    fn record(&mut self, cell: usize) {
        let index = self.usage_of_cell[cell];
        if index == UNTRACKED {
            return;
        }
        let (time, load) = (self.time, self.load[cell]);
        let usage = &mut self.usage[index as usize];
        usage.peak = usage.peak.max(load);
        // One point per instant (its last load), but the starting point stays as it is: it
        // is what a resource that starts over its limit is held to.
        let starting_only = usage.points.len() <= 1;
        match usage.points.last_mut() {
            Some(last) if last.0 == time && !starting_only => last.1 = load,
            _ => usage.points.push((time, load)),
        }
    }

    fn judge_partition(&mut self, at: At, before: Counts) {
        let after = self.counts(at);
        let floor = self.floor[at.global];
        if after.serving < before.serving && after.serving < floor {
            let model = self.fleet.product_of(at.group);
            let message = format!(
                "{} has {} serving replica(s), below its floor of {floor} (min_serving {}), after {}",
                self.label(at),
                after.serving,
                model.min_serving,
                self.cause
            );
            self.report(Invariant::Availability, message);
        }
        if after.leaders > 1 && after.leaders > before.leaders {
            let model = self.fleet.product_of(at.group);
            let nodes: Vec<&str> = self.partitions[at.global]
                .iter()
                .filter(|h| Some(h.state) == model.leader)
                .map(|h| self.node_name(h.node))
                .collect();
            let leader = model.leader.map_or("", |s| model.state_name(s));
            let message = format!(
                "{} has {} replicas in {leader} at once ({}), after {}",
                self.label(at),
                after.leaders,
                nodes.join(", "),
                self.cause
            );
            self.report(Invariant::Leader, message);
        }
    }

    // ----- reference checks shared by every action --------------------------------------------

    fn node(&mut self, node: NodeId, role: &str) -> Option<NodeId> {
        if node.index() < self.fleet.topology.nodes.len() {
            return Some(node);
        }
        let message = format!(
            "its {role} is node #{}, which the fleet does not have",
            node.0
        );
        self.report(Invariant::Legality, message);
        None
    }

    /// Whether `node` is up; a failed node is reported: it can be no step's subject.
    fn alive(&mut self, node: NodeId, role: &str) -> bool {
        if !self.failed[node.index()] {
            return true;
        }
        let message = format!(
            "its {role} {} has failed: its replicas are lost, never a source, never dropped",
            self.node_name(node)
        );
        self.report(Invariant::Legality, message);
        false
    }

    fn state(&mut self, model: &StateModel, state: StateId, role: &str) -> Option<StateId> {
        if state.index() < model.states.len() {
            return Some(state);
        }
        let message = format!(
            "its {role} is state #{}, which product {} does not have",
            state.0, model.name
        );
        self.report(Invariant::Legality, message);
        None
    }

    fn find(&self, global: usize, node: NodeId) -> Option<usize> {
        self.partitions[global].iter().position(|h| h.node == node)
    }

    /// The replica of the partition on `node`, settled (not still arriving) in `state`.
    fn held(&mut self, at: At, node: NodeId, state: StateId, verb: &str) -> Option<usize> {
        let (label, name) = (self.label(at), self.node_name(node));
        let Some(i) = self.find(at.global, node) else {
            let message = format!("{verb} the replica of {label} on {name}, but there is none");
            self.report(Invariant::Legality, message);
            return None;
        };
        let held = self.partitions[at.global][i];
        if let Some(copy) = held.copying {
            let message = format!(
                "{verb} the replica of {label} on {name}, which is still being copied (step {})",
                self.plan.steps[copy].id
            );
            self.report(Invariant::Legality, message);
            return None;
        }
        if held.state != state {
            let message = format!(
                "{verb} the replica of {label} on {name} as {}, but it is {}",
                self.state_name(at.group, state),
                self.state_name(at.group, held.state)
            );
            self.report(Invariant::Legality, message);
            return None;
        }
        Some(i)
    }

    fn legal(&mut self, at: At, from: StateId, to: StateId) {
        let model = self.fleet.product_of(at.group);
        if !model.allows(from, to) {
            let message = format!(
                "{}: product {} has no transition {}>{} (for {})",
                self.label(at),
                model.name,
                model.state_name(from),
                model.state_name(to),
                self.cause
            );
            self.report(Invariant::Legality, message);
        }
    }

    fn check_residency(&mut self, at: At, node: NodeId) {
        let fleet = self.fleet;
        let group = fleet.group(at.group);
        if group.node_allowed(&fleet.topology, node) {
            return;
        }
        let region = fleet.topology.region_of(node);
        let region = fleet
            .topology
            .regions
            .get(region.index())
            .map_or("?", |r| r.name.as_str());
        let regions: Vec<&str> = group
            .regions
            .iter()
            .flatten()
            .filter_map(|r| fleet.topology.regions.get(r.index()))
            .map(|r| r.name.as_str())
            .collect();
        let selector: Vec<String> = group
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let message = format!(
            "puts a replica of {} on {} (region {region}), which its group may not use (regions [{}], selector [{}])",
            self.label(at),
            self.node_name(node),
            regions.join(", "),
            selector.join(", ")
        );
        self.report(Invariant::Residency, message);
    }

    /// The in-flight copy reading from `node` in this partition, if any.
    fn reader_of(&self, global: usize, node: NodeId) -> Option<u32> {
        self.flights
            .iter()
            .find(|(_, f)| f.partition == global && f.source == node)
            .map(|(&index, _)| self.plan.steps[index].id)
    }

    fn check_not_read(&mut self, at: At, node: NodeId, what: &str) {
        if let Some(id) = self.reader_of(at.global, node) {
            let message = format!(
                "{what} {} of {} while copy step {id} still reads from it",
                self.node_name(node),
                self.label(at)
            );
            self.report(Invariant::Legality, message);
        }
    }

    // ----- actions -----------------------------------------------------------------------------

    fn replicate(&mut self, index: usize, at: At, copy: CopyArgs) -> bool {
        let model = self.fleet.product_of(at.group);
        let source = self.node(copy.source, "source");
        let target = self.node(copy.target, "target");
        let state = self.state(model, copy.state, "arrival state");
        let (Some(source), Some(target), Some(state)) = (source, target, state) else {
            return false;
        };
        self.cause = format!(
            "the copy of {} from {} to {} (as {})",
            self.label(at),
            self.node_name(source),
            self.node_name(target),
            model.state_name(state)
        );
        if !self.alive(target, "target") {
            return false;
        }
        if source == target {
            let message = format!("copies {} onto its own source", self.label(at));
            self.report(Invariant::Legality, message);
            return false;
        }
        if let Some(i) = self.find(at.global, target) {
            let held = self.partitions[at.global][i];
            let message = format!(
                "copies {} to {}, which already holds a replica of it ({})",
                self.label(at),
                self.node_name(target),
                model.state_name(held.state)
            );
            self.report(Invariant::Legality, message);
            return false;
        }
        if self.alive(source, "source") {
            self.check_source(at, source);
        }
        self.legal(at, model.initial, state);
        self.check_residency(at, target);
        self.check_duration(index, copy);
        let loads = self.effective_loads(source, target, copy.rate, copy.loads);
        self.check_throttles(index, at, copy);
        self.partitions[at.global].push(Held {
            node: target,
            state,
            copying: Some(index),
        });
        self.heat(at.group, target, state, 1.0);
        for &(cell, amount) in &loads {
            self.shift(cell, amount);
        }
        let flight = Flight {
            partition: at.global,
            source,
            target,
            start: self.plan.steps[index].start,
            rate: copy.rate,
            loads,
        };
        if self.plan.steps[index].end > self.plan.steps[index].start {
            self.flights.insert(index, flight);
        } else {
            // Nothing to copy (or a copy that claims no time): it lands as it starts.
            self.land(index, flight);
        }
        true
    }

    fn check_source(&mut self, at: At, source: NodeId) {
        let model = self.fleet.product_of(at.group);
        let (label, name) = (self.label(at), self.node_name(source));
        let problem = match self
            .find(at.global, source)
            .map(|i| self.partitions[at.global][i])
        {
            None => Some(format!("its source {name} holds no replica of {label}")),
            Some(held) if held.copying.is_some() => {
                Some(format!("its source {name} is itself still being copied"))
            }
            Some(held) if held.state == model.initial => Some(format!(
                "its source {name} is in {}: it does not serve",
                model.state_name(held.state)
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            self.report(Invariant::Legality, message);
        }
    }

    fn check_duration(&mut self, index: usize, copy: CopyArgs) {
        let step = &self.plan.steps[index];
        let group = self.fleet.group(step.group);
        let size = group.size_bytes();
        if !(copy.bytes.is_finite() && (copy.bytes - size).abs() <= TOLERANCE * size.max(1.0)) {
            let message = format!(
                "copies {} bytes, but a replica of {} is {size} bytes",
                copy.bytes, group.name
            );
            self.report(Invariant::Duration, message);
        }
        if !(copy.rate.is_finite() && copy.rate > 0.0) {
            let message = format!("runs at {} MB/s: a rate is a finite number > 0", copy.rate);
            self.report(Invariant::Duration, message);
            return;
        }
        let expected = copy.bytes / (copy.rate * BYTES_PER_MB);
        let took = step.end - step.start;
        let slack = DURATION_TOLERANCE * expected.abs() + TOLERANCE * step.end.abs().max(1.0);
        // Written so that a NaN length (from a NaN time) fails too.
        let matches = (took - expected).abs() <= slack;
        if !matches {
            let message = format!(
                "takes {took:.6}s, but {} bytes at {} MB/s take {expected:.6}s",
                copy.bytes, copy.rate
            );
            self.report(Invariant::Duration, message);
        }
    }

    /// What the copy holds on each cell: the larger of its booking and its path's need.
    /// Short bookings are reported; counting the need keeps the capacity check honest anyway.
    fn effective_loads(
        &mut self,
        source: NodeId,
        target: NodeId,
        rate: f64,
        declared: &[Load],
    ) -> Vec<(usize, f64)> {
        let mut booked: BTreeMap<usize, f64> = BTreeMap::new();
        for load in declared {
            let Some(cell) = self.cell_of(load.resource) else {
                let message = format!("books {:?}, which the fleet does not have", load.resource);
                self.report(Invariant::Loads, message);
                continue;
            };
            if !(load.amount.is_finite() && load.amount >= 0.0) {
                let message = format!(
                    "books {} on {}: an amount is a finite number ≥ 0",
                    load.amount,
                    self.cell_name(cell)
                );
                self.report(Invariant::Loads, message);
                continue;
            }
            *booked.entry(cell).or_default() += load.amount;
        }
        let mut effective = booked.clone();
        if rate.is_finite() && rate > 0.0 {
            for need in required_loads(self.fleet, source, target, rate) {
                let Some(cell) = self.cell_of(need.resource) else {
                    continue;
                };
                let have = booked.get(&cell).copied().unwrap_or(0.0);
                if have < need.amount * (1.0 - TOLERANCE) {
                    let message = format!(
                        "books {have:.3} on {}, but {} at {rate} MB/s needs {:.3} there",
                        self.cell_name(cell),
                        self.cause,
                        need.amount
                    );
                    self.report(Invariant::Loads, message);
                }
                let held = effective.entry(cell).or_default();
                *held = held.max(need.amount);
            }
        }
        effective.into_iter().collect()
    }

    /// The user's throttles, checked before the copy joins the flights in the air.
    fn check_throttles(&mut self, index: usize, at: At, copy: CopyArgs) {
        let options = self.options;
        let rate = copy.rate;
        if later(rate, options.rate_max) {
            let message = format!("runs at {rate} MB/s, above rate_max {}", options.rate_max);
            self.report(Invariant::Throttle, message);
        }
        // A crawl is how the planner breaks a deadlock (docs/planner.md): allowed only when
        // nothing that started earlier is still in flight, so nothing could free more room.
        let rate_min = options.rate_min.min(options.rate_max);
        let start = self.plan.steps[index].start;
        let earlier = self.flights.values().filter(|f| f.start < start).count();
        if later(rate_min, rate) && earlier > 0 {
            let message = format!(
                "runs at {rate} MB/s, below rate_min {rate_min}, while {earlier} earlier copies are in flight (a crawl only breaks a deadlock)"
            );
            self.report(Invariant::Throttle, message);
        }
        for node in [copy.source, copy.target] {
            let moves = 1 + self
                .flights
                .values()
                .filter(|f| f.source == node || f.target == node)
                .count();
            if moves > options.moves_per_node_max as usize {
                let message = format!(
                    "makes {moves} copies in flight touching {}, over moves_per_node_max {}",
                    self.node_name(node),
                    options.moves_per_node_max
                );
                self.report(Invariant::Throttle, message);
            }
        }
        if let Some(max) = options.bytes_per_hour_max {
            let total: f64 = rate + self.flights.values().map(|f| f.rate).sum::<f64>();
            let per_hour = total * BYTES_PER_MB * SECONDS_PER_HOUR;
            if later(per_hour, max) {
                let message = format!(
                    "brings the copies in flight to {total} MB/s = {per_hour:.0} bytes/hour, over bytes_per_hour_max {max}"
                );
                self.report(Invariant::Throttle, message);
            }
        }
        self.check_window(index, at);
    }

    /// Copies run inside a window, unless they restore lost redundancy: their partition
    /// started short of replicas (failed nodes), or is short as the copy starts.
    fn check_window(&mut self, index: usize, at: At) {
        let options = self.options;
        let step = &self.plan.steps[index];
        let per = self.fleet.group(at.group).replicas_per_partition();
        let restoring = self.short[at.global] || self.partitions[at.global].len() < per;
        if options.windows.is_empty() || restoring {
            return;
        }
        let inside = options
            .windows
            .iter()
            .any(|&(open, close)| !later(open, step.start) && !later(step.end, close));
        if !inside {
            let message = format!(
                "runs [{:.3}, {:.3}) outside every copy window, and {} is not short of replicas",
                step.start,
                step.end,
                self.label(at)
            );
            self.report(Invariant::Throttle, message);
        }
    }

    fn start_replica(&mut self, at: At, node: NodeId, state: StateId) -> bool {
        let model = self.fleet.product_of(at.group);
        let node = self.node(node, "node");
        let state = self.state(model, state, "state");
        let (Some(node), Some(state)) = (node, state) else {
            return false;
        };
        self.cause = format!(
            "the start of {} on {} (as {})",
            self.label(at),
            self.node_name(node),
            model.state_name(state)
        );
        if !self.alive(node, "node") {
            return false;
        }
        if self.find(at.global, node).is_some() {
            let message = format!(
                "starts {} on {}, which already holds a replica of it",
                self.label(at),
                self.node_name(node)
            );
            self.report(Invariant::Legality, message);
            return false;
        }
        let serving = self.partitions[at.global]
            .iter()
            .find(|h| h.copying.is_none() && h.state != model.initial)
            .map(|h| h.node);
        if let Some(server) = serving {
            let message = format!(
                "starts {} on {} with no data while {} serves it: that is a copy (Replicate)",
                self.label(at),
                self.node_name(node),
                self.node_name(server)
            );
            self.report(Invariant::Legality, message);
        }
        self.legal(at, model.initial, state);
        self.check_residency(at, node);
        self.partitions[at.global].push(Held {
            node,
            state,
            copying: None,
        });
        self.heat(at.group, node, state, 1.0);
        true
    }

    /// Moves the replica at position `i` of its partition to `to`, heat included.
    fn change(&mut self, at: At, i: usize, to: StateId) {
        let held = self.partitions[at.global][i];
        self.partitions[at.global][i].state = to;
        self.heat(at.group, held.node, held.state, -1.0);
        self.heat(at.group, held.node, to, 1.0);
    }

    fn transition(&mut self, at: At, node: NodeId, from: StateId, to: StateId) -> bool {
        let model = self.fleet.product_of(at.group);
        let node = self.node(node, "node");
        let from = self.state(model, from, "from state");
        let to = self.state(model, to, "to state");
        let (Some(node), Some(from), Some(to)) = (node, from, to) else {
            return false;
        };
        self.cause = format!(
            "the transition of {} on {} from {} to {}",
            self.label(at),
            self.node_name(node),
            model.state_name(from),
            model.state_name(to)
        );
        if !self.alive(node, "node") {
            return false;
        }
        let Some(i) = self.held(at, node, from, "moves") else {
            return false;
        };
        self.legal(at, from, to);
        if to == model.initial {
            self.check_not_read(at, node, "takes out of service");
        }
        self.change(at, i, to);
        true
    }

    fn hand_off(
        &mut self,
        at: At,
        (from, to): (NodeId, NodeId),
        demote_to: StateId,
        promote_from: StateId,
    ) -> bool {
        let model = self.fleet.product_of(at.group);
        let Some(leader) = model.leader else {
            let message = format!(
                "hands off the leader of {}, but product {} has no leader state",
                self.label(at),
                model.name
            );
            self.report(Invariant::Legality, message);
            return false;
        };
        let from = self.node(from, "old leader");
        let to = self.node(to, "new leader");
        let demote_to = self.state(model, demote_to, "demote_to state");
        let promote_from = self.state(model, promote_from, "promote_from state");
        let (Some(from), Some(to), Some(demote_to), Some(promote_from)) =
            (from, to, demote_to, promote_from)
        else {
            return false;
        };
        self.cause = format!(
            "the hand-off of {} from {} to {}",
            self.label(at),
            self.node_name(from),
            self.node_name(to)
        );
        if !(self.alive(from, "old leader") && self.alive(to, "new leader")) {
            return false;
        }
        if from == to {
            let message = format!(
                "hands {} off from {} to itself",
                self.label(at),
                self.node_name(from)
            );
            self.report(Invariant::Legality, message);
            return false;
        }
        let old = self.held(at, from, leader, "hands off from");
        let new = self.held(at, to, promote_from, "hands off to");
        let (Some(old), Some(new)) = (old, new) else {
            return false;
        };
        self.legal(at, leader, demote_to);
        self.legal(at, promote_from, leader);
        if demote_to == model.initial {
            self.check_not_read(at, from, "takes out of service");
        }
        self.change(at, old, demote_to);
        self.change(at, new, leader);
        true
    }

    fn drop_replica(&mut self, at: At, node: NodeId, from: StateId) -> bool {
        let model = self.fleet.product_of(at.group);
        let node = self.node(node, "node");
        let from = self.state(model, from, "from state");
        let (Some(node), Some(from)) = (node, from) else {
            return false;
        };
        self.cause = format!(
            "the drop of {} from {} (as {})",
            self.label(at),
            self.node_name(node),
            model.state_name(from)
        );
        if !self.alive(node, "node") {
            return false;
        }
        let Some(i) = self.held(at, node, from, "drops") else {
            return false;
        };
        self.legal(at, from, model.initial);
        self.check_not_read(at, node, "drops");
        self.heat(at.group, node, from, -1.0);
        self.partitions[at.global].remove(i);
        true
    }

    // ----- whole-plan checks -------------------------------------------------------------------

    /// Times are finite, sorted by start, ends after starts, within the plan, unique ids, and
    /// every step a step waits for ends by the time it starts.
    fn check_order(&mut self) {
        let plan = self.plan;
        let mut previous: Option<&Step> = None;
        let mut ids: BTreeMap<u32, usize> = BTreeMap::new();
        for (index, step) in plan.steps.iter().enumerate() {
            self.step = Some(step.id);
            self.time = if step.start.is_finite() {
                step.start
            } else {
                plan.start
            };
            if !(step.start.is_finite() && step.end.is_finite()) {
                let message = format!("runs from {} to {}: times are finite", step.start, step.end);
                self.report(Invariant::Ordering, message);
                continue;
            }
            self.check_times(step, previous);
            if let Some(first) = ids.insert(step.id, index) {
                let message = format!("shares its id with step #{first} of the plan's list");
                self.report(Invariant::Ordering, message);
            }
            previous = Some(step);
        }
        for step in &plan.steps {
            self.step = Some(step.id);
            self.time = step.start;
            for &id in &step.reason.after {
                let message = match ids.get(&id).map(|&i| &plan.steps[i]) {
                    None => format!("waits for step {id}, which the plan does not have"),
                    Some(first) if later(first.end, step.start) => format!(
                        "waits for step {id}, which ends at {:.3}, after this step starts at {:.3}",
                        first.end, step.start
                    ),
                    Some(_) => continue,
                };
                self.report(Invariant::Ordering, message);
            }
        }
        self.step = None;
        self.time = plan.start;
    }

    fn check_times(&mut self, step: &Step, previous: Option<&Step>) {
        let plan = self.plan;
        if step.end < step.start {
            let message = format!(
                "ends at {:.3}, before it starts at {:.3}",
                step.end, step.start
            );
            self.report(Invariant::Ordering, message);
        }
        let copies = matches!(step.action, Action::Replicate { .. });
        if !copies && step.burst.is_empty() && step.end != step.start {
            let message = format!(
                "is instantaneous, yet ends at {:.3}, not at its start {:.3}",
                step.end, step.start
            );
            self.report(Invariant::Ordering, message);
        }
        if let Some(previous) = previous.filter(|p| p.start > step.start) {
            let message = format!(
                "starts at {:.3}, before step {} listed ahead of it at {:.3}: steps are sorted by start",
                step.start, previous.id, previous.start
            );
            self.report(Invariant::Ordering, message);
        }
        if later(plan.start, step.start) || later(step.end, plan.end) {
            let message = format!(
                "runs [{:.3}, {:.3}), outside the plan's [{:.3}, {:.3}]",
                step.start, step.end, plan.start, plan.end
            );
            self.report(Invariant::Ordering, message);
        }
    }

    /// After the last step, every partition (but the blocked ones) holds what the target says.
    fn check_target(&mut self, target: &Placement) {
        let fleet = self.fleet;
        self.step = None;
        self.time = self.plan.end.max(self.time);
        if target.slots.len() != fleet.slot_count {
            let message = format!(
                "the target placement has {} slots, the fleet {}",
                target.slots.len(),
                fleet.slot_count
            );
            self.report(Invariant::Input, message);
            return;
        }
        let blocked: BTreeSet<(GroupId, u32)> = self
            .plan
            .blocked
            .iter()
            .map(|b| (b.group, b.partition))
            .collect();
        for group in &fleet.groups {
            for partition in 0..group.partitions {
                if blocked.contains(&(group.id, partition)) {
                    continue;
                }
                let at = At {
                    group: group.id,
                    partition,
                    global: self.partition_base[group.id.index()] + partition as usize,
                };
                let first = group.partition_slot(partition);
                let slots = &target.slots[first..first + group.replicas_per_partition()];
                self.compare_partition(at, slots);
            }
        }
    }

    fn compare_partition(&mut self, at: At, slots: &[Slot]) {
        let fleet = self.fleet;
        let model = fleet.product_of(at.group);
        let nodes = fleet.topology.nodes.len();
        let mut want: Vec<(u32, StateId)> = Vec::new();
        for slot in slots {
            match slot.node() {
                None => {}
                Some(node) if node.index() < nodes && slot.state.index() < model.states.len() => {
                    want.push((node.0, slot.state));
                }
                Some(node) => {
                    let message = format!(
                        "the target puts a replica of {} on node #{} in state #{}, which the fleet does not have",
                        self.label(at),
                        node.0,
                        slot.state.0
                    );
                    self.report(Invariant::Input, message);
                    return;
                }
            }
        }
        let mut have: Vec<(u32, StateId)> = self.partitions[at.global]
            .iter()
            .map(|h| (h.node.0, h.state))
            .collect();
        want.sort_unstable();
        have.sort_unstable();
        if want != have {
            let show = |list: &[(u32, StateId)]| -> String {
                let names: Vec<String> = list
                    .iter()
                    .map(|&(n, s)| format!("{} {}", self.node_name(NodeId(n)), model.state_name(s)))
                    .collect();
                format!("[{}]", names.join(", "))
            };
            let message = format!(
                "{} ends with {}, but the target is {}",
                self.label(at),
                show(&have),
                show(&want)
            );
            self.report(Invariant::Target, message);
        }
    }

    /// Every replica present and not still arriving, partition by partition.
    fn landed(&self) -> Vec<Replica> {
        let mut replicas = Vec::new();
        for group in &self.fleet.groups {
            for partition in 0..group.partitions {
                let global = self.partition_base[group.id.index()] + partition as usize;
                replicas.extend(
                    self.partitions[global]
                        .iter()
                        .filter(|h| h.copying.is_none())
                        .map(|h| Replica {
                            group: group.id,
                            partition,
                            node: h.node,
                            state: h.state,
                        }),
                );
            }
        }
        replicas
    }
}
