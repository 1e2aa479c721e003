//! The acknowledgement of plain syslog over TCP and TLS: the receiver's
//! kernel acknowledged every byte of a batch, and the connection then stayed
//! healthy for `sink.settle_time`.
//!
//! # Written is not delivered
//!
//! A batch written into a TCP socket may still be lost: the receiver can die
//! with our bytes unacknowledged, or acknowledged by its kernel but never
//! read (rsyslog stopped with a full receive buffer answers with RST and the
//! bytes are gone). So a batch is safe only when
//!
//! 1. the receiver's TCP has acknowledged every byte of it: the kernel's
//!    count of bytes sent but not acknowledged (`SIOCOUTQ`, see
//!    [`conn::unacked`]) subtracted from the bytes we wrote on *this*
//!    connection (counted below TLS, ciphertext) reaches the batch's end;
//!    and
//! 2. the connection then stayed healthy for `sink.settle_time`: no end of
//!    stream, reset or TLS alert seen by the health check. This covers a
//!    receiver that acknowledged our bytes and dies before reading them, or
//!    that stopped reading to shut down: it closes or resets the connection
//!    soon after, and we see it within the settle time.
//!
//! Past that point only an application acknowledgement (RELP) could tell
//! more; a receiver that reads our bytes and then loses them later than the
//! settle time is beyond what TCP can reveal. A receiver whose window stays
//! shut (nothing acknowledged for `write_timeout` while bytes are
//! outstanding) counts as stalled, like a write that makes no progress.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use super::ack::{Acknowledgement, Failure};
use super::conn::{self, Conn};
use super::Messages;

/// Bounds of the interval between two health checks while batches are held:
/// a twentieth of the settle time, within these. A check is also when a
/// batch is first seen acknowledged, and its settle time counts from there,
/// so a batch is held about settle time + half this interval: a quarter of
/// the settle time (50 ms) held batches ~12 % longer than the settle time,
/// and the in-flight budget caps throughput at budget ÷ that hold. A check
/// is two syscalls (`recv(MSG_PEEK)`, `ioctl(SIOCOUTQ)`).
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(25);

/// Kernel acknowledgement + settle time.
#[derive(Debug)]
pub(crate) struct KernelSettle {
    settle: Duration,
    poll: Duration,
    write_timeout: Duration,
    /// Bytes of the current connection acknowledged at the last check.
    acked: u64,
    /// The last time the acknowledged count moved (or nothing was
    /// outstanding): the stall clock.
    ack_moved_at: Instant,
}

/// Where a batch ends on the connection, and since when it is acknowledged.
#[derive(Debug)]
pub(crate) struct Mark {
    end: u64,
    acked_at: Option<Instant>,
}

impl KernelSettle {
    pub(crate) fn new(settle: Duration, write_timeout: Duration) -> Self {
        Self {
            settle,
            poll: (settle / 20).clamp(POLL_MIN, POLL_MAX),
            write_timeout,
            acked: 0,
            ack_moved_at: Instant::now(),
        }
    }
}

impl Acknowledgement for KernelSettle {
    type Mark = Mark;

    fn connected(&mut self, _conn: &Conn, now: Instant) {
        self.acked = 0;
        self.ack_moved_at = now;
    }

    async fn listen(&mut self, conn: &mut Conn) -> io::Result<()> {
        conn::idle_check_within(conn, self.write_timeout).await
    }

    fn encode<'a>(&'a mut self, msgs: &'a Messages) -> &'a [u8] {
        // Framed for this sink when it was built: the bytes go as they are.
        msgs.framed()
    }

    fn writing(&mut self, conn: &Conn, now: Instant) {
        // Nothing was outstanding: the stall clock starts with this write,
        // not at the last acknowledgement.
        if conn.written() <= self.acked {
            self.ack_moved_at = now;
        }
    }

    fn written(&mut self, conn: &Conn) -> Mark {
        Mark {
            end: conn.written(),
            acked_at: None,
        }
    }

    fn settled<'m>(
        &mut self,
        conn: &Conn,
        marks: impl Iterator<Item = &'m mut Mark>,
        now: Instant,
    ) -> Result<usize, Failure> {
        let unacked = conn::unacked(conn.tcp()).map_err(Failure::Io)?;
        let written = conn.written();
        // Without the kernel's figure, written counts as acknowledged and
        // the settle time alone guards the safe point.
        let acked = written.saturating_sub(unacked.unwrap_or(0));
        if acked > self.acked || acked == written {
            self.acked = acked;
            self.ack_moved_at = now;
        }
        if now.duration_since(self.ack_moved_at) >= self.write_timeout {
            return Err(Failure::Stalled);
        }
        let mut safe = 0;
        let mut counting = true;
        for m in marks {
            if m.end > acked {
                break;
            }
            let since = *m.acked_at.get_or_insert(now);
            counting &= now.duration_since(since) >= self.settle;
            safe += usize::from(counting);
        }
        Ok(safe)
    }

    fn next_check(&self, last_check: Instant, oldest: Option<&Mark>) -> Instant {
        let due = last_check + self.poll;
        match oldest.and_then(|m| m.acked_at) {
            Some(t) => due.min(t + self.settle),
            None => due,
        }
    }
}
