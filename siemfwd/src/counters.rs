//! Process-wide counters of everything the pipeline changed or refused:
//! truncations, escapes, refusals, drops, deliveries.
//!
//! They are plain atomics so the hot path pays one relaxed add, never a lock
//! or a log line. `siemfwd` prints them at exit and (later) exports them as
//! metrics.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The counters; one global instance, [`COUNTERS`].
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

        /// The process-wide counters.
        pub static COUNTERS: Counters = Counters {
            $($name: AtomicU64::new(0),)*
        };
    };
}

counters! {
    /// Records read from sources.
    records_in,
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
    /// Values with invalid UTF-8 rendered lossily (json body).
    invalid_utf8_values,
    /// Records the formatter refused.
    records_refused,
    /// Records a transform step dropped (done: their positions are
    /// committed, and a restart does not send them).
    records_filtered,
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
}

/// Add `n` to a counter.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
