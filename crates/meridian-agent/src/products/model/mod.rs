//! The `model_server` actuator (ai product): a replica is a model server process whose
//! weights must be on the node, verified, before it starts.
//!
//! - **Start** pulls the weights from the blob directory (`<blob_dir>/<weights>`, digest in
//!   `<weights>.sha256`) at `blob_rate_mbps`.
//! - **Replicate** pulls them from the source node's data server at the rate the planner
//!   booked — the reader throttles, so the booking holds whatever the sender does.
//! - Either way the copy lands in `weights.partial` (an interrupted copy resumes from its
//!   length), is checked against the SHA-256, and only then becomes `export/weights` with
//!   `export/weights.sha256` beside it: the server only ever sees verified weights, and
//!   peers can copy them from this node in turn.
//! - Each replica reserves `gpu_mem_gib` of the node's `gpu_mem_gib_capacity`; a replica
//!   that would not fit is refused before anything is copied.
//! - The server itself runs under the generic process actuator (restarts, adoption after an
//!   agent restart, health checks); its port is in `{dir}/port`.

pub mod config;
pub mod pull;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use meridian_wire::{ReplicaKey, Source};

use crate::actuator::{
    Actuator, ActuatorError, Observation, Progress, ReplicaContext, TransitionContext,
};
use crate::data_server::{export_url, EXPORT_DIR};
use crate::process::ProcessActuator;
use crate::products::support::{claim_port, PORT_FILE};
pub use config::ModelServerConfig;

/// The verified weights, in a replica's export directory.
pub const WEIGHTS: &str = "weights";
/// Their digest, written only after verification: its presence means the weights are good.
pub const WEIGHTS_DIGEST: &str = "weights.sha256";
/// An unfinished copy.
const PARTIAL: &str = "weights.partial";

pub struct ModelServerActuator {
    config: ModelServerConfig,
    server: ProcessActuator,
    replicas_root: PathBuf,
    client: reqwest::Client,
    /// Bearer token for peers' data servers.
    data_token: Option<String>,
    /// GPU memory held, by replica.
    gpu: Mutex<BTreeMap<ReplicaKey, f64>>,
}

impl ModelServerActuator {
    /// `run_dir` keeps the servers' pid files; `replicas_root` is the agent's replicas
    /// directory (ports are unique under it).
    pub fn new(
        product: &str,
        node: &str,
        config: ModelServerConfig,
        run_dir: PathBuf,
        replicas_root: PathBuf,
        data_token: Option<String>,
    ) -> Result<ModelServerActuator, ActuatorError> {
        config.validate().map_err(|(field, reason)| {
            ActuatorError::Failed(format!("products.{product}.model_server.{field}: {reason}"))
        })?;
        let server = ProcessActuator::new(product, node, config.server.clone(), run_dir)?;
        crate::sync::install_crypto_provider();
        let client = reqwest::Client::builder()
            // Peers are reached directly, as controllers are.
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| ActuatorError::Failed(format!("http client: {e}")))?;
        Ok(ModelServerActuator {
            config,
            server,
            replicas_root,
            client,
            data_token,
            gpu: Mutex::new(BTreeMap::new()),
        })
    }

    /// Holds the replica's GPU memory, or says why it does not fit.
    fn reserve_gpu(&self, replica: &ReplicaKey) -> Result<(), ActuatorError> {
        let mut gpu = self.gpu.lock().unwrap_or_else(|e| e.into_inner());
        if gpu.contains_key(replica) {
            return Ok(());
        }
        let held: f64 = gpu.values().sum();
        let asked = self.config.gpu_mem_gib;
        let capacity = self.config.gpu_mem_gib_capacity;
        if held + asked > capacity + 1e-9 {
            return Err(ActuatorError::Failed(format!(
                "GPU memory: {replica} needs {asked} GiB, {:.1} of the node's {capacity} GiB are free \
                 ({} replicas hold the rest)",
                capacity - held,
                gpu.len()
            )));
        }
        gpu.insert(replica.clone(), asked);
        Ok(())
    }

    fn release_gpu(&self, replica: &ReplicaKey) {
        let mut gpu = self.gpu.lock().unwrap_or_else(|e| e.into_inner());
        gpu.remove(replica);
    }

    /// Brings verified weights into the replica's directory from `source` (a peer) or the
    /// blob directory. Already there and verified: nothing to do.
    async fn ensure_weights(
        &self,
        ctx: &TransitionContext,
        source: Option<(&Source, f64)>,
    ) -> Result<(), ActuatorError> {
        let dir = &ctx.replica_dir;
        let export = dir.join(EXPORT_DIR);
        if export.join(WEIGHTS_DIGEST).is_file() && export.join(WEIGHTS).is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&export)
            .map_err(|e| ActuatorError::io(format!("creating {}", export.display()), e))?;
        let partial = dir.join(PARTIAL);
        let failed =
            |error: String| ActuatorError::Failed(format!("weights of {}: {error}", ctx.replica));
        let expected = match source {
            Some((source, rate_mbps)) => {
                self.pull_from_peer(ctx, source, rate_mbps, &partial).await
            }
            None => self.pull_from_blob(ctx, &partial, &ctx.progress).await,
        }
        .map_err(failed)?;
        let actual = pull::sha256_of(&partial).await.map_err(failed)?;
        if actual != expected {
            // Bytes that do not match are worthless, resumable or not.
            let _ = std::fs::remove_file(&partial);
            return Err(failed(format!(
                "checksum mismatch: expected {expected}, the copy has {actual} (copy discarded)"
            )));
        }
        std::fs::rename(&partial, export.join(WEIGHTS))
            .map_err(|e| ActuatorError::io(format!("publishing {}", partial.display()), e))?;
        crate::products::support::write_small(
            &export.join(WEIGHTS_DIGEST),
            &format!("{actual}  {WEIGHTS}\n"),
        )
        .map_err(failed)
    }

    /// Copies from the blob directory; returns the expected digest.
    async fn pull_from_blob(
        &self,
        ctx: &TransitionContext,
        partial: &Path,
        progress: &Progress,
    ) -> Result<String, String> {
        let name = self.config.weights_name(&ctx.replica.group);
        let blob = self.config.blob_dir.join(&name);
        let digest_file = self.config.blob_dir.join(format!("{name}.sha256"));
        let digest_text = std::fs::read_to_string(&digest_file)
            .map_err(|e| format!("{}: {e}", digest_file.display()))?;
        let expected = pull::parse_digest(&digest_text, &digest_file.display().to_string())?;
        pull::from_file(&blob, partial, self.config.blob_rate_mbps, progress).await?;
        Ok(expected)
    }

    /// Copies from the source node's data server at `rate_mbps`; returns the expected digest.
    async fn pull_from_peer(
        &self,
        ctx: &TransitionContext,
        source: &Source,
        rate_mbps: f64,
        partial: &Path,
    ) -> Result<String, String> {
        // The planner booked the path from this node; the blob store is another path, so
        // no fallback to it.
        let Some(address) = &source.address else {
            return Err(format!(
                "the source node `{}` serves no data (its agent has no registration.data_address)",
                source.node
            ));
        };
        let token = self.data_token.as_deref();
        let digest_url = export_url(address, &ctx.replica, WEIGHTS_DIGEST)?;
        let digest_text = pull::text_from_url(&self.client, digest_url.clone(), token).await?;
        let expected = pull::parse_digest(&digest_text, digest_url.as_str())?;
        let url = export_url(address, &ctx.replica, WEIGHTS)?;
        pull::from_url(&self.client, url, token, partial, rate_mbps, &ctx.progress).await?;
        Ok(expected)
    }

    fn port(&self, replica_dir: &Path) -> Result<u16, ActuatorError> {
        claim_port(replica_dir, &self.replicas_root, self.config.ports)
            .map_err(|e| ActuatorError::io(format!("port for {}", replica_dir.display()), e))
    }

    /// Weights in place and verified, a port: then the server.
    async fn create(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: Option<(&Source, f64)>,
    ) -> Result<(), ActuatorError> {
        self.reserve_gpu(&ctx.replica)?;
        let created = async {
            self.ensure_weights(ctx, source).await?;
            self.port(&ctx.replica_dir)?;
            self.server.start(ctx, state).await
        }
        .await;
        if created.is_err() {
            // Nothing runs: the memory is free for others. (The agent rolls the replica
            // back, partial copy and all, unless it existed before.)
            self.release_gpu(&ctx.replica);
        }
        created
    }
}

#[async_trait]
impl Actuator for ModelServerActuator {
    async fn start(&self, ctx: &TransitionContext, state: &str) -> Result<(), ActuatorError> {
        self.create(ctx, state, None).await
    }

    async fn replicate(
        &self,
        ctx: &TransitionContext,
        state: &str,
        source: &Source,
        _bytes: u64,
        rate_mbps: f64,
    ) -> Result<(), ActuatorError> {
        self.create(ctx, state, Some((source, rate_mbps))).await
    }

    async fn promote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
        handoff: Option<&str>,
    ) -> Result<(), ActuatorError> {
        self.server.promote(ctx, from, to, handoff).await
    }

    async fn demote(
        &self,
        ctx: &TransitionContext,
        from: &str,
        to: &str,
    ) -> Result<Option<String>, ActuatorError> {
        self.server.demote(ctx, from, to).await
    }

    async fn stop(&self, ctx: &TransitionContext, from: &str) -> Result<(), ActuatorError> {
        self.server.stop(ctx, from).await?;
        self.release_gpu(&ctx.replica);
        Ok(())
    }

    async fn observe(&self, replica: &ReplicaContext) -> Observation {
        let mut observation = self.server.observe(replica).await;
        let port = std::fs::read_to_string(replica.replica_dir.join(PORT_FILE));
        observation.endpoint = port.ok().map(|p| format!("127.0.0.1:{}", p.trim()));
        let held = {
            let gpu = self.gpu.lock().unwrap_or_else(|e| e.into_inner());
            gpu.get(&replica.replica).copied()
        };
        if let Some(gib) = held {
            observation.heat.push(("gpu_mem_gib".to_string(), gib));
        }
        observation
    }

    async fn ensure_running(
        &self,
        replica: &ReplicaContext,
        state: &str,
    ) -> Result<(), ActuatorError> {
        // The agent restarted: the memory its replicas held is held again first.
        self.reserve_gpu(&replica.replica)?;
        self.server.ensure_running(replica, state).await
    }
}
