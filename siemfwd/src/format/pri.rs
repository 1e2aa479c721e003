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
//! The value is checked once, at build time, and the whole `<N>` is then
//! pre-rendered into the header.

use super::Error;

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

/// Largest facility code (local7).
const MAX_FACILITY: u8 = 23;
/// Largest severity code (debug).
const MAX_SEVERITY: u8 = 7;

/// A facility or severity from its name or number; `key` names the config
/// key in the error.
fn lookup(value: &str, table: &[(&str, u8)], max: u8, key: &str) -> Result<u8, Error> {
    let v = value.trim();
    if let Some(&(_, code)) = table.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)) {
        return Ok(code);
    }
    // Numbers: plain decimal only, so "0x10" or "+3" are refused rather than
    // guessed at.
    if !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = v.parse::<u8>() {
            if n <= max {
                return Ok(n);
            }
        }
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

/// Parse the `format.facility` setting.
///
/// # Errors
/// [`Error::Config`] listing the allowed names.
pub fn parse_facility(value: &str) -> Result<u8, Error> {
    lookup(value, FACILITIES, MAX_FACILITY, "format.facility")
}

/// Parse the `format.severity` setting.
///
/// # Errors
/// [`Error::Config`] listing the allowed names.
pub fn parse_severity(value: &str) -> Result<u8, Error> {
    lookup(value, SEVERITIES, MAX_SEVERITY, "format.severity")
}

/// PRIVAL = facility × 8 + severity (RFC 5424 §6.2.1); at most 191 for valid
/// inputs.
pub fn prival(facility: u8, severity: u8) -> u8 {
    facility * 8 + severity
}

/// Append `<PRIVAL>`.
pub(crate) fn write_pri(facility: u8, severity: u8, out: &mut Vec<u8>) {
    out.push(b'<');
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(prival(facility, severity))
            .as_bytes(),
    );
    out.push(b'>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        for f in 0..=MAX_FACILITY {
            for s in 0..=MAX_SEVERITY {
                let mut out = Vec::new();
                write_pri(f, s, &mut out);
                let expected = format!("<{}>", u32::from(f) * 8 + u32::from(s));
                assert_eq!(out, expected.as_bytes());
            }
        }
        assert_eq!(prival(23, 7), 191);
    }

    #[test]
    fn facility_names_map_to_rfc_codes() {
        assert_eq!(parse_facility("kern").ok(), Some(0));
        assert_eq!(parse_facility("user").ok(), Some(1));
        assert_eq!(parse_facility("auth").ok(), Some(4));
        assert_eq!(parse_facility("authpriv").ok(), Some(10));
        assert_eq!(parse_facility("audit").ok(), Some(13));
        assert_eq!(parse_facility("security").ok(), Some(13));
        assert_eq!(parse_facility("console").ok(), Some(14));
        assert_eq!(parse_facility("clock").ok(), Some(15));
        for i in 0..8u8 {
            assert_eq!(parse_facility(&format!("local{i}")).ok(), Some(16 + i));
        }
        assert_eq!(parse_facility("LOCAL3").ok(), Some(19));
    }

    #[test]
    fn severity_names_and_synonyms_map_to_rfc_codes() {
        assert_eq!(parse_severity("emerg").ok(), Some(0));
        assert_eq!(parse_severity("emergency").ok(), Some(0));
        assert_eq!(parse_severity("alert").ok(), Some(1));
        assert_eq!(parse_severity("crit").ok(), Some(2));
        assert_eq!(parse_severity("error").ok(), Some(3));
        assert_eq!(parse_severity("warn").ok(), Some(4));
        assert_eq!(parse_severity("notice").ok(), Some(5));
        assert_eq!(parse_severity("informational").ok(), Some(6));
        assert_eq!(parse_severity("Debug").ok(), Some(7));
    }

    #[test]
    fn numbers_are_accepted_within_range() {
        assert_eq!(parse_facility("0").ok(), Some(0));
        assert_eq!(parse_facility("23").ok(), Some(23));
        assert_eq!(parse_severity("7").ok(), Some(7));
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
