//! The `[[transforms]]` tables: an ordered list of declarative steps, each
//! with an optional `when`.
//!
//! ```toml
//! [[transforms]]
//! type = "severity"
//! value = "warning"
//! when = { field = "event.errorCode", exists = true }
//!
//! [[transforms]]
//! type = "filter"
//! when = { field = "event.eventRW", equals = "Read" }
//! ```
//!
//! docs/transforms.md has every step with recipes; [`super::build`] checks
//! and compiles them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::when::WhenConfig;

/// One step as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformConfig {
    /// Leave out the records the (required) `when` holds for.
    Filter {
        /// Which records to leave out.
        when: Option<WhenConfig>,
    },
    /// Set the record's severity.
    Severity(LevelConfig),
    /// Set the record's facility.
    Facility(LevelConfig),
    /// Rename fields: `fields = { old = "new" }`.
    Rename {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// Old name → new name.
        fields: BTreeMap<String, String>,
    },
    /// Remove fields by name or glob (`*` matches any run of bytes).
    Drop {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// Names or globs.
        fields: Vec<String>,
    },
    /// Keep only the fields named (names or globs), in their order.
    Keep {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// Names or globs.
        fields: Vec<String>,
    },
    /// Set a field to a template's rendering (replacing its first value,
    /// or appended when the record has no such field).
    Set {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// The field to set.
        field: String,
        /// A template: text with `{field}` placeholders.
        value: String,
    },
    /// A lookup table from a field's value to another value.
    Map {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// The field looked up.
        field: String,
        /// Where the result goes; default: `field` itself.
        to: Option<String>,
        /// Value → value.
        map: BTreeMap<String, String>,
        /// For a value not in `map`, or a missing field; without it those
        /// are left alone.
        default: Option<String>,
    },
    /// Set a field only where it is missing or empty.
    Default {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// The field.
        field: String,
        /// A template.
        value: String,
    },
    /// Set a field to the first non-empty value of other fields.
    Coalesce {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// The field set.
        field: String,
        /// The fields tried, in order.
        from: Vec<String>,
        /// When none has a value; without it the record is left alone.
        default: Option<String>,
    },
    /// A field holding a JSON object becomes fields (`event` →
    /// `event.eventName`, `event.userIdentity.userName`, …).
    ParseJson {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// The field holding the JSON.
        field: String,
        /// Put before every new field's name; default: the field's name
        /// and the separator (`event.`).
        prefix: Option<String>,
        /// Joins the names of nested objects; default `.`.
        separator: Option<String>,
        /// Nested objects followed at most this deep (1: only the top
        /// level); deeper ones stay JSON text. Default 10.
        max_depth: Option<usize>,
        /// Keep the field parsed as well (default: the new fields replace it).
        #[serde(default)]
        keep_original: bool,
    },
    /// Header fields from templates.
    Header {
        /// Only for records this holds for.
        when: Option<WhenConfig>,
        /// HOSTNAME.
        hostname: Option<String>,
        /// APP-NAME (RFC 5424) or TAG (RFC 3164).
        app_name: Option<String>,
        /// PROCID.
        procid: Option<String>,
        /// MSGID (RFC 5424).
        msgid: Option<String>,
    },
}

/// Where a severity or facility comes from: a literal `value`, or the field
/// `from` (holding a name or a number, or a key of `map`), with a `default`
/// for a field that is missing or holds something else.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LevelConfig {
    /// Only for records this holds for.
    pub when: Option<WhenConfig>,
    /// A name (`warning`, `local4`) or number.
    pub value: Option<String>,
    /// The field to read it from.
    pub from: Option<String>,
    /// The field's value → a name or number.
    pub map: Option<BTreeMap<String, String>>,
    /// When the field is missing, or its value is neither in `map` nor a
    /// name or number: this. Without it such a record keeps what it had.
    pub default: Option<String>,
}

impl TransformConfig {
    /// Its `when`, if any.
    pub fn when(&self) -> Option<&WhenConfig> {
        match self {
            TransformConfig::Filter { when }
            | TransformConfig::Rename { when, .. }
            | TransformConfig::Drop { when, .. }
            | TransformConfig::Keep { when, .. }
            | TransformConfig::Set { when, .. }
            | TransformConfig::Map { when, .. }
            | TransformConfig::Default { when, .. }
            | TransformConfig::Coalesce { when, .. }
            | TransformConfig::ParseJson { when, .. }
            | TransformConfig::Header { when, .. } => when.as_ref(),
            TransformConfig::Severity(l) | TransformConfig::Facility(l) => l.when.as_ref(),
        }
    }
}
