//! Sources: where records come from, read shard by shard, with a position
//! per shard that can be committed once everything before it was delivered.
//!
//! Every source follows the consumer-group model of Log Service and Kafka:
//! the data is split into *shards*; each shard is read in order from a
//! *position*; the position after a batch is *committed* only when the
//! pipeline says every record before it reached the SIEM. The pipeline drives
//! one [`ShardReader`] per owned shard.
//!
//! A reader decodes records straight out of its own buffer and hands each to
//! a visitor (`read_batch`): records borrow from that buffer, so nothing is
//! copied per field, and the reader can reuse the buffer for the next batch
//! once the visitor is done (the visitor formats records into syslog bytes
//! at once).
//!
//! What this module must not know: syslog, formats, sockets.

pub mod file;
pub mod ndjson;
pub mod several;
pub mod sls;

use std::fmt;
use std::future::Future;

use crate::pipeline::tracker::Checkpoint;
use crate::record::Record;

/// Why a source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of the source is wrong (found when it is built).
    #[error("{key}: {problem}")]
    Config {
        /// Path of the key (`source.file.paths`).
        key: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// Reading the input failed.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        /// Why (in the message; not a `source()`, so a chain prints it once).
        cause: std::io::Error,
    },
    /// An input could not be parsed and the policy is to stop.
    #[error("{origin}: malformed input: {problem}")]
    Malformed {
        /// `file:line`.
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The Log Service source failed (fatal: already phrased as what to fix).
    #[error(transparent)]
    Sls(#[from] sls::Error),
    /// A checkpoint could not be read or written.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What went wrong.
        problem: String,
    },
}

/// What the visitor of [`ShardReader::read_batch`] tells the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next record.
    Continue,
    /// The batch is full: stop after this record; the returned position
    /// points just after it.
    Full,
}

/// The result of one [`ShardReader::read_batch`].
#[derive(Debug)]
pub struct BatchEnd<P> {
    /// Resume from here; commit it once every record visited so far has been
    /// delivered.
    pub position: P,
    /// Records visited in this batch.
    pub records: usize,
    /// Set when the reader met an input it must stop at (policy `stop`):
    /// `position` is just before it. Deliver and commit, then fail.
    pub stop: Option<Error>,
}

/// One shard being read.
pub trait ShardReader: Send {
    /// Where a shard is read from; committed as a checkpoint.
    type Position: Clone + fmt::Debug + Send + Sync + 'static;

    /// A short name for logs (`file:/var/log/a.ndjson`, `shard 3`).
    fn name(&self) -> &str;

    /// Visit the next records in order, each borrowed from the reader's
    /// buffer, until the visitor says [`Flow::Full`] or no more data is
    /// ready. `Ok(None)`: the shard has ended (a file without `follow`, a
    /// read-only shard at its end) and everything was visited.
    fn read_batch(
        &mut self,
        visit: &mut (dyn FnMut(&Record<'_>) -> Flow + Send),
    ) -> impl Future<Output = Result<Option<BatchEnd<Self::Position>>, Error>> + Send;

    /// Save a checkpoint: a position whose every earlier record was delivered
    /// (only the pipeline's tracker can make a [`Checkpoint`]). A reader may
    /// return before the checkpoint is stored (a remote one, so that reading
    /// does not stop for a round trip); [`ShardReader::flush`] waits for it.
    /// Checkpoints are stored in the order they are given.
    fn commit(
        &mut self,
        checkpoint: &Checkpoint<Self::Position>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wait until every checkpoint given to [`ShardReader::commit`] is stored
    /// (or refused). Called before a shard is given up and before exit.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A source of shards, run by the pipeline's one run loop
/// (`pipeline/group.rs`): a consumer group whose shards are handed out from
/// outside and change while it runs (Log Service today, Kafka later), or a
/// finite set of shards that end (files). The pipeline keeps one reader per
/// assigned shard, stops the readers of shards taken away (drain, commit,
/// drop), and reports which shards it still holds.
pub trait GroupSource: Send + 'static {
    /// The reader of one shard.
    type Reader: ShardReader + 'static;

    /// Join the group (create it if allowed) and start the membership
    /// (heartbeats). Configuration errors come out here.
    fn join(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Wait until the set of shards to hold differs from the last one
    /// returned, and return it (every shard id). Cancel-safe.
    fn assignment(&mut self) -> impl Future<Output = Result<Vec<u32>, Error>> + Send;

    /// The shards this process holds now: a reader is running, including
    /// one that is draining after being taken away. Told to the group with
    /// the next heartbeat.
    fn set_held(&self, held: &[u32]);

    /// A reader for a newly assigned shard (it finds its own start
    /// position).
    fn open(&self, shard: u32) -> impl Future<Output = Result<Self::Reader, Error>> + Send;

    /// A shard's reader ended by itself (not taken away, not stopped): true
    /// when the shard is done for good (a file read to its end), false to
    /// open it again while it is still assigned (a group's shard whose reader
    /// lost it or finished a read-only shard; the group decides).
    fn ended(&mut self, _shard: u32) -> bool {
        false
    }

    /// True for a source whose run ends once every shard is done (files);
    /// a consumer group runs until it is stopped.
    fn finite(&self) -> bool {
        false
    }

    /// How a shard is named in the run loop's log lines (a [`several`]
    /// source says whose shard it is).
    fn shard_name(&self, shard: u32) -> String {
        shard.to_string()
    }

    /// Leave the group after every reader finished.
    fn leave(&mut self) -> impl Future<Output = ()> + Send;
}
