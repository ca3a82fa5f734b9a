//! Written faults → resolved [`FaultEvent`]s: names looked up, numbers range-checked, and a
//! description for the event log.

use meridian_model::{DomainId, Fleet, NodeId, RegionId, Topology};

use super::spec::{
    ControllerCrash, FaultEntry, LinkDegradation, NodeCrash, PduLoss, RegionPartition, SlowDisk,
    TelemetryLoss, SCOPE_ALL,
};
use super::{Fault, FaultEvent, Link};
use crate::duration::{format_duration_s, time_within, HumanDuration};
use crate::spec_error::{check_above, check_range, unknown_name, SpecError};

/// Resolves `faults.events[index]`.
pub(super) fn resolve_entry(
    entry: &FaultEntry,
    fleet: &Fleet,
    duration_s: f64,
    index: usize,
) -> Result<FaultEvent, SpecError> {
    let path = format!("faults.events[{index}].{}", entry.kind());
    let topology = &fleet.topology;
    let (at, length, fault) = match entry {
        FaultEntry::NodeCrash(crash) => node_crash(crash, topology, &path)?,
        FaultEntry::PduLoss(loss) => pdu_loss(loss, topology, &path)?,
        FaultEntry::LinkDegradation(degradation) => link_degradation(degradation, topology, &path)?,
        FaultEntry::SlowDisk(slow) => slow_disk(slow, topology, &path)?,
        FaultEntry::RegionPartition(partition) => region_partition(partition, topology, &path)?,
        FaultEntry::TelemetryLoss(loss) => telemetry_loss(loss, topology, &path)?,
        FaultEntry::ControllerCrash(crash) => controller_crash(crash, &path)?,
    };
    let start_s = time_within(&format!("{path}.at"), at, duration_s)?;
    Ok(event(fleet, fault, start_s, length, false))
}

/// A resolved fault with its interval and description.
pub(super) fn event(
    fleet: &Fleet,
    fault: Fault,
    start_s: f64,
    length_s: Option<f64>,
    random: bool,
) -> FaultEvent {
    let lasting = match length_s {
        Some(length_s) => format!(" for {}", format_duration_s(length_s)),
        None => " until the end".to_string(),
    };
    let origin = if random { "random: " } else { "" };
    FaultEvent {
        start_s,
        end_s: length_s.map(|length_s| start_s + length_s),
        description: format!("{origin}{}{lasting}", describe(&fault, fleet)),
        fault,
        random,
    }
}

/// What a fault does, in words: `pdu use1-pdu-2 loses power (4 nodes down)`.
pub(super) fn describe(fault: &Fault, fleet: &Fleet) -> String {
    let topology = &fleet.topology;
    let domain = |id: DomainId| {
        let domain = topology.domain(id);
        format!("{} {}", topology.level_name(domain.level), domain.name)
    };
    let region = |id: RegionId| topology.regions[id.index()].name.clone();
    match fault {
        Fault::NodeCrash { node } => format!("node {} down", topology.node_name(*node)),
        Fault::PowerLoss { domain: id, nodes } => {
            format!("{} loses power ({} nodes down)", domain(*id), nodes.len())
        }
        Fault::LinkDegradation {
            link,
            capacity_factor,
        } => {
            let link = match link {
                Link::Domain(id) => domain(*id),
                Link::Regions(a, b) => format!("link {} | {}", region(*a), region(*b)),
            };
            format!("{link} at {:.0}% net_mbps", capacity_factor * 100.0)
        }
        Fault::SlowDisk { node, factor, .. } => format!(
            "slow disk on {} ({:.0}% disk_mbps and disk_iops)",
            topology.node_name(*node),
            factor * 100.0
        ),
        Fault::RegionPartition { regions: (a, b) } => {
            format!("region partition {} | {}", region(*a), region(*b))
        }
        Fault::TelemetryLoss { nodes: None } => "telemetry lost on every node".to_string(),
        Fault::TelemetryLoss { nodes: Some(nodes) } => {
            format!("telemetry lost on {} nodes", nodes.len())
        }
        Fault::ControllerCrash => "controller down".to_string(),
    }
}

type Resolved = (HumanDuration, Option<f64>, Fault);

fn node_crash(crash: &NodeCrash, topology: &Topology, path: &str) -> Result<Resolved, SpecError> {
    let node = node_named(topology, &crash.node, &format!("{path}.node"))?;
    let length = length_s(crash.recover_after, &format!("{path}.recover_after"))?;
    Ok((crash.at, length, Fault::NodeCrash { node }))
}

fn pdu_loss(loss: &PduLoss, topology: &Topology, path: &str) -> Result<Resolved, SpecError> {
    let domain = power_domain_named(topology, &loss.pdu, &format!("{path}.pdu"))?;
    let length = length_s(loss.recover_after, &format!("{path}.recover_after"))?;
    let nodes = topology.nodes_under(domain);
    Ok((loss.at, length, Fault::PowerLoss { domain, nodes }))
}

fn link_degradation(
    degradation: &LinkDegradation,
    topology: &Topology,
    path: &str,
) -> Result<Resolved, SpecError> {
    let link = match (&degradation.domain, &degradation.between) {
        (Some(name), None) => Link::Domain(network_domain_named(
            topology,
            name,
            &format!("{path}.domain"),
        )?),
        (None, Some(pair)) => {
            let (a, b) = region_pair(topology, pair, &format!("{path}.between"))?;
            Link::Regions(a, b)
        }
        _ => {
            return Err(SpecError::new(
                path,
                "name either a `domain` (a rack, spine, zone or region) or two regions \
                 `between: [a, b]`, not both",
            ))
        }
    };
    check_range(
        &format!("{path}.capacity_factor"),
        degradation.capacity_factor,
        0.0,
        1.0,
    )?;
    let length = length_s(degradation.duration, &format!("{path}.duration"))?;
    let fault = Fault::LinkDegradation {
        link,
        capacity_factor: degradation.capacity_factor,
    };
    Ok((degradation.at, length, fault))
}

fn slow_disk(slow: &SlowDisk, topology: &Topology, path: &str) -> Result<Resolved, SpecError> {
    let node = node_named(topology, &slow.node, &format!("{path}.node"))?;
    check_range(&format!("{path}.factor"), slow.factor, 0.0, 1.0)?;
    let length = length_s(slow.duration, &format!("{path}.duration"))?;
    let fault = Fault::SlowDisk {
        node,
        domain: topology.node_domain(node),
        factor: slow.factor,
    };
    Ok((slow.at, length, fault))
}

fn region_partition(
    partition: &RegionPartition,
    topology: &Topology,
    path: &str,
) -> Result<Resolved, SpecError> {
    let regions = region_pair(topology, &partition.regions, &format!("{path}.regions"))?;
    let length = length_s(partition.duration, &format!("{path}.duration"))?;
    Ok((partition.at, length, Fault::RegionPartition { regions }))
}

fn telemetry_loss(
    loss: &TelemetryLoss,
    topology: &Topology,
    path: &str,
) -> Result<Resolved, SpecError> {
    let nodes = if loss.scope == SCOPE_ALL {
        None
    } else {
        let domain = topology.domain_by_name(&loss.scope).ok_or_else(|| {
            let known = topology.domains.iter().map(|domain| domain.name.as_str());
            SpecError::new(
                format!("{path}.scope"),
                format!(
                    "{}; write `all` or a node or domain name",
                    unknown_name("node or domain", &loss.scope, known)
                ),
            )
        })?;
        Some(topology.nodes_under(domain))
    };
    let length = length_s(Some(loss.duration), &format!("{path}.duration"))?;
    Ok((loss.at, length, Fault::TelemetryLoss { nodes }))
}

fn controller_crash(crash: &ControllerCrash, path: &str) -> Result<Resolved, SpecError> {
    let length = length_s(Some(crash.duration), &format!("{path}.duration"))?;
    Ok((crash.at, length, Fault::ControllerCrash))
}

/// A fault's length if given; it must be positive (a zero-length fault never happens).
fn length_s(length: Option<HumanDuration>, path: &str) -> Result<Option<f64>, SpecError> {
    match length {
        None => Ok(None),
        Some(length) => {
            check_above(path, length.seconds(), 0.0)?;
            Ok(Some(length.seconds()))
        }
    }
}

pub(super) fn node_named(topology: &Topology, name: &str, path: &str) -> Result<NodeId, SpecError> {
    topology.node_by_name(name).ok_or_else(|| {
        let known = topology.node_ids().map(|node| topology.node_name(node));
        SpecError::new(path, unknown_name("node", name, known))
    })
}

/// Whether a domain is in the power tree and above the nodes: something whose loss of power
/// takes nodes down with it.
pub(super) fn is_power_domain(topology: &Topology, domain: DomainId) -> bool {
    let domain = topology.domain(domain);
    domain.node.is_none() && topology.levels[domain.level.index()].power_depth.is_some()
}

/// Whether a domain is in the network tree and above the nodes: a switch with an uplink.
pub(super) fn is_network_domain(topology: &Topology, domain: DomainId) -> bool {
    let domain = topology.domain(domain);
    domain.node.is_none()
        && topology.levels[domain.level.index()]
            .network_depth
            .is_some()
}

fn power_domain_named(topology: &Topology, name: &str, path: &str) -> Result<DomainId, SpecError> {
    domain_named(topology, name, path, "power domain", is_power_domain)
}

fn network_domain_named(
    topology: &Topology,
    name: &str,
    path: &str,
) -> Result<DomainId, SpecError> {
    domain_named(topology, name, path, "network domain", is_network_domain)
}

/// Looks up a domain that `fits` (e.g. is in the power tree); a name that exists but does not
/// fit is told apart from one that does not exist.
fn domain_named(
    topology: &Topology,
    name: &str,
    path: &str,
    what: &str,
    fits: fn(&Topology, DomainId) -> bool,
) -> Result<DomainId, SpecError> {
    match topology.domain_by_name(name) {
        Some(domain) if fits(topology, domain) => Ok(domain),
        Some(domain) => {
            let level = topology.level_name(topology.domain(domain).level);
            Err(SpecError::new(
                path,
                format!("\"{name}\" is a {level}, not a {what} above the nodes"),
            ))
        }
        None => {
            let known = topology
                .domain_ids()
                .filter(|&domain| fits(topology, domain))
                .map(|domain| topology.domain(domain).name.as_str());
            Err(SpecError::new(path, unknown_name(what, name, known)))
        }
    }
}

fn region_pair(
    topology: &Topology,
    names: &[String; 2],
    path: &str,
) -> Result<(RegionId, RegionId), SpecError> {
    let mut ids = [RegionId(0); 2];
    for (slot, name) in names.iter().enumerate() {
        ids[slot] = topology.region_by_name(name).ok_or_else(|| {
            let known = topology.regions.iter().map(|region| region.name.as_str());
            SpecError::new(
                format!("{path}[{slot}]"),
                unknown_name("region", name, known),
            )
        })?;
    }
    if ids[0] == ids[1] {
        return Err(SpecError::new(path, "name two different regions"));
    }
    Ok((ids[0].min(ids[1]), ids[0].max(ids[1])))
}
