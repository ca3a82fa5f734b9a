//! The replication relay: a TCP proxy on 127.0.0.1 between a copying replica and its source
//! that passes the source's bytes through a token bucket at the booked rate. Redis has no
//! rate limit of its own for a full sync; the relay is how the booking holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::products::support::Throttle;

/// A running relay; it stops (listener and connections) when dropped.
pub struct Relay {
    pub port: u16,
    /// Bytes passed from the source to the replica.
    pub forwarded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Listens on `127.0.0.1:port` and relays every connection to `source`.
    pub async fn start(port: u16, source: String, rate_mbps: f64) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let forwarded = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&forwarded);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let (source, counter) = (source.clone(), Arc::clone(&counter));
                connections.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(&source).await {
                        relay(inbound, outbound, rate_mbps, counter).await;
                    }
                });
            }
        });
        Ok(Relay {
            port,
            forwarded,
            task,
        })
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

/// Replica → source as is (commands, acks); source → replica through the throttle.
async fn relay(inbound: TcpStream, outbound: TcpStream, rate_mbps: f64, counter: Arc<AtomicU64>) {
    let (mut replica_read, mut replica_write) = inbound.into_split();
    let (mut source_read, mut source_write) = outbound.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut replica_read, &mut source_write).await;
    };
    let downstream = async {
        let mut throttle = Throttle::new(rate_mbps);
        let mut buffer = vec![0u8; throttle.chunk_max().clamp(4096, 64 * 1024)];
        loop {
            let read = match source_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            throttle.take(read).await;
            if replica_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
            counter.fetch_add(read as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_passes_bytes_at_the_rate() {
        let source = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = source.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            let (mut socket, _) = source.accept().await.expect("accept");
            let data = vec![7u8; 3_000_000];
            let _ = socket.write_all(&data).await;
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let relay = Relay::start(port, address, 2.0).await.expect("relay");
        let started = std::time::Instant::now();
        let mut client = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.expect("read");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(received.len(), 3_000_000);
        assert_eq!(relay.forwarded(), 3_000_000);
        let rate = 3.0 / seconds;
        assert!((1.8..=2.2).contains(&rate), "{rate} MB/s at 2 MB/s");
    }
}
