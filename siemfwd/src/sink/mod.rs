//! Sinks: connections to the SIEM.
//!
//! A sink takes a batch of complete syslog messages ([`Messages`], made by
//! `format`) and delivers them: it frames them for its transport, writes many
//! per system call, and reconnects with exponential backoff and jitter when
//! the receiver goes away. It knows nothing about consumer groups or records;
//! it reports only whether a whole batch was delivered.
//!
//! "Delivered" per transport (../docs/architecture.md, "Delivery"):
//! - `udp`: handed to the kernel, one message per datagram. UDP can lose.
//! - `tcp`, `tls`: written and flushed. When a connection fails mid-batch,
//!   the whole batch is sent again on the next connection: duplicates are
//!   possible, gaps are not.
//! - `stdout`: written and flushed.
//!
//! Layout: `config.rs`-style types here, one file per transport
//! (`udp.rs`, `tcp.rs`, `tls.rs`, `stdout.rs`), framing in `framing.rs`,
//! backoff in `backoff.rs`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::units::HumanDuration;

/// A batch of complete syslog messages, stored back to back in one buffer so
/// formatting allocates nothing per message.
#[derive(Debug, Default, Clone)]
pub struct Messages {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Messages {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every message but keep the memory.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// The buffer to append the next message to; call [`Messages::commit`]
    /// after writing it, or [`Messages::rollback`] to discard a partial write.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// End the message written since the previous commit.
    pub fn commit(&mut self) {
        self.ends.push(self.buf.len());
    }

    /// Drop whatever was written since the previous commit.
    pub fn rollback(&mut self) {
        let start = self.ends.last().copied().unwrap_or(0);
        self.buf.truncate(start);
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no message.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Total bytes of all messages (without framing).
    pub fn byte_len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The messages in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let m = &self.buf[start..end];
            start = end;
            m
        })
    }
}

/// How messages are delimited on a stream (RFC 6587 §3.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 §3.4.1, the only framing RFC 5425 allows).
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2); CR/LF inside a message get escaped by the
    /// formatter.
    Lf,
}

/// TLS settings of the `tls` sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA(s) that sign the receiver's certificate; default:
    /// the system's roots.
    pub ca_file: Option<String>,
    /// PEM client certificate chain, for mutual TLS.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// Name to send as SNI and to verify the certificate against; default:
    /// the host part of `sink.address`.
    pub server_name: Option<String>,
    /// Accept any certificate. Dangerous: only for tests; warned about at
    /// start-up.
    pub insecure_skip_verify: bool,
}

/// Which transport, and its transport-only settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One message per UDP datagram (RFC 5426).
    Udp,
    /// Plain TCP (RFC 6587).
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425).
    Tls,
    /// Standard output, LF-terminated (for trying a pipeline).
    Stdout,
}

/// The `[sink]` table as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `udp`, `tcp` (default), `tls` or `stdout`.
    #[serde(rename = "type")]
    pub transport: Transport,
    /// `host:port` of the receiver (`[::1]:6514` for IPv6).
    pub address: String,
    /// Stream framing: `octet_counting` (default) or `lf`.
    pub framing: Framing,
    /// Give up one connection attempt after this long.
    pub connect_timeout: HumanDuration,
    /// A write that makes no progress for this long counts as a failed
    /// connection (the receiver stalled).
    pub write_timeout: HumanDuration,
    /// First reconnect delay; doubles per failure up to `backoff_max`.
    pub backoff_initial: HumanDuration,
    /// Longest reconnect delay.
    pub backoff_max: HumanDuration,
    /// UDP: the largest datagram sent, in bytes; longer messages are cut on a
    /// UTF-8 boundary and counted.
    pub max_datagram: crate::config::units::ByteSize,
    /// TLS settings (`type = "tls"` only).
    pub tls: TlsConfig,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            transport: Transport::default(),
            address: "127.0.0.1:514".to_owned(),
            framing: Framing::default(),
            connect_timeout: HumanDuration(Duration::from_secs(10)),
            write_timeout: HumanDuration(Duration::from_secs(30)),
            backoff_initial: HumanDuration(Duration::from_millis(200)),
            backoff_max: HumanDuration(Duration::from_secs(30)),
            max_datagram: crate::config::units::ByteSize(2048),
            tls: TlsConfig::default(),
        }
    }
}

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; `key` is its path in the config.
    #[error("{key}: {problem}")]
    Config {
        /// e.g. `sink.tls.ca_file`.
        key: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The send was abandoned because the program is shutting down; the
    /// batch was not (fully) delivered.
    #[error("shutting down before the batch was delivered")]
    Cancelled,
    /// A connection-level failure (only returned by one-shot operations such
    /// as [`Sink::check`]; `send` retries these).
    #[error("{0}")]
    Connection(String),
}

/// A connection to the SIEM, built once from a [`SinkConfig`].
#[derive(Debug)]
pub struct Sink {
    // filled in by the implementation: an enum over the transports
}

impl Sink {
    /// Validate `config` and load what it names (certificates, keys); does not
    /// connect yet.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key and the problem.
    pub fn build(config: &SinkConfig) -> Result<Self, Error> {
        let _ = config;
        todo!("sink helper")
    }

    /// Deliver every message of `msgs`, in order. Connection failures are
    /// retried (reconnect with backoff and jitter, then the whole batch again)
    /// until delivered or `cancel` fires; every incident is logged once with
    /// its cause, not once per message.
    ///
    /// # Errors
    /// [`Error::Cancelled`] if `cancel` fired before the batch was delivered.
    pub async fn send(
        &mut self,
        msgs: &Messages,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), Error> {
        let _ = (msgs, cancel);
        todo!("sink helper")
    }

    /// Connect once (TLS handshake included) and report the first failure:
    /// the sink half of `siemfwd check`.
    ///
    /// # Errors
    /// [`Error::Connection`] with the cause in one line.
    pub async fn check(&mut self) -> Result<(), Error> {
        todo!("sink helper")
    }

    /// Flush and close the connection (TLS `close_notify` included).
    pub async fn close(&mut self) {}
}
