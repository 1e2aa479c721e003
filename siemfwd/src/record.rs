//! The record model: one log as every source hands it to the pipeline.
//!
//! A [`Record`] mirrors the *flattened* log of Alibaba's consumer libraries
//! (`loggroups_to_flattern_list`): a time, then an ordered list of key/value
//! fields. The metadata of the log group comes first, as ordinary fields with
//! their reserved names — `__topic__`, `__source__`, then `__tag__:<name>` for
//! every group tag — followed by the log's own contents in the order they were
//! written. Keeping one ordered list (instead of separate topic/source/tag
//! members) lets the seed-compatible `kv` body be a plain walk over the fields,
//! and lets a field that shadows a metadata name keep its place.
//!
//! Keys and values are bytes, not `str`: Log Service data can carry invalid
//! UTF-8 in values, and a forwarder must not refuse or silently alter a log for
//! that. Formats decide how to render such bytes (see `format`).
//!
//! Records borrow from the buffer their source decoded them from (`Cow`), so the
//! hot path allocates nothing per field; a value that had to be unescaped (a
//! JSON string with `\n`, say) is owned.
//!
//! This module knows nothing about where records come from or where they go.

use std::borrow::Cow;

/// The log's own time: Unix seconds plus the nanosecond part Log Service keeps
/// separately (`__time_ns_part__`, protobuf `Time_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogTime {
    secs: i64,
    nanos: u32,
}

impl LogTime {
    /// A time from Unix seconds and a nanosecond part; `None` if `nanos` is not
    /// below one second.
    pub fn new(secs: i64, nanos: u32) -> Option<Self> {
        (nanos < 1_000_000_000).then_some(Self { secs, nanos })
    }

    /// Unix seconds.
    pub fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub fn nanos(self) -> u32 {
        self.nanos
    }

    /// The current wall-clock time (used when a log has no time of its own).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }
}

/// One key/value pair of a log, in the order it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The key as written (may contain spaces, `=`, anything).
    pub key: Cow<'a, [u8]>,
    /// The value as written; arbitrary bytes.
    pub value: Cow<'a, [u8]>,
}

impl<'a> Field<'a> {
    /// A field borrowing both key and value.
    pub fn borrowed(key: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            key: Cow::Borrowed(key),
            value: Cow::Borrowed(value),
        }
    }
}

/// Reserved field names shared by every source (Log Service's own names).
pub mod reserved {
    /// The log group's topic.
    pub const TOPIC: &[u8] = b"__topic__";
    /// The log group's source (usually the writer's IP).
    pub const SOURCE: &[u8] = b"__source__";
    /// Prefix of group tags: `__tag__:__hostname__`, `__tag__:__path__`, ….
    pub const TAG_PREFIX: &[u8] = b"__tag__:";
    /// Log time in Unix seconds; consumed into [`super::LogTime`], never a field.
    pub const TIME: &[u8] = b"__time__";
    /// Nanosecond part of the log time; consumed into [`super::LogTime`].
    pub const TIME_NS_PART: &[u8] = b"__time_ns_part__";
}

/// One log: its time and its fields in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record<'a> {
    /// When the log happened (not when it was received).
    pub time: LogTime,
    /// `__topic__`, `__source__`, `__tag__:*`, then the contents, in order.
    /// Duplicate keys are kept as they came.
    pub fields: Vec<Field<'a>>,
}

impl<'a> Record<'a> {
    /// The value of the first field named `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.key.as_ref() == key)
            .map(|f| f.value.as_ref())
    }

    /// Raw size of the log: the bytes of every key and value. This is the
    /// "raw MB" that throughput figures count.
    pub fn raw_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.key.len() + f.value.len())
            .sum()
    }

    /// A copy that owns all its bytes, for a record that must outlive the
    /// buffer it was decoded from.
    pub fn into_owned(self) -> Record<'static> {
        Record {
            time: self.time,
            fields: self
                .fields
                .into_iter()
                .map(|f| Field {
                    key: Cow::Owned(f.key.into_owned()),
                    value: Cow::Owned(f.value.into_owned()),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_time_rejects_a_nanosecond_part_of_a_whole_second() {
        assert!(LogTime::new(1, 999_999_999).is_some());
        assert!(LogTime::new(1, 1_000_000_000).is_none());
    }

    #[test]
    fn get_finds_the_first_of_duplicate_keys() {
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"k", b"1"), Field::borrowed(b"k", b"2")],
        };
        assert_eq!(r.get(b"k"), Some(&b"1"[..]));
        assert_eq!(r.get(b"x"), None);
        assert_eq!(r.raw_len(), 4);
    }
}
