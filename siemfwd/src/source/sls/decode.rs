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
//! Field order of a record mirrors the Python SDK's flattening (§4.2),
//! after `__project__` and `__logstore__` when the reader is one of several
//! logstores (`source.sls.logstores`):
//! `__topic__`, `__source__` (both always present, empty when unset), then
//! `__tag__:{key}` per group tag, then the log's contents in order. Unlike
//! the Python dict, duplicate keys are kept, and `__time__`/`__time_ns_part__`
//! go into the record's time instead of fields.

use std::borrow::Cow;

use crate::record::{recycle, reserved, Field, LogTime, Record};
use crate::source::Flow;

/// The largest decompressed body accepted: the server caps a pull at 1000 log
/// groups of at most 5 MiB each; a bigger claim is a corrupt header, and we
/// must not allocate whatever a header says.
pub(crate) const MAX_RAW_SIZE: usize = 1 << 30;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
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

/// Decompress `body` into `out`, replacing its contents (its allocation is
/// reused; after an error it is empty or holds a partial body).
///
/// # Errors
/// Corrupt data, a size other than `raw_size`, or an unknown format.
pub(crate) fn decompress(
    compress_type: &str,
    raw_size: usize,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if raw_size > MAX_RAW_SIZE {
        out.clear();
        return Err(DecodeError::Decompress(
            "any",
            format!("x-log-bodyrawsize {raw_size} is larger than {MAX_RAW_SIZE}"),
        ));
    }
    if compress_type != "lz4" {
        out.clear();
    }
    match compress_type {
        "" => out.extend_from_slice(body),
        "lz4" => {
            // A raw LZ4 block: no frame, no size prefix (§2.4). The buffer
            // is zeroed only where it grows: bytes left from the previous
            // body are overwritten (a match may only copy output already
            // written, which the decoder checks) and cut off after.
            // lz4_flex's pointer-based decoder (no `safe-decode`, about a
            // third fewer instructions) checks every read and write against
            // the slices' ends too; docs/architecture.md has the sources.
            out.resize(raw_size, 0);
            let n = match lz4_flex::block::decompress_into(body, out) {
                Ok(n) => n,
                Err(e) => {
                    out.clear();
                    return Err(DecodeError::Decompress("lz4", e.to_string()));
                }
            };
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

/// A malformed protobuf: where and what. Kept apart from [`DecodeError`]
/// (whose `String` variants make it five words) so that the hot reader
/// functions return a small `Result` in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed {
    at: usize,
    what: &'static str,
}

impl From<Malformed> for DecodeError {
    fn from(m: Malformed) -> Self {
        DecodeError::Protobuf {
            at: m.at,
            what: m.what,
        }
    }
}

/// A protobuf wire reader over a borrowed buffer.
///
/// Invariant: `pos <= buf.len()` (every advance is checked against the
/// length), so `&buf[pos..]` never panics.
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

/// Decode a varint at the start of `bytes`: its value and length, or `None`
/// when it is truncated or longer than 10 bytes. The reference decoder the
/// fast paths of [`Reader::varint`] must agree with.
fn varint_slow(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    #[cold]
    #[inline(never)]
    fn err(&self, what: &'static str) -> Malformed {
        Malformed {
            at: self.base + self.pos,
            what,
        }
    }

    #[inline]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The rest of the buffer (empty at the end).
    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// A varint. Tags and lengths of this schema are nearly always one or
    /// two bytes, so those are decoded straight from a slice pattern (one
    /// bounds check) before the general loop.
    #[inline]
    fn varint(&mut self) -> Result<u64, Malformed> {
        match *self.rest() {
            [b0, ..] if b0 < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b0))
            }
            [b0, b1, ..] if b1 < 0x80 => {
                self.pos += 2;
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            _ => self.varint_long(),
        }
    }

    // Not cold: every log's time (a 31-bit seconds count) takes 5 bytes.
    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, Malformed> {
        let rest = self.rest();
        match varint_slow(rest) {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None if rest.len() < 10 => {
                self.pos = self.buf.len();
                Err(self.err("truncated varint"))
            }
            None => {
                self.pos += 10;
                Err(self.err("varint longer than 10 bytes"))
            }
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let Some(s) = self.rest().get(..n) else {
            return Err(self.err("length runs past the end"));
        };
        self.pos += n;
        Ok(s)
    }

    /// A length-delimited payload: its length varint, then the bytes and
    /// their offset in the body.
    #[inline]
    fn bytes(&mut self) -> Result<(&'a [u8], usize), Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.err("length too large"))?;
        let at = self.base + self.pos;
        Ok((self.take(len)?, at))
    }

    /// The next field: its number and value.
    #[inline]
    fn field(&mut self) -> Result<(u64, Value<'a>), Malformed> {
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let (b, at) = self.bytes()?;
                Value::Bytes(b, at)
            }
            5 => {
                let b = self.take(4)?;
                let mut le = [0u8; 4];
                le.copy_from_slice(b);
                Value::Fixed32(u32::from_le_bytes(le))
            }
            _ => return Err(self.err("unsupported wire type")),
        };
        Ok((number, value))
    }
}

/// Read a two-field message of two byte strings (`LogTag`, `Content`:
/// field 1 the key, field 2 the value; the last occurrence wins, unknown
/// fields are skipped, a missing one is empty).
fn key_value(buf: &[u8], at: usize) -> Result<(&[u8], &[u8]), Malformed> {
    match key_value_canonical(buf) {
        Some(kv) => Ok(kv),
        None => key_value_general(buf, at),
    }
}

/// [`key_value`] pushed as a field, with the general reader out of line so
/// the per-field loop stays small.
#[inline(always)]
fn push_key_value<'a>(
    buf: &'a [u8],
    at: usize,
    fields: &mut Vec<Field<'a>>,
) -> Result<(), Malformed> {
    if let Some((k, v)) = key_value_canonical(buf) {
        fields.push(Field::borrowed(k, v));
        return Ok(());
    }
    push_key_value_general(buf, at, fields)
}

/// The rare path of [`push_key_value`].
#[cold]
#[inline(never)]
fn push_key_value_general<'a>(
    buf: &'a [u8],
    at: usize,
    fields: &mut Vec<Field<'a>>,
) -> Result<(), Malformed> {
    let (k, v) = key_value_general(buf, at)?;
    fields.push(Field::borrowed(k, v));
    Ok(())
}

/// What every writer produces: key then value, once each, nothing else.
/// `None` for anything else, malformed input included (the general reader
/// then decides and reports).
#[inline(always)]
fn key_value_canonical(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = Reader::new(buf, 0);
    if r.rest().first() != Some(&(1 << 3 | 2)) {
        return None;
    }
    r.pos += 1;
    let (k, _) = r.bytes().ok()?;
    if r.rest().first() != Some(&(2 << 3 | 2)) {
        return None;
    }
    r.pos += 1;
    let (v, _) = r.bytes().ok()?;
    r.done().then_some((k, v))
}

#[cold]
#[inline(never)]
fn key_value_general(buf: &[u8], at: usize) -> Result<(&[u8], &[u8]), Malformed> {
    let (mut k, mut v): (&[u8], &[u8]) = (b"", b"");
    let mut r = Reader::new(buf, at);
    while !r.done() {
        match r.field()? {
            (1, Value::Bytes(b, _)) => k = b,
            (2, Value::Bytes(b, _)) => v = b,
            _ => {}
        }
    }
    Ok((k, v))
}

/// Where to continue in a body whose visit was paused by [`Flow::Full`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Resume {
    /// Byte offset of the next log group's field in the list.
    group_at: usize,
    /// Logs of that group already visited.
    logs_done: usize,
}

/// How a visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
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

fn group_meta(group: &[u8], base: usize) -> Result<GroupMeta<'_>, Malformed> {
    let mut meta = GroupMeta {
        topic: b"",
        source: b"",
        tags: Vec::new(),
    };
    let mut r = Reader::new(group, base);
    while let Some(&tag) = r.rest().first() {
        // Logs come first and are most of the group: step over them.
        if tag == LOG_TAG {
            r.pos += 1;
            r.bytes()?;
            continue;
        }
        match r.field()? {
            (3, Value::Bytes(b, _)) => meta.topic = b,
            (4, Value::Bytes(b, _)) => meta.source = b,
            (6, Value::Bytes(tag, at)) => {
                let (k, v) = key_value(tag, at)?;
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

/// The key of `LogGroup.Logs` (field 1, length-delimited).
const LOG_TAG: u8 = 1 << 3 | 2;

/// The key of `Log.Contents` (field 2, length-delimited).
const CONTENT_TAG: u8 = 2 << 3 | 2;

/// The keys of `Content.Key` and `Content.Value` (fields 1 and 2,
/// length-delimited).
const KEY_TAG: u8 = 1 << 3 | 2;
const VALUE_TAG: u8 = 2 << 3 | 2;

/// A length below 16384 as one or two varint bytes, `b0` the first and
/// `tail` what follows it: the value and the rest after it. `None` for a
/// longer or truncated varint.
#[inline(always)]
fn short_len(b0: u8, tail: &[u8]) -> Option<(usize, &[u8])> {
    if b0 < 0x80 {
        return Some((usize::from(b0), tail));
    }
    match *tail {
        [b1, ref rest @ ..] if b1 < 0x80 => {
            Some((usize::from(b0 & 0x7f) | usize::from(b1) << 7, rest))
        }
        _ => None,
    }
}

/// The `Contents` entry at the start of `rest` (which starts with its
/// [`CONTENT_TAG`]) when it is written as every writer writes it: entry
/// length, key (shorter than 128 bytes), value (shorter than 16 KiB),
/// nothing else. Returns key, value and the bytes the entry takes; `None`
/// for anything else, malformed input included (the general reader then
/// decides and reports).
///
/// Why: this is the loop over nearly every byte of a pull. Slice patterns
/// check each length once and no offset is kept for error messages, which
/// takes the per-field cost well below the general reader's.
#[inline(always)]
fn content_canonical(rest: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let [CONTENT_TAG, l0, ref tail @ ..] = *rest else {
        return None;
    };
    let (len, tail) = short_len(l0, tail)?;
    let used = rest.len() - tail.len() + len;
    let [KEY_TAG, key_len, ref entry @ ..] = *tail.get(..len)? else {
        return None;
    };
    if key_len >= 0x80 {
        return None;
    }
    let (key, entry) = entry.split_at_checked(usize::from(key_len))?;
    let [VALUE_TAG, v0, ref entry @ ..] = *entry else {
        return None;
    };
    let (value_len, value) = short_len(v0, entry)?;
    (value.len() == value_len).then_some((key, value, used))
}

/// Decode one `Log` into `record` (fields appended after the metadata).
fn decode_log<'a>(log: &'a [u8], base: usize, record: &mut Record<'a>) -> Result<(), Malformed> {
    let mut secs = 0u64;
    let mut nanos = 0u32;
    let mut r = Reader::new(log, base);
    while let Some(&tag) = r.rest().first() {
        // Contents make up nearly all of a log: read them without the
        // general wire-type dispatch.
        if tag == CONTENT_TAG {
            if let Some((k, v, len)) = content_canonical(r.rest()) {
                record.fields.push(Field::borrowed(k, v));
                r.pos += len;
                continue;
            }
            r.pos += 1;
            let (content, at) = r.bytes()?;
            push_key_value_general(content, at, &mut record.fields)?;
            continue;
        }
        match r.field()? {
            (1, Value::Varint(t)) => secs = t,
            (4, Value::Fixed32(ns)) => nanos = ns,
            (2, Value::Bytes(content, at)) => {
                push_key_value(content, at, &mut record.fields)?;
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

/// Where a record came from, written into it as its first fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream<'a> {
    pub(crate) project: &'a [u8],
    pub(crate) logstore: &'a [u8],
}

/// Visit every log of a decompressed `LogGroupList`, starting at `from`,
/// until done or the visitor says [`Flow::Full`]; with `stream`, each
/// record starts with where it came from.
///
/// # Errors
/// Malformed protobuf; logs visited before the error stay visited.
pub(crate) fn visit_logs<'l>(
    list: &'l [u8],
    from: Resume,
    stream: Option<Stream<'l>>,
    visit: &mut dyn FnMut(&Record<'_>) -> Flow,
) -> Result<Visit, DecodeError> {
    let mut records = 0usize;
    let mut r = Reader::new(list, 0);
    r.pos = from.group_at.min(list.len());
    let mut skip = from.logs_done;
    // One field vector for the whole call (one allocation per pull, not per
    // group or per log).
    let mut spare: Vec<Field<'static>> = Vec::new();
    while !r.done() {
        let group_at = r.pos;
        let (number, value) = r.field()?;
        let (1, Value::Bytes(group, base)) = (number, value) else {
            continue;
        };
        let meta = group_meta(group, base)?;
        let mut record = Record {
            time: LogTime::default(),
            fields: recycle(std::mem::take(&mut spare)),
        };
        // The group's metadata leads every record of the group: pushed once,
        // and each log only cuts the vector back to it.
        if let Some(stream) = stream {
            record
                .fields
                .push(Field::borrowed(reserved::PROJECT, stream.project));
            record
                .fields
                .push(Field::borrowed(reserved::LOGSTORE, stream.logstore));
        }
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
        let meta_len = record.fields.len();
        let mut g = Reader::new(group, base);
        let mut index = 0usize;
        while !g.done() {
            let (log, at) = if g.rest().first() == Some(&LOG_TAG) {
                g.pos += 1;
                g.bytes()?
            } else {
                let (1, Value::Bytes(log, at)) = g.field()? else {
                    continue;
                };
                (log, at)
            };
            index += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            record.fields.truncate(meta_len);
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
        spare = recycle(record.fields);
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
        visit_logs(list, Resume::default(), None, &mut |r| {
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
    fn every_log_of_a_group_gets_the_metadata_and_only_its_own_contents() {
        let list = encode(&[
            G {
                topic: Some(b"t1"),
                source: None,
                tags: vec![(b"a", b"1"), (b"b", b"2")],
                logs: vec![
                    (1, None, vec![(b"x", b"1"), (b"y", b"2"), (b"z", b"3")]),
                    (2, None, vec![(b"w", b"4")]),
                    (3, None, vec![]),
                ],
            },
            G {
                topic: Some(b"t2"),
                source: None,
                tags: vec![],
                logs: vec![(4, None, vec![(b"v", b"5")])],
            },
        ]);
        let got = collect(&list);
        let meta = [
            ("__topic__", &b"t1"[..]),
            ("__source__", b""),
            ("__tag__:a", b"1"),
            ("__tag__:b", b"2"),
        ];
        let with = |own: &[(&str, &'static [u8])]| {
            let mut all = meta.to_vec();
            all.extend_from_slice(own);
            kv(&all)
        };
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].1, with(&[("x", b"1"), ("y", b"2"), ("z", b"3")]));
        assert_eq!(got[1].1, with(&[("w", b"4")]));
        assert_eq!(got[2].1, with(&[]));
        assert_eq!(
            got[3].1,
            kv(&[("__topic__", b"t2"), ("__source__", b""), ("v", b"5")])
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
            let v = visit_logs(&list, at, None, &mut |r| {
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
            let _ = visit_logs(&list[..cut], Resume::default(), None, &mut |_| {
                Flow::Continue
            });
        }
        assert!(visit_logs(
            &list[..list.len() - 1],
            Resume::default(),
            None,
            &mut |_| { Flow::Continue }
        )
        .is_err());
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
    fn lz4_into_a_dirty_buffer_equals_lz4_into_a_fresh_one() {
        let raw = encode(&[G {
            topic: Some(b"topic"),
            source: None,
            tags: vec![],
            logs: vec![(1, None, vec![(b"k", b"vvvvvvvvvvvvvvvvvvvv")]); 5],
        }]);
        let c = lz4_flex::block::compress(&raw);
        let mut fresh = Vec::new();
        decompress("lz4", raw.len(), &c, &mut fresh).unwrap();
        let mut dirty = vec![0xAA; raw.len() * 2];
        decompress("lz4", raw.len(), &c, &mut dirty).unwrap();
        assert_eq!(fresh, raw);
        assert_eq!(dirty, raw);
    }

    #[test]
    fn lz4_match_before_the_output_start_never_reads_stale_bytes() {
        // One literal `a`, then a match of 4 at offset 2: one byte before
        // the start of the output, where a reused buffer holds old data.
        let block = [0x10, b'a', 0x02, 0x00, 0x00];
        let mut out = vec![b'x'; 64];
        let err = decompress("lz4", 5, &block, &mut out).unwrap_err();
        assert!(err.to_string().contains("offset"), "{err}");
        assert!(!out.contains(&b'x'));
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

    #[test]
    fn varint_fast_paths_cover_one_and_two_byte_encodings() {
        for (bytes, want, len) in [
            (&[0x00][..], 0, 1),
            (&[0x7f], 127, 1),
            (&[0x80, 0x01], 128, 2),
            (&[0xff, 0x7f], 16383, 2),
            (&[0x80, 0x80, 0x01], 16384, 3),
            // Non-canonical, still valid protobuf.
            (&[0x80, 0x00], 0, 2),
        ] {
            let mut r = Reader::new(bytes, 0);
            assert_eq!(r.varint(), Ok(want), "{bytes:?}");
            assert_eq!(r.pos, len, "{bytes:?}");
        }
        let mut r = Reader::new(&[0x80], 5);
        assert_eq!(
            r.varint(),
            Err(Malformed {
                at: 6,
                what: "truncated varint"
            })
        );
        let mut r = Reader::new(&[0xff; 11], 0);
        assert_eq!(
            r.varint().map_err(|e| e.what),
            Err("varint longer than 10 bytes")
        );
    }

    #[test]
    fn key_value_fast_path_keeps_last_occurrence_and_skips_unknown_fields() {
        let mut m = Vec::new();
        field_bytes(&mut m, 1, b"k");
        field_bytes(&mut m, 2, b"v");
        assert_eq!(key_value(&m, 0), Ok((&b"k"[..], &b"v"[..])));
        field_bytes(&mut m, 2, b"w");
        field_bytes(&mut m, 9, b"x");
        assert_eq!(key_value(&m, 0), Ok((&b"k"[..], &b"w"[..])));
        let mut m = Vec::new();
        field_bytes(&mut m, 2, b"v");
        assert_eq!(key_value(&m, 0), Ok((&b""[..], &b"v"[..])));
    }

    #[test]
    fn content_entries_off_the_fast_path_decode_the_same() {
        // Long key, value after key reversed, an unknown field inside, a
        // three-byte entry length: each leaves the fast path and is still
        // read as the general reader reads it.
        let long_key = [b'k'; 200];
        let long_value = vec![b'v'; 20_000];
        let mut reversed = Vec::new();
        field_bytes(&mut reversed, 2, b"v2");
        field_bytes(&mut reversed, 1, b"k2");
        let mut extra = Vec::new();
        field_bytes(&mut extra, 1, b"k3");
        field_bytes(&mut extra, 7, b"?");
        field_bytes(&mut extra, 2, b"v3");
        let mut log = Vec::new();
        varint(&mut log, 1 << 3);
        varint(&mut log, 5);
        for (k, v) in [(&long_key[..], &b"x"[..]), (b"k1", &long_value[..])] {
            let mut e = Vec::new();
            field_bytes(&mut e, 1, k);
            field_bytes(&mut e, 2, v);
            field_bytes(&mut log, 2, &e);
        }
        field_bytes(&mut log, 2, &reversed);
        field_bytes(&mut log, 2, &extra);
        let mut record = Record::default();
        decode_log(&log, 0, &mut record).unwrap();
        let got: Vec<(&[u8], &[u8])> = record.fields.iter().map(|f| (&*f.key, &*f.value)).collect();
        assert_eq!(
            got,
            vec![
                (&long_key[..], &b"x"[..]),
                (b"k1", &long_value[..]),
                (b"k2", b"v2"),
                (b"k3", b"v3"),
            ]
        );
        assert_eq!(record.time.secs(), 5);
    }

    #[test]
    fn field_vector_allocation_is_reused_across_groups() {
        let v: Vec<Field<'static>> = Vec::with_capacity(32);
        let ptr = v.as_ptr() as usize;
        let w: Vec<Field<'_>> = recycle(v);
        assert!(w.capacity() >= 32);
        assert_eq!(w.as_ptr() as usize, ptr);
    }

    proptest! {
        #[test]
        fn fast_varint_equals_slow_varint_for_every_value(v in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut bytes = Vec::new();
            varint(&mut bytes, v);
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(varint_slow(&bytes), Some((v, len)));
            let mut r = Reader::new(&bytes, 0);
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert_eq!(r.pos, len);
        }

        #[test]
        fn fast_varint_equals_slow_varint_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let mut r = Reader::new(&bytes, 0);
            match (r.varint(), varint_slow(&bytes)) {
                (Ok(v), Some((w, n))) => {
                    prop_assert_eq!(v, w);
                    prop_assert_eq!(r.pos, n);
                }
                (Err(_), None) => {}
                (fast, slow) => prop_assert!(false, "fast {:?} slow {:?}", fast, slow),
            }
        }

        #[test]
        fn key_value_fast_path_equals_general_reader(bytes in proptest::collection::vec(any::<u8>(), 0..40), k in proptest::collection::vec(any::<u8>(), 0..200), v in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(key_value(&bytes, 3), key_value_general(&bytes, 3));
            if let Some(kv) = key_value_canonical(&bytes) {
                prop_assert_eq!(Ok(kv), key_value_general(&bytes, 3));
            }
            let mut m = Vec::new();
            field_bytes(&mut m, 1, &k);
            field_bytes(&mut m, 2, &v);
            // The usual encoding takes the fast path.
            prop_assert_eq!(key_value_canonical(&m), Some((k.as_slice(), v.as_slice())));
            prop_assert_eq!(key_value(&m, 0), Ok((k.as_slice(), v.as_slice())));
            prop_assert_eq!(key_value(&m, 0), key_value_general(&m, 0));
        }

        #[test]
        fn content_fast_path_equals_general_reader(bytes in proptest::collection::vec(any::<u8>(), 0..48), k in proptest::collection::vec(any::<u8>(), 0..200), v in proptest::collection::vec(any::<u8>(), 0..400)) {
            // Whatever the fast path accepts, the general reader reads the
            // same way; whatever it leaves, the general reader decides.
            let mut rest = vec![CONTENT_TAG];
            rest.extend_from_slice(&bytes);
            if let Some((key, value, used)) = content_canonical(&rest) {
                let mut r = Reader::new(&rest, 0);
                r.pos = 1;
                let (content, _) = r.bytes().map_err(|e| TestCaseError::fail(e.what))?;
                prop_assert_eq!(r.pos, used);
                prop_assert_eq!(key_value_general(content, 0), Ok((key, value)));
            }
            // The usual encoding takes it, and only the entry is consumed.
            let mut entry = Vec::new();
            field_bytes(&mut entry, 1, &k);
            field_bytes(&mut entry, 2, &v);
            let mut log = Vec::new();
            field_bytes(&mut log, 2, &entry);
            let used = log.len();
            log.extend_from_slice(&[CONTENT_TAG, 0]);
            let fast = content_canonical(&log);
            if k.len() < 128 {
                prop_assert_eq!(fast, Some((k.as_slice(), v.as_slice(), used)));
            } else {
                prop_assert_eq!(fast, None);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = visit_logs(&bytes, Resume::default(), None, &mut |_| Flow::Continue);
            let mut out = Vec::new();
            let _ = decompress("lz4", bytes.len() * 3, &bytes, &mut out);
            let _ = decompress("zstd", bytes.len(), &bytes, &mut out);
        }

        #[test]
        fn lz4_output_never_depends_on_what_the_buffer_held(bytes in proptest::collection::vec(any::<u8>(), 1..256), raw_size in 0usize..2048) {
            // Hostile blocks (offsets before the output start, lengths past
            // either end) must fail or give the same bytes whatever a reused
            // buffer held before: nothing stale may leak into a record.
            let mut zeros = Vec::new();
            let mut dirty = vec![0xA5; 4096];
            let a = decompress("lz4", raw_size, &bytes, &mut zeros);
            let b = decompress("lz4", raw_size, &bytes, &mut dirty);
            prop_assert_eq!(a.is_ok(), b.is_ok());
            if a.is_ok() {
                prop_assert_eq!(&zeros, &dirty);
            }
        }

        #[test]
        fn lz4_round_trips_any_body_through_a_dirty_buffer(body in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..4096)) {
            let c = lz4_flex::block::compress(&body);
            let mut out = vec![0x5A; 8192];
            decompress("lz4", body.len(), &c, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(out, body);
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
