//! Parsing one received syslog message: RFC 5424 strictly, RFC 3164 on a
//! best-effort basis.
//!
//! The receiver exists to show a person (or a test) exactly what a sender put
//! on the wire, so the parser borrows every field from the received bytes and
//! reports a precise reason when a message is not RFC 5424.
//!
//! Decisions a reader might otherwise undo:
//! - A message whose PRI is followed by a VERSION and a space (`<PRI>1 `) is
//!   RFC 5424 and is held to RFC 5424 §6 (field lengths, PRINTUSASCII,
//!   the RFC 3339 TIMESTAMP subset of §6.2.3, SD syntax of §6.3). It does
//!   not fall back to RFC 3164 when it is malformed: a bad 5424 message must
//!   show up as an error, not as a plausible 3164 one (rsyslog and syslog-ng
//!   are lenient here, see `shared/peers/README.md`).
//! - Lenient spots, each on purpose: leading zeros in PRI, any VERSION 1–999,
//!   an unescaped `]` inside a quoted PARAM-VALUE (the quote delimits it),
//!   a repeated SD-ID (kept in order). PARAM-VALUE must be UTF-8 (§6.3.3).
//! - RFC 3164 (§4.1) is best effort: `<PRI>`, then optionally
//!   `Mmm dd hh:mm:ss HOSTNAME `, then optionally `TAG[PID]:` or `TAG:`; what
//!   is missing is `None` and the rest is MSG.
//! - The BOM (`EF BB BF`, RFC 5424 §6.4) is removed from MSG and reported in
//!   [`Parsed::bom`].

use std::borrow::Cow;
use std::fmt;

/// NILVALUE of RFC 5424 §6.
const NIL: &[u8] = b"-";
/// UTF-8 byte order mark, RFC 5424 §6.4.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which grammar a message matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424, "The Syslog Protocol".
    Rfc5424,
    /// RFC 3164, "BSD syslog", best effort.
    Rfc3164,
}

impl Format {
    /// Lower-case name, as written in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
        }
    }
}

/// One SD-ELEMENT of RFC 5424 §6.3.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    /// SD-ID, e.g. `exampleSDID@32473`.
    pub id: &'a str,
    /// SD-PARAMs in wire order; the values are unescaped (`\"`, `\\`, `\]`),
    /// borrowed when they contained no escape.
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A parsed syslog message, every field borrowed from the received bytes.
/// NILVALUE (`-`) and fields RFC 3164 does not have are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Which grammar matched.
    pub format: Format,
    /// PRIVAL (facility × 8 + severity), 0–191.
    pub pri: u8,
    /// VERSION (RFC 5424 only).
    pub version: Option<u16>,
    /// TIMESTAMP as sent (RFC 3339 for 5424, `Mmm dd hh:mm:ss` for 3164).
    pub timestamp: Option<&'a str>,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME (the TAG for RFC 3164).
    pub app_name: Option<&'a str>,
    /// PROCID (the `[pid]` for RFC 3164).
    pub procid: Option<&'a str>,
    /// MSGID (RFC 5424 only).
    pub msgid: Option<&'a str>,
    /// STRUCTURED-DATA exactly as sent; `None` for NILVALUE.
    pub structured_data: Option<&'a str>,
    /// STRUCTURED-DATA parsed.
    pub sd: Vec<SdElement<'a>>,
    /// True when MSG started with a UTF-8 BOM (removed from `msg`).
    pub bom: bool,
    /// MSG without the BOM; empty when absent.
    pub msg: &'a [u8],
    /// The whole message as received, without framing.
    pub raw: &'a [u8],
}

impl Parsed<'_> {
    /// Facility, 0 (kern) … 23 (local7).
    pub fn facility(&self) -> u8 {
        self.pri >> 3
    }

    /// Severity, 0 (emerg) … 7 (debug).
    pub fn severity(&self) -> u8 {
        self.pri & 7
    }
}

/// Keyword of a facility (RFC 5424 §6.2.1 table 1, names as in syslog.h).
pub(crate) fn facility_name(facility: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.get(usize::from(facility)).copied().unwrap_or("?")
}

/// Keyword of a severity (RFC 5424 §6.2.1 table 2).
pub(crate) fn severity_name(severity: u8) -> &'static str {
    const NAMES: [&str; 8] = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ];
    NAMES.get(usize::from(severity)).copied().unwrap_or("?")
}

/// Why a message matched neither grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No `<PRI>` at the start (RFC 5424 §6.2.1, RFC 3164 §4.1.1).
    #[error("no valid PRI at the start (expected `<0>`…`<191>`)")]
    Pri,
    /// It starts like RFC 5424 (`<PRI>VERSION SP`) but breaks its grammar.
    #[error("RFC 5424: {what} at byte {at}")]
    Rfc5424 {
        /// What is wrong.
        what: &'static str,
        /// Offset in the message where it went wrong.
        at: usize,
    },
}

/// Parse one message (without framing). See the module docs for the rules.
///
/// # Errors
///
/// [`ParseError`] when the message is neither RFC 5424 nor RFC 3164; the
/// caller still has the raw bytes.
pub fn parse(raw: &[u8]) -> Result<Parsed<'_>, ParseError> {
    let (pri, after_pri) = parse_pri(raw).ok_or(ParseError::Pri)?;
    match parse_version(raw, after_pri) {
        Some((version, header)) => parse_5424(raw, pri, version, header)
            .map_err(|(what, at)| ParseError::Rfc5424 { what, at }),
        None => Ok(parse_3164(raw, pri, after_pri)),
    }
}

/// `<` 1–3 digits `>` with a value ≤ 191; returns PRIVAL and the offset after `>`.
fn parse_pri(raw: &[u8]) -> Option<(u8, usize)> {
    if raw.first() != Some(&b'<') {
        return None;
    }
    let mut value: u16 = 0;
    let mut i = 1;
    while let Some(&b) = raw.get(i) {
        match b {
            b'0'..=b'9' if i <= 3 => value = value * 10 + u16::from(b - b'0'),
            b'>' if i > 1 => {
                return u8::try_from(value)
                    .ok()
                    .filter(|v| *v <= 191)
                    .map(|v| (v, i + 1))
            }
            _ => return None,
        }
        i += 1;
    }
    None
}

/// VERSION = NONZERO-DIGIT 0*2DIGIT, followed by SP. Returns the version and
/// the offset of the TIMESTAMP.
fn parse_version(raw: &[u8], at: usize) -> Option<(u16, usize)> {
    let rest = raw.get(at..)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&digits) || rest[0] == b'0' || rest.get(digits) != Some(&b' ') {
        return None;
    }
    let version = rest[..digits]
        .iter()
        .fold(0u16, |v, b| v * 10 + u16::from(b - b'0'));
    Some((version, at + digits + 1))
}

type Fail = (&'static str, usize);

/// A cursor over the message that reports errors with their offset.
struct Cursor<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn fail<T>(&self, what: &'static str) -> Result<T, Fail> {
        Err((what, self.pos))
    }

    /// A header field: 1..=max PRINTUSASCII up to the next SP (consumed),
    /// or NILVALUE. `last` fields may also end at the end of the message.
    fn field(&mut self, name: &'static str, max: usize) -> Result<Option<&'a str>, Fail> {
        let rest = &self.raw[self.pos..];
        let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let value = &rest[..len];
        if value.is_empty() {
            return self.fail(match name {
                "TIMESTAMP" => "empty TIMESTAMP",
                "HOSTNAME" => "empty HOSTNAME",
                "APP-NAME" => "empty APP-NAME",
                "PROCID" => "empty PROCID",
                _ => "empty MSGID",
            });
        }
        if len == rest.len() {
            return self.fail("message ends inside the header");
        }
        if len > max {
            return self.fail(match name {
                "HOSTNAME" => "HOSTNAME longer than 255",
                "APP-NAME" => "APP-NAME longer than 48",
                "PROCID" => "PROCID longer than 128",
                _ => "MSGID longer than 32",
            });
        }
        if let Some(bad) = value.iter().position(|b| !(33..=126).contains(b)) {
            self.pos += bad;
            return self.fail("header field byte is not PRINTUSASCII");
        }
        self.pos += len + 1;
        if value == NIL {
            return Ok(None);
        }
        // PRINTUSASCII was checked above, so this cannot fail.
        Ok(std::str::from_utf8(value).ok())
    }
}

fn parse_5424(raw: &[u8], pri: u8, version: u16, header: usize) -> Result<Parsed<'_>, Fail> {
    let mut c = Cursor { raw, pos: header };
    let ts_start = c.pos;
    let timestamp = c.field("TIMESTAMP", usize::MAX)?;
    if let Some(ts) = timestamp {
        if !valid_timestamp(ts.as_bytes()) {
            return Err(("TIMESTAMP is not RFC 3339 (RFC 5424 §6.2.3)", ts_start));
        }
    }
    let hostname = c.field("HOSTNAME", 255)?;
    let app_name = c.field("APP-NAME", 48)?;
    let procid = c.field("PROCID", 128)?;
    let msgid = c.field("MSGID", 32)?;

    let sd_start = c.pos;
    let mut sd = Vec::new();
    let structured_data = match raw.get(c.pos) {
        None => return c.fail("STRUCTURED-DATA missing"),
        Some(b'-') => {
            c.pos += 1;
            None
        }
        Some(b'[') => {
            while raw.get(c.pos) == Some(&b'[') {
                sd.push(parse_sd_element(&mut c)?);
            }
            // SD-IDs and names are ASCII and values were checked as UTF-8.
            std::str::from_utf8(&raw[sd_start..c.pos]).ok()
        }
        Some(_) => return c.fail("STRUCTURED-DATA must be `-` or start with `[`"),
    };
    let msg_all = match raw.get(c.pos) {
        None => &raw[raw.len()..],
        Some(b' ') => &raw[c.pos + 1..],
        Some(_) => return c.fail("expected SP or end after STRUCTURED-DATA"),
    };
    let (bom, msg) = match msg_all.strip_prefix(BOM) {
        Some(rest) => (true, rest),
        None => (false, msg_all),
    };
    Ok(Parsed {
        format: Format::Rfc5424,
        pri,
        version: Some(version),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        sd,
        bom,
        msg,
        raw,
    })
}

/// SD-NAME: 1–32 PRINTUSASCII except `=`, SP, `]`, `"` (RFC 5424 §6.3).
fn sd_name<'a>(c: &mut Cursor<'a>, what: &'static str) -> Result<&'a str, Fail> {
    let rest = &c.raw[c.pos..];
    let len = rest
        .iter()
        .position(|b| !(33..=126).contains(b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(rest.len());
    if len == 0 {
        return c.fail(what);
    }
    if len > 32 {
        return c.fail("SD-NAME longer than 32");
    }
    c.pos += len;
    // Checked as ASCII just above.
    std::str::from_utf8(&rest[..len]).or_else(|_| c.fail(what))
}

fn parse_sd_element<'a>(c: &mut Cursor<'a>) -> Result<SdElement<'a>, Fail> {
    c.pos += 1; // the `[`
    let id = sd_name(c, "SD-ID missing or invalid")?;
    let mut params = Vec::new();
    loop {
        match c.raw.get(c.pos) {
            Some(b']') => {
                c.pos += 1;
                return Ok(SdElement { id, params });
            }
            Some(b' ') => c.pos += 1,
            Some(_) => return c.fail("expected SP or `]` in SD-ELEMENT"),
            None => return c.fail("message ends inside STRUCTURED-DATA"),
        }
        let name = sd_name(c, "PARAM-NAME missing or invalid")?;
        if c.raw.get(c.pos) != Some(&b'=') {
            return c.fail("expected `=` after PARAM-NAME");
        }
        c.pos += 1;
        if c.raw.get(c.pos) != Some(&b'"') {
            return c.fail("expected `\"` to open PARAM-VALUE");
        }
        c.pos += 1;
        let value = param_value(c)?;
        params.push((name, value));
    }
}

/// PARAM-VALUE up to the closing quote (consumed), unescaped. Per RFC 5424
/// §6.3.3 only `\"`, `\\` and `\]` are escapes; any other backslash is kept.
fn param_value<'a>(c: &mut Cursor<'a>) -> Result<Cow<'a, str>, Fail> {
    let start = c.pos;
    let rest = &c.raw[start..];
    let mut owned: Option<Vec<u8>> = None;
    let mut clean_from = 0;
    let mut i = 0;
    loop {
        let Some(off) = memchr::memchr2(b'"', b'\\', &rest[i..]) else {
            return c.fail("message ends inside PARAM-VALUE");
        };
        i += off;
        if rest[i] == b'"' {
            break;
        }
        // A backslash: an escape only before `"`, `\` or `]`.
        match rest.get(i + 1) {
            Some(&e @ (b'"' | b'\\' | b']')) => {
                let buf = owned.get_or_insert_with(|| Vec::with_capacity(rest.len().min(256)));
                buf.extend_from_slice(&rest[clean_from..i]);
                buf.push(e);
                i += 2;
                clean_from = i;
            }
            _ => i += 1,
        }
    }
    c.pos = start + i + 1;
    let value = match owned {
        None => std::str::from_utf8(&rest[..i]).map(Cow::Borrowed).ok(),
        Some(mut buf) => {
            buf.extend_from_slice(&rest[clean_from..i]);
            String::from_utf8(buf).map(Cow::Owned).ok()
        }
    };
    match value {
        Some(v) => Ok(v),
        None => Err(("PARAM-VALUE is not UTF-8 (RFC 5424 §6.3.3)", start)),
    }
}

/// RFC 5424 §6.2.3: `YYYY-MM-DDThh:mm:ss[.1-6 digits](Z|±hh:mm)`, uppercase
/// `T` and `Z`, ranges checked (no leap second, month 1–12, day 1–31).
fn valid_timestamp(ts: &[u8]) -> bool {
    fn num(ts: &[u8], at: usize, n: usize) -> Option<u32> {
        let digits = ts.get(at..at + n)?;
        digits.iter().try_fold(0u32, |v, b| {
            b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0'))
        })
    }
    let date_time = (|| {
        let (_, mo, d) = (num(ts, 0, 4)?, num(ts, 5, 2)?, num(ts, 8, 2)?);
        let (h, mi, s) = (num(ts, 11, 2)?, num(ts, 14, 2)?, num(ts, 17, 2)?);
        let seps =
            ts[4] == b'-' && ts[7] == b'-' && ts[10] == b'T' && ts[13] == b':' && ts[16] == b':';
        let ranges = (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s < 60;
        (seps && ranges).then_some(())
    })();
    if date_time.is_none() {
        return false;
    }
    let mut i = 19;
    if ts.get(i) == Some(&b'.') {
        let frac = ts[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=6).contains(&frac) {
            return false;
        }
        i += 1 + frac;
    }
    match ts.get(i) {
        Some(b'Z') => i + 1 == ts.len(),
        Some(b'+' | b'-') => {
            let (Some(h), Some(m)) = (num(ts, i + 1, 2), num(ts, i + 4, 2)) else {
                return false;
            };
            ts.get(i + 3) == Some(&b':') && h < 24 && m < 60 && i + 6 == ts.len()
        }
        _ => false,
    }
}

/// RFC 3164 §4.1.2 TIMESTAMP: `Mmm dd hh:mm:ss`, day space-padded.
fn is_3164_timestamp(t: &[u8]) -> bool {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    t.len() == 15
        && MONTHS.contains(&&t[..3])
        && t[3] == b' '
        && (t[4] == b' ' || t[4].is_ascii_digit())
        && t[5].is_ascii_digit()
        && t[6] == b' '
        && t[7..9].iter().all(u8::is_ascii_digit)
        && t[9] == b':'
        && t[10..12].iter().all(u8::is_ascii_digit)
        && t[12] == b':'
        && t[13..15].iter().all(u8::is_ascii_digit)
}

fn parse_3164(raw: &[u8], pri: u8, at: usize) -> Parsed<'_> {
    let mut pos = at;
    let mut timestamp = None;
    let mut hostname = None;
    if let Some(t) = raw.get(pos..pos + 15).filter(|t| is_3164_timestamp(t)) {
        timestamp = std::str::from_utf8(t).ok();
        pos += 15;
        if raw.get(pos) == Some(&b' ') {
            pos += 1;
            let rest = &raw[pos..];
            // A HOSTNAME is one token of printable ASCII followed by SP.
            if let Some(len) = rest.iter().position(|&b| b == b' ') {
                let host = &rest[..len];
                if !host.is_empty() && host.iter().all(|b| (33..=126).contains(b)) {
                    hostname = std::str::from_utf8(host).ok();
                    pos += len + 1;
                }
            }
        }
    }
    let (app_name, procid, msg_start) = parse_tag(raw, pos);
    let msg = &raw[msg_start..];
    let (bom, msg) = match msg.strip_prefix(BOM) {
        Some(rest) => (true, rest),
        None => (false, msg),
    };
    Parsed {
        format: Format::Rfc3164,
        pri,
        version: None,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: None,
        sd: Vec::new(),
        bom,
        msg,
        raw,
    }
}

/// `TAG[PID]: ` or `TAG: ` (RFC 3164 §4.1.3 and common practice); TAG is
/// 1–32 characters of alphanumerics and `-_./`. Returns where MSG starts
/// (after one optional SP following the colon).
fn parse_tag(raw: &[u8], at: usize) -> (Option<&str>, Option<&str>, usize) {
    let rest = &raw[at..];
    let tag_len = rest
        .iter()
        .take(33)
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')))
        .unwrap_or(usize::MAX);
    if tag_len == 0 || tag_len > 32 {
        return (None, None, at);
    }
    let mut i = tag_len;
    let mut procid = None;
    if rest.get(i) == Some(&b'[') {
        let Some(close) = rest[i..].iter().take(130).position(|&b| b == b']') else {
            return (None, None, at);
        };
        let pid = &rest[i + 1..i + close];
        if pid.is_empty() || !pid.iter().all(|b| (33..=126).contains(b)) {
            return (None, None, at);
        }
        procid = std::str::from_utf8(pid).ok();
        i += close + 1;
    }
    if rest.get(i) != Some(&b':') {
        return (None, None, at);
    }
    i += 1;
    if rest.get(i) == Some(&b' ') {
        i += 1;
    }
    (std::str::from_utf8(&rest[..tag_len]).ok(), procid, at + i)
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &[u8]) -> Parsed<'_> {
        match parse(raw) {
            Ok(p) => p,
            Err(e) => panic!("{:?} did not parse: {e}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn rfc5424_header_fields() {
        let raw =
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 - hello";
        let p = ok(raw);
        assert_eq!(p.format, Format::Rfc5424);
        assert_eq!((p.pri, p.facility(), p.severity()), (165, 20, 5));
        assert_eq!(p.version, Some(1));
        assert_eq!(p.timestamp, Some("2003-10-11T22:14:15.003Z"));
        assert_eq!(p.hostname, Some("mymachine.example.com"));
        assert_eq!(p.app_name, Some("evntslog"));
        assert_eq!(p.procid, Some("1234"));
        assert_eq!(p.msgid, Some("ID47"));
        assert_eq!(p.structured_data, None);
        assert!(p.sd.is_empty());
        assert!(!p.bom);
        assert_eq!(p.msg, b"hello");
        assert_eq!(p.raw, raw);
    }

    #[test]
    fn nilvalues_are_none() {
        let p = ok(b"<0>1 - - - - - -");
        assert_eq!(
            (
                p.timestamp,
                p.hostname,
                p.app_name,
                p.procid,
                p.msgid,
                p.structured_data
            ),
            (None, None, None, None, None, None)
        );
        assert_eq!(p.msg, b"");
    }

    #[test]
    fn msg_may_be_absent_or_empty() {
        assert_eq!(ok(b"<14>1 - h a - - -").msg, b"");
        assert_eq!(ok(b"<14>1 - h a - - - ").msg, b"");
    }

    #[test]
    fn sd_elements_and_params_in_order() {
        let p = ok(br#"<14>1 - h a - - [exampleSDID@32473 iut="3" eventSource="Application"][examplePriority@32473 class="high"] m"#);
        assert_eq!(
            p.structured_data,
            Some(
                r#"[exampleSDID@32473 iut="3" eventSource="Application"][examplePriority@32473 class="high"]"#
            )
        );
        assert_eq!(p.sd.len(), 2);
        assert_eq!(p.sd[0].id, "exampleSDID@32473");
        assert_eq!(
            p.sd[0].params,
            vec![
                ("iut", Cow::Borrowed("3")),
                ("eventSource", Cow::Borrowed("Application"))
            ]
        );
        assert_eq!(p.sd[1].id, "examplePriority@32473");
        assert_eq!(p.msg, b"m");
    }

    #[test]
    fn sd_element_without_params() {
        let p = ok(b"<14>1 - h a - - [x@1]");
        assert_eq!(
            p.sd,
            vec![SdElement {
                id: "x@1",
                params: vec![]
            }]
        );
    }

    #[test]
    fn sd_value_unescapes_quote_backslash_bracket() {
        let p = ok(br#"<14>1 - h a - - [x@1 v="a\"b\\c\]d"]"#);
        assert_eq!(p.sd[0].params[0].1, r#"a"b\c]d"#);
    }

    #[test]
    fn sd_value_keeps_backslash_before_other_char() {
        let p = ok(br#"<14>1 - h a - - [x@1 v="a\nb"]"#);
        assert_eq!(p.sd[0].params[0].1, r"a\nb");
        assert!(matches!(p.sd[0].params[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn sd_value_may_hold_unescaped_bracket_and_utf8() {
        let p = ok("<14>1 - h a - - [x@1 v=\"a]b é\"]".as_bytes());
        assert_eq!(p.sd[0].params[0].1, "a]b é");
    }

    #[test]
    fn sd_value_must_be_utf8() {
        let err = parse(b"<14>1 - h a - - [x@1 v=\"\xff\"]");
        assert!(matches!(err, Err(ParseError::Rfc5424 { .. })), "{err:?}");
    }

    #[test]
    fn sd_unterminated_is_an_error() {
        for raw in [
            &b"<14>1 - h a - - [x@1 v=\"abc"[..],
            b"<14>1 - h a - - [x@1",
            b"<14>1 - h a - - [x@1 v=1]",
        ] {
            assert!(
                matches!(parse(raw), Err(ParseError::Rfc5424 { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn sd_name_longer_than_32_is_an_error() {
        let raw = format!("<14>1 - h a - - [{}]", "x".repeat(33));
        assert!(parse(raw.as_bytes()).is_err());
    }

    #[test]
    fn sd_must_be_followed_by_space_or_end() {
        assert!(parse(b"<14>1 - h a - - [x@1]msg").is_err());
        assert!(parse(b"<14>1 - h a - - -msg").is_err());
    }

    #[test]
    fn bom_is_stripped_into_flag() {
        let p = ok(b"<14>1 - h a - - - \xEF\xBB\xBFh\xC3\xA9");
        assert!(p.bom);
        assert_eq!(p.msg, "hé".as_bytes());
    }

    #[test]
    fn msg_keeps_arbitrary_octets() {
        let p = ok(b"<14>1 - h a - - - \x00\xff\nx");
        assert_eq!(p.msg, b"\x00\xff\nx");
    }

    #[test]
    fn timestamp_rfc3339_subset_accepted() {
        for ts in [
            "1985-04-12T23:20:50.52Z",
            "1985-04-12T19:20:50.52-04:00",
            "2003-10-11T22:14:15.003Z",
            "2003-08-24T05:14:15.000003-07:00",
            "2003-08-24T05:14:15+00:00",
        ] {
            assert!(valid_timestamp(ts.as_bytes()), "{ts}");
        }
    }

    #[test]
    fn timestamp_outside_rfc5424_rejected() {
        for ts in [
            "2003-08-24T05:14:15.000000003-07:00", // more than 6 fraction digits
            "1985-04-12t23:20:50.52Z",             // lowercase t
            "1985-04-12T23:20:50.52z",             // lowercase z
            "1985-04-12T23:20:60Z",                // leap second
            "1985-13-12T23:20:50Z",
            "1985-04-12T23:20:50",
            "1985-04-12T23:20:50.Z",
            "1985-04-12 23:20:50Z",
            "2003-08-24T05:14:15+0000",
        ] {
            assert!(!valid_timestamp(ts.as_bytes()), "{ts}");
            let raw = format!("<14>1 {ts} h a - - -");
            assert!(
                matches!(parse(raw.as_bytes()), Err(ParseError::Rfc5424 { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn header_field_limits_enforced() {
        let long = |n| "x".repeat(n);
        assert!(parse(format!("<14>1 - {} a - - -", long(255)).as_bytes()).is_ok());
        assert!(parse(format!("<14>1 - {} a - - -", long(256)).as_bytes()).is_err());
        assert!(parse(format!("<14>1 - h {} - - -", long(48)).as_bytes()).is_ok());
        assert!(parse(format!("<14>1 - h {} - - -", long(49)).as_bytes()).is_err());
        assert!(parse(format!("<14>1 - h a {} - -", long(128)).as_bytes()).is_ok());
        assert!(parse(format!("<14>1 - h a {} - -", long(129)).as_bytes()).is_err());
        assert!(parse(format!("<14>1 - h a - {} -", long(32)).as_bytes()).is_ok());
        assert!(parse(format!("<14>1 - h a - {} -", long(33)).as_bytes()).is_err());
    }

    #[test]
    fn header_field_must_be_printusascii() {
        assert!(parse("<14>1 - hé a - - -".as_bytes()).is_err());
        assert!(parse(b"<14>1 - h\x01 a - - -").is_err());
        assert!(parse(b"<14>1 -  a - - -").is_err()); // empty HOSTNAME (two spaces)
    }

    #[test]
    fn pri_range_and_syntax() {
        assert_eq!(ok(b"<191>1 - - - - - -").pri, 191);
        assert_eq!(ok(b"<0>1 - - - - - -").pri, 0);
        for raw in [
            &b"<192>1 - - - - - -"[..],
            b"<1000>1 - - - - - -",
            b"<>1 - - - - - -",
            b"14>1 -",
            b"<a>",
            b"",
            b"<14",
        ] {
            assert_eq!(parse(raw), Err(ParseError::Pri), "{raw:?}");
        }
    }

    #[test]
    fn malformed_5424_does_not_fall_back_to_3164() {
        let err = parse(b"<14>1 Oct 11 22:14:15 host tag: m");
        assert!(
            matches!(err, Err(ParseError::Rfc5424 { at: 6, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn rfc3164_with_tag_and_pid() {
        let p = ok(b"<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed");
        assert_eq!(p.format, Format::Rfc3164);
        assert_eq!((p.facility(), p.severity()), (4, 2));
        assert_eq!(p.version, None);
        assert_eq!(p.timestamp, Some("Oct 11 22:14:15"));
        assert_eq!(p.hostname, Some("mymachine"));
        assert_eq!(p.app_name, Some("su"));
        assert_eq!(p.procid, Some("123"));
        assert_eq!(p.msg, b"'su root' failed");
    }

    #[test]
    fn rfc3164_space_padded_day_and_plain_tag() {
        let p = ok(b"<13>Feb  5 17:32:18 10.0.0.99 myapp: hello");
        assert_eq!(p.timestamp, Some("Feb  5 17:32:18"));
        assert_eq!(p.hostname, Some("10.0.0.99"));
        assert_eq!((p.app_name, p.procid), (Some("myapp"), None));
        assert_eq!(p.msg, b"hello");
    }

    #[test]
    fn rfc3164_without_header_keeps_content_as_msg() {
        let p = ok(b"<13>just some text");
        assert_eq!((p.timestamp, p.hostname, p.app_name), (None, None, None));
        assert_eq!(p.msg, b"just some text");
    }

    #[test]
    fn rfc3164_without_tag_keeps_content_as_msg() {
        let p = ok(b"<13>Feb  5 17:32:18 host no tag here");
        assert_eq!(p.hostname, Some("host"));
        assert_eq!(p.app_name, None);
        assert_eq!(p.msg, b"no tag here");
    }

    /// Escape a PARAM-VALUE the way RFC 5424 §6.3.3 requires.
    fn escape(v: &str) -> String {
        let mut out = String::new();
        for ch in v.chars() {
            if matches!(ch, '"' | '\\' | ']') {
                out.push('\\');
            }
            out.push(ch);
        }
        out
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&raw);
        }

        #[test]
        fn random_bytes_after_5424_prefix_never_panic(
            tail in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b' '), Just(b'"'), Just(b'['), Just(b']'), Just(b'\\'), Just(b'=')], 0..200)
        ) {
            let mut raw = b"<14>1 - h a - - [x@1 ".to_vec();
            raw.extend_from_slice(&tail);
            let _ = parse(&raw);
        }

        #[test]
        fn param_value_unescape_inverts_escape(v in "\\PC*") {
            let raw = format!("<14>1 - h a - - [x@1 v=\"{}\"] m", escape(&v));
            let p = parse(raw.as_bytes());
            prop_assert!(p.is_ok(), "{:?}", p);
            let p = p.unwrap();
            prop_assert_eq!(&p.sd[0].params[0].1, &v);
            prop_assert_eq!(p.msg, b"m");
        }
    }
}
