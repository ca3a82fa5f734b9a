//! `meridian model-server`: a small stand-in for an inference server, for the demo and tests.
//! It does what matters to placement and nothing more: it will not serve before it has loaded
//! its weights (read end to end and checked against their digest, as a real server maps
//! them), it listens where the agent gave it a port, and each answer names the weights it
//! came from, so a client can tell which copy served it.
//!
//! `GET /healthz` → 200 once loaded. `POST /v1/infer` with `{"prompt": "..."}` →
//! `{"model": <digest prefix>, "state": ..., "output": ...}`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Args, Debug)]
pub struct ModelServerArgs {
    /// The replica's directory: the port is in `port`, the weights in `export/weights` with
    /// their digest in `export/weights.sha256` (as the model_server actuator leaves them).
    #[arg(long)]
    pub dir: PathBuf,
    /// The replica's state, echoed in answers.
    #[arg(long, default_value = "Active")]
    pub state: String,
    /// Do not serve: ask the server of `--dir` for its health and exit 0 if it is loaded and
    /// answering (a health check for the agent).
    #[arg(long)]
    pub check: bool,
}

struct Loaded {
    digest: String,
    state: String,
}

#[derive(Deserialize)]
struct Infer {
    prompt: String,
}

pub fn run(args: ModelServerArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.check {
        return runtime.block_on(check(&args.dir));
    }
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

fn port_of(dir: &Path) -> Result<u16> {
    let port_file = dir.join("port");
    std::fs::read_to_string(&port_file)
        .with_context(|| format!("reading {}", port_file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{}: not a port", port_file.display()))
}

async fn check(dir: &Path) -> Result<ExitCode> {
    let url = format!("http://127.0.0.1:{}/healthz", port_of(dir)?);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .context("http client")?;
    let healthy = client
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(args: ModelServerArgs) -> Result<()> {
    let port = port_of(&args.dir)?;
    let digest = load(&args.dir.join("export")).await?;
    let loaded = Arc::new(Loaded {
        digest,
        state: args.state,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/infer", post(infer))
        .with_state(loaded);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::logging::shutdown_signal())
        .await
        .context("serving")
}

/// Reads the weights end to end and checks them against their digest.
async fn load(export: &Path) -> Result<String> {
    let weights = export.join("weights");
    let digest_file = export.join("weights.sha256");
    let expected = std::fs::read_to_string(&digest_file)
        .with_context(|| format!("reading {}", digest_file.display()))?;
    let expected = expected.split_whitespace().next().unwrap_or("").to_string();
    let bytes = tokio::fs::read(&weights)
        .await
        .with_context(|| format!("reading {}", weights.display()))?;
    let actual = format!("{:x}", Sha256::digest(&bytes));
    if actual != expected {
        bail!(
            "{}: digest {actual}, expected {expected}",
            weights.display()
        );
    }
    Ok(actual)
}

async fn infer(State(loaded): State<Arc<Loaded>>, Json(request): Json<Infer>) -> Json<Value> {
    let mut hasher = Sha256::new();
    hasher.update(loaded.digest.as_bytes());
    hasher.update(request.prompt.as_bytes());
    let output = format!("{:x}", hasher.finalize());
    Json(json!({
        "model": &loaded.digest[..12],
        "state": loaded.state,
        "output": &output[..16],
    }))
}
