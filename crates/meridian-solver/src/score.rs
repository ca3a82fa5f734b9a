//! Objectives and the rejection reasons of hard constraints, as typed values that the search,
//! `explain` and infeasibility reports all share.

use serde::Serialize;

use meridian_model::{DomainId, GroupId};

/// Floor under a level's lower bound when turning utilization into pressure, so a dimension
/// that is nearly idle everywhere does not dominate balance (2% vs 1% matters to nobody).
pub const BALANCE_TARGET_FLOOR: f64 = 0.25;

/// The weighted terms of one candidate's score; lower is better.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    /// Weighted balance term: peak pressure plus a share of the pressure summed over the chain.
    pub balance: f64,
    /// Highest pressure (utilization after placing, over its level's balance target) among
    /// the domains the replica would load, in the dimensions it loads.
    pub peak_pressure: f64,
    /// Each domain's highest pressure, summed along the chain.
    pub pressure_sum: f64,
    pub gravity: f64,
    pub cost: f64,
    pub movement: f64,
    pub affinity: f64,
}

impl Score {
    pub fn total(&self) -> f64 {
        self.balance + self.gravity + self.cost + self.movement + self.affinity
    }
}

/// Why a candidate cannot take a replica.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "constraint", rename_all = "snake_case")]
pub enum Rejection {
    /// The node fails the group's selector or residency.
    Eligibility,
    /// The candidate lies in a closed domain (drained, a failed node) or the one being relieved.
    Excluded { domain: DomainId },
    /// Placing would push `dim` of `domain` over its limit (capacity less headroom).
    Capacity {
        domain: DomainId,
        dim: usize,
        need: f64,
        free: f64,
    },
    /// Another replica of the partition already sits in this fault domain.
    Spread { domain: DomainId },
    /// A replica of a group this one must avoid already sits in this domain.
    AntiAffinity { group: GroupId, domain: DomainId },
    /// The partition is pinned elsewhere.
    Pin,
}

impl Rejection {
    pub fn constraint(&self) -> &'static str {
        match self {
            Rejection::Eligibility => "eligibility",
            Rejection::Excluded { .. } => "closed",
            Rejection::Capacity { .. } => "capacity",
            Rejection::Spread { .. } => "spread",
            Rejection::AntiAffinity { .. } => "anti_affinity",
            Rejection::Pin => "pin",
        }
    }
}
