//! Splitting a TCP or TLS byte stream into syslog messages.
//!
//! RFC 6587 §3.4 lets a receiver tell the two framings apart by the first
//! octet of each frame: a digit starts octet counting (`MSG-LEN SP MSG`,
//! §3.4.1, the only framing of RFC 5425 §4.3), `<` starts a message that ends
//! at the next LF (non-transparent framing, §3.4.2). The choice is made per
//! frame, so both framings work on one port and even mixed on one connection,
//! as rsyslog's imtcp does.
//!
//! One [`FrameBuffer`] lives as long as its connection. Reads append to it;
//! [`FrameBuffer::next_frame`] returns the range of the next complete message
//! and moves past it. Nothing is copied or allocated per frame: a partial
//! frame stays where it is until more bytes come in, and the buffer is only
//! compacted when it needs room (as mini-redis `Connection` does with
//! `BytesMut::advance`).
//!
//! Rules a reader might otherwise undo:
//! - LF, CR and NUL between frames are skipped: senders that put a trailer
//!   after an octet-counted frame, or CRLF after a line, are common.
//! - A LF frame drops one CR before its LF (CRLF trailers).
//! - Leading zeros in MSG-LEN are accepted (RFC 5425 forbids them; being
//!   lenient costs nothing); a length of 0 or above the configured maximum is
//!   a framing error, as is any other first octet. On a framing error the
//!   caller closes the connection (the RELP rule: the side that detects it
//!   closes), because nothing after it can be trusted to be a frame start.

use std::ops::Range;

/// Octets reserved before each read, so a read is never tiny.
const READ_CHUNK: usize = 16 * 1024;
/// More digits than this cannot be a sane MSG-LEN, even with leading zeros.
const MAX_LEN_DIGITS: usize = 20;

/// Why the stream cannot be split into frames any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FramingError {
    /// MSG-LEN is followed by something other than a digit or SP.
    #[error("invalid octet count: byte 0x{0:02x} where a digit or space was expected")]
    BadLength(u8),
    /// MSG-LEN is 0.
    #[error("invalid octet count: zero-length frame")]
    ZeroLength,
    /// MSG-LEN has more digits than any length could need.
    #[error("invalid octet count: more than {MAX_LEN_DIGITS} digits")]
    LengthTooLong,
    /// The message is larger than the configured maximum.
    #[error("message of {len} or more bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Length announced (octet counting) or seen so far (LF framing).
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The frame starts with neither a digit nor `<`.
    #[error("frame starts with byte 0x{0:02x}: neither an octet count (digit) nor a PRI (`<`)")]
    UnknownStart(u8),
}

/// The read buffer of one connection and the position of the next frame.
#[derive(Debug)]
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte.
    pos: usize,
    /// For an incomplete LF frame at `pos`: how far (from `pos`) we already
    /// looked for its LF, so a long line is not scanned again on every read.
    scanned: usize,
    max: usize,
}

impl FrameBuffer {
    /// An empty buffer for messages of at most `max_message` bytes.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            scanned: 0,
            max: max_message,
        }
    }

    /// The buffer to read into, with room for at least one read chunk.
    /// Consumed bytes are dropped here, only when room is needed.
    pub(crate) fn read_buf(&mut self) -> &mut Vec<u8> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
        }
        &mut self.buf
    }

    /// Append bytes (tests feed frames this way).
    #[cfg(test)]
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        self.read_buf().extend_from_slice(bytes);
    }

    /// The bytes of a frame returned by [`FrameBuffer::next_frame`].
    pub(crate) fn get(&self, frame: Range<usize>) -> &[u8] {
        &self.buf[frame]
    }

    /// Bytes received but not yet part of a complete frame.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The next complete frame's message (framing removed), `Ok(None)` when
    /// more bytes are needed.
    ///
    /// # Errors
    ///
    /// [`FramingError`] when the stream is not syslog framing; the
    /// connection should be closed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Range<usize>>, FramingError> {
        let len = self.buf.len();
        while self.pos < len && matches!(self.buf[self.pos], b'\n' | b'\r' | 0) {
            self.pos += 1;
        }
        let Some(&first) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        match first {
            b'0'..=b'9' => self.octet_counted(),
            b'<' => self.lf_terminated(),
            other => Err(FramingError::UnknownStart(other)),
        }
    }

    fn octet_counted(&mut self) -> Result<Option<Range<usize>>, FramingError> {
        let mut msg_len: usize = 0;
        let mut i = self.pos;
        loop {
            let Some(&b) = self.buf.get(i) else {
                return Ok(None);
            };
            match b {
                b'0'..=b'9' => {
                    if i - self.pos >= MAX_LEN_DIGITS {
                        return Err(FramingError::LengthTooLong);
                    }
                    msg_len = msg_len
                        .saturating_mul(10)
                        .saturating_add(usize::from(b - b'0'));
                    if msg_len > self.max {
                        return Err(FramingError::TooLarge {
                            len: msg_len,
                            max: self.max,
                        });
                    }
                }
                b' ' => break,
                other => return Err(FramingError::BadLength(other)),
            }
            i += 1;
        }
        if msg_len == 0 {
            return Err(FramingError::ZeroLength);
        }
        let start = i + 1;
        let end = start + msg_len;
        if end > self.buf.len() {
            return Ok(None);
        }
        self.pos = end;
        Ok(Some(start..end))
    }

    fn lf_terminated(&mut self) -> Result<Option<Range<usize>>, FramingError> {
        let from = self.pos + self.scanned;
        match memchr::memchr(b'\n', &self.buf[from..]) {
            Some(off) => {
                let lf = from + off;
                let mut end = lf;
                if end > self.pos && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                if end - self.pos > self.max {
                    return Err(FramingError::TooLarge {
                        len: end - self.pos,
                        max: self.max,
                    });
                }
                let frame = self.pos..end;
                self.pos = lf + 1;
                self.scanned = 0;
                Ok(Some(frame))
            }
            None => {
                self.scanned = self.buf.len() - self.pos;
                // A CR may still be dropped before the LF, hence `max + 1`.
                if self.scanned > self.max + 1 {
                    return Err(FramingError::TooLarge {
                        len: self.scanned,
                        max: self.max,
                    });
                }
                Ok(None)
            }
        }
    }

    /// At end of stream: the last LF frame if its sender closed without a
    /// trailer (RFC 6587 §3.4.2 allows this; rsyslog accepts it too).
    /// Returns `None` when nothing, or an incomplete octet-counted frame,
    /// is left (see [`FrameBuffer::pending`]).
    pub(crate) fn final_frame(&mut self) -> Option<Range<usize>> {
        if self.buf.get(self.pos) != Some(&b'<') {
            return None;
        }
        let frame = self.pos..self.buf.len();
        self.pos = self.buf.len();
        self.scanned = 0;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(fb: &mut FrameBuffer) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut out = Vec::new();
        while let Some(r) = fb.next_frame()? {
            out.push(fb.get(r).to_vec());
        }
        Ok(out)
    }

    fn all(input: &[u8]) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut fb = FrameBuffer::new(1000);
        fb.extend(input);
        frames(&mut fb)
    }

    #[test]
    fn octet_counted_frame_may_contain_lf() {
        assert_eq!(
            all(b"7 <1>a\nbc5 <2>xy").unwrap(),
            vec![b"<1>a\nbc".to_vec(), b"<2>xy".to_vec()]
        );
    }

    #[test]
    fn lf_frames_end_at_lf_and_drop_cr() {
        assert_eq!(
            all(b"<1>a\n<2>b\r\n").unwrap(),
            vec![b"<1>a".to_vec(), b"<2>b".to_vec()]
        );
    }

    #[test]
    fn framings_may_be_mixed_per_frame() {
        assert_eq!(
            all(b"<1>a\n5 <2>bc<3>d\n").unwrap(),
            vec![b"<1>a".to_vec(), b"<2>bc".to_vec(), b"<3>d".to_vec()]
        );
    }

    #[test]
    fn separators_between_frames_are_skipped() {
        assert_eq!(
            all(b"4 <1>a\n\r\x004 <2>b\n").unwrap(),
            vec![b"<1>a".to_vec(), b"<2>b".to_vec()]
        );
    }

    #[test]
    fn leading_zero_in_length_accepted() {
        assert_eq!(all(b"004 <1>a").unwrap(), vec![b"<1>a".to_vec()]);
    }

    #[test]
    fn incomplete_frames_wait_for_more() {
        assert_eq!(all(b"10 <1>a").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(all(b"12").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(all(b"<1>no lf yet").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn length_with_non_digit_is_a_framing_error() {
        assert_eq!(all(b"12x <1>"), Err(FramingError::BadLength(b'x')));
    }

    #[test]
    fn zero_length_is_a_framing_error() {
        assert_eq!(all(b"0 <1>"), Err(FramingError::ZeroLength));
    }

    #[test]
    fn length_above_max_is_a_framing_error() {
        assert_eq!(all(b"1000 "), Ok(vec![]));
        assert_eq!(
            all(b"1001 "),
            Err(FramingError::TooLarge {
                len: 1001,
                max: 1000
            })
        );
        assert!(matches!(
            all(b"99999999999999999999999999"),
            Err(FramingError::TooLarge { .. })
        ));
        assert_eq!(all(&[b'0'; 30]), Err(FramingError::LengthTooLong));
    }

    #[test]
    fn lf_frame_above_max_is_a_framing_error() {
        let mut line = vec![b'<'];
        line.resize(1000, b'x');
        line.push(b'\n');
        assert_eq!(all(&line).unwrap().len(), 1);
        let mut fb = FrameBuffer::new(1000);
        fb.extend(&line[..1000]);
        fb.extend(b"yy");
        assert!(matches!(
            frames(&mut fb),
            Err(FramingError::TooLarge { .. })
        ));
    }

    #[test]
    fn other_first_octet_is_a_framing_error() {
        assert_eq!(all(b"hello\n"), Err(FramingError::UnknownStart(b'h')));
        assert_eq!(all(b" 4 <1>a"), Err(FramingError::UnknownStart(b' ')));
    }

    #[test]
    fn final_lf_frame_without_trailer_is_kept_at_eof() {
        let mut fb = FrameBuffer::new(100);
        fb.extend(b"<1>a\n<2>tail");
        assert_eq!(frames(&mut fb).unwrap(), vec![b"<1>a".to_vec()]);
        let r = fb.final_frame().unwrap();
        assert_eq!(fb.get(r), b"<2>tail");
        let mut fb = FrameBuffer::new(100);
        fb.extend(b"9 <1>");
        assert_eq!(frames(&mut fb).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(fb.final_frame(), None);
        assert_eq!(fb.pending(), b"9 <1>");
    }

    #[test]
    fn buffer_does_not_grow_with_many_consumed_frames() {
        let mut fb = FrameBuffer::new(100);
        for _ in 0..10_000 {
            fb.extend(b"5 <1>ab5 <2>");
            assert_eq!(frames(&mut fb).unwrap().len(), 1);
            fb.extend(b"cd");
            assert_eq!(frames(&mut fb).unwrap().len(), 1);
        }
        assert!(fb.buf.capacity() <= 4 * READ_CHUNK, "{}", fb.buf.capacity());
    }

    proptest! {
        #[test]
        fn split_points_do_not_change_frames(
            msgs in proptest::collection::vec(("[a-z\n]{0,40}", any::<bool>()), 1..10),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (body, octet) in &msgs {
                let msg = if *octet { format!("<1>{body}") } else { format!("<2>{}", body.replace('\n', " ")) };
                if *octet {
                    wire.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
                } else {
                    wire.extend_from_slice(format!("{msg}\n").as_bytes());
                }
                expected.push(msg.into_bytes());
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            let mut fb = FrameBuffer::new(1000);
            let mut got = Vec::new();
            for w in points.windows(2) {
                fb.extend(&wire[w[0]..w[1]]);
                got.extend(frames(&mut fb).unwrap());
            }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn random_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut fb = FrameBuffer::new(64);
            for c in &chunks {
                fb.extend(c);
                if frames(&mut fb).is_err() {
                    break;
                }
            }
            let _ = fb.final_frame();
        }
    }
}
