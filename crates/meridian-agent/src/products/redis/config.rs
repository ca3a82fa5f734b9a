//! How a `redis` product is configured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::products::support::PortRange;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    #[serde(default = "default_server")]
    pub server: PathBuf,
    /// The user redis-server runs as (optional; the agent's own by default).
    #[serde(default)]
    pub run_as: Option<String>,
    pub ports: PortRange,
    /// Ports of the agent-side relays that hold copies to their booked rate (one per
    /// replica, claimed with its port).
    pub relay_ports: PortRange,
    #[serde(default = "default_leader_state")]
    pub leader_state: String,
    #[serde(default = "default_catch_up_timeout_ms")]
    pub catch_up_timeout_ms: u64,
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// Extra redis.conf lines (`maxmemory: 2gb`).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn default_server() -> PathBuf {
    PathBuf::from("redis-server")
}
fn default_leader_state() -> String {
    "Leader".into()
}
fn default_catch_up_timeout_ms() -> u64 {
    60_000
}
fn default_start_timeout_ms() -> u64 {
    10_000
}

impl RedisConfig {
    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.ports
            .validate()
            .map_err(|reason| ("ports".to_string(), reason))?;
        self.relay_ports
            .validate()
            .map_err(|reason| ("relay_ports".to_string(), reason))?;
        let overlap =
            self.ports.first <= self.relay_ports.last && self.relay_ports.first <= self.ports.last;
        if overlap {
            return Err(("relay_ports".into(), "overlaps ports".into()));
        }
        for (field, ms) in [
            ("catch_up_timeout_ms", self.catch_up_timeout_ms),
            ("start_timeout_ms", self.start_timeout_ms),
        ] {
            crate::config::check_duration(field, ms)?;
        }
        for (name, value) in &self.settings {
            let reserved = [
                "port",
                "bind",
                "dir",
                "daemonize",
                "pidfile",
                "replicaof",
                "slaveof",
            ];
            if name.is_empty() || name.contains(char::is_whitespace) || value.contains('\n') {
                return Err((
                    format!("settings.{name}"),
                    "one name and a one-line value".into(),
                ));
            }
            if reserved.contains(&name.as_str()) {
                return Err((format!("settings.{name}"), "set by the agent".into()));
            }
        }
        Ok(())
    }
}
