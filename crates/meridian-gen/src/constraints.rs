//! Placement constraints of generated groups, each chosen so the fleet stays feasible.
//!
//! - Spread: most groups by rack; some by rack and PDU, or by zone, only when the pool has
//!   enough of those domains for every replica of a partition.
//! - Residency: some databases stay in one region, as long as what stays in a region is at
//!   most `RESIDENT_SHARE_MAX` of the load that region would carry in a balanced fleet, so the
//!   other groups can always make room.
//! - Selectors: databases need NVMe nodes, ai needs H100s; streams take any node.
//! - Access: each group has a home region that reads most of it (data gravity).
//! - A few soft affinities, one anti-affinity between two small databases, a few pins.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::classes::{round_significant, Pool, Quantities, DIMENSIONS, GPU_LABEL, STORAGE_LABEL};
use crate::heat::pool_capacity;
use crate::layout::Layout;
use crate::products::Product;
use crate::workload::{GroupPlan, PinPlan};

const RESIDENT_SHARE_MAX: f64 = 0.4;
const RESIDENT_PROBABILITY: f64 = 0.15;
const STREAM_SELECTOR_PROBABILITY: f64 = 0.5;
const AFFINITY_PROBABILITY: f64 = 0.1;
/// Pins per product: ai canaries on chosen GPU nodes, and a database leader kept on a node.
const AI_PINS_MAX: usize = 3;
const DB_PINS_MAX: usize = 1;

pub fn apply(groups: &mut [GroupPlan], layout: &Layout, rng: &mut ChaCha8Rng) {
    let regions = layout.regions.len();
    assign_residency(groups, layout, rng);
    for group in groups.iter_mut() {
        group.selector = match group.product {
            Product::Db => Some(STORAGE_LABEL),
            Product::Stream if rng.random_bool(STREAM_SELECTOR_PROBABILITY) => Some(STORAGE_LABEL),
            Product::Stream => None,
            Product::Ai => Some(GPU_LABEL),
        };
        group.spread = choose_spread(group, layout, rng);
        group.access = choose_access(group.region, regions, rng);
    }
    add_affinities(groups, rng);
    add_anti_affinity(groups);
    add_pins(groups, layout, rng);
}

/// Levels a partition's replicas must not share. A level qualifies only with more domains
/// than replicas per partition: with exactly as many, every domain must carry the same share
/// of the group however small it is, which capacities sized for a balanced fleet may not
/// allow. Storage pools have at least four racks per region (see `layout`), so rack spread
/// fits even a group kept in one region.
fn choose_spread(group: &GroupPlan, layout: &Layout, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
    let replicas = group.replicas_per_partition() as usize;
    if group.product == Product::Ai {
        let racks_enough = layout.racks_in(Pool::Gpu) > replicas;
        return if replicas > 1 && racks_enough && rng.random_bool(0.5) {
            vec!["rack"]
        } else {
            Vec::new()
        };
    }
    if group.region.is_some() {
        return vec!["rack"];
    }
    let draw: f64 = rng.random();
    if draw < 0.15 && layout.pdus_with(Pool::Storage) > replicas {
        vec!["rack", "pdu"]
    } else if draw < 0.25 && layout.zones_with(Pool::Storage) > replicas {
        vec!["zone"]
    } else {
        vec!["rack"]
    }
}

/// Some databases must stay in one region. Each region accepts resident load up to a share
/// of its balanced share of the pool's load, measured in the pool's busiest dimension.
fn assign_residency(groups: &mut [GroupPlan], layout: &Layout, rng: &mut ChaCha8Rng) {
    let regions = layout.regions.len();
    if regions < 2 {
        return;
    }
    let total = pool_capacity(layout, Pool::Storage);
    let region_capacity: Vec<Quantities> = (0..regions)
        .map(|r| region_storage_capacity(layout, r))
        .collect();
    let mut resident = vec![[0.0; DIMENSIONS]; regions];
    let pool_load = pool_load(groups);
    for group in groups.iter_mut().filter(|g| g.product == Product::Db) {
        if !rng.random_bool(RESIDENT_PROBABILITY) {
            continue;
        }
        let region = rng.random_range(0..regions);
        let load = group_load(group);
        let fits = (0..DIMENSIONS).all(|dim| {
            let allowed = RESIDENT_SHARE_MAX * pool_load[dim] * region_capacity[region][dim]
                / total[dim].max(f64::MIN_POSITIVE);
            resident[region][dim] + load[dim] <= allowed || load[dim] == 0.0
        });
        if fits {
            group.region = Some(region);
            for dim in 0..DIMENSIONS {
                resident[region][dim] += load[dim];
            }
        }
    }
}

fn region_storage_capacity(layout: &Layout, region: usize) -> Quantities {
    let mut total = [0.0; DIMENSIONS];
    for node in layout
        .nodes_in(Pool::Storage)
        .filter(|&n| layout.racks[layout.nodes[n].rack].region == region)
    {
        for (dim, value) in layout.nodes[node].class.capacity().iter().enumerate() {
            total[dim] += value;
        }
    }
    total
}

fn group_load(group: &GroupPlan) -> Quantities {
    let mut total = [0.0; DIMENSIONS];
    for (state, count) in group.counts.iter().enumerate() {
        let heat = group.heat(state);
        for dim in 0..DIMENSIONS {
            total[dim] += heat[dim] * f64::from(*count) * f64::from(group.partitions);
        }
    }
    total
}

fn pool_load(groups: &[GroupPlan]) -> Quantities {
    let mut total = [0.0; DIMENSIONS];
    for group in groups.iter().filter(|g| g.product.pool() == Pool::Storage) {
        for (dim, value) in group_load(group).iter().enumerate() {
            total[dim] += value;
        }
    }
    total
}

/// A home region reads most; the rest of the reads are spread over the other regions. A
/// group kept in one region is read mostly there.
fn choose_access(home: Option<usize>, regions: usize, rng: &mut ChaCha8Rng) -> Vec<(usize, f64)> {
    let home_region = home.unwrap_or_else(|| rng.random_range(0..regions));
    if regions == 1 {
        return vec![(0, 1.0)];
    }
    let home_share = if home.is_some() {
        0.9
    } else {
        rng.random_range(0.5..0.9)
    };
    let other_share = round_significant((1.0 - home_share) / (regions - 1) as f64, 2);
    (0..regions)
        .map(|r| {
            (
                r,
                if r == home_region {
                    round_significant(home_share, 2)
                } else {
                    other_share
                },
            )
        })
        .collect()
}

/// Some streams would like to be in the same zone as a database they feed (soft).
fn add_affinities(groups: &mut [GroupPlan], rng: &mut ChaCha8Rng) {
    let databases: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].product == Product::Db)
        .collect();
    for group in groups.iter_mut() {
        if group.product == Product::Stream && rng.random_bool(AFFINITY_PROBABILITY) {
            if let Some(&db) = databases.choose(rng) {
                group.affinity.push((db, "zone"));
            }
        }
    }
}

/// The two smallest unrestricted databases must not share a node. Together they hold at most
/// a tenth of the storage pool's replicas, so the nodes one of them uses leave the other
/// plenty of room.
fn add_anti_affinity(groups: &mut [GroupPlan]) {
    let mut databases: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].product == Product::Db && groups[g].region.is_none())
        .collect();
    databases.sort_by_key(|&g| (groups[g].replicas(), g));
    let [first, second, ..] = databases[..] else {
        return;
    };
    let storage_replicas: usize = groups
        .iter()
        .filter(|g| g.product.pool() == Pool::Storage)
        .map(GroupPlan::replicas)
        .sum();
    if 10 * (groups[first].replicas() + groups[second].replicas()) <= storage_replicas {
        groups[first].anti_affinity.push((second, "node"));
    }
}

/// Pins go to nodes the group may use anyway: ai canaries on GPU nodes, one database leader
/// on a storage node of its region.
fn add_pins(groups: &mut [GroupPlan], layout: &Layout, rng: &mut ChaCha8Rng) {
    let gpu_nodes: Vec<usize> = layout.nodes_in(Pool::Gpu).collect();
    let ai: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].product == Product::Ai)
        .take(AI_PINS_MAX)
        .collect();
    for g in ai {
        if let Some(&node) = gpu_nodes.choose(rng) {
            groups[g].pins.push(PinPlan {
                partition: 0,
                node,
                state: None,
            });
        }
    }
    let databases: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].product == Product::Db && groups[g].anti_affinity.is_empty())
        .take(DB_PINS_MAX)
        .collect();
    for g in databases {
        let allowed: Vec<usize> = layout
            .nodes_in(Pool::Storage)
            .filter(|&n| {
                groups[g]
                    .region
                    .is_none_or(|r| layout.racks[layout.nodes[n].rack].region == r)
            })
            .collect();
        if let Some(&node) = allowed.choose(rng) {
            groups[g].pins.push(PinPlan {
                partition: 0,
                node,
                state: Some("Leader"),
            });
        }
    }
}
