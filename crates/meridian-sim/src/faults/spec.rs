//! The `faults:` section of a scenario file, as written. See docs/sim-scenario.md.

use serde::Deserialize;

use crate::duration::HumanDuration;

/// Faults to inject: a list written by hand and, optionally, a storm drawn from the seed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Each entry is a one-key mapping (`- node_crash: {...}`), which YAML's serde mapping
    /// of enums would otherwise want written as a tag (`- !node_crash {...}`).
    #[serde(deserialize_with = "serde_yaml_ng::with::singleton_map_recursive::deserialize")]
    pub events: Vec<FaultEntry>,
    pub random: Option<RandomFaults>,
}

/// One written fault; in YAML a one-key mapping naming its kind:
/// `- node_crash: { node: n03, at: 2h, recover_after: 30m }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultEntry {
    NodeCrash(NodeCrash),
    PduLoss(PduLoss),
    LinkDegradation(LinkDegradation),
    SlowDisk(SlowDisk),
    RegionPartition(RegionPartition),
    TelemetryLoss(TelemetryLoss),
    ControllerCrash(ControllerCrash),
}

impl FaultEntry {
    /// The kind as written in YAML, for paths: `faults.events[2].pdu_loss.pdu`.
    pub fn kind(&self) -> &'static str {
        match self {
            FaultEntry::NodeCrash(_) => "node_crash",
            FaultEntry::PduLoss(_) => "pdu_loss",
            FaultEntry::LinkDegradation(_) => "link_degradation",
            FaultEntry::SlowDisk(_) => "slow_disk",
            FaultEntry::RegionPartition(_) => "region_partition",
            FaultEntry::TelemetryLoss(_) => "telemetry_loss",
            FaultEntry::ControllerCrash(_) => "controller_crash",
        }
    }
}

/// A node goes down (its replicas stop serving) and, if `recover_after` is given, is up
/// again after that long.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCrash {
    pub node: String,
    pub at: HumanDuration,
    #[serde(default)]
    pub recover_after: Option<HumanDuration>,
}

/// A power-tree domain (a PDU, a feed, a rack) loses power: every node under it goes down.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PduLoss {
    pub pdu: String,
    pub at: HumanDuration,
    #[serde(default)]
    pub recover_after: Option<HumanDuration>,
}

/// A network link runs at `capacity_factor` of its `net_mbps` capacity: either a network-tree
/// domain's uplink (`domain: r01`, a ToR; `domain: use1-a-sp1`, a spine) or the link between
/// two regions (`between: [us-east, eu-west]`). Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDegradation {
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub between: Option<[String; 2]>,
    pub at: HumanDuration,
    /// How long; until the end of the scenario if not given.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    pub capacity_factor: f64,
}

/// A node's disks run at `factor` of their `disk_mbps` and `disk_iops` capacity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowDisk {
    pub node: String,
    pub at: HumanDuration,
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    pub factor: f64,
}

/// No traffic between two regions (both directions).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPartition {
    pub regions: [String; 2],
    pub at: HumanDuration,
    #[serde(default)]
    pub duration: Option<HumanDuration>,
}

/// Strategies see stale telemetry: for every node (`scope: all`, the default), or for the
/// nodes under one domain (`scope: n03`, `scope: r01`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryLoss {
    pub at: HumanDuration,
    pub duration: HumanDuration,
    #[serde(default = "scope_all")]
    pub scope: String,
}

/// The scope keyword for every node; a domain named `all` cannot be scoped alone.
pub const SCOPE_ALL: &str = "all";

fn scope_all() -> String {
    SCOPE_ALL.to_string()
}

/// The control loop makes no decisions for `duration`; agents keep the last assignment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerCrash {
    pub at: HumanDuration,
    pub duration: HumanDuration,
}

/// A storm drawn from the seed: for each kind, a Poisson process at its `*_per_day` rate over
/// the whole scenario, each fault lasting an exponentially distributed time of mean
/// `mean_recovery` (at least a minute). Targets are drawn uniformly: a node; a PDU (the
/// power tree's level just above where it joins the network tree); a network domain with a
/// `net_mbps` capacity; a pair of regions. Random telemetry losses hit every node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFaults {
    pub node_crashes_per_day: f64,
    pub pdu_losses_per_day: f64,
    pub link_degradations_per_day: f64,
    pub slow_disks_per_day: f64,
    pub region_partitions_per_day: f64,
    pub telemetry_losses_per_day: f64,
    pub controller_crashes_per_day: f64,
    pub mean_recovery: HumanDuration,
    /// Capacity left on a randomly degraded link.
    pub link_capacity_factor: f64,
    /// Disk bandwidth and IOPS left on a random slow disk.
    pub slow_disk_factor: f64,
}

impl Default for RandomFaults {
    fn default() -> Self {
        RandomFaults {
            node_crashes_per_day: 0.0,
            pdu_losses_per_day: 0.0,
            link_degradations_per_day: 0.0,
            slow_disks_per_day: 0.0,
            region_partitions_per_day: 0.0,
            telemetry_losses_per_day: 0.0,
            controller_crashes_per_day: 0.0,
            mean_recovery: HumanDuration::from_seconds(1_800.0),
            link_capacity_factor: 0.5,
            slow_disk_factor: 0.25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_as_a_one_key_mapping() {
        let spec: FaultSpec = serde_yaml_ng::from_str(
            "events:
  - node_crash: { node: n03, at: 2h, recover_after: 30m }
  - pdu_loss: { pdu: use1-pdu-2, at: 6h }
  - link_degradation: { domain: r01, at: 3h, duration: 2h, capacity_factor: 0.5 }
  - link_degradation: { between: [us-east, eu-west], at: 3h, capacity_factor: 0.2 }
  - slow_disk: { node: n07, at: 1h, factor: 0.2 }
  - region_partition: { regions: [us-east, eu-west], at: 10h, duration: 20m }
  - telemetry_loss: { at: 12h, duration: 15m }
  - controller_crash: { at: 14h, duration: 10m }
random: { node_crashes_per_day: 2 }",
        )
        .unwrap();
        let kinds: Vec<&str> = spec.events.iter().map(FaultEntry::kind).collect();
        assert_eq!(
            kinds,
            [
                "node_crash",
                "pdu_loss",
                "link_degradation",
                "link_degradation",
                "slow_disk",
                "region_partition",
                "telemetry_loss",
                "controller_crash"
            ]
        );
        let FaultEntry::TelemetryLoss(loss) = &spec.events[6] else {
            panic!("expected a telemetry loss");
        };
        assert_eq!(loss.scope, "all");
        let random = spec.random.unwrap();
        assert_eq!(random.node_crashes_per_day, 2.0);
        assert_eq!(random.mean_recovery.seconds(), 1_800.0);
    }

    #[test]
    fn typos_are_rejected_with_the_expected_names() {
        let error = serde_yaml_ng::from_str::<FaultSpec>(
            "events: [ { node_crsh: { node: n03, at: 2h } } ]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("node_crsh") && error.contains("node_crash"),
            "{error}"
        );
        let error = serde_yaml_ng::from_str::<FaultSpec>(
            "events: [ { node_crash: { node: n03, at: 2h, recover: 5m } } ]",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("recover"), "{error}");
    }
}
