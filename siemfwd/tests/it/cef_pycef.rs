//! CEF read back by an unchanged third-party reader: PyPI `pycef` 1.11, the
//! CEF parser most Python SIEM tooling uses. siemfwd (the real binary, file
//! source, `stdout` sink) writes a hostile corpus as CEF; `pycef.parse` reads
//! each line; every header field and every extension value must come back
//! as the record had it.
//!
//! pycef's limits, kept out of the corpus and stated here: a header field
//! may not hold `=` or `\` (its header pattern), so a header field with an
//! escaped `|` cannot be read — siemfwd's own reader in
//! `siemfwd-syslog/src/format/cef.rs` covers those; it does not undo value
//! escapes (`\\`, `\=`, `\n`, `\r`), which this test undoes after it; an
//! empty value is not read; and it renames a custom field (`cs1`) to its
//! label's text.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::support::python;
use crate::support::siemfwd::{binary, ndjson_line, toml_path};

/// The corpus: `(field, value)` per record, every value a trap for a CEF writer.
fn corpus() -> Vec<Vec<(&'static str, Vec<u8>)>> {
    let big: Vec<u8> = "日本語 😀 a=b c\\d |e| "
        .bytes()
        .cycle()
        .take(64 << 10)
        .collect();
    let values: Vec<Vec<u8>> = vec![
        b"a|b|c".to_vec(),
        b"x=y z=w".to_vec(),
        b"back\\slash \\= \\\\".to_vec(),
        b"tab\there".to_vec(),
        b"line1\r\nline2\rline3\n".to_vec(),
        b"nul\0inside".to_vec(),
        "héllo wörld — 日本語 😀".as_bytes().to_vec(),
        b" leading and trailing ".to_vec(),
        b"=".to_vec(),
        b"ends with \\".to_vec(),
        b"suser=forged act=forged".to_vec(),
        b"\xff\xfe not utf-8 \xc3".to_vec(),
        big,
    ];
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            vec![
                ("seq", i.to_string().into_bytes()),
                ("event.eventName", format!("Name{i}").into_bytes()),
                ("event.userIdentity.userName", v.clone()),
                ("event.acsRegion", v.clone()),
                ("an unmapped field", v),
            ]
        })
        .collect()
}

/// What a value becomes in CEF, which carries UTF-8 and no NUL.
fn carried(v: &[u8]) -> String {
    String::from_utf8_lossy(v).replace('\0', "\u{FFFD}")
}

/// pycef leaves the escapes in a value; undo them as CEF defines them.
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

const PARSE: &str = r#"
import json, sys, pycef
for line in sys.stdin.buffer:
    parsed = pycef.parse(line.rstrip(b"\n").decode("utf-8"))
    print(json.dumps(parsed))
"#;

#[test]
fn pycef_reads_every_field_as_siemfwd_wrote_it() {
    let Some(py) = python::venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let records = corpus();
    let mut input = Vec::new();
    for r in &records {
        let mut fields: Vec<(&[u8], &[u8])> = vec![(b"__time__", b"1795000006")];
        fields.extend(r.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())));
        input.extend_from_slice(&ndjson_line(&fields));
        input.push(b'\n');
    }
    std::fs::write(dir.path().join("in.ndjson"), &input).expect("write corpus");
    let config = format!(
        r#"[source]
type = "file"
[source.file]
paths = [{input}]
state_dir = {state}
[format]
rfc = "rfc3164"
timezone = "UTC"
severity = "warning"
[format.body]
type = "cef"
vendor = "Alibaba Cloud"
product = "ActionTrail"
signature_id = "{{event.eventName}}"
name = "Event {{event.eventName}}"
[format.body.fields]
"event.userIdentity.userName" = "suser"
[[format.body.custom]]
field = "event.acsRegion"
key = "cs1"
label = "Region"
[sink]
type = "stdout"
"#,
        input = toml_path(&dir.path().join("in.ndjson")),
        state = toml_path(&dir.path().join("state")),
    );
    std::fs::write(dir.path().join("c.toml"), config).expect("write config");
    let out = Command::new(binary())
        .args(["run", "-c"])
        .arg(dir.path().join("c.toml"))
        .output()
        .expect("run siemfwd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(&py)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("feed pycef");
    let parsed = child.wait_with_output().expect("pycef output");
    assert!(parsed.status.success());
    let lines: Vec<BTreeMap<String, String>> = String::from_utf8(parsed.stdout)
        .expect("json is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), records.len());
    for (i, (got, record)) in lines.iter().zip(&records).enumerate() {
        let value = |k: &str| {
            got.get(k)
                .map(|v| unescape(v))
                .unwrap_or_else(|| panic!("record {i}: no {k} in {got:?}"))
        };
        let hostile = carried(&record[2].1);
        assert_eq!(value("DeviceVendor"), "Alibaba Cloud", "record {i}");
        assert_eq!(value("DeviceProduct"), "ActionTrail", "record {i}");
        assert_eq!(
            value("DeviceEventClassID"),
            format!("Name{i}"),
            "record {i}"
        );
        assert_eq!(value("Name"), format!("Event Name{i}"), "record {i}");
        assert_eq!(value("Severity"), "5", "warning on the 1-10 scale");
        assert_eq!(value("rt"), "1795000006000", "record {i}");
        assert_eq!(value("seq"), i.to_string());
        assert_eq!(value("eventEventName"), format!("Name{i}"));
        assert_eq!(value("suser"), hostile, "record {i}");
        assert_eq!(value("Region"), hostile, "record {i}: cs1 under its label");
        assert_eq!(value("anUnmappedField"), hostile, "record {i}");
        // Nothing forged: exactly these keys (and pycef's own header names).
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "CEFVersion",
                "DeviceEventClassID",
                "DeviceName",
                "DeviceProduct",
                "DeviceSeverity",
                "DeviceVendor",
                "DeviceVersion",
                "Name",
                "Region",
                "Severity",
                "anUnmappedField",
                "eventEventName",
                "rt",
                "seq",
                "suser",
            ],
            "record {i}"
        );
    }
}
