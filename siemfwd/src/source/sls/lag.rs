//! How far behind a shard is: the log groups between a position and the
//! shard's end, and the seconds since the oldest of them was received.
//!
//! Two users: `siemfwd status` measures from the group's checkpoints, and
//! while the forwarder runs every held shard measures from the position it
//! last stored, every `source.sls.lag_interval` ([`watch`]) — the
//! per-shard lag series of `/metrics` and the progress line. Measuring from
//! the *stored* position, not the read one, makes "0" mean what an operator
//! needs: everything written so far is delivered and would not be read
//! again after a restart.
//!
//! Calls: GetCursor `end`, and GetCursorTime at the position while it is
//! behind (one or two small requests per shard per interval: 15 s by
//! default, against the ~10 pulls per second of an idle shard). "Log groups
//! behind" relies on the cursor's documented shape (protocol notes §3); when
//! a cursor lacks it the figure stays unknown rather than guessed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch as channel;

use super::{Client, Cursor, Error, ShardId};
use crate::counters::{self, ShardGauges};

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Log groups between the position and the end (`None`: the cursors
    /// cannot be counted).
    pub log_groups: Option<i64>,
    /// Seconds since the oldest unread log group was received (0 when at
    /// the end; `None`: the server did not say).
    pub seconds: Option<i64>,
    /// When that log group was received (Unix seconds; `None` at the end or
    /// when not known).
    pub received: Option<i64>,
}

/// Measure how far `position` is from the end of `shard`; returns the lag
/// and the end cursor.
///
/// # Errors
/// GetCursor failed (a failed GetCursorTime only leaves `seconds` unknown).
pub async fn measure(
    client: &Client,
    shard: ShardId,
    position: &Cursor,
) -> Result<(Lag, Cursor), Error> {
    let end = client.get_cursor(shard, "end").await?;
    let log_groups = if position == &end {
        Some(0)
    } else {
        end.sequence()
            .zip(position.sequence())
            .map(|(e, p)| (e - p).max(0))
    };
    let received = if log_groups == Some(0) {
        None
    } else {
        client.get_cursor_time(shard, position).await.ok()
    };
    let now = i64::try_from(counters::now_ms() / 1000).unwrap_or(i64::MAX);
    let seconds = match (log_groups, received) {
        (Some(0), _) => Some(0),
        (_, Some(t)) => Some((now - t).max(0)),
        _ => None,
    };
    Ok((
        Lag {
            log_groups,
            seconds,
            received,
        },
        end,
    ))
}

/// Measure `shard` every `every` from the latest position sent on `stored`
/// (nothing until one is), into `series`; runs until aborted (the shard's
/// reader holds the task and aborts it when the shard is released).
pub async fn watch(
    client: Client,
    shard: ShardId,
    series: Arc<ShardGauges>,
    mut stored: channel::Receiver<Option<Cursor>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Nothing until a position is known; the reader gone, the end.
        let Some(position) = stored
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|p| p.clone())
        else {
            return;
        };
        match measure(&client, shard, &position).await {
            Ok((lag, _)) => {
                let groups = lag.log_groups.map_or(counters::UNKNOWN, i64::unsigned_abs);
                let oldest = match (lag.log_groups, lag.received) {
                    (Some(0), _) => 0,
                    (_, Some(t)) => t.unsigned_abs().saturating_mul(1000).max(1),
                    _ => counters::UNKNOWN,
                };
                counters::set(&series.lag_log_groups, groups);
                counters::set(&series.lag_oldest_ms, oldest);
                counters::set(&series.lag_measured_ms, counters::now_ms());
            }
            Err(e) => tracing::debug!(%shard, error = %e, "cannot measure the shard's lag"),
        }
    }
}
