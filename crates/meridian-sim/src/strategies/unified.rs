//! *unified*: Meridian itself — the solver with the full physical topology, then the planner,
//! whose copies are booked on every link, switch and PDU they cross. *oracle* is the same
//! controller fed the workload's true peak over the coming hours instead of what telemetry
//! shows now: an upper bound on what prediction could add.
//!
//! It acts only on a reason (hysteresis): a replica lost to a dead node, a partition short of
//! replicas, or a domain whose load nears its limit — and rebalances at most once per
//! cool-down, so a workload that is simply too hot for any placement does not churn.

use std::sync::Arc;

use meridian_model::{DomainId, Fleet, NodeId, Placement};
use meridian_solver::{Mode, Options as SolverOptions};

use crate::strategy::{Decision, Strategy, View};
use crate::view::fleet_view;
use crate::workload::Workload;

#[derive(Debug, Clone)]
pub struct UnifiedOptions {
    /// Rebalance moves per decision at most (repairs are never capped).
    pub moves_max: usize,
    /// Least time between two rebalances, seconds.
    pub rebalance_cooldown_s: f64,
    /// Rebalance once a domain's load reaches this share of its limit: early enough that
    /// the moves (which need room themselves) still fit.
    pub rebalance_above: f64,
    pub planner: meridian_planner::Options,
    pub seed: u64,
}

impl Default for UnifiedOptions {
    fn default() -> Self {
        UnifiedOptions {
            moves_max: 200,
            rebalance_cooldown_s: 1800.0,
            rebalance_above: 0.9,
            planner: meridian_planner::Options::default(),
            seed: 0,
        }
    }
}

/// What the oracle knows: the workload itself, and how far ahead it looks.
pub struct Foresight {
    pub workload: Arc<Workload>,
    pub horizon_s: f64,
    pub step_s: f64,
}

pub struct Unified {
    name: String,
    options: UnifiedOptions,
    foresight: Option<Foresight>,
    last_rebalance_s: f64,
}

impl Unified {
    pub fn new(options: UnifiedOptions) -> Unified {
        Unified {
            name: "unified".to_string(),
            options,
            foresight: None,
            last_rebalance_s: f64::NEG_INFINITY,
        }
    }

    pub fn oracle(options: UnifiedOptions, foresight: Foresight) -> Unified {
        Unified {
            name: "oracle".to_string(),
            foresight: Some(foresight),
            ..Unified::new(options)
        }
    }

    /// Heat to place on. Unified: per dimension, the larger of what telemetry shows and what
    /// the fleet declares (the operator's sizing, as a Kubernetes request is) — placing on
    /// the load of a quiet hour alone would fill nodes that the afternoon peak then
    /// overflows. Oracle: each group's true peak over the horizon.
    fn heat(&self, view: &View) -> Vec<Vec<Vec<f64>>> {
        let Some(f) = &self.foresight else {
            let mut heat = view.heat.to_vec();
            for (g, group) in view.base.groups.iter().enumerate() {
                for (row, declared) in heat[g].iter_mut().zip(&group.heat) {
                    for (h, d) in row.iter_mut().zip(declared) {
                        *h = h.max(*d);
                    }
                }
            }
            return heat;
        };
        let mut peak: Vec<Vec<Vec<f64>>> = view.heat.to_vec();
        let steps = (f.horizon_s / f.step_s.max(1.0)).ceil().clamp(1.0, 1000.0) as usize;
        let scaling = f.workload.heat_scaling();
        for k in 0..=steps {
            let t = (view.t_s + k as f64 * f.step_s).min(f.workload.duration_s());
            let future = f.workload.at(t);
            for (g, group) in view.base.groups.iter().enumerate() {
                let gid = meridian_model::GroupId(g as u32);
                for (row, declared) in peak[g].iter_mut().zip(&group.heat) {
                    let heat = future.scaled_heat(scaling, gid, declared);
                    for (p, v) in row.iter_mut().zip(heat) {
                        *p = p.max(v);
                    }
                }
            }
        }
        peak
    }
}

/// Whether a partition of an active group that nothing is under way for has fewer serving
/// replicas than it wants.
fn short_of_replicas(view: &View) -> bool {
    view.base.groups.iter().enumerate().any(|(g, group)| {
        view.active[g]
            && view
                .parts
                .of_group(meridian_model::GroupId(g as u32))
                .filter(|&part| !view.in_progress.get(part).copied().unwrap_or(false))
                .any(|part| {
                    let serving = view.world.replicas[part]
                        .iter()
                        .filter(|h| h.ready && !view.down[h.node.index()])
                        .count();
                    serving < group.replicas_per_partition()
                })
    })
}

/// The steady heat of the replicas being copied in, taken off the limits the solver places
/// against: they will stay. (Their copies' traffic is the planner's: `in_flight`.)
fn reserve_arriving(fleet: &mut Fleet, view: &View) {
    let resources = view.resources;
    let domain_cells = resources.domains * resources.dims;
    let mut held = vec![0.0; domain_cells];
    for tr in &view.world.transfers {
        if let Some(h) = view.world.held_at(tr.part, tr.target) {
            for &domain in fleet.topology.chain(tr.target) {
                let first = resources.domain(domain, 0);
                for (x, heat) in view.replica_heat(tr.part, h.state).iter().enumerate() {
                    held[first + x] += heat;
                }
            }
        }
    }
    for (limit, h) in fleet.limit.iter_mut().zip(&held) {
        *limit = (*limit - h).max(0.0);
    }
}

/// Copies still running, as loads the planner keeps booked for the whole new plan. Releasing
/// them when they should end at their booked rate was measured worse (the failure storm: 11.1
/// partition-hours below minimum instead of 8.3): copies the executor slowed run past that
/// time, the new plan books the room they still hold, and the throttle then stalls both. What
/// older plans will start later is not booked; the executor's throttle keeps every limit.
fn in_flight(view: &View) -> Vec<meridian_planner::InFlight> {
    view.world
        .transfers
        .iter()
        .filter(|tr| tr.rate_wanted > 0.0)
        .map(|tr| meridian_planner::InFlight {
            loads: tr
                .unit
                .iter()
                .map(|&(r, per)| meridian_planner::Load {
                    resource: view.resources.resource(r),
                    amount: per * tr.rate_wanted,
                })
                .collect(),
            until: f64::INFINITY,
        })
        .collect()
}

/// Keeps the partitions something is under way for as they are in `target`: their copies in
/// flight and pending steps belong to an earlier plan.
fn freeze_in_progress(fleet: &Fleet, view: &View, current: &Placement, target: &mut Placement) {
    for (part, _) in view
        .in_progress
        .iter()
        .enumerate()
        .filter(|(_, busy)| **busy)
    {
        let (group, partition) = view.parts.locate(part);
        let g = fleet.group(group);
        if partition >= g.partitions {
            continue; // An inactive group holds no slots in this view.
        }
        let first = g.partition_slot(partition);
        let range = first..first + g.replicas_per_partition();
        target.slots[range.clone()].copy_from_slice(&current.slots[range]);
    }
}

/// Whether a domain's load under `heat` has reached `share` of its limit.
fn near_limit(view: &View, heat: &[Vec<Vec<f64>>], share: f64) -> bool {
    let fleet = view.base;
    let load = crate::load::steady_load(fleet, view.resources, view.world, heat, view.down);
    let domain_cells = view.resources.domains * view.resources.dims;
    load[..domain_cells]
        .iter()
        .zip(&fleet.limit)
        .any(|(l, limit)| *l > *limit * share)
}

fn down_nodes(view: &View) -> Vec<NodeId> {
    view.down
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .map(|(n, _)| NodeId(n as u32))
        .collect()
}

impl Strategy for Unified {
    fn name(&self) -> &str {
        &self.name
    }

    fn throttles_to_limits(&self) -> bool {
        true
    }

    fn decide(&mut self, view: &View) -> Decision {
        // While earlier plans run, only repairs of partitions they do not touch are planned,
        // against limits that hold back what their copies in flight use; rebalancing waits
        // for them to finish.
        let short = short_of_replicas(view);
        if view.busy && !short {
            return Decision::Idle;
        }
        let heat = self.heat(view);
        let hot = !view.busy
            && near_limit(view, &heat, self.options.rebalance_above)
            && view.t_s - self.last_rebalance_s >= self.options.rebalance_cooldown_s;
        if !hot && !short {
            return Decision::Idle;
        }
        let mut fleet = fleet_view(view.base, &heat, view.access, view.active);
        reserve_arriving(&mut fleet, view);
        let failed = down_nodes(view);
        let serving = view.world.serving(view.down);
        let (current, _surplus) = meridian_solver::current::to_slots(&fleet, &serving);
        let drain: Vec<DomainId> = failed
            .iter()
            .map(|&n| fleet.topology.node_domain(n))
            .collect();
        let solution = meridian_solver::solve(
            &fleet,
            &serving,
            &SolverOptions {
                mode: Mode::Repair,
                seed: self.options.seed,
                rebalance: hot,
                moves_max: self.options.moves_max,
                drain,
                ..SolverOptions::default()
            },
        );
        if hot {
            self.last_rebalance_s = view.t_s;
        }
        let mut target = solution.placement;
        freeze_in_progress(&fleet, view, &current, &mut target);
        let options = meridian_planner::Options {
            failed,
            in_flight: in_flight(view),
            ..self.options.planner.clone()
        };
        let plan = meridian_planner::plan(&fleet, &current, &target, &options, view.t_s);
        if plan.steps.is_empty() {
            Decision::Idle
        } else {
            Decision::Plan(plan)
        }
    }
}
