//! A lower bound on the makespan of any plan for the same change, so a plan's length can be
//! judged against the physics: the bytes that must cross a resource over what it can spare,
//! the biggest copy at the fastest allowed rate, the concurrency and byte-budget limits.
//!
//! Valid for every routing: a resource is charged only with the copies that cross it whichever
//! source they use (the target's disk and NIC, and the target side of the tree below the
//! closest any source comes), and its spare capacity is what the replicas staying throughout
//! leave free.

use meridian_model::{Fleet, NodeId};

use crate::ledger::{describe, Ledger};
use crate::options::Options;
use crate::path::{Network, BITS_PER_BYTE, BYTES_PER_MB};
use crate::plan::MakespanBound;
use crate::schedule::PartView;

/// Keeps the longer of `best` and a candidate bound (its note is written only if it wins).
fn raise(best: &mut MakespanBound, seconds: f64, bottleneck: impl FnOnce() -> String) {
    if seconds > best.seconds {
        *best = MakespanBound {
            seconds,
            bottleneck: bottleneck(),
        };
    }
}

/// `start` is the ledger of the starting placement (the scheduler's, before it books
/// anything): building one walks every replica, so it is built once per plan; `network` is
/// the scheduler's route cache.
pub fn makespan_bound(
    fleet: &Fleet,
    network: &Network,
    start: &Ledger,
    parts: &[PartView],
    options: &Options,
) -> MakespanBound {
    let mut floor = start.clone();
    // What stays for the whole plan: the starting load less every replica that leaves, and
    // less the part of a state change that goes away.
    for part in parts {
        let group = fleet.group(part.group);
        for &(node, now, then) in &part.kept {
            let (now, then) = (&group.heat[now.index()], &group.heat[then.index()]);
            let reduction = |x: usize| (now[x] - then[x]).max(0.0);
            floor.apply_chain(fleet, node, now.len().min(then.len()), reduction, -1.0);
        }
    }
    // Replicas that leave: present now, not kept. Their nodes are sources not among `kept`.
    for part in parts {
        let group = fleet.group(part.group);
        let model = fleet.product_of(part.group);
        let mut leaving = part
            .sources
            .iter()
            .filter(|&&node| !part.kept.iter().any(|k| k.0 == node))
            .peekable();
        if leaving.peek().is_none() {
            continue;
        }
        // The state is unknown here; the lightest state is the safe reduction.
        let lightest: Vec<f64> = (0..fleet.dims_count())
            .map(|x| {
                (0..model.states.len())
                    .filter(|&s| s != model.initial.index())
                    .map(|s| group.heat[s][x])
                    .fold(f64::INFINITY, f64::min)
            })
            .map(|h| if h.is_finite() { h } else { 0.0 })
            .collect();
        for &node in leaving {
            floor.apply_chain(fleet, node, lightest.len(), |x| lightest[x], -1.0);
        }
    }
    let resources = floor.resources;
    // Per resource: load × seconds the copies crossing it need, and their bytes (for the note).
    let mut demand = vec![0.0; resources.count()];
    let mut demand_bytes = vec![0.0; resources.count()];
    let mut per_node_seconds = vec![0.0; fleet.topology.nodes.len()];
    let mut best = MakespanBound {
        seconds: 0.0,
        bottleneck: "nothing to copy".to_string(),
    };
    let mut total_bytes = 0.0;
    let net = fleet.dims.get("net_mbps").map(|d| d.index());
    let disk = fleet.dims.get("disk_mbps").map(|d| d.index());
    for part in parts {
        let bytes = fleet.group(part.group).size_bytes();
        if bytes == 0.0 || part.sources.is_empty() {
            continue;
        }
        for &target in &part.missing {
            total_bytes += bytes;
            let single = bytes / (options.rate_max * BYTES_PER_MB);
            raise(&mut best, single, || {
                format!(
                    "one copy of {:.1} GB at rate_max {:.0} MB/s",
                    bytes / 1e9,
                    options.rate_max
                )
            });
            per_node_seconds[target.index()] += single;
            // The closest any source comes: what every route crosses on the target's side.
            let closest = part
                .sources
                .iter()
                .map(|&s| (network.shared_levels(s, target), s))
                .max_by_key(|&(shared, s)| (shared, std::cmp::Reverse(s)));
            let Some((_, nearest)) = closest else {
                continue;
            };
            // What the copy crosses on the target's side.
            let target_side = network.target_side(nearest, target);
            if let Some(net) = net {
                for &domain in target_side {
                    let r = resources.domain(domain, net);
                    demand[r] += bytes / BYTES_PER_MB * BITS_PER_BYTE;
                    demand_bytes[r] += bytes;
                }
            }
            if let Some(disk) = disk {
                let r = resources.domain(fleet.topology.node_domain(target), disk);
                demand[r] += bytes / BYTES_PER_MB;
                demand_bytes[r] += bytes;
            }
            // Every source in one other region: the copy crosses that link whichever it uses.
            let target_region = fleet.topology.region_of(target);
            let first_region = fleet.topology.region_of(nearest);
            if first_region != target_region
                && part
                    .sources
                    .iter()
                    .all(|&s| fleet.topology.region_of(s) == first_region)
                && part.sources.len() > 1
            {
                let r = resources.link(first_region.index(), target_region.index());
                demand[r] += bytes / BYTES_PER_MB * BITS_PER_BYTE;
                demand_bytes[r] += bytes;
            }
            if part.sources.len() == 1 {
                per_node_seconds[nearest.index()] += single;
                for (r, coefficient) in network.per_rate(fleet, &resources, nearest, target) {
                    let already = matches!(resources.resource(r), crate::plan::Resource::Domain { domain, .. }
                        if target_side.contains(&domain) || domain == fleet.topology.node_domain(target));
                    if !already {
                        demand[r] += bytes / BYTES_PER_MB * coefficient;
                        demand_bytes[r] += bytes;
                    }
                }
            }
        }
    }
    for (r, &need) in demand.iter().enumerate() {
        let spare = floor.free(r);
        if need <= 0.0 || spare <= 0.0 || !spare.is_finite() {
            continue;
        }
        raise(&mut best, need / spare, || {
            format!(
                "{}: {:.1} GB must cross it with {:.0} free for copies",
                describe(fleet, &resources, r),
                demand_bytes[r] / 1e9,
                spare
            )
        });
    }
    let concurrency = f64::from(options.moves_per_node_max.max(1));
    for (n, &seconds) in per_node_seconds.iter().enumerate() {
        raise(&mut best, seconds / concurrency, || {
            format!(
                "node {}: its copies at rate_max, {} at a time (moves_per_node_max)",
                fleet.topology.node_name(NodeId(n as u32)),
                options.moves_per_node_max
            )
        });
    }
    if let Some(budget) = options.bytes_per_hour_max {
        raise(&mut best, total_bytes / budget * 3600.0, || {
            format!(
                "bytes_per_hour budget: {:.1} GB to move at {:.1} GB/h",
                total_bytes / 1e9,
                budget / 1e9
            )
        });
    }
    best
}
