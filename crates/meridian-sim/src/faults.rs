//! The fault schedule of a scenario: which nodes are down, which links and disks run slow,
//! which regions cannot reach each other, when telemetry is stale and when the controller is
//! gone, at any instant.
//!
//! Everything is resolved and drawn once, in [`FaultSchedule::new`]: written faults are
//! checked against the fleet, and a random storm is drawn from the seed (each kind from its own
//! ChaCha8 stream, so raising one kind's rate does not move the others). The result is a fixed
//! list of events sorted by start; [`FaultSchedule::at`] is then a pure function of time.
//! A fault is in force on `[start_s, end_s)`.

mod random;
mod resolve;
mod spec;
mod state;

use meridian_model::{DimId, DomainId, Fleet, NodeId, RegionId};

use crate::duration::check_scenario_duration;
use crate::spec_error::SpecError;
use resolve::resolve_entry;

pub use random::{RANDOM_FAULTS_MAX, RANDOM_FAULT_S_MIN};
pub use spec::{
    ControllerCrash, FaultEntry, FaultSpec, LinkDegradation, NodeCrash, PduLoss, RandomFaults,
    RegionPartition, SlowDisk, TelemetryLoss, SCOPE_ALL,
};
pub use state::{CapacityFactor, FaultState, RegionLinkFactor};

/// A fault, resolved against the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    NodeCrash {
        node: NodeId,
    },
    /// A power-tree domain lost power; `nodes` are every node under it, in id order.
    PowerLoss {
        domain: DomainId,
        nodes: Vec<NodeId>,
    },
    LinkDegradation {
        link: Link,
        capacity_factor: f64,
    },
    /// `domain` is the node's own domain, whose disk capacities shrink.
    SlowDisk {
        node: NodeId,
        domain: DomainId,
        factor: f64,
    },
    /// `regions.0 < regions.1`.
    RegionPartition {
        regions: (RegionId, RegionId),
    },
    /// `None`: every node; otherwise the nodes under the scoped domain, in id order.
    TelemetryLoss {
        nodes: Option<Vec<NodeId>>,
    },
    ControllerCrash,
}

/// A degraded link: a network-tree domain's uplink, or the link between two regions
/// (`.0 < .1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Domain(DomainId),
    Regions(RegionId, RegionId),
}

/// One fault with its interval, for the engine and for the report's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultEvent {
    pub start_s: f64,
    /// When it is over; `None` if it lasts to the end of the run.
    pub end_s: Option<f64>,
    pub fault: Fault,
    /// Drawn from the seed's storm rather than written in the scenario.
    pub random: bool,
    pub description: String,
}

impl FaultEvent {
    pub fn is_active(&self, t_s: f64) -> bool {
        self.start_s <= t_s && self.end_s.is_none_or(|end_s| t_s < end_s)
    }
}

/// The dimensions faults act on, found once by name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultDims {
    pub net_mbps: DimId,
    pub disk_mbps: DimId,
    pub disk_iops: DimId,
}

impl FaultDims {
    fn resolve(fleet: &Fleet) -> Result<FaultDims, SpecError> {
        let dim = |name: &str| {
            fleet
                .dims
                .get(name)
                .ok_or_else(|| SpecError::new("fleet.dimensions", format!("no `{name}` dimension")))
        };
        Ok(FaultDims {
            net_mbps: dim("net_mbps")?,
            disk_mbps: dim("disk_mbps")?,
            disk_iops: dim("disk_iops")?,
        })
    }
}

/// Every fault of a run, fixed up front; sample it with [`FaultSchedule::at`].
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    /// Sorted by start; written faults before random ones at equal starts.
    events: Vec<FaultEvent>,
    /// Every start and end, sorted, without repeats.
    boundaries_s: Vec<f64>,
    node_count: usize,
    dims: FaultDims,
    duration_s: f64,
}

impl FaultSchedule {
    /// Resolves the written faults against `fleet` and draws the random storm over
    /// `[0, duration_s)` from `seed`. Errors name the field and the unknown name.
    pub fn new(
        spec: &FaultSpec,
        fleet: &Fleet,
        seed: u64,
        duration_s: f64,
    ) -> Result<FaultSchedule, SpecError> {
        check_scenario_duration(duration_s)?;
        let dims = FaultDims::resolve(fleet)?;
        let mut events = spec
            .events
            .iter()
            .enumerate()
            .map(|(index, entry)| resolve_entry(entry, fleet, duration_s, index))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(storm) = &spec.random {
            events.extend(random::draw(storm, fleet, &dims, seed, duration_s)?);
        }
        events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        let mut boundaries_s: Vec<f64> = events
            .iter()
            .flat_map(|event| std::iter::once(event.start_s).chain(event.end_s))
            .collect();
        boundaries_s.sort_by(f64::total_cmp);
        boundaries_s.dedup();
        Ok(FaultSchedule {
            events,
            boundaries_s,
            node_count: fleet.topology.nodes.len(),
            dims,
            duration_s,
        })
    }

    /// The faults in force at `t_s`.
    pub fn at(&self, t_s: f64) -> FaultState {
        let mut state = FaultState::default();
        self.at_into(t_s, &mut state);
        state
    }

    /// [`FaultSchedule::at`] into a state the caller reuses across ticks.
    pub fn at_into(&self, t_s: f64, state: &mut FaultState) {
        state.reset(t_s, self.node_count);
        let started = self.events.iter().take_while(|event| event.start_s <= t_s);
        for event in started.filter(|event| event.is_active(t_s)) {
            apply(&event.fault, &self.dims, state);
        }
        state.normalize();
    }

    /// Every fault, sorted by start.
    pub fn events(&self) -> &[FaultEvent] {
        &self.events
    }

    /// The first instant after `t_s` at which some fault starts or ends: between `t_s` and
    /// it, [`FaultSchedule::at`] does not change. `None` if nothing changes any more.
    pub fn next_change_after(&self, t_s: f64) -> Option<f64> {
        let index = self
            .boundaries_s
            .partition_point(|&boundary| boundary <= t_s);
        self.boundaries_s.get(index).copied()
    }

    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }
}

fn apply(fault: &Fault, dims: &FaultDims, state: &mut FaultState) {
    match fault {
        Fault::NodeCrash { node } => state.node_down[node.index()] = true,
        Fault::PowerLoss { nodes, .. } => {
            for node in nodes {
                state.node_down[node.index()] = true;
            }
        }
        Fault::LinkDegradation {
            link: Link::Domain(domain),
            capacity_factor,
        } => state.capacity_factors.push(CapacityFactor {
            domain: *domain,
            dim: dims.net_mbps,
            factor: *capacity_factor,
        }),
        Fault::LinkDegradation {
            link: Link::Regions(a, b),
            capacity_factor,
        } => state.region_link_factors.push(RegionLinkFactor {
            regions: (*a, *b),
            factor: *capacity_factor,
        }),
        Fault::SlowDisk { domain, factor, .. } => {
            for dim in [dims.disk_mbps, dims.disk_iops] {
                state.capacity_factors.push(CapacityFactor {
                    domain: *domain,
                    dim,
                    factor: *factor,
                });
            }
        }
        Fault::RegionPartition { regions } => state.partitioned.push(*regions),
        Fault::TelemetryLoss { nodes: None } => state.telemetry_lost_all = true,
        Fault::TelemetryLoss { nodes: Some(nodes) } => {
            for node in nodes {
                state.telemetry_lost[node.index()] = true;
            }
        }
        Fault::ControllerCrash => state.controller_down = true,
    }
}

#[cfg(test)]
mod tests;
