//! The `redis` actuator (stream product): a partition replica is a redis-server with its own
//! directory, port and append-only file; replicas follow their leader with `REPLICAOF`.
//!
//! | transition | Redis |
//! |---|---|
//! | start Leader | redis-server, writable |
//! | start Replica | redis-server *parked*: a replica of its own idle relay port, so read-only until `follow` names its leader |
//! | replicate | the server syncs through an agent-side relay that holds the source's bytes to the booked rate; once its offset reaches the source's and every stream matches, it is re-pointed at the source directly (a partial resync, no second copy) |
//! | demote | `CLIENT PAUSE WRITE`, wait until connected replicas acknowledged the last offset, record replid, offset and every stream's length and last id (the handoff), then park it (read-only) |
//! | promote | wait until its offset reaches the handoff's, compare every stream, then `REPLICAOF NO ONE` |
//! | follow | `REPLICAOF` the leader's endpoint |
//! | stop | `SHUTDOWN NOSAVE`, delete the replica |
//!
//! Every role change is written to the server's configuration (`CONFIG REWRITE`), so a server
//! restarted by `ensure_running` comes back in the role it had — a replica never comes back
//! writable.

pub mod config;
pub mod relay;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use meridian_wire::{Health, Source};
use serde::{Deserialize, Serialize};

use crate::actuator::{Actuator, ActuatorError, Observation, ReplicaContext, TransitionContext};
use crate::products::support::{claim_port, PortRange, RunAs};
pub use config::RedisConfig;

const RELAY_PORT_FILE: &str = "relay-port";
const HANDOFF_FILE: &str = "handoff.json";
const CONF: &str = "redis.conf";
const PID: &str = "redis.pid";
const POLL: Duration = Duration::from_millis(100);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// What a demotion hands to the promotion that follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub replid: String,
    pub offset: u64,
    /// Every stream: (length, last entry id).
    pub streams: BTreeMap<String, (u64, String)>,
}

pub struct RedisActuator {
    config: RedisConfig,
    run_as: Option<RunAs>,
    replicas_root: PathBuf,
}

/// A replica's server: where it lives and listens.
struct Instance {
    dir: PathBuf,
    port: u16,
    relay_port: u16,
}

impl Instance {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn failed(replica: &dyn std::fmt::Display, error: impl std::fmt::Display) -> ActuatorError {
    ActuatorError::Failed(format!("redis {replica}: {error}"))
}

/// `INFO` output as a map.
fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Offsets of connected replicas in `INFO replication` (`slave0:ip=..,port=..,offset=N,..`).
fn replica_offsets(info: &BTreeMap<String, String>) -> Vec<u64> {
    info.iter()
        .filter(|(k, _)| k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, v)| {
            v.split(',')
                .find_map(|field| field.strip_prefix("offset="))
                .and_then(|o| o.parse().ok())
        })
        .collect()
}

async fn connect(
    endpoint: &str,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{endpoint}/"))
        .map_err(|e| format!("{endpoint}: {e}"))?;
    tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("{endpoint}: no connection within {timeout:?}"))?
        .map_err(|e| format!("{endpoint}: {e}"))
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut redis::aio::MultiplexedConnection,
    command: &redis::Cmd,
) -> Result<T, String> {
    tokio::time::timeout(QUERY_TIMEOUT, command.query_async(connection))
        .await
        .map_err(|_| "no answer within 3 s".to_string())?
        .map_err(|e| e.to_string())
}

async fn info(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<BTreeMap<String, String>, String> {
    let text: String = query(connection, redis::cmd("INFO").arg("replication")).await?;
    Ok(parse_info(&text))
}

/// Every stream's length and last id.
async fn streams(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<BTreeMap<String, (u64, String)>, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    for _ in 0..100_000 {
        let (next, batch): (u64, Vec<String>) = query(
            connection,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("TYPE")
                .arg("stream")
                .arg("COUNT")
                .arg(1000),
        )
        .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let length: u64 = query(connection, redis::cmd("XLEN").arg(&key)).await?;
        let last: Vec<(String, redis::Value)> = query(
            connection,
            redis::cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )
        .await?;
        let last = last
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .unwrap_or_default();
        out.insert(key, (length, last));
    }
    Ok(out)
}

fn number(info: &BTreeMap<String, String>, key: &str) -> u64 {
    info.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl RedisActuator {
    pub fn new(
        product: &str,
        config: RedisConfig,
        replicas_root: PathBuf,
    ) -> Result<RedisActuator, ActuatorError> {
        config.validate().map_err(|(field, reason)| {
            ActuatorError::Failed(format!("products.{product}.redis.{field}: {reason}"))
        })?;
        let run_as = match &config.run_as {
            Some(name) => Some(RunAs::lookup(name).map_err(ActuatorError::Failed)?),
            None => None,
        };
        Ok(RedisActuator {
            config,
            run_as,
            replicas_root,
        })
    }

    fn instance(&self, dir: &Path) -> Result<Instance, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = claim_port(dir, &self.replicas_root, self.config.ports)
            .map_err(|e| format!("port: {e}"))?;
        let relay_port = claim_named_port(dir, &self.replicas_root, self.config.relay_ports)?;
        if let Some(run_as) = &self.run_as {
            std::os::unix::fs::lchown(dir, Some(run_as.uid.as_raw()), Some(run_as.gid.as_raw()))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        Ok(Instance {
            dir: dir.to_path_buf(),
            port,
            relay_port,
        })
    }

    async fn connection(
        &self,
        instance: &Instance,
    ) -> Result<redis::aio::MultiplexedConnection, String> {
        connect(&instance.endpoint(), QUERY_TIMEOUT).await
    }

    async fn is_running(&self, instance: &Instance) -> bool {
        match connect(&instance.endpoint(), Duration::from_millis(500)).await {
            Ok(mut connection) => query::<String>(&mut connection, &redis::cmd("PING"))
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Starts the server if it is not running; a new one is a leader or parked.
    async fn start_server(&self, instance: &Instance, leader: bool) -> Result<(), String> {
        if self.is_running(instance).await {
            return Ok(());
        }
        let conf = instance.dir.join(CONF);
        if !conf.is_file() {
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\ndaemonize yes\n\
                 pidfile {dir}/{PID}\nlogfile {dir}/redis.log\nappendonly yes\nsave \"\"\n\
                 replica-read-only yes\nrepl-diskless-sync-delay 0\n",
                port = instance.port,
                dir = instance.dir.display()
            );
            for (name, value) in &self.config.settings {
                text.push_str(&format!("{name} {value}\n"));
            }
            if !leader {
                text.push_str(&format!("replicaof 127.0.0.1 {}\n", instance.relay_port));
            }
            std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
            if let Some(run_as) = &self.run_as {
                run_as.chown_tree(&conf).map_err(|e| e.to_string())?;
            }
        }
        let mut command = tokio::process::Command::new(&self.config.server);
        command
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut command);
        }
        let output = tokio::time::timeout(self.start_timeout(), command.output())
            .await
            .map_err(|_| "redis-server did not daemonize in time".to_string())?
            .map_err(|e| format!("cannot start {}: {e}", self.config.server.display()))?;
        if !output.status.success() {
            return Err(format!(
                "redis-server: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let deadline = Instant::now() + self.start_timeout();
        while !self.is_running(instance).await {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on {} does not answer (see {}/redis.log)",
                    instance.endpoint(),
                    instance.dir.display()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    fn start_timeout(&self) -> Duration {
        Duration::from_millis(self.config.start_timeout_ms)
    }

    fn catch_up_timeout(&self) -> Duration {
        Duration::from_millis(self.config.catch_up_timeout_ms)
    }

    /// `REPLICAOF`, then the configuration file says so too.
    async fn replica_of(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        target: Option<(&str, u16)>,
    ) -> Result<(), String> {
        let command = match target {
            Some((host, port)) => redis::cmd("REPLICAOF").arg(host).arg(port).clone(),
            None => redis::cmd("REPLICAOF").arg("NO").arg("ONE").clone(),
        };
        query::<String>(connection, &command).await?;
        query::<String>(connection, redis::cmd("CONFIG").arg("REWRITE"))
            .await
            .map(|_| ())
    }

    async fn replicate_instance(
        &self,
        instance: &Instance,
        source: &str,
        rate_mbps: f64,
        bytes: u64,
        ctx: &TransitionContext,
    ) -> Result<(), String> {
        let (host, port) = split(source)?;
        self.start_server(instance, false).await?;
        let mut own = self.connection(instance).await?;
        let direct = info(&mut own).await?;
        let already = direct.get("master_host").map(String::as_str) == Some(host)
            && number(&direct, "master_port") == u64::from(port)
            && direct.get("master_link_status").map(String::as_str) == Some("up");
        if !already {
            // Through the relay: the full sync moves at the booked rate.
            let relay = relay::Relay::start(instance.relay_port, source.to_string(), rate_mbps)
                .await
                .map_err(|e| format!("relay on port {}: {e}", instance.relay_port))?;
            self.replica_of(&mut own, Some(("127.0.0.1", instance.relay_port)))
                .await?;
            let estimate = Duration::from_secs_f64(bytes as f64 / (rate_mbps.max(0.001) * 1e6));
            let deadline = Instant::now() + self.catch_up_timeout() + estimate;
            let mut source_connection = connect(source, QUERY_TIMEOUT).await?;
            loop {
                ctx.progress.set_bytes_done(relay.forwarded());
                let mine = info(&mut own).await?;
                let theirs = info(&mut source_connection).await?;
                let up = mine.get("master_link_status").map(String::as_str) == Some("up")
                    && number(&mine, "master_sync_in_progress") == 0;
                let lag = number(&theirs, "master_repl_offset")
                    .saturating_sub(number(&mine, "slave_repl_offset"));
                if up {
                    ctx.progress.set_lag_bytes(lag);
                    if lag == 0 {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "not caught up with {source} in time (link up: {up}, {lag} bytes behind)"
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
            self.verify_against(&mut own, &mut source_connection, source)
                .await?;
            // Straight to the source now: same replication id and offset, so a partial resync.
            self.replica_of(&mut own, Some((host, port))).await?;
            drop(relay);
        }
        Ok(())
    }

    /// Every stream equal on both sides (a few tries: the source may be taking writes).
    async fn verify_against(
        &self,
        own: &mut redis::aio::MultiplexedConnection,
        source: &mut redis::aio::MultiplexedConnection,
        endpoint: &str,
    ) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..20 {
            let (mine, theirs) = (streams(own).await?, streams(source).await?);
            if mine == theirs {
                return Ok(());
            }
            last = format!("here {mine:?}, at {endpoint} {theirs:?}");
            tokio::time::sleep(POLL).await;
        }
        Err(format!("streams differ after the copy: {last}"))
    }

    async fn demote_instance(&self, instance: &Instance) -> Result<Handoff, String> {
        let handoff_file = instance.dir.join(HANDOFF_FILE);
        if !self.is_running(instance).await {
            self.start_server(instance, false).await?;
        }
        let mut connection = self.connection(instance).await?;
        let before = info(&mut connection).await?;
        let fenced = is_fenced(&mut connection).await?;
        if before.get("role").map(String::as_str) != Some("master") || fenced {
            // Demoted already (a repeat after a crash): the same handoff.
            let text = std::fs::read_to_string(&handoff_file)
                .map_err(|e| format!("already demoted, and {}: {e}", handoff_file.display()))?;
            return serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", handoff_file.display()));
        }
        // The fence: a master that needs more good replicas than it can ever have refuses
        // every write (NOREPLICAS), yet still serves syncs, so copies can read from it until
        // it follows the new leader. Written to its configuration: it holds across restarts.
        set_fence(&mut connection, true).await?;
        let deadline = Instant::now() + self.catch_up_timeout();
        let (replid, offset) = loop {
            let now = info(&mut connection).await?;
            let offset = number(&now, "master_repl_offset");
            let behind = replica_offsets(&now).into_iter().any(|o| o < offset);
            if !behind {
                break (
                    now.get("master_replid").cloned().unwrap_or_default(),
                    offset,
                );
            }
            if Instant::now() > deadline {
                return Err(
                    "connected replicas did not acknowledge the last writes in time (still fenced)"
                        .into(),
                );
            }
            tokio::time::sleep(POLL).await;
        };
        let handoff = Handoff {
            replid,
            offset,
            streams: streams(&mut connection).await?,
        };
        let json = serde_json::to_string(&handoff).map_err(|e| e.to_string())?;
        crate::products::support::write_small(&handoff_file, &json)?;
        Ok(handoff)
    }

    async fn promote_instance(
        &self,
        instance: &Instance,
        handoff: Option<&str>,
    ) -> Result<(), String> {
        self.start_server(instance, false).await?;
        let mut connection = self.connection(instance).await?;
        if info(&mut connection).await?.get("role").map(String::as_str) == Some("master") {
            // Already a leader, or a fenced one taking leadership back.
            return set_fence(&mut connection, false).await;
        }
        if let Some(handoff) = handoff {
            let handoff: Handoff =
                serde_json::from_str(handoff).map_err(|e| format!("handoff `{handoff}`: {e}"))?;
            let deadline = Instant::now() + self.catch_up_timeout();
            loop {
                let now = info(&mut connection).await?;
                let replid = now.get("master_replid").cloned().unwrap_or_default();
                let offset = number(&now, "master_repl_offset");
                if replid == handoff.replid && offset >= handoff.offset {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "refusing to promote: at {replid}:{offset}, the old leader stopped at {}:{}",
                        handoff.replid, handoff.offset
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
            let mine = streams(&mut connection).await?;
            for (key, expected) in &handoff.streams {
                if mine.get(key) != Some(expected) {
                    return Err(format!(
                        "refusing to promote: stream {key} is {:?} here, the old leader had {expected:?}",
                        mine.get(key)
                    ));
                }
            }
        }
        self.replica_of(&mut connection, None).await?;
        set_fence(&mut connection, false).await
    }

    async fn follow_instance(&self, instance: &Instance, leader: &Source) -> Result<(), String> {
        let endpoint = leader
            .endpoint
            .as_deref()
            .ok_or_else(|| format!("the leader on {} reports no endpoint", leader.node))?;
        let (host, port) = split(endpoint)?;
        self.start_server(instance, false).await?;
        let mut connection = self.connection(instance).await?;
        let now = info(&mut connection).await?;
        // A master here is a start's unclaimed replica (a demoted leader is parked, never a
        // master): the controller names a leader only for replicas not in the leader state.
        if now.get("master_host").map(String::as_str) == Some(host)
            && number(&now, "master_port") == u64::from(port)
        {
            return Ok(());
        }
        self.replica_of(&mut connection, Some((host, port))).await?;
        // A fenced ex-leader is a replica now: the fence has nothing left to guard.
        set_fence(&mut connection, false).await
    }
}

/// Replicas a fenced master would need before it takes a write: more than it can have.
const FENCE_REPLICAS: u64 = 1_000_000;

async fn set_fence(
    connection: &mut redis::aio::MultiplexedConnection,
    on: bool,
) -> Result<(), String> {
    let needed = if on { FENCE_REPLICAS } else { 0 };
    query::<String>(
        connection,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(needed),
    )
    .await?;
    query::<String>(connection, redis::cmd("CONFIG").arg("REWRITE"))
        .await
        .map(|_| ())
}

async fn is_fenced(connection: &mut redis::aio::MultiplexedConnection) -> Result<bool, String> {
    let pair: Vec<String> = query(
        connection,
        redis::cmd("CONFIG").arg("GET").arg("min-replicas-to-write"),
    )
    .await?;
    Ok(pair.get(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) > 0)
}

fn split(endpoint: &str) -> Result<(&str, u16), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint `{endpoint}` is not host:port"))?;
    Ok((
        host,
        port.parse()
            .map_err(|_| format!("endpoint `{endpoint}`: bad port"))?,
    ))
}

/// The relay port, kept in its own file (the replica's main port is in `port`).
fn claim_named_port(dir: &Path, root: &Path, range: PortRange) -> Result<u16, String> {
    let file = dir.join(RELAY_PORT_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        return text
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a port", file.display()));
    }
    // claim_port keeps its choice in `port`; borrow a scratch directory for the relay's.
    let scratch = dir.join(".relay");
    let port = claim_port(&scratch, root, range).map_err(|e| format!("relay port: {e}"))?;
    crate::products::support::write_small(&file, &port.to_string())?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(port)
}

#[async_trait]
impl Actuator for RedisActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(&ctx.replica, e))?;
        // A new partition's first replica starts empty and as a master even when it is not
        // the leader yet: its copies sync from it (a replica with no upstream cannot serve a
        // sync), and no client writes to it — clients find leaders through the controller,
        // which names only a Leader. `follow` re-points it if another replica leads.
        let _ = state;
        self.start_server(&instance, true)
            .await
            .map_err(|e| failed(&ctx.replica, e))
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        let replica = &ctx.replica;
        let endpoint = source.endpoint.as_deref().ok_or_else(|| {
            failed(
                replica,
                format!("the source on {} reports no endpoint", source.node),
            )
        })?;
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(replica, e))?;
        self.replicate_instance(&instance, endpoint, rate_mbps, bytes, ctx)
            .await
            .map_err(|e| failed(replica, e))?;
        if state == self.config.leader_state {
            self.promote_instance(&instance, None)
                .await
                .map_err(|e| failed(replica, e))?;
        }
        Ok(())
    }

    async fn promote(
        &self,
        ctx: &TransitionContext,
        _from: &str,
        _to: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(&ctx.replica, e))?;
        self.promote_instance(&instance, handoff)
            .await
            .map_err(|e| failed(&ctx.replica, e))
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        _from: &str,
        _to: &str,
    ) -> Result<Option<String>, ActuatorError> {
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(&ctx.replica, e))?;
        let handoff = self
            .demote_instance(&instance)
            .await
            .map_err(|e| failed(&ctx.replica, e))?;
        serde_json::to_string(&handoff)
            .map(Some)
            .map_err(|e| failed(&ctx.replica, e))
    }

    async fn follow(
        &self,
        replica: &ReplicaContext,
        _state: &str,
        leader: &Source,
    ) -> Result<(), ActuatorError> {
        let instance = self
            .instance(&replica.replica_dir)
            .map_err(|e| failed(&replica.replica, e))?;
        self.follow_instance(&instance, leader)
            .await
            .map_err(|e| failed(&replica.replica, e))
    }

    async fn stop(&self, ctx: &TransitionContext, _from: &str) -> Result<(), ActuatorError> {
        if !ctx.replica_dir.exists() {
            return Ok(());
        }
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(&ctx.replica, e))?;
        if let Ok(mut connection) = connect(&instance.endpoint(), Duration::from_millis(500)).await
        {
            // The connection drops as the server exits: no answer is the answer.
            let _ = query::<String>(&mut connection, redis::cmd("SHUTDOWN").arg("NOSAVE")).await;
        }
        let deadline = Instant::now() + self.start_timeout();
        while self.is_running(&instance).await {
            if Instant::now() > deadline {
                return Err(failed(&ctx.replica, "redis-server did not shut down"));
            }
            tokio::time::sleep(POLL).await;
        }
        match std::fs::remove_dir_all(&ctx.replica_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ActuatorError::io(
                format!("removing {}", ctx.replica_dir.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    async fn observe(&self, replica: &ReplicaContext) -> Observation {
        let Ok(port) = std::fs::read_to_string(
            replica
                .replica_dir
                .join(crate::products::support::PORT_FILE),
        ) else {
            return Observation::failing();
        };
        let endpoint = format!("127.0.0.1:{}", port.trim());
        let relay_port =
            std::fs::read_to_string(replica.replica_dir.join(RELAY_PORT_FILE)).unwrap_or_default();
        let health = match connect(&endpoint, Duration::from_millis(500)).await {
            Ok(mut connection) => match info(&mut connection).await {
                Ok(now) if now.get("role").map(String::as_str) == Some("master") => {
                    if is_fenced(&mut connection).await.unwrap_or(false) {
                        Health::Starting
                    } else {
                        Health::Serving
                    }
                }
                Ok(now) => {
                    let parked =
                        now.get("master_port").map(String::as_str) == Some(relay_port.trim());
                    let up = now.get("master_link_status").map(String::as_str) == Some("up");
                    if up && !parked {
                        Health::Serving
                    } else {
                        Health::Starting
                    }
                }
                Err(_) => Health::Failing,
            },
            Err(_) => Health::Failing,
        };
        Observation {
            health,
            heat: Vec::new(),
            endpoint: Some(endpoint),
        }
    }

    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        let instance = self
            .instance(&replica.replica_dir)
            .map_err(|e| failed(&replica.replica, e))?;
        let leader = state == self.config.leader_state;
        self.start_server(&instance, leader)
            .await
            .map_err(|e| failed(&replica.replica, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_and_replica_offsets_parse() {
        let text = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7001,state=online,offset=420,lag=0\r\n\
                    slave1:ip=127.0.0.1,port=7002,state=online,offset=400,lag=1\r\n\
                    master_replid:abc\r\nmaster_repl_offset:420\r\n";
        let info = parse_info(text);
        assert_eq!(info["role"], "master");
        assert_eq!(number(&info, "master_repl_offset"), 420);
        let mut offsets = replica_offsets(&info);
        offsets.sort();
        assert_eq!(offsets, vec![400, 420]);
    }
}
