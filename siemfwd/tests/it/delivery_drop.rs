//! Issue 5, "nothing is dropped unless the user configured a drop policy,
//! and then every drop is counted": `pipeline.when_blocked = "drop"` with
//! real processes.
//!
//! siemfwd follows four files and forwards them over TCP to rsyslog. Once
//! everything written so far is delivered and committed, rsyslog is
//! stopped while lines keep being appended; with `drop_after = "1s"`
//! siemfwd starts dropping, stays current, and delivers fresh lines again
//! once rsyslog is back. Then: lines received (distinct) + siemfwd's own
//! `records_dropped` = lines written, exactly — rsyslog was down for the
//! whole time anything was dropped, so no line can be both — and a
//! second run from the checkpoints sends only the one line appended
//! since, not the dropped ones. The default policy, the same outage, drops
//! nothing: `delivery_outage.rs`.

use crate::delivery_support;
use crate::support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use delivery_support::{append, sink_for, write_config, Received, Siemfwd};
use support::peers::{require, Input, Rsyslog, RsyslogOpts};

const FILES: usize = 4;
/// Lines per file delivered before the outage.
const BEFORE: usize = 500;
/// Lines per file appended from the moment rsyslog stops, at `RATE`.
const DURING: usize = 4_000;
/// Lines per file appended once rsyslog is back.
const AFTER: usize = 300;
/// Lines per second, all files together.
const RATE: usize = 4_000;

/// A counter of the last `siemfwd stopped` line (counters at zero are
/// not printed: 0).
fn stopped_counter(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains("siemfwd stopped"))
        .unwrap_or_else(|| panic!("no 'siemfwd stopped' line:\n{log}"));
    let key = format!("{name}=");
    line.split(|c: char| c.is_whitespace() || c == '"')
        .find_map(|kv| kv.trim_start_matches("counters=").strip_prefix(&key))
        .map_or(0, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} is not a number in {line}"))
        })
}

/// True when every input's checkpoint is at the end of its file: every
/// line read was delivered or dropped, and committed.
fn committed_to_the_end(dir: &Path) -> bool {
    let files = support::siemfwd::checkpoint_files(&dir.join("state"));
    if files.len() < FILES {
        return false;
    }
    files.iter().all(|f| {
        let Ok(text) = std::fs::read(f) else {
            return false;
        };
        let Ok(c) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return false;
        };
        let (Some(path), Some(offset)) = (c["path"].as_str(), c["offset"].as_u64()) else {
            return false;
        };
        std::fs::metadata(dir.join(path)).is_ok_and(|m| m.len() == offset)
    })
}

/// Wait for `cond`, failing after `limit` with `what` and `diagnostics`.
fn wait_for(
    what: &str,
    limit: Duration,
    diagnostics: impl Fn() -> String,
    cond: impl Fn() -> bool,
) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Append lines `from..to` of every file at about `RATE` lines/s, from a
/// thread; `progress` counts the lines appended per file so far.
fn paced(
    dir: &Path,
    from: usize,
    to: usize,
    progress: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        let per_tick = (RATE / 20 / FILES).max(1);
        let started = Instant::now();
        let mut done = from;
        let mut ticks = 0u32;
        while done < to {
            let next = (done + per_tick).min(to);
            for i in 0..FILES {
                append(&dir, i, done, next);
            }
            done = next;
            progress.store(done, Ordering::SeqCst);
            ticks += 1;
            if let Some(wait) = (tick * ticks).checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    })
}

#[test]
fn drop_policy_counts_every_dropped_line_and_commits_past_them() {
    let Some(mut rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let per_file = BEFORE + DURING + AFTER;
    let written_total = per_file * FILES;
    let sink = sink_for(&rs, Input::Tcp, None);
    let policy = "[pipeline]\ncheckpoint_interval = \"100ms\"\nwhen_blocked = \"drop\"\ndrop_after = \"1s\"\n";
    write_config(dir.path(), FILES, true, &sink, policy);
    for i in 0..FILES {
        append(dir.path(), i, 0, BEFORE);
    }
    // One more line per file slot for the second run's line.
    let mut got = Received::new(&rs, Input::Tcp, FILES, per_file + 1);
    let mut siemfwd = Siemfwd::start(dir.path(), 1);

    // Before: everything delivered and committed, so nothing is in flight
    // when rsyslog stops.
    got.wait_until(
        "the lines written before the outage",
        Duration::from_secs(60),
        || siemfwd.log(),
        |g| g.unique == BEFORE * FILES,
    );
    wait_for(
        "checkpoints at the end of the files",
        Duration::from_secs(30),
        || siemfwd.log(),
        || committed_to_the_end(dir.path()),
    );
    rs.stop();
    let down_at = Instant::now();

    // During: lines keep coming; after a second without a connection
    // siemfwd drops them.
    let progress = Arc::new(AtomicUsize::new(BEFORE));
    let writer = paced(dir.path(), BEFORE, BEFORE + DURING, progress.clone());
    wait_for(
        "siemfwd to start dropping",
        Duration::from_secs(30),
        || siemfwd.log(),
        || siemfwd.log().contains("the SIEM cannot take data"),
    );
    let dropping_after = down_at.elapsed();
    // Keep the outage going while more lines come in.
    let more = progress.load(Ordering::SeqCst) + DURING / 4;
    wait_for(
        "more lines appended while dropping",
        Duration::from_secs(30),
        || siemfwd.log(),
        || progress.load(Ordering::SeqCst) >= more.min(BEFORE + DURING),
    );
    assert!(siemfwd.running(), "siemfwd died:\n{}", siemfwd.log());
    got.update();
    let received_while_down = got.unique - BEFORE * FILES;
    rs.restart().expect("rsyslog comes back on the same port");
    let outage = down_at.elapsed();
    writer.join().expect("writer");

    // After: fresh lines are delivered again.
    for i in 0..FILES {
        append(dir.path(), i, BEFORE + DURING, per_file);
    }
    wait_for(
        "delivery to resume",
        Duration::from_secs(60),
        || siemfwd.log(),
        || siemfwd.log().contains("the SIEM takes data again"),
    );
    wait_for(
        "every line delivered or dropped, and committed",
        Duration::from_secs(60),
        || siemfwd.log(),
        || committed_to_the_end(dir.path()),
    );
    siemfwd.signal("TERM");
    let (status, _) = siemfwd.wait(Duration::from_secs(30));
    let log = siemfwd.log();
    assert!(status.success(), "siemfwd failed: {status:?}\n{log}");
    let dropped = stopped_counter(&log, "records_dropped") as usize;
    let bytes_dropped = stopped_counter(&log, "bytes_dropped");
    let delivered = stopped_counter(&log, "messages_delivered") as usize;
    // rsyslog writes what it received in its own time.
    got.wait_until(
        "received + dropped = written",
        Duration::from_secs(60),
        || {
            format!(
                "{dropped} dropped\n{}\n--- siemfwd ---\n{log}",
                rs.internal_log()
            )
        },
        |g| g.unique + dropped >= written_total,
    );
    let received = got.unique;
    let messages = got.messages;

    // A second run resumes from the checkpoints: only the line appended
    // since goes; the dropped lines are not sent again.
    append(dir.path(), 0, per_file, per_file + 1);
    write_config(dir.path(), FILES, false, &sink, policy);
    let mut second = Siemfwd::start(dir.path(), 2);
    let (status, _) = second.wait(Duration::from_secs(60));
    let log2 = second.log();
    assert!(status.success(), "second run failed: {status:?}\n{log2}");
    got.wait_until(
        "the line appended for the second run",
        Duration::from_secs(30),
        || log2.clone(),
        |g| g.unique == received + 1,
    );
    let read_again = stopped_counter(&log2, "records_in");

    let starts = log.matches("the SIEM cannot take data").count();
    let ends = log.matches("the SIEM takes data again").count();
    println!(
        "drop policy (drop_after 1s), {FILES} files, {RATE} lines/s: {written_total} lines written \
         ({} before the outage, {} during it, {} after); rsyslog down {:.1}s, dropping from \
         {:.1}s in; received {received} distinct ({} messages, {} duplicates, {received_while_down} \
         while down), siemfwd counted {dropped} records dropped ({bytes_dropped} bytes) and \
         {delivered} delivered: received + dropped = {} (written {written_total}), {} missing; \
         {starts} drop incident(s) logged, {ends} ended; second run read {read_again} line(s) \
         and rsyslog got {} more message(s)",
        BEFORE * FILES,
        DURING * FILES,
        AFTER * FILES,
        outage.as_secs_f64(),
        dropping_after.as_secs_f64(),
        messages,
        messages - received,
        received + dropped,
        written_total - received,
        got.messages - messages,
    );
    assert!(dropped > 0, "nothing dropped:\n{log}");
    assert_eq!(received_while_down, 0, "rsyslog was down");
    assert_eq!(
        received + dropped,
        written_total,
        "every line is either received or counted as dropped, never both (missing e.g. {:?})",
        got.missing_sample()
    );
    assert!(
        received > BEFORE * FILES,
        "nothing delivered after the outage"
    );
    // Every line sent after the dropped ones arrived: the newest lines.
    assert_eq!(
        read_again, 1,
        "second run read more than the new line:\n{log2}"
    );
    assert_eq!(
        got.messages,
        messages + 1,
        "the second run sent more than the new line"
    );
    assert_eq!((starts, ends), (1, 1), "one line each way:\n{log}");
}

#[test]
fn check_refuses_drop_after_without_the_drop_policy_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    append(dir.path(), 0, 0, 1);
    let cases = [
        (
            "drop_after = \"5s\"\n",
            "pipeline.drop_after: is set, but pipeline.when_blocked is \"wait\"",
        ),
        (
            "when_blocked = \"drop\"\ndrop_after = \"0s\"\n",
            "pipeline.drop_after: must be longer than 0",
        ),
        (
            "when_blocked = \"sometimes\"\n",
            "pipeline.when_blocked: unknown variant `sometimes`",
        ),
    ];
    for (pipeline, expected) in cases {
        write_config(
            dir.path(),
            1,
            false,
            "address = \"127.0.0.1:9\"",
            &format!("[pipeline]\n{pipeline}"),
        );
        // A clean environment: no SIEMFWD_* of the caller overrides the file.
        let out = support::siemfwd::command(&["check", "-c", "c.toml"])
            .current_dir(dir.path())
            .output()
            .expect("siemfwd check runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{pipeline}\n{err}");
        assert!(
            err.contains(expected),
            "{pipeline}: expected {expected:?} in\n{err}"
        );
    }
}
