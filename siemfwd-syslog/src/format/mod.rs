//! Formats: turn a [`Record`] into the bytes of one
//! syslog message.
//!
//! A message is a *header* (RFC 5424 or RFC 3164) followed by a *body* (`kv`,
//! the seed-compatible `SEP key=value` list, or `json`). Every escape,
//! length limit and truncation rule of the wire formats lives under this
//! module and nowhere else (../docs/architecture.md, "format"); sinks only
//! frame and send the bytes produced here.
//!
//! What this module must not know: sockets, framing on a stream, consumer
//! groups.
//!
//! Shape: [`FormatConfig`] is what the user wrote (serde, syntax only);
//! [`Formatter::build`] validates it once and pre-renders the constant parts
//! of the header, so [`Formatter::encode`] on the hot path only appends.
//!
//! Layout: one file per header and per body (`rfc5424.rs`, `rfc3164.rs`,
//! `kv.rs`, `json.rs`), shared escaping in `escape.rs`, facility/severity in
//! `pri.rs`, date arithmetic in `civil.rs`, each with its tests. [`Formatter`]
//! dispatches on two enums chosen at build time (no `Box<dyn>`).
//!
//! Decisions that hold across the files (details in each file's doc):
//!
//! - **Config mistakes are refused at build, never repaired silently**: bad
//!   facility, over-long or non-printable header fields, an invalid RFC 3164
//!   TAG, an unregistered SD-ID, keys that mean nothing for the chosen RFC
//!   (`timezone` with RFC 5424, `msgid`/`structured_data`/`bom` with RFC
//!   3164). Only the default hostname, which the user did not write, is
//!   cleaned (and counted in `header_fields_sanitized`).
//! - **The MSG of RFC 5424 (§6.4)**: the BOM is off by default (many SIEM
//!   parsers show it as garbage), and even with `bom = true` it is written
//!   only when the body is valid UTF-8, since a `kv` body passes non-UTF-8
//!   bytes through unchanged (MSG-ANY). An empty body leaves out ` MSG`.
//! - **LF framing** ([`Constraints::newline_terminated`]): every part of the
//!   message is CR/LF/NUL-free — header fields by validation, SD values and the
//!   `kv` body by escaping (or refusal, `format.newline = "refuse"`), the
//!   `json` body by construction.
//! - **A refused record changes nothing**: `encode` truncates `out` back and
//!   the escape/UTF-8 counters are only added for records that were
//!   written. `records_refused` is counted here, so callers must not count
//!   the same refusal again.
//! - **Cuts for size** are the sinks' business (the datagram cap applies to
//!   the whole message); [`truncate_utf8`] gives them a UTF-8-safe length.

mod cef;
mod civil;
pub(crate) mod escape;
mod json;
mod kv;
mod leef;
pub(crate) mod pri;
mod rfc3164;
mod rfc5424;
pub(crate) mod vendor;

use serde::Deserialize;

pub use cef::{CefConfig, CustomField};
pub use escape::truncate_utf8;
pub use leef::LeefConfig;
pub use pri::{facility_in, facility_named, severity_in, severity_named};
pub use vendor::Rest;

use crate::counters::{self, Metrics};
use crate::record::{Field, Meta, Record};

/// Which syslog header to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rfc {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    #[default]
    Rfc5424,
    /// RFC 3164 / BSD (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`).
    Rfc3164,
}

/// Which body follows the header.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum BodyConfig {
    /// The seed program's body: `SEP key=value` for every field in order.
    Kv {
        /// Put before every field (the seed's `sep`); default `||`.
        #[serde(default = "default_separator")]
        separator: String,
    },
    /// One JSON object: `{"key":"value",…}` in field order. (A struct
    /// variant with no fields, so that a key such as `separator` written
    /// under it is refused, not ignored.)
    Json {},
    /// ArcSight's Common Event Format (`cef.rs`).
    Cef(CefConfig),
    /// IBM QRadar's Log Event Extended Format (`leef.rs`).
    Leef(LeefConfig),
}

fn default_separator() -> String {
    "||".to_owned()
}

impl Default for BodyConfig {
    fn default() -> Self {
        BodyConfig::Kv {
            separator: default_separator(),
        }
    }
}

/// What to do with a CR or LF inside a message that will be LF-framed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NewlinePolicy {
    /// Write CR as `\r` and LF as `\n` (and a backslash as `\\` so the
    /// escape can be undone).
    #[default]
    Escape,
    /// Refuse the record (counted, handled by the pipeline's error policy).
    Refuse,
}

/// RFC 5424 STRUCTURED-DATA built from chosen fields:
/// `[ID name="value" …]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredDataConfig {
    /// SD-ID, e.g. `siemfwd@32473` (private IDs need `@<enterprise number>`).
    pub id: String,
    /// Record fields to copy into SD-PARAMs, in this order. A field missing
    /// from a record is left out; PARAM-NAMEs are the field names (they must
    /// be valid SD-NAMEs: 1–32 printable ASCII, no `=`, space, `]`, `"`).
    pub fields: Vec<String>,
}

/// A name or a number, as text: `facility = "local3"` and `facility = 19`
/// both read (the number is checked with the names, at build).
fn name_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a name or a number")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            u64::try_from(v)
                .map(|v| v.to_string())
                .map_err(|_| E::custom(format!("{v} is not a name or a number from 0")))
        }
    }
    d.deserialize_any(V)
}

/// A version as text, however TOML typed it: `"2.0"`, `2.0`, `0` (the
/// CEF and LEEF versions; an environment variable is always text).
pub(crate) fn version_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a version such as \"1.0\" or 0")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(format!("{v:.1}"))
        }
    }
    d.deserialize_any(V)
}

/// The `[format]` table as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatConfig {
    /// Header: `rfc5424` (default) or `rfc3164`.
    pub rfc: Rfc,
    /// Facility: a name (`user`, `auth`, `local0`…`local7`, …) or 0–23
    /// (as text or a TOML integer).
    #[serde(deserialize_with = "name_or_number")]
    pub facility: String,
    /// Severity: a name (`emerg` … `debug`, `info`) or 0–7 (as text or a
    /// TOML integer).
    #[serde(deserialize_with = "name_or_number")]
    pub severity: String,
    /// HOSTNAME; default: this host's name.
    pub hostname: Option<String>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164): the seed's `tag`.
    pub app_name: String,
    /// PROCID; default NILVALUE (RFC 5424) / none (RFC 3164).
    pub procid: Option<String>,
    /// MSGID (RFC 5424 only); default NILVALUE.
    pub msgid: Option<String>,
    /// RFC 5424: start MSG with the UTF-8 BOM. Off by default because many
    /// SIEM parsers show it as garbage.
    pub bom: bool,
    /// RFC 3164: the zone for the local timestamp (IANA name such as
    /// `Asia/Shanghai`, or `UTC`); default: the host's zone.
    pub timezone: Option<String>,
    /// The body.
    pub body: BodyConfig,
    /// RFC 5424 STRUCTURED-DATA from fields; default NILVALUE.
    pub structured_data: Option<StructuredDataConfig>,
    /// Fields to leave out of the body (e.g. those already in SD).
    pub exclude_fields: Vec<String>,
    /// LF framing only: what to do with CR/LF inside a message.
    pub newline: NewlinePolicy,
}

impl Default for FormatConfig {
    fn default() -> Self {
        Self {
            rfc: Rfc::default(),
            facility: "user".to_owned(),
            severity: "info".to_owned(),
            hostname: None,
            app_name: "siemfwd".to_owned(),
            procid: None,
            msgid: None,
            bom: false,
            timezone: None,
            body: BodyConfig::default(),
            structured_data: None,
            exclude_fields: Vec::new(),
            newline: NewlinePolicy::default(),
        }
    }
}

/// The runtime formatter, built once from a [`FormatConfig`].
///
/// It keeps per-second timestamp caches, hence `encode(&mut self, …)`: use
/// one formatter per task.
#[derive(Debug)]
pub struct Formatter {
    header: Box<dyn Header>,
    body: Box<dyn Body>,
    /// UTF-8 BOM before MSG (RFC 5424 only; refused at build for 3164).
    bom: bool,
    /// Field names left out of the body.
    exclude: Vec<Box<[u8]>>,
    /// `Some(policy)` when the message will be LF-framed.
    newline: Option<NewlinePolicy>,
    /// [`Constraints::max_message`].
    max_message: Option<usize>,
    /// Where truncations, escapes and refusals are counted.
    metrics: Metrics,
}

/// What a header or a body needs besides the record and its metadata.
#[derive(Debug)]
pub(crate) struct Context<'t> {
    /// `Some(policy)` when the message will be LF-framed: every CR and LF
    /// must then be escaped (or the record refused).
    pub newline: Option<NewlinePolicy>,
    /// Counts for this record, added to the counters only if it is written.
    pub tally: &'t mut Tally,
}

/// A syslog header: everything before ` MSG` (RFC 5424 up to
/// STRUCTURED-DATA, RFC 3164 up to the TAG's colon). One file per header,
/// registered in [`Formatter::build`].
pub(crate) trait Header: std::fmt::Debug + Send {
    /// Append the header of `record`, with what `meta` overrides (PRI, the
    /// header fields).
    fn write(
        &mut self,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error>;
}

/// A body: the MSG after its space (and the BOM). One file per body,
/// registered in [`Formatter::build`]. An empty body leaves out ` MSG`.
pub(crate) trait Body: std::fmt::Debug + Send {
    /// Append the body of `fields` (the record's, less `exclude_fields`);
    /// `record` and `meta` are there for what a body takes from the record
    /// as a whole (its time, its severity).
    fn write(
        &self,
        fields: Fields<'_, '_>,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error>;

    /// True for a body that is valid UTF-8 by construction: the formatter
    /// then keeps the BOM without checking.
    fn always_utf8(&self) -> bool {
        false
    }
}

/// The fields a body writes: the record's, in order, less
/// `format.exclude_fields`.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'r, 'a> {
    iter: std::slice::Iter<'r, Field<'a>>,
    exclude: &'r [Box<[u8]>],
}

impl<'r, 'a> Fields<'r, 'a> {
    /// All the fields as a plain slice when nothing is excluded — the
    /// usual case, which a body loops over with no per-field check (a
    /// measured 2–3 % of the instructions of a whole run, `kv` body).
    pub(crate) fn unfiltered(&self) -> Option<&'r [Field<'a>]> {
        self.exclude.is_empty().then_some(self.iter.as_slice())
    }
}

impl<'r, 'a> Iterator for Fields<'r, 'a> {
    type Item = &'r Field<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let exclude = self.exclude;
        if exclude.is_empty() {
            // The usual case: no per-field lookup at all.
            return self.iter.next();
        }
        self.iter.find(|f| !exclude.iter().any(|e| **e == *f.key))
    }
}

/// The UTF-8 byte order mark RFC 5424 §6.4 puts before a UTF-8 MSG.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Formatter {
    /// Validate `config` and pre-render the constant parts of the header.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (`format.app_name`, …) and the rule.
    pub fn build(
        config: &FormatConfig,
        constraints: Constraints,
        metrics: &Metrics,
    ) -> Result<Self, Error> {
        let severity = pri::parse_severity(&config.severity)?;
        let pri = pri::Pri::new(pri::parse_facility(&config.facility)?, severity);
        let newline = constraints.newline_terminated.then_some(config.newline);
        if config.rfc == Rfc::Rfc5424 && config.timezone.is_some() {
            return Err(Error::Config {
                key: "format.timezone".to_owned(),
                problem: "RFC 5424 timestamps are always written in UTC (unambiguous \
                          for every receiver); the zone applies only to \
                          format.rfc = \"rfc3164\", remove it"
                    .to_owned(),
            });
        }
        // Headers and bodies: one line each.
        let header: Box<dyn Header> = match config.rfc {
            Rfc::Rfc5424 => Box::new(rfc5424::Rfc5424::build(config, pri, || {
                default_hostname(metrics)
            })?),
            Rfc::Rfc3164 => Box::new(rfc3164::Rfc3164::build(config, pri, || {
                default_hostname(metrics)
            })?),
        };
        let body: Box<dyn Body> = match &config.body {
            BodyConfig::Kv { separator } => Box::new(kv::Kv::build(separator, newline)?),
            BodyConfig::Json {} => Box::new(json::Json),
            BodyConfig::Cef(cef) => Box::new(cef::Cef::build(cef, severity)?),
            BodyConfig::Leef(leef) => Box::new(leef::Leef::build(leef, severity)?),
        };
        Ok(Self {
            header,
            body,
            bom: config.bom,
            exclude: config
                .exclude_fields
                .iter()
                .map(|f| f.as_bytes().into())
                .collect(),
            newline,
            max_message: constraints.max_message,
            metrics: metrics.clone(),
        })
    }

    /// Append one complete syslog message for `record` to `out` (no framing,
    /// no trailing newline), with what the transform stage decided in `meta`
    /// ([`Meta::NONE`]: everything as configured).
    ///
    /// The MSG part (` ` + body) is left out when the body is empty (a `kv`
    /// body of a record with no fields left). With `bom = true` the BOM is
    /// written only when the body is valid UTF-8: RFC 5424 §6.4 reserves it
    /// for UTF-8 MSG, and a `kv` body passes non-UTF-8 bytes through as
    /// MSG-ANY.
    ///
    /// # Errors
    /// [`Error::Refused`] when the record breaks a configured policy; `out`
    /// is then left as it was. Refusals are counted in `records_refused`
    /// here, not by the caller.
    pub fn encode(
        &mut self,
        record: &Record<'_>,
        meta: &Meta,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let start = out.len();
        let mut tally = Tally::default();
        match self.encode_into(record, meta, out, &mut tally) {
            Ok(()) => {
                tally.commit(&self.metrics);
                if let Some(max) = self.max_message {
                    let len = out.len() - start;
                    if len > max {
                        let keep = truncate_utf8(&out[start..], max);
                        out.truncate(start + keep);
                        counters::add(&self.metrics.stream_truncated, 1);
                        counters::add(&self.metrics.stream_truncated_bytes, (len - keep) as u64);
                    }
                }
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                counters::add(&self.metrics.records_refused, 1);
                counters::add(&self.metrics.bytes_refused, record.raw_len() as u64);
                Err(e)
            }
        }
    }

    fn encode_into(
        &mut self,
        record: &Record<'_>,
        meta: &Meta,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let mut cx = Context {
            newline: self.newline,
            tally,
        };
        self.header.write(record, meta, &mut cx, out)?;
        let msg_start = out.len();
        out.push(b' ');
        if self.bom {
            out.extend_from_slice(BOM);
        }
        let body_start = out.len();
        let fields = Fields {
            iter: record.fields.iter(),
            exclude: &self.exclude,
        };
        self.body.write(fields, record, meta, &mut cx, out)?;
        if out.len() == body_start {
            out.truncate(msg_start);
        } else if self.bom
            && !self.body.always_utf8()
            && std::str::from_utf8(&out[body_start..]).is_err()
        {
            // Rare path: the MSG is not UTF-8, so it must not claim to be
            // (RFC 5424 §6.4); move the body back over the BOM.
            out.drain(body_start - BOM.len()..body_start);
        }
        Ok(())
    }
}

/// Counts gathered while encoding one record, added to the global counters
/// only when the record is accepted (a refused record changed nothing).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// CR/LF escaped for LF framing.
    pub newlines_escaped: u64,
    /// Keys or values rendered lossily because they were not UTF-8.
    pub invalid_utf8_values: u64,
    /// Header fields from a record's metadata changed to fit their field.
    pub header_fields_sanitized: u64,
    /// LEEF delimiters inside values replaced.
    pub delimiters_replaced: u64,
}

impl Tally {
    fn commit(&self, metrics: &Metrics) {
        if self.newlines_escaped > 0 {
            counters::add(&metrics.newlines_escaped, self.newlines_escaped);
        }
        if self.invalid_utf8_values > 0 {
            counters::add(&metrics.invalid_utf8_values, self.invalid_utf8_values);
        }
        if self.delimiters_replaced > 0 {
            counters::add(&metrics.delimiters_replaced, self.delimiters_replaced);
        }
        if self.header_fields_sanitized > 0 {
            counters::add(
                &metrics.header_fields_sanitized,
                self.header_fields_sanitized,
            );
        }
    }
}

/// The refusal for a CR/LF under `newline = "refuse"`; `part` says where.
pub(crate) fn refused(field: &[u8], part: &str) -> Error {
    // Keys are short in practice; cap what goes into a log line anyway.
    let shown = &field[..truncate_utf8(field, 64)];
    Error::Refused(format!(
        "field {:?} holds a CR, LF or NUL in its {part}, and format.newline = \"refuse\" \
         under LF framing",
        String::from_utf8_lossy(shown)
    ))
}

/// This host's name as a HOSTNAME: printable ASCII only (RFC 5424 §6.2.4),
/// at most 255 bytes; NILVALUE if nothing is left. Any change is counted in
/// `header_fields_sanitized`.
fn default_hostname(metrics: &Metrics) -> Vec<u8> {
    let raw = gethostname::gethostname();
    let (name, changed) = sanitize_hostname(raw.to_string_lossy().as_bytes());
    if changed {
        counters::add(&metrics.header_fields_sanitized, 1);
    }
    name
}

/// Keep PRINTUSASCII bytes, cut to [`rfc5424::HOSTNAME_MAX`]; `-` if empty.
/// Returns the name and whether it differs from `raw`.
fn sanitize_hostname(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut name: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| escape::is_printusascii(b))
        .collect();
    name.truncate(rfc5424::HOSTNAME_MAX);
    let changed = name != raw;
    if name.is_empty() {
        name.push(b'-');
    }
    (name, changed)
}

/// Options a sink imposes on the formatter (decided when the pipeline is
/// built, never per record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Constraints {
    /// The message will be framed by a trailing LF (RFC 6587 non-transparent
    /// framing): every CR and LF inside it must be escaped (or the record
    /// refused, per config) so one log never becomes two.
    pub newline_terminated: bool,
    /// The longest message the sink sends, in bytes (`sink.max_message` for
    /// TCP and TLS): a longer one is cut on a UTF-8 boundary and counted. A
    /// receiver that closes the connection on an oversized frame would
    /// otherwise get the same batch again forever. `None`: no limit here
    /// (UDP cuts to its datagram size itself; stdout has no limit).
    pub max_message: Option<usize>,
}

/// Why a record could not be formatted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; `key` is its path in the config file.
    #[error("{key}: {problem}")]
    Config {
        /// Path of the offending key, e.g. `format.app_name`.
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// The record holds something the configured policy refuses (e.g. a CR or
    /// LF with `newline = "refuse"`).
    #[error("record refused: {0}")]
    Refused(String),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record::LogTime;

    const LF: Constraints = Constraints {
        newline_terminated: true,
        max_message: None,
    };

    #[test]
    fn a_message_over_max_message_is_cut_on_a_utf8_boundary_and_counted() {
        let constraints = Constraints {
            newline_terminated: false,
            max_message: Some(100),
        };
        let metrics = Metrics::default();
        let mut f = Formatter::build(&config(), constraints, &metrics).expect("valid");
        let long = "é".repeat(200);
        let r = Record {
            time: LogTime::new(1_700_028_800, 0).unwrap_or_default(),
            fields: vec![crate::record::Field::borrowed(b"k", long.as_bytes())],
        };
        let mut out = b"kept".to_vec();
        f.encode(&r, &Meta::NONE, &mut out).expect("formatted");
        let msg = &out[4..];
        assert!(msg.len() <= 100 && msg.len() >= 99, "{}", msg.len());
        assert!(std::str::from_utf8(msg).is_ok(), "cut inside a character");
        assert!(out.starts_with(b"kept"), "earlier bytes untouched");
        assert_eq!(counters::get(&metrics.stream_truncated), 1);
        let mut whole = Vec::new();
        Formatter::build(&config(), Constraints::default(), &Metrics::default())
            .expect("valid")
            .encode(&r, &Meta::NONE, &mut whole)
            .expect("formatted");
        assert_eq!(
            counters::get(&metrics.stream_truncated_bytes),
            (whole.len() - msg.len()) as u64
        );
        // A short one is left alone.
        let short = Record {
            time: r.time,
            fields: vec![crate::record::Field::borrowed(b"k", b"v")],
        };
        let mut out = Vec::new();
        f.encode(&short, &Meta::NONE, &mut out).expect("formatted");
        assert!(out.ends_with(b"k=v"), "{}", String::from_utf8_lossy(&out));
    }

    /// 2023-11-15T06:13:20Z, the seed's verified example time.
    fn seed_record() -> Record<'static> {
        Record {
            time: LogTime::new(1_700_028_800, 0).expect("valid time"),
            fields: vec![
                Field::borrowed(b"__topic__", b"t1"),
                Field::borrowed(b"__source__", b"10.0.0.1"),
                Field::borrowed(b"__tag__:__hostname__", b"h1"),
                Field::borrowed(b"k", "v ü".as_bytes()),
            ],
        }
    }

    fn config() -> FormatConfig {
        FormatConfig {
            hostname: Some("localhost".into()),
            ..FormatConfig::default()
        }
    }

    fn encode(config: &FormatConfig, c: Constraints, r: &Record<'_>) -> Result<Vec<u8>, Error> {
        let mut f = Formatter::build(config, c, &Metrics::default())?;
        let mut out = Vec::new();
        f.encode(r, &Meta::NONE, &mut out)?;
        Ok(out)
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn rfc5424_message_always_has_sd_field() {
        // The seed wrote `… - - - ||__topic__…` with no SD: four fields after
        // HOSTNAME instead of five. Here MSG follows `-` (SD) after MSGID.
        let out = encode(&config(), Constraints::default(), &seed_record()).expect("ok");
        assert_eq!(
            text(&out),
            "<14>1 2023-11-15T06:13:20.000000Z localhost siemfwd - - - \
             ||__topic__=t1||__source__=10.0.0.1||__tag__:__hostname__=h1||k=v ü"
        );
    }

    #[test]
    fn rfc3164_message_layout() {
        let c = FormatConfig {
            rfc: Rfc::Rfc3164,
            timezone: Some("Asia/Shanghai".into()),
            ..config()
        };
        let out = encode(&c, Constraints::default(), &seed_record()).expect("ok");
        assert_eq!(
            text(&out),
            "<14>Nov 15 14:13:20 localhost siemfwd: \
             ||__topic__=t1||__source__=10.0.0.1||__tag__:__hostname__=h1||k=v ü"
        );
    }

    #[test]
    fn json_body_follows_the_header() {
        let c = FormatConfig {
            body: BodyConfig::Json {},
            ..config()
        };
        let out = encode(&c, Constraints::default(), &seed_record()).expect("ok");
        assert_eq!(
            text(&out),
            "<14>1 2023-11-15T06:13:20.000000Z localhost siemfwd - - - \
             {\"__topic__\":\"t1\",\"__source__\":\"10.0.0.1\",\
             \"__tag__:__hostname__\":\"h1\",\"k\":\"v ü\"}"
        );
    }

    #[test]
    fn bom_starts_a_utf8_msg_when_enabled() {
        let c = FormatConfig {
            bom: true,
            ..config()
        };
        let out = encode(&c, Constraints::default(), &seed_record()).expect("ok");
        let msg = b" - - - \xEF\xBB\xBF||__topic__=t1";
        assert!(out.windows(msg.len()).any(|w| w == msg), "{}", text(&out));
        let c = FormatConfig {
            bom: true,
            body: BodyConfig::Json {},
            ..config()
        };
        let out = encode(&c, Constraints::default(), &seed_record()).expect("ok");
        assert!(out.windows(4).any(|w| w == b"\xEF\xBB\xBF{"));
    }

    #[test]
    fn bom_is_off_by_default() {
        let out = encode(&config(), Constraints::default(), &seed_record()).expect("ok");
        assert!(!out.windows(3).any(|w| w == BOM));
    }

    #[test]
    fn bom_is_not_written_before_a_non_utf8_msg() {
        let c = FormatConfig {
            bom: true,
            ..config()
        };
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"k", b"\xff\xfe")],
        };
        let out = encode(&c, Constraints::default(), &r).expect("ok");
        assert!(out.ends_with(b" - - - ||k=\xff\xfe"), "{}", text(&out));
        assert!(!out.windows(3).any(|w| w == BOM));
    }

    #[test]
    fn empty_body_leaves_out_msg() {
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"drop", b"x")],
        };
        let c = FormatConfig {
            exclude_fields: vec!["drop".into()],
            bom: true,
            ..config()
        };
        let out = encode(&c, Constraints::default(), &r).expect("ok");
        assert_eq!(
            text(&out),
            "<14>1 1970-01-01T00:00:00.000000Z localhost siemfwd - - -"
        );
    }

    #[test]
    fn excluded_fields_are_left_out_of_the_body_but_not_of_sd() {
        let c = FormatConfig {
            exclude_fields: vec!["__source__".into(), "k".into()],
            structured_data: Some(StructuredDataConfig {
                id: "siemfwd@32473".into(),
                fields: vec!["__source__".into()],
            }),
            ..config()
        };
        let out = encode(&c, Constraints::default(), &seed_record()).expect("ok");
        assert!(
            out.ends_with(
                b" - - [siemfwd@32473 __source__=\"10.0.0.1\"] \
                  ||__topic__=t1||__tag__:__hostname__=h1"
            ),
            "{}",
            text(&out)
        );
    }

    #[test]
    fn lf_framing_escapes_newlines_in_body_and_sd() {
        let c = FormatConfig {
            structured_data: Some(StructuredDataConfig {
                id: "x@1".into(),
                fields: vec!["m".into()],
            }),
            ..config()
        };
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"m", b"line1\nline2\r\\")],
        };
        let metrics = Metrics::default();
        let mut f = Formatter::build(&c, LF, &metrics).expect("valid");
        let mut out = Vec::new();
        f.encode(&r, &Meta::NONE, &mut out).expect("ok");
        assert!(
            out.ends_with(br#" - - [x@1 m="line1\nline2\r\\"] ||m=line1\nline2\r\\"#),
            "{}",
            text(&out)
        );
        // CR and LF in the SD value and in the body; the backslashes are
        // escaped too but are not newlines.
        assert_eq!(counters::get(&metrics.newlines_escaped), 4);
    }

    #[test]
    fn newlines_are_kept_without_lf_framing() {
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"m", b"a\nb")],
        };
        let out = encode(&config(), Constraints::default(), &r).expect("ok");
        assert!(out.ends_with(b"||m=a\nb"));
    }

    #[test]
    fn refused_record_leaves_out_unchanged_and_is_counted() {
        let c = FormatConfig {
            newline: NewlinePolicy::Refuse,
            ..config()
        };
        let metrics = Metrics::default();
        let mut f = Formatter::build(&c, LF, &metrics).expect("valid");
        let mut out = b"earlier message".to_vec();
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"a", b"ok"), Field::borrowed(b"m", b"a\rb")],
        };
        let res = f.encode(&r, &Meta::NONE, &mut out);
        assert!(
            matches!(res, Err(Error::Refused(ref why)) if why.contains("\"m\"")),
            "{res:?}"
        );
        assert_eq!(out, b"earlier message");
        assert_eq!(counters::get(&metrics.records_refused), 1);
        assert!(counters::get(&metrics.bytes_refused) > 0);
        assert_eq!(
            counters::get(&metrics.newlines_escaped),
            0,
            "nothing of a refused record"
        );
        // The formatter is still usable.
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"a", b"ok")],
        };
        assert!(f.encode(&r, &Meta::NONE, &mut out).is_ok());
        assert!(out.starts_with(b"earlier message<14>1 "));
    }

    #[test]
    fn newline_refuse_without_lf_framing_refuses_nothing() {
        let c = FormatConfig {
            newline: NewlinePolicy::Refuse,
            ..config()
        };
        let r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"m", b"a\nb")],
        };
        assert!(encode(&c, Constraints::default(), &r).is_ok());
    }

    #[test]
    fn timezone_with_rfc5424_is_refused() {
        let c = FormatConfig {
            timezone: Some("UTC".into()),
            ..config()
        };
        assert!(matches!(
            Formatter::build(&c, Constraints::default(), &Metrics::default()),
            Err(Error::Config { ref key, .. }) if key == "format.timezone"
        ));
    }

    #[test]
    fn bad_facility_is_refused_at_build() {
        let c = FormatConfig {
            facility: "local8".into(),
            ..config()
        };
        let err = Formatter::build(&c, Constraints::default(), &Metrics::default());
        let Err(e) = err else {
            panic!("local8 must be refused");
        };
        let msg = e.to_string();
        assert!(msg.starts_with("format.facility: "), "{msg}");
        assert!(msg.contains("local7"), "{msg}");
    }

    #[test]
    fn default_hostname_is_printable_ascii_within_255() {
        let c = FormatConfig::default();
        let mut f =
            Formatter::build(&c, Constraints::default(), &Metrics::default()).expect("valid");
        let mut out = Vec::new();
        f.encode(&seed_record(), &Meta::NONE, &mut out).expect("ok");
        // `<14>1 TIMESTAMP HOSTNAME siemfwd - - - MSG`
        let host = out.split(|&b| b == b' ').nth(2).expect("hostname field");
        assert!(!host.is_empty() && host.len() <= 255);
        assert!(host.iter().all(|&b| escape::is_printusascii(b)));
    }

    #[test]
    fn hostname_sanitizing_drops_unprintable_bytes_and_cuts_to_255() {
        assert_eq!(sanitize_hostname(b"web01"), (b"web01".to_vec(), false));
        assert_eq!(sanitize_hostname(b"we b\t01"), (b"web01".to_vec(), true));
        assert_eq!(
            sanitize_hostname("hôte".as_bytes()),
            (b"hte".to_vec(), true)
        );
        assert_eq!(sanitize_hostname(b" "), (b"-".to_vec(), true));
        let (long, changed) = sanitize_hostname(&[b'h'; 300]);
        assert_eq!((long.len(), changed), (255, true));
    }

    #[test]
    fn config_reads_from_toml() {
        let c: FormatConfig = toml::from_str(
            r#"
            rfc = "rfc3164"
            facility = "local0"
            timezone = "UTC"
            exclude_fields = ["__source__"]
            body = { type = "kv", separator = " " }
            "#,
        )
        .expect("valid TOML");
        assert_eq!(c.rfc, Rfc::Rfc3164);
        assert_eq!(
            c.body,
            BodyConfig::Kv {
                separator: " ".into()
            }
        );
        let c: FormatConfig = toml::from_str("body = { type = \"json\" }").expect("valid");
        assert_eq!(c.body, BodyConfig::Json {});
        // The kv body's separator means nothing for json: refused, not ignored.
        let e = toml::from_str::<FormatConfig>("body = { type = \"json\", separator = \"||\" }")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `separator`"), "{e}");
        assert_eq!(c.app_name, "siemfwd");
        assert!(toml::from_str::<FormatConfig>("app = \"x\"").is_err());
    }

    /// Unix seconds, nanoseconds and raw key/value pairs of a record.
    type RawRecord = (i64, u32, Vec<(Vec<u8>, Vec<u8>)>);

    fn any_record() -> impl Strategy<Value = RawRecord> {
        let bytes = |n| {
            proptest::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'\\'),
                    Just(b'"'),
                    any::<u8>()
                ],
                0..n,
            )
        };
        (
            -100_000_000_000i64..300_000_000_000,
            0u32..1_000_000_000,
            proptest::collection::vec((bytes(6), bytes(20)), 0..6),
        )
    }

    proptest! {
        #[test]
        fn lf_escaped_output_never_contains_raw_cr_or_lf(
            (secs, nanos, kvs) in any_record(),
            json in any::<bool>(),
            rfc3164 in any::<bool>(),
        ) {
            let mut c = config();
            if json {
                c.body = BodyConfig::Json {};
            }
            if rfc3164 {
                c.rfc = Rfc::Rfc3164;
                c.timezone = Some("UTC".into());
            } else {
                // Fields named like the generated keys may or may not exist.
                c.structured_data = Some(StructuredDataConfig {
                    id: "x@1".into(),
                    fields: vec!["a".into(), "b".into()],
                });
            }
            let mut fields: Vec<Field<'_>> =
                kvs.iter().map(|(k, v)| Field::borrowed(k, v)).collect();
            fields.push(Field::borrowed(b"a", b"x\ny"));
            let r = Record { time: LogTime::new(secs, nanos).expect("valid"), fields };
            let out = encode(&c, LF, &r);
            prop_assert!(out.is_ok());
            let out = out.unwrap_or_default();
            prop_assert!(memchr::memchr3(b'\r', b'\n', 0, &out).is_none(), "{}", text(&out));
        }

        #[test]
        fn refused_or_encoded_never_leaves_a_raw_newline(
            (secs, nanos, kvs) in any_record(),
        ) {
            let c = FormatConfig { newline: NewlinePolicy::Refuse, ..config() };
            let fields: Vec<Field<'_>> = kvs.iter().map(|(k, v)| Field::borrowed(k, v)).collect();
            let r = Record { time: LogTime::new(secs, nanos).expect("valid"), fields };
            let has_newline = kvs
                .iter()
                .any(|(k, v)| memchr::memchr3(b'\r', b'\n', 0, k).is_some() || memchr::memchr3(b'\r', b'\n', 0, v).is_some());
            match encode(&c, LF, &r) {
                Ok(out) => {
                    prop_assert!(!has_newline);
                    prop_assert!(memchr::memchr3(b'\r', b'\n', 0, &out).is_none());
                }
                Err(Error::Refused(_)) => prop_assert!(has_newline),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
