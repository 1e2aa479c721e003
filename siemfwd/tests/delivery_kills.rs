//! Issue 5 acceptance (b): siemfwd SIGKILLed 10 times at random moments
//! while it forwards followed files to rsyslog over TCP, and started again
//! each time: nothing may be missing at the receiver, and each kill may
//! cost duplicates only for what was delivered but not yet committed, about
//! one `pipeline.checkpoint_interval` of traffic plus what was written and
//! not yet safe (the settle time).
//!
//! The bound asserted per kill: the batches in flight (written, not yet
//! safe: `in_flight_batches × batch_records` per file) plus what can be
//! delivered and not yet committed in one checkpoint interval (a shard
//! moves at most its in-flight window per settle time). The test also
//! prints, per kill, what rsyslog wrote out in the checkpoint interval plus
//! the settle time before it; rsyslog writes out with a lag (its queue), so
//! that figure is only indicative.

mod delivery_support;
mod support;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use delivery_support::{paced_writer, sink_for, write_config, Received, Siemfwd};
use support::peers::{require, Input, Rsyslog, RsyslogOpts};

const FILES: usize = 4;
const LINES: usize = 300_000;
const RATE: usize = 25_000;
const KILLS: usize = 10;
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
const SETTLE: Duration = Duration::from_millis(200);
const BATCH: usize = 500;
const IN_FLIGHT: usize = 8;

#[test]
fn siemfwd_sigkilled_10_times_loses_nothing_and_repeats_little() {
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let per_file = LINES / FILES;
    write_config(
        dir.path(),
        FILES,
        true,
        &sink_for(&rs, Input::Tcp, None),
        &format!(
            "settle_time = \"{}ms\"\n[pipeline]\ncheckpoint_interval = \"{}ms\"\nbatch_records = {BATCH}\n\
             in_flight_batches = {IN_FLIGHT}\n",
            SETTLE.as_millis(),
            CHECKPOINT_INTERVAL.as_millis()
        ),
    );
    for i in 0..FILES {
        delivery_support::append(dir.path(), i, 0, 0);
    }
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut got = Received::new(&rs, Input::Tcp, FILES, per_file);
    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut siemfwd = Siemfwd::start(dir.path(), 0);
    let writer = paced_writer(dir.path(), FILES, per_file, RATE, written.clone());
    // Each kill's duplicates show once its successor has resent what was
    // not committed: measured just before the next kill (or the end). The
    // allowance of a kill is what the receiver got in the checkpoint
    // interval plus the settle time (and a poll) before it: the most that
    // can be delivered and not yet committed.
    let window = CHECKPOINT_INTERVAL + SETTLE + Duration::from_millis(50);
    let mut dups_before = Vec::new();
    let mut allowances = Vec::new();
    let mut samples: Vec<(Instant, usize)> = Vec::new();
    for k in 1..=KILLS {
        // Random, but long enough for the process to start and commit
        // once (a process killed before its first commit makes its
        // successor resend its predecessor's uncommitted lines too).
        let until = Instant::now() + Duration::from_millis(rng.u64(500..=1000));
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            got.update();
            samples.push((Instant::now(), got.unique));
        }
        got.update();
        let now = Instant::now();
        let before = samples
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= window)
            .map_or(0, |(_, u)| *u);
        allowances.push(got.unique - before);
        dups_before.push(got.duplicates());
        assert!(siemfwd.running(), "siemfwd died:\n{}", siemfwd.log());
        siemfwd.kill();
        siemfwd = Siemfwd::start(dir.path(), k);
    }
    writer.join().expect("writer");
    let total = got.total_expected();
    got.wait_until(
        "every line",
        Duration::from_secs(120),
        || format!("{}\n--- siemfwd ---\n{}", rs.internal_log(), siemfwd.log()),
        |g| g.missing() == 0,
    );
    siemfwd.signal("TERM");
    let (status, _) = siemfwd.wait(Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", siemfwd.log());
    got.update();
    dups_before.push(got.duplicates());
    let per_kill: Vec<usize> = dups_before.windows(2).map(|w| w[1] - w[0]).collect();
    let interval_worth = (RATE as f64 * CHECKPOINT_INTERVAL.as_secs_f64()) as usize;
    println!(
        "kills (seed {seed}): {total} lines in {FILES} files offered at {RATE}/s, {KILLS} SIGKILLs, \
         all received after {:.1}s: {} messages, {} missing, {} duplicates; \
         per kill {per_kill:?}; rsyslog wrote out in the {}ms before each kill (checkpoint \
         interval {}ms + settle {}ms + a poll) {allowances:?}; \
         one checkpoint interval at the offered rate is {interval_worth} lines",
        started.elapsed().as_secs_f64(),
        got.messages,
        got.missing(),
        got.duplicates(),
        window.as_millis(),
        CHECKPOINT_INTERVAL.as_millis(),
        SETTLE.as_millis(),
    );
    assert_eq!(got.missing(), 0, "missing, e.g. {:?}", got.missing_sample());
    let in_flight = IN_FLIGHT * BATCH * FILES;
    let per_interval =
        (in_flight as f64 * CHECKPOINT_INTERVAL.as_secs_f64() / SETTLE.as_secs_f64()) as usize;
    let bound = in_flight + per_interval;
    println!(
        "kills: bound per kill {bound} = in flight {in_flight} + one checkpoint interval of \
         deliveries at most {per_interval}; worst kill {}",
        per_kill.iter().max().unwrap_or(&0)
    );
    for (k, d) in per_kill.iter().enumerate() {
        assert!(
            *d <= bound,
            "kill {} cost {d} duplicates, more than in flight plus one checkpoint interval \
             ({bound}): {per_kill:?}",
            k + 1
        );
    }
}
