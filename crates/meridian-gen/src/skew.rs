//! A feasible but badly balanced placement: the kind of start a rebalancer is asked to fix.
//!
//! Nodes are ranked in a random order that keeps racks together, and every replica picks a
//! rank from a Zipf distribution (exponent `skew`; 0 is uniform) and takes the first node
//! from there on that accepts it. Preferred nodes fill up to their limits first, so load
//! piles up on a few racks while others stay nearly empty. Every hard constraint holds:
//! counts per state, spread, selector, residency, pins, anti-affinity, and the limit of every
//! domain of both trees.
//!
//! A greedy placement can paint itself into a corner on a full or tightly constrained fleet
//! (the last partition needs two nodes with room and only one is left). When that happens
//! the placement starts over with half the skew, and at last places every replica on its
//! least loaded allowed node, which is the most likely to fit everything.

use std::collections::{BTreeMap, HashSet};

use meridian_model::ids::{DomainId, GroupId, NodeId};
use meridian_model::placement::{Placement, PlacementDoc, Slot};
use meridian_model::{Fleet, Group, LevelId};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

use crate::open_list::OpenList;
use crate::spec::GenError;

/// Zipf draws per replica before falling back to scanning every allowed node.
const DRAWS_MAX: usize = 8;
/// Nodes tried after each draw, walking down the preference order.
const WALK_MAX: usize = 32;
/// A drawn node takes a replica only while every domain above it stays below this share of
/// its limit. The last tenth is kept for the fallback, which places what the skewed draws
/// could not, on the least loaded node: without that reserve, late replicas find every node
/// full in some dimension even though the fleet as a whole has room.
const SKEW_FILL_MAX: f64 = 0.9;
/// Nodes the fallback samples before it scans them all.
const FALLBACK_SAMPLE: usize = 64;

/// A skewed, feasible starting placement of every replica of `fleet`, in document form.
pub fn skewed_placement(fleet: &Fleet, seed: u64, skew: f64) -> Result<PlacementDoc, GenError> {
    Ok(skewed_slots(fleet, seed, skew)?.to_doc(fleet))
}

/// The same placement in the solver's dense form. Fails when `skew` is not a finite number
/// ≥ 0, or when even the least-loaded placement leaves some replica with no node (a fleet too
/// full or too constrained for a greedy placement).
pub fn skewed_slots(fleet: &Fleet, seed: u64, skew: f64) -> Result<Placement, GenError> {
    if !(skew.is_finite() && skew >= 0.0) {
        return Err(GenError::new(format!(
            "skew must be a finite number ≥ 0, not {skew}"
        )));
    }
    let mut failure = None;
    for attempt in [Some(skew), Some(skew / 2.0), None] {
        match place_all(fleet, seed, attempt) {
            Ok(placement) => return Ok(placement),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or_else(|| GenError::new("no placement was attempted")))
}

/// One greedy pass; `skew` `None` places every replica on its least loaded node.
fn place_all(fleet: &Fleet, seed: u64, skew: Option<f64>) -> Result<Placement, GenError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let order = preference_order(fleet, &mut rng);
    let mut placer = Placer::new(fleet, order);
    for (group, slot) in pinned_slots(fleet) {
        placer.place_pinned(group, slot)?;
    }
    for tier in placement_tiers(fleet, &mut placer) {
        placer.place_tier(&tier, skew, &mut rng)?;
    }
    Ok(placer.placement)
}

/// Racks in random order, nodes within a rack in random order: preferring low ranks then
/// means preferring a few racks, which is how real fleets end up skewed.
fn preference_order(fleet: &Fleet, rng: &mut ChaCha8Rng) -> Vec<NodeId> {
    let topology = &fleet.topology;
    let mut by_parent: BTreeMap<Option<DomainId>, Vec<NodeId>> = BTreeMap::new();
    for node in topology.node_ids() {
        by_parent
            .entry(topology.domain(topology.node_domain(node)).network_parent)
            .or_default()
            .push(node);
    }
    let mut racks: Vec<Vec<NodeId>> = by_parent.into_values().collect();
    racks.shuffle(rng);
    for rack in &mut racks {
        rack.shuffle(rng);
    }
    racks.concat()
}

/// Groups in tiers of equal difficulty, hardest first: fewest allowed nodes, then most spread
/// levels. The hard-to-place go while there is still room everywhere; within a tier,
/// partitions of all groups are interleaved (see `Placer::place_tier`).
fn placement_tiers(fleet: &Fleet, placer: &mut Placer) -> Vec<Vec<GroupId>> {
    let mut keyed: Vec<(usize, std::cmp::Reverse<usize>, GroupId)> = fleet
        .groups
        .iter()
        .map(|group| {
            let class = placer.class_of(group);
            (
                placer.classes[class].nodes().len(),
                std::cmp::Reverse(group.spread.len()),
                group.id,
            )
        })
        .collect();
    keyed.sort();
    let mut tiers: Vec<Vec<GroupId>> = Vec::new();
    for (i, &(allowed, spread, group)) in keyed.iter().enumerate() {
        match i.checked_sub(1).map(|previous| keyed[previous]) {
            Some((a, s, _)) if (a, s) == (allowed, spread) => tiers
                .last_mut()
                .unwrap_or_else(|| unreachable!("a tier was opened before"))
                .push(group),
            _ => tiers.push(vec![group]),
        }
    }
    tiers
}

/// Every pinned replica as (group, slot index): a pin with a state takes the partition's
/// first free slot in that state, a pin without one the first free slot.
fn pinned_slots(fleet: &Fleet) -> Vec<(GroupId, (usize, NodeId))> {
    let mut taken: HashSet<usize> = HashSet::new();
    let mut pinned = Vec::new();
    for group in &fleet.groups {
        for pin in &group.pins {
            let first = group.partition_slot(pin.partition);
            let free = (first..first + group.replicas_per_partition()).find(|slot| {
                !taken.contains(slot)
                    && pin
                        .state
                        .is_none_or(|s| group.slot_states[slot - first] == s)
            });
            if let Some(slot) = free {
                taken.insert(slot);
                pinned.push((group.id, (slot, pin.node)));
            }
        }
    }
    pinned
}

/// The greedy placer: what is placed so far and what each domain still has room for.
struct Placer<'a> {
    fleet: &'a Fleet,
    order: Vec<NodeId>,
    placement: Placement,
    /// Heat placed under each domain: `used[domain * dims + dim]`.
    used: Vec<f64>,
    /// Allowed nodes per distinct (selector, regions), in preference order.
    classes: Vec<OpenList>,
    class_keys: BTreeMap<String, usize>,
    /// Nodes a draw has found too full for the skewed phase; the fallback still uses them.
    full: Vec<bool>,
    /// (group, domain) pairs holding a replica, for the groups anti-affinity names.
    occupied: HashSet<(GroupId, DomainId)>,
    watched: Vec<bool>,
}

impl<'a> Placer<'a> {
    fn new(fleet: &'a Fleet, order: Vec<NodeId>) -> Self {
        let mut watched = vec![false; fleet.groups.len()];
        for group in &fleet.groups {
            for &(other, _) in &group.anti_affinity {
                watched[group.id.index()] = true;
                watched[other.index()] = true;
            }
        }
        Placer {
            fleet,
            order,
            placement: Placement::empty(fleet),
            used: vec![0.0; fleet.topology.domains.len() * fleet.dims_count()],
            classes: Vec::new(),
            class_keys: BTreeMap::new(),
            full: vec![false; fleet.topology.nodes.len()],
            occupied: HashSet::new(),
            watched,
        }
    }

    /// Index into `classes` of the nodes `group` may use.
    fn class_of(&mut self, group: &Group) -> usize {
        let key = format!("{:?}|{:?}", group.selector, group.regions);
        if let Some(&class) = self.class_keys.get(&key) {
            return class;
        }
        let allowed = self
            .order
            .iter()
            .copied()
            .filter(|&n| group.node_allowed(&self.fleet.topology, n))
            .collect();
        self.classes.push(OpenList::new(allowed));
        self.class_keys.insert(key, self.classes.len() - 1);
        self.classes.len() - 1
    }

    fn place_pinned(
        &mut self,
        group: GroupId,
        (slot, node): (usize, NodeId),
    ) -> Result<(), GenError> {
        let group = self.fleet.group(group);
        if !self.fits(group, slot, node, 1.0) {
            let name = self.fleet.topology.node_name(node);
            return Err(GenError::new(format!(
                "group `{}`: the replica pinned to `{name}` does not fit there",
                group.name
            )));
        }
        self.assign(group, slot, node);
        Ok(())
    }

    /// Places every unplaced replica of the tier's groups. Partitions are interleaved in
    /// proportion to each group's size, so every node receives a mix of products: placing
    /// group after group would fill one node with databases (full in memory) and the next
    /// with streams (full in network), and the skew would be lost to fragmentation.
    fn place_tier(
        &mut self,
        tier: &[GroupId],
        skew: Option<f64>,
        rng: &mut ChaCha8Rng,
    ) -> Result<(), GenError> {
        let mut zipfs = Vec::with_capacity(tier.len());
        let mut turns: Vec<(f64, usize, u32)> = Vec::new();
        for (t, &id) in tier.iter().enumerate() {
            let group = self.fleet.group(id);
            let class = self.class_of(group);
            let count = self.classes[class].nodes().len().max(1);
            let zipf = skew
                .map(|s| {
                    Zipf::new(count as f64, s).map_err(|e| GenError::new(format!("skew {s}: {e}")))
                })
                .transpose()?;
            zipfs.push((class, zipf));
            turns.extend(
                (0..group.partitions)
                    .map(|p| ((f64::from(p) + 0.5) / f64::from(group.partitions), t, p)),
            );
        }
        turns.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, t, partition) in turns {
            let (class, zipf) = &zipfs[t];
            self.place_partition(
                self.fleet.group(tier[t]),
                partition,
                *class,
                zipf.as_ref(),
                rng,
            )?;
        }
        Ok(())
    }

    fn place_partition(
        &mut self,
        group: &'a Group,
        partition: u32,
        class: usize,
        zipf: Option<&Zipf<f64>>,
        rng: &mut ChaCha8Rng,
    ) -> Result<(), GenError> {
        let first = group.partition_slot(partition);
        for slot in first..first + group.replicas_per_partition() {
            if self.placement.slots[slot].node().is_some() {
                continue;
            }
            let drawn = zipf.and_then(|zipf| self.draw(group, slot, class, zipf, rng));
            let Some(node) = drawn.or_else(|| self.fallback(group, slot, class, rng)) else {
                let state = self
                    .fleet
                    .product_of(group.id)
                    .state_name(group.slot_states[slot - first]);
                return Err(GenError::new(format!(
                    "group `{}` partition {partition}: no node has room for a {state} replica",
                    group.name
                )));
            };
            self.assign(group, slot, node);
        }
        Ok(())
    }

    /// A few Zipf draws, each followed by a short walk down the preference order past full
    /// nodes. A node that turns out too full is marked so no later draw stops there again.
    fn draw(
        &mut self,
        group: &Group,
        slot: usize,
        class: usize,
        zipf: &Zipf<f64>,
        rng: &mut ChaCha8Rng,
    ) -> Option<NodeId> {
        let count = self.classes[class].nodes().len();
        if count == 0 {
            return None;
        }
        for _ in 0..DRAWS_MAX {
            let rank = (zipf.sample(rng) as usize).saturating_sub(1).min(count - 1);
            let mut cursor = self.classes[class]
                .next_open(rank, &self.full)
                .or_else(|| self.classes[class].next_open(0, &self.full));
            for _ in 0..WALK_MAX {
                let Some(index) = cursor else { break };
                let node = self.classes[class].nodes()[index];
                if self.spread_allows(group, slot, node) && self.anti_affinity_allows(group, node) {
                    if self.capacity_allows(group, slot, node, SKEW_FILL_MAX) {
                        return Some(node);
                    }
                    self.full[node.index()] = true;
                }
                cursor = self.classes[class].next_open(index + 1, &self.full);
            }
        }
        None
    }

    /// Where the draws found no room: the least loaded of a random sample of the group's
    /// nodes, or, when none of those fits, of all of them; so a replica is placed whenever
    /// any node can take it.
    fn fallback(
        &self,
        group: &Group,
        slot: usize,
        class: usize,
        rng: &mut ChaCha8Rng,
    ) -> Option<NodeId> {
        let nodes = self.classes[class].nodes();
        let least_loaded = |candidates: &mut dyn Iterator<Item = NodeId>| {
            candidates
                .filter(|&n| self.fits(group, slot, n, 1.0))
                .map(|n| (self.peak_after(group, slot, n), n))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                .map(|(_, n)| n)
        };
        let sample: Vec<NodeId> = nodes
            .choose_multiple(rng, FALLBACK_SAMPLE)
            .copied()
            .collect();
        least_loaded(&mut sample.into_iter()).or_else(|| least_loaded(&mut nodes.iter().copied()))
    }

    fn fits(&self, group: &Group, slot: usize, node: NodeId, fill: f64) -> bool {
        self.spread_allows(group, slot, node)
            && self.anti_affinity_allows(group, node)
            && self.capacity_allows(group, slot, node, fill)
    }

    /// The highest share of its limit any domain above `node` would reach with the replica.
    fn peak_after(&self, group: &Group, slot: usize, node: NodeId) -> f64 {
        let dims = self.fleet.dims_count();
        let heat = &group.heat[self.placement.slots[slot].state.index()];
        let mut peak = 0.0f64;
        for domain in self.fleet.topology.chain(node) {
            let start = domain.index() * dims;
            for (dim, &h) in heat.iter().enumerate() {
                let limit = self.fleet.limit[start + dim];
                if h > 0.0 && limit > 0.0 {
                    peak = peak.max((self.used[start + dim] + h) / limit);
                }
            }
        }
        peak
    }

    fn spread_allows(&self, group: &Group, slot: usize, node: NodeId) -> bool {
        let topology = &self.fleet.topology;
        let first = group
            .partition_slot(((slot - group.slot_offset) / group.replicas_per_partition()) as u32);
        let siblings = self.placement.slots[first..first + group.replicas_per_partition()]
            .iter()
            .filter_map(|s| s.node());
        for sibling in siblings {
            let shares = |level: &LevelId| {
                topology
                    .ancestor_at(node, *level)
                    .is_some_and(|d| topology.ancestor_at(sibling, *level) == Some(d))
            };
            if sibling == node || group.spread.iter().any(shares) {
                return false;
            }
        }
        true
    }

    /// Anti-affinity binds both ways: the group's own list and every list that names it.
    fn anti_affinity_allows(&self, group: &Group, node: NodeId) -> bool {
        if !self.watched[group.id.index()] {
            return true;
        }
        let topology = &self.fleet.topology;
        let mut relations: Vec<(GroupId, LevelId)> = group.anti_affinity.clone();
        for other in &self.fleet.groups {
            relations.extend(
                other
                    .anti_affinity
                    .iter()
                    .filter(|(g, _)| *g == group.id && other.id != group.id)
                    .map(|&(_, level)| (other.id, level)),
            );
        }
        relations.iter().all(|&(other, level)| {
            topology
                .ancestor_at(node, level)
                .is_none_or(|domain| !self.occupied.contains(&(other, domain)))
        })
    }

    fn capacity_allows(&self, group: &Group, slot: usize, node: NodeId, fill: f64) -> bool {
        let dims = self.fleet.dims_count();
        let heat = &group.heat[self.placement.slots[slot].state.index()];
        self.fleet.topology.chain(node).iter().all(|domain| {
            let start = domain.index() * dims;
            let limit = &self.fleet.limit[start..start + dims];
            heat.iter()
                .enumerate()
                .all(|(dim, &h)| h == 0.0 || self.used[start + dim] + h <= limit[dim] * fill)
        })
    }

    fn assign(&mut self, group: &Group, slot: usize, node: NodeId) {
        debug_assert!(
            self.placement.slots[slot].node().is_none(),
            "slot {slot} placed twice"
        );
        let dims = self.fleet.dims_count();
        let state = self.placement.slots[slot].state;
        self.placement.slots[slot] = Slot {
            node: node.0,
            state,
        };
        let heat = &group.heat[state.index()];
        for domain in self.fleet.topology.chain(node) {
            for (dim, &h) in heat.iter().enumerate() {
                self.used[domain.index() * dims + dim] += h;
            }
        }
        if self.watched[group.id.index()] {
            for level in 0..self.fleet.topology.levels.len() {
                if let Some(domain) = self.fleet.topology.ancestor_at(node, LevelId(level as u16)) {
                    self.occupied.insert((group.id, domain));
                }
            }
        }
    }
}
