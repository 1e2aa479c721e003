//! TLS refusals, end to end: siemfwd (the real binary) against real receivers whose TLS
//! setup it must refuse, or that refuse it. For each cause — unknown CA, wrong hostname,
//! expired certificate, missing client certificate —
//!
//! - `siemfwd check` exits non-zero and its error line names the cause in words an operator
//!   understands, with the setting to look at;
//! - `siemfwd run` delivers nothing and claims nothing: the receiver got no message, no
//!   checkpoint covers a record, the counters show no delivery; the incident is logged once
//!   (one WARN line with the cause) however many times it reconnects; and SIGTERM stops it
//!   within the drain deadline with exit code 130 (in-flight batches abandoned).
//!
//! Receivers: rsyslog (GnuTLS) and syslog-ng (OpenSSL) presenting the test PKI's
//! `expired-server` and `wrong-host-server` certificates (`SERVER_CERT`), a config trusting
//! `other-ca.pem` for the unknown CA, and the mTLS ports of rsyslog (which drops a client
//! without a certificate after a TLS 1.3 handshake, without an alert) and syslog-ng (which
//! sends `certificate_required`).
//!
//! Needs rsyslog and syslog-ng (scripts/peers/install.sh); SIEMFWD_SKIP_PEERS=1 skips loudly.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::peers::{
    certs, require, Input, Peer, Rsyslog, RsyslogOpts, ServerCert, SyslogNg, SyslogNgOpts,
};
use support::siemfwd::{self as proc, ndjson_line, toml_path, Running};

/// `siemfwd check` gives up after one connection attempt (connect_timeout below).
const CHECK_LIMIT: Duration = Duration::from_secs(20);
/// How long siemfwd may keep reconnecting before the test has seen enough attempts.
const RETRY_LIMIT: Duration = Duration::from_secs(20);
/// Reconnect attempts to see (in the debug log) before judging "logged once".
const ATTEMPTS: u64 = 4;
/// `pipeline.drain_timeout` of the run; the exit after SIGTERM must come soon after it.
const DRAIN: Duration = Duration::from_secs(1);
/// Drain deadline plus process teardown on a slow, shared machine.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    UnknownCa,
    WrongHost,
    Expired,
    MissingClientCert,
}

impl Cause {
    /// Words the error line must hold (all of them, case-insensitive): the cause itself, and
    /// for the server-side causes the setting to fix.
    fn words(self) -> &'static [&'static str] {
        match self {
            Cause::UnknownCa => &["not signed by a trusted ca", "sink.tls.ca_file"],
            Cause::WrongHost => &["not valid for name localhost", "wrong.example"],
            Cause::Expired => &["certificate has expired"],
            Cause::MissingClientCert => &["client certificate", "sink.tls.cert_file"],
        }
    }

    /// The phrase that identifies the incident in a log line.
    fn key_phrase(self) -> &'static str {
        self.words()[0]
    }
}

/// A started receiver of either kind (each stops its daemon on drop).
enum Receiver {
    Rsyslog(Rsyslog),
    SyslogNg(SyslogNg),
}

impl std::ops::Deref for Receiver {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        match self {
            Receiver::Rsyslog(r) => r,
            Receiver::SyslogNg(s) => s,
        }
    }
}

/// A receiver set up so that `cause` happens, and the listener siemfwd must use.
fn scene(cause: Cause, syslog_ng: bool) -> Option<(Receiver, Input)> {
    let (input, server_cert) = match cause {
        Cause::UnknownCa => (Input::Tls, ServerCert::Valid),
        Cause::WrongHost => (Input::Tls, ServerCert::WrongHost),
        Cause::Expired => (Input::Tls, ServerCert::Expired),
        Cause::MissingClientCert => (Input::Mtls, ServerCert::Valid),
    };
    let receiver = if syslog_ng {
        Receiver::SyslogNg(require(SyslogNg::start(SyslogNgOpts {
            inputs: vec![input],
            server_cert,
        }))?)
    } else {
        Receiver::Rsyslog(require(Rsyslog::start(RsyslogOpts {
            inputs: vec![input],
            server_cert,
            ..Default::default()
        }))?)
    };
    Some((receiver, input))
}

fn config(cause: Cause, dir: &Path, port: u16) -> String {
    let pki = certs();
    let ca = match cause {
        // A CA that did not sign the receiver's certificate.
        Cause::UnknownCa => pki.join("other-ca.pem"),
        _ => pki.join("ca.pem"),
    };
    format!(
        "[source]\ntype = \"file\"\n\
         [source.file]\npaths = [{paths}]\nstate_dir = {state}\n\
         [format]\nhostname = \"refusal.test\"\n\
         [sink]\ntype = \"tls\"\naddress = \"127.0.0.1:{port}\"\n\
         connect_timeout = \"5s\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n\
         [sink.tls]\nca_file = {ca}\nserver_name = \"localhost\"\n\
         [pipeline]\ndrain_timeout = \"{drain}s\"\ncheckpoint_interval = \"100ms\"\n",
        paths = toml_path(&dir.join("in.ndjson")),
        state = toml_path(&dir.join("state")),
        ca = toml_path(&ca),
        drain = DRAIN.as_secs(),
    )
}

/// Lines of `text` that name the cause (case-insensitive).
fn lines_naming(text: &str, cause: Cause) -> Vec<&str> {
    text.lines()
        .filter(|l| l.to_lowercase().contains(cause.key_phrase()))
        .collect()
}

/// (a) `siemfwd check` exits non-zero with one error line naming the cause.
fn check_refuses(cause: Cause, syslog_ng: bool) {
    let Some((receiver, input)) = scene(cause, syslog_ng) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("in.ndjson"), b"").expect("write input");
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, config(cause, dir.path(), receiver.port(input))).expect("config");
    let cfg_arg = cfg.display().to_string();
    let started = Instant::now();
    let (status, stdout, stderr) = proc::run_to_end(&["check", "-c", &cfg_arg], CHECK_LIMIT);
    eprintln!(
        "{cause:?} (syslog-ng: {syslog_ng}) check in {:?}:\n{stderr}",
        started.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "{cause:?}: {status}\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("sink: ok"), "{cause:?}: {stdout}");
    // The line the operator reads: `siemfwd: error: <what>: <cause>`. (main.rs also logs
    // the same text as an ERROR event just before it; that is the log, not a second
    // diagnosis, so only the `siemfwd: error:` line is counted here.)
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("siemfwd: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{cause:?}: {stderr}");
    let line = errors[0].to_lowercase();
    for word in cause.words() {
        assert!(
            line.contains(word),
            "{cause:?}: {word:?} not in {:?}",
            errors[0]
        );
    }
    assert!(
        line.contains(&format!("127.0.0.1:{}", receiver.port(input))),
        "{cause:?}: the receiver is named: {:?}",
        errors[0]
    );
    assert!(
        receiver.messages(input).is_empty(),
        "{}",
        receiver.diagnostics()
    );
}

/// (b) `siemfwd run`: no delivery claimed, the incident logged once, SIGTERM → exit 130.
fn run_claims_nothing(cause: Cause, syslog_ng: bool) {
    let Some((receiver, input)) = scene(cause, syslog_ng) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let records: Vec<u8> = (0..3)
        .flat_map(|i| {
            ndjson_line(&[
                (b"__time__", b"1700000000"),
                (b"seq", i.to_string().as_bytes()),
            ])
        })
        .collect();
    std::fs::write(dir.path().join("in.ndjson"), &records).expect("write input");
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, config(cause, dir.path(), receiver.port(input))).expect("config");
    let cfg_arg = cfg.display().to_string();
    let mut cmd = proc::command(&[
        "--log-format",
        "json",
        "--log-level",
        "info,siemfwd::sink=debug",
        "run",
        "-c",
        &cfg_arg,
    ]);
    cmd.current_dir(dir.path());
    let mut p = Running::start(cmd);

    // Wait (on the log, not the clock) until siemfwd has retried several times.
    p.wait_stderr(RETRY_LIMIT, "reconnect attempts", |text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["failures"].as_u64().is_some_and(|n| n >= ATTEMPTS))
    });
    let stderr = p.stderr();
    let warns: Vec<&str> = lines_naming(&stderr, cause)
        .into_iter()
        .filter(|l| l.contains("\"level\":\"WARN\""))
        .collect();
    assert_eq!(
        warns.len(),
        1,
        "{cause:?}: the incident must be logged once at WARN, got:\n{stderr}"
    );
    // Retries are logged at debug and name the same cause: the WARN was about this.
    assert!(
        lines_naming(&stderr, cause).len() > warns.len(),
        "{cause:?}: retries name the cause at debug:\n{stderr}"
    );
    // Nothing claimed so far: no checkpoint covers a record.
    assert_no_checkpoint(dir.path(), cause);

    let stop_at = Instant::now();
    p.signal("TERM");
    let status = p.wait_exit(EXIT_LIMIT);
    let took = stop_at.elapsed();
    let stderr = p.stderr();
    assert_eq!(
        status.code(),
        Some(130),
        "{cause:?}: in-flight batches abandoned → 130, got {status}\n{stderr}"
    );
    assert!(
        took >= DRAIN,
        "{cause:?}: stopped after {took:?}, before the drain deadline"
    );
    let warns_total = lines_naming(&stderr, cause)
        .into_iter()
        .filter(|l| l.contains("\"level\":\"WARN\""))
        .count();
    assert_eq!(
        warns_total, 1,
        "{cause:?}: one WARN for the whole outage:\n{stderr}"
    );
    let counters = proc::stopped_counters(&stderr)
        .unwrap_or_else(|| panic!("{cause:?}: no 'siemfwd stopped' line:\n{stderr}"));
    assert_eq!(
        counters.get("records_in"),
        Some(&3),
        "{cause:?}: {counters:?}"
    );
    assert_eq!(
        counters.get("messages_delivered"),
        None,
        "{cause:?}: {counters:?}"
    );
    assert_eq!(
        counters.get("bytes_delivered"),
        None,
        "{cause:?}: {counters:?}"
    );
    assert_no_checkpoint(dir.path(), cause);
    assert!(
        receiver.messages(input).is_empty(),
        "{cause:?}: the receiver got messages:\n{}",
        receiver.diagnostics()
    );
    eprintln!("{cause:?} (syslog-ng: {syslog_ng}) run stopped {took:?} after SIGTERM");
}

/// No checkpoint, or one at offset 0: nothing was claimed delivered.
fn assert_no_checkpoint(dir: &Path, cause: Cause) {
    for file in proc::checkpoint_files(&dir.join("state")) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let cp: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{cause:?}: {} is not JSON ({e})", file.display()));
        assert_eq!(cp["offset"].as_u64(), Some(0), "{cause:?}: {text}");
    }
}

#[test]
fn check_names_unknown_ca() {
    check_refuses(Cause::UnknownCa, false);
}

#[test]
fn check_names_wrong_hostname() {
    check_refuses(Cause::WrongHost, false);
}

#[test]
fn check_names_expired_certificate() {
    check_refuses(Cause::Expired, false);
}

#[test]
fn check_names_missing_client_certificate_rsyslog() {
    check_refuses(Cause::MissingClientCert, false);
}

#[test]
fn check_names_missing_client_certificate_syslog_ng() {
    check_refuses(Cause::MissingClientCert, true);
}

#[test]
fn check_names_server_certificate_causes_with_syslog_ng_too() {
    // The same client-side verdicts whatever the receiver's TLS library (OpenSSL here).
    for cause in [Cause::UnknownCa, Cause::WrongHost, Cause::Expired] {
        check_refuses(cause, true);
    }
}

#[test]
fn run_unknown_ca_delivers_nothing_logs_once_and_exits_130() {
    run_claims_nothing(Cause::UnknownCa, false);
}

#[test]
fn run_wrong_hostname_delivers_nothing_logs_once_and_exits_130() {
    run_claims_nothing(Cause::WrongHost, false);
}

#[test]
fn run_expired_certificate_delivers_nothing_logs_once_and_exits_130() {
    run_claims_nothing(Cause::Expired, false);
}

#[test]
fn run_missing_client_certificate_rsyslog_delivers_nothing_logs_once_and_exits_130() {
    run_claims_nothing(Cause::MissingClientCert, false);
}

#[test]
fn run_missing_client_certificate_syslog_ng_delivers_nothing_logs_once_and_exits_130() {
    run_claims_nothing(Cause::MissingClientCert, true);
}
