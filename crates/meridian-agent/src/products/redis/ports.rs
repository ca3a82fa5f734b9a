//! The relay's port: like the server's (`support::claim_port`), one per replica, kept in the
//! replica's directory so it survives restarts — but in its own file, `relay-port`.
//!
//! Why keep it: a replica whose copy was interrupted still has `REPLICAOF 127.0.0.1 <relay
//! port>` and keeps dialling it. Were that port handed to another replica's relay, this
//! replica would sync from the wrong partition and replace its data with it. So a relay port
//! belongs to one replica for the replica's whole life, and a claim skips every port another
//! replica under the agent's replicas directory holds, in either file.
//! (`support::claim_port` only looks at `port` files, so it cannot be reused for this.)

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::products::support::{PortRange, PORT_FILE};

pub const RELAY_PORT_FILE: &str = "relay-port";

/// The replica's relay port: the one it holds, else the first port of `range` that no
/// replica under `root` (`<root>/<group>/<partition>/{port,relay-port}`) holds and that is
/// free now. Callers serialize claims (two at once could pick the same port).
pub fn claim_relay_port(replica_dir: &Path, root: &Path, range: PortRange) -> io::Result<u16> {
    let file = replica_dir.join(RELAY_PORT_FILE);
    if let Some(port) = read_port(&file)? {
        return Ok(port);
    }
    let taken = ports_under(root)?;
    for port in range.first..=range.last {
        if taken.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        std::fs::create_dir_all(replica_dir)?;
        crate::durable::write_atomically(&file, port.to_string().as_bytes())
            .map_err(|e| io::Error::other(e.to_string()))?;
        return Ok(port);
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free relay port in {}..{} (every one is held by a replica or in use)",
            range.first, range.last
        ),
    ))
}

/// The port in `file`; `None` if there is none. One that does not parse is an error: a
/// guess could hand the port of a live relay to a second replica.
pub fn read_port(file: &Path) -> io::Result<Option<u16>> {
    match std::fs::read_to_string(file) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a port: {text:?}", file.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn ports_under(root: &Path) -> io::Result<Vec<u16>> {
    let mut ports = Vec::new();
    for group in subdirectories(root)? {
        for replica in subdirectories(&group)? {
            for name in [PORT_FILE, RELAY_PORT_FILE] {
                if let Ok(Some(port)) = read_port(&replica.join(name)) {
                    ports.push(port);
                }
            }
        }
    }
    Ok(ports)
}

fn subdirectories(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_keeps_its_relay_port_and_no_other_replica_gets_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let range = PortRange {
            first: 30_000,
            last: 60_000,
        };
        let dir = |name: &str| root.path().join("events").join(name);
        let a = claim_relay_port(&dir("0"), root.path(), range).expect("a");
        let b = claim_relay_port(&dir("1"), root.path(), range).expect("b");
        assert_ne!(
            a, b,
            "a held port is skipped even while nothing listens on it"
        );
        assert_eq!(
            claim_relay_port(&dir("0"), root.path(), range).expect("again"),
            a
        );
        // A server port held by another replica is skipped too.
        std::fs::create_dir_all(dir("2")).expect("dir");
        std::fs::write(dir("2").join(PORT_FILE), (b + 1).to_string()).expect("port");
        let only = PortRange {
            first: b + 1,
            last: b + 1,
        };
        let error = claim_relay_port(&dir("3"), root.path(), only).expect_err("taken");
        assert!(error.to_string().contains("no free relay port"), "{error}");
    }

    #[test]
    fn a_corrupt_port_file_is_an_error_not_a_guess() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("events").join("0");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(RELAY_PORT_FILE), "seventy").expect("write");
        let range = PortRange {
            first: 30_000,
            last: 30_100,
        };
        let error = claim_relay_port(&dir, root.path(), range).expect_err("corrupt");
        assert!(error.to_string().contains("not a port"), "{error}");
    }
}
