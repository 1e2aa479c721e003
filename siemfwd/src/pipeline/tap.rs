//! The tap: write messages to standard output exactly as the configured sink
//! would put them on the wire (framing included), for `siemfwd tap` and
//! `siemfwd run --dry-run`.
//!
//! It is an output of the pipeline rather than a sink transport because it
//! stands in for *any* transport: it borrows the framing of the configured
//! one.

use tokio::io::AsyncWriteExt;

use crate::sink::framing::frame_batch;
use crate::sink::{self, Framing, Messages, SinkConfig, Transport};

/// Writes framed messages to stdout.
#[derive(Debug)]
pub struct Tap {
    framing: Framing,
    out: tokio::io::Stdout,
    buf: Vec<u8>,
}

impl Tap {
    /// A tap framing like `config` would. UDP has no framing on the wire;
    /// there one message per line keeps the datagrams readable.
    pub fn new(config: &SinkConfig) -> Self {
        let framing = match config.transport {
            Transport::Tcp | Transport::Tls => config.framing,
            Transport::Stdout | Transport::Udp => Framing::Lf,
        };
        Self {
            framing,
            out: tokio::io::stdout(),
            buf: Vec::new(),
        }
    }

    /// Write one batch.
    ///
    /// # Errors
    /// Writing to stdout failed (closed pipe).
    pub async fn write(&mut self, msgs: &Messages) -> Result<(), sink::Error> {
        self.buf.clear();
        frame_batch(&mut self.buf, msgs, self.framing);
        self.out
            .write_all(&self.buf)
            .await
            .map_err(|e| sink::Error::Connection(format!("writing to stdout: {e}")))
    }

    /// Flush stdout.
    pub async fn flush(&mut self) {
        let _ = self.out.flush().await;
    }
}
