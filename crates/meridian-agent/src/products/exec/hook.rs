//! Running one hook: its own process group (so a timeout kills whatever it started), its
//! output appended to the replica's hook log, and a small line protocol on stdout through
//! which it reports back:
//!
//! - `meridian:progress bytes_done=<n> [lag_bytes=<n>]` — a copy's progress;
//! - `meridian:handoff <text>` — a demotion's position, handed to the successor's promote;
//! - `meridian:endpoint <host:port or URL>` — where the replica serves;
//! - `meridian:health serving|starting|failing` — overrides what the exit status says;
//! - `meridian:heat <dimension>=<value> ...` — measured load.
//!
//! Any other line is only logged.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use meridian_wire::Health;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::actuator::Progress;
use crate::process::launch::{describe, CommandLine};
use crate::products::support::leftover;

/// What a hook reported on stdout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    pub handoff: Option<String>,
    pub endpoint: Option<String>,
    pub health: Option<Health>,
    pub heat: Vec<(String, f64)>,
}

/// Bytes of stderr kept for the error message.
const STDERR_TAIL_BYTES: usize = 2048;
/// A protocol line longer than this is logged, not parsed (a hook printing a blob).
const LINE_MAX: usize = 64 * 1024;

/// Where a hook run leaves its traces: its log, and the record of its process group that a
/// restarted agent kills before running the hook again.
pub struct Traces<'a> {
    pub log: &'a Path,
    pub leftover: Option<&'a Path>,
}

/// Runs `line` to completion within `timeout`. `Ok` only for exit status 0; the error names
/// the program, how it ended and the tail of its stderr.
pub async fn run(
    line: &CommandLine,
    timeout: Duration,
    traces: Traces<'_>,
    progress: Option<&Progress>,
) -> Result<Reported, String> {
    if let Some(file) = traces.leftover {
        if leftover::kill(file).map_err(|e| format!("{}: {e}", file.display()))? {
            tracing::warn!(
                program = line.program(),
                "killed a hook left running by an earlier agent"
            );
        }
    }
    let mut command = line.command()?;
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", line.program()))?;
    // Whatever ends this run — completion, timeout, the transition abandoned — ends the
    // hook's whole process group with it.
    let _group = child.id().map(GroupGuard);
    if let (Some(file), Some(pid)) = (traces.leftover, child.id()) {
        leftover::record(file, pid).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let log = traces.log;
    let outcome = tokio::time::timeout(timeout, async {
        let (reported, tail) =
            tokio::join!(read_stdout(stdout, log, progress), read_stderr(stderr, log));
        let status = child.wait().await;
        (reported, tail, status)
    })
    .await;
    let result = match outcome {
        Err(_) => {
            // Killed when `_group` drops.
            Err(format!(
                "`{}` did not finish within {} ms (killed)",
                line.program(),
                timeout.as_millis()
            ))
        }
        Ok((_, _, Err(e))) => Err(format!("`{}`: {e}", line.program())),
        Ok((reported, _, Ok(status))) if status.success() => Ok(reported),
        Ok((_, tail, Ok(status))) => {
            let tail = tail.trim();
            let detail = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            Err(format!("`{}` {}{detail}", line.program(), describe(status)))
        }
    };
    if let Some(file) = traces.leftover {
        // Finished or killed: nothing of it is left to kill.
        let _ = leftover::forget(file);
    }
    result
}

/// Kills a hook's process group when dropped. A hook that exited cleanly may have left
/// background children behind; they die too — a hook's work ends with the hook.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        leftover::kill_group(self.0);
    }
}

async fn read_stdout(
    stdout: Option<tokio::process::ChildStdout>,
    log: &Path,
    progress: Option<&Progress>,
) -> Reported {
    let mut reported = Reported::default();
    let Some(stdout) = stdout else {
        return reported;
    };
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(text)) = lines.next_line().await {
        append(log, "out", &text);
        if text.len() <= LINE_MAX {
            parse_line(&text, &mut reported, progress);
        }
    }
    reported
}

/// The last [`STDERR_TAIL_BYTES`] of stderr; all of it goes to the log.
async fn read_stderr(stderr: Option<tokio::process::ChildStderr>, log: &Path) -> String {
    let Some(mut stderr) = stderr else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stderr.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        append(log, "err", &String::from_utf8_lossy(&buffer[..read]));
        tail.extend_from_slice(&buffer[..read]);
        if tail.len() > STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

fn append(log: &Path, stream: &str, text: &str) {
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    if let Ok(mut file) = opened {
        let _ = writeln!(file, "[{stream}] {}", text.trim_end());
    }
}

/// Applies one stdout line of the protocol; other lines are ignored.
pub fn parse_line(text: &str, reported: &mut Reported, progress: Option<&Progress>) {
    let Some(rest) = text.trim().strip_prefix("meridian:") else {
        return;
    };
    let (keyword, value) = rest.split_once(' ').unwrap_or((rest, ""));
    let value = value.trim();
    match keyword {
        "progress" => {
            for (name, number) in pairs(value) {
                let Ok(number) = number.parse::<u64>() else {
                    continue;
                };
                match (name, progress) {
                    ("bytes_done", Some(p)) => p.set_bytes_done(number),
                    ("lag_bytes", Some(p)) => p.set_lag_bytes(number),
                    _ => {}
                }
            }
        }
        "handoff" if !value.is_empty() => reported.handoff = Some(value.to_string()),
        "endpoint" if !value.is_empty() => reported.endpoint = Some(value.to_string()),
        "health" => {
            reported.health = match value {
                "serving" => Some(Health::Serving),
                "starting" => Some(Health::Starting),
                "failing" => Some(Health::Failing),
                _ => reported.health,
            }
        }
        "heat" => {
            for (name, number) in pairs(value) {
                if let Ok(number) = number.parse::<f64>() {
                    if number.is_finite() && number >= 0.0 {
                        reported.heat.push((name.to_string(), number));
                    }
                }
            }
        }
        _ => {}
    }
}

fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_reads_what_it_knows_and_ignores_the_rest() {
        let progress = Progress::default();
        let mut reported = Reported::default();
        for line in [
            "copying...",
            "meridian:progress bytes_done=1000 lag_bytes=24",
            "meridian:progress bytes_done=nonsense",
            "meridian:handoff 0/3000060",
            "meridian:endpoint 127.0.0.1:7001",
            "meridian:health starting",
            "meridian:health sideways",
            "meridian:heat cpu=0.5 mem_gib=x disk_gib=-1 net_mbps=3",
            "meridian:unknown 1",
        ] {
            parse_line(line, &mut reported, Some(&progress));
        }
        assert_eq!(progress.bytes_done(), 1000);
        assert_eq!(progress.lag_bytes(), Some(24));
        assert_eq!(
            reported,
            Reported {
                handoff: Some("0/3000060".into()),
                endpoint: Some("127.0.0.1:7001".into()),
                health: Some(Health::Starting),
                heat: vec![("cpu".into(), 0.5), ("net_mbps".into(), 3.0)],
            }
        );
    }
}
