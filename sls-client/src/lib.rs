//! A small client for Alibaba Cloud Log Service (SLS): the calls a
//! consumer-group reader needs — shards, cursors, PullLogs, consumer groups,
//! heartbeats and checkpoints — signed with v1 (HMAC-SHA1) or v4
//! (SLS4-HMAC-SHA256), over one `reqwest` connection pool, in pure Rust (no
//! OpenSSL, no C).
//!
//! It knows the HTTP API and nothing of what is done with the data:
//! [`Client::pull_logs`] hands back the body as it came ([`Pulled`],
//! compressed, with its headers); decoding the log groups, consumer-group
//! membership and checkpoint policy belong to the caller (siemfwd's
//! `source::sls`). Errors say whether a retry can help ([`Class`]).
//!
//! - `client.rs`: endpoint rules, requests, retries of network errors and
//!   5xx answers (with the caller's backoff rule), the calls;
//! - `sign.rs`: the two signature versions;
//! - `cursor.rs`: [`ShardId`] and [`Cursor`], the positions in a shard;
//! - `error.rs`: [`Error`] and its [`Class`].

mod client;
mod credentials;
mod cursor;
mod error;
mod sign;

use std::fmt;

pub use client::{
    Auth, CheckpointInfo, Client, ClientConfig, Compression, Endpoint, GroupInfo, Pulled,
    RetryHook, Rule, Scanned, ShardInfo, MAX_LOG_GROUP,
};
pub use credentials::{
    is_role_name, without_query, CredentialSource, Credentials, EcsRamRole, OidcRole,
};
pub use cursor::{Cursor, ShardId};
pub use error::{Class, Error};

/// An AccessKey secret or STS token. Its `Debug` and `Display` print
/// `<redacted>`; only [`Secret::expose`] gives the text, to the signing code.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("LTAI-very-secret");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "LTAI-very-secret");
    }
}
