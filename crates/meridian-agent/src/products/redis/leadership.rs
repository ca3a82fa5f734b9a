//! Hand-offs and links: demoting a leader (fence, record where it stopped), promoting a
//! replica (prove it has everything, then take writes), and pointing a replica at its
//! leader.
//!
//! The fence is the `default` user's write permission (`ACL SETUSER default -@write`),
//! not the replication role — see the module documentation of `redis` for why.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Client, Command, PROBE};
use super::copy::Verify;
use super::handoff::{self, Handoff, HandoffRecord, Streams};
use super::info::{Info, Position};

const POLL: Duration = Duration::from_millis(50);
/// Snapshots tried on a fenced server (only the master's periodic `PING` moves it).
const SNAPSHOT_ATTEMPTS_MAX: usize = 20;

/// Fences the leader and records where its writes stopped.
///
/// Order: `CLIENT PAUSE WRITE` (writes in flight wait; key expiry and eviction stop, so the
/// snapshot below is of one state), then the fence (from here on no client write is ever
/// executed, whenever it arrives, and a restart keeps it), then the position and streams,
/// persisted in `record` for a repeat of this transition, then `CLIENT UNPAUSE` (the writes
/// that waited are refused by the fence). Then, best effort, until the connected replicas
/// acknowledge the final offset: the promotion waits for its own replica anyway, and the
/// fenced old leader keeps streaming to replicas until they follow the new one, so a slow
/// replica delays a promotion, never loses a write.
pub async fn demote(
    client: &mut Client,
    info: &Info,
    record: (&Path, &str),
    verify: Verify<'_>,
    pause: Duration,
) -> Result<Handoff, String> {
    if let Some((host, port)) = info.master() {
        return Err(format!(
            "{} is a replica of {host}:{port}, not a leader: it has no handoff to give",
            client.endpoint()
        ));
    }
    let pause_ms = pause.as_millis().max(1);
    client
        .query::<()>(&Command::new("CLIENT PAUSE").arg(pause_ms).arg("WRITE"))
        .await?;
    let fenced = fence_and_snapshot(client, verify).await;
    let persisted = fenced.and_then(|handoff| {
        let (path, transition) = record;
        persist(path, transition, &handoff).map(|()| handoff)
    });
    // Unpaused whatever happened: the pause also times out by itself.
    let unpaused = client.query::<()>(&Command::new("CLIENT UNPAUSE")).await;
    let handoff = persisted?;
    if let Err(e) = unpaused {
        tracing::warn!("{e} (the pause ends by itself within {pause_ms} ms)");
    }
    wait_for_acknowledgements(client, handoff.offset, pause).await?;
    Ok(handoff)
}

async fn fence_and_snapshot(client: &mut Client, verify: Verify<'_>) -> Result<Handoff, String> {
    client.fence().await?;
    let (position, streams) = stable_streams(client, verify).await?;
    Ok(Handoff {
        replid: position.replid,
        offset: position.offset,
        streams,
    })
}

/// A snapshot of a server nobody writes to.
async fn stable_streams(
    client: &mut Client,
    verify: Verify<'_>,
) -> Result<(Position, Streams), String> {
    for _ in 0..SNAPSHOT_ATTEMPTS_MAX {
        if let Some(snapshot) = client.streams(verify.pattern, verify.keys_max).await? {
            return Ok(snapshot);
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!(
        "{}: its replication position kept moving while its streams were read, though \
         nobody may write to it",
        client.endpoint()
    ))
}

fn persist(path: &Path, transition: &str, handoff: &Handoff) -> Result<(), String> {
    let record = HandoffRecord {
        transition: transition.to_string(),
        handoff: handoff.clone(),
    };
    let json = serde_json::to_vec(&record).map_err(|e| format!("encoding the handoff: {e}"))?;
    crate::durable::write_atomically(path, &json).map_err(|e| e.to_string())
}

/// The handoff a run of `transition` persisted, if any.
pub fn recorded(path: &Path, transition: &str) -> Result<Option<Handoff>, String> {
    let record: Option<HandoffRecord> =
        crate::durable::read_json(path).map_err(|e| e.to_string())?;
    Ok(record
        .filter(|record| record.transition == transition)
        .map(|record| record.handoff))
}

/// Waits (bounded) until every online replica acknowledged `offset`; a timeout is logged,
/// not an error (see [`demote`]).
async fn wait_for_acknowledgements(
    client: &mut Client,
    offset: u64,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = client.info("replication").await?;
        let behind: Vec<String> = info
            .replicas()
            .into_iter()
            .filter(|replica| replica.state == "online" && replica.offset < offset)
            .map(|replica| format!("{}:{} at {}", replica.ip, replica.port, replica.offset))
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                leader = client.endpoint(), offset, behind = %behind.join(", "),
                "replicas did not acknowledge the final offset in time; the promotion waits"
            );
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Makes the replica the leader: with a handoff, only once it holds everything up to it
/// (same replication history, offset at least the handoff's) and its streams match the
/// handoff's. Without one (the old leader is taken for dead), see [`check_master_gone`].
/// Then `REPLICAOF NO ONE` and the fence lifted, in that order: a crash in between leaves a
/// fenced master, which a repeat finishes (its old history, kept as `replid2`, still proves
/// the handoff).
pub async fn promote(
    client: &mut Client,
    info: &Info,
    handoff: Option<&str>,
    verify: Verify<'_>,
    catch_up_timeout: Duration,
) -> Result<(), String> {
    if info.is_master() && client.writable().await? {
        return Ok(());
    }
    if let Some(text) = handoff {
        let handoff = Handoff::decode(text)?;
        wait_to_reach(
            client,
            &handoff.position(),
            "the old leader's handoff",
            catch_up_timeout,
        )
        .await?;
        let (_, streams) = stable_streams(client, verify).await?;
        handoff::compare(&streams, &handoff.streams).map_err(|mismatch| {
            format!(
                "refusing to promote {}: {}",
                client.endpoint(),
                mismatch.describe("here", "in the old leader's handoff")
            )
        })?;
    }
    if let (None, Some((host, port))) = (handoff, info.master()) {
        check_master_gone(client, &format!("{host}:{port}"), catch_up_timeout).await?;
    }
    if info.is_replica() {
        client.follow_nobody().await?;
    }
    client.unfence().await
}

/// A promotion without a handoff is for a leader that died. If the replica's master still
/// answers, it did not: one that takes writes would make two leaders, so the promotion is
/// refused; a fenced one (a demotion whose handoff was lost) gives its position, which the
/// replica must reach first. Only a master that does not answer is taken for gone, and
/// the replica promoted with what it has.
async fn check_master_gone(
    client: &mut Client,
    master: &str,
    catch_up_timeout: Duration,
) -> Result<(), String> {
    let Ok(mut old) = Client::connect(master, PROBE).await else {
        return Ok(());
    };
    let Ok(info) = old.info("replication").await else {
        return Ok(());
    };
    // Not knowing is not "no": an answering master whose fence cannot be read is refused.
    let writable = old.writable().await.map_err(|e| {
        format!(
            "refusing to promote {} without a handoff: its master {master} answers, and \
             whether it takes writes is unknown ({e})",
            client.endpoint()
        )
    })?;
    if info.is_master() && writable {
        return Err(format!(
            "refusing to promote {} without a handoff: its master {master} is alive and takes \
             writes (two leaders); demote it first",
            client.endpoint()
        ));
    }
    let Some(target) = info.position() else {
        return Ok(());
    };
    let what = format!("its fenced master {master}");
    wait_to_reach(client, &target, &what, catch_up_timeout).await
}

async fn wait_to_reach(
    client: &mut Client,
    target: &Position,
    what: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = client.info("replication").await?;
        if info.reaches(target) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let here = info.position().map_or("unknown".into(), |p| p.to_string());
            let master = info
                .master()
                .map_or("nobody".into(), |(host, port)| format!("{host}:{port}"));
            return Err(format!(
                "refusing to promote {}: after {timeout:?} it is at {here} (following \
                 {master}, link {}), short of {what} at {target}",
                client.endpoint(),
                info.get("master_link_status").unwrap_or("none")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Points a non-leader at `host:port`. Refuses a writable server (a leader is demoted
/// first: following would discard its writes with a full sync) and a replica whose copy
/// through its relay is unfinished (the copy's repeat finishes it, at the booked rate).
pub async fn follow(
    client: &mut Client,
    info: &Info,
    (host, port): (&str, u16),
    relay_port: Option<u16>,
) -> Result<(), String> {
    let writable = client.writable().await?;
    if info.follows(host, port) && !writable {
        return Ok(());
    }
    if let Some(relay) = relay_port.filter(|&relay| info.follows("127.0.0.1", relay)) {
        return Err(format!(
            "{} copies through its relay (127.0.0.1:{relay}): its copy is unfinished, and a \
             repeat of the copy finishes it at the booked rate",
            client.endpoint()
        ));
    }
    if writable && info.is_master() {
        return Err(format!(
            "{} takes writes (a leader): refusing to make it follow {host}:{port} before it is \
             demoted",
            client.endpoint()
        ));
    }
    if writable {
        client.fence().await?;
    }
    client.follow(host, port).await
}
