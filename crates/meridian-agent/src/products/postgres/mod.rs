//! The `postgres` actuator (db product): a shard replica is a PostgreSQL instance with its
//! own data directory and port; followers are streaming-replication standbys.
//!
//! | transition | PostgreSQL |
//! |---|---|
//! | start Leader | initdb (into a temporary name, renamed when complete), configure, `pg_ctl start` |
//! | start Follower | nothing yet: a standby is cloned from its leader, which `follow` names |
//! | replicate | `pg_basebackup -X stream -R --max-rate` (the booked rate) into `pgdata.partial`, renamed when complete; start as a standby; wait until it has replayed what the source had |
//! | demote | fence: read-only and clients cut off, fingerprint `verify_tables`, clean shutdown (a primary sends all its WAL to connected standbys before it exits), `standby.signal` so the directory never comes up writable again; the handoff is the shutdown checkpoint's LSN and the fingerprints |
//! | promote | wait until replayed ≥ the handoff LSN, compare fingerprints, then `pg_promote` |
//! | follow | a missing standby is cloned; an existing one gets `primary_conninfo` (reloaded live); a demoted old leader starts as a standby of the new one |
//! | stop | `pg_ctl stop -m fast`, delete the replica |

pub mod config;
pub mod server;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use meridian_wire::{Health, Source};
use serde::{Deserialize, Serialize};

use crate::actuator::{
    Actuator, ActuatorError, Observation, Progress, ReplicaContext, TransitionContext,
};
use crate::products::support::{claim_port, leftover, RunAs};
pub use config::PostgresConfig;
use server::{Instance, Programs};

/// What a demotion hands to the promotion that follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// The old leader's last WAL position (its shutdown checkpoint).
    pub lsn: String,
    /// `verify_tables` fingerprints (`count:md5`) taken once writes had stopped.
    pub tables: BTreeMap<String, String>,
}

const HANDOFF_FILE: &str = "handoff.json";
/// A running pg_basebackup, for a restarted agent to kill.
const COPY_PID_FILE: &str = ".meridian-basebackup.json";
const POLL: Duration = Duration::from_millis(200);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

pub struct PostgresActuator {
    config: PostgresConfig,
    programs: Programs,
    replicas_root: std::path::PathBuf,
}

fn failed(replica: &dyn std::fmt::Display, error: impl std::fmt::Display) -> ActuatorError {
    ActuatorError::Failed(format!("postgres {replica}: {error}"))
}

impl PostgresActuator {
    pub fn new(
        product: &str,
        config: PostgresConfig,
        replicas_root: std::path::PathBuf,
    ) -> Result<PostgresActuator, ActuatorError> {
        config.validate().map_err(|(field, reason)| {
            ActuatorError::Failed(format!("products.{product}.postgres.{field}: {reason}"))
        })?;
        let run_as = match &config.run_as {
            Some(name) => Some(RunAs::lookup(name).map_err(ActuatorError::Failed)?),
            None => None,
        };
        Ok(PostgresActuator {
            programs: Programs {
                bin_dir: config.bin_dir.clone(),
                run_as,
            },
            config,
            replicas_root,
        })
    }

    fn instance(&self, replica_dir: &Path) -> Result<Instance, String> {
        std::fs::create_dir_all(replica_dir)
            .map_err(|e| format!("creating {}: {e}", replica_dir.display()))?;
        let port = claim_port(replica_dir, &self.replicas_root, self.config.ports)
            .map_err(|e| format!("port: {e}"))?;
        self.programs.own(replica_dir)?;
        Ok(Instance {
            replica_dir: replica_dir.to_path_buf(),
            port,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.start_timeout_ms)
    }

    async fn is_running(&self, instance: &Instance) -> Result<bool, String> {
        if !instance.has_data() {
            return Ok(false);
        }
        let data = instance.data();
        let ran = self
            .programs
            .run(
                "pg_ctl",
                &["status", "-D", &path(&data)],
                self.timeout(),
                &[3, 4],
            )
            .await?;
        Ok(ran.code == Some(0))
    }

    async fn start_server(&self, instance: &Instance) -> Result<(), String> {
        if self.is_running(instance).await? {
            return Ok(());
        }
        server::write_settings(instance, &self.config.settings)?;
        let seconds = (self.config.start_timeout_ms / 1000).max(1).to_string();
        let (data, log) = (path(&instance.data()), path(&instance.log()));
        self.programs
            .run(
                "pg_ctl",
                &["start", "-D", &data, "-l", &log, "-w", "-t", &seconds],
                self.timeout() + Duration::from_secs(5),
                &[],
            )
            .await
            .map(|_| ())
            .map_err(|error| {
                // pg_ctl only says it could not; the server's log says why (a port taken,
                // shared memory, a bad setting), and a rollback deletes it with the replica.
                let log = std::fs::read_to_string(instance.log()).unwrap_or_default();
                let why: Vec<&str> = log
                    .lines()
                    .filter(|l| l.contains("FATAL") || l.contains("ERROR") || l.contains("HINT"))
                    .collect();
                format!("{error}; the server's log says: {}", why.join(" | "))
            })
    }

    async fn stop_server(&self, instance: &Instance) -> Result<(), String> {
        if !self.is_running(instance).await? {
            return Ok(());
        }
        let data = path(&instance.data());
        self.programs
            .run(
                "pg_ctl",
                &["stop", "-D", &data, "-m", "fast", "-w"],
                self.timeout(),
                &[],
            )
            .await
            .map(|_| ())
    }

    async fn client(&self, instance: &Instance) -> Result<tokio_postgres::Client, String> {
        server::connect(&instance.endpoint(), &self.config.database, QUERY_TIMEOUT).await
    }

    /// Whether the running server is a standby.
    async fn in_recovery(&self, client: &tokio_postgres::Client) -> Result<bool, String> {
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    /// A new instance: writable for a leader; for a follower, a standby with no upstream
    /// yet (readable, copyable, promotable) until `follow` names its leader.
    async fn create(&self, instance: &Instance, leader: bool) -> Result<(), String> {
        if !instance.has_data() {
            let init = instance.replica_dir.join("pgdata.init");
            let _ = std::fs::remove_dir_all(&init);
            let init_path = path(&init);
            self.programs
                .run(
                    "initdb",
                    &[
                        "-D",
                        &init_path,
                        "-U",
                        server::SUPERUSER,
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-instructions",
                    ],
                    Duration::from_secs(120),
                    &[],
                )
                .await?;
            if !leader {
                let standby = init.join("standby.signal");
                std::fs::write(&standby, "").map_err(|e| format!("{}: {e}", standby.display()))?;
                self.programs.own(&standby)?;
            }
            std::fs::rename(&init, instance.data())
                .map_err(|e| format!("publishing initdb: {e}"))?;
        }
        if leader && instance.is_standby() {
            return Err(
                "its data directory is a standby's; it becomes a leader only by promotion".into(),
            );
        }
        self.start_server(instance).await
    }

    /// Clones the instance from `source` at `rate_mbps` (None: unthrottled) unless a complete
    /// copy is already there, then starts it as a standby of `source`.
    async fn clone_from(
        &self,
        instance: &Instance,
        endpoint: &str,
        rate_mbps: Option<f64>,
        progress: &Progress,
    ) -> Result<(), String> {
        if !instance.has_data() {
            let pid_file = instance.replica_dir.join(COPY_PID_FILE);
            // A copy an earlier agent left running would write into the same directory.
            leftover::kill(&pid_file).map_err(|e| e.to_string())?;
            let partial = instance.partial();
            if partial.exists() {
                std::fs::remove_dir_all(&partial)
                    .map_err(|e| format!("removing {}: {e}", partial.display()))?;
            }
            let (host, port) = server::split_endpoint(endpoint)?;
            let mut args = vec![
                "-h".to_string(),
                host.to_string(),
                "-p".to_string(),
                port.to_string(),
                "-U".to_string(),
                server::SUPERUSER.to_string(),
                "-D".to_string(),
                path(&partial),
                "-X".to_string(),
                "stream".to_string(),
                "-R".to_string(),
                "--checkpoint=fast".to_string(),
                "--no-password".to_string(),
            ];
            if let Some(rate) = rate_mbps {
                // pg_basebackup's kB are 1024 bytes; the planner's MB are 10^6.
                let kb = (rate * 1e6 / 1024.0).round().clamp(32.0, 1_048_576.0) as u64;
                args.push(format!("--max-rate={kb}k"));
            }
            let mut child = self
                .programs
                .command("pg_basebackup")
                .args(&args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start pg_basebackup: {e}"))?;
            if let Some(pid) = child.id() {
                leftover::record(&pid_file, pid).map_err(|e| e.to_string())?;
            }
            let mut stderr = child.stderr.take();
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status.map_err(|e| format!("pg_basebackup: {e}"))?,
                    () = tokio::time::sleep(POLL) => progress.set_bytes_done(server::size_of(&partial)),
                }
            };
            let _ = leftover::forget(&pid_file);
            if !status.success() {
                let mut text = String::new();
                if let Some(stderr) = stderr.as_mut() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(stderr, &mut text).await;
                }
                return Err(format!(
                    "pg_basebackup from {endpoint} {}: {}",
                    crate::process::launch::describe(status),
                    text.trim()
                ));
            }
            progress.set_bytes_done(server::size_of(&partial));
            server::write_settings(instance, &self.config.settings)?;
            std::fs::rename(&partial, instance.data())
                .map_err(|e| format!("publishing the copy: {e}"))?;
        }
        if !instance.is_standby() {
            return Err("a copy must be a standby, and this data directory is not".into());
        }
        server::set_primary(&instance.data(), endpoint)?;
        self.start_server(instance).await?;
        self.catch_up(instance, endpoint, progress).await
    }

    /// Waits until the standby has replayed everything `source` had when we asked.
    async fn catch_up(
        &self,
        instance: &Instance,
        source: &str,
        progress: &Progress,
    ) -> Result<(), String> {
        let primary = server::connect(source, &self.config.database, QUERY_TIMEOUT).await?;
        let target: String = primary
            .query_one(
                "SELECT (CASE WHEN pg_is_in_recovery() \
                 THEN coalesce(pg_last_wal_replay_lsn(), '0/0') \
                 ELSE pg_current_wal_lsn() END)::text",
                &[],
            )
            .await
            .map_err(|e| format!("{source}: {}", server::describe(&e)))?
            .get(0);
        let target =
            server::parse_lsn(&target).ok_or_else(|| format!("{source}: bad LSN {target}"))?;
        self.wait_replayed(instance, target, progress).await
    }

    async fn wait_replayed(
        &self,
        instance: &Instance,
        target: u64,
        progress: &Progress,
    ) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(self.config.catch_up_timeout_ms);
        loop {
            let replayed = self.replayed(instance).await;
            if let Ok(lsn) = replayed {
                progress.set_lag_bytes(target.saturating_sub(lsn));
                if lsn >= target {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not caught up within {} ms: replayed {}, needs {}",
                    self.config.catch_up_timeout_ms,
                    replayed.map_or_else(|e| e, server::format_lsn),
                    server::format_lsn(target)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn replayed(&self, instance: &Instance) -> Result<u64, String> {
        let client = self.client(instance).await?;
        let row = client
            .query_one(
                "SELECT coalesce(pg_last_wal_replay_lsn(), '0/0')::text",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let text: String = row.get(0);
        server::parse_lsn(&text).ok_or_else(|| format!("bad LSN {text}"))
    }

    async fn fingerprints(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut tables = BTreeMap::new();
        for table in &self.config.verify_tables {
            tables.insert(table.clone(), server::fingerprint(client, table).await?);
        }
        Ok(tables)
    }

    async fn demote_instance(&self, instance: &Instance) -> Result<Handoff, String> {
        let handoff_file = instance.replica_dir.join(HANDOFF_FILE);
        if instance.is_standby() {
            // Done before (a repeat after a crash): the same handoff, the standby up.
            if let Ok(text) = std::fs::read_to_string(&handoff_file) {
                self.start_server(instance).await?;
                return serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", handoff_file.display()));
            }
        }
        let running = self.is_running(instance).await?;
        let mut tables = BTreeMap::new();
        if running {
            let client = self.client(instance).await?;
            if self.in_recovery(&client).await? {
                return Err("is a standby already: there is nothing to demote".into());
            }
            // Fence: no new writes, and every other session cut off mid-transaction.
            // One statement per call: ALTER SYSTEM cannot run in a transaction block.
            for sql in [
                "ALTER SYSTEM SET default_transaction_read_only = on",
                "SELECT pg_reload_conf()",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            ] {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| format!("fencing: {}", server::describe(&e)))?;
            }
            tables = self.fingerprints(&client).await?;
            // Read-only was the fence of this moment; after the shutdown the directory is a
            // standby's, and a later promotion must come up writable.
            client
                .batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
                .await
                .map_err(|e| format!("fencing: {}", server::describe(&e)))?;
            drop(client);
            self.stop_server(instance).await?;
        }
        let standby = instance.data().join("standby.signal");
        std::fs::write(&standby, "").map_err(|e| format!("{}: {e}", standby.display()))?;
        self.programs.own(&standby)?;
        let data = path(&instance.data());
        let control = self
            .programs
            .run("pg_controldata", &["-D", &data], self.timeout(), &[])
            .await?;
        let lsn = control
            .stdout
            .lines()
            .find_map(|line| line.strip_prefix("Latest checkpoint location:"))
            .map(|v| v.trim().to_string())
            .ok_or("pg_controldata names no checkpoint location")?;
        let handoff = Handoff { lsn, tables };
        let json = serde_json::to_string(&handoff).map_err(|e| e.to_string())?;
        crate::products::support::write_small(&handoff_file, &json)?;
        // Back up as a standby with no upstream: read-only, and copies can still read from
        // it until `follow` points it at the new leader.
        self.start_server(instance).await?;
        Ok(handoff)
    }

    async fn promote_instance(
        &self,
        instance: &Instance,
        handoff: Option<&str>,
    ) -> Result<(), String> {
        if !instance.has_data() {
            return Err("has no data to promote".into());
        }
        self.start_server(instance).await?;
        let client = self.client(instance).await?;
        if !self.in_recovery(&client).await? {
            return Ok(());
        }
        if let Some(handoff) = handoff {
            let handoff: Handoff =
                serde_json::from_str(handoff).map_err(|e| format!("handoff `{handoff}`: {e}"))?;
            let target = server::parse_lsn(&handoff.lsn)
                .ok_or_else(|| format!("handoff LSN `{}`", handoff.lsn))?;
            self.wait_replayed(instance, target, &Progress::default())
                .await
                .map_err(|e| format!("refusing to promote: {e}"))?;
            for (table, expected) in &handoff.tables {
                let found = server::fingerprint(&client, table).await?;
                if &found != expected {
                    return Err(format!(
                        "refusing to promote: table {table} is {found} here, the old leader had {expected}"
                    ));
                }
            }
        }
        client
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .map_err(|e| format!("pg_promote: {}", server::describe(&e)))?;
        let deadline = Instant::now() + self.timeout();
        while self.in_recovery(&client).await? {
            if Instant::now() > deadline {
                return Err("still in recovery after pg_promote".into());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    async fn follow_instance(&self, instance: &Instance, leader: &Source) -> Result<(), String> {
        let endpoint = leader
            .endpoint
            .as_deref()
            .ok_or_else(|| format!("the leader on {} reports no endpoint", leader.node))?;
        if !instance.has_data() {
            return self
                .clone_from(instance, endpoint, None, &Progress::default())
                .await;
        }
        if self.is_running(instance).await? {
            let client = self.client(instance).await?;
            if !self.in_recovery(&client).await? {
                return Err("is writable: a leader is demoted before it follows".into());
            }
            // A standby started on its own (a new partition's second start) is another
            // cluster: it cannot stream from this leader, and holds nothing of its data.
            let leader_client =
                server::connect(endpoint, &self.config.database, QUERY_TIMEOUT).await?;
            if system_id(&client).await? != system_id(&leader_client).await? {
                drop(client);
                self.stop_server(instance).await?;
                std::fs::remove_dir_all(instance.data())
                    .map_err(|e| format!("removing a foreign cluster: {e}"))?;
                return self
                    .clone_from(instance, endpoint, None, &Progress::default())
                    .await;
            }
            let (host, port) = server::split_endpoint(endpoint)?;
            let wanted = server::conninfo(host, port);
            let current: String = client
                .query_one("SELECT current_setting('primary_conninfo')", &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            if current == wanted {
                return Ok(());
            }
            for sql in [
                format!("ALTER SYSTEM SET primary_conninfo = '{wanted}'"),
                "SELECT pg_reload_conf()".to_string(),
            ] {
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| format!("re-pointing: {}", server::describe(&e)))?;
            }
            return Ok(());
        }
        if !instance.is_standby() {
            return Err("its data directory is not a standby's".into());
        }
        server::set_primary(&instance.data(), endpoint)?;
        self.start_server(instance).await
    }
}

/// The cluster's identity, shared by a primary and every standby cloned from it.
async fn system_id(client: &tokio_postgres::Client) -> Result<i64, String> {
    let row = client
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .await
        .map_err(|e| server::describe(&e))?;
    Ok(row.get(0))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[async_trait]
impl Actuator for PostgresActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        let instance = self
            .instance(&ctx.replica_dir)
            .map_err(|e| failed(&ctx.replica, e))?;
        let leader = state == self.config.leader_state;
        self.create(&instance, leader)
            .await
            .map_err(|e| failed(&ctx.replica, e))
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        _bytes: u64,
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
        self.clone_from(&instance, endpoint, Some(rate_mbps), &ctx.progress)
            .await
            .map_err(|e| failed(replica, e))?;
        if state == self.config.leader_state {
            // Straight into leadership: only ever planned when the source is already fenced.
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
        let json = serde_json::to_string(&handoff).map_err(|e| failed(&ctx.replica, e))?;
        Ok(Some(json))
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
        let _ = leftover::kill(&ctx.replica_dir.join(COPY_PID_FILE));
        self.stop_server(&instance)
            .await
            .map_err(|e| failed(&ctx.replica, e))?;
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
        let instance = Instance {
            replica_dir: replica.replica_dir.clone(),
            port: port.trim().parse().unwrap_or(0),
        };
        let health = match server::connect(
            &endpoint,
            &self.config.database,
            Duration::from_millis(500),
        )
        .await
        {
            Ok(client) => {
                let row = client
                    .query_one(
                        "SELECT pg_is_in_recovery(), coalesce((SELECT status FROM pg_stat_wal_receiver LIMIT 1), '')",
                        &[],
                    )
                    .await;
                match row {
                    Ok(row) if !row.get::<_, bool>(0) => Health::Serving,
                    Ok(row) if row.get::<_, String>(1) == "streaming" => Health::Serving,
                    Ok(_) => Health::Starting,
                    Err(_) => Health::Failing,
                }
            }
            // A follower waiting for its leader, or a demoted leader waiting to follow.
            Err(_) if !instance.has_data() || instance.is_standby() => Health::Starting,
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
        if !instance.has_data() {
            if state == self.config.leader_state {
                return Err(failed(&replica.replica, "a leader without data"));
            }
            return Ok(());
        }
        if state != self.config.leader_state && !instance.is_standby() {
            // Never bring a follower back writable.
            let standby = instance.data().join("standby.signal");
            std::fs::write(&standby, "")
                .map_err(|e| ActuatorError::io(format!("{}", standby.display()), e))?;
            self.programs
                .own(&standby)
                .map_err(|e| failed(&replica.replica, e))?;
        }
        self.start_server(&instance)
            .await
            .map_err(|e| failed(&replica.replica, e))
    }
}
