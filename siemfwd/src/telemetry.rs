//! `/metrics`, `/health` and `/ready` over HTTP, on `metrics.address`
//! (off unless configured): what an operator's Prometheus scrapes and a
//! supervisor (Kubernetes, a load balancer) asks.
//!
//! `/metrics` is the Prometheus text format, written by `prometheus-client`
//! (the Prometheus project's Rust client) from the pipeline's own atomics:
//! every counter of `counters::Counters` as `siemfwd_<name>_total`, the
//! gauges of `counters::Gauges`, and `siemfwd_build_info`. Nothing is
//! counted twice and the hot path is unchanged: a scrape reads the atomics.
//!
//! `/health` — the process works: 200 unless Log Service refuses the
//! credentials it accepted when the group was joined, or the last answered
//! heartbeat is older than the group's timeout (the group may have handed
//! our shards to others). `/ready` — it forwards:
//! 200 once the source has its shards (joined its group or opened its
//! files) and while the sink has a working connection (a sink that failed
//! and has not connected since makes it 503 at once). Both answer JSON:
//! `{"status":"ok"}`, or `{"status":"failing"|"not ready","why":"..."}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::counters::{self, Metrics};

/// Why the endpoint cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `metrics.address` is not `IP:port`.
    #[error("metrics.address {0:?}: not an IP address and port (e.g. 127.0.0.1:9598)")]
    Address(String),
    /// The address cannot be bound.
    #[error("metrics.address {address}: cannot listen: {cause}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        cause: std::io::Error,
    },
}

/// The HTTP endpoint, bound.
#[derive(Debug)]
pub struct Telemetry {
    listener: TcpListener,
    metrics: Metrics,
}

impl Telemetry {
    /// Bind `address` (`host:port`; port 0 picks one).
    ///
    /// # Errors
    /// [`Error`]: the address is not `IP:port`, or cannot be bound.
    pub async fn bind(address: &str, metrics: &Metrics) -> Result<Self, Error> {
        let addr: SocketAddr = address
            .parse()
            .map_err(|_| Error::Address(address.to_owned()))?;
        let listener = TcpListener::bind(addr).await.map_err(|cause| Error::Bind {
            address: address.to_owned(),
            cause,
        })?;
        Ok(Self {
            listener,
            metrics: metrics.clone(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Answer requests until `stop`.
    pub async fn serve(self, stop: CancellationToken) {
        let mut registry = Registry::with_prefix("siemfwd");
        registry.register_collector(Box::new(Pipeline(self.metrics.clone())));
        let registry = std::sync::Arc::new(registry);
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                a = self.listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (metrics, registry) = (self.metrics.clone(), registry.clone());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = answer(req.uri().path(), &metrics, &registry);
                async move { Ok::<_, Infallible>(reply) }
            });
            let stop = stop.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    }
}

fn answer(path: &str, metrics: &Metrics, registry: &Registry) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "cannot encode the metrics".to_owned(),
                ),
            }
        }
        "/health" => judged(health(metrics), "failing"),
        "/ready" => judged(ready(metrics), "not ready"),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "siemfwd serves /metrics, /health and /ready\n".to_owned(),
        ),
    }
}

fn judged(verdict: Result<(), String>, not: &str) -> Response<Full<Bytes>> {
    match verdict {
        Ok(()) => reply(
            StatusCode::OK,
            "application/json",
            serde_json::json!({"status": "ok"}).to_string(),
        ),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            serde_json::json!({"status": not, "why": why}).to_string(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// `/health`: see the module docs.
pub fn health(metrics: &Metrics) -> Result<(), String> {
    let g = metrics.gauges();
    if let Some(since) = g.refused_since_ms() {
        return Err(format!(
            "Log Service has refused the credentials for {} s (a key disabled or rotated, or a \
             RAM policy changed?); the log has its answer; retrying",
            counters::now_ms().saturating_sub(since) / 1000
        ));
    }
    heard_within_timeout(metrics, &g.heartbeat_answered_ms, "answered by")
}

/// The part of `/health` a restart could fix, for the systemd watchdog:
/// Log Service answers the group's heartbeats — accepting them, or
/// refusing the credentials. (A refusal is not in it: a restarted process
/// would stop at start on it, where this one keeps trying and resumes once
/// the credentials are fixed.)
pub fn alive(metrics: &Metrics) -> Result<(), String> {
    heard_within_timeout(metrics, &metrics.gauges().heartbeat_reached_ms, "reached")
}

/// Whether the consumer group (if any) was heard within its timeout;
/// `heard` holds when it last was.
fn heard_within_timeout(
    metrics: &Metrics,
    heard: &std::sync::atomic::AtomicU64,
    how: &str,
) -> Result<(), String> {
    let g = metrics.gauges();
    let timeout = counters::get(&g.heartbeat_timeout_ms);
    if timeout == 0 {
        return Ok(());
    }
    let at = counters::get(heard);
    let now = counters::now_ms();
    if at == 0 {
        return Err(format!("no heartbeat {how} Log Service yet"));
    }
    let silent = now.saturating_sub(at);
    if silent > timeout {
        return Err(format!(
            "no heartbeat {how} Log Service for {} s (the group's timeout is {} s)",
            silent / 1000,
            timeout / 1000
        ));
    }
    Ok(())
}

/// `/ready`: see the module docs.
pub fn ready(metrics: &Metrics) -> Result<(), String> {
    let g = metrics.gauges();
    if counters::get(&g.source_assigned) == 0 {
        return Err(
            "the source has no shards yet (joining its group, or opening files)".to_owned(),
        );
    }
    let down = counters::get(&g.sink_down_since_ms);
    if down != 0 {
        return Err(format!(
            "the SIEM has been unreachable for {} s",
            counters::now_ms().saturating_sub(down) / 1000
        ));
    }
    Ok(())
}

/// The pipeline's atomics as Prometheus metrics.
#[derive(Debug)]
struct Pipeline(Metrics);

impl Collector for Pipeline {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, value) in self.0.snapshot() {
            let help = format!("siemfwd's {name} counter (docs/configuration.md)");
            let mut metric = encoder.encode_descriptor(name, &help, None, MetricType::Counter)?;
            metric.encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
        }
        let g = self.0.gauges();
        let seconds = |ms: u64| if ms == 0 { 0.0 } else { ms as f64 / 1000.0 };
        let gauges: [(&str, &str, f64); 8] = [
            (
                "source_assigned",
                "1 once the source has its shards",
                counters::get(&g.source_assigned) as f64,
            ),
            (
                "heartbeat_answered_timestamp_seconds",
                "when the consumer group last answered a heartbeat (0: no group)",
                seconds(counters::get(&g.heartbeat_answered_ms)),
            ),
            (
                "credentials_refused_since_timestamp_seconds",
                "since when Log Service has refused the credentials it accepted before (0: it accepts them)",
                g.refused_since_ms().map_or(0.0, seconds),
            ),
            (
                "sink_down_since_timestamp_seconds",
                "since when the sink has had no working connection (0: it has one)",
                seconds(counters::get(&g.sink_down_since_ms)),
            ),
            (
                "delivered_timestamp_seconds",
                "when a batch was last delivered",
                seconds(counters::get(&g.delivered_at_ms)),
            ),
            (
                "in_flight_bytes",
                "bytes of messages read and not yet delivered",
                g.in_flight_bytes.load(Ordering::Relaxed) as f64,
            ),
            (
                "in_flight_budget_bytes",
                "pipeline.max_in_flight_bytes",
                counters::get(&g.in_flight_budget) as f64,
            ),
            (
                "healthy",
                "1 while /health answers 200",
                f64::from(u8::from(health(&self.0).is_ok())),
            ),
        ];
        for (name, help, value) in gauges {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            metric.encode_gauge(&value)?;
        }
        // The three ways a record is left out, in one family with Vector's
        // `intentional` label: a rule or policy chose it, or it could not
        // be sent.
        let mut discarded = encoder.encode_descriptor(
            "records_discarded",
            "records not delivered, by reason: filtered by a transform, dropped while the SIEM \
             was away (pipeline.when_blocked = \"drop\"), refused by the formatter",
            None,
            MetricType::Counter,
        )?;
        for (reason, intentional, counter) in [
            ("filtered", "true", &self.0.records_filtered),
            ("when_blocked", "true", &self.0.records_dropped),
            ("refused", "false", &self.0.records_refused),
        ] {
            let labels = [("reason", reason), ("intentional", intentional)];
            discarded
                .encode_family(&labels.to_vec())?
                .encode_counter::<NoLabelSet, u64, u64>(&counters::get(counter), None)?;
        }
        encode_shards(&self.0, &mut encoder)?;
        let mut info =
            encoder.encode_descriptor("build", "siemfwd's version", None, MetricType::Info)?;
        info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}

/// The per-shard series, labelled by what names the shard (`project`,
/// `logstore`, `consumer_group`, `shard`). A shard this process released keeps its counters
/// and `shard_held 0`; its lag and checkpoint age are left out (the process
/// that holds it now reports them), so Prometheus marks them stale.
fn encode_shards(
    metrics: &Metrics,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let shards = metrics.shards();
    if shards.is_empty() {
        return Ok(());
    }
    let now = counters::now_ms();
    type Value = fn(&counters::ShardGauges, u64) -> Option<f64>;
    // A gauge that may be unknown.
    fn known(v: u64) -> Option<f64> {
        (v != counters::UNKNOWN).then_some(v as f64)
    }
    // A time (Unix ms, 0: never) in seconds.
    fn time(ms: u64) -> Option<f64> {
        (ms != 0).then(|| ms as f64 / 1000.0)
    }
    // Name, help, type, value; and whether only shards held now report it
    // (the counters stay; the state of a released shard is another process's).
    let families: [(&str, &str, MetricType, Value, bool); 8] = [
        (
            "shard_held",
            "1 while this process holds the shard",
            MetricType::Gauge,
            |s, _| Some(counters::get(&s.held) as f64),
            false,
        ),
        (
            "shard_records_in",
            "records read from the shard",
            MetricType::Counter,
            |s, _| Some(counters::get(&s.records_in) as f64),
            false,
        ),
        (
            "shard_checkpoints_committed",
            "checkpoints stored for the shard",
            MetricType::Counter,
            |s, _| Some(counters::get(&s.checkpoints_committed) as f64),
            false,
        ),
        (
            "shard_checkpoint_failures",
            "checkpoint commits for the shard that did not get through",
            MetricType::Counter,
            |s, _| Some(counters::get(&s.checkpoint_failures) as f64),
            false,
        ),
        (
            "shard_checkpoint_age_seconds",
            "seconds since the shard's checkpoint last caught up with what was delivered \
             (stored, or found current at a commit)",
            MetricType::Gauge,
            |s, now| {
                let at = counters::get(&s.committed_at_ms);
                (at != 0).then(|| now.saturating_sub(at) as f64 / 1000.0)
            },
            true,
        ),
        (
            "shard_lag_log_groups",
            "log groups between the shard's stored position and its end (source.sls.lag_interval)",
            MetricType::Gauge,
            |s, _| known(counters::get(&s.lag_log_groups)),
            true,
        ),
        (
            "shard_lag_measured_timestamp_seconds",
            "when the shard's lag was last measured (alert when it falls behind)",
            MetricType::Gauge,
            |s, _| time(counters::get(&s.lag_measured_ms)),
            true,
        ),
        (
            "shard_lag_seconds",
            "seconds since the oldest log group after the shard's stored position was received",
            MetricType::Gauge,
            |s, now| s.lag_seconds(now).map(|v| v as f64),
            true,
        ),
    ];
    for (name, help, kind, value, held_only) in families {
        let values: Vec<_> = shards
            .iter()
            .filter(|s| !held_only || counters::get(&s.held) == 1)
            .filter_map(|s| Some((s, value(s, now)?)))
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for (s, v) in values {
            let mut metric = family.encode_family(&s.labels)?;
            match kind {
                MetricType::Counter => metric.encode_counter::<NoLabelSet, f64, u64>(&v, None)?,
                _ => metric.encode_gauge(&v)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_fail_health_but_not_the_watchdog() {
        let m = Metrics::default();
        let g = m.gauges();
        counters::set(&g.heartbeat_timeout_ms, 10_000);
        let now = counters::now_ms();
        // Heartbeats refused for a minute: answered long ago, reached just now.
        counters::set(&g.heartbeat_answered_ms, now - 60_000);
        counters::set(&g.heartbeat_reached_ms, now);
        g.refusal(true);
        let why = health(&m).expect_err("refused");
        assert!(why.contains("refused the credentials"), "{why}");
        assert!(alive(&m).is_ok(), "Log Service answers: no restart");
        g.refusal(false);
        let why = health(&m).expect_err("silent");
        assert!(
            why.contains("no heartbeat answered by Log Service for 60 s"),
            "{why}"
        );
        // Not even refusals come back: a restart may help.
        counters::set(&g.heartbeat_reached_ms, now - 60_000);
        assert!(alive(&m).is_err());
    }
}
