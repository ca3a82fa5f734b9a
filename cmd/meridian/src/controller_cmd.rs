//! `meridian controller`: one controller of a cell. Several may run on one etcd; one leads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use meridian_controller::detector::DetectorOptions;
use meridian_controller::{Controller, ControllerConfig};
use meridian_store::keys::Keys;
use meridian_store::Store;

#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Where the API listens (agents, operators, Prometheus).
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// The URL others reach this controller at (default: http(s)://<listen>).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Unique id among the cell's controllers (default: the advertised URL).
    #[arg(long)]
    pub id: Option<String>,
    /// `redb:PATH` (embedded, one controller) or `etcd:URL[,URL...]` (HA).
    #[arg(long, default_value = "redb:meridian.redb")]
    pub store: String,
    /// Key prefix of this cell in the store.
    #[arg(long, default_value = "/meridian/")]
    pub root: String,
    /// A fleet file to start from when the store has no spec yet.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Bearer tokens and their roles (YAML; see docs/control-plane.md).
    #[arg(long)]
    pub tokens: PathBuf,
    /// Serve HTTPS with this certificate chain (PEM) ...
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// ... and this private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Leadership lease; a dead leader is replaced about this long after it stopped.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// How often agents sync.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Phi above which a node is declared dead (8: about one false alarm in 1e8).
    #[arg(long, default_value_t = 8.0)]
    pub phi_threshold: f64,
    /// A node declared dead comes back only after syncing steadily this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub rejoin_after: Duration,
    /// After winning leadership, hear from agents this long before planning anew or judging
    /// any node; keep it above the agents' sync_backoff_max_ms plus one heartbeat.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Plans wait for an operator's approval instead of running at once.
    #[arg(long)]
    pub manual_approval: bool,
    /// Fastest a single copy may run, MB/s.
    #[arg(long, default_value_t = 200.0)]
    pub rate_max: f64,
    /// Copies in flight per node.
    #[arg(long, default_value_t = 2)]
    pub moves_per_node: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn config(args: &ControllerArgs) -> ControllerConfig {
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", args.listen));
    let id = args.id.clone().unwrap_or_else(|| advertise.clone());
    let mut config = ControllerConfig::new(&id, &advertise);
    config.keys = Keys::new(&args.root);
    config.lease_ttl = args.lease_ttl;
    config.heartbeat = args.heartbeat;
    config.settle = args.settle;
    config.auto_approve = !args.manual_approval;
    config.seed = args.seed;
    let heartbeat_ms = args.heartbeat.as_millis() as f64;
    config.detector = DetectorOptions {
        phi_threshold: args.phi_threshold,
        first_interval_ms: heartbeat_ms,
        std_dev_min_ms: (heartbeat_ms / 4.0).max(20.0),
        acceptable_pause_ms: heartbeat_ms,
        rejoin_ms: args.rejoin_after.as_millis() as u64,
        ..DetectorOptions::default()
    };
    config.planner.rate_max = args.rate_max;
    config.planner.moves_per_node_max = args.moves_per_node;
    config
}

/// Opens the store `spec` names.
pub async fn open_store(spec: &str, keys: &Keys) -> Result<Arc<dyn Store>> {
    if let Some(path) = spec.strip_prefix("redb:") {
        let election = keys.election();
        let store = meridian_store::redb_store::RedbStore::open(path.as_ref(), &[&election])
            .map_err(|e| anyhow!("--store {spec}: {e}"))?;
        return Ok(Arc::new(store));
    }
    if let Some(urls) = spec.strip_prefix("etcd:") {
        return open_etcd(urls).await;
    }
    bail!("--store {spec}: expected redb:PATH or etcd:URL[,URL...]")
}

#[cfg(feature = "etcd")]
async fn open_etcd(urls: &str) -> Result<Arc<dyn Store>> {
    let endpoints: Vec<String> = urls.split(',').map(str::to_string).collect();
    let store = meridian_etcd::EtcdStore::connect(&endpoints, Default::default())
        .await
        .map_err(|e| anyhow!("--store etcd:{urls}: {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(_urls: &str) -> Result<Arc<dyn Store>> {
    bail!("this meridian was built without etcd support; rebuild with `--features etcd` (needs Debian's protobuf-compiler)")
}

pub fn run(args: ControllerArgs) -> Result<std::process::ExitCode> {
    crate::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn serve(args: ControllerArgs) -> Result<()> {
    let config = config(&args);
    let tokens = meridian_api::Tokens::load(&args.tokens).map_err(|e| anyhow!("{e}"))?;
    let store = open_store(&args.store, &config.keys).await?;
    if let Some(path) = &args.fleet {
        let yaml =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Controller::seed_spec(store.as_ref(), &config.keys.spec(), &yaml)
            .await
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    let controller = Controller::new(config, store);
    let router = meridian_api::router(
        Arc::clone(&controller),
        meridian_api::ApiConfig::new(tokens),
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(meridian_api::TlsFiles {
            cert_pem_path: cert.clone(),
            key_pem_path: key.clone(),
        }),
        _ => None,
    };
    let shutdown = crate::logging::shutdown_signal();
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = meridian_api::serve(args.listen, router, tls, async {
        let _ = api_stopped.await;
    })
    .await
    .map_err(|e| anyhow!("{e}"))?;
    tracing::info!(
        "controller {} serving on {}",
        controller.config().id,
        server.local_addr()
    );
    controller.run(shutdown).await;
    let _ = stop_api.send(());
    let _ = server.wait().await;
    Ok(())
}
