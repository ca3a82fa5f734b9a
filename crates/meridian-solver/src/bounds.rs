//! Lower bounds on peak utilization, per level and dimension.
//!
//! The *simple* bound is total demand over total limit at a level: no placement can keep every
//! domain of the level below it. Fleets have pools, though — storage groups select storage
//! nodes, inference groups GPU nodes — and demand confined to a pool must fit in that pool. The
//! *pooled* bound takes, for every set of nodes some group is confined to, the demand of all
//! groups confined within it over the limit of the domains that hold those nodes, and keeps the
//! largest. Both are valid bounds; the pooled one is the honest yardstick for balance.

use meridian_model::{Fleet, LevelId};

pub struct Bounds {
    /// `simple[level * dims + dim]`; 0 where undefined (some node under no limited domain).
    pub simple: Vec<f64>,
    /// `pooled[level * dims + dim]` ≥ `simple`.
    pub pooled: Vec<f64>,
}

/// Steady demand of one group per dimension, every replica in its designated state.
fn group_demand(fleet: &Fleet, group: usize) -> Vec<f64> {
    let group = &fleet.groups[group];
    let mut demand = vec![0.0; fleet.dims_count()];
    for &state in &group.slot_states {
        for (x, h) in group.heat[state.index()].iter().enumerate() {
            demand[x] += h * group.partitions as f64;
        }
    }
    demand
}

/// Demand over the limit of the level's domains that hold any node in `pool`; 0 when some of
/// those domains are unlimited in the dimension (the bound says nothing then).
fn bound_for(fleet: &Fleet, pool: &[bool], demand: &[f64], level: LevelId, dim: usize) -> f64 {
    let topology = &fleet.topology;
    let mut seen = vec![false; topology.domains.len()];
    let mut limit = 0.0;
    for node in topology.node_ids().filter(|n| pool[n.index()]) {
        let Some(domain) = topology.ancestor_at(node, level) else {
            return 0.0;
        };
        if !seen[domain.index()] {
            seen[domain.index()] = true;
            limit += fleet.limit_of(domain)[dim];
        }
    }
    if limit > 0.0 && limit.is_finite() {
        demand[dim] / limit
    } else {
        0.0
    }
}

pub fn lower_bounds(fleet: &Fleet) -> Bounds {
    let topology = &fleet.topology;
    let dims = fleet.dims_count();
    let levels = topology.levels.len();
    let everything = vec![true; topology.nodes.len()];
    let demands: Vec<Vec<f64>> = (0..fleet.groups.len())
        .map(|g| group_demand(fleet, g))
        .collect();
    let total: Vec<f64> = (0..dims)
        .map(|x| demands.iter().map(|d| d[x]).sum())
        .collect();
    // Distinct node sets groups are confined to.
    let crate::pools::Pools {
        of_group: pool_of_group,
        nodes: pools,
    } = crate::pools::pools(fleet);
    let subset = |a: &[bool], b: &[bool]| a.iter().zip(b).all(|(x, y)| !x || *y);
    let confined: Vec<Vec<f64>> = pools
        .iter()
        .map(|pool| {
            let mut demand = vec![0.0; dims];
            for (g, group_demand) in demands.iter().enumerate() {
                if subset(&pools[pool_of_group[g]], pool) {
                    demand
                        .iter_mut()
                        .zip(group_demand)
                        .for_each(|(d, x)| *d += x);
                }
            }
            demand
        })
        .collect();
    let mut bounds = Bounds {
        simple: vec![0.0; levels * dims],
        pooled: vec![0.0; levels * dims],
    };
    for l in 0..levels {
        let level = LevelId(l as u16);
        for x in 0..dims {
            let simple = bound_for(fleet, &everything, &total, level, x);
            let pooled = pools
                .iter()
                .zip(&confined)
                .map(|(pool, demand)| bound_for(fleet, pool, demand, level, x))
                .fold(simple, f64::max);
            bounds.simple[l * dims + x] = simple;
            bounds.pooled[l * dims + x] = pooled;
        }
    }
    bounds
}
