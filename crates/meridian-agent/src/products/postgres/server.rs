//! One PostgreSQL instance on disk and as a process: the programs (run as the configured
//! user), its configuration, and the queries the actuator asks it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::products::support::RunAs;

/// The superuser initdb creates; the agent connects as it.
pub const SUPERUSER: &str = "postgres";
/// Our settings, included from postgresql.conf and rewritten whenever the port changes (a
/// copy brings the source's file along).
const MERIDIAN_CONF: &str = "meridian.conf";

/// Where a replica's instance lives.
#[derive(Debug, Clone)]
pub struct Instance {
    pub replica_dir: PathBuf,
    pub port: u16,
}

impl Instance {
    pub fn data(&self) -> PathBuf {
        self.replica_dir.join("pgdata")
    }

    pub fn partial(&self) -> PathBuf {
        self.replica_dir.join("pgdata.partial")
    }

    pub fn log(&self) -> PathBuf {
        self.replica_dir.join("postgres.log")
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn has_data(&self) -> bool {
        self.data().join("PG_VERSION").is_file()
    }

    pub fn is_standby(&self) -> bool {
        self.data().join("standby.signal").is_file()
    }
}

/// Runs the PostgreSQL programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub bin_dir: PathBuf,
    pub run_as: Option<RunAs>,
}

/// How a program ended, with its output.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
}

impl Programs {
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: the agent's group being killed does not take a copy's
            // helper with it mid-write, and a leftover is killed as a group.
            .process_group(0);
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut command);
        }
        command
    }

    /// Runs `program` to completion within `timeout`; an error names the program, how it
    /// ended and the tail of its stderr. `ok_codes` are exit codes that are not errors.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
        ok_codes: &[i32],
    ) -> Result<Ran, String> {
        let child = self
            .command(program)
            .args(args)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let output = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                format!(
                    "{program} {} did not finish within {timeout:?}",
                    args.join(" ")
                )
            })?
            .map_err(|e| format!("{program}: {e}"))?;
        let code = output.status.code();
        if output.status.success() || code.is_some_and(|c| ok_codes.contains(&c)) {
            return Ok(Ran {
                code,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            });
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!(
            "{program} {} {}: {tail}",
            args.join(" "),
            crate::process::launch::describe(output.status)
        ))
    }

    /// Gives a file or directory the agent created to the server's user (not what is under
    /// it: the server creates its own files).
    pub fn own(&self, path: &Path) -> Result<(), String> {
        match &self.run_as {
            Some(run_as) => std::os::unix::fs::lchown(
                path,
                Some(run_as.uid.as_raw()),
                Some(run_as.gid.as_raw()),
            )
            .map_err(|e| format!("chown {}: {e}", path.display())),
            None => Ok(()),
        }
    }
}

/// Our settings for `instance`: where it listens, and what replication needs.
pub fn write_settings(
    instance: &Instance,
    extra: &std::collections::BTreeMap<String, String>,
) -> Result<(), String> {
    let data = instance.data_or_partial();
    let mut text = format!(
        "# Written by the Meridian agent; rewritten on every start.\n\
         port = {port}\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{socket}'\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         wal_keep_size = '512MB'\n\
         hot_standby = on\n\
         hot_standby_feedback = on\n",
        port = instance.port,
        socket = instance.replica_dir.display(),
    );
    for (name, value) in extra {
        text.push_str(&format!("{name} = '{value}'\n"));
    }
    let file = data.join(MERIDIAN_CONF);
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    let main = data.join("postgresql.conf");
    let current = std::fs::read_to_string(&main).map_err(|e| format!("{}: {e}", main.display()))?;
    let include = format!("include_if_exists = '{MERIDIAN_CONF}'");
    if !current.contains(&include) {
        std::fs::write(&main, format!("{current}\n{include}\n"))
            .map_err(|e| format!("{}: {e}", main.display()))?;
    }
    Ok(())
}

impl Instance {
    /// The data directory being set up: the finished one, or a copy not yet renamed.
    fn data_or_partial(&self) -> PathBuf {
        if self.data().is_dir() {
            self.data()
        } else {
            self.partial()
        }
    }
}

/// Sets `primary_conninfo` in postgresql.auto.conf (later lines win) for a stopped server.
pub fn set_primary(data: &Path, endpoint: &str) -> Result<(), String> {
    let (host, port) = split_endpoint(endpoint)?;
    let file = data.join("postgresql.auto.conf");
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    let kept: Vec<&str> = current
        .lines()
        .filter(|line| !line.trim_start().starts_with("primary_conninfo"))
        .collect();
    let text = format!(
        "{}\nprimary_conninfo = '{}'\n",
        kept.join("\n"),
        conninfo(host, port)
    );
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
}

pub fn conninfo(host: &str, port: u16) -> String {
    format!("host={host} port={port} user={SUPERUSER} application_name=meridian")
}

pub fn split_endpoint(endpoint: &str) -> Result<(&str, u16), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint `{endpoint}` is not host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("endpoint `{endpoint}`: bad port"))?;
    Ok((host, port))
}

/// A connection to the instance at `endpoint`, within `timeout`.
pub async fn connect(
    endpoint: &str,
    database: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client, String> {
    let (host, port) = split_endpoint(endpoint)?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user(SUPERUSER)
        .dbname(database)
        .application_name("meridian-agent")
        .connect_timeout(timeout);
    let (client, connection) = tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| format!("{endpoint}: no connection within {timeout:?}"))?
        .map_err(|e| format!("{endpoint}: {}", describe(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A client error with the server's own message when there is one (`db error` alone says
/// nothing).
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// A WAL position (`16/B374D848`) as a number, for comparisons.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u32::MAX as u64 && low <= u32::MAX as u64).then_some((high << 32) | low)
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Row count and md5 of every row of `table` in a stable order: equal on two servers means
/// the same rows.
pub async fn fingerprint(client: &tokio_postgres::Client, table: &str) -> Result<String, String> {
    let sql = format!(
        "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t"
    );
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| format!("fingerprint of {table}: {}", describe(&e)))?;
    Ok(row.get(0))
}

/// Total size of the files under `dir` (a copy's progress).
pub fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(directory) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_compare_and_print_back() {
        let a = parse_lsn("16/B374D848").expect("valid");
        let b = parse_lsn("17/0").expect("valid");
        assert!(a < b);
        assert_eq!(format_lsn(a), "16/B374D848");
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("1/"), None);
    }
}
