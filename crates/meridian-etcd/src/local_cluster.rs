//! A real etcd cluster of N members on 127.0.0.1, as child processes: for integration tests
//! (of this crate and others) and demos. Not a way to run etcd in production.
//!
//! Members listen on free loopback ports, keep their data under the given directory and write
//! their logs to a file each there (`member-<i>.log`), not to the test's output. Timings are
//! fast (heartbeat 50 ms, election timeout 500 ms, so the minimum lease TTL is 1 s) to keep
//! failover tests short. Dropping the cluster kills every member, so no etcd outlives its test.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, ConnectOptions, GetOptions};

/// Env var naming the etcd binary to run; else `etcd` on PATH, else /usr/bin/etcd.
pub const ETCD_BIN_ENV: &str = "MERIDIAN_ETCD_BIN";
/// How long a member may take to start answering.
const READY_WAIT_MAX: Duration = Duration::from_secs(20);
/// How often readiness is probed, and how long one probe may take.
const READY_POLL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How many times a start is retried from scratch when a picked port was taken by someone
/// else between picking and etcd binding it.
const START_ATTEMPTS_MAX: usize = 3;
/// A cluster larger than this is not a test cluster.
const MEMBERS_MAX: usize = 9;
/// How much of a failed member's log an error quotes.
const LOG_TAIL_BYTES: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("no etcd binary ({0}); install Debian's `etcd-server` package (apt-get install etcd-server) or set {ETCD_BIN_ENV}")]
    NoBinary(String),
    #[error("a local cluster has 1 to {MEMBERS_MAX} members, not {0}")]
    Size(usize),
    #[error("no member {member} in a cluster of {members}")]
    NoMember { member: usize, members: usize },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd member {member} not ready: {reason}; the end of {log}:\n{tail}")]
    NotReady {
        member: usize,
        reason: String,
        log: String,
        tail: String,
    },
}

impl LocalClusterError {
    /// True if a member failed because its port was taken: a new start with new ports may work.
    fn is_port_taken(&self) -> bool {
        matches!(self, LocalClusterError::NotReady { tail, .. } if tail.contains("address already in use"))
    }
}

pub type Result<T> = std::result::Result<T, LocalClusterError>;

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalClusterError {
    let context = context.into();
    move |source| LocalClusterError::Io { context, source }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Already exited is fine; either way wait() reaps it so no zombie is left.
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// A running local etcd cluster. Dropping it kills every member.
pub struct LocalCluster {
    binary: PathBuf,
    members: Vec<Member>,
    /// `name=peer-url,...` for every member, as etcd's --initial-cluster wants it.
    initial_cluster: String,
    token: String,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("binary", &self.binary)
            .field("client_endpoints", &self.client_endpoints())
            .finish_non_exhaustive()
    }
}

/// The etcd binary to run: `MERIDIAN_ETCD_BIN`, else `etcd` on PATH, else /usr/bin/etcd.
pub fn etcd_binary() -> Result<PathBuf> {
    if let Some(named) = std::env::var_os(ETCD_BIN_ENV) {
        let path = PathBuf::from(&named);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(LocalClusterError::NoBinary(format!(
                "{ETCD_BIN_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file());
    let fallback = PathBuf::from("/usr/bin/etcd");
    on_path
        .or_else(|| fallback.is_file().then_some(fallback))
        .ok_or_else(|| LocalClusterError::NoBinary("not on PATH nor at /usr/bin/etcd".into()))
}

/// Go's name for this machine's architecture, when etcd 3.4 needs `ETCD_UNSUPPORTED_ARCH` set
/// to it to run at all (it only supports amd64 and ppc64le without it).
fn unsupported_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => None,
        "powerpc64" if cfg!(target_endian = "little") => None,
        "aarch64" => Some("arm64"),
        "x86" => Some("386"),
        "arm" => Some("arm"),
        "powerpc64" => Some("ppc64"),
        "s390x" => Some("s390x"),
        "riscv64" => Some("riscv64"),
        "loongarch64" => Some("loong64"),
        "mips64" => Some(if cfg!(target_endian = "little") {
            "mips64le"
        } else {
            "mips64"
        }),
        other => Some(other),
    }
}

/// Free loopback ports, all distinct: the listeners are held until every port is picked.
/// Another process may still take one before etcd binds it; starts retry for that.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(io("pick a free port")))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(io("read a port")))
        .collect()
}

fn log_tail(path: &Path) -> String {
    let Ok(bytes) = fs::read(path) else {
        return "(no log)".to_string();
    };
    let start = bytes.len().saturating_sub(LOG_TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// True once the member at `endpoint` serves a linearizable read, which needs a leader and a
/// quorum: the member is then fully part of a working cluster.
async fn serves_reads(endpoint: &str) -> bool {
    let probe = async {
        let options = ConnectOptions::new()
            .with_connect_timeout(PROBE_TIMEOUT)
            .with_timeout(PROBE_TIMEOUT);
        let mut client = Client::connect([endpoint], Some(options)).await?;
        let read = GetOptions::new().with_count_only();
        client.get("meridian-ready-probe", Some(read)).await
    };
    matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(_)))
}

/// The member's raft id and the leader's it knows, if it answers.
async fn member_status(endpoint: &str) -> Option<(u64, u64)> {
    let probe = async {
        let options = ConnectOptions::new()
            .with_connect_timeout(PROBE_TIMEOUT)
            .with_timeout(PROBE_TIMEOUT);
        let mut client = Client::connect([endpoint], Some(options)).await?;
        client.status().await
    };
    let status = tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()?
        .ok()?;
    Some((status.header()?.member_id(), status.leader()))
}

impl LocalCluster {
    /// Starts `members` etcd processes forming a new cluster, with data and logs under `dir`,
    /// and waits (bounded) until every member serves reads. Needs a tokio runtime with time
    /// enabled (the readiness probes are etcd clients).
    pub async fn start(members: usize, dir: &Path) -> Result<LocalCluster> {
        if members == 0 || members > MEMBERS_MAX {
            return Err(LocalClusterError::Size(members));
        }
        let binary = etcd_binary()?;
        std::fs::create_dir_all(dir).map_err(|source| LocalClusterError::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match LocalCluster::try_start(&binary, members, dir, attempt).await {
                Err(error) if error.is_port_taken() && attempt < START_ATTEMPTS_MAX => continue,
                outcome => return outcome,
            }
        }
    }

    async fn try_start(
        binary: &Path,
        members: usize,
        dir: &Path,
        attempt: usize,
    ) -> Result<LocalCluster> {
        let ports = free_ports(members * 2)?;
        let mut cluster = LocalCluster {
            binary: binary.to_path_buf(),
            members: Vec::with_capacity(members),
            initial_cluster: String::new(),
            token: cluster_token(attempt),
        };
        for (index, pair) in ports.chunks(2).enumerate() {
            let name = format!("member-{index}");
            let data_dir = dir.join(format!("{name}.etcd"));
            // A failed earlier attempt may have left a data dir with another cluster's id.
            if data_dir.exists() {
                fs::remove_dir_all(&data_dir)
                    .map_err(io(format!("remove stale data dir {}", data_dir.display())))?;
            }
            cluster.members.push(Member {
                log: dir.join(format!("{name}.log")),
                name,
                client_port: pair[0],
                peer_port: pair[1],
                data_dir,
                process: None,
            });
        }
        cluster.initial_cluster = cluster
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for member in 0..members {
            cluster.spawn(member)?;
        }
        for member in 0..members {
            cluster.wait_ready(member).await?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, member: usize) -> Result<()> {
        let initial_cluster = self.initial_cluster.clone();
        let token = self.token.clone();
        let binary = self.binary.clone();
        let m = self.member_mut(member)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(io(format!("open {}", m.log.display())))?;
        let log_too = log
            .try_clone()
            .map_err(io(format!("open {}", m.log.display())))?;
        let mut command = Command::new(&binary);
        command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &m.client_url()])
            .args(["--advertise-client-urls", &m.client_url()])
            .args(["--listen-peer-urls", &m.peer_url()])
            .args(["--initial-advertise-peer-urls", &m.peer_url()])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", &token])
            // Ignored by etcd once the data dir exists, so a restart rejoins the same cluster.
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too));
        // etcd reads ETCD_* variables as flags: ones from the caller's environment would clash.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        if let Some(arch) = unsupported_arch() {
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let process = command
            .spawn()
            .map_err(io(format!("run {}", binary.display())))?;
        m.process = Some(process);
        Ok(())
    }

    /// Waits until `member` serves reads, failing early if its process exits.
    async fn wait_ready(&mut self, member: usize) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_WAIT_MAX;
        let endpoint = self.member(member)?.client_url();
        loop {
            if serves_reads(&endpoint).await {
                return Ok(());
            }
            let m = self.member_mut(member)?;
            let exited = match m.process.as_mut() {
                Some(process) => process
                    .try_wait()
                    .map_err(io(format!("check {}", m.name)))?
                    .map(|status| format!("its process exited ({status})")),
                None => Some("it is not running".to_string()),
            };
            let timed_out = tokio::time::Instant::now() >= deadline;
            if let Some(reason) = exited.or_else(|| {
                timed_out.then(|| format!("no answer at {endpoint} within {READY_WAIT_MAX:?}"))
            }) {
                return Err(LocalClusterError::NotReady {
                    member,
                    reason,
                    log: m.log.display().to_string(),
                    tail: log_tail(&m.log),
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn member(&self, member: usize) -> Result<&Member> {
        let members = self.members.len();
        self.members
            .get(member)
            .ok_or(LocalClusterError::NoMember { member, members })
    }

    fn member_mut(&mut self, member: usize) -> Result<&mut Member> {
        let members = self.members.len();
        self.members
            .get_mut(member)
            .ok_or(LocalClusterError::NoMember { member, members })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member's client URL (`http://127.0.0.1:<port>`), killed members included: a
    /// client given all of them keeps working while a quorum runs.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Where `member` writes its log.
    pub fn log_path(&self, member: usize) -> Result<&Path> {
        Ok(&self.member(member)?.log)
    }

    /// True if `member`'s process is running (not killed, not exited).
    pub fn is_running(&mut self, member: usize) -> Result<bool> {
        let m = self.member_mut(member)?;
        Ok(match m.process.as_mut() {
            Some(process) => matches!(process.try_wait(), Ok(None)),
            None => false,
        })
    }

    /// The member the running members say is the raft leader, if they agree on one. Tests use
    /// it to kill the leader on purpose, the hardest single failure.
    pub async fn raft_leader(&mut self) -> Result<Option<usize>> {
        let mut ids = Vec::with_capacity(self.members.len());
        let mut leaders = Vec::new();
        for index in 0..self.members.len() {
            let status = if self.is_running(index)? {
                member_status(&self.members[index].client_url()).await
            } else {
                None
            };
            ids.push(status.map(|(id, _)| id));
            leaders.extend(status.map(|(_, leader)| leader));
        }
        let agreed = leaders
            .first()
            .copied()
            .filter(|first| *first != 0 && leaders.iter().all(|leader| leader == first));
        Ok(agreed.and_then(|leader| ids.iter().position(|id| *id == Some(leader))))
    }

    /// Kills `member` with SIGKILL, as a crash would: no goodbye to its peers.
    pub fn kill(&mut self, member: usize) -> Result<()> {
        self.member_mut(member)?.kill();
        Ok(())
    }

    /// Starts `member` again on its data (killing it first if it runs). If a quorum of members
    /// is running with it, waits until it serves reads; otherwise returns once it is started
    /// (an etcd member answers clients only once it has rejoined a quorum).
    pub async fn restart(&mut self, member: usize) -> Result<()> {
        self.member_mut(member)?.kill();
        self.spawn(member)?;
        let mut running = 0;
        for index in 0..self.members.len() {
            running += usize::from(self.is_running(index)?);
        }
        if running > self.members.len() / 2 {
            self.wait_ready(member).await?;
        }
        Ok(())
    }

    /// Kills every member. Their data stays under the directory given to `start`.
    pub fn stop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A token unique to this cluster, so members of two test clusters never join each other.
fn cluster_token(attempt: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("meridian-{}-{nanos}-{attempt}", std::process::id())
}
