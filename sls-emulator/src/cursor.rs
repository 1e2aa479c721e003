//! SLS cursors (protocol notes §3): standard base64 (with padding) of the decimal ASCII form of
//! a signed 64-bit integer that advances by exactly one per log group within a shard.
//!
//! Clients treat cursors as opaque, but some decode them (Python's `get_previous_cursor_time`
//! decodes, subtracts one and re-encodes with a trailing newline), so the emulator produces
//! exactly this format and tolerates surrounding whitespace in the decoded text.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why a cursor string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    /// Not standard base64.
    #[error("cursor is not base64")]
    NotBase64,
    /// Base64, but not the decimal text of an int64.
    #[error("cursor does not decode to an integer")]
    NotInteger,
}

/// Encodes a cursor position.
pub fn encode(position: i64) -> String {
    STANDARD.encode(position.to_string())
}

/// Decodes a cursor string into its position.
///
/// # Errors
/// [`CursorError`] when the text is not base64 of a decimal int64.
pub fn decode(cursor: &str) -> Result<i64, CursorError> {
    let raw = STANDARD
        .decode(cursor.trim())
        .map_err(|_| CursorError::NotBase64)?;
    let text = std::str::from_utf8(&raw).map_err(|_| CursorError::NotInteger)?;
    text.trim()
        .parse::<i64>()
        .map_err(|_| CursorError::NotInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples_round_trip() {
        for (text, n) in [
            (
                "MTQ0NzMyOTQwMTEwMjEzMDkwNA==",
                1_447_329_401_102_130_904_i64,
            ),
            ("MTUyNDE1NTM3OTM3MzkwODQ5Ng==", 1_524_155_379_373_908_496),
            ("MTczNzY2OTAzNjAxNzIxODQ1NA==", 1_737_669_036_017_218_454),
        ] {
            assert_eq!(decode(text), Ok(n));
            assert_eq!(encode(n), text);
        }
    }

    #[test]
    fn small_values_match_python_vectors() {
        assert_eq!(encode(1000), "MTAwMA==");
        assert_eq!(encode(1001), "MTAwMQ==");
    }

    #[test]
    fn trailing_newline_in_decoded_text_is_accepted() {
        // Python's base64_encodestring("1000\n")
        assert_eq!(decode("MTAwMAo="), Ok(1000));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(decode("not base64!"), Err(CursorError::NotBase64));
        assert_eq!(
            decode(&STANDARD.encode("abc")),
            Err(CursorError::NotInteger)
        );
        assert_eq!(decode(""), Err(CursorError::NotInteger));
    }
}
