//! One shard's task: read a batch, format it, hand it to the output, and
//! commit the delivered prefix.
//!
//! The loop races four things: the oldest in-flight batch being answered,
//! reading the next batch (only while fewer than `in_flight_batches` are
//! out; a formatted batch then waits for room in the shared byte budget
//! before it goes to the output), the stop token, and the checkpoint interval (when delivered
//! positions wait to be committed, so an idle shard commits too). Reading is
//! cancel-safe (see `source::file::FileShard::fill`; the SLS reader keeps its
//! PullLogs running as a task and picks the answer up on the next call), so
//! losing that race costs nothing.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::tracker::{Ticket, Tracker};
use super::{Done, Error, SendRequest};
use crate::config::PipelineConfig;
use crate::format::{self, Formatter};
use crate::sink::{self, Messages};
use crate::source::{BatchEnd, Flow, ShardReader};
use crate::transform::Chain;

/// What a shard task needs besides its reader and formatter.
#[derive(Debug)]
pub(super) struct ShardContext {
    pub tx: mpsc::Sender<SendRequest>,
    /// The byte budget shared by every shard.
    pub budget: Budget,
    pub settings: PipelineConfig,
    pub stop: CancellationToken,
    /// False in dry-run mode: nothing is committed.
    pub commit: bool,
    /// How the output wants batches framed (`Output::batch_framing`).
    pub framing: Option<sink::Framing>,
}

/// What one shard did.
#[derive(Debug, Default)]
pub(super) struct ShardSummary {
    pub messages: u64,
    /// Records dropped by `pipeline.when_blocked = "drop"` (their positions
    /// count as done).
    pub dropped: u64,
    /// Why a batch was not delivered when the shard stopped because of it
    /// (abort, or an output that failed for good such as a closed stdout).
    pub undelivered: Option<sink::Error>,
}

/// Answered batch buffers a shard keeps for reuse (see `run`).
const SPARE_BUFFERS: usize = 1;

type Answer = oneshot::Receiver<super::Answer>;

/// Read, format and send one batch. `Ok(None)`: the shard ended.
async fn next_batch<R: ShardReader>(
    reader: &mut R,
    transforms: &mut Chain,
    formatter: &mut Formatter,
    msgs: &mut Messages,
    settings: &PipelineConfig,
) -> Result<Option<BatchEnd<R::Position>>, Error> {
    let max_records = settings.batch_records;
    let max_bytes = usize::try_from(settings.batch_bytes.0).unwrap_or(usize::MAX);
    let name = reader.name().to_owned();
    let mut refused = 0u64;
    let mut last_refusal: Option<format::Error> = None;
    let end = reader
        .read_batch(&mut |record| {
            let encoded = transforms.run(record, |record, meta| {
                formatter.encode(record, meta, msgs.buffer())
            });
            match encoded {
                Some(Ok(())) => msgs.commit(),
                Some(Err(e)) => {
                    msgs.rollback();
                    refused += 1;
                    last_refusal = Some(e);
                }
                // Filtered: done, nothing to send (counted by the chain).
                None => {}
            }
            if msgs.len() >= max_records || msgs.byte_len() >= max_bytes {
                Flow::Full
            } else {
                Flow::Continue
            }
        })
        .await?;
    if refused > 0 {
        // The formatter counted each refusal (`records_refused`).
        if let Some(e) = last_refusal {
            // One line per batch, not per record.
            tracing::warn!(shard = %name, refused, last = %e, "records refused by the formatter were skipped");
        }
    }
    Ok(end)
}

/// Wait for the answer to the oldest batch in flight.
async fn oldest(in_flight: &mut VecDeque<(Ticket, Answer)>) -> (Ticket, super::Answer) {
    match in_flight.front_mut() {
        Some((ticket, rx)) => {
            let ticket = *ticket;
            let r = rx.await.unwrap_or(Err(sink::Error::Cancelled));
            in_flight.pop_front();
            (ticket, r)
        }
        None => std::future::pending().await,
    }
}

pub(super) async fn run<R: ShardReader>(
    mut reader: R,
    mut transforms: Chain,
    mut formatter: Formatter,
    ctx: ShardContext,
) -> Result<ShardSummary, Error> {
    let window = ctx.settings.in_flight_batches.max(1);
    let mut tracker = Tracker::new();
    let mut in_flight: VecDeque<(Ticket, Answer)> = VecDeque::new();
    let mut spare: Vec<Messages> = Vec::new();
    // The size of the last batch sent: a new buffer starts with that room
    // (plus an eighth) instead of growing from nothing.
    let mut last_batch = (0usize, 0usize);
    let mut summary = ShardSummary::default();
    let mut last_commit = Instant::now();
    let mut ended = false;
    let mut stop_error: Option<Error> = None;
    let mut undelivered = false;
    // Delivered positions not yet committed: an idle shard (a followed file
    // with nothing new) still commits them when the interval is up.
    let mut uncommitted = false;

    loop {
        let reading = !ended && stop_error.is_none() && !undelivered && !ctx.stop.is_cancelled();
        if !reading && in_flight.is_empty() {
            break;
        }
        if ctx.commit && last_commit.elapsed() >= ctx.settings.checkpoint_interval.0 {
            if let Some(cp) = tracker.committable() {
                reader.commit(&cp).await?;
            }
            last_commit = Instant::now();
            uncommitted = false;
        }
        // Keep one spare buffer, not one per batch ever in flight: buffers
        // kept here are outside the shared budget, and a shard that once
        // used the whole budget must not hold on to it while idle.
        spare.truncate(SPARE_BUFFERS);
        let mut msgs = spare.pop().unwrap_or_else(|| {
            let (bytes, messages) = last_batch;
            Messages::with_capacity(ctx.framing, bytes + bytes / 8, messages + messages / 8)
        });
        msgs.clear();
        tokio::select! {
            biased;
            (ticket, answer) = oldest(&mut in_flight), if !in_flight.is_empty() => {
                match answer {
                    Ok(Done::Delivered(done)) => {
                        summary.messages += done.len() as u64;
                        tracker.delivered(ticket);
                        uncommitted = true;
                        spare.push(done);
                    }
                    // Dropped by the policy and counted by the output
                    // task: done, so the checkpoint moves past it and the
                    // shard stays current.
                    Ok(Done::Dropped(done)) => {
                        summary.dropped += done.len() as u64;
                        tracker.delivered(ticket);
                        uncommitted = true;
                        spare.push(done);
                    }
                    // Abandoned (abort): not delivered, so never committed.
                    // Later batches must not be committed either; stop.
                    Err(e) => {
                        undelivered = true;
                        summary.undelivered.get_or_insert(e);
                    }
                }
                // After the answered buffer: the spare kept is the one with
                // a batch's room, not an empty one taken at the top (which
                // made most batches grow from nothing by `realloc`).
                spare.push(msgs);
            }
            () = ctx.stop.cancelled(), if reading => spare.push(msgs),
            // The top of the loop commits.
            () = tokio::time::sleep_until((last_commit + ctx.settings.checkpoint_interval.0).into()),
                if ctx.commit && uncommitted => spare.push(msgs),
            batch = next_batch(&mut reader, &mut transforms, &mut formatter, &mut msgs, &ctx.settings),
                if reading && in_flight.len() < window =>
            {
                match batch? {
                    None => {
                        ended = true;
                        spare.push(msgs);
                    }
                    Some(end) => {
                        if let Some(e) = end.stop {
                            stop_error = Some(e.into());
                        }
                        let ticket = tracker.sent(end.position);
                        if msgs.is_empty() {
                            // Nothing to send (blank or skipped lines): the
                            // position is delivered as it is.
                            tracker.delivered(ticket);
                            uncommitted = true;
                            spare.push(msgs);
                        } else {
                            last_batch = (msgs.framed().len(), msgs.len());
                            // Wait for room in the shared budget; the
                            // output task gives it back with the answer,
                            // so this never waits on this shard's loop.
                            let permit = ctx.budget.acquire(msgs.byte_len()).await;
                            let (ack, rx) = oneshot::channel();
                            if ctx.tx.send(SendRequest { msgs, ack, permit }).await.is_err() {
                                undelivered = true;
                            } else {
                                in_flight.push_back((ticket, rx));
                            }
                        }
                    }
                }
            }
        }
    }
    if ctx.commit {
        if let Some(cp) = tracker.committable() {
            reader.commit(&cp).await?;
        }
        reader.flush().await?;
    }
    match stop_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::format::{Constraints, FormatConfig};
    use crate::pipeline::tracker::Checkpoint;
    use crate::record::{Field, LogTime, Record, Severity};
    use crate::source;
    use crate::transform::testing::{DropWhere, Mark};

    /// `batches` batches of one record each at positions 1, 2, …, then
    /// the end; after each batch it tells `read` how many are left, and it
    /// tells `commits` every position committed.
    struct Scripted {
        done: u64,
        batches: u64,
        read: mpsc::UnboundedSender<u64>,
        commits: mpsc::UnboundedSender<u64>,
    }

    impl Scripted {
        /// The reader, and the receiving ends of `read` and `commits`.
        fn new(
            batches: u64,
        ) -> (
            Self,
            mpsc::UnboundedReceiver<u64>,
            mpsc::UnboundedReceiver<u64>,
        ) {
            let (read, read_rx) = mpsc::unbounded_channel();
            let (commits, commits_rx) = mpsc::unbounded_channel();
            let reader = Self {
                done: 0,
                batches,
                read,
                commits,
            };
            (reader, read_rx, commits_rx)
        }
    }

    impl ShardReader for Scripted {
        type Position = u64;

        fn name(&self) -> &str {
            "test"
        }

        async fn read_batch(
            &mut self,
            visit: &mut (dyn FnMut(&Record<'_>) -> Flow + Send),
        ) -> Result<Option<BatchEnd<u64>>, source::Error> {
            if self.done == self.batches {
                return Ok(None);
            }
            self.done += 1;
            let record = Record {
                time: LogTime::new(1_700_028_800, 0).unwrap_or_default(),
                fields: vec![Field::borrowed(b"k", b"v")],
            };
            visit(&record);
            let _ = self.read.send(self.batches - self.done);
            Ok(Some(BatchEnd {
                position: self.done,
                records: 1,
                stop: None,
            }))
        }

        async fn commit(&mut self, cp: &Checkpoint<u64>) -> Result<(), source::Error> {
            let _ = self.commits.send(*cp.position());
            Ok(())
        }
    }

    fn formatter() -> Formatter {
        match Formatter::build(
            &FormatConfig::default(),
            Constraints {
                newline_terminated: true,
                max_message: None,
            },
            &crate::counters::Metrics::default(),
        ) {
            Ok(f) => f,
            Err(e) => panic!("default format: {e}"),
        }
    }

    async fn within_deadline<T>(what: &str, f: impl std::future::Future<Output = Option<T>>) -> T {
        match tokio::time::timeout(Duration::from_secs(10), f).await {
            Ok(Some(t)) => t,
            _ => panic!("{what}: not within 10s"),
        }
    }

    // A current-thread runtime: once the test task runs again after the
    // reader said "second batch read", the shard task has gone as far as it
    // can without waiting, so an empty channel means it is waiting.
    #[tokio::test(flavor = "current_thread")]
    async fn a_shard_waits_for_the_shared_budget_before_handing_a_batch_over() {
        let (tx, mut rx) = mpsc::channel(64);
        let (reader, mut read, _commits) = Scripted::new(2);
        // Room for one batch only, though the shard's window allows 32.
        let budget = Budget::new(1024);
        let settings = PipelineConfig::default();
        assert!(settings.in_flight_batches > 1);
        let formatter = formatter();
        let ctx = ShardContext {
            tx,
            budget,
            settings,
            stop: CancellationToken::new(),
            commit: false,
            framing: None,
        };
        let task = tokio::spawn(run(reader, Chain::default(), formatter, ctx));

        let first = within_deadline("first batch handed over", rx.recv()).await;
        assert_eq!(within_deadline("first batch read", read.recv()).await, 1);
        // The second batch is read and formatted...
        assert_eq!(within_deadline("second batch read", read.recv()).await, 0);
        // ...but the budget is held by the first, so it is not handed over.
        assert!(rx.try_recv().is_err());
        // Answering the first gives its bytes back.
        let _ = first.ack.send(Ok(Done::Delivered(first.msgs)));
        drop(first.permit);
        let second = within_deadline("second batch handed over", rx.recv()).await;
        let _ = second.ack.send(Ok(Done::Delivered(second.msgs)));
        drop(second.permit);
        match task.await {
            Ok(Ok(summary)) => assert_eq!(summary.messages, 2),
            other => panic!("shard task: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_dropped_batch_counts_as_done_for_the_checkpoint() {
        let (tx, mut rx) = mpsc::channel(64);
        let (reader, _read, mut commits) = Scripted::new(3);
        let formatter = formatter();
        let ctx = ShardContext {
            tx,
            budget: Budget::new(1 << 20),
            settings: PipelineConfig::default(),
            stop: CancellationToken::new(),
            commit: true,
            framing: None,
        };
        let task = tokio::spawn(run(reader, Chain::default(), formatter, ctx));
        // Dropped, delivered, dropped: every one of them is done.
        for dropped in [true, false, true] {
            let req = within_deadline("batch handed over", rx.recv()).await;
            let done = if dropped {
                Done::Dropped(req.msgs)
            } else {
                Done::Delivered(req.msgs)
            };
            let _ = req.ack.send(Ok(done));
        }
        match task.await {
            Ok(Ok(summary)) => assert_eq!((summary.messages, summary.dropped), (1, 2)),
            other => panic!("shard task: {other:?}"),
        }
        let mut last = None;
        while let Ok(p) = commits.try_recv() {
            last = Some(p);
        }
        assert_eq!(last, Some(3), "the checkpoint passed the dropped batches");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answered_buffer_is_kept_for_the_next_batch() {
        let (tx, mut rx) = mpsc::channel(64);
        let (reader, _read, _commits) = Scripted::new(3);
        let settings = PipelineConfig {
            in_flight_batches: 2,
            ..PipelineConfig::default()
        };
        let formatter = formatter();
        let ctx = ShardContext {
            tx,
            budget: Budget::new(1 << 20),
            settings,
            stop: CancellationToken::new(),
            commit: false,
            framing: None,
        };
        let task = tokio::spawn(run(reader, Chain::default(), formatter, ctx));
        let first = within_deadline("first batch", rx.recv()).await;
        let second = within_deadline("second batch", rx.recv()).await;
        // The window is full; the first answer comes back with a room no
        // batch grown from nothing has.
        let mut answered = first.msgs;
        answered.buffer().reserve(1 << 20);
        let _ = first.ack.send(Ok(Done::Delivered(answered)));
        drop(first.permit);
        let mut third = within_deadline("third batch", rx.recv()).await;
        assert!(third.msgs.buffer().capacity() >= 1 << 20);
        for b in [second, third] {
            let _ = b.ack.send(Ok(Done::Delivered(b.msgs)));
            drop(b.permit);
        }
        match task.await {
            Ok(Ok(summary)) => assert_eq!(summary.messages, 3),
            other => panic!("shard task: {other:?}"),
        }
    }

    #[tokio::test]
    async fn records_a_transform_drops_are_done_without_a_message() {
        let (tx, mut rx) = mpsc::channel(64);
        let (reader, _read, mut commits) = Scripted::new(3);
        let ctx = ShardContext {
            tx,
            budget: Budget::new(1 << 20),
            settings: PipelineConfig::default(),
            stop: CancellationToken::new(),
            commit: true,
            framing: None,
        };
        let metrics = crate::counters::Metrics::default();
        let drop_all = Chain::new(
            vec![Box::new(DropWhere {
                key: b"k",
                value: b"v",
            })],
            &metrics,
        );
        let task = tokio::spawn(run(reader, drop_all, formatter(), ctx));
        match task.await {
            Ok(Ok(summary)) => assert_eq!(summary.messages, 0),
            other => panic!("shard task: {other:?}"),
        }
        assert!(rx.try_recv().is_err(), "nothing was handed to the output");
        let mut last = None;
        while let Ok(p) = commits.try_recv() {
            last = Some(p);
        }
        assert_eq!(last, Some(3), "the checkpoint passed the filtered records");
        assert_eq!(crate::counters::get(&metrics.records_filtered), 3);
    }

    #[tokio::test]
    async fn a_transform_sets_the_severity_of_the_message() {
        let (tx, mut rx) = mpsc::channel(64);
        let (reader, _read, _commits) = Scripted::new(1);
        let ctx = ShardContext {
            tx,
            budget: Budget::new(1 << 20),
            settings: PipelineConfig::default(),
            stop: CancellationToken::new(),
            commit: false,
            framing: None,
        };
        let mark = Chain::new(
            vec![Box::new(Mark {
                severity: Severity::new(2).expect("crit"),
                renamed: b"key",
            })],
            &crate::counters::Metrics::default(),
        );
        let task = tokio::spawn(run(reader, mark, formatter(), ctx));
        let req = within_deadline("batch handed over", rx.recv()).await;
        let messages: Vec<Vec<u8>> = req.msgs.iter().map(<[u8]>::to_vec).collect();
        let _ = req.ack.send(Ok(Done::Delivered(req.msgs)));
        drop(req.permit);
        assert_eq!(messages.len(), 1);
        let text = String::from_utf8_lossy(&messages[0]).into_owned();
        // user (1) × 8 + crit (2); the field renamed by the step.
        assert!(text.starts_with("<10>1 "), "{text}");
        assert!(text.ends_with(" ||key=changed"), "{text}");
        match task.await {
            Ok(Ok(summary)) => assert_eq!(summary.messages, 1),
            other => panic!("shard task: {other:?}"),
        }
    }
}
