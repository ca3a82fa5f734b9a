//! The `exec` actuator: any product, driven by commands the operator configures per
//! transition (like Helix participants' state transition callbacks).
//!
//! The agent keeps the guarantees (fencing, one run per transition id, journaled outcomes);
//! the hooks do the product's work. Every hook gets the replica and the transition as
//! `{placeholders}` and `MERIDIAN_*` variables:
//!
//! | placeholder | variable | value |
//! |---|---|---|
//! | `{group}`, `{partition}`, `{node}`, `{dir}`, `{epoch}` | `MERIDIAN_GROUP`, ... | the replica, this node, its directory, the command's epoch |
//! | `{state}` | `MERIDIAN_STATE` | the state the replica ends in |
//! | `{id}` | `MERIDIAN_ID` | the transition id (stable across retries: dedupe on it) |
//! | `{action}` | `MERIDIAN_ACTION` | start, replicate, promote, demote, stop, follow, observe, ensure_running |
//! | `{from}` | `MERIDIAN_FROM` | the state it leaves (promote, demote, stop) |
//! | `{source_node}`, `{source_address}`, `{source_endpoint}` | `MERIDIAN_SOURCE_*` | where a copy reads from |
//! | `{bytes}`, `{rate_mbps}` | `MERIDIAN_BYTES`, `MERIDIAN_RATE_MBPS` | the copy's size and booked rate |
//! | `{handoff}` | `MERIDIAN_HANDOFF` | what the demoted leader reported (promote) |
//! | `{leader_node}`, `{leader_endpoint}` | `MERIDIAN_LEADER_*` | the leader to follow |
//!
//! Exit status 0 is success; anything else fails the transition with the tail of stderr; a
//! hook past its `timeout_ms` is killed with its whole process group. A hook left running by
//! an agent that died is killed before the transition runs again. Hooks talk back through
//! stdout lines (see [`hook`]).

pub mod config;
pub mod hook;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use meridian_wire::{Health, ReplicaKey, Source};

use crate::actuator::{
    Actuator, ActuatorError, Observation, Progress, ReplicaContext, TransitionContext,
};
use crate::config::HookConfig;
use crate::process::launch::{CommandLine, Placeholders};
pub use config::ExecConfig;
use hook::{Reported, Traces};

/// Hook output is appended here, in the replica's directory.
pub const HOOK_LOG: &str = "hooks.log";
/// The running hook's process group, for a restarted agent to kill.
const HOOK_PID_FILE: &str = ".meridian-hook.json";

pub struct ExecActuator {
    product: String,
    node: String,
    config: ExecConfig,
    /// The state each replica this actuator started is in, for `{state}` in observe hooks
    /// and to know, without an observe hook, that a replica runs.
    states: Mutex<BTreeMap<ReplicaKey, String>>,
    /// Replicas a hook is changing right now: observed as starting.
    busy: Mutex<BTreeSet<ReplicaKey>>,
}

/// What one hook run is about, beyond the replica.
#[derive(Default)]
struct Call<'a> {
    id: Option<&'a str>,
    from: Option<&'a str>,
    source: Option<&'a Source>,
    bytes: Option<u64>,
    rate_mbps: Option<f64>,
    handoff: Option<&'a str>,
    leader: Option<&'a Source>,
}

impl ExecActuator {
    pub fn new(
        product: &str,
        node: &str,
        config: ExecConfig,
    ) -> Result<ExecActuator, ActuatorError> {
        config
            .validate()
            .map_err(|(field, reason)| ActuatorError::Failed(format!("{field}: {reason}")))?;
        Ok(ExecActuator {
            product: product.to_string(),
            node: node.to_string(),
            config,
            states: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(BTreeSet::new()),
        })
    }

    fn command_line(
        &self,
        hook: &HookConfig,
        action: &'static str,
        replica: &ReplicaContext,
        state: &str,
        call: &Call<'_>,
    ) -> CommandLine {
        let mut extra: Vec<(&'static str, String)> = vec![("action", action.to_string())];
        let mut add = |name: &'static str, value: Option<String>| {
            extra.push((name, value.unwrap_or_default()));
        };
        add("id", call.id.map(str::to_string));
        add("from", call.from.map(str::to_string));
        add("source_node", call.source.map(|s| s.node.clone()));
        add(
            "source_address",
            call.source.and_then(|s| s.address.clone()),
        );
        add(
            "source_endpoint",
            call.source.and_then(|s| s.endpoint.clone()),
        );
        add("bytes", call.bytes.map(|b| b.to_string()));
        add("rate_mbps", call.rate_mbps.map(|r| r.to_string()));
        add("handoff", call.handoff.map(str::to_string));
        add("leader_node", call.leader.map(|s| s.node.clone()));
        add(
            "leader_endpoint",
            call.leader.and_then(|s| s.endpoint.clone()),
        );
        let values = Placeholders {
            replica: replica.replica.clone(),
            state: state.to_string(),
            node: self.node.clone(),
            dir: replica.replica_dir.clone(),
            epoch: replica.epoch,
            extra,
        };
        let mut env: Vec<(String, String)> = self.config.env.clone().into_iter().collect();
        env.extend(values.environment());
        CommandLine {
            argv: values.render(&hook.command),
            env,
            dir: replica.replica_dir.clone(),
        }
    }

    /// Runs `hook` for a transition of `replica`, which is busy meanwhile.
    async fn transition(
        &self,
        hook: &HookConfig,
        action: &'static str,
        replica: &ReplicaContext,
        state: &str,
        call: Call<'_>,
        progress: Option<&Progress>,
    ) -> Result<Reported, ActuatorError> {
        let dir = &replica.replica_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ActuatorError::io(format!("creating {}", dir.display()), e))?;
        let line = self.command_line(hook, action, replica, state, &call);
        let _busy = Busy::mark(&self.busy, &replica.replica);
        let traces = Traces {
            log: &dir.join(HOOK_LOG),
            leftover: Some(&dir.join(HOOK_PID_FILE)),
        };
        let timeout = Duration::from_millis(hook.timeout_ms);
        hook::run(&line, timeout, traces, progress)
            .await
            .map_err(|error| ActuatorError::Failed(format!("{action} hook: {error}")))
    }

    fn set_state(&self, replica: &ReplicaKey, state: Option<&str>) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(state) => states.insert(replica.clone(), state.to_string()),
            None => states.remove(replica),
        };
    }

    fn state_of(&self, replica: &ReplicaKey) -> Option<String> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(replica).cloned()
    }

    fn is_busy(&self, replica: &ReplicaKey) -> bool {
        let busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.contains(replica)
    }
}

/// Marks a replica busy for as long as it lives (also when the transition's future is
/// dropped mid-way).
struct Busy<'a> {
    set: &'a Mutex<BTreeSet<ReplicaKey>>,
    replica: ReplicaKey,
}

impl<'a> Busy<'a> {
    fn mark(set: &'a Mutex<BTreeSet<ReplicaKey>>, replica: &ReplicaKey) -> Busy<'a> {
        set.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(replica.clone());
        Busy {
            set,
            replica: replica.clone(),
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.replica);
    }
}

#[async_trait]
impl Actuator for ExecActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        debug_assert_eq!(ctx.product, self.product);
        let call = Call {
            id: Some(&ctx.id.0),
            ..Call::default()
        };
        let replica = ctx.replica_context();
        self.transition(
            &self.config.hooks.start,
            "start",
            &replica,
            state,
            call,
            None,
        )
        .await?;
        self.set_state(&ctx.replica, Some(state));
        Ok(())
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        let (hook, action) = match &self.config.hooks.replicate {
            Some(hook) => (hook, "replicate"),
            None => (&self.config.hooks.start, "start"),
        };
        let call = Call {
            id: Some(&ctx.id.0),
            source: Some(source),
            bytes: Some(bytes),
            rate_mbps: Some(rate_mbps),
            ..Call::default()
        };
        let replica = ctx.replica_context();
        let progress = Some(&ctx.progress);
        self.transition(hook, action, &replica, state, call, progress)
            .await?;
        self.set_state(&ctx.replica, Some(state));
        Ok(())
    }

    async fn promote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        if let Some(hook) = &self.config.hooks.promote {
            let call = Call {
                id: Some(&ctx.id.0),
                from: Some(from),
                handoff,
                ..Call::default()
            };
            let replica = ctx.replica_context();
            self.transition(hook, "promote", &replica, to, call, None)
                .await?;
        }
        self.set_state(&ctx.replica, Some(to));
        Ok(())
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
    ) -> Result<Option<String>, ActuatorError> {
        let mut handoff = None;
        if let Some(hook) = &self.config.hooks.demote {
            let call = Call {
                id: Some(&ctx.id.0),
                from: Some(from),
                ..Call::default()
            };
            let replica = ctx.replica_context();
            handoff = self
                .transition(hook, "demote", &replica, to, call, None)
                .await?
                .handoff;
        }
        self.set_state(&ctx.replica, Some(to));
        Ok(handoff)
    }

    async fn stop(&self, ctx: &TransitionContext, from: &str) -> Result<(), ActuatorError> {
        let call = Call {
            id: Some(&ctx.id.0),
            from: Some(from),
            ..Call::default()
        };
        let replica = ctx.replica_context();
        self.transition(&self.config.hooks.stop, "stop", &replica, from, call, None)
            .await?;
        self.set_state(&ctx.replica, None);
        // The hook deleted the product's data; the agent's traces go with the directory.
        match std::fs::remove_dir_all(&ctx.replica_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ActuatorError::io(
                format!("removing {}", ctx.replica_dir.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    async fn follow(
        &self,
        replica: &ReplicaContext,
        state: &str,
        leader: &Source,
    ) -> Result<(), ActuatorError> {
        let Some(hook) = &self.config.hooks.follow else {
            return Ok(());
        };
        let call = Call {
            leader: Some(leader),
            ..Call::default()
        };
        self.transition(hook, "follow", replica, state, call, None)
            .await
            .map(|_| ())
    }

    async fn observe(&self, replica: &ReplicaContext) -> Observation {
        if self.is_busy(&replica.replica) {
            return Observation::starting();
        }
        let Some(state) = self.state_of(&replica.replica) else {
            return Observation::failing();
        };
        let Some(hook) = &self.config.hooks.observe else {
            return Observation {
                health: Health::Serving,
                heat: Vec::new(),
                endpoint: None,
            };
        };
        let line = self.command_line(hook, "observe", replica, &state, &Call::default());
        let traces = Traces {
            log: &replica.replica_dir.join(HOOK_LOG),
            // Observations are short and never resumed.
            leftover: None,
        };
        let timeout = Duration::from_millis(hook.timeout_ms);
        match hook::run(&line, timeout, traces, None).await {
            Ok(reported) => Observation {
                health: reported.health.unwrap_or(Health::Serving),
                heat: reported.heat,
                endpoint: reported.endpoint,
            },
            Err(error) => {
                tracing::debug!(replica = %replica.replica, "observe hook: {error}");
                Observation::failing()
            }
        }
    }

    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        let (hook, action) = match &self.config.hooks.ensure_running {
            Some(hook) => (hook, "ensure_running"),
            None => (&self.config.hooks.start, "start"),
        };
        self.transition(hook, action, replica, state, Call::default(), None)
            .await?;
        self.set_state(&replica.replica, Some(state));
        Ok(())
    }
}
