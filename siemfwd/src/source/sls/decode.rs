//! PullLogs bodies: decompression (protocol notes §2.4) and a borrowing
//! protobuf reader for `LogGroupList` (§4.1) that turns each log into a
//! [`Record`] whose keys and values point into the decompressed buffer.
//!
//! Why hand-written: the schema is four small messages, the values must stay
//! bytes (production data carries invalid UTF-8, §4.1; the Rust SDK rejects a
//! whole response for one bad value), and the hot path must not allocate per
//! field. The reader skips unknown fields, checks every length against the
//! buffer, and returns an error — never panics — on malformed input (a
//! property test feeds it random bytes).
//!
//! Field order of a record mirrors the Python SDK's flattening (§4.2):
//! `__topic__`, `__source__` (both always present, empty when unset), then
//! `__tag__:{key}` per group tag, then the log's contents in order. Unlike
//! the Python dict, duplicate keys are kept, and `__time__`/`__time_ns_part__`
//! go into the record's time instead of fields.

use std::borrow::Cow;

use crate::record::{reserved, Field, LogTime, Record};
use crate::source::Flow;

/// The largest decompressed body accepted: the server caps a pull at 1000 log
/// groups of at most 5 MiB each; a bigger claim is a corrupt header, and we
/// must not allocate whatever a header says.
pub const MAX_RAW_SIZE: usize = 1 << 30;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decompression failed or gave the wrong size.
    #[error("{0} body: {1}")]
    Decompress(&'static str, String),
    /// `x-log-compresstype` names a format we did not ask for.
    #[error("unsupported x-log-compresstype {0:?}")]
    UnknownCompression(String),
    /// The protobuf is malformed at byte `at`.
    #[error("malformed LogGroupList at byte {at}: {what}")]
    Protobuf {
        /// Offset in the decompressed body.
        at: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// Decompress `body` into `out` (cleared first; its allocation is reused).
///
/// # Errors
/// Corrupt data, a size other than `raw_size`, or an unknown format.
pub fn decompress(
    compress_type: &str,
    raw_size: usize,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.clear();
    if raw_size > MAX_RAW_SIZE {
        return Err(DecodeError::Decompress(
            "any",
            format!("x-log-bodyrawsize {raw_size} is larger than {MAX_RAW_SIZE}"),
        ));
    }
    match compress_type {
        "" => out.extend_from_slice(body),
        "lz4" => {
            // A raw LZ4 block: no frame, no size prefix (§2.4).
            out.resize(raw_size, 0);
            let n = lz4_flex::block::decompress_into(body, out)
                .map_err(|e| DecodeError::Decompress("lz4", e.to_string()))?;
            out.truncate(n);
        }
        "zstd" => {
            out.reserve(raw_size);
            let mut d = zstd::bulk::Decompressor::new()
                .map_err(|e| DecodeError::Decompress("zstd", e.to_string()))?;
            d.decompress_to_buffer(body, out)
                .map_err(|e| DecodeError::Decompress("zstd", e.to_string()))?;
        }
        other => return Err(DecodeError::UnknownCompression(other.to_owned())),
    }
    if out.len() != raw_size {
        return Err(DecodeError::Decompress(
            if compress_type.is_empty() {
                "uncompressed"
            } else if compress_type == "lz4" {
                "lz4"
            } else {
                "zstd"
            },
            format!("{} bytes, x-log-bodyrawsize says {raw_size}", out.len()),
        ));
    }
    Ok(())
}

/// A protobuf wire reader over a borrowed buffer.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` within the whole body, for error messages.
    base: usize,
}

/// One field's value as it is on the wire.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8], usize),
    Other,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Protobuf {
            at: self.base + self.pos,
            what,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("length runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field: its number and value.
    fn field(&mut self) -> Result<(u64, Value<'a>), DecodeError> {
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let len =
                    usize::try_from(self.varint()?).map_err(|_| self.err("length too large"))?;
                let at = self.base + self.pos;
                Value::Bytes(self.take(len)?, at)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return Err(self.err("unsupported wire type")),
        };
        Ok((number, value))
    }
}

/// Where to continue in a body whose visit was paused by [`Flow::Full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resume {
    /// Byte offset of the next log group's field in the list.
    group_at: usize,
    /// Logs of that group already visited.
    logs_done: usize,
}

/// How a visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Every log was visited.
    Done {
        /// Logs visited in this call.
        records: usize,
    },
    /// The visitor said [`Flow::Full`]; continue from here.
    Paused {
        /// Logs visited in this call.
        records: usize,
        /// Where to go on.
        resume: Resume,
    },
}

/// Metadata of one log group, borrowed.
struct GroupMeta<'a> {
    topic: &'a [u8],
    source: &'a [u8],
    tags: Vec<(Vec<u8>, &'a [u8])>,
}

fn group_meta(group: &[u8], base: usize) -> Result<GroupMeta<'_>, DecodeError> {
    let mut meta = GroupMeta {
        topic: b"",
        source: b"",
        tags: Vec::new(),
    };
    let mut r = Reader::new(group, base);
    while !r.done() {
        match r.field()? {
            (3, Value::Bytes(b, _)) => meta.topic = b,
            (4, Value::Bytes(b, _)) => meta.source = b,
            (6, Value::Bytes(tag, at)) => {
                let (mut k, mut v): (&[u8], &[u8]) = (b"", b"");
                let mut t = Reader::new(tag, at);
                while !t.done() {
                    match t.field()? {
                        (1, Value::Bytes(b, _)) => k = b,
                        (2, Value::Bytes(b, _)) => v = b,
                        _ => {}
                    }
                }
                let mut key = Vec::with_capacity(reserved::TAG_PREFIX.len() + k.len());
                key.extend_from_slice(reserved::TAG_PREFIX);
                key.extend_from_slice(k);
                meta.tags.push((key, v));
            }
            _ => {}
        }
    }
    Ok(meta)
}

/// Decode one `Log` into `record` (fields appended after the metadata).
fn decode_log<'a>(log: &'a [u8], base: usize, record: &mut Record<'a>) -> Result<(), DecodeError> {
    let mut secs = 0u64;
    let mut nanos = 0u32;
    let mut r = Reader::new(log, base);
    while !r.done() {
        match r.field()? {
            (1, Value::Varint(t)) => secs = t,
            (4, Value::Fixed32(ns)) => nanos = ns,
            (2, Value::Bytes(content, at)) => {
                let (mut k, mut v): (&[u8], &[u8]) = (b"", b"");
                let mut c = Reader::new(content, at);
                while !c.done() {
                    match c.field()? {
                        (1, Value::Bytes(b, _)) => k = b,
                        (2, Value::Bytes(b, _)) => v = b,
                        _ => {}
                    }
                }
                record.fields.push(Field::borrowed(k, v));
            }
            _ => {}
        }
    }
    // `Time` is a uint32; a nanosecond part out of range is dropped rather
    // than failing the log.
    let secs = i64::try_from(secs & u64::from(u32::MAX)).unwrap_or(0);
    record.time = LogTime::new(secs, nanos)
        .or_else(|| LogTime::new(secs, 0))
        .unwrap_or_default();
    Ok(())
}

/// Visit every log of a decompressed `LogGroupList`, starting at `from`,
/// until done or the visitor says [`Flow::Full`].
///
/// # Errors
/// Malformed protobuf; logs visited before the error stay visited.
pub fn visit_logs(
    list: &[u8],
    from: Resume,
    visit: &mut dyn FnMut(&Record<'_>) -> Flow,
) -> Result<Visit, DecodeError> {
    let mut records = 0usize;
    let mut r = Reader::new(list, 0);
    r.pos = from.group_at.min(list.len());
    let mut skip = from.logs_done;
    while !r.done() {
        let group_at = r.pos;
        let (number, value) = r.field()?;
        let (1, Value::Bytes(group, base)) = (number, value) else {
            continue;
        };
        let meta = group_meta(group, base)?;
        let mut record = Record {
            time: LogTime::default(),
            fields: Vec::with_capacity(2 + meta.tags.len() + 16),
        };
        let mut g = Reader::new(group, base);
        let mut index = 0usize;
        while !g.done() {
            let (1, Value::Bytes(log, at)) = g.field()? else {
                continue;
            };
            index += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            record.fields.clear();
            record
                .fields
                .push(Field::borrowed(reserved::TOPIC, meta.topic));
            record
                .fields
                .push(Field::borrowed(reserved::SOURCE, meta.source));
            for (k, v) in &meta.tags {
                record.fields.push(Field {
                    key: Cow::Borrowed(k.as_slice()),
                    value: Cow::Borrowed(v),
                });
            }
            decode_log(log, at, &mut record)?;
            records += 1;
            if visit(&record) == Flow::Full {
                let resume = if g.done() {
                    Resume {
                        group_at: r.pos,
                        logs_done: 0,
                    }
                } else {
                    Resume {
                        group_at,
                        logs_done: index,
                    }
                };
                if resume.group_at >= list.len() {
                    return Ok(Visit::Done { records });
                }
                return Ok(Visit::Paused { records, resume });
            }
        }
    }
    Ok(Visit::Done { records })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal protobuf writer for the tests (the emulator has its own,
    /// independent one; integration tests cross-check the two).
    pub(crate) fn field_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A test log: time, nanoseconds, contents.
    pub(crate) type L<'a> = (u32, Option<u32>, Vec<(&'a [u8], &'a [u8])>);
    /// A decoded log: time and fields.
    type Decoded = (LogTime, Vec<(Vec<u8>, Vec<u8>)>);

    pub(crate) struct G<'a> {
        pub topic: Option<&'a [u8]>,
        pub source: Option<&'a [u8]>,
        pub tags: Vec<(&'a [u8], &'a [u8])>,
        pub logs: Vec<L<'a>>,
    }

    pub(crate) fn encode(groups: &[G<'_>]) -> Vec<u8> {
        let mut list = Vec::new();
        for g in groups {
            let mut gb = Vec::new();
            for (time, ns, contents) in &g.logs {
                let mut lb = Vec::new();
                varint(&mut lb, 1 << 3);
                varint(&mut lb, u64::from(*time));
                for (k, v) in contents {
                    let mut cb = Vec::new();
                    field_bytes(&mut cb, 1, k);
                    field_bytes(&mut cb, 2, v);
                    field_bytes(&mut lb, 2, &cb);
                }
                if let Some(ns) = ns {
                    varint(&mut lb, 4 << 3 | 5);
                    lb.extend_from_slice(&ns.to_le_bytes());
                }
                field_bytes(&mut gb, 1, &lb);
            }
            if let Some(t) = g.topic {
                field_bytes(&mut gb, 3, t);
            }
            if let Some(s) = g.source {
                field_bytes(&mut gb, 4, s);
            }
            // An unknown field (MachineUUID) the reader must skip.
            field_bytes(&mut gb, 5, b"uuid");
            for (k, v) in &g.tags {
                let mut tb = Vec::new();
                field_bytes(&mut tb, 1, k);
                field_bytes(&mut tb, 2, v);
                field_bytes(&mut gb, 6, &tb);
            }
            field_bytes(&mut list, 1, &gb);
        }
        list
    }

    fn collect(list: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        visit_logs(list, Resume::default(), &mut |r| {
            out.push((
                r.time,
                r.fields
                    .iter()
                    .map(|f| (f.key.to_vec(), f.value.to_vec()))
                    .collect(),
            ));
            Flow::Continue
        })
        .unwrap();
        out
    }

    fn kv(pairs: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn fields_follow_python_flattening_order_topic_source_tags_contents() {
        let list = encode(&[G {
            topic: Some(b"t1"),
            source: Some(b"10.0.0.1"),
            tags: vec![(b"__hostname__", b"h1")],
            logs: vec![(1_700_000_000, Some(5), vec![(b"k", b"v"), (b"a", b"b")])],
        }]);
        let got = collect(&list);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, LogTime::new(1_700_000_000, 5).unwrap());
        assert_eq!(
            got[0].1,
            kv(&[
                ("__topic__", b"t1"),
                ("__source__", b"10.0.0.1"),
                ("__tag__:__hostname__", b"h1"),
                ("k", b"v"),
                ("a", b"b"),
            ])
        );
    }

    #[test]
    fn topic_and_source_are_present_even_when_unset() {
        let list = encode(&[G {
            topic: None,
            source: None,
            tags: vec![],
            logs: vec![(1, None, vec![(b"k", b"v")])],
        }]);
        let got = collect(&list);
        assert_eq!(
            got[0].1,
            kv(&[("__topic__", b""), ("__source__", b""), ("k", b"v")])
        );
        assert_eq!(got[0].0.nanos(), 0);
    }

    #[test]
    fn duplicate_keys_and_invalid_utf8_values_are_kept() {
        let list = encode(&[G {
            topic: None,
            source: None,
            tags: vec![],
            logs: vec![(1, None, vec![(b"k", b"\xff\xfe"), (b"k", b"2")])],
        }]);
        let got = collect(&list);
        assert_eq!(&got[0].1[2..], &kv(&[("k", b"\xff\xfe"), ("k", b"2")])[..]);
    }

    #[test]
    fn full_pauses_and_resumes_without_losing_or_repeating_a_log() {
        let logs = |n: u32| -> Vec<L<'static>> { (0..n).map(|i| (i, None, vec![])).collect() };
        let list = encode(&[
            G {
                topic: None,
                source: None,
                tags: vec![],
                logs: logs(3),
            },
            G {
                topic: None,
                source: None,
                tags: vec![],
                logs: logs(2),
            },
            G {
                topic: None,
                source: None,
                tags: vec![],
                logs: logs(4),
            },
        ]);
        let mut seen = Vec::new();
        let mut at = Resume::default();
        for _ in 0..20 {
            let mut n = 0;
            let v = visit_logs(&list, at, &mut |r| {
                seen.push(r.time.secs());
                n += 1;
                if n == 2 {
                    Flow::Full
                } else {
                    Flow::Continue
                }
            })
            .unwrap();
            match v {
                Visit::Done { .. } => break,
                Visit::Paused { resume, .. } => at = resume,
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 0, 1, 0, 1, 2, 3]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let list = encode(&[G {
            topic: Some(b"t"),
            source: None,
            tags: vec![],
            logs: vec![(1, None, vec![(b"k", b"v")])],
        }]);
        for cut in 1..list.len() {
            let _ = visit_logs(&list[..cut], Resume::default(), &mut |_| Flow::Continue);
        }
        assert!(
            visit_logs(&list[..list.len() - 1], Resume::default(), &mut |_| {
                Flow::Continue
            })
            .is_err()
        );
    }

    #[test]
    fn lz4_raw_block_and_zstd_bodies_decompress() {
        let raw = encode(&[G {
            topic: Some(b"t"),
            source: None,
            tags: vec![],
            logs: vec![(1, None, vec![(b"k", b"v")])],
        }]);
        let mut out = vec![1, 2, 3];
        decompress("lz4", raw.len(), &lz4_flex::block::compress(&raw), &mut out).unwrap();
        assert_eq!(out, raw);
        let z = zstd::bulk::compress(&raw, 1).unwrap();
        decompress("zstd", raw.len(), &z, &mut out).unwrap();
        assert_eq!(out, raw);
        decompress("", raw.len(), &raw, &mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn wrong_raw_size_or_unknown_compression_is_refused() {
        let raw = b"hello world hello world".to_vec();
        let mut out = Vec::new();
        let c = lz4_flex::block::compress(&raw);
        assert!(decompress("lz4", raw.len() + 1, &c, &mut out).is_err());
        assert!(decompress("lz4", raw.len() - 1, &c, &mut out).is_err());
        assert!(matches!(
            decompress("snappy", 3, b"abc", &mut out),
            Err(DecodeError::UnknownCompression(_))
        ));
        assert!(decompress("lz4", MAX_RAW_SIZE + 1, &c, &mut out).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = visit_logs(&bytes, Resume::default(), &mut |_| Flow::Continue);
            let mut out = Vec::new();
            let _ = decompress("lz4", bytes.len() * 3, &bytes, &mut out);
            let _ = decompress("zstd", bytes.len(), &bytes, &mut out);
        }

        #[test]
        fn values_round_trip(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20)) {
            let contents: Vec<(&[u8], &[u8])> = values.iter().map(|v| (&b"k"[..], v.as_slice())).collect();
            let list = encode(&[G { topic: None, source: None, tags: vec![], logs: vec![(7, None, contents)] }]);
            let got = collect(&list);
            let vals: Vec<Vec<u8>> = got[0].1[2..].iter().map(|(_, v)| v.clone()).collect();
            prop_assert_eq!(vals, values);
        }
    }
}
