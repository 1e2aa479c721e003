//! A syslog receiver: UDP, TCP and TLS, behind `siemfwd listen`.
//!
//! It lets a person try a pipeline without a SIEM and gives tests and
//! benchmarks a fast receiver they start in-process on port 0. It shows what
//! arrived, exactly: each message is parsed ([`mod@parse`], RFC 5424 strictly,
//! RFC 3164 best effort) and written as a readable block or as one JSON
//! object per line; or, for benchmarks, only counted.
//!
//! Transports:
//! - UDP (RFC 5426): one datagram is one message. Many senders append a LF
//!   although RFC 5426 has no trailer; one trailing LF is removed. Datagrams
//!   are read whole (up to the 65 535-byte UDP ceiling) whatever
//!   [`ListenConfig::max_message`] says. Empty datagrams are ignored.
//! - RELP (`relp.rs`): each `syslog` command is answered `200 OK` once its
//!   message was written to the output (not merely read), so a sender's
//!   acknowledged messages are the ones shown; fault options withhold the
//!   answers or refuse every Nth message with `500`, for tests.
//! - TCP (RFC 6587) and TLS (RFC 5425): both framings, chosen per frame by
//!   its first octet ([`framing`]). A framing error is logged and closes the
//!   connection. TLS uses rustls (TLS 1.2 and 1.3) with the `ring` provider;
//!   with a client CA file it requires and verifies client certificates
//!   (mTLS, RFC 5425 §5.2).
//!
//! Shape: [`Listener::bind`] opens every socket (so a busy port or a bad
//! certificate fails before anything runs), [`Listener::run`] serves until
//! its [`CancellationToken`] fires. Each connection gets a task; rendered
//! output goes through one bounded channel to the single writer, so a slow
//! output applies back-pressure to the connections instead of growing
//! memory. [`Stats`] are atomics the caller can read while it runs.
//!
//! A connection's error (framing, TLS handshake, read) is logged once with
//! its peer and ends only that connection.

pub(crate) mod framing;
mod output;
pub(crate) mod parse;
mod relp;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::framing::FrameBuffer;
use self::output::Origin;
pub use self::parse::{parse, Format, ParseError, Parsed, SdElement};

/// Default for [`ListenConfig::max_message`]: 256 KiB.
pub const DEFAULT_MAX_MESSAGE: usize = 256 * 1024;
/// A client must finish its TLS handshake within this time.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Rendered chunks waiting for the writer; each holds one read's messages.
const OUTPUT_QUEUE: usize = 64;
/// UDP payload ceiling (RFC 768 length field).
const UDP_MAX: usize = 65_535;

/// What to do with each received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// A readable block per message: a header line, then `  key: value`.
    #[default]
    Print,
    /// One JSON object per line (fields: see the `output` module docs).
    JsonLines,
    /// Frame and count only, write nothing (for benchmarks).
    Discard,
}

/// What to listen on and how to show what arrives.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// UDP address (RFC 5426), port 0 for an ephemeral one.
    pub udp: Option<SocketAddr>,
    /// TCP address (RFC 6587, LF and octet-counted framing).
    pub tcp: Option<SocketAddr>,
    /// TLS address (RFC 5425); needs `tls_cert_file` and `tls_key_file`.
    pub tls: Option<SocketAddr>,
    /// RELP address (plain TCP).
    pub relp: Option<SocketAddr>,
    /// RELP over TLS address; needs `tls_cert_file` and `tls_key_file`
    /// (and requires client certificates with `tls_client_ca_file`).
    pub relp_tls: Option<SocketAddr>,
    /// Faults of the RELP listener, for tests.
    pub relp_faults: RelpFaults,
    /// PEM file with the server certificate chain, leaf first.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// PEM file with the CAs that sign client certificates. When set, every
    /// TLS client must present a certificate that chains to one (mTLS).
    pub tls_client_ca_file: Option<PathBuf>,
    /// What to do with each message.
    pub output: Output,
    /// Largest TCP/TLS message accepted; a larger frame closes the
    /// connection. Default [`DEFAULT_MAX_MESSAGE`].
    pub max_message: usize,
    /// TCP and TLS connections open at once; one more is closed as soon as
    /// it is accepted (and counted). Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

/// Default of [`ListenConfig::max_connections`]: well above what a set of
/// forwarders opens, well below a process's usual file limit (1024 is the
/// soft limit on many systems; 512 leaves room for files and the rest).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// A failure a peer can repeat at will (a TLS handshake, a connection over
/// the limit) is logged as a warning at most once per this window; the
/// others are counted and their number given with the next warning.
const FLOOD_WINDOW: Duration = Duration::from_secs(60);

/// See [`FLOOD_WINDOW`].
#[derive(Debug, Default)]
struct Flood {
    since: Option<std::time::Instant>,
    held_back: u64,
}

impl Flood {
    /// `Some(n)`: warn now, `n` were held back since the last warning;
    /// `None`: hold this one back (log it at debug).
    fn warn(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.since {
            Some(t) if now.duration_since(t) < FLOOD_WINDOW => {
                self.held_back += 1;
                None
            }
            _ => {
                self.since = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            tls: None,
            relp: None,
            relp_tls: None,
            relp_faults: RelpFaults::default(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            output: Output::default(),
            max_message: DEFAULT_MAX_MESSAGE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// What the RELP listener does wrong on purpose: how a sender copes with a
/// receiver that stops acknowledging, or refuses messages, is otherwise
/// hard to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelpFaults {
    /// Never answer a `syslog` command (its message is still written).
    pub withhold_acks: bool,
    /// Answer every Nth `syslog` command (over all connections) with `500`
    /// and do not write its message; 0: never.
    pub refuse_every: u64,
    /// Hold every answer back this long (a slow or distant receiver).
    pub answer_delay: Duration,
}

/// Why the receiver could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration names no address at all.
    #[error("nothing to listen on: give at least one of the udp, tcp, tls or relp addresses")]
    NoListener,
    /// TLS needs a certificate and a key.
    #[error("a TLS listener needs both a certificate file and a key file")]
    TlsFilesMissing,
    /// A client CA was given without a TLS listener.
    #[error("a client CA file was given but there is no TLS listener")]
    ClientCaWithoutTls,
    /// `max_message` is 0.
    #[error("max_message must be at least 1 byte")]
    ZeroMaxMessage,
    /// A socket could not be bound.
    #[error("cannot listen on {transport} {addr}: {cause}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason.
        /// Why (in the message; not a `source()`, so a chain prints it once).
        cause: io::Error,
    },
    /// A PEM file could not be read or holds nothing usable.
    #[error("cannot use {what} {path:?}: {reason}")]
    Pem {
        /// Which file: "certificate file", "key file", "client CA file".
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificates or the key (e.g. they do not match).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Writing the output failed (e.g. stdout closed).
    #[error("cannot write received messages: {0}")]
    Output(#[source] io::Error),
}

/// The addresses actually bound (ports resolved when 0 was asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BoundAddrs {
    /// UDP address, if listening.
    pub udp: Option<SocketAddr>,
    /// TCP address, if listening.
    pub tcp: Option<SocketAddr>,
    /// TLS address, if listening.
    pub tls: Option<SocketAddr>,
    /// RELP address, if listening.
    pub relp: Option<SocketAddr>,
    /// RELP over TLS address, if listening.
    pub relp_tls: Option<SocketAddr>,
}

impl fmt::Display for BoundAddrs {
    /// `udp 127.0.0.1:5514, tcp 127.0.0.1:5514` — for a "listening on" line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (name, addr) in [
            ("udp", self.udp),
            ("tcp", self.tcp),
            ("tls", self.tls),
            ("relp", self.relp),
            ("relp-tls", self.relp_tls),
        ] {
            if let Some(addr) = addr {
                write!(f, "{sep}{name} {addr}")?;
                sep = ", ";
            }
        }
        Ok(())
    }
}

/// Live counters, readable while [`Listener::run`] runs (benchmarks poll
/// them; the CLI prints a periodic line from them in [`Output::Discard`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received (all transports).
    pub messages: AtomicU64,
    /// Bytes of those messages, framing excluded.
    pub bytes: AtomicU64,
    /// Messages that were neither RFC 5424 nor RFC 3164 (not counted in
    /// [`Output::Discard`], which parses nothing).
    pub parse_errors: AtomicU64,
    /// Connections closed because of a framing error.
    pub framing_errors: AtomicU64,
    /// TCP and TLS connections accepted.
    pub connections: AtomicU64,
    /// TCP and TLS connections open now.
    pub active_connections: AtomicU64,
    /// TLS handshakes that failed (including refused client certificates).
    pub tls_handshake_errors: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// RELP `syslog` commands answered `200 OK`.
    pub relp_acked: AtomicU64,
    /// RELP `syslog` commands answered `500` ([`RelpFaults::refuse_every`]).
    pub relp_refused: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// See [`Stats::messages`].
    pub messages: u64,
    /// See [`Stats::bytes`].
    pub bytes: u64,
    /// See [`Stats::parse_errors`].
    pub parse_errors: u64,
    /// See [`Stats::framing_errors`].
    pub framing_errors: u64,
    /// See [`Stats::connections`].
    pub connections: u64,
    /// See [`Stats::active_connections`].
    pub active_connections: u64,
    /// See [`Stats::tls_handshake_errors`].
    pub tls_handshake_errors: u64,
    /// See [`Stats::refused_connections`].
    pub refused_connections: u64,
    /// See [`Stats::relp_acked`].
    pub relp_acked: u64,
    /// See [`Stats::relp_refused`].
    pub relp_refused: u64,
}

impl Stats {
    /// Read every counter (each one atomically; not all at one instant).
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages: get(&self.messages),
            bytes: get(&self.bytes),
            parse_errors: get(&self.parse_errors),
            framing_errors: get(&self.framing_errors),
            connections: get(&self.connections),
            active_connections: get(&self.active_connections),
            tls_handshake_errors: get(&self.tls_handshake_errors),
            refused_connections: get(&self.refused_connections),
            relp_acked: get(&self.relp_acked),
            relp_refused: get(&self.relp_refused),
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Bound sockets, ready to [`run`](Listener::run).
pub struct Listener {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
    relp: Option<TcpListener>,
    relp_tls: Option<(TcpListener, TlsAcceptor)>,
    relp_faults: RelpFaults,
    addrs: BoundAddrs,
    output: Output,
    max_message: usize,
    max_connections: usize,
    stats: Arc<Stats>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("addrs", &self.addrs)
            .field("output", &self.output)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Check the configuration, load the TLS files and bind every socket.
    ///
    /// # Errors
    ///
    /// [`Error`] when the configuration is incomplete, a PEM file is
    /// unusable or an address cannot be bound.
    pub async fn bind(cfg: ListenConfig) -> Result<Listener, Error> {
        if cfg.udp.is_none()
            && cfg.tcp.is_none()
            && cfg.tls.is_none()
            && cfg.relp.is_none()
            && cfg.relp_tls.is_none()
        {
            return Err(Error::NoListener);
        }
        if cfg.max_message == 0 {
            return Err(Error::ZeroMaxMessage);
        }
        let any_tls = cfg.tls.is_some() || cfg.relp_tls.is_some();
        if !any_tls && cfg.tls_client_ca_file.is_some() {
            return Err(Error::ClientCaWithoutTls);
        }
        let acceptor = if any_tls {
            let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) else {
                return Err(Error::TlsFilesMissing);
            };
            Some(tls_acceptor(cert, key, cfg.tls_client_ca_file.as_deref())?)
        } else {
            None
        };
        let bind_err = |transport, addr| {
            move |source| Error::Bind {
                transport,
                addr,
                cause: source,
            }
        };
        let mut addrs = BoundAddrs::default();
        let udp = match cfg.udp {
            Some(addr) => {
                let sock = UdpSocket::bind(addr).await.map_err(bind_err("udp", addr))?;
                addrs.udp = Some(sock.local_addr().map_err(bind_err("udp", addr))?);
                Some(sock)
            }
            None => None,
        };
        let tcp = match cfg.tcp {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(bind_err("tcp", addr))?;
                addrs.tcp = Some(l.local_addr().map_err(bind_err("tcp", addr))?);
                Some(l)
            }
            None => None,
        };
        let tls = match (cfg.tls, acceptor.clone()) {
            (Some(addr), Some(acceptor)) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(bind_err("tls", addr))?;
                addrs.tls = Some(l.local_addr().map_err(bind_err("tls", addr))?);
                Some((l, acceptor))
            }
            _ => None,
        };
        let relp = match cfg.relp {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(bind_err("relp", addr))?;
                addrs.relp = Some(l.local_addr().map_err(bind_err("relp", addr))?);
                Some(l)
            }
            None => None,
        };
        let relp_tls = match (cfg.relp_tls, acceptor) {
            (Some(addr), Some(acceptor)) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(bind_err("relp-tls", addr))?;
                addrs.relp_tls = Some(l.local_addr().map_err(bind_err("relp-tls", addr))?);
                Some((l, acceptor))
            }
            _ => None,
        };
        Ok(Listener {
            udp,
            tcp,
            tls,
            relp,
            relp_tls,
            relp_faults: cfg.relp_faults,
            addrs,
            output: cfg.output,
            max_message: cfg.max_message,
            max_connections: cfg.max_connections.max(1),
            stats: Arc::new(Stats::default()),
        })
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// The live counters; keep the handle to read them while `run` runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Receive until `cancel` fires, writing each message to `out` as
    /// configured ([`Output`]). On cancellation it stops accepting, ends
    /// every connection, writes what was already received, flushes `out`
    /// and returns the final counters.
    ///
    /// # Errors
    ///
    /// [`Error::Output`] when writing to `out` fails; the receiver then
    /// stops. Connection errors are logged, never returned.
    pub async fn run<W>(self, mut out: W, cancel: CancellationToken) -> Result<StatsSnapshot, Error>
    where
        W: AsyncWrite + Unpin + Send,
    {
        // Tasks stop on `inner`, so a failing output can stop them without
        // cancelling the caller's token.
        let inner = cancel.child_token();
        let tracker = TaskTracker::new();
        let (tx, mut rx) = mpsc::channel::<Chunk>(OUTPUT_QUEUE);
        let shared = Arc::new(Shared {
            relp_faults: self.relp_faults,
            relp_seen: AtomicU64::new(0),
            output: self.output,
            max_message: self.max_message,
            stats: Arc::clone(&self.stats),
            slots: Arc::new(tokio::sync::Semaphore::new(self.max_connections)),
            floods: std::sync::Mutex::default(),
        });
        if let Some(sock) = self.udp {
            tracker.spawn(serve_udp(
                sock,
                Arc::clone(&shared),
                tx.clone(),
                inner.clone(),
            ));
        }
        let streams = [
            self.tcp.map(|l| (l, Kind::Tcp)),
            self.tls.map(|(l, acceptor)| (l, Kind::Tls(acceptor))),
            self.relp_tls
                .map(|(l, acceptor)| (l, Kind::RelpTls(acceptor))),
            self.relp.map(|l| (l, Kind::Relp)),
        ];
        for (l, kind) in streams.into_iter().flatten() {
            let accept = accept_loop(
                l,
                kind,
                Arc::clone(&shared),
                tx.clone(),
                inner.clone(),
                tracker.clone(),
            );
            tracker.spawn(accept);
        }
        // Every task holds a sender; `recv` returns `None` once they all
        // ended, which is how the writer learns that shutdown is complete.
        drop(tx);
        let mut result = Ok(());
        while let Some(chunk) = rx.recv().await {
            let written = async {
                out.write_all(&chunk.bytes).await?;
                // Flush when idle (a person watching sees each message at
                // once, and a busy receiver still writes in large chunks),
                // and before a RELP sender hears its messages are written.
                if rx.is_empty() || chunk.written.is_some() {
                    out.flush().await?;
                }
                if let Some(done) = chunk.written {
                    let _ = done.send(());
                }
                Ok::<_, io::Error>(())
            }
            .await;
            if let Err(e) = written {
                inner.cancel();
                result = Err(Error::Output(e));
                break;
            }
        }
        drop(rx);
        tracker.close();
        tracker.wait().await;
        result?;
        out.flush().await.map_err(Error::Output)?;
        Ok(self.stats.snapshot())
    }
}

/// Rendered output on its way to the writer, and who waits until it is
/// written (a RELP connection, before it answers).
struct Chunk {
    bytes: Vec<u8>,
    written: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What every task needs to know.
#[derive(Debug)]
struct Shared {
    relp_faults: RelpFaults,
    /// RELP `syslog` commands seen, over all connections (for
    /// [`RelpFaults::refuse_every`]).
    relp_seen: AtomicU64,
    output: Output,
    max_message: usize,
    stats: Arc<Stats>,
    /// One permit per open TCP/TLS connection (`max_connections`).
    slots: Arc<tokio::sync::Semaphore>,
    /// Warnings about refused connections and failed TLS handshakes.
    floods: std::sync::Mutex<(Flood, Flood)>,
}

impl Shared {
    /// Log a failure a peer can repeat: a warning at most once per
    /// [`FLOOD_WINDOW`] for each kind, debug lines for the rest.
    fn flood_warn(&self, tls: bool, peer: &str, what: &str) {
        let allowed = match self.floods.lock() {
            Ok(mut f) => {
                let now = std::time::Instant::now();
                if tls {
                    f.1.warn(now)
                } else {
                    f.0.warn(now)
                }
            }
            Err(_) => Some(0),
        };
        match allowed {
            Some(0) => tracing::warn!(peer, "{what}"),
            Some(held_back) => tracing::warn!(
                peer,
                held_back,
                "{what} (and {held_back} more like it in the last minute, logged at debug)"
            ),
            None => tracing::debug!(peer, "{what}"),
        }
    }
}

impl Shared {
    fn count(&self, len: usize) {
        bump(&self.stats.messages, 1);
        bump(&self.stats.bytes, len as u64);
    }

    /// Count one message and render it into `out` as configured.
    fn message(&self, origin: Origin<'_>, raw: &[u8], out: &mut Vec<u8>) {
        self.count(raw.len());
        let parsed = match self.output {
            Output::Discard => true,
            Output::JsonLines => output::json_line(origin, raw, out),
            Output::Print => {
                let mut text = String::new();
                let ok = output::print_block(origin, raw, &mut text);
                out.extend_from_slice(text.as_bytes());
                ok
            }
        };
        if !parsed {
            bump(&self.stats.parse_errors, 1);
        }
    }
}

/// Hand rendered output to the writer. False when the writer is gone.
async fn send(tx: &mpsc::Sender<Chunk>, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let chunk = Chunk {
        bytes: std::mem::take(out),
        written: None,
    };
    tx.send(chunk).await.is_ok()
}

/// Hand rendered output to the writer and wait until it is written. False
/// when the writer is gone.
async fn send_and_wait(tx: &mpsc::Sender<Chunk>, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let (done, written) = tokio::sync::oneshot::channel();
    let chunk = Chunk {
        bytes: std::mem::take(out),
        written: Some(done),
    };
    tx.send(chunk).await.is_ok() && written.await.is_ok()
}

async fn serve_udp(
    sock: UdpSocket,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Chunk>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; UDP_MAX];
    let mut out = Vec::new();
    loop {
        let received = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                // Transient on an unconnected socket (e.g. ICMP errors
                // surfacing on some systems); keep receiving.
                tracing::debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let mut msg = &buf[..n];
        if let [rest @ .., b'\n'] = msg {
            msg = rest;
        }
        if msg.is_empty() {
            continue;
        }
        if shared.output == Output::Discard {
            // The benchmark path: no peer string, nothing rendered.
            shared.count(msg.len());
            continue;
        }
        let peer = peer.to_string();
        shared.message(
            Origin {
                transport: "udp",
                peer: &peer,
            },
            msg,
            &mut out,
        );
        if !send(&tx, &mut out).await {
            return;
        }
    }
}

/// What runs on an accepted connection.
#[derive(Clone)]
enum Kind {
    Tcp,
    Tls(TlsAcceptor),
    Relp,
    RelpTls(TlsAcceptor),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls(_) => "tls",
            Kind::Relp => "relp",
            Kind::RelpTls(_) => "relp-tls",
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Chunk>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let transport = kind.name();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: wait for connections to
                // close instead of spinning; doubled up to one second.
                tracing::warn!(transport, error = %e, "accept failed, retrying in {backoff:?}");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let Ok(slot) = Arc::clone(&shared.slots).try_acquire_owned() else {
            // Over the limit: closed at once (dropped), counted, warned
            // about at most once a minute.
            bump(&shared.stats.refused_connections, 1);
            shared.flood_warn(
                false,
                &peer.to_string(),
                "too many connections open (listen --max-connections); closed a new one",
            );
            continue;
        };
        bump(&shared.stats.connections, 1);
        let conn = Connection {
            transport,
            peer: peer.to_string(),
            shared: Arc::clone(&shared),
            tx: tx.clone(),
            cancel: cancel.clone(),
        };
        let kind = kind.clone();
        tracker.spawn(async move {
            conn.run(stream, kind).await;
            drop(slot);
        });
    }
}

/// One TCP or TLS connection.
struct Connection {
    transport: &'static str,
    peer: String,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Chunk>,
    cancel: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, kind: Kind) {
        let stats = Arc::clone(&self.shared.stats);
        bump(&stats.active_connections, 1);
        tracing::debug!(transport = self.transport, peer = %self.peer, "connection opened");
        match kind {
            Kind::Tcp => self.serve(stream).await,
            Kind::Relp => self.serve_relp(stream).await,
            Kind::Tls(acceptor) | Kind::RelpTls(acceptor) => {
                let relp = self.transport == "relp-tls";
                let handshake = tokio::select! {
                    _ = self.cancel.cancelled() => None,
                    r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => Some(r),
                };
                match handshake {
                    None => {}
                    Some(Ok(Ok(stream))) if relp => self.serve_relp(stream).await,
                    Some(Ok(Ok(stream))) => self.serve(stream).await,
                    Some(Ok(Err(e))) => {
                        bump(&stats.tls_handshake_errors, 1);
                        self.shared.flood_warn(
                            true,
                            &self.peer,
                            &format!("TLS handshake failed: {e}"),
                        );
                    }
                    Some(Err(_)) => {
                        bump(&stats.tls_handshake_errors, 1);
                        self.shared.flood_warn(
                            true,
                            &self.peer,
                            &format!("TLS handshake timed out after {TLS_HANDSHAKE_TIMEOUT:?}"),
                        );
                    }
                }
            }
        }
        stats.active_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Read, split into frames, render, hand over; until EOF, error or
    /// cancellation.
    async fn serve<S: AsyncRead + Unpin>(&self, mut stream: S) {
        let origin = Origin {
            transport: self.transport,
            peer: &self.peer,
        };
        let mut frames = FrameBuffer::new(self.shared.max_message);
        let mut out = Vec::new();
        loop {
            let read = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = stream.read_buf(frames.read_buf()) => r,
            };
            match read {
                Ok(0) => {
                    if let Some(last) = frames.final_frame() {
                        self.shared.message(origin, frames.get(last), &mut out);
                    }
                    let left = frames.pending().len();
                    if left > 0 {
                        tracing::warn!(transport = self.transport, peer = %self.peer, bytes = left, "connection closed inside a frame; its partial message is dropped");
                    }
                    send(&self.tx, &mut out).await;
                    tracing::debug!(transport = self.transport, peer = %self.peer, "connection closed");
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    // A TLS peer that closes without close_notify shows up as
                    // UnexpectedEof; many senders do that, so it is not news.
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        tracing::debug!(peer = %self.peer, "TLS peer closed without close_notify");
                    } else {
                        tracing::warn!(transport = self.transport, peer = %self.peer, error = %e, "read failed, closing connection");
                    }
                    send(&self.tx, &mut out).await;
                    return;
                }
            }
            loop {
                match frames.next_frame() {
                    Ok(Some(frame)) => self.shared.message(origin, frames.get(frame), &mut out),
                    Ok(None) => break,
                    Err(e) => {
                        bump(&self.shared.stats.framing_errors, 1);
                        tracing::warn!(transport = self.transport, peer = %self.peer, error = %e, "framing error, closing connection");
                        send(&self.tx, &mut out).await;
                        return;
                    }
                }
            }
            if !send(&self.tx, &mut out).await {
                return;
            }
        }
    }
}

/// Build the TLS acceptor from PEM files; with a client CA, client
/// certificates are required and verified against it.
fn tls_acceptor(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, Error> {
    let pem_err = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| Error::Pem {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let certs = read_certs("certificate file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(pem_err("key file", key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("client CA file", ca_file)? {
                roots.add(cert).map_err(|e| Error::Pem {
                    what: "client CA file",
                    path: ca_file.to_owned(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Tls(format!("client CA file {ca_file:?}: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        Error::Tls(format!(
            "certificate {cert_file:?} with key {key_file:?}: {e}"
        ))
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let err = |reason: String| Error::Pem {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".to_owned()));
    }
    Ok(certs)
}
