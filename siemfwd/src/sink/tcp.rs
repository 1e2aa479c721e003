//! The `tcp` transport (RFC 6587): its [`SPEC`], the stream sink it shares
//! with `tls` ([`stream_sink`]), and the connector: resolve the receiver's
//! name and connect.
//!
//! Resolution happens at every connect, never at build time, so a receiver
//! behind a DNS name that moves is followed, and a name that does not
//! resolve at start-up only delays delivery. Every resolved address is tried
//! in the resolver's order (IPv6 and IPv4 both), and the last error is
//! reported.
//!
//! Everything after the connect (framing, writes, reconnects) is shared with
//! TLS and lives in `stream/`.

use std::io;

use tokio::net::TcpStream;

use super::tls::TlsSettings;
use super::{describe_io, stream, Endpoint, Framing, Inner, SinkConfig, Spec, Wire};
use crate::counters::Metrics;

/// The `tcp` transport.
pub(super) const SPEC: Spec = Spec {
    name: "tcp",
    // `tls` reads these and its own table.
    keys: &[
        "address",
        "framing",
        "connect_timeout",
        "write_timeout",
        "backoff_initial",
        "backoff_max",
        "settle_time",
        "max_message",
    ],
    wire: stream_wire,
    build: |config, metrics| {
        let endpoint = Endpoint::parse(&config.address)?;
        Ok(stream_sink(config, endpoint, None, metrics))
    },
};

/// What a stream transport asks of its messages: escaping of what would end
/// a message early under LF framing, and `sink.max_message`.
pub(super) fn stream_wire(config: &SinkConfig) -> Wire {
    Wire {
        newline_terminated: config.framing == Framing::Lf,
        max_message: Some(usize::try_from(config.max_message.0).unwrap_or(usize::MAX)),
        tap_framing: config.framing,
        waits_for_receiver: true,
    }
}

/// A stream sink to `endpoint` over TCP, or over TLS with `tls`: the
/// replay queue with kernel acknowledgement and settle time
/// (`stream/settle.rs`).
pub(super) fn stream_sink(
    config: &SinkConfig,
    endpoint: Endpoint,
    tls: Option<TlsSettings>,
    metrics: &Metrics,
) -> Inner {
    let settings = stream::Settings {
        connector: stream::conn::Connector {
            endpoint,
            tls,
            timeout: config.connect_timeout.0,
            session: None,
        },
        framing: config.framing,
        write_timeout: config.write_timeout.0,
        backoff: crate::backoff::Backoff::new(config.backoff_initial.0, config.backoff_max.0),
    };
    let ack = stream::settle::KernelSettle::new(config.settle_time.0, config.write_timeout.0);
    Inner::Stream(Box::new(stream::StreamSink::new(settings, ack, metrics)))
}

/// Open a TCP connection to `endpoint`. The caller bounds it with
/// `connect_timeout`.
pub(crate) async fn connect(endpoint: &Endpoint) -> io::Result<TcpStream> {
    let addrs = endpoint.resolve().await?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
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
