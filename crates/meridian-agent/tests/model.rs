//! The model server actuator with real files, a real data server on 127.0.0.1 and real
//! server processes: weights from the blob directory, from a peer at the booked rate,
//! resumed after an agent crash, refused when their checksum is wrong, and GPU memory held
//! per replica.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use meridian_agent::config::{HookConfig, Token};
use meridian_agent::products::model::{ModelServerActuator, ModelServerConfig};
use meridian_agent::products::support::PortRange;
use meridian_agent::{Actuator, ProcessConfig, Progress, TransitionContext};
use meridian_wire::{Health, ReplicaKey, Source, TransitionId};
use sha2::{Digest, Sha256};

const MB: usize = 1_000_000;

struct Fixture {
    _cleanup: Cleanup,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("blobs")).expect("blobs");
        Fixture {
            _cleanup: Cleanup(dir.path().to_path_buf()),
            dir,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Weights for `group` in the blob directory, with their digest.
    fn blob(&self, group: &str, bytes: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(self.path(&format!("blobs/{group}.bin")), &data).expect("blob");
        let digest = format!("{:x}  {group}.bin\n", Sha256::digest(&data));
        std::fs::write(self.path(&format!("blobs/{group}.bin.sha256")), digest).expect("digest");
        data
    }

    fn config(&self, gpu_capacity: f64) -> ModelServerConfig {
        let mut server = ProcessConfig::new(vec![
            "/bin/sh".into(),
            "-c".into(),
            "exec sleep 100000".into(),
        ]);
        server.health = Some(HookConfig {
            command: vec!["test".into(), "-f".into(), "{dir}/export/weights".into()],
            timeout_ms: 1_000,
        });
        server.stop_grace_ms = 100;
        ModelServerConfig {
            server,
            ports: PortRange {
                first: 21_000,
                last: 21_999,
            },
            blob_dir: self.path("blobs"),
            weights: "{group}.bin".into(),
            blob_rate_mbps: None,
            gpu_mem_gib: 8.0,
            gpu_mem_gib_capacity: gpu_capacity,
        }
    }

    /// The actuator of `node` (its own run and replicas directories).
    fn actuator(
        &self,
        node: &str,
        config: ModelServerConfig,
        token: Option<&str>,
    ) -> ModelServerActuator {
        ModelServerActuator::new(
            "ai",
            node,
            config,
            self.path(&format!("{node}/run")),
            self.path(&format!("{node}/replicas")),
            token.map(str::to_string),
        )
        .expect("valid config")
    }

    fn ctx(&self, node: &str, replica: &ReplicaKey, id: &str) -> TransitionContext {
        TransitionContext {
            id: TransitionId(id.into()),
            epoch: 1,
            replica: replica.clone(),
            product: "ai".into(),
            replica_dir: meridian_agent::paths::replica_dir(
                &self.path(&format!("{node}/replicas")),
                replica,
            ),
            progress: Progress::default(),
        }
    }

    /// `node`'s data server on a free port of 127.0.0.1; its address.
    async fn data_server(&self, node: &str, token: Option<&str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let router = meridian_agent::data_server::router(
            self.path(&format!("{node}/replicas")),
            token.map(Token::new),
        );
        tokio::spawn(meridian_agent::data_server::serve(listener, router));
        address
    }
}

fn weights_of(ctx: &TransitionContext) -> PathBuf {
    ctx.replica_dir.join("export/weights")
}

fn source(node: &str, address: &str) -> Source {
    Source {
        node: node.into(),
        address: Some(address.into()),
        endpoint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_pulls_verified_weights_from_the_blob_directory_then_serves() {
    bounded(async {
        let fixture = Fixture::new();
        let data = fixture.blob("llama", 3 * MB);
        let actuator = fixture.actuator("n1", fixture.config(16.0), None);
        let llama = replica("llama", 0);
        let ctx = fixture.ctx("n1", &llama, "plan-1/step-0/0");
        actuator.start(&ctx, "Active").await.expect("start");
        assert_eq!(std::fs::read(weights_of(&ctx)).expect("weights"), data);
        assert_eq!(ctx.progress.bytes_done(), data.len() as u64);

        let observed = actuator.observe(&ctx.replica_context()).await;
        assert_eq!(observed.health, Health::Serving);
        let port = read_trimmed(&ctx.replica_dir.join("port")).expect("a port");
        assert_eq!(observed.endpoint, Some(format!("127.0.0.1:{port}")));
        assert!(observed.heat.contains(&("gpu_mem_gib".to_string(), 8.0)));

        // Again: nothing copied twice, nothing started twice.
        let again = fixture.ctx("n1", &llama, "plan-1/step-0/0");
        actuator.start(&again, "Active").await.expect("idempotent");
        assert_eq!(again.progress.bytes_done(), 0, "no second copy");
        actuator.stop(&ctx, "Active").await.expect("stop");
        assert!(!ctx.replica_dir.exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_copy_holds_the_booked_rate() {
    bounded(async {
        let fixture = Fixture::new();
        let data = fixture.blob("llama", 2 * MB);
        let llama = replica("llama", 0);
        let n1 = fixture.actuator("n1", fixture.config(16.0), Some("peers"));
        n1.start(&fixture.ctx("n1", &llama, "t1"), "Active")
            .await
            .expect("start on n1");
        // Bigger weights on n1 than the blob: the copy must come from the peer.
        let big: Vec<u8> = (0..24 * MB).map(|i| (i % 253) as u8).collect();
        let export = fixture.ctx("n1", &llama, "t1").replica_dir.join("export");
        std::fs::write(export.join("weights"), &big).expect("weights");
        let digest = format!("{:x}  weights\n", Sha256::digest(&big));
        std::fs::write(export.join("weights.sha256"), digest).expect("digest");
        assert_ne!(big.len(), data.len());
        let address = fixture.data_server("n1", Some("peers")).await;

        let n2 = fixture.actuator("n2", fixture.config(16.0), Some("peers"));
        let ctx = fixture.ctx("n2", &llama, "t2");
        let booked_mbps = 8.0;
        let from = source("n1", &address);
        let copying = n2.replicate(&ctx, "Active", &from, big.len() as u64, booked_mbps);
        tokio::pin!(copying);
        // The rate is measured over the copy's middle, from the progress the agent reports.
        let mut samples: Vec<(std::time::Instant, u64)> = Vec::new();
        let outcome = loop {
            tokio::select! {
                outcome = &mut copying => break outcome,
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    samples.push((std::time::Instant::now(), ctx.progress.bytes_done()));
                }
            }
        };
        outcome.expect("replicate");
        assert_eq!(std::fs::read(weights_of(&ctx)).expect("weights"), big);
        let moving: Vec<_> = samples
            .iter()
            .filter(|(_, bytes)| *bytes > 0 && (*bytes as usize) < big.len())
            .collect();
        let (first, last) = (
            moving.first().expect("samples"),
            moving.last().expect("samples"),
        );
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        assert!(
            seconds >= 2.0,
            "the copy took long enough to measure: {seconds} s"
        );
        let rate = (last.1 - first.1) as f64 / seconds / 1e6;
        eprintln!("peer copy: {rate:.2} MB/s against {booked_mbps} MB/s booked");
        assert!(
            (rate - booked_mbps).abs() <= 0.1 * booked_mbps,
            "{rate:.2} MB/s against {booked_mbps} MB/s booked"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_by_an_agent_crash_resumes_where_it_stopped() {
    bounded(async {
        let fixture = Fixture::new();
        fixture.blob("llama", 6 * MB);
        let llama = replica("llama", 0);
        let n1 = fixture.actuator("n1", fixture.config(16.0), None);
        n1.start(&fixture.ctx("n1", &llama, "t1"), "Active")
            .await
            .expect("start on n1");
        let address = fixture.data_server("n1", None).await;

        let ctx = fixture.ctx("n2", &llama, "t2");
        {
            // kill -9 of n2's agent after about a second of copying at 2 MB/s.
            let n2 = fixture.actuator("n2", fixture.config(16.0), None);
            let from = source("n1", &address);
            let mut copying = Box::pin(n2.replicate(&ctx, "Active", &from, 0, 2.0));
            let cut = tokio::time::timeout(Duration::from_millis(1_200), copying.as_mut()).await;
            assert!(cut.is_err(), "still copying at the crash");
            std::mem::forget(copying);
        }
        let copied_before = ctx.progress.bytes_done();
        assert!(
            copied_before > MB as u64,
            "{copied_before} bytes before the crash"
        );

        // The restarted agent runs the transition again: it asks only for the rest.
        let n2 = fixture.actuator("n2", fixture.config(16.0), None);
        let resumed = fixture.ctx("n2", &llama, "t2");
        let started = std::time::Instant::now();
        n2.replicate(&resumed, "Active", &source("n1", &address), 0, 2.0)
            .await
            .expect("resumed copy");
        let seconds = started.elapsed().as_secs_f64();
        let expected = std::fs::read(fixture.path("blobs/llama.bin")).expect("blob");
        assert_eq!(
            std::fs::read(weights_of(&resumed)).expect("weights"),
            expected
        );
        let remaining = (expected.len() as u64 - copied_before) as f64 / 2e6;
        assert!(
            seconds < remaining + 1.0,
            "{seconds:.1} s: the resumed copy fetched more than the {remaining:.1} s left"
        );
        assert_eq!(
            n2.observe(&resumed.replica_context()).await.health,
            Health::Serving
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_that_do_not_match_their_digest_are_refused() {
    bounded(async {
        let fixture = Fixture::new();
        fixture.blob("llama", MB);
        let wrong = format!("{:x}  llama.bin\n", Sha256::digest(b"other weights"));
        std::fs::write(fixture.path("blobs/llama.bin.sha256"), wrong).expect("digest");
        let actuator = fixture.actuator("n1", fixture.config(8.0), None);
        let ctx = fixture.ctx("n1", &replica("llama", 0), "t1");
        let error = actuator.start(&ctx, "Active").await.expect_err("refused");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        assert!(
            !weights_of(&ctx).exists(),
            "unverified weights never published"
        );
        assert!(!ctx.replica_dir.join("weights.partial").exists());
        // The refused replica holds no GPU memory: another fits in the node's 8 GiB.
        fixture.blob("mistral", MB);
        let other = fixture.ctx("n1", &replica("mistral", 0), "t2");
        actuator.start(&other, "Active").await.expect("fits");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_memory_is_held_per_replica_and_refused_beyond_the_node() {
    bounded(async {
        let fixture = Fixture::new();
        fixture.blob("llama", MB);
        let actuator = fixture.actuator("n1", fixture.config(16.0), None);
        let ctx = |p: u32| fixture.ctx("n1", &replica("llama", p), &format!("t{p}"));
        actuator.start(&ctx(0), "Active").await.expect("8 of 16");
        actuator.start(&ctx(1), "Active").await.expect("16 of 16");
        let error = actuator.start(&ctx(2), "Active").await.expect_err("full");
        let error = error.to_string();
        assert!(
            error.contains("GPU memory") && error.contains("needs 8 GiB"),
            "{error}"
        );
        assert!(!weights_of(&ctx(2)).exists(), "refused before copying");
        actuator.stop(&ctx(0), "Active").await.expect("stop");
        actuator.start(&ctx(2), "Active").await.expect("fits again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_server_with_a_token_refuses_peers_without_it() {
    bounded(async {
        let fixture = Fixture::new();
        fixture.blob("llama", MB);
        let llama = replica("llama", 0);
        let n1 = fixture.actuator("n1", fixture.config(16.0), None);
        n1.start(&fixture.ctx("n1", &llama, "t1"), "Active")
            .await
            .expect("start on n1");
        let address = fixture.data_server("n1", Some("secret")).await;
        let n2 = fixture.actuator("n2", fixture.config(16.0), Some("wrong"));
        let ctx = fixture.ctx("n2", &llama, "t2");
        let error = n2
            .replicate(&ctx, "Active", &source("n1", &address), 0, 10.0)
            .await
            .expect_err("unauthorized");
        assert!(error.to_string().contains("401"), "{error}");
        let no_address = Source {
            node: "n1".into(),
            address: None,
            endpoint: None,
        };
        let error = n2
            .replicate(&ctx, "Active", &no_address, 0, 10.0)
            .await
            .expect_err("no data address");
        assert!(error.to_string().contains("serves no data"), "{error}");
    })
    .await;
}
