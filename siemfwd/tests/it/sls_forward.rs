//! Acceptance: a Log Service logstore (the emulator, 8 shards) → siemfwd (a
//! real process, consumer group) → rsyslog. Every log arrives exactly once
//! with its fields intact; afterwards the group's checkpoints equal the
//! shards' end cursors and `siemfwd status` shows zero lag. Order per shard
//! is checked against our own receiver, whose arrival order is the wire
//! order (rsyslog's output file is not: its main queue may use several
//! worker threads).

use crate::sls_support;
use crate::support;

use std::time::{Duration, Instant};

use sls_support::*;
use support::peers::{self, Input, Rsyslog, RsyslogOpts};

const SHARDS: u32 = 8;

/// The `msg` of every complete line of rsyslog's JSON output (only that
/// field is kept: a million full objects would take gigabytes).
fn read_msgs(path: &std::path::Path) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        msg: String,
    }
    let text = std::fs::read(path).unwrap_or_default();
    let complete = match text.iter().rposition(|b| *b == b'\n') {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Line>(l)
                .unwrap_or_else(|e| {
                    panic!(
                        "rsyslog wrote a bad line ({e}): {}",
                        String::from_utf8_lossy(l)
                    )
                })
                .msg
        })
        .collect()
}

async fn forward_to_rsyslog(total: u64, timeout: Duration) {
    let Some(rsyslog) = peers::require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let emu = emulator(SHARDS).await;
    let per_shard = total / u64::from(SHARDS);
    let t_load = Instant::now();
    load(&emu, SHARDS, 0, per_shard, 100);
    let load_time = t_load.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "fwd-1",
        &emu.endpoint(),
        rsyslog.addr(Input::Tcp),
        "octet_counting",
        // No failover here: a generous timeout keeps a loaded machine from
        // expiring the only consumer (which would cause duplicates).
        "heartbeat_timeout = \"20s\"",
    );
    let started = Instant::now();
    let mut fwd = Siemfwd::start(dir.path(), "fwd-1", &cfg);
    let expected = (per_shard * u64::from(SHARDS)) as usize;
    // Count lines cheaply while they arrive; parse only once all are there
    // (and again if duplicates made the count reach the target early).
    let out_file = rsyslog.workdir().join("out").join("tcp.jsonl");
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + timeout;
        loop {
            let n = count_lines(&out_file);
            if n >= expected {
                let msgs = read_msgs(&out_file);
                let seqs = msgs.iter().filter_map(|m| seq_of(m));
                if tally(seqs, SHARDS, per_shard).0.is_empty() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "expected {expected} messages within {timeout:?}, got {n}\nsiemfwd log:\n{}",
                fwd.log_text()
            );
            std::thread::sleep(Duration::from_millis(if n >= expected {
                2000
            } else {
                250
            }));
        }
    });
    let forward_time = started.elapsed();
    // Checkpoints reach the end cursors (committed on the interval).
    let at_end = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            checkpoints_at_end(&emu, SHARDS).then_some(())
        })
    });
    assert!(
        at_end.is_some(),
        "checkpoints {:?} never reached the end cursors\n{}",
        emu.checkpoints(PROJECT, LOGSTORE, "cg"),
        fwd.log_text()
    );
    // A clean stop: drain, commit, exit 0.
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "siemfwd exit\n{}",
        fwd.log_text()
    );

    // Exactly once and fields intact, judged on everything rsyslog wrote
    // by the time siemfwd exited.
    let texts = read_msgs(&out_file);
    let seqs: Vec<(u32, u64)> = texts.iter().filter_map(|t| seq_of(t)).collect();
    assert_eq!(seqs.len(), texts.len(), "every message carries its seq");
    let (missing, dups, _) = tally(seqs.iter().copied(), SHARDS, per_shard);
    assert!(
        missing.is_empty(),
        "missing {} logs, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        dups,
        0,
        "duplicates when nothing failed; siemfwd warnings: {:#?}",
        warnings(&fwd.log_text())
    );
    // Order per shard is checked on our own receiver (below): rsyslog's main
    // queue may run several worker threads under load, and its output file
    // then interleaves batches — a receiver artefact, seen at 1M logs.
    let reordered = seqs
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[1].1 < w[0].1)
        .count();
    for t in &texts {
        assert!(
            t.contains("||__topic__=t1||__source__=10.0.0.1||__tag__:__hostname__=h1||seq=")
                && t.ends_with("||user=jos\u{e9}||dup=a||dup=b"),
            "fields changed: {t:?}"
        );
    }
    let sample = &texts[0];
    let order = [
        "__topic__=t1",
        "__source__=10.0.0.1",
        "__tag__:__hostname__=h1",
        "seq=",
        "user=jos\u{e9}",
        "dup=a",
        "dup=b",
    ];
    let mut at = 0;
    for part in order {
        let found = sample[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} missing or out of order in {sample:?}"));
        at += found + part.len();
    }

    // `siemfwd status --json` shows zero lag on every shard.
    let out = crate::support::siemfwd::hermetic()
        .args(["status", "--json", "-c"])
        .arg(&cfg)
        .env_remove("SLS_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), SHARDS as usize);
    for s in shards {
        assert_eq!(s["lag_log_groups"], 0, "{s}");
        assert_eq!(s["lag_seconds"], 0, "{s}");
        assert_eq!(s["owner"], "fwd-1", "{s}");
    }
    let table = crate::support::siemfwd::hermetic()
        .args(["status", "-c"])
        .arg(&cfg)
        .env_remove("SLS_ENDPOINT")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("LAG_GROUPS"), "{table}");
    assert_eq!(table.lines().count(), 2 + SHARDS as usize, "{table}");
    println!(
        "sls_forward: {expected} logs, {SHARDS} shards: load {load_time:?}, forwarded to rsyslog in {forward_time:?} \
         ({reordered} places where rsyslog's file shows a shard out of order)\n{table}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_logs_reach_rsyslog_exactly_once_with_zero_lag() {
    forward_to_rsyslog(100_000, Duration::from_secs(180)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// About a minute in a debug build on 2 cores (46s of forwarding), so it runs
// by default; the 100k variants above fail faster when something is wrong.
async fn million_logs_reach_rsyslog_exactly_once_with_zero_lag() {
    forward_to_rsyslog(1_000_000, Duration::from_secs(900)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_logs_keep_their_order_within_each_shard() {
    let emu = emulator(SHARDS).await;
    let per_shard = 12_500;
    load(&emu, SHARDS, 0, per_shard, 100);
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "fwd-1",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        "heartbeat_timeout = \"20s\"",
    );
    let mut fwd = Siemfwd::start(dir.path(), "fwd-1", &cfg);
    let expected = (per_shard * u64::from(SHARDS)) as usize;
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(180), || {
            (receiver.count() >= expected).then_some(())
        })
    });
    assert!(
        done.is_some(),
        "got {} of {expected}\n{}",
        receiver.count(),
        fwd.log_text()
    );
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
    let seqs: Vec<(u32, u64)> = receiver
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| seq_of(l))
        .collect();
    let (missing, dups, _) = tally(seqs.iter().copied(), SHARDS, per_shard);
    assert!(
        missing.is_empty() && dups == 0,
        "missing {} dups {dups}",
        missing.len()
    );
    let mut last = vec![None::<u64>; SHARDS as usize];
    for (shard, n) in &seqs {
        let prev = last[*shard as usize].replace(*n);
        assert_eq!(
            prev.map_or(0, |p| p + 1),
            *n,
            "shard {shard}: {n} right after {prev:?}"
        );
    }
    emu.shutdown().await;
}
