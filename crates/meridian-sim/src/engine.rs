//! The simulation loop for one strategy: simulated time in fixed ticks, the same workload and
//! faults for every strategy, the strategy consulted at each control interval, its intents
//! carried out on its own world, and everything measured. Nothing here reads a clock or
//! draws a random number: the run is a pure function of its inputs.

use meridian_model::{Fleet, NodeId, Placement};
use meridian_planner::path::{Network, Resources};

use crate::accounting::Accounts;
use crate::executor::{self, Context, PlanRun};
use crate::faults::{FaultSchedule, FaultState};
use crate::load::{capacity_now, limit_now, steady_load};
use crate::measure::{Saturation, Series, Summary};
use crate::strategy::{Decision, Strategy, View};
use crate::workload::{Snapshot, Workload};
use crate::world::{PartId, World};

/// A copy that has not moved a byte for this long is given up, as executors time out tasks
/// (its partial replica is dropped; the strategy sees the partition as it was).
pub const STALL_TIMEOUT_S: f64 = 1800.0;

/// Everything every strategy's run shares.
pub struct Setup<'a> {
    pub base: &'a Fleet,
    pub initial: &'a Placement,
    pub workload: &'a Workload,
    pub faults: &'a FaultSchedule,
    pub duration_s: f64,
    pub tick_s: f64,
    /// How often the strategy is consulted.
    pub control_interval_s: f64,
    /// How long a product takes to elect a new leader on its own after its leader's node dies.
    pub failover_s: f64,
    /// How often the plotted series take a point.
    pub sample_s: f64,
}

/// One strategy's run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub strategy: String,
    pub summary: Summary,
    pub series: Series,
    /// The resources that were ever over capacity, worst first.
    pub saturated: Vec<(String, Saturation)>,
}

/// A replica's transition burst: `heat` on its node's chain until `end_s`.
struct Burst {
    end_s: f64,
    node: NodeId,
    heat: Vec<f64>,
}

/// The loop's state between ticks.
struct Run<'a> {
    setup: &'a Setup<'a>,
    resources: Resources,
    network: Network,
    world: World,
    /// Plans being carried out (a new one may start while an older one finishes).
    plans: Vec<PlanRun>,
    plans_made: u32,
    snapshot: Snapshot,
    faults: FaultState,
    /// Heat per group and state now, and as telemetry last showed it.
    heat: Vec<Vec<Vec<f64>>>,
    observed_heat: Vec<Vec<Vec<f64>>>,
    observed_steady: Vec<f64>,
    observed_access: Vec<Vec<(meridian_model::RegionId, f64)>>,
    was_down: Vec<bool>,
    leaderless_since: Vec<Option<f64>>,
    accounts: Accounts,
    /// The world and the set of dead nodes as last checked.
    checked: (u64, Vec<bool>),
    /// Transition bursts in progress (a promotion's catch-up, a model's weights pull).
    bursts: Vec<Burst>,
}

/// Runs `strategy` from the initial placement to the end; `progress` is told the share done.
pub fn run(setup: &Setup, strategy: &mut dyn Strategy, progress: &mut dyn FnMut(f64)) -> Outcome {
    let mut run = Run::new(setup);
    let ticks = (setup.duration_s / setup.tick_s).ceil().max(1.0) as usize;
    let control_every = (setup.control_interval_s / setup.tick_s).round().max(1.0) as usize;
    let sample_every = (setup.sample_s / setup.tick_s).round().max(1.0) as usize;
    for k in 0..ticks {
        let t = k as f64 * setup.tick_s;
        run.observe_world(t);
        if k % control_every == 0 && !run.faults.is_controller_down() {
            run.consult(strategy, t);
        }
        run.execute(t);
        run.tick(t, strategy.throttles_to_limits(), k % sample_every == 0);
        if k % 64 == 0 {
            progress(k as f64 / ticks as f64);
        }
    }
    progress(1.0);
    let (summary, series, saturated) = run.accounts.finish(setup.base, run.resources);
    Outcome {
        strategy: strategy.name().to_string(),
        summary,
        series,
        saturated,
    }
}

impl<'a> Run<'a> {
    fn new(setup: &'a Setup<'a>) -> Run<'a> {
        let base = setup.base;
        let world = World::new(base, setup.initial);
        let resources = Resources::new(base);
        let heat: Vec<Vec<Vec<f64>>> = base.groups.iter().map(|g| g.heat.clone()).collect();
        let nodes = base.topology.nodes.len();
        Run {
            setup,
            resources,
            network: Network::new(base),
            leaderless_since: vec![None; world.parts.count()],
            world,
            plans: Vec::new(),
            plans_made: 0,
            snapshot: Snapshot::default(),
            faults: FaultState::default(),
            observed_heat: heat.clone(),
            heat,
            observed_steady: vec![0.0; resources.count()],
            observed_access: vec![Vec::new(); base.groups.len()],
            was_down: vec![false; nodes],
            accounts: Accounts::new(base, resources),
            checked: (u64::MAX, Vec::new()),
            bursts: Vec::new(),
        }
    }

    /// Brings workload and faults to `t`: nodes that die lose their copies in flight, nodes
    /// that come back discard replicas that were replaced meanwhile, and products elect new
    /// leaders on their own.
    fn observe_world(&mut self, t: f64) {
        let setup = self.setup;
        setup.workload.at_into(t, &mut self.snapshot);
        setup.faults.at_into(t, &mut self.faults);
        let scaling = setup.workload.heat_scaling();
        for (g, group) in setup.base.groups.iter().enumerate() {
            let load = self.snapshot.group(meridian_model::GroupId(g as u32));
            for (s, declared) in group.heat.iter().enumerate() {
                scaling.apply_into(declared, load, &mut self.heat[g][s]);
            }
        }
        for n in 0..self.was_down.len() {
            let down = self.faults.node_down()[n];
            if down && !self.was_down[n] {
                self.node_died(NodeId(n as u32));
            } else if !down && self.was_down[n] {
                self.node_returned(NodeId(n as u32));
            }
            self.was_down[n] = down;
        }
        self.fail_over(t);
    }

    fn node_died(&mut self, node: NodeId) {
        let lost: Vec<(PartId, NodeId)> = self
            .world
            .transfers
            .iter()
            .filter(|tr| tr.source == node || tr.target == node)
            .map(|tr| (tr.part, tr.target))
            .collect();
        for (part, target) in lost {
            let step = self
                .world
                .transfers
                .iter()
                .find(|tr| tr.part == part && tr.target == target)
                .and_then(|tr| tr.step);
            self.world.drop_replica(part, target);
            if let Some(plan) = step.and_then(|at| self.plan_mut(at.plan)) {
                plan.ended(step.map_or(0, |at| at.position as usize));
            }
        }
    }

    /// A node back from the dead: its replicas of partitions that have all their replicas
    /// elsewhere by now are stale and discarded; the others serve again.
    fn node_returned(&mut self, node: NodeId) {
        let down = self.faults.node_down().to_vec();
        for part in 0..self.world.parts.count() {
            if self.world.held_at(part, node).is_none() {
                continue;
            }
            let (group, _) = self.world.parts.locate(part);
            let wanted = self.setup.base.group(group).replicas_per_partition();
            let elsewhere = self.world.replicas[part]
                .iter()
                .filter(|h| h.node != node && !down[h.node.index()])
                .count();
            if elsewhere >= wanted {
                self.world.drop_replica(part, node);
                continue;
            }
            // A leader that comes back to find another elected steps down (its epoch is
            // stale): products fence old leaders, whatever placed the new one.
            let model = self.setup.base.product_of(group);
            let Some(leader) = model.leader else { continue };
            let other_leader = self.world.replicas[part]
                .iter()
                .any(|h| h.node != node && h.ready && !down[h.node.index()] && h.state == leader);
            let demote_to = executor::leader_steps_down_to(model, leader);
            if let (true, Some(demote_to)) = (other_leader, demote_to) {
                self.world.set_state(part, node, leader, demote_to);
            }
        }
    }

    /// Product-native failover: a partition whose leader is gone gets one of its serving
    /// followers promoted after `failover_s`, whatever the strategy.
    fn fail_over(&mut self, t: f64) {
        let base = self.setup.base;
        let down = self.faults.node_down().to_vec();
        for part in 0..self.world.parts.count() {
            let (group, _) = self.world.parts.locate(part);
            let model = base.product_of(group);
            let Some(leader) = model.leader else { continue };
            let held = &self.world.replicas[part];
            let serving = |h: &&crate::world::Held| h.ready && !down[h.node.index()];
            if held.is_empty() || held.iter().filter(serving).any(|h| h.state == leader) {
                self.leaderless_since[part] = None;
                continue;
            }
            let since = *self.leaderless_since[part].get_or_insert(t);
            if t - since < self.setup.failover_s {
                continue;
            }
            let heir = held
                .iter()
                .filter(serving)
                .filter(|h| model.allows(h.state, leader))
                .map(|h| (h.node, h.state))
                .min();
            let Some((heir, from)) = heir else { continue };
            let old = held.iter().find(|h| h.state == leader).map(|h| h.node);
            if let (Some(old), Some(demote_to)) =
                (old, executor::leader_steps_down_to(model, leader))
            {
                self.world.set_state(part, old, leader, demote_to);
            }
            if self.world.set_state(part, heir, from, leader) {
                let promoted = executor::Transition {
                    part,
                    node: heir,
                    from,
                    to: leader,
                };
                self.start_bursts(t, &[promoted]);
            }
            self.leaderless_since[part] = None;
        }
    }

    /// Telemetry reaches the strategy (unless lost), then the strategy decides.
    fn consult(&mut self, strategy: &mut dyn Strategy, t: f64) {
        let base = self.setup.base;
        let down = self.faults.node_down().to_vec();
        if !self.faults.telemetry_lost_everywhere() {
            let mut steady = steady_load(base, self.resources, &self.world, &self.heat, &down);
            // A node whose agent went quiet keeps showing its last numbers.
            for n in 0..down.len() {
                let node = NodeId(n as u32);
                if self.faults.is_telemetry_lost(node) {
                    let first = self.resources.domain(base.topology.node_domain(node), 0);
                    let cells = first..first + self.resources.dims;
                    steady[cells.clone()].copy_from_slice(&self.observed_steady[cells]);
                }
            }
            self.observed_steady = steady;
            self.observed_heat.clone_from(&self.heat);
            for (g, access) in self.observed_access.iter_mut().enumerate() {
                let by_region = self
                    .snapshot
                    .access_by_region(meridian_model::GroupId(g as u32));
                *access = crate::simulate::shares(&by_region);
            }
        }
        self.plans.retain(|p| !p.is_done());
        let busy = !self.world.transfers.is_empty() || !self.plans.is_empty();
        let mut in_progress = vec![false; self.world.parts.count()];
        for part in self.plans.iter().flat_map(|p| p.parts_in_progress()) {
            in_progress[part] = true;
        }
        for tr in &self.world.transfers {
            in_progress[tr.part] = true;
        }
        let active: Vec<bool> = (0..base.groups.len())
            .map(|g| self.snapshot.active(meridian_model::GroupId(g as u32)))
            .collect();
        let view = View {
            t_s: t,
            base,
            parts: &self.world.parts,
            heat: &self.observed_heat,
            active: &active,
            access: &self.observed_access,
            down: &down,
            world: &self.world,
            steady: &self.observed_steady,
            resources: self.resources,
            busy,
            in_progress: &in_progress,
        };
        let decision = strategy.decide(&view);
        self.accounts.decided();
        let ctx = Context {
            fleet: base,
            network: &self.network,
            resources: self.resources,
            down: &down,
        };
        match decision {
            Decision::Idle => {}
            Decision::Plan(plan) => {
                self.plans_made += 1;
                let run = PlanRun::new(self.plans_made, plan, &ctx, &self.world);
                self.plans.push(run);
            }
            Decision::Moves(moves) => {
                let done = executor::start_moves(&moves, &ctx, &mut self.world);
                self.accounts.copies_started(done.copies_started);
                self.start_bursts(t, &done.transitions);
            }
        }
    }

    fn execute(&mut self, t: f64) {
        let down = self.faults.node_down().to_vec();
        let ctx = Context {
            fleet: self.setup.base,
            network: &self.network,
            resources: self.resources,
            down: &down,
        };
        let mut transitions = Vec::new();
        for plan in &mut self.plans {
            let done = plan.start_due(t, &ctx, &mut self.world);
            self.accounts.copies_started(done.copies_started);
            transitions.extend(done.transitions);
        }
        self.start_bursts(t, &transitions);
    }

    fn plan_mut(&mut self, id: u32) -> Option<&mut PlanRun> {
        self.plans.iter_mut().find(|p| p.id == id)
    }

    /// Transitions whose group declares a burst load their node's chain for its seconds,
    /// whoever ordered them: the catch-up or the weights pull happens either way.
    fn start_bursts(&mut self, t: f64, transitions: &[executor::Transition]) {
        for tr in transitions {
            let (group, _) = self.world.parts.locate(tr.part);
            if let Some(b) = self.setup.base.group(group).burst(tr.from, tr.to) {
                self.bursts.push(Burst {
                    end_s: t + b.seconds,
                    node: tr.node,
                    heat: b.heat.clone(),
                });
            }
        }
    }

    /// Adds the bursts in force at `t` to `load` (dropping the finished ones).
    fn add_bursts(&mut self, t: f64, load: &mut [f64]) {
        self.bursts.retain(|b| b.end_s > t);
        let topology = &self.setup.base.topology;
        for b in &self.bursts {
            for &domain in topology.chain(b.node) {
                let first = self.resources.domain(domain, 0);
                for (x, h) in b.heat.iter().enumerate() {
                    load[first + x] += h;
                }
            }
        }
    }

    /// One tick of physics: copy rates under throttles and shared links, loads, measures,
    /// then the copies advance and land.
    fn tick(&mut self, t: f64, throttled: bool, sample: bool) {
        let base = self.setup.base;
        let down = self.faults.node_down().to_vec();
        let mut steady = steady_load(base, self.resources, &self.world, &self.heat, &down);
        self.add_bursts(t, &mut steady);
        let capacity = capacity_now(base, self.resources, &self.faults);
        if throttled {
            let limit = limit_now(base, self.resources, &self.faults);
            throttle_to(&mut self.world, &steady, &limit);
        } else {
            for tr in &mut self.world.transfers {
                tr.rate = tr.rate_wanted;
            }
        }
        let transient = transient_load(&self.world, self.resources.count());
        share_overloaded(&mut self.world, &steady, &transient, &capacity);
        self.accounts.record(crate::accounting::Tick {
            t_s: t,
            dt_s: self.setup.tick_s,
            fleet: base,
            world: &self.world,
            snapshot: &self.snapshot,
            down: &down,
            steady: &steady,
            transient: &transient,
            capacity: &capacity,
            sample,
            throttled,
        });
        for stalled in self.world.abort_stalled(STALL_TIMEOUT_S) {
            self.accounts.copy_aborted();
            if let Some(step) = stalled.step {
                if let Some(plan) = self.plan_mut(step.plan) {
                    plan.abort(step.position as usize, stalled.part);
                }
            }
        }
        for landed in self.world.advance(self.setup.tick_s) {
            if let Some(node) = landed.then_drop {
                self.world.drop_replica(landed.part, node);
            }
            if let Some(step) = landed.step {
                if let Some(plan) = self.plan_mut(step.plan) {
                    plan.ended(step.position as usize);
                }
            }
        }
        // The placement invariants can only change when the world or the set of dead nodes
        // does: checking then is checking at the end of every tick.
        if self.checked.0 != self.world.changes || self.checked.1 != down {
            self.accounts.check_invariants(t, base, &self.world, &down);
            self.checked = (self.world.changes, down.clone());
        }
    }
}

/// Summed traffic of every copy at its current rate, per resource.
fn transient_load(world: &World, resources: usize) -> Vec<f64> {
    let mut load = vec![0.0; resources];
    for tr in &world.transfers {
        for &(r, per) in &tr.unit {
            load[r] += per * tr.rate;
        }
    }
    load
}

/// Meridian's executor only ever slows work: each copy runs at the rate it was booked at, or
/// slower if the load on its path has grown since it was planned, so steady plus copies stay
/// within every limit; a copy whose path is already at its limit pauses.
fn throttle_to(world: &mut World, steady: &[f64], limit: &[f64]) {
    let mut load = steady.to_vec();
    for tr in &mut world.transfers {
        let room = tr
            .unit
            .iter()
            .map(|&(r, per)| ((limit[r] - load[r]) / per).max(0.0))
            .fold(f64::INFINITY, f64::min);
        tr.rate = tr.rate_wanted.min(room);
        for &(r, per) in &tr.unit {
            load[r] += per * tr.rate;
        }
    }
}

/// Where copies ask more than a resource has left after its steady traffic, they share
/// what is left in proportion (as TCP flows roughly do); each copy then moves at the rate its
/// most crowded resource gives it.
fn share_overloaded(world: &mut World, steady: &[f64], transient: &[f64], capacity: &[f64]) {
    for tr in &mut world.transfers {
        let share = tr
            .unit
            .iter()
            .filter(|&&(r, _)| transient[r] > 0.0 && steady[r] + transient[r] > capacity[r])
            .map(|&(r, _)| ((capacity[r] - steady[r]).max(0.0) / transient[r]).min(1.0))
            .fold(1.0, f64::min);
        tr.rate *= share;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{PartIndex, Transfer};

    fn world_with(copies: &[(f64, Vec<(usize, f64)>)]) -> World {
        let fleet = crate::test_fleet::tiny_fleet();
        World {
            parts: PartIndex::new(&fleet),
            replicas: Vec::new(),
            transfers: copies
                .iter()
                .enumerate()
                .map(|(i, (rate, unit))| Transfer {
                    part: i,
                    source: NodeId(0),
                    target: NodeId(1),
                    bytes_left: 1e12,
                    bytes_total: 1e12,
                    rate_wanted: *rate,
                    rate: *rate,
                    unit: unit.clone(),
                    then_drop: None,
                    step: None,
                    stalled_s: 0.0,
                })
                .collect(),
            changes: 0,
        }
    }

    #[test]
    fn meridian_throttles_copies_to_what_the_limit_leaves_and_pauses_at_it() {
        // Resource 0: limit 1000, steady 600 → 400 left; each copy loads it 8 per MB/s.
        let mut world = world_with(&[(40.0, vec![(0, 8.0)]), (40.0, vec![(0, 8.0)])]);
        throttle_to(&mut world, &[600.0], &[1000.0]);
        assert_eq!(world.transfers[0].rate, 40.0); // 320 of the 400
        assert!((world.transfers[1].rate - 10.0).abs() < 1e-9); // the 80 left
        let mut full = world_with(&[(40.0, vec![(0, 8.0)])]);
        throttle_to(&mut full, &[1200.0], &[1000.0]);
        assert_eq!(full.transfers[0].rate, 0.0, "over the limit already: pause");
    }

    #[test]
    fn copies_share_what_an_overloaded_resource_leaves_in_proportion() {
        // Capacity 1000, steady 800: copies asking 200 + 200 get 100 each.
        let mut world = world_with(&[(25.0, vec![(0, 8.0)]), (25.0, vec![(0, 8.0), (1, 1.0)])]);
        let transient = transient_load(&world, 2);
        assert_eq!(transient, vec![400.0, 25.0]);
        share_overloaded(
            &mut world,
            &[800.0, 0.0],
            &transient,
            &[1000.0, f64::INFINITY],
        );
        assert!((world.transfers[0].rate - 12.5).abs() < 1e-9);
        assert!((world.transfers[1].rate - 12.5).abs() < 1e-9);
        let mut roomy = world_with(&[(25.0, vec![(0, 8.0)])]);
        let transient = transient_load(&roomy, 1);
        share_overloaded(&mut roomy, &[0.0], &transient, &[1000.0]);
        assert_eq!(roomy.transfers[0].rate, 25.0, "room to spare: untouched");
    }
}
