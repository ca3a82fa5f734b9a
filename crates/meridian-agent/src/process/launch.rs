//! Turning a product's configuration into processes: placeholder substitution, the
//! `MERIDIAN_*` environment, spawning the workload, and running short commands (health
//! checks, hooks) under a timeout.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use meridian_wire::{Epoch, ReplicaKey};

/// Past this size, a workload's output file is started afresh at the next launch, so it
/// cannot fill the disk across restarts.
pub const OUTPUT_BYTES_MAX: u64 = 16 << 20;

/// The values a command's placeholders and `MERIDIAN_*` variables take.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholders {
    pub replica: ReplicaKey,
    pub state: String,
    pub node: String,
    pub dir: PathBuf,
    pub epoch: Epoch,
    /// More values, for hooks that need them (`from`, `rate_mbps`, ...): each is a `{name}`
    /// placeholder and a `MERIDIAN_<NAME>` variable.
    pub extra: Vec<(&'static str, String)>,
}

impl Placeholders {
    fn value(&self, name: &str) -> Option<String> {
        match name {
            "group" => Some(self.replica.group.clone()),
            "partition" => Some(self.replica.partition.to_string()),
            "state" => Some(self.state.clone()),
            "node" => Some(self.node.clone()),
            "dir" => Some(self.dir.display().to_string()),
            "epoch" => Some(self.epoch.to_string()),
            _ => self
                .extra
                .iter()
                .find(|(extra, _)| *extra == name)
                .map(|(_, value)| value.clone()),
        }
    }

    /// Substitutes the known `{name}` placeholders in each argument, in one pass (a value
    /// that itself contains `{state}` is not substituted again). Other braces pass through.
    pub fn render(&self, template: &[String]) -> Vec<String> {
        template
            .iter()
            .map(|argument| self.render_one(argument))
            .collect()
    }

    fn render_one(&self, argument: &str) -> String {
        let mut out = String::with_capacity(argument.len());
        let mut rest = argument;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let substituted = after.find('}').and_then(|close| {
                let value = self.value(&after[..close])?;
                Some((value, close))
            });
            match substituted {
                Some((value, close)) => {
                    out.push_str(&value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The `MERIDIAN_*` variables every workload, check and hook gets.
    pub fn environment(&self) -> Vec<(String, String)> {
        let extra = self.extra.iter().map(|(name, value)| {
            (
                format!("MERIDIAN_{}", name.to_ascii_uppercase()),
                value.clone(),
            )
        });
        let mut environment = vec![
            ("MERIDIAN_GROUP".into(), self.replica.group.clone()),
            (
                "MERIDIAN_PARTITION".into(),
                self.replica.partition.to_string(),
            ),
            ("MERIDIAN_STATE".into(), self.state.clone()),
            ("MERIDIAN_NODE".into(), self.node.clone()),
            (
                "MERIDIAN_REPLICA_DIR".into(),
                self.dir.display().to_string(),
            ),
            ("MERIDIAN_EPOCH".into(), self.epoch.to_string()),
        ];
        environment.extend(extra);
        environment
    }
}

/// A fully resolved command line.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLine {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl CommandLine {
    pub fn command(&self) -> Result<tokio::process::Command, String> {
        let Some((program, arguments)) = self.argv.split_first() else {
            return Err("empty command".into());
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(arguments)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        Ok(command)
    }

    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }
}

/// Starts the workload, its output appended to `output` (started afresh past
/// [`OUTPUT_BYTES_MAX`]). It stays in the agent's process group, so killing the group kills
/// the node's workloads with it; it outlives the agent otherwise (nothing kills it on drop).
pub fn spawn(line: &CommandLine, output: &Path) -> Result<tokio::process::Child, String> {
    let out = open_output(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", output.display()))?;
    let mut command = line.command()?;
    command.stdout(out).stderr(err).kill_on_drop(false);
    command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", line.program()))
}

fn open_output(path: &Path) -> std::io::Result<File> {
    if let Some(directory) = path.parent() {
        std::fs::create_dir_all(directory)?;
    }
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > OUTPUT_BYTES_MAX);
    OpenOptions::new()
        .create(true)
        .append(!too_big)
        .write(true)
        .truncate(too_big)
        .open(path)
}

/// Runs a short command to completion; `Ok` only for exit status 0 within `timeout` (it is
/// killed past that). Its output goes to `output` if given, else nowhere.
pub async fn run_to_completion(
    line: &CommandLine,
    timeout: Duration,
    output: Option<&Path>,
) -> Result<(), String> {
    let mut command = line.command()?;
    match output {
        Some(path) => {
            let out = open_output(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let err = out
                .try_clone()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            command.stdout(out).stderr(err);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    // Dropped at the timeout, so the child must die with its handle.
    command.kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", line.program()))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => Err(format!(
            "`{}` did not finish within {} ms",
            line.program(),
            timeout.as_millis()
        )),
        Ok(Err(e)) => Err(format!("`{}`: {e}", line.program())),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{}` {}", line.program(), describe(status))),
    }
}

/// "exited with status 3", "killed by signal 9".
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders() -> Placeholders {
        Placeholders {
            replica: ReplicaKey {
                group: "{state}".into(),
                partition: 4,
            },
            state: "Leader".into(),
            node: "n1".into(),
            dir: PathBuf::from("/data/x/4"),
            epoch: 9,
            extra: vec![("rate_mbps", "120".into())],
        }
    }

    #[test]
    fn placeholders_substitute_once_and_leave_other_braces() {
        let values = placeholders();
        let template: Vec<String> = [
            "--role={state}",
            "{group}/{partition}",
            "${HOME}",
            "{",
            "{x}",
            "--rate={rate_mbps}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            values.render(&template),
            [
                "--role=Leader",
                "{state}/4",
                "${HOME}",
                "{",
                "{x}",
                "--rate=120"
            ]
        );
        let env = values.environment();
        assert!(env.contains(&("MERIDIAN_EPOCH".into(), "9".into())));
        assert!(env.contains(&("MERIDIAN_RATE_MBPS".into(), "120".into())));
        assert!(env.contains(&("MERIDIAN_REPLICA_DIR".into(), "/data/x/4".into())));
    }

    #[tokio::test]
    async fn short_commands_report_status_and_time_out() {
        let line = |script: &str| CommandLine {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            dir: PathBuf::from("/"),
        };
        let ok = run_to_completion(&line("exit 0"), Duration::from_secs(5), None).await;
        assert_eq!(ok, Ok(()));
        let failed = run_to_completion(&line("exit 3"), Duration::from_secs(5), None).await;
        assert!(failed.expect_err("fails").contains("status 3"));
        let slow = run_to_completion(&line("sleep 5"), Duration::from_millis(50), None).await;
        assert!(slow.expect_err("times out").contains("did not finish"));
    }
}
