//! The `relp` transport: the receiving application answers every message,
//! and only an answered message is safe (its checkpoint may move). No
//! settle time, no guess from the receiver's kernel: what rsyslog's imrelp
//! (or `siemfwd listen --relp`) answered `200 OK`, it took — into its queue
//! for rsyslog, whose queue type then decides what a crash can still take
//! (docs/configuration.md, "RELP").
//!
//! The stream sink's replay queue carries it like `tcp` and `tls`; what
//! differs lives here:
//! - [`Session`]: once connected (TLS included), `open` with our offers
//!   (`relp_version=0`, `commands=syslog`, `relp_software`), and the
//!   receiver must answer `200` offering `commands=syslog`. Transaction 1
//!   is the `open`; messages count from 2.
//! - [`RelpAck`]: each message goes as `TXNR syslog LEN MSG LF` with the
//!   next transaction number (so a batch is encoded again, with new
//!   numbers, on every connection), and a batch is safe once every one of
//!   its messages is answered `200`, the answers coming in order.
//!
//! Rules, as documented in docs/configuration.md:
//! - At most `sink.relp.window` messages go unanswered; a batch that would
//!   pass that waits (one batch always goes when nothing is outstanding).
//! - An answer other than `200` for a message: the receiver refused it. The
//!   session is given up like a broken connection — one warning with the
//!   receiver's words, reconnect (at once, then with backoff), everything
//!   unanswered sent again in order — since a refusal (rsyslog's queue
//!   full) is the receiver's to resolve, and skipping the message would
//!   lose it. A message the receiver refuses for good holds
//!   the pipeline until it is fixed (or `pipeline.when_blocked = "drop"`).
//! - `serverclose` (the receiver is going away): the session is over;
//!   reconnect and resend what is unanswered.
//! - No answer for `sink.write_timeout` while messages are outstanding: the
//!   receiver stalled; reconnect and resend.
//! - Transaction numbers about to pass 999,999,999 (a receiver checks they
//!   come in sequence): writes wait until everything is answered, and the
//!   session is renewed.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::stream::ack::{Acknowledgement, Failure};
use super::stream::conn::{self, Conn};
use super::{stream, Endpoint, Framing, Inner, Messages, SinkConfig, Spec, Wire};
use crate::relp;

/// The `relp` transport.
pub(super) const SPEC: Spec = Spec {
    name: "relp",
    keys: &[
        "address",
        "connect_timeout",
        "write_timeout",
        "backoff_initial",
        "backoff_max",
        "max_message",
        "relp",
        "tls",
    ],
    wire: |config| Wire {
        newline_terminated: false,
        max_message: Some(max_data(config)),
        tap_framing: Framing::OctetCounting,
        waits_for_receiver: true,
    },
    build: |config, metrics| {
        let endpoint = Endpoint::parse(&config.address)?;
        let tls = if config.relp.tls {
            Some(stream::tls::TlsSettings::build(&config.tls, &endpoint)?)
        } else {
            None
        };
        if config.relp.window == 0 {
            return Err(super::Error::Config {
                key: "sink.relp.window".to_owned(),
                problem: "must be at least 1".to_owned(),
            });
        }
        let settings = stream::Settings {
            connector: conn::Connector {
                endpoint,
                tls,
                timeout: config.connect_timeout.0,
                session: Some(Box::new(Session {
                    max_data: max_data(config),
                })),
            },
            framing: Framing::OctetCounting,
            write_timeout: config.write_timeout.0,
            backoff: crate::backoff::Backoff::new(config.backoff_initial.0, config.backoff_max.0),
        };
        let ack = RelpAck::new(config.relp.window, config.write_timeout.0);
        Ok(Inner::Relp(Box::new(stream::StreamSink::new(
            settings, ack, metrics,
        ))))
    },
};

/// `[sink.relp]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelpConfig {
    /// Messages sent and not yet answered, at most.
    pub window: usize,
    /// Speak RELP over TLS, with the `[sink.tls]` settings.
    pub tls: bool,
}

/// Default of `sink.relp.window`, measured against rsyslog's imrelp
/// (bench/results/issue-16.md): larger gains nothing there, smaller costs.
pub(crate) const DEFAULT_WINDOW: usize = 16384;

impl Default for RelpConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            tls: false,
        }
    }
}

/// The longest message sent: `sink.max_message`, at most librelp's
/// default largest data. rsyslog's imrelp must take it (`maxDataSize`):
/// else it cuts longer messages (or, with `oversizeMode="abort"`, ends the
/// session).
fn max_data(config: &SinkConfig) -> usize {
    usize::try_from(config.max_message.0)
        .unwrap_or(usize::MAX)
        .min(relp::DEFAULT_MAX_DATA)
}

/// Opening a RELP session on a fresh connection.
#[derive(Debug)]
pub(crate) struct Session {
    max_data: usize,
}

impl conn::Opening for Session {
    fn protocol(&self) -> &'static str {
        "RELP"
    }

    fn open<'a>(
        &'a self,
        conn: &'a mut Conn,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(self.send_open(conn))
    }
}

impl Session {
    /// Send `open` (transaction 1) and read its answer; the receiver's
    /// offers on success, else why not.
    async fn send_open(&self, conn: &mut Conn) -> Result<String, String> {
        let offers = format!(
            "relp_version={}\nrelp_software=siemfwd,{}\ncommands=syslog",
            relp::VERSION,
            env!("CARGO_PKG_VERSION")
        );
        let mut frame = Vec::new();
        relp::write_frame(&mut frame, 1, "open", offers.as_bytes());
        conn.write_all(&frame).await.map_err(|e| e.to_string())?;
        conn.flush().await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        loop {
            // The answer is all that may come; wait for it a piece at a time.
            wait_readable(conn).await.map_err(|e| e.to_string())?;
            conn::read_ready(conn, &mut buf)
                .await
                .map_err(|e| e.to_string())?;
            let Some((frame, _)) = relp::parse(&buf, self.max_data.max(relp::DEFAULT_MAX_DATA))
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            if frame.command != "rsp" || frame.txnr != 1 {
                return Err(format!(
                    "the receiver answered {} {} to open",
                    frame.txnr, frame.command
                ));
            }
            let answer = relp::response(frame.data).ok_or("an answer without a code")?;
            if answer.code != 200 {
                return Err(format!("open refused: {} {}", answer.code, answer.text));
            }
            let offered = relp::offers(answer.rest);
            let syslog = offered
                .iter()
                .any(|(n, v)| n == "commands" && v.split(',').any(|c| c.trim() == "syslog"));
            if !syslog {
                return Err("the receiver does not offer commands=syslog".to_owned());
            }
            return Ok(offered
                .iter()
                .map(|(n, v)| {
                    if v.is_empty() {
                        n.clone()
                    } else {
                        format!("{n}={v}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "));
        }
    }
}

/// Wait until the receiver has sent something (or closed).
async fn wait_readable(conn: &Conn) -> io::Result<()> {
    conn.tcp().readable().await
}

/// RELP's acknowledgement: see the module docs.
#[derive(Debug)]
pub(crate) struct RelpAck {
    window: usize,
    write_timeout: Duration,
    /// The transaction number of the next message on this connection.
    next: u32,
    /// Transaction numbers sent (encoded) and not yet answered, oldest first.
    unanswered: VecDeque<u32>,
    /// Messages of this connection written in full, and answered `200`.
    written: u64,
    answered: u64,
    /// The batch encoded last (its buffer's address and length: the same
    /// batch until written), its bytes and how many messages it holds.
    encoded_for: Option<(usize, usize)>,
    encoded: Vec<u8>,
    encoded_messages: u64,
    /// Bytes of answers read, not yet a whole frame.
    carry: Vec<u8>,
    /// The last time an answer came (or nothing was outstanding).
    answer_moved_at: Instant,
    /// A batch waits because the transaction numbers are near their end:
    /// once everything is answered, the session is renewed.
    renew: bool,
}

/// How many messages of the connection were written once this batch was.
#[derive(Debug)]
pub(crate) struct Mark {
    end: u64,
}

impl RelpAck {
    pub(crate) fn new(window: usize, write_timeout: Duration) -> Self {
        Self {
            window,
            write_timeout,
            next: 2,
            unanswered: VecDeque::new(),
            written: 0,
            answered: 0,
            encoded_for: None,
            encoded: Vec::new(),
            encoded_messages: 0,
            carry: Vec::new(),
            answer_moved_at: Instant::now(),
            renew: false,
        }
    }

    /// Messages written and not answered yet.
    fn outstanding(&self) -> u64 {
        self.written.saturating_sub(self.answered)
    }

    /// Take in the answers in `carry`.
    fn answers(&mut self) -> io::Result<()> {
        let mut taken = 0;
        let result = loop {
            let (frame, len) = match relp::parse(&self.carry[taken..], relp::DEFAULT_MAX_DATA) {
                Ok(Some(f)) => f,
                Ok(None) => break Ok(()),
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            };
            taken += len;
            if frame.command == "serverclose" {
                break Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the receiver ended the RELP session (serverclose)",
                ));
            }
            if frame.command != "rsp" {
                break Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the receiver sent {} where an answer was due",
                        frame.command
                    ),
                ));
            }
            let expected = self.unanswered.front().copied();
            if expected != Some(frame.txnr) {
                break Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "an answer to transaction {} where {} was due",
                        frame.txnr,
                        expected.map_or_else(|| "none".to_owned(), |t| t.to_string())
                    ),
                ));
            }
            match relp::response(frame.data) {
                Some(r) if r.code == 200 => {
                    self.unanswered.pop_front();
                    self.answered += 1;
                }
                Some(r) => {
                    break Err(io::Error::other(format!(
                        "the receiver refused message {}: {} {}",
                        frame.txnr, r.code, r.text
                    )))
                }
                None => {
                    break Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "an answer without a code",
                    ))
                }
            }
        };
        self.carry.drain(..taken);
        result
    }
}

impl Acknowledgement for RelpAck {
    type Mark = Mark;

    fn connected(&mut self, _conn: &Conn, now: Instant) {
        // Transaction 1 was the `open`, answered before the connection was
        // handed over.
        self.next = 2;
        self.unanswered.clear();
        self.written = 0;
        self.answered = 0;
        self.encoded_for = None;
        self.carry.clear();
        self.answer_moved_at = now;
        self.renew = false;
    }

    async fn listen(&mut self, conn: &mut Conn) -> io::Result<()> {
        let before = self.answered;
        // What came before an end of stream (answers, a `serverclose`)
        // counts: read it first, then report the end.
        let read = conn::read_ready(conn, &mut self.carry).await;
        let heard = self.answers();
        if self.answered > before {
            self.answer_moved_at = Instant::now();
        }
        heard.and(read)
    }

    fn room(&mut self, msgs: &Messages) -> bool {
        // Transaction numbers go up to 999,999,999 and a receiver checks
        // they come in sequence: before they run out, everything is let
        // answered and the session renewed (`settled`), numbering from 2.
        if u64::from(self.next) + msgs.len() as u64 >= u64::from(relp::MAX_TXNR) {
            self.renew = true;
            return false;
        }
        let outstanding = self.outstanding();
        outstanding == 0 || outstanding + msgs.len() as u64 <= self.window as u64
    }

    fn encode<'a>(&'a mut self, msgs: &'a Messages) -> &'a [u8] {
        let key = (msgs.framed().as_ptr() as usize, msgs.framed().len());
        if self.encoded_for != Some(key) {
            self.encoded.clear();
            self.encoded_messages = 0;
            for msg in msgs.iter() {
                relp::write_head(&mut self.encoded, self.next, "syslog", msg.len());
                self.encoded.push(b' ');
                self.encoded.extend_from_slice(msg);
                self.encoded.push(b'\n');
                self.unanswered.push_back(self.next);
                self.next = relp::next_txnr(self.next);
                self.encoded_messages += 1;
            }
            self.encoded_for = Some(key);
        }
        &self.encoded
    }

    fn writing(&mut self, _conn: &Conn, now: Instant) {
        if self.outstanding() == 0 {
            self.answer_moved_at = now;
        }
    }

    fn written(&mut self, _conn: &Conn) -> Mark {
        self.written += self.encoded_messages;
        self.encoded_for = None;
        Mark { end: self.written }
    }

    fn settled<'m>(
        &mut self,
        _conn: &Conn,
        marks: impl Iterator<Item = &'m mut Mark>,
        now: Instant,
    ) -> Result<usize, Failure> {
        if self.outstanding() > 0 && now.duration_since(self.answer_moved_at) >= self.write_timeout
        {
            return Err(Failure::Stalled);
        }
        if self.renew && self.outstanding() == 0 {
            return Err(Failure::Io(io::Error::other(
                "RELP transaction numbers used up: a new session",
            )));
        }
        Ok(marks.take_while(|m| m.end <= self.answered).count())
    }

    /// `close`, answered after every message before it; waited for at
    /// most a second (the receiver may be gone, and a session not closed
    /// loses nothing: what was not answered is not safe).
    async fn goodbye(&mut self, conn: &mut Conn, limit: Duration) {
        let txnr = self.next;
        self.next = relp::next_txnr(self.next);
        self.unanswered.push_back(txnr);
        let mut frame = Vec::new();
        relp::write_frame(&mut frame, txnr, "close", b"");
        let said = async {
            conn.write_all(&frame).await?;
            conn.flush().await?;
            while self.unanswered.contains(&txnr) {
                wait_readable(conn).await?;
                conn::read_ready(conn, &mut self.carry).await?;
                self.answers()?;
            }
            Ok::<_, io::Error>(())
        };
        match tokio::time::timeout(limit.min(Duration::from_secs(1)), said).await {
            Ok(Ok(())) => tracing::debug!("RELP session closed"),
            Ok(Err(e)) => tracing::debug!(error = %e, "RELP close not answered"),
            Err(_) => tracing::debug!("RELP close not answered in time"),
        }
    }

    fn next_check(&self, last_check: Instant, oldest: Option<&Mark>) -> Instant {
        match oldest {
            // Answers come within a round trip: look soon.
            Some(_) => last_check + ANSWER_POLL,
            None => Instant::now(),
        }
    }
}

/// How often answers are looked for while messages are outstanding.
const ANSWER_POLL: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{batch, config, within, LogCapture};
    use super::super::{Messages, Sink};
    use crate::counters::Metrics;
    use crate::listen::{ListenConfig, Listener, Output, RelpFaults, StatsSnapshot};

    /// `siemfwd listen --relp` in this runtime, its output to a file: its
    /// address, a handle on its counters, and a stop that returns what it
    /// wrote.
    struct Receiver {
        addr: String,
        stats: std::sync::Arc<crate::listen::Stats>,
        cancel: CancellationToken,
        run: tokio::task::JoinHandle<StatsSnapshot>,
        file: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Receiver {
        async fn start(faults: RelpFaults) -> Self {
            let listener = Listener::bind(ListenConfig {
                relp: Some("127.0.0.1:0".parse().expect("addr")),
                relp_faults: faults,
                output: Output::JsonLines,
                ..ListenConfig::default()
            })
            .await
            .expect("bind");
            let addr = listener.local_addrs().relp.expect("relp").to_string();
            let stats = listener.stats();
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("out.jsonl");
            let out = tokio::fs::File::create(&file).await.expect("file");
            let cancel = CancellationToken::new();
            let run = {
                let cancel = cancel.clone();
                tokio::spawn(async move { listener.run(out, cancel).await.expect("listener") })
            };
            Self {
                addr,
                stats,
                cancel,
                run,
                file,
                _dir: dir,
            }
        }

        fn messages(&self) -> u64 {
            self.stats.snapshot().messages
        }

        /// Stop, and the `raw` of every message written, in order.
        async fn stop(self) -> (StatsSnapshot, Vec<String>) {
            self.cancel.cancel();
            let stats = self.run.await.expect("listener task");
            let text = std::fs::read_to_string(&self.file).expect("output");
            let raws = text
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).expect("json line");
                    v["raw"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            (stats, raws)
        }
    }

    fn relp_sink(addr: &str, window: usize) -> Sink {
        let mut cfg = config("relp", addr);
        cfg.relp.window = window;
        Sink::build(&cfg, &Metrics::default()).expect("build")
    }

    fn framed(items: &[&str]) -> Messages {
        let mut m = batch(items);
        m.reframe(Some(super::Framing::OctetCounting));
        m
    }

    #[test]
    fn answers_move_in_order_and_a_serverclose_or_a_stranger_ends_the_session() {
        use super::super::stream::ack::Acknowledgement as _;
        use super::RelpAck;
        let mut ack = RelpAck::new(100, Duration::from_secs(1));
        ack.unanswered.extend([2, 3, 4]);
        ack.carry
            .extend_from_slice(b"2 rsp 6 200 OK\n3 rsp 6 200 OK\n");
        ack.answers().expect("two answers");
        assert_eq!((ack.answered, ack.unanswered.len()), (2, 1));
        ack.carry.extend_from_slice(b"0 serverclose 0\n");
        let e = ack.answers().expect_err("serverclose");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
        let mut ack = RelpAck::new(100, Duration::from_secs(1));
        ack.unanswered.extend([2, 3]);
        ack.carry.extend_from_slice(b"3 rsp 6 200 OK\n");
        let e = ack.answers().expect_err("out of order");
        assert!(
            e.to_string().contains("transaction 3 where 2 was due"),
            "{e}"
        );
        let mut ack = RelpAck::new(100, Duration::from_secs(1));
        ack.unanswered.extend([2]);
        ack.carry
            .extend_from_slice(b"2 rsp 24 500 queue is full, sorry\n");
        let e = ack.answers().expect_err("refused");
        assert!(
            e.to_string()
                .contains("refused message 2: 500 queue is full"),
            "{e}"
        );
        // Transaction numbers about to run out: no more writes, and once
        // everything is answered, a new session.
        let mut ack = RelpAck::new(100, Duration::from_secs(1));
        ack.next = crate::relp::MAX_TXNR - 2;
        assert!(!ack.room(&super::super::testutil::batch(&["a", "b", "c"])));
        assert!(ack.renew);
        // Half an answer is kept for later.
        let mut ack = RelpAck::new(100, Duration::from_secs(1));
        ack.unanswered.extend([2]);
        ack.carry.extend_from_slice(b"2 rsp 6 20");
        ack.answers().expect("incomplete");
        ack.carry.extend_from_slice(b"0 OK\n");
        ack.answers().expect("complete");
        assert_eq!(ack.answered, 1);
    }

    #[tokio::test]
    async fn messages_are_written_then_answered_and_only_then_safe() {
        let rx = Receiver::start(RelpFaults::default()).await;
        let mut sink = relp_sink(&rx.addr, 4096);
        let offers = within("check", sink.check()).await.expect("check");
        let offers = offers.expect("offers");
        assert!(
            offers.contains("commands=syslog") && offers.contains("relp_software=siemfwd-listen"),
            "{offers}"
        );
        let msgs = framed(&[
            "<14>1 - h app - - - one",
            "<14>1 - h app - - - two\nlines",
            "<14>1 - h app - - - three",
        ]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let (stats, raws) = rx.stop().await;
        assert_eq!(
            raws,
            [
                "<14>1 - h app - - - one",
                "<14>1 - h app - - - two\nlines",
                "<14>1 - h app - - - three"
            ]
        );
        assert_eq!((stats.relp_acked, stats.framing_errors), (3, 0));
    }

    #[tokio::test]
    async fn withheld_answers_fill_the_window_stop_the_writes_and_leave_nothing_safe() {
        let rx = Receiver::start(RelpFaults {
            withhold_acks: true,
            ..RelpFaults::default()
        })
        .await;
        let mut sink = relp_sink(&rx.addr, 5);
        let cancel = CancellationToken::new();
        let first = framed(&[
            "<14>1 - h a - - - 1",
            "<14>1 - h a - - - 2",
            "<14>1 - h a - - - 3",
        ]);
        let second = framed(&[
            "<14>1 - h a - - - 4",
            "<14>1 - h a - - - 5",
            "<14>1 - h a - - - 6",
        ]);
        within("submit", sink.submit(first, &cancel))
            .await
            .expect("first");
        within("submit", sink.submit(second, &cancel))
            .await
            .expect("second");
        // Half a second of checks (the write timeout is 2 s): the first
        // batch was written and is not answered; the second would pass the
        // window of 5 and was not written at all.
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while tokio::time::Instant::now() < until {
            within("progress", sink.progress(&cancel))
                .await
                .expect("progress");
            assert!(sink.take_safe().is_none(), "nothing answered, nothing safe");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(sink.in_flight(), 2);
        assert_eq!(rx.messages(), 3, "the second batch waited for the window");
        sink.close().await;
        let (stats, _) = rx.stop().await;
        assert_eq!(stats.relp_acked, 0);
    }

    #[tokio::test]
    async fn answers_held_back_keep_a_batch_unsafe_until_they_come() {
        let rx = Receiver::start(RelpFaults {
            answer_delay: Duration::from_millis(300),
            ..RelpFaults::default()
        })
        .await;
        let mut sink = relp_sink(&rx.addr, 4096);
        let cancel = CancellationToken::new();
        let msgs = framed(&["<14>1 - h a - - - 1", "<14>1 - h a - - - 2"]);
        let sent = tokio::time::Instant::now();
        within("submit", sink.submit(msgs, &cancel))
            .await
            .expect("submit");
        let safe_after = loop {
            within("progress", sink.progress(&cancel))
                .await
                .expect("progress");
            if sink.take_safe().is_some() {
                break sent.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(
            safe_after >= Duration::from_millis(300),
            "safe after {safe_after:?}"
        );
        sink.close().await;
        let (stats, _) = rx.stop().await;
        assert_eq!(stats.relp_acked, 2);
    }

    #[tokio::test]
    async fn a_refused_message_is_warned_about_once_and_sent_again_with_what_followed_it() {
        let logs = LogCapture::default();
        let _guard = logs.install();
        // The 5th message the receiver sees is refused.
        let rx = Receiver::start(RelpFaults {
            withhold_acks: false,
            refuse_every: 5,
            ..RelpFaults::default()
        })
        .await;
        let mut sink = relp_sink(&rx.addr, 4096);
        let cancel = CancellationToken::new();
        let a = framed(&[
            "<14>1 - h a - - - 1",
            "<14>1 - h a - - - 2",
            "<14>1 - h a - - - 3",
        ]);
        let b = framed(&[
            "<14>1 - h a - - - 4",
            "<14>1 - h a - - - 5",
            "<14>1 - h a - - - 6",
        ]);
        within("send a", sink.send(&a, &cancel)).await.expect("a");
        within("send b", sink.send(&b, &cancel)).await.expect("b");
        sink.close().await;
        let (stats, raws) = rx.stop().await;
        assert_eq!(stats.relp_refused, 1);
        // 5 was refused (not written); 4 and 6 were written, then the batch
        // went again whole on a new session.
        let seq: Vec<&str> = raws
            .iter()
            .map(|r| r.rsplit(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(seq, ["1", "2", "3", "4", "6", "4", "5", "6"]);
        assert_eq!(
            logs.count("WARN", "the receiver refused message"),
            1,
            "{:#?}",
            logs.lines()
        );
    }
}
