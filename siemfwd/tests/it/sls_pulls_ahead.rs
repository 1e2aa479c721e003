//! Pulls ahead (issue 10, `source/sls/prefetch.rs`): a shard read from afar
//! keeps several PullLogs in flight, started at guessed cursors. A guess is
//! only a request: this test makes guesses go wrong on purpose and checks
//! that no log is skipped, repeated or reordered because of them.
//!
//! The emulator delays every request by 20–40 ms (so a lagging shard wants
//! pulls ahead, and answers come back out of order), and answers a share of
//! pulls *short* — half the log groups it found, though more are there — so
//! the pull guessed to start where a full answer would end does not line up
//! and must be dropped. Both are checked to have happened (siemfwd's
//! `sls_pulls_ahead` / `sls_pulls_ahead_unused` counters, the emulator's
//! fault count), so the test cannot pass without meeting them.

use crate::sls_support;

use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 4;
const PER_SHARD: u64 = 20_000;

/// What one run saw.
struct Run {
    ahead: u64,
    unused: u64,
    short_pulls: u64,
}

/// Moves every log through an emulator 20–40 ms away that answers
/// `short_rate` of the pulls short; checks nothing was skipped, repeated or
/// reordered.
async fn forward_through_short_answers(short_rate: f64) -> Run {
    let emu = emulator(SHARDS).await;
    // 20 logs a group: with 16 KiB pulls a shard needs hundreds of pulls.
    load(&emu, SHARDS, 0, PER_SHARD, 20);
    let receiver = SeqCounter::start(SHARDS, PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "fwd-1",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        "fetch_bytes = \"16KiB\"\nheartbeat_timeout = \"20s\"\nheartbeat_interval = \"2s\"",
    );
    emu.faults()
        .set_latency(Duration::from_millis(20), Duration::from_millis(20));
    emu.faults().set_short_pull_rate(short_rate);
    let mut fwd = Siemfwd::start(dir.path(), "fwd-1", &cfg);

    let total = u64::from(SHARDS) * PER_SHARD;
    let arrived = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(300), || {
            (receiver.lines() >= total && receiver.missing().0 == 0).then_some(())
        })
    });
    let (missing, first_missing) = receiver.missing();
    assert!(
        arrived.is_some(),
        "{missing} of {total} logs missing (e.g. {first_missing:?}); faults fired {:?}\n{}",
        emu.faults().counts(),
        warnings(&fwd.log_text()).join("\n")
    );
    let at_end = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            checkpoints_at_end(&emu, SHARDS).then_some(())
        })
    });
    assert!(
        at_end.is_some(),
        "checkpoints never reached the end cursors"
    );
    let short_pulls = emu.faults().counts().short_pulls;
    emu.faults().clear();
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    let log = fwd.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "siemfwd exit\n{}",
        warnings(&log).join("\n")
    );
    let ahead = counter(&log, "sls_pulls_ahead");
    let unused = counter(&log, "sls_pulls_ahead_unused");
    println!(
        "sls_pulls_ahead: {total} logs; {ahead} pulls ahead, {unused} of them unused; \
         {short_pulls} short answers; {} duplicates, {} reordered",
        receiver.duplicates(),
        receiver.reordered()
    );
    // No log skipped (above), repeated or out of order.
    assert_eq!(receiver.duplicates(), 0, "logs sent twice");
    assert_eq!(receiver.reordered(), 0, "logs out of their shard's order");
    assert!(receiver.strays().is_empty(), "{:?}", receiver.strays());
    emu.shutdown().await;
    Run {
        ahead,
        unused,
        short_pulls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_ahead_that_do_not_line_up_never_skip_repeat_or_reorder() {
    let run = forward_through_short_answers(0.2).await;
    // What the test is about happened.
    assert!(run.ahead > 0, "no pull ahead at 20–40 ms");
    assert!(run.short_pulls > 0, "no short answer was served");
    assert!(
        run.unused > 0,
        "short answers never made a guess go unused ({} pulls ahead)",
        run.ahead
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_always_answers_short_is_never_guessed_past() {
    // A pull that comes back with fewer groups than asked for is read as
    // "caught up", so a server that caps every answer (as a size limit
    // would) gets no pull ahead at all: no request is wasted on guesses.
    let run = forward_through_short_answers(1.0).await;
    assert!(run.short_pulls > 100, "{} short answers", run.short_pulls);
    assert_eq!(
        run.ahead, 0,
        "pulls ahead against answers that are all short"
    );
}
