//! Formats: turn a [`Record`](crate::record::Record) into the bytes of one
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
//! `kv.rs`, `json.rs`), shared escaping in `escape.rs`, each with its tests.

use serde::Deserialize;

use crate::record::Record;

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
    /// One JSON object: `{"key":"value",…}` in field order.
    Json,
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

/// The `[format]` table as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatConfig {
    /// Header: `rfc5424` (default) or `rfc3164`.
    pub rfc: Rfc,
    /// Facility: a name (`user`, `auth`, `local0`…`local7`, …) or 0–23.
    pub facility: String,
    /// Severity: a name (`emerg` … `debug`, `info`) or 0–7.
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
#[derive(Debug)]
pub struct Formatter {
    // filled in by the implementation
}

impl Formatter {
    /// Validate `config` and pre-render the constant parts of the header.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (`format.app_name`, …) and the rule.
    pub fn build(config: &FormatConfig, constraints: Constraints) -> Result<Self, Error> {
        let _ = (config, constraints);
        todo!("format helper")
    }

    /// Append one complete syslog message for `record` to `out` (no framing,
    /// no trailing newline).
    ///
    /// # Errors
    /// [`Error::Refused`] when the record breaks a configured policy; `out`
    /// is then left as it was.
    pub fn encode(&mut self, record: &Record<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
        let _ = (record, out);
        todo!("format helper")
    }
}

/// Options a sink imposes on the formatter (decided when the pipeline is
/// built, never per record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Constraints {
    /// The message will be framed by a trailing LF (RFC 6587 non-transparent
    /// framing): every CR and LF inside it must be escaped (or the record
    /// refused, per config) so one log never becomes two.
    pub newline_terminated: bool,
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
