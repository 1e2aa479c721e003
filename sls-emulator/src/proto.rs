//! The Log Service protobuf messages (protocol notes §4.1), written by hand with `prost`
//! derives so no `protoc`/`build.rs` is needed.
//!
//! Keys and values are declared as `bytes`, not `string`: production data can hold
//! non-UTF-8 values and the emulator must store and return whatever a writer sent, byte for
//! byte. The wire encoding is identical either way.
//!
//! Stored log groups are kept as the encoded `LogGroup` bytes the writer sent; a PullLogs
//! body is built by [`append_group_to_list`] without decoding them again.

use prost::Message;

/// One key/value pair of a log (`Log.Content`).
#[derive(Clone, PartialEq, Message)]
pub struct Content {
    /// Field name.
    #[prost(bytes = "vec", required, tag = "1")]
    pub key: Vec<u8>,
    /// Field value.
    #[prost(bytes = "vec", required, tag = "2")]
    pub value: Vec<u8>,
}

/// One log (`Log`).
#[derive(Clone, PartialEq, Message)]
pub struct Log {
    /// Log time, unix seconds (`__time__`).
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// Ordered key/value pairs.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// Nanosecond part of the time (0–999 999 999).
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// A group-level tag (`LogTag`); the key has no `__tag__:` prefix.
#[derive(Clone, PartialEq, Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(bytes = "vec", required, tag = "1")]
    pub key: Vec<u8>,
    /// Tag value.
    #[prost(bytes = "vec", required, tag = "2")]
    pub value: Vec<u8>,
}

/// A log group (`LogGroup`): the unit PutLogs writes and a cursor counts.
#[derive(Clone, PartialEq, Message)]
pub struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// Internal field, normally unset.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub reserved: Option<Vec<u8>>,
    /// `__topic__`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub topic: Option<Vec<u8>>,
    /// `__source__`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub source: Option<Vec<u8>>,
    /// Machine UUID, normally unset.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub machine_uuid: Option<Vec<u8>>,
    /// Group-level tags.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// A list of log groups (`LogGroupList`): the PullLogs body, and the body of a JS
/// `batch_group` PutLogs.
#[derive(Clone, PartialEq, Message)]
pub struct LogGroupList {
    /// The groups, oldest first.
    #[prost(message, repeated, tag = "1")]
    pub log_groups: Vec<LogGroup>,
}

/// Appends one already-encoded `LogGroup` to a `LogGroupList` being built in `out`
/// (field 1, length-delimited), so stored groups are sent without re-encoding.
pub fn append_group_to_list(out: &mut Vec<u8>, encoded_group: &[u8]) {
    out.push(0x0a);
    prost::encoding::encode_varint(encoded_group.len() as u64, out);
    out.extend_from_slice(encoded_group);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> LogGroup {
        LogGroup {
            logs: vec![Log {
                time: 1_700_000_000,
                contents: vec![Content {
                    key: b"k".to_vec(),
                    value: b"v\xff".to_vec(),
                }],
                time_ns: Some(5),
            }],
            topic: Some(b"t".to_vec()),
            log_tags: vec![LogTag {
                key: b"__hostname__".to_vec(),
                value: b"h".to_vec(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn list_built_from_encoded_groups_decodes_to_the_same_groups() {
        let g = group();
        let mut body = Vec::new();
        append_group_to_list(&mut body, &g.encode_to_vec());
        append_group_to_list(&mut body, &g.encode_to_vec());
        let list = LogGroupList::decode(body.as_slice()).expect("valid list");
        assert_eq!(list.log_groups, vec![g.clone(), g]);
    }

    #[test]
    fn time_ns_is_fixed32_on_the_wire() {
        let log = Log {
            time: 1,
            contents: vec![],
            time_ns: Some(7),
        };
        // field 1 varint (08 01), field 4 fixed32 (25 07 00 00 00)
        assert_eq!(log.encode_to_vec(), vec![0x08, 0x01, 0x25, 7, 0, 0, 0]);
    }

    #[test]
    fn non_utf8_values_survive() {
        let g = group();
        let back = LogGroup::decode(g.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back.logs[0].contents[0].value, b"v\xff");
    }
}
