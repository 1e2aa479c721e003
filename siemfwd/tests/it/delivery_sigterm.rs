//! Issue 5 acceptance (d): SIGTERM during load. siemfwd stops reading,
//! drains what is in flight (until it is safe at the receiver), commits and
//! exits 0 within `pipeline.drain_timeout`; started again, it resumes
//! where it stopped: no line missing, and none repeated (everything it had
//! sent was delivered and committed before it exited).
//!
//! And the second signal: with the SIEM down nothing in flight can be
//! delivered, so the drain would wait for its deadline; a second SIGTERM
//! ends it at once (exit 130), committing nothing undelivered, and the
//! next run sends those lines.

use crate::delivery_support;
use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use delivery_support::{append, paced_writer, sink_for, write_config, Received, Siemfwd};
use support::peers::{require, Input, Rsyslog, RsyslogOpts};

const FILES: usize = 4;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Process exit and the test's polling on a loaded two-core machine.
const MARGIN: Duration = Duration::from_secs(2);

fn config(dir: &std::path::Path, rs: &Rsyslog) {
    write_config(
        dir,
        FILES,
        true,
        &sink_for(rs, Input::Tcp, None),
        &format!(
            "[pipeline]\ncheckpoint_interval = \"1s\"\ndrain_timeout = \"{}s\"\n",
            DRAIN_TIMEOUT.as_secs()
        ),
    );
}

#[test]
fn sigterm_during_load_drains_commits_exits_0_and_resumes_without_gap() {
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let per_file = 50_000;
    config(dir.path(), &rs);
    for i in 0..FILES {
        append(dir.path(), i, 0, 0);
    }
    let mut got = Received::new(&rs, Input::Tcp, FILES, per_file);
    let written = Arc::new(AtomicUsize::new(0));
    let mut first = Siemfwd::start(dir.path(), 1);
    let writer = paced_writer(dir.path(), FILES, per_file, 25_000, written.clone());
    got.wait_until(
        "forwarding under way",
        Duration::from_secs(60),
        || first.log(),
        |g| g.unique >= 40_000,
    );
    first.signal("TERM");
    let (status, took) = first.wait(DRAIN_TIMEOUT + MARGIN + Duration::from_secs(5));
    let written_at_exit = written.load(Ordering::SeqCst);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", first.log());
    assert!(
        took <= DRAIN_TIMEOUT + MARGIN,
        "exit took {took:?}, over drain_timeout {DRAIN_TIMEOUT:?} + {MARGIN:?}"
    );
    // Everything it sent was safe before it exited, so rsyslog has it all
    // (give its writer a moment), and nothing is sent twice after the
    // restart.
    std::thread::sleep(Duration::from_millis(500));
    got.update();
    let at_exit = (got.unique, got.duplicates());

    let mut second = Siemfwd::start(dir.path(), 2);
    writer.join().expect("writer");
    got.wait_until(
        "every line after the restart",
        Duration::from_secs(120),
        || second.log(),
        |g| g.missing() == 0,
    );
    second.signal("TERM");
    let (status2, _) = second.wait(DRAIN_TIMEOUT + MARGIN + Duration::from_secs(5));
    assert!(status2.success(), "{status2:?}\n{}", second.log());
    got.update();
    println!(
        "sigterm: exit {:?} {:.2}s after SIGTERM (drain_timeout {:?}), {} lines received by then \
         ({written_at_exit} written); after the restart: {} lines, {} messages, {} missing, {} duplicates",
        status.code(),
        took.as_secs_f64(),
        DRAIN_TIMEOUT,
        at_exit.0,
        got.total_expected(),
        got.messages,
        got.missing(),
        got.duplicates()
    );
    assert_eq!(got.missing(), 0, "missing, e.g. {:?}", got.missing_sample());
    assert_eq!(
        got.duplicates(),
        0,
        "a drained, committed run must not be sent again"
    );
}

#[test]
fn second_sigterm_with_the_siem_down_exits_at_once_committing_nothing_undelivered() {
    let Some(mut rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let per_file = 5_000;
    config(dir.path(), &rs);
    for i in 0..FILES {
        append(dir.path(), i, 0, per_file / 2);
    }
    let mut got = Received::new(&rs, Input::Tcp, FILES, per_file);
    let mut first = Siemfwd::start(dir.path(), 1);
    got.wait_until(
        "the first half",
        Duration::from_secs(60),
        || first.log(),
        |g| g.unique == g.total_expected() / 2,
    );
    // Once the first half is committed, the SIEM goes away; the second
    // half is read and held, undeliverable.
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed_lines(dir.path()) != vec![per_file / 2; FILES] {
        assert!(
            Instant::now() < deadline,
            "first half not committed: {:?}\n{}",
            committed_lines(dir.path()),
            first.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rs.stop();
    for i in 0..FILES {
        append(dir.path(), i, per_file / 2, per_file);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !first.log().contains("connection to the SIEM failed") {
        assert!(Instant::now() < deadline, "no incident:\n{}", first.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal("TERM");
    // Signals sent before siemfwd has taken the first are merged into one:
    // the second goes only once the first has been seen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !first.log().contains("stopping: no new reads") {
        assert!(
            Instant::now() < deadline,
            "first TERM unseen:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        first.running(),
        "exited before the drain deadline:\n{}",
        first.log()
    );
    first.signal("TERM");
    let (status, took) = first.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{status:?}\n{}", first.log());
    assert!(
        took < Duration::from_secs(2),
        "second signal: exit took {took:?}"
    );

    assert_eq!(
        committed_lines(dir.path()),
        vec![per_file / 2; FILES],
        "the abort committed something undelivered (or lost a commit)"
    );
    rs.restart().expect("rsyslog comes back");
    let mut second = Siemfwd::start(dir.path(), 2);
    got.wait_until(
        "every line",
        Duration::from_secs(60),
        || second.log(),
        |g| g.missing() == 0,
    );
    second.signal("TERM");
    let (status2, _) = second.wait(DRAIN_TIMEOUT + MARGIN);
    assert!(status2.success(), "{status2:?}\n{}", second.log());
    got.update();
    println!(
        "second signal: exit 130 {:.2}s after it; next run: {} messages, {} missing, {} duplicates",
        took.as_secs_f64(),
        got.messages,
        got.missing(),
        got.duplicates()
    );
    assert_eq!(got.missing(), 0, "missing, e.g. {:?}", got.missing_sample());
    assert_eq!(got.duplicates(), 0, "the committed first half came again");
}

/// The committed line number of each input file (0 when none yet).
fn committed_lines(dir: &std::path::Path) -> Vec<usize> {
    let mut lines = vec![0; FILES];
    let Ok(entries) = std::fs::read_dir(dir.join("state")) else {
        return lines;
    };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let file = v["path"].as_str().unwrap_or_default();
        if let Some(i) = (0..FILES).find(|i| file.ends_with(&delivery_support::file_name(*i))) {
            lines[i] = v["line"].as_u64().unwrap_or(0) as usize;
        }
    }
    lines
}
