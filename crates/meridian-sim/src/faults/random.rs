//! The random storm: faults drawn from the seed, all up front.

use meridian_model::{DomainId, Fleet, NodeId, RegionId, Topology};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::resolve::{event, is_network_domain};
use super::spec::RandomFaults;
use super::{Fault, FaultDims, FaultEvent, Link};
use crate::noise::combine;
use crate::spec_error::{check_above, check_range, SpecError};

/// Random faults of one kind per run at most: bounds the drawing loops and the event list.
pub const RANDOM_FAULTS_MAX: usize = 10_000;
/// Shortest random fault: shorter ones would fall between the engine's ticks unseen.
pub const RANDOM_FAULT_S_MIN: f64 = 60.0;
/// Keeps the storm's streams apart from every other use of the seed.
const FAULTS_STREAM: u64 = 0x6661_756C_7473; // "faults"
const PATH: &str = "faults.random";

/// The kinds a storm draws, each from its own stream (its index keys the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NodeCrash,
    PduLoss,
    LinkDegradation,
    SlowDisk,
    RegionPartition,
    TelemetryLoss,
    ControllerCrash,
}

const KINDS: [Kind; 7] = [
    Kind::NodeCrash,
    Kind::PduLoss,
    Kind::LinkDegradation,
    Kind::SlowDisk,
    Kind::RegionPartition,
    Kind::TelemetryLoss,
    Kind::ControllerCrash,
];

impl Kind {
    fn rate_field(self) -> &'static str {
        match self {
            Kind::NodeCrash => "node_crashes_per_day",
            Kind::PduLoss => "pdu_losses_per_day",
            Kind::LinkDegradation => "link_degradations_per_day",
            Kind::SlowDisk => "slow_disks_per_day",
            Kind::RegionPartition => "region_partitions_per_day",
            Kind::TelemetryLoss => "telemetry_losses_per_day",
            Kind::ControllerCrash => "controller_crashes_per_day",
        }
    }

    fn per_day(self, storm: &RandomFaults) -> f64 {
        match self {
            Kind::NodeCrash => storm.node_crashes_per_day,
            Kind::PduLoss => storm.pdu_losses_per_day,
            Kind::LinkDegradation => storm.link_degradations_per_day,
            Kind::SlowDisk => storm.slow_disks_per_day,
            Kind::RegionPartition => storm.region_partitions_per_day,
            Kind::TelemetryLoss => storm.telemetry_losses_per_day,
            Kind::ControllerCrash => storm.controller_crashes_per_day,
        }
    }
}

/// What random faults can hit in this fleet.
struct Targets<'a> {
    topology: &'a Topology,
    nodes: Vec<NodeId>,
    pdus: Vec<DomainId>,
    /// The nodes under each of `pdus`, in id order.
    pdu_nodes: Vec<Vec<NodeId>>,
    links: Vec<DomainId>,
    region_pairs: Vec<(RegionId, RegionId)>,
}

/// Draws the whole storm over `[0, duration_s)`.
pub(super) fn draw(
    storm: &RandomFaults,
    fleet: &Fleet,
    dims: &FaultDims,
    seed: u64,
    duration_s: f64,
) -> Result<Vec<FaultEvent>, SpecError> {
    validate(storm, duration_s)?;
    let targets = Targets::find(&fleet.topology, dims);
    let recovery = Exp::new(1.0 / storm.mean_recovery.seconds())
        .map_err(|error| SpecError::new(format!("{PATH}.mean_recovery"), error.to_string()))?;
    let mut events = Vec::new();
    for (stream, kind) in KINDS.into_iter().enumerate() {
        let per_day = kind.per_day(storm);
        if per_day == 0.0 {
            continue;
        }
        targets.check(kind)?;
        let mut rng = ChaCha8Rng::seed_from_u64(combine(seed, FAULTS_STREAM + stream as u64));
        for start_s in arrival_times(&mut rng, per_day, duration_s)? {
            let fault = targets.draw(kind, storm, &mut rng);
            let length_s = recovery.sample(&mut rng).max(RANDOM_FAULT_S_MIN);
            events.push(event(fleet, fault, start_s, Some(length_s), true));
        }
    }
    Ok(events)
}

fn validate(storm: &RandomFaults, duration_s: f64) -> Result<(), SpecError> {
    for kind in KINDS {
        let path = format!("{PATH}.{}", kind.rate_field());
        let per_day = kind.per_day(storm);
        check_range(&path, per_day, 0.0, f64::MAX)?;
        let expected = per_day * duration_s / 86_400.0;
        if expected > RANDOM_FAULTS_MAX as f64 / 2.0 {
            return Err(SpecError::new(
                path,
                format!(
                    "{per_day} a day over this scenario is about {expected:.0} faults; at most {} are supported",
                    RANDOM_FAULTS_MAX / 2
                ),
            ));
        }
    }
    check_above(
        &format!("{PATH}.mean_recovery"),
        storm.mean_recovery.seconds(),
        0.0,
    )?;
    check_range(
        &format!("{PATH}.link_capacity_factor"),
        storm.link_capacity_factor,
        0.0,
        1.0,
    )?;
    check_range(
        &format!("{PATH}.slow_disk_factor"),
        storm.slow_disk_factor,
        0.0,
        1.0,
    )
}

/// Start times of a Poisson process at `per_day` over `[0, duration_s)`.
fn arrival_times(
    rng: &mut ChaCha8Rng,
    per_day: f64,
    duration_s: f64,
) -> Result<Vec<f64>, SpecError> {
    let gaps_s =
        Exp::new(per_day / 86_400.0).map_err(|error| SpecError::new(PATH, error.to_string()))?;
    let mut times_s = Vec::new();
    let mut t_s = gaps_s.sample(rng);
    while t_s < duration_s && times_s.len() < RANDOM_FAULTS_MAX {
        times_s.push(t_s);
        t_s += gaps_s.sample(rng);
    }
    Ok(times_s)
}

impl<'a> Targets<'a> {
    fn find(topology: &'a Topology, dims: &FaultDims) -> Targets<'a> {
        let regions = topology.regions.len() as u16;
        let pdus = pdu_domains(topology);
        Targets {
            topology,
            nodes: topology.node_ids().collect(),
            pdu_nodes: nodes_under_each(topology, &pdus),
            pdus,
            links: topology
                .domain_ids()
                .filter(|&domain| is_network_domain(topology, domain))
                .filter(|&domain| topology.capacity_of(domain)[dims.net_mbps.index()].is_finite())
                .collect(),
            region_pairs: (0..regions)
                .flat_map(|a| ((a + 1)..regions).map(move |b| (RegionId(a), RegionId(b))))
                .collect(),
        }
    }

    /// An error at the kind's rate if this fleet has nothing it could hit.
    fn check(&self, kind: Kind) -> Result<(), SpecError> {
        let missing = match kind {
            Kind::NodeCrash | Kind::SlowDisk if self.nodes.is_empty() => "no node",
            Kind::PduLoss if self.pdus.is_empty() => {
                "no power-tree level above the one it shares with the network tree"
            }
            Kind::LinkDegradation if self.links.is_empty() => {
                "no network domain with a net_mbps capacity"
            }
            Kind::RegionPartition if self.region_pairs.is_empty() => "fewer than two regions",
            _ => return Ok(()),
        };
        Err(SpecError::new(
            format!("{PATH}.{}", kind.rate_field()),
            format!("the fleet has {missing} for these faults to hit"),
        ))
    }

    fn draw(&self, kind: Kind, storm: &RandomFaults, rng: &mut ChaCha8Rng) -> Fault {
        match kind {
            Kind::NodeCrash => Fault::NodeCrash {
                node: pick(&self.nodes, rng),
            },
            Kind::PduLoss => {
                let index = rng.random_range(0..self.pdus.len());
                Fault::PowerLoss {
                    domain: self.pdus[index],
                    nodes: self.pdu_nodes[index].clone(),
                }
            }
            Kind::LinkDegradation => Fault::LinkDegradation {
                link: Link::Domain(pick(&self.links, rng)),
                capacity_factor: storm.link_capacity_factor,
            },
            Kind::SlowDisk => {
                let node = pick(&self.nodes, rng);
                Fault::SlowDisk {
                    node,
                    domain: self.topology.node_domain(node),
                    factor: storm.slow_disk_factor,
                }
            }
            Kind::RegionPartition => Fault::RegionPartition {
                regions: pick(&self.region_pairs, rng),
            },
            Kind::TelemetryLoss => Fault::TelemetryLoss { nodes: None },
            Kind::ControllerCrash => Fault::ControllerCrash,
        }
    }
}

fn pick<T: Copy>(items: &[T], rng: &mut ChaCha8Rng) -> T {
    debug_assert!(!items.is_empty(), "checked by Targets::check");
    items[rng.random_range(0..items.len())]
}

/// Domains of the power tree's deepest level that the network tree does not share: the PDUs
/// of feed > pdu > rack > node.
fn pdu_domains(topology: &Topology) -> Vec<DomainId> {
    let level = topology
        .levels
        .iter()
        .enumerate()
        .filter(|(_, level)| level.network_depth.is_none())
        .filter_map(|(index, level)| level.power_depth.map(|depth| (depth, index)))
        .max();
    let Some((_, level)) = level else {
        return Vec::new();
    };
    topology
        .domain_ids()
        .filter(|&domain| topology.domain(domain).level.index() == level)
        .collect()
}

/// The nodes under each of `domains`, in one pass over the nodes' ancestor chains.
fn nodes_under_each(topology: &Topology, domains: &[DomainId]) -> Vec<Vec<NodeId>> {
    let mut slot_of_domain: Vec<Option<usize>> = vec![None; topology.domains.len()];
    for (slot, domain) in domains.iter().enumerate() {
        slot_of_domain[domain.index()] = Some(slot);
    }
    let mut nodes = vec![Vec::new(); domains.len()];
    for node in topology.node_ids() {
        for domain in topology.chain(node) {
            if let Some(slot) = slot_of_domain[domain.index()] {
                nodes[slot].push(node);
            }
        }
    }
    nodes
}
