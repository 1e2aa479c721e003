//! Rule-based consumption (`source.sls.query`, `source.sls.processor`)
//! against the emulator's SPL subset, for the three rules the official SDKs
//! learned the hard way (protocol notes §2.4):
//!
//! 1. progress is the cursor: a pull the statement emptied still moves it,
//!    and the shard is caught up only when the next cursor is the cursor —
//!    so a shard whose logs are nearly all filtered out is pulled back to
//!    back, not once per idle wait (`sls_idle_waits` counts the waits);
//! 2. pulls are sized on what the server scanned (`x-log-rawdata*`), not on
//!    what came back (`sls_pulls` counts them);
//! 3. checkpoints fall on pull boundaries: every shard's checkpoint ends at
//!    its end cursor, past the filtered tail.

use crate::sls_support;

use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 2;
const PER_SHARD: u64 = 20_000;

/// Forward with `rule` (a `[source.sls]` line) from an emulator with a
/// processor `one-in-1000`; returns the messages received and siemfwd's log.
async fn forward_with(rule: &str) -> (Vec<String>, String) {
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, SHARDS)
        .processor("one-in-1000", "* | where seq like '%000' | project seq")
        .start()
        .await
        .expect("emulator starts");
    // 20 logs a group, small pulls: each shard takes hundreds of them, and
    // the statement keeps one log in a thousand (`seq` ends in 000), so
    // nearly every pull comes back empty.
    load(&emu, SHARDS, 0, PER_SHARD, 20);
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "rules",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        // A long idle wait: few waits once caught up, and every emptied
        // pull taken for "caught up" would cost half a second.
        &format!(
            "fetch_bytes = \"4KiB\"\npoll_interval = \"500ms\"\nfetch_interval = \"1s\"\n{rule}"
        ),
    );
    let mut fwd = Siemfwd::start(dir.path(), "rules", &cfg);
    // `<shard>:1000`, `<shard>:2000`, … (`<shard>:0` does not end in 000).
    let kept = u64::from(SHARDS) * (PER_SHARD / 1000 - 1);
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            (receiver.count() as u64 >= kept && checkpoints_at_end(&emu, SHARDS)).then_some(())
        })
    });
    assert!(
        done.is_some(),
        "{} of {kept} logs, checkpoints at the end: {}\n{}",
        receiver.count(),
        checkpoints_at_end(&emu, SHARDS),
        warnings(&fwd.log_text()).join("\n")
    );
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let lines = receiver.lines.lock().unwrap().clone();
    emu.shutdown().await;
    (lines, fwd.log_text())
}

fn check(lines: &[String], log: &str) {
    // Exactly the logs the statement keeps, each once.
    let seqs = lines.iter().filter_map(|l| seq_of(l));
    let (missing, duplicates, seen) = tally(seqs, SHARDS, PER_SHARD);
    let kept: Vec<(u32, u64)> = seen.keys().copied().collect();
    let want: Vec<(u32, u64)> = (0..SHARDS)
        .flat_map(|s| (1000..PER_SHARD).step_by(1000).map(move |n| (s, n)))
        .collect();
    assert_eq!(kept, want, "({} missing of all)", missing.len());
    assert_eq!(duplicates, 0);
    // What the server scanned and returned, as it said.
    let total = u64::from(SHARDS) * PER_SHARD;
    assert_eq!(counter(log, "sls_scanned_lines"), total, "{log}");
    assert_eq!(counter(log, "sls_returned_lines"), want.len() as u64);
    assert_eq!(counter(log, "records_in"), want.len() as u64);
    // Rule 1: hundreds of pulls came back empty, and none of them made the
    // shard wait; waits come only once a shard is caught up (a few per
    // shard while the test waits for the checkpoints).
    let waits = counter(log, "sls_idle_waits");
    assert!(
        waits < 100,
        "{waits} idle waits: emptied pulls were taken for caught up"
    );
    // Rule 2: pulls sized on the ~4 KiB scanned (a few 1.3 KiB groups each,
    // hundreds of pulls a shard), not on the few bytes returned.
    let pulls = counter(log, "sls_pulls");
    println!("sls_rules: {pulls} pulls, {waits} idle waits");
    assert!(
        pulls > 300,
        "{pulls} pulls: sized on what came back, not on what was scanned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_filters_out_nearly_everything_keeps_pace_and_commits_to_the_end() {
    let (lines, log) = forward_with("query = \"* | where seq like '%000'\"").await;
    check(&lines, &log);
    // Every field of the kept logs arrives.
    assert!(
        lines.iter().all(|l| l.contains("user=")),
        "{:?}",
        &lines[..1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consume_processor_named_in_the_config_does_the_same_on_the_server() {
    let (lines, log) = forward_with("processor = \"one-in-1000\"").await;
    check(&lines, &log);
    // The processor projects `seq` only.
    assert!(
        lines.iter().all(|l| !l.contains("user=")),
        "{:?}",
        &lines[..1]
    );
}
