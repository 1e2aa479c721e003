//! The pipeline: wires source → format → sink for every shard, moves
//! checkpoints only after delivery, carries back-pressure, and shuts down in a
//! safe order.
//!
//! Shape (see `docs/architecture.md`):
//!
//! ```text
//!  shard task (one per shard)                     output task (one)
//!  read_batch ─▶ format into Messages ─▶ mpsc ─▶ Sink::submit ─▶ ack (oneshot)
//!        ▲                                  (bounded)    once the sink says │
//!        │                                               the batch is safe  │
//!        └──── tracker: commit the delivered prefix ◀───────────────────────┘
//! ```
//!
//! - Every batch on its way to the SIEM holds its bytes of one budget shared
//!   by all shards (`pipeline.max_in_flight_bytes`, `budget.rs`) until it is
//!   answered; a shard waits for budget before it hands a batch over, and
//!   also keeps at most `pipeline.in_flight_batches` of its own in flight.
//!   That is the whole back-pressure story: a SIEM outage stalls reading,
//!   and memory stays flat whatever the number of shards.
//! - Unless the user opts in to `pipeline.when_blocked = "drop"`
//!   (`blocked.rs`): then, once the receiver has been unreachable for
//!   `pipeline.drop_after`, the output task answers batches as dropped
//!   (counted, and done for the tracker, so positions move on) until the
//!   sink connects again.
//! - Checkpoints move through [`tracker::Tracker`] only, on an interval, when
//!   a shard ends and on shutdown.
//! - Files are a fixed set of shards and the run ends when all end. A
//!   consumer group ([`crate::source::GroupSource`], `group.rs`) hands shards
//!   out and takes them back while it runs: each shard task has a child of
//!   the `stop` token, and a shard taken away is drained and committed before
//!   the group is told it is free.
//! - Shutdown is two tokens ([`Shutdown`]): `stop` (first SIGINT/SIGTERM)
//!   ends reading and lets in-flight batches drain for
//!   `pipeline.drain_timeout`; `abort` (the deadline, or a second signal)
//!   abandons what is still in flight — it is then simply not committed, so
//!   it is sent again next time. Either way the delivered prefix is
//!   committed before the program exits.
//!
//! What this module must not know: wire formats, socket details, HTTP.

mod blocked;
mod budget;
mod group;
mod shard;
pub(crate) mod tap;
pub(crate) mod tracker;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PipelineConfig, SourceKind};
use crate::counters::{self, Metrics};
use crate::format::{self, Constraints, FormatConfig, Formatter};
use crate::sink::{self, Framing, Messages, Sink};
use crate::source::{self, file, sls};

/// Why the pipeline could not be built or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or wrong.
    #[error("{key}: {problem}")]
    Config {
        /// Path of the key.
        key: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The format section is invalid.
    #[error(transparent)]
    Format(#[from] format::Error),
    /// The sink section is invalid or the sink failed for good.
    #[error(transparent)]
    Sink(#[from] sink::Error),
    /// The source failed (unreadable input, malformed input with
    /// `on_malformed = "stop"`, a checkpoint that cannot be written).
    #[error(transparent)]
    Source(#[from] source::Error),
    /// A bug: a task panicked. Carries the panic's message.
    #[error("internal error (a bug in siemfwd; please report it with this line): {0}")]
    Internal(String),
}

impl Error {
    /// The error for a shard task that did not return: its panic message,
    /// or that it was cancelled.
    fn task_failed(join: tokio::task::JoinError) -> Self {
        let what = if join.is_panic() {
            let payload = join.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            format!("a shard task panicked: {message}")
        } else {
            format!("a shard task ended without an answer: {join}")
        };
        Error::Internal(what)
    }
}

/// The two shutdown triggers; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Stop reading, drain, commit, exit.
    pub stop: CancellationToken,
    /// Give up on in-flight batches now (they are not committed).
    pub abort: CancellationToken,
}

/// Where formatted messages go.
#[derive(Debug)]
pub enum Output {
    /// The configured SIEM.
    Sink(Sink),
    /// Standard output, byte for byte as they would go on the wire
    /// (`siemfwd tap`, `run --dry-run`); nothing is committed.
    Tap(tap::Tap),
}

impl Output {
    /// How batches should be framed to go out as they are.
    fn batch_framing(&self) -> Option<Framing> {
        match self {
            Output::Sink(s) => s.batch_framing(),
            Output::Tap(t) => t.batch_framing(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Shards read.
    pub shards: usize,
    /// Records read from the source.
    pub records: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Records dropped by `pipeline.when_blocked = "drop"` (also in the
    /// `records_dropped` counter).
    pub dropped: u64,
    /// True when in-flight batches were abandoned (abort).
    pub aborted: bool,
}

/// A pipeline built from a [`Config`], ready to run.
#[derive(Debug)]
pub struct Pipeline {
    plan: Box<dyn Plan>,
    parts: Parts,
}

/// What every run loop needs besides its shards.
#[derive(Debug)]
struct Parts {
    format: FormatConfig,
    /// The `[[transforms]]`, compiled once and shared by every shard.
    transforms: std::sync::Arc<[Box<dyn crate::transform::Step>]>,
    constraints: Constraints,
    output: Output,
    settings: PipelineConfig,
    /// This pipeline's counters, shared by every part of it.
    metrics: Metrics,
}

/// The source, ready to run: any [`GroupSource`](source::GroupSource)
/// behind one box, so that a new source adds one arm where it is built and
/// none where it runs. The run loop itself (`group::run`) is generic over
/// the source: records are read without a `dyn` call.
trait Plan: std::fmt::Debug + Send {
    fn run(
        self: Box<Self>,
        parts: Parts,
        shutdown: Shutdown,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Summary, Error>> + Send>>;
}

impl<G: source::GroupSource + std::fmt::Debug> Plan for G {
    fn run(
        self: Box<Self>,
        parts: Parts,
        shutdown: Shutdown,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Summary, Error>> + Send>> {
        Box::pin(group::run(*self, parts, shutdown))
    }
}

/// The formatter constraints a sink imposes (the transport's
/// [`sink::Wire`]).
pub fn constraints_for(sink: &sink::SinkConfig) -> Constraints {
    let wire = sink.wire();
    Constraints {
        newline_terminated: wire.newline_terminated,
        max_message: wire.max_message,
    }
}

impl Pipeline {
    /// Check `config` as a whole and build every part: the formatter, the
    /// sink (certificates loaded) or a tap, and the list of shards.
    ///
    /// # Errors
    /// [`Error`] naming the key and the problem.
    pub fn build(config: &Config, dry_run: bool) -> Result<Self, Error> {
        check_settings(&config.pipeline)?;
        if config.pipeline.when_blocked == crate::config::WhenBlocked::Drop
            && !config.sink.wire().waits_for_receiver
        {
            return Err(Error::Config {
                key: "pipeline.when_blocked".to_owned(),
                problem: format!(
                    "\"drop\" applies to tcp and tls sinks, which wait for their receiver; a {} \
                     sink never does: remove it",
                    config.sink.transport.name()
                ),
            });
        }
        let metrics = Metrics::default();
        let transforms =
            crate::transform::build(&config.transforms, &metrics).map_err(|e| Error::Config {
                key: e.key,
                problem: e.problem,
            })?;
        let constraints = constraints_for(&config.sink);
        // Build once to validate (counting into a handle of its own, so the
        // check counts nothing); each shard builds its own below.
        Formatter::build(&config.format, constraints, &Metrics::default())?;
        let output = if dry_run {
            Output::Tap(tap::Tap::new(&config.sink))
        } else {
            Output::Sink(Sink::build(&config.sink, &metrics)?)
        };
        let plan: Box<dyn Plan> = match config.source.kind {
            SourceKind::File => Box::new(file::FileGroup::new(&config.source.file, &metrics)?),
            SourceKind::Sls if config.source.sls.logstores.is_empty() => Box::new(
                sls::SlsSource::build(&config.source.sls, &metrics).map_err(source::Error::from)?,
            ),
            SourceKind::Sls => {
                let members = sls::SlsSource::build_several(&config.source.sls, &metrics)
                    .map_err(source::Error::from)?
                    .into_iter()
                    .map(|s| {
                        let label = format!("{}/{}", s.settings().project, s.settings().logstore);
                        (label, s)
                    })
                    .collect();
                Box::new(source::several::Several::new(members)?)
            }
        };
        Ok(Self {
            plan,
            parts: Parts {
                format: config.format.clone(),
                transforms,
                constraints,
                output,
                settings: config.pipeline.clone(),
                metrics,
            },
        })
    }

    /// This pipeline's counters: what `siemfwd` prints when it stops, and
    /// what an exporter reads while it runs.
    pub fn metrics(&self) -> Metrics {
        self.parts.metrics.clone()
    }

    /// The sink, for `siemfwd check` (none in dry-run mode).
    pub fn sink_mut(&mut self) -> Option<&mut Sink> {
        match &mut self.parts.output {
            Output::Sink(s) => Some(s),
            Output::Tap(_) => None,
        }
    }

    /// Run until every shard has ended (files without `follow`) or
    /// `shutdown` says stop. A consumer group runs until `shutdown`.
    ///
    /// # Errors
    /// The first fatal error of a shard (after every shard committed what it
    /// delivered).
    pub async fn run(self, shutdown: Shutdown) -> Result<Summary, Error> {
        self.plan.run(self.parts, shutdown).await
    }
}

/// Once `stop` fires, `abort` follows after `drain_timeout` unless
/// everything finished first.
fn drain_deadline(shutdown: &Shutdown, timeout: Duration) -> tokio::task::JoinHandle<()> {
    let sd = shutdown.clone();
    tokio::spawn(async move {
        sd.stop.cancelled().await;
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                tracing::warn!(?timeout, "drain deadline reached; abandoning batches still in flight (they will be sent again)");
                sd.abort.cancel();
            }
            () = sd.abort.cancelled() => {}
        }
    })
}

fn check_settings(p: &PipelineConfig) -> Result<(), Error> {
    let bad = |key: &str, problem: &str| Error::Config {
        key: format!("pipeline.{key}"),
        problem: problem.to_owned(),
    };
    if p.batch_records == 0 {
        return Err(bad("batch_records", "must be at least 1"));
    }
    if p.batch_bytes.0 < 1024 {
        return Err(bad("batch_bytes", "must be at least 1KiB"));
    }
    if p.in_flight_batches == 0 || p.in_flight_batches > 1024 {
        return Err(bad("in_flight_batches", "must be between 1 and 1024"));
    }
    if p.max_in_flight_bytes.0 < p.batch_bytes.0 {
        return Err(bad(
            "max_in_flight_bytes",
            "must be at least pipeline.batch_bytes (one batch must fit)",
        ));
    }
    if p.checkpoint_interval.0 < Duration::from_millis(10) {
        return Err(bad("checkpoint_interval", "must be at least 10ms"));
    }
    if let Some((key, problem)) = blocked::check(p) {
        return Err(bad(key, &problem));
    }
    Ok(())
}

/// How a batch left the pipeline; either way its buffer comes back for
/// reuse and its position may be committed.
#[derive(Debug)]
enum Done {
    /// Delivered (see `sink` for what that means per transport).
    Delivered(Messages),
    /// Dropped by `pipeline.when_blocked = "drop"`, and counted
    /// (`blocked.rs`).
    Dropped(Messages),
}

/// The answer to a batch: done, or why it was not (abandoned, or an output
/// that failed for good).
type Answer = Result<Done, sink::Error>;

/// A batch on its way to the output; the answer brings the buffer back for
/// reuse, or says why it was not delivered.
#[derive(Debug)]
struct SendRequest {
    msgs: Messages,
    ack: oneshot::Sender<Answer>,
    /// The batch's share of `pipeline.max_in_flight_bytes`; dropped (given
    /// back) with the answer, or when the batch is abandoned.
    permit: budget::Permit,
}

/// The output task: submits batches to the output in the order they arrive
/// and answers each once it is delivered.
async fn run_output(
    output: Output,
    rx: mpsc::Receiver<SendRequest>,
    abort: CancellationToken,
    policy: blocked::Policy,
    metrics: Metrics,
) {
    match output {
        Output::Sink(sink) => {
            run_sink(sink, rx, abort, policy, metrics).await;
        }
        Output::Tap(tap) => run_tap(tap, rx, &metrics).await,
    }
}

/// The tap writes and answers at once: nothing is committed in dry-run.
async fn run_tap(mut tap: tap::Tap, mut rx: mpsc::Receiver<SendRequest>, metrics: &Metrics) {
    while let Some(req) = rx.recv().await {
        let result = tap.write(&req.msgs).await;
        if result.is_ok() {
            counters::add(&metrics.messages_delivered, req.msgs.len() as u64);
            counters::set(&metrics.gauges().delivered_at_ms, counters::now_ms());
            counters::add(&metrics.bytes_delivered, req.msgs.byte_len() as u64);
        }
        let _ = req.ack.send(result.map(|()| Done::Delivered(req.msgs)));
        drop(req.permit);
    }
    tap.flush().await;
}

/// Drive the sink with many batches in flight: a batch is answered only
/// when the sink reports it delivered (for TCP/TLS, its safe point: see
/// `sink/stream/settle.rs`), so the shard's checkpoint never passes bytes
/// that a dying receiver could still lose. Batches come back from the sink
/// in the order they were submitted, so the answers are a FIFO.
///
/// Memory stays bounded without a limit of its own here: every batch the
/// sink holds carries its permit of the shared byte budget
/// (`pipeline.max_in_flight_bytes`), given back only when the batch is
/// answered, and a shard waits for budget before it hands a batch over (and
/// stops reading at `pipeline.in_flight_batches`). While the SIEM is down,
/// `submit` or `progress` wait in the sink's reconnect loop, no permit comes
/// back and the shards stop reading.
///
/// All this task does is submit, let the sink make progress when due, and
/// answer what is done; `pipeline.when_blocked = "drop"` is the sink's
/// wrapper ([`blocked::PolicySink`]), whose outcomes say "dropped" instead
/// of "delivered". Returns what was dropped.
///
/// On `abort` everything not yet delivered is abandoned: its answer is
/// dropped, which the shard reads as "not delivered" (never committed).
async fn run_sink(
    sink: Sink,
    mut rx: mpsc::Receiver<SendRequest>,
    abort: CancellationToken,
    policy: blocked::Policy,
    metrics: Metrics,
) -> blocked::Dropped {
    let mut out = blocked::PolicySink::new(sink, policy, &metrics);
    // Each answer with the batch's budget permit: the bytes count until the
    // sink gives the batch back (or it is abandoned or dropped).
    let mut waiting: VecDeque<(oneshot::Sender<Answer>, budget::Permit)> = VecDeque::new();
    let mut open = true;
    let aborted = loop {
        while let Some(done) = out.take() {
            if let Some((ack, permit)) = waiting.pop_front() {
                let _ = ack.send(Ok(done));
                drop(permit);
            }
        }
        if !open && waiting.is_empty() {
            break false;
        }
        let due = out.next_check();
        let step = tokio::select! {
            biased;
            () = abort.cancelled() => break true,
            // Cancel-safe: a batch arriving interrupts it, the next turn
            // goes on.
            r = out.progress(due.unwrap_or_else(tokio::time::Instant::now), &abort), if due.is_some() => r,
            req = rx.recv(), if open => match req {
                Some(req) => {
                    waiting.push_back((req.ack, req.permit));
                    out.submit(req.msgs, &abort).await
                }
                None => {
                    open = false;
                    Ok(())
                }
            },
        };
        match step {
            Ok(()) => {}
            Err(sink::Error::Cancelled) => break true,
            Err(e) => {
                // Only `stdout` fails for good: answer every batch with
                // the cause; the shards stop and commit what was delivered.
                let cause = e.to_string();
                for (ack, _permit) in waiting.drain(..) {
                    let _ = ack.send(Err(sink::Error::Connection(cause.clone())));
                }
                rx.close();
                while let Some(req) = rx.recv().await {
                    let _ = req.ack.send(Err(sink::Error::Connection(cause.clone())));
                }
                break false;
            }
        }
    };
    let (total, mut sink) = out.finish();
    if aborted {
        if !waiting.is_empty() {
            tracing::warn!(
                batches = waiting.len(),
                "abandoning batches not yet delivered; their records are not committed and will be sent again"
            );
        }
        // Dropping the answers tells the shards; a graceful close could
        // wait on a dead receiver, and the abort means now.
        drop(waiting);
        return total;
    }
    sink.close().await;
    total
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;
    use tokio::sync::{mpsc, oneshot};
    use tokio_util::sync::CancellationToken;

    use super::blocked::{Dropped, Policy};
    use super::budget::Budget;
    use super::{run_sink, Answer, Done, Metrics, SendRequest};
    use crate::sink::testutil::{batch, closed_port, config, framed, read_all, transport};
    use crate::sink::{Framing, Messages, Sink};

    #[tokio::test]
    async fn a_panicked_task_is_an_internal_error_with_its_message() {
        let join = tokio::spawn(async {
            let shard = 3;
            if shard == 3 {
                panic!("tracker out of order at shard {shard}");
            }
        })
        .await
        .expect_err("the task panicked");
        let e = super::Error::task_failed(join);
        assert!(matches!(e, super::Error::Internal(_)));
        let text = e.to_string();
        assert!(
            text.contains("tracker out of order at shard 3") && text.contains("a bug"),
            "{text}"
        );
    }

    /// Hand `msgs` to the output task; the answer comes on the receiver.
    async fn hand_over(
        tx: &mpsc::Sender<SendRequest>,
        budget: &Budget,
        msgs: Messages,
    ) -> oneshot::Receiver<Answer> {
        let permit = budget.acquire(msgs.byte_len()).await;
        let (ack, rx) = oneshot::channel();
        assert!(tx.send(SendRequest { msgs, ack, permit }).await.is_ok());
        rx
    }

    async fn answer(rx: oneshot::Receiver<Answer>) -> Done {
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(done))) => done,
            other => panic!("no answer within 10s: {other:?}"),
        }
    }

    fn numbered(i: usize) -> Messages {
        batch(&[format!("<14>1 m{i}a"), format!("<14>1 m{i}b")])
    }

    #[tokio::test]
    async fn drop_policy_drops_once_unreachable_for_drop_after_then_resumes() {
        let (held, addr) = closed_port();
        let sink =
            Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default()).expect("sink");
        let after = Duration::from_millis(300);
        let (tx, rx) = mpsc::channel(64);
        let budget = Budget::new(1 << 20);
        let metrics = Metrics::default();
        let output = tokio::spawn(run_sink(
            sink,
            rx,
            CancellationToken::new(),
            Policy::Drop { after },
            metrics.clone(),
        ));

        // The first batch waits for `after`, held, then is dropped.
        let started = tokio::time::Instant::now();
        let first = hand_over(&tx, &budget, numbered(0)).await;
        assert!(matches!(answer(first).await, Done::Dropped(m) if m.len() == 2));
        assert!(started.elapsed() >= after, "{:?}", started.elapsed());
        // While the receiver stays away, the next batch goes at once.
        let second = hand_over(&tx, &budget, numbered(1)).await;
        assert!(matches!(answer(second).await, Done::Dropped(_)));

        // The receiver comes back: batches are delivered again.
        let l = held.listen(16).expect("listen on the held port");
        let (accepted_tx, accepted) = oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let _ = accepted_tx.send(());
            read_all(&mut s).await
        });
        // The sink connects again after its backoff; batches handed over
        // meanwhile are dropped.
        tokio::time::timeout(Duration::from_secs(10), accepted)
            .await
            .expect("reconnected within 10s")
            .expect("accepted");
        let mut answers = Vec::new();
        let mut sent = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for i in 2.. {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never delivered again"
            );
            let msgs = numbered(i);
            sent.push(msgs.clone());
            let done = answer(hand_over(&tx, &budget, msgs).await).await;
            let delivered = matches!(done, Done::Delivered(_));
            answers.push(done);
            if delivered {
                break;
            }
            tokio::task::yield_now().await;
        }
        // One more, on the healthy connection.
        let last = numbered(9999);
        sent.push(last.clone());
        answers.push(answer(hand_over(&tx, &budget, last).await).await);
        drop(tx);
        let dropped = output.await.expect("output task");
        let received = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server")
            .expect("server task");

        // Dropped ones first, then only delivered ones; exactly the
        // delivered ones reached the receiver.
        let first_delivered = answers
            .iter()
            .position(|d| matches!(d, Done::Delivered(_)))
            .expect("delivered");
        assert!(answers[first_delivered..]
            .iter()
            .all(|d| matches!(d, Done::Delivered(_))));
        let expected: Vec<u8> = sent[first_delivered..]
            .iter()
            .flat_map(|m| framed(m, Framing::OctetCounting))
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&received),
            String::from_utf8_lossy(&expected)
        );
        // Every dropped record counted once: the two batches before the
        // receiver came back and those dropped while it connected.
        let batches = 2 + first_delivered as u64;
        let bytes = [numbered(0), numbered(1)]
            .iter()
            .chain(&sent[..first_delivered])
            .map(|m| m.byte_len() as u64)
            .sum();
        assert_eq!(
            dropped,
            Dropped {
                records: 2 * batches,
                bytes,
                batches,
            }
        );
        assert_eq!(crate::counters::get(&metrics.records_dropped), 2 * batches);
        assert_eq!(crate::counters::get(&metrics.bytes_dropped), bytes);
        // The log lines (one as dropping starts, one as it ends) are
        // checked on the real process in tests/it/delivery_drop.rs: here other
        // tests reach the same callsites from other threads at the same
        // time, which races tracing's per-callsite interest cache.
    }

    #[tokio::test]
    async fn wait_policy_holds_a_batch_for_as_long_as_the_receiver_is_away() {
        let (held, addr) = closed_port();
        let sink =
            Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default()).expect("sink");
        let (tx, rx) = mpsc::channel(64);
        let budget = Budget::new(1 << 20);
        let output = tokio::spawn(run_sink(
            sink,
            rx,
            CancellationToken::new(),
            Policy::Wait,
            Metrics::default(),
        ));
        let mut first = hand_over(&tx, &budget, numbered(0)).await;
        // Well past any drop_after a test would use: still waiting.
        assert!(
            tokio::time::timeout(Duration::from_millis(500), &mut first)
                .await
                .is_err(),
            "answered while the receiver was away"
        );
        let l = held.listen(16).expect("listen on the held port");
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        assert!(matches!(answer(first).await, Done::Delivered(_)));
        drop(tx);
        assert_eq!(output.await.expect("output task"), Dropped::default());
        let received = server.await.expect("server task");
        assert_eq!(received, framed(&numbered(0), Framing::OctetCounting));
    }

    #[tokio::test]
    async fn a_receiver_that_stops_reading_is_dropped_for_once_the_stall_is_seen() {
        // Connected, but nothing is read: the sink sees a stall after
        // `sink.write_timeout`; from then on the incident's clock runs.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let l = socket.listen(8).expect("listen");
        let addr = l.local_addr().expect("addr").to_string();
        let holder = tokio::spawn(async move {
            // Accept and keep every connection, never reading.
            let mut kept = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                kept.push(s);
            }
        });
        let mut cfg = config("tcp", &addr);
        cfg.write_timeout = crate::units::HumanDuration(Duration::from_millis(200));
        let sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("sink");
        let (tx, rx) = mpsc::channel(64);
        let budget = Budget::new(16 << 20);
        let output = tokio::spawn(run_sink(
            sink,
            rx,
            CancellationToken::new(),
            Policy::Drop {
                after: Duration::from_millis(200),
            },
            Metrics::default(),
        ));
        // Far more than the path holds.
        let big = crate::sink::testutil::big_batch(4096, 1000);
        let started = tokio::time::Instant::now();
        match answer(hand_over(&tx, &budget, big).await).await {
            Done::Dropped(m) => assert_eq!(m.len(), 4096),
            Done::Delivered(_) => panic!("delivered to a receiver that reads nothing"),
        }
        // The stall had to be seen first, then last `drop_after`.
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );
        drop(tx);
        let totals = output.await.expect("output task");
        holder.abort();
        assert_eq!((totals.records, totals.batches), (4096, 1));
    }

    #[tokio::test]
    async fn two_pipelines_in_one_process_count_apart() {
        // A receiver that reads and discards whatever comes.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut conn, &mut tokio::io::sink()).await;
                });
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let pipeline = |name: &str, lines: usize| {
            let input = dir.path().join(format!("{name}.ndjson"));
            std::fs::write(&input, "{\"k\":\"v\"}\n".repeat(lines)).expect("input");
            let mut c = crate::config::Config {
                sink: config("tcp", &addr),
                ..crate::config::Config::default()
            };
            c.source.file.paths = vec![input.display().to_string()];
            c.source.file.state_dir = dir.path().join(format!("state-{name}"));
            super::Pipeline::build(&c, false).expect("pipeline")
        };
        let (a, b) = (pipeline("a", 3), pipeline("b", 5));
        let (ma, mb) = (a.metrics(), b.metrics());
        let (ra, rb) = tokio::join!(
            a.run(super::Shutdown::default()),
            b.run(super::Shutdown::default())
        );
        let (ra, rb) = (ra.expect("a ran"), rb.expect("b ran"));
        assert_eq!((ra.records, ra.messages), (3, 3));
        assert_eq!((rb.records, rb.messages), (5, 5));
        let get = crate::counters::get;
        assert_eq!((get(&ma.records_in), get(&ma.messages_delivered)), (3, 3));
        assert_eq!((get(&mb.records_in), get(&mb.messages_delivered)), (5, 5));
    }

    #[test]
    fn the_drop_policy_without_a_stream_sink_and_a_spinning_poll_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("a.ndjson");
        std::fs::write(&input, b"{}\n").expect("input");
        let mut config = crate::config::Config::default();
        config.source.file.paths = vec![input.display().to_string()];
        config.source.file.state_dir = dir.path().join("state");
        config.sink.transport = transport("udp");
        config.pipeline.when_blocked = crate::config::WhenBlocked::Drop;
        config.pipeline.drop_after = Some(crate::units::HumanDuration(Duration::from_secs(5)));
        let e = super::Pipeline::build(&config, true).map(|_| "accepted".to_owned());
        let e = e.unwrap_or_else(|e| e.to_string());
        assert!(
            e.starts_with("pipeline.when_blocked: \"drop\" applies to tcp"),
            "{e}"
        );
        config.sink.transport = transport("tcp");
        assert!(super::Pipeline::build(&config, true).is_ok());
        config.source.file.follow = true;
        config.source.file.poll_interval = crate::units::HumanDuration(Duration::ZERO);
        let e = super::Pipeline::build(&config, true).map(|_| "accepted".to_owned());
        let e = e.unwrap_or_else(|e| e.to_string());
        assert!(
            e.starts_with("source.file.poll_interval: must be at least"),
            "{e}"
        );
    }

    #[test]
    fn a_max_line_no_line_fits_in_is_refused_with_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("a.ndjson");
        std::fs::write(&input, b"{}\n").expect("input");
        let mut config = crate::config::Config::default();
        config.sink.transport = transport("stdout");
        config.source.file.paths = vec![input.display().to_string()];
        config.source.file.state_dir = dir.path().join("state");
        config.source.file.max_line = crate::units::ByteSize(0);
        let e = super::Pipeline::build(&config, true).map(|_| "accepted".to_owned());
        let e = e.unwrap_or_else(|e| e.to_string());
        assert!(
            e.starts_with("source.file.max_line: must be at least"),
            "{e}"
        );
        config.source.file.max_line = crate::units::ByteSize(16);
        assert!(super::Pipeline::build(&config, true).is_ok());
    }

    #[test]
    fn drop_after_without_the_drop_policy_is_refused_with_its_key() {
        let p = crate::config::PipelineConfig {
            drop_after: Some(crate::units::HumanDuration(Duration::from_secs(5))),
            ..crate::config::PipelineConfig::default()
        };
        let e = super::check_settings(&p).map(|()| "accepted".to_owned());
        let e = e.unwrap_or_else(|e| e.to_string());
        assert!(e.starts_with("pipeline.drop_after: is set, but"), "{e}");
        let p = crate::config::PipelineConfig {
            when_blocked: crate::config::WhenBlocked::Drop,
            drop_after: Some(crate::units::HumanDuration(Duration::ZERO)),
            ..crate::config::PipelineConfig::default()
        };
        let e = super::check_settings(&p).map(|()| "accepted".to_owned());
        let e = e.unwrap_or_else(|e| e.to_string());
        assert!(
            e.starts_with("pipeline.drop_after: must be longer than 0"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_receiver_that_accepts_and_closes_counts_as_unreachable() {
        // A load balancer without a backend: every connect succeeds, no
        // byte is ever taken. The incident runs across the reconnects.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let closer = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
                drop(s);
            }
        });
        let sink =
            Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default()).expect("sink");
        let (tx, rx) = mpsc::channel(64);
        let budget = Budget::new(1 << 20);
        let output = tokio::spawn(run_sink(
            sink,
            rx,
            CancellationToken::new(),
            Policy::Drop {
                after: Duration::from_millis(200),
            },
            Metrics::default(),
        ));
        let mut dropped_records = 0;
        for i in 0..5 {
            match answer(hand_over(&tx, &budget, numbered(i)).await).await {
                Done::Dropped(m) => dropped_records += m.len() as u64,
                Done::Delivered(_) => panic!("delivered to a receiver that takes nothing"),
            }
        }
        drop(tx);
        let totals = output.await.expect("output task");
        closer.abort();
        assert_eq!(totals.records, dropped_records);
        assert_eq!(totals.batches, 5);
    }
}
