//! Real sockets: the API over HTTPS with a self-signed certificate, plain HTTP, and clear
//! errors for bad certificate files.

use std::net::SocketAddr;
use std::sync::Arc;

use meridian_api::{serve, ServeError, TlsFiles};
use tokio_rustls::rustls;

use crate::common::*;

const HOST: &str = "meridian.test";

/// A client trusting only `certificate` (none: trusting nothing), reaching [`HOST`] at `addr`.
/// Its rustls configuration is handed over whole: the crate builds rustls with ring only, and
/// reqwest has no provider of its own.
fn client_trusting(certificate: Option<&rcgen::Certificate>, addr: SocketAddr) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(certificate) = certificate {
        roots.add(certificate.der().clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(HOST, addr)
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let harness = leading().await;
    let certified =
        rcgen::generate_simple_self_signed(vec![HOST.to_string()]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let files = TlsFiles {
        cert_pem_path: dir.path().join("cert.pem"),
        key_pem_path: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert_pem_path, certified.cert.pem()).expect("cert");
    std::fs::write(&files.key_pem_path, certified.key_pair.serialize_pem()).expect("key");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = serve(
        "127.0.0.1:0".parse().expect("addr"),
        harness.router.clone(),
        Some(files),
        async {
            let _ = stopped.await;
        },
    )
    .await
    .expect("serving");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let client = client_trusting(Some(&certified.cert), addr);
    let base = format!("https://{HOST}:{}", addr.port());

    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let status = client
        .get(format!("{base}/v1/status"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("status");
    assert_eq!(status.status(), 200);
    let status: serde_json::Value =
        serde_json::from_slice(&status.bytes().await.expect("body")).expect("json");
    assert_eq!(status["leading"], true);
    let anonymous = client
        .get(format!("{base}/v1/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(anonymous.status(), 401);

    // A client that does not trust the certificate gets no answer at all.
    let stranger = client_trusting(None, addr);
    assert!(stranger
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err());

    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), server.wait())
        .await
        .expect("shuts down")
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_serves_too() {
    let harness = leading().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = serve(
        "127.0.0.1:0".parse().expect("addr"),
        harness.router.clone(),
        None,
        async {
            let _ = stopped.await;
        },
    )
    .await
    .expect("serving");
    let client = client_trusting(None, server.local_addr());
    let url = format!("http://{}/v1/nodes/n01", server.local_addr());
    let reply = client
        .get(&url)
        .bearer_auth(READ)
        .send()
        .await
        .expect("get");
    assert_eq!(reply.status(), 200);
    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), server.wait())
        .await
        .expect("shuts down")
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_fail_before_listening_and_name_the_file() {
    let harness = leading().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec![HOST.to_string()]).expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("key");
    std::fs::write(&not_a_key, certified.cert.pem()).expect("cert as key");
    let cases = [
        (dir.path().join("missing.pem"), key.clone(), "missing.pem"),
        (key.clone(), key.clone(), "key.pem"),
        (cert.clone(), not_a_key, "not-a-key.pem"),
    ];
    for (cert_pem_path, key_pem_path, named) in cases {
        let files = TlsFiles {
            cert_pem_path,
            key_pem_path,
        };
        let result = serve(
            "127.0.0.1:0".parse().expect("addr"),
            harness.router.clone(),
            Some(files),
            std::future::pending(),
        )
        .await;
        let Err(error) = result else {
            panic!("served with bad files ({named})")
        };
        assert!(matches!(error, ServeError::Tls(_)), "{error}");
        assert!(
            error.to_string().contains(named),
            "{error} should name {named}"
        );
    }
}
