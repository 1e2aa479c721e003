//! Counters of everything a pipeline read, changed, refused, dropped and
//! delivered: truncations, escapes, refusals, drops, deliveries.
//!
//! One [`Metrics`] handle per pipeline, created when it is built and cloned
//! into every component that counts (the formatter, the transform chain,
//! each source reader and sink, the output task): two pipelines in one
//! process (tests, the benchmark) count apart, the stop summary is the
//! pipeline's own, and an exporter reads the same handle
//! (`Pipeline::metrics`). They are plain atomics, so the hot path pays one
//! relaxed add, never a lock or a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The counters of one pipeline (see [`Metrics`]).
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Every counter with its name, for printing.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

/// A handle on one pipeline's [`Counters`] (and [`Gauges`]); clones share
/// them.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<(Counters, Gauges)>);

impl std::ops::Deref for Metrics {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.0 .0
    }
}

impl Metrics {
    /// The pipeline's state: what `/metrics` shows besides the counters,
    /// and what `/health` and `/ready` decide on.
    pub fn gauges(&self) -> &Gauges {
        &self.0 .1
    }

    /// The series of the shard these labels name, created at its first
    /// opening and shared by every later one.
    pub fn shard(&self, labels: Vec<(&'static str, String)>) -> Arc<ShardGauges> {
        let mut shards = self
            .gauges()
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = shards.iter().find(|s| s.labels == labels) {
            return s.clone();
        }
        let s = Arc::new(ShardGauges::new(labels));
        shards.push(s.clone());
        s
    }

    /// Every shard's series (see [`Metrics::shard`]).
    pub fn shards(&self) -> Vec<Arc<ShardGauges>> {
        self.gauges()
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Values that go up and down: states, each stored by the part that knows
/// it, at the moment it changes (never per record). Times are Unix
/// milliseconds, 0 for "never" or "not so".
#[derive(Debug, Default)]
pub struct Gauges {
    /// 1 once the source has its shards: joined its consumer group(s), or
    /// opened its files.
    pub source_assigned: AtomicU64,
    /// When a consumer group last answered a heartbeat (0: no group).
    pub heartbeat_answered_ms: AtomicU64,
    /// The group's timeout (0: no group): a heartbeat older than this
    /// means the group may have given our shards away.
    pub heartbeat_timeout_ms: AtomicU64,
    /// Parts of the source (a group's heartbeat loop, a shard's reader)
    /// that Log Service refuses credentials it had accepted, now; and since
    /// when one has been. One lock for the two, so they never disagree
    /// ([`Gauges::refusal`], [`Gauges::refused_since_ms`]).
    credentials_refused: Mutex<(u64, u64)>,
    /// When Log Service last answered a heartbeat at all — accepted, or
    /// refused the credentials (0: never): the group is reachable, which is
    /// what a restart could not improve.
    pub heartbeat_reached_ms: AtomicU64,
    /// Since when the sink has had no working connection (0: it has one,
    /// or needs none).
    pub sink_down_since_ms: AtomicU64,
    /// When a batch was last delivered.
    pub delivered_at_ms: AtomicU64,
    /// Bytes of messages read and not yet delivered, and the budget they
    /// may use (`pipeline.max_in_flight_bytes`).
    pub in_flight_bytes: AtomicU64,
    /// See `in_flight_bytes`.
    pub in_flight_budget: AtomicU64,
    /// One entry per shard this process has held, in the order first
    /// opened ([`Metrics::shard`]).
    shards: Mutex<Vec<Arc<ShardGauges>>>,
}

impl Gauges {
    /// A part of the source is refused its credentials now (`true`), or no
    /// longer (`false`); each part says each change once.
    pub fn refusal(&self, refused: bool) {
        let mut r = self
            .credentials_refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if refused {
            if r.0 == 0 {
                r.1 = now_ms();
            }
            r.0 += 1;
        } else {
            r.0 = r.0.saturating_sub(1);
            if r.0 == 0 {
                r.1 = 0;
            }
        }
    }

    /// Since when some part has been refused its credentials (Unix ms;
    /// `None`: none is).
    pub fn refused_since_ms(&self) -> Option<u64> {
        let r = self
            .credentials_refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (r.0 > 0).then_some(r.1)
    }
}

/// One shard's series: what it read, its checkpoints, how far behind it is.
/// Kept after the shard is released (`held` 0) so its counters never go
/// back when it returns. Updated per batch or per commit, never per record.
#[derive(Debug)]
pub struct ShardGauges {
    /// What names the shard (`project`, `logstore`, `consumer_group`, `shard`).
    pub labels: Vec<(&'static str, String)>,
    /// 1 while this process holds the shard.
    pub held: AtomicU64,
    /// Records read from it.
    pub records_in: AtomicU64,
    /// Checkpoints stored for it ...
    pub checkpoints_committed: AtomicU64,
    /// ... and commits that did not get through.
    pub checkpoint_failures: AtomicU64,
    /// When a checkpoint was last stored (Unix ms, 0: never by us).
    pub committed_at_ms: AtomicU64,
    /// Log groups between the stored position and the shard's end;
    /// [`UNKNOWN`] until first measured (or when the server's cursors
    /// cannot be counted).
    pub lag_log_groups: AtomicU64,
    /// When the oldest of them was received (Unix ms; 0: there are none,
    /// [`UNKNOWN`]: not known). A time, not an age, so the age keeps
    /// growing between measurements — and while they fail.
    pub lag_oldest_ms: AtomicU64,
    /// When the lag was last measured (Unix ms, 0: never).
    pub lag_measured_ms: AtomicU64,
}

/// The value of a lag gauge not (yet) measured.
pub const UNKNOWN: u64 = u64::MAX;

impl ShardGauges {
    /// The lag in seconds at `now_ms` (`None`: not known).
    pub fn lag_seconds(&self, now_ms: u64) -> Option<u64> {
        match get(&self.lag_oldest_ms) {
            UNKNOWN => None,
            0 => Some(0),
            oldest => Some(now_ms.saturating_sub(oldest) / 1000),
        }
    }

    fn new(labels: Vec<(&'static str, String)>) -> Self {
        Self {
            labels,
            held: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            checkpoints_committed: AtomicU64::new(0),
            checkpoint_failures: AtomicU64::new(0),
            committed_at_ms: AtomicU64::new(0),
            lag_log_groups: AtomicU64::new(UNKNOWN),
            lag_oldest_ms: AtomicU64::new(UNKNOWN),
            lag_measured_ms: AtomicU64::new(0),
        }
    }
}

/// Set a gauge.
#[inline]
pub fn set(g: &AtomicU64, v: u64) {
    g.store(v, Ordering::Relaxed);
}

/// Now, in Unix milliseconds (what the time gauges hold).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current value of a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

counters! {
    /// Records read from sources.
    records_in,
    /// Bytes the sources read: Log Service log groups as pulled
    /// (decompressed), file lines (with their newlines).
    bytes_in,
    /// Messages written whole to a stream sink's connection (`tcp`, `tls`,
    /// `relp`), each time: a batch sent again after a reconnect counts
    /// again (see `messages_resent`). Delivered is what was acknowledged.
    messages_sent,
    /// Bytes of the messages counted in `messages_sent` (without framing).
    bytes_sent,
    /// Of `messages_sent`, those written again after the connection they
    /// were first written on failed before they were safe: what a receiver
    /// may see twice.
    messages_resent,
    /// Messages delivered to the sink (per transport meaning).
    messages_delivered,
    /// Bytes of messages delivered (without framing; for UDP before the
    /// datagram cap, whose cuts `udp_truncated_bytes` counts).
    bytes_delivered,
    /// UDP messages cut to fit the datagram cap.
    udp_truncated,
    /// TCP/TLS messages cut to `sink.max_message`.
    stream_truncated,
    /// Bytes removed from them.
    stream_truncated_bytes,
    /// Bytes removed by UDP truncation.
    udp_truncated_bytes,
    /// CR, LF and NUL escaped for LF framing.
    newlines_escaped,
    /// Header fields cut to their RFC length or cleaned of forbidden bytes.
    header_fields_sanitized,
    /// Values with invalid UTF-8 (or, in CEF and LEEF, a NUL) rendered
    /// lossily (json, cef, leef bodies).
    invalid_utf8_values,
    /// LEEF: TABs or delimiters inside values replaced by a space.
    delimiters_replaced,
    /// Records the formatter refused.
    records_refused,
    /// Raw bytes (keys and values, as read) of the records counted in
    /// `records_refused`.
    bytes_refused,
    /// Records a transform step dropped (done: their positions are
    /// committed, and a restart does not send them).
    records_filtered,
    /// Raw bytes (keys and values, as read) of the records counted in
    /// `records_filtered`.
    bytes_filtered,
    /// Fields a `parse_json` step could not parse as a JSON object (left as
    /// they were).
    transform_json_failed,
    /// Malformed input lines skipped by a source.
    malformed_skipped,
    /// Reconnects of stream sinks.
    reconnects,
    /// Records dropped by `pipeline.when_blocked = "drop"` while the SIEM
    /// could not take data (one message each; never delivered, yet their
    /// positions were committed). Zero unless that policy is configured.
    records_dropped,
    /// Bytes of the messages counted in `records_dropped` (without framing).
    bytes_dropped,
    /// PullLogs a lagging Log Service shard started at a guessed cursor, ahead
    /// of the answer that would give it (`source/sls/prefetch.rs`).
    sls_pulls_ahead,
    /// Of those, the ones not used: the pull before ended elsewhere, the
    /// guess failed, or the shard caught up or stopped first.
    sls_pulls_ahead_unused,
    /// PullLogs answered (pulls ahead included).
    sls_pulls,
    /// Pulls that waited because their shard was caught up (the idle wait
    /// of `poll_interval`, backing off to `fetch_interval`).
    sls_idle_waits,
    /// With `source.sls.query` or `processor`: logs the server scanned ...
    sls_scanned_lines,
    /// ... of which it returned these ...
    sls_returned_lines,
    /// ... and could not evaluate the rule on these (`x-log-failedlines`).
    sls_failed_lines,
    /// Log Service requests sent again after a network error or a 5xx
    /// answer (within one call; a call that fails in the end is retried by
    /// its caller and counted where it failed: heartbeats, pulls, commits).
    sls_request_retries,
    /// Heartbeats of a consumer group that got no answer (or an error).
    sls_heartbeat_failures,
    /// Checkpoints a Log Service consumer group stored for us ...
    sls_checkpoints_committed,
    /// ... and commits that did not get through (retried with the next).
    sls_checkpoint_failures,
}

/// Add `n` to a counter.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_their_counters_and_handles_count_apart() {
        let a = Metrics::default();
        let shared = a.clone();
        let b = Metrics::default();
        add(&a.records_in, 2);
        add(&shared.records_in, 3);
        add(&b.records_in, 7);
        assert_eq!(get(&a.records_in), 5);
        assert_eq!(get(&b.records_in), 7);
        assert!(a.snapshot().contains(&("records_in", 5)));
    }

    #[test]
    fn refusals_count_parts_and_keep_the_earliest_time() {
        let g = Gauges::default();
        assert_eq!(g.refused_since_ms(), None);
        g.refusal(true);
        let since = g.refused_since_ms().expect("refused");
        g.refusal(true);
        g.refusal(false);
        assert_eq!(g.refused_since_ms(), Some(since), "one part still refused");
        g.refusal(false);
        assert_eq!(g.refused_since_ms(), None);
    }

    #[test]
    fn a_shard_opened_again_keeps_its_series() {
        let m = Metrics::default();
        let labels = |s: &str| vec![("logstore", "audit".to_owned()), ("shard", s.to_owned())];
        let first = m.shard(labels("0"));
        add(&first.records_in, 4);
        drop(first);
        let other = m.shard(labels("1"));
        let again = m.shard(labels("0"));
        assert_eq!(get(&again.records_in), 4);
        assert_eq!(get(&other.records_in), 0);
        assert_eq!(get(&again.lag_oldest_ms), UNKNOWN);
        assert_eq!(m.shards().len(), 2);
    }
}
