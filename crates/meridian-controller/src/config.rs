//! How a controller runs: who it is, how it leads, how fast it reacts.

use std::time::Duration;

use meridian_store::keys::Keys;

use crate::detector::DetectorOptions;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Unique among the controllers of one cell (e.g. `host:port`).
    pub id: String,
    /// Where agents and operators reach this controller's API (published when it leads).
    pub api_url: String,
    pub keys: Keys,
    /// How long leadership outlives a leader that stopped renewing it: the failover time's
    /// main part (etcd's minimum is 1–2 s depending on its election timeout).
    pub lease_ttl: Duration,
    /// How often agents sync (told to them in every answer).
    pub heartbeat: Duration,
    /// The reconcile loop's period (it also runs at once when something changes).
    pub tick: Duration,
    pub detector: DetectorOptions,
    /// After becoming leader, how long to hear from agents before planning anew (so replicas
    /// are not taken for lost just because their agents have not synced yet). Running plans
    /// continue meanwhile.
    pub settle: Duration,
    /// Plans run at once; otherwise they wait as proposals for an operator's approval.
    pub auto_approve: bool,
    /// At most one new plan per this interval (hysteresis against a world that keeps
    /// changing).
    pub replan_interval_min: Duration,
    pub planner: meridian_planner::Options,
    pub seed: u64,
    /// Final plans kept in memory for the API (the store keeps them all).
    pub history_max: usize,
}

impl ControllerConfig {
    pub fn new(id: &str, api_url: &str) -> ControllerConfig {
        ControllerConfig {
            id: id.to_string(),
            api_url: api_url.to_string(),
            keys: Keys::default(),
            lease_ttl: Duration::from_secs(2),
            heartbeat: Duration::from_millis(500),
            tick: Duration::from_millis(200),
            detector: DetectorOptions::default(),
            settle: Duration::from_secs(3),
            auto_approve: true,
            replan_interval_min: Duration::from_secs(1),
            planner: meridian_planner::Options::default(),
            seed: 0,
            history_max: 50,
        }
    }
}
