//! The `cef` body: ArcSight's Common Event Format, parsed natively by
//! ArcSight and by Microsoft Sentinel's agent (into `CommonSecurityLog`).
//!
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`
//!
//! - Header fields: vendor, product and version are literals; signature ID
//!   and name may be templates (`signature_id = "{event.eventName}"`); all
//!   escaped and cut as `vendor.rs` says, to the lengths ArcSight keeps
//!   (vendor and product 63 bytes, version 31, signature ID 1023, name 512).
//! - Severity: the record's syslog severity (set by a transform, else
//!   `format.severity`) on the 0–10 scale of `vendor::scale`, or, with
//!   `severity_field`, that field's value when it is 0–10 or one of the
//!   words CEF allows (Unknown, Low, Medium, High, Very-High).
//! - Extension: `rt` first, the record's time in epoch milliseconds; then
//!   the record's fields in order, each under the CEF key `fields` maps it
//!   to, as a labelled custom field (`custom`: `cs1=… cs1Label=…`), or,
//!   per `rest`, under a key made from its name (`rest_prefix` +
//!   `eventUserIdentityUserName`; a made key that is one of CEF's own,
//!   such as a field named `src`, is written `unmappedSrc`: a log cannot
//!   set a CEF key by naming a field) or not at all. Keys named in the config
//!   must be CEF's own ([`KEYS`]) or a custom family (`csN`, `cnN`, `cfpN`,
//!   `c6aN`, `flexStringN`, `flexNumberN`, `flexDate1`, `deviceCustomDateN`,
//!   with their `…Label`); anything else is refused at build.
//! - Values: `\` → `\\`, `=` → `\=` (so no value can start a key of its
//!   own), CR → `\r`, LF → `\n` (counted in `newlines_escaped`); a NUL,
//!   which CEF cannot carry, becomes U+FFFD, as does every sequence that is
//!   not UTF-8 (counted in `invalid_utf8_values`). `|` is not escaped in the
//!   extension, as the format says. The body is thus free of CR, LF and NUL
//!   under any framing.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::escape::{write_escaped, Stops, REPLACEMENT};
use super::vendor::{scale, write_decimal, write_epoch_ms, FieldMap, HeaderField, Rest, RestKeys};
use super::{Body, Context, Error, Fields};
use crate::record::{Meta, Record, Severity};

/// `[format.body]` with `type = "cef"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CefConfig {
    /// `0` (default, CEF 0.1) or `1` (CEF 1.x).
    #[serde(default = "default_version", deserialize_with = "super::version_text")]
    pub version: String,
    /// Device Vendor (default `Alibaba Cloud`).
    #[serde(default = "default_vendor")]
    pub vendor: String,
    /// Device Product (default `Log Service`).
    #[serde(default = "default_product")]
    pub product: String,
    /// Device Version (default `1`).
    #[serde(default = "default_device_version")]
    pub device_version: String,
    /// Signature ID (Device Event Class ID), a template (default
    /// `{__topic__}`).
    #[serde(default = "default_event_class")]
    pub signature_id: String,
    /// Name, a template (default `{__topic__}`).
    #[serde(default = "default_event_class")]
    pub name: String,
    /// A field holding the CEF severity (0–10 or a CEF word), used when
    /// valid; otherwise the record's syslog severity on the scale.
    #[serde(default)]
    pub severity_field: Option<String>,
    /// Record field → CEF key (`"event.sourceIpAddress" = "src"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Record fields written as labelled custom fields.
    #[serde(default)]
    pub custom: Vec<CustomField>,
    /// The fields neither map names: `keep` (default) or `drop`.
    #[serde(default)]
    pub rest: Rest,
    /// Put before the keys made for the rest (default none).
    #[serde(default)]
    pub rest_prefix: String,
}

/// One labelled custom field: `cs1=<value> cs1Label=<label>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    /// The record field.
    pub field: String,
    /// A custom key (`cs1` … `cs6`, `cn1` … `cn3`, `flexString1`, …).
    pub key: String,
    /// What the SIEM shows as its name.
    pub label: String,
}

fn default_version() -> String {
    "0".to_owned()
}

fn default_vendor() -> String {
    "Alibaba Cloud".to_owned()
}

fn default_product() -> String {
    "Log Service".to_owned()
}

fn default_device_version() -> String {
    "1".to_owned()
}

fn default_event_class() -> String {
    "{__topic__}".to_owned()
}

/// CEF's own extension keys (the ArcSight dictionary as Microsoft
/// Sentinel's `CommonSecurityLog` maps it, plus the agent and geo keys of
/// the CEF standard), sorted for a binary search. The custom families are
/// checked by [`is_custom`].
pub(crate) const KEYS: &[&str] = &[
    "act",
    "agentDnsDomain",
    "agentNtDomain",
    "agentTranslatedAddress",
    "agt",
    "ahost",
    "aid",
    "amac",
    "app",
    "art",
    "at",
    "atz",
    "av",
    "cat",
    "cnt",
    "destinationDnsDomain",
    "destinationServiceName",
    "destinationTranslatedAddress",
    "destinationTranslatedPort",
    "deviceDirection",
    "deviceDnsDomain",
    "deviceExternalId",
    "deviceFacility",
    "deviceInboundInterface",
    "deviceNtDomain",
    "deviceOutboundInterface",
    "devicePayloadId",
    "deviceProcessName",
    "deviceTranslatedAddress",
    "dhost",
    "dlat",
    "dlong",
    "dmac",
    "dntdom",
    "dpid",
    "dpriv",
    "dproc",
    "dpt",
    "dst",
    "dtz",
    "duid",
    "duser",
    "dvc",
    "dvchost",
    "dvcmac",
    "dvcpid",
    "end",
    "eventId",
    "externalId",
    "fileCreateTime",
    "fileHash",
    "fileId",
    "fileModificationTime",
    "filePath",
    "filePermission",
    "fileType",
    "fname",
    "fsize",
    "in",
    "msg",
    "oldFileCreateTime",
    "oldFileHash",
    "oldFileId",
    "oldFileModificationTime",
    "oldFileName",
    "oldFilePath",
    "oldFilePermission",
    "oldFileSize",
    "oldFileType",
    "out",
    "outcome",
    "proto",
    "rawEvent",
    "reason",
    "request",
    "requestClientApplication",
    "requestContext",
    "requestCookies",
    "requestMethod",
    "rt",
    "shost",
    "slat",
    "slong",
    "smac",
    "sntdom",
    "sourceDnsDomain",
    "sourceServiceName",
    "sourceTranslatedAddress",
    "sourceTranslatedPort",
    "spid",
    "spriv",
    "sproc",
    "spt",
    "src",
    "start",
    "suid",
    "suser",
    "type",
];

/// The custom families and how many of each CEF defines.
const CUSTOM: &[(&str, u8)] = &[
    ("cs", 6),
    ("cn", 3),
    ("cfp", 4),
    ("c6a", 4),
    ("flexString", 2),
    ("flexNumber", 2),
    ("flexDate", 1),
    ("deviceCustomDate", 2),
];

/// `key` is a custom family's value key (`cs3`), or with `label` its label
/// key (`cs3Label`).
fn is_custom(key: &str, label: bool) -> bool {
    let key = if label {
        match key.strip_suffix("Label") {
            Some(k) => k,
            None => return false,
        }
    } else {
        key
    };
    CUSTOM.iter().any(|(family, count)| {
        key.strip_prefix(family)
            .and_then(|n| n.parse::<u8>().ok().filter(|_| !n.starts_with('0')))
            .is_some_and(|n| (1..=*count).contains(&n))
    })
}

/// A key the config may name: CEF's own, or a custom one with its label.
pub(crate) fn is_cef_key(key: &str) -> bool {
    KEYS.binary_search(&key).is_ok() || is_custom(key, false) || is_custom(key, true)
}

/// Where one mapped field goes.
#[derive(Debug)]
enum Target {
    /// ` key=value`.
    Key(Box<[u8]>),
    /// ` key=value keyLabel=label` (label escaped at build).
    Custom { key: Box<[u8]>, label: Box<[u8]> },
}

/// The `cef` body, built.
#[derive(Debug)]
pub(crate) struct Cef {
    /// `CEF:0|vendor|product|version|`, escaped at build.
    prefix: Box<[u8]>,
    signature_id: HeaderField,
    name: HeaderField,
    /// The syslog severity of a record that has none of its own.
    default_severity: Severity,
    severity_field: Option<Box<[u8]>>,
    map: FieldMap<Target>,
    rest: Rest,
    rest_keys: RestKeys,
}

impl Cef {
    pub(crate) fn build(config: &CefConfig, default_severity: Severity) -> Result<Self, Error> {
        let key = |name: &str| format!("format.body.{name}");
        let bad = |name: &str, problem: String| Error::Config {
            key: key(name),
            problem,
        };
        if !matches!(config.version.as_str(), "0" | "1") {
            return Err(bad(
                "version",
                format!(
                    "{:?} is not a CEF version: 0 (CEF 0.1) or 1 (CEF 1.x)",
                    config.version
                ),
            ));
        }
        let mut prefix = format!("CEF:{}|", config.version).into_bytes();
        for (name, text, cap) in [
            ("vendor", &config.vendor, 63),
            ("product", &config.product, 63),
            ("device_version", &config.device_version, 31),
        ] {
            prefix.extend_from_slice(&HeaderField::literal(text, &key(name), cap)?);
            prefix.push(b'|');
        }
        if !config
            .rest_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(bad(
                "rest_prefix",
                format!(
                    "{:?}: a CEF key is letters and digits only, and so must its prefix be",
                    config.rest_prefix
                ),
            ));
        }
        let mut map = FieldMap::default();
        for (field, cef_key) in &config.fields {
            if cef_key == "rt" || is_custom(cef_key, true) {
                return Err(bad(
                    &format!("fields.{field:?}"),
                    format!(
                        "{cef_key:?} is written by the body itself (rt: the record's time; a \
                         label: by `custom`)"
                    ),
                ));
            }
            if !is_cef_key(cef_key) {
                return Err(bad(
                    &format!("fields.{field:?}"),
                    format!(
                        "{cef_key:?} is not a CEF key: use one of CEF's (src, dst, suser, act, \
                         msg, …) or a custom one (cs1…cs6 with `custom` for its label)"
                    ),
                ));
            }
            map.insert(field.as_bytes(), Target::Key(cef_key.as_bytes().into()));
        }
        for (i, custom) in config.custom.iter().enumerate() {
            if !is_custom(&custom.key, false) {
                return Err(bad(
                    &format!("custom[{i}].key"),
                    format!(
                        "{:?} is not a custom CEF key: cs1…cs6, cn1…cn3, cfp1…cfp4, c6a1…c6a4, \
                         flexString1…2, flexNumber1…2, flexDate1, deviceCustomDate1…2",
                        custom.key
                    ),
                ));
            }
            let mut label = Vec::new();
            write_value(custom.label.as_bytes(), &mut label);
            let target = Target::Custom {
                key: custom.key.as_bytes().into(),
                label: label.into(),
            };
            let taken = config.fields.values().any(|k| *k == custom.key)
                || config.custom[..i].iter().any(|c| c.key == custom.key);
            if taken {
                return Err(bad(
                    &format!("custom[{i}].key"),
                    format!("{:?} is written for another field already", custom.key),
                ));
            }
            if !map.insert(custom.field.as_bytes(), target) {
                return Err(bad(
                    &format!("custom[{i}].field"),
                    format!(
                        "{:?} is mapped already (in `fields` or an earlier `custom`)",
                        custom.field
                    ),
                ));
            }
        }
        Ok(Self {
            prefix: prefix.into(),
            signature_id: HeaderField::build(&config.signature_id, &key("signature_id"), 1023)?,
            name: HeaderField::build(&config.name, &key("name"), 512)?,
            default_severity,
            severity_field: config.severity_field.as_ref().map(|f| f.as_bytes().into()),
            map,
            rest: config.rest,
            // Made keys stay clear of every key CEF defines (mapped or not).
            rest_keys: RestKeys::new(config.rest_prefix.as_bytes(), |key| {
                std::str::from_utf8(key).is_ok_and(is_cef_key)
            }),
        })
    }

    /// The Severity header field: the record's own when `severity_field`
    /// holds a valid one, else its syslog severity on the scale.
    fn write_severity(&self, record: &Record<'_>, meta: &Meta, out: &mut Vec<u8>) {
        if let Some(value) = self
            .severity_field
            .as_deref()
            .and_then(|f| record.get(f))
            .filter(|v| is_cef_severity(v))
        {
            out.extend_from_slice(value);
            return;
        }
        let n = scale(meta.severity.unwrap_or(self.default_severity));
        write_decimal(i64::from(n), out);
    }
}

/// 0–10, or a word CEF allows for Severity.
fn is_cef_severity(v: &[u8]) -> bool {
    matches!(
        v,
        b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"6" | b"7" | b"8" | b"9" | b"10"
    ) || matches!(v, b"Unknown" | b"Low" | b"Medium" | b"High" | b"Very-High")
}

/// Append `value` escaped for the extension; returns the newlines escaped
/// and whether a NUL or a sequence that is not UTF-8 was replaced.
fn write_value(value: &[u8], out: &mut Vec<u8>) -> (u64, bool) {
    let mut newlines = 0;
    let mut nul = false;
    static STOPS: std::sync::OnceLock<Stops> = std::sync::OnceLock::new();
    let stops = STOPS.get_or_init(|| Stops::new(|b| matches!(b, b'\\' | b'=' | b'\r' | b'\n' | 0)));
    let invalid = write_escaped(value, out, stops, |b, out| match b {
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'=' => out.extend_from_slice(b"\\="),
        b'\r' => {
            out.extend_from_slice(b"\\r");
            newlines += 1;
        }
        b'\n' => {
            out.extend_from_slice(b"\\n");
            newlines += 1;
        }
        _ => {
            out.extend_from_slice(REPLACEMENT);
            nul = true;
        }
    });
    (newlines, invalid || nul)
}

impl Body for Cef {
    fn write(
        &self,
        fields: Fields<'_, '_>,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.extend_from_slice(&self.prefix);
        self.signature_id.write(record, out, cx.tally);
        out.push(b'|');
        self.name.write(record, out, cx.tally);
        out.push(b'|');
        self.write_severity(record, meta, out);
        out.extend_from_slice(b"|rt=");
        write_epoch_ms(record.time, out);
        let mut newlines = 0;
        let mut lossy = 0;
        for field in fields {
            out.push(b' ');
            let label = match self.map.get(&field.key) {
                Some(Target::Key(key)) => {
                    out.extend_from_slice(key);
                    None
                }
                Some(Target::Custom { key, label }) => {
                    out.extend_from_slice(key);
                    Some((key, label))
                }
                None if self.rest == Rest::Keep && self.rest_keys.write(&field.key, out) => None,
                None => {
                    out.pop();
                    continue;
                }
            };
            out.push(b'=');
            let (n, bad) = write_value(&field.value, out);
            newlines += n;
            lossy += u64::from(bad);
            if let Some((key, label)) = label {
                out.push(b' ');
                out.extend_from_slice(key);
                out.extend_from_slice(b"Label=");
                out.extend_from_slice(label);
            }
        }
        cx.tally.newlines_escaped += newlines;
        cx.tally.invalid_utf8_values += lossy;
        Ok(())
    }

    fn always_utf8(&self) -> bool {
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::vendor::{read_header, unescape_value, Parsed};
    use crate::format::Tally;
    use crate::record::{Field, LogTime};
    use proptest::prelude::*;

    /// A CEF reader written from the format's description, not from the
    /// encoder: the seven header fields after `CEF:` (a `\` takes the next
    /// byte as it is), then `key=value` pairs, a key being the letters and
    /// digits before an `=` that no `\` escapes, at the start or after a
    /// space; a value runs to the space before the next key, `\\`, `\=`,
    /// `\n`, `\r` undone.
    pub(crate) fn parse(msg: &[u8]) -> Option<Parsed> {
        let (header, rest) = read_header(msg.strip_prefix(b"CEF:")?, 7)?;
        let escaped =
            |at: usize| rest[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1;
        // Each key: (start, the `=` after it).
        let mut keys = Vec::new();
        for (at, _) in rest
            .iter()
            .enumerate()
            .filter(|(at, b)| **b == b'=' && !escaped(*at))
        {
            let start = rest[..at]
                .iter()
                .rposition(|b| !b.is_ascii_alphanumeric())
                .map_or(0, |p| p + 1);
            if start == at || (start > 0 && rest[start - 1] != b' ') {
                return None;
            }
            keys.push((start, at));
        }
        let pairs = keys
            .iter()
            .enumerate()
            .map(|(n, &(start, eq))| {
                let end = keys.get(n + 1).map_or(rest.len(), |&(next, _)| next - 1);
                (rest[start..eq].to_vec(), unescape_value(&rest[eq + 1..end]))
            })
            .collect();
        Some((header, pairs))
    }

    fn config(toml_text: &str) -> CefConfig {
        toml::from_str(toml_text).expect("cef config")
    }

    fn encode(cef: &Cef, record: &Record<'_>, meta: &Meta) -> (Vec<u8>, Tally) {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        let mut cx = Context {
            newline: None,
            tally: &mut tally,
        };
        let fields = Fields {
            iter: record.fields.iter(),
            exclude: &[],
        };
        cef.write(fields, record, meta, &mut cx, &mut out)
            .expect("cef never refuses");
        (out, tally)
    }

    fn info() -> Severity {
        Severity::new(6).expect("info")
    }

    fn actiontrail() -> Record<'static> {
        Record {
            time: LogTime::new(1_795_000_006, 250_000_000).expect("time"),
            fields: vec![
                Field::borrowed(b"__topic__", b"actiontrail_audit_event"),
                Field::borrowed(b"event.eventName", b"DeleteUser"),
                Field::borrowed(b"event.sourceIpAddress", b"121.153.46.186"),
                Field::borrowed(b"event.acsRegion", b"cn-hangzhou"),
                Field::borrowed(b"event.userIdentity.userName", b"bob"),
            ],
        }
    }

    #[test]
    fn an_actiontrail_event_maps_to_cef_keys_and_labelled_custom_strings() {
        let cef = Cef::build(
            &config(
                r#"
                signature_id = "{event.eventName}"
                name = "ActionTrail {event.eventName}"
                fields = { "event.sourceIpAddress" = "src", "event.userIdentity.userName" = "suser" }
                custom = [{ field = "event.acsRegion", key = "cs1", label = "Region" }]
                "#,
            ),
            info(),
        )
        .expect("builds");
        let (out, _) = encode(&cef, &actiontrail(), &Meta::NONE);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "CEF:0|Alibaba Cloud|Log Service|1|DeleteUser|ActionTrail DeleteUser|2|\
             rt=1795000006250 topic=actiontrail_audit_event eventEventName=DeleteUser \
             src=121.153.46.186 cs1=cn-hangzhou cs1Label=Region suser=bob"
        );
    }

    #[test]
    fn severity_comes_from_the_record_then_the_field_when_valid() {
        let cef = Cef::build(&config(r#"severity_field = "sev""#), info()).expect("builds");
        let mut r = actiontrail();
        let header = |r: &Record<'_>, meta: &Meta| parse(&encode(&cef, r, meta).0).expect("cef").0;
        assert_eq!(header(&r, &Meta::NONE)[6], b"2");
        let alert = Meta {
            severity: Severity::new(1),
            ..Meta::NONE
        };
        assert_eq!(header(&r, &alert)[6], b"9");
        r.fields.push(Field::borrowed(b"sev", b"Very-High"));
        assert_eq!(header(&r, &alert)[6], b"Very-High");
        r.fields.last_mut().expect("sev").value = std::borrow::Cow::Borrowed(b"11");
        assert_eq!(header(&r, &alert)[6], b"9", "11 is not a CEF severity");
    }

    #[test]
    fn config_mistakes_are_refused_with_their_key() {
        for (text, key) in [
            (
                r#"fields = { "a" = "sourceAddress" }"#,
                "format.body.fields.\"a\"",
            ),
            (r#"fields = { "a" = "cs7" }"#, "format.body.fields.\"a\""),
            ("version = 2", "format.body.version"),
            (
                r#"custom = [{ field = "a", key = "src", label = "x" }]"#,
                "format.body.custom[0].key",
            ),
            (
                r#"vendor = "a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q|r|s|t|u|v|w|x|y|z|0|1|2|3|""#,
                "format.body.vendor",
            ),
            (r#"name = "a{""#, "format.body.name"),
            (r#"vendor = "{event.vendor}""#, "format.body.vendor"),
            (r#"name = "a\n{f}""#, "format.body.name"),
            (r#"fields = { "a" = "rt" }"#, "format.body.fields.\"a\""),
            (
                r#"fields = { "a" = "cs1Label" }"#,
                "format.body.fields.\"a\"",
            ),
            (
                r#"fields = { "a" = "cs1" }
                   custom = [{ field = "b", key = "cs1", label = "x" }]"#,
                "format.body.custom[0].key",
            ),
            (r#"rest_prefix = "a_b""#, "format.body.rest_prefix"),
        ] {
            match Cef::build(&config(text), info()) {
                Err(Error::Config { key: got, .. }) => assert_eq!(got, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        for ok in [
            "cs6",
            "cs6Label",
            "cn3",
            "flexString2",
            "deviceCustomDate1",
            "c6a4",
            "src",
        ] {
            assert!(is_cef_key(ok), "{ok}");
        }
        for bad in ["cs0", "cs7", "cs01", "Label", "csLabel", "SRC", "flexDate2"] {
            assert!(!is_cef_key(bad), "{bad}");
        }
        assert!(
            KEYS.windows(2).all(|w| w[0] < w[1]),
            "KEYS sorted for the search"
        );
    }

    #[test]
    fn a_field_cannot_take_a_key_of_cef_by_its_name() {
        let cef = Cef::build(&config(r#"fields = { "ip" = "src" }"#), info()).expect("builds");
        let record = Record {
            time: LogTime::default(),
            fields: vec![
                Field::borrowed(b"ip", b"10.0.0.1"),
                Field::borrowed(b"src", b"6.6.6.6"),
                Field::borrowed(b"rt", b"0"),
                // Keys are case-sensitive: `rT` is not `rt`.
                Field::borrowed(b"r.t", b"0"),
                Field::borrowed(b"cs1_Label", b"forged"),
                Field::borrowed(b"suser", b"mallory"),
            ],
        };
        let (_, pairs) = parse(&encode(&cef, &record, &Meta::NONE).0).expect("cef");
        let keys: Vec<String> = pairs
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "rt",
                "src",
                "unmappedSrc",
                "unmappedRt",
                "rT",
                "unmappedCs1Label",
                "unmappedSuser"
            ]
        );
    }

    /// What a value becomes on the way: CEF carries UTF-8 without NUL.
    fn carried(value: &[u8]) -> Vec<u8> {
        String::from_utf8_lossy(value)
            .replace('\0', "\u{FFFD}")
            .into_bytes()
    }

    proptest! {
        #[test]
        fn hostile_values_come_back_and_never_forge_a_key_or_a_header_field(
            values in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        Just(b'|'), Just(b'='), Just(b'\\'), Just(b'\t'), Just(b'\r'),
                        Just(b'\n'), Just(0u8), Just(b' '), Just(b'a'), Just(0xff), Just(0xc3),
                        any::<u8>(),
                    ],
                    0..40,
                ),
                1..6,
            ),
            event_name in prop::collection::vec(any::<u8>(), 0..30),
        ) {
            let cef = Cef::build(
                &config(r#"
                    signature_id = "{name}"
                    name = "x{name}y"
                    rest = "drop"
                    fields = { "f0" = "msg", "f1" = "act", "f2" = "cs2", "f3" = "suser", "f4" = "request", "name" = "cat" }
                "#),
                info(),
            ).expect("builds");
            let names = ["f0", "f1", "f2", "f3", "f4"];
            let mut fields = vec![Field::borrowed(b"name", &event_name)];
            for (name, value) in names.iter().zip(&values) {
                fields.push(Field::borrowed(name.as_bytes(), value));
            }
            let record = Record { time: LogTime::default(), fields };
            let (out, _) = encode(&cef, &record, &Meta::NONE);
            prop_assert!(!out.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            let (header, pairs) = parse(&out).expect("parses");
            prop_assert_eq!(&header[0], b"0");
            // The name field: a `|` never shifts the header.
            let clean = String::from_utf8_lossy(&event_name)
                .replace(['\0', '\r', '\n'], " ")
                .into_bytes();
            prop_assert_eq!(&header[4][..], &clean[..clean.len().min(header[4].len())]);
            prop_assert_eq!(&header[6], b"2");
            let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| &k[..]).collect();
            let mut want: Vec<&[u8]> = vec![b"rt", b"cat"];
            want.extend(["msg", "act", "cs2", "suser", "request"].iter().take(values.len()).map(|k| k.as_bytes()));
            prop_assert_eq!(keys, want);
            prop_assert_eq!(&pairs[1].1, &carried(&event_name));
            for (i, value) in values.iter().enumerate() {
                prop_assert_eq!(&pairs[i + 2].1, &carried(value));
            }
        }
    }
}
