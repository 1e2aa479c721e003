//! Rendering a received message for a person ([`Output::Print`]) or a
//! program ([`Output::JsonLines`]).
//!
//! JSON lines carry the fields of the rsyslog test recipe
//! (`shared/peers/README.md`, "Received messages") so tests can compare a
//! siemfwd run against `siemfwd listen` and against rsyslog alike. Nothing is
//! lost: `msg` and `raw` are strings when they are UTF-8; otherwise the
//! string is a lossy rendering and `msg_b64` / `raw_b64` hold the exact
//! bytes (standard base64 with padding, RFC 4648 §4).
//!
//! [`Output::Print`]: super::Output::Print
//! [`Output::JsonLines`]: super::Output::JsonLines

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::parse::{facility_name, parse, severity_name, Parsed, SdElement};

/// Where a message came from, for the output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// `udp`, `tcp` or `tls`.
    pub transport: &'static str,
    /// The sender's address as text.
    pub peer: &'a str,
}

/// Append one JSON object and a LF to `out`. Returns false when the message
/// did not parse.
pub(crate) fn json_line(origin: Origin<'_>, raw: &[u8], out: &mut Vec<u8>) -> bool {
    let parsed = parse(raw);
    let line = match &parsed {
        Ok(p) => JsonLine::parsed(origin, p),
        Err(e) => JsonLine::unparsed(origin, raw, e.to_string()),
    };
    // Serializing into a Vec cannot fail: every key is a string and every
    // value a plain string, number, bool or null.
    if serde_json::to_writer(&mut *out, &line).is_err() {
        out.extend_from_slice(br#"{"error":"internal: JSON rendering failed"}"#);
    }
    out.push(b'\n');
    parsed.is_ok()
}

#[derive(Serialize)]
struct JsonLine<'a> {
    transport: &'static str,
    peer: &'a str,
    format: Option<&'static str>,
    pri: Option<u8>,
    facility: Option<u8>,
    severity: Option<u8>,
    version: Option<u16>,
    timestamp: Option<&'a str>,
    hostname: Option<&'a str>,
    app_name: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
    structured_data: Option<&'a str>,
    sd: Sd<'a>,
    bom: bool,
    msg: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_b64: Option<String>,
    raw: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> JsonLine<'a> {
    fn parsed(origin: Origin<'a>, p: &'a Parsed<'a>) -> Self {
        let (msg, msg_b64) = text_or_b64(p.msg);
        let (raw, raw_b64) = text_or_b64(p.raw);
        JsonLine {
            transport: origin.transport,
            peer: origin.peer,
            format: Some(p.format.as_str()),
            pri: Some(p.pri),
            facility: Some(p.facility()),
            severity: Some(p.severity()),
            version: p.version,
            timestamp: p.timestamp,
            hostname: p.hostname,
            app_name: p.app_name,
            procid: p.procid,
            msgid: p.msgid,
            structured_data: p.structured_data,
            sd: Sd(&p.sd),
            bom: p.bom,
            msg: Some(msg),
            msg_b64,
            raw,
            raw_b64,
            error: None,
        }
    }

    fn unparsed(origin: Origin<'a>, raw: &'a [u8], error: String) -> Self {
        let (raw, raw_b64) = text_or_b64(raw);
        JsonLine {
            transport: origin.transport,
            peer: origin.peer,
            format: None,
            pri: None,
            facility: None,
            severity: None,
            version: None,
            timestamp: None,
            hostname: None,
            app_name: None,
            procid: None,
            msgid: None,
            structured_data: None,
            sd: Sd(&[]),
            bom: false,
            msg: None,
            msg_b64: None,
            raw,
            raw_b64,
            error: Some(error),
        }
    }
}

/// `[{"id": …, "params": {name: value, …}}, …]`. A PARAM-NAME may repeat
/// within an element (RFC 5424 §6.3.3 allows it); it is then written as a
/// repeated key, in wire order, rather than silently keeping one.
struct Sd<'a>(&'a [SdElement<'a>]);

struct Params<'a>(&'a [(&'a str, Cow<'a, str>)]);

impl Serialize for Sd<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for el in self.0 {
            seq.serialize_element(&SdJson {
                id: el.id,
                params: Params(&el.params),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct SdJson<'a> {
    id: &'a str,
    params: Params<'a>,
}

impl Serialize for Params<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

fn text_or_b64(bytes: &[u8]) -> (Cow<'_, str>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), None),
        Err(_) => (String::from_utf8_lossy(bytes), Some(base64(bytes))),
    }
}

/// Standard base64 with padding (RFC 4648 §4). Small enough to not be worth
/// a dependency; only used for non-UTF-8 messages.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Append a human-readable block: a header line, then one `  key: value`
/// line per field; MSG continuation lines are indented. Returns false when
/// the message did not parse.
pub(crate) fn print_block(origin: Origin<'_>, raw: &[u8], out: &mut String) -> bool {
    match parse(raw) {
        Ok(p) => {
            let _ = writeln!(
                out,
                "--- {} from {}: {} {}.{} (pri {})",
                origin.transport,
                origin.peer,
                p.format,
                facility_name(p.facility()),
                severity_name(p.severity()),
                p.pri
            );
            let nil = |v: Option<&str>| v.unwrap_or("-").to_owned();
            if let Some(v) = p.version {
                let _ = writeln!(out, "  version: {v}");
            }
            let fields = [
                ("timestamp", p.timestamp),
                ("hostname", p.hostname),
                ("app_name", p.app_name),
                ("procid", p.procid),
                ("msgid", p.msgid),
            ];
            for (key, value) in fields {
                let _ = writeln!(out, "  {key}: {}", nil(value));
            }
            if p.version.is_some() {
                let _ = writeln!(out, "  structured_data: {}", nil(p.structured_data));
            }
            for el in &p.sd {
                let _ = writeln!(out, "    [{}]", el.id);
                for (name, value) in &el.params {
                    let _ = write!(out, "      {name} = ");
                    push_text(out, value.as_bytes(), "        ");
                    out.push('\n');
                }
            }
            if p.bom {
                out.push_str("  bom: true\n");
            }
            out.push_str("  msg: ");
            push_text(out, p.msg, "       ");
            out.push('\n');
            true
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "--- {} from {}: unparsed ({e})",
                origin.transport, origin.peer
            );
            out.push_str("  raw: ");
            push_text(out, raw, "       ");
            out.push('\n');
            false
        }
    }
}

/// Text for a terminal: valid UTF-8 as is, LF continued on an indented
/// line, other control characters and invalid bytes escaped so the output
/// cannot be mistaken for another message or move the cursor.
fn push_text(out: &mut String, bytes: &[u8], indent: &str) {
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '\n' => {
                    out.push('\n');
                    out.push_str(indent);
                }
                '\t' => out.push('\t'),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        transport: "tcp",
        peer: "127.0.0.1:1",
    };

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    fn json(raw: &[u8]) -> serde_json::Value {
        let mut out = Vec::new();
        json_line(ORIGIN, raw, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(memchr::memchr(b'\n', &out), Some(out.len() - 1), "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_repeated_param_name_kept_as_repeated_key() {
        let mut out = Vec::new();
        json_line(ORIGIN, br#"<14>1 - h a - - [x@1 k="1" k="2"]"#, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""params":{"k":"1","k":"2"}"#), "{text}");
    }

    #[test]
    fn json_unparsed_keeps_raw_and_error() {
        let v = json(b"no pri\xff");
        assert_eq!(v["format"], serde_json::Value::Null);
        assert_eq!(v["msg"], serde_json::Value::Null);
        assert_eq!(v["raw"], "no pri\u{fffd}");
        assert_eq!(v["raw_b64"], base64(b"no pri\xff"));
        assert!(v["error"].as_str().unwrap().contains("PRI"));
    }

    #[test]
    fn json_utf8_message_has_no_b64() {
        let v = json("<14>1 - h a - - - é".as_bytes());
        assert_eq!(v["msg"], "é");
        assert!(
            v.get("msg_b64").is_none() && v.get("raw_b64").is_none() && v.get("error").is_none()
        );
    }

    #[test]
    fn print_escapes_control_and_invalid_bytes_and_indents_lines() {
        let mut out = String::new();
        assert!(print_block(
            ORIGIN,
            b"<165>1 - h a - - [x@1 k=\"v\"] l1\nl2\x1b\xff",
            &mut out
        ));
        assert_eq!(
            out,
            "--- tcp from 127.0.0.1:1: rfc5424 local4.notice (pri 165)\n  version: 1\n  timestamp: -\n  hostname: h\n  app_name: a\n  procid: -\n  msgid: -\n  structured_data: [x@1 k=\"v\"]\n    [x@1]\n      k = v\n  msg: l1\n       l2\\u{1b}\\xff\n"
        );
    }

    #[test]
    fn print_unparsed_shows_reason_and_raw() {
        let mut out = String::new();
        assert!(!print_block(ORIGIN, b"<14>1 bad", &mut out));
        assert!(
            out.starts_with("--- tcp from 127.0.0.1:1: unparsed (RFC 5424:"),
            "{out}"
        );
        assert!(out.ends_with("  raw: <14>1 bad\n"), "{out}");
    }
}
