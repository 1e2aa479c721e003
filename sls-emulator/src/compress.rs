//! Body compression as SLS uses it (protocol notes §2.4): `lz4` is a single **raw LZ4 block**
//! (no frame, no size prefix; the uncompressed size travels in `x-log-bodyrawsize`), `zstd` a
//! standard frame, `deflate` a zlib stream (RFC 1950). Compression is signalled only by
//! `x-log-compresstype`, never by HTTP `Content-Encoding` (which would make HTTP clients
//! decode it themselves).

use std::io::{Read as _, Write as _};

/// A body compression named by `x-log-compresstype` / `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed.
    None,
    /// Raw LZ4 block.
    Lz4,
    /// zstd frame.
    Zstd,
    /// zlib stream.
    Deflate,
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The `x-log-compresstype` value is not one SLS knows.
    #[error("unknown compress type {0:?}")]
    UnknownType(String),
    /// The compressed data is corrupt.
    #[error("{kind} body does not decompress: {reason}")]
    Corrupt {
        /// Compression name.
        kind: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// The output length differs from `x-log-bodyrawsize`.
    #[error("decompressed {actual} bytes, x-log-bodyrawsize says {expected}")]
    SizeMismatch {
        /// Declared size.
        expected: usize,
        /// Actual size.
        actual: usize,
    },
}

impl Compression {
    /// Parses an `x-log-compresstype` value (`gzip` is read as zlib, as the Python SDK does).
    ///
    /// # Errors
    /// [`DecompressError::UnknownType`] for anything else.
    pub fn from_header(value: &str) -> Result<Self, DecompressError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" => Ok(Self::None),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            "deflate" | "gzip" => Ok(Self::Deflate),
            other => Err(DecompressError::UnknownType(other.to_owned())),
        }
    }

    /// Picks the response compression for an `Accept-Encoding` value: the first of its
    /// comma-separated tokens that SLS supports, else none. (`requests`' default
    /// `gzip, deflate` therefore gets zlib, which the Python SDK also decodes.)
    pub fn negotiate(accept_encoding: Option<&str>) -> Self {
        let Some(value) = accept_encoding else {
            return Self::None;
        };
        for token in value.split(',') {
            let name = token
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match name.as_str() {
                "lz4" => return Self::Lz4,
                "zstd" => return Self::Zstd,
                "deflate" => return Self::Deflate,
                _ => {}
            }
        }
        Self::None
    }

    /// The `x-log-compresstype` value, or `None` for an uncompressed body.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Lz4 => Some("lz4"),
            Self::Zstd => Some("zstd"),
            Self::Deflate => Some("deflate"),
        }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::None => data.to_vec(),
            Self::Lz4 => lz4_flex::block::compress(data),
            // Level 1, as the Python SDK writes. Encoding into a Vec cannot fail.
            Self::Zstd => zstd::bulk::compress(data, 1).unwrap_or_else(|_| data.to_vec()),
            Self::Deflate => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(data);
                enc.finish().unwrap_or_default()
            }
        }
    }

    /// Decompresses `data`, which must expand to exactly `raw_size` bytes when a size is
    /// given (for `lz4` it is required: the raw block format does not carry it).
    ///
    /// # Errors
    /// [`DecompressError`] on corrupt data or a size mismatch.
    pub fn decompress(
        self,
        data: &[u8],
        raw_size: Option<usize>,
    ) -> Result<Vec<u8>, DecompressError> {
        let out = match self {
            Self::None => data.to_vec(),
            Self::Lz4 => {
                let size = raw_size.ok_or_else(|| DecompressError::Corrupt {
                    kind: "lz4",
                    reason: "x-log-bodyrawsize is required for lz4".into(),
                })?;
                lz4_flex::block::decompress(data, size).map_err(|e| DecompressError::Corrupt {
                    kind: "lz4",
                    reason: e.to_string(),
                })?
            }
            Self::Zstd => {
                let mut out = Vec::new();
                zstd::stream::read::Decoder::new(data)
                    .and_then(|mut d| d.read_to_end(&mut out))
                    .map_err(|e| DecompressError::Corrupt {
                        kind: "zstd",
                        reason: e.to_string(),
                    })?;
                out
            }
            Self::Deflate => {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(data)
                    .read_to_end(&mut out)
                    .map_err(|e| DecompressError::Corrupt {
                        kind: "deflate",
                        reason: e.to_string(),
                    })?;
                out
            }
        };
        match raw_size {
            Some(expected) if expected != out.len() && self != Self::None => {
                Err(DecompressError::SizeMismatch {
                    expected,
                    actual: out.len(),
                })
            }
            _ => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = b"hello hello hello hello hello hello log service";

    #[test]
    fn every_kind_round_trips() {
        for kind in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd,
            Compression::Deflate,
        ] {
            let packed = kind.compress(DATA);
            assert_eq!(
                kind.decompress(&packed, Some(DATA.len()))
                    .expect("round trip"),
                DATA,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn lz4_is_a_raw_block_without_size_prefix() {
        let packed = Compression::Lz4.compress(DATA);
        assert_eq!(
            lz4_flex::block::decompress(&packed, DATA.len()).expect("raw block"),
            DATA
        );
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let packed = Compression::Zstd.compress(DATA);
        assert!(matches!(
            Compression::Zstd.decompress(&packed, Some(3)),
            Err(DecompressError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn negotiation_prefers_the_first_known_token() {
        assert_eq!(Compression::negotiate(Some("lz4")), Compression::Lz4);
        assert_eq!(Compression::negotiate(Some("zstd")), Compression::Zstd);
        assert_eq!(
            Compression::negotiate(Some("gzip, deflate")),
            Compression::Deflate
        );
        assert_eq!(Compression::negotiate(Some("")), Compression::None);
        assert_eq!(Compression::negotiate(None), Compression::None);
    }
}
