//! How an `exec` product is configured: one command per transition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{check_command, check_duration, HookConfig};

/// Commands the agent runs for each transition of an `exec` product, as Helix
/// participants' transition callbacks are. Each gets the replica and the transition as
/// `{placeholders}` and `MERIDIAN_*` variables (docs/actuators.md lists them) and must be
/// idempotent: after an agent crash the same transition id runs again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    pub hooks: ExecHooks,
    /// Extra environment for every hook (names may not start `MERIDIAN_`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecHooks {
    /// Creates the replica in `{state}` with nothing to copy; also run on agent start to
    /// bring a replica back, unless `ensure_running` is given.
    pub start: HookConfig,
    /// Stops the replica and deletes it from this node.
    pub stop: HookConfig,
    /// Copies the replica from `{source_endpoint}` (or `{source_address}`, the source
    /// agent's data address) at no more than `{rate_mbps}` MB/s, then starts it in
    /// `{state}`. Without it, a copy runs `start` (the product copies its own data).
    #[serde(default)]
    pub replicate: Option<HookConfig>,
    /// Moves the replica into the leader state; `{handoff}` is what the demoted leader
    /// printed. Without it, a state change needs no action.
    #[serde(default)]
    pub promote: Option<HookConfig>,
    /// Moves the replica out of the leader state; may print `meridian:handoff <text>`.
    #[serde(default)]
    pub demote: Option<HookConfig>,
    /// Points the replica at `{leader_endpoint}` on `{leader_node}`.
    #[serde(default)]
    pub follow: Option<HookConfig>,
    /// Exit 0 means serving; may print `meridian:endpoint`, `meridian:heat` and
    /// `meridian:health` lines. Without it, a replica that started is serving.
    #[serde(default)]
    pub observe: Option<HookConfig>,
    /// Brings a replica back on agent start. Defaults to `start`.
    #[serde(default)]
    pub ensure_running: Option<HookConfig>,
}

/// Observation must come back within a sync's budget.
pub const OBSERVE_TIMEOUT_MS_MAX: u64 = 5_000;

impl ExecConfig {
    /// Checks the hooks; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (name, hook) in self.hooks.all() {
            check_command(&format!("hooks.{name}.command"), &hook.command)?;
            check_duration(&format!("hooks.{name}.timeout_ms"), hook.timeout_ms)?;
        }
        if let Some(observe) = &self.hooks.observe {
            if observe.timeout_ms > OBSERVE_TIMEOUT_MS_MAX {
                return Err((
                    "hooks.observe.timeout_ms".into(),
                    format!("at most {OBSERVE_TIMEOUT_MS_MAX} (it runs on every heartbeat)"),
                ));
            }
        }
        crate::config::check_env(&self.env)
    }
}

impl ExecHooks {
    /// Every configured hook with its name.
    pub fn all(&self) -> Vec<(&'static str, &HookConfig)> {
        let optional = [
            ("replicate", &self.replicate),
            ("promote", &self.promote),
            ("demote", &self.demote),
            ("follow", &self.follow),
            ("observe", &self.observe),
            ("ensure_running", &self.ensure_running),
        ];
        let mut hooks = vec![("start", &self.start), ("stop", &self.stop)];
        hooks.extend(
            optional
                .into_iter()
                .filter_map(|(name, hook)| hook.as_ref().map(|hook| (name, hook))),
        );
        hooks
    }
}
