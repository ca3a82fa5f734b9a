//! How a `redis` product is configured (`products.<name>.redis` in the agent's YAML).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::products::support::PortRange;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// The redis-server binary (looked up on `PATH` unless absolute).
    #[serde(default = "default_server")]
    pub server: PathBuf,
    /// The user redis-server runs as (optional; the agent's own by default).
    #[serde(default)]
    pub run_as: Option<String>,
    /// Ports the replicas' servers listen on (127.0.0.1), one per replica, kept across
    /// restarts in `<replica_dir>/port`.
    pub ports: PortRange,
    /// Ports of the agent-side relays that hold copies to their booked rate, one per replica,
    /// kept in `<replica_dir>/relay-port`. Disjoint from `ports`.
    pub relay_ports: PortRange,
    /// The state model's leader state: a replica started in it takes writes. Every other
    /// state is a read-only replica.
    #[serde(default = "default_leader_state")]
    pub leader_state: String,
    /// How long a replica may take to catch up with its source or with a handoff, on top of
    /// twice the copy's booked time (bytes / rate).
    #[serde(default = "default_catch_up_timeout_ms")]
    pub catch_up_timeout_ms: u64,
    /// How long a server may take to start (AOF loaded) or shut down.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// Which keys copies and promotions verify: a `SCAN MATCH` pattern; only keys of type
    /// stream are compared (length and last entry id).
    #[serde(default = "default_verify_keys")]
    pub verify_keys: String,
    /// At most this many streams are verified; a partition holding more fails verification
    /// with a message saying so, rather than stalling a server on an unbounded scan. Each
    /// stream adds about 60 bytes to a demotion's handoff, which the controller stores.
    #[serde(default = "default_verify_keys_max")]
    pub verify_keys_max: usize,
    /// Extra redis.conf lines, name → value (`maxmemory: 2gb`); they come after the agent's
    /// defaults, so they override them, except the names the agent owns (see
    /// [`RESERVED_SETTINGS`]).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// Directives the agent writes itself: where the server lives, that it is the agent's to
/// start and stop, its persistence, and its role and write fence (see the module
/// documentation). Changing them would break adoption, fencing or verification.
pub const RESERVED_SETTINGS: &[&str] = &[
    "port",
    "bind",
    "dir",
    "daemonize",
    "pidfile",
    "logfile",
    "include",
    "appendonly",
    "replicaof",
    "slaveof",
    "replica-read-only",
    "slave-read-only",
    "user",
    "aclfile",
    "requirepass",
    "masteruser",
    "masterauth",
    "rename-command",
];

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
fn default_verify_keys() -> String {
    "*".into()
}
fn default_verify_keys_max() -> usize {
    1_000
}

/// Above this many streams a verification would hold the servers' attention too long.
const VERIFY_KEYS_LIMIT: usize = 1_000_000;

impl RedisConfig {
    /// The defaults around the required port ranges.
    pub fn new(ports: PortRange, relay_ports: PortRange) -> RedisConfig {
        RedisConfig {
            server: default_server(),
            run_as: None,
            ports,
            relay_ports,
            leader_state: default_leader_state(),
            catch_up_timeout_ms: default_catch_up_timeout_ms(),
            start_timeout_ms: default_start_timeout_ms(),
            verify_keys: default_verify_keys(),
            verify_keys_max: default_verify_keys_max(),
            settings: BTreeMap::new(),
        }
    }

    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.server.as_os_str().is_empty() {
            return Err(("server".into(), "empty".into()));
        }
        if self.run_as.as_deref().is_some_and(str::is_empty) {
            return Err(("run_as".into(), "empty: omit it to run as the agent".into()));
        }
        self.ports
            .validate()
            .map_err(|reason| ("ports".to_string(), reason))?;
        self.relay_ports
            .validate()
            .map_err(|reason| ("relay_ports".to_string(), reason))?;
        let overlap =
            self.ports.first <= self.relay_ports.last && self.relay_ports.first <= self.ports.last;
        if overlap {
            return Err((
                "relay_ports".into(),
                format!(
                    "{}..{} overlaps ports {}..{}: a relay could take a server's port",
                    self.relay_ports.first,
                    self.relay_ports.last,
                    self.ports.first,
                    self.ports.last
                ),
            ));
        }
        if self.leader_state.trim().is_empty() {
            return Err(("leader_state".into(), "empty".into()));
        }
        for (field, ms) in [
            ("catch_up_timeout_ms", self.catch_up_timeout_ms),
            ("start_timeout_ms", self.start_timeout_ms),
        ] {
            crate::config::check_duration(field, ms)?;
        }
        self.validate_verification()?;
        for (name, value) in &self.settings {
            check_setting(name, value)?;
        }
        Ok(())
    }

    fn validate_verification(&self) -> Result<(), (String, String)> {
        if self.verify_keys.is_empty() || self.verify_keys.contains(char::is_whitespace) {
            return Err((
                "verify_keys".into(),
                "a SCAN MATCH pattern without spaces (`*` for every stream)".into(),
            ));
        }
        if self.verify_keys_max == 0 || self.verify_keys_max > VERIFY_KEYS_LIMIT {
            return Err((
                "verify_keys_max".into(),
                format!("must be within 1..={VERIFY_KEYS_LIMIT}"),
            ));
        }
        Ok(())
    }
}

fn check_setting(name: &str, value: &str) -> Result<(), (String, String)> {
    let field = format!("settings.{name}");
    let one_word = !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic());
    if !one_word || value.contains(['\n', '\r', '\0']) {
        return Err((field, "one directive name and a one-line value".into()));
    }
    if RESERVED_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err((
            field,
            "set by the agent (it places, fences and re-points the server itself)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RedisConfig {
        RedisConfig::new(
            PortRange {
                first: 7000,
                last: 7099,
            },
            PortRange {
                first: 7100,
                last: 7199,
            },
        )
    }

    fn field_of(config: &RedisConfig) -> String {
        config.validate().expect_err("invalid").0
    }

    #[test]
    fn defaults_are_valid_and_yaml_needs_only_the_ranges() {
        assert_eq!(valid().validate(), Ok(()));
        let yaml = "ports: {first: 7000, last: 7099}\nrelay_ports: {first: 7100, last: 7199}\n";
        let parsed: RedisConfig = serde_yaml_ng::from_str(yaml).expect("parses");
        assert_eq!(parsed, valid());
        let unknown = format!("{yaml}replicas: 3\n");
        assert!(serde_yaml_ng::from_str::<RedisConfig>(&unknown).is_err());
    }

    #[test]
    fn ranges_must_not_overlap() {
        let mut config = valid();
        config.relay_ports = PortRange {
            first: 7050,
            last: 7150,
        };
        assert_eq!(field_of(&config), "relay_ports");
        config.relay_ports = PortRange { first: 0, last: 10 };
        assert_eq!(field_of(&config), "relay_ports");
        let mut config = valid();
        config.ports = PortRange {
            first: 7099,
            last: 7000,
        };
        assert_eq!(field_of(&config), "ports");
    }

    #[test]
    fn settings_are_one_line_and_never_the_agents_own() {
        let mut config = valid();
        config.settings.insert("maxmemory".into(), "2gb".into());
        config.settings.insert("save".into(), "\"900 1\"".into());
        assert_eq!(config.validate(), Ok(()));
        for (name, value) in [
            ("replicaof", "10.0.0.1 6379"),
            ("USER", "default on nopass"),
            ("rename-command", "FLUSHALL \"\""),
            ("maxmemory", "2gb\nreplicaof 10.0.0.1 6379"),
            ("two words", "x"),
            ("", "x"),
        ] {
            let mut config = valid();
            config.settings.insert(name.into(), value.into());
            assert_eq!(field_of(&config), format!("settings.{name}"), "{name}");
        }
    }

    #[test]
    fn timeouts_and_verification_are_bounded() {
        let mut config = valid();
        config.catch_up_timeout_ms = 0;
        assert_eq!(field_of(&config), "catch_up_timeout_ms");
        let mut config = valid();
        config.verify_keys = "events *".into();
        assert_eq!(field_of(&config), "verify_keys");
        let mut config = valid();
        config.verify_keys_max = 0;
        assert_eq!(field_of(&config), "verify_keys_max");
        let mut config = valid();
        config.leader_state = " ".into();
        assert_eq!(field_of(&config), "leader_state");
    }
}
