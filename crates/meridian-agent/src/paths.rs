//! Where a replica's files live, and names made safe for paths and URLs.
//!
//! Group names come from the fleet file and may hold any character, so they are
//! percent-encoded before they become a path component: the encoding is injective (two
//! groups never share a directory) and can never produce `.`, `..` or a `/`.

use std::path::{Path, PathBuf};

use meridian_wire::ReplicaKey;

/// `name` as one path component or URL path segment: ASCII letters, digits, `_`, `-` and
/// non-leading `.` are kept, every other byte becomes `%XX`.
pub fn encode_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (index, byte) in name.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric()
            || byte == b'_'
            || byte == b'-'
            || (byte == b'.' && index > 0);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The directory a replica's data lives in: `<replicas_dir>/<group>/<partition>`.
pub fn replica_dir(replicas_dir: &Path, replica: &ReplicaKey) -> PathBuf {
    debug_assert!(
        !replica.group.is_empty(),
        "intake refuses empty group names"
    );
    replicas_dir
        .join(encode_component(&replica.group))
        .join(replica.partition.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_encoded() {
        assert_eq!(encode_component("orders"), "orders");
        assert_eq!(encode_component("a.b-c_d"), "a.b-c_d");
        assert_eq!(encode_component(".."), "%2E.");
        assert_eq!(encode_component("a/b"), "a%2Fb");
        assert_eq!(
            encode_component("a%2Fb"),
            "a%252Fb",
            "the escape itself is escaped"
        );
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn replica_dirs_nest_group_then_partition() {
        let replica = ReplicaKey {
            group: "orders".into(),
            partition: 3,
        };
        assert_eq!(
            replica_dir(Path::new("/data"), &replica),
            PathBuf::from("/data/orders/3")
        );
    }
}
