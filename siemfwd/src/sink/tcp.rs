//! The TCP connector (RFC 6587): resolve the receiver's name and connect.
//!
//! Resolution happens at every connect, never at build time, so a receiver
//! behind a DNS name that moves is followed, and a name that does not
//! resolve at start-up only delays delivery. Every resolved address is tried
//! in the resolver's order (IPv6 and IPv4 both), and the last error is
//! reported.
//!
//! Everything after the connect (framing, writes, reconnects) is shared with
//! TLS and lives in `stream/conn.rs`.

use std::io;

use tokio::net::TcpStream;

use super::{describe_io, Endpoint};

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
