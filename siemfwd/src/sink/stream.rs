//! The connected stream shared by the `tcp` and `tls` sinks: one framing
//! buffer, writes bounded by `write_timeout`, a liveness check before reusing
//! an idle connection, and reconnects with backoff.
//!
//! One `send` = frame the whole batch into the connection's reused buffer,
//! then write it all and flush (RFC 6587 §3.4 framing from `framing.rs`).
//! Any failure (connect, handshake, write, stalled receiver) drops the
//! connection and starts an *incident*: one `warn` line with the cause, then
//! reconnect attempts with exponential backoff and jitter (the first one at
//! once, since a receiver that closed an idle connection is usually right
//! there), then the whole batch again from its start. Every wait races the
//! cancellation token.
//!
//! TLS 1.3 and client certificates: the client's side of the handshake ends
//! before the server has looked at our certificate, so a receiver that
//! refuses it (or requires one we do not have) says so only *after*
//! `connect` returned, with an alert or a plain close (see the peers notes).
//! A batch written at once would land in a connection about to die and be
//! reported delivered. So after a TLS 1.3 handshake we wait up to
//! [`TLS13_SETTLE`] for the receiver's first bytes (its session tickets, or
//! its alert) and read them before writing. A receiver that sends nothing
//! after the handshake costs that wait once per connection; a receiver that
//! rejects us later than that is caught by the next idle check, and the
//! batch written meanwhile is lost: TCP has no acknowledgement to tell.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::tls::TlsSettings;
use super::{
    describe_io, framing, human, tcp, Endpoint, Error, Framing, Messages, SinkConfig, Stats,
};
use crate::counters::{self, COUNTERS};

/// How long a fresh TLS 1.3 connection waits for the receiver's verdict on
/// our certificate before the first write (see the module docs).
const TLS13_SETTLE: Duration = Duration::from_millis(200);

/// Unsolicited bytes read and discarded per idle check before giving up on
/// draining them (a syslog receiver has nothing to say to us).
const IDLE_DRAIN_ROUNDS: usize = 16;

/// A connected stream, plain or TLS.
pub(crate) enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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

/// Is the peer still there? One non-blocking read: nothing to read means
/// alive; end of stream, an error or a TLS alert means gone. Reading goes
/// through the TLS layer so post-handshake messages (session tickets) are
/// consumed properly and alerts are decoded.
async fn idle_check(conn: &mut Conn) -> io::Result<()> {
    let mut scratch = [0u8; 1024];
    for _ in 0..IDLE_DRAIN_ROUNDS {
        let read = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *conn).poll_read(cx, &mut rb) {
                Poll::Pending => Poll::Ready(Ok(None)),
                Poll::Ready(Ok(())) => Poll::Ready(Ok(Some(rb.filled().len()))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            }
        })
        .await?;
        match read {
            None => return Ok(()),
            Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Some(n) => tracing::debug!(bytes = n, "discarding unsolicited bytes from the receiver"),
        }
    }
    Ok(())
}

/// The failures of one outage, from the first failure to the next delivery.
struct Outage {
    started: Instant,
    failures: u32,
}

/// A `tcp` or `tls` sink.
pub(crate) struct StreamSink {
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    framing: Framing,
    connect_timeout: Duration,
    write_timeout: Duration,
    backoff: Backoff,
    conn: Option<Conn>,
    /// The framed batch; reused across batches and across resends.
    buf: Vec<u8>,
    stats: Stats,
}

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls)
            .field("framing", &self.framing)
            .field("connected", &self.conn.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl StreamSink {
    pub(crate) fn new(config: &SinkConfig, endpoint: Endpoint, tls: Option<TlsSettings>) -> Self {
        Self {
            endpoint,
            tls,
            framing: config.framing,
            connect_timeout: config.connect_timeout.0,
            write_timeout: config.write_timeout.0,
            backoff: Backoff::new(config.backoff_initial.0, config.backoff_max.0),
            conn: None,
            buf: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
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
            Ok(Ok(tcp)) => tcp,
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
            Ok(Err(e)) => return Err(format!("TLS handshake with {addr}: {}", self.describe(&e))),
            Ok(Ok(s)) => s,
        };
        let tls13 = stream.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let mut conn = Conn::Tls(Box::new(stream));
        if tls13 {
            let settle = TLS13_SETTLE.min(limit);
            let arrived = match &conn {
                Conn::Tls(s) => {
                    let mut one = [0u8; 1];
                    tokio::time::timeout(settle, s.get_ref().0.peek(&mut one))
                        .await
                        .is_ok()
                }
                Conn::Tcp(_) => false,
            };
            if arrived {
                if let Err(e) = idle_check(&mut conn).await {
                    return Err(format!("TLS session with {addr}: {}", self.describe(&e)));
                }
            }
        }
        Ok(conn)
    }

    /// Write the framed batch; each write must make progress within
    /// `write_timeout`.
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

    /// Record a failure: the first of an outage is logged at `warn`, the
    /// following ones at `debug`.
    fn fail(&mut self, outage: &mut Option<Outage>, cause: String) {
        match outage {
            None => {
                tracing::warn!(
                    receiver = %self.endpoint,
                    cause = %cause,
                    "connection to the SIEM failed; reconnecting with backoff, the batch will be sent again from its start"
                );
                self.stats.incidents += 1;
                *outage = Some(Outage {
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
    }

    fn connected(&mut self) {
        if self.stats.connects > 0 {
            self.stats.reconnects += 1;
            counters::add(&COUNTERS.reconnects, 1);
        }
        self.stats.connects += 1;
    }

    pub(crate) async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        framing::frame_batch(&mut self.buf, msgs, self.framing);
        let mut outage: Option<Outage> = None;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let mut conn = match self.conn.take() {
                Some(mut conn) => match idle_check(&mut conn).await {
                    Ok(()) => conn,
                    Err(e) => {
                        let cause = format!(
                            "connection to {} lost while idle: {}",
                            self.endpoint,
                            self.describe(&e)
                        );
                        self.fail(&mut outage, cause);
                        continue;
                    }
                },
                None => {
                    // The first attempt of an outage goes at once; later
                    // ones wait, so a receiver that accepts and then drops
                    // us is not hammered either.
                    if outage.as_ref().is_some_and(|o| o.failures > 1) {
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
                            self.connected();
                            conn
                        }
                        Err(cause) => {
                            self.fail(&mut outage, cause);
                            continue;
                        }
                    }
                }
            };
            if cancel.is_cancelled() {
                self.conn = Some(conn);
                return Err(Error::Cancelled);
            }
            let written = tokio::select! {
                biased;
                // A frame may be half written: the connection is dropped.
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                r = Self::write_batch(&mut conn, &self.buf, self.write_timeout) => r,
            };
            match written {
                Ok(()) => {
                    self.conn = Some(conn);
                    self.backoff.reset();
                    if let Some(o) = outage {
                        tracing::info!(
                            receiver = %self.endpoint,
                            outage = %human(o.started.elapsed()),
                            failed_attempts = o.failures,
                            "connection to the SIEM restored; batch delivered"
                        );
                    }
                    return Ok(());
                }
                Err(WriteFailure::Stalled) => {
                    let cause = format!(
                        "writing to {}: no progress for {} (the receiver stopped reading)",
                        self.endpoint,
                        human(self.write_timeout)
                    );
                    self.fail(&mut outage, cause);
                }
                Err(WriteFailure::Io(e)) => {
                    let cause = format!("writing to {}: {}", self.endpoint, self.describe(&e));
                    self.fail(&mut outage, cause);
                }
            }
        }
    }

    pub(crate) async fn check(&mut self) -> Result<(), Error> {
        self.conn = None;
        match self.connect().await {
            Ok(conn) => {
                self.connected();
                self.conn = Some(conn);
                Ok(())
            }
            Err(cause) => {
                self.stats.last_error = Some(cause.clone());
                Err(Error::Connection(cause))
            }
        }
    }

    pub(crate) async fn close(&mut self) {
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

enum WriteFailure {
    Stalled,
    Io(io::Error),
}
