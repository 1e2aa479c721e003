//! siemfwd: forward logs from a consumer group to a SIEM over syslog.
//!
//! The library holds the product; the binary (`main.rs`) only parses the
//! command line and maps results to exit codes. Three parts are crates of
//! their own, re-exported here: `siemfwd-core` ([`record`], [`counters`],
//! [`units`]), `siemfwd-syslog` ([`format`](mod@format), [`listen`]) and
//! `sls-client` (the Log Service HTTP API under [`source::sls`]). A tour of the parts, in the
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
//! - [`counters`] counts what each pipeline did; [`telemetry`] serves them
//!   (and `/health`, `/ready`), [`progress`] logs the pace while behind,
//!   [`systemd`] tells the service manager.
#![deny(missing_docs)]

mod backoff;
pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod pipeline;
pub mod progress;
pub mod sink;
pub mod source;
pub mod systemd;
pub mod telemetry;
pub mod transform;

// The parts that are crates of their own, under the paths the rest of
// siemfwd (and its users) name them by.
pub use siemfwd_core::{counters, record, template, units};
pub use siemfwd_syslog::{format, listen, relp};
