//! PRI: the `<N>` that opens every syslog message (RFC 5424 §6.2.1,
//! RFC 3164 §4.1.1), N = facility × 8 + severity.
//!
//! Facilities and severities are accepted by name or by number so that a
//! config copied from rsyslog (`local0`, `info`), from Python's
//! `logging.handlers.SysLogHandler` (`LOG_LOCAL0` → `16`) or from the seed
//! program (`FAC_USER` = 1) all work. Names are matched without regard to
//! case. Facility 13, 14 and 15 carry the names the RFC table gives them
//! (`security`/`audit`, `console`/`alert`, `clock`) because operating systems
//! disagree on them; both spellings are accepted.
//!
//! The configured value is checked once, at build time, and its `<N>` is
//! pre-rendered ([`Pri`]); a record whose metadata sets its own facility or
//! severity gets its `<N>` rendered when it is written (at most three
//! digits, no allocation).

use super::Error;
use crate::record::{Facility, Meta, Severity};

/// Facility names in numeric order (index = code); synonyms follow.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("audit", 13),
    ("console", 14),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severity names with their synonyms.
const SEVERITIES: &[(&str, u8)] = &[
    ("emerg", 0),
    ("emergency", 0),
    ("alert", 1),
    ("crit", 2),
    ("critical", 2),
    ("err", 3),
    ("error", 3),
    ("warning", 4),
    ("warn", 4),
    ("notice", 5),
    ("info", 6),
    ("informational", 6),
    ("debug", 7),
];

const MAX_FACILITY: u8 = Facility::MAX;
const MAX_SEVERITY: u8 = Severity::MAX;

/// A facility or severity from its name or number; `key` names the config
/// key in the error.
fn lookup<T>(
    value: &str,
    table: &[(&str, u8)],
    max: u8,
    key: &str,
    new: fn(u8) -> Option<T>,
) -> Result<T, Error> {
    if let Some(found) = find(value, table, new) {
        return Ok(found);
    }
    let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    Err(Error::Config {
        key: key.to_owned(),
        problem: format!(
            "unknown value {value:?}; use a number 0–{max} or one of: {}",
            names.join(", ")
        ),
    })
}

/// A facility or severity from its name or number, or `None`: what
/// [`lookup`] finds, without the message a config error needs (a value read
/// from a record is looked up for every record).
fn find<T>(value: &str, table: &[(&str, u8)], new: fn(u8) -> Option<T>) -> Option<T> {
    let v = value.trim();
    let named = table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|&(_, code)| code);
    // Numbers: plain decimal only, so "0x10" or "+3" are refused rather than
    // guessed at.
    let numbered = || {
        (!v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u8>().ok())
            .flatten()
    };
    named.or_else(numbered).and_then(new)
}

/// A facility from its name or number, as a value read from a record may
/// hold it; `None` when it is neither.
pub fn facility_in(value: &str) -> Option<Facility> {
    find(value, FACILITIES, Facility::new)
}

/// A severity from its name or number, as a value read from a record may
/// hold it; `None` when it is neither.
pub fn severity_in(value: &str) -> Option<Severity> {
    find(value, SEVERITIES, Severity::new)
}

/// A facility from its name or number, for any setting (`key` names it in
/// the error).
///
/// # Errors
/// [`Error::Config`] naming `key` and listing the allowed names.
pub fn facility_named(value: &str, key: &str) -> Result<Facility, Error> {
    lookup(value, FACILITIES, MAX_FACILITY, key, Facility::new)
}

/// A severity from its name or number, for any setting (`key` names it in
/// the error).
///
/// # Errors
/// [`Error::Config`] naming `key` and listing the allowed names.
pub fn severity_named(value: &str, key: &str) -> Result<Severity, Error> {
    lookup(value, SEVERITIES, MAX_SEVERITY, key, Severity::new)
}

/// Parse the `format.facility` setting.
///
/// # Errors
/// [`Error::Config`] listing the allowed names.
pub(crate) fn parse_facility(value: &str) -> Result<Facility, Error> {
    lookup(
        value,
        FACILITIES,
        MAX_FACILITY,
        "format.facility",
        Facility::new,
    )
}

/// Parse the `format.severity` setting.
///
/// # Errors
/// [`Error::Config`] listing the allowed names.
pub(crate) fn parse_severity(value: &str) -> Result<Severity, Error> {
    lookup(
        value,
        SEVERITIES,
        MAX_SEVERITY,
        "format.severity",
        Severity::new,
    )
}

/// PRIVAL = facility × 8 + severity (RFC 5424 §6.2.1); at most 191.
pub(crate) fn prival(facility: Facility, severity: Severity) -> u8 {
    facility.code() * 8 + severity.code()
}

/// Append `<PRIVAL>`.
fn write_pri(facility: Facility, severity: Severity, out: &mut Vec<u8>) {
    let n = prival(facility, severity);
    let mut buf = [b'<', 0, 0, 0, b'>'];
    let digits: &[u8] = if n >= 100 {
        buf[1..4].copy_from_slice(&[b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10]);
        &buf
    } else if n >= 10 {
        buf[1] = b'0' + n / 10;
        buf[2] = b'0' + n % 10;
        buf[3] = b'>';
        &buf[..4]
    } else {
        buf[1] = b'0' + n;
        buf[2] = b'>';
        &buf[..3]
    };
    out.extend_from_slice(digits);
}

/// The configured facility and severity with their `<N>` pre-rendered,
/// followed by what the header always writes after it (`1 ` in RFC 5424),
/// so the usual record costs one copy; a record's [`Meta`] may replace
/// either.
#[derive(Debug, Clone)]
pub(crate) struct Pri {
    facility: Facility,
    severity: Severity,
    /// `<N>` and the suffix.
    rendered: Vec<u8>,
    /// Where the suffix starts in `rendered`.
    suffix_at: usize,
}

impl Pri {
    pub(crate) fn new(facility: Facility, severity: Severity) -> Self {
        let mut rendered = Vec::with_capacity(8);
        write_pri(facility, severity, &mut rendered);
        let suffix_at = rendered.len();
        Self {
            facility,
            severity,
            rendered,
            suffix_at,
        }
    }

    /// The same PRI, always followed by `suffix`.
    pub(crate) fn followed_by(mut self, suffix: &[u8]) -> Self {
        self.rendered.truncate(self.suffix_at);
        self.rendered.extend_from_slice(suffix);
        self
    }

    /// Append the record's `<N>` and the suffix: the pre-rendered bytes
    /// unless `meta` sets a facility or severity.
    #[inline]
    pub(crate) fn write(&self, meta: &Meta, out: &mut Vec<u8>) {
        if meta.facility.is_none() && meta.severity.is_none() {
            out.extend_from_slice(&self.rendered);
        } else {
            write_pri(
                meta.facility.unwrap_or(self.facility),
                meta.severity.unwrap_or(self.severity),
                out,
            );
            out.extend_from_slice(&self.rendered[self.suffix_at..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        for f in 0..=MAX_FACILITY {
            for s in 0..=MAX_SEVERITY {
                let (fac, sev) = (Facility::new(f).unwrap(), Severity::new(s).unwrap());
                let mut out = Vec::new();
                write_pri(fac, sev, &mut out);
                let expected = format!("<{}>", u32::from(f) * 8 + u32::from(s));
                assert_eq!(out, expected.as_bytes());
            }
        }
        assert_eq!(
            prival(Facility::new(23).unwrap(), Severity::new(7).unwrap()),
            191
        );
    }

    #[test]
    fn pri_follows_the_record_metadata_and_keeps_the_configured_rest() {
        let pri = Pri::new(Facility::new(16).unwrap(), Severity::new(6).unwrap());
        let render = |meta: &Meta| {
            let mut out = Vec::new();
            pri.write(meta, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render(&Meta::NONE), "<134>");
        let sev = Meta {
            severity: Severity::new(2),
            ..Meta::NONE
        };
        assert_eq!(render(&sev), "<130>");
        let fac = Meta {
            facility: Facility::new(0),
            ..Meta::NONE
        };
        assert_eq!(render(&fac), "<6>");
        let both = Meta {
            facility: Facility::new(1),
            severity: Severity::new(3),
            ..Meta::NONE
        };
        assert_eq!(render(&both), "<11>");
        let pri = pri.followed_by(b"1 ");
        let mut out = Vec::new();
        pri.write(&Meta::NONE, &mut out);
        pri.write(&sev, &mut out);
        assert_eq!(out, b"<134>1 <130>1 ");
    }

    #[test]
    fn facility_names_map_to_rfc_codes() {
        assert_eq!(parse_facility("kern").ok().map(|v| v.code()), Some(0));
        assert_eq!(parse_facility("user").ok().map(|v| v.code()), Some(1));
        assert_eq!(parse_facility("auth").ok().map(|v| v.code()), Some(4));
        assert_eq!(parse_facility("authpriv").ok().map(|v| v.code()), Some(10));
        assert_eq!(parse_facility("audit").ok().map(|v| v.code()), Some(13));
        assert_eq!(parse_facility("security").ok().map(|v| v.code()), Some(13));
        assert_eq!(parse_facility("console").ok().map(|v| v.code()), Some(14));
        assert_eq!(parse_facility("clock").ok().map(|v| v.code()), Some(15));
        for i in 0..8u8 {
            assert_eq!(
                parse_facility(&format!("local{i}")).ok().map(|v| v.code()),
                Some(16 + i)
            );
        }
        assert_eq!(parse_facility("LOCAL3").ok().map(|v| v.code()), Some(19));
    }

    #[test]
    fn severity_names_and_synonyms_map_to_rfc_codes() {
        assert_eq!(parse_severity("emerg").ok().map(|v| v.code()), Some(0));
        assert_eq!(parse_severity("emergency").ok().map(|v| v.code()), Some(0));
        assert_eq!(parse_severity("alert").ok().map(|v| v.code()), Some(1));
        assert_eq!(parse_severity("crit").ok().map(|v| v.code()), Some(2));
        assert_eq!(parse_severity("error").ok().map(|v| v.code()), Some(3));
        assert_eq!(parse_severity("warn").ok().map(|v| v.code()), Some(4));
        assert_eq!(parse_severity("notice").ok().map(|v| v.code()), Some(5));
        assert_eq!(
            parse_severity("informational").ok().map(|v| v.code()),
            Some(6)
        );
        assert_eq!(parse_severity("Debug").ok().map(|v| v.code()), Some(7));
    }

    #[test]
    fn numbers_are_accepted_within_range() {
        assert_eq!(parse_facility("0").ok().map(|v| v.code()), Some(0));
        assert_eq!(parse_facility("23").ok().map(|v| v.code()), Some(23));
        assert_eq!(parse_severity("7").ok().map(|v| v.code()), Some(7));
        assert!(parse_facility("24").is_err());
        assert!(parse_severity("8").is_err());
        assert!(parse_facility("-1").is_err());
        assert!(parse_facility("0x10").is_err());
    }

    #[test]
    fn unknown_facility_is_refused_naming_key_and_allowed_values() {
        let Err(Error::Config { key, problem }) = parse_facility("locl0") else {
            panic!("locl0 must be refused");
        };
        assert_eq!(key, "format.facility");
        assert!(problem.contains("locl0"), "{problem}");
        assert!(
            problem.contains("local7") && problem.contains("kern"),
            "{problem}"
        );
        let Err(Error::Config { key, .. }) = parse_severity("loud") else {
            panic!("loud must be refused");
        };
        assert_eq!(key, "format.severity");
    }
}
