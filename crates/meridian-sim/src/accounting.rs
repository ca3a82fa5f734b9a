//! Per-tick bookkeeping of one strategy's run (see [`crate::measure`] for what each measure
//! means) and the invariant checks, kept apart from the code that moves things.

use meridian_model::{Fleet, GroupId, NodeId};
use meridian_planner::path::Resources;

use crate::measure::VIOLATIONS_KEPT_MAX;
use crate::measure::{LatencyHistogram, Saturation, Series, Summary, RHO_MAX, SERVICE_MS};
use crate::workload::Snapshot;
use crate::world::World;

/// Seconds in the month prices are quoted per.
const MONTH_S: f64 = 30.0 * 86_400.0;
/// What a read that finds no serving replica costs its user: a timeout, ms.
const UNAVAILABLE_MS: f64 = 10_000.0;
/// Dimensions whose saturation makes requests queue (sizes do not).
const QUEUEING_DIMENSIONS: [&str; 4] = ["cpu", "disk_iops", "disk_mbps", "net_mbps"];
/// Overshoot reported for a resource with no capacity left at all (a partitioned link).
const OVERSHOOT_MAX: f64 = 1000.0;

/// One tick's facts, as the engine computed them.
pub struct Tick<'a> {
    pub t_s: f64,
    pub dt_s: f64,
    pub fleet: &'a Fleet,
    pub world: &'a World,
    pub snapshot: &'a Snapshot,
    pub down: &'a [bool],
    pub steady: &'a [f64],
    /// Copy traffic at the rates copies ask for (their demand).
    pub transient: &'a [f64],
    pub capacity: &'a [f64],
    pub sample: bool,
    /// The strategy promises its copies never overload anything (Meridian).
    pub throttled: bool,
}

pub struct Accounts {
    resources: Resources,
    latency: LatencyHistogram,
    saturation: Vec<Saturation>,
    summary: Summary,
    series: Series,
    /// Per watched (level, dimension): its label and the resources it covers.
    watched: Vec<(String, Vec<usize>)>,
    queueing_dims: Vec<usize>,
    /// Tightest instant so far: mean utilization over peak utilization.
    safe_utilization: f64,
}

impl Accounts {
    pub fn new(fleet: &Fleet, resources: Resources) -> Accounts {
        let queueing_dims = QUEUEING_DIMENSIONS
            .iter()
            .filter_map(|name| fleet.dims.get(name).map(|d| d.index()))
            .collect();
        let watched = watched_levels(fleet, resources);
        Accounts {
            resources,
            latency: LatencyHistogram::default(),
            saturation: vec![Saturation::default(); resources.count()],
            summary: Summary::default(),
            series: Series {
                level_peak: watched
                    .iter()
                    .map(|(l, _)| (l.clone(), Vec::new()))
                    .collect(),
                ..Series::default()
            },
            watched,
            queueing_dims,
            safe_utilization: 1.0,
        }
    }

    pub fn decided(&mut self) {
        self.summary.decisions += 1;
    }

    pub fn copy_aborted(&mut self) {
        self.summary.copies_aborted += 1;
    }

    pub fn copies_started(&mut self, count: u64) {
        self.summary.copies += count;
    }

    fn violation(&mut self, what: String) {
        self.summary.invariant_violations += 1;
        if self.summary.violations.len() < VIOLATIONS_KEPT_MAX {
            self.summary.violations.push(what);
        }
    }

    /// Placement invariants: at most one serving leader per partition; no replica, even one
    /// being copied in, on a node its group may not use (residency, selectors).
    pub fn check_invariants(&mut self, t_s: f64, fleet: &Fleet, world: &World, down: &[bool]) {
        for (part, held) in world.replicas.iter().enumerate() {
            let (group, partition) = world.parts.locate(part);
            let g = fleet.group(group);
            let model = fleet.product_of(group);
            if let Some(leader) = model.leader {
                let leaders = held
                    .iter()
                    .filter(|h| h.ready && !down[h.node.index()] && h.state == leader)
                    .count();
                if leaders > 1 {
                    self.violation(format!(
                        "t={t_s:.0}s {}/{partition}: {leaders} leaders",
                        g.name
                    ));
                }
            }
            for h in held {
                if !g.node_allowed(&fleet.topology, h.node) {
                    self.violation(format!(
                        "t={t_s:.0}s {}/{partition}: replica on `{}`, which the group may not use",
                        g.name,
                        fleet.topology.node_name(h.node)
                    ));
                }
            }
        }
    }

    pub fn record(&mut self, tick: Tick) {
        self.saturation(&tick);
        let rho = self.node_rho(&tick);
        let tick_latency = self.access(&tick, &rho);
        self.movement(&tick);
        self.availability(&tick);
        self.safe_utilization(&tick);
        if tick.sample {
            self.sample(&tick, &tick_latency);
        }
    }

    fn saturation(&mut self, tick: &Tick) {
        for r in 0..tick.capacity.len() {
            let capacity = tick.capacity[r];
            let demand = tick.steady[r] + tick.transient[r];
            if !capacity.is_finite() || demand <= capacity * (1.0 + 1e-9) || demand <= 0.0 {
                continue;
            }
            let overshoot = if capacity > 0.0 {
                (demand / capacity).min(OVERSHOOT_MAX)
            } else {
                OVERSHOOT_MAX
            };
            let s = &mut self.saturation[r];
            s.seconds += tick.dt_s;
            s.worst = s.worst.max(overshoot);
            if tick.transient[r] > 0.0 {
                s.with_copies_s += tick.dt_s;
                if tick.throttled {
                    let name = meridian_planner::ledger::describe(tick.fleet, &self.resources, r);
                    self.violation(format!(
                        "t={:.0}s {name}: over capacity ({:.0}%) with copies crossing it",
                        tick.t_s,
                        100.0 * overshoot
                    ));
                }
            }
        }
    }

    /// Per node: the utilization of the busiest queueing resource on its chain.
    fn node_rho(&self, tick: &Tick) -> Vec<f64> {
        let topology = &tick.fleet.topology;
        (0..topology.nodes.len())
            .map(|n| {
                let mut rho: f64 = 0.0;
                for &domain in topology.chain(NodeId(n as u32)) {
                    for &x in &self.queueing_dims {
                        let r = self.resources.domain(domain, x);
                        let capacity = tick.capacity[r];
                        if capacity.is_finite() && capacity > 0.0 {
                            rho = rho.max((tick.steady[r] + tick.transient[r]) / capacity);
                        }
                    }
                }
                rho
            })
            .collect()
    }

    /// Latency and egress of every region's reads of every partition this tick.
    fn access(&mut self, tick: &Tick, rho: &[f64]) -> LatencyHistogram {
        let mut this_tick = LatencyHistogram::default();
        let fleet = tick.fleet;
        let topology = &fleet.topology;
        let regions = topology.regions.len();
        for (g, group) in fleet.groups.iter().enumerate() {
            let gid = GroupId(g as u32);
            if !tick.snapshot.active(gid) || group.partitions == 0 {
                continue;
            }
            let access = tick.snapshot.access(gid);
            let load = tick.snapshot.load(gid).max(1e-12);
            let per_partition = 1.0 / group.partitions as f64;
            for part in tick.world.parts.of_group(gid) {
                let held = &tick.world.replicas[part];
                for (r, &a) in access.iter().enumerate().take(regions) {
                    if a <= 0.0 {
                        continue;
                    }
                    let reader = meridian_model::RegionId(r as u16);
                    let best = held
                        .iter()
                        .filter(|h| h.ready && !tick.down[h.node.index()])
                        .filter_map(|h| {
                            let served = topology.region_of(h.node);
                            let reachable = tick
                                .capacity
                                .get(self.resources.link(r, served.index()))
                                .is_none_or(|&c| c > 0.0 || served == reader);
                            let queue = 1.0 / (1.0 - rho[h.node.index()].min(RHO_MAX));
                            reachable.then(|| {
                                (
                                    topology.latency(reader, served) + SERVICE_MS * queue,
                                    served,
                                )
                            })
                        })
                        .min_by(|a, b| a.0.total_cmp(&b.0));
                    let weight = a * per_partition;
                    let latency = best.map_or(UNAVAILABLE_MS, |b| b.0);
                    self.latency.add(latency, weight * tick.dt_s);
                    this_tick.add(latency, weight);
                    if let Some((_, served)) = best.filter(|b| b.1 != reader) {
                        let gib =
                            group.reads_gib_per_month * per_partition * (a / load) * tick.dt_s
                                / MONTH_S;
                        self.summary.egress_cost +=
                            gib * topology.transfer_cost_per_gb(served, reader);
                    }
                }
            }
        }
        this_tick
    }

    /// Storage held, and copy traffic: bytes moved and what crossing regions costs.
    fn movement(&mut self, tick: &Tick) {
        let topology = &tick.fleet.topology;
        for (part, held) in tick.world.replicas.iter().enumerate() {
            let (group, _) = tick.world.parts.locate(part);
            let gib = tick.fleet.group(group).size_gib * tick.snapshot.size(group);
            for h in held {
                let price = topology.nodes[h.node.index()].cost_per_gib_month;
                self.summary.storage_cost += gib * price * tick.dt_s / MONTH_S;
            }
        }
        for tr in &tick.world.transfers {
            let bytes = tr.rate * crate::BYTES_PER_MB * tick.dt_s;
            self.summary.bytes_moved += bytes;
            let (from, to) = (topology.region_of(tr.source), topology.region_of(tr.target));
            if from != to {
                self.summary.transfer_cost += bytes / 1e9 * topology.transfer_cost_per_gb(from, to);
            }
        }
    }

    fn availability(&mut self, tick: &Tick) {
        let fleet = tick.fleet;
        for (part, held) in tick.world.replicas.iter().enumerate() {
            let (group, _) = tick.world.parts.locate(part);
            if !tick.snapshot.active(group) {
                continue;
            }
            let model = fleet.product_of(group);
            let wanted = fleet.group(group).replicas_per_partition();
            let serving = || {
                held.iter()
                    .filter(|h| h.ready && !tick.down[h.node.index()] && h.state != model.initial)
            };
            if serving().count() < (model.min_serving as usize).min(wanted) {
                self.summary.below_min_s += tick.dt_s;
            }
            if let Some(leader) = model.leader {
                if !serving().any(|h| h.state == leader) {
                    self.summary.leaderless_s += tick.dt_s;
                }
            }
        }
    }

    /// Mean node utilization (busiest queueing dimension) over the peak utilization of any
    /// resource: how full the fleet could run before its worst domain saturates.
    fn safe_utilization(&mut self, tick: &Tick) {
        let topology = &tick.fleet.topology;
        let mut mean: f64 = 0.0;
        for &x in &self.queueing_dims {
            let (mut used, mut capacity) = (0.0, 0.0);
            for n in topology.node_ids() {
                let r = self.resources.domain(topology.node_domain(n), x);
                if tick.capacity[r].is_finite() {
                    used += tick.steady[r];
                    capacity += tick.capacity[r];
                }
            }
            if capacity > 0.0 {
                mean = mean.max(used / capacity);
            }
        }
        let peak = peak_utilization(tick, 0..tick.capacity.len());
        if peak > 0.0 {
            self.safe_utilization = self.safe_utilization.min(mean / peak);
        }
    }

    fn sample(&mut self, tick: &Tick, latency: &LatencyHistogram) {
        let s = &mut self.series;
        s.t_s.push(tick.t_s);
        s.latency_p50_ms.push(latency.quantile(0.5));
        s.latency_p99_ms.push(latency.quantile(0.99));
        s.cost.push(
            self.summary.storage_cost + self.summary.transfer_cost + self.summary.egress_cost,
        );
        s.copies.push(self.summary.copies);
        s.bytes_moved.push(self.summary.bytes_moved);
        s.in_flight.push(tick.world.transfers.len());
        for ((_, cells), (_, series)) in self.watched.iter().zip(&mut s.level_peak) {
            series.push(peak_utilization(tick, cells.iter().copied()));
        }
    }

    pub fn finish(
        mut self,
        fleet: &Fleet,
        resources: Resources,
    ) -> (Summary, Series, Vec<(String, Saturation)>) {
        let mut saturated: Vec<(usize, Saturation)> = self
            .saturation
            .iter()
            .enumerate()
            .filter(|(_, s)| s.seconds > 0.0)
            .map(|(r, s)| (r, s.clone()))
            .collect();
        saturated.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds).then(a.0.cmp(&b.0)));
        let s = &mut self.summary;
        s.latency_p50_ms = self.latency.quantile(0.5);
        s.latency_p99_ms = self.latency.quantile(0.99);
        s.saturation_s = saturated
            .iter()
            .map(|x| x.1.seconds)
            .fold(0.0, |a, b| a + b);
        s.saturation_with_copies_s = saturated
            .iter()
            .map(|x| x.1.with_copies_s)
            .fold(0.0, |a, b| a + b);
        s.saturated_resources = saturated.len();
        if let Some((r, worst)) = saturated
            .iter()
            .max_by(|a, b| a.1.worst.total_cmp(&b.1.worst).then(b.0.cmp(&a.0)))
        {
            s.worst_overshoot = worst.worst;
            s.worst_resource = meridian_planner::ledger::describe(fleet, &resources, *r);
        }
        s.safe_utilization = self.safe_utilization;
        let named = saturated
            .into_iter()
            .map(|(r, sat)| {
                (
                    meridian_planner::ledger::describe(fleet, &resources, r),
                    sat,
                )
            })
            .collect();
        (self.summary, self.series, named)
    }
}

/// The highest demand over capacity among `cells` (finite, positive capacities only).
fn peak_utilization(tick: &Tick, cells: impl Iterator<Item = usize>) -> f64 {
    cells
        .filter(|&r| tick.capacity[r].is_finite() && tick.capacity[r] > 0.0)
        .map(|r| (tick.steady[r] + tick.transient[r]) / tick.capacity[r])
        .fold(0.0, f64::max)
}

/// The shared (above-node) levels and dimensions with any declared capacity, plus region
/// links: what the report plots over time.
fn watched_levels(fleet: &Fleet, resources: Resources) -> Vec<(String, Vec<usize>)> {
    let topology = &fleet.topology;
    let mut out = Vec::new();
    for (l, level) in topology.levels.iter().enumerate() {
        if l == topology.node_level.index() {
            continue;
        }
        for x in 0..resources.dims {
            let cells: Vec<usize> = topology
                .domain_ids()
                .filter(|&d| topology.domain(d).level.index() == l)
                .map(|d| resources.domain(d, x))
                .filter(|&r| topology.capacity[r].is_finite())
                .collect();
            if !cells.is_empty() {
                out.push((format!("{} {}", level.name, fleet.dims.names()[x]), cells));
            }
        }
    }
    let links: Vec<usize> = (0..resources.regions)
        .flat_map(|a| {
            (0..resources.regions)
                .filter(move |&b| b != a)
                .map(move |b| (a, b))
        })
        .map(|(a, b)| resources.link(a, b))
        .filter(|&r| {
            let i = r - resources.domains * resources.dims;
            topology.link_net_mbps[i].is_finite()
        })
        .collect();
    if !links.is_empty() {
        out.push(("region links".to_string(), links));
    }
    out
}
