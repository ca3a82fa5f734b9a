//! One replica's redis-server process: its configuration file, starting it (or adopting the
//! one a previous agent left running), and stopping it.
//!
//! The server daemonizes (`daemonize yes`, `pidfile` in the replica directory): it outlives
//! the agent, as a database should, and a restarted agent finds it by its port and proves it
//! is this replica's by `INFO server`'s `config_file` — never starting a second one on the
//! same directory. A server that does not answer but whose pid file names a live process
//! that is this server (its command line names our port or configuration) is waited for,
//! not doubled: it may be loading a large append-only file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Bounds, Client, Command, TRANSITION};
use super::info::Info;
use crate::process::procfs;
use crate::products::support::RunAs;

pub const CONFIG_FILE: &str = "redis.conf";
pub const PID_FILE: &str = "redis.pid";
pub const LOG_FILE: &str = "redis.log";

/// The oldest Redis the actuator drives: `ACL DRYRUN` (its fence check) is 7.0's.
pub const VERSION_MIN: (u32, u32) = (7, 0);

/// Between two liveness probes while a server starts or stops.
const POLL: Duration = Duration::from_millis(50);
/// After SIGKILL, how long the process may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Lines of the server's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 6;

/// Where one replica's server lives and listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Absolute: Redis records its configuration file's path as given, and adoption
    /// compares it.
    pub dir: PathBuf,
    pub port: u16,
    /// `None` until a relay port was claimed (a server found on disk before its claim).
    pub relay_port: Option<u16>,
}

/// How servers are started.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub binary: PathBuf,
    pub run_as: Option<RunAs>,
    pub settings: BTreeMap<String, String>,
    pub start_timeout: Duration,
}

/// Whether a server created now takes writes from the start (a new leader) or is fenced
/// until promoted (everything else). An existing server keeps what its configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    Allowed,
    Fenced,
}

/// What answers on a server's port.
pub enum Probe {
    /// This replica's server, ready for commands.
    Ready(Box<Client>, Info),
    /// Something that accepted the connection but is not ready: this replica's server
    /// loading its data, or a server too busy to answer `INFO` in time. Never started over.
    Busy,
    /// Another server (its configuration file named).
    Foreign(String),
    /// This replica's server, but a Redis older than [`VERSION_MIN`] (its version named).
    Unsupported(String),
    /// Nothing.
    Silent,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Whether a server was ever created here.
    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    /// The configuration a server is created with. Roles and the fence change at run time
    /// and are saved back into it by `CONFIG REWRITE`.
    pub fn config_text(&self, writes: Writes, settings: &BTreeMap<String, String>) -> String {
        let dir = self.dir.to_string_lossy();
        let fence = match writes {
            Writes::Allowed => "",
            Writes::Fenced => " -@write",
        };
        let mut text = format!(
            "# Written by the Meridian agent. It changes the role (REPLICAOF) and the write\n\
             # fence (ACL SETUSER default) at run time and saves them with CONFIG REWRITE.\n\
             port {port}\n\
             bind 127.0.0.1\n\
             dir {dir}\n\
             daemonize yes\n\
             pidfile {pidfile}\n\
             logfile {logfile}\n\
             appendonly yes\n\
             appendfsync everysec\n\
             save \"\"\n\
             replica-read-only yes\n\
             repl-diskless-sync-delay 0\n\
             user default on nopass ~* &* +@all{fence}\n",
            port = self.port,
            dir = quote(&dir),
            pidfile = quote(&format!("{dir}/{PID_FILE}")),
            logfile = quote(&format!("{dir}/{LOG_FILE}")),
        );
        for (name, value) in settings {
            text.push_str(&format!("{name} {value}\n"));
        }
        text
    }

    /// Asks what answers on the port.
    pub async fn probe(&self, bounds: Bounds) -> Probe {
        let Ok(mut client) = Client::connect(&self.endpoint(), bounds).await else {
            return Probe::Silent;
        };
        // INFO answers while the server loads its data; most commands do not. Its default
        // sections, not a list of them: Redis before 7 takes only one.
        let info = match client.info("").await {
            Ok(info) => info,
            Err(_) => return Probe::Busy,
        };
        let ours = self.config_path();
        match info.get("config_file") {
            Some(file) if Path::new(file) == ours => {}
            other => return Probe::Foreign(other.unwrap_or("none").to_string()),
        }
        if info.version().is_none_or(|version| version < VERSION_MIN) {
            let version = info.get("redis_version").unwrap_or("unknown");
            return Probe::Unsupported(version.to_string());
        }
        if info.loading() {
            return Probe::Busy;
        }
        Probe::Ready(Box::new(client), info)
    }

    fn unsupported(&self, version: &str) -> String {
        format!(
            "{} runs redis-server {version}: the actuator needs {}.{} or later (ACL DRYRUN, \
             CLIENT PAUSE WRITE, SHUTDOWN NOW FORCE)",
            self.endpoint(),
            VERSION_MIN.0,
            VERSION_MIN.1
        )
    }

    fn foreign(&self, file: &str) -> String {
        format!(
            "{} answers for another server (config file {file}, not {}): refusing to touch it",
            self.endpoint(),
            self.config_path().display()
        )
    }

    /// Adopts the running server or starts it, and waits until it is ready. A server created
    /// now starts as `writes` says; an existing one comes back as its configuration says.
    pub async fn ensure_started(
        &self,
        launcher: &Launcher,
        writes: Writes,
    ) -> Result<(Client, Info), String> {
        let deadline = Instant::now() + launcher.start_timeout;
        match self.probe(TRANSITION).await {
            Probe::Ready(client, info) => return Ok((*client, info)),
            Probe::Foreign(file) => return Err(self.foreign(&file)),
            Probe::Unsupported(version) => return Err(self.unsupported(&version)),
            Probe::Busy => {}
            Probe::Silent => match self.running_pid() {
                Some(pid) => tracing::info!(
                    endpoint = %self.endpoint(), pid,
                    "redis-server runs but does not answer yet: waiting for it"
                ),
                None => self.launch(launcher, writes).await?,
            },
        }
        self.wait_ready(deadline).await
    }

    async fn launch(&self, launcher: &Launcher, writes: Writes) -> Result<(), String> {
        let config = self.config_path();
        if !config.is_file() {
            let text = self.config_text(writes, &launcher.settings);
            crate::durable::write_atomically(&config, text.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        if let Some(run_as) = &launcher.run_as {
            run_as
                .chown_tree(&self.dir)
                .map_err(|e| format!("giving {} to the server's user: {e}", self.dir.display()))?;
        }
        let mut command = tokio::process::Command::new(&launcher.binary);
        command
            .arg(&config)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(run_as) = &launcher.run_as {
            run_as.apply(&mut command);
        }
        let binary = launcher.binary.display();
        // With `daemonize yes` the command returns once the server has forked off; a bad
        // configuration makes it fail here, on stderr.
        let output = tokio::time::timeout(launcher.start_timeout, command.output())
            .await
            .map_err(|_| format!("`{binary} {}` did not daemonize in time", config.display()))?
            .map_err(|e| format!("cannot run `{binary}`: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`{binary} {}` failed ({}): {}{}",
                config.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                self.log_tail()
            ));
        }
        tracing::info!(
            endpoint = %self.endpoint(), dir = %self.dir.display(), "redis-server started"
        );
        Ok(())
    }

    async fn wait_ready(&self, deadline: Instant) -> Result<(Client, Info), String> {
        loop {
            // Transition bounds: the client returned serves the transition's commands (a
            // refused connection still fails at once).
            match self.probe(TRANSITION).await {
                Probe::Ready(client, info) => return Ok((*client, info)),
                Probe::Foreign(file) => return Err(self.foreign(&file)),
                Probe::Unsupported(version) => return Err(self.unsupported(&version)),
                Probe::Busy | Probe::Silent => {}
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on {} not ready in time{}",
                    self.endpoint(),
                    self.log_tail()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The pid of this server if it runs: the one in the pid file if that process is alive
    /// and is this server (pids are reused), else one found by its process title (a pid
    /// file lost or not written yet must not lead to a second server on the same data).
    pub fn running_pid(&self) -> Option<u32> {
        let from_file = std::fs::read_to_string(self.dir.join(PID_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&pid| self.is_this_server(pid));
        from_file.or_else(|| {
            let entries = std::fs::read_dir("/proc").ok()?;
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .find(|&pid| self.is_this_server(pid))
        })
    }

    fn is_this_server(&self, pid: u32) -> bool {
        if procfs::identify(pid).is_none() {
            return false;
        }
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| names_server(&cmdline, self.port, &self.config_path()))
    }

    /// Stops the server, data discarded: `SHUTDOWN NOSAVE NOW FORCE` (no waiting for
    /// replicas, no final save: the data is about to be deleted), SIGKILL by pid file if it
    /// does not go within `timeout`. Nothing running is fine.
    pub async fn shut_down(&self, timeout: Duration) -> Result<(), String> {
        let mut pid = self.running_pid();
        let asked = match self.probe(TRANSITION).await {
            Probe::Ready(mut client, info) => {
                pid = pid.or_else(|| info.number("process_id").and_then(|p| p.try_into().ok()));
                let shutdown = Command::new("SHUTDOWN NOSAVE NOW FORCE");
                match client.try_query::<()>(&shutdown).await {
                    Ok(()) => true,
                    // It closes the connection as it exits: that is the success.
                    Err(e) if e.dropped => true,
                    Err(e) => {
                        tracing::warn!("{e}; killing it instead");
                        false
                    }
                }
            }
            // Someone else's server: never ours to stop.
            Probe::Foreign(file) => return Err(self.foreign(&file)),
            // Loading, hung or too old to be asked: nothing to wait for but a kill.
            Probe::Busy | Probe::Silent | Probe::Unsupported(_) => false,
        };
        let Some(pid) = pid else {
            return Ok(());
        };
        if asked && self.wait_gone(pid, Instant::now() + timeout).await {
            return Ok(());
        }
        tracing::warn!(endpoint = %self.endpoint(), pid, asked, "redis-server: SIGKILL");
        kill(pid);
        if self.wait_gone(pid, Instant::now() + KILL_WAIT).await {
            return Ok(());
        }
        Err(format!(
            "redis-server pid {pid} on {} survives SIGKILL",
            self.endpoint()
        ))
    }

    async fn wait_gone(&self, pid: u32, deadline: Instant) -> bool {
        loop {
            if procfs::identify(pid).is_none() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The end of the server's log, for errors (empty if there is none).
    fn log_tail(&self) -> String {
        let Ok(log) = std::fs::read_to_string(self.dir.join(LOG_FILE)) else {
            return String::new();
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join(" | ");
        format!(" (end of {}: {tail})", self.dir.join(LOG_FILE).display())
    }
}

/// Where packages install redis-server, for a bare name not on the agent's `PATH` (a
/// systemd unit's is minimal).
const BINARY_DIRS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/sbin"];

/// `binary` as configured, unless it is a bare name found on neither `PATH` nor in
/// [`BINARY_DIRS`]: then the first of those that has it.
pub fn resolve_binary(binary: &Path) -> PathBuf {
    let bare = binary.components().count() == 1 && !binary.is_absolute();
    if !bare {
        return binary.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()) {
        return binary.to_path_buf();
    }
    BINARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(binary))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| binary.to_path_buf())
}

/// Whether a process's command line (`/proc/<pid>/cmdline`) is the server on `port` with
/// `config`: its arguments before Redis retitles it (`redis-server <config>`), or its title
/// after (`redis-server 127.0.0.1:<port>`, one argument with spaces).
fn names_server(cmdline: &[u8], port: u16, config: &Path) -> bool {
    let listening = format!("127.0.0.1:{port}");
    let config = config.as_os_str().as_encoded_bytes();
    let arguments: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let redis = arguments
        .first()
        .is_some_and(|first| String::from_utf8_lossy(first).contains("redis-server"));
    let by_config = arguments.iter().skip(1).any(|argument| *argument == config);
    let by_title = arguments.iter().any(|argument| {
        String::from_utf8_lossy(argument)
            .split_whitespace()
            .any(|word| word == listening)
    });
    redis && (by_config || by_title)
}

/// SIGKILL to `pid`, whose identity the caller checked.
fn kill(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A redis.conf string argument: double-quoted, with the escapes Redis's parser reads.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && c.is_ascii() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server {
            dir: PathBuf::from("/srv/replicas/ev%20ents/0"),
            port: 7001,
            relay_port: Some(7101),
        }
    }

    #[test]
    fn a_new_leader_takes_writes_and_anything_else_starts_fenced() {
        let settings = BTreeMap::from([("maxmemory".to_string(), "2gb".to_string())]);
        let leader = server().config_text(Writes::Allowed, &settings);
        assert!(leader.contains("\nport 7001\n"), "{leader}");
        assert!(leader.contains("\nbind 127.0.0.1\n"));
        assert!(leader.contains("\ndir \"/srv/replicas/ev%20ents/0\"\n"));
        assert!(leader.contains("\npidfile \"/srv/replicas/ev%20ents/0/redis.pid\"\n"));
        assert!(leader.contains("\nappendonly yes\n"));
        assert!(leader.contains("\nuser default on nopass ~* &* +@all\n"));
        assert!(leader.ends_with("maxmemory 2gb\n"), "settings come last");
        assert!(!leader.contains("replicaof"), "nobody to follow yet");
        let fenced = server().config_text(Writes::Fenced, &BTreeMap::new());
        assert!(fenced.contains("\nuser default on nopass ~* &* +@all -@write\n"));
        assert!(
            !fenced.contains("replicaof"),
            "fenced, not parked on a fake master"
        );
    }

    #[test]
    fn a_process_is_this_server_by_its_arguments_or_its_title() {
        let config = Path::new("/srv/r/events/0/redis.conf");
        let started = b"redis-server\0/srv/r/events/0/redis.conf\0";
        assert!(names_server(started, 7001, config));
        let titled = b"redis-server 127.0.0.1:7001\0\0\0\0";
        assert!(names_server(titled, 7001, config));
        assert!(
            !names_server(titled, 700, config),
            "a prefix of the port is another port"
        );
        let titled_other = b"redis-server 127.0.0.1:70010\0";
        assert!(!names_server(titled_other, 7001, config));
        let other_config = b"redis-server\0/srv/r/events/1/redis.conf\0";
        assert!(!names_server(other_config, 7001, config));
        assert!(
            !names_server(b"nc\0-l\x00127.0.0.1:7001\0", 7001, config),
            "not redis"
        );
        assert!(!names_server(b"", 7001, config));
    }

    #[test]
    fn paths_are_quoted_for_redis() {
        assert_eq!(quote("/a b/c"), "\"/a b/c\"");
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(quote("\u{1}"), "\"\\x01\"");
    }
}
