//! Conformance against real receivers: siemfwd, run as a real process, reads a corpus of
//! hostile records from an NDJSON file and sends it to rsyslog and syslog-ng (started by the
//! tests, `support::peers`) over UDP, TCP (octet-counted and LF), TLS (server auth and
//! mutual auth) and RELP (rsyslog's imrelp, plain and over TLS: each message answered by
//! rsyslog before siemfwd counts it delivered). For every record the test checks that the receiver got exactly one message,
//! byte for byte what siemfwd meant to send, and that every header field the receiver parsed
//! is the one in those bytes: nothing split, merged or shifted. Over UDP, messages above the
//! datagram cap arrive cut exactly where `format::truncate_utf8` says, and siemfwd counted
//! each cut (`udp_truncated`, `udp_truncated_bytes` in its final log line).
//!
//! "What siemfwd meant to send" is computed twice: with the library itself (the same
//! `Formatter` on the same parsed record) and, for the `kv` body, independently by this
//! test from the RFC 5424 / RFC 3164 rules (PRI, timestamp, SD-PARAM escaping of `"` `\` `]`,
//! the `||key=value` body, LF-framing escapes). The two must agree, so the test does not
//! merely compare the library with itself. The `json` body is checked by decoding it; the
//! `cef` and `leef` bodies by readers written from their specs in siemfwd-syslog's unit
//! tests, and here by arriving byte for byte.
//!
//! What the receivers do to a message on their side, modelled here so the comparison stays
//! exact (each observed with these peers, see `rsyslog_view` and `syslog_ng_view`):
//! - rsyslog turns a NUL into `#000` and then drops every other control character of that
//!   message (its receive-side sanitizer, not switchable off), and its `jsonf` output drops
//!   DEL; bytes that are not UTF-8 reach its output unchanged.
//! - syslog-ng writes NUL and bytes that are not UTF-8 as `\xHH` in its JSON output, reports
//!   NIL PROCID/MSGID/SD as empty, re-renders the timestamp with `+00:00` and the SD from
//!   its parsed values (a backslash that is not an escape comes back as `\\`).
//! - syslog-ng's LF-framed source also ends a message at a NUL (RFC 6587 §3.4.2 names NUL
//!   as a trailer), which is why LF framing escapes NUL as `\0` like CR and LF.
//!
//! Needs rsyslog and syslog-ng (scripts/peers/install.sh); SIEMFWD_SKIP_PEERS=1 skips loudly.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use siemfwd::config::Config;
use siemfwd::format::{truncate_utf8, Formatter};
use siemfwd::pipeline::constraints_for;
use siemfwd::record::{LogTime, Record};
use siemfwd::source::ndjson::parse_line;

use support::jsonl::{self, J};
use support::peers::{certs, require, Input, Peer, Rsyslog, RsyslogOpts, SyslogNg, SyslogNgOpts};
use support::siemfwd::{self as proc, ndjson_line, toml_path, toml_str, Running};

/// Generous: receivers write each message at once, but CI machines are slow and shared.
const ARRIVAL: Duration = Duration::from_secs(20);
/// A siemfwd run over a dozen records takes well under a second; this only bounds a hang.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// `__time__` and `__time_ns_part__` of every record, and how RFC 5424 writes them (UTC,
/// microseconds, truncated) and RFC 3164 (UTC here, `format.timezone = "UTC"`).
const TIME_SECS: &str = "1700000000";
const TIME_NS: &str = "123456789";
const TS_5424: &str = "2023-11-14T22:13:20.123456Z";
const TS_3164: &str = "Nov 14 22:13:20";

const HOST: &str = "conformance.test";
/// Alphanumeric, so it is valid both as an RFC 5424 APP-NAME and an RFC 3164 TAG.
const APP: &str = "siemfwdconf";
/// local3 (19) × 8 + notice (5).
const FACILITY: &str = "local3";
const SEVERITY: &str = "notice";
const PRI: &str = "157";
const SD_ID: &str = "test@32473";
/// Record fields copied into the SD element, in this order (`seq` first: it identifies the
/// message even when a datagram was cut).
const SD_FIELDS: [&str; 7] = ["seq", "uni", "sd", "ctl", "empty", "bin", "nul"];
/// The UDP datagram cap (the sink's default, written out so the test does not depend on it).
const MAX_DATAGRAM: usize = 2048;

/// One record of the corpus: its fields in order (without `__time__`).
#[derive(Clone, Debug)]
struct Rec {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Rec {
    fn new(seq: usize) -> Rec {
        Rec {
            fields: vec![(b"seq".to_vec(), seq.to_string().into_bytes())],
        }
    }
    fn with(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Rec {
        self.fields
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_slice() == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

/// A 64 KiB (65 536-byte) value of mixed 1- to 4-byte characters.
fn big_value() -> Vec<u8> {
    let unit = "日本語-é-😀-abc ".as_bytes();
    let mut v = Vec::with_capacity(1 << 16);
    while v.len() + unit.len() <= 1 << 16 {
        v.extend_from_slice(unit);
    }
    v.resize(1 << 16, b'x');
    v
}

/// The hostile corpus. The last record is the sentinel: once it arrived, everything sent
/// before it on the same stream has arrived too (and any piece of a split message).
fn corpus() -> Vec<Rec> {
    let mut thousand = Rec::new(8);
    for i in 0..1000 {
        thousand = thousand.with(format!("f{i:03}"), format!("v{i}"));
    }
    // Bytes that are not UTF-8 across the 2048-byte cut: continuation bytes without a lead.
    let mut long_binary = b"lead ".to_vec();
    long_binary.resize(3000, 0x80);
    let records = vec![
        Rec::new(0).with("msg", "hello world").with("user", "alice"),
        Rec::new(1)
            .with("uni", "héllo wörld — 日本語 😀 Ωμέγα")
            .with("msg", "ünïcödé ✓ 𝄞"),
        Rec::new(2)
            .with("sd", "quote\" backslash\\ bracket] both\\\"] [x] end\\")
            .with("msg", "a\"b\\c]d"),
        Rec::new(3)
            .with("ctl", "l1\r\nl2\ttab")
            .with("msg", "x\ny\rz\tw end"),
        Rec::new(4).with("nul", "a\0b").with("msg", "before\0after"),
        Rec::new(5)
            .with("big", big_value())
            .with("msg", "after big"),
        Rec::new(6)
            .with("empty", "")
            .with("", "empty key")
            .with("msg", ""),
        Rec::new(7)
            .with("bin", b"\xff\xfe raw \xc3\x28 \xed\xa0\x80 \xf0\x9f end")
            .with("msg", b"ok \xc3 ok"),
        thousand,
        Rec::new(9)
            .with("a key", "v 1")
            .with("k=v", "x=y")
            .with("=", "=")
            .with(" lead", "trail ")
            // CEF's and LEEF's own separators and escapes (`^` is the LEEF 2.0 delimiter).
            .with("pipe", "a|b^c\\d=e\t|"),
        Rec::new(10).with("long_binary", long_binary),
        Rec::new(11).with("msg", "end of corpus"),
    ];
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.get("seq"), Some(i.to_string().as_bytes()), "corpus order");
    }
    records
}

fn ndjson(corpus: &[Rec]) -> Vec<Vec<u8>> {
    corpus
        .iter()
        .map(|r| {
            let mut fields: Vec<(&[u8], &[u8])> = vec![
                (b"__time__", TIME_SECS.as_bytes()),
                (b"__time_ns_part__", TIME_NS.as_bytes()),
            ];
            fields.extend(r.fields.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            ndjson_line(&fields)
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    TcpOctet,
    TcpLf,
    Tls,
    Mtls,
    /// RELP (rsyslog's imrelp), plain, over TLS, and over TLS with a client certificate.
    Relp,
    RelpTls,
    RelpMtls,
}

impl Transport {
    fn lf(self) -> bool {
        self == Transport::TcpLf
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Kv,
    Json,
    /// ArcSight CEF, every field kept, the header's name fields from the hostile `msg`.
    Cef,
    /// QRadar LEEF 2.0 with `^` as the delimiter, the EventID from the hostile `msg`.
    Leef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Header {
    Rfc5424,
    Rfc3164,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receiver {
    Rsyslog,
    SyslogNg,
}

/// One siemfwd run: how it sends and where.
#[derive(Clone, Copy, Debug)]
struct Case {
    msgid: &'static str,
    transport: Transport,
    body: Body,
    header: Header,
    receiver: Receiver,
    input: Input,
}

fn config_toml(case: &Case, dir: &Path, port: u16) -> String {
    let mut t = String::new();
    t.push_str("[source]\ntype = \"file\"\n[source.file]\n");
    t.push_str(&format!(
        "paths = [{}]\nstate_dir = {}\n",
        toml_path(&dir.join("corpus.ndjson")),
        toml_path(&dir.join("state"))
    ));
    t.push_str("[format]\n");
    t.push_str(&format!(
        "facility = \"{FACILITY}\"\nseverity = \"{SEVERITY}\"\nhostname = \"{HOST}\"\napp_name = \"{APP}\"\n"
    ));
    match case.header {
        Header::Rfc5424 => {
            let fields: Vec<String> = SD_FIELDS.iter().map(|f| toml_str(f)).collect();
            t.push_str(&format!(
                "rfc = \"rfc5424\"\nmsgid = \"{}\"\nstructured_data = {{ id = \"{SD_ID}\", fields = [{}] }}\n",
                case.msgid,
                fields.join(", ")
            ));
        }
        Header::Rfc3164 => t.push_str("rfc = \"rfc3164\"\ntimezone = \"UTC\"\n"),
    }
    match case.body {
        Body::Kv => t.push_str("body = { type = \"kv\", separator = \"||\" }\n"),
        Body::Json => t.push_str("body = { type = \"json\" }\n"),
        Body::Cef => t.push_str(
            "body = { type = \"cef\", signature_id = \"{msg}\", name = \"n {msg}\" }\n",
        ),
        Body::Leef => t.push_str(
            "body = { type = \"leef\", version = \"2.0\", delimiter = \"^\", event_id = \"{msg}\" }\n",
        ),
    }
    t.push_str("[sink]\n");
    let (kind, framing) = match case.transport {
        Transport::Udp => ("udp", None),
        Transport::TcpOctet => ("tcp", Some("octet_counting")),
        Transport::TcpLf => ("tcp", Some("lf")),
        Transport::Tls | Transport::Mtls => ("tls", Some("octet_counting")),
        Transport::Relp | Transport::RelpTls | Transport::RelpMtls => ("relp", None),
    };
    t.push_str(&format!(
        "type = \"{kind}\"\naddress = \"127.0.0.1:{port}\"\n"
    ));
    // Each key only for the transports that read it (others are refused).
    match framing {
        // RELP carries each message's length itself: no framing to choose.
        None if kind == "relp" => t.push_str("max_message = \"128KiB\"\n"),
        None => t.push_str(&format!("max_datagram = {MAX_DATAGRAM}\n")),
        Some(framing) => {
            t.push_str(&format!("framing = \"{framing}\"\n"));
            // The peers take messages of up to 256 KiB (MAX_MSG in scripts/peers),
            // more than the 64 KiB default allows for the corpus's 64 KiB value.
            t.push_str("max_message = \"256KiB\"\n");
        }
    }
    if matches!(case.transport, Transport::RelpTls | Transport::RelpMtls) {
        t.push_str("[sink.relp]\ntls = true\n");
    }
    if matches!(
        case.transport,
        Transport::Tls | Transport::Mtls | Transport::RelpTls | Transport::RelpMtls
    ) {
        let pki = certs();
        t.push_str(&format!(
            "[sink.tls]\nca_file = {}\nserver_name = \"localhost\"\n",
            toml_path(&pki.join("ca.pem"))
        ));
        if matches!(case.transport, Transport::Mtls | Transport::RelpMtls) {
            t.push_str(&format!(
                "cert_file = {}\nkey_file = {}\n",
                toml_path(&pki.join("client.pem")),
                toml_path(&pki.join("client.key"))
            ));
        }
    }
    t
}

/// The messages as the library formats them for this config: the same `Formatter`, the
/// same constraints and the same NDJSON parser as the pipeline.
fn library_messages(cfg_text: &str, lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let cfg = Config::from_toml(cfg_text, "conformance config", &|_| None)
        .unwrap_or_else(|e| panic!("test config invalid: {e}\n{cfg_text}"));
    let constraints = constraints_for(&cfg.sink);
    let mut formatter = Formatter::build(
        &cfg.format,
        constraints,
        &siemfwd::counters::Metrics::default(),
    )
    .unwrap_or_else(|e| panic!("formatter refused the test config: {e}"));
    lines
        .iter()
        .map(|line| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let mut record = Record::default();
            parse_line(line, LogTime::default(), &mut record)
                .unwrap_or_else(|e| panic!("corpus line does not parse: {e}"));
            let mut out = Vec::new();
            formatter
                .encode(&record, &siemfwd::record::Meta::NONE, &mut out)
                .unwrap_or_else(|e| panic!("formatter refused a corpus record: {e}"));
            out
        })
        .collect()
}

// ---------- the independent model (RFC text, not the library) ----------

/// RFC 5424 §6.3.3: PARAM-VALUE is UTF-8 (invalid bytes → U+FFFD here), `"` `\` `]` escaped
/// with a backslash; under LF framing the RFC 6587 §3.4.2 trailers CR, LF and NUL are
/// written `\r`, `\n` and `\0`.
fn model_sd_value(v: &[u8], lf: bool) -> Vec<u8> {
    let mut out = String::new();
    for c in String::from_utf8_lossy(v).chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\r' if lf => out.push_str("\\r"),
            '\n' if lf => out.push_str("\\n"),
            '\0' if lf => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// The `kv` body text: raw bytes, or with LF framing `\` → `\\`, CR → `\r`, LF → `\n`,
/// NUL → `\0`.
fn model_kv_text(v: &[u8], lf: bool, out: &mut Vec<u8>) {
    for &b in v {
        match b {
            b'\\' if lf => out.extend_from_slice(b"\\\\"),
            b'\r' if lf => out.extend_from_slice(b"\\r"),
            b'\n' if lf => out.extend_from_slice(b"\\n"),
            0 if lf => out.extend_from_slice(b"\\0"),
            b => out.push(b),
        }
    }
}

fn model_sd(rec: &Rec, lf: bool) -> Vec<u8> {
    let mut sd = format!("[{SD_ID}").into_bytes();
    for name in SD_FIELDS {
        if let Some(v) = rec.get(name) {
            sd.extend_from_slice(format!(" {name}=\"").as_bytes());
            sd.extend_from_slice(&model_sd_value(v, lf));
            sd.push(b'"');
        }
    }
    sd.push(b']');
    sd
}

fn model_kv_body(rec: &Rec, lf: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in &rec.fields {
        body.extend_from_slice(b"||");
        model_kv_text(k, lf, &mut body);
        body.push(b'=');
        model_kv_text(v, lf, &mut body);
    }
    body
}

/// The whole message for a `kv` case, built from the RFCs only.
fn model_message(case: &Case, rec: &Rec) -> Vec<u8> {
    let lf = case.transport.lf();
    let mut m = Vec::new();
    match case.header {
        Header::Rfc5424 => {
            m.extend_from_slice(
                format!("<{PRI}>1 {TS_5424} {HOST} {APP} - {} ", case.msgid).as_bytes(),
            );
            m.extend_from_slice(&model_sd(rec, lf));
        }
        Header::Rfc3164 => {
            m.extend_from_slice(format!("<{PRI}>{TS_3164} {HOST} {APP}:").as_bytes());
        }
    }
    m.push(b' ');
    m.extend_from_slice(&model_kv_body(rec, lf));
    m
}

/// How many CR/LF/NUL the formatter must have escaped for LF framing (SD values and body).
fn model_newlines(corpus: &[Rec]) -> u64 {
    let count = |v: &[u8]| v.iter().filter(|b| matches!(b, b'\r' | b'\n' | 0)).count() as u64;
    let body: u64 = corpus
        .iter()
        .flat_map(|r| &r.fields)
        .map(|(k, v)| count(k) + count(v))
        .sum();
    model_sd_newlines(corpus) + body
}

/// How many CR/LF/NUL the SD values hold (escaped under LF framing).
fn model_sd_newlines(corpus: &[Rec]) -> u64 {
    let count = |v: &[u8]| v.iter().filter(|b| matches!(b, b'\r' | b'\n' | 0)).count() as u64;
    corpus
        .iter()
        .flat_map(|r| SD_FIELDS.iter().filter_map(|f| r.get(f)))
        .map(count)
        .sum()
}

/// How many CR and LF a CEF or LEEF body escapes: those of every value whose key keeps a
/// letter or digit (the others are left out; header fields replace theirs instead), plus,
/// under LF framing, the CR, LF and NUL of the SD values.
fn model_vendor_newlines(corpus: &[Rec], lf: bool) -> u64 {
    let body: u64 = corpus
        .iter()
        .flat_map(|r| &r.fields)
        .filter(|(k, _)| k.iter().any(u8::is_ascii_alphanumeric))
        .map(|(_, v)| v.iter().filter(|b| matches!(b, b'\r' | b'\n')).count() as u64)
        .sum();
    body + if lf { model_sd_newlines(corpus) } else { 0 }
}

/// A CEF or LEEF body: after the syslog header, with no raw CR, LF or NUL in it, the
/// record's `seq` under its own key.
fn assert_vendor_body(case: &Case, msg: &[u8]) {
    let (magic, seq) = match case.body {
        Body::Cef => (&b" CEF:0|Alibaba Cloud|Log Service|1|"[..], &b" seq="[..]),
        _ => (
            &b" LEEF:2.0|Alibaba Cloud|Log Service|1|"[..],
            &b"^seq="[..],
        ),
    };
    let start = msg
        .windows(magic.len())
        .position(|w| w == magic)
        .unwrap_or_else(|| panic!("{case:?}: no {:?} in {:?}", text(magic), text(msg)));
    // (Before it, octet framing lets the SD carry CR and LF as they are.)
    let body = &msg[start..];
    assert!(
        body.windows(seq.len()).any(|w| w == seq),
        "{case:?}: no {:?} in {:?}",
        text(seq),
        text(body)
    );
    assert!(
        !body.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
        "{case:?}: raw CR/LF/NUL: {:?}",
        text(body)
    );
}

/// Values (and, for `json`, keys) the formatter had to render lossily.
fn model_invalid_utf8(corpus: &[Rec], body: Body) -> u64 {
    let bad = |v: &[u8]| u64::from(std::str::from_utf8(v).is_err());
    corpus
        .iter()
        .map(|r| {
            let sd: u64 = SD_FIELDS.iter().filter_map(|f| r.get(f)).map(bad).sum();
            let body: u64 = match body {
                Body::Kv | Body::Cef | Body::Leef => 0,
                Body::Json => r.fields.iter().map(|(k, v)| bad(k) + bad(v)).sum(),
            };
            sd + body
        })
        .sum()
}

// ---------- what the receivers do on their side ----------

/// rsyslog's view of a message: a NUL makes its sanitizer write `#000` for it and drop the
/// other control characters of the message; its `jsonf` output drops DEL.
fn rsyslog_view(msg: &[u8]) -> Vec<u8> {
    let sanitize = msg.contains(&0);
    let mut out = Vec::with_capacity(msg.len());
    for &b in msg {
        match b {
            0 => out.extend_from_slice(b"#000"),
            0x7F => {}
            0x01..=0x1F if sanitize => {}
            b => out.push(b),
        }
    }
    out
}

/// syslog-ng's view: NUL and every byte that is not part of valid UTF-8 become `\xHH`.
fn syslog_ng_view(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    for chunk in msg.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            if b == 0 {
                out.extend_from_slice(b"\\x00");
            } else {
                out.push(b);
            }
        }
        for &b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out
}

/// syslog-ng's `${SDATA}`: the SD re-rendered from the parsed values. A backslash that is
/// not an escape (RFC 5424 §6.3.3 keeps it, as in the `\r` LF framing writes) is part of
/// the value, so it comes back escaped as `\\`.
fn syslog_ng_sd(sd: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sd.len());
    let mut in_value = false;
    let mut i = 0;
    while i < sd.len() {
        let b = sd[i];
        match b {
            b'\\' if in_value => match sd.get(i + 1) {
                Some(&e @ (b'"' | b'\\' | b']')) => {
                    out.extend_from_slice(&[b'\\', e]);
                    i += 1;
                }
                _ => out.extend_from_slice(b"\\\\"),
            },
            b'"' => {
                in_value = !in_value;
                out.push(b);
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn view(receiver: Receiver, msg: &[u8]) -> Vec<u8> {
    match receiver {
        Receiver::Rsyslog => rsyslog_view(msg),
        Receiver::SyslogNg => syslog_ng_view(msg),
    }
}

/// The parts of an RFC 5424 message, split by this test (not by the library).
#[derive(Debug, Default)]
struct Parts {
    pri: Vec<u8>,
    version: Vec<u8>,
    timestamp: Vec<u8>,
    hostname: Vec<u8>,
    app_name: Vec<u8>,
    procid: Vec<u8>,
    msgid: Vec<u8>,
    sd: Vec<u8>,
    msg: Vec<u8>,
}

fn split_5424(m: &[u8]) -> Parts {
    let fail = |what: &str| -> ! { panic!("{what} in {:?}", String::from_utf8_lossy(m)) };
    let close = m
        .iter()
        .position(|&b| b == b'>')
        .unwrap_or_else(|| fail("no PRI"));
    let mut p = Parts {
        pri: m[1..close].to_vec(),
        ..Parts::default()
    };
    let mut rest = &m[close + 1..];
    let next = |rest: &mut &[u8]| -> Vec<u8> {
        let sp = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let word = rest[..sp].to_vec();
        *rest = &rest[(sp + 1).min(rest.len())..];
        word
    };
    p.version = next(&mut rest);
    p.timestamp = next(&mut rest);
    p.hostname = next(&mut rest);
    p.app_name = next(&mut rest);
    p.procid = next(&mut rest);
    p.msgid = next(&mut rest);
    if rest.first() == Some(&b'-') {
        p.sd = b"-".to_vec();
        rest = &rest[1..];
    } else {
        // Elements `[...]` back to back; inside a quoted value `\x` is one unit.
        let mut i = 0;
        let mut in_value = false;
        while i < rest.len() {
            match rest[i] {
                b'\\' if in_value => i += 1,
                b'"' => in_value = !in_value,
                b']' if !in_value && rest.get(i + 1) != Some(&b'[') => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        p.sd = rest[..i.min(rest.len())].to_vec();
        rest = &rest[i.min(rest.len())..];
    }
    p.msg = rest.strip_prefix(b" ").unwrap_or(rest).to_vec();
    p
}

/// Where two byte strings first differ, with a window of each (messages can be 64 KiB).
fn diff(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let window = |b: &[u8]| {
        let start = at.saturating_sub(40);
        let end = (at + 40).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[start.min(end)..end]))
    };
    format!(
        "got {} bytes, want {} bytes, first difference at byte {at}\n got:  …{}…\n want: …{}…",
        got.len(),
        want.len(),
        window(got),
        window(want)
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Checks the header fields `got` reports against the ones in `sent` (the receiver's view
/// of the expected message).
/// `wire` is the message as sent, `sent` the receiver's view of it.
fn assert_fields(receiver: Receiver, case: &Case, got: &J, wire: &[u8], sent: &[u8]) {
    let field = |k: &str| -> Vec<u8> {
        got.str(k)
            .unwrap_or_else(|| panic!("{case:?}: no {k} in {got:?}"))
            .to_vec()
    };
    let check = |k: &str, want: &[u8]| {
        assert_eq!(
            text(&field(k)),
            text(want),
            "{case:?}: field {k} (raw {:?})",
            text(sent)
        );
    };
    check("pri", PRI.as_bytes());
    check("facility", b"19");
    check("severity", b"5");
    if case.header == Header::Rfc3164 {
        // rsyslog's 3164 parser: TAG without the colon, MSG after it (leading space kept).
        check("hostname", HOST.as_bytes());
        check("app_name", APP.as_bytes());
        let colon = format!("{APP}:");
        let at = sent
            .windows(colon.len())
            .position(|w| w == colon.as_bytes())
            .unwrap_or_else(|| panic!("no TAG in {:?}", text(sent)));
        check("msg", &sent[at + colon.len()..]);
        let ts = field("timestamp");
        assert!(
            text(&ts).contains("-11-14T22:13:20"),
            "{case:?}: 3164 timestamp {:?}",
            text(&ts)
        );
        return;
    }
    let parts = split_5424(sent);
    assert_eq!(parts.pri, PRI.as_bytes());
    check("version", &parts.version);
    check("hostname", &parts.hostname);
    check("app_name", &parts.app_name);
    match receiver {
        Receiver::Rsyslog => {
            check("timestamp", &parts.timestamp);
            check("procid", &parts.procid);
            check("msgid", &parts.msgid);
            check("structured_data", &parts.sd);
        }
        Receiver::SyslogNg => {
            let ts = text(&parts.timestamp).replace('Z', "+00:00");
            check("timestamp", ts.as_bytes());
            let nil_empty = |v: &[u8]| if v == b"-" { Vec::new() } else { v.to_vec() };
            check("procid", &nil_empty(&parts.procid));
            check("msgid", &nil_empty(&parts.msgid));
            // syslog-ng renders SD from what it parsed, in canonical form (then escapes
            // NUL and bytes that are not UTF-8 for its JSON output like everything else).
            let sd = split_5424(wire).sd;
            check(
                "structured_data",
                &syslog_ng_view(&syslog_ng_sd(&nil_empty(&sd))),
            );
        }
    }
    check("msg", &parts.msg);
}

/// syslog-ng's parsed SD (`_SDATA`) holds each value as the record had it: unescaped by
/// syslog-ng, so this checks our escaping end to end without the library.
fn assert_sdata(case: &Case, got: &J, rec: &Rec) {
    let Some(J::Obj(elements)) = got.get("_SDATA") else {
        panic!("{case:?}: no _SDATA in {got:?}");
    };
    assert_eq!(elements.len(), 1, "{case:?}: {got:?}");
    let (id, J::Obj(params)) = &elements[0] else {
        panic!("{case:?}: _SDATA element is not an object: {got:?}");
    };
    assert_eq!(text(id), SD_ID);
    let lf = case.transport.lf();
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in SD_FIELDS {
        if let Some(v) = rec.get(name) {
            // What the record meant, as UTF-8; under LF framing CR/LF/NUL travel as `\r`
            // `\n` `\0`, which RFC 5424 receivers keep literally.
            let mut meant = String::from_utf8_lossy(v).into_owned();
            if lf {
                meant = meant
                    .replace('\r', "\\r")
                    .replace('\n', "\\n")
                    .replace('\0', "\\0");
            }
            want.insert(name.to_owned(), syslog_ng_view(meant.as_bytes()));
        }
    }
    let have: BTreeMap<String, Vec<u8>> = params
        .iter()
        .map(|(k, v)| match v {
            J::Str(s) => (text(k), s.clone()),
            other => panic!("{case:?}: SD param {} is {other:?}", text(k)),
        })
        .collect();
    assert_eq!(
        have.iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect::<Vec<_>>(),
        "{case:?}: _SDATA of seq {:?}",
        rec.get("seq").map(text)
    );
}

/// The `seq` of a received message: the first `seq="N"`, `seq=N` or `"seq":"N"`.
fn seq_of(raw: &[u8]) -> Option<usize> {
    for prefix in [&b"seq=\""[..], b"seq=", b"\"seq\":\""] {
        if let Some(at) = raw.windows(prefix.len()).position(|w| w == prefix) {
            let digits: Vec<u8> = raw[at + prefix.len()..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            return std::str::from_utf8(&digits).ok()?.parse().ok();
        }
    }
    None
}

/// Messages received so far on `input`, read byte-preserving.
fn received(peer: &Peer, input: Input) -> Vec<J> {
    let path = peer
        .workdir()
        .join("out")
        .join(format!("{}.jsonl", input.name()));
    jsonl::read(&path).unwrap_or_else(|e| panic!("{e}\n{}", peer.diagnostics()))
}

/// Waits until `input` holds more than `skip` messages and the sentinel (`last_seq`) is
/// among the new ones; returns the new ones.
fn wait_new(peer: &Peer, input: Input, skip: usize, last_seq: usize) -> Vec<J> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let all = received(peer, input);
        let new: Vec<J> = all.into_iter().skip(skip).collect();
        if new
            .iter()
            .any(|m| m.str("raw").and_then(seq_of) == Some(last_seq))
        {
            return new;
        }
        if Instant::now() >= deadline {
            panic!(
                "{input:?}: the last record (seq {last_seq}) did not arrive within {ARRIVAL:?}; \
                 got {} new message(s)\n{}",
                new.len(),
                peer.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct RunResult {
    counters: BTreeMap<String, u64>,
    /// siemfwd's WARN and ERROR log lines (none expected against a healthy receiver).
    warnings: Vec<String>,
    state_dir: PathBuf,
    corpus_len: u64,
}

/// Writes the corpus and config into `dir`, runs `siemfwd run` to its end and checks it
/// exited 0.
fn run_siemfwd(dir: &Path, cfg_text: &str, lines: &[Vec<u8>]) -> RunResult {
    let corpus: Vec<u8> = lines.concat();
    std::fs::write(dir.join("corpus.ndjson"), &corpus).expect("write corpus");
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, cfg_text).expect("write config");
    let cfg_arg = cfg.display().to_string();
    let mut p = Running::start(proc::command(&[
        "--log-format",
        "json",
        "run",
        "-c",
        &cfg_arg,
    ]));
    let status = p.wait_exit(RUN_LIMIT);
    let stderr = p.stderr();
    assert!(status.success(), "siemfwd run: {status}\n{stderr}");
    let counters = proc::stopped_counters(&stderr)
        .unwrap_or_else(|| panic!("no 'siemfwd stopped' line with counters:\n{stderr}"));
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .map(str::to_owned)
        .collect();
    RunResult {
        counters,
        warnings,
        state_dir: dir.join("state"),
        corpus_len: corpus.len() as u64,
    }
}

/// Runs one case end to end against an already started peer and checks everything.
fn check_case(case: Case, peer: &Peer) {
    let started = Instant::now();
    let recs = corpus();
    let lines = ndjson(&recs);
    let dir = tempfile::tempdir().expect("temp dir");
    let port = peer.port(case.input);
    let cfg_text = config_toml(&case, dir.path(), port);
    let lib = library_messages(&cfg_text, &lines);

    // The library's bytes agree with the RFC model (kv), or decode to the record (json).
    for (rec, msg) in recs.iter().zip(&lib) {
        match case.body {
            Body::Kv => assert_eq!(
                text(msg),
                text(&model_message(&case, rec)),
                "{case:?}: library vs RFC model"
            ),
            Body::Json => assert_json_body(&case, rec, msg),
            // Field for field against readers written from the specs: the unit tests
            // of siemfwd-syslog's `format/cef.rs` and `format/leef.rs`. Here: the bytes
            // arrive exactly, and the format starts where the header ends.
            Body::Cef | Body::Leef => assert_vendor_body(&case, msg),
        }
        if case.transport.lf() {
            assert!(
                !msg.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                "{case:?}: raw CR/LF/NUL in an LF-framed message: {:?}",
                text(msg)
            );
        }
    }
    // On the wire: UDP cuts at the cap, on a UTF-8 boundary.
    let wire: Vec<Vec<u8>> = lib
        .iter()
        .map(|m| match case.transport {
            Transport::Udp => m[..truncate_utf8(m, MAX_DATAGRAM)].to_vec(),
            _ => m.clone(),
        })
        .collect();
    if case.transport == Transport::Udp {
        for (full, cut) in lib.iter().zip(&wire) {
            assert!(cut.len() <= MAX_DATAGRAM && full.starts_with(cut));
            if full.len() > MAX_DATAGRAM {
                // The RFC 5424 §6.1 rule, checked without the library: keep as much as fits;
                // back off only to the start of a character that straddles the cap.
                let n = cut.len();
                let first_dropped = full[n];
                let char_len = match first_dropped {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => 1,
                };
                let straddles = first_dropped & 0xC0 != 0x80
                    && n + char_len > MAX_DATAGRAM
                    && full
                        .get(n..n + char_len)
                        .is_some_and(|c| std::str::from_utf8(c).is_ok());
                assert!(
                    n == MAX_DATAGRAM || straddles,
                    "{case:?}: cut at {n} of {}",
                    full.len()
                );
                if std::str::from_utf8(full).is_ok() {
                    assert!(
                        std::str::from_utf8(cut).is_ok(),
                        "{case:?}: cut inside a character"
                    );
                }
            }
        }
    }

    let skip = received(peer, case.input).len();
    let run = run_siemfwd(dir.path(), &cfg_text, &lines);
    let got = wait_new(peer, case.input, skip, recs.len() - 1);

    // Exactly one message per record: nothing split, merged or lost.
    let mut by_seq: BTreeMap<usize, &J> = BTreeMap::new();
    for m in &got {
        let raw = m
            .str("raw")
            .unwrap_or_else(|| panic!("{case:?}: no raw in {m:?}"));
        let seq = seq_of(raw)
            .unwrap_or_else(|| panic!("{case:?}: a message with no seq (split?): {:?}", text(raw)));
        assert!(
            by_seq.insert(seq, m).is_none(),
            "{case:?}: seq {seq} received twice"
        );
    }
    assert_eq!(
        got.len(),
        recs.len(),
        "{case:?}: {} messages for {} records; seqs received: {:?}\n{}",
        got.len(),
        recs.len(),
        by_seq.keys().collect::<Vec<_>>(),
        peer.internal_log()
    );
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (0..recs.len()).collect::<Vec<_>>()
    );

    // Each one exactly as meant (in the receiver's view), and parsed into the same fields.
    for (seq, sent) in wire.iter().enumerate() {
        let m = by_seq[&seq];
        let want = view(case.receiver, sent);
        let raw = m.str("raw").unwrap_or_default();
        assert!(
            raw == want.as_slice(),
            "{case:?}: seq {seq}: received raw differs: {}",
            diff(raw, &want)
        );
        if case.transport.lf() {
            assert!(!raw.contains(&b'\n'), "{case:?}: raw LF in seq {seq}");
        }
        assert_fields(case.receiver, &case, m, sent, &want);
        if case.receiver == Receiver::SyslogNg && case.header == Header::Rfc5424 {
            assert_sdata(&case, m, &recs[seq]);
        }
    }

    // siemfwd's own account: everything read and delivered, each cut and escape counted.
    let counter = |k: &str| run.counters.get(k).copied().unwrap_or(0);
    let n = recs.len() as u64;
    assert_eq!(counter("records_in"), n, "{case:?}: {:?}", run.counters);
    assert_eq!(
        counter("messages_delivered"),
        n,
        "{case:?}: {:?}",
        run.counters
    );
    // Counted by the pipeline on the formatted messages, before the UDP cut (which
    // `udp_truncated_bytes` accounts for).
    assert_eq!(
        counter("bytes_delivered"),
        lib.iter().map(|m| m.len() as u64).sum::<u64>(),
        "{case:?}: {:?}",
        run.counters
    );
    let cuts: Vec<u64> = lib
        .iter()
        .zip(&wire)
        .filter(|(full, cut)| full.len() != cut.len())
        .map(|(full, cut)| (full.len() - cut.len()) as u64)
        .collect();
    if case.transport == Transport::Udp {
        // The 64 KiB value, the 1000 fields and the long binary value exceed the cap.
        assert_eq!(cuts.len(), 3, "{case:?}");
    }
    assert_eq!(
        counter("udp_truncated"),
        cuts.len() as u64,
        "{case:?}: {:?}",
        run.counters
    );
    assert_eq!(
        counter("udp_truncated_bytes"),
        cuts.iter().sum::<u64>(),
        "{case:?}: {:?}",
        run.counters
    );
    let newlines = match case.body {
        Body::Cef | Body::Leef => model_vendor_newlines(&recs, case.transport.lf()),
        _ if case.transport.lf() => model_newlines(&recs),
        _ => 0,
    };
    assert_eq!(counter("newlines_escaped"), newlines, "{case:?}");
    let invalid = match case.header {
        Header::Rfc5424 => model_invalid_utf8(&recs, case.body),
        Header::Rfc3164 => {
            model_invalid_utf8(&recs, case.body)
                - recs
                    .iter()
                    .map(|r| {
                        SD_FIELDS
                            .iter()
                            .filter_map(|f| r.get(f))
                            .filter(|v| std::str::from_utf8(v).is_err())
                            .count() as u64
                    })
                    .sum::<u64>()
        }
    };
    if matches!(case.body, Body::Kv | Body::Json) {
        // (CEF and LEEF count a value with a NUL too; their unit tests check what.)
        assert_eq!(counter("invalid_utf8_values"), invalid, "{case:?}");
    }
    assert_eq!(counter("records_refused"), 0, "{case:?}");
    assert!(
        run.warnings.is_empty(),
        "{case:?}: siemfwd warned: {:?}",
        run.warnings
    );

    // Delivery claimed for the whole file: the checkpoint covers it.
    let checkpoints = proc::checkpoint_files(&run.state_dir);
    assert_eq!(checkpoints.len(), 1, "{case:?}: {checkpoints:?}");
    let cp: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoints[0]).expect("read checkpoint"))
            .expect("checkpoint is JSON");
    assert_eq!(
        cp["offset"].as_u64(),
        Some(run.corpus_len),
        "{case:?}: {cp}"
    );

    if let Some(sng) = (case.receiver == Receiver::SyslogNg).then_some(peer) {
        let path = sng
            .workdir()
            .join("out")
            .join(format!("{}.invalid.jsonl", case.input.name()));
        let invalid = jsonl::read(&path).expect("read invalid.jsonl");
        assert!(
            invalid.is_empty(),
            "{case:?}: syslog-ng's strict RFC 5424 check refused: {invalid:?}"
        );
    }
    eprintln!("{case:?}: ok in {:?}", started.elapsed());
}

/// A `json` body decodes to the record's fields in order (invalid UTF-8 as U+FFFD).
fn assert_json_body(case: &Case, rec: &Rec, msg: &[u8]) {
    let parts = split_5424(msg);
    let body = jsonl::parse(&parts.msg)
        .unwrap_or_else(|e| panic!("{case:?}: json body is not JSON ({e}): {:?}", text(msg)));
    assert!(
        std::str::from_utf8(&parts.msg).is_ok(),
        "{case:?}: json body not UTF-8"
    );
    let J::Obj(members) = body else {
        panic!("{case:?}: json body is not an object");
    };
    let got: Vec<(String, String)> = members
        .iter()
        .map(|(k, v)| match v {
            J::Str(s) => (text(k), text(s)),
            other => panic!("{case:?}: non-string value {other:?}"),
        })
        .collect();
    let want: Vec<(String, String)> = rec.fields.iter().map(|(k, v)| (text(k), text(v))).collect();
    assert_eq!(got, want, "{case:?}");
    assert_eq!(parts.sd, model_sd(rec, false), "{case:?}: SD");
}

fn case(receiver: Receiver, msgid: &'static str, transport: Transport, input: Input) -> Case {
    Case {
        msgid,
        transport,
        body: Body::Kv,
        header: Header::Rfc5424,
        receiver,
        input,
    }
}

#[test]
fn rsyslog_receives_hostile_corpus_exactly_over_every_transport() {
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![
            Input::Udp,
            Input::Tcp,
            Input::Tls,
            Input::Mtls,
            Input::Relp,
            Input::RelpTls,
            Input::RelpMtls,
        ],
        ..Default::default()
    })) else {
        return;
    };
    let r = Receiver::Rsyslog;
    let cases = [
        case(r, "udp", Transport::Udp, Input::Udp),
        case(r, "tcp-octet", Transport::TcpOctet, Input::Tcp),
        // rsyslog's TCP port detects the framing per frame: the same port takes LF.
        case(r, "tcp-lf", Transport::TcpLf, Input::Tcp),
        Case {
            body: Body::Json,
            ..case(r, "tls-json", Transport::Tls, Input::Tls)
        },
        case(r, "mtls", Transport::Mtls, Input::Mtls),
        // RELP: each message answered by rsyslog itself.
        case(r, "relp", Transport::Relp, Input::Relp),
        Case {
            body: Body::Cef,
            ..case(r, "relp-tls-cef", Transport::RelpTls, Input::RelpTls)
        },
        case(r, "relp-mtls", Transport::RelpMtls, Input::RelpMtls),
        Case {
            header: Header::Rfc3164,
            ..case(r, "-", Transport::TcpOctet, Input::Tcp)
        },
        Case {
            body: Body::Cef,
            ..case(r, "tcp-cef", Transport::TcpOctet, Input::Tcp)
        },
        Case {
            body: Body::Cef,
            ..case(r, "tls-cef", Transport::Tls, Input::Tls)
        },
        Case {
            body: Body::Leef,
            ..case(r, "tcp-leef", Transport::TcpLf, Input::Tcp)
        },
        Case {
            body: Body::Leef,
            ..case(r, "tls-leef", Transport::Tls, Input::Tls)
        },
    ];
    for c in cases {
        check_case(c, &rs);
    }
}

#[test]
fn syslog_ng_receives_hostile_corpus_exactly_over_every_transport() {
    let Some(sng) = require(SyslogNg::start(SyslogNgOpts {
        inputs: vec![
            Input::Udp,
            Input::Tcp,
            Input::TcpLf,
            Input::Tls,
            Input::Mtls,
        ],
        ..Default::default()
    })) else {
        return;
    };
    let s = Receiver::SyslogNg;
    let cases = [
        case(s, "udp", Transport::Udp, Input::Udp),
        case(s, "tcp-octet", Transport::TcpOctet, Input::Tcp),
        case(s, "tcp-lf", Transport::TcpLf, Input::TcpLf),
        case(s, "tls", Transport::Tls, Input::Tls),
        case(s, "mtls", Transport::Mtls, Input::Mtls),
        Case {
            body: Body::Cef,
            ..case(s, "tcp-cef", Transport::TcpOctet, Input::Tcp)
        },
        Case {
            body: Body::Cef,
            ..case(s, "tls-cef", Transport::Tls, Input::Tls)
        },
        Case {
            body: Body::Leef,
            ..case(s, "tcp-leef", Transport::TcpLf, Input::TcpLf)
        },
        Case {
            body: Body::Leef,
            ..case(s, "tls-leef", Transport::Tls, Input::Tls)
        },
    ];
    for c in cases {
        check_case(c, &sng);
    }
}

#[test]
fn test_model_helpers_follow_the_rfc_text() {
    // The independent model itself, on hand-written cases (so it cannot drift into
    // agreeing with a wrong library by construction).
    assert_eq!(model_sd_value(b"a\"b\\c]d", false), b"a\\\"b\\\\c\\]d");
    assert_eq!(model_sd_value(b"x\ry\n\0", true), b"x\\ry\\n\\0");
    assert_eq!(model_sd_value(b"\xff", false), "\u{FFFD}".as_bytes());
    let mut kv = Vec::new();
    model_kv_text(b"a\\b\nc", true, &mut kv);
    assert_eq!(kv, b"a\\\\b\\nc");
    assert_eq!(rsyslog_view(b"a\0b\tc\x7f"), b"a#000bc");
    assert_eq!(rsyslog_view(b"a\tb\x7f"), b"a\tb");
    assert_eq!(syslog_ng_view(b"a\0\xff\xc3\xa9"), b"a\\x00\\xff\xc3\xa9");
    assert_eq!(
        syslog_ng_sd(b"[x@1 a=\"q\\\"\\r\\\\\\]\"]"),
        b"[x@1 a=\"q\\\"\\\\r\\\\\\]\"]"
    );
    let p = split_5424(b"<157>1 T H A - M [x@1 a=\"q\\\"] b\"][y@1 c=\"d\"] the msg");
    assert_eq!(p.sd, b"[x@1 a=\"q\\\"] b\"][y@1 c=\"d\"]");
    assert_eq!(p.msg, b"the msg");
    assert_eq!(seq_of(b"<1>1 - - - - - [t@1 seq=\"42\"] x"), Some(42));
    assert_eq!(seq_of(b"<1>x: ||seq=7||a=b"), Some(7));
}
