//! RELP frames, the one wire format both ends of siemfwd's RELP speak: the
//! sink writes commands and reads `rsp`, `siemfwd listen` reads commands and
//! writes `rsp` (librelp's `doc/relp.md`, RELP as rsyslog's imrelp and
//! omrelp speak it).
//!
//! ```text
//! FRAME   = TXNR SP COMMAND SP DATALEN [SP DATA] LF
//! TXNR    = 1 to 999999999 (then 1 again; 0 is for hints: `serverclose`)
//! COMMAND = 1 to 32 letters: open, syslog, close, rsp, serverclose, ...
//! DATALEN = the bytes of DATA, decimal (0: no SP, no DATA)
//! ```
//!
//! A response (`rsp`) carries the TXNR of the command it answers, in the
//! order the commands came; its data is `CODE SP TEXT`, then, for `open`, a
//! LF and the offers, one `name=value` per line (`relp_version=0`,
//! `commands=syslog`, `relp_software=...`).
//!
//! [`parse`] reads one frame off the front of a buffer without copying; it
//! says when the buffer holds only part of one, and refuses what cannot be
//! a frame (the side that finds a framing error closes the connection: the
//! RELP rule), including data longer than the maximum both sides agreed on.

/// The highest transaction number; the next one is 1.
pub const MAX_TXNR: u32 = 999_999_999;

/// librelp's default largest DATA (`RELP_DFLT_MAX_DATA_SIZE`, 128 KiB);
/// rsyslog's imrelp takes its `maxDataSize` (default: its largest message).
pub const DEFAULT_MAX_DATA: usize = 128 * 1024;

/// The RELP version both ends speak (`relp_version=0`).
pub const VERSION: &str = "0";

/// Digits of the longest TXNR or DATALEN.
const MAX_DIGITS: usize = 9;

/// Letters of the longest COMMAND.
const MAX_COMMAND: usize = 32;

/// One frame, borrowed from the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Transaction number (0 for hints).
    pub txnr: u32,
    /// The command, letters only.
    pub command: &'a str,
    /// The data (empty when DATALEN is 0).
    pub data: &'a [u8],
}

/// Why bytes are not a RELP frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// TXNR or DATALEN is missing, not a number, or too long.
    #[error("RELP frame: bad {0}")]
    Number(&'static str),
    /// COMMAND is empty, too long, or holds a byte that is not a letter.
    #[error("RELP frame: bad command")]
    Command,
    /// DATALEN is over the maximum.
    #[error("RELP frame: {len} bytes of data, over the maximum of {max}")]
    TooLarge {
        /// The length announced.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The frame does not end with LF after its data.
    #[error("RELP frame: no LF after the data")]
    Trailer,
}

/// Append a frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    write_head(out, txnr, command, data.len());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Append a frame's head, `TXNR SP COMMAND SP DATALEN`: the data (after a
/// SP when there is any) and the LF are the caller's to add, so a message
/// can be written straight after it.
pub fn write_head(out: &mut Vec<u8>, txnr: u32, command: &str, len: usize) {
    crate::format::vendor::write_decimal(i64::from(txnr), out);
    out.push(b' ');
    out.extend_from_slice(command.as_bytes());
    out.push(b' ');
    crate::format::vendor::write_decimal(i64::try_from(len).unwrap_or(i64::MAX), out);
}

/// The next transaction number after `txnr`.
pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

/// The frame at the front of `buf`, and how many bytes it took; `Ok(None)`
/// while `buf` holds only part of one. A LF, CR or NUL before a frame is
/// skipped (counted in the bytes taken), as librelp does with stray
/// trailers.
///
/// # Errors
/// [`FrameError`]: nothing after it can be trusted to start a frame.
pub fn parse(buf: &[u8], max_data: usize) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let skipped = buf
        .iter()
        .take_while(|b| matches!(b, b'\n' | b'\r' | 0))
        .count();
    let mut at = skipped;
    let Some((txnr, next)) = number(buf, at, "transaction number")? else {
        return Ok(None);
    };
    at = next;
    let command_len = buf[at..]
        .iter()
        .take(MAX_COMMAND + 1)
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    match buf.get(at + command_len) {
        None if command_len <= MAX_COMMAND => return Ok(None),
        Some(b' ') if (1..=MAX_COMMAND).contains(&command_len) => {}
        _ => return Err(FrameError::Command),
    }
    let command =
        std::str::from_utf8(&buf[at..at + command_len]).map_err(|_| FrameError::Command)?;
    at += command_len + 1;
    // DATALEN ends at SP (data follows) or LF (no data).
    let digits = buf[at..]
        .iter()
        .take(MAX_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let Some(&end) = buf.get(at + digits) else {
        return if digits <= MAX_DIGITS {
            Ok(None)
        } else {
            Err(FrameError::Number("data length"))
        };
    };
    if digits == 0 || digits > MAX_DIGITS || !matches!(end, b' ' | b'\n') {
        return Err(FrameError::Number("data length"));
    }
    let len: usize = std::str::from_utf8(&buf[at..at + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(FrameError::Number("data length"))?;
    if len > max_data {
        return Err(FrameError::TooLarge { len, max: max_data });
    }
    at += digits;
    if len == 0 {
        // `0 LF`, or `0 SP LF` as some senders write it.
        return match (buf.get(at), buf.get(at + 1)) {
            (Some(b'\n'), _) => Ok(Some((frame(txnr, command, &[]), at + 1))),
            (Some(b' '), Some(b'\n')) => Ok(Some((frame(txnr, command, &[]), at + 2))),
            (Some(b' '), None) => Ok(None),
            _ => Err(FrameError::Trailer),
        };
    }
    if end != b' ' {
        return Err(FrameError::Trailer);
    }
    at += 1;
    let Some(data) = buf.get(at..at + len) else {
        return Ok(None);
    };
    match buf.get(at + len) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((frame(txnr, command, data), at + len + 1))),
        Some(_) => Err(FrameError::Trailer),
    }
}

fn frame<'a>(txnr: u32, command: &'a str, data: &'a [u8]) -> Frame<'a> {
    Frame {
        txnr,
        command,
        data,
    }
}

/// A number of at most [`MAX_DIGITS`] digits at `at`, ended by SP; the
/// position after the SP.
fn number(buf: &[u8], at: usize, what: &'static str) -> Result<Option<(u32, usize)>, FrameError> {
    let digits = buf[at.min(buf.len())..]
        .iter()
        .take(MAX_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    match buf.get(at + digits) {
        None if digits <= MAX_DIGITS => Ok(None),
        Some(b' ') if (1..=MAX_DIGITS).contains(&digits) => {
            let n = std::str::from_utf8(&buf[at..at + digits])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or(FrameError::Number(what))?;
            Ok(Some((n, at + digits + 1)))
        }
        _ => Err(FrameError::Number(what)),
    }
}

/// A response's data: its code, its text, and (after a LF) what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// `200` for success; anything else is a refusal.
    pub code: u16,
    /// The text after the code (`OK`, or why not).
    pub text: &'a str,
    /// What follows the first line: the offers of an `open`'s answer.
    pub rest: &'a [u8],
}

/// Read an `rsp` frame's data; `None` when it does not start with a
/// three-digit code.
pub fn response(data: &[u8]) -> Option<Response<'_>> {
    let code = data
        .get(..3)
        .filter(|d| d.iter().all(u8::is_ascii_digit))
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())?;
    let after = data.get(3..).unwrap_or_default();
    let after = after.strip_prefix(b" ").unwrap_or(after);
    let (line, rest) = match after.iter().position(|b| *b == b'\n') {
        Some(lf) => (&after[..lf], &after[lf + 1..]),
        None => (after, &[][..]),
    };
    Some(Response {
        code,
        text: std::str::from_utf8(line).unwrap_or("(not UTF-8)"),
        rest,
    })
}

/// The offers of an `open` or of its answer: `name=value` or `name`, one
/// per line, as `(name, value)`.
pub fn offers(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(bytes: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
        parse(bytes, DEFAULT_MAX_DATA)
    }

    #[test]
    fn frames_as_librelp_writes_them() {
        let mut out = Vec::new();
        write_frame(&mut out, 1, "open", b"relp_version=0\ncommands=syslog");
        write_frame(&mut out, 2, "syslog", b"<14>1 - h a - - - hi");
        write_frame(&mut out, 3, "close", b"");
        assert_eq!(
            out,
            b"1 open 30 relp_version=0\ncommands=syslog\n2 syslog 20 <14>1 - h a - - - hi\n3 close 0\n"
        );
        let (f, n) = one(&out).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data),
            (1, "open", &b"relp_version=0\ncommands=syslog"[..])
        );
        let (f, m) = one(&out[n..]).unwrap().unwrap();
        assert_eq!(
            (f.txnr, f.command, f.data),
            (2, "syslog", &b"<14>1 - h a - - - hi"[..])
        );
        let (f, _) = one(&out[n + m..]).unwrap().unwrap();
        assert_eq!((f.txnr, f.command, f.data), (3, "close", &b""[..]));
        // The server's hint, and a zero length written with a space.
        assert_eq!(
            one(b"0 serverclose 0\n").unwrap().unwrap().0.command,
            "serverclose"
        );
        assert_eq!(one(b"5 rsp 0 \n").unwrap().unwrap().1, 9);
    }

    #[test]
    fn what_is_not_a_frame_is_refused() {
        assert_eq!(
            one(b"x syslog 1 a\n"),
            Err(FrameError::Number("transaction number"))
        );
        assert_eq!(
            one(b"1234567890 syslog 1 a\n"),
            Err(FrameError::Number("transaction number"))
        );
        assert_eq!(one(b"1 sys1og 1 a\n"), Err(FrameError::Command));
        assert_eq!(one(b"1  1 a\n"), Err(FrameError::Command));
        assert_eq!(
            one(b"1 syslog x a\n"),
            Err(FrameError::Number("data length"))
        );
        assert_eq!(
            one(b"1 syslog 1 ab\n"),
            Err(FrameError::Trailer),
            "data longer than its length"
        );
        assert_eq!(
            parse(b"1 syslog 11 hello world\n", 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(one(b"1 syslog 0 x"), Err(FrameError::Trailer));
    }

    #[test]
    fn responses_and_offers_read_back() {
        let r = response(b"200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog")
            .unwrap();
        assert_eq!((r.code, r.text), (200, "OK"));
        assert_eq!(
            offers(r.rest),
            [
                ("relp_version".to_owned(), "0".to_owned()),
                (
                    "relp_software".to_owned(),
                    "librelp,1.11.0,http://librelp.adiscon.com".to_owned()
                ),
                ("commands".to_owned(), "syslog".to_owned()),
            ]
        );
        let r = response(b"500 message too long").unwrap();
        assert_eq!(
            (r.code, r.text, r.rest),
            (500, "message too long", &b""[..])
        );
        assert_eq!(response(b"OK"), None);
        assert_eq!(next_txnr(MAX_TXNR), 1);
        assert_eq!(next_txnr(7), 8);
    }

    proptest! {
        /// Frames written back to back come back the same, whatever their
        /// data, read from any prefix (a prefix is never an error, only
        /// incomplete).
        #[test]
        fn frames_round_trip_from_any_cut(
            frames in proptest::collection::vec(
                (1u32..=MAX_TXNR, "[a-z]{1,32}", proptest::collection::vec(any::<u8>(), 0..300)),
                1..6,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut out = Vec::new();
            for (txnr, command, data) in &frames {
                write_frame(&mut out, *txnr, command, data);
            }
            let cut = cut.index(out.len());
            let head = &out[..cut];
            let mut at = 0;
            let mut read = 0;
            while let Some((f, n)) = parse(&head[at..], DEFAULT_MAX_DATA).expect("a prefix is no error") {
                let (txnr, command, data) = &frames[read];
                prop_assert_eq!((f.txnr, f.command, f.data), (*txnr, command.as_str(), data.as_slice()));
                at += n;
                read += 1;
            }
            let mut at = 0;
            for (txnr, command, data) in &frames {
                let (f, n) = parse(&out[at..], DEFAULT_MAX_DATA).expect("frame").expect("whole");
                prop_assert_eq!((f.txnr, f.command, f.data), (*txnr, command.as_str(), data.as_slice()));
                at += n;
            }
            prop_assert_eq!(at, out.len());
        }

        #[test]
        fn any_bytes_are_a_frame_an_error_or_incomplete_never_a_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(Some((_, n))) = parse(&bytes, 64) {
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
