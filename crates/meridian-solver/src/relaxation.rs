//! A linear-programming bound on balance that sees what the per-level bounds cannot.
//!
//! The pooled bound (see `bounds`) looks at one level and one dimension at a time. A real
//! fleet couples them: a tight PDU caps every node under it, so the other nodes must run hotter
//! than the level's average; a group's heat comes in all its dimensions at once. This module
//! solves the LP relaxation of balance — each group's heat may be split fractionally over the
//! nodes it may use, every domain of both trees stays within its limit — and minimizes the
//! worst ratio of utilization to the pooled bound over every domain and dimension. Whole
//! replicas, spread and anti-affinity are relaxed away, so no placement can have a lower worst
//! ratio: it is a bound, and usually a much tighter one.
//!
//! Nodes that share every ancestor, every limit and every pool are interchangeable in the LP,
//! and an even split among them is optimal, so they are merged into one *cell*. That keeps the
//! LP at (groups × cells) variables: fine at 100k replicas, too large for the pure-Rust simplex
//! at a million.

use std::collections::BTreeMap;

use good_lp::{constraint, microlp, variable, variables, Expression, Solution, SolverModel};
use serde::{Deserialize, Serialize};

use meridian_model::{DomainId, Fleet};

use crate::bounds::lower_bounds;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelaxedBound {
    /// No placement has a lower worst ratio of peak utilization to the pooled bound.
    pub worst_ratio: f64,
    /// Size of the LP that proved it.
    pub variables: usize,
    pub constraints: usize,
    pub cells: usize,
}

/// A set of interchangeable nodes.
struct Cell {
    /// Ancestors in both trees (the node's own domain excluded).
    ancestors: Vec<DomainId>,
    /// One node's limits times the number of nodes.
    limit: Vec<f64>,
    /// Which pools the nodes belong to (the same for all of them).
    pools: Vec<bool>,
}

/// What makes nodes interchangeable: ancestors, limits (as bits) and pool memberships.
type CellKey = (Vec<DomainId>, Vec<u64>, Vec<bool>);

fn cells(fleet: &Fleet, pool_nodes: &[Vec<bool>]) -> Vec<Cell> {
    let topology = &fleet.topology;
    let mut by_key: BTreeMap<CellKey, usize> = BTreeMap::new();
    let mut cells: Vec<Cell> = Vec::new();
    for node in topology.node_ids() {
        let own = topology.node_domain(node);
        let mut ancestors: Vec<DomainId> = topology
            .chain(node)
            .iter()
            .copied()
            .filter(|&d| d != own)
            .collect();
        ancestors.sort();
        let limit = fleet.limit_of(own);
        let pools: Vec<bool> = pool_nodes.iter().map(|p| p[node.index()]).collect();
        let key = (
            ancestors.clone(),
            limit.iter().map(|l| l.to_bits()).collect(),
            pools.clone(),
        );
        match by_key.get(&key) {
            Some(&c) => cells[c]
                .limit
                .iter_mut()
                .zip(limit)
                .for_each(|(sum, l)| *sum += l),
            None => {
                by_key.insert(key, cells.len());
                cells.push(Cell {
                    ancestors,
                    limit: limit.to_vec(),
                    pools,
                });
            }
        }
    }
    cells
}

/// Solves the relaxation. Errors when the LP solver fails (including when even a fractional
/// placement cannot fit, which the solver's own infeasibility report explains better).
pub fn relaxed_bound(fleet: &Fleet) -> Result<RelaxedBound, String> {
    let topology = &fleet.topology;
    let dims = fleet.dims_count();
    let bounds = lower_bounds(fleet);
    let pools = crate::pools::pools(fleet);
    let cells = cells(fleet, &pools.nodes);

    let mut vars = variables!();
    let t = vars.add(variable().min(0.0));
    // Per group: (cell, share of the group's heat there).
    let mut shares = Vec::with_capacity(fleet.groups.len());
    let mut variables = 1;
    for g in 0..fleet.groups.len() {
        let pool = pools.of_group[g];
        let group_shares: Vec<(usize, good_lp::Variable)> = cells
            .iter()
            .enumerate()
            .filter(|(_, cell)| cell.pools[pool])
            .map(|(c, _)| (c, vars.add(variable().min(0.0).max(1.0))))
            .collect();
        variables += group_shares.len();
        shares.push(group_shares);
    }
    // Heat each group brings in total, every replica in its designated state.
    let demand: Vec<Vec<f64>> = fleet
        .groups
        .iter()
        .map(|group| {
            let mut d = vec![0.0; dims];
            for &state in &group.slot_states {
                for (x, h) in group.heat[state.index()].iter().enumerate() {
                    d[x] += h * group.partitions as f64;
                }
            }
            d
        })
        .collect();

    let mut model = vars.minimise(t).using(microlp);
    let mut constraints = 0;
    for group_shares in &shares {
        let total: Expression = group_shares.iter().map(|(_, v)| *v).sum();
        model = model.with(constraint!(total == 1.0));
        constraints += 1;
    }
    // Load per (domain, dim) and per (cell, dim), as sums of share × demand.
    let mut domain_load: Vec<Expression> =
        vec![Expression::from(0.0); topology.domains.len() * dims];
    let mut cell_load: Vec<Expression> = vec![Expression::from(0.0); cells.len() * dims];
    // Rows nothing can load are left out.
    let mut domain_loaded = vec![false; topology.domains.len() * dims];
    let mut cell_loaded = vec![false; cells.len() * dims];
    for (g, group_shares) in shares.iter().enumerate() {
        for &(c, share) in group_shares {
            for (x, &d) in demand[g].iter().enumerate() {
                if d == 0.0 {
                    continue;
                }
                cell_load[c * dims + x].add_mul(d, share);
                cell_loaded[c * dims + x] = true;
                for &domain in &cells[c].ancestors {
                    domain_load[domain.index() * dims + x].add_mul(d, share);
                    domain_loaded[domain.index() * dims + x] = true;
                }
            }
        }
    }
    // Rows to add: (load, limit, the level's pooled bound), where something can load them.
    let mut rows: Vec<(Expression, f64, f64)> = Vec::new();
    let mut add_row = |loaded: bool, load: Expression, limit: f64, bound: f64| {
        if loaded && limit.is_finite() {
            rows.push((load, limit, bound));
        }
    };
    let node_level = topology.node_level.index();
    for (c, cell) in cells.iter().enumerate() {
        for x in 0..dims {
            let i = c * dims + x;
            let load = std::mem::take(&mut cell_load[i]);
            add_row(
                cell_loaded[i],
                load,
                cell.limit[x],
                bounds.pooled[node_level * dims + x],
            );
        }
    }
    for domain in topology.domain_ids() {
        let level = topology.domain(domain).level.index();
        if level == node_level {
            continue;
        }
        for x in 0..dims {
            let i = domain.index() * dims + x;
            let load = std::mem::take(&mut domain_load[i]);
            let limit = fleet.limit_of(domain)[x];
            add_row(
                domain_loaded[i],
                load,
                limit,
                bounds.pooled[level * dims + x],
            );
        }
    }
    for (load, limit, bound) in rows {
        model.add_constraint(constraint!(load.clone() <= limit));
        constraints += 1;
        if bound > 0.0 {
            model.add_constraint(constraint!(load <= bound * limit * t));
            constraints += 1;
        }
    }
    let solution = model
        .solve()
        .map_err(|e| format!("the LP relaxation did not solve: {e}"))?;
    Ok(RelaxedBound {
        worst_ratio: solution.value(t),
        variables,
        constraints,
        cells: cells.len(),
    })
}
