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

/// An empty vector with `v`'s allocation and another borrow lifetime:
/// fields borrow a buffer that changes from one record (or log group) to
/// the next, so a vector of them cannot keep its type across, but its
/// memory can (the in-place `collect` of an emptied `IntoIter` into an
/// element type of the same size reuses the buffer).
pub fn recycle<'b>(mut v: Vec<Field<'_>>) -> Vec<Field<'b>> {
    v.clear();
    // The closure never runs: the vector is empty.
    v.into_iter().map(|_| Field::borrowed(b"", b"")).collect()
}

/// Reserved field names shared by every source (Log Service's own names).
pub mod reserved {
    /// The log group's topic.
    pub const TOPIC: &[u8] = b"__topic__";
    /// The log group's source (usually the writer's IP).
    pub const SOURCE: &[u8] = b"__source__";
    /// The Log Service project a record was read from, when one process
    /// reads several logstores.
    pub const PROJECT: &[u8] = b"__project__";
    /// The logstore a record was read from, when one process reads several.
    pub const LOGSTORE: &[u8] = b"__logstore__";
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
        // Names made by `parse_json` share long prefixes (`event.`): the
        // length and the last byte turn most of them away before a call to
        // compare the bytes.
        self.fields
            .iter()
            .find(|f| {
                let k = f.key.as_ref();
                k.len() == key.len() && k.last() == key.last() && k == key
            })
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

/// A syslog facility, 0–23 (RFC 5424 §6.2.1): only valid codes exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Facility(u8);

impl Facility {
    /// The largest code (local7).
    pub const MAX: u8 = 23;

    /// The facility with this code; `None` above [`Self::MAX`].
    pub const fn new(code: u8) -> Option<Self> {
        if code <= Self::MAX {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn code(self) -> u8 {
        self.0
    }
}

/// A syslog severity, 0 (emergency) to 7 (debug): only valid codes exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(u8);

impl Severity {
    /// The largest code (debug).
    pub const MAX: u8 = 7;

    /// The severity with this code; `None` above [`Self::MAX`].
    pub const fn new(code: u8) -> Option<Self> {
        if code <= Self::MAX {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn code(self) -> u8 {
        self.0
    }
}

/// What the transform stage decided about one record's message, carried to
/// the encoder beside the record. Every part is optional: `None` means "as
/// configured in `[format]`", so a record no step touched is encoded exactly
/// as before and the encoder's pre-rendered parts stay valid.
///
/// Header overrides are bytes as a step produced them; the header encoder
/// makes them fit its field (printable ASCII, the RFC's length) and counts
/// any change in `header_fields_sanitized`, since they come from data, not
/// from a config a user could be asked to fix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The record's facility.
    pub facility: Option<Facility>,
    /// The record's severity (also what CEF and LEEF severities derive from).
    pub severity: Option<Severity>,
    /// HOSTNAME.
    pub hostname: Option<Vec<u8>>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164).
    pub app_name: Option<Vec<u8>>,
    /// PROCID.
    pub procid: Option<Vec<u8>>,
    /// MSGID (RFC 5424 only; RFC 3164 has no place for it).
    pub msgid: Option<Vec<u8>>,
}

impl Meta {
    /// Nothing decided: every part as configured.
    pub const NONE: Meta = Meta {
        facility: None,
        severity: None,
        hostname: None,
        app_name: None,
        procid: None,
        msgid: None,
    };

    /// True when a header field is overridden (PRI aside): the encoder's
    /// pre-rendered fields cannot be used as they are.
    pub fn overrides_fields(&self) -> bool {
        self.hostname.is_some()
            || self.app_name.is_some()
            || self.procid.is_some()
            || self.msgid.is_some()
    }

    /// Back to [`Meta::NONE`], keeping nothing.
    pub fn clear(&mut self) {
        *self = Meta::NONE;
    }

    /// Back to [`Meta::NONE`], the header fields' buffers emptied into
    /// `spare` for the next record's (a `malloc` and a `free` per header
    /// field per record otherwise).
    pub fn clear_into(&mut self, spare: &mut Vec<Vec<u8>>) {
        for slot in [
            &mut self.hostname,
            &mut self.app_name,
            &mut self.procid,
            &mut self.msgid,
        ] {
            if let Some(mut bytes) = slot.take() {
                bytes.clear();
                spare.push(bytes);
            }
        }
        self.clear();
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

    #[test]
    fn facility_and_severity_exist_only_within_their_ranges() {
        assert_eq!(Facility::new(23).map(Facility::code), Some(23));
        assert_eq!(Facility::new(24), None);
        assert_eq!(Severity::new(7).map(Severity::code), Some(7));
        assert_eq!(Severity::new(8), None);
    }

    #[test]
    fn meta_none_overrides_nothing() {
        let mut m = Meta::NONE;
        assert!(!m.overrides_fields());
        m.msgid = Some(b"x".to_vec());
        assert!(m.overrides_fields());
        m.clear();
        assert_eq!(m, Meta::default());
    }

    #[test]
    fn clear_into_keeps_the_header_buffers_empty() {
        let mut m = Meta {
            severity: Severity::new(1),
            hostname: Some(b"h".to_vec()),
            msgid: Some(b"m".to_vec()),
            ..Meta::NONE
        };
        let mut spare = Vec::new();
        m.clear_into(&mut spare);
        assert_eq!(m, Meta::NONE);
        assert_eq!(spare.len(), 2);
        assert!(spare.iter().all(|b| b.is_empty() && b.capacity() > 0));
    }
}
