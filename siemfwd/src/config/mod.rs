//! Configuration: the TOML file, the environment overlay, and validation.
//!
//! TODO: being written.

pub mod units;
