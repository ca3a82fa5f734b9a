//! The solver's mutable state: where each replica is, and the load it puts on every domain.

use std::collections::HashMap;

use meridian_model::placement::{Slot, UNASSIGNED};
use meridian_model::{DomainId, GroupId, NodeId, StateId};

use crate::context::Context;

pub struct State {
    /// Steady load per `domain * dims + dim`, maintained incrementally.
    pub used: Vec<f64>,
    pub slots: Vec<Slot>,
    /// Replicas of a group under a domain, for the (group, level) pairs that constraints
    /// and objectives look at (anti-affinity, affinity). Looked up, never iterated.
    occupancy: HashMap<(GroupId, DomainId), u32>,
    /// Group of each slot, so placement changes need no search.
    slot_group: Vec<GroupId>,
    /// Domains closed to replicas (drained, or a failed node): nothing stays or lands under them.
    closed: Vec<bool>,
    /// Per `domain * dims + dim`: the lowest utilization of any node under the domain in the
    /// network tree (+∞ where no node has that resource). Guides the search toward subtrees
    /// that hold a cool node; kept in step with every placement.
    node_utilization_min: Vec<f64>,
    /// Per domain: the lowest peak pressure (over all dimensions) of any node under it.
    node_peak_min: Vec<f64>,
    /// Per `level * dims + dim`: load summed over the level's limited domains, for the
    /// search's estimate of the levels it has not reached yet.
    level_used: Vec<f64>,
}

impl State {
    pub fn new(context: &Context, slots: Vec<Slot>) -> State {
        let fleet = context.fleet;
        assert_eq!(
            slots.len(),
            fleet.slot_count,
            "a state holds one slot per replica"
        );
        let mut slot_group = Vec::with_capacity(fleet.slot_count);
        for group in &fleet.groups {
            slot_group.extend(std::iter::repeat_n(group.id, group.slot_count()));
        }
        let mut state = State {
            used: vec![0.0; fleet.topology.domains.len() * context.dims],
            slots: vec![
                Slot {
                    node: UNASSIGNED,
                    state: StateId(0)
                };
                slots.len()
            ],
            occupancy: HashMap::new(),
            slot_group,
            closed: vec![false; fleet.topology.domains.len()],
            node_utilization_min: Vec::new(),
            node_peak_min: Vec::new(),
            level_used: vec![0.0; fleet.topology.levels.len() * context.dims],
        };
        for (index, slot) in slots.into_iter().enumerate() {
            state.slots[index].state = slot.state;
            if let Some(node) = slot.node() {
                state.place(context, index, node, slot.state);
            }
        }
        state.rebuild_node_utilization_min(context);
        state
    }

    /// Computes every domain's coolest-node utilization bottom-up (once, after bulk loading).
    fn rebuild_node_utilization_min(&mut self, context: &Context) {
        let fleet = context.fleet;
        let dims = context.dims;
        self.node_utilization_min = vec![f64::INFINITY; fleet.topology.domains.len() * dims];
        self.node_peak_min = vec![f64::INFINITY; fleet.topology.domains.len()];
        for domain in context.bottom_up() {
            for x in 0..dims {
                let value = self.own_or_children_min(context, *domain, x);
                self.node_utilization_min[domain.index() * dims + x] = value;
            }
            self.refresh_peak_min_at(context, *domain);
        }
    }

    /// Recomputes a domain's coolest-node peak from its own load (a node) or its children.
    /// Returns whether it changed.
    fn refresh_peak_min_at(&mut self, context: &Context, domain: DomainId) -> bool {
        let topology = &context.fleet.topology;
        let value = if topology.domain(domain).node.is_some() {
            let base = domain.index() * context.dims;
            (0..context.dims)
                .map(|x| context.pressure(domain, x, self.used[base + x]))
                .fold(0.0, f64::max)
        } else {
            topology
                .domain(domain)
                .network_children
                .iter()
                .map(|c| self.node_peak_min[c.index()])
                .fold(f64::INFINITY, f64::min)
        };
        let changed = self.node_peak_min[domain.index()] != value;
        self.node_peak_min[domain.index()] = value;
        changed
    }

    /// The lowest peak pressure (over all dimensions) of any node under `domain` (network tree).
    pub fn node_peak_min(&self, domain: DomainId) -> f64 {
        self.node_peak_min[domain.index()]
    }

    fn own_or_children_min(&self, context: &Context, domain: DomainId, x: usize) -> f64 {
        let fleet = context.fleet;
        let dims = context.dims;
        let base = domain.index() * dims;
        if fleet.topology.domain(domain).node.is_some() {
            let limit = fleet.limit[base + x];
            return if limit > 0.0 && limit.is_finite() {
                self.used[base + x] / limit
            } else {
                f64::INFINITY
            };
        }
        fleet
            .topology
            .domain(domain)
            .network_children
            .iter()
            .map(|c| self.node_utilization_min[c.index() * dims + x])
            .fold(f64::INFINITY, f64::min)
    }

    /// Load summed over the limited domains of `level` in `dim`.
    pub fn level_used(&self, level: meridian_model::LevelId, dim: usize, dims: usize) -> f64 {
        self.level_used[level.index() * dims + dim]
    }

    /// The lowest utilization in `dim` of any node under `domain` (network tree).
    pub fn node_utilization_min(&self, domain: DomainId, dim: usize, dims: usize) -> f64 {
        self.node_utilization_min[domain.index() * dims + dim]
    }

    /// Closes `domain`: from now on no replica may be placed under it.
    pub fn close(&mut self, domain: DomainId) {
        self.closed[domain.index()] = true;
    }

    pub fn is_closed(&self, domain: DomainId) -> bool {
        self.closed[domain.index()]
    }

    /// Whether `node` sits under any closed domain.
    pub fn node_closed(&self, context: &Context, node: NodeId) -> bool {
        context
            .fleet
            .topology
            .chain(node)
            .iter()
            .any(|d| self.closed[d.index()])
    }

    pub fn group_of(&self, slot: usize) -> GroupId {
        self.slot_group[slot]
    }

    pub fn node_of(&self, slot: usize) -> Option<NodeId> {
        self.slots[slot].node()
    }

    pub fn used_of(&self, domain: DomainId, dims: usize) -> &[f64] {
        &self.used[domain.index() * dims..domain.index() * dims + dims]
    }

    pub fn occupancy(&self, group: GroupId, domain: DomainId) -> u32 {
        self.occupancy.get(&(group, domain)).copied().unwrap_or(0)
    }

    pub fn place(&mut self, context: &Context, slot: usize, node: NodeId, state: StateId) {
        debug_assert_eq!(
            self.slots[slot].node, UNASSIGNED,
            "slot {slot} is already placed"
        );
        self.slots[slot] = Slot {
            node: node.0,
            state,
        };
        self.apply(context, slot, node, state, 1.0);
    }

    pub fn unplace(&mut self, context: &Context, slot: usize) -> Option<NodeId> {
        let node = self.slots[slot].node()?;
        let state = self.slots[slot].state;
        self.apply(context, slot, node, state, -1.0);
        self.slots[slot].node = UNASSIGNED;
        Some(node)
    }

    /// Changes a placed replica's state (promote/demote) in place: no data moves.
    pub fn set_state(&mut self, context: &Context, slot: usize, state: StateId) {
        match self.slots[slot].node() {
            Some(node) => {
                let old = self.slots[slot].state;
                self.apply(context, slot, node, old, -1.0);
                self.slots[slot].state = state;
                self.apply(context, slot, node, state, 1.0);
            }
            None => self.slots[slot].state = state,
        }
    }

    /// Walks up from `node`, recomputing the coolest-node minimum while it changes.
    fn refresh_node_utilization_min(&mut self, context: &Context, node: NodeId, heat: &[f64]) {
        let topology = &context.fleet.topology;
        let dims = context.dims;
        let mut cursor = Some(topology.node_domain(node));
        while let Some(domain) = cursor {
            if !self.refresh_peak_min_at(context, domain) {
                break;
            }
            cursor = topology.domain(domain).network_parent;
        }
        for (x, &h) in heat.iter().enumerate() {
            if h == 0.0 {
                continue;
            }
            let mut cursor = Some(topology.node_domain(node));
            while let Some(domain) = cursor {
                let value = self.own_or_children_min(context, domain, x);
                let slot = &mut self.node_utilization_min[domain.index() * dims + x];
                if *slot == value {
                    break;
                }
                *slot = value;
                cursor = topology.domain(domain).network_parent;
            }
        }
    }

    fn apply(&mut self, context: &Context, slot: usize, node: NodeId, state: StateId, sign: f64) {
        let fleet = context.fleet;
        let group = self.slot_group[slot];
        let heat = &fleet.groups[group.index()].heat[state.index()];
        let dims = context.dims;
        for &domain in fleet.topology.chain(node) {
            let base = domain.index() * dims;
            let level_base = fleet.topology.domain(domain).level.index() * dims;
            for (x, &h) in heat.iter().enumerate() {
                if h != 0.0 {
                    self.used[base + x] += sign * h;
                    if fleet.limit[base + x].is_finite() {
                        self.level_used[level_base + x] += sign * h;
                    }
                }
            }
        }
        if !self.node_utilization_min.is_empty() {
            self.refresh_node_utilization_min(context, node, heat);
        }
        for &level in &context.tracked[group.index()] {
            if let Some(domain) = fleet.topology.ancestor_at(node, level) {
                let entry = self.occupancy.entry((group, domain)).or_insert(0);
                if sign > 0.0 {
                    *entry += 1;
                } else {
                    *entry -= 1;
                }
            }
        }
    }
}
