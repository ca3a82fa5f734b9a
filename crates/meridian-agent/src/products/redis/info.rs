//! What `INFO` says, parsed: roles, links, replication positions, connected replicas. Pure,
//! so every decision the actuator takes on a server's state is unit-tested here.

use std::collections::BTreeMap;

/// One `INFO` answer (any sections), as `field → value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info(BTreeMap<String, String>);

/// A point in a replication history: Redis offsets only compare within one replication id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub replid: String,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.replid, self.offset)
    }
}

/// A replica connected to a master, from its `slaveN:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedReplica {
    pub ip: String,
    pub port: u16,
    /// `online` once past its initial sync (`wait_bgsave`, `send_bulk` before).
    pub state: String,
    /// The offset it last acknowledged (`REPLCONF ACK`, about once a second).
    pub offset: u64,
}

impl Info {
    pub fn parse(text: &str) -> Info {
        Info(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .filter_map(|line| line.split_once(':'))
                .map(|(field, value)| (field.to_string(), value.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// A non-negative number; `None` if absent or not one (`second_repl_offset:-1`).
    pub fn number(&self, field: &str) -> Option<u64> {
        self.get(field)?.parse().ok()
    }

    /// `redis_version` as (major, minor).
    pub fn version(&self) -> Option<(u32, u32)> {
        let mut parts = self.get("redis_version")?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    pub fn is_master(&self) -> bool {
        self.get("role") == Some("master")
    }

    pub fn is_replica(&self) -> bool {
        self.get("role") == Some("slave")
    }

    /// The master a replica is told to follow (`REPLICAOF host port`), linked or not.
    pub fn master(&self) -> Option<(&str, u16)> {
        if !self.is_replica() {
            return None;
        }
        let port = self.get("master_port")?.parse().ok()?;
        Some((self.get("master_host")?, port))
    }

    pub fn follows(&self, host: &str, port: u16) -> bool {
        self.master() == Some((host, port))
    }

    /// A replica whose link is up and past its initial sync: it applies the master's stream.
    pub fn streaming(&self) -> bool {
        self.is_replica()
            && self.get("master_link_status") == Some("up")
            && self.get("master_sync_in_progress") == Some("0")
    }

    /// Still loading its append-only file (or a received snapshot): answers only a few
    /// commands.
    pub fn loading(&self) -> bool {
        self.get("loading") == Some("1")
    }

    /// Where this server is in its replication history: its current replication id and the
    /// offset it has applied (a replica's `master_repl_offset` is what it applied and fed on).
    pub fn position(&self) -> Option<Position> {
        Some(Position {
            replid: self.get("master_replid")?.to_string(),
            offset: self.number("master_repl_offset")?,
        })
    }

    /// The history it continued from when it was promoted (`REPLICAOF NO ONE` keeps the old
    /// id as `master_replid2`, valid up to `second_repl_offset - 1`).
    pub fn previous_position(&self) -> Option<Position> {
        let replid = self.get("master_replid2")?;
        let accepted_below = self.number("second_repl_offset")?;
        if replid.bytes().all(|b| b == b'0') || accepted_below == 0 {
            return None;
        }
        Some(Position {
            replid: replid.to_string(),
            offset: accepted_below - 1,
        })
    }

    /// Whether this server holds everything up to `target` of `target`'s history.
    pub fn reaches(&self, target: &Position) -> bool {
        [self.position(), self.previous_position()]
            .into_iter()
            .flatten()
            .any(|own| own.replid == target.replid && own.offset >= target.offset)
    }

    /// The replicas a master streams to.
    pub fn replicas(&self) -> Vec<ConnectedReplica> {
        self.0
            .iter()
            .filter(|(field, _)| {
                field
                    .strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .filter_map(|(_, value)| parse_replica(value))
            .collect()
    }
}

fn parse_replica(value: &str) -> Option<ConnectedReplica> {
    let fields: BTreeMap<&str, &str> = value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    Some(ConnectedReplica {
        ip: fields.get("ip")?.to_string(),
        port: fields.get("port")?.parse().ok()?,
        state: fields.get("state")?.to_string(),
        offset: fields.get("offset")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=7001,state=online,offset=420,lag=0\r\n\
        slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
        master_failover_state:no-failover\r\n\
        master_replid:cfae9570a812ee9d0fad8f50c0de3e99c4b4e4d7\r\n\
        master_replid2:6bddb2f63c010f461442c15720459f6b3395ff76\r\n\
        master_repl_offset:420\r\nsecond_repl_offset:348\r\n\r\n# Stats\r\nsync_full:1\r\n";

    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
        master_port:7100\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n\
        slave_repl_offset:300\r\nmaster_replid:6bddb2f63c010f461442c15720459f6b3395ff76\r\n\
        master_replid2:0000000000000000000000000000000000000000\r\n\
        master_repl_offset:300\r\nsecond_repl_offset:-1\r\n";

    #[test]
    fn a_master_lists_its_replicas_and_positions() {
        let info = Info::parse(MASTER);
        assert!(info.is_master() && !info.is_replica());
        assert_eq!(info.number("sync_full"), Some(1));
        let replicas = info.replicas();
        assert_eq!(replicas.len(), 2, "connected_slaves is not a replica line");
        assert_eq!(replicas[0].port, 7001);
        assert_eq!(replicas[0].offset, 420);
        assert_eq!(replicas[1].state, "wait_bgsave");
        assert_eq!(info.master(), None, "a master follows nobody");
        let position = info.position().expect("position");
        assert_eq!(position.offset, 420);
        let previous = info.previous_position().expect("promoted once");
        assert_eq!(previous.offset, 347);
    }

    #[test]
    fn a_replica_knows_its_master_and_link() {
        let info = Info::parse(REPLICA);
        assert_eq!(info.master(), Some(("127.0.0.1", 7100)));
        assert!(info.follows("127.0.0.1", 7100));
        assert!(!info.follows("127.0.0.1", 7101));
        assert!(info.streaming());
        assert_eq!(info.previous_position(), None, "no earlier history");
        let syncing = Info::parse(&REPLICA.replace("sync_in_progress:0", "sync_in_progress:1"));
        assert!(!syncing.streaming());
        let down = Info::parse(&REPLICA.replace("status:up", "status:down"));
        assert!(!down.streaming());
    }

    #[test]
    fn positions_compare_within_one_history_only() {
        let replica = Info::parse(REPLICA);
        let history = "6bddb2f63c010f461442c15720459f6b3395ff76".to_string();
        let at = |replid: &str, offset| Position {
            replid: replid.into(),
            offset,
        };
        assert!(replica.reaches(&at(&history, 300)));
        assert!(replica.reaches(&at(&history, 12)));
        assert!(!replica.reaches(&at(&history, 301)), "short of it");
        assert!(!replica.reaches(&at("another", 1)), "another history");
        // Promoted at 347: it holds the old history up to there, not beyond.
        let promoted = Info::parse(MASTER);
        assert!(promoted.reaches(&at(&history, 347)));
        assert!(!promoted.reaches(&at(&history, 348)));
        assert!(promoted.reaches(&at("cfae9570a812ee9d0fad8f50c0de3e99c4b4e4d7", 420)));
    }

    #[test]
    fn versions_compare_by_major_then_minor() {
        let version = |text: &str| Info::parse(&format!("redis_version:{text}\n")).version();
        assert_eq!(version("7.0.15"), Some((7, 0)));
        assert!(version("6.2.14") < Some((7, 0)));
        assert!(version("10.0.0") > Some((7, 0)));
        assert_eq!(version("seven"), None);
        assert_eq!(Info::default().version(), None);
    }

    #[test]
    fn garbage_parses_to_nothing_rather_than_failing() {
        let info = Info::parse("no colon here\n:\nrole\nmaster_repl_offset:x\n");
        assert_eq!(info.position(), None);
        assert!(!info.is_master() && !info.is_replica());
        assert_eq!(info.number("master_repl_offset"), None);
        assert!(Info::parse("slave0:ip=1,port=x,state=online,offset=1\n")
            .replicas()
            .is_empty());
    }
}
