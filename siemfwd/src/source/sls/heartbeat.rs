//! The heartbeat loop: the consumer's membership in the group (protocol
//! notes §5.1).
//!
//! Every `heartbeat_interval` it tells the server which shards this process
//! holds (readers running, draining ones included) and publishes the
//! server's answer — the shards to hold now — on a `watch` channel. The
//! answer is the truth: the pipeline starts readers for new shards and
//! drains, commits and drops those no longer listed, which the next
//! heartbeat then omits so the server can hand them over.
//!
//! Failure rules:
//! - `NotExistConsumerWithBody`: the server forgot us (we were silent past
//!   the timeout). Our shards may already be someone else's, so we publish
//!   "hold nothing" and re-join at once with `[]` (§5.1 recommendation).
//! - Other failures: keep the current assignment until `timeout + interval`
//!   has passed since the last success (the server has dropped us by then),
//!   then publish "hold nothing" — what the Python consumer does.
//! - Fatal errors (credentials, logstore gone) are published and end the loop.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::cursor::ShardId;
use super::error::Class;
use super::Settings;

/// What the heartbeat loop publishes.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    /// Shards to hold now.
    pub shards: BTreeSet<ShardId>,
    /// Set once a fatal error ended the loop (the message says what to fix).
    pub fatal: Option<String>,
}

/// The shards held, shared between the pipeline (writer) and the loop.
pub type Held = Arc<Mutex<BTreeSet<ShardId>>>;

/// Run until `cancel`.
pub async fn run(
    client: Client,
    settings: Arc<Settings>,
    held: Held,
    tx: watch::Sender<Assignment>,
    cancel: CancellationToken,
) {
    let interval = settings.heartbeat_interval;
    let give_up = settings.heartbeat_timeout + interval;
    let mut last_ok = Instant::now();
    let mut rejoin = false;
    let mut failures = 0u32;
    loop {
        let body: Vec<ShardId> = if rejoin {
            Vec::new()
        } else {
            held.lock()
                .map(|h| h.iter().copied().collect())
                .unwrap_or_default()
        };
        let publish = |shards: BTreeSet<ShardId>| {
            tx.send_if_modified(|a| {
                if a.shards == shards {
                    false
                } else {
                    a.shards = shards;
                    true
                }
            });
        };
        let mut wait = interval;
        match client
            .heartbeat(&settings.group, &settings.consumer, &body)
            .await
        {
            Ok(shards) => {
                if failures > 0 {
                    tracing::info!(failures, "heartbeat works again");
                }
                failures = 0;
                last_ok = Instant::now();
                rejoin = false;
                let shards: BTreeSet<ShardId> = shards.into_iter().collect();
                tracing::debug!(?shards, held = ?body, "heartbeat");
                publish(shards);
            }
            Err(e) if e.code() == Some("NotExistConsumerWithBody") && !rejoin => {
                tracing::warn!(
                    consumer = %settings.consumer,
                    "the group no longer knows this consumer (silent past the timeout); \
                     dropping its shards and re-joining"
                );
                rejoin = true;
                publish(BTreeSet::new());
                wait = Duration::ZERO;
            }
            Err(e) if e.class() == Class::Fatal => {
                let e = e.explain(&settings.project, &settings.logstore, &settings.group);
                tx.send_modify(|a| a.fatal = Some(e.to_string()));
                return;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures % 10 == 0 {
                    tracing::warn!(error = %e, failures, "heartbeat failed; retrying");
                }
                if last_ok.elapsed() > give_up {
                    tracing::warn!(
                        ?give_up,
                        "no heartbeat answer for longer than the group timeout; \
                         the server has dropped this consumer, so its shards are released"
                    );
                    publish(BTreeSet::new());
                    rejoin = true;
                }
                wait = interval.min(super::backoff(Duration::from_millis(500), failures));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// The last heartbeat on the way out: an empty list, so the server knows at
/// once that nothing is held any more. (No SDK does this; on the emulator,
/// and per the protocol notes possibly on the real service, the shards still
/// move only after the timeout — it costs one request and can only help.)
pub async fn leave(client: &Client, settings: &Settings) {
    match client
        .heartbeat(&settings.group, &settings.consumer, &[])
        .await
    {
        Ok(_) => tracing::info!(consumer = %settings.consumer, "left the consumer group"),
        Err(e) => tracing::debug!(error = %e, "final heartbeat failed"),
    }
}
