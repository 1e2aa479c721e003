//! Newtypes for the two identifiers every SLS call carries: the shard id and
//! the cursor.
//!
//! A cursor is opaque to the reader (protocol notes §3): it is stored verbatim
//! as a checkpoint, passed back in `cursor=`, and compared for equality.
//! Two uses rely on the documented shape (base64 of a decimal int64 that
//! grows by one per log group), and neither can make the reader skip or
//! repeat data if the shape ever differs:
//! - `siemfwd status` turns two cursors into "log groups behind"
//!   ([`Cursor::sequence`]);
//! - a lagging shard *guesses* where a pull will end ([`Cursor::plus`]) to
//!   start the next pull before the answer is back. A guessed cursor is
//!   only ever a request: the pull it starts is used only once the server's
//!   own next cursor turns out to be the same position ([`Cursor::same_position`]),
//!   and it is never stored as a checkpoint (see `prefetch.rs`).

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

    /// The cursor `groups` log groups further on, if this cursor has the
    /// documented shape: a guess of where a pull of `groups` that returns
    /// them all will end.
    pub fn plus(&self, groups: u32) -> Option<Cursor> {
        let next = self.sequence()?.checked_add(i64::from(groups))?;
        Some(Self(
            base64::engine::general_purpose::STANDARD.encode(next.to_string()),
        ))
    }

    /// True when both name the same position: equal text, or (for a cursor
    /// rebuilt by [`Cursor::plus`]) the same sequence number.
    pub fn same_position(&self, other: &Cursor) -> bool {
        self == other || self.sequence().is_some_and(|a| other.sequence() == Some(a))
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
    fn plus_counts_log_groups_in_the_documented_shape() {
        let c = Cursor::new("MTQ0NzMyOTQwMTEwMjEzMDkwNA==").unwrap();
        let next = c.plus(1000).unwrap();
        assert_eq!(next.sequence(), Some(1_447_329_401_102_131_904));
        // The text is what a server would send for that position.
        assert_eq!(next.as_str(), "MTQ0NzMyOTQwMTEwMjEzMTkwNA==");
        assert!(c.plus(0).unwrap().same_position(&c));
    }

    #[test]
    fn plus_refuses_what_it_cannot_count() {
        assert_eq!(Cursor::new("not base64!").unwrap().plus(1), None);
        let max = base64::engine::general_purpose::STANDARD.encode(i64::MAX.to_string());
        assert_eq!(Cursor::new(max).unwrap().plus(1), None);
    }

    #[test]
    fn same_position_compares_text_then_sequence() {
        let a = Cursor::new("MTAwMA==").unwrap(); // "1000"
        let padded =
            Cursor::new(base64::engine::general_purpose::STANDARD.encode("1000\n")).unwrap();
        assert!(a.same_position(&padded));
        assert!(!a.same_position(&Cursor::new("MTAwMQ==").unwrap())); // "1001"
        let odd = Cursor::new("opaque").unwrap();
        assert!(odd.same_position(&odd.clone()));
        assert!(!odd.same_position(&a));
    }

    #[test]
    fn empty_cursor_means_no_checkpoint() {
        assert!(Cursor::new("").is_none());
    }
}
