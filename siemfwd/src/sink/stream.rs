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

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Tcp(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }
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
                if let Err(e) = idle_check_within(&mut conn, limit).await {
                    let cause = super::tls::describe_post_handshake(&e, &tls.server_name());
                    return Err(format!("TLS session with {addr}: {cause}"));
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
                Some(mut conn) => match idle_check_within(&mut conn, self.write_timeout).await {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpSocket};
    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{
        batch, big_batch, config, framed, read_all, read_n, within, LogCapture,
    };
    use super::super::{Error, Framing, Sink, Transport};
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
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
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
        let mut sink = Sink::build(&cfg).expect("build");
        let msgs = batch(&["<14>1 a", "<14>1 b"]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(got, b"<14>1 a\n<14>1 b\n");
    }

    #[tokio::test]
    async fn tcp_frames_the_whole_batch_into_one_buffer() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
        let msgs = big_batch(1000, 40);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        let expected = framed(&msgs, Framing::OctetCounting);
        // Every frame of the batch sits in the one buffer handed to
        // `write_all`: one write per batch, not per message.
        let super::super::Inner::Stream(stream) = &sink.inner else {
            panic!("not a stream sink")
        };
        assert_eq!(stream.buf, expected);
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert_eq!(got, expected);
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
            (head, again)
        });
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
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
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut first, _) = l.accept().await.expect("accept 1");
            let got1 = read_n(&mut first, n1).await;
            drop(first); // the receiver closes an idle connection
            closed_tx.send(()).expect("notify");
            let (mut second, _) = within("reconnect", l.accept()).await.expect("accept 2");
            (got1, read_all(&mut second).await)
        });
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
        let cancel = CancellationToken::new();
        within("send 1", sink.send(&first_batch, &cancel))
            .await
            .expect("send 1");
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

    #[tokio::test]
    async fn tcp_cancel_during_backoff_returns_cancelled_promptly() {
        let addr = closed_port().await;
        let mut cfg = config(Transport::Tcp, &addr);
        cfg.backoff_initial = HumanDuration(Duration::from_secs(30));
        cfg.backoff_max = HumanDuration(Duration::from_secs(30));
        let mut sink = Sink::build(&cfg).expect("build");
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
        let mut sink = Sink::build(&cfg).expect("build");
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
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
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
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
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
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
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
        let mut sink = Sink::build(&config(Transport::Tcp, &addr)).expect("build");
        sink.send(&batch::<&str>(&[]), &CancellationToken::new())
            .await
            .expect("empty batch");
        assert_eq!(sink.stats().connects, 0);
    }
}
