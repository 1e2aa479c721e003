//! Errors: [`ApiError`] is what the emulator answers on the wire (the SLS error envelope of
//! protocol notes §1.5/§1.6); [`Error`] is what the library API returns to Rust callers.

use std::fmt;

/// An SLS error reply: HTTP status plus the `errorCode`/`errorMessage` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// SLS `errorCode`, e.g. `LogStoreNotExist`.
    pub code: &'static str,
    /// Human-readable `errorMessage`.
    pub message: String,
}

impl ApiError {
    /// Builds an error reply.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 ParameterInvalid`.
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(400, "ParameterInvalid", message)
    }

    /// `400 InvalidCursor`.
    pub fn cursor(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidCursor", message)
    }

    /// `404 ProjectNotExist`.
    pub fn no_project(project: &str) -> Self {
        Self::new(
            404,
            "ProjectNotExist",
            format!("The Project does not exist : {project}"),
        )
    }

    /// `404 LogStoreNotExist`.
    pub fn no_logstore(logstore: &str) -> Self {
        Self::new(
            404,
            "LogStoreNotExist",
            format!("logstore {logstore} does not exist"),
        )
    }

    /// `400 ShardNotExist` (the status the read APIs document).
    pub fn no_shard(shard: u32) -> Self {
        Self::new(
            400,
            "ShardNotExist",
            format!("shard {shard} does not exist"),
        )
    }

    /// `404 ConsumerGroupNotExist`.
    pub fn no_group(group: &str) -> Self {
        Self::new(
            404,
            "ConsumerGroupNotExist",
            format!("consumer group {group} does not exist"),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Errors of the library API (starting, direct store access, persistence).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// Reading or writing the data directory failed.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// File or directory involved.
        path: std::path::PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The data directory holds something the emulator cannot read.
    #[error("data directory {path}: {reason}")]
    Corrupt {
        /// File involved.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A direct store call was refused the way an HTTP call would be.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}
