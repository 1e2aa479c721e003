//! Sinks: connections to the SIEM.
//!
//! A sink takes a batch of complete syslog messages ([`Messages`], made by
//! `format`, already framed for the sink: see [`Sink::batch_framing`]) and
//! delivers them: it writes many per system call, and reconnects with exponential backoff and jitter when
//! the receiver goes away. It knows nothing about consumer groups or records;
//! it reports only whether a whole batch was delivered.
//!
//! # What "delivered" means
//!
//! A batch handed to the sink ([`Sink::submit`]) comes back from
//! [`Sink::take_safe`] once it is delivered, with this meaning per
//! transport (../docs/architecture.md, "Delivery"):
//!
//! - `udp` (RFC 5426): every message was handed to the kernel, one per
//!   datagram. UDP can lose datagrams silently (receiver down, full socket
//!   buffer on either side, a firewall); nothing in the protocol tells. See
//!   `udp.rs` for how refused sends (ICMP port unreachable) are handled.
//! - `tcp` (RFC 6587), `tls` (RFC 5425): the batch reached its *safe
//!   point*: the receiver's TCP acknowledged every byte of it, and the
//!   connection then stayed healthy for `sink.settle_time`
//!   (`stream/settle.rs` explains both halves). Until then the sink holds the batch; after any
//!   connection failure it reconnects and writes every held batch again,
//!   oldest first, before anything new: duplicates are possible, gaps are
//!   not (at-least-once). TCP has no application acknowledgement, so a
//!   receiver that reads our bytes and loses them later than the settle
//!   time cannot be told apart from one that kept them (only application
//!   acks, as in RELP, close that gap).
//! - `stdout`: written and flushed.
//!
//! The pipeline moves a checkpoint past a batch only once the batch came
//! back from `take_safe`.
//!
//! # Why an idle connection is checked before a batch
//!
//! Receivers close idle connections (rsyslog and syslog-ng on restart, load
//! balancers after a timeout). A write into a socket whose peer already
//! closed still succeeds locally: the kernel buffers the bytes and the peer
//! answers with RST. So before writing on a connection, and periodically
//! while batches are held, the sink does one non-blocking read, asked of
//! the kernel with `recv(MSG_PEEK)` (tokio's cached readiness can lag
//! behind a FIN that just arrived): end of stream, an error or a TLS alert
//! there means the peer is gone, and the sink reconnects *before* writing.
//!
//! # Incidents are logged once
//!
//! A connection failure logs one `warn` line with its cause; the reconnect
//! attempts that follow log at `debug`; when a batch is delivered (safe)
//! again one `info` line gives the outage's duration and attempts. Never
//! one line per message.
//!
//! Layout (after Vector's `sinks/util/tcp.rs`, split by role): config types,
//! the list of transports ([`TRANSPORTS`]) and the dispatching [`Sink`]
//! here; each transport's file declares its `SPEC` (name, keys, what it asks
//! of its messages, how it is built): `udp.rs`, `tcp.rs`, `tls.rs` (TCP's
//! stream sink over TLS), `relp.rs` (its acknowledgements and the session it
//! opens), `stdout.rs`; `stream/` (shared by tcp, tls and relp: the replay
//! queue with writes bounded by a timeout and reconnects in `mod.rs`, the
//! connection — resolve, connect, the protocol's session hook — and its
//! health check in `conn.rs`, the rustls client configuration and readable
//! TLS errors in `tls.rs`, and the acknowledgement strategy that says when a
//! batch is safe: `ack.rs`, with kernel acknowledgement + settle time in
//! `settle.rs`), `messages.rs` (the batch, framed as it is written). The
//! transports build on `stream/`, never the other way round.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use crate::units::HumanDuration;

pub use messages::Messages;
pub use relp::RelpConfig;

mod messages;
mod relp;
mod stdout;
mod stream;
mod tcp;
#[cfg(test)]
pub(crate) mod testutil;
mod tls;
mod udp;

/// How messages are delimited on a stream (RFC 6587 §3.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 §3.4.1, the only framing RFC 5425 allows).
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2); CR, LF and NUL inside a message get
    /// escaped by the formatter.
    Lf,
}

/// TLS settings of the `tls` sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that sign the receiver's certificate; default:
    /// the system's roots.
    pub ca_file: Option<String>,
    /// PEM client certificate chain, for mutual TLS.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// Name to send as SNI and to verify the certificate against; default:
    /// the host part of `sink.address`.
    pub server_name: Option<String>,
    /// Accept any certificate. Dangerous: only for tests; warned about at
    /// start-up.
    pub insecure_skip_verify: bool,
}

/// What one transport is, declared in the transport's own file: its name,
/// the keys it reads, what it asks of the messages it carries, and how it
/// is built.
#[derive(Debug)]
pub(crate) struct Spec {
    /// The name `sink.type` takes.
    name: &'static str,
    /// The `[sink]` keys it reads besides `type`; any other key written is
    /// refused (it would be ignored without a word).
    keys: &'static [&'static str],
    /// What it asks of its messages; see [`Wire`].
    wire: fn(&SinkConfig) -> Wire,
    /// Check its own keys and load what they name; does not connect.
    build: fn(&SinkConfig, &crate::counters::Metrics) -> Result<Inner, Error>,
}

/// Every transport, in the order the docs list them. A new transport is a
/// file with its [`Spec`] and one entry here.
const TRANSPORTS: [&Spec; 5] = [
    &udp::SPEC,
    &tcp::SPEC,
    &tls::SPEC,
    &relp::SPEC,
    &stdout::SPEC,
];

/// Which transport (`sink.type`): one of [`TRANSPORTS`].
#[derive(Clone, Copy)]
pub struct Transport(&'static Spec);

impl Transport {
    /// The transport named `name`, if there is one.
    pub fn named(name: &str) -> Option<Transport> {
        TRANSPORTS
            .into_iter()
            .find(|spec| spec.name == name)
            .map(Transport)
    }

    /// Every transport, in the order the docs list them.
    pub fn all() -> impl Iterator<Item = Transport> {
        TRANSPORTS.into_iter().map(Transport)
    }

    /// The name `sink.type` takes.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The `[sink]` keys it reads (besides `type`).
    pub fn keys(self) -> &'static [&'static str] {
        self.0.keys
    }
}

/// TCP, as the seed program sends and most receivers listen.
impl Default for Transport {
    fn default() -> Self {
        Transport(&tcp::SPEC)
    }
}

impl PartialEq for Transport {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Transport {}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for Transport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Transport::named(&name).ok_or_else(|| {
            let names: Vec<String> = Transport::all()
                .map(|t| format!("`{}`", t.name()))
                .collect();
            serde::de::Error::custom(format!(
                "unknown variant `{name}`, expected one of {}",
                names.join(", ")
            ))
        })
    }
}

/// The `[sink]` table as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `udp`, `tcp` (default), `tls` or `stdout`.
    #[serde(rename = "type")]
    pub transport: Transport,
    /// `host:port` of the receiver (`[::1]:6514` for IPv6).
    pub address: String,
    /// Stream framing: `octet_counting` (default) or `lf`.
    pub framing: Framing,
    /// Give up one connection attempt after this long.
    pub connect_timeout: HumanDuration,
    /// A write that makes no progress for this long counts as a failed
    /// connection (the receiver stalled).
    pub write_timeout: HumanDuration,
    /// First reconnect delay; doubles per failure up to `backoff_max`.
    pub backoff_initial: HumanDuration,
    /// Longest reconnect delay.
    pub backoff_max: HumanDuration,
    /// TCP/TLS: how long a batch's bytes must stay acknowledged by the
    /// receiver's TCP, on a connection that stays healthy, before the batch
    /// counts as delivered (its checkpoint may move). Covers a receiver that
    /// dies with acknowledged but unread bytes.
    pub settle_time: HumanDuration,
    /// UDP: the largest datagram sent, in bytes; longer messages are cut on a
    /// UTF-8 boundary and counted.
    pub max_datagram: crate::units::ByteSize,
    /// TCP/TLS: the longest message sent, in bytes; a longer one is cut on a
    /// UTF-8 boundary and counted ([`SinkConfig::wire`]).
    pub max_message: crate::units::ByteSize,
    /// TLS settings (`type = "tls"`, and `relp` with `relp.tls`).
    pub tls: TlsConfig,
    /// RELP settings (`type = "relp"` only).
    pub relp: relp::RelpConfig,
}

/// What a transport asks of the messages it carries, and how it shows
/// itself: the one place that answers per transport for the formatter's
/// constraints, the tap's framing, the drop policy and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    /// Each message ends with LF on the wire, so CR, LF and NUL inside one
    /// must be escaped by the formatter.
    pub newline_terminated: bool,
    /// The longest message sent (`sink.max_message`, stream transports; UDP
    /// cuts its datagrams itself at `sink.max_datagram`).
    pub max_message: Option<usize>,
    /// How `siemfwd tap` frames messages to show them as this transport
    /// sends them (UDP keeps messages apart in datagrams: one per line).
    pub tap_framing: Framing,
    /// The transport waits for its receiver while it is away (so
    /// `pipeline.when_blocked = "drop"` means something for it).
    pub waits_for_receiver: bool,
}

impl SinkConfig {
    /// What this transport asks of its messages; see [`Wire`].
    pub fn wire(&self) -> Wire {
        (self.transport.0.wire)(self)
    }

    /// The sink in a few words for logs and `siemfwd check`: `tcp host:port`.
    pub fn describe(&self) -> String {
        if self.transport.keys().contains(&"address") {
            format!("{} {}", self.transport.name(), self.address)
        } else {
            self.transport.name().to_owned()
        }
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            transport: Transport::default(),
            address: "127.0.0.1:514".to_owned(),
            framing: Framing::default(),
            connect_timeout: HumanDuration(Duration::from_secs(10)),
            write_timeout: HumanDuration(Duration::from_secs(30)),
            backoff_initial: HumanDuration(Duration::from_millis(200)),
            backoff_max: HumanDuration(Duration::from_secs(30)),
            settle_time: HumanDuration(DEFAULT_SETTLE_TIME),
            max_datagram: crate::units::ByteSize(2048),
            max_message: crate::units::ByteSize(DEFAULT_MAX_MESSAGE),
            tls: TlsConfig::default(),
            relp: relp::RelpConfig::default(),
        }
    }
}

/// Default of `sink.settle_time`. A receiver that stops reading to shut
/// down, or dies with our bytes in its receive buffer, closes or resets the
/// connection as it ends; 200ms leaves room for a loaded host and a WAN
/// round trip to bring us that news (rsyslog restarted while lagging
/// behind 200,000 lines/s: thousands of lines lost per run with 0, none
/// with 200ms; docs/architecture.md, "Delivery"). Longer costs throughput (about
/// `pipeline.max_in_flight_bytes / (settle_time + RTT)`) and more
/// duplicates after a crash of siemfwd; shorter widens the window in which
/// a dying receiver can lose an acknowledged batch.
pub const DEFAULT_SETTLE_TIME: Duration = Duration::from_millis(200);

/// Default of `sink.max_message`: syslog-ng's default `log-msg-size`
/// (64 KiB). rsyslog's `maxMessageSize` is 8 KiB by default and IBM QRadar
/// keeps 4 KiB unless raised; both cut longer messages themselves rather
/// than close the connection, so a larger default would only help
/// receivers that take more.
pub const DEFAULT_MAX_MESSAGE: u64 = 64 << 10;

/// The longest `sink.settle_time` accepted.
const MAX_SETTLE_TIME: Duration = Duration::from_secs(60);

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; `key` is its path in the config.
    #[error("{key}: {problem}")]
    Config {
        /// e.g. `sink.tls.ca_file`.
        key: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The send was abandoned because the program is shutting down; the
    /// batch was not (fully) delivered.
    #[error("shutting down before the batch was delivered")]
    Cancelled,
    /// A connection-level failure (only returned by one-shot operations such
    /// as [`Sink::check`]; `send` retries these).
    #[error("{0}")]
    Connection(String),
}

/// A connection to the SIEM, built once from a [`SinkConfig`].
///
/// Two ways to drive it: [`Sink::send`] delivers one batch and waits until
/// it is delivered; the pipeline instead keeps many batches in flight with
/// [`Sink::submit`], [`Sink::next_check`], [`Sink::progress`] and
/// [`Sink::take_safe`].
#[derive(Debug)]
pub struct Sink {
    transport: Transport,
    inner: Inner,
    /// `udp`, `stdout`: batches delivered on write, waiting for
    /// [`Sink::take_safe`].
    done: VecDeque<Messages>,
}

/// What a built transport runs: a datagram socket, a stream with its
/// replay queue, or standard output. An enum rather than `Box<dyn …>` so
/// each call is a plain match with no allocation or dynamic dispatch; a
/// transport that runs something else (RELP: a stream with its own
/// [`stream::ack::Acknowledgement`]) adds a variant, and the compiler points
/// at each arm it needs.
#[derive(Debug)]
enum Inner {
    Udp(udp::UdpSink),
    Stream(Box<stream::StreamSink<stream::settle::KernelSettle>>),
    Relp(Box<stream::StreamSink<relp::RelpAck>>),
    Stdout(stdout::StdoutSink),
}

/// What a sink has been through since it was built, for status output and
/// tests. The pipeline's totals are in its [`crate::counters::Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections established (stream transports) or sockets opened (udp).
    pub connects: u64,
    /// Connections established again after a failure.
    pub reconnects: u64,
    /// Connection incidents (each logged once).
    pub incidents: u64,
    /// UDP datagrams given up after repeated "connection refused" (the
    /// receiver's port is closed; see `udp.rs`).
    pub udp_dropped: u64,
    /// TCP/TLS: messages written again on a new connection because they
    /// were not yet safe when the previous one failed (the receiver may
    /// have them twice).
    pub resent_messages: u64,
    /// The cause of the latest failure, as logged.
    pub last_error: Option<String>,
}

impl Sink {
    /// Validate `config` and load what it names (certificates, keys); does not
    /// connect yet.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and the problem.
    pub fn build(config: &SinkConfig, metrics: &crate::counters::Metrics) -> Result<Self, Error> {
        if config.settle_time.0 > MAX_SETTLE_TIME {
            return Err(Error::Config {
                key: "sink.settle_time".to_owned(),
                problem: format!(
                    "{} is longer than the {} allowed; a few hundred milliseconds is enough (default {})",
                    human(config.settle_time.0),
                    human(MAX_SETTLE_TIME),
                    human(DEFAULT_SETTLE_TIME)
                ),
            });
        }
        for (key, value) in [
            ("connect_timeout", config.connect_timeout.0),
            ("write_timeout", config.write_timeout.0),
        ] {
            if value < Duration::from_millis(10) {
                return Err(Error::Config {
                    key: format!("sink.{key}"),
                    problem: format!(
                        "{} cannot work: no connection or write completes in no time; use \
                         at least 10ms (default {})",
                        human(value),
                        human(if key == "connect_timeout" {
                            Duration::from_secs(10)
                        } else {
                            Duration::from_secs(30)
                        })
                    ),
                });
            }
        }
        if config.backoff_max.0 < Duration::from_millis(10) {
            return Err(Error::Config {
                key: "sink.backoff_max".to_owned(),
                problem: format!(
                    "{} would retry a receiver that is down hundreds of times a second; use at \
                     least 10ms (default 30s)",
                    human(config.backoff_max.0)
                ),
            });
        }
        if config.backoff_initial.0 > config.backoff_max.0 {
            return Err(Error::Config {
                key: "sink.backoff_initial".to_owned(),
                problem: format!(
                    "{} is longer than sink.backoff_max ({}): the first wait cannot be longer \
                     than the longest",
                    human(config.backoff_initial.0),
                    human(config.backoff_max.0)
                ),
            });
        }
        // RFC 5424 §6.1: every receiver takes 480 bytes.
        if config.max_message.0 < 480 {
            return Err(Error::Config {
                key: "sink.max_message".to_owned(),
                problem: format!(
                    "{} bytes is below the 480 every syslog receiver must take (default {})",
                    config.max_message.0, DEFAULT_MAX_MESSAGE
                ),
            });
        }
        let inner = (config.transport.0.build)(config, metrics)?;
        Ok(Self {
            transport: config.transport,
            inner,
            done: VecDeque::new(),
        })
    }

    /// The transport this sink was built for.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// How batches for this sink should be framed
    /// ([`Messages::with_framing`]): built that way they go on the wire as
    /// they are; any other batch is framed again, one more copy, when
    /// submitted. `udp` keeps messages apart in datagrams: unframed.
    pub fn batch_framing(&self) -> Option<Framing> {
        match &self.inner {
            Inner::Udp(_) => None,
            Inner::Stream(s) => Some(s.framing()),
            Inner::Relp(s) => Some(s.framing()),
            Inner::Stdout(_) => Some(Framing::Lf),
        }
    }

    /// What this sink has been through so far.
    pub fn stats(&self) -> &Stats {
        match &self.inner {
            Inner::Udp(s) => s.stats(),
            Inner::Stream(s) => s.stats(),
            Inner::Relp(s) => s.stats(),
            Inner::Stdout(s) => s.stats(),
        }
    }

    /// Deliver every message of `msgs`, in order, and wait until the batch
    /// is delivered (for `tcp`/`tls`: safe, see the module docs; batches
    /// submitted before it are then safe too and stay for
    /// [`Sink::take_safe`]). Connection failures are retried (reconnect with
    /// backoff and jitter, then every batch not yet safe again) until
    /// delivered or `cancel` fires; every incident is logged once with its
    /// cause, not once per message.
    ///
    /// An empty batch is delivered at once, without connecting.
    ///
    /// # Errors
    /// [`Error::Cancelled`] if `cancel` fired before the batch was delivered.
    /// The `stdout` sink returns [`Error::Connection`] when standard output
    /// fails (a closed pipe does not come back, so retrying is pointless).
    #[cfg(test)]
    pub async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), Error> {
        if msgs.is_empty() {
            return Ok(());
        }
        // `messages_delivered`/`bytes_delivered` are counted by the caller
        // (the pipeline's output task), which knows about every output.
        match &mut self.inner {
            Inner::Udp(s) => s.send(msgs, cancel).await,
            Inner::Stream(s) => s.send(msgs, cancel).await,
            Inner::Relp(s) => s.send(msgs, cancel).await,
            Inner::Stdout(s) => s.send(msgs, cancel).await,
        }
    }

    /// Hand a batch to the sink and return once it is written (for
    /// `tcp`/`tls`, after reconnecting and writing again every batch not yet
    /// safe, if the connection was lost). The sink owns the batch until it
    /// is delivered; [`Sink::take_safe`] then gives it back, batches in the
    /// order they were submitted. An empty batch is delivered at once.
    ///
    /// # Errors
    /// [`Error::Cancelled`] if `cancel` fired first: the batch (and every
    /// batch not yet delivered) is abandoned, never given back. The
    /// `stdout` sink returns [`Error::Connection`] when standard output
    /// fails.
    pub async fn submit(
        &mut self,
        msgs: Messages,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), Error> {
        if msgs.is_empty() && self.in_flight() == 0 {
            self.done.push_back(msgs);
            return Ok(());
        }
        match &mut self.inner {
            Inner::Udp(s) => s.send(&msgs, cancel).await?,
            Inner::Stream(s) => return s.submit(msgs, cancel).await,
            Inner::Relp(s) => return s.submit(msgs, cancel).await,
            Inner::Stdout(s) => s.send(&msgs, cancel).await?,
        }
        self.done.push_back(msgs);
        Ok(())
    }

    /// The oldest submitted batch that is now delivered, if any; batches
    /// come back in the order they were submitted, cleared of nothing (the
    /// caller may reuse the buffer).
    pub fn take_safe(&mut self) -> Option<Messages> {
        if let Some(m) = self.done.pop_front() {
            return Some(m);
        }
        match &mut self.inner {
            Inner::Stream(s) => s.take_safe(),
            Inner::Relp(s) => s.take_safe(),
            Inner::Udp(_) | Inner::Stdout(_) => None,
        }
    }

    /// Batches submitted and not yet delivered.
    pub fn in_flight(&self) -> usize {
        match &self.inner {
            Inner::Stream(s) => s.held(),
            Inner::Relp(s) => s.held(),
            Inner::Udp(_) | Inner::Stdout(_) => 0,
        }
    }

    /// When [`Sink::progress`] should run next: batches are held and the
    /// connection needs its periodic check, or a batch's settle time ends.
    /// `None` while nothing is held.
    pub fn next_check(&self) -> Option<tokio::time::Instant> {
        match &self.inner {
            Inner::Stream(s) => s.next_check(),
            Inner::Relp(s) => s.next_check(),
            Inner::Udp(_) | Inner::Stdout(_) => None,
        }
    }

    /// Check the connection and move the batches that reached their safe
    /// point to [`Sink::take_safe`]; after a connection failure, reconnect
    /// with backoff and write every held batch again (this waits as long as
    /// the receiver is down, or until `cancel`).
    ///
    /// # Errors
    /// [`Error::Cancelled`] if `cancel` fired first.
    pub async fn progress(
        &mut self,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Stream(s) => s.progress(cancel).await,
            Inner::Relp(s) => s.progress(cancel).await,
            Inner::Udp(_) | Inner::Stdout(_) => Ok(()),
        }
    }

    /// TCP/TLS: follow whether the receiver is unreachable, readable while
    /// another call waits in the reconnect loop. The value is `Some(since)`
    /// while no connection is up, `since` being when the current incident
    /// began (nothing became safe after it), and `None` while connected.
    /// `None` for `udp` and `stdout`, which never wait for a receiver.
    pub fn blocked_watch(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<Option<tokio::time::Instant>>> {
        match &self.inner {
            Inner::Stream(s) => Some(s.blocked_watch()),
            Inner::Relp(s) => Some(s.blocked_watch()),
            Inner::Udp(_) | Inner::Stdout(_) => None,
        }
    }

    /// Give up every batch submitted and not yet delivered, and return
    /// them oldest first (`pipeline.when_blocked = "drop"`). Batches already
    /// delivered stay for [`Sink::take_safe`] and come first.
    pub fn discard_held(&mut self) -> Vec<Messages> {
        match &mut self.inner {
            Inner::Stream(s) => s.discard_held(),
            Inner::Relp(s) => s.discard_held(),
            Inner::Udp(_) | Inner::Stdout(_) => Vec::new(),
        }
    }

    /// With nothing held (after [`Sink::discard_held`]): wait the backoff
    /// delay if the incident already failed more than once, then try once
    /// to connect. `Ok(true)` once connected (always for `udp`, `stdout`).
    ///
    /// # Errors
    /// [`Error::Cancelled`] if `cancel` fired first.
    pub async fn reconnect_once(
        &mut self,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<bool, Error> {
        match &mut self.inner {
            Inner::Stream(s) => s.reconnect_once(cancel).await,
            Inner::Relp(s) => s.reconnect_once(cancel).await,
            Inner::Udp(_) | Inner::Stdout(_) => Ok(true),
        }
    }

    /// Connect once (TLS handshake included) and report the first failure:
    /// the sink half of `siemfwd check`. A connection made here is kept for
    /// the next [`Sink::send`].
    ///
    /// For `udp` this only opens and connects the socket: UDP has no way to
    /// tell whether anyone listens. For `stdout` it does nothing.
    ///
    /// `Ok(Some(..))`: what the receiver said when the session opened
    /// (RELP: its offers).
    ///
    /// # Errors
    /// [`Error::Connection`] with the cause in one line.
    pub async fn check(&mut self) -> Result<Option<String>, Error> {
        match &mut self.inner {
            Inner::Udp(s) => s.check().await.map(|()| None),
            Inner::Stream(s) => s.check().await,
            Inner::Relp(s) => s.check().await,
            Inner::Stdout(_) => Ok(None),
        }
    }

    /// Flush and close the connection (TLS `close_notify` included).
    pub async fn close(&mut self) {
        match &mut self.inner {
            Inner::Udp(s) => s.close(),
            Inner::Stream(s) => s.close().await,
            Inner::Relp(s) => s.close().await,
            Inner::Stdout(s) => s.close().await,
        }
    }
}

/// `sink.address` once validated: a host (DNS name or IP address) and a port.
/// Names are resolved at each connect, not here, so a SIEM behind a DNS name
/// that moves is followed and a name that does not resolve yet at start-up is
/// not fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parse `host:port`, `[v6]:port`.
    pub(crate) fn parse(address: &str) -> Result<Self, Error> {
        let bad = |problem: String| Error::Config {
            key: "sink.address".to_owned(),
            problem,
        };
        let example = "write host:port, e.g. \"siem.example.com:6514\", \"10.0.0.5:514\" or \"[2001:db8::5]:6514\"";
        let a = address.trim();
        if a.is_empty() {
            return Err(bad(format!("is empty; {example}")));
        }
        let (host, port) = if let Some(rest) = a.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(format!("{address:?} has no closing ']'; {example}")))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad(format!(
                    "{address:?}: {host:?} in brackets is not an IPv6 address; {example}"
                )));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad(format!("{address:?} has no port; {example}")))?;
            (host, port)
        } else {
            let (host, port) = a
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("{address:?} has no port; {example}")))?;
            if host.contains(':') {
                return Err(bad(format!(
                    "{address:?}: put an IPv6 address in brackets, e.g. \"[::1]:6514\""
                )));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad(format!("{address:?} has no host; {example}")));
        }
        if host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad(format!(
                "{address:?}: the host contains a space or control character"
            )));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(bad(format!(
                    "{address:?}: {port:?} is not a port (1-65535); {example}"
                )))
            }
            Ok(p) => p,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    /// The host as written, without brackets.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The host when it is an IP address literal.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The socket addresses to try, in resolver order.
    pub(crate) async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.ip() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("resolving {:?}: {}", self.host, describe_io(&e)),
                )
            })?
            .collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("resolving {:?}: no address found", self.host),
            ));
        }
        Ok(addrs)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One readable line for an I/O error: the common kinds in plain words, the
/// rest without the "(os error N)" suffix.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the receiver".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::BrokenPipe => "connection closed by the receiver (broken pipe)".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed by the receiver".to_owned(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error ") {
                Some(i) => text[..i].to_owned(),
                None => text,
            }
        }
    }
}

/// A duration for a log line: `10s`, `250ms`.
pub(crate) fn human(d: Duration) -> String {
    // Whole milliseconds are plenty for timeouts and outages.
    let d = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::testutil::transport;
    use super::*;

    #[test]
    fn transports_have_one_name_each_and_tls_reads_what_tcp_reads() {
        let names: Vec<&str> = Transport::all().map(Transport::name).collect();
        assert_eq!(names, ["udp", "tcp", "tls", "relp", "stdout"]);
        for t in Transport::all() {
            assert_eq!(Transport::named(t.name()), Some(t));
        }
        assert_eq!(Transport::named("TCP"), None);
        let (tcp, tls) = (transport("tcp").keys(), transport("tls").keys());
        assert_eq!(&tls[..tls.len() - 1], tcp);
        assert_eq!(tls.last(), Some(&"tls"));
        assert_eq!(Transport::default(), transport("tcp"));
    }

    fn ep(s: &str) -> Result<Endpoint, String> {
        Endpoint::parse(s).map_err(|e| e.to_string())
    }

    #[test]
    fn address_host_port_parses() {
        let e = ep("siem.example.com:6514").unwrap();
        assert_eq!((e.host(), e.port), ("siem.example.com", 6514));
        assert_eq!(e.to_string(), "siem.example.com:6514");
    }

    #[test]
    fn address_ipv6_needs_brackets() {
        let e = ep("[::1]:514").unwrap();
        assert_eq!(e.host(), "::1");
        assert_eq!(e.ip(), Some("::1".parse().unwrap()));
        assert_eq!(e.to_string(), "[::1]:514");
        let err = ep("::1:514").unwrap_err();
        assert!(
            err.starts_with("sink.address:") && err.contains("brackets"),
            "{err}"
        );
    }

    #[test]
    fn timeouts_that_cannot_work_and_a_backoff_that_shrinks_are_refused() {
        use crate::units::HumanDuration;
        let key = |c: SinkConfig| match Sink::build(&c, &crate::counters::Metrics::default()) {
            Err(Error::Config { key, .. }) => key,
            other => panic!("expected a config error, got {other:?}"),
        };
        let base = testutil::config("tcp", "127.0.0.1:514");
        let zero = HumanDuration(Duration::ZERO);
        assert_eq!(
            key(SinkConfig {
                write_timeout: zero,
                ..base.clone()
            }),
            "sink.write_timeout"
        );
        assert_eq!(
            key(SinkConfig {
                connect_timeout: zero,
                ..base.clone()
            }),
            "sink.connect_timeout"
        );
        assert_eq!(
            key(SinkConfig {
                backoff_initial: HumanDuration(Duration::from_secs(60)),
                backoff_max: HumanDuration(Duration::from_secs(30)),
                ..base.clone()
            }),
            "sink.backoff_initial"
        );
        assert!(Sink::build(&base, &crate::counters::Metrics::default()).is_ok());
    }

    #[test]
    fn each_transport_answers_for_its_wire_and_description() {
        let of = |transport, framing| SinkConfig {
            transport,
            framing,
            address: "siem:514".to_owned(),
            ..SinkConfig::default()
        };
        let tcp = of(transport("tcp"), Framing::OctetCounting).wire();
        assert!(!tcp.newline_terminated && tcp.waits_for_receiver);
        assert_eq!(tcp.max_message, Some(DEFAULT_MAX_MESSAGE as usize));
        assert_eq!(tcp.tap_framing, Framing::OctetCounting);
        let tls_lf = of(transport("tls"), Framing::Lf).wire();
        assert!(tls_lf.newline_terminated);
        assert_eq!(tls_lf.tap_framing, Framing::Lf);
        let udp = of(transport("udp"), Framing::OctetCounting).wire();
        assert!(!udp.newline_terminated && !udp.waits_for_receiver);
        assert_eq!((udp.max_message, udp.tap_framing), (None, Framing::Lf));
        let stdout = of(transport("stdout"), Framing::OctetCounting).wire();
        assert!(stdout.newline_terminated && !stdout.waits_for_receiver);
        assert_eq!(of(transport("tls"), Framing::Lf).describe(), "tls siem:514");
        assert_eq!(of(transport("stdout"), Framing::Lf).describe(), "stdout");
    }

    #[test]
    fn address_without_valid_port_is_refused() {
        for bad in [
            "localhost",
            "localhost:",
            "localhost:0",
            "localhost:70000",
            "h:p",
            ":514",
            "",
            "[::1]",
            "[nope]:1",
        ] {
            let err = ep(bad).unwrap_err();
            assert!(err.starts_with("sink.address: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn describe_io_drops_os_error_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(describe_io(&e), "No such file or directory");
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&e), "connection refused");
    }

    #[test]
    fn sink_and_its_futures_are_send() {
        // The pipeline drives the sink from a spawned task.
        fn is_send<T: Send>(_: &T) {}
        let mut sink =
            Sink::build(&SinkConfig::default(), &crate::counters::Metrics::default()).unwrap();
        is_send(&sink);
        let (msgs, cancel) = (Messages::new(), tokio_util::sync::CancellationToken::new());
        is_send(&sink.send(&msgs, &cancel));
        is_send(&sink.check());
        is_send(&sink.close());
    }

    #[test]
    fn build_stdout_needs_no_address() {
        let config = SinkConfig {
            transport: transport("stdout"),
            address: String::new(),
            ..SinkConfig::default()
        };
        let sink = Sink::build(&config, &crate::counters::Metrics::default()).unwrap();
        assert_eq!(sink.transport().name(), "stdout");
    }

    #[test]
    fn build_refuses_bad_address_with_key() {
        let config = SinkConfig {
            address: "nonsense".into(),
            ..SinkConfig::default()
        };
        let err = Sink::build(&config, &crate::counters::Metrics::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sink.address: "), "{err}");
    }
}
