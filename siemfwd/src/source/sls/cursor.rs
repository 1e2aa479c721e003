//! Newtypes for the two identifiers every SLS call carries: the shard id and
//! the cursor.
//!
//! A cursor is opaque to the reader (protocol notes §3): it is stored verbatim
//! as a checkpoint, passed back in `cursor=`, and compared only for equality.
//! The one exception is `siemfwd status`, which turns two cursors into "log
//! groups behind" with [`Cursor::sequence`]; that relies on the documented
//! shape (base64 of a decimal int64 that grows by one per log group) and is
//! never used to decide what to read.

use std::fmt;

use base64::Engine as _;

/// A shard id within a logstore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An SLS cursor: a position in a shard, between two log groups.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor as the server gave it. `None` for an empty string (the
    /// server's "no checkpoint yet").
    pub fn new(s: impl Into<String>) -> Option<Self> {
        let s = s.into();
        (!s.is_empty()).then_some(Self(s))
    }

    /// The text to send back to the server.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The log group sequence number inside the cursor (base64 of a decimal
    /// int64, protocol notes §3), for lag figures only; `None` if the cursor
    /// does not have that shape.
    pub fn sequence(&self) -> Option<i64> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.0.trim())
            .ok()?;
        std::str::from_utf8(&raw).ok()?.trim().parse().ok()
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_sequence_decodes_the_documented_examples() {
        let c = Cursor::new("MTQ0NzMyOTQwMTEwMjEzMDkwNA==").unwrap();
        assert_eq!(c.sequence(), Some(1_447_329_401_102_130_904));
        let c = Cursor::new("MTUyNDE1NTM3OTM3MzkwODQ5Ng==").unwrap();
        assert_eq!(c.sequence(), Some(1_524_155_379_373_908_496));
    }

    #[test]
    fn cursor_of_another_shape_has_no_sequence() {
        assert_eq!(Cursor::new("not base64!").unwrap().sequence(), None);
        assert_eq!(Cursor::new("aGVsbG8=").unwrap().sequence(), None);
    }

    #[test]
    fn empty_cursor_means_no_checkpoint() {
        assert!(Cursor::new("").is_none());
    }
}
