//! A replica's health, heat and endpoint, for the agent's reports: a probe of a few hundred
//! milliseconds at most, which never starts or changes anything.

use std::time::Duration;

use meridian_wire::Health;

use super::client::PROBE;
use super::info::Info;
use super::server::{Probe, Server};
use crate::actuator::Observation;

/// The whole observation, connection included.
const BUDGET: Duration = Duration::from_millis(800);

const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// - Serving: a master that takes writes (the leader), or a replica streaming from a leader
///   directly.
/// - Starting: loading its data; a fenced master (a new replica waiting for `follow`, or a
///   demoted leader not yet following its successor); a replica syncing, with its link down,
///   or copying through its relay.
/// - Failing: nothing answers, something else answers on its port, or no answer in time.
pub async fn observe(server: &Server) -> Observation {
    let endpoint = Some(server.endpoint());
    let observed = tokio::time::timeout(BUDGET, async {
        match server.probe(PROBE).await {
            Probe::Ready(mut client, info) => {
                let writable = if info.is_master() {
                    client.writable().await.ok()
                } else {
                    Some(false)
                };
                let health = writable.map_or(Health::Failing, |writable| {
                    health(&info, writable, server.relay_port)
                });
                (health, heat(&info))
            }
            Probe::Busy => (Health::Starting, Vec::new()),
            Probe::Foreign(_) | Probe::Unsupported(_) | Probe::Silent => {
                (Health::Failing, Vec::new())
            }
        }
    })
    .await;
    let (health, heat) = observed.unwrap_or((Health::Failing, Vec::new()));
    Observation {
        health,
        heat,
        endpoint,
    }
}

/// Health from what the server says (pure, for tests).
pub fn health(info: &Info, writable: bool, relay_port: Option<u16>) -> Health {
    if info.is_master() {
        return if writable {
            Health::Serving
        } else {
            Health::Starting
        };
    }
    let through_relay = relay_port.is_some_and(|relay| info.follows("127.0.0.1", relay));
    if info.streaming() && !through_relay {
        Health::Serving
    } else if info.is_replica() {
        Health::Starting
    } else {
        Health::Failing
    }
}

fn heat(info: &Info) -> Vec<(String, f64)> {
    info.number("used_memory")
        .map(|bytes| vec![("mem_gib".to_string(), bytes as f64 / BYTES_PER_GIB)])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(port: u16, link: &str, syncing: u8) -> Info {
        Info::parse(&format!(
            "role:slave\nmaster_host:127.0.0.1\nmaster_port:{port}\n\
             master_link_status:{link}\nmaster_sync_in_progress:{syncing}\n"
        ))
    }

    #[test]
    fn only_a_writable_master_or_a_directly_linked_replica_serves() {
        let master = Info::parse("role:master\nused_memory:1073741824\n");
        assert_eq!(health(&master, true, Some(7101)), Health::Serving);
        assert_eq!(health(&master, false, Some(7101)), Health::Starting);
        assert_eq!(heat(&master), vec![("mem_gib".to_string(), 1.0)]);
        assert_eq!(
            health(&replica(7001, "up", 0), false, Some(7101)),
            Health::Serving
        );
        assert_eq!(
            health(&replica(7001, "up", 1), false, None),
            Health::Starting
        );
        assert_eq!(
            health(&replica(7001, "down", 0), false, None),
            Health::Starting
        );
        assert_eq!(
            health(&replica(7101, "up", 0), false, Some(7101)),
            Health::Starting,
            "copying through its relay"
        );
        assert_eq!(health(&Info::default(), false, None), Health::Failing);
    }
}
