//! The connection layer of the stream sinks: connect (TLS handshake
//! included), count what the kernel took from us, and tell whether the peer
//! is still there without waiting for it.
//!
//! Nothing here knows about batches or acknowledgements: the replay queue
//! (`mod.rs`) decides what to write, an [`super::ack::Acknowledgement`]
//! decides when it is safe.
//!
//! # TLS 1.3 and client certificates
//!
//! The client's side of the handshake ends before the server has looked at
//! our certificate, so a receiver that refuses it (or requires one we do
//! not have) says so only *after* `connect` returned, with an alert or a
//! plain close (see the peers notes). So after a TLS 1.3 handshake
//! [`Connector::connect`] waits up to [`TLS13_SETTLE`] for the receiver's
//! first bytes (its session tickets, or its alert) and reads them before
//! writing, which spares a pointless write; a later refusal is caught by
//! the settle time.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::super::{describe_io, human, Endpoint};
use super::tls::{self, TlsSettings};

/// How long a fresh TLS 1.3 connection waits for the receiver's verdict on
/// our certificate before the first write (see the module docs).
const TLS13_SETTLE: Duration = Duration::from_millis(200);

/// Unsolicited bytes read and discarded per health check before giving up
/// on draining them (a syslog receiver has nothing to say to us).
const IDLE_DRAIN_ROUNDS: usize = 16;

/// A TCP stream that counts the bytes the kernel accepted from us. Under
/// TLS it sits below rustls, so it counts ciphertext: exactly what the
/// kernel's unacknowledged-bytes figure is about.
pub(crate) struct Counted {
    tcp: TcpStream,
    written: u64,
    /// What the receiver answered to our opening (RELP: its `open` offers),
    /// for `siemfwd check`.
    greeting: Option<String>,
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
            greeting: None,
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

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.counted().tcp
    }

    /// Bytes the kernel accepted from us on this connection so far.
    pub(crate) fn written(&self) -> u64 {
        self.counted().written
    }

    /// What the receiver answered to our opening, if the protocol has one.
    pub(crate) fn greeting(&self) -> Option<&str> {
        self.counted().greeting.as_deref()
    }
}

/// Bytes written to `tcp` that the receiver has not acknowledged yet, as
/// the kernel counts them (Linux `SIOCOUTQ`, alias `TIOCOUTQ`: the send
/// queue, sent-but-unacknowledged plus not-yet-sent). `None` where the
/// platform does not tell; the settle time alone then guards the safe
/// point.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn unacked(tcp: &TcpStream) -> io::Result<Option<u64>> {
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
pub(crate) fn unacked(_tcp: &TcpStream) -> io::Result<Option<u64>> {
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
    let mut scratch = [0u8; 1024];
    drain(conn, &mut scratch, IDLE_DRAIN_ROUNDS, |bytes| {
        tracing::debug!(
            bytes = bytes.len(),
            "discarding unsolicited bytes from the receiver"
        );
    })
    .await
}

/// Append to `into` whatever the receiver sent that is ready now (through
/// the TLS layer), without waiting for more: for a protocol whose receiver
/// answers (RELP). End of stream is an error, as in [`idle_check`].
pub(crate) async fn read_ready(conn: &mut Conn, into: &mut Vec<u8>) -> io::Result<()> {
    let mut scratch = [0u8; 16 * 1024];
    drain(conn, &mut scratch, usize::MAX, |bytes| {
        into.extend_from_slice(bytes);
    })
    .await
}

/// Read what the kernel holds for us now, through the TLS layer, handing each
/// read to `take`, until the kernel has nothing left or `max_rounds` reads
/// were made (then the next call reads on even if the kernel looks empty).
/// End of stream, a socket error or a TLS alert is an error.
async fn drain(
    conn: &mut Conn,
    scratch: &mut [u8],
    max_rounds: usize,
    mut take: impl FnMut(&[u8]),
) -> io::Result<()> {
    // The common case first, in one system call: the receiver sent nothing.
    // Going through the TLS layer every time (to find nothing) cost ~8 % of
    // the CPU per byte over TLS once checks ran every 10 ms. Nothing the
    // peer sent waits inside the TLS layer unprocessed: whatever it read was
    // decoded by the read of an earlier call, which reads until the kernel
    // has nothing left — unless it stopped at its round limit.
    if !conn.counted().undrained {
        match peek_kernel(conn.tcp())? {
            None => return Ok(()),
            Some(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Some(_) => {}
        }
    }
    conn.counted_mut().undrained = false;
    let mut rounds = 0;
    poll_fn(|cx| loop {
        let mut rb = ReadBuf::new(scratch);
        match Pin::new(&mut *conn).poll_read(cx, &mut rb) {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Ok(())) => {
                take(rb.filled());
                rounds += 1;
                if rounds >= max_rounds {
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
pub(crate) async fn idle_check_within(conn: &mut Conn, limit: Duration) -> io::Result<()> {
    tokio::time::timeout(limit, idle_check(conn))
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the receiver sent bytes that never formed a TLS record",
            ))
        })
}

/// What it takes to open a connection to the receiver: where, how long to
/// wait, and the TLS settings if any.
#[derive(Debug)]
pub(crate) struct Connector {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) timeout: Duration,
    /// A session to open once connected (RELP's `open`), else none.
    pub(crate) session: Option<Box<dyn Opening>>,
}

/// A protocol's session, opened on every new connection (TLS included)
/// before anything else is written: RELP's `open` (`relp.rs`). A hook, so
/// the connection layer needs to know no protocol.
pub(crate) trait Opening: std::fmt::Debug + Send + Sync {
    /// The protocol's name, for the error lines (`RELP`).
    fn protocol(&self) -> &'static str;

    /// Open the session on `conn`: what the receiver offered (for
    /// `siemfwd check`), else why not.
    fn open<'a>(
        &'a self,
        conn: &'a mut Conn,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>;
}

impl Connector {
    /// A readable cause for an I/O error on one of our connections.
    pub(crate) fn describe(&self, e: &io::Error) -> String {
        match &self.tls {
            Some(tls) => tls::describe(e, &tls.server_name()),
            None => describe_io(e),
        }
    }

    /// Connect, handshake, and (TLS 1.3) wait for the receiver's verdict.
    /// The error is the cause in one line, naming the receiver.
    pub(crate) async fn connect(&self) -> Result<Conn, String> {
        let addr = &self.endpoint;
        let limit = self.timeout;
        let tcp = match tokio::time::timeout(limit, connect_tcp(addr)).await {
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
            return self.open(Conn::Tcp(tcp)).await;
        };
        let stream = match tokio::time::timeout(limit, tls.handshake(tcp)).await {
            Err(_) => {
                return Err(format!(
                    "TLS handshake with {addr}: timed out after {}",
                    human(limit)
                ))
            }
            Ok(Err(e)) => {
                let cause = tls::describe_handshake(&e, &tls.server_name());
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
                    let cause = tls::describe_post_handshake(&e, &tls.server_name());
                    return Err(format!("TLS session with {addr}: {cause}"));
                }
            }
        }
        self.open(conn).await
    }

    /// Open the session the protocol has, if any, within the connect timeout.
    async fn open(&self, mut conn: Conn) -> Result<Conn, String> {
        let Some(session) = &self.session else {
            return Ok(conn);
        };
        let addr = &self.endpoint;
        let limit = self.timeout;
        let protocol = session.protocol();
        match tokio::time::timeout(limit, session.open(&mut conn)).await {
            Err(_) => Err(format!(
                "opening a {protocol} session with {addr}: no answer within {}",
                human(limit)
            )),
            Ok(Err(cause)) => Err(format!("opening a {protocol} session with {addr}: {cause}")),
            Ok(Ok(offers)) => {
                conn.counted_mut().greeting = Some(offers);
                Ok(conn)
            }
        }
    }
}

/// Open a TCP connection to `endpoint`. The caller bounds it with
/// `connect_timeout`.
///
/// Resolution happens at every connect, never at build time, so a receiver
/// behind a DNS name that moves is followed, and a name that does not
/// resolve at start-up only delays delivery. Every resolved address is
/// tried in the resolver's order (IPv6 and IPv4 both), and the last error
/// is reported.
async fn connect_tcp(endpoint: &Endpoint) -> io::Result<TcpStream> {
    let addrs = endpoint.resolve().await?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await.and_then(refuse_itself) {
            Ok(stream) => {
                // Batches are written whole and flushed; Nagle would only
                // hold back the tail of each batch.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => {
                tracing::debug!(%addr, error = %describe_io(&e), "connect failed");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to")))
}

/// Refuse a connection that met itself.
///
/// Connecting to a local port nobody listens on can succeed: when the kernel
/// picks that same port as the source, the SYN answers itself (TCP's
/// simultaneous open) and the socket is connected to itself. What is written
/// then is acknowledged by our own receive buffer and would count as
/// delivered — up to a buffer's worth of logs lost. Only a receiver on this
/// host whose port is in the ephemeral range can meet it (tests, mostly), and
/// then it is the same as a refused connection.
fn refuse_itself(stream: TcpStream) -> io::Result<TcpStream> {
    if stream.local_addr()? == stream.peer_addr()? {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connected to itself: nothing listens on the receiver's port",
        ));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_that_met_itself_is_refused() {
        // Bound to the port it connects to, a socket connects to itself; the
        // port is found free first, so another test may take it in between.
        let mut met_itself = None;
        for _ in 0..5 {
            let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = free.local_addr().expect("addr");
            drop(free);
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            if socket.bind(addr).is_err() {
                continue;
            }
            if let Ok(stream) = socket.connect(addr).await {
                met_itself = Some(stream);
                break;
            }
        }
        let stream = met_itself.expect("a socket connected to itself");
        assert_eq!(stream.local_addr().ok(), stream.peer_addr().ok());
        let err = refuse_itself(stream).expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);

        // A connection to a listener passes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = listener.local_addr().expect("addr");
        let stream = TcpStream::connect(to).await.expect("connect");
        assert!(refuse_itself(stream).is_ok());
    }
}
