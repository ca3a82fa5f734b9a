//! The agent-side relay a copy runs through: the replica's server is told `REPLICAOF
//! 127.0.0.1 <relay port>`, the relay forwards each connection to the source's endpoint and
//! passes the source → replica bytes (the snapshot and then the command stream) through a
//! [`Throttle`] at the booked rate, so the planner's booking holds whatever Redis would do
//! on its own. The replica → source direction (handshake, `REPLCONF ACK`) is small and goes
//! unthrottled.
//!
//! The relay lives in the agent's process and dies with it: dropping a [`Relay`] aborts its
//! tasks and closes its sockets, which is exactly what a kill -9 of the agent does. The
//! source then sees its replica gone and stops the transfer; the next attempt starts over.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::{JoinHandle, JoinSet};

use crate::products::support::Throttle;

/// How long the relay waits for the source to accept a connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long binding waits for a port a relay just dropped (its tasks end asynchronously).
const BIND_RETRY_FOR: Duration = Duration::from_secs(3);
const BIND_RETRY_EVERY: Duration = Duration::from_millis(50);
/// At most this many connections at once: the replica needs one; a few more cover its
/// reconnecting while a dead one is being torn down. More is someone else, refused.
const CONNECTIONS_MAX: usize = 4;
/// Replica → source reads.
const UPSTREAM_CHUNK_BYTES: usize = 16 * 1024;

/// A running relay; dropping it stops it.
pub struct Relay {
    port: u16,
    counters: Arc<Counters>,
    accepting: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Source → replica bytes delivered to the replica.
    forwarded: AtomicU64,
    /// Connections accepted (the replica reconnects after each failed sync).
    connections: AtomicU64,
}

impl Relay {
    /// Listens on 127.0.0.1:`port` and relays to `upstream` (`host:port`) at `rate_mbps`
    /// (MB/s of 10^6 bytes; not positive or not finite: unthrottled).
    pub async fn start(port: u16, upstream: String, rate_mbps: f64) -> io::Result<Relay> {
        let listener = bind(port).await?;
        let counters = Arc::new(Counters::default());
        let throttle = Arc::new(Mutex::new(Throttle::new(rate_mbps)));
        let accepting = tokio::spawn(accept_loop(
            listener,
            upstream,
            throttle,
            Arc::clone(&counters),
        ));
        Ok(Relay {
            port,
            counters,
            accepting,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Source → replica bytes delivered so far, over every connection.
    pub fn forwarded(&self) -> u64 {
        self.counters.forwarded.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The accept task owns the listener and the connection tasks (a JoinSet, which
        // aborts them when dropped): aborting it closes every socket.
        self.accepting.abort();
    }
}

async fn bind(port: u16) -> io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + BIND_RETRY_FOR;
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("relay port 127.0.0.1:{port} stays in use: {e}"),
                    ));
                }
                tokio::time::sleep(BIND_RETRY_EVERY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    throttle: Arc<Mutex<Throttle>>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::warn!("relay to {upstream}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Reap finished connections so the set stays bounded.
        while connections.try_join_next().is_some() {}
        if connections.len() >= CONNECTIONS_MAX {
            tracing::warn!("relay to {upstream}: refusing {peer}, {CONNECTIONS_MAX} open");
            continue;
        }
        counters.connections.fetch_add(1, Ordering::Relaxed);
        connections.spawn(relay_one(
            client,
            upstream.clone(),
            Arc::clone(&throttle),
            Arc::clone(&counters),
        ));
    }
}

/// Relays one connection until either side closes or fails; then both are closed, as a
/// direct link would be.
async fn relay_one(
    client: TcpStream,
    upstream: String,
    throttle: Arc<Mutex<Throttle>>,
    counters: Arc<Counters>,
) {
    let source =
        match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
            Ok(Ok(source)) => source,
            Ok(Err(e)) => {
                tracing::warn!("relay: cannot reach the source {upstream}: {e}");
                return;
            }
            Err(_) => {
                tracing::warn!("relay: the source {upstream} did not accept within 5 s");
                return;
            }
        };
    // Small writes (handshake, acks) must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = source.set_nodelay(true);
    let (from_replica, to_replica) = client.into_split();
    let (from_source, to_source) = source.into_split();
    let down = copy_throttled(from_source, to_replica, throttle, &counters.forwarded);
    let up = copy_plain(from_replica, to_source);
    let ended = tokio::select! {
        ended = down => ended.map(|()| "the source closed"),
        ended = up => ended.map(|()| "the replica closed"),
    };
    match ended {
        Ok(why) => tracing::debug!("relay to {upstream}: {why}"),
        Err(e) => tracing::debug!("relay to {upstream}: {e}"),
    }
}

/// Copies until end of stream, asking `throttle` before each write. Reads are no larger
/// than the throttle's chunk, so a read never runs more than one burst ahead of the rate.
async fn copy_throttled(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    throttle: Arc<Mutex<Throttle>>,
    forwarded: &AtomicU64,
) -> io::Result<()> {
    let chunk = throttle.lock().await.chunk_max().max(1);
    let mut buffer = vec![0u8; chunk];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        throttle.lock().await.take(read).await;
        to.write_all(&buffer[..read]).await?;
        forwarded.fetch_add(read as u64, Ordering::Relaxed);
    }
}

async fn copy_plain(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut buffer = vec![0u8; UPSTREAM_CHUNK_BYTES];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A stand-in source: sends `bytes` bytes to whoever connects, then echoes what it
    /// reads back.
    async fn source(bytes: usize) -> (u16, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let blob = vec![7u8; bytes];
                tokio::spawn(async move {
                    let _ = stream.write_all(&blob).await;
                    let mut echo = [0u8; 64];
                    while let Ok(read) = stream.read(&mut echo).await {
                        if read == 0 || stream.write_all(&echo[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, task)
    }

    async fn free_port() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_bytes_hold_the_rate_and_replies_pass_unthrottled() {
        let bytes = 4_000_000;
        let (upstream, _source) = source(bytes).await;
        let port = free_port().await;
        let relay = Relay::start(port, format!("127.0.0.1:{upstream}"), 4.0)
            .await
            .expect("relay");
        let mut replica = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let started = Instant::now();
        let mut blob = vec![0u8; bytes];
        tokio::time::timeout(Duration::from_secs(10), replica.read_exact(&mut blob))
            .await
            .expect("in time")
            .expect("read");
        let seconds = started.elapsed().as_secs_f64();
        let rate = bytes as f64 / seconds / 1e6;
        // 4 MB at 4 MB/s: 1 s, less the first burst (50 ms of rate).
        assert!(
            (3.6..=4.4).contains(&rate),
            "{rate:.2} MB/s in {seconds:.2} s"
        );
        replica.write_all(b"REPLCONF ACK 1\r\n").await.expect("up");
        let mut echo = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(5), replica.read_exact(&mut echo))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(&echo, b"REPLCONF ACK 1\r\n");
        assert_eq!(relay.forwarded(), bytes as u64 + 16);
        assert_eq!(relay.connections(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_relay_closes_its_connections_and_frees_its_port() {
        let (upstream, _source) = source(50_000_000).await;
        let port = free_port().await;
        let relay = Relay::start(port, format!("127.0.0.1:{upstream}"), 1.0)
            .await
            .expect("relay");
        let mut replica = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut some = [0u8; 1024];
        replica.read_exact(&mut some).await.expect("first bytes");
        drop(relay);
        // The replica sees its link end (EOF or reset), well before 50 MB at 1 MB/s.
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            let mut sink = vec![0u8; 64 * 1024];
            loop {
                match replica.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(drained.is_ok(), "the connection outlived its relay");
        // And the port can be bound again at once (bind retries while the abort lands).
        let again = Relay::start(port, format!("127.0.0.1:{upstream}"), 1.0).await;
        assert!(again.is_ok(), "port still held: {:?}", again.err());
    }

    #[tokio::test]
    async fn an_unreachable_source_closes_the_replicas_connection() {
        let port = free_port().await;
        let dead = free_port().await;
        let _relay = Relay::start(port, format!("127.0.0.1:{dead}"), 1.0)
            .await
            .expect("relay");
        let mut replica = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), replica.read(&mut byte))
            .await
            .expect("closed in time");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
