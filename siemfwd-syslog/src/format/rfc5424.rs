//! The RFC 5424 header: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD`
//! (RFC 5424 §6, ABNF in §6 and §6.2–6.3). The ` MSG` part (BOM and body) is
//! appended by `format/mod.rs`.
//!
//! Decisions a reader might want to undo, and why not:
//!
//! - **The STRUCTURED-DATA field is always written** (`-` when empty). The
//!   seed program left it out, so strict receivers read the first word of the
//!   message as malformed SD (`sls-protocol.md` §6.2).
//! - **Timestamps are UTC with a `Z`** and exactly six fraction digits
//!   (§6.2.3: RFC 3339 subset, `T` and `Z` upper case, at most 6 digits):
//!   a UTC instant is unambiguous across hosts and DST changes, and avoids
//!   the seed's wrong offsets (`+2400`, no colon). Microseconds are the
//!   record's nanoseconds truncated, never rounded, so a time never moves into
//!   the next second. Unix time has no leap second, so `:60` cannot occur.
//!   A time outside years 0000–9999 cannot be written in RFC 3339 and becomes
//!   the NILVALUE (§6.2.3.1 allows it when no valid time is known).
//! - **Header fields are validated, not repaired**, when they come from the
//!   config (PRINTUSASCII, §6.2.4–6.2.7 length limits): a bad `app_name` is a
//!   mistake the user should hear about at start-up, not a silent rewrite.
//!   Only the default hostname, which the user did not write, is cleaned.
//! - **SD-IDs without `@` must be IANA-registered** (§6.3.2, §7), and then
//!   their PARAM-NAMEs must be the registered ones; private IDs are
//!   `name@<enterprise number>`. A value comes from the record's first field
//!   of that name; fields absent from a record are left out, and an element
//!   with no parameter at all is left out too, giving `-`.

use super::civil::{push2, Civil, SecondCache};
use super::escape::{escape_sd_value, is_printusascii};
use super::pri::Pri;
use super::{
    refused, Context, Error, FormatConfig, Header, NewlinePolicy, StructuredDataConfig, Tally,
};
use crate::record::{LogTime, Meta, Record};

/// RFC 5424 §6.2.4: HOSTNAME is at most 255 PRINTUSASCII.
pub(crate) const HOSTNAME_MAX: usize = 255;
/// RFC 5424 §6.2.5: APP-NAME is at most 48 PRINTUSASCII.
pub(crate) const APP_NAME_MAX: usize = 48;
/// RFC 5424 §6.2.6: PROCID is at most 128 PRINTUSASCII.
pub(crate) const PROCID_MAX: usize = 128;
/// RFC 5424 §6.2.7: MSGID is at most 32 PRINTUSASCII.
pub(crate) const MSGID_MAX: usize = 32;
/// RFC 5424 §6.3.2–6.3.3: SD-ID and PARAM-NAME are 1–32 characters.
const SD_NAME_MAX: usize = 32;

/// The NILVALUE of RFC 5424 §6.
const NILVALUE: &[u8] = b"-";

/// SD-IDs registered with IANA (RFC 5424 §7) and their PARAM-NAMEs.
const REGISTERED_SD_IDS: &[(&str, &[&str])] = &[
    ("timeQuality", &["tzKnown", "isSynced", "syncAccuracy"]),
    ("origin", &["ip", "enterpriseId", "software", "swVersion"]),
    ("meta", &["sequenceId", "sysUpTime", "language"]),
];

/// First and last Unix second whose UTC year has four digits (0000–9999).
const FIRST_4_DIGIT_YEAR_SEC: i64 = -62_167_219_200;
const LAST_4_DIGIT_YEAR_SEC: i64 = 253_402_300_799;

/// A configured header field: `value` if set and non-empty, else NILVALUE;
/// refused unless PRINTUSASCII and at most `max` bytes.
pub(crate) fn header_field(key: &str, value: Option<&str>, max: usize) -> Result<Vec<u8>, Error> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(NILVALUE.to_vec());
    };
    check_printusascii(key, v)?;
    if v.len() > max {
        return Err(Error::Config {
            key: key.to_owned(),
            problem: format!(
                "{v:?} is {} characters long; at most {max} are allowed",
                v.len()
            ),
        });
    }
    Ok(v.as_bytes().to_vec())
}

/// Refuse anything but %d33–126 (no space, no control, no non-ASCII).
pub(crate) fn check_printusascii(key: &str, v: &str) -> Result<(), Error> {
    if let Some((i, c)) = v
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii() && is_printusascii(c as u8)))
    {
        return Err(Error::Config {
            key: key.to_owned(),
            problem: format!(
                "{v:?} has {c:?} at byte {i}; only printable ASCII without spaces \
                 (codes 33–126) is allowed"
            ),
        });
    }
    Ok(())
}

/// Validate an SD-NAME (RFC 5424 §6.3.2/§6.3.3): 1–32 PRINTUSASCII except
/// `=`, space, `]` and `"`.
fn check_sd_name(key: &str, what: &str, name: &str) -> Result<(), Error> {
    let bad = |problem: String| Error::Config {
        key: key.to_owned(),
        problem,
    };
    if name.is_empty() || name.len() > SD_NAME_MAX {
        return Err(bad(format!(
            "{what} {name:?} is {} characters long; it must be 1–{SD_NAME_MAX}",
            name.len()
        )));
    }
    check_printusascii(key, name)?;
    if let Some(c) = name.chars().find(|c| matches!(c, '=' | ']' | '"')) {
        return Err(bad(format!(
            "{what} {name:?} contains {c:?}, which SD names may not hold"
        )));
    }
    Ok(())
}

/// Pre-rendered STRUCTURED-DATA element.
#[derive(Debug)]
struct StructuredData {
    /// `[SD-ID`.
    open: Vec<u8>,
    params: Vec<SdParam>,
}

/// One SD-PARAM: which record field fills it and its pre-rendered start.
#[derive(Debug)]
struct SdParam {
    /// The record field to read (also the PARAM-NAME).
    field: Box<[u8]>,
    /// ` NAME="`.
    prefix: Box<[u8]>,
}

impl StructuredData {
    fn build(config: &StructuredDataConfig) -> Result<Self, Error> {
        const ID_KEY: &str = "format.structured_data.id";
        const FIELDS_KEY: &str = "format.structured_data.fields";
        let id = config.id.as_str();
        check_sd_name(ID_KEY, "SD-ID", id)?;
        let registered = REGISTERED_SD_IDS.iter().find(|(name, _)| *name == id);
        match (registered, id.split_once('@')) {
            (Some(_), _) => {}
            (None, Some((name, pen)))
                if !name.is_empty()
                    && pen.starts_with(|c: char| c.is_ascii_digit())
                    && pen.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {}
            (None, _) => {
                return Err(Error::Config {
                    key: ID_KEY.to_owned(),
                    problem: format!(
                        "SD-ID {id:?} is neither IANA-registered (timeQuality, origin, meta) \
                         nor private of the form name@<enterprise number> (e.g. siemfwd@32473)"
                    ),
                })
            }
        }
        if config.fields.is_empty() {
            return Err(Error::Config {
                key: FIELDS_KEY.to_owned(),
                problem: "list at least one record field to copy into the SD element".to_owned(),
            });
        }
        let mut params = Vec::with_capacity(config.fields.len());
        for field in &config.fields {
            check_sd_name(FIELDS_KEY, "PARAM-NAME", field)?;
            if let Some((_, allowed)) = registered {
                if !allowed.contains(&field.as_str()) {
                    return Err(Error::Config {
                        key: FIELDS_KEY.to_owned(),
                        problem: format!(
                            "{field:?} is not a parameter of the registered SD-ID {id:?} \
                             (allowed: {}); use a private SD-ID such as name@32473 for other fields",
                            allowed.join(", ")
                        ),
                    });
                }
            }
            let prefix = format!(" {field}=\"").into_bytes();
            params.push(SdParam {
                field: field.as_bytes().into(),
                prefix: prefix.into_boxed_slice(),
            });
        }
        Ok(Self {
            open: format!("[{id}").into_bytes(),
            params,
        })
    }

    fn write(
        &self,
        record: &Record<'_>,
        out: &mut Vec<u8>,
        newline: Option<NewlinePolicy>,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let mut open = false;
        for SdParam { field, prefix } in &self.params {
            let Some(value) = record.get(field) else {
                continue;
            };
            if !open {
                out.extend_from_slice(&self.open);
                open = true;
            }
            out.extend_from_slice(prefix);
            let report = escape_sd_value(value, out, newline)
                .map_err(|_| refused(field, "structured data"))?;
            tally.newlines_escaped += report.newlines_escaped;
            tally.invalid_utf8_values += u64::from(report.invalid_utf8);
            out.push(b'"');
        }
        if open {
            out.push(b']');
        } else {
            out.extend_from_slice(NILVALUE);
        }
        Ok(())
    }
}

/// Append `YYYY-MM-DDThh:mm:ss.ffffffZ`, or NILVALUE outside years
/// 0000–9999; the part before the fraction comes from `cache` within a second.
fn write_timestamp(cache: &mut SecondCache<19>, time: LogTime, out: &mut Vec<u8>) {
    let secs = time.secs();
    if !(FIRST_4_DIGIT_YEAR_SEC..=LAST_4_DIGIT_YEAR_SEC).contains(&secs) {
        out.extend_from_slice(NILVALUE);
        return;
    }
    cache.write(secs, out, |out| {
        let c = Civil::from_unix(secs);
        // 0 ≤ year ≤ 9999 here, so both halves fit two digits.
        let year = c.year as u16;
        push2(out, (year / 100) as u8);
        push2(out, (year % 100) as u8);
        out.push(b'-');
        push2(out, c.month);
        out.push(b'-');
        push2(out, c.day);
        out.push(b'T');
        c.push_clock(out);
    });
    // `.ffffffZ` rendered on the stack and appended once.
    let mut fraction = *b".000000Z";
    let mut micros = time.nanos() / 1000;
    for d in fraction[1..7].iter_mut().rev() {
        *d = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.extend_from_slice(&fraction);
}

/// The RFC 5424 header with its constant parts pre-rendered.
#[derive(Debug)]
pub(crate) struct Rfc5424 {
    pri: Pri,
    /// ` HOSTNAME APP-NAME PROCID MSGID ` (both spaces included), and the
    /// NILVALUE STRUCTURED-DATA when none is configured: the whole
    /// constant part after the timestamp in one copy.
    fields: Vec<u8>,
    /// The configured HOSTNAME, APP-NAME, PROCID and MSGID (NILVALUE when
    /// unset), for a record whose metadata overrides some of them.
    configured: [Vec<u8>; 4],
    sd: Option<StructuredData>,
    clock: SecondCache<19>,
}

/// The length limits of HOSTNAME, APP-NAME, PROCID and MSGID, in
/// `Rfc5424::configured` order.
const FIELD_MAX: [usize; 4] = [HOSTNAME_MAX, APP_NAME_MAX, PROCID_MAX, MSGID_MAX];

impl Rfc5424 {
    /// Validate the header settings; `default_hostname` is used when
    /// `config.hostname` is unset (already sanitized by the caller).
    pub(crate) fn build(
        config: &FormatConfig,
        pri: Pri,
        default_hostname: impl FnOnce() -> Vec<u8>,
    ) -> Result<Self, Error> {
        let hostname = match config.hostname.as_deref() {
            Some(h) => header_field("format.hostname", Some(h), HOSTNAME_MAX)?,
            None => default_hostname(),
        };
        let app = header_field("format.app_name", Some(&config.app_name), APP_NAME_MAX)?;
        let procid = header_field("format.procid", config.procid.as_deref(), PROCID_MAX)?;
        let msgid = header_field("format.msgid", config.msgid.as_deref(), MSGID_MAX)?;
        let sd = config
            .structured_data
            .as_ref()
            .map(StructuredData::build)
            .transpose()?;

        let configured = [hostname, app, procid, msgid];
        let mut fields = Vec::new();
        for f in &configured {
            fields.push(b' ');
            fields.extend_from_slice(f);
        }
        fields.push(b' ');
        if sd.is_none() {
            fields.extend_from_slice(NILVALUE);
        }
        Ok(Self {
            pri: pri.followed_by(b"1 "),
            fields,
            configured,
            sd,
            clock: SecondCache::new(),
        })
    }

    /// ` HOSTNAME APP-NAME PROCID MSGID ` with the record's overrides, each
    /// made to fit its field (printable ASCII, the RFC's length; NILVALUE
    /// if nothing is left) and counted when that changed it.
    fn write_overridden(&self, meta: &Meta, out: &mut Vec<u8>, tally: &mut Tally) {
        let overrides = [&meta.hostname, &meta.app_name, &meta.procid, &meta.msgid];
        for ((configured, over), max) in self.configured.iter().zip(overrides).zip(FIELD_MAX) {
            out.push(b' ');
            match over {
                None => out.extend_from_slice(configured),
                Some(v) => {
                    if fit_printusascii(v, max, out) {
                        tally.header_fields_sanitized += 1;
                    }
                }
            }
        }
        out.push(b' ');
        if self.sd.is_none() {
            out.extend_from_slice(NILVALUE);
        }
    }
}

/// Append the PRINTUSASCII bytes of `v`, at most `max` of them, or NILVALUE
/// if none; true when what was written differs from `v`.
pub(crate) fn fit_printusascii(v: &[u8], max: usize, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.extend(v.iter().copied().filter(|&b| is_printusascii(b)).take(max));
    let written = out.len() - start;
    let changed = written != v.len();
    if written == 0 {
        out.extend_from_slice(NILVALUE);
    }
    changed
}

impl Header for Rfc5424 {
    /// Append the header up to and including STRUCTURED-DATA (no trailing
    /// space).
    fn write(
        &mut self,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        // `<PRI>1 `: PRI and VERSION.
        self.pri.write(meta, out);
        write_timestamp(&mut self.clock, record.time, out);
        if meta.overrides_fields() {
            self.write_overridden(meta, out, cx.tally);
        } else {
            out.extend_from_slice(&self.fields);
        }
        match &self.sd {
            Some(sd) => sd.write(record, out, cx.newline, cx.tally),
            // The NILVALUE STRUCTURED-DATA is already written.
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::escape::unescape_sd_value;
    use crate::record::{Facility, Field, Severity};
    use proptest::prelude::*;

    fn header(config: &FormatConfig) -> Result<Rfc5424, Error> {
        let pri = Pri::new(
            Facility::new(1).expect("user"),
            Severity::new(6).expect("info"),
        );
        Rfc5424::build(config, pri, || b"host".to_vec())
    }

    fn render_with(
        h: &mut Rfc5424,
        record: &Record<'_>,
        meta: &Meta,
        newline: Option<NewlinePolicy>,
    ) -> (Vec<u8>, Tally) {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        let mut cx = Context {
            newline,
            tally: &mut tally,
        };
        assert!(h.write(record, meta, &mut cx, &mut out).is_ok());
        (out, tally)
    }

    fn render(h: &mut Rfc5424, record: &Record<'_>, newline: Option<NewlinePolicy>) -> Vec<u8> {
        render_with(h, record, &Meta::NONE, newline).0
    }

    #[test]
    fn record_metadata_sets_pri_and_header_fields_made_to_fit() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let meta = Meta {
            severity: Severity::new(2),
            hostname: Some(b"web 01".to_vec()),
            msgid: Some(b"ConsoleSignin".to_vec()),
            app_name: Some("é".repeat(3).into_bytes()),
            ..Meta::NONE
        };
        let (out, tally) = render_with(&mut h, &at(1_700_028_800, 0), &meta, None);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<10>1 2023-11-15T06:13:20.000000Z web01 - - ConsoleSignin -"
        );
        // The hostname lost a space, the APP-NAME everything (so NILVALUE).
        assert_eq!(tally.header_fields_sanitized, 2);
        let long = Meta {
            msgid: Some(vec![b'm'; 40]),
            ..Meta::NONE
        };
        let (out, tally) = render_with(&mut h, &at(1_700_028_800, 0), &long, None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(&format!(" {} -", "m".repeat(MSGID_MAX))),
            "{text}"
        );
        assert_eq!(tally.header_fields_sanitized, 1);
        // A record without metadata is written exactly as configured.
        let plain = render(&mut h, &at(1_700_028_800, 0), None);
        assert_eq!(
            plain,
            b"<14>1 2023-11-15T06:13:20.000000Z host siemfwd - - -"
        );
    }

    fn at(secs: i64, nanos: u32) -> Record<'static> {
        Record {
            time: LogTime::new(secs, nanos).unwrap_or_default(),
            fields: Vec::new(),
        }
    }

    fn key_of(e: Result<Rfc5424, Error>) -> String {
        match e {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn header_layout_is_pri_version_timestamp_fields_sd() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(1_700_028_800, 0), None);
        assert_eq!(out, b"<14>1 2023-11-15T06:13:20.000000Z host siemfwd - - -");
    }

    #[test]
    fn timestamp_uses_uppercase_t_and_z() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(0, 0), None);
        let ts = &out[6..6 + 27];
        assert_eq!(ts, b"1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamp_has_six_fraction_digits_truncated_from_nanos() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(1_700_028_800, 123_456_999), None);
        assert!(
            out.starts_with(b"<14>1 2023-11-15T06:13:20.123456Z "),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let out = render(&mut h, &at(1_700_028_800, 999_999_999), None);
        assert!(out.starts_with(b"<14>1 2023-11-15T06:13:20.999999Z "));
        let out = render(&mut h, &at(1_700_028_800, 7_000), None);
        assert!(out.starts_with(b"<14>1 2023-11-15T06:13:20.000007Z "));
    }

    #[test]
    fn timestamp_before_1970_counts_nanos_forward_from_the_second() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(-1, 1_000), None);
        assert!(out.starts_with(b"<14>1 1969-12-31T23:59:59.000001Z "));
    }

    #[test]
    fn timestamp_cache_follows_the_second() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let a = render(&mut h, &at(1_700_028_800, 0), None);
        let b = render(&mut h, &at(1_700_028_801, 0), None);
        let c = render(&mut h, &at(1_700_028_800, 5_000), None);
        assert!(a.starts_with(b"<14>1 2023-11-15T06:13:20.000000Z"));
        assert!(b.starts_with(b"<14>1 2023-11-15T06:13:21.000000Z"));
        assert!(c.starts_with(b"<14>1 2023-11-15T06:13:20.000005Z"));
    }

    #[test]
    fn timestamp_outside_four_digit_years_is_nilvalue() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(LAST_4_DIGIT_YEAR_SEC + 1, 0), None);
        assert_eq!(out, b"<14>1 - host siemfwd - - -");
        let out = render(&mut h, &at(LAST_4_DIGIT_YEAR_SEC, 0), None);
        assert!(out.starts_with(b"<14>1 9999-12-31T23:59:59.000000Z"));
        let out = render(&mut h, &at(FIRST_4_DIGIT_YEAR_SEC, 0), None);
        assert!(out.starts_with(b"<14>1 0000-01-01T00:00:00.000000Z"));
    }

    #[test]
    fn structured_data_is_nilvalue_by_default() {
        let mut h = header(&FormatConfig::default()).expect("valid config");
        let out = render(&mut h, &at(0, 0), None);
        assert!(out.ends_with(b" - - -"));
    }

    #[test]
    fn empty_header_fields_are_nilvalue() {
        let config = FormatConfig {
            app_name: String::new(),
            procid: Some(String::new()),
            msgid: Some(String::new()),
            hostname: Some(String::new()),
            ..FormatConfig::default()
        };
        let mut h = header(&config).expect("valid config");
        assert!(render(&mut h, &at(0, 0), None).ends_with(b"Z - - - - -"));
    }

    #[test]
    fn configured_header_fields_are_written() {
        let config = FormatConfig {
            hostname: Some("siem-fwd.example.com".into()),
            app_name: "app".into(),
            procid: Some("123".into()),
            msgid: Some("ID47".into()),
            facility: "local4".into(),
            ..FormatConfig::default()
        };
        let pri = Pri::new(
            Facility::new(20).expect("local4"),
            Severity::new(3).expect("err"),
        );
        let mut h = Rfc5424::build(&config, pri, || b"unused".to_vec()).expect("valid config");
        let out = render(&mut h, &at(0, 0), None);
        assert_eq!(
            out,
            b"<163>1 1970-01-01T00:00:00.000000Z siem-fwd.example.com app 123 ID47 -"
        );
    }

    #[test]
    fn app_name_longer_than_48_is_refused() {
        let ok = FormatConfig {
            app_name: "a".repeat(48),
            ..FormatConfig::default()
        };
        assert!(header(&ok).is_ok());
        let config = FormatConfig {
            app_name: "a".repeat(49),
            ..FormatConfig::default()
        };
        let Err(Error::Config { key, problem }) = header(&config) else {
            panic!("49 characters must be refused");
        };
        assert_eq!(key, "format.app_name");
        assert!(
            problem.contains("49") && problem.contains("48"),
            "{problem}"
        );
    }

    #[test]
    fn app_name_with_space_is_refused() {
        let config = FormatConfig {
            app_name: "my app".into(),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.app_name");
    }

    #[test]
    fn msgid_longer_than_32_or_with_space_is_refused() {
        let config = FormatConfig {
            msgid: Some("m".repeat(33)),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.msgid");
        let config = FormatConfig {
            msgid: Some("a b".into()),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.msgid");
    }

    #[test]
    fn procid_longer_than_128_is_refused() {
        let config = FormatConfig {
            procid: Some("1".repeat(129)),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.procid");
    }

    #[test]
    fn hostname_longer_than_255_or_non_ascii_is_refused() {
        let config = FormatConfig {
            hostname: Some("h".repeat(256)),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.hostname");
        let config = FormatConfig {
            hostname: Some("hôte".into()),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.hostname");
        let config = FormatConfig {
            hostname: Some("h\tx".into()),
            ..FormatConfig::default()
        };
        assert_eq!(key_of(header(&config)), "format.hostname");
    }

    fn with_sd(id: &str, fields: &[&str]) -> FormatConfig {
        FormatConfig {
            structured_data: Some(StructuredDataConfig {
                id: id.into(),
                fields: fields.iter().map(|s| (*s).to_owned()).collect(),
            }),
            ..FormatConfig::default()
        }
    }

    fn record_with(fields: &[(&'static [u8], &'static [u8])]) -> Record<'static> {
        Record {
            time: LogTime::default(),
            fields: fields.iter().map(|(k, v)| Field::borrowed(k, v)).collect(),
        }
    }

    #[test]
    fn sd_element_holds_configured_fields_present_in_the_record() {
        let mut h = header(&with_sd("siemfwd@32473", &["__topic__", "missing", "k"]))
            .ok()
            .unwrap_or_else(|| unreachable!());
        let r = record_with(&[(b"k", b"v1"), (b"__topic__", b"t"), (b"k", b"v2")]);
        let out = render(&mut h, &r, None);
        assert!(
            out.ends_with(b" - - [siemfwd@32473 __topic__=\"t\" k=\"v1\"]"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn sd_is_nilvalue_when_no_configured_field_is_present() {
        let mut h = header(&with_sd("siemfwd@32473", &["a"])).expect("valid config");
        let out = render(&mut h, &record_with(&[(b"b", b"1")]), None);
        assert!(out.ends_with(b" - - -"));
    }

    #[test]
    fn sd_value_escapes_close_bracket() {
        let mut h = header(&with_sd("x@1", &["a"])).expect("valid config");
        let out = render(&mut h, &record_with(&[(b"a", b"x]\"\\y")]), None);
        assert!(
            out.ends_with(br#"[x@1 a="x\]\"\\y"]"#),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn sd_value_invalid_utf8_becomes_replacement_character() {
        let mut h = header(&with_sd("x@1", &["a"])).expect("valid config");
        let r = record_with(&[(b"a", b"\xff")]);
        let (out, tally) = render_with(&mut h, &r, &Meta::NONE, None);
        assert!(out.ends_with("[x@1 a=\"\u{FFFD}\"]".as_bytes()));
        assert_eq!(tally.invalid_utf8_values, 1);
    }

    #[test]
    fn sd_value_newlines_are_escaped_under_lf_framing() {
        let mut h = header(&with_sd("x@1", &["a"])).expect("valid config");
        let r = record_with(&[(b"a", b"1\n2")]);
        let out = render(&mut h, &r, Some(NewlinePolicy::Escape));
        assert!(out.ends_with(br#"[x@1 a="1\n2"]"#));
        let mut out = Vec::new();
        let mut tally = Tally::default();
        let mut cx = Context {
            newline: Some(NewlinePolicy::Refuse),
            tally: &mut tally,
        };
        let res = h.write(&r, &Meta::NONE, &mut cx, &mut out);
        assert!(matches!(res, Err(Error::Refused(_))));
    }

    #[test]
    fn sd_id_must_be_registered_or_private() {
        assert!(header(&with_sd("origin", &["ip", "software"])).is_ok());
        assert!(header(&with_sd("meta", &["sequenceId"])).is_ok());
        assert!(header(&with_sd("exampleSDID@32473", &["x"])).is_ok());
        for bad in ["siemfwd", "@32473", "siemfwd@", "siemfwd@abc"] {
            assert_eq!(
                key_of(header(&with_sd(bad, &["x"]))),
                "format.structured_data.id",
                "{bad}"
            );
        }
    }

    #[test]
    fn registered_sd_id_accepts_only_its_parameters() {
        assert_eq!(
            key_of(header(&with_sd("origin", &["host"]))),
            "format.structured_data.fields"
        );
    }

    #[test]
    fn sd_names_refuse_forbidden_characters_and_lengths() {
        for bad in [
            "a b@1",
            "a=b@1",
            "a]@1",
            "a\"@1",
            "",
            &format!("{}@1", "x".repeat(31)),
        ] {
            assert_eq!(
                key_of(header(&with_sd(bad, &["x"]))),
                "format.structured_data.id",
                "{bad:?}"
            );
        }
        for bad in ["a b", "a=b", "a]", "a\"", "", &"x".repeat(33), "é"] {
            assert_eq!(
                key_of(header(&with_sd("x@1", &[bad]))),
                "format.structured_data.fields",
                "{bad:?}"
            );
        }
        assert_eq!(
            key_of(header(&with_sd("x@1", &[]))),
            "format.structured_data.fields"
        );
    }

    /// PARAM-NAME and unescaped PARAM-VALUE pairs.
    type Params = Vec<(Vec<u8>, Vec<u8>)>;

    /// A small strict parser for one SD element `[ID k="v" ...]` as RFC 5424
    /// §6.3 defines it; returns the params (values unescaped) and what
    /// follows the element.
    fn parse_sd(input: &[u8]) -> Option<(Vec<u8>, Params, &[u8])> {
        let mut i = 0;
        if input.first() != Some(&b'[') {
            return None;
        }
        i += 1;
        let name = |i: &mut usize| {
            let start = *i;
            while *i < input.len() && !matches!(input[*i], b' ' | b'=' | b']' | b'"') {
                *i += 1;
            }
            (*i > start).then(|| input[start..*i].to_vec())
        };
        let id = name(&mut i)?;
        let mut params = Vec::new();
        loop {
            match input.get(i)? {
                b']' => return Some((id, params, &input[i + 1..])),
                b' ' => {
                    i += 1;
                    let k = name(&mut i)?;
                    if input.get(i)? != &b'=' || input.get(i + 1)? != &b'"' {
                        return None;
                    }
                    i += 2;
                    let start = i;
                    loop {
                        match input.get(i)? {
                            b'\\' => i += 2,
                            b'"' => break,
                            b']' => return None, // an unescaped ] inside a value
                            _ => i += 1,
                        }
                    }
                    params.push((k, unescape_sd_value(&input[start..i], false)));
                    i += 1;
                }
                _ => return None,
            }
        }
    }

    proptest! {
        #[test]
        fn timestamp_parses_back_as_the_record_time_truncated_to_micros(
            secs in FIRST_4_DIGIT_YEAR_SEC..=LAST_4_DIGIT_YEAR_SEC,
            nanos in 0u32..1_000_000_000,
        ) {
            let mut h = header(&FormatConfig::default()).expect("valid config");
            let out = render(&mut h, &at(secs, nanos), None);
            let ts = &out[6..6 + 27];
            // Fixed shape: YYYY-MM-DDThh:mm:ss.ffffffZ, seconds never 60.
            prop_assert_eq!(ts[10], b'T');
            prop_assert_eq!(ts[19], b'.');
            prop_assert_eq!(ts[26], b'Z');
            prop_assert!(&ts[17..19] < b"60".as_slice());
            let parsed: Result<jiff::Timestamp, _> =
                std::str::from_utf8(ts).unwrap_or_default().parse();
            prop_assert!(parsed.is_ok(), "{}", String::from_utf8_lossy(ts));
            let parsed = parsed.unwrap_or_default();
            let expected = i128::from(secs) * 1_000_000_000 + i128::from(nanos / 1000 * 1000);
            prop_assert_eq!(parsed.as_nanosecond(), expected);
        }

        #[test]
        fn sd_value_never_ends_early(
            a in "[\"\\\\\\] =a-zé€]{0,24}",
            b in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let mut h = header(&with_sd("x@1", &["a", "b"])).expect("valid config");
            let r = Record {
                time: LogTime::default(),
                fields: vec![Field::borrowed(b"a", a.as_bytes()), Field::borrowed(b"b", &b)],
            };
            let out = render(&mut h, &r, None);
            let sd_start = out.iter().position(|&c| c == b'[');
            prop_assert!(sd_start.is_some());
            let parsed = parse_sd(&out[sd_start.unwrap_or_default()..]);
            prop_assert!(parsed.is_some(), "unparsable: {}", String::from_utf8_lossy(&out));
            let (id, params, rest) = parsed.unwrap_or_default();
            prop_assert_eq!(id, b"x@1".to_vec());
            prop_assert!(rest.is_empty());
            let expected_b = String::from_utf8_lossy(&b).into_owned().into_bytes();
            prop_assert_eq!(
                params,
                vec![(b"a".to_vec(), a.into_bytes()), (b"b".to_vec(), expected_b)]
            );
        }
    }
}
