//! The RFC 3164 (BSD syslog) header: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG:`
//! (RFC 3164 §4.1.2 HEADER, §4.1.3 MSG). `format/mod.rs` appends ` MSG`.
//!
//! Decisions a reader might want to undo, and why not:
//!
//! - **Local time of a configured zone** (`format.timezone`, default the
//!   host's zone). RFC 3164 timestamps carry no zone and no year, so receivers
//!   assume their own local time; the zone is configurable because the SIEM
//!   is often not in the forwarder's zone. Zone rules (DST) come from `jiff`
//!   and the system tz database.
//! - **The day is space-padded** (`Feb  5`), as §4.1.2 requires; the seed's
//!   Python client zero-padded it, which strict parsers reject.
//! - **Months are English** whatever the locale (§4.1.2).
//! - **TAG is validated, not repaired**: §4.1.3 makes it 1–32 alphanumeric
//!   characters (the first non-alphanumeric ends it), so `my-app` would reach
//!   the SIEM as TAG `my`. Refusing at start-up beats a silent rename.
//!   `procid`, when set, follows as `[procid]`, then `:`.
//! - **HOSTNAME has no domain** (§4.1.2): the default host name is cut at its
//!   first dot (unless it is an IP address). A configured `hostname` is
//!   written as the user wrote it (it must still be printable ASCII without
//!   spaces), since they may want an IP address or a specific name.
//! - **No length cap here**: the 1024-byte limit of §4.1 is a transport
//!   limit, applied by the UDP sink's datagram cap.

use jiff::tz::TimeZone;

use super::civil::{push2, Civil, SecondCache};
use super::escape::is_printusascii;
use super::pri::Pri;
use super::rfc5424::{
    check_printusascii, fit_printusascii, header_field, HOSTNAME_MAX, PROCID_MAX,
};
use super::{Context, Error, FormatConfig, Header, Tally};
use crate::record::{Meta, Record};

/// RFC 3164 §4.1.3: TAG is at most 32 alphanumeric characters.
pub(crate) const TAG_MAX: usize = 32;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The zone for `format.timezone`: `UTC` always works (even without a tz
/// database); other names are looked up in the system tz database.
fn zone(name: Option<&str>) -> Result<TimeZone, Error> {
    match name {
        None => Ok(TimeZone::system()),
        Some(n) if n.eq_ignore_ascii_case("utc") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|e| Error::Config {
            key: "format.timezone".to_owned(),
            problem: format!(
                "unknown time zone {n:?} ({e}); use an IANA name such as \"Asia/Shanghai\", or \"UTC\""
            ),
        }),
    }
}

/// The host name without its domain, unless it is an IP address.
pub(crate) fn strip_domain(host: &[u8]) -> &[u8] {
    let is_ip = std::str::from_utf8(host)
        .ok()
        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok());
    if is_ip {
        return host;
    }
    match memchr::memchr(b'.', host) {
        Some(0) | None => host,
        Some(i) => &host[..i],
    }
}

/// Append `Mmm dd hh:mm:ss` in `zone`; within a second it comes from `cache`
/// (the zone lookup is the costly part).
fn write_timestamp(cache: &mut SecondCache<15>, zone: &TimeZone, secs: i64, out: &mut Vec<u8>) {
    cache.write(secs, out, |out| {
        // A time jiff cannot represent (beyond ±9999 years) gets offset 0:
        // the year is not printed anyway.
        let offset = jiff::Timestamp::from_second(secs)
            .map(|ts| i64::from(zone.to_offset(ts).seconds()))
            .unwrap_or(0);
        let c = Civil::from_unix(secs.saturating_add(offset));
        out.extend_from_slice(MONTHS[usize::from(c.month - 1)]);
        out.push(b' ');
        if c.day < 10 {
            out.push(b' ');
            out.push(b'0' + c.day);
        } else {
            push2(out, c.day);
        }
        out.push(b' ');
        c.push_clock(out);
    });
}

/// The RFC 3164 header with its constant parts pre-rendered.
#[derive(Debug)]
pub(crate) struct Rfc3164 {
    pri: Pri,
    /// ` HOSTNAME TAG[PROCID]:`.
    host_tag: Vec<u8>,
    /// The configured HOSTNAME, TAG and PROCID (empty when unset), for a
    /// record whose metadata overrides some of them.
    hostname: Vec<u8>,
    tag: Vec<u8>,
    procid: Vec<u8>,
    zone: TimeZone,
    clock: SecondCache<15>,
}

impl Rfc3164 {
    /// Validate the header settings; `default_hostname` is used when
    /// `config.hostname` is unset (already sanitized by the caller).
    pub(crate) fn build(
        config: &FormatConfig,
        pri: Pri,
        default_hostname: impl FnOnce() -> Vec<u8>,
    ) -> Result<Self, Error> {
        // Keys that mean nothing in RFC 3164: refuse rather than ignore, so
        // the user is not surprised by what reaches the SIEM.
        let only_5424 = |key: &str, what: &str| Error::Config {
            key: key.to_owned(),
            problem: format!(
                "{what} exists only in RFC 5424; remove it or set format.rfc = \"rfc5424\""
            ),
        };
        if config.msgid.is_some() {
            return Err(only_5424("format.msgid", "MSGID"));
        }
        if config.structured_data.is_some() {
            return Err(only_5424("format.structured_data", "STRUCTURED-DATA"));
        }
        if config.bom {
            return Err(only_5424("format.bom", "the UTF-8 BOM"));
        }

        let app = config.app_name.as_str();
        if app.is_empty() || app.len() > TAG_MAX || !app.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::Config {
                key: "format.app_name".to_owned(),
                problem: format!(
                    "{app:?} ({} characters) is not a valid RFC 3164 TAG: use 1–{TAG_MAX} \
                     ASCII letters and digits",
                    app.len()
                ),
            });
        }
        let hostname = match config.hostname.as_deref() {
            Some(h) => header_field("format.hostname", Some(h), HOSTNAME_MAX)?,
            None => strip_domain(&default_hostname()).to_vec(),
        };
        let mut host_tag = Vec::with_capacity(hostname.len() + app.len() + 16);
        host_tag.push(b' ');
        host_tag.extend_from_slice(&hostname);
        host_tag.push(b' ');
        host_tag.extend_from_slice(app.as_bytes());
        let mut procid_bytes = Vec::new();
        if let Some(procid) = config.procid.as_deref().filter(|p| !p.is_empty()) {
            check_printusascii("format.procid", procid)?;
            if procid.len() > PROCID_MAX || procid.contains(['[', ']']) {
                return Err(Error::Config {
                    key: "format.procid".to_owned(),
                    problem: format!(
                        "{procid:?} ({} characters) must be at most {PROCID_MAX} characters \
                         without '[' or ']'",
                        procid.len()
                    ),
                });
            }
            host_tag.push(b'[');
            host_tag.extend_from_slice(procid.as_bytes());
            host_tag.push(b']');
            procid_bytes = procid.as_bytes().to_vec();
        }
        host_tag.push(b':');

        Ok(Self {
            pri,
            host_tag,
            hostname,
            tag: app.as_bytes().to_vec(),
            procid: procid_bytes,
            zone: zone(config.timezone.as_deref())?,
            clock: SecondCache::new(),
        })
    }

    /// ` HOSTNAME TAG[PROCID]:` with the record's overrides made to fit
    /// (HOSTNAME: printable ASCII up to 255; TAG: letters and digits up to
    /// 32, the configured TAG if none is left; PROCID: printable ASCII
    /// without brackets up to 128, left out if none is left), counted when
    /// that changed them. A MSGID has no place in RFC 3164 and is not
    /// written.
    fn write_overridden(&self, meta: &Meta, out: &mut Vec<u8>, tally: &mut Tally) {
        out.push(b' ');
        match &meta.hostname {
            Some(h) => {
                tally.header_fields_sanitized += u64::from(fit_printusascii(h, HOSTNAME_MAX, out));
            }
            None => out.extend_from_slice(&self.hostname),
        }
        out.push(b' ');
        match &meta.app_name {
            Some(t) => {
                let start = out.len();
                out.extend(
                    t.iter()
                        .copied()
                        .filter(u8::is_ascii_alphanumeric)
                        .take(TAG_MAX),
                );
                if out.len() == start {
                    out.extend_from_slice(&self.tag);
                }
                tally.header_fields_sanitized += u64::from(out[start..] != t[..]);
            }
            None => out.extend_from_slice(&self.tag),
        }
        let start = out.len();
        match &meta.procid {
            Some(p) => {
                out.push(b'[');
                out.extend(
                    p.iter()
                        .copied()
                        .filter(|&b| is_printusascii(b) && b != b'[' && b != b']')
                        .take(PROCID_MAX),
                );
                tally.header_fields_sanitized += u64::from(out[start + 1..] != p[..]);
            }
            None => {
                out.push(b'[');
                out.extend_from_slice(&self.procid);
            }
        }
        if out.len() == start + 1 {
            // No PROCID: no brackets.
            out.truncate(start);
        } else {
            out.push(b']');
        }
        out.push(b':');
    }
}

impl Header for Rfc3164 {
    /// Append `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG:` (no trailing space).
    fn write(
        &mut self,
        record: &Record<'_>,
        meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.pri.write(meta, out);
        write_timestamp(&mut self.clock, &self.zone, record.time.secs(), out);
        if meta.overrides_fields() {
            self.write_overridden(meta, out, cx.tally);
        } else {
            out.extend_from_slice(&self.host_tag);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Rfc;
    use crate::record::{Facility, LogTime, Severity};

    fn config(tz: &str) -> FormatConfig {
        FormatConfig {
            rfc: Rfc::Rfc3164,
            timezone: Some(tz.to_owned()),
            ..FormatConfig::default()
        }
    }

    fn render_with(h: &mut Rfc3164, secs: i64, meta: &Meta) -> (String, Tally) {
        let mut out = Vec::new();
        let r = Record {
            time: LogTime::new(secs, 0).expect("valid time"),
            fields: Vec::new(),
        };
        let mut tally = Tally::default();
        let mut cx = Context {
            newline: None,
            tally: &mut tally,
        };
        h.write(&r, meta, &mut cx, &mut out).expect("written");
        (String::from_utf8(out).expect("ASCII header"), tally)
    }

    fn render(h: &mut Rfc3164, secs: i64) -> String {
        render_with(h, secs, &Meta::NONE).0
    }

    fn build(c: &FormatConfig) -> Result<Rfc3164, Error> {
        let pri = Pri::new(
            Facility::new(1).expect("user"),
            Severity::new(6).expect("info"),
        );
        Rfc3164::build(c, pri, || b"web01.example.com".to_vec())
    }

    #[test]
    fn rfc3164_record_metadata_sets_pri_and_fields_made_to_fit() {
        let mut h = build(&FormatConfig {
            procid: Some("42".to_owned()),
            ..config("UTC")
        })
        .expect("valid");
        let meta = Meta {
            facility: Facility::new(4),
            severity: Severity::new(5),
            hostname: Some(b"10.0.0.1".to_vec()),
            app_name: Some(b"Action-Trail".to_vec()),
            procid: Some(b"[7]".to_vec()),
            msgid: Some(b"ignored".to_vec()),
        };
        let (text, tally) = render_with(&mut h, 1_700_028_800, &meta);
        assert_eq!(text, "<37>Nov 15 06:13:20 10.0.0.1 ActionTrail[7]:");
        assert_eq!(tally.header_fields_sanitized, 2, "TAG and PROCID cleaned");
        // Nothing left of a TAG: the configured one; of a PROCID: none.
        let empty = Meta {
            app_name: Some(b"--".to_vec()),
            procid: Some(b"[]".to_vec()),
            ..Meta::NONE
        };
        let (text, _) = render_with(&mut h, 1_700_028_800, &empty);
        assert_eq!(text, "<14>Nov 15 06:13:20 web01 siemfwd:");
        // Only the hostname: the configured TAG[PROCID] stays.
        let host = Meta {
            hostname: Some(b"db1".to_vec()),
            ..Meta::NONE
        };
        let (text, tally) = render_with(&mut h, 1_700_028_800, &host);
        assert_eq!(text, "<14>Nov 15 06:13:20 db1 siemfwd[42]:");
        assert_eq!(tally.header_fields_sanitized, 0);
    }

    fn key_of(e: Result<Rfc3164, Error>) -> String {
        match e {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn rfc3164_header_layout() {
        let mut h = build(&config("UTC")).expect("valid");
        // 2023-11-15T06:13:20Z
        assert_eq!(
            render(&mut h, 1_700_028_800),
            "<14>Nov 15 06:13:20 web01 siemfwd:"
        );
    }

    #[test]
    fn rfc3164_day_is_space_padded() {
        let mut h = build(&config("UTC")).expect("valid");
        // 2024-02-05T01:02:03Z
        assert_eq!(
            render(&mut h, 1_707_094_923),
            "<14>Feb  5 01:02:03 web01 siemfwd:"
        );
    }

    #[test]
    fn rfc3164_uses_configured_zone() {
        let mut utc = build(&config("UTC")).expect("valid");
        let mut sh = build(&config("Asia/Shanghai")).expect("valid");
        let mut ny = build(&config("America/New_York")).expect("valid");
        // 2023-11-15T20:13:20Z: the next day in Shanghai (UTC+8).
        let t = 1_700_079_200;
        assert_eq!(render(&mut utc, t), "<14>Nov 15 20:13:20 web01 siemfwd:");
        assert_eq!(render(&mut sh, t), "<14>Nov 16 04:13:20 web01 siemfwd:");
        // New York is on EST (UTC-5) in November and EDT (UTC-4) in July.
        assert_eq!(render(&mut ny, t), "<14>Nov 15 15:13:20 web01 siemfwd:");
        assert_eq!(
            render(&mut ny, 1_689_451_200),
            "<14>Jul 15 16:00:00 web01 siemfwd:"
        );
    }

    #[test]
    fn rfc3164_months_are_english() {
        let mut h = build(&config("UTC")).expect("valid");
        let mut seen = Vec::new();
        for m in 0..12 {
            // The 20th of each month of 2023.
            let secs = jiff::civil::date(2023, m + 1, 20)
                .to_zoned(TimeZone::UTC)
                .expect("valid date")
                .timestamp()
                .as_second();
            seen.push(render(&mut h, secs)[4..7].to_owned());
        }
        assert_eq!(
            seen.join(" "),
            "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
        );
    }

    #[test]
    fn unknown_timezone_is_refused() {
        assert_eq!(key_of(build(&config("Mars/Olympus"))), "format.timezone");
    }

    #[test]
    fn rfc3164_tag_longer_than_32_is_refused() {
        let ok = FormatConfig {
            app_name: "a".repeat(32),
            ..config("UTC")
        };
        assert!(build(&ok).is_ok());
        let c = FormatConfig {
            app_name: "a".repeat(33),
            ..config("UTC")
        };
        assert_eq!(key_of(build(&c)), "format.app_name");
    }

    #[test]
    fn rfc3164_tag_must_be_alphanumeric() {
        for bad in ["my-app", "my app", "", "app:", "appé"] {
            let c = FormatConfig {
                app_name: bad.into(),
                ..config("UTC")
            };
            assert_eq!(key_of(build(&c)), "format.app_name", "{bad:?}");
        }
    }

    #[test]
    fn rfc3164_procid_goes_in_brackets() {
        let c = FormatConfig {
            procid: Some("4242".into()),
            ..config("UTC")
        };
        let mut h = build(&c).expect("valid");
        assert!(render(&mut h, 0).ends_with(" web01 siemfwd[4242]:"));
        let c = FormatConfig {
            procid: Some("4]2".into()),
            ..config("UTC")
        };
        assert_eq!(key_of(build(&c)), "format.procid");
    }

    #[test]
    fn rfc3164_default_hostname_has_no_domain() {
        assert_eq!(strip_domain(b"web01.example.com"), b"web01");
        assert_eq!(strip_domain(b"web01"), b"web01");
        assert_eq!(strip_domain(b"10.0.0.1"), b"10.0.0.1");
        assert_eq!(strip_domain(b"::1"), b"::1");
    }

    #[test]
    fn rfc3164_configured_hostname_is_kept() {
        let c = FormatConfig {
            hostname: Some("10.1.2.3".into()),
            ..config("UTC")
        };
        let mut h = build(&c).expect("valid");
        assert!(render(&mut h, 0).ends_with(" 10.1.2.3 siemfwd:"));
    }

    #[test]
    fn rfc3164_refuses_rfc5424_only_keys() {
        let c = FormatConfig {
            msgid: Some("x".into()),
            ..config("UTC")
        };
        assert_eq!(key_of(build(&c)), "format.msgid");
        let c = FormatConfig {
            bom: true,
            ..config("UTC")
        };
        assert_eq!(key_of(build(&c)), "format.bom");
    }
}
