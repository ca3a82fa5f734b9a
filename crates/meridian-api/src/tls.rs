//! TLS with rustls (ring provider: no cmake in the build): load the certificate chain and key
//! from PEM files with errors that name the file, and a listener that does handshakes off the
//! accept path so one slow client cannot hold up everyone else's connections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Handshakes in progress at once; more connections wait in the kernel's backlog.
pub const HANDSHAKES_MAX: usize = 128;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const READY_MAX: usize = 64;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Bound on a PEM file: certificates and keys are a few KiB.
const PEM_BYTES_MAX: u64 = 1 << 20;

/// PEM files: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_pem_path: PathBuf,
    pub key_pem_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file `{file}`: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("TLS file `{file}`: {message}")]
    Pem { file: String, message: String },
    #[error("TLS certificate `{cert}` with key `{key}`: {message}")]
    Config {
        cert: String,
        key: String,
        message: String,
    },
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let file = path.display().to_string();
    let read = |source| TlsError::Read {
        file: file.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > PEM_BYTES_MAX {
        return Err(TlsError::Pem {
            file,
            message: format!("larger than {PEM_BYTES_MAX} bytes: not a PEM file"),
        });
    }
    std::fs::read(path).map_err(read)
}

fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let file = path.display().to_string();
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            file: file.clone(),
            message: format!("not valid PEM: {e}"),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            file,
            message: "no `BEGIN CERTIFICATE` block found".into(),
        });
    }
    Ok(certificates)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        file: path.display().to_string(),
        message: format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })
}

/// The server's rustls configuration (HTTP/1.1 only, as the API serves).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let certificates = load_certificates(&files.cert_pem_path)?;
    let key = load_key(&files.key_pem_path)?;
    let config_error = |message: String| TlsError::Config {
        cert: files.cert_pem_path.display().to_string(),
        key: files.key_pem_path.display().to_string(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|e| config_error(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections whose TLS handshake is done, for `axum::serve`.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local_addr = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_MAX);
        let acceptor_task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), sender));
        Ok(TlsListener {
            ready,
            local_addr,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // The accept loop would otherwise keep the port open after the server stopped.
        self.acceptor_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_garbage_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello").expect("write");
        let missing = dir.path().join("missing.pem");
        let cases = [
            (missing.clone(), garbage.clone(), "missing.pem"),
            (garbage.clone(), missing.clone(), "garbage.pem"),
        ];
        for (cert, key, named) in cases {
            let files = TlsFiles {
                cert_pem_path: cert,
                key_pem_path: key,
            };
            let error = server_config(&files).expect_err("bad files");
            assert!(error.to_string().contains(named), "{error}");
        }
    }
}
