//! A copy into a replica (`replicate`): Redis's own full sync, held to the booked rate by
//! the relay, verified, then handed over to a direct link.
//!
//! 1. The replica (fenced: it never takes writes) is told `REPLICAOF 127.0.0.1 <relay
//!    port>`; the relay forwards to the source at the booked rate. Progress is the relay's
//!    source → replica byte count; lag is the source's offset less the replica's.
//! 2. Caught up: the replica has applied everything up to where the source was when last
//!    asked, in the same replication history.
//! 3. Verified: both sides' streams (length, last id) compared at one and the same
//!    replication position (see [`verify`]).
//! 4. Re-pointed: `REPLICAOF <source>` directly. The replica keeps the source's replication
//!    id and offset, so the source answers its `PSYNC` with a partial resync of the few
//!    bytes since — no second, unthrottled full copy. The source's `sync_full` counter is
//!    checked to prove it; were it to move (the source lost its backlog in between, or
//!    another replica synced at that moment), a warning says so, since the copy is complete
//!    and correct either way.
//!
//! A repeat after a crash starts over from 1: the relay is a new one on the same port (the
//! replica still dials it), and Redis starts a new full sync. A repeat after 4 finds the
//! replica linked to the source directly and only verifies.

use std::time::Duration;

use tokio::time::Instant;

use super::client::{Client, TRANSITION};
use super::handoff;
use super::info::{Info, Position};
use super::relay::Relay;
use super::server::Server;
use crate::actuator::Progress;

/// Between two looks at the replica and the source.
const POLL: Duration = Duration::from_millis(100);
/// Source snapshots tried before a verification gives up on a source that keeps moving.
const VERIFY_ATTEMPTS_MAX: usize = 50;
/// Replica snapshots per source snapshot, waiting for the replica to reach its position.
const REPLICA_LOOKS_MAX: usize = 100;
const REPLICA_LOOK_EVERY: Duration = Duration::from_millis(5);
/// No copy is given longer than this, whatever its booking says (a week: a bound, not a
/// plan).
const BOOKED_TIME_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one copy is asked to do.
pub struct Copy<'a> {
    pub server: &'a Server,
    /// The source replica's `host:port`.
    pub source: &'a str,
    pub bytes: u64,
    pub rate_mbps: f64,
    pub progress: &'a Progress,
    pub catch_up_timeout: Duration,
    pub verify: Verify<'a>,
}

/// Which streams are compared (`SCAN MATCH` pattern) and at most how many.
#[derive(Debug, Clone, Copy)]
pub struct Verify<'a> {
    pub pattern: &'a str,
    pub keys_max: usize,
}

/// `host:port`, split.
pub fn split_endpoint(endpoint: &str) -> Result<(&str, u16), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| format!("endpoint `{endpoint}` is not host:port"))?;
    let port = port
        .parse()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| format!("endpoint `{endpoint}`: bad port"))?;
    Ok((host, port))
}

/// How long a copy of `bytes` takes at `rate_mbps` (zero when unthrottled), at most
/// [`BOOKED_TIME_MAX`].
pub fn booked_time(bytes: u64, rate_mbps: f64) -> Duration {
    if !(rate_mbps.is_finite() && rate_mbps > 0.0) {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(bytes as f64 / (rate_mbps * 1e6))
        .unwrap_or(BOOKED_TIME_MAX)
        .min(BOOKED_TIME_MAX)
}

impl Copy<'_> {
    /// Runs the copy on `replica` (a connection to the replica's server, started).
    pub async fn run(&self, replica: &mut Client, info: &Info) -> Result<(), String> {
        let (host, port) = split_endpoint(self.source)?;
        let mut source = Client::connect(self.source, TRANSITION)
            .await
            .map_err(|e| format!("the source: {e}"))?;
        if replica.writable().await? {
            replica.fence().await?;
        }
        if info.follows(host, port) && info.streaming() {
            tracing::info!(
                source = self.source,
                "already linked to the source: verifying only"
            );
            let deadline = Instant::now() + self.catch_up_timeout;
            verify(replica, &mut source, self.verify, deadline).await?;
            self.progress.set_lag_bytes(0);
            return Ok(());
        }
        let relay_port = self.server.relay_port.ok_or("no relay port claimed")?;
        let relay = Relay::start(relay_port, self.source.to_string(), self.rate_mbps)
            .await
            .map_err(|e| format!("relay on 127.0.0.1:{relay_port} to {}: {e}", self.source))?;
        replica.follow("127.0.0.1", relay_port).await?;
        let started = Instant::now();
        let deadline =
            started + self.catch_up_timeout + booked_time(self.bytes, self.rate_mbps) * 2;
        self.catch_up(replica, &mut source, &relay, deadline)
            .await?;
        verify(replica, &mut source, self.verify, deadline).await?;
        self.progress.set_bytes_done(relay.forwarded());
        tracing::info!(
            source = self.source,
            bytes = relay.forwarded(),
            seconds = started.elapsed().as_secs_f64(),
            "copied through the relay and verified"
        );
        self.repoint(replica, &mut source, host, port).await?;
        drop(relay);
        Ok(())
    }

    /// Waits until the replica, following the relay, has applied everything the source had
    /// when last asked. Fails past `deadline`, or when nothing moved for the catch-up
    /// timeout: no byte relayed (a source preparing a disk snapshot still sends a newline a
    /// second), no byte of the snapshot loaded, no offset applied.
    async fn catch_up(
        &self,
        replica: &mut Client,
        source: &mut Client,
        relay: &Relay,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut moved_at = Instant::now();
        let mut last_seen = (0, None::<Position>, None, None);
        loop {
            let forwarded = relay.forwarded();
            self.progress.set_bytes_done(forwarded);
            // The source first: a replica at or past that position has all it had then.
            let theirs = source.info("replication").await?;
            let mine = replica.info("replication persistence").await?;
            let through_relay = mine.follows("127.0.0.1", relay.port()) && mine.streaming();
            if let (true, Some(t), Some(m)) = (through_relay, theirs.position(), mine.position()) {
                if t.replid == m.replid {
                    self.progress
                        .set_lag_bytes(t.offset.saturating_sub(m.offset));
                    if m.offset >= t.offset {
                        return Ok(());
                    }
                }
            }
            let seen = (
                forwarded,
                mine.position(),
                mine.number("master_sync_read_bytes"),
                mine.number("loading_loaded_bytes"),
            );
            if seen != last_seen {
                last_seen = seen;
                moved_at = Instant::now();
            }
            let stalled = moved_at.elapsed() >= self.catch_up_timeout;
            if stalled || Instant::now() >= deadline {
                let why = if stalled {
                    format!("nothing moved for {:?}", self.catch_up_timeout)
                } else {
                    "not caught up in time".to_string()
                };
                return Err(self.behind(&why, &mine, &theirs, relay));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn behind(&self, why: &str, mine: &Info, theirs: &Info, relay: &Relay) -> String {
        let position = |info: &Info| info.position().map_or("unknown".into(), |p| p.to_string());
        let dropped = if relay.connections() > 1 {
            " (the source dropped the replica mid-sync and it started over: is the source's \
             client-output-buffer-limit for replicas too small for the writes it takes during \
             a copy at this rate?)"
        } else {
            ""
        };
        format!(
            "copy from {} through the relay on 127.0.0.1:{}: {why}: link {}, sync in \
             progress {}, here at {}, the source at {}; {} bytes relayed over {} \
             connection(s){dropped}",
            self.source,
            relay.port(),
            mine.get("master_link_status").unwrap_or("unknown"),
            mine.get("master_sync_in_progress").unwrap_or("unknown"),
            position(mine),
            position(theirs),
            relay.forwarded(),
            relay.connections()
        )
    }

    /// Links the replica to the source directly and checks the source did not start a full
    /// sync for it.
    async fn repoint(
        &self,
        replica: &mut Client,
        source: &mut Client,
        host: &str,
        port: u16,
    ) -> Result<(), String> {
        let full_syncs = |info: &Info| info.number("sync_full").unwrap_or(0);
        let before = full_syncs(&source.info("stats").await?);
        replica.follow(host, port).await?;
        let deadline = Instant::now() + self.catch_up_timeout;
        loop {
            let mine = replica.info("replication").await?;
            if mine.follows(host, port) && mine.streaming() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "re-pointed at {}: the link is not up after {:?} (link {})",
                    self.source,
                    self.catch_up_timeout,
                    mine.get("master_link_status").unwrap_or("unknown")
                ));
            }
            tokio::time::sleep(POLL).await;
        }
        self.progress.set_lag_bytes(0);
        let after = full_syncs(&source.info("stats").await?);
        if after > before {
            tracing::warn!(
                source = self.source,
                full_syncs = after - before,
                "the source ran a full sync while the replica was re-pointed at it: if it was \
                 this replica's, it went unthrottled (the source's backlog did not hold the \
                 replica's offset)"
            );
        }
        Ok(())
    }
}

/// Compares the streams of `replica` and `source` at one replication position. The source
/// may be taking writes, so a snapshot of the source (consistent at its position) is taken
/// first, and the replica — applying the same stream in order — is looked at until it is at
/// exactly that position; past it, the source is asked again. Equal positions with different
/// streams are a real divergence and fail at once.
pub async fn verify(
    replica: &mut Client,
    source: &mut Client,
    verify: Verify<'_>,
    deadline: Instant,
) -> Result<(), String> {
    for attempt in 1..=VERIFY_ATTEMPTS_MAX {
        let Some((at, theirs)) = source.streams(verify.pattern, verify.keys_max).await? else {
            continue;
        };
        for _ in 0..REPLICA_LOOKS_MAX {
            let Some((here, mine)) = replica.streams(verify.pattern, verify.keys_max).await? else {
                continue;
            };
            if here == at {
                let there = format!("at the source {} ({at})", source.endpoint());
                handoff::compare(&mine, &theirs)
                    .map_err(|m| format!("copy differs: {}", m.describe("here", &there)))?;
                tracing::info!(position = %at, streams = mine.len(), attempt, "copy verified");
                return Ok(());
            }
            if here.replid != at.replid || here.offset > at.offset {
                break;
            }
            tokio::time::sleep(REPLICA_LOOK_EVERY).await;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(format!(
        "could not compare streams at one replication position: the source {} kept moving \
         ({VERIFY_ATTEMPTS_MAX} attempts at most)",
        source.endpoint()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_or_say_why_not() {
        assert_eq!(split_endpoint("127.0.0.1:7001"), Ok(("127.0.0.1", 7001)));
        assert_eq!(split_endpoint("redis-a:6379"), Ok(("redis-a", 6379)));
        for bad in ["127.0.0.1", ":7001", "127.0.0.1:0", "127.0.0.1:x", ""] {
            let error = split_endpoint(bad).expect_err(bad);
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn the_booked_time_is_bytes_over_rate() {
        assert_eq!(booked_time(10_000_000, 5.0), Duration::from_secs(2));
        assert_eq!(booked_time(10_000_000, 0.0), Duration::ZERO, "unthrottled");
        assert_eq!(booked_time(10_000_000, f64::NAN), Duration::ZERO);
        assert_eq!(booked_time(u64::MAX, 1e-300), BOOKED_TIME_MAX, "bounded");
    }
}
