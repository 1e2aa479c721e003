//! Running a consumer group: shards come and go while the program runs.
//!
//! The group's answer (the heartbeat reply for Log Service) is the truth:
//!
//! - a shard newly assigned gets a shard task (the same `shard::run` as a
//!   file) with a **child** of the `stop` token; its reader finds its own
//!   start (the group checkpoint, else the configured position);
//! - a shard no longer assigned has its token cancelled: the task stops
//!   reading, lets its in-flight batches drain, commits the delivered
//!   prefix, and ends; only then is the shard removed from the "held" set,
//!   so the next heartbeat omits it and the server hands it over (protocol
//!   notes §5.1, style guide §4);
//! - a shard assigned again while its old task still drains is started
//!   anew once that task has ended;
//! - a reader that ends by itself while its shard is still assigned (a
//!   read-only shard read to its end, or a commit refused because the shard
//!   is someone else's) is started again only after [`RESTART_DELAY`], by
//!   which time the group's answer has usually caught up; a fatal error
//!   stops every shard.
//!
//! Shutdown (`stop`): every shard task drains and commits (under the
//! `drain_timeout` deadline, as for files), then the source leaves the group
//! (a final heartbeat with an empty list), then the sink closes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::{
    drain_deadline, run_output, shard, Error, Output, Parts, SendRequest, Shutdown, Summary,
};
use crate::counters;
use crate::format::Formatter;
use crate::source::GroupSource;
use crate::transform::Chain;

/// Channel slots per expected shard (the channel is shared; memory is
/// bounded by the byte budget a batch holds before it enters the channel).
const CHANNEL_SLOTS: usize = 64;

/// How long a shard whose reader ended by itself waits before it is started
/// again (if the group still assigns it).
pub(super) const RESTART_DELAY: Duration = Duration::from_secs(2);

type Joined = (u32, Result<shard::ShardSummary, Error>);

pub(super) async fn run<G: GroupSource>(
    mut source: G,
    parts: Parts,
    shutdown: Shutdown,
) -> Result<Summary, Error> {
    // Join first: a bad AccessKey or a missing logstore ends the program
    // here, before anything else starts.
    source.join().await?;
    let dry_run = matches!(parts.output, Output::Tap(_));
    let framing = parts.output.batch_framing();
    let window = parts.settings.in_flight_batches.max(1);
    let (tx, rx) = mpsc::channel::<SendRequest>(window * CHANNEL_SLOTS);
    let sink_task = tokio::spawn(run_output(
        parts.output,
        rx,
        shutdown.abort.clone(),
        super::blocked::Policy::of(&parts.settings),
        parts.metrics.clone(),
    ));
    let deadline = drain_deadline(&shutdown, parts.settings.drain_timeout.0);
    // One budget for every shard the group ever hands us.
    let budget = Budget::new(parts.settings.max_in_flight_bytes.0).shown_in(&parts.metrics);

    let mut tasks: JoinSet<Joined> = JoinSet::new();
    let mut running: BTreeMap<u32, CancellationToken> = BTreeMap::new();
    let mut wanted: BTreeSet<u32> = BTreeSet::new();
    let mut seen: BTreeSet<u32> = BTreeSet::new();
    let mut not_before: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut summary = Summary::default();
    let mut first_error: Option<Error> = None;
    // A finite source's run ends when every shard it assigned is done.
    let finite = source.finite();
    let mut assigned = false;

    loop {
        let stopping = shutdown.stop.is_cancelled();
        if (stopping || (finite && assigned && wanted.is_empty())) && tasks.is_empty() {
            break;
        }
        let wake = not_before.values().min().copied();
        tokio::select! {
            () = shutdown.stop.cancelled(), if !stopping => {
                tracing::info!(shards = running.len(), "stopping: draining and committing every shard");
            }
            a = source.assignment(), if !stopping => match a {
                Ok(shards) => {
                    wanted = shards.into_iter().collect();
                    assigned = true;
                    crate::counters::set(&parts.metrics.gauges().source_assigned, 1);
                    if !finite {
                        let names: Vec<String> =
                            wanted.iter().map(|id| source.shard_name(*id)).collect();
                        tracing::info!(shards = ?names, "shard assignment");
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                    shutdown.stop.cancel();
                }
            },
            Some(joined) = tasks.join_next() => {
                match joined {
                    Ok((id, result)) => {
                        let revoked = running.remove(&id).is_some_and(|t| t.is_cancelled());
                        if !revoked {
                            if source.ended(id) {
                                wanted.remove(&id);
                            } else {
                                not_before.insert(id, Instant::now() + RESTART_DELAY);
                            }
                        }
                        match result {
                            Ok(s) => {
                                summary.messages += s.messages;
                                summary.dropped += s.dropped;
                                if !finite {
                                    tracing::info!(shard = %source.shard_name(id), "shard released");
                                }
                                // Not delivered without a stop: the output
                                // failed for good; restarting the shard
                                // would only read the same data again.
                                match s.undelivered {
                                    Some(e) if !shutdown.stop.is_cancelled() => {
                                        first_error.get_or_insert(Error::Sink(e));
                                        shutdown.stop.cancel();
                                    }
                                    _ => {}
                                }
                            }
                            Err(e) => {
                                first_error.get_or_insert(e);
                                shutdown.stop.cancel();
                            }
                        }
                    }
                    Err(join) => {
                        // A panicked task: its shard is unknown here, so stop
                        // everything rather than keep a shard nobody reads.
                        first_error.get_or_insert(Error::task_failed(join));
                        shutdown.stop.cancel();
                    }
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() && !stopping => {}
        }
        let now = Instant::now();
        not_before.retain(|id, t| *t > now && wanted.contains(id));
        if !shutdown.stop.is_cancelled() {
            // Revoked shards: drain, commit, end.
            for (id, token) in &running {
                if !wanted.contains(id) && !token.is_cancelled() {
                    tracing::info!(shard = %source.shard_name(*id), "shard taken away; draining and committing it");
                    token.cancel();
                }
            }
            // New shards (or shards whose old task has ended). All are
            // opened before any starts: a file that cannot be opened (or
            // whose checkpoint is unreadable) stops the run before anything
            // of the others is sent.
            let new: Vec<u32> = wanted
                .iter()
                .copied()
                .filter(|id| !running.contains_key(id) && !not_before.contains_key(id))
                .collect();
            let mut opened = Vec::with_capacity(new.len());
            for id in new {
                let started = match source.open(id).await {
                    Ok(reader) => {
                        Formatter::build(&parts.format, parts.constraints, &parts.metrics)
                            .map(|formatter| (id, reader, formatter))
                            .map_err(Error::from)
                    }
                    Err(e) => Err(e.into()),
                };
                match started {
                    Ok(s) => opened.push(s),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        shutdown.stop.cancel();
                        opened.clear();
                        break;
                    }
                }
            }
            for (id, reader, formatter) in opened {
                let token = shutdown.stop.child_token();
                let transforms = Chain::shared(parts.transforms.clone(), &parts.metrics);
                let ctx = shard::ShardContext {
                    tx: tx.clone(),
                    budget: budget.clone(),
                    settings: parts.settings.clone(),
                    stop: token.clone(),
                    commit: !dry_run,
                    framing,
                };
                if !finite {
                    tracing::info!(shard = %source.shard_name(id), "shard assigned; starting it");
                }
                tasks.spawn(
                    async move { (id, shard::run(reader, transforms, formatter, ctx).await) },
                );
                running.insert(id, token);
                seen.insert(id);
            }
        }
        let held: Vec<u32> = running.keys().copied().collect();
        source.set_held(&held);
    }
    source.leave().await;
    drop(tx);
    let _ = sink_task.await;
    deadline.abort();
    summary.shards = seen.len();
    summary.records = counters::get(&parts.metrics.records_in);
    summary.aborted = shutdown.abort.is_cancelled();
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
