//! How a `postgres` product is configured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::products::support::PortRange;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Where initdb, pg_ctl, pg_basebackup and pg_controldata are.
    #[serde(default = "default_bin_dir")]
    pub bin_dir: PathBuf,
    /// The user PostgreSQL runs as (it refuses root); needed when the agent runs as root.
    #[serde(default)]
    pub run_as: Option<String>,
    pub ports: PortRange,
    /// The state that takes writes.
    #[serde(default = "default_leader_state")]
    pub leader_state: String,
    /// The database the agent connects to for its checks.
    #[serde(default = "default_database")]
    pub database: String,
    /// Tables compared between the old and the new leader at a hand-off (row count and an
    /// md5 of every row in primary-key order): the new leader must match before it takes
    /// writes.
    #[serde(default)]
    pub verify_tables: Vec<String>,
    /// How long a copy or a promotion may wait for the replica to catch up.
    #[serde(default = "default_catch_up_timeout_ms")]
    pub catch_up_timeout_ms: u64,
    /// How long `pg_ctl start` may take.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// Extra postgresql.conf settings (shared_buffers, synchronous_commit, ...).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

fn default_bin_dir() -> PathBuf {
    PathBuf::from("/usr/lib/postgresql/15/bin")
}
fn default_leader_state() -> String {
    "Leader".into()
}
fn default_database() -> String {
    "postgres".into()
}
fn default_catch_up_timeout_ms() -> u64 {
    60_000
}
fn default_start_timeout_ms() -> u64 {
    60_000
}

impl PostgresConfig {
    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.ports
            .validate()
            .map_err(|reason| ("ports".to_string(), reason))?;
        for (field, ms) in [
            ("catch_up_timeout_ms", self.catch_up_timeout_ms),
            ("start_timeout_ms", self.start_timeout_ms),
        ] {
            crate::config::check_duration(field, ms)?;
        }
        for (index, table) in self.verify_tables.iter().enumerate() {
            if !is_identifier(table) {
                let field = format!("verify_tables[{index}]");
                return Err((field, format!("`{table}` is not a plain table name")));
            }
        }
        for (name, value) in &self.settings {
            if !is_identifier(name) || value.contains(['\n', '\'']) {
                let field = format!("settings.{name}");
                return Err((
                    field,
                    "a setting name and a value without quotes or newlines".into(),
                ));
            }
        }
        if self.run_as.is_none() && nix::unistd::geteuid().is_root() {
            return Err((
                "run_as".into(),
                "PostgreSQL refuses to run as root: name the user to run it as (e.g. postgres)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Letters, digits, `_`, `.` (schema-qualified): safe to put in SQL and configuration text.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}
