//! Talking to the controllers: one sync is one POST of a [`SyncRequest`] to the leader.
//!
//! The agent does not need to know which controller leads. It goes to the one that answered
//! last, else down its list; a controller that does not lead answers 503 with
//! [`NotLeader`], naming the leader if it knows one, and the agent goes there next. A
//! controller that cannot be reached is skipped. Every round is bounded (each configured
//! controller once, plus [`REDIRECTS_MAX`] redirects); the caller retries rounds with
//! backoff, forever, while workloads keep running.

use std::collections::VecDeque;
use std::time::Duration;

use meridian_wire::{NotLeader, SyncRequest, SyncResponse, SYNC_PATH};
use serde::de::DeserializeOwned;

use crate::config::Token;
use crate::paths::encode_component;

/// Redirects followed within one round, so controllers naming each other cannot loop.
pub const REDIRECTS_MAX: usize = 4;
/// A larger answer is refused: a sync response holds commands for one node.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("no controller answered: {}", .0.join("; "))]
    Unavailable(Vec<String>),
}

/// The HTTP side of syncing, with the memory of who leads.
pub struct ControllerClient {
    http: reqwest::Client,
    controllers: Vec<String>,
    token: Token,
    node: String,
    /// The controller that answered last, tried first.
    leader: Option<String>,
    /// Where the next round starts in `controllers` when there is no leader to try.
    next: usize,
}

enum Attempt {
    Answered(SyncResponse),
    NotLeader(Option<String>),
    Failed(String),
}

/// reqwest is built without a TLS provider of its own; every client the agent builds needs
/// one installed first. The process may already have one (another library installed it):
/// then that one serves, and this changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ControllerClient {
    pub fn new(
        controllers: Vec<String>,
        token: Token,
        node: String,
        request_timeout: Duration,
    ) -> Result<ControllerClient, SyncError> {
        assert!(
            !controllers.is_empty(),
            "configuration validation requires a controller"
        );
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            // Controllers are reached directly: a proxy from the environment would be a
            // surprise in the one path the agent's safety depends on.
            .no_proxy()
            .build()
            .map_err(|e| SyncError::Client(error_chain(&e)))?;
        Ok(ControllerClient {
            http,
            controllers,
            token,
            node,
            leader: None,
            next: 0,
        })
    }

    /// The controller that answered the last sync.
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// One round: the leader if known, then each configured controller, following
    /// redirects, until one answers.
    pub async fn sync(&mut self, request: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let mut candidates: VecDeque<String> = self.leader.iter().cloned().collect();
        let count = self.controllers.len();
        candidates.extend((0..count).map(|i| self.controllers[(self.next + i) % count].clone()));
        let mut tried: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        let mut redirects = 0;
        while let Some(base) = candidates.pop_front() {
            let base = base.trim_end_matches('/').to_string();
            if tried.contains(&base) {
                continue;
            }
            tried.push(base.clone());
            match self.attempt(&base, request).await {
                Attempt::Answered(response) => {
                    self.leader = Some(base);
                    return Ok(response);
                }
                Attempt::NotLeader(Some(leader)) if redirects < REDIRECTS_MAX => {
                    redirects += 1;
                    errors.push(format!("{base}: not the leader (it names {leader})"));
                    candidates.push_front(leader);
                }
                Attempt::NotLeader(_) => errors.push(format!("{base}: not the leader")),
                Attempt::Failed(reason) => errors.push(format!("{base}: {reason}")),
            }
        }
        self.leader = None;
        self.next = (self.next + 1) % count;
        Err(SyncError::Unavailable(errors))
    }

    async fn attempt(&self, base: &str, request: &SyncRequest) -> Attempt {
        let url = format!(
            "{base}{}",
            SYNC_PATH.replace("{node}", &encode_component(&self.node))
        );
        let sent = self
            .http
            .post(&url)
            .bearer_auth(self.token.expose())
            .json(request)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return Attempt::Failed(error_chain(&error)),
        };
        let status = response.status();
        if status.is_success() {
            return match read_json::<SyncResponse>(&mut response).await {
                Ok(answer) => Attempt::Answered(answer),
                Err(reason) => Attempt::Failed(format!("unreadable answer: {reason}")),
            };
        }
        match status.as_u16() {
            503 => match read_json::<NotLeader>(&mut response).await {
                Ok(not_leader) => Attempt::NotLeader(not_leader.leader_api.filter(|l| is_http(l))),
                Err(_) => Attempt::Failed("HTTP 503".into()),
            },
            401 | 403 => Attempt::Failed(format!("HTTP {status}: the token was refused")),
            _ => Attempt::Failed(format!("HTTP {status}")),
        }
    }
}

fn is_http(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Reads a JSON body of at most [`RESPONSE_BYTES_MAX`].
async fn read_json<T: DeserializeOwned>(response: &mut reqwest::Response) -> Result<T, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Err(format!("larger than {RESPONSE_BYTES_MAX} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        // Bounded: cause chains are short, but nothing guarantees it.
        if depth == 8 {
            break;
        }
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
        depth += 1;
    }
    text
}
