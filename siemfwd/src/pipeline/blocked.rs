//! What the output task does while the SIEM cannot take data:
//! `pipeline.when_blocked`.
//!
//! The default, `wait`, is plain back-pressure: the sink holds its batches
//! and reconnects, the shared byte budget fills, the shards stop reading,
//! and the source keeps the backlog (Log Service retains it, files stay on
//! disk). Nothing is ever dropped.
//!
//! `drop` exists because some users would rather lose part of an outage
//! than flood their SIEM with hours of backlog when it comes back (EPS or
//! licence limits in QRadar, Splunk). Once the stream sink has had no
//! connection for `pipeline.drop_after` within one incident (the incident
//! starts at the first failure — refused, lost, stalled for
//! `sink.write_timeout` — and ends only when a batch is delivered again),
//! the batches it holds are dropped, and so is every batch handed over
//! until it connects again. A dropped batch is answered to its shard as
//! done, so the checkpoint moves past it and the forwarder stays current;
//! each of its records is counted once (`records_dropped`,
//! `bytes_dropped`), and an [`Incident`] logs one line as dropping starts
//! and one with its totals as delivery resumes.
//!
//! Why the clock counts time *without a connection* in an incident that
//! began earlier, and not the time one call has been waiting: a call that
//! waits on a live but slow receiver must not be cut (that would reset a
//! working connection), while a receiver that accepts connections and
//! closes them at once (a load balancer with no backend) never delivers
//! anything, so its incident keeps running across the reconnects.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Done;
use crate::config::{PipelineConfig, WhenBlocked, DEFAULT_DROP_AFTER};
use crate::counters::{self, Metrics};
use crate::sink::{self, human, Messages, Sink};

/// The policy, from `pipeline.when_blocked` and `pipeline.drop_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// Back-pressure only; nothing is dropped.
    Wait,
    /// Drop once the receiver has been unreachable this long.
    Drop {
        /// `pipeline.drop_after`.
        after: Duration,
    },
}

impl Policy {
    /// The policy the settings ask for (checked by `check_settings`).
    pub(super) fn of(settings: &PipelineConfig) -> Self {
        match settings.when_blocked {
            WhenBlocked::Wait => Self::Wait,
            WhenBlocked::Drop => Self::Drop {
                after: settings.drop_after.map_or(DEFAULT_DROP_AFTER, |d| d.0),
            },
        }
    }
}

/// The settings' problem, if any: `(key, problem)`.
pub(super) fn check(settings: &PipelineConfig) -> Option<(&'static str, String)> {
    match (settings.when_blocked, settings.drop_after) {
        (_, Some(d)) if d.0.is_zero() => Some((
            "drop_after",
            "must be longer than 0 (how long the SIEM must be unreachable before records are dropped)"
                .to_owned(),
        )),
        (WhenBlocked::Wait, Some(_)) => Some((
            "drop_after",
            "is set, but pipeline.when_blocked is \"wait\" (the default), which never drops; \
             remove it, or set pipeline.when_blocked = \"drop\""
                .to_owned(),
        )),
        _ => None,
    }
}

/// A sink under the policy: what the output task drives. It submits,
/// makes progress when due, and takes each batch's outcome (delivered or
/// dropped) in the order the batches were submitted. Under `wait` it is
/// the sink itself; under `drop` it cuts a call once the receiver has been
/// unreachable for `drop_after` (every sink call is cancel-safe, so a cut
/// call loses nothing), answers the batches the sink held as dropped, and
/// drops every batch submitted until the sink is connected again.
#[derive(Debug)]
pub(super) struct PolicySink {
    sink: Sink,
    /// The drop policy's clock (`drop` with a sink that waits for its
    /// receiver); `None` under `wait`.
    unreachable: Option<(watch::Receiver<Option<Instant>>, Duration)>,
    /// Dropping: the receiver was unreachable for `drop_after` and no
    /// connection is up yet.
    dropping: bool,
    /// Outcomes older than anything the sink still holds.
    outcomes: VecDeque<Done>,
    /// From the moment dropping started to the first batch delivered again.
    incident: Option<Incident>,
    total: Dropped,
    metrics: Metrics,
}

impl PolicySink {
    pub(super) fn new(sink: Sink, policy: Policy, metrics: &Metrics) -> Self {
        let unreachable = match policy {
            Policy::Drop { after } => sink.blocked_watch().map(|w| (w, after)),
            Policy::Wait => None,
        };
        Self {
            sink,
            unreachable,
            dropping: false,
            outcomes: VecDeque::new(),
            incident: None,
            total: Dropped::default(),
            metrics: metrics.clone(),
        }
    }

    /// Hand a batch over (see [`Sink::submit`]); while dropping it is
    /// answered as dropped at once.
    ///
    /// # Errors
    /// As [`Sink::submit`]: `Cancelled` on `abort`.
    pub(super) async fn submit(
        &mut self,
        msgs: Messages,
        abort: &CancellationToken,
    ) -> Result<(), sink::Error> {
        if self.dropping {
            self.drop_one(msgs);
            return Ok(());
        }
        let Some((watch, after)) = self.unreachable.as_mut() else {
            return self.sink.submit(msgs, abort).await;
        };
        tokio::select! {
            biased;
            r = self.sink.submit(msgs, abort) => return r,
            () = unreachable_for(watch, *after) => {}
        }
        self.start_dropping();
        Ok(())
    }

    /// When [`PolicySink::progress`] should run; `None`: only when a batch
    /// comes.
    pub(super) fn next_check(&self) -> Option<Instant> {
        if self.dropping {
            // Back to a connection (the sink waits its backoff itself).
            return Some(Instant::now());
        }
        self.sink.next_check()
    }

    /// Wait until `due` (from [`PolicySink::next_check`]), then let the
    /// sink make progress; while dropping, try to get a connection back.
    /// Cancel-safe: the output task races it against new batches.
    ///
    /// # Errors
    /// As [`Sink::progress`].
    pub(super) async fn progress(
        &mut self,
        due: Instant,
        abort: &CancellationToken,
    ) -> Result<(), sink::Error> {
        tokio::time::sleep_until(due).await;
        if self.dropping {
            if self.sink.reconnect_once(abort).await? {
                self.dropping = false;
            }
            return Ok(());
        }
        let Some((watch, after)) = self.unreachable.as_mut() else {
            return self.sink.progress(abort).await;
        };
        tokio::select! {
            biased;
            r = self.sink.progress(abort) => return r,
            () = unreachable_for(watch, *after) => {}
        }
        self.start_dropping();
        Ok(())
    }

    /// The outcome of the oldest batch whose fate is known, if any.
    pub(super) fn take(&mut self) -> Option<Done> {
        if let Some(done) = self.outcomes.pop_front() {
            return Some(done);
        }
        let msgs = self.sink.take_safe()?;
        Some(self.delivered(msgs))
    }

    /// The run is over: the totals of everything dropped (an incident
    /// still open logs its line), and the sink for closing.
    pub(super) fn finish(mut self) -> (Dropped, Sink) {
        if let Some(i) = self.incident.take() {
            self.total.merge(i.end(false));
        }
        (self.total, self.sink)
    }

    fn delivered(&mut self, msgs: Messages) -> Done {
        counters::add(&self.metrics.messages_delivered, msgs.len() as u64);
        counters::set(&self.metrics.gauges().delivered_at_ms, counters::now_ms());
        counters::add(&self.metrics.bytes_delivered, msgs.byte_len() as u64);
        if let Some(i) = self.incident.take() {
            self.total.merge(i.end(true));
        }
        Done::Delivered(msgs)
    }

    fn drop_one(&mut self, msgs: Messages) {
        if let Some(i) = self.incident.as_mut() {
            i.add(&msgs);
        }
        self.outcomes.push_back(Done::Dropped(msgs));
    }

    /// The receiver has been unreachable for `drop_after`: batches that
    /// became safe meanwhile are delivered first, everything else the sink
    /// holds is dropped, oldest first.
    fn start_dropping(&mut self) {
        while let Some(msgs) = self.sink.take_safe() {
            let done = self.delivered(msgs);
            self.outcomes.push_back(done);
        }
        if self.incident.is_none() {
            let (since, after) = match &self.unreachable {
                Some((watch, after)) => (*watch.borrow(), *after),
                None => (None, Duration::ZERO),
            };
            self.incident = Some(Incident::start(
                since,
                after,
                self.sink.stats().last_error.as_deref(),
                &self.metrics,
            ));
        }
        for msgs in self.sink.discard_held() {
            self.drop_one(msgs);
        }
        self.dropping = true;
    }
}

/// Resolve once the sink has been unreachable for `after` in its current
/// incident (see the module docs); pending for ever otherwise.
pub(super) async fn unreachable_for(watch: &mut watch::Receiver<Option<Instant>>, after: Duration) {
    loop {
        let since = *watch.borrow_and_update();
        let changed = match since {
            Some(t) => tokio::select! {
                () = tokio::time::sleep_until(t + after) => return,
                r = watch.changed() => r,
            },
            None => watch.changed().await,
        };
        if changed.is_err() {
            // The sink is gone; nothing will ever change.
            std::future::pending::<()>().await;
        }
    }
}

/// Records and bytes dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Dropped {
    /// Records (one message each).
    pub records: u64,
    /// Message bytes, without framing.
    pub bytes: u64,
    /// Batches.
    pub batches: u64,
}

impl Dropped {
    /// Add `other`'s totals (already counted) to these.
    pub(super) fn merge(&mut self, other: Dropped) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.batches += other.batches;
    }

    /// Count `msgs` as dropped, here and in the pipeline's counters: the
    /// only place either is counted, so each record is counted once.
    pub(super) fn add(&mut self, msgs: &Messages, metrics: &Metrics) {
        let (records, bytes) = (msgs.len() as u64, msgs.byte_len() as u64);
        self.records += records;
        self.bytes += bytes;
        self.batches += 1;
        counters::add(&metrics.records_dropped, records);
        counters::add(&metrics.bytes_dropped, bytes);
    }
}

/// One stretch of dropping: from the moment the policy kicked in to the
/// first batch delivered again. Logs one line at each end.
#[derive(Debug)]
pub(super) struct Incident {
    started: Instant,
    dropped: Dropped,
    metrics: Metrics,
}

impl Incident {
    /// Dropping starts: the receiver has been unreachable since `since`
    /// (about `after` ago) because of `cause`.
    pub(super) fn start(
        since: Option<Instant>,
        after: Duration,
        cause: Option<&str>,
        metrics: &Metrics,
    ) -> Self {
        let now = Instant::now();
        tracing::warn!(
            unreachable_for = %human(since.map_or(after, |t| now.duration_since(t))),
            cause = cause.unwrap_or("unknown"),
            "the SIEM cannot take data: dropping records until it is back (pipeline.when_blocked = \"drop\", \
             pipeline.drop_after = {}); they are counted and their positions committed",
            human(after)
        );
        Self {
            started: now,
            dropped: Dropped::default(),
            metrics: metrics.clone(),
        }
    }

    /// Count a dropped batch.
    pub(super) fn add(&mut self, msgs: &Messages) {
        self.dropped.add(msgs, &self.metrics);
    }

    /// The incident is over: delivery resumed (`resumed`) or siemfwd is
    /// stopping. Logs the totals; returns them.
    pub(super) fn end(self, resumed: bool) -> Dropped {
        let d = self.dropped;
        let over = human(self.started.elapsed());
        if resumed {
            tracing::warn!(
                records_dropped = d.records,
                bytes_dropped = d.bytes,
                batches_dropped = d.batches,
                dropping_for = %over,
                "the SIEM takes data again: delivery resumed with fresh records; the records dropped are not sent"
            );
        } else {
            tracing::warn!(
                records_dropped = d.records,
                bytes_dropped = d.bytes,
                batches_dropped = d.batches,
                dropping_for = %over,
                "stopping while the SIEM cannot take data; records were dropped until now"
            );
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Messages;
    use crate::units::HumanDuration;

    fn batch(lines: &[&str]) -> Messages {
        let mut m = Messages::new();
        for l in lines {
            m.buffer().extend_from_slice(l.as_bytes());
            m.commit();
        }
        m
    }

    fn settings(when: WhenBlocked, after: Option<Duration>) -> PipelineConfig {
        PipelineConfig {
            when_blocked: when,
            drop_after: after.map(HumanDuration),
            ..PipelineConfig::default()
        }
    }

    #[test]
    fn wait_is_the_default_policy() {
        assert_eq!(Policy::of(&PipelineConfig::default()), Policy::Wait);
        assert_eq!(check(&PipelineConfig::default()), None);
    }

    #[test]
    fn drop_after_defaults_to_60s() {
        let s = settings(WhenBlocked::Drop, None);
        assert_eq!(
            Policy::of(&s),
            Policy::Drop {
                after: Duration::from_secs(60)
            }
        );
        assert_eq!(check(&s), None);
        let s = settings(WhenBlocked::Drop, Some(Duration::from_secs(5)));
        assert_eq!(
            Policy::of(&s),
            Policy::Drop {
                after: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn drop_after_must_be_longer_than_zero() {
        let s = settings(WhenBlocked::Drop, Some(Duration::ZERO));
        let (key, problem) = check(&s).unwrap_or_default();
        assert_eq!(key, "drop_after");
        assert!(problem.contains("longer than 0"), "{problem}");
    }

    #[test]
    fn drop_after_with_wait_is_refused() {
        let s = settings(WhenBlocked::Wait, Some(Duration::from_secs(5)));
        let (key, problem) = check(&s).unwrap_or_default();
        assert_eq!(key, "drop_after");
        assert!(problem.contains("when_blocked = \"drop\""), "{problem}");
    }

    #[test]
    fn every_dropped_record_is_counted_once() {
        let metrics = Metrics::default();
        let mut incident = Incident::start(None, Duration::from_secs(1), Some("test"), &metrics);
        incident.add(&batch(&["abc", "de"]));
        incident.add(&batch(&["f"]));
        let totals = incident.end(true);
        assert_eq!(
            totals,
            Dropped {
                records: 3,
                bytes: 6,
                batches: 2
            }
        );
        assert_eq!(counters::get(&metrics.records_dropped), 3);
        assert_eq!(counters::get(&metrics.bytes_dropped), 6);
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        match tokio::time::timeout(Duration::from_secs(10), f).await {
            Ok(v) => v,
            Err(_) => panic!("not within 10s"),
        }
    }

    #[tokio::test]
    async fn unreachable_for_waits_for_the_incident_to_last() {
        let t0 = Instant::now();
        let (_tx, mut rx) = watch::channel(Some(t0));
        let after = Duration::from_millis(100);
        within(unreachable_for(&mut rx, after)).await;
        assert!(t0.elapsed() >= after, "{:?}", t0.elapsed());
    }

    // Paused time: the sender's reconnect and the waiter's deadline are
    // 100 ms apart; on a loaded machine real time could let both be due at
    // once, and `select!` may then take either.
    #[tokio::test(start_paused = true)]
    async fn unreachable_for_starts_over_once_a_connection_came_back() {
        let (tx, mut rx) = watch::channel(Some(Instant::now()));
        let after = Duration::from_millis(200);
        let (again_tx, again_rx) = tokio::sync::oneshot::channel();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(after / 2).await;
            // Connected again, for longer than `after`...
            tx.send_replace(None);
            tokio::time::sleep(after * 2).await;
            // ...then a new incident.
            let again = Instant::now();
            tx.send_replace(Some(again));
            let _ = again_tx.send(again);
            // Keep the sender alive until the waiter is done.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        within(unreachable_for(&mut rx, after)).await;
        let again = within(again_rx).await.unwrap_or_else(|_| Instant::now());
        // Not `after` into the first incident: `after` into the second.
        assert!(again.elapsed() >= after, "{:?}", again.elapsed());
        sender.abort();
    }

    #[tokio::test]
    async fn an_old_incident_still_without_connection_resolves_at_once() {
        // A receiver that accepts and closes: the incident began long ago
        // and no delivery ended it.
        let long_ago = Instant::now();
        let after = Duration::from_millis(50);
        tokio::time::sleep(after).await;
        let (_tx, mut rx) = watch::channel(Some(long_ago));
        within(unreachable_for(&mut rx, after)).await;
    }

    #[tokio::test]
    async fn unreachable_for_stays_pending_while_connected() {
        let (_tx, mut rx) = watch::channel(None);
        let r = tokio::time::timeout(
            Duration::from_millis(200),
            unreachable_for(&mut rx, Duration::from_millis(10)),
        )
        .await;
        assert!(r.is_err());
    }
}
