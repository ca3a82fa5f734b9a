//! Pieces every product actuator needs: a port per replica that survives restarts, servers
//! run as an unprivileged user, and a throttle that holds a copy to its booked rate.

use std::io::{self, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Ports a product's replicas may listen on, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn validate(&self) -> Result<(), String> {
        if self.first == 0 || self.first > self.last {
            return Err(format!(
                "{}..{} is empty or starts at 0",
                self.first, self.last
            ));
        }
        Ok(())
    }
}

/// File in a replica's directory holding the port it was given.
pub const PORT_FILE: &str = "port";

/// The replica's port: the one it was given before (so peers' configurations stay right
/// after a restart), else the first port of `range` that no other replica under `root` (the
/// agent's replicas directory, `<root>/<group>/<partition>/port`) holds and that is free now.
/// `replica_dir` is created if needed.
pub fn claim_port(replica_dir: &Path, root: &Path, range: PortRange) -> io::Result<u16> {
    // Transitions of different replicas run at once: without this, two could both find the
    // same port free before either wrote its file.
    static CLAIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _claiming = CLAIMING.lock().unwrap_or_else(|e| e.into_inner());
    let file = replica_dir.join(PORT_FILE);
    if let Some(port) = read_port(&file)? {
        return Ok(port);
    }
    let taken = ports_under(root)?;
    for port in range.first..=range.last {
        if taken.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        std::fs::create_dir_all(replica_dir)?;
        crate::durable::write_atomically(&file, port.to_string().as_bytes())
            .map_err(|e| io::Error::other(e.to_string()))?;
        return Ok(port);
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free port in {}..{} (every one is held by a replica or in use)",
            range.first, range.last
        ),
    ))
}

fn read_port(file: &Path) -> io::Result<Option<u16>> {
    match std::fs::read_to_string(file) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a port: {text:?}", file.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ports held by the replicas under `root` (`<root>/<group>/<partition>/port`).
fn ports_under(root: &Path) -> io::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for group in subdirectories(root)? {
        for replica in subdirectories(&group)? {
            if let Ok(Some(port)) = read_port(&replica.join(PORT_FILE)) {
                ports.push(port);
            }
        }
    }
    Ok(ports)
}

fn subdirectories(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    Ok(out)
}

/// A helper process (a copy, a hook) the agent started for a replica, recorded in a file
/// so that a restarted agent kills what its predecessor left running before it starts the
/// work again — two copies into one directory would corrupt it.
pub mod leftover {
    use std::io;
    use std::path::Path;

    use crate::process::procfs::{self, ProcessIdentity};

    /// Records `pid` (its own process group's leader) in `file`.
    pub fn record(file: &Path, pid: u32) -> io::Result<()> {
        let Some(identity) = procfs::identify(pid) else {
            // Already gone: nothing can be left over.
            return Ok(());
        };
        let json = serde_json::to_vec(&identity).map_err(io::Error::other)?;
        crate::durable::write_atomically(file, &json).map_err(|e| io::Error::other(e.to_string()))
    }

    /// Kills the process group recorded in `file` and forgets it. True if something was
    /// killed. The group outlives its leader (a hook's shell killed, its copier running on),
    /// so the group is killed unless the leader's pid now names another process — then the
    /// pid, and with it the group id, may have been reused.
    pub fn kill(file: &Path) -> io::Result<bool> {
        let identity: ProcessIdentity = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let reused = procfs::read_stat(identity.pid)
            .is_some_and(|stat| stat.start_ticks != identity.start_ticks);
        let killed = !reused && kill_group(identity.pid);
        forget(file)?;
        Ok(killed)
    }

    /// SIGKILL to the process group `pid` leads; true if any process got it.
    pub fn kill_group(pid: u32) -> bool {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        let group = nix::unistd::Pid::from_raw(pid);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).is_ok()
    }

    /// The work finished: nothing to kill any more.
    pub fn forget(file: &Path) -> io::Result<()> {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes a small file so that it is either absent or complete.
pub fn write_small(path: &Path, text: &str) -> Result<(), String> {
    let temporary = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| format!("{}: {e}", temporary.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The user a product's server processes run as (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: nix::unistd::Uid,
    pub gid: nix::unistd::Gid,
}

impl RunAs {
    /// Looks `name` up in the system's user database.
    pub fn lookup(name: &str) -> Result<RunAs, String> {
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) => Ok(RunAs {
                uid: user.uid,
                gid: user.gid,
            }),
            Ok(None) => Err(format!("no user `{name}` on this machine")),
            Err(e) => Err(format!("cannot look up user `{name}`: {e}")),
        }
    }

    /// Makes `command` run as this user.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        command.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }

    /// Gives `path` and everything under it to this user, so the server can write there.
    pub fn chown_tree(&self, path: &Path) -> io::Result<()> {
        let (uid, gid) = (Some(self.uid.as_raw()), Some(self.gid.as_raw()));
        std::os::unix::fs::lchown(path, uid, gid)?;
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}

/// A token bucket in bytes: callers ask for bytes before sending them and wait until the
/// booked rate allows. The burst is small (a fraction of a second of rate) so the rate holds
/// over any window longer than that, which is what the planner's booking assumes.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

/// Burst allowance, in seconds of rate.
const BURST_SECONDS: f64 = 0.05;
/// Smallest burst, so single reads of a few KiB are never split into waits.
const BURST_MIN_BYTES: f64 = 16.0 * 1024.0;

impl Throttle {
    /// A throttle at `rate_mbps` MB/s (10^6 bytes, the planner's unit). A rate that is not
    /// positive and finite means unthrottled.
    pub fn new(rate_mbps: f64) -> Throttle {
        let bytes_per_second = if rate_mbps.is_finite() && rate_mbps > 0.0 {
            rate_mbps * 1e6
        } else {
            f64::INFINITY
        };
        let burst = (bytes_per_second * BURST_SECONDS).max(BURST_MIN_BYTES);
        Throttle {
            bytes_per_second,
            burst,
            tokens: burst,
            refilled: Instant::now(),
        }
    }

    /// The largest amount worth asking for at once.
    pub fn chunk_max(&self) -> usize {
        self.burst.min(1024.0 * 1024.0) as usize
    }

    /// Waits until `bytes` may be sent. Bytes larger than the burst are paid over several
    /// refills; the debt model means a large request waits in proportion to its size.
    pub async fn take(&mut self, bytes: usize) {
        if self.bytes_per_second.is_infinite() {
            return;
        }
        self.refill();
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            let wait = -self.tokens / self.bytes_per_second;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            self.refill();
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_keeps_its_port_and_others_get_different_ones() {
        let root = tempfile::tempdir().expect("tempdir");
        let range = PortRange {
            first: 20_000,
            last: 60_000,
        };
        let dir = |name: &str| root.path().join("orders").join(name);
        let a = claim_port(&dir("0"), root.path(), range).expect("a port");
        let b = claim_port(&dir("1"), root.path(), range).expect("b port");
        assert_ne!(a, b);
        assert_eq!(claim_port(&dir("0"), root.path(), range).expect("again"), a);
        let one = PortRange { first: a, last: a };
        let error = claim_port(&dir("2"), root.path(), one).expect_err("taken");
        assert!(error.to_string().contains("no free port"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_throttle_holds_the_rate_over_a_window() {
        let mut throttle = Throttle::new(10.0);
        let started = Instant::now();
        let mut sent = 0usize;
        while sent < 20_000_000 {
            let chunk = throttle.chunk_max();
            throttle.take(chunk).await;
            sent += chunk;
        }
        let seconds = started.elapsed().as_secs_f64();
        let rate = sent as f64 / seconds / 1e6;
        assert!((9.5..=10.5).contains(&rate), "{rate} MB/s over {seconds} s");
    }
}
