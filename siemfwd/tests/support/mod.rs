//! Code shared by the integration tests in `tests/*.rs` (each test file says `mod support;`).
//!
//! - [`peers`]: real syslog receivers (rsyslog, syslog-ng) started on loopback for one test
//!   and stopped by PID when it ends, plus the test PKI ([`peers::certs`]).
//! - [`send`]: minimal std-only syslog senders (UDP, TCP, TLS through rustls) that let a test
//!   prove a receiver works without going through siemfwd's own sinks.
//!
//! Every test binary compiles this whole module but uses only part of it, hence the
//! `dead_code` allowance: without it each test file would warn about the parts it skips.
#![allow(dead_code)]

pub mod peers;
pub mod send;
