//! The `redis` actuator (stream product): a partition replica is one redis-server with its
//! own directory, port (127.0.0.1) and append-only file; replicas follow their leader with
//! `REPLICAOF`.
//!
//! | transition | Redis |
//! |---|---|
//! | start, leader state | a new server, taking writes |
//! | start, other states | a new server, *fenced* (below) until `follow` names its leader |
//! | replicate | a fenced server syncs through an agent-side relay that holds the source's bytes to the booked rate; caught up and verified (every stream's length and last id, at one replication position), it is re-pointed at the source directly — a partial resync, no second copy (`copy.rs`) |
//! | demote | `CLIENT PAUSE WRITE`, fence, record replication id, offset and every stream (the handoff, kept in `handoff.json`), unpause, wait for the replicas' acknowledgements (`leadership.rs`) |
//! | promote | wait until its position reaches the handoff's, compare every stream, then `REPLICAOF NO ONE` and lift the fence; without a handoff (the leader died): refused while its old master answers and takes writes, caught up first with one that answers fenced, else promote what it has |
//! | follow | fence if needed, `REPLICAOF <leader>`; refused for a server that takes writes |
//! | stop | `SHUTDOWN NOSAVE NOW FORCE` (SIGKILL by pid file if it lingers), delete the directory |
//! | observe | `INFO` + `ACL DRYRUN` within 800 ms: health, `mem_gib`, endpoint |
//! | ensure_running | adopt the running server (port answers with our `config_file`) or start it as its configuration says; fence a non-leader that takes writes; never lift a fence |
//!
//! # The fence: the `default` user's write permission
//!
//! Whether a server takes writes is decided by ACL — `user default ... +@all -@write` — not
//! by its replication role. Every client connects as `default`, so `-@write` refuses every
//! write command (scripts and `MULTI` included, `EXEC` re-checks), on open connections from
//! their next command, while the master's replication stream, applied by an internal client
//! no ACL applies to, goes on. `CONFIG REWRITE` saves it, so a restarted server comes back
//! fenced. The alternatives fall short:
//! - parking a non-leader as `REPLICAOF` of some port nobody serves makes it read-only only
//!   as long as nothing ever answers there — whatever does later (another replica's server
//!   or relay) would be synced from, replacing this replica's data;
//! - `min-replicas-to-write` refuses writes only while too few replicas are connected, so it
//!   reopens the moment one connects: a policy, not a fence;
//! - `CLIENT PAUSE WRITE` alone ends with its timeout and with a restart;
//! - `SHUTDOWN` fences by stopping, but then the old leader cannot stream the last bytes to
//!   replicas that are behind, nor serve reads, until it follows its successor.
//!
//! So: a new non-leader starts fenced and is a master of nothing (its own, empty, history)
//! until `follow`; a demoted leader stays a fenced master that keeps streaming to its
//! replicas until it follows the new leader; only `start` in the leader state and `promote`
//! ever lift the fence. `replica-read-only yes` holds too, as a second line.
//!
//! # Files in a replica's directory
//!
//! `port` and `relay-port` (claimed once, kept for life: `ports.rs`), `redis.conf` (written
//! at creation, then kept by Redis's `CONFIG REWRITE`), `redis.pid`, `redis.log`, the
//! append-only files (`appendonlydir/`), and `handoff.json` after a demotion.
//!
//! # Leader state
//!
//! Which state takes writes is `leader_state` in the configuration (default `Leader`): a
//! `start` or `ensure_running` has no other way to know. So `promote` refuses a `to` that is
//! not it (an agent restart would otherwise fence that leader), and `demote` treats a server
//! that takes writes as a leader whatever `from` says (its successor needs the handoff).
//!
//! # Limits
//!
//! - Redis 7.0 or later (`ACL DRYRUN`, `CLIENT PAUSE WRITE`, `SHUTDOWN NOW FORCE`), checked
//!   when a server is adopted or started.
//! - Servers listen on 127.0.0.1 and report `127.0.0.1:<port>`: peers must be on this host.
//! - A copy is verified by comparing both sides at one replication position; a source taking
//!   writes faster than the replica can be caught at one (dozens of snapshots) fails the
//!   copy rather than pass it unverified.
//! - Only copies go through the relay. A resync Redis starts by itself — a follower whose
//!   history diverged from its new leader's, or one that fell out of its leader's backlog —
//!   is a direct, unthrottled full sync the planner did not book.

mod client;
pub mod config;
mod copy;
pub mod handoff;
mod info;
mod leadership;
mod observe;
mod ports;
mod relay;
mod server;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use meridian_wire::{ReplicaKey, Source};

use crate::actuator::{Actuator, ActuatorError, Observation, ReplicaContext, TransitionContext};
use crate::products::support::{claim_port, RunAs, PORT_FILE};
pub use config::RedisConfig;
use copy::{split_endpoint, Copy, Verify};
use server::{Launcher, Server, Writes};

/// The demotion's handoff, with the transition it belongs to.
pub const HANDOFF_FILE: &str = "handoff.json";

pub struct RedisActuator {
    product: String,
    config: RedisConfig,
    launcher: Launcher,
    /// The agent's replicas directory: ports are unique under it.
    replicas_root: PathBuf,
    /// Port claims read and then write files under `replicas_root`: two replicas claiming
    /// at once could otherwise pick the same port.
    claims: Mutex<()>,
}

impl RedisActuator {
    pub fn new(
        product: &str,
        config: RedisConfig,
        replicas_root: PathBuf,
    ) -> Result<RedisActuator, ActuatorError> {
        let invalid = |field: &str, reason: &str| {
            ActuatorError::Failed(format!("products.{product}.redis.{field}: {reason}"))
        };
        config
            .validate()
            .map_err(|(field, reason)| invalid(&field, &reason))?;
        let run_as = match &config.run_as {
            Some(name) => Some(RunAs::lookup(name).map_err(|reason| invalid("run_as", &reason))?),
            None => None,
        };
        let launcher = Launcher {
            binary: server::resolve_binary(&config.server),
            run_as,
            settings: config.settings.clone(),
            start_timeout: Duration::from_millis(config.start_timeout_ms),
        };
        Ok(RedisActuator {
            product: product.to_string(),
            config,
            launcher,
            replicas_root,
            claims: Mutex::new(()),
        })
    }

    fn is_leader(&self, state: &str) -> bool {
        state == self.config.leader_state
    }

    fn catch_up_timeout(&self) -> Duration {
        Duration::from_millis(self.config.catch_up_timeout_ms)
    }

    fn verify(&self) -> Verify<'_> {
        Verify {
            pattern: &self.config.verify_keys,
            keys_max: self.config.verify_keys_max,
        }
    }

    /// `<product> <replica>: <action>: <error>`, for the controller's report.
    fn failed(
        &self,
        replica: &ReplicaKey,
        action: &str,
        error: impl std::fmt::Display,
    ) -> ActuatorError {
        ActuatorError::Failed(format!("{} {replica}: {action}: {error}", self.product))
    }

    /// The replica's server, its directory created and its ports claimed on first use.
    fn server(&self, dir: &Path) -> Result<Server, String> {
        let _claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = claim_port(&dir, &self.replicas_root, self.config.ports)
            .map_err(|e| format!("port for {}: {e}", dir.display()))?;
        let relay_port =
            ports::claim_relay_port(&dir, &self.replicas_root, self.config.relay_ports)
                .map_err(|e| format!("relay port for {}: {e}", dir.display()))?;
        Ok(Server {
            dir,
            port,
            relay_port: Some(relay_port),
        })
    }

    /// The replica's server if it was ever given a port, creating nothing.
    fn existing(&self, dir: &Path) -> Result<Option<Server>, String> {
        let read = |name: &str| ports::read_port(&dir.join(name)).map_err(|e| e.to_string());
        let Some(port) = read(PORT_FILE)? else {
            return Ok(None);
        };
        let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let relay_port = read(ports::RELAY_PORT_FILE)?;
        Ok(Some(Server {
            dir,
            port,
            relay_port,
        }))
    }

    /// The replica's server, which must have been created before (`action` needs its data).
    fn created(&self, dir: &Path, action: &str) -> Result<Server, String> {
        match self.existing(dir)? {
            Some(server) if server.exists() => Ok(server),
            _ => Err(format!(
                "no server was ever created in {}: nothing to {action}",
                dir.display()
            )),
        }
    }

    async fn start_in(&self, dir: &Path, state: &str) -> Result<(), String> {
        let server = self.server(dir)?;
        let leader = self.is_leader(state);
        let writes = if leader {
            Writes::Allowed
        } else {
            Writes::Fenced
        };
        let (mut client, info) = server.ensure_started(&self.launcher, writes).await?;
        if !leader {
            if client.writable().await? {
                client.fence().await?;
            }
            return Ok(());
        }
        if info.is_replica() {
            client.follow_nobody().await?;
        }
        if !client.writable().await? {
            client.unfence().await?;
        }
        Ok(())
    }

    async fn replicate_in(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), String> {
        let endpoint = source
            .endpoint
            .as_deref()
            .ok_or_else(|| format!("the source on {} reports no endpoint", source.node))?;
        let server = self.server(&ctx.replica_dir)?;
        if endpoint == server.endpoint() {
            return Err(format!("the source {endpoint} is this replica itself"));
        }
        let (mut client, info) = server
            .ensure_started(&self.launcher, Writes::Fenced)
            .await?;
        let copy = Copy {
            server: &server,
            source: endpoint,
            bytes,
            rate_mbps,
            progress: &ctx.progress,
            catch_up_timeout: self.catch_up_timeout(),
            verify: self.verify(),
        };
        copy.run(&mut client, &info).await?;
        if self.is_leader(state) {
            // Arriving as the leader: nobody else took writes (the controller sends a copy
            // in the leader state only for a partition without one), so promote what it has.
            let info = client.info("replication").await?;
            let catch_up = self.catch_up_timeout();
            leadership::promote(&mut client, &info, None, self.verify(), catch_up).await?;
        }
        Ok(())
    }

    async fn demote_in(
        &self,
        ctx: &TransitionContext,
        from: &str,
    ) -> Result<Option<String>, String> {
        let server = self.created(&ctx.replica_dir, "demote")?;
        // A stopped server comes back as its configuration says (fenced, if it was).
        let (mut client, info) = server
            .ensure_started(&self.launcher, Writes::Fenced)
            .await?;
        let record = server.dir.join(HANDOFF_FILE);
        let writable = client.writable().await?;
        if let Some(handoff) = leadership::recorded(&record, &ctx.id.0)? {
            // A repeat: the same handoff, and the fence still up.
            if writable {
                client.fence().await?;
            }
            return handoff.encode().map(Some);
        }
        // A server that takes writes is a leader whatever `from` says (a misnamed
        // leader_state must not cost the successor its handoff).
        if !self.is_leader(from) && !writable {
            // Between two non-leader states: nothing to hand off, nothing takes writes.
            return Ok(None);
        }
        let pause = self.launcher.start_timeout;
        let handoff = leadership::demote(
            &mut client,
            &info,
            (&record, &ctx.id.0),
            self.verify(),
            pause,
        )
        .await?;
        tracing::info!(
            replica = %ctx.replica, replid = %handoff.replid, offset = handoff.offset,
            streams = handoff.streams.len(), "demoted: fenced, handoff recorded"
        );
        handoff.encode().map(Some)
    }

    async fn promote_in(
        &self,
        ctx: &TransitionContext,
        to: &str,
        handoff: Option<&str>,
    ) -> Result<(), String> {
        if !self.is_leader(to) {
            // After an agent restart, ensure_running would fence a leader it cannot tell is
            // one: refuse now, naming the setting, rather than lose the leader then.
            return Err(format!(
                "promoting into `{to}`, but the leader state is `{}`: set \
                 products.{}.redis.leader_state",
                self.config.leader_state, self.product
            ));
        }
        let server = self.created(&ctx.replica_dir, "promote")?;
        let (mut client, info) = server
            .ensure_started(&self.launcher, Writes::Fenced)
            .await?;
        let catch_up = self.catch_up_timeout();
        leadership::promote(&mut client, &info, handoff, self.verify(), catch_up).await
    }

    async fn follow_in(&self, dir: &Path, state: &str, leader: &Source) -> Result<(), String> {
        if self.is_leader(state) {
            return Err(format!(
                "in the leader state {state}: a leader follows nobody"
            ));
        }
        let endpoint = leader
            .endpoint
            .as_deref()
            .ok_or_else(|| format!("the leader on {} reports no endpoint", leader.node))?;
        let target = split_endpoint(endpoint)?;
        // Created by a start or a copy: a follow that created a replica would copy the whole
        // partition from its leader unthrottled, outside any booking.
        let server = self.created(dir, "follow with")?;
        if endpoint == server.endpoint() {
            return Err(format!("told to follow itself ({endpoint})"));
        }
        let (mut client, info) = server
            .ensure_started(&self.launcher, Writes::Fenced)
            .await?;
        leadership::follow(&mut client, &info, target, server.relay_port).await
    }

    async fn stop_in(&self, dir: &Path) -> Result<(), ActuatorError> {
        let server = self.existing(dir).map_err(ActuatorError::Failed)?;
        if let Some(server) = server {
            server
                .shut_down(self.launcher.start_timeout)
                .await
                .map_err(ActuatorError::Failed)?;
        }
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ActuatorError::io(format!("removing {}", dir.display()), e))
            }
            _ => Ok(()),
        }
    }

    async fn ensure_running_in(&self, dir: &Path, state: &str) -> Result<(), String> {
        // The assignment holds only replicas whose transition finished, so a server was
        // created. If it is gone with its data, it is not recreated empty: an empty leader
        // would have its followers copy the emptiness, an empty follower would copy its
        // leader unthrottled. Failing, it is the controller's to repair with a booked copy.
        let server = self
            .created(dir, "bring back")
            .map_err(|e| format!("{e} (its data is gone: not recreating it empty)"))?;
        let leader = self.is_leader(state);
        let (mut client, _) = server
            .ensure_started(&self.launcher, Writes::Fenced)
            .await?;
        // A non-leader never takes writes. A fenced leader stays fenced: a demotion was
        // under way (the journal runs it again), and the controller may have promoted
        // another replica while this agent was down.
        if !leader && client.writable().await? {
            client.fence().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Actuator for RedisActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        self.start_in(&ctx.replica_dir, state)
            .await
            .map_err(|e| self.failed(&ctx.replica, "start", e))
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        self.replicate_in(ctx, state, source, bytes, rate_mbps)
            .await
            .map_err(|e| self.failed(&ctx.replica, "replicate", e))
    }

    async fn promote(
        &self,
        ctx: &TransitionContext,
        _from: &str,
        to: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        self.promote_in(ctx, to, handoff)
            .await
            .map_err(|e| self.failed(&ctx.replica, "promote", e))
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        _to: &str,
    ) -> Result<Option<String>, ActuatorError> {
        self.demote_in(ctx, from)
            .await
            .map_err(|e| self.failed(&ctx.replica, "demote", e))
    }

    async fn follow(
        &self,
        replica: &ReplicaContext,
        state: &str,
        leader: &Source,
    ) -> Result<(), ActuatorError> {
        self.follow_in(&replica.replica_dir, state, leader)
            .await
            .map_err(|e| self.failed(&replica.replica, "follow", e))
    }

    async fn stop(&self, ctx: &TransitionContext, _from: &str) -> Result<(), ActuatorError> {
        self.stop_in(&ctx.replica_dir)
            .await
            .map_err(|e| self.failed(&ctx.replica, "stop", e))
    }

    async fn observe(&self, replica: &ReplicaContext) -> Observation {
        match self.existing(&replica.replica_dir) {
            Ok(Some(server)) => observe::observe(&server).await,
            Ok(None) => Observation::failing(),
            Err(error) => {
                tracing::warn!(replica = %replica.replica, "observe: {error}");
                Observation::failing()
            }
        }
    }

    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        self.ensure_running_in(&replica.replica_dir, state)
            .await
            .map_err(|e| self.failed(&replica.replica, "ensure_running", e))
    }
}
