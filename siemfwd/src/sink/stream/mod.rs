//! The stream sinks (`tcp`, `tls`, `relp`): a replay queue over a
//! connection, generic over how the receiver acknowledges.
//!
//! ```text
//!   submit ──► held (written, not yet safe) ──► safe ──► take_safe
//!                 │  ▲                         ▲
//!                 │  └─ written again, oldest  │ the Acknowledgement says so
//!                 ▼     first, on a new        │ (settle.rs: kernel ack +
//!              conn.rs  connection             │  settle time; RELP: its rsp)
//! ```
//!
//! Three parts: [`conn`] connects (TLS included, its client configuration
//! in [`tls`]; a protocol's session through the [`conn::Opening`] hook) and
//! tells whether the peer is still there; [`ack::Acknowledgement`] decides
//! when a written batch is safe ([`settle::KernelSettle`] for plain syslog,
//! whose module explains why written is not delivered); this file keeps the
//! batches, in order, until then.
//!
//! Only a safe batch goes back to the caller ([`StreamSink::take_safe`]),
//! which may then move its checkpoint. On any connection failure the sink
//! reconnects (exponential backoff with jitter) and writes every held batch
//! again, oldest first, before anything new: the receiver may see a batch
//! twice, never miss one. Each write must make progress within
//! `write_timeout`.
//!
//! Held batches are checked when the strategy asks
//! ([`StreamSink::next_check`], [`StreamSink::progress`]), even when no new
//! batch comes, so batches become safe, and a dead connection is noticed,
//! without new traffic.
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

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    describe_io, human, Endpoint, Error, Framing, Inner, Messages, SinkConfig, Stats, Wire,
};
use crate::backoff::Backoff;
use crate::counters::{self, Metrics};

pub(crate) mod ack;
pub(crate) mod conn;
pub(crate) mod settle;
pub(crate) mod tls;

use ack::{Acknowledgement, Failure};
use conn::{Conn, Connector};
use tls::TlsSettings;

/// What a stream transport asks of its messages: escaping of what would end
/// a message early under LF framing, and `sink.max_message`.
pub(in crate::sink) fn wire(config: &SinkConfig) -> Wire {
    Wire {
        newline_terminated: config.framing == Framing::Lf,
        max_message: Some(usize::try_from(config.max_message.0).unwrap_or(usize::MAX)),
        tap_framing: config.framing,
        waits_for_receiver: true,
    }
}

/// A stream sink to `endpoint` over TCP, or over TLS with `tls`: the
/// replay queue with kernel acknowledgement and settle time
/// (`settle.rs`).
pub(in crate::sink) fn sink(
    config: &SinkConfig,
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    metrics: &Metrics,
) -> Inner {
    let settings = Settings {
        connector: Connector {
            endpoint,
            tls,
            timeout: config.connect_timeout.0,
            session: None,
        },
        framing: config.framing,
        write_timeout: config.write_timeout.0,
        backoff: crate::backoff::Backoff::new(config.backoff_initial.0, config.backoff_max.0),
    };
    let ack = settle::KernelSettle::new(config.settle_time.0, config.write_timeout.0);
    Inner::Stream(Box::new(StreamSink::new(settings, ack, metrics)))
}

/// A connection attempt in progress.
type Connecting = Pin<Box<dyn Future<Output = Result<Conn, String>> + Send>>;

/// The failures of one incident, from the first failure to the next batch
/// that became safe.
struct Outage {
    started: Instant,
    failures: u32,
}

/// A batch written (or to be written) and not yet safe.
struct Held<M> {
    /// Framed for this sink: the strategy's encoding starts from it on
    /// every connection.
    msgs: Messages,
    /// What the strategy noted when the batch was written on the current
    /// connection; `None`: not written on it yet (a new connection resets
    /// every batch).
    mark: Option<M>,
    /// Bytes of it written on the current connection so far (a cancelled
    /// write goes on from here).
    sent: usize,
    /// Writes started for it, on this connection and earlier ones (a
    /// failed write may have delivered part of it).
    writes: u32,
}

/// The settings a stream sink runs with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) connector: Connector,
    pub(crate) framing: Framing,
    pub(crate) write_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// A stream sink: batches held until `A` says they are safe.
pub(crate) struct StreamSink<A: Acknowledgement> {
    /// Where reconnects are counted.
    metrics: Metrics,
    connector: Arc<Connector>,
    framing: Framing,
    write_timeout: Duration,
    backoff: Backoff,
    ack: A,
    conn: Option<Conn>,
    /// A connection attempt under way, kept across cancelled calls so that
    /// a batch arriving never restarts it.
    connecting: Option<Connecting>,
    /// When the next connection attempt may start (backoff).
    retry_at: Option<Instant>,
    /// The last time a write made progress: the write stall clock.
    write_moved_at: Instant,
    /// Written-but-unsafe batches, oldest first.
    held: VecDeque<Held<A::Mark>>,
    /// Batches that became safe, oldest first, waiting for the caller.
    safe: VecDeque<Messages>,
    /// The incident in progress, if any.
    outage: Option<Outage>,
    last_check: Instant,
    stats: Stats,
    /// Since when no connection has been up during the current incident
    /// (its start), `None` while connected or healthy: readable through
    /// [`StreamSink::blocked_watch`] while a call is stuck reconnecting, for
    /// the pipeline's drop policy.
    blocked: watch::Sender<Option<Instant>>,
}

impl<A: Acknowledgement> std::fmt::Debug for StreamSink<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink")
            .field("connector", &self.connector)
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

/// Write `buf` from `*sent` on (many messages per system call), then
/// flush. Progress is kept in `*sent` and `*moved_at` as it happens, so a
/// cancelled call is resumed by the next; no write may go without progress
/// for `limit` since `*moved_at`.
async fn write_batch(
    conn: &mut Conn,
    buf: &[u8],
    sent: &mut usize,
    moved_at: &mut Instant,
    limit: Duration,
) -> Result<(), WriteFailure> {
    while *sent < buf.len() {
        match tokio::time::timeout_at(*moved_at + limit, conn.write(&buf[*sent..])).await {
            Err(_) => return Err(WriteFailure::Stalled),
            Ok(Err(e)) => return Err(WriteFailure::Io(e)),
            Ok(Ok(0)) => return Err(WriteFailure::Io(io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => {
                *sent += n;
                *moved_at = Instant::now();
            }
        }
    }
    match tokio::time::timeout_at(*moved_at + limit, conn.flush()).await {
        Err(_) => Err(WriteFailure::Stalled),
        Ok(Err(e)) => Err(WriteFailure::Io(e)),
        Ok(Ok(())) => Ok(()),
    }
}

impl<A: Acknowledgement> StreamSink<A> {
    pub(crate) fn new(settings: Settings, ack: A, metrics: &Metrics) -> Self {
        Self {
            metrics: metrics.clone(),
            connector: Arc::new(settings.connector),
            framing: settings.framing,
            write_timeout: settings.write_timeout,
            backoff: settings.backoff,
            ack,
            conn: None,
            connecting: None,
            retry_at: None,
            write_moved_at: Instant::now(),
            held: VecDeque::new(),
            safe: VecDeque::new(),
            outage: None,
            last_check: Instant::now(),
            stats: Stats::default(),
            blocked: watch::channel(None).0,
        }
    }

    /// The stream framing, which submitted batches should already have.
    pub(crate) fn framing(&self) -> Framing {
        self.framing
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Use `conn` from now on: nothing held was written on it yet.
    fn attach(&mut self, conn: Conn) {
        if self.stats.connects > 0 {
            self.stats.reconnects += 1;
            counters::add(&self.metrics.reconnects, 1);
        }
        self.stats.connects += 1;
        for h in &mut self.held {
            h.mark = None;
            h.sent = 0;
        }
        self.ack.connected(&conn, Instant::now());
        self.conn = Some(conn);
        counters::set(&self.metrics.gauges().sink_down_since_ms, 0);
        self.blocked.send_if_modified(|b| b.take().is_some());
    }

    fn stalled_cause(&self) -> String {
        format!(
            "writing to {}: no progress for {} (the receiver stopped reading)",
            self.connector.endpoint,
            human(self.write_timeout)
        )
    }

    /// Record a failure and drop the connection: the first failure of an
    /// incident is logged at `warn`, the following ones at `debug`.
    fn fail(&mut self, cause: String) {
        self.conn = None;
        let down = &self.metrics.gauges().sink_down_since_ms;
        if counters::get(down) == 0 {
            counters::set(down, counters::now_ms());
        }
        let receiver = &self.connector.endpoint;
        match &mut self.outage {
            None => {
                tracing::warn!(
                    receiver = %receiver,
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
                tracing::debug!(receiver = %receiver, cause = %cause, failures = o.failures, "reconnect failed");
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
            mark: None,
            sent: 0,
            writes: 0,
        });
        self.write_held(cancel).await
    }

    /// Make sure every held batch is written on a healthy connection:
    /// check the connection, reconnect with backoff when it is gone, write
    /// what was not written on it yet, oldest first.
    ///
    /// Cancel-safe, like every `async` method here that takes `&mut self`:
    /// the connection, a connect attempt under way, the backoff deadline,
    /// how far each batch got and the stall clock live in `self`, so a
    /// future dropped at any `.await` (the drop policy cuts calls, a new
    /// batch interrupts a check) loses nothing and the next call goes on
    /// where it stopped.
    async fn write_held(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        'connection: loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if self.held.is_empty() {
                return Ok(());
            }
            let Some(conn) = self.conn.as_mut() else {
                // Connected or not, the loop looks again.
                self.reconnect_once(cancel).await?;
                continue;
            };
            let Some(first) = self.held.iter().position(|h| h.mark.is_none()) else {
                return Ok(());
            };
            if self.held[first].sent == 0 {
                // Whatever the peer said while we were not writing (a close,
                // an alert) is heard before the next batch goes.
                if let Err(e) = self.ack.listen(conn).await {
                    let cause = format!(
                        "connection to {} lost while idle: {}",
                        self.connector.endpoint,
                        self.connector.describe(&e)
                    );
                    self.fail(cause);
                    continue;
                }
                let now = Instant::now();
                self.ack.writing(conn, now);
                self.write_moved_at = now;
            }
            for i in first..self.held.len() {
                let h = &mut self.held[i];
                if h.sent == 0 {
                    if !self.ack.room(&h.msgs) {
                        // The receiver's window is full: the rest waits
                        // for its answers (`progress`).
                        return Ok(());
                    }
                    h.writes += 1;
                }
                let written = tokio::select! {
                    biased;
                    // A frame may be half written: the next call goes on
                    // from where it stopped, on the same connection.
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    r = write_batch(
                        conn,
                        self.ack.encode(&h.msgs),
                        &mut h.sent,
                        &mut self.write_moved_at,
                        self.write_timeout,
                    ) => r,
                };
                match written {
                    Ok(()) => {
                        h.mark = Some(self.ack.written(conn));
                        let (n, bytes) = (h.msgs.len() as u64, h.msgs.byte_len() as u64);
                        counters::add(&self.metrics.messages_sent, n);
                        counters::add(&self.metrics.bytes_sent, bytes);
                        if h.writes > 1 {
                            self.stats.resent_messages += n;
                            counters::add(&self.metrics.messages_resent, n);
                        }
                    }
                    Err(WriteFailure::Stalled) => {
                        let cause = self.stalled_cause();
                        self.fail(cause);
                        continue 'connection;
                    }
                    Err(WriteFailure::Io(e)) => {
                        let cause = format!(
                            "writing to {}: {}",
                            self.connector.endpoint,
                            self.connector.describe(&e)
                        );
                        self.fail(cause);
                        continue 'connection;
                    }
                }
            }
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
        Some(self.ack.next_check(self.last_check, front.mark.as_ref()))
    }

    /// Check the connection, hear what the receiver acknowledged, and move
    /// the batches the strategy calls safe to the safe queue. A failed
    /// check reconnects and writes every held batch again.
    pub(crate) async fn progress(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        loop {
            // After a failure (or a cut call): back to a connection with
            // everything held written on it.
            self.write_held(cancel).await?;
            self.last_check = Instant::now();
            if self.held.is_empty() {
                return Ok(());
            }
            let Some(conn) = self.conn.as_mut() else {
                // `write_held` returns with batches held only once they
                // are written on a connection (all of them, or as many as
                // the receiver's window takes).
                continue;
            };
            let heard = self.ack.listen(conn).await;
            let now = Instant::now();
            let settled = match heard {
                Ok(()) => {
                    let marks = self.held.iter_mut().map_while(|h| h.mark.as_mut());
                    self.ack.settled(conn, marks, now)
                }
                Err(e) => Err(Failure::Io(e)),
            };
            let safe = match settled {
                Ok(n) => n,
                Err(failure) => {
                    let cause = match failure {
                        Failure::Io(e) => format!(
                            "connection to {} lost: {}",
                            self.connector.endpoint,
                            self.connector.describe(&e)
                        ),
                        Failure::Stalled => self.stalled_cause(),
                    };
                    self.fail(cause);
                    continue;
                }
            };
            for h in self.held.drain(..safe) {
                self.safe.push_back(h.msgs);
            }
            if safe > 0 {
                if let Some(o) = self.outage.take() {
                    self.backoff.reset();
                    tracing::info!(
                        receiver = %self.connector.endpoint,
                        outage = %human(o.started.elapsed()),
                        failed_attempts = o.failures,
                        resent_messages_so_far = self.stats.resent_messages,
                        "connection to the SIEM restored; batch delivered"
                    );
                }
            }
            return Ok(());
        }
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
        // A batch already (partly) written on the connection leaves its
        // bytes, maybe half a frame, and the strategy's count of it there:
        // the connection goes with it, and the next starts clean.
        if self.held.iter().any(|h| h.sent > 0 || h.mark.is_some()) {
            self.conn = None;
        }
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
        if self.connecting.is_none() {
            if self.retry_at.is_none() && self.outage.as_ref().is_some_and(|o| o.failures > 1) {
                self.retry_at = Some(Instant::now() + self.backoff.next_delay());
            }
            if let Some(at) = self.retry_at {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            self.retry_at = None;
            let connector = Arc::clone(&self.connector);
            self.connecting = Some(Box::pin(async move { connector.connect().await }));
        }
        let Some(connecting) = self.connecting.as_mut() else {
            return Ok(false);
        };
        let attempt = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            r = connecting => r,
        };
        self.connecting = None;
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

    pub(crate) async fn check(&mut self) -> Result<Option<String>, Error> {
        self.conn = None;
        match self.connector.connect().await {
            Ok(conn) => {
                let greeting = conn.greeting().map(str::to_owned);
                self.attach(conn);
                Ok(greeting)
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
            // Not in the middle of a frame (a write cut by the drain deadline).
            if !self.held.iter().any(|h| h.sent > 0 && h.mark.is_none()) {
                self.ack.goodbye(&mut conn, self.write_timeout).await;
            }
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
        batch, big_batch, closed_port, config, framed, read_all, read_n, within, LogCapture,
    };
    use super::super::{Error, Framing, Messages, Sink};
    use crate::units::HumanDuration;

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

    #[tokio::test]
    async fn tcp_octet_counting_frames_exact_bytes() {
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            read_all(&mut s).await
        });
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let mut cfg = config("tcp", &addr);
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
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let mut cfg = config("tcp", &addr);
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
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let mut cfg = config("tcp", &addr);
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
        let mut cfg = config("tcp", &addr);
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
        let mut cfg = config("tcp", &addr);
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
        let mut cfg = config("tcp", &addr);
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
        let mut cfg = config("tcp", &addr);
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
        let (_held, addr) = closed_port();
        let mut cfg = config("tcp", &addr);
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
    async fn a_cut_submit_goes_on_where_it_stopped_on_the_same_connection() {
        // The drop policy cuts sink calls; a batch arriving interrupts a
        // check. A half-written batch must then be finished by the next
        // call, on the same connection, each byte once.
        let (l, addr) = small_buffer_listener();
        let msgs = big_batch(4 * 1024, 1000);
        let expected = framed(&msgs, Framing::OctetCounting);
        let (go, start_reading) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut conn, _) = l.accept().await.expect("accept");
            start_reading.await.expect("go");
            read_all(&mut conn).await
        });
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        let cut = CancellationToken::new();
        let r = tokio::select! {
            r = sink.submit(msgs, &cut) => r,
            () = tokio::time::sleep(Duration::from_millis(200)) => Err(Error::Cancelled),
        };
        assert!(
            matches!(r, Err(Error::Cancelled)),
            "the receiver does not read yet: {r:?}"
        );
        go.send(()).expect("server waits");
        let delivered = within("drain", drain(&mut sink)).await;
        assert_eq!(delivered.len(), 1);
        sink.close().await;
        let got = within("server", server).await.expect("server task");
        assert!(
            got == expected,
            "{} bytes arrived, {} expected",
            got.len(),
            expected.len()
        );
        assert_eq!(
            (sink.stats().connects, sink.stats().resent_messages),
            (1, 0)
        );
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
        let mut cfg = config("tcp", &addr);
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
        let (held, addr) = closed_port();
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        let server = {
            let logs = logs.clone();
            tokio::spawn(async move {
                // Come back only after several failed reconnects.
                while logs.count("DEBUG", "reconnect failed") < 3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let l = held.listen(16).expect("listen on the held port");
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
        let (_held, addr) = closed_port();
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
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
        let (_held, addr) = closed_port();
        let mut sink = Sink::build(&config("tcp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        sink.send(&batch::<&str>(&[]), &CancellationToken::new())
            .await
            .expect("empty batch");
        assert_eq!(sink.stats().connects, 0);
    }
}
