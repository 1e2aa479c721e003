//! The progress line: while the source is behind, one log line every
//! `pipeline.progress_interval` with how far behind, how fast it reads and
//! delivers, and when it will have caught up at that pace; one line when it
//! has. Silent while current, so a forwarder that keeps up logs nothing.
//!
//! It reads what `/metrics` reads: the per-shard lag the Log Service reader
//! measures every `source.sls.lag_interval` (from the position last stored)
//! and the pipeline's counters. Sources without a lag (files) print nothing.
//! "Behind" means the oldest log group not yet stored is older than three
//! checkpoint intervals (at least a second): in steady state it is at most
//! about one. The estimate comes from how fast the backlog shrank over the
//! last interval — the net of reading and of what kept being written.

use std::time::{Duration, Instant};

use crate::counters::{self, Metrics};

/// What one look at the counters saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When.
    pub at: Instant,
    /// `records_in` so far.
    pub records_in: u64,
    /// `messages_delivered` so far.
    pub delivered: u64,
    /// `bytes_delivered` so far.
    pub bytes: u64,
    /// Every held shard whose lag is known.
    pub shards: Vec<ShardLag>,
    /// The largest lag in seconds among them (`None`: none is known).
    pub lag_seconds: Option<u64>,
}

/// One held shard's last measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLag {
    /// Which shard (its series' address: the same for the process's life).
    pub id: usize,
    /// Log groups behind.
    pub log_groups: u64,
    /// When they were measured (Unix ms).
    pub measured_ms: u64,
}

impl Snapshot {
    /// Look now.
    pub fn take(metrics: &Metrics) -> Self {
        let now_ms = counters::now_ms();
        let mut shards = Vec::new();
        let mut seconds = None::<u64>;
        for s in metrics.shards() {
            let groups = counters::get(&s.lag_log_groups);
            if counters::get(&s.held) != 1 || groups == counters::UNKNOWN {
                continue;
            }
            shards.push(ShardLag {
                id: std::sync::Arc::as_ptr(&s) as usize,
                log_groups: groups,
                measured_ms: counters::get(&s.lag_measured_ms),
            });
            if let Some(sec) = s.lag_seconds(now_ms) {
                seconds = Some(seconds.map_or(sec, |m| m.max(sec)));
            }
        }
        Self {
            at: Instant::now(),
            records_in: counters::get(&metrics.records_in),
            delivered: counters::get(&metrics.messages_delivered),
            bytes: counters::get(&metrics.bytes_delivered),
            shards,
            lag_seconds: seconds,
        }
    }

    /// Log groups behind over every shard.
    pub fn log_groups(&self) -> u64 {
        self.shards.iter().map(|s| s.log_groups).sum()
    }

    /// How much the backlog shrank since `before`, over the shards measured
    /// again since (a shard gained or lost, or not measured anew, says
    /// nothing about the pace); `None` when no shard was.
    pub fn shrunk_since(&self, before: &Snapshot) -> Option<i64> {
        let mut any = false;
        let mut shrunk = 0i64;
        for now in &self.shards {
            let Some(then) = before.shards.iter().find(|b| b.id == now.id) else {
                continue;
            };
            if now.measured_ms > then.measured_ms {
                any = true;
                let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                shrunk = shrunk.saturating_add(signed(then.log_groups) - signed(now.log_groups));
            }
        }
        any.then_some(shrunk)
    }
}

/// What to say after an interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Behind: the line's text.
    Behind(String),
    /// It was behind and is not any more.
    CaughtUp(String),
}

/// Compare two looks an interval apart; `behind_after` is the lag in
/// seconds above which the source counts as behind, `was_behind` whether it
/// did at the last look.
pub fn judge(
    before: &Snapshot,
    now: &Snapshot,
    behind_after: Duration,
    was_behind: bool,
) -> Option<Progress> {
    let seconds = now.lag_seconds?;
    let groups = now.log_groups();
    let behind = seconds > behind_after.as_secs() && groups > 0;
    let span = now.at.saturating_duration_since(before.at);
    let rate = |a: u64, b: u64| {
        let secs = span.as_secs_f64();
        if secs > 0.0 {
            b.saturating_sub(a) as f64 / secs
        } else {
            0.0
        }
    };
    let reading = rate(before.records_in, now.records_in);
    let delivering = rate(before.delivered, now.delivered);
    let mb = rate(before.bytes, now.bytes) / 1e6;
    if !behind {
        return was_behind.then(|| {
            Progress::CaughtUp(format!(
                "caught up: {groups} log groups behind on {} shards, the oldest {seconds} s old; \
                 delivering {delivering:.0} records/s ({mb:.1} MB/s)",
                now.shards.len()
            ))
        });
    }
    let pace = pace(now.shrunk_since(before), groups, span);
    Some(Progress::Behind(format!(
        "catching up: {groups} log groups behind on {} shards, the oldest {} old; reading \
         {reading:.0} records/s, delivering {delivering:.0} records/s ({mb:.1} MB/s); {pace}",
        now.shards.len(),
        humantime::format_duration(Duration::from_secs(seconds)),
    )))
}

/// What the backlog did over `span` — shrank by `shrunk` log groups (`None`:
/// not known) — said for `behind` log groups left: when they will be gone at
/// that pace, or that it is not shrinking. Shared with `siemfwd status
/// --watch`.
pub fn pace(shrunk: Option<i64>, behind: u64, span: Duration) -> String {
    let secs = span.as_secs_f64();
    match shrunk {
        Some(d) if d > 0 && secs > 0.0 => {
            let eta = (behind as f64 * secs / d as f64).ceil();
            format!(
                "caught up in ~{} at this pace",
                humantime::format_duration(Duration::from_secs(eta as u64))
            )
        }
        Some(0) => format!("not gaining on it (as many log groups behind as {secs:.0} s ago)"),
        Some(d) => format!(
            "not gaining on it ({} log groups more than {secs:.0} s ago)",
            d.unsigned_abs()
        ),
        None => "no new measure of the lag yet; the pace comes with the next".to_owned(),
    }
}

/// Log the progress every `every` until the process ends.
pub async fn run(metrics: Metrics, every: Duration, behind_after: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut before = Snapshot::take(&metrics);
    let mut was_behind = false;
    loop {
        tick.tick().await;
        let now = Snapshot::take(&metrics);
        match judge(&before, &now, behind_after, was_behind) {
            Some(Progress::Behind(line)) => {
                was_behind = true;
                tracing::info!("{line}");
            }
            Some(Progress::CaughtUp(line)) => {
                was_behind = false;
                tracing::info!("{line}");
            }
            None => {}
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(at: Instant, records: u64, groups: Option<u64>, seconds: Option<u64>) -> Snapshot {
        // Measured anew at each look (the looks differ in `records`).
        let measured = records + 1;
        Snapshot {
            at,
            records_in: records,
            delivered: records,
            bytes: records * 500,
            // Four shards, the backlog split evenly, measured anew each look.
            shards: groups.map_or_else(Vec::new, |g| {
                (0..4)
                    .map(|id| ShardLag {
                        id,
                        log_groups: g / 4,
                        measured_ms: measured,
                    })
                    .collect()
            }),
            lag_seconds: seconds,
        }
    }

    const AFTER: Duration = Duration::from_secs(9);

    #[test]
    fn a_shrinking_backlog_gets_an_estimate_from_its_pace() {
        let t = Instant::now();
        let before = look(t, 0, Some(3_000), Some(600));
        let now = look(t + Duration::from_secs(30), 300_000, Some(2_000), Some(400));
        let Some(Progress::Behind(line)) = judge(&before, &now, AFTER, false) else {
            panic!("behind")
        };
        // 1000 groups in 30 s: 2000 more take a minute.
        assert!(line.contains("caught up in ~1m at this pace"), "{line}");
        assert!(
            line.contains("2000 log groups behind on 4 shards"),
            "{line}"
        );
        assert!(line.contains("the oldest 6m 40s old"), "{line}");
        assert!(
            line.contains("delivering 10000 records/s (5.0 MB/s)"),
            "{line}"
        );
    }

    #[test]
    fn a_growing_backlog_says_so_instead_of_an_estimate() {
        let t = Instant::now();
        let before = look(t, 0, Some(2_000), Some(400));
        let now = look(t + Duration::from_secs(30), 1_000, Some(2_500), Some(430));
        let Some(Progress::Behind(line)) = judge(&before, &now, AFTER, true) else {
            panic!("behind")
        };
        assert!(
            line.contains("not gaining on it (500 log groups more"),
            "{line}"
        );
    }

    #[test]
    fn current_is_silent_and_catching_up_is_said_once() {
        let t = Instant::now();
        let before = look(t, 0, Some(2_000), Some(400));
        let now = look(t + Duration::from_secs(30), 1_000, Some(3), Some(2));
        assert!(matches!(
            judge(&before, &now, AFTER, true),
            Some(Progress::CaughtUp(_))
        ));
        assert_eq!(judge(&before, &now, AFTER, false), None);
        // No lag known (a file source, or nothing measured yet): nothing.
        let none = look(t + Duration::from_secs(30), 1_000, None, None);
        assert_eq!(judge(&before, &none, AFTER, true), None);
    }

    #[test]
    fn the_pace_counts_only_shards_measured_anew_in_both_looks() {
        let t = Instant::now();
        let shard = |id, log_groups, measured_ms| ShardLag {
            id,
            log_groups,
            measured_ms,
        };
        let mut before = look(t, 0, None, Some(600));
        before.shards = vec![shard(1, 1_000, 10), shard(2, 1_000, 10)];
        let mut now = look(t + Duration::from_secs(30), 0, None, Some(600));
        // Shard 1 measured again (-500), shard 2 not (its figure is old),
        // shard 3 newly held (its 5000 are not growth).
        now.shards = vec![shard(1, 500, 20), shard(2, 1_000, 10), shard(3, 5_000, 20)];
        assert_eq!(now.shrunk_since(&before), Some(500));
        let Some(Progress::Behind(line)) = judge(&before, &now, AFTER, true) else {
            panic!("behind")
        };
        // 6500 left at 500 per 30 s: 390 s.
        assert!(line.contains("caught up in ~6m 30s"), "{line}");
        now.shards = vec![shard(1, 500, 10), shard(3, 5_000, 20)];
        assert_eq!(now.shrunk_since(&before), None);
    }
}
