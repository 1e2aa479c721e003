//! The shipped ActionTrail example (`examples/actiontrail-rules.toml` over
//! `examples/logs/actiontrail-raw.ndjson`, the event one JSON string as Log Service
//! delivers it) through a real rsyslog: every record's PRI and header fields as the receiver
//! parsed them, computed here independently from the sample with `serde_json`; filtered
//! records committed and counted, and nothing sent again after a SIGKILL and a restart.
//!
//! Needs rsyslog (scripts/peers/install.sh); SIEMFWD_SKIP_PEERS=1 skips loudly.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::peers::{repo_root, require, Input, Rsyslog, RsyslogOpts};
use support::siemfwd::{command, run_to_end, stopped_counters, Running};

const ARRIVAL: Duration = Duration::from_secs(30);

/// What the example's rules make of one raw line: `None` when filtered, else
/// (PRI, HOSTNAME, MSGID, eventName).
fn expected(line: &str) -> Option<(u8, String, String, String)> {
    let rec: Value = serde_json::from_str(line).expect("sample line");
    let event: Value =
        serde_json::from_str(rec["event"].as_str().expect("event")).expect("event JSON");
    if event["eventRW"] == "Read" {
        return None;
    }
    let name = event["eventName"].as_str().expect("eventName").to_owned();
    let failed = event.get("errorCode").is_some();
    let mut severity = 5; // notice
    if failed {
        severity = 4; // warning
    }
    if [
        "CreateAccessKey",
        "AttachPolicyToUser",
        "PutBucketAcl",
        "DeleteLogStore",
    ]
    .contains(&name.as_str())
    {
        severity = 1; // alert
    }
    let no_mfa = event["additionalEventData"]["MFAUsed"] == "false";
    if name == "ConsoleSignin" && (failed || no_mfa) {
        severity = 1;
    }
    let facility = if name == "ConsoleSignin" { 4 } else { 19 }; // auth, local3
    let region = event["acsRegion"].as_str().expect("region").to_owned();
    Some((facility * 8 + severity, region, name.clone(), name))
}

/// The example config, reading the sample from the repository and sending to `port`.
fn config(dir: &Path, port: u16, follow: bool) -> String {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("examples/actiontrail-rules.toml"))
        .expect("example config");
    let sample = root.join("examples/logs/actiontrail-raw.ndjson");
    let replaced = text
        .replace(
            "paths = [\"examples/logs/actiontrail-raw.ndjson\"]",
            &format!(
                "paths = [{:?}]\nfollow = {follow}\npoll_interval = \"50ms\"",
                sample.display().to_string()
            ),
        )
        .replace(
            "state_dir = \"target/actiontrail-rules-state\"",
            &format!("state_dir = {:?}", dir.join("state").display().to_string()),
        )
        .replace(
            "[sink]\ntype = \"stdout\"",
            &format!(
                "[sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\n[pipeline]\ncheckpoint_interval = \"100ms\""
            ),
        );
    assert_ne!(text, replaced);
    assert!(replaced.contains("type = \"tcp\"") && replaced.contains("follow ="));
    replaced
}

#[test]
fn actiontrail_example_sets_pri_and_header_per_record_through_rsyslog_and_commits_filtered() {
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..Default::default()
    })) else {
        return;
    };
    let sample = std::fs::read_to_string(repo_root().join("examples/logs/actiontrail-raw.ndjson"))
        .expect("sample");
    let want: Vec<_> = sample.lines().filter_map(expected).collect();
    let filtered = sample.lines().count() - want.len();
    assert!(
        filtered > 0 && want.len() > 100,
        "the sample exercises both"
    );

    // First run follows the file, so it is still running once everything arrived and the
    // checkpoint is written: then it is SIGKILLed.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config(dir.path(), rs.port(Input::Tcp), true)).expect("config");
    let cfg_arg = cfg.display().to_string();
    let mut first = Running::start(command(&["--log-format", "json", "run", "-c", &cfg_arg]));
    let got = rs.wait_for(Input::Tcp, want.len(), ARRIVAL);
    assert_eq!(got.len(), want.len());
    for (msg, (pri, host, msgid, name)) in got.iter().zip(&want) {
        assert_eq!(msg["pri"], pri.to_string(), "{name}: {msg}");
        assert_eq!(msg["hostname"], host.as_str(), "{msg}");
        assert_eq!(msg["msgid"], msgid.as_str(), "{msg}");
        let body = msg["msg"].as_str().expect("msg");
        assert!(
            body.contains(&format!("||event.eventName={name}||")),
            "{body}"
        );
        assert!(
            !body.contains("__tag__:") && !body.contains("event.userAgent="),
            "{body}"
        );
    }
    // The checkpoint covers the whole file (filtered records included) within a few
    // checkpoint intervals; then the process dies without a word.
    let state = dir.path().join("state");
    let deadline = Instant::now() + ARRIVAL;
    let file_len = sample.len() as u64;
    loop {
        let committed = std::fs::read_dir(&state)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
                    .any(|cp| cp["offset"].as_u64() == Some(file_len))
            })
            .unwrap_or(false);
        if committed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint at the end of the file in {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.signal("KILL");
    first.wait_exit(ARRIVAL);

    // The restart reads nothing: every record, delivered or filtered, was committed.
    std::fs::write(&cfg, config(dir.path(), rs.port(Input::Tcp), false)).expect("config");
    let (status, _, stderr) = run_to_end(&["--log-format", "json", "run", "-c", &cfg_arg], ARRIVAL);
    assert!(status.success(), "{stderr}");
    let counters = stopped_counters(&stderr).expect("counters");
    assert_eq!(counters.get("records_in"), None, "{counters:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rs.messages(Input::Tcp).len(),
        want.len(),
        "nothing sent again"
    );

    // A fresh state dir counts the filtered records once, and the JSON parse never failed.
    let fresh = tempfile::tempdir().expect("temp dir");
    let cfg2 = fresh.path().join("c.toml");
    std::fs::write(&cfg2, config(fresh.path(), rs.port(Input::Tcp), false)).expect("config");
    let cfg2_arg = cfg2.display().to_string();
    let (status, _, stderr) =
        run_to_end(&["--log-format", "json", "run", "-c", &cfg2_arg], ARRIVAL);
    assert!(status.success(), "{stderr}");
    let counters = stopped_counters(&stderr).expect("counters");
    assert_eq!(
        counters.get("records_filtered"),
        Some(&(filtered as u64)),
        "{counters:?}"
    );
    assert_eq!(counters.get("transform_json_failed"), None, "{counters:?}");
    assert_eq!(
        counters.get("messages_delivered"),
        Some(&(want.len() as u64))
    );
}
