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

mod budget;
mod group;
mod shard;
pub mod tap;
pub mod tracker;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PipelineConfig, SourceKind};
use crate::counters::{self, COUNTERS};
use crate::format::{self, Constraints, FormatConfig, Formatter};
use crate::sink::{self, Framing, Messages, Sink, Transport};
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
    /// True when in-flight batches were abandoned (abort).
    pub aborted: bool,
}

/// A pipeline built from a [`Config`], ready to run.
#[derive(Debug)]
pub struct Pipeline {
    format: FormatConfig,
    constraints: Constraints,
    output: Output,
    plan: Plan,
    settings: PipelineConfig,
}

/// Which shards to read.
#[derive(Debug)]
enum Plan {
    /// A fixed list of files, one shard each; the run ends when all end.
    Files {
        inputs: Vec<PathBuf>,
        source: crate::config::FileSourceConfig,
    },
    /// A Log Service consumer group: shards come and go with the heartbeat.
    Sls(Box<sls::SlsSource>),
}

/// The formatter constraints a transport and framing impose.
pub fn constraints_for(transport: Transport, framing: Framing) -> Constraints {
    Constraints {
        newline_terminated: match transport {
            Transport::Stdout => true,
            Transport::Tcp | Transport::Tls => framing == Framing::Lf,
            Transport::Udp => false,
        },
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
        let constraints = constraints_for(config.sink.transport, config.sink.framing);
        // Build once to validate; each shard builds its own below.
        Formatter::build(&config.format, constraints)?;
        let output = if dry_run {
            Output::Tap(tap::Tap::new(&config.sink))
        } else {
            Output::Sink(Sink::build(&config.sink)?)
        };
        let plan = match config.source.kind {
            SourceKind::File => {
                let inputs = file::expand_paths(&config.source.file)?;
                if inputs.is_empty() {
                    return Err(Error::Config {
                        key: "source.file.paths".to_owned(),
                        problem: "no input files; name files or directories (or \"-\" for stdin)"
                            .to_owned(),
                    });
                }
                Plan::Files {
                    inputs,
                    source: config.source.file.clone(),
                }
            }
            SourceKind::Sls => Plan::Sls(Box::new(
                sls::SlsSource::build(&config.source.sls).map_err(source::Error::from)?,
            )),
        };
        Ok(Self {
            format: config.format.clone(),
            constraints,
            output,
            plan,
            settings: config.pipeline.clone(),
        })
    }

    /// The sink, for `siemfwd check` (none in dry-run mode).
    pub fn sink_mut(&mut self) -> Option<&mut Sink> {
        match &mut self.output {
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
        match self.plan {
            Plan::Files { inputs, source } => {
                run_files(
                    inputs,
                    source,
                    self.format,
                    self.constraints,
                    self.output,
                    self.settings,
                    shutdown,
                )
                .await
            }
            Plan::Sls(src) => {
                group::run(
                    *src,
                    group::Parts {
                        format: self.format,
                        constraints: self.constraints,
                        output: self.output,
                        settings: self.settings,
                    },
                    shutdown,
                )
                .await
            }
        }
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

async fn run_files(
    inputs: Vec<PathBuf>,
    source: crate::config::FileSourceConfig,
    format: FormatConfig,
    constraints: Constraints,
    output: Output,
    settings: PipelineConfig,
    shutdown: Shutdown,
) -> Result<Summary, Error> {
    {
        let store = file::CheckpointStore::open(&source.state_dir)?;
        let window = settings.in_flight_batches.max(1);
        let (tx, rx) = mpsc::channel::<SendRequest>(window * inputs.len());
        let dry_run = matches!(output, Output::Tap(_));
        let framing = output.batch_framing();
        let sink_task = tokio::spawn(run_output(output, rx, shutdown.abort.clone()));
        let deadline = drain_deadline(&shutdown, settings.drain_timeout.0);
        let budget = budget::Budget::new(settings.max_in_flight_bytes.0);

        let records_before = COUNTERS.records_in.load(Ordering::Relaxed);
        let mut tasks = JoinSet::new();
        for path in &inputs {
            let reader = file::FileShard::open(path, &source, &store).await?;
            let formatter = Formatter::build(&format, constraints)?;
            let ctx = shard::ShardContext {
                tx: tx.clone(),
                budget: budget.clone(),
                settings: settings.clone(),
                stop: shutdown.stop.clone(),
                commit: !dry_run,
                framing,
            };
            tasks.spawn(shard::run(reader, formatter, ctx));
        }
        drop(tx);

        let mut first_error = None;
        let mut summary = Summary {
            shards: inputs.len(),
            ..Summary::default()
        };
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(s)) => summary.messages += s.messages,
                Ok(Err(e)) => {
                    // Stop the other shards too: they drain and commit.
                    shutdown.stop.cancel();
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    shutdown.stop.cancel();
                    first_error.get_or_insert(Error::Config {
                        key: "internal".to_owned(),
                        problem: format!("a shard task failed: {join}"),
                    });
                }
            }
        }
        let _ = sink_task.await;
        deadline.abort();
        summary.records = COUNTERS.records_in.load(Ordering::Relaxed) - records_before;
        summary.aborted = shutdown.abort.is_cancelled();
        match first_error {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
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
    Ok(())
}

/// A batch on its way to the output; the answer brings the buffer back for
/// reuse, or says why it was not delivered.
#[derive(Debug)]
struct SendRequest {
    msgs: Messages,
    ack: oneshot::Sender<Result<Messages, sink::Error>>,
    /// The batch's share of `pipeline.max_in_flight_bytes`; dropped (given
    /// back) with the answer, or when the batch is abandoned.
    permit: budget::Permit,
}

/// The output task: submits batches to the output in the order they arrive
/// and answers each once it is delivered.
async fn run_output(output: Output, rx: mpsc::Receiver<SendRequest>, abort: CancellationToken) {
    match output {
        Output::Sink(sink) => run_sink(sink, rx, abort).await,
        Output::Tap(tap) => run_tap(tap, rx).await,
    }
}

/// The tap writes and answers at once: nothing is committed in dry-run.
async fn run_tap(mut tap: tap::Tap, mut rx: mpsc::Receiver<SendRequest>) {
    while let Some(req) = rx.recv().await {
        let result = tap.write(&req.msgs).await;
        if result.is_ok() {
            counters::add(&COUNTERS.messages_delivered, req.msgs.len() as u64);
            counters::add(&COUNTERS.bytes_delivered, req.msgs.byte_len() as u64);
        }
        let _ = req.ack.send(result.map(|()| req.msgs));
        drop(req.permit);
    }
    tap.flush().await;
}

/// Drive the sink with many batches in flight: a batch is answered only
/// when the sink reports it delivered (for TCP/TLS, its safe point: see
/// `sink/stream.rs`), so the shard's checkpoint never passes bytes that a
/// dying receiver could still lose. Batches come back from the sink in the
/// order they were submitted, so the answers are a FIFO.
///
/// Memory stays bounded without a limit of its own here: every batch the
/// sink holds carries its permit of the shared byte budget
/// (`pipeline.max_in_flight_bytes`), given back only when the batch is
/// answered, and a shard waits for budget before it hands a batch over (and
/// stops reading at `pipeline.in_flight_batches`). While the SIEM is down,
/// `submit` or `progress` wait in the sink's reconnect loop, no permit comes
/// back and the shards stop reading.
///
/// On `abort` everything not yet delivered is abandoned: its answer is
/// dropped, which the shard reads as "not delivered" (never committed).
async fn run_sink(mut sink: Sink, mut rx: mpsc::Receiver<SendRequest>, abort: CancellationToken) {
    // Each answer with the batch's budget permit: the bytes count until the
    // sink gives the batch back (or it is abandoned).
    let mut waiting: VecDeque<(
        oneshot::Sender<Result<Messages, sink::Error>>,
        budget::Permit,
    )> = VecDeque::new();
    let mut open = true;
    let aborted = loop {
        while let Some(msgs) = sink.take_safe() {
            counters::add(&COUNTERS.messages_delivered, msgs.len() as u64);
            counters::add(&COUNTERS.bytes_delivered, msgs.byte_len() as u64);
            if let Some((ack, permit)) = waiting.pop_front() {
                let _ = ack.send(Ok(msgs));
                drop(permit);
            }
        }
        if !open && waiting.is_empty() {
            break false;
        }
        let due = sink.next_check();
        let step = tokio::select! {
            biased;
            () = abort.cancelled() => break true,
            () = sleep_until_some(due), if due.is_some() => sink.progress(&abort).await,
            req = rx.recv(), if open => match req {
                Some(req) => {
                    waiting.push_back((req.ack, req.permit));
                    sink.submit(req.msgs, &abort).await
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
        return;
    }
    sink.close().await;
}

/// Sleep until `due`; pending forever for `None` (the branch is disabled
/// then anyway).
async fn sleep_until_some(due: Option<tokio::time::Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
