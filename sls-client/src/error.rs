//! Errors of the Log Service source, classified where they are made
//! (style guide §3): [`Error::class`] says whether retrying can help.
//!
//! Retryable: network failures, 5xx, throttling (403 `*QuotaExceed`), and any
//! error code we do not recognise (a daemon must not die on a surprise; it logs
//! and backs off). Fatal: the errors only a person can fix — credentials,
//! project, logstore, group quota, clock. Saying what to change is the
//! caller's: only it knows what its settings are called (siemfwd's
//! `source/sls/explain.rs`); [`Error::denied_action`] and [`Error::code`]
//! give it what the server said.

/// Whether an error is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again after a back-off.
    Retryable,
    /// Stop the program; a person must fix something.
    Fatal,
}

/// An error of the SLS client or consumer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request never got an HTTP answer (connect, TLS, timeout, reset).
    #[error("SLS request {what} failed: {cause}")]
    Network {
        /// The API call (`PullLogs shard 3`).
        what: String,
        /// The transport error with its whole chain of causes on one line
        /// (kept as text so the message reads the same in a log line and in
        /// the final error).
        cause: String,
    },
    /// The server answered with an error envelope.
    #[error("SLS {what}: HTTP {status} {code}: {message}{}", request_id_suffix(.request_id))]
    Api {
        /// The API call.
        what: String,
        /// HTTP status.
        status: u16,
        /// `errorCode` (`InvalidCursor`, `Unauthorized`, …).
        code: String,
        /// `errorMessage`.
        message: String,
        /// `x-log-requestid`, for support tickets.
        request_id: String,
    },
    /// A fatal condition, already phrased as what to fix.
    #[error("{0}")]
    Fatal(String),
    /// The answer could not be understood (bad JSON, missing header, corrupt
    /// body).
    #[error("SLS {what}: unexpected response: {problem}")]
    Protocol {
        /// The API call.
        what: String,
        /// What is wrong.
        problem: String,
    },
    /// The answer is larger than the client accepts for the call: a broken or
    /// hostile endpoint, or a pull that asked for more than it should.
    #[error("SLS {what}: answer of {size} bytes (by {by}) is over the {limit}-byte limit")]
    TooLarge {
        /// The API call.
        what: String,
        /// What the answer said or brought.
        size: u64,
        /// Where the size came from (`Content-Length`, `x-log-bodyrawsize`,
        /// the body read so far).
        by: &'static str,
        /// The limit for this call.
        limit: u64,
    },
    /// Temporary credentials could not be had from where they come from
    /// (the metadata service, STS, a credentials URI): retried, since the
    /// key held may still be valid and these services come back.
    #[error("cannot get credentials from {from}: {problem}")]
    Credentials {
        /// The source, as [`crate::CredentialSource::describe`] names it
        /// (never a secret).
        from: String,
        /// What went wrong.
        problem: String,
    },
    /// No source of a credentials lookup gave a key; what each said.
    #[error("no credentials found; the lookup tried: {tried}")]
    NoCredentials {
        /// Each source's failure, `; `-separated.
        tried: String,
    },
    /// A setting is wrong.
    #[error("{key}: {problem}")]
    Config {
        /// The setting: the name of its [`crate::ClientConfig`] field
        /// (`endpoint`), or the caller's own key path.
        key: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

/// `error: cause: cause…` on one line, without repeating a cause whose
/// text its parent already contains.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

fn request_id_suffix(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!(" (request id {id})")
    }
}

/// Error codes that mean "a person must fix the configuration".
const FATAL_CODES: &[&str] = &[
    "Unauthorized",
    "SignatureNotMatch",
    "InvalidAccessKeyId",
    "ProjectNotExist",
    "ProjectNotExists",
    "LogStoreNotExist",
    "ConsumerGroupQuotaExceed",
    "RequestTimeTooSkewed",
];

impl Error {
    /// Retry or stop.
    pub fn class(&self) -> Class {
        match self {
            Error::Network { .. }
            | Error::Protocol { .. }
            | Error::TooLarge { .. }
            | Error::Credentials { .. } => Class::Retryable,
            Error::Api { code, status, .. } => {
                if FATAL_CODES.contains(&code.as_str()) || *status == 401 {
                    Class::Fatal
                } else {
                    Class::Retryable
                }
            }
            Error::Fatal(_) | Error::NoCredentials { .. } | Error::Config { .. } => Class::Fatal,
        }
    }

    /// The SLS error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the server refused the AccessKey itself (`401`, or
    /// `Unauthorized`, `SignatureNotMatch`, `InvalidAccessKeyId`): fatal
    /// at start, while a consumer that has already worked may retry it —
    /// a key disabled, rotated or stripped of its policy mid-run is fixed
    /// outside the process.
    pub fn refuses_credentials(&self) -> bool {
        matches!(self, Error::Api { status, code, .. }
            if *status == 401
                || matches!(code.as_str(), "Unauthorized" | "SignatureNotMatch" | "InvalidAccessKeyId"))
    }

    /// True for throttling answers (the server asks us to slow down).
    pub fn is_throttle(&self) -> bool {
        matches!(self, Error::Api { status: 403, code, .. } if code.contains("QuotaExceed") || code.contains("QPS"))
    }

    /// The RAM action a policy refused this AccessKey (`log:GetCursorOrData`;
    /// empty if the server named none), when the server said a policy
    /// refused it: the key itself is fine, its policy lacks the action.
    pub fn denied_action(&self) -> Option<&str> {
        let Error::Api { message, .. } = self else {
            return None;
        };
        if !message.contains("denied by sts or ram") {
            return None;
        }
        let at = message.find("action: ")?;
        // Empty when the server named none: still the policy, not the key.
        message[at + "action: ".len()..].split([',', ' ']).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            what: "x".into(),
            status,
            code: code.into(),
            message: "m".into(),
            request_id: String::new(),
        }
    }

    #[test]
    fn credentials_and_missing_resources_are_fatal() {
        for code in [
            "Unauthorized",
            "SignatureNotMatch",
            "ProjectNotExist",
            "LogStoreNotExist",
            "ConsumerGroupQuotaExceed",
        ] {
            assert_eq!(api(400, code).class(), Class::Fatal, "{code}");
        }
    }

    #[test]
    fn a_denied_action_is_read_from_the_message() {
        let e = Error::Api {
            what: "PullLogs shard 0".into(),
            status: 401,
            code: "Unauthorized".into(),
            message: "denied by sts or ram, action: log:GetCursorOrData, resource: acs:log:x"
                .into(),
            request_id: String::new(),
        };
        assert_eq!(e.denied_action(), Some("log:GetCursorOrData"));
        assert_eq!(api(401, "Unauthorized").denied_action(), None);
        let unnamed = Error::Api {
            what: "x".into(),
            status: 401,
            code: "Unauthorized".into(),
            message: "denied by sts or ram, action: , resource: acs:log:x".into(),
            request_id: String::new(),
        };
        assert_eq!(unnamed.denied_action(), Some(""));
    }

    #[test]
    fn refused_credentials_are_told_apart_from_other_fatal_errors() {
        for e in [
            api(401, "Unauthorized"),
            api(401, "SomethingNew"),
            api(400, "SignatureNotMatch"),
            api(403, "InvalidAccessKeyId"),
        ] {
            assert!(e.refuses_credentials(), "{e}");
            assert_eq!(e.class(), Class::Fatal, "{e}");
        }
        for e in [api(404, "LogStoreNotExist"), api(403, "ReadQuotaExceed")] {
            assert!(!e.refuses_credentials(), "{e}");
        }
    }

    #[test]
    fn server_errors_and_throttling_are_retryable() {
        assert_eq!(api(500, "InternalServerError").class(), Class::Retryable);
        assert_eq!(api(503, "ServerBusy").class(), Class::Retryable);
        let t = api(403, "ReadQuotaExceed");
        assert_eq!(t.class(), Class::Retryable);
        assert!(t.is_throttle());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chain_puts_every_cause_on_one_line_without_repeats() {
        let e = Outer(Inner(std::io::Error::other("refused")));
        // "outer: inner" already names the inner error; only the io cause is added.
        assert_eq!(chain(&e), "outer: inner: refused");
    }
}
