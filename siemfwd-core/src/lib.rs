//! The small core every part of siemfwd shares, and nothing else:
//!
//! - [`record`]: the shape a log travels in from a source to the encoder
//!   (`Record`: a time and ordered fields of bytes), and what the transform
//!   stage decided for its message (`Meta`: severity, facility, header
//!   overrides);
//! - [`counters`]: one pipeline's counters behind a cloneable handle
//!   (`Metrics`), passed in at build time;
//! - [`units`]: the values users write in the config (durations, sizes,
//!   secrets);
//! - [`template`]: text with `{field}` placeholders rendered from a record
//!   (transform steps and the CEF/LEEF header fields use it).
//!
//! Sources, the syslog encoders and sinks depend on it; it depends on none
//! of them.
#![deny(missing_docs)]

pub mod counters;
pub mod record;
pub mod template;
pub mod units;
