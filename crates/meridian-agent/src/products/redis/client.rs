//! Talking to one redis-server: every connection and command bounded in time, every error
//! naming the endpoint and the command; the role and fence changes the actuator makes; and
//! consistent snapshots of a server's streams.

use std::fmt::Display;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, Value};

use super::handoff::{StreamKey, StreamTip, Streams};
use super::info::{Info, Position};

/// How long a connection and each answer may take.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub connect: Duration,
    pub answer: Duration,
}

/// For transitions: generous, since `CONFIG REWRITE` fsyncs and a scan batch takes a while.
pub const TRANSITION: Bounds = Bounds {
    connect: Duration::from_secs(2),
    answer: Duration::from_secs(5),
};

/// For observations and liveness probes, which must stay within a few hundred ms.
pub const PROBE: Bounds = Bounds {
    connect: Duration::from_millis(250),
    answer: Duration::from_millis(250),
};

/// Keys per `SCAN` call.
const SCAN_BATCH: usize = 1_000;

/// A command and its text, for error messages.
pub struct Command {
    cmd: redis::Cmd,
    text: String,
}

impl Command {
    /// `words` are the command and its fixed arguments (`"CLIENT UNPAUSE"`).
    pub fn new(words: &str) -> Command {
        let mut parts = words.split_whitespace();
        let mut cmd = redis::cmd(parts.next().unwrap_or_default());
        for part in parts {
            cmd.arg(part);
        }
        Command {
            cmd,
            text: words.to_string(),
        }
    }

    pub fn arg(mut self, value: impl Display) -> Command {
        let value = value.to_string();
        self.text.push(' ');
        self.text.push_str(&value);
        self.cmd.arg(value);
        self
    }
}

/// A connection to one server.
pub struct Client {
    endpoint: String,
    connection: MultiplexedConnection,
}

/// The error a failed command gives, telling a dropped connection apart for callers that
/// act on it.
#[derive(Debug)]
pub struct CommandError {
    pub message: String,
    /// The server closed the connection (as `SHUTDOWN` does when it succeeds).
    pub dropped: bool,
}

impl Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CommandError> for String {
    fn from(error: CommandError) -> String {
        error.message
    }
}

impl Client {
    pub async fn connect(endpoint: &str, bounds: Bounds) -> Result<Client, String> {
        let client = redis::Client::open(format!("redis://{endpoint}/"))
            .map_err(|e| format!("{endpoint}: not an address: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(bounds.connect))
            .set_response_timeout(Some(bounds.answer));
        // The crate bounds each step; this bounds the whole (name resolution included).
        let budget = bounds.connect + bounds.answer;
        let connecting = client.get_multiplexed_async_connection_with_config(&config);
        let connection = tokio::time::timeout(budget, connecting)
            .await
            .map_err(|_| format!("{endpoint}: no connection within {budget:?}"))?
            .map_err(|e| format!("{endpoint}: cannot connect: {e}"))?;
        Ok(Client {
            endpoint: endpoint.to_string(),
            connection,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `command`; the answer converted to `T`.
    pub async fn try_query<T: FromRedisValue>(
        &mut self,
        command: &Command,
    ) -> Result<T, CommandError> {
        command
            .cmd
            .query_async(&mut self.connection)
            .await
            .map_err(|e| CommandError {
                message: format!("{}: `{}`: {e}", self.endpoint, command.text),
                dropped: e.is_connection_dropped() || e.is_io_error(),
            })
    }

    pub async fn query<T: FromRedisValue>(&mut self, command: &Command) -> Result<T, String> {
        self.try_query(command).await.map_err(String::from)
    }

    /// `INFO` with the given sections (`"replication"`, `"server replication memory"`).
    pub async fn info(&mut self, sections: &str) -> Result<Info, String> {
        let mut command = Command::new("INFO");
        for section in sections.split_whitespace() {
            command = command.arg(section);
        }
        let text: String = self.query(&command).await?;
        Ok(Info::parse(&text))
    }

    /// Whether the `default` user (every client's) may write: the fence, see the module
    /// documentation. `ACL DRYRUN` answers `OK` or says why not.
    pub async fn writable(&mut self) -> Result<bool, String> {
        let probe = Command::new("ACL DRYRUN default XADD meridian:probe * f v");
        let answer: Value = self.query(&probe).await?;
        Ok(matches!(answer, Value::Okay) || matches!(&answer, Value::SimpleString(s) if s == "OK"))
    }

    /// Takes write permission from every client, at once and for good: the change applies
    /// to open connections from their next command and is saved in the server's
    /// configuration, so a restart comes back fenced. Replication is not affected (the
    /// master's stream is applied by an internal client no ACL applies to).
    pub async fn fence(&mut self) -> Result<(), String> {
        self.query::<()>(&Command::new("ACL SETUSER default -@write"))
            .await?;
        self.rewrite_config().await
    }

    /// Gives clients write permission back (a promotion, or a new leader). If that cannot
    /// be saved, the fence goes back up: a leader the agent reports as failed to promote
    /// must not take writes (the controller may promote another).
    pub async fn unfence(&mut self) -> Result<(), String> {
        self.query::<()>(&Command::new("ACL SETUSER default +@all"))
            .await?;
        if let Err(error) = self.rewrite_config().await {
            let refenced = self
                .query::<()>(&Command::new("ACL SETUSER default -@write"))
                .await;
            return Err(match refenced {
                Ok(()) => format!("{error} (fenced again)"),
                Err(again) => format!("{error}; and fencing it again failed too: {again}"),
            });
        }
        Ok(())
    }

    /// `REPLICAOF host port`, saved in the configuration so a restart follows the same
    /// master. Redis answers OK, and does nothing, when it already follows it.
    pub async fn follow(&mut self, host: &str, port: u16) -> Result<(), String> {
        let command = Command::new("REPLICAOF").arg(host).arg(port);
        self.query::<()>(&command).await?;
        self.rewrite_config().await
    }

    /// `REPLICAOF NO ONE`: a master from here on, keeping its history as `replid2`.
    pub async fn follow_nobody(&mut self) -> Result<(), String> {
        self.query::<()>(&Command::new("REPLICAOF NO ONE")).await?;
        self.rewrite_config().await
    }

    async fn rewrite_config(&mut self) -> Result<(), String> {
        self.query::<()>(&Command::new("CONFIG REWRITE")).await
    }

    /// Every stream matching `pattern` with its length and last id, together with the
    /// position they are at. `None` if the server moved while they were read (a write
    /// arrived): try again. The keys are scanned first, then read in one `MULTI` with the
    /// position; equal positions before the scan and in the `MULTI` prove no write came in
    /// between, so the key set and the tips belong to that one position.
    pub async fn streams(
        &mut self,
        pattern: &str,
        keys_max: usize,
    ) -> Result<Option<(Position, Streams)>, String> {
        let before = self.position().await?;
        let keys = self.scan_streams(pattern, keys_max).await?;
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("INFO").arg("replication");
        for key in &keys {
            pipe.cmd("XLEN").arg(key.0.as_slice());
            pipe.cmd("XREVRANGE")
                .arg(key.0.as_slice())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let answers: Vec<Value> = match pipe.query_async(&mut self.connection).await {
            Ok(answers) => answers,
            // A key changed type between the scan and the MULTI: it moved.
            Err(e) if e.code() == Some("WRONGTYPE") => return Ok(None),
            Err(e) => return Err(format!("{}: MULTI of XLEN/XREVRANGE: {e}", self.endpoint)),
        };
        let (position, streams) = self.parse_snapshot(&keys, answers)?;
        Ok((position == before).then_some((position, streams)))
    }

    async fn position(&mut self) -> Result<Position, String> {
        let info = self.info("replication").await?;
        info.position()
            .ok_or_else(|| format!("{}: INFO replication has no position", self.endpoint))
    }

    async fn scan_streams(
        &mut self,
        pattern: &str,
        keys_max: usize,
    ) -> Result<Vec<StreamKey>, String> {
        let mut keys = std::collections::BTreeSet::new();
        let mut cursor = String::from("0");
        // SCAN may return a key more than once; the set dedupes. Its cursor ends at 0; the
        // bound holds even if a server never said so.
        let calls_max = keys_max / SCAN_BATCH + 1_000;
        for _ in 0..calls_max {
            let command = Command::new("SCAN")
                .arg(&cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("TYPE")
                .arg("stream")
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, batch): (String, Vec<Vec<u8>>) = self.query(&command).await?;
            keys.extend(batch.into_iter().map(StreamKey));
            if keys.len() > keys_max {
                return Err(format!(
                    "{}: more than {keys_max} streams match `{pattern}` (verify_keys_max)",
                    self.endpoint
                ));
            }
            if next == "0" {
                return Ok(keys.into_iter().collect());
            }
            cursor = next;
        }
        Err(format!(
            "{}: SCAN did not finish within {calls_max} calls",
            self.endpoint
        ))
    }

    fn parse_snapshot(
        &self,
        keys: &[StreamKey],
        answers: Vec<Value>,
    ) -> Result<(Position, Streams), String> {
        let malformed = |what: String| format!("{}: MULTI answer: {what}", self.endpoint);
        if answers.len() != 1 + 2 * keys.len() {
            return Err(malformed(format!(
                "{} answers for {} streams",
                answers.len(),
                keys.len()
            )));
        }
        let mut answers = answers.into_iter();
        let info: String = convert(answers.next()).map_err(&malformed)?;
        let position = Info::parse(&info)
            .position()
            .ok_or_else(|| malformed("INFO has no position".into()))?;
        let mut streams = Streams::new();
        for key in keys {
            let length: u64 = convert(answers.next()).map_err(&malformed)?;
            let last: Vec<(String, Value)> = convert(answers.next()).map_err(&malformed)?;
            let last_id = last.into_iter().next().map(|(id, _)| id);
            streams.insert(key.clone(), StreamTip { length, last_id });
        }
        Ok((position, streams))
    }
}

fn convert<T: FromRedisValue>(value: Option<Value>) -> Result<T, String> {
    let value = value.ok_or("missing")?;
    redis::from_redis_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_shows_its_text() {
        let command = Command::new("CLIENT PAUSE").arg(1500).arg("WRITE");
        assert_eq!(command.text, "CLIENT PAUSE 1500 WRITE");
    }
}
