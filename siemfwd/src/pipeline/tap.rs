//! The tap: write messages to standard output exactly as the configured sink
//! would put them on the wire (framing included), for `siemfwd tap` and
//! `siemfwd run --dry-run`.
//!
//! It is an output of the pipeline rather than a sink transport because it
//! stands in for *any* transport: it borrows the framing of the configured
//! one.

use tokio::io::AsyncWriteExt;

use crate::sink::{self, Framing, Messages, SinkConfig, Transport};

/// Writes framed messages to stdout.
#[derive(Debug)]
pub struct Tap {
    framing: TapFraming,
    out: tokio::io::Stdout,
    buf: Vec<u8>,
}

/// How the tap delimits messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TapFraming {
    /// As the sink's stream framing.
    Stream(Framing),
    /// UDP has no framing on the wire; one message per line makes the
    /// datagrams readable.
    Datagram,
}

impl Tap {
    /// A tap framing like `config` would.
    pub fn new(config: &SinkConfig) -> Self {
        let framing = match config.transport {
            Transport::Tcp | Transport::Tls => TapFraming::Stream(config.framing),
            Transport::Stdout => TapFraming::Stream(Framing::Lf),
            Transport::Udp => TapFraming::Datagram,
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
        for m in msgs.iter() {
            match self.framing {
                TapFraming::Stream(Framing::OctetCounting) => {
                    self.buf
                        .extend_from_slice(itoa::Buffer::new().format(m.len()).as_bytes());
                    self.buf.push(b' ');
                    self.buf.extend_from_slice(m);
                }
                TapFraming::Stream(Framing::Lf) | TapFraming::Datagram => {
                    self.buf.extend_from_slice(m);
                    self.buf.push(b'\n');
                }
            }
        }
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
