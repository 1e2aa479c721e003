//! siemfwd: forward logs from a consumer group to a SIEM over syslog.
//!
//! The library holds everything; the binary (`main.rs`) only parses the
//! command line and maps results to exit codes. A tour of the parts, in the
//! order data flows through them, is in `docs/architecture.md`:
//!
//! - [`source`] reads records (NDJSON files, the embedded default, and an
//!   Alibaba Cloud Log Service consumer group),
//! - [`record`] is the shape they travel in,
//! - [`transform`] decides per record: keep or drop, severity, header fields,
//! - [`format`](mod@format) turns a record into one syslog message,
//! - [`sink`] delivers messages to the SIEM,
//! - [`pipeline`] wires them and moves checkpoints only after delivery,
//! - [`listen`] is a syslog receiver for trying things and for tests,
//! - [`config`] reads the settings and composes each part's own table,
//! - [`units`] are the values users write (durations, sizes, secrets),
//! - [`counters`] counts what each pipeline did.
#![deny(missing_docs)]

mod backoff;
pub mod config;
pub mod counters;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod listen;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod source;
pub mod transform;
pub mod units;
