//! The connected stream shared by the `tcp` and `tls` sinks: the replay
//! queue that makes "duplicates, never gaps" true, writes bounded by
//! `write_timeout`, the connection health check, and reconnects with
//! backoff.
//!
//! # Written is not delivered
//!
//! A batch written into a TCP socket may still be lost: the receiver can die
//! with our bytes unacknowledged, or acknowledged by its kernel but never
//! read (rsyslog stopped with a full receive buffer answers with RST and the
//! bytes are gone). So a written batch is *held* in a replay queue, in
//! order, until it is **safe**:
//!
//! 1. the receiver's TCP has acknowledged every byte of it: the kernel's
//!    count of bytes sent but not acknowledged (`SIOCOUTQ`, see
//!    [`unacked`]) subtracted from the bytes we wrote on *this* connection
//!    (counted below TLS, ciphertext, by [`Counted`]) reaches the batch's
//!    end; and
//! 2. the connection then stayed healthy for `sink.settle_time`: no end of
//!    stream, reset or TLS alert seen by the health check. This covers a
//!    receiver that acknowledged our bytes and dies before reading them, or
//!    that stopped reading to shut down: it closes or resets the connection
//!    soon after, and we see it within the settle time.
//!
//! Only a safe batch goes back to the caller ([`StreamSink::take_safe`]),
//! which may then move its checkpoint. On any connection failure the sink
//! reconnects (exponential backoff with jitter) and writes every held batch
//! again, oldest first, before anything new: the receiver may see a batch
//! twice, never miss one. Past the safe point only an application
//! acknowledgement (RELP) could tell more; a receiver that reads our bytes
//! and then loses them later than the settle time is beyond what TCP can
//! reveal.
//!
//! Held batches are checked every `poll` (a fraction of the settle time)
//! even when no new batch comes ([`StreamSink::next_check`],
//! [`StreamSink::progress`]), so batches become safe, and a dead
//! connection is noticed, without new traffic. A receiver whose window
//! stays shut (nothing acknowledged for `write_timeout` while bytes are
//! outstanding) counts as stalled, like a write that makes no progress.
//!
//! # Incidents
//!
//! Any failure (connect, handshake, write, stall, a connection found dead)
//! drops the connection and starts an *incident* unless one is open: one
//! `warn` line with the cause; the following failures log at `debug`; the
//! first batch that becomes safe afterwards ends the incident with one
//! `info` line giving its duration and failed attempts. The first reconnect
//! of an incident goes at once (a receiver that closed an idle connection is
//! usually right there), later ones wait the backoff delay. Every wait races
//! the cancellation token.
//!
//! # TLS 1.3 and client certificates
//!
//! The client's side of the handshake ends before the server has looked at
//! our certificate, so a receiver that refuses it (or requires one we do
//! not have) says so only *after* `connect` returned, with an alert or a
//! plain close (see the peers notes). So after a TLS 1.3 handshake we wait
//! up to [`TLS13_SETTLE`] for the receiver's first bytes (its session
//! tickets, or its alert) and read them before writing, which spares a
//! pointless write; a later refusal is caught by the settle time above.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::tls::TlsSettings;
use super::{describe_io, human, tcp, Endpoint, Error, Framing, Messages, SinkConfig, Stats};
use crate::backoff::Backoff;
use crate::counters::{self, Metrics};

/// How long a fresh TLS 1.3 connection waits for the receiver's verdict on
/// our certificate before the first write (see the module docs).
const TLS13_SETTLE: Duration = Duration::from_millis(200);

/// Unsolicited bytes read and discarded per health check before giving up
/// on draining them (a syslog receiver has nothing to say to us).
const IDLE_DRAIN_ROUNDS: usize = 16;

/// Bounds of the interval between two health checks while batches are held:
/// a twentieth of the settle time, within these. A check is also when a
/// batch is first seen acknowledged, and its settle time counts from there,
/// so a batch is held about settle time + half this interval: a quarter of
/// the settle time (50 ms) held batches ~12 % longer than the settle time,
/// and the in-flight budget caps throughput at budget ÷ that hold. A check
/// is two syscalls (`recv(MSG_PEEK)`, `ioctl(SIOCOUTQ)`).
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(25);

/// A TCP stream that counts the bytes the kernel accepted from us. Under
/// TLS it sits below rustls, so it counts ciphertext: exactly what the
/// kernel's unacknowledged-bytes figure is about.
pub(crate) struct Counted {
    tcp: TcpStream,
    written: u64,
    /// The last health check stopped draining unsolicited bytes before the
    /// TLS layer ran dry ([`IDLE_DRAIN_ROUNDS`]): what it still holds (an
    /// alert, a close) is read by the next check even if the kernel has
    /// nothing new.
    undrained: bool,
}

impl Counted {
    fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            written: 0,
            undrained: false,
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.written += n as u64;
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // rustls hands its records over as vectored writes.
        let this = self.get_mut();
        let r = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.written += n as u64;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// A connected stream, plain or TLS.
pub(crate) enum Conn {
    Tcp(Counted),
    Tls(Box<TlsStream<Counted>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Conn {
    fn counted(&self) -> &Counted {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    fn counted_mut(&mut self) -> &mut Counted {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => s.get_mut().0,
        }
    }

    fn tcp(&self) -> &TcpStream {
        &self.counted().tcp
    }

    /// Bytes the kernel accepted from us on this connection so far.
    fn written(&self) -> u64 {
        self.counted().written
    }
}

/// Bytes written to `tcp` that the receiver has not acknowledged yet, as
/// the kernel counts them (Linux `SIOCOUTQ`, alias `TIOCOUTQ`: the send
/// queue, sent-but-unacknowledged plus not-yet-sent). `None` where the
/// platform does not tell; the settle time alone then guards the safe
/// point.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unacked(tcp: &TcpStream) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: `ioctl(SIOCOUTQ)` on a TCP socket writes one `int` through
    // its third argument and nothing else; `queued` is a live, aligned
    // `c_int` on our stack for the whole call, and the descriptor stays
    // open because `tcp` is borrowed for the call. No Rust invariant
    // depends on the value the kernel stores.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(u64::try_from(queued).unwrap_or(0)))
}

#[cfg(not(target_os = "linux"))]
fn unacked(_tcp: &TcpStream) -> io::Result<Option<u64>> {
    Ok(None)
}

/// What the kernel holds for us right now, asked with a real `recv(MSG_PEEK)`
/// system call. Tokio's own `try_read`/`poll_read` trust the reactor's
/// readiness, which lags until the reactor turns: a FIN that just arrived
/// would be missed, and the batch written into a dead socket.
fn peek_kernel(tcp: &TcpStream) -> io::Result<Option<usize>> {
    let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(tcp).peek(&mut one) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        // A signal cut the check short: no news is taken as alive.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Is the peer still there? Without waiting for data: nothing pending in the
/// kernel means alive; end of stream, a socket error or a TLS alert means
/// gone. Pending bytes are read through the TLS layer, so post-handshake
/// messages (session tickets) are consumed properly and alerts are decoded;
/// application data from a syslog receiver is unexpected and discarded.
///
/// Returns only once the kernel's receive queue is drained (the TLS layer
/// may need a reactor turn to see bytes the kernel already has); the caller
/// bounds it with a timeout.
async fn idle_check(conn: &mut Conn) -> io::Result<()> {
    // The common case first, in one system call: the receiver sent nothing.
    // Going through the TLS layer every time (to find nothing) cost ~8 % of
    // the CPU per byte over TLS once checks ran every 10 ms. Nothing the
    // peer sent waits inside the TLS layer unprocessed: whatever it read was
    // decoded by the read of an earlier check, which reads until the kernel
    // has nothing left — unless it stopped at its round limit.
    if !conn.counted().undrained {
        match peek_kernel(conn.tcp())? {
            None => return Ok(()),
            Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Some(_) => {}
        }
    }
    conn.counted_mut().undrained = false;
    let mut scratch = [0u8; 1024];
    let mut rounds = 0;
    poll_fn(|cx| loop {
        let mut rb = ReadBuf::new(&mut scratch);
        match Pin::new(&mut *conn).poll_read(cx, &mut rb) {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Ok(())) => {
                tracing::debug!(
                    bytes = rb.filled().len(),
                    "discarding unsolicited bytes from the receiver"
                );
                rounds += 1;
                if rounds >= IDLE_DRAIN_ROUNDS {
                    conn.counted_mut().undrained = true;
                    return Poll::Ready(Ok(()));
                }
            }
            Poll::Pending => {
                return match peek_kernel(conn.tcp()) {
                    Err(e) => Poll::Ready(Err(e)),
                    Ok(None) => Poll::Ready(Ok(())),
                    Ok(Some(0)) => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                    // Bytes the TLS layer has not seen yet: the reactor
                    // will wake us once it notices them.
                    Ok(Some(_)) => Poll::Pending,
                };
            }
        }
    })
    .await
}

/// [`idle_check`], bounded: if the kernel has bytes the TLS layer cannot
/// make progress on within `limit`, the connection is treated as broken.
async fn idle_check_within(conn: &mut Conn, limit: Duration) -> io::Result<()> {
    tokio::time::timeout(limit, idle_check(conn))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the receiver sent bytes that never formed a TLS record",
            ))
        })
}

/// The failures of one incident, from the first failure to the next batch
/// that became safe.
struct Outage {
    started: Instant,
    failures: u32,
}

/// A batch written (or to be written) and not yet safe.
struct Held {
    /// Framed for this sink: its bytes go on the wire as they are, on
    /// every connection.
    msgs: Messages,
    /// Where the batch ends in the bytes written on the current connection;
    /// `None`: not written on it yet (a new connection resets every batch).
    end: Option<u64>,
    /// When the receiver was first seen to have acknowledged all of it.
    acked_at: Option<Instant>,
    /// Writes started for it, on this connection and earlier ones (a
    /// failed write may have delivered part of it).
    writes: u32,
}

/// A `tcp` or `tls` sink.
pub(crate) struct StreamSink {
    /// Where reconnects are counted.
    metrics: Metrics,
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    framing: Framing,
    connect_timeout: Duration,
    write_timeout: Duration,
    settle: Duration,
    poll: Duration,
    backoff: Backoff,
    conn: Option<Conn>,
    /// Written-but-unsafe batches, oldest first.
    held: VecDeque<Held>,
    /// Batches that became safe, oldest first, waiting for the caller.
    safe: VecDeque<Messages>,
    /// The incident in progress, if any.
    outage: Option<Outage>,
    /// Bytes of the current connection acknowledged at the last check.
    acked: u64,
    /// The last time the acknowledged count moved (or nothing was
    /// outstanding): the stall clock.
    ack_moved_at: Instant,
    last_check: Instant,
    stats: Stats,
    /// Since when no connection has been up during the current incident
    /// (its start), `None` while connected or healthy: readable through
    /// [`StreamSink::blocked_watch`] while a call is stuck reconnecting, for
    /// the pipeline's drop policy.
    blocked: watch::Sender<Option<Instant>>,
}

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls)
            .field("framing", &self.framing)
            .field("connected", &self.conn.is_some())
            .field("held", &self.held.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

enum WriteFailure {
    Stalled,
    Io(io::Error),
}

impl StreamSink {
    pub(crate) fn new(
        config: &SinkConfig,
        endpoint: Endpoint,
        tls: Option<TlsSettings>,
        metrics: &Metrics,
    ) -> Self {
        let settle = config.settle_time.0;
        Self {
            metrics: metrics.clone(),
            endpoint,
            tls,
            framing: config.framing,
            connect_timeout: config.connect_timeout.0,
            write_timeout: config.write_timeout.0,
            settle,
            poll: (settle / 20).clamp(POLL_MIN, POLL_MAX),
            backoff: Backoff::new(config.backoff_initial.0, config.backoff_max.0),
            conn: None,
            held: VecDeque::new(),
            safe: VecDeque::new(),
            outage: None,
            acked: 0,
            ack_moved_at: Instant::now(),
            last_check: Instant::now(),
            stats: Stats::default(),
            blocked: watch::channel(None).0,
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The stream framing, which submitted batches should already have.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A readable cause for an I/O error on this connection.
    fn describe(&self, e: &io::Error) -> String {
        match &self.tls {
            Some(tls) => super::tls::describe(e, &tls.server_name()),
            None => describe_io(e),
        }
    }

    /// Connect, handshake, and (TLS 1.3) wait for the receiver's verdict.
    async fn connect(&mut self) -> Result<Conn, String> {
        let addr = &self.endpoint;
        let limit = self.connect_timeout;
        let tcp = match tokio::time::timeout(limit, tcp::connect(addr)).await {
            Err(_) => {
                return Err(format!(
                    "connecting to {addr}: timed out after {}",
                    human(limit)
                ))
            }
            Ok(Err(e)) => return Err(format!("connecting to {addr}: {}", describe_io(&e))),
            Ok(Ok(tcp)) => Counted::new(tcp),
        };
        let Some(tls) = &self.tls else {
            return Ok(Conn::Tcp(tcp));
        };
        let stream = match tokio::time::timeout(limit, tls.handshake(tcp)).await {
            Err(_) => {
                return Err(format!(
                    "TLS handshake with {addr}: timed out after {}",
                    human(limit)
                ))
            }
            Ok(Err(e)) => {
                let cause = super::tls::describe_handshake(&e, &tls.server_name());
                return Err(format!("TLS handshake with {addr}: {cause}"));
            }
            Ok(Ok(s)) => s,
        };
        let tls13 = stream.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let mut conn = Conn::Tls(Box::new(stream));
        if tls13 {
            let settle = TLS13_SETTLE.min(limit);
            let mut one = [0u8; 1];
            let arrived = tokio::time::timeout(settle, conn.tcp().peek(&mut one))
                .await
                .is_ok();
            if arrived {
                if let Err(e) = idle_check_within(&mut conn, limit).await {
                    let cause = super::tls::describe_post_handshake(&e, &tls.server_name());
                    return Err(format!("TLS session with {addr}: {cause}"));
                }
            }
        }
        Ok(conn)
    }

    /// Use `conn` from now on: nothing held was written on it yet.
    fn attach(&mut self, conn: Conn) {
        if self.stats.connects > 0 {
            self.stats.reconnects += 1;
            counters::add(&self.metrics.reconnects, 1);
        }
        self.stats.connects += 1;
        for h in &mut self.held {
            h.end = None;
            h.acked_at = None;
        }
        self.acked = 0;
        self.ack_moved_at = Instant::now();
        self.conn = Some(conn);
        self.blocked.send_if_modified(|b| b.take().is_some());
    }

    /// Write one framed batch (many messages per system call); each write
    /// must make progress within `write_timeout`.
    async fn write_batch(conn: &mut Conn, buf: &[u8], limit: Duration) -> Result<(), WriteFailure> {
        let mut off = 0;
        while off < buf.len() {
            match tokio::time::timeout(limit, conn.write(&buf[off..])).await {
                Err(_) => return Err(WriteFailure::Stalled),
                Ok(Err(e)) => return Err(WriteFailure::Io(e)),
                Ok(Ok(0)) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
                Ok(Ok(n)) => off += n,
            }
        }
        match tokio::time::timeout(limit, conn.flush()).await {
            Err(_) => Err(WriteFailure::Stalled),
            Ok(Err(e)) => Err(WriteFailure::Io(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    fn stalled_cause(&self) -> String {
        format!(
            "writing to {}: no progress for {} (the receiver stopped reading)",
            self.endpoint,
            human(self.write_timeout)
        )
    }

    /// Record a failure and drop the connection: the first failure of an
    /// incident is logged at `warn`, the following ones at `debug`.
    fn fail(&mut self, cause: String) {
        self.conn = None;
        match &mut self.outage {
            None => {
                tracing::warn!(
                    receiver = %self.endpoint,
                    cause = %cause,
                    held_batches = self.held.len(),
                    "connection to the SIEM failed; reconnecting with backoff, batches not yet safe will be sent again"
                );
                self.stats.incidents += 1;
                self.outage = Some(Outage {
                    started: Instant::now(),
                    failures: 1,
                });
            }
            Some(o) => {
                o.failures += 1;
                tracing::debug!(receiver = %self.endpoint, cause = %cause, failures = o.failures, "reconnect failed");
            }
        }
        self.stats.last_error = Some(cause);
        let since = self.outage.as_ref().map(|o| o.started);
        self.blocked
            .send_if_modified(|b| std::mem::replace(b, since) != since);
    }

    /// Hand a batch to the sink: it is written now (after reconnecting and
    /// writing the held batches again, if the connection is gone) and held
    /// until safe. A batch not framed for this sink is framed here, once.
    pub(crate) async fn submit(
        &mut self,
        mut msgs: Messages,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        msgs.reframe(Some(self.framing));
        self.held.push_back(Held {
            msgs,
            end: None,
            acked_at: None,
            writes: 0,
        });
        self.write_held(cancel).await
    }

    /// Make sure every held batch is written on a healthy connection:
    /// check the connection, reconnect with backoff when it is gone, write
    /// what was not written on it yet, oldest first.
    async fn write_held(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        'connection: loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if self.held.is_empty() {
                return Ok(());
            }
            let mut conn = match self.conn.take() {
                Some(mut conn) => match idle_check_within(&mut conn, self.write_timeout).await {
                    Ok(()) => conn,
                    Err(e) => {
                        let cause = format!(
                            "connection to {} lost while idle: {}",
                            self.endpoint,
                            self.describe(&e)
                        );
                        self.fail(cause);
                        continue;
                    }
                },
                None => {
                    // Connected or not, the loop looks again.
                    self.reconnect_once(cancel).await?;
                    continue;
                }
            };
            let Some(first) = self.held.iter().position(|h| h.end.is_none()) else {
                self.conn = Some(conn);
                return Ok(());
            };
            // Nothing was outstanding: the stall clock starts with this
            // write, not at the last acknowledgement.
            if conn.written() <= self.acked {
                self.ack_moved_at = Instant::now();
            }
            for i in first..self.held.len() {
                self.held[i].writes += 1;
                let bytes = self.held[i].msgs.framed();
                let written = tokio::select! {
                    biased;
                    // A frame may be half written: the connection is
                    // dropped, and everything held goes again on the next.
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    r = Self::write_batch(&mut conn, bytes, self.write_timeout) => r,
                };
                match written {
                    Ok(()) => {
                        let h = &mut self.held[i];
                        h.end = Some(conn.written());
                        if h.writes > 1 {
                            self.stats.resent_messages += h.msgs.len() as u64;
                        }
                    }
                    Err(WriteFailure::Stalled) => {
                        let cause = self.stalled_cause();
                        self.fail(cause);
                        continue 'connection;
                    }
                    Err(WriteFailure::Io(e)) => {
                        let cause = format!("writing to {}: {}", self.endpoint, self.describe(&e));
                        self.fail(cause);
                        continue 'connection;
                    }
                }
            }
            self.conn = Some(conn);
            return Ok(());
        }
    }

    /// When [`StreamSink::progress`] should run next; `None` while nothing
    /// is held.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        let front = self.held.front()?;
        if self.conn.is_none() {
            return Some(Instant::now());
        }
        let mut due = self.last_check + self.poll;
        if let Some(t) = front.acked_at {
            due = due.min(t + self.settle);
        }
        Some(due)
    }

    /// Check the connection, note what the receiver acknowledged, and move
    /// batches that stayed acknowledged on a healthy connection for the
    /// settle time to the safe queue. A failed check reconnects and writes
    /// every held batch again.
    pub(crate) async fn progress(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        self.last_check = Instant::now();
        if self.held.is_empty() {
            return Ok(());
        }
        let Some(mut conn) = self.conn.take() else {
            return self.write_held(cancel).await;
        };
        let health = match idle_check_within(&mut conn, self.write_timeout).await {
            Ok(()) => unacked(conn.tcp()),
            Err(e) => Err(e),
        };
        let unacked = match health {
            Ok(n) => n,
            Err(e) => {
                let cause = format!(
                    "connection to {} lost: {}",
                    self.endpoint,
                    self.describe(&e)
                );
                self.fail(cause);
                return self.write_held(cancel).await;
            }
        };
        let now = Instant::now();
        let written = conn.written();
        // Without the kernel's figure, written counts as acknowledged and
        // the settle time alone guards the safe point.
        let acked = written.saturating_sub(unacked.unwrap_or(0));
        if acked > self.acked || acked == written {
            self.acked = acked;
            self.ack_moved_at = now;
        }
        self.conn = Some(conn);
        if now.duration_since(self.ack_moved_at) >= self.write_timeout {
            let cause = self.stalled_cause();
            self.fail(cause);
            return self.write_held(cancel).await;
        }
        for h in &mut self.held {
            match h.end {
                Some(end) if end <= acked => {
                    h.acked_at.get_or_insert(now);
                }
                _ => break,
            }
        }
        while let Some(h) = self.held.front() {
            match h.acked_at {
                Some(t) if now.duration_since(t) >= self.settle => {}
                _ => break,
            }
            if let Some(h) = self.held.pop_front() {
                self.safe.push_back(h.msgs);
            }
            if let Some(o) = self.outage.take() {
                self.backoff.reset();
                tracing::info!(
                    receiver = %self.endpoint,
                    outage = %human(o.started.elapsed()),
                    failed_attempts = o.failures,
                    resent_messages_so_far = self.stats.resent_messages,
                    "connection to the SIEM restored; batch delivered"
                );
            }
        }
        Ok(())
    }

    /// The oldest batch that became safe, in submit order.
    pub(crate) fn take_safe(&mut self) -> Option<Messages> {
        self.safe.pop_front()
    }

    /// Batches submitted and not yet safe.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Follow the `blocked` field: `Some(since)` while no connection is
    /// up, `since` being when the incident began (nothing became safe
    /// since); `None` while connected.
    pub(crate) fn blocked_watch(&self) -> watch::Receiver<Option<Instant>> {
        self.blocked.subscribe()
    }

    /// Give up every held batch, oldest first: the pipeline's drop policy
    /// after the receiver was unreachable for too long. Batches already
    /// safe stay for [`StreamSink::take_safe`].
    pub(crate) fn discard_held(&mut self) -> Vec<Messages> {
        self.held.drain(..).map(|h| h.msgs).collect()
    }

    /// One step back to a connection: the backoff delay when the incident
    /// already failed more than once, then one attempt, with the incident's
    /// bookkeeping. [`StreamSink::write_held`] loops on it; the drop policy
    /// calls it directly while nothing is held (it discarded everything, so
    /// `write_held` has nothing to reconnect for). `Ok(true)` once connected.
    pub(crate) async fn reconnect_once(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<bool, Error> {
        if self.conn.is_some() {
            return Ok(true);
        }
        if self.outage.as_ref().is_some_and(|o| o.failures > 1) {
            let delay = self.backoff.next_delay();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
        let attempt = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            r = self.connect() => r,
        };
        match attempt {
            Ok(conn) => {
                self.attach(conn);
                Ok(true)
            }
            Err(cause) => {
                self.fail(cause);
                Ok(false)
            }
        }
    }

    /// Submit `msgs` and wait until it (and everything held before it) is
    /// safe.
    #[cfg(test)]
    pub(crate) async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        self.submit(msgs.clone(), cancel).await?;
        while let Some(due) = self.next_check() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = tokio::time::sleep_until(due) => {}
            }
            self.progress(cancel).await?;
        }
        // Ours is the newest; earlier ones stay for `take_safe`.
        self.safe.pop_back();
        Ok(())
    }

    pub(crate) async fn check(&mut self) -> Result<(), Error> {
        self.conn = None;
        match self.connect().await {
            Ok(conn) => {
                self.attach(conn);
                Ok(())
            }
            Err(cause) => {
                self.stats.last_error = Some(cause.clone());
                Err(Error::Connection(cause))
            }
        }
    }

    pub(crate) async fn close(&mut self) {
        if !self.held.is_empty() {
            tracing::debug!(
                held_batches = self.held.len(),
                "closing with batches not yet safe; they are not committed"
            );
        }
        if let Some(mut conn) = self.conn.take() {
            // TLS: sends close_notify (RFC 5425 §4.4), then FIN.
            match tokio::time::timeout(self.write_timeout, conn.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %describe_io(&e), "closing the connection"),
                Err(_) => tracing::debug!("closing the connection timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpSocket};
    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{
        batch, big_batch, config, framed, read_all, read_n, within, LogCapture,
    };
    use super::super::{Error, Framing, Messages, Sink, Transport};
    use crate::config::units::HumanDuration;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        (l, addr)
    }

    /// A listener whose accepted sockets have a tiny receive buffer, so a
    /// client fills the path after a few KiB when nobody reads.
    fn small_buffer_listener() -> (TcpListener, String) {
        let s = TcpSocket::new_v4().expect("socket");
        s.set_recv_buffer_size(4096).expect("rcvbuf");
        s.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let l = s.listen(8).expect("listen");
        let addr = l.local_addr().expect("addr").to_string();
        (l, addr)
    }

    /// A port nobody listens on.
    async fn closed_port() -> String {
        let (l, addr) = listener().await;
        drop(l);
        addr
    }

    #[tokio::test]
    async fn tcp_octet_counting_frames_exact_bytes() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let msgs = batch(&[
            "<14>1 - h app - - - one",
            "<14>1 - h app - - - d\u{e9}ux\nlines",
        ]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(
            got,
            "23 <14>1 - h app - - - one31 <14>1 - h app - - - d\u{e9}ux\nlines".as_bytes()
        );
    }

    #[tokio::test]
    async fn tcp_lf_framing_appends_lf_to_each_message() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.framing = Framing::Lf;
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let msgs = batch(&["<14>1 a", "<14>1 b"]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(got, b"<14>1 a\n<14>1 b\n");
    }

    #[tokio::test]
    async fn tcp_writes_a_batch_framed_for_it_without_copying() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let mut msgs = Messages::with_framing(sink.batch_framing());
        for i in 0..1000 {
            msgs.buffer()
                .extend_from_slice(format!("<14>1 - h app - m{i} - {}", "x".repeat(40)).as_bytes());
            msgs.commit();
        }
        let expected = framed(&msgs, Framing::OctetCounting);
        let at = msgs.framed().as_ptr();
        let cancel = CancellationToken::new();
        within("submit", sink.submit(msgs, &cancel))
            .await
            .expect("submit");
        // The batch's own buffer, framed as it was formatted, is what went
        // to the socket: held as it is, not framed again.
        let super::super::Inner::Stream(stream) = &sink.inner else {
            panic!("not a stream sink")
        };
        let held = &stream.held[0].msgs;
        assert_eq!(held.framed().as_ptr(), at);
        assert_eq!(held.framed(), expected);
        let safe = within("drain", drain(&mut sink)).await;
        assert_eq!(safe.len(), 1);
        assert_eq!(safe[0].framed().as_ptr(), at, "the buffer comes back");
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn tcp_unframed_batch_is_framed_once_at_submit() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.framing = Framing::Lf;
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let msgs = batch(&["<14>1 a", "<14>1 b"]);
        assert_eq!(msgs.framing(), None);
        let cancel = CancellationToken::new();
        within("submit", sink.submit(msgs, &cancel))
            .await
            .expect("submit");
        let safe = within("drain", drain(&mut sink)).await;
        assert_eq!(safe[0].framing(), Some(Framing::Lf));
        assert_eq!(safe[0].iter().collect::<Vec<_>>(), [b"<14>1 a", b"<14>1 b"]);
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(got, b"<14>1 a\n<14>1 b\n");
    }

    #[tokio::test]
    async fn tcp_resends_whole_batch_after_connection_reset_mid_batch() {
        let (l, addr) = small_buffer_listener();
        let msgs = big_batch(8 * 1024, 1000); // ~8 MiB: far more than the path holds
        let expected = framed(&msgs, Framing::OctetCounting);
        let len = expected.len();
        let server = tokio::spawn(async move {
            // First connection: read a little, then reset it while the
            // client is still writing.
            let (mut first, _) = l.accept().await.expect("accept 1");
            let head = read_n(&mut first, 100).await;
            socket2::SockRef::from(&first)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
            drop(first);
            // Second connection: the whole batch again, from its start.
            let (mut second, _) = within("second connection", l.accept())
                .await
                .expect("accept 2");
            let again = read_n(&mut second, len).await;
            // Stay connected: a close now would be one more failure.
            let _ = read_all(&mut second).await;
            (head, again)
        });
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let (head, again) = within("server", server).await.expect("server task");
        assert_eq!(head, &expected[..100]);
        assert!(
            again == expected,
            "second connection did not get the whole batch"
        );
        let stats = sink.stats();
        assert_eq!(
            (stats.connects, stats.reconnects, stats.incidents),
            (2, 1, 1)
        );
        let cause = stats.last_error.as_deref().unwrap_or_default();
        assert!(
            cause.starts_with(&format!("writing to {addr}: ")),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn tcp_idle_peer_close_is_detected_before_writing() {
        let (l, addr) = listener().await;
        let first_batch = batch(&["<14>1 first"]);
        let second_batch = batch(&["<14>1 second"]);
        let n1 = framed(&first_batch, Framing::OctetCounting).len();
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut first, _) = l.accept().await.expect("accept 1");
            let got1 = read_n(&mut first, n1).await;
            within("send 1 done", sent_rx).await.expect("sent");
            drop(first); // the receiver closes an idle connection
            closed_tx.send(()).expect("notify");
            let (mut second, _) = within("reconnect", l.accept()).await.expect("accept 2");
            (got1, read_all(&mut second).await)
        });
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let cancel = CancellationToken::new();
        within("send 1", sink.send(&first_batch, &cancel))
            .await
            .expect("send 1");
        sent_tx.send(()).expect("notify");
        within("server close", closed_rx).await.expect("closed");
        within("send 2", sink.send(&second_batch, &cancel))
            .await
            .expect("send 2");
        sink.close().await;
        let (got1, got2) = within("server", server).await.expect("server task");
        assert_eq!(got1, b"11 <14>1 first");
        assert_eq!(got2, b"12 <14>1 second");
        let cause = sink.stats().last_error.clone().unwrap_or_default();
        assert!(cause.contains("lost while idle"), "{cause}");
    }

    /// Drive `sink` until nothing is held, collecting what became safe.
    async fn drain(sink: &mut Sink) -> Vec<Messages> {
        let cancel = CancellationToken::new();
        let mut out = Vec::new();
        while let Some(due) = sink.next_check() {
            tokio::time::sleep_until(due).await;
            sink.progress(&cancel).await.expect("progress");
            while let Some(m) = sink.take_safe() {
                out.push(m);
            }
        }
        out
    }

    #[tokio::test]
    async fn tcp_receiver_closing_during_settle_gets_the_batch_again() {
        let (l, addr) = listener().await;
        let msgs = batch(&["<14>1 first"]);
        let expected = framed(&msgs, Framing::OctetCounting);
        let n = expected.len();
        let server = tokio::spawn(async move {
            // Read it all (our TCP sees it acknowledged), then close before
            // the settle time is over: a receiver shutting down.
            let (mut first, _) = l.accept().await.expect("accept 1");
            let got1 = read_n(&mut first, n).await;
            drop(first);
            let (mut second, _) = within("reconnect", l.accept()).await.expect("accept 2");
            (got1, read_all(&mut second).await)
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.settle_time = HumanDuration(Duration::from_millis(500));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let (got1, got2) = within("server", server).await.expect("server task");
        assert_eq!(got1, expected);
        assert_eq!(got2, expected, "the unsafe batch was not written again");
        assert_eq!(sink.stats().reconnects, 1);
        assert_eq!(sink.stats().resent_messages, 1);
    }

    #[tokio::test]
    async fn tcp_batches_unread_at_a_reset_come_again_in_order() {
        // The receiver reads part of the stream, then dies with the rest
        // acknowledged-or-not in its buffers (close with unread data: RST).
        let (l, addr) = small_buffer_listener();
        let batches: Vec<Messages> = (0..6)
            .map(|b| {
                let lines: Vec<String> = (0..50)
                    .map(|i| format!("<14>1 - h app - b{b}m{i} - {}", "y".repeat(200)))
                    .collect();
                batch(&lines)
            })
            .collect();
        let all: Vec<u8> = batches
            .iter()
            .flat_map(|m| framed(m, Framing::OctetCounting))
            .collect();
        let total = all.len();
        let server = tokio::spawn(async move {
            let (mut first, _) = l.accept().await.expect("accept 1");
            let head = read_n(&mut first, 5000).await;
            socket2::SockRef::from(&first)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
            drop(first);
            let (mut second, _) = within("reconnect", l.accept()).await.expect("accept 2");
            (head, read_all(&mut second).await)
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.settle_time = HumanDuration(Duration::from_millis(300));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let cancel = CancellationToken::new();
        for m in &batches {
            within("submit", sink.submit(m.clone(), &cancel))
                .await
                .expect("submit");
        }
        let safe = within("drain", drain(&mut sink)).await;
        sink.close().await;
        let (head, again) = within("server", server).await.expect("server task");
        assert_eq!(head, all[..5000]);
        // Nothing became safe on the first connection: all of it again,
        // from the first batch's first byte, in order.
        assert_eq!(again.len(), total);
        assert!(
            again == all,
            "the second connection did not get every batch in order"
        );
        assert_eq!(safe.len(), batches.len());
        let resent = sink.stats().resent_messages;
        assert!(resent > 0 && resent <= 300, "resent {resent}");
        for (got, sent) in safe.iter().zip(&batches) {
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                sent.iter().collect::<Vec<_>>()
            );
        }
    }

    #[tokio::test]
    async fn tcp_batch_is_safe_only_after_the_settle_time() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let settle = Duration::from_millis(400);
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.settle_time = HumanDuration(settle);
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        sink.submit(batch(&["<14>1 a"]), &cancel)
            .await
            .expect("submit");
        assert_eq!(sink.in_flight(), 1);
        assert!(sink.take_safe().is_none(), "safe at once after writing");
        let safe = within("drain", drain(&mut sink)).await;
        let took = started.elapsed();
        assert_eq!(safe.len(), 1);
        assert!(
            took >= settle,
            "safe after {took:?}, settle time {settle:?}"
        );
        assert!(took < settle * 3, "safe only after {took:?}");
        sink.close().await;
        assert_eq!(
            within("server", server).await.expect("server"),
            b"7 <14>1 a"
        );
    }

    #[tokio::test]
    async fn tcp_unacknowledged_bytes_keep_a_batch_unsafe() {
        // A receiver that does not read: its window closes and part of the
        // batch stays in our send queue, unacknowledged.
        let (l, addr) = small_buffer_listener();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            within("go", go_rx).await.expect("go");
            read_all(&mut s).await
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.settle_time = HumanDuration(Duration::from_millis(10));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let cancel = CancellationToken::new();
        let msgs = big_batch(16, 1000); // ~16 KiB: more than the receiver's buffer
        let expected = framed(&msgs, Framing::OctetCounting);
        within("submit", sink.submit(msgs, &cancel))
            .await
            .expect("submit");
        let until = tokio::time::Instant::now() + Duration::from_millis(300);
        while tokio::time::Instant::now() < until {
            let due = sink.next_check().expect("held");
            tokio::time::sleep_until(due).await;
            sink.progress(&cancel).await.expect("progress");
            assert!(sink.take_safe().is_none(), "safe while not acknowledged");
        }
        go_tx.send(()).expect("go");
        let safe = within("drain", drain(&mut sink)).await;
        assert_eq!(safe.len(), 1);
        sink.close().await;
        assert!(within("server", server).await.expect("server") == expected);
        assert_eq!(sink.stats().incidents, 0);
    }

    #[tokio::test]
    async fn tcp_window_shut_for_write_timeout_is_a_stall() {
        // Bytes written but never acknowledged: after write_timeout without
        // progress the connection is given up and the batch goes again.
        let (l, addr) = small_buffer_listener();
        let server = tokio::spawn(async move {
            let (first, _) = l.accept().await.expect("accept 1");
            let (mut second, _) = within("reconnect", l.accept()).await.expect("accept 2");
            drop(first);
            read_all(&mut second).await
        });
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.write_timeout = HumanDuration(Duration::from_millis(300));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let msgs = big_batch(16, 1000);
        let expected = framed(&msgs, Framing::OctetCounting);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        assert!(within("server", server).await.expect("server") == expected);
        let cause = sink.stats().last_error.clone().unwrap_or_default();
        assert!(cause.contains("no progress for 300ms"), "{cause}");
    }

    #[tokio::test]
    async fn tcp_cancel_during_backoff_returns_cancelled_promptly() {
        let addr = closed_port().await;
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.backoff_initial = HumanDuration(Duration::from_secs(30));
        cfg.backoff_max = HumanDuration(Duration::from_secs(30));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let cancel = CancellationToken::new();
        let canceller = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                cancel.cancel();
            })
        };
        let started = std::time::Instant::now();
        let r = sink.send(&batch(&["<14>1 x"]), &cancel).await;
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        canceller.await.expect("canceller");
        let stats = sink.stats();
        assert_eq!((stats.connects, stats.incidents), (0, 1));
        let cause = stats.last_error.as_deref().unwrap_or_default();
        assert_eq!(cause, format!("connecting to {addr}: connection refused"));
    }

    #[tokio::test]
    async fn tcp_write_timeout_against_a_receiver_that_never_reads() {
        let (l, addr) = small_buffer_listener();
        let cancel = CancellationToken::new();
        let server = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let (first, _) = l.accept().await.expect("accept 1");
                // Never read. The sink must give up on this connection
                // and come back: that reconnect is the signal.
                let second = within("reconnect after the write timeout", l.accept()).await;
                cancel.cancel();
                drop((first, second));
            })
        };
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.write_timeout = HumanDuration(Duration::from_millis(300));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let r = within("send", sink.send(&big_batch(8 * 1024, 1000), &cancel)).await;
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        within("server", server).await.expect("server task");
        let cause = sink.stats().last_error.clone().unwrap_or_default();
        assert_eq!(
            cause,
            format!("writing to {addr}: no progress for 300ms (the receiver stopped reading)")
        );
    }

    #[tokio::test]
    async fn tcp_outage_logs_one_warn_then_one_info() {
        let logs = LogCapture::default();
        let _guard = logs.install();
        let addr = closed_port().await;
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let server = {
            let (logs, addr) = (logs.clone(), addr.clone());
            tokio::spawn(async move {
                // Come back only after several failed reconnects.
                while logs.count("DEBUG", "reconnect failed") < 3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let l = TcpListener::bind(&addr).await.expect("rebind the port");
                let (mut s, _) = l.accept().await.expect("accept");
                read_all(&mut s).await
            })
        };
        within("send", sink.send(&batch(&["m"]), &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        assert_eq!(within("server", server).await.expect("server"), b"1 m");
        assert_eq!(logs.count("WARN", ""), 1, "{:#?}", logs.lines());
        assert_eq!(logs.count("WARN", "connection refused"), 1);
        assert_eq!(logs.count("INFO", "connection to the SIEM restored"), 1);
        assert_eq!(logs.count("INFO", "failed_attempts="), 1);
    }

    #[tokio::test]
    async fn tcp_check_reports_connection_refused_in_one_line() {
        let addr = closed_port().await;
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let err = sink.check().await.expect_err("nobody listens");
        assert_eq!(
            err.to_string(),
            format!("connecting to {addr}: connection refused")
        );
    }

    #[tokio::test]
    async fn tcp_check_keeps_the_connection_for_send() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        sink.check().await.expect("check");
        within("send", sink.send(&batch(&["m"]), &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        assert_eq!(within("server", server).await.expect("server"), b"1 m");
        assert_eq!(sink.stats().connects, 1);
    }

    #[tokio::test]
    async fn empty_batch_is_delivered_without_connecting() {
        let addr = closed_port().await;
        let mut sink = Sink::build(
            &config(Transport::Tcp, &addr),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        sink.send(&batch::<&str>(&[]), &CancellationToken::new())
            .await
            .expect("empty batch");
        assert_eq!(sink.stats().connects, 0);
    }
}
