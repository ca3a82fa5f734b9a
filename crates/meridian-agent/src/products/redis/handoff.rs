//! What a demoted leader hands to its successor, and how two servers' streams are compared.
//!
//! The handoff is the old leader's replication position when its writes stopped (replication
//! id and offset) plus every verified stream's length and last entry id at that moment. The
//! successor first waits until its own position reaches the offset in the same history —
//! Redis's own proof that it applied every write the old leader acknowledged — then checks
//! the streams, a product-level cross-check that catches a replica fed from the wrong
//! history. Pure: the waiting and asking live in `leadership.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::info::Position;

/// A key as Redis stores it (binary-safe). In JSON it is its text when that is UTF-8 and
/// does not itself start with the escape, else `hex:` and its bytes in hex — lossless both
/// ways, so a partition with binary key names can still be handed off.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey(pub Vec<u8>);

const HEX_PREFIX: &str = "hex:";

impl StreamKey {
    fn encode(&self) -> String {
        match std::str::from_utf8(&self.0) {
            Ok(text) if !text.starts_with(HEX_PREFIX) => text.to_string(),
            _ => {
                let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
                format!("{HEX_PREFIX}{hex}")
            }
        }
    }

    fn decode(text: &str) -> Result<StreamKey, String> {
        let Some(hex) = text.strip_prefix(HEX_PREFIX) else {
            return Ok(StreamKey(text.as_bytes().to_vec()));
        };
        if hex.len() % 2 != 0 || !hex.is_ascii() {
            return Err(format!("key `{text}`: odd or non-ASCII hex"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map(StreamKey)
            .map_err(|_| format!("key `{text}`: not hex"))
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl Serialize for StreamKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for StreamKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StreamKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        StreamKey::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// A stream's length and last entry id (`None` when it has no entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamTip {
    pub length: u64,
    pub last_id: Option<String>,
}

impl fmt::Display for StreamTip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.last_id.as_deref().unwrap_or("none");
        write!(f, "length {}, last id {last}", self.length)
    }
}

/// Every verified stream of a server, by key.
pub type Streams = BTreeMap<StreamKey, StreamTip>;

/// Where the old leader stopped taking writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    pub replid: String,
    pub offset: u64,
    pub streams: Streams,
}

impl Handoff {
    pub fn position(&self) -> Position {
        Position {
            replid: self.replid.clone(),
            offset: self.offset,
        }
    }

    /// The compact JSON the controller carries to the promotion.
    pub fn encode(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("encoding the handoff: {e}"))
    }

    pub fn decode(text: &str) -> Result<Handoff, String> {
        let handoff: Handoff =
            serde_json::from_str(text).map_err(|e| format!("handoff `{text}`: {e}"))?;
        if handoff.replid.is_empty() || !handoff.replid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("handoff `{text}`: replid is not a replication id"));
        }
        Ok(handoff)
    }
}

/// The handoff as the demotion persisted it in the replica's directory, with the transition
/// it belongs to: a repeat of that transition returns it unchanged, a later demotion (the
/// replica led again meanwhile) computes its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffRecord {
    pub transition: String,
    pub handoff: Handoff,
}

/// The first stream that differs between two servers, with both sides' view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub key: StreamKey,
    pub ours: Option<StreamTip>,
    pub theirs: Option<StreamTip>,
}

impl Mismatch {
    /// E.g. ``stream `events`: length 9, last id 1-9 here; length 10, last id 1-10 on the source``.
    pub fn describe(&self, here: &str, there: &str) -> String {
        let side = |tip: &Option<StreamTip>| match tip {
            Some(tip) => tip.to_string(),
            None => "absent".to_string(),
        };
        format!(
            "stream `{}`: {} {here}; {} {there}",
            self.key,
            side(&self.ours),
            side(&self.theirs)
        )
    }
}

/// Compares every stream either side has, in key order: a stream one side lacks differs.
pub fn compare(ours: &Streams, theirs: &Streams) -> Result<(), Mismatch> {
    let keys: std::collections::BTreeSet<&StreamKey> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let (mine, other) = (ours.get(key), theirs.get(key));
        if mine != other {
            return Err(Mismatch {
                key: key.clone(),
                ours: mine.cloned(),
                theirs: other.cloned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(length: u64, last: &str) -> StreamTip {
        StreamTip {
            length,
            last_id: Some(last.into()),
        }
    }

    fn streams(entries: &[(&[u8], StreamTip)]) -> Streams {
        entries
            .iter()
            .map(|(key, tip)| (StreamKey(key.to_vec()), tip.clone()))
            .collect()
    }

    #[test]
    fn a_handoff_round_trips_through_json_binary_keys_included() {
        let handoff = Handoff {
            replid: "6bddb2f63c010f461442c15720459f6b3395ff76".into(),
            offset: 4242,
            streams: streams(&[
                (b"events", tip(10, "1700000000000-3")),
                (b"\xff\x00raw", tip(1, "1-1")),
                (b"hex:looks-escaped", tip(0, "0-1")),
            ]),
        };
        let text = handoff.encode().expect("encodes");
        assert!(text.contains("\"events\""), "{text}");
        assert!(text.contains("hex:ff00726177"), "{text}");
        assert_eq!(Handoff::decode(&text).expect("decodes"), handoff);
        let empty = StreamTip {
            length: 0,
            last_id: None,
        };
        assert_eq!(empty.to_string(), "length 0, last id none");
    }

    #[test]
    fn a_bad_handoff_is_an_error_naming_it() {
        for text in [
            "",
            "{}",
            r#"{"replid":"","offset":1,"streams":{}}"#,
            r#"{"replid":"zz","offset":1,"streams":{}}"#,
            r#"{"replid":"ab","offset":-1,"streams":{}}"#,
            r#"{"replid":"ab","offset":1,"streams":{"hex:f":{"length":1,"last_id":null}}}"#,
            r#"{"replid":"ab","offset":1,"streams":{},"extra":1}"#,
        ] {
            let error = Handoff::decode(text).expect_err(text);
            assert!(error.starts_with("handoff `"), "{error}");
        }
    }

    #[test]
    fn a_comparison_names_the_first_differing_stream_and_both_sides() {
        let here = streams(&[(b"a", tip(3, "1-3")), (b"b", tip(2, "1-2"))]);
        assert_eq!(compare(&here, &here.clone()), Ok(()));
        let there = streams(&[(b"a", tip(3, "1-3")), (b"b", tip(3, "1-5"))]);
        let mismatch = compare(&here, &there).expect_err("b differs");
        assert_eq!(
            mismatch.describe("here", "on the old leader"),
            "stream `b`: length 2, last id 1-2 here; length 3, last id 1-5 on the old leader"
        );
        let missing = streams(&[(b"a", tip(3, "1-3"))]);
        let mismatch = compare(&missing, &here).expect_err("b is missing here");
        assert_eq!(mismatch.ours, None);
        assert!(mismatch.describe("x", "y").contains("absent x"));
    }
}
