//! The `udp` sink (RFC 5426): one message per datagram, no framing, no
//! trailing LF.
//!
//! The whole datagram is capped at `sink.max_datagram` (default 2048, which
//! RFC 5426 §3.2 says every receiver SHOULD accept). A longer message is cut
//! on a UTF-8 character boundary and counted (`udp_truncated`,
//! `udp_truncated_bytes`): IP fragmentation or `EMSGSIZE` would lose the
//! whole message instead.
//!
//! "Delivered" = handed to the kernel. The socket is connected, so the kernel
//! reports an ICMP "port unreachable" for an earlier datagram as
//! `ECONNREFUSED` on a later send; the datagram of that failed send was *not*
//! sent, and the error is cleared by being reported. We send that datagram
//! again, at once, up to [`REFUSED_RETRIES`] times; if every try is refused
//! we give it up (counted in [`Stats::udp_dropped`](super::Stats), logged
//! once per batch) rather than stall the pipeline: a UDP receiver that is
//! down loses datagrams whatever we do, and blocking would only hold back
//! the checkpoint of data that, once the receiver is back, gets through.
//! Any other send error (no route, no buffer space) means the kernel did not
//! take the datagram: we reopen the socket with backoff and retry the same
//! datagram until it is taken or the token fires. Datagrams already sent are
//! never sent again.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{
    describe_io, Endpoint, Error, Framing, Inner, Messages, SinkConfig, Spec, Stats, Wire,
};
use crate::backoff::Backoff;
use crate::counters::{self, Metrics};
use crate::format::truncate_utf8;

/// Immediate resends of a datagram refused because of an earlier ICMP error.
const REFUSED_RETRIES: u32 = 3;

/// The largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP).
const MAX_UDP_PAYLOAD: u64 = 65_507;

/// The smallest datagram cap allowed: RFC 5426 §3.2, every IPv4 receiver
/// MUST accept 480 octets.
const MIN_DATAGRAM: u64 = 480;

/// The `udp` transport.
pub(super) const SPEC: Spec = Spec {
    name: "udp",
    keys: &["address", "max_datagram", "backoff_initial", "backoff_max"],
    wire: |_| Wire {
        // A datagram holds one message: no delimiter to protect, and the
        // sink cuts it to `max_datagram` itself.
        newline_terminated: false,
        max_message: None,
        // One message per line, as datagrams keep them apart.
        tap_framing: Framing::Lf,
        waits_for_receiver: false,
    },
    build: |config, metrics| {
        let endpoint = Endpoint::parse(&config.address)?;
        Ok(Inner::Udp(UdpSink::build(config, endpoint, metrics)?))
    },
};

/// A `udp` sink.
#[derive(Debug)]
pub(crate) struct UdpSink {
    endpoint: Endpoint,
    max_datagram: usize,
    socket: Option<UdpSocket>,
    backoff: Backoff,
    stats: Stats,
    /// Where cuts to the datagram size are counted.
    metrics: Metrics,
}

impl UdpSink {
    pub(crate) fn build(
        config: &SinkConfig,
        endpoint: Endpoint,
        metrics: &Metrics,
    ) -> Result<Self, Error> {
        let max = config.max_datagram.0;
        if !(MIN_DATAGRAM..=MAX_UDP_PAYLOAD).contains(&max) {
            return Err(Error::Config {
                key: "sink.max_datagram".to_owned(),
                problem: format!(
                    "{max} bytes is out of range; use {MIN_DATAGRAM} to {MAX_UDP_PAYLOAD} (2048 is safe for most receivers)"
                ),
            });
        }
        Ok(Self {
            endpoint,
            // In range above, so it fits any usize of 32 bits or more.
            max_datagram: usize::try_from(max).unwrap_or(usize::MAX),
            socket: None,
            backoff: Backoff::new(config.backoff_initial.0, config.backoff_max.0),
            stats: Stats::default(),
            metrics: metrics.clone(),
        })
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    async fn open(&self) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in self.endpoint.resolve().await? {
            let local: SocketAddr = if addr.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let attempt = async {
                let socket = UdpSocket::bind(local).await?;
                socket.connect(addr).await?;
                Ok::<_, io::Error>(socket)
            };
            match attempt.await {
                Ok(socket) => return Ok(socket),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to send to")))
    }

    fn fail(&mut self, cause: String, first: &mut bool) {
        if *first {
            tracing::warn!(receiver = %self.endpoint, cause = %cause, "UDP send failed; retrying with backoff");
            self.stats.incidents += 1;
            *first = false;
        } else {
            tracing::debug!(receiver = %self.endpoint, cause = %cause, "UDP send failed again");
        }
        self.stats.last_error = Some(cause);
    }

    pub(crate) async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let mut first_failure = true;
        let mut dropped = 0u64;
        for msg in msgs.iter() {
            let keep = truncate_utf8(msg, self.max_datagram);
            if keep < msg.len() {
                counters::add(&self.metrics.udp_truncated, 1);
                counters::add(&self.metrics.udp_truncated_bytes, (msg.len() - keep) as u64);
            }
            let datagram = &msg[..keep];
            let mut refused = 0;
            loop {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let socket = match &self.socket {
                    Some(s) => s,
                    None => match self.open().await {
                        Ok(s) => {
                            self.stats.connects += 1;
                            self.socket.insert(s)
                        }
                        Err(e) => {
                            let cause = format!(
                                "opening a UDP socket to {}: {}",
                                self.endpoint,
                                describe_io(&e)
                            );
                            self.fail(cause, &mut first_failure);
                            self.pause(cancel).await?;
                            continue;
                        }
                    },
                };
                // Blocks only while the socket's send buffer is full.
                let sent = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(Error::Cancelled),
                    r = socket.send(datagram) => r,
                };
                match sent {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        refused += 1;
                        if refused > REFUSED_RETRIES {
                            dropped += 1;
                            break;
                        }
                    }
                    Err(e) => {
                        let cause = format!("sending to {}: {}", self.endpoint, describe_io(&e));
                        self.fail(cause, &mut first_failure);
                        self.socket = None;
                        self.pause(cancel).await?;
                    }
                }
            }
        }
        if dropped > 0 {
            self.stats.udp_dropped += dropped;
            let cause = format!("{}: port unreachable (connection refused)", self.endpoint);
            tracing::warn!(
                receiver = %self.endpoint,
                dropped,
                "the UDP receiver's port is closed (ICMP port unreachable); datagrams were lost"
            );
            self.stats.last_error = Some(cause);
        }
        if !first_failure {
            tracing::info!(receiver = %self.endpoint, "UDP sends work again");
        }
        self.backoff.reset();
        Ok(())
    }

    /// Wait out one backoff step, or return `Cancelled`.
    async fn pause(&mut self, cancel: &CancellationToken) -> Result<(), Error> {
        let delay = self.backoff.next_delay();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    pub(crate) async fn check(&mut self) -> Result<(), Error> {
        match self.open().await {
            Ok(s) => {
                self.stats.connects += 1;
                self.socket = Some(s);
                Ok(())
            }
            Err(e) => {
                let cause = format!(
                    "opening a UDP socket to {}: {}",
                    self.endpoint,
                    describe_io(&e)
                );
                self.stats.last_error = Some(cause.clone());
                Err(Error::Connection(cause))
            }
        }
    }

    pub(crate) fn close(&mut self) {
        self.socket = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use tokio::net::UdpSocket;
    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{batch, config, within};
    use super::super::{Framing, Messages, Sink};
    use crate::units::ByteSize;

    async fn receiver() -> (UdpSocket, String) {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = s.local_addr().expect("addr").to_string();
        (s, addr)
    }

    async fn recv(s: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0; 70_000];
        let n = within("datagram", s.recv(&mut buf)).await.expect("recv");
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn udp_sends_one_message_per_datagram_without_framing() {
        let (rx, addr) = receiver().await;
        let mut sink = Sink::build(&config("udp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        let msgs = batch(&["<14>1 - h a - - - one", "<14>1 - h a - - - two\nlines", ""]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        assert_eq!(recv(&rx).await, b"<14>1 - h a - - - one");
        assert_eq!(recv(&rx).await, b"<14>1 - h a - - - two\nlines");
        assert_eq!(recv(&rx).await, b"");
    }

    #[tokio::test]
    async fn udp_sends_bare_messages_of_a_framed_batch() {
        // A batch framed for a stream (say, a tap's) still goes out one
        // bare message per datagram: no MSG-LEN, no LF.
        let (rx, addr) = receiver().await;
        let mut sink = Sink::build(&config("udp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        assert_eq!(sink.batch_framing(), None);
        for framing in [Framing::OctetCounting, Framing::Lf] {
            let mut msgs = Messages::with_framing(Some(framing));
            for m in ["<14>1 - h a - - - one", "<14>1 - h a - - - two"] {
                msgs.buffer().extend_from_slice(m.as_bytes());
                msgs.commit();
            }
            within("send", sink.send(&msgs, &CancellationToken::new()))
                .await
                .expect("send");
            assert_eq!(recv(&rx).await, b"<14>1 - h a - - - one", "{framing:?}");
            assert_eq!(recv(&rx).await, b"<14>1 - h a - - - two", "{framing:?}");
        }
    }

    #[tokio::test]
    async fn udp_caps_whole_datagram_on_utf8_boundary_and_counts() {
        let (rx, addr) = receiver().await;
        let mut cfg = config("udp", &addr);
        cfg.max_datagram = ByteSize(480);
        let metrics = crate::counters::Metrics::default();
        let mut sink = Sink::build(&cfg, &metrics).expect("build");
        // 478 ASCII bytes then two 3-byte characters: byte 480 falls inside
        // the first euro sign, which must go whole.
        let long = format!("{}\u{20ac}\u{20ac}", "a".repeat(478));
        let fits = "b".repeat(480);
        within(
            "send",
            sink.send(&batch(&[&long, &fits]), &CancellationToken::new()),
        )
        .await
        .expect("send");
        let got = recv(&rx).await;
        assert_eq!(got, "a".repeat(478).as_bytes());
        assert_eq!(recv(&rx).await, fits.as_bytes());
        assert_eq!(counters::get(&metrics.udp_truncated), 1);
        assert_eq!(counters::get(&metrics.udp_truncated_bytes), 6);
    }

    #[tokio::test]
    async fn udp_cap_cuts_bytes_that_are_not_utf8_exactly_at_the_cap() {
        // No character straddles the cap when the bytes there are not UTF-8:
        // the datagram keeps all `max_datagram` bytes (the formatter passes
        // such bytes through in a kv body).
        let (rx, addr) = receiver().await;
        let mut cfg = config("udp", &addr);
        cfg.max_datagram = ByteSize(480);
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let mut msgs = Messages::new();
        msgs.buffer().extend_from_slice(b"<14>1 - h a - - - ");
        msgs.buffer().resize(600, 0x80);
        msgs.commit();
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        let got = recv(&rx).await;
        assert_eq!(got.len(), 480);
        assert_eq!(
            got,
            msgs.iter().next().map(|m| &m[..480]).unwrap_or_default()
        );
    }

    #[tokio::test]
    async fn udp_closed_port_does_not_stall_the_batch() {
        // Nobody listens: every other send reports the previous datagram's
        // ICMP port unreachable. The batch must still finish promptly.
        let addr = {
            let (s, addr) = receiver().await;
            drop(s);
            addr
        };
        let mut cfg = config("udp", &addr);
        // Were refusals handled by backing off, this would take minutes.
        cfg.backoff_initial = crate::units::HumanDuration(std::time::Duration::from_secs(30));
        cfg.backoff_max = cfg.backoff_initial;
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        let msgs = batch(&vec!["<14>1 lost"; 200]);
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        assert_eq!(sink.stats().connects, 1);
    }

    #[tokio::test]
    async fn udp_check_opens_the_socket() {
        let (_rx, addr) = receiver().await;
        let mut sink = Sink::build(&config("udp", &addr), &crate::counters::Metrics::default())
            .expect("build");
        sink.check().await.expect("check");
        assert_eq!(sink.transport().name(), "udp");
    }

    #[test]
    fn udp_max_datagram_out_of_range_is_a_config_error() {
        for bad in [100, 70_000] {
            let mut cfg = config("udp", "127.0.0.1:514");
            cfg.max_datagram = ByteSize(bad);
            let msg = Sink::build(&cfg, &crate::counters::Metrics::default())
                .expect_err("refused")
                .to_string();
            assert!(msg.starts_with("sink.max_datagram: "), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn truncate_utf8_lands_on_a_char_boundary(s in "\\PC{0,40}", max in 0usize..200) {
            let keep = truncate_utf8(s.as_bytes(), max);
            let limit = max.min(s.len());
            prop_assert!(keep <= limit);
            prop_assert!(s.is_char_boundary(keep));
            // Never cuts more than the one character that straddles the cap.
            prop_assert!(keep + 4 > limit);
        }
    }
}
