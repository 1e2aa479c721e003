//! The `leef` body: IBM QRadar's Log Event Extended Format, 1.0 and 2.0.
//!
//! `LEEF:1.0|Vendor|Product|Version|EventID|` then attributes separated by
//! TAB; `LEEF:2.0|Vendor|Product|Version|EventID|xHH|` then attributes
//! separated by the delimiter the header names (written in hex, which
//! QRadar reads for any character: default TAB, `x09`).
//!
//! - Header fields: vendor, product and version are literals, the EventID
//!   may be a template (`event_id = "{event.eventName}"`); escaped and cut
//!   as `vendor.rs` says (255 bytes each).
//! - Attributes: `devTime` first, the record's time in epoch milliseconds
//!   (QRadar reads `devTime` without `devTimeFormat` so), `sev` the record's
//!   syslog severity on the 1–10 scale of `vendor::scale`; then the record's
//!   fields in order under the key `fields` maps them to (`src`, `usrName`,
//!   `cat`, …; any key of ASCII letters, digits, `_`, `.` and `-`), and,
//!   per `rest`, the others under a key made from their names or not at
//!   all (a made key that is `devTime`, `sev` or a mapped attribute is
//!   written `unmappedSev`: a log cannot set its own severity by naming a
//!   field).
//! - Values: IBM leaves escaping to the reader; QRadar's and AxoSyslog's
//!   readers undo `\\` and `\=`, so `\` and `=` are escaped so. A TAB or
//!   the delimiter inside a value has no escape in any reader: it becomes a
//!   space, counted in `delimiters_replaced`. CR and LF are written `\r` and
//!   `\n` (counted in `newlines_escaped`), NUL and sequences that are not
//!   UTF-8 U+FFFD (LEEF is UTF-8; `invalid_utf8_values`). No value can thus
//!   end an attribute or start one.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::escape::{write_escaped, Stops, REPLACEMENT};
use super::vendor::{scale, write_decimal, write_epoch_ms, FieldMap, HeaderField, Rest, RestKeys};
use super::{Body, Context, Error, Fields, Tally};
use crate::record::{Meta, Record, Severity};

/// `[format.body]` with `type = "leef"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeefConfig {
    /// `1.0` (default: every QRadar reads it) or `2.0`.
    #[serde(default = "default_version", deserialize_with = "super::version_text")]
    pub version: String,
    /// LEEF 2.0: the attribute delimiter, one character (`^`) or its code
    /// in hex (`x5E`, `0x5E`); default TAB.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Vendor (default `Alibaba Cloud`).
    #[serde(default = "default_vendor")]
    pub vendor: String,
    /// Product (default `Log Service`).
    #[serde(default = "default_product")]
    pub product: String,
    /// Product version (default `1`).
    #[serde(default = "default_product_version")]
    pub product_version: String,
    /// EventID, a template (default `{__topic__}`); with the vendor and
    /// product it picks the QRadar event (QID).
    #[serde(default = "default_event_id")]
    pub event_id: String,
    /// Record field → attribute key (`"event.sourceIpAddress" = "src"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The fields the map does not name: `keep` (default) or `drop`.
    #[serde(default)]
    pub rest: Rest,
    /// Put before the keys made for the rest (default none).
    #[serde(default)]
    pub rest_prefix: String,
}

fn default_version() -> String {
    "1.0".to_owned()
}

fn default_vendor() -> String {
    "Alibaba Cloud".to_owned()
}

fn default_product() -> String {
    "Log Service".to_owned()
}

fn default_product_version() -> String {
    "1".to_owned()
}

fn default_event_id() -> String {
    "{__topic__}".to_owned()
}

/// The `leef` body, built.
#[derive(Debug)]
pub(crate) struct Leef {
    /// `LEEF:1.0|vendor|product|version|`, escaped at build.
    prefix: Box<[u8]>,
    event_id: HeaderField,
    /// `|` or, for 2.0, `|xHH|`: what follows the EventID.
    after_event_id: Box<[u8]>,
    /// Between attributes: one ASCII character.
    delimiter: u8,
    /// What a value escapes or replaces: `\`, `=`, CR, LF, NUL, TAB and
    /// the delimiter.
    stops: Stops,
    default_severity: Severity,
    map: FieldMap<Box<[u8]>>,
    rest: Rest,
    rest_keys: RestKeys,
}

/// `d` as LEEF 2.0 names a delimiter: one character, or `x`/`0x` and one
/// to four hex digits of its code. Only ASCII is taken (one byte, so a
/// value is checked for it with the other special bytes).
fn parse_delimiter(d: &str) -> Option<u8> {
    let code = match d.as_bytes() {
        [b] => u32::from(*b),
        _ => {
            let hex = d
                .strip_prefix("0x")
                .or_else(|| d.strip_prefix('x'))
                .filter(|h| {
                    (1..=4).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
                })?;
            u32::from_str_radix(hex, 16).ok()?
        }
    };
    u8::try_from(code).ok().filter(u8::is_ascii)
}

impl Leef {
    pub(crate) fn build(config: &LeefConfig, default_severity: Severity) -> Result<Self, Error> {
        let key = |name: &str| format!("format.body.{name}");
        let bad = |name: &str, problem: String| Error::Config {
            key: key(name),
            problem,
        };
        let two = match config.version.as_str() {
            "1.0" => false,
            "2.0" => true,
            other => {
                return Err(bad(
                    "version",
                    format!("{other:?} is not a LEEF version: \"1.0\" or \"2.0\""),
                ))
            }
        };
        let delimiter = match (&config.delimiter, two) {
            (None, _) => b'\t',
            (Some(_), false) => {
                return Err(bad(
                    "delimiter",
                    "LEEF 1.0 always separates attributes with TAB; a delimiter needs \
                     version = \"2.0\""
                        .to_owned(),
                ))
            }
            (Some(d), true) => parse_delimiter(d)
                // Not a byte that keys, values or escapes hold as they are.
                .filter(|c| {
                    !(c.is_ascii_alphanumeric()
                        || matches!(
                            c,
                            b'=' | b'\\' | b'|' | b'\r' | b'\n' | 0 | b' ' | b'_' | b'.' | b'-'
                        ))
                })
                .ok_or_else(|| {
                    bad(
                        "delimiter",
                        format!(
                            "{d:?} is not one ASCII character that keys and values do not hold \
                             as they are (not a letter, digit, space, `_`, `.`, `-`, `=`, `\\`, \
                             `|`, CR, LF or NUL), nor its code in hex (`x5E`, `0x09`)"
                        ),
                    )
                })?,
        };
        let mut prefix = format!("LEEF:{}|", config.version).into_bytes();
        for (name, text) in [
            ("vendor", &config.vendor),
            ("product", &config.product),
            ("product_version", &config.product_version),
        ] {
            prefix.extend_from_slice(&HeaderField::literal(text, &key(name), 255)?);
            prefix.push(b'|');
        }
        let key_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if !config.rest_prefix.bytes().all(key_byte) {
            return Err(bad(
                "rest_prefix",
                format!(
                    "{:?}: an attribute key here is ASCII letters, digits, `_`, `.` and `-`, \
                     and so must its prefix be",
                    config.rest_prefix
                ),
            ));
        }
        let after_event_id = if two {
            format!("|x{delimiter:02X}|").into_bytes()
        } else {
            b"|".to_vec()
        };
        let mut map = FieldMap::default();
        for (field, attribute) in &config.fields {
            let valid = !attribute.is_empty()
                && attribute
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !valid || matches!(attribute.as_str(), "devTime" | "sev") {
                return Err(bad(
                    &format!("fields.{field:?}"),
                    format!(
                        "{attribute:?} cannot be an attribute key here: use ASCII letters, \
                         digits, `_`, `.` or `-` (devTime and sev are written from the \
                         record's time and severity)"
                    ),
                ));
            }
            map.insert(field.as_bytes(), attribute.as_bytes().into());
        }
        Ok(Self {
            prefix: prefix.into(),
            event_id: HeaderField::build(&config.event_id, &key("event_id"), 255)?,
            after_event_id: after_event_id.into(),
            delimiter,
            stops: Stops::new(|b| {
                matches!(b, b'\\' | b'=' | b'\r' | b'\n' | b'\t' | 0) || b == delimiter
            }),
            default_severity,
            map,
            rest: config.rest,
            // Made keys stay clear of the attributes the body writes itself
            // and of every mapped one.
            rest_keys: RestKeys::new(config.rest_prefix.as_bytes(), {
                let mut taken: Vec<Vec<u8>> = config
                    .fields
                    .values()
                    .map(|a| a.as_bytes().to_vec())
                    .collect();
                taken.extend([b"devTime".to_vec(), b"sev".to_vec()]);
                move |key| taken.iter().any(|t| t.as_slice() == key)
            }),
        })
    }

    /// Append `value` escaped for an attribute.
    fn write_value(&self, value: &[u8], out: &mut Vec<u8>, tally: &mut Tally) {
        let mut replaced = 0;
        let mut newlines = 0;
        let mut nul = false;
        let invalid = write_escaped(value, out, &self.stops, |b, out| match b {
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
            0 => {
                out.extend_from_slice(REPLACEMENT);
                nul = true;
            }
            _ => {
                out.push(b' ');
                replaced += 1;
            }
        });
        tally.delimiters_replaced += replaced;
        tally.newlines_escaped += newlines;
        tally.invalid_utf8_values += u64::from(invalid || nul);
    }
}

impl Body for Leef {
    fn write(
        &self,
        fields: Fields<'_, '_>,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.extend_from_slice(&self.prefix);
        self.event_id.write(record, out, cx.tally);
        out.extend_from_slice(&self.after_event_id);
        out.extend_from_slice(b"devTime=");
        write_epoch_ms(record.time, out);
        out.push(self.delimiter);
        out.extend_from_slice(b"sev=");
        let sev = scale(meta.severity.unwrap_or(self.default_severity));
        write_decimal(i64::from(sev), out);
        for field in fields {
            let mark = out.len();
            out.push(self.delimiter);
            match self.map.get(&field.key) {
                Some(attribute) => out.extend_from_slice(attribute),
                None if self.rest == Rest::Keep && self.rest_keys.write(&field.key, out) => {}
                None => {
                    out.truncate(mark);
                    continue;
                }
            }
            out.push(b'=');
            self.write_value(&field.value, out, cx.tally);
        }
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
    use crate::record::{Field, LogTime};
    use proptest::prelude::*;

    /// A LEEF reader written from IBM's description ("LEEF event
    /// components"), not from the encoder: five header fields (six for
    /// 2.0, the last naming the delimiter as a character or `x`/`0x` hex),
    /// `\` taking the next byte as it is; then attributes split at the
    /// delimiter, each `key=value` split at its first `=` that no `\`
    /// escapes, `\\`, `\=`, `\n`, `\r` undone in the value.
    pub(crate) fn parse(msg: &[u8]) -> Option<Parsed> {
        let rest = msg.strip_prefix(b"LEEF:")?;
        let two = rest.starts_with(b"2.0|");
        let (header, rest) = read_header(rest, if two { 6 } else { 5 })?;
        let delimiter = if two {
            let d = std::str::from_utf8(&header[5]).ok()?;
            match d.strip_prefix("0x").or_else(|| d.strip_prefix('x')) {
                Some(hex) => u8::from_str_radix(hex, 16).ok()?,
                None => *d.as_bytes().first()?,
            }
        } else {
            b'\t'
        };
        let mut pairs = Vec::new();
        for attribute in rest.split(|&b| b == delimiter) {
            let mut eq = None;
            let mut i = 0;
            while i < attribute.len() {
                match attribute[i] {
                    b'\\' => i += 2,
                    b'=' => {
                        eq = Some(i);
                        break;
                    }
                    _ => i += 1,
                }
            }
            let eq = eq?;
            pairs.push((
                attribute[..eq].to_vec(),
                unescape_value(&attribute[eq + 1..]),
            ));
        }
        Some((header, pairs))
    }

    fn config(text: &str) -> LeefConfig {
        toml::from_str(text).expect("leef config")
    }

    fn encode(leef: &Leef, record: &Record<'_>, meta: &Meta) -> Vec<u8> {
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
        leef.write(fields, record, meta, &mut cx, &mut out)
            .expect("leef never refuses");
        out
    }

    fn info() -> Severity {
        Severity::new(6).expect("info")
    }

    #[test]
    fn leef_1_and_2_headers_and_attributes() {
        let record = Record {
            time: LogTime::new(1_795_000_006, 7_000_000).expect("time"),
            fields: vec![
                Field::borrowed(b"event.eventName", b"ConsoleSignin"),
                Field::borrowed(b"event.sourceIpAddress", b"10.0.0.1"),
            ],
        };
        let one = Leef::build(
            &config(
                r#"event_id = "{event.eventName}"
                       fields = { "event.sourceIpAddress" = "src" }"#,
            ),
            info(),
        )
        .expect("1.0");
        assert_eq!(
            String::from_utf8(encode(&one, &record, &Meta::NONE)).expect("utf-8"),
            "LEEF:1.0|Alibaba Cloud|Log Service|1|ConsoleSignin|devTime=1795000006007\tsev=2\t\
             eventEventName=ConsoleSignin\tsrc=10.0.0.1"
        );
        let two = Leef::build(
            &config(
                r#"version = "2.0"
                       delimiter = "^"
                       rest = "drop"
                       fields = { "event.sourceIpAddress" = "src" }"#,
            ),
            info(),
        )
        .expect("2.0");
        let alert = Meta {
            severity: Severity::new(1),
            ..Meta::NONE
        };
        assert_eq!(
            String::from_utf8(encode(&two, &record, &alert)).expect("utf-8"),
            "LEEF:2.0|Alibaba Cloud|Log Service|1||x5E|devTime=1795000006007^sev=9^src=10.0.0.1"
        );
    }

    #[test]
    fn config_mistakes_are_refused_with_their_key() {
        for (text, key) in [
            (r#"version = "3.0""#, "format.body.version"),
            (r#"delimiter = "^""#, "format.body.delimiter"),
            (
                "version = \"2.0\"\ndelimiter = \"ab\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"x3D\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"xZZ\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"é\"",
                "format.body.delimiter",
            ),
            (
                r#"fields = { "a" = "has space" }"#,
                "format.body.fields.\"a\"",
            ),
            (r#"fields = { "a" = "sev" }"#, "format.body.fields.\"a\""),
            (
                "version = \"2.0\"\ndelimiter = \" \"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"n\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"_\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"x+9\"",
                "format.body.delimiter",
            ),
            (
                "version = \"2.0\"\ndelimiter = \"x20\"",
                "format.body.delimiter",
            ),
            (r#"product = "{p}""#, "format.body.product"),
            (r#"rest_prefix = "a b""#, "format.body.rest_prefix"),
        ] {
            match Leef::build(&config(text), info()) {
                Err(Error::Config { key: got, .. }) => assert_eq!(got, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        for (d, byte) in [("^", b'^'), ("x09", b'\t'), ("0x7C", b'|'), ("x1", 1)] {
            assert_eq!(parse_delimiter(d), Some(byte), "{d}");
        }
    }

    #[test]
    fn a_field_cannot_set_the_severity_or_a_mapped_attribute_by_its_name() {
        let leef = Leef::build(&config(r#"fields = { "ip" = "src" }"#), info()).expect("builds");
        let record = Record {
            time: LogTime::default(),
            fields: vec![
                Field::borrowed(b"sev", b"10"),
                Field::borrowed(b"dev_time", b"0"),
                Field::borrowed(b"src", b"6.6.6.6"),
                Field::borrowed(b"ip", b"10.0.0.1"),
            ],
        };
        let (_, pairs) = parse(&encode(&leef, &record, &Meta::NONE)).expect("leef");
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let want = [
            ("devTime", "0"),
            ("sev", "2"),
            ("unmappedSev", "10"),
            ("devTime", "0"),
            ("unmappedSrc", "6.6.6.6"),
            ("src", "10.0.0.1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(pairs[..2], want[..2]);
        assert_eq!(pairs[2], want[2]);
        // `dev_time` makes `devTime`, which the body writes itself.
        assert_eq!(pairs[3].0, "unmappedDevTime");
        assert_eq!(pairs[4..], want[4..]);
    }

    /// What a value becomes: UTF-8 without NUL, the delimiter and TAB
    /// spaces.
    fn carried(value: &[u8], delimiter: u8) -> Vec<u8> {
        String::from_utf8_lossy(value)
            .replace('\0', "\u{FFFD}")
            .into_bytes()
            .into_iter()
            .map(|b| {
                if b == b'\t' || b == delimiter {
                    b' '
                } else {
                    b
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn hostile_values_come_back_and_never_forge_an_attribute(
            values in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        Just(b'|'), Just(b'='), Just(b'\\'), Just(b'\t'), Just(b'^'), Just(b'\r'),
                        Just(b'\n'), Just(0u8), Just(b' '), Just(b'a'), Just(0xff), any::<u8>(),
                    ],
                    0..40,
                ),
                1..5,
            ),
            two in any::<bool>(),
            event in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let text = if two {
                "version = \"2.0\"\ndelimiter = \"^\"\n"
            } else {
                ""
            };
            let leef = Leef::build(
                &config(&format!("{text}event_id = \"{{e}}\"\nrest = \"drop\"\nfields = {{ \"f0\" = \"cat\", \"f1\" = \"usrName\", \"f2\" = \"src\", \"f3\" = \"msg\" }}")),
                info(),
            ).expect("builds");
            let delimiter = if two { b'^' } else { b'\t' };
            let names = ["f0", "f1", "f2", "f3"];
            let mut fields = vec![Field::borrowed(b"e", &event)];
            for (name, value) in names.iter().zip(&values) {
                fields.push(Field::borrowed(name.as_bytes(), value));
            }
            let record = Record { time: LogTime::default(), fields };
            let out = encode(&leef, &record, &Meta::NONE);
            prop_assert!(!out.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            let (header, pairs) = parse(&out).expect("parses");
            let clean = String::from_utf8_lossy(&event).replace(['\0', '\r', '\n'], " ").into_bytes();
            prop_assert_eq!(&header[4], &clean);
            let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| &k[..]).collect();
            let mut want: Vec<&[u8]> = vec![b"devTime", b"sev"];
            want.extend(["cat", "usrName", "src", "msg"].iter().take(values.len()).map(|k| k.as_bytes()));
            prop_assert_eq!(keys, want);
            for (i, value) in values.iter().enumerate() {
                prop_assert_eq!(&pairs[i + 2].1, &carried(value, delimiter));
            }
        }
    }
}
