//! `meridian bench-failover` (built with `--features etcd`): how long the control plane is
//! without a leader when the leader dies. Real processes: a local 3-member etcd cluster and
//! three `meridian controller`s; each round kills the leader with SIGKILL and times until
//! another controller leads (has loaded the plans and answers agents), then restarts the
//! killed one as a standby.

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use meridian_etcd::local_cluster::LocalCluster;

#[derive(Args, Debug)]
pub struct BenchFailoverArgs {
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// The controllers' leadership lease.
    #[arg(long, default_value = "1s")]
    pub lease_ttl: String,
}

const TOKEN: &str = "bench-failover-admin-token-0123456789";

struct Controller {
    url: String,
    port: u16,
    child: Option<Child>,
}

impl Controller {
    fn start(&mut self, dir: &Path, endpoints: &str, lease_ttl: &str, index: usize) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(dir.join(format!("controller-{index}.log")))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("controller")
            .args(["--id", &format!("c{index}")])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--store", &format!("etcd:{endpoints}")])
            .args(["--tokens", &dir.join("tokens.yaml").to_string_lossy()])
            .args(["--fleet", &dir.join("fleet.yaml").to_string_lossy()])
            .args(["--lease-ttl", lease_ttl, "--settle", "1s"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting a controller")?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn leading(http: &reqwest::Client, url: &str) -> bool {
    let Ok(response) = http
        .get(format!("{url}/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
    else {
        return false;
    };
    let Ok(status) = response.json::<serde_json::Value>().await else {
        return false;
    };
    status["leading"] == serde_json::Value::Bool(true)
}

async fn leader(http: &reqwest::Client, controllers: &[Controller]) -> Option<usize> {
    for (i, c) in controllers.iter().enumerate() {
        if c.child.is_some() && leading(http, &c.url).await {
            return Some(i);
        }
    }
    None
}

async fn wait_leader(
    http: &reqwest::Client,
    controllers: &[Controller],
    limit: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(i) = leader(http, controllers).await {
            return Ok(i);
        }
        if Instant::now() > deadline {
            bail!("no controller leads after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn run(args: BenchFailoverArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(bench(args))
}

async fn bench(args: BenchFailoverArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let etcd = LocalCluster::start(3, &dir.path().join("etcd"))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let endpoints = etcd.client_endpoints().join(",");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        format!("tokens:\n  - {{name: bench, role: admin, token: {TOKEN}}}\n"),
    )?;
    std::fs::write(
        dir.path().join("fleet.yaml"),
        include_str!("../../../examples/control-plane.yaml"),
    )?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let mut controllers = Vec::new();
    for index in 0..3 {
        let port = free_port()?;
        let mut c = Controller {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: None,
        };
        c.start(dir.path(), &endpoints, &args.lease_ttl, index)?;
        controllers.push(c);
    }
    let mut times = Vec::new();
    for round in 0..args.rounds {
        let old = wait_leader(&http, &controllers, Duration::from_secs(30)).await?;
        // Let the standbys settle into their campaigns.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed = Instant::now();
        controllers[old].kill();
        let new = wait_leader(&http, &controllers, Duration::from_secs(30)).await?;
        let took = killed.elapsed();
        eprintln!(
            "round {}: c{old} killed, c{new} leads after {:.3} s",
            round + 1,
            took.as_secs_f64()
        );
        times.push(took.as_secs_f64());
        controllers[old].start(dir.path(), &endpoints, &args.lease_ttl, old)?;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("| rounds | lease TTL | min (s) | median (s) | max (s) |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.2} | {:.2} | {:.2} |",
        times.len(),
        args.lease_ttl,
        times[0],
        median,
        times[times.len() - 1]
    );
    println!("\nkill -9 of the leading controller → another controller leads (loaded, answering agents); 3-member local etcd (heartbeat 50 ms, election timeout 500 ms); `meridian bench-failover --rounds {}`", args.rounds);
    drop(controllers);
    drop(etcd);
    Ok(ExitCode::SUCCESS)
}
