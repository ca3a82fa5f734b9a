//! Serving the router on a socket, plain or TLS, until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::tls::{server_config, TlsError, TlsFiles, TlsListener};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server task failed: {0}")]
    Task(String),
}

/// A running server.
pub struct Server {
    local_addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Where it listens (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has shut down (after the shutdown signal, once open requests
    /// finish).
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result.map_err(ServeError::Io),
            Err(e) => Err(ServeError::Task(e.to_string())),
        }
    }
}

/// Binds `addr` and serves `router` on it (over TLS when `tls` is given) until `shutdown`
/// resolves. TLS files are read before binding, so a bad certificate or key fails here with
/// the file's name and nothing listens.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Server, ServeError> {
    let tls_config = tls.as_ref().map(server_config).transpose()?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = tcp.local_addr()?;
    let task = match tls_config {
        None => tokio::spawn(async move {
            axum::serve(tcp, router)
                .with_graceful_shutdown(shutdown)
                .await
        }),
        Some(config) => {
            let listener = TlsListener::new(tcp, config)?;
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            })
        }
    };
    tracing::info!(
        %local_addr,
        tls = tls.is_some(),
        "meridian API listening"
    );
    Ok(Server { local_addr, task })
}
