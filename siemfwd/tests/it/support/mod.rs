//! Code shared by the integration tests (`tests/it/*.rs`, one test binary).
//!
//! - [`peers`]: real syslog receivers (rsyslog, syslog-ng) started on loopback for one test
//!   and stopped by PID when it ends, plus the test PKI ([`peers::certs`]).
//! - [`send`]: minimal std-only syslog senders (UDP, TCP, TLS through rustls) that let a test
//!   prove a receiver works without going through siemfwd's own sinks.
//! - [`siemfwd`]: the `siemfwd` binary as a real process (killed by PID on drop), NDJSON
//!   corpus lines with raw bytes, siemfwd's final counters.
//! - [`python`]: the venv of the Python peers (Alibaba's SDK, `pycef`).
//! - [`inprocess`]: siemfwd's own receiver in the test process, counting what arrives.
//! - [`http`]: `GET` on siemfwd's `/metrics`, `/health`, `/ready` (and on Prometheus), and
//!   the address siemfwd logged for them.
//! - [`jsonl`]: a byte-preserving reader of the peers' JSON-lines output (rsyslog writes
//!   bytes that are not UTF-8 into it unchanged).
//! - [`alone`]: a lock that keeps the heaviest runs from overlapping a test that measures
//!   time.

pub(crate) mod http;
pub(crate) mod inprocess;
pub(crate) mod jsonl;
pub(crate) mod peers;
pub(crate) mod python;
pub(crate) mod send;
pub(crate) mod siemfwd;

/// Held by the tests that push a million lines through real peers and by the one that
/// bounds, in milliseconds, what a SIGKILL may cost (`delivery_kills`): on a 2-core CI
/// machine two of them at once starve each other's timers, and that test's bound is about
/// siemfwd, not about the machine. Other tests still run beside them.
pub(crate) fn alone() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
