//! Escapers shared by the headers and bodies, plus the UTF-8-safe cut the UDP
//! sink uses.
//!
//! Every escaper appends to the caller's buffer: it finds the next byte that
//! needs work (`memchr`, or a block scan the compiler vectorizes), copies the
//! clean run before it with one `extend_from_slice`, writes the escape and
//! carries on. Nothing is allocated per field, and a value without special
//! bytes costs one UTF-8 check, one scan and one copy.
//!
//! The escapes and where they come from:
//!
//! - [`escape_newlines`]: LF framing (RFC 6587 §3.4.2, non-transparent) ends a
//!   message at the first LF, so CR/LF inside a message become `\r`/`\n`, and
//!   a backslash becomes `\\` so a reader can undo the escape unambiguously
//!   ([`unescape_newlines`]). NUL becomes `\0` too: §3.4.2 names it as the
//!   other common TRAILER, and syslog-ng's LF-framed sources do end a message
//!   at a NUL. Under the `refuse` policy nothing is rewritten; a CR, LF or NUL
//!   is reported instead.
//! - [`escape_sd_value`]: RFC 5424 §6.3.3 PARAM-VALUE: `"`, `\` and `]` MUST
//!   be escaped with a backslash. The value MUST be UTF-8, so invalid bytes are
//!   replaced by U+FFFD (one per maximal invalid sequence, as
//!   `String::from_utf8_lossy` does). Under LF framing CR/LF become `\r`/`\n`
//!   (and NUL `\0`) too; RFC 5424 receivers keep `\r` literally (a backslash before any other
//!   character is not an escape), which is the best a single-line frame can do.
//! - [`write_json_string`]: RFC 8259 §7 strings; invalid UTF-8 → U+FFFD. The
//!   output never holds a raw control character, so a JSON body is LF-safe by
//!   construction.
//! - [`truncate_utf8`]: where to cut a message to at most `max` bytes without
//!   splitting a UTF-8 sequence (RFC 5424 §6.1 asks truncation to mind
//!   character boundaries).

use std::convert::Infallible;

use memchr::memchr3;

use super::NewlinePolicy;

/// The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER.
pub(crate) const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// A CR, LF or NUL was found under the `refuse` newline policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewlineRefused;

/// How many bytes of `msg` to keep so the result is at most `max` bytes and,
/// when `msg` is valid UTF-8, does not end inside a multi-byte sequence.
///
/// If `msg[..max]` would cut a well-formed sequence, the cut backs off to the
/// sequence's first byte. For bytes that are not UTF-8 around the cut the
/// answer is simply `max`: there is no character to protect.
pub fn truncate_utf8(msg: &[u8], max: usize) -> usize {
    if msg.len() <= max {
        return msg.len();
    }
    // The byte at `max` is the first one dropped; only a continuation byte
    // there means a sequence straddles the cut.
    let is_cont = |b: u8| b & 0xC0 == 0x80;
    if !is_cont(msg[max]) {
        return max;
    }
    let mut start = max;
    while start > 0 && max - start < 3 && is_cont(msg[start]) {
        start -= 1;
    }
    let len = match msg[start] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return max,
    };
    let end = start + len;
    if end <= max || end > msg.len() {
        return max;
    }
    if std::str::from_utf8(&msg[start..end]).is_ok() {
        start
    } else {
        max
    }
}

/// `PRINTUSASCII` of RFC 5424 §6: %d33–126 (no space, no control byte).
pub(crate) fn is_printusascii(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// Append `input`, escaping CR, LF, NUL and backslash for LF framing
/// (policy `escape`), or append it unchanged after checking it has no CR, LF
/// or NUL (policy `refuse`).
///
/// Returns how many CR/LF/NUL were escaped.
///
/// # Errors
/// [`NewlineRefused`] under `refuse` when `input` holds a CR, LF or NUL;
/// nothing is appended then.
pub(crate) fn escape_newlines(
    input: &[u8],
    out: &mut Vec<u8>,
    policy: NewlinePolicy,
) -> Result<u64, NewlineRefused> {
    match policy {
        NewlinePolicy::Refuse => {
            if memchr3(b'\r', b'\n', 0, input).is_some() {
                return Err(NewlineRefused);
            }
            out.extend_from_slice(input);
            Ok(0)
        }
        NewlinePolicy::Escape => {
            let mut escaped = 0;
            let mut rest = input;
            while let Some(i) = find(rest, lf_special) {
                out.extend_from_slice(&rest[..i]);
                match rest[i] {
                    0 => {
                        out.extend_from_slice(b"\\0");
                        escaped += 1;
                    }
                    b'\r' => {
                        out.extend_from_slice(b"\\r");
                        escaped += 1;
                    }
                    b'\n' => {
                        out.extend_from_slice(b"\\n");
                        escaped += 1;
                    }
                    _ => out.extend_from_slice(b"\\\\"),
                }
                rest = &rest[i + 1..];
            }
            out.extend_from_slice(rest);
            Ok(escaped)
        }
    }
}

/// Undo [`escape_newlines`] (policy `escape`): `\r` → CR, `\n` → LF, `\0` →
/// NUL, `\\` → `\`; any other backslash is kept as it is. For receivers and
/// tests.
#[cfg(test)]
pub(crate) fn unescape_newlines(input: &[u8]) -> Vec<u8> {
    unescape_backslashes(input, |b| match b {
        b'r' => Some(b'\r'),
        b'0' => Some(0),
        b'n' => Some(b'\n'),
        b'\\' => Some(b'\\'),
        _ => None,
    })
}

/// What [`escape_sd_value`] changed, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SdEscapeReport {
    /// The value was not valid UTF-8 and was rendered lossily.
    pub invalid_utf8: bool,
    /// CR/LF/NUL escaped for LF framing.
    pub newlines_escaped: u64,
}

/// Bytes RFC 5424 §6.3.3 requires escaping inside PARAM-VALUE.
fn sd_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b == b']'
}

/// The same plus CR, LF and NUL, for LF framing.
fn sd_special_lf(b: u8) -> bool {
    sd_special(b) || lf_trailer(b)
}

/// The trailers of RFC 6587 §3.4.2 (LF, the CR of CRLF, NUL): what must not
/// travel raw inside an LF-framed message.
fn lf_trailer(b: u8) -> bool {
    b == b'\n' || b == b'\r' || b == 0
}

/// What [`escape_newlines`] rewrites: the trailers and the backslash that
/// escapes them.
fn lf_special(b: u8) -> bool {
    lf_trailer(b) || b == b'\\'
}

/// Bytes a JSON string must escape (RFC 8259 §7): `"`, `\`, U+0000–U+001F.
fn json_special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Index of the first byte of `bytes` for which `special` holds.
///
/// Whole 32-byte blocks are tested without an early exit first, a loop the
/// compiler turns into SIMD compares for these simple predicates; most
/// values have no special byte at all and are skipped at that speed.
#[inline(always)]
fn find(bytes: &[u8], special: impl Fn(u8) -> bool) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut skipped = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if block.iter().fold(false, |acc, &b| acc | special(b)) {
            break;
        }
        skipped += BLOCK;
    }
    bytes[skipped..]
        .iter()
        .position(|&b| special(b))
        .map(|i| i + skipped)
}

/// Call `f` on each valid UTF-8 run of `input` with whether invalid bytes
/// followed it; valid input (the usual case) is a single run after one fast
/// check.
#[inline(always)]
fn for_each_utf8_run<E>(
    input: &[u8],
    mut f: impl FnMut(&[u8], bool) -> Result<(), E>,
) -> Result<(), E> {
    if std::str::from_utf8(input).is_ok() {
        return f(input, false);
    }
    for chunk in input.utf8_chunks() {
        f(chunk.valid().as_bytes(), !chunk.invalid().is_empty())?;
    }
    Ok(())
}

/// Append `input` as an RFC 5424 PARAM-VALUE (without the surrounding quotes).
///
/// `newline` is `Some(policy)` when the message will be LF-framed.
///
/// # Errors
/// [`NewlineRefused`] under `Some(NewlinePolicy::Refuse)` when `input` holds
/// a CR, LF or NUL; `out` may then hold part of the value (the caller rolls the
/// whole message back).
pub(crate) fn escape_sd_value(
    input: &[u8],
    out: &mut Vec<u8>,
    newline: Option<NewlinePolicy>,
) -> Result<SdEscapeReport, NewlineRefused> {
    let special = if newline.is_some() {
        sd_special_lf
    } else {
        sd_special
    };
    let mut report = SdEscapeReport::default();
    for_each_utf8_run(input, |valid, invalid| {
        let mut rest = valid;
        while let Some(i) = find(rest, special) {
            out.extend_from_slice(&rest[..i]);
            match rest[i] {
                b'\r' | b'\n' | 0 if newline == Some(NewlinePolicy::Refuse) => {
                    return Err(NewlineRefused);
                }
                0 => {
                    out.extend_from_slice(b"\\0");
                    report.newlines_escaped += 1;
                }
                b'\r' => {
                    out.extend_from_slice(b"\\r");
                    report.newlines_escaped += 1;
                }
                b'\n' => {
                    out.extend_from_slice(b"\\n");
                    report.newlines_escaped += 1;
                }
                b => {
                    out.push(b'\\');
                    out.push(b);
                }
            }
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        if invalid {
            out.extend_from_slice(REPLACEMENT);
            report.invalid_utf8 = true;
        }
        Ok(())
    })?;
    Ok(report)
}

/// Undo [`escape_sd_value`]: `\"`, `\\`, `\]` → the character; with
/// `newlines` also `\r`, `\n`, `\0` → CR, LF, NUL. Any other backslash is kept
/// literally, as RFC 5424 §6.3.3 says. For receivers and tests.
#[cfg(test)]
pub(crate) fn unescape_sd_value(input: &[u8], newlines: bool) -> Vec<u8> {
    unescape_backslashes(input, |b| match b {
        b'"' | b'\\' | b']' => Some(b),
        b'r' if newlines => Some(b'\r'),
        b'n' if newlines => Some(b'\n'),
        b'0' if newlines => Some(0),
        _ => None,
    })
}

/// Replace `\x` by `map(x)` where it is `Some`, keep everything else.
#[cfg(test)]
fn unescape_backslashes(input: &[u8], map: impl Fn(u8) -> Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'\\' {
            if let Some(m) = input.get(i + 1).and_then(|&n| map(n)) {
                out.push(m);
                i += 2;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The bytes an escaper stops at, as a table (one load per byte where a
/// chain of compares took several): every byte from 0x80 (so that a value
/// of plain ASCII is copied without a UTF-8 check) and the `special` ones.
#[derive(Debug, Clone)]
pub(crate) struct Stops([bool; 256]);

impl Stops {
    pub(crate) fn new(special: impl Fn(u8) -> bool) -> Self {
        let mut table = [false; 256];
        for (b, stop) in (0..=255u8).zip(table.iter_mut()) {
            *stop = b >= 0x80 || special(b);
        }
        Self(table)
    }

    #[inline(always)]
    fn special(&self, b: u8) -> bool {
        b < 0x80 && self.0[usize::from(b)]
    }
}

/// Append `input` with every byte `stops` names (below 0x80) written by
/// `replace` instead (an escape, a substitute): the one loop of the CEF and
/// LEEF escapers. Those formats are UTF-8 only, so an invalid sequence
/// becomes U+FFFD; returns `true` when one did.
pub(crate) fn write_escaped(
    input: &[u8],
    out: &mut Vec<u8>,
    stops: &Stops,
    mut replace: impl FnMut(u8, &mut Vec<u8>),
) -> bool {
    // Most values are ASCII with nothing to escape: one pass finds that,
    // and they are copied whole without a UTF-8 check.
    if find(input, |b| stops.0[usize::from(b)]).is_none() {
        out.extend_from_slice(input);
        return false;
    }
    let mut invalid = false;
    let done = for_each_utf8_run(input, |valid, bad| -> Result<(), Infallible> {
        let mut rest = valid;
        while let Some(i) = find(rest, |b| stops.special(b)) {
            out.extend_from_slice(&rest[..i]);
            replace(rest[i], out);
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        if bad {
            out.extend_from_slice(REPLACEMENT);
            invalid = true;
        }
        Ok(())
    });
    done.unwrap_or_else(|never| match never {});
    invalid
}

/// Append `input` as a quoted JSON string (RFC 8259 §7).
///
/// Returns `true` when `input` was not valid UTF-8 and was rendered lossily
/// (U+FFFD per invalid sequence).
pub(crate) fn write_json_string(input: &[u8], out: &mut Vec<u8>) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut invalid = false;
    out.push(b'"');
    let done = for_each_utf8_run(input, |valid, bad| -> Result<(), Infallible> {
        let mut rest = valid;
        while let Some(i) = find(rest, json_special) {
            out.extend_from_slice(&rest[..i]);
            match rest[i] {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                c => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(c >> 4)]);
                    out.push(HEX[usize::from(c & 0xF)]);
                }
            }
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        if bad {
            out.extend_from_slice(REPLACEMENT);
            invalid = true;
        }
        Ok(())
    });
    done.unwrap_or_else(|never| match never {});
    out.push(b'"');
    invalid
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sd(input: &[u8], newline: Option<NewlinePolicy>) -> Result<Vec<u8>, NewlineRefused> {
        let mut out = Vec::new();
        escape_sd_value(input, &mut out, newline).map(|_| out)
    }

    #[test]
    fn sd_value_escapes_quote_backslash_and_close_bracket() {
        assert_eq!(
            sd(br#"a"b\c]d"#, None).ok(),
            Some(br#"a\"b\\c\]d"#.to_vec())
        );
    }

    #[test]
    fn sd_value_keeps_other_bytes_including_open_bracket_and_equals() {
        assert_eq!(sd(b"[x=y z]", None).ok(), Some(b"[x=y z\\]".to_vec()));
    }

    #[test]
    fn sd_value_invalid_utf8_is_replaced_and_reported() {
        let mut out = Vec::new();
        let report = escape_sd_value(b"a\xffb\xe2\x82", &mut out, None).ok();
        assert_eq!(out, "a\u{FFFD}b\u{FFFD}".as_bytes());
        assert_eq!(report.map(|r| r.invalid_utf8), Some(true));
    }

    #[test]
    fn sd_value_escapes_newlines_only_under_lf_framing() {
        assert_eq!(sd(b"a\nb", None).ok(), Some(b"a\nb".to_vec()));
        assert_eq!(
            sd(b"a\r\nb", Some(NewlinePolicy::Escape)).ok(),
            Some(b"a\\r\\nb".to_vec())
        );
        assert_eq!(
            sd(b"a\nb", Some(NewlinePolicy::Refuse)),
            Err(NewlineRefused)
        );
    }

    #[test]
    fn newline_escape_writes_backslash_r_n_and_doubles_backslash() {
        let mut out = Vec::new();
        let n = escape_newlines(b"a\r\nb\\c", &mut out, NewlinePolicy::Escape).ok();
        assert_eq!(out, b"a\\r\\nb\\\\c");
        assert_eq!(n, Some(2));
    }

    #[test]
    fn newline_escape_writes_nul_as_backslash_zero_in_body_and_sd() {
        // RFC 6587 §3.4.2: NUL is a TRAILER too (syslog-ng ends an LF-framed
        // message there), so it must not travel raw in an LF-framed message.
        let mut out = Vec::new();
        let n = escape_newlines(b"a\0b", &mut out, NewlinePolicy::Escape).ok();
        assert_eq!((out.as_slice(), n), (&b"a\\0b"[..], Some(1)));
        assert_eq!(unescape_newlines(&out), b"a\0b");
        let mut out = Vec::new();
        let report = escape_sd_value(b"a\0b", &mut out, Some(NewlinePolicy::Escape));
        assert_eq!(report.map(|r| r.newlines_escaped), Ok(1));
        assert_eq!(out, b"a\\0b");
        assert_eq!(unescape_sd_value(&out, true), b"a\0b");
        let mut out = Vec::new();
        assert_eq!(
            escape_newlines(b"a\0b", &mut out, NewlinePolicy::Refuse),
            Err(NewlineRefused)
        );
        assert_eq!(
            escape_sd_value(b"a\0b", &mut out, Some(NewlinePolicy::Refuse)),
            Err(NewlineRefused)
        );
        // Without LF framing a NUL is just a byte of the value.
        let mut out = Vec::new();
        assert!(escape_sd_value(b"a\0b", &mut out, None).is_ok());
        assert_eq!(out, b"a\0b");
    }

    #[test]
    fn newline_refuse_refuses_cr_and_lf_and_appends_nothing() {
        let mut out = b"x".to_vec();
        assert_eq!(
            escape_newlines(b"a\rb", &mut out, NewlinePolicy::Refuse),
            Err(NewlineRefused)
        );
        assert_eq!(
            escape_newlines(b"a\nb", &mut out, NewlinePolicy::Refuse),
            Err(NewlineRefused)
        );
        assert_eq!(out, b"x");
        assert_eq!(
            escape_newlines(b"a\\b", &mut out, NewlinePolicy::Refuse),
            Ok(0)
        );
        assert_eq!(out, b"xa\\b");
    }

    #[test]
    fn json_string_escapes_quote_backslash_and_controls() {
        let mut out = Vec::new();
        let invalid = write_json_string(b"a\"b\\c\n\r\t\x01\x1f\x7f", &mut out);
        assert_eq!(out, b"\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f\"");
        assert!(!invalid);
    }

    #[test]
    fn json_string_replaces_each_invalid_sequence() {
        let mut out = Vec::new();
        assert!(write_json_string(b"\xff\xfeok\xc3", &mut out));
        assert_eq!(out, "\"\u{FFFD}\u{FFFD}ok\u{FFFD}\"".as_bytes());
    }

    #[test]
    fn truncate_utf8_backs_off_to_the_sequence_start() {
        let s = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        assert_eq!(truncate_utf8(s, 100), s.len());
        assert_eq!(truncate_utf8(s, 1), 1);
        assert_eq!(truncate_utf8(s, 2), 1);
        assert_eq!(truncate_utf8(s, 3), 3);
        assert_eq!(truncate_utf8(s, 4), 3);
        assert_eq!(truncate_utf8(s, 5), 3);
        assert_eq!(truncate_utf8(s, 6), 6);
        assert_eq!(truncate_utf8(s, 9), 6);
        assert_eq!(truncate_utf8(s, 0), 0);
    }

    #[test]
    fn truncate_utf8_cuts_invalid_bytes_at_max() {
        assert_eq!(truncate_utf8(b"ab\x80\x80\x80\x80", 4), 4);
        assert_eq!(truncate_utf8(b"a\xe2\x82", 2), 2);
    }

    #[test]
    fn printusascii_is_33_to_126() {
        assert!(!is_printusascii(b' '));
        assert!(is_printusascii(b'!'));
        assert!(is_printusascii(b'~'));
        assert!(!is_printusascii(0x7f));
        assert!(!is_printusascii(b'\n'));
    }

    fn bytes_with_specials() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b'\\'),
                Just(b'"'),
                Just(b']'),
                Just(b'r'),
                Just(b'n'),
                Just(0),
                Just(b'0'),
                any::<u8>(),
            ],
            0..64,
        )
    }

    proptest! {
        #[test]
        fn newline_escape_round_trips(x in bytes_with_specials()) {
            let mut out = Vec::new();
            escape_newlines(&x, &mut out, NewlinePolicy::Escape).ok();
            prop_assert!(memchr3(b'\r', b'\n', 0, &out).is_none());
            prop_assert_eq!(unescape_newlines(&out), x);
        }

        #[test]
        fn sd_value_escape_round_trips_valid_utf8(x in "[\"\\\\\\]rn\r\n a-zé€😀]{0,40}") {
            for nl in [None, Some(NewlinePolicy::Escape)] {
                let mut out = Vec::new();
                let report = escape_sd_value(x.as_bytes(), &mut out, nl);
                prop_assert!(report.is_ok());
                prop_assert_eq!(unescape_sd_value(&out, nl.is_some()), x.as_bytes());
                if nl.is_some() {
                    prop_assert!(memchr3(b'\r', b'\n', 0, &out).is_none());
                }
            }
        }

        #[test]
        fn sd_value_output_is_utf8_and_never_has_an_unescaped_terminator(
            x in bytes_with_specials()
        ) {
            let mut out = Vec::new();
            escape_sd_value(&x, &mut out, None).ok();
            prop_assert!(std::str::from_utf8(&out).is_ok());
            // Every `"` and `]` is preceded by an odd run of backslashes.
            for (i, &b) in out.iter().enumerate() {
                if b == b'"' || b == b']' {
                    let run = out[..i].iter().rev().take_while(|&&c| c == b'\\').count();
                    prop_assert!(run % 2 == 1, "unescaped {} at {}", b as char, i);
                }
            }
        }

        #[test]
        fn json_string_parses_and_round_trips_valid_utf8(x in any::<String>()) {
            let mut out = Vec::new();
            prop_assert!(!write_json_string(x.as_bytes(), &mut out));
            let back: Result<String, _> = serde_json::from_slice(&out);
            prop_assert_eq!(back.ok(), Some(x));
        }

        #[test]
        fn json_string_of_any_bytes_is_lossy_utf8(x in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            write_json_string(&x, &mut out);
            let back: Result<String, _> = serde_json::from_slice(&out);
            let expected = String::from_utf8_lossy(&x).into_owned();
            prop_assert_eq!(back.ok(), Some(expected));
        }

        #[test]
        fn truncate_utf8_lands_on_a_boundary_and_never_exceeds_max(
            s in any::<String>(), max in 0usize..80
        ) {
            let n = truncate_utf8(s.as_bytes(), max);
            prop_assert!(n <= max);
            prop_assert!(n <= s.len());
            prop_assert!(s.is_char_boundary(n));
            // Backs off by less than one character.
            prop_assert!(max.min(s.len()) - n < 4);
        }

        #[test]
        fn truncate_utf8_never_exceeds_max_on_any_bytes(
            x in proptest::collection::vec(any::<u8>(), 0..40), max in 0usize..48
        ) {
            let n = truncate_utf8(&x, max);
            prop_assert!(n <= max && n <= x.len());
        }
    }
}
