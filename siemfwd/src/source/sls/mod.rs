//! The Alibaba Cloud Log Service (SLS) source: a consumer-group member, as
//! Alibaba's consumer libraries are (protocol notes §5), so any number of
//! siemfwd processes — and Alibaba's own consumers — share a logstore's
//! shards, and a dead one's shards continue elsewhere from its checkpoint.
//!
//! Parts (Vector-style split by role):
//! - [`client`]: HTTP calls, signing ([`sign`]), error classification
//!   ([`error`]);
//! - [`decode`]: lz4/zstd and the borrowing protobuf reader;
//! - [`heartbeat`]: membership and shard assignment;
//! - this file: [`SlsSource`] (the group member, a
//!   [`GroupSource`](crate::source::GroupSource)) and [`SlsShard`] (one
//!   shard's reader, a [`ShardReader`]);
//! - [`lag`]: how far behind a shard is (the lag series, `status`);
//! - [`status`]: `siemfwd status`.
//!
//! Decisions a reader would otherwise undo (see also `docs/architecture.md`):
//! - **Checkpoints are committed with `forceSuccess=false`** and our
//!   consumer name: the server accepts them only while we hold the shard. A
//!   process that lost a shard (paused, timed out, rebalanced) can then never
//!   overwrite a newer checkpoint written by the new owner — with `true`, as
//!   the Python and Go consumers send, it can, and the new owner's progress
//!   is rolled back (duplicates) or, worse, a stale owner's *later* commit of
//!   an older position is accepted after a newer one. A refused commit
//!   (`ConsumerNotMatch`, `ConsumerNotExist`, `ShardNotExist`) means the
//!   shard is someone else's: the reader logs it and ends; nothing crashes.
//! - **InvalidCursor never skips retained data.** The Python consumer jumps
//!   to the *end* (data loss). We restart from the group checkpoint if it is
//!   still valid, else from the oldest retained log group: only data the
//!   server already deleted is missed, and that is logged.
//! - **A pull with data is followed at once by the next pull**, and a shard
//!   that lags keeps several pulls in flight ([`prefetch`]: the next pulls
//!   start at guessed cursors, used only once the server's cursors confirm
//!   them). An empty pull waits `poll_interval` (100ms) before the next while
//!   the shard had data in the last [`QUIET_AFTER`], then backs off doubling
//!   up to `fetch_interval`.
//! - **Rule-based consumption** (`query`, `processor`: the server filters
//!   before sending) follows the rules Alibaba's SDKs learned the hard way:
//!   a pull the rule emptied still moves the cursor and is followed at once
//!   (a shard is caught up only when the next cursor is the cursor, else a
//!   shard whose logs are nearly all filtered out would wait after every
//!   pull); pulls are sized on what the server scanned (`x-log-rawdata*`),
//!   not on what it returned; nothing is pulled ahead (the answers carry no
//!   per-group cursors to guess from); positions stay pull boundaries.
//! - **Read-only shards** (after split/merge) end when a pull at the shard's
//!   end cursor returns nothing: the reader commits that end cursor (which
//!   tells the server the shard is finished, §5.2a) and ends.
//! - A pull is one unit for the server (a cursor per log-group list), but
//!   the pipeline may cut a batch in the middle of it. Such a batch's
//!   position is the cursor the pull *started* at: committing it can repeat
//!   part of the pull after a failover, never skip it.

pub mod config;
pub(crate) mod credentials;
pub(crate) mod decode;
mod explain;
pub(crate) mod heartbeat;
pub mod lag;
pub(crate) mod prefetch;
pub mod status;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::counters::{self, Metrics};
use crate::pipeline::tracker::Checkpoint;
use crate::record::Record;
use crate::source::{self, BatchEnd, Flow, GroupSource, ShardReader};
use config::{AuthVersion, SlsSourceConfig, StartPosition};

pub use explain::explain;
/// The HTTP API, from the `sls-client` crate: siemfwd's consumer group is
/// built on it, its types are this source's.
use sls_client as client;
pub use sls_client::{Class, Client, Compression, Cursor, Error, ShardId};

/// The runtime settings, built and checked once from [`SlsSourceConfig`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Project (for messages).
    pub project: String,
    /// Logstore (for messages).
    pub logstore: String,
    /// Consumer group.
    pub group: String,
    /// This process's consumer name.
    pub consumer: String,
    /// Create the group when missing.
    pub create_group: bool,
    /// The group's `order` flag.
    pub in_order: bool,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// The group's timeout.
    pub heartbeat_timeout: Duration,
    /// Longest idle wait between pulls.
    pub fetch_interval: Duration,
    /// Idle wait between pulls of a shard that had data recently.
    pub poll_interval: Duration,
    /// How often a held shard's lag is measured (`None`: never).
    pub lag_interval: Option<Duration>,
    /// Most PullLogs `count`.
    pub max_fetch_log_groups: u32,
    /// Decompressed bytes a pull aims at (the `count` adapts to it).
    pub fetch_bytes: usize,
    /// The budget of pulls ahead shared by every shard.
    pub prefetch_bytes: u64,
    /// GetCursor `from` for shards without a checkpoint.
    pub start_from: String,
    /// PullLogs compression.
    pub compression: Compression,
    /// Rule-based consumption (`query` or `processor`), if configured.
    pub rule: Option<client::Rule>,
    /// Write `__project__` and `__logstore__` into every record and name
    /// shards by logstore: this is one of several logstores read by one
    /// process (`source.sls.logstores`).
    pub one_of_several: bool,
}

/// The longest wait between two attempts at a Log Service request.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// The wait before retry `attempt` of a Log Service request, from `base`
/// (the program's one backoff rule, `crate::backoff`).
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    crate::backoff::delay(base, MAX_RETRY_WAIT, attempt)
}

/// Log Service's naming rules for projects and logstores (3–63 characters,
/// lower-case letters, digits and hyphens — logstores also underscores —
/// beginning and ending with a letter or digit): a name outside them can
/// only fail, or, on a lenient server, name something else (an upper-case
/// project). Consumer group and consumer names go into request paths and
/// JSON bodies: printable ASCII without spaces, `/`, `?`, `#` or `%`, at most
/// 128 characters.
fn check_names(cfg: &SlsSourceConfig) -> Result<(), Error> {
    let sls_name = |key: &str, value: &str, extra: &[u8], allowed: &str| {
        let v = value.trim();
        let ok_char =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || extra.contains(&b);
        let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let bytes = v.as_bytes();
        if (3..=63).contains(&bytes.len())
            && bytes.iter().all(|&b| ok_char(b))
            && edge(bytes.first())
            && edge(bytes.last())
        {
            Ok(())
        } else {
            Err(config_error(
                key,
                format!(
                    "{v:?} is not a valid name: 3 to 63 characters, {allowed}, beginning and \
                     ending with a lower-case letter or digit"
                ),
            ))
        }
    };
    sls_name(
        "project",
        &cfg.project,
        b"",
        "lower-case letters, digits and '-'",
    )?;
    sls_name(
        "logstore",
        &cfg.logstore,
        b"_",
        "lower-case letters, digits, '-' and '_'",
    )?;
    for (key, value) in [
        ("consumer_group", cfg.consumer_group.trim()),
        ("consumer_name", cfg.consumer_name.trim()),
    ] {
        let bad = value
            .bytes()
            .find(|&b| !b.is_ascii_graphic() || matches!(b, b'/' | b'?' | b'#' | b'%'));
        if value.len() > 128 || bad.is_some() {
            return Err(config_error(
                key,
                format!(
                    "{value:?} is not a valid name: at most 128 printable ASCII characters \
                     without spaces, '/', '?', '#' or '%'"
                ),
            ));
        }
    }
    Ok(())
}

fn config_error(key: &str, problem: impl Into<String>) -> Error {
    Error::Config {
        key: format!("source.sls.{key}"),
        problem: problem.into(),
    }
}

/// `{hostname}-{pid}`: unique per process, readable in `siemfwd status`.
pub fn default_consumer_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{host}-{}", std::process::id())
}

/// Check the settings and build the client (no request is made).
///
/// # Errors
/// [`Error::Config`] naming the key.
pub fn build(cfg: &SlsSourceConfig) -> Result<(Client, Settings), Error> {
    let required = [
        ("endpoint", &cfg.endpoint, "SLS_ENDPOINT"),
        ("project", &cfg.project, "SLS_PROJECT"),
        ("logstore", &cfg.logstore, "SLS_LOGSTORE"),
        ("consumer_group", &cfg.consumer_group, "SLS_CG"),
    ];
    for (key, value, var) in required {
        if value.trim().is_empty() {
            return Err(config_error(key, format!("required (or set {var})")));
        }
    }
    let credentials = credentials::source(cfg, &|name| std::env::var(name).ok())?;
    check_names(cfg)?;
    if !(1..=1000).contains(&cfg.max_fetch_log_groups) {
        return Err(config_error("max_fetch_log_groups", "must be 1 to 1000"));
    }
    if cfg.fetch_bytes.0 < 1024 {
        return Err(config_error("fetch_bytes", "must be at least 1KiB"));
    }
    let interval = cfg.heartbeat_interval.0;
    if interval < Duration::from_millis(100) {
        return Err(config_error("heartbeat_interval", "must be at least 100ms"));
    }
    let timeout = cfg.heartbeat_timeout.map_or(interval * 2, |t| t.0);
    if timeout <= interval || timeout < Duration::from_secs(1) {
        return Err(config_error(
            "heartbeat_timeout",
            "must be longer than heartbeat_interval and at least 1s",
        ));
    }
    if cfg.request_timeout.0 < Duration::from_secs(1) {
        return Err(config_error(
            "request_timeout",
            "must be at least 1s: a PullLogs answer of a few MB over the internet takes longer",
        ));
    }
    if cfg.fetch_interval.0 < Duration::from_millis(10) {
        return Err(config_error("fetch_interval", "must be at least 10ms"));
    }
    if cfg.poll_interval.0 < Duration::from_millis(10) || cfg.poll_interval.0 > cfg.fetch_interval.0
    {
        return Err(config_error(
            "poll_interval",
            "must be at least 10ms and at most fetch_interval",
        ));
    }
    if !cfg.lag_interval.0.is_zero() && cfg.lag_interval.0 < Duration::from_secs(1) {
        // One or two requests per shard each time.
        return Err(config_error(
            "lag_interval",
            "must be at least 1s (or 0s: never measure the lag)",
        ));
    }
    if cfg.start_position != StartPosition::Time && !cfg.start_time.trim().is_empty() {
        return Err(config_error(
            "start_time",
            "is read only with start_position = \"time\"; set that, or remove start_time",
        ));
    }
    let start_from = match cfg.start_position {
        StartPosition::Begin => "begin".to_owned(),
        StartPosition::End => "end".to_owned(),
        StartPosition::Time => parse_start_time(&cfg.start_time)?.to_string(),
    };
    let consumer = if cfg.consumer_name.trim().is_empty() {
        default_consumer_name()
    } else {
        cfg.consumer_name.trim().to_owned()
    };
    let endpoint = client::Endpoint::parse(&cfg.endpoint).map_err(explain::keyed)?;
    let auth = match cfg.auth_version {
        AuthVersion::V1 => client::Auth::V1,
        AuthVersion::V4 if cfg.region.trim().is_empty() => {
            return Err(config_error(
                "region",
                "required with auth_version = \"v4\" (e.g. \"cn-hangzhou\")",
            ))
        }
        AuthVersion::V4 => client::Auth::V4 {
            region: cfg.region.trim().to_owned(),
        },
    };
    let client = Client::new(client::ClientConfig {
        endpoint,
        project: cfg.project.clone(),
        logstore: cfg.logstore.clone(),
        credentials,
        auth,
        user_agent: format!(
            "siemfwd/{}-consumergroup-{}-{consumer}",
            env!("CARGO_PKG_VERSION"),
            cfg.consumer_group
        ),
        request_timeout: cfg.request_timeout.0,
        pool_max_idle: cfg.pool_max_idle,
        retry_delay: |attempt| backoff(Duration::from_millis(200), attempt),
    })
    .map_err(explain::keyed)?;
    let rule = match (cfg.query.trim(), cfg.processor.trim()) {
        ("", "") => None,
        (query, "") => Some(client::Rule::Query(query.to_owned())),
        ("", processor) => Some(client::Rule::Processor(processor.to_owned())),
        _ => {
            return Err(Error::Config {
                key: "source.sls.processor".to_owned(),
                problem: "a consume processor and a query cannot both apply: keep one \
                          (source.sls.query or source.sls.processor)"
                    .to_owned(),
            })
        }
    };
    let settings = Settings {
        project: cfg.project.clone(),
        logstore: cfg.logstore.clone(),
        group: cfg.consumer_group.clone(),
        consumer,
        create_group: cfg.create_group,
        in_order: cfg.in_order,
        heartbeat_interval: interval,
        heartbeat_timeout: timeout,
        fetch_interval: cfg.fetch_interval.0,
        poll_interval: cfg.poll_interval.0,
        lag_interval: (!cfg.lag_interval.0.is_zero()).then_some(cfg.lag_interval.0),
        max_fetch_log_groups: cfg.max_fetch_log_groups,
        fetch_bytes: usize::try_from(cfg.fetch_bytes.0).unwrap_or(usize::MAX),
        prefetch_bytes: cfg.prefetch_bytes.0,
        start_from,
        compression: cfg.compression,
        rule,
        one_of_several: false,
    };
    Ok((client, settings))
}

fn parse_start_time(s: &str) -> Result<i64, Error> {
    let s = s.trim();
    if s.is_empty() {
        return Err(config_error(
            "start_time",
            "required with start_position = \"time\" (RFC 3339 or Unix seconds)",
        ));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| {
            config_error(
                "start_time",
                format!("{s:?} is not an RFC 3339 time or Unix seconds ({e})"),
            )
        })
}

/// The consumer-group member. See the module docs.
#[derive(Debug)]
pub struct SlsSource {
    client: Client,
    settings: Arc<Settings>,
    /// Pulls ahead, shared by every shard of this process.
    prefetch: prefetch::Budget,
    held: heartbeat::Held,
    rx: Option<watch::Receiver<heartbeat::Assignment>>,
    stop_heartbeat: CancellationToken,
    /// Handed to every shard reader.
    metrics: Metrics,
    /// Set once a shard reader's request succeeded: from then on, a
    /// refusal of the credentials means they changed (see [`Refused`]).
    reads_worked: Arc<AtomicBool>,
}

impl SlsSource {
    /// Check the settings and build the client; no request yet.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn build(cfg: &SlsSourceConfig, metrics: &Metrics) -> Result<Self, Error> {
        let (client, settings) = build(cfg)?;
        let prefetch = prefetch::Budget::new(settings.prefetch_bytes);
        Ok(Self::with(client, settings, prefetch, metrics))
    }

    /// One source per entry of `cfg.logstores`, sharing one budget of pulls
    /// ahead (the first entry's `prefetch_bytes`, as every entry inherits
    /// the table's), each writing where its records came from into them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the entry's key.
    pub fn build_several(cfg: &SlsSourceConfig, metrics: &Metrics) -> Result<Vec<Self>, Error> {
        let budget = cfg
            .logstores
            .first()
            .map_or(cfg.prefetch_bytes.0, |e| e.prefetch_bytes.0);
        let prefetch = prefetch::Budget::new(budget);
        let mut seen = BTreeSet::new();
        let mut sources = Vec::with_capacity(cfg.logstores.len());
        for (i, entry) in cfg.logstores.iter().enumerate() {
            let in_entry = |e: Error| match e {
                Error::Config { key, problem } => Error::Config {
                    key: key.replacen("source.sls.", &format!("source.sls.logstores[{i}]."), 1),
                    problem,
                },
                other => other,
            };
            if !entry.logstores.is_empty() {
                return Err(in_entry(config_error(
                    "logstores",
                    "an entry of logstores cannot list logstores itself",
                )));
            }
            let (client, mut settings) = build(entry).map_err(in_entry)?;
            // The endpoint as requests reach it (`https://x` and `x` are one).
            let stream = (
                client.config().endpoint.base(&settings.project).0,
                settings.project.clone(),
                settings.logstore.clone(),
                settings.group.clone(),
            );
            if !seen.insert(stream) {
                return Err(in_entry(config_error(
                    "logstore",
                    format!(
                        "{}/{} with consumer group {} is listed twice",
                        settings.project, settings.logstore, settings.group
                    ),
                )));
            }
            settings.one_of_several = true;
            sources.push(Self::with(client, settings, prefetch.clone(), metrics));
        }
        Ok(sources)
    }

    fn with(
        client: Client,
        settings: Settings,
        prefetch: prefetch::Budget,
        metrics: &Metrics,
    ) -> Self {
        let counted = metrics.clone();
        let client = client.on_retry(client::RetryHook::new(move || {
            counters::add(&counted.sls_request_retries, 1);
        }));
        Self {
            metrics: metrics.clone(),
            client,
            prefetch,
            settings: Arc::new(settings),
            held: Arc::default(),
            rx: None,
            stop_heartbeat: CancellationToken::new(),
            reads_worked: Arc::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn fatal(&self, e: Error) -> Error {
        explain(
            e,
            &self.settings.project,
            &self.settings.logstore,
            &self.settings.group,
        )
    }

    /// Make sure the group exists with our timeout and order (create or
    /// update it, or refuse if `create_group = false`). Retries retryable
    /// failures a few times; fatal ones come back explained.
    async fn ensure_group(&self) -> Result<(), Error> {
        let s = &self.settings;
        let timeout = s.heartbeat_timeout.as_secs().max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.ensure_group_once(timeout).await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) if e.class() == Class::Fatal || attempt >= 5 => return Err(self.fatal(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot set up the consumer group yet; retrying");
                    tokio::time::sleep(backoff(Duration::from_millis(500), attempt)).await;
                }
            }
        }
    }

    async fn ensure_group_once(&self, timeout: u64) -> Result<(), Error> {
        let s = &self.settings;
        let groups = self.client.list_groups().await?;
        match groups.iter().find(|g| g.name == s.group) {
            Some(g) if g.timeout == timeout && g.order == s.in_order => Ok(()),
            Some(g) => {
                tracing::info!(
                    group = %s.group, old_timeout = g.timeout, timeout, order = s.in_order,
                    "updating the consumer group's timeout/order"
                );
                self.client
                    .update_group(&s.group, timeout, s.in_order)
                    .await
            }
            None if !s.create_group => Err(Error::Fatal(format!(
                "consumer group \"{}\" does not exist in logstore \"{}\" and \
                 source.sls.create_group = false: create it, or set create_group = true",
                s.group, s.logstore
            ))),
            None => match self
                .client
                .create_group(&s.group, timeout, s.in_order)
                .await
            {
                Ok(()) => {
                    tracing::info!(group = %s.group, timeout, "created the consumer group");
                    Ok(())
                }
                // Another process created it between our list and create.
                Err(e) if e.code() == Some("ConsumerGroupAlreadyExist") => Ok(()),
                Err(e) => Err(e),
            },
        }
    }
}

impl GroupSource for SlsSource {
    type Reader = SlsShard;

    async fn join(&mut self) -> Result<(), source::Error> {
        self.ensure_group().await?;
        let (tx, rx) = watch::channel(heartbeat::Assignment::default());
        // Mark the initial (empty) value as seen: only real answers count.
        let mut rx = rx;
        rx.mark_unchanged();
        self.rx = Some(rx);
        tracing::info!(
            group = %self.settings.group,
            consumer = %self.settings.consumer,
            "joined the consumer group"
        );
        counters::set(
            &self.metrics.gauges().heartbeat_timeout_ms,
            u64::try_from(self.settings.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        tokio::spawn(heartbeat::run(
            self.client.clone(),
            self.settings.clone(),
            self.held.clone(),
            tx,
            self.stop_heartbeat.clone(),
            self.metrics.clone(),
        ));
        Ok(())
    }

    async fn assignment(&mut self) -> Result<Vec<u32>, source::Error> {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        if rx.changed().await.is_err() {
            // The loop ended without a fatal error (cancelled): nothing more.
            return std::future::pending().await;
        }
        let a = rx.borrow_and_update().clone();
        if let Some(line) = a.fatal {
            return Err(Error::Fatal(line).into());
        }
        Ok(a.shards.iter().map(|s| s.0).collect())
    }

    fn set_held(&self, held: &[u32]) {
        if let Ok(mut h) = self.held.lock() {
            *h = held.iter().copied().map(ShardId).collect::<BTreeSet<_>>();
        }
    }

    async fn open(&self, shard: u32) -> Result<SlsShard, source::Error> {
        Ok(SlsShard::new(
            self.client.clone(),
            self.settings.clone(),
            ShardId(shard),
            self.prefetch.share(),
            self.metrics.clone(),
            self.reads_worked.clone(),
        ))
    }

    async fn leave(&mut self) {
        self.stop_heartbeat.cancel();
        if self.rx.is_some() {
            heartbeat::leave(&self.client, &self.settings).await;
        }
    }
}

/// A part of the source — a group's heartbeat loop, a shard's reader — that
/// Log Service may refuse credentials it accepted before (a key disabled,
/// rotated or stripped of a policy outside the process). Such a refusal is
/// retried, not fatal: it is fixed outside, and a restart would only stop at
/// start on it. While refused the part counts itself, once, into the gauges
/// `/health` reports; it takes itself out when the credentials work again
/// or when it ends.
#[derive(Debug)]
pub(crate) struct Refused {
    metrics: Metrics,
    now: bool,
}

impl Refused {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            metrics: metrics.clone(),
            now: false,
        }
    }

    /// The part's latest outcome: refused or not.
    pub(crate) fn set(&mut self, refused: bool) {
        if refused == self.now {
            return;
        }
        self.now = refused;
        self.metrics.gauges().refusal(refused);
    }
}

impl Drop for Refused {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// How a checkpoint commit ended.
#[derive(Debug)]
enum Stored {
    /// The server has it.
    Saved(Cursor),
    /// The server refused it: the shard now belongs to another consumer.
    NotOurs,
    /// A fatal error (credentials, a deleted logstore, …).
    Fatal(Error),
    /// Retryable failures three times; the next commit carries the position.
    NotNow,
    /// The credentials refused (after reads worked: they changed, or the
    /// RAM policy does not allow UpdateCheckPoint); the next commit tries
    /// again.
    Refused(Error),
}

/// UpdateCheckPoint with `forceSuccess=false`, tried three times.
async fn store_checkpoint(
    client: Client,
    settings: Arc<Settings>,
    shard: ShardId,
    cursor: Cursor,
) -> Stored {
    let s = &settings;
    for attempt in 1..=3 {
        match client
            .update_checkpoint(&s.group, &s.consumer, shard, &cursor, false)
            .await
        {
            Ok(()) => {
                tracing::debug!(%shard, %cursor, "checkpoint committed");
                return Stored::Saved(cursor);
            }
            Err(e) if e.code().is_some_and(|c| NOT_OURS.contains(&c)) => {
                tracing::warn!(%shard, error = %e,
                    "the server refused the checkpoint: the shard now belongs to another \
                     consumer; dropping it (records since the last checkpoint may be sent twice)");
                return Stored::NotOurs;
            }
            // A commit follows a successful read: a refusal now means the
            // credentials changed ([`Refused`]); the next commit tries again.
            Err(e) if e.class() == Class::Fatal && !e.refuses_credentials() => {
                return Stored::Fatal(e)
            }
            Err(e) if e.refuses_credentials() => return Stored::Refused(e),
            Err(e) => {
                tracing::warn!(%shard, error = %e, attempt, "checkpoint commit failed");
                tokio::time::sleep(backoff(Duration::from_millis(200), attempt)).await;
            }
        }
    }
    tracing::warn!(%shard, "checkpoint not saved this time; the next commit will carry it");
    Stored::NotNow
}

/// A pull whose records are being visited.
#[derive(Debug)]
struct Pending {
    /// The cursor the pull started at.
    start: Cursor,
    /// The cursor after it.
    next: Cursor,
    /// Where the visit goes on.
    resume: decode::Resume,
}

/// How often an idle shard checks whether it became read-only (split or
/// merge) and is at its end: one ListShards per idle shard per period.
const READONLY_RECHECK: Duration = Duration::from_secs(5);

/// Error codes of UpdateCheckPoint that mean "this shard is not yours".
const NOT_OURS: &[&str] = &[
    "ConsumerNotMatch",
    "ConsumerNotExist",
    "ShardNotExist",
    "ShardNotExsit",
];

/// One shard's reader: pulls log groups from its cursor and visits their
/// logs as borrowed records.
#[derive(Debug)]
pub struct SlsShard {
    client: Client,
    settings: Arc<Settings>,
    shard: ShardId,
    name: String,
    /// The next cursor to pull; `None` until the start position is known.
    cursor: Option<Cursor>,
    /// The decompressed body of the current pull (reused).
    buf: Vec<u8>,
    /// PullLogs `count` of the next pull, adapted to `fetch_bytes`.
    count: u32,
    pending: Option<Pending>,
    empty_pulls: u32,
    failures: u32,
    last_committed: Option<Cursor>,
    /// The server refused our commit: the shard is someone else's.
    lost: bool,
    /// A read-only shard was read to its end; ends after one empty batch
    /// carrying the end cursor (so it gets committed).
    finished: bool,
    readonly_checked: Option<Instant>,
    /// PullLogs in progress (or answered, not yet looked at), in cursor
    /// order: the first starts at `cursor`, the others (while the shard
    /// lags) at guessed cursors ([`prefetch`]).
    pulls: VecDeque<InFlight>,
    /// How many pulls to keep in flight.
    depth: prefetch::Depth,
    /// This shard's claim on the budget of pulls ahead.
    share: prefetch::Share,
    /// Where records read and pulls ahead are counted.
    metrics: Metrics,
    /// When a pull last brought data (or the shard was opened).
    last_data: Instant,
    /// Empty pulls since the shard went quiet ([`QUIET_AFTER`]).
    quiet_pulls: u32,
    /// When the reader first asked for the answer it waits for now.
    asked: Option<Instant>,
    /// When the reader took the last answer.
    last_taken: Option<Instant>,
    /// The checkpoint commit in progress, if any.
    committing: Option<tokio::task::JoinHandle<Stored>>,
    /// The next pull goes no earlier than this (an idle wait or a backoff
    /// in progress).
    not_before: Option<Instant>,
    /// When the last answered pull was sent.
    last_pull_sent: Option<Instant>,
    /// Pulls ahead in a row that were of no use (did not line up, failed).
    ahead_misses: u32,
    /// No pulls ahead before this (after [`AHEAD_MISSES`] misses in a row).
    ahead_paused_until: Option<Instant>,
    /// This shard's series in `/metrics`.
    series: Arc<counters::ShardGauges>,
    /// The position last stored (or started from), for [`lag::watch`].
    stored: tokio::sync::watch::Sender<Option<Cursor>>,
    /// The [`lag::watch`] task, aborted with the reader.
    _lag: Option<tokio_util::task::AbortOnDropHandle<()>>,
    /// Whether Log Service refuses this reader's credentials now: for its
    /// reads, and for its checkpoint commits (which a RAM policy may allow
    /// apart).
    refused: Refused,
    /// See `refused`.
    commit_refused: Refused,
    /// The source's: whether a reader's request ever succeeded.
    reads_worked: Arc<AtomicBool>,
}

/// Pulls ahead in a row that may go unused before a shard stops pulling
/// ahead for a while (backing off from 10 s): a server whose cursors do not
/// have the documented shape, or that keeps refusing the guesses, costs a
/// few requests, not a stream of them.
const AHEAD_MISSES: u32 = 3;

/// A PullLogs request running as its own task.
#[derive(Debug)]
struct InFlight {
    /// The cursor it starts at.
    start: Cursor,
    /// The `count` it asked for.
    count: u32,
    /// Its start was guessed, not given by the server: it is used only if
    /// the answer before it ends there, and its errors mean nothing.
    guessed: bool,
    /// When it was sent.
    sent: Instant,
    /// The request as a task; it answers with the time its answer came.
    task: tokio::task::JoinHandle<(Instant, Result<client::Pulled, Error>)>,
    /// The bytes of the prefetch budget a guessed pull holds.
    _lease: Option<prefetch::Lease>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Finished or not, nobody will look at it any more.
        self.task.abort();
    }
}

/// How long a shard without new data keeps being pulled every
/// `poll_interval` before the wait backs off towards `fetch_interval`.
pub const QUIET_AFTER: Duration = Duration::from_secs(30);

/// The wait before pulling again after an empty pull: `poll` while the
/// shard had data within [`QUIET_AFTER`], then doubling per further empty
/// pull up to `max`.
fn idle_wait(poll: Duration, max: Duration, quiet: Duration, quiet_pulls: u32) -> Duration {
    if quiet < QUIET_AFTER {
        return poll.min(max);
    }
    poll.saturating_mul(1 << quiet_pulls.min(16)).min(max)
}

impl Drop for SlsShard {
    fn drop(&mut self) {
        // Counted as unused; dropping them aborts their requests.
        self.drop_pulls();
        counters::set(&self.series.held, 0);
    }
}

/// PullLogs `count` of a shard's first pull, before its group size is
/// known: small, so 16 shards starting at once do not each decompress up to
/// 1000 log groups.
const FIRST_PULL_GROUPS: u32 = 10;

/// The `count` for the next pull: as many log groups as fit in `target`
/// decompressed bytes at the last pull's average group size, 1 to `max`.
///
/// PullLogs has no byte limit, only `count` (1–1000), and log groups range
/// from one log to thousands: a fixed count is either tiny pulls (slow
/// shards) or, × the shard count, hundreds of MB. Memory per shard is
/// about one decompressed pull plus the next compressed one.
fn pull_count(raw_size: usize, groups: u64, target: usize, max: u32) -> u32 {
    let groups = usize::try_from(groups).unwrap_or(usize::MAX).max(1);
    let per_group = (raw_size / groups).max(1);
    u32::try_from(target / per_group)
        .unwrap_or(u32::MAX)
        .clamp(1, max.max(1))
}

impl SlsShard {
    fn new(
        client: Client,
        settings: Arc<Settings>,
        shard: ShardId,
        share: prefetch::Share,
        metrics: Metrics,
        reads_worked: Arc<AtomicBool>,
    ) -> Self {
        let count = settings.max_fetch_log_groups.min(FIRST_PULL_GROUPS);
        let name = if settings.one_of_several {
            format!("{}/{} shard {shard}", settings.project, settings.logstore)
        } else {
            format!("shard {shard}")
        };
        let series = metrics.shard(vec![
            ("project", settings.project.clone()),
            ("logstore", settings.logstore.clone()),
            ("consumer_group", settings.group.clone()),
            ("shard", shard.to_string()),
        ]);
        // Held again after a while: what was measured before is not news.
        counters::set(&series.lag_log_groups, counters::UNKNOWN);
        counters::set(&series.lag_oldest_ms, counters::UNKNOWN);
        counters::set(&series.committed_at_ms, 0);
        counters::set(&series.lag_measured_ms, 0);
        counters::set(&series.held, 1);
        let (stored, position) = tokio::sync::watch::channel(None);
        let lag = settings.lag_interval.map(|every| {
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(lag::watch(
                client.clone(),
                shard,
                series.clone(),
                position,
                every,
            )))
        });
        Self {
            refused: Refused::new(&metrics),
            commit_refused: Refused::new(&metrics),
            reads_worked,
            series,
            stored,
            _lag: lag,
            metrics,
            client,
            settings,
            shard,
            name,
            cursor: None,
            buf: Vec::new(),
            count,
            pending: None,
            empty_pulls: 0,
            failures: 0,
            last_committed: None,
            lost: false,
            finished: false,
            readonly_checked: None,
            pulls: VecDeque::new(),
            depth: prefetch::Depth::default(),
            share,
            last_data: Instant::now(),
            quiet_pulls: 0,
            asked: None,
            last_taken: None,
            committing: None,
            not_before: None,
            last_pull_sent: None,
            ahead_misses: 0,
            ahead_paused_until: None,
        }
    }

    /// The most one pull may bring decompressed: what the pull size asks
    /// for, with room for groups that grew (8 × `fetch_bytes`), and never
    /// less than one log group of the largest size Log Service accepts. A
    /// larger answer is refused before anything is allocated for it, and
    /// the next pull asks for fewer groups.
    fn pull_limit(&self) -> usize {
        self.pull_target()
            .saturating_mul(8)
            .max(client::MAX_LOG_GROUP)
    }

    /// Decompressed bytes the next pull aims at: `fetch_bytes`, larger while
    /// a far-away shard lags ([`prefetch::Depth::scale`]).
    fn pull_target(&self) -> usize {
        self.settings
            .fetch_bytes
            .saturating_mul(self.depth.scale() as usize)
    }

    /// Start a pull at `start` (behind the ones in flight); `guess` is the
    /// lease of a pull at a guessed cursor and the bytes it is expected to
    /// bring.
    fn spawn_pull(&mut self, start: Cursor, guess: Option<(prefetch::Lease, u64)>) {
        let client = self.client.clone();
        let (shard, count, compression) = (self.shard, self.count, self.settings.compression);
        // A guessed pull may bring about what its lease holds: one that
        // would bring far more is refused, and pulled again as a head pull.
        let max_raw = match &guess {
            Some((_, expected)) => usize::try_from(expected.saturating_mul(2))
                .unwrap_or(usize::MAX)
                .max(64 << 10)
                .min(self.pull_limit()),
            None => self.pull_limit(),
        };
        let guessed = guess.is_some();
        let lease = guess.map(|(lease, _)| lease);
        let c = start.clone();
        let settings = Arc::clone(&self.settings);
        let task = tokio::spawn(async move {
            let r = client
                .pull_logs(
                    shard,
                    &c,
                    count,
                    compression,
                    max_raw,
                    settings.rule.as_ref(),
                )
                .await;
            (Instant::now(), r)
        });
        if guessed {
            counters::add(&self.metrics.sls_pulls_ahead, 1);
        }
        self.pulls.push_back(InFlight {
            start,
            count,
            guessed,
            sent: Instant::now(),
            task,
            _lease: lease,
        });
    }

    /// Abandon every pull in flight.
    fn drop_pulls(&mut self) {
        let unused = self.pulls.iter().filter(|p| p.guessed).count();
        counters::add(&self.metrics.sls_pulls_ahead_unused, unused as u64);
        self.pulls.clear();
    }

    /// Stop pulling ahead: abandon every pull in flight, back to one pull
    /// of the base size.
    fn stop_pulling_ahead(&mut self) {
        self.drop_pulls();
        self.count = (self.count / self.depth.scale()).max(1);
        self.depth.reset();
        self.share.want(false);
    }

    /// A pull ahead was of no use; after [`AHEAD_MISSES`] in a row, none for
    /// a while.
    fn ahead_missed(&mut self) {
        self.ahead_misses = self.ahead_misses.saturating_add(1);
        if self.ahead_misses >= AHEAD_MISSES {
            let pause = backoff(
                Duration::from_secs(10),
                self.ahead_misses - AHEAD_MISSES + 1,
            );
            tracing::debug!(shard = %self.shard, ?pause, "pulls ahead keep missing; pausing them");
            self.ahead_paused_until = Some(Instant::now() + pause);
        }
    }

    /// After an answer with data that ends at `next`: keep the pulls in
    /// flight that continue from there, and start more up to the depth,
    /// each expected to bring `expected` decompressed bytes.
    fn pull_ahead(&mut self, next: &Cursor, lagging: bool, expected: u64) {
        if self
            .pulls
            .front()
            .is_some_and(|f| !f.start.same_position(next))
        {
            // The answer ended elsewhere than guessed (short, or cursors of
            // another shape): what was pulled behind it is of no use.
            tracing::debug!(shard = %self.shard, "pulls ahead did not line up; pulling from the server's cursor");
            self.drop_pulls();
            self.ahead_missed();
        }
        if self.pulls.is_empty() {
            self.spawn_pull(next.clone(), None);
        }
        if !lagging || self.ahead_paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        while self.pulls.len() < self.depth.pulls() {
            let Some(start) = self.pulls.back().and_then(|l| l.start.plus(l.count)) else {
                break;
            };
            let Some(lease) = self.share.try_lease(expected) else {
                break;
            };
            self.spawn_pull(start, Some((lease, expected)));
        }
    }

    /// Count what a pull with a rule scanned, returned and failed on.
    fn count_scanned(&self, p: &client::Pulled) {
        if let Some(s) = p.scanned {
            counters::add(&self.metrics.sls_scanned_lines, s.lines);
            counters::add(&self.metrics.sls_returned_lines, s.result_lines);
            counters::add(&self.metrics.sls_failed_lines, s.failed_lines);
        }
    }

    /// Whether `e` ends this reader (and the process): a fatal error, unless
    /// it is the credentials refused after a reader's request succeeded —
    /// then they changed outside the process, and the reader backs off and
    /// retries ([`Refused`]). Refused before any read worked (a RAM policy
    /// without PullLogs), it is the configuration, and fatal.
    fn ends(&self, e: &Error) -> bool {
        e.class() == Class::Fatal
            && !(e.refuses_credentials() && self.reads_worked.load(Ordering::Relaxed))
    }

    /// A pull succeeded (`Some(false)`), or was refused for its credentials
    /// (`Some(true)`), or failed otherwise (`None`: says nothing).
    fn credentials_worked(&mut self, refused: Option<bool>) {
        match refused {
            Some(false) => {
                self.refused.set(false);
                self.reads_worked.store(true, Ordering::Relaxed);
            }
            Some(true) => self.refused.set(true),
            None => {}
        }
    }

    fn fatal(&self, e: Error) -> source::Error {
        let s = &self.settings;
        explain(e, &s.project, &s.logstore, &s.group).into()
    }

    /// When the next pull may start: after a backoff from now after
    /// failures; after an empty pull, the idle wait from the *start* of that
    /// pull (so a shard far away is not polled once per round trip plus
    /// the wait: 100 ms away, pulls go back to back); else now.
    fn next_pull_at(&self) -> Instant {
        let now = Instant::now();
        if self.failures > 0 {
            now + backoff(Duration::from_millis(500), self.failures)
        } else if self.empty_pulls > 0 {
            // `quiet_pulls` counts this empty pull already: the first wait
            // once quiet is one `poll_interval`.
            let wait = idle_wait(
                self.settings.poll_interval,
                self.settings.fetch_interval,
                self.last_data.elapsed(),
                self.quiet_pulls.saturating_sub(1),
            );
            self.last_pull_sent.map_or(now, |t| t + wait)
        } else {
            now
        }
    }

    /// Take in the outcome of the commit in progress: wait for it, or only
    /// look whether it has ended (`wait = false`).
    async fn settle_commit(&mut self, wait: bool) -> Result<(), source::Error> {
        let Some(task) = self.committing.as_mut() else {
            return Ok(());
        };
        if !wait && !task.is_finished() {
            return Ok(());
        }
        let outcome = task.await;
        self.committing = None;
        match outcome {
            Ok(Stored::Saved(c)) => {
                self.commit_refused.set(false);
                counters::add(&self.metrics.sls_checkpoints_committed, 1);
                counters::add(&self.series.checkpoints_committed, 1);
                counters::set(&self.series.committed_at_ms, counters::now_ms());
                self.stored.send_replace(Some(c.clone()));
                self.last_committed = Some(c);
            }
            Ok(Stored::NotOurs) => self.lost = true,
            Ok(Stored::Fatal(e)) => return Err(self.fatal(e)),
            Ok(Stored::NotNow) => {
                counters::add(&self.metrics.sls_checkpoint_failures, 1);
                counters::add(&self.series.checkpoint_failures, 1);
            }
            Ok(Stored::Refused(e)) => {
                counters::add(&self.metrics.sls_checkpoint_failures, 1);
                counters::add(&self.series.checkpoint_failures, 1);
                if !self.commit_refused.now {
                    tracing::warn!(shard = %self.shard, error = %e,
                        "checkpoint commit refused for the credentials (does the RAM policy \
                         allow log:ConsumerGroupUpdateCheckPoint?); retrying with the next commit");
                }
                self.commit_refused.set(true);
            }
            Err(e) => {
                tracing::warn!(shard = %self.shard, error = %e, "checkpoint commit task failed; the next commit will carry it");
            }
        }
        Ok(())
    }

    /// The group's checkpoint for this shard, if any.
    async fn checkpoint(&self) -> Result<Option<Cursor>, Error> {
        let list = self
            .client
            .get_checkpoints(&self.settings.group, Some(self.shard))
            .await?;
        Ok(list
            .into_iter()
            .find(|c| c.shard == self.shard.0)
            .and_then(|c| Cursor::new(c.checkpoint)))
    }

    /// Where to start: the checkpoint, else the configured position.
    async fn start_cursor(&self) -> Result<Cursor, Error> {
        if let Some(c) = self.checkpoint().await? {
            tracing::info!(shard = %self.shard, checkpoint = %c, "resuming from the group checkpoint");
            return Ok(c);
        }
        let c = self
            .client
            .get_cursor(self.shard, &self.settings.start_from)
            .await?;
        tracing::info!(shard = %self.shard, from = %self.settings.start_from, cursor = %c, "no checkpoint; starting at the configured position");
        Ok(c)
    }

    /// After InvalidCursor: the checkpoint if it differs from the bad cursor
    /// and still works, else the oldest retained data.
    async fn recover_cursor(&self, bad: &Cursor) -> Result<Cursor, Error> {
        if let Some(c) = self.checkpoint().await? {
            if &c != bad {
                return Ok(c);
            }
        }
        self.client.get_cursor(self.shard, "begin").await
    }

    /// True when `cursor` is the end of a read-only shard (checked at most
    /// every [`READONLY_RECHECK`] while the shard is idle).
    async fn at_readonly_end(&mut self, cursor: &Cursor) -> Result<bool, Error> {
        if self
            .readonly_checked
            .is_some_and(|t| t.elapsed() < READONLY_RECHECK)
        {
            return Ok(false);
        }
        self.readonly_checked = Some(Instant::now());
        let shards = self.client.list_shards().await?;
        match shards.iter().find(|s| s.id == self.shard.0) {
            None => Ok(true),
            Some(s) if s.is_readonly() => {
                let end = self.client.get_cursor(self.shard, "end").await?;
                Ok(&end == cursor)
            }
            Some(_) => Ok(false),
        }
    }

    /// Visit the pending pull from where it paused.
    fn visit_pending(
        &mut self,
        visit: &mut (dyn FnMut(&Record<'_>) -> Flow + Send),
    ) -> Option<BatchEnd<Cursor>> {
        let p = self.pending.take()?;
        let stream = self.settings.one_of_several.then(|| decode::Stream {
            project: self.settings.project.as_bytes(),
            logstore: self.settings.logstore.as_bytes(),
        });
        let result = decode::visit_logs(&self.buf, p.resume, stream, &mut |r| visit(r));
        match result {
            Ok(decode::Visit::Done { records }) => {
                counters::add(&self.metrics.records_in, records as u64);
                counters::add(&self.series.records_in, records as u64);
                self.cursor = Some(p.next.clone());
                Some(BatchEnd {
                    position: p.next,
                    records,
                    stop: None,
                })
            }
            Ok(decode::Visit::Paused { records, resume }) => {
                counters::add(&self.metrics.records_in, records as u64);
                counters::add(&self.series.records_in, records as u64);
                let position = p.start.clone();
                self.pending = Some(Pending { resume, ..p });
                Some(BatchEnd {
                    position,
                    records,
                    stop: None,
                })
            }
            Err(e) => {
                // A corrupt body: pull it again (records visited before the
                // fault are repeated, never skipped).
                self.failures += 1;
                tracing::warn!(shard = %self.shard, error = %e, "corrupt PullLogs body; pulling it again");
                self.cursor = Some(p.start.clone());
                Some(BatchEnd {
                    position: p.start,
                    records: 0,
                    stop: None,
                })
            }
        }
    }
}

impl ShardReader for SlsShard {
    type Position = Cursor;

    fn name(&self) -> &str {
        &self.name
    }

    async fn read_batch(
        &mut self,
        visit: &mut (dyn FnMut(&Record<'_>) -> Flow + Send),
    ) -> Result<Option<BatchEnd<Cursor>>, source::Error> {
        // A commit refused in the background ends the shard here.
        self.settle_commit(false).await?;
        if self.lost || self.finished {
            return Ok(None);
        }
        loop {
            if let Some(end) = self.visit_pending(visit) {
                return Ok(Some(end));
            }
            let cursor = match &self.cursor {
                Some(c) => c.clone(),
                None => match self.start_cursor().await {
                    Ok(c) => {
                        // Not proof that reads work (a checkpoint needs no
                        // GetCursor): only a pull says so, next.
                        // Stored already (the checkpoint), or where an
                        // unread shard begins: what its lag is measured from.
                        self.stored.send_replace(Some(c.clone()));
                        self.failures = 0;
                        self.cursor = Some(c);
                        continue;
                    }
                    Err(e) if self.ends(&e) => return Err(self.fatal(e)),
                    Err(e) => {
                        self.failures += 1;
                        self.credentials_worked(e.refuses_credentials().then_some(true));
                        tracing::warn!(shard = %self.shard, error = %e, "cannot find where to start; retrying");
                        tokio::time::sleep(backoff(Duration::from_millis(500), self.failures))
                            .await;
                        continue;
                    }
                },
            };
            // Pulls run as their own tasks, awaited through `&mut`: when the
            // pipeline drops this future (an acknowledgement won the race),
            // the requests go on and the next call picks up their answers.
            if !self
                .pulls
                .front()
                .is_some_and(|f| f.start.same_position(&cursor))
            {
                self.stop_pulling_ahead();
                // A deadline, not a sleep of its own: the pipeline drops
                // this future whenever an acknowledgement comes first, and
                // a wait that started over each time would pass its length
                // many times over (it did: p99 from write to SIEM 205 ms
                // with a 100 ms poll).
                let not_before = match self.not_before {
                    Some(t) => t,
                    None => {
                        let at = self.next_pull_at();
                        if self.empty_pulls > 0 && self.failures == 0 && at > Instant::now() {
                            counters::add(&self.metrics.sls_idle_waits, 1);
                        }
                        *self.not_before.insert(at)
                    }
                };
                tokio::time::sleep_until(not_before.into()).await;
                self.not_before = None;
                self.spawn_pull(cursor.clone(), None);
            }
            let Some(head) = self.pulls.front_mut() else {
                continue;
            };
            // Kept across calls: the pipeline may drop a `read_batch` that is
            // waiting here and call again.
            let asked = *self.asked.get_or_insert_with(Instant::now);
            let joined = (&mut head.task).await;
            let Some(head) = self.pulls.pop_front() else {
                continue;
            };
            self.asked = None;
            let (answered, pulled) = match joined {
                Ok((at, r)) => (at, r),
                Err(join) => (
                    Instant::now(),
                    Err(Error::Protocol {
                        what: format!("PullLogs shard {}", self.shard),
                        problem: format!("request task failed: {join}"),
                    }),
                ),
            };
            let round_trip = answered.saturating_duration_since(head.sent);
            counters::add(&self.metrics.sls_pulls, 1);
            self.last_pull_sent = Some(head.sent);
            // The reader's own time since it took the last answer with data
            // (set again below only for an answer with data: an idle wait
            // is not the reader's pace).
            let busy = self
                .last_taken
                .take()
                .map(|t| asked.saturating_duration_since(t));
            if let (true, Err(e)) = (head.guessed, &pulled) {
                // Sent before its start was known to exist: the error says
                // nothing about the cursor the server gave. Pull it again —
                // after the usual wait if the server asked for less.
                tracing::debug!(shard = %self.shard, error = %e, "a pull ahead failed; pulling from the server's cursor");
                if e.is_throttle() {
                    self.failures = self.failures.max(3);
                }
                counters::add(&self.metrics.sls_pulls_ahead_unused, 1);
                self.ahead_missed();
                self.stop_pulling_ahead();
                continue;
            }
            let requested = head.count;
            let guessed = head.guessed;
            drop(head);
            self.credentials_worked(match &pulled {
                Ok(_) => Some(false),
                Err(e) if e.refuses_credentials() => Some(true),
                Err(_) => None,
            });
            match pulled {
                Ok(p) if p.count > 0 && p.raw_size == 0 => {
                    // Log groups without a byte: not something to skip past.
                    // (A pull a rule emptied has no groups: the branch below.)
                    self.stop_pulling_ahead();
                    self.failures += 1;
                    tracing::warn!(shard = %self.shard, groups = p.count,
                        "PullLogs answered log groups with x-log-bodyrawsize 0; pulling them again");
                }
                Ok(mut p) if p.count == 0 => {
                    if guessed && p.next.same_position(&cursor) {
                        // An empty answer echoes the request's cursor, here
                        // one we built: keep the server's text for it.
                        p.next = cursor.clone();
                    }
                    self.failures = 0;
                    self.stop_pulling_ahead();
                    self.count_scanned(&p);
                    if self.settings.rule.is_some() && !p.next.same_position(&cursor) {
                        // The rule emptied this pull, but the server read
                        // on: progress is the cursor. Not caught up, so the
                        // next pull goes at once, sized on what was scanned
                        // (as it was, if the server did not say).
                        self.empty_pulls = 0;
                        self.quiet_pulls = 0;
                        self.last_data = Instant::now();
                        if let Some(scanned) = p.scanned {
                            self.count = pull_count(
                                usize::try_from(scanned.bytes).unwrap_or(usize::MAX),
                                scanned.groups,
                                self.pull_target(),
                                self.settings.max_fetch_log_groups,
                            );
                        }
                        self.cursor = Some(p.next.clone());
                        return Ok(Some(BatchEnd {
                            position: p.next,
                            records: 0,
                            stop: None,
                        }));
                    }
                    if self.last_data.elapsed() >= QUIET_AFTER {
                        self.quiet_pulls = self.quiet_pulls.saturating_add(1);
                    }
                    self.empty_pulls = self.empty_pulls.saturating_add(1);
                    if p.next == cursor {
                        match self.at_readonly_end(&cursor).await {
                            Ok(true) => {
                                tracing::info!(shard = %self.shard, "read-only shard read to its end; releasing it");
                                self.finished = true;
                            }
                            Ok(false) => {}
                            Err(e) if self.ends(&e) => return Err(self.fatal(e)),
                            Err(e) => {
                                tracing::debug!(error = %e, "cannot check the shard's status")
                            }
                        }
                    }
                    self.cursor = Some(p.next.clone());
                    // An empty batch lets the pipeline commit on its interval
                    // while the shard is idle.
                    return Ok(Some(BatchEnd {
                        position: p.next,
                        records: 0,
                        stop: None,
                    }));
                }
                Ok(p) => {
                    // A buffer grown by one unusually big pull is not kept.
                    if self.buf.capacity() > 2 * p.raw_size.max(self.settings.fetch_bytes) {
                        self.buf = Vec::new();
                    }
                    if let Err(e) =
                        decode::decompress(&p.compress_type, p.raw_size, &p.body, &mut self.buf)
                    {
                        self.failures += 1;
                        tracing::warn!(shard = %self.shard, error = %e, "cannot decompress a PullLogs body; pulling it again");
                        continue;
                    }
                    self.failures = 0;
                    self.empty_pulls = 0;
                    self.quiet_pulls = 0;
                    counters::add(&self.metrics.bytes_in, p.raw_size as u64);
                    if guessed {
                        self.ahead_misses = 0;
                    }
                    self.last_data = Instant::now();
                    self.last_taken = Some(self.last_data);
                    self.count_scanned(&p);
                    // With a rule, pulls are sized on what the server
                    // scanned, not on what the rule let through (a pull
                    // sized on a filtered answer would scan ever more), and
                    // none is sent ahead: there are no per-group cursors to
                    // guess from.
                    let (sized_bytes, sized_groups) = match p.scanned {
                        Some(s) => (
                            usize::try_from(s.bytes)
                                .unwrap_or(usize::MAX)
                                .max(p.raw_size),
                            s.groups.max(p.count),
                        ),
                        None => (p.raw_size, p.count),
                    };
                    let lagging = self.settings.rule.is_none()
                        && p.count >= u64::from(requested)
                        && !p.at_end;
                    self.depth.taken(prefetch::Taken {
                        lagging,
                        round_trip,
                        busy,
                        in_flight: self.pulls.len() + 1,
                        can_grow: self.count < self.settings.max_fetch_log_groups,
                    });
                    self.share.want(self.depth.wants_more());
                    tracing::trace!(shard = %self.shard, lagging, ?round_trip, ?busy,
                        pulls = self.depth.pulls(), scale = self.depth.scale(), groups = p.count,
                        "pull answered");
                    self.count = pull_count(
                        sized_bytes,
                        sized_groups,
                        self.pull_target(),
                        self.settings.max_fetch_log_groups,
                    );
                    // The next pulls run while this one is formatted and sent;
                    // one of `count` groups is expected to be as large as this
                    // one's groups were (one group may be bigger than
                    // `fetch_bytes`).
                    let per_group = p.raw_size as u64 / p.count.max(1);
                    let expected = per_group.saturating_mul(u64::from(self.count)).max(1);
                    self.pull_ahead(&p.next, lagging, expected);
                    self.pending = Some(Pending {
                        start: cursor,
                        next: p.next,
                        resume: decode::Resume::default(),
                    });
                }
                Err(e) if e.code() == Some("InvalidCursor") => {
                    self.stop_pulling_ahead();
                    tracing::warn!(shard = %self.shard, cursor = %cursor, error = %e,
                        "cursor no longer valid (expired by the logstore's TTL?); resuming from \
                         the group checkpoint or, failing that, the oldest data still kept");
                    match self.recover_cursor(&cursor).await {
                        Ok(c) => {
                            // What was stored is gone; the lag counts from here.
                            self.stored.send_replace(Some(c.clone()));
                            self.cursor = Some(c);
                        }
                        Err(e) if self.ends(&e) => return Err(self.fatal(e)),
                        Err(_) => self.failures += 1,
                    }
                }
                Err(e @ Error::TooLarge { .. }) if self.count > 1 => {
                    // Groups grew, or the server is broken: ask for fewer.
                    self.stop_pulling_ahead();
                    let fewer = (self.count / 4).max(1);
                    tracing::warn!(shard = %self.shard, error = %e, groups = fewer,
                        "PullLogs answer refused as too large; asking for fewer log groups");
                    self.count = fewer;
                }
                Err(e) if self.ends(&e) => return Err(self.fatal(e)),
                Err(e) => {
                    self.stop_pulling_ahead();
                    let first = self.failures == 0;
                    self.failures += 1;
                    // Throttling: the server asked for less; wait longer.
                    if e.is_throttle() {
                        self.failures = self.failures.max(3);
                    }
                    if first || self.failures % 10 == 0 {
                        tracing::warn!(shard = %self.shard, error = %e, failures = self.failures, "PullLogs failed; retrying");
                    }
                }
            }
        }
    }

    async fn commit(&mut self, checkpoint: &Checkpoint<Cursor>) -> Result<(), source::Error> {
        // One at a time, in order: a later position must never be
        // overwritten by an earlier one that arrives late.
        self.settle_commit(true).await?;
        let cursor = checkpoint.position();
        if self.lost {
            return Ok(());
        }
        if self.last_committed.as_ref() == Some(cursor) {
            // Stored already: the checkpoint is as current as it can be.
            counters::set(&self.series.committed_at_ms, counters::now_ms());
            return Ok(());
        }
        // In the background: 300 ms away, a commit every checkpoint interval
        // that stopped reading for its round trip cost a tenth of the
        // shard's throughput. `flush` waits for it.
        self.committing = Some(tokio::spawn(store_checkpoint(
            self.client.clone(),
            self.settings.clone(),
            self.shard,
            cursor.clone(),
        )));
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), source::Error> {
        self.settle_commit(true).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{idle_wait, pull_count, QUIET_AFTER};

    #[test]
    fn an_idle_shard_that_had_data_lately_is_polled_every_poll_interval() {
        let (poll, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for empties in [0, 1, 5, 100] {
            assert_eq!(idle_wait(poll, max, Duration::from_secs(29), empties), poll);
        }
    }

    #[test]
    fn a_quiet_shard_backs_off_to_fetch_interval() {
        let (poll, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let quiet = QUIET_AFTER + Duration::from_secs(1);
        let waits: Vec<u128> = (0..6)
            .map(|n| idle_wait(poll, max, quiet, n).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        // Huge counts neither overflow nor pass the cap.
        assert_eq!(idle_wait(poll, max, quiet, u32::MAX), max);
    }

    /// Settings `build` accepts (no request is made).
    fn valid() -> crate::source::sls::config::SlsSourceConfig {
        crate::source::sls::config::SlsSourceConfig {
            endpoint: "127.0.0.1:1".to_owned(),
            project: "proj".to_owned(),
            logstore: "store".to_owned(),
            consumer_group: "g".to_owned(),
            access_key_id: "id".to_owned(),
            access_key_secret: "secret".into(),
            ..crate::source::sls::config::SlsSourceConfig::default()
        }
    }

    #[test]
    fn several_logstores_are_checked_entry_by_entry() {
        use crate::counters::Metrics;
        use crate::source::sls::config::SlsSourceConfig;
        use crate::source::sls::SlsSource;
        use crate::units::Secret;
        let entry = |logstore: &str| SlsSourceConfig {
            endpoint: "127.0.0.1:1".to_owned(),
            access_key_id: "ak".to_owned(),
            access_key_secret: Secret::from("s"),
            project: "proj".to_owned(),
            logstore: logstore.to_owned(),
            consumer_group: "siem".to_owned(),
            ..SlsSourceConfig::default()
        };
        let several = |entries: Vec<SlsSourceConfig>| SlsSourceConfig {
            logstores: entries,
            ..SlsSourceConfig::default()
        };
        let metrics = Metrics::default();
        let built =
            SlsSource::build_several(&several(vec![entry("audit"), entry("waf")]), &metrics)
                .expect("two logstores");
        assert!(built.iter().all(|s| s.settings().one_of_several));
        let err = |entries| match SlsSource::build_several(&several(entries), &metrics) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let twice = err(vec![entry("audit"), entry("audit")]);
        assert!(twice.starts_with("source.sls.logstores[1].logstore: proj/audit with consumer group siem is listed twice"), "{twice}");
        // The same endpoint written two ways is one endpoint.
        let mut spelled = entry("audit");
        spelled.endpoint = "http://127.0.0.1:1".to_owned();
        let twice = err(vec![entry("audit"), spelled]);
        assert!(twice.contains("is listed twice"), "{twice}");
        let bad = err(vec![entry("audit"), entry("Bad Name")]);
        assert!(
            bad.starts_with("source.sls.logstores[1].logstore:"),
            "{bad}"
        );
    }

    #[test]
    fn names_outside_log_service_rules_are_refused_with_their_key() {
        let good = crate::source::sls::config::SlsSourceConfig {
            project: "my-project-1".to_owned(),
            logstore: "access_log".to_owned(),
            consumer_group: "siem.forwarder-QRadar_1".to_owned(),
            consumer_name: "host-1.example-4242".to_owned(),
            ..valid()
        };
        assert!(super::build(&good).is_ok());
        let key = |c: crate::source::sls::config::SlsSourceConfig| {
            let e = super::build(&c).map(|_| ()).unwrap_err().to_string();
            e.split(':').next().unwrap_or_default().to_owned()
        };
        for project in [
            "MyProject",
            "ab",
            "-proj",
            "proj-",
            "my_project",
            &"p".repeat(64),
        ] {
            let c = crate::source::sls::config::SlsSourceConfig {
                project: project.to_owned(),
                ..good.clone()
            };
            assert_eq!(key(c), "source.sls.project", "{project}");
        }
        for logstore in ["Access", "a_", "_a", "log store"] {
            let c = crate::source::sls::config::SlsSourceConfig {
                logstore: logstore.to_owned(),
                ..good.clone()
            };
            assert_eq!(key(c), "source.sls.logstore", "{logstore}");
        }
        for group in ["my group", "a/b", "x?y", &"g".repeat(129)] {
            let c = crate::source::sls::config::SlsSourceConfig {
                consumer_group: group.to_owned(),
                ..good.clone()
            };
            assert_eq!(key(c), "source.sls.consumer_group", "{group}");
        }
        let c = crate::source::sls::config::SlsSourceConfig {
            consumer_name: "host 1".to_owned(),
            ..good.clone()
        };
        assert_eq!(key(c), "source.sls.consumer_name");
    }

    #[test]
    fn a_request_timeout_under_a_second_is_refused_not_raised() {
        let cfg = crate::source::sls::config::SlsSourceConfig {
            request_timeout: crate::units::HumanDuration(Duration::ZERO),
            ..valid()
        };
        let e = super::build(&cfg).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.starts_with("source.sls.request_timeout: must be at least 1s"),
            "{e}"
        );
    }

    #[test]
    fn a_start_time_without_start_position_time_is_refused() {
        let cfg = crate::source::sls::config::SlsSourceConfig {
            start_time: "2026-12-01T00:00:00Z".to_owned(),
            ..valid()
        };
        let e = super::build(&cfg).map(|_| ()).unwrap_err().to_string();
        assert!(
            e.starts_with("source.sls.start_time: is read only with"),
            "{e}"
        );
        let with_time = crate::source::sls::config::SlsSourceConfig {
            start_position: crate::source::sls::config::StartPosition::Time,
            ..cfg
        };
        assert!(super::build(&with_time).is_ok());
    }

    #[test]
    fn a_query_or_a_processor_becomes_the_rule_but_not_both() {
        let rule = |query: &str, processor: &str| {
            let cfg = crate::source::sls::config::SlsSourceConfig {
                query: query.to_owned(),
                processor: processor.to_owned(),
                ..valid()
            };
            super::build(&cfg).map(|(_, s)| s.rule)
        };
        assert_eq!(rule("", " ").expect("none"), None);
        assert_eq!(
            rule("* | where a = 'b'", "").expect("query"),
            Some(super::client::Rule::Query("* | where a = 'b'".to_owned()))
        );
        assert_eq!(
            rule("", "audit").expect("processor"),
            Some(super::client::Rule::Processor("audit".to_owned()))
        );
        let e = rule("*", "audit").expect_err("both").to_string();
        assert!(e.starts_with("source.sls.processor: "), "{e}");
    }

    #[test]
    fn pull_count_aims_at_the_byte_target() {
        // 100 groups of 64 KiB: a 1 MiB target is 16 groups.
        assert_eq!(pull_count(100 * 65536, 100, 1 << 20, 1000), 16);
    }

    #[test]
    fn pull_count_never_exceeds_max_fetch_log_groups() {
        // Tiny groups: the target alone would ask for far more than 1000.
        assert_eq!(pull_count(10 * 100, 10, 1 << 20, 1000), 1000);
        assert_eq!(pull_count(10 * 100, 10, 1 << 20, 50), 50);
    }

    #[test]
    fn pull_count_is_at_least_one_group() {
        // One group bigger than the whole target still gets pulled.
        assert_eq!(pull_count(8 << 20, 1, 1 << 20, 1000), 1);
    }

    #[test]
    fn pull_count_tolerates_odd_answers() {
        // A count of 0 with bytes (a malformed answer) must not divide by 0.
        assert_eq!(pull_count(4096, 0, 1 << 20, 1000), 256);
        assert_eq!(pull_count(0, 5, 1 << 20, 7), 7);
    }
}
