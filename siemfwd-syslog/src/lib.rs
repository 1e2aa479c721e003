//! Syslog as siemfwd writes it and reads it back.
//!
//! - [`format`](mod@format): a record becomes one message — a header
//!   (RFC 5424 or RFC 3164) and a body (`key=value` pairs or JSON), each
//!   behind one trait, with every escaping, limit and truncation rule of the
//!   RFCs and of the receivers in the field;
//! - [`listen`]: a receiver (UDP, TCP, TLS and RELP; RFC 6587 framing
//!   detected per frame; RFC 5424 parsed strictly, RFC 3164 best effort)
//!   behind `siemfwd listen`, for trying a pipeline and for tests;
//! - [`relp`]: RELP frames, read and written by the sink and the listener.
//!
//! Both sides live together because each is the other's test: what the
//! encoders write, the parser must read back field for field. Neither knows
//! about sources, sinks or checkpoints; the record they encode and the
//! counters they count into come from `siemfwd-core`.
#![deny(missing_docs)]

pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod listen;
pub mod relp;

// The core's modules under the paths the encoders were written with.
use siemfwd_core::{counters, record, template};
