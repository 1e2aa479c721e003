//! The tap: write messages to standard output exactly as the configured sink
//! would put them on the wire (framing included), for `siemfwd tap` and
//! `siemfwd run --dry-run`.
//!
//! It is an output of the pipeline rather than a sink transport because it
//! stands in for *any* transport: it borrows the framing of the configured
//! one.

use tokio::io::AsyncWriteExt;

use crate::sink::{self, Framing, Messages, SinkConfig};

/// Writes framed messages to stdout.
#[derive(Debug)]
pub struct Tap {
    framing: Framing,
    out: tokio::io::Stdout,
    /// A batch not built with [`Tap::batch_framing`], framed again.
    buf: Messages,
}

impl Tap {
    /// A tap framing like `config`'s transport would (its
    /// [`sink::Wire::tap_framing`]).
    pub fn new(config: &SinkConfig) -> Self {
        let framing = config.wire().tap_framing;
        Self {
            framing,
            out: tokio::io::stdout(),
            buf: Messages::with_framing(Some(framing)),
        }
    }

    /// How batches for the tap should be framed ([`Messages::with_framing`]).
    pub fn batch_framing(&self) -> Option<Framing> {
        Some(self.framing)
    }

    /// Write one batch.
    ///
    /// # Errors
    /// Writing to stdout failed (closed pipe).
    pub async fn write(&mut self, msgs: &Messages) -> Result<(), sink::Error> {
        let bytes = if msgs.framing() == Some(self.framing) {
            msgs.framed()
        } else {
            self.buf.clear();
            self.buf.extend_from(msgs);
            self.buf.framed()
        };
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| sink::Error::Connection(format!("writing to stdout: {e}")))
    }

    /// Flush stdout.
    pub async fn flush(&mut self) {
        let _ = self.out.flush().await;
    }
}
