//! When is a batch written on a stream safe? The acknowledgement strategy.
//!
//! The replay queue (`mod.rs`) holds every written batch until its
//! strategy says the receiver has it, and writes everything held again on
//! a new connection. What "has it" means differs per protocol, and that
//! difference is all this trait carries:
//!
//! - plain syslog over TCP or TLS has no answer from the receiving
//!   application, so the best proof is the receiver's *kernel*
//!   acknowledgement held for a settle time on a connection that stayed
//!   healthy ([`super::settle::KernelSettle`]);
//! - RELP answers each message with a transaction number, so a batch is
//!   safe when every one of its numbers came back; its strategy encodes
//!   each write with fresh numbers, which is why [`Acknowledgement::encode`]
//!   exists rather than writing the batch's bytes as they are.

use std::future::Future;
use std::io;

use tokio::time::Instant;

use super::conn::Conn;
use super::Messages;

/// Why a connection is given up.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection broke or the peer closed it.
    Io(io::Error),
    /// Nothing was acknowledged for `sink.write_timeout` while bytes were
    /// outstanding: the receiver stopped reading.
    Stalled,
}

/// How a stream sink learns that what it wrote is safe. One value per
/// sink, told about every connection, write and check in order.
pub(crate) trait Acknowledgement: Send {
    /// What the strategy remembers about one batch written on the current
    /// connection (where it ends, which transactions it holds, …).
    type Mark: Send;

    /// A new connection is up: nothing held has been written on it yet,
    /// and what was known about the previous one no longer holds.
    fn connected(&mut self, conn: &Conn, now: Instant);

    /// Take in what the peer sent, without waiting for more: replies are
    /// acknowledgements for a protocol that has them, anything else is
    /// read and discarded. An error means the connection is gone. Runs
    /// before writing on a connection that may have been idle, and at
    /// every check.
    fn listen(&mut self, conn: &mut Conn) -> impl Future<Output = io::Result<()>> + Send;

    /// Whether `msgs` may be written now. A protocol with a window of
    /// unanswered messages (RELP) says no while it is full; the batch waits,
    /// unwritten, for answers.
    fn room(&mut self, _msgs: &Messages) -> bool {
        true
    }

    /// The bytes that carry `msgs` on the current connection, about to be
    /// written in full. A write cut short (every sink call is cancel-safe)
    /// resumes at its offset with the bytes of a second call, so until
    /// [`Acknowledgement::written`] the same batch must encode to the same
    /// bytes (a strategy that numbers its messages numbers them once per
    /// batch and connection).
    fn encode<'a>(&'a mut self, msgs: &'a Messages) -> &'a [u8];

    /// A run of writes starts on `conn` (after [`Acknowledgement::listen`]).
    fn writing(&mut self, conn: &Conn, now: Instant);

    /// The bytes of the batch last encoded are all written on `conn`.
    fn written(&mut self, conn: &Conn) -> Self::Mark;

    /// After [`Acknowledgement::listen`]: how many of the batches written
    /// on this connection (`marks`, oldest first) are safe now, counted
    /// from the oldest.
    ///
    /// # Errors
    /// The connection must be given up ([`Failure`]).
    fn settled<'m>(
        &mut self,
        conn: &Conn,
        marks: impl Iterator<Item = &'m mut Self::Mark>,
        now: Instant,
    ) -> Result<usize, Failure>
    where
        Self::Mark: 'm;

    /// When the next check is due, given the last one and the oldest held
    /// batch's mark (if it was written on this connection).
    fn next_check(&self, last_check: Instant, oldest: Option<&Self::Mark>) -> Instant;

    /// Say goodbye on `conn` before it is shut down, within `limit` (RELP's
    /// `close`); plain syslog has nothing to say.
    fn goodbye(
        &mut self,
        _conn: &mut Conn,
        _limit: std::time::Duration,
    ) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}
