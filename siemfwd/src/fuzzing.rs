//! Entry points for the coverage-guided fuzz targets in `fuzz/` (built only
//! with the `fuzzing` feature): each takes arbitrary bytes to one parser or
//! encoder of the crate and panics only where the crate itself would — a
//! crash found here is a bug. They reach code that is crate-private on
//! purpose, so the crate's surface stays narrow in normal builds.

use crate::config::Config;
use crate::counters::Metrics;
use crate::format::{BodyConfig, Constraints, FormatConfig, Formatter, Rfc};
use crate::record::{Field, LogTime, Meta, Record};
use crate::source::sls::decode;
use crate::source::Flow;

/// A PullLogs body: the first byte picks plain, lz4 or zstd, the next four
/// the announced raw size; decompressed, then every log visited (pausing
/// now and then, as a full batch does).
pub fn pull_logs(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (size, body) = match rest.split_first_chunk::<4>() {
        Some((size, body)) => (u32::from_le_bytes(*size) as usize % (1 << 20), body),
        None => return,
    };
    let compress = match kind % 3 {
        0 => "",
        1 => "lz4",
        _ => "zstd",
    };
    let mut out = Vec::new();
    if decode::decompress(compress, size, body, &mut out).is_err() {
        return;
    }
    let mut resume = decode::Resume::default();
    let mut seen = 0usize;
    for _ in 0..64 {
        let visited = decode::visit_logs(&out, resume, None, &mut |r: &Record<'_>| {
            seen += r.fields.len();
            if seen % 7 == 3 {
                Flow::Full
            } else {
                Flow::Continue
            }
        });
        match visited {
            Ok(decode::Visit::Paused { resume: next, .. }) => resume = next,
            _ => return,
        }
    }
}

/// One NDJSON line.
pub fn ndjson_line(data: &[u8]) {
    let mut record = Record::default();
    let _ = crate::source::ndjson::parse_line(data, LogTime::default(), &mut record);
}

pub use siemfwd_syslog::fuzzing::syslog_stream;

/// A config file (TOML, no environment).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, "fuzz", &|_| None);
    }
}

/// A record made of `data` (fields split at 0xFF, key and value at 0xFE)
/// encoded with a header, body and framing the first byte picks; an RFC 5424
/// message must parse back as RFC 5424 with its PRI.
pub fn encode(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let fields: Vec<Field<'_>> = rest
        .split(|&b| b == 0xFF)
        .map(|f| {
            let mut kv = f.splitn(2, |&b| b == 0xFE);
            let key = kv.next().unwrap_or_default();
            let value = kv.next().unwrap_or_default();
            Field::borrowed(key, value)
        })
        .collect();
    let record = Record {
        time: LogTime::new(i64::from(pick) * 1_000_003_337, 123_456).unwrap_or_default(),
        fields,
    };
    let config = FormatConfig {
        rfc: if pick & 1 == 0 {
            Rfc::Rfc5424
        } else {
            Rfc::Rfc3164
        },
        body: if pick & 2 == 0 {
            BodyConfig::default()
        } else {
            BodyConfig::Json {}
        },
        hostname: Some("fuzz".to_owned()),
        timezone: (pick & 1 == 1).then(|| "UTC".to_owned()),
        ..FormatConfig::default()
    };
    let constraints = Constraints {
        newline_terminated: pick & 4 != 0,
        max_message: (pick & 8 != 0).then_some(480),
    };
    let Ok(mut formatter) = Formatter::build(&config, constraints, &Metrics::default()) else {
        return;
    };
    let mut out = Vec::new();
    if formatter.encode(&record, &Meta::NONE, &mut out).is_err() {
        return;
    }
    if constraints.newline_terminated {
        assert!(
            !out.contains(&b'\n') && !out.contains(&b'\r'),
            "a raw newline in an LF-framed message"
        );
    }
    if config.rfc == Rfc::Rfc5424 {
        let parsed = crate::listen::parse(&out).unwrap_or_else(|e| {
            panic!("{e}: {:?}", String::from_utf8_lossy(&out));
        });
        assert_eq!(parsed.pri, 14, "PRI of user.info");
    }
}

/// ActionTrail-like records, one per document (documents split at 0xFF),
/// through `parse_json` in one chain that remembers names from record to
/// record (`transform/names.rs`) and, each, in a fresh chain: both must
/// make the same fields, or keep the record as it was alike. The first byte
/// picks the depth and the separator.
pub fn parse_json(data: &[u8]) {
    use crate::transform::{self, Chain, TransformConfig};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let configs = [TransformConfig::ParseJson {
        when: None,
        field: "event".to_owned(),
        prefix: None,
        separator: Some([".", "", "::", "é"][usize::from(pick >> 6)].to_owned()),
        max_depth: Some(usize::from(pick % 4) + 1),
        keep_original: pick & 4 != 0,
    }];
    let metrics = Metrics::default();
    let Ok(steps) = transform::build(&configs, &metrics) else {
        return;
    };
    let fields = |r: &Record<'_>| -> Vec<(Vec<u8>, Vec<u8>)> {
        r.fields
            .iter()
            .map(|f| (f.key.to_vec(), f.value.to_vec()))
            .collect()
    };
    let mut remembering = Chain::shared(steps.clone(), &metrics);
    for text in rest.split(|&b| b == 0xFF).take(64) {
        let record = Record {
            time: LogTime::default(),
            fields: vec![
                Field::borrowed(b"__topic__", b"actiontrail_audit_event"),
                Field::borrowed(b"event", text),
            ],
        };
        let got = remembering.run(&record, |r, _| fields(r));
        let want = Chain::shared(steps.clone(), &metrics).run(&record, |r, _| fields(r));
        assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
    }
}
