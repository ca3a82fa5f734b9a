//! The agent's configuration file (YAML).
//!
//! ```yaml
//! node: n1                               # this node's name in the fleet
//! controllers: [https://c1:7000, https://c2:7000]
//! token_file: /etc/meridian/agent.token  # or `token: ...` inline
//! state_dir: /var/lib/meridian-agent     # epoch, assignment, journal, executed.log
//! replicas_dir: /srv/meridian            # optional; default <state_dir>/replicas
//! heartbeat_ms: 5000                     # until a controller says otherwise
//! registration:
//!   capacity: {cpu: 32, mem_gib: 128}
//!   labels: {rack: r1}
//!   data_address: 10.0.0.1:7100
//! products:
//!   cache:                               # a generic process per replica
//!     command: [/usr/bin/my-cache, --dir, "{dir}", --role, "{state}"]
//!     health: {command: [/usr/bin/my-cache-ping, "{dir}"], timeout_ms: 2000}
//!   batch:                               # or one command per transition
//!     exec: {hooks: {start: {command: [/opt/batch/hook]}, stop: {command: [/opt/batch/hook]}}}
//! ```
//!
//! A product is either a generic process (`command` and its options) or exactly one of the
//! product sections (`exec`, ...); docs/actuators.md describes each.
//!
//! Relative paths are taken from the configuration file's directory, so a file means the
//! same thing whatever directory the agent is started from. Unknown fields are errors (a
//! misspelt option silently ignored is worse than a refusal). Every error names the file and
//! the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Upper bound on `transitions_concurrent_max`: more would only contend for the node's disk
/// and network, which the planner books per transition anyway.
pub const TRANSITIONS_CONCURRENT_LIMIT: usize = 256;

/// Upper bound on every configured duration (one day): a larger value is a unit mistake.
pub const DURATION_MS_LIMIT: u64 = 24 * 3600 * 1000;

/// A configuration the agent will not run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {field}: {reason}", file.display(), line_suffix(*line))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        field: String,
        reason: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// The bearer token; its `Debug` never shows it, so it stays out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// What the agent tells the controller about its node when it registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Capacity by dimension name (`cpu`, `mem_gib`, ...).
    #[serde(default)]
    pub capacity: BTreeMap<String, f64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where this node serves replica data to peers (`host:port`): the agent listens there
    /// and tells the controller, which hands it to peers that copy from this node.
    #[serde(default)]
    pub data_address: Option<String>,
}

/// A command the agent runs beside a workload: a health check or a state-change hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// Program and arguments; the same `{...}` placeholders as the workload's command.
    pub command: Vec<String>,
    /// Killed, and counted as failed, past this.
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
}

/// How the generic [`ProcessActuator`](crate::ProcessActuator) runs one product.
///
/// Arguments may hold the placeholders `{group}`, `{partition}`, `{state}`, `{node}`,
/// `{dir}` (the replica's directory) and `{epoch}`; any other text, `${SHELL_VARIABLE}`
/// included, passes through untouched. The same values are in the environment as
/// `MERIDIAN_GROUP`, `MERIDIAN_PARTITION`, `MERIDIAN_STATE`, `MERIDIAN_NODE`,
/// `MERIDIAN_REPLICA_DIR` and `MERIDIAN_EPOCH`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The workload: program and arguments. Use `exec` in shell wrappers, so the process the
    /// agent signals is the workload itself.
    pub command: Vec<String>,
    /// Extra environment for the workload and its hooks (names may not start `MERIDIAN_`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Exit status 0 within the timeout means serving. Without one, a live process is
    /// serving.
    #[serde(default)]
    pub health: Option<HookConfig>,
    /// Run on a state change (promote, demote) instead of restarting the workload with the
    /// new `MERIDIAN_STATE`; it gets the new state, and the old one in
    /// `MERIDIAN_PREVIOUS_STATE`. It must be idempotent: after a crash it may run again.
    #[serde(default)]
    pub state_change: Option<HookConfig>,
    /// Between SIGTERM and SIGKILL when stopping.
    #[serde(default = "default_stop_grace_ms")]
    pub stop_grace_ms: u64,
    /// First wait before restarting a workload that exited; doubles up to the maximum, and
    /// starts again from here once a run lasted longer than the maximum.
    #[serde(default = "default_restart_backoff_initial_ms")]
    pub restart_backoff_initial_ms: u64,
    #[serde(default = "default_restart_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// How long a start waits for the workload to launch and, with a health check, to pass
    /// it once.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
}

impl ProcessConfig {
    /// A configuration running `command`, every other option at its default.
    pub fn new(command: Vec<String>) -> ProcessConfig {
        ProcessConfig {
            command,
            env: BTreeMap::new(),
            health: None,
            state_change: None,
            stop_grace_ms: default_stop_grace_ms(),
            restart_backoff_initial_ms: default_restart_backoff_initial_ms(),
            restart_backoff_max_ms: default_restart_backoff_max_ms(),
            start_timeout_ms: default_start_timeout_ms(),
        }
    }

    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_command("command", &self.command)?;
        check_env(&self.env)?;
        for (field, hook) in [
            ("health", &self.health),
            ("state_change", &self.state_change),
        ] {
            if let Some(hook) = hook {
                check_command(&format!("{field}.command"), &hook.command)?;
                check_duration(&format!("{field}.timeout_ms"), hook.timeout_ms)?;
            }
        }
        check_duration(
            "restart_backoff_initial_ms",
            self.restart_backoff_initial_ms,
        )?;
        check_duration("restart_backoff_max_ms", self.restart_backoff_max_ms)?;
        check_duration("start_timeout_ms", self.start_timeout_ms)?;
        if self.stop_grace_ms > DURATION_MS_LIMIT {
            return Err(("stop_grace_ms".into(), "more than a day".into()));
        }
        if self.restart_backoff_initial_ms > self.restart_backoff_max_ms {
            let reason = "above restart_backoff_max_ms".to_string();
            return Err(("restart_backoff_initial_ms".into(), reason));
        }
        Ok(())
    }
}

/// How the agent runs one product's replicas.
#[derive(Debug, Clone, PartialEq)]
pub enum ProductConfig {
    /// A process per replica ([`ProcessActuator`](crate::ProcessActuator)).
    Process(ProcessConfig),
    /// Commands per transition ([`ExecActuator`](crate::products::exec::ExecActuator)).
    Exec(crate::products::exec::ExecConfig),
    /// A model server with verified weights
    /// ([`ModelServerActuator`](crate::products::model::ModelServerActuator)).
    ModelServer(crate::products::model::ModelServerConfig),
    /// PostgreSQL instances with streaming replication
    /// ([`PostgresActuator`](crate::products::postgres::PostgresActuator)).
    Postgres(crate::products::postgres::PostgresConfig),
    /// Redis instances with `REPLICAOF`
    /// ([`RedisActuator`](crate::products::redis::RedisActuator)).
    Redis(crate::products::redis::RedisConfig),
}

impl ProductConfig {
    /// Checks the options; on error, the field (relative to this product) and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            ProductConfig::Process(config) => config.validate(),
            ProductConfig::Exec(config) => config
                .validate()
                .map_err(|(field, reason)| (format!("exec.{field}"), reason)),
            ProductConfig::ModelServer(config) => config
                .validate()
                .map_err(|(field, reason)| (format!("model_server.{field}"), reason)),
            ProductConfig::Postgres(config) => config
                .validate()
                .map_err(|(field, reason)| (format!("postgres.{field}"), reason)),
            ProductConfig::Redis(config) => config
                .validate()
                .map_err(|(field, reason)| (format!("redis.{field}"), reason)),
        }
    }
}

/// A product as the file has it: the generic process's fields, or one product section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProduct {
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    health: Option<HookConfig>,
    #[serde(default)]
    state_change: Option<HookConfig>,
    #[serde(default = "default_stop_grace_ms")]
    stop_grace_ms: u64,
    #[serde(default = "default_restart_backoff_initial_ms")]
    restart_backoff_initial_ms: u64,
    #[serde(default = "default_restart_backoff_max_ms")]
    restart_backoff_max_ms: u64,
    #[serde(default = "default_start_timeout_ms")]
    start_timeout_ms: u64,
    #[serde(default)]
    exec: Option<crate::products::exec::ExecConfig>,
    #[serde(default)]
    model_server: Option<crate::products::model::ModelServerConfig>,
    #[serde(default)]
    postgres: Option<crate::products::postgres::PostgresConfig>,
    #[serde(default)]
    redis: Option<crate::products::redis::RedisConfig>,
}

impl RawProduct {
    fn into_config(self) -> Result<ProductConfig, (String, String)> {
        let mut sections: Vec<(&'static str, ProductConfig)> = Vec::new();
        if let Some(exec) = self.exec {
            sections.push(("exec", ProductConfig::Exec(exec)));
        }
        if let Some(model_server) = self.model_server {
            sections.push(("model_server", ProductConfig::ModelServer(model_server)));
        }
        if let Some(postgres) = self.postgres {
            sections.push(("postgres", ProductConfig::Postgres(postgres)));
        }
        if let Some(redis) = self.redis {
            sections.push(("redis", ProductConfig::Redis(redis)));
        }
        let process_options =
            !self.env.is_empty() || self.health.is_some() || self.state_change.is_some();
        match (self.command, sections.len()) {
            (Some(command), 0) => Ok(ProductConfig::Process(ProcessConfig {
                command,
                env: self.env,
                health: self.health,
                state_change: self.state_change,
                stop_grace_ms: self.stop_grace_ms,
                restart_backoff_initial_ms: self.restart_backoff_initial_ms,
                restart_backoff_max_ms: self.restart_backoff_max_ms,
                start_timeout_ms: self.start_timeout_ms,
            })),
            (Some(_), _) => Err((
                sections[0].0.into(),
                "give a `command` (a generic process) or a product section, not both".into(),
            )),
            (None, 0) => Err((
                "command".into(),
                "missing: give a `command` (a generic process) or a product section (`postgres`, \
                 `redis`, `model_server`, `exec`)"
                    .into(),
            )),
            (None, 1) if process_options => Err((
                sections[0].0.into(),
                "env, health and state_change belong to a generic process (`command`); a \
                 product section has its own"
                    .into(),
            )),
            (None, 1) => Ok(sections.remove(0).1),
            (None, _) => Err((
                sections[1].0.into(),
                format!(
                    "one product section per product (`{}` is given too)",
                    sections[0].0
                ),
            )),
        }
    }
}

/// The agent's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// This node's name, as the fleet file spells it.
    pub node: String,
    /// Controllers' API base URLs (`http://host:port` or `https://...`), tried in order.
    pub controllers: Vec<String>,
    pub token: Token,
    pub state_dir: PathBuf,
    /// Replicas' data directories live under here.
    pub replicas_dir: PathBuf,
    /// Sync interval until a controller names one.
    pub heartbeat_ms: u64,
    /// One sync request's limit, connection included.
    pub request_timeout_ms: u64,
    /// Waits between rounds when no controller answers: doubling from the initial value up to
    /// the maximum, forever (workloads keep running meanwhile).
    pub sync_backoff_initial_ms: u64,
    pub sync_backoff_max_ms: u64,
    /// Transitions running at once (each replica still runs one at a time).
    pub transitions_concurrent_max: usize,
    pub registration: RegistrationConfig,
    /// Shared by the fleet's agents: peers must present it to this node's data server, and
    /// this node presents it to theirs. None: the data servers are open (a trusted network).
    pub data_token: Option<Token>,
    pub products: BTreeMap<String, ProductConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: String,
    controllers: Vec<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    state_dir: PathBuf,
    #[serde(default)]
    replicas_dir: Option<PathBuf>,
    #[serde(default = "default_heartbeat_ms")]
    heartbeat_ms: u64,
    #[serde(default = "default_request_timeout_ms")]
    request_timeout_ms: u64,
    #[serde(default = "default_sync_backoff_initial_ms")]
    sync_backoff_initial_ms: u64,
    #[serde(default = "default_sync_backoff_max_ms")]
    sync_backoff_max_ms: u64,
    #[serde(default = "default_transitions_concurrent_max")]
    transitions_concurrent_max: usize,
    #[serde(default)]
    registration: RegistrationConfig,
    #[serde(default)]
    data_token: Option<String>,
    #[serde(default)]
    products: BTreeMap<String, RawProduct>,
}

impl AgentConfig {
    /// Reads and validates a configuration file.
    pub fn from_yaml_file(file: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        AgentConfig::from_yaml_str(&text, file)
    }

    /// Parses and validates `text`, which came from `file` (named in errors; relative paths
    /// are taken from its directory).
    pub fn from_yaml_str(text: &str, file: &Path) -> Result<AgentConfig, ConfigError> {
        let invalid = |line, field: String, reason: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            field,
            reason,
        };
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = match e.path().to_string() {
                path if path == "." => "(top level)".to_string(),
                path => path,
            };
            let inner = e.into_inner();
            invalid(inner.location().map(|l| l.line()), field, inner.to_string())
        })?;
        let base = file.parent().unwrap_or(Path::new(""));
        let config = AgentConfig::from_raw(raw, base).map_err(|(f, r)| invalid(None, f, r))?;
        config.validate().map_err(|(f, r)| invalid(None, f, r))?;
        Ok(config)
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<AgentConfig, (String, String)> {
        let token = match (raw.token, raw.token_file) {
            (Some(token), None) => token,
            (None, Some(token_file)) => read_token(&base.join(token_file))?,
            (Some(_), Some(_)) => {
                return Err(("token".into(), "give token or token_file, not both".into()))
            }
            (None, None) => return Err(("token".into(), "missing (or give token_file)".into())),
        };
        let state_dir = base.join(raw.state_dir);
        let replicas_dir = match raw.replicas_dir {
            Some(directory) => base.join(directory),
            None => state_dir.join("replicas"),
        };
        Ok(AgentConfig {
            node: raw.node,
            controllers: raw.controllers,
            token: Token::new(token),
            state_dir,
            replicas_dir,
            heartbeat_ms: raw.heartbeat_ms,
            request_timeout_ms: raw.request_timeout_ms,
            sync_backoff_initial_ms: raw.sync_backoff_initial_ms,
            sync_backoff_max_ms: raw.sync_backoff_max_ms,
            transitions_concurrent_max: raw.transitions_concurrent_max,
            registration: raw.registration,
            data_token: raw.data_token.map(Token::new),
            products: raw
                .products
                .into_iter()
                .map(|(name, product)| {
                    let config = product
                        .into_config()
                        .map_err(|(field, reason)| (format!("products.{name}.{field}"), reason))?;
                    Ok((name, config))
                })
                .collect::<Result<_, (String, String)>>()?,
        })
    }

    /// Checks every option; on error, the field's path and the reason. [`crate::run`] calls
    /// it too, for configurations built in code.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.node.is_empty() || self.node.chars().any(char::is_control) {
            return Err(("node".into(), "empty or holds control characters".into()));
        }
        if self.controllers.is_empty() {
            return Err((
                "controllers".into(),
                "list at least one controller URL".into(),
            ));
        }
        for (index, url) in self.controllers.iter().enumerate() {
            check_url(url).map_err(|reason| (format!("controllers[{index}]"), reason))?;
        }
        if self.token.expose().trim().is_empty() {
            return Err(("token".into(), "empty".into()));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(("state_dir".into(), "empty".into()));
        }
        check_duration("heartbeat_ms", self.heartbeat_ms)?;
        check_duration("request_timeout_ms", self.request_timeout_ms)?;
        check_duration("sync_backoff_initial_ms", self.sync_backoff_initial_ms)?;
        check_duration("sync_backoff_max_ms", self.sync_backoff_max_ms)?;
        if self.sync_backoff_initial_ms > self.sync_backoff_max_ms {
            let reason = "above sync_backoff_max_ms".to_string();
            return Err(("sync_backoff_initial_ms".into(), reason));
        }
        if !(1..=TRANSITIONS_CONCURRENT_LIMIT).contains(&self.transitions_concurrent_max) {
            let reason = format!("must be 1 to {TRANSITIONS_CONCURRENT_LIMIT}");
            return Err(("transitions_concurrent_max".into(), reason));
        }
        self.validate_registration()?;
        for (name, product) in &self.products {
            if name.is_empty() {
                return Err(("products".into(), "a product with an empty name".into()));
            }
            product
                .validate()
                .map_err(|(field, reason)| (format!("products.{name}.{field}"), reason))?;
        }
        Ok(())
    }

    fn validate_registration(&self) -> Result<(), (String, String)> {
        for (dimension, value) in &self.registration.capacity {
            if !value.is_finite() || *value < 0.0 {
                let field = format!("registration.capacity.{dimension}");
                return Err((field, format!("{value} is not a capacity")));
            }
        }
        Ok(())
    }
}

fn read_token(path: &Path) -> Result<String, (String, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ("token_file".to_string(), format!("{}: {e}", path.display())))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(("token_file".into(), format!("{} is empty", path.display())));
    }
    Ok(token)
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}`: only http and https"));
    }
    Ok(())
}

/// Extra environment must be valid names, and may not shadow what the agent sets.
pub(crate) fn check_env(env: &BTreeMap<String, String>) -> Result<(), (String, String)> {
    for name in env.keys() {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err((format!("env.{name}"), "not a valid variable name".into()));
        }
        if name.starts_with("MERIDIAN_") {
            return Err((
                format!("env.{name}"),
                "MERIDIAN_* is set by the agent".into(),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_command(field: &str, command: &[String]) -> Result<(), (String, String)> {
    match command.first() {
        Some(program) if !program.is_empty() => Ok(()),
        _ => Err((field.to_string(), "needs a program to run".into())),
    }
}

pub(crate) fn check_duration(field: &str, value_ms: u64) -> Result<(), (String, String)> {
    if value_ms == 0 {
        return Err((field.to_string(), "must be above 0".into()));
    }
    if value_ms > DURATION_MS_LIMIT {
        return Err((field.to_string(), "more than a day".into()));
    }
    Ok(())
}

fn default_heartbeat_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    5_000
}
fn default_sync_backoff_initial_ms() -> u64 {
    250
}
/// Below the controllers' default settle period (3 s), which is how long a new leader waits
/// for agents to find it before judging them.
fn default_sync_backoff_max_ms() -> u64 {
    2_000
}
fn default_transitions_concurrent_max() -> usize {
    8
}
fn default_hook_timeout_ms() -> u64 {
    10_000
}
fn default_stop_grace_ms() -> u64 {
    10_000
}
fn default_restart_backoff_initial_ms() -> u64 {
    500
}
fn default_restart_backoff_max_ms() -> u64 {
    30_000
}
fn default_start_timeout_ms() -> u64 {
    60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::from_yaml_str(text, Path::new("/etc/meridian/agent.yaml"))
    }

    const MINIMAL: &str = "node: n1\ncontrollers: [http://127.0.0.1:7000]\ntoken: secret\n\
                           state_dir: state\n";

    #[test]
    fn a_minimal_file_gets_defaults_and_paths_from_its_directory() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.node, "n1");
        assert_eq!(config.state_dir, PathBuf::from("/etc/meridian/state"));
        assert_eq!(
            config.replicas_dir,
            PathBuf::from("/etc/meridian/state/replicas")
        );
        assert_eq!(config.heartbeat_ms, 5_000);
        assert!(config.products.is_empty());
        assert_eq!(format!("{:?}", config.token), "Token(<redacted>)");
    }

    #[test]
    fn products_parse_with_their_hooks() {
        let text = format!(
            "{MINIMAL}products:\n  db:\n    command: [/bin/db, '{{dir}}']\n    \
             health: {{command: [/bin/true], timeout_ms: 100}}\n    stop_grace_ms: 50\n"
        );
        let config = parse(&text).expect("valid");
        let ProductConfig::Process(db) = &config.products["db"] else {
            panic!("a generic process: {:?}", config.products["db"]);
        };
        assert_eq!(db.command, vec!["/bin/db".to_string(), "{dir}".to_string()]);
        assert_eq!(db.health.as_ref().map(|h| h.timeout_ms), Some(100));
        assert_eq!(db.stop_grace_ms, 50);
        assert_eq!(db.restart_backoff_max_ms, 30_000);
    }

    #[test]
    fn a_product_is_a_process_or_one_product_section() {
        let exec = "exec: {hooks: {start: {command: [/bin/h]}, stop: {command: [/bin/h]}}}";
        let text = format!("{MINIMAL}products:\n  batch:\n    {exec}\n");
        let config = parse(&text).expect("valid");
        assert!(matches!(config.products["batch"], ProductConfig::Exec(_)));

        let both = error_of(&format!(
            "{MINIMAL}products:\n  batch:\n    command: [x]\n    {exec}\n"
        ));
        assert!(
            both.contains("products.batch.exec: give a `command`"),
            "{both}"
        );
        let neither = error_of(&format!(
            "{MINIMAL}products:\n  batch:\n    stop_grace_ms: 5\n"
        ));
        assert!(
            neither.contains("products.batch.command: missing"),
            "{neither}"
        );
        let stray = error_of(&format!(
            "{MINIMAL}products:\n  batch:\n    health: {{command: [x]}}\n    {exec}\n"
        ));
        assert!(
            stray.contains("products.batch.exec: env, health"),
            "{stray}"
        );
        let bad_hook = error_of(&format!(
            "{MINIMAL}products:\n  batch:\n    \
             exec: {{hooks: {{start: {{command: []}}, stop: {{command: [x]}}}}}}\n"
        ));
        assert!(
            bad_hook.contains("products.batch.exec.hooks.start.command"),
            "{bad_hook}"
        );
        let typo = error_of(&format!(
            "{MINIMAL}products:\n  batch:\n    \
             exec: {{hooks: {{strat: {{command: [x]}}, stop: {{command: [x]}}}}}}\n"
        ));
        assert!(typo.contains("products.batch.exec.hooks"), "{typo}");
        assert!(typo.contains("agent.yaml:"), "the line is named: {typo}");
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("invalid").to_string()
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let typo = error_of(&format!("{MINIMAL}heartbeat: 5\n"));
        assert!(typo.starts_with("/etc/meridian/agent.yaml"), "{typo}");
        assert!(typo.contains("heartbeat"), "{typo}");

        let wrong_type = error_of(&format!("{MINIMAL}products:\n  db:\n    command: 7\n"));
        assert!(wrong_type.contains("products.db.command"), "{wrong_type}");

        let empty = error_of(&format!("{MINIMAL}products:\n  db:\n    command: []\n"));
        assert!(
            empty.contains("products.db.command: needs a program"),
            "{empty}"
        );

        let reserved = error_of(&format!(
            "{MINIMAL}products:\n  db:\n    command: [x]\n    env: {{MERIDIAN_STATE: x}}\n"
        ));
        assert!(
            reserved.contains("products.db.env.MERIDIAN_STATE"),
            "{reserved}"
        );

        let url = error_of(&MINIMAL.replace("http://127.0.0.1:7000", "ftp://x"));
        assert!(url.contains("controllers[0]"), "{url}");

        let no_token = error_of(&MINIMAL.replace("token: secret\n", ""));
        assert!(no_token.contains(": token: missing"), "{no_token}");

        let missing_node = error_of(&MINIMAL.replace("node: n1\n", ""));
        assert!(missing_node.contains("node"), "{missing_node}");
    }

    #[test]
    fn a_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "s3cret\n").expect("write");
        let file = dir.path().join("agent.yaml");
        let text = MINIMAL.replace("token: secret", "token_file: token");
        let config = AgentConfig::from_yaml_str(&text, &file).expect("valid");
        assert_eq!(config.token.expose(), "s3cret");

        let text = MINIMAL.replace("token: secret", "token_file: missing");
        let error = AgentConfig::from_yaml_str(&text, &file).expect_err("no such file");
        assert!(error.to_string().contains("token_file"), "{error}");
    }
}
