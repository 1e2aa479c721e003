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
//! - A heartbeat that gets no answer at all (a network partition that holds
//!   the connection rather than refusing it) counts as a failure once it has
//!   waited until that same `timeout + interval` deadline, not after the
//!   longer `request_timeout`: an answer that late is worthless (the server
//!   has dropped us), and meanwhile we would go on reading shards that are
//!   someone else's.
//! - Credentials refused after a heartbeat was answered (a key disabled,
//!   rotated or stripped of its policy since) count as failures under the
//!   rule above and set the gauge `/health` reports; the loop keeps trying,
//!   so a fix outside the process resumes forwarding. Log Service answering
//!   at all, refusals included, is recorded for the systemd watchdog
//!   (`heartbeat_reached_ms`): a restart could not help.
//! - Other fatal errors (logstore gone, …), and a refusal before any
//!   heartbeat was answered (a policy without `log:ConsumerGroupHeartBeat`),
//!   are published and end the loop.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{explain, Settings};
use sls_client::Class;
use sls_client::Client;
use sls_client::ShardId;

/// What the heartbeat loop publishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assignment {
    /// Shards to hold now.
    pub shards: BTreeSet<ShardId>,
    /// Set once a fatal error ended the loop (the message says what to fix).
    pub fatal: Option<String>,
}

/// The shards held, shared between the pipeline (writer) and the loop.
pub(crate) type Held = Arc<Mutex<BTreeSet<ShardId>>>;

/// Run until `cancel`.
pub(crate) async fn run(
    client: Client,
    settings: Arc<Settings>,
    held: Held,
    tx: watch::Sender<Assignment>,
    cancel: CancellationToken,
    metrics: crate::counters::Metrics,
) {
    let interval = settings.heartbeat_interval;
    let give_up = settings.heartbeat_timeout + interval;
    let mut last_ok = Instant::now();
    let mut rejoin = false;
    let mut failures = 0u32;
    // A refusal once a heartbeat was answered is retried: the credentials
    // changed outside the process. Before (a policy without
    // log:ConsumerGroupHeartBeat) it is the configuration, and fatal.
    let mut refused_now = super::Refused::new(&metrics);
    let mut ever_answered = false;
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
        // While shards are held, waited for no longer than the give-up
        // deadline (see the module docs). A re-join holds nothing, so it may
        // wait as long as the group timeout for a slow answer.
        let patience = if rejoin {
            settings.heartbeat_timeout
        } else {
            give_up.saturating_sub(last_ok.elapsed()).max(interval)
        };
        let answer = tokio::time::timeout(
            patience,
            client.heartbeat(&settings.group, &settings.consumer, &body),
        )
        .await
        .unwrap_or_else(|_| {
            Err(super::Error::Network {
                what: "HeartBeat".to_owned(),
                cause: format!("no answer within {patience:?}"),
            })
        });
        match answer {
            Ok(shards) => {
                if failures > 0 {
                    tracing::info!(failures, "heartbeat works again");
                }
                failures = 0;
                last_ok = Instant::now();
                rejoin = false;
                ever_answered = true;
                refused_now.set(false);
                let now = crate::counters::now_ms();
                crate::counters::set(&metrics.gauges().heartbeat_answered_ms, now);
                crate::counters::set(&metrics.gauges().heartbeat_reached_ms, now);
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
            Err(e) if e.class() == Class::Fatal && !(e.refuses_credentials() && ever_answered) => {
                let e = explain(e, &settings.project, &settings.logstore, &settings.group);
                tx.send_modify(|a| a.fatal = Some(e.to_string()));
                return;
            }
            Err(e) => {
                failures += 1;
                crate::counters::add(&metrics.sls_heartbeat_failures, 1);
                let refused = e.refuses_credentials();
                let said = e.to_string();
                if refused {
                    refused_now.set(true);
                    // Log Service is there and answers: a restart would not
                    // help (the systemd watchdog reads this).
                    crate::counters::set(
                        &metrics.gauges().heartbeat_reached_ms,
                        crate::counters::now_ms(),
                    );
                }
                if failures == 1 || failures % 10 == 0 {
                    if refused {
                        // Accepted when the group was joined: disabled,
                        // rotated or stripped of a policy since. Fixed
                        // outside the process, so keep trying (/health
                        // says so) rather than exit.
                        let fix =
                            explain(e, &settings.project, &settings.logstore, &settings.group)
                                .to_string();
                        tracing::warn!(error = %said, %fix, failures,
                            "Log Service refuses the credentials it accepted before; retrying");
                    } else {
                        tracing::warn!(error = %said, failures, "heartbeat failed; retrying");
                    }
                }
                if last_ok.elapsed() > give_up && !rejoin {
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
pub(crate) async fn leave(client: &Client, settings: &Settings) {
    match client
        .heartbeat(&settings.group, &settings.consumer, &[])
        .await
    {
        Ok(_) => tracing::info!(consumer = %settings.consumer, "left the consumer group"),
        Err(e) => tracing::debug!(error = %e, "final heartbeat failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::source::sls::config::SlsSourceConfig;
    use crate::units::HumanDuration;

    /// A Log Service stand-in that answers the first heartbeat with shard 0
    /// and then goes silent: every later request, on that connection or a
    /// new one, is read and never answered (a partition that holds
    /// connections rather than refusing them).
    async fn answers_once_then_silent() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut conn, _)) = listener.accept().await {
                let answer = std::mem::take(&mut first);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut got = Vec::new();
                    if answer {
                        // Headers, then the body announced by Content-Length.
                        loop {
                            let Ok(n) = conn.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            got.extend_from_slice(&buf[..n]);
                            let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                            let Some(end) = text.find("\r\n\r\n") else {
                                continue;
                            };
                            let len: usize = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if got.len() >= end + 4 + len {
                                break;
                            }
                        }
                        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                     content-length: 3\r\nx-log-requestid: 1\r\n\r\n[0]";
                        if conn.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_heartbeat_without_any_answer_releases_the_shards_after_timeout_plus_interval() {
        let addr = answers_once_then_silent().await;
        let cfg = SlsSourceConfig {
            endpoint: format!("http://{addr}"),
            access_key_id: "ak".into(),
            access_key_secret: "secret".into(),
            project: "proj".into(),
            logstore: "store".into(),
            consumer_group: "g".into(),
            consumer_name: "c".into(),
            heartbeat_interval: HumanDuration(Duration::from_millis(200)),
            heartbeat_timeout: Some(HumanDuration(Duration::from_secs(1))),
            // Far longer than the group timeout: the rule must not wait for it.
            request_timeout: HumanDuration(Duration::from_secs(60)),
            ..SlsSourceConfig::default()
        };
        let (client, settings) = super::super::build(&cfg).expect("settings");
        let (tx, mut rx) = watch::channel(Assignment::default());
        let cancel = CancellationToken::new();
        let started = Instant::now();
        tokio::spawn(run(
            client,
            Arc::new(settings),
            Held::default(),
            tx,
            cancel.clone(),
            crate::counters::Metrics::default(),
        ));
        rx.changed().await.expect("first answer");
        assert_eq!(
            rx.borrow_and_update().shards,
            BTreeSet::from([ShardId(0)]),
            "the one answer is published"
        );
        // Silence from then on: given up at timeout + interval (1.2s), not
        // at the 60s request timeout.
        tokio::time::timeout(Duration::from_secs(20), rx.changed())
            .await
            .expect("shards released long before the request timeout")
            .expect("loop alive");
        assert!(rx.borrow().shards.is_empty(), "{:?}", rx.borrow());
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "not before the group timeout: {:?}",
            started.elapsed()
        );
        cancel.cancel();
    }
}
