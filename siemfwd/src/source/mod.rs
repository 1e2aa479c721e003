//! Sources. TODO
pub mod ndjson;
