//! Issue 5 acceptance (b): siemfwd SIGKILLed 10 times at random moments
//! while it forwards followed files to rsyslog over TCP, and started again
//! each time: nothing may be missing at the receiver, and each kill may
//! cost duplicates of at most one commit interval's worth of traffic.
//!
//! "One commit interval's worth" is measured in actual traffic, not
//! estimated: rsyslog stamps every message with its reception time
//! (`received`, µs), the test notes the moment of each kill on the same
//! clock, and a kill may cost at most as many duplicates as there were
//! distinct lines received in the window
//! `[kill − (checkpoint_interval + settle_time + slack), kill]`. What a
//! SIGKILL makes siemfwd send again is what it had sent since its last
//! checkpoint: lines delivered (safe) but not yet committed, at most one
//! checkpoint interval of them, plus lines written and not yet safe, at
//! most one settle time of them. The slack, [`SLACK`] = 150 ms, covers
//! the sink's health check cadence (a batch is seen acknowledged up to a
//! quarter of the settle time late, so it becomes safe that much later:
//! 50 ms) plus 100 ms for the checkpoint's two fsyncs (the next interval
//! starts when a commit ends) and the scheduling of a loaded 2-core
//! machine. Measured: the oldest repeated line of a kill was received
//! 160–440 ms before it (442 ms with three delivery tests running at once
//! on a machine shared with other builds), against the 450 ms + fsync the
//! mechanism allows.
//!
//! A duplicate is charged to the last kill before its reception: each
//! successor resends at once what its predecessor had not committed. The
//! test also asserts the per-line form of the same rule: every line
//! repeated after a kill had been received (its latest copy before the
//! kill) at most one window before it.
//!
//! The kill moments are random over the commit cycle (0–500 ms, more than
//! two checkpoint intervals) once the restarted process has caught up:
//! committed past what its predecessor was seen to deliver. A kill during
//! that catch-up would cost the previous kill's uncommitted lines once
//! more, charging the same lines to two kills (seen on a loaded machine:
//! a line repeated 850 ms after it was first received, when a restarted
//! debug build was killed 570 ms after its start).

use crate::delivery_support;
use crate::support;

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use delivery_support::{
    committed_lines, now_us, paced_writer, sink_for, write_config, Received, Siemfwd,
};
use support::peers::{require, Input, Rsyslog, RsyslogOpts};

const FILES: usize = 4;
const LINES: usize = 300_000;
const RATE: usize = 25_000;
const KILLS: usize = 10;
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
const SETTLE: Duration = Duration::from_millis(200);
/// A quarter of the settle time (the sink's health check interval) plus
/// 100 ms for the checkpoint's fsyncs and scheduling (see the module docs).
const SLACK: Duration = Duration::from_millis(150);
const BATCH: usize = 500;
const IN_FLIGHT: usize = 8;

/// What one kill cost, from the receiver's reception times.
#[derive(Debug, Default)]
struct KillCost {
    /// Copies of already received lines that arrived after this kill and
    /// before the next one.
    duplicates: usize,
    /// Distinct lines received in the window before the kill: the bound.
    window: usize,
    /// Of the lines repeated after the kill, the longest time between the
    /// kill and the line's previous reception, in µs: what siemfwd had sent
    /// that long ago was still uncommitted.
    oldest_repeat_us: i64,
}

#[test]
fn siemfwd_sigkilled_10_times_loses_nothing_and_repeats_little() {
    let _alone = crate::support::alone();
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        slim_output: true,
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
    let mut got = Received::new(&rs, Input::Tcp, FILES, per_file).recording_arrivals();
    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut siemfwd = Siemfwd::start(dir.path(), 0);
    let writer = paced_writer(dir.path(), FILES, per_file, RATE, written.clone());
    let mut kills_us = Vec::new();
    let mut runs_ms = Vec::new();
    let mut predecessor: Vec<Option<usize>> = vec![None; FILES];
    for k in 1..=KILLS {
        let run_start = Instant::now();
        // A random moment once the process has caught up: every file
        // committed past what its predecessor was seen to deliver (for the
        // first, committed once). A kill before that would cost the
        // previous kill's lines again, and the same uncommitted lines
        // would be charged to two kills.
        let caught_up = |got: &Received| {
            let committed = committed_lines(dir.path(), FILES);
            (0..FILES).all(|i| match (predecessor[i], committed[i]) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(seen), Some(line)) => line > seen as u64,
            }) || got.missing() == 0
        };
        got.wait_until(
            "the restarted siemfwd to commit what its predecessor delivered",
            Duration::from_secs(60),
            || siemfwd.log(),
            caught_up,
        );
        let until = Instant::now() + Duration::from_millis(rng.u64(0..=500));
        while Instant::now() < until {
            // Not a synchronisation: the kill moment is random on purpose;
            // reading meanwhile keeps each read of rsyslog's output short.
            std::thread::sleep(Duration::from_millis(20));
            got.update();
        }
        assert!(siemfwd.running(), "siemfwd died:\n{}", siemfwd.log());
        kills_us.push(now_us());
        runs_ms.push(run_start.elapsed().as_millis());
        got.update();
        predecessor = got.highest().to_vec();
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
    let window = CHECKPOINT_INTERVAL + SETTLE + SLACK;
    let (before_first, costs) = costs(&got, per_file, &kills_us, window);
    println!(
        "kills (seed {seed}): {total} lines in {FILES} files offered at {RATE}/s, {KILLS} SIGKILLs, \
         all received after {:.1}s: {} messages, {} missing, {} duplicates ({before_first} before \
         the first kill); window = checkpoint interval {}ms + settle {}ms + slack {}ms",
        started.elapsed().as_secs_f64(),
        got.messages,
        got.missing(),
        got.duplicates(),
        CHECKPOINT_INTERVAL.as_millis(),
        SETTLE.as_millis(),
        SLACK.as_millis(),
    );
    for (k, c) in costs.iter().enumerate() {
        println!(
            "kill {:2} after a {:4}ms run: {:5} duplicates, bound {:5} (distinct lines \
             received in the window before it); the oldest repeated line had been received \
             {:.0}ms before the kill",
            k + 1,
            runs_ms[k],
            c.duplicates,
            c.window,
            c.oldest_repeat_us as f64 / 1000.0,
        );
    }
    assert_eq!(got.missing(), 0, "missing, e.g. {:?}", got.missing_sample());
    assert_eq!(
        before_first,
        0,
        "duplicates before any kill (a reconnect?)\n{}",
        siemfwd.log()
    );
    let window_us = i64::try_from(window.as_micros()).expect("window fits");
    for (k, c) in costs.iter().enumerate() {
        assert!(
            c.duplicates <= c.window,
            "kill {} cost {} duplicates, more than the {} lines received in the {}ms before it: \
             {costs:?}",
            k + 1,
            c.duplicates,
            c.window,
            window.as_millis()
        );
        assert!(
            c.oldest_repeat_us <= window_us,
            "kill {} repeated a line received {}µs before it, longer than the window: {costs:?}",
            k + 1,
            c.oldest_repeat_us
        );
    }
}

/// Duplicates charged to each kill (to the last kill before their
/// reception) and each kill's bound, from rsyslog's reception times.
/// Returns the duplicates received before the first kill, and one
/// [`KillCost`] per kill.
fn costs(
    got: &Received,
    per_file: usize,
    kills_us: &[i64],
    window: Duration,
) -> (usize, Vec<KillCost>) {
    let window_us = i64::try_from(window.as_micros()).expect("window fits");
    let mut arrivals = got.arrivals().to_vec();
    // Output order is reception order with one queue worker; sorting
    // keeps the analysis right even if it were not.
    arrivals.sort_by_key(|a| a.at_us);
    // Each line's latest reception so far.
    let mut last = vec![vec![None::<i64>; per_file]; FILES];
    let mut before_first = 0;
    let mut costs: Vec<KillCost> = kills_us.iter().map(|_| KillCost::default()).collect();
    for a in &arrivals {
        let Some(previous) = last[a.file][a.seq].replace(a.at_us) else {
            continue;
        };
        // Kills at or before this reception; the last of them caused it.
        match kills_us.partition_point(|k| *k <= a.at_us) {
            0 => before_first += 1,
            n => {
                let c = &mut costs[n - 1];
                c.duplicates += 1;
                c.oldest_repeat_us = c.oldest_repeat_us.max(kills_us[n - 1] - previous);
            }
        }
    }
    for (c, kill) in costs.iter_mut().zip(kills_us) {
        let from = arrivals.partition_point(|a| a.at_us < kill - window_us);
        let to = arrivals.partition_point(|a| a.at_us <= *kill);
        c.window = arrivals[from..to]
            .iter()
            .map(|a| (a.file, a.seq))
            .collect::<HashSet<_>>()
            .len();
    }
    (before_first, costs)
}
