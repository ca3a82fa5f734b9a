//! An independent checker of placements against every hard constraint.
//!
//! It shares no code with the solver's incremental bookkeeping on purpose: it recomputes every
//! sum from scratch, so a bug in the solver's accounting cannot hide itself here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::fleet::Fleet;
use crate::ids::{DomainId, GroupId, LevelId};
use crate::placement::Replica;

/// Capacity sums may differ from the limit by float rounding; ignore overshoot below this
/// fraction of the limit (a millionth) so summation order cannot manufacture violations.
pub const CAPACITY_TOLERANCE: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    Capacity,
    Count,
    Spread,
    Selector,
    Residency,
    AntiAffinity,
    Pin,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub message: String,
}

fn violation(kind: ViolationKind, message: String) -> Violation {
    Violation { kind, message }
}

/// Every violation of a hard constraint in `replicas`, in a deterministic order.
pub fn check(fleet: &Fleet, replicas: &[Replica]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut by_partition: BTreeMap<(GroupId, u32), Vec<&Replica>> = BTreeMap::new();
    for replica in replicas {
        by_partition
            .entry((replica.group, replica.partition))
            .or_default()
            .push(replica);
    }
    check_counts(fleet, &by_partition, &mut violations);
    check_spread(fleet, &by_partition, &mut violations);
    check_filters(fleet, replicas, &mut violations);
    check_pins(fleet, &by_partition, &mut violations);
    check_anti_affinity(fleet, replicas, &mut violations);
    check_capacity(fleet, replicas, &mut violations);
    violations
}

fn check_counts(
    fleet: &Fleet,
    by_partition: &BTreeMap<(GroupId, u32), Vec<&Replica>>,
    out: &mut Vec<Violation>,
) {
    for group in &fleet.groups {
        let model = fleet.product_of(group.id);
        for p in 0..group.partitions {
            let replicas = by_partition
                .get(&(group.id, p))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (s, &want) in group.counts.iter().enumerate() {
                let have = replicas.iter().filter(|r| r.state.index() == s).count() as u32;
                if have != want {
                    out.push(violation(
                        ViolationKind::Count,
                        format!(
                            "{}/{p}: {have} replica(s) in state {}, the model asks for {want}",
                            group.name, model.states[s]
                        ),
                    ));
                }
            }
        }
    }
}

fn check_spread(
    fleet: &Fleet,
    by_partition: &BTreeMap<(GroupId, u32), Vec<&Replica>>,
    out: &mut Vec<Violation>,
) {
    let topology = &fleet.topology;
    for (&(g, p), replicas) in by_partition {
        let group = fleet.group(g);
        for &level in &group.spread {
            let mut seen: BTreeMap<DomainId, usize> = BTreeMap::new();
            for replica in replicas {
                if let Some(domain) = topology.ancestor_at(replica.node, level) {
                    *seen.entry(domain).or_default() += 1;
                }
            }
            for (domain, count) in seen.into_iter().filter(|(_, c)| *c > 1) {
                out.push(violation(
                    ViolationKind::Spread,
                    format!(
                        "{}/{p}: {count} replicas share {} `{}`; spread asks for distinct ones",
                        group.name,
                        topology.level_name(level),
                        topology.domain(domain).name
                    ),
                ));
            }
        }
    }
}

fn check_filters(fleet: &Fleet, replicas: &[Replica], out: &mut Vec<Violation>) {
    let topology = &fleet.topology;
    for replica in replicas {
        let group = fleet.group(replica.group);
        let labels = &topology.nodes[replica.node.index()].labels;
        for (key, value) in &group.selector {
            if labels.get(key) != Some(value) {
                out.push(violation(
                    ViolationKind::Selector,
                    format!(
                        "{}/{}: node `{}` lacks label {key}={value}",
                        group.name,
                        replica.partition,
                        topology.node_name(replica.node)
                    ),
                ));
            }
        }
        if let Some(regions) = &group.regions {
            let region = topology.region_of(replica.node);
            if !regions.contains(&region) {
                out.push(violation(
                    ViolationKind::Residency,
                    format!(
                        "{}/{}: node `{}` is in region `{}`, outside the group's allowed regions",
                        group.name,
                        replica.partition,
                        topology.node_name(replica.node),
                        topology.regions[region.index()].name
                    ),
                ));
            }
        }
    }
}

fn check_pins(
    fleet: &Fleet,
    by_partition: &BTreeMap<(GroupId, u32), Vec<&Replica>>,
    out: &mut Vec<Violation>,
) {
    for group in &fleet.groups {
        for pin in &group.pins {
            let replicas = by_partition
                .get(&(group.id, pin.partition))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let held = replicas
                .iter()
                .any(|r| r.node == pin.node && pin.state.is_none_or(|s| s == r.state));
            if !held {
                out.push(violation(
                    ViolationKind::Pin,
                    format!(
                        "{}/{}: pinned to `{}` but no replica is there",
                        group.name,
                        pin.partition,
                        fleet.topology.node_name(pin.node)
                    ),
                ));
            }
        }
    }
}

fn check_anti_affinity(fleet: &Fleet, replicas: &[Replica], out: &mut Vec<Violation>) {
    let topology = &fleet.topology;
    let mut domains_of: BTreeMap<(GroupId, LevelId), BTreeSet<DomainId>> = BTreeMap::new();
    for replica in replicas {
        for &level in topology
            .levels
            .iter()
            .enumerate()
            .map(|(i, _)| LevelId(i as u16))
            .collect::<Vec<_>>()
            .iter()
        {
            if let Some(domain) = topology.ancestor_at(replica.node, level) {
                domains_of
                    .entry((replica.group, level))
                    .or_default()
                    .insert(domain);
            }
        }
    }
    for group in &fleet.groups {
        for &(other, level) in &group.anti_affinity {
            if other == group.id {
                continue; // Same group: covered below by counting per domain.
            }
            let empty = BTreeSet::new();
            let mine = domains_of.get(&(group.id, level)).unwrap_or(&empty);
            let theirs = domains_of.get(&(other, level)).unwrap_or(&empty);
            for domain in mine.intersection(theirs) {
                out.push(violation(
                    ViolationKind::AntiAffinity,
                    format!(
                        "groups `{}` and `{}` share {} `{}`",
                        group.name,
                        fleet.group(other).name,
                        topology.level_name(level),
                        topology.domain(*domain).name
                    ),
                ));
            }
        }
        if let Some(&(_, level)) = group
            .anti_affinity
            .iter()
            .find(|(other, _)| *other == group.id)
        {
            let mut counts: BTreeMap<DomainId, usize> = BTreeMap::new();
            for replica in replicas.iter().filter(|r| r.group == group.id) {
                if let Some(domain) = topology.ancestor_at(replica.node, level) {
                    *counts.entry(domain).or_default() += 1;
                }
            }
            for (domain, count) in counts.into_iter().filter(|(_, c)| *c > 1) {
                out.push(violation(
                    ViolationKind::AntiAffinity,
                    format!(
                        "group `{}` has {count} replicas in {} `{}`; its anti-affinity allows one",
                        group.name,
                        topology.level_name(level),
                        topology.domain(domain).name
                    ),
                ));
            }
        }
    }
}

/// Steady heat under every domain of both trees, per dimension: `loads[domain * dims + dim]`
/// (the same layout as `Fleet::limit`).
pub fn domain_loads(fleet: &Fleet, replicas: &[Replica]) -> Vec<f64> {
    let topology = &fleet.topology;
    let d = fleet.dims_count();
    let mut used = vec![0.0f64; topology.domains.len() * d];
    for replica in replicas {
        let heat = &fleet.group(replica.group).heat[replica.state.index()];
        for &domain in topology.chain(replica.node) {
            for (x, &h) in heat.iter().enumerate() {
                used[domain.index() * d + x] += h;
            }
        }
    }
    used
}

fn check_capacity(fleet: &Fleet, replicas: &[Replica], out: &mut Vec<Violation>) {
    let topology = &fleet.topology;
    let d = fleet.dims_count();
    let used = domain_loads(fleet, replicas);
    for domain in topology.domain_ids() {
        for x in 0..d {
            let limit = fleet.limit[domain.index() * d + x];
            let load = used[domain.index() * d + x];
            if load > limit + limit.abs() * CAPACITY_TOLERANCE + 1e-9 {
                out.push(violation(ViolationKind::Capacity, format!("{}: load {load:.3} exceeds the limit {limit:.3} (capacity {:.3} less headroom) by {:.3}", topology.describe(domain, &fleet.dims, x), topology.capacity_of(domain)[x], load - limit)));
            }
        }
    }
}
