//! A lenient, borrowing parser for one NDJSON line: a flat JSON object
//! becomes a [`Record`].
//!
//! Why our own instead of `serde_json`: the input is Log Service data
//! exported as JSON, and two things matter that `serde_json` does not give
//! together. Field **order** must be kept exactly (the `kv` body walks the
//! fields in order), and a value may hold **bytes that are not UTF-8** — real
//! exports contain them, and a forwarder that refuses or rewrites such a log
//! loses evidence. So strings are taken as bytes: raw bytes pass through
//! untouched, escapes are decoded, and a value without escapes borrows from
//! the line (no allocation per field).
//!
//! Values that are not strings (numbers, `true`, `null`, nested objects and
//! arrays) are forwarded as their JSON text exactly as written, because Log
//! Service values are strings and a SIEM should see what the file held.
//!
//! `__time__` and `__time_ns_part__` are consumed into the record's time. The
//! seed program's Python writes `__time_ns_part__` as `('123',)`; the digits
//! are taken from that too.

use std::borrow::Cow;

use crate::record::{reserved, Field, LogTime, Record};

/// Why a line is not a record. `offset` is the byte within the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct Malformed {
    /// What was expected or found.
    pub what: &'static str,
    /// Byte offset within the line.
    pub offset: usize,
}

/// Parse `line` (without its trailing newline) into `record`, which is cleared
/// first so its field vector can be reused.
///
/// A record without `__time__` gets `default_time`.
///
/// # Errors
/// [`Malformed`] when the line is not one JSON object (trailing text after
/// the object included), or `__time__` is not a whole number of seconds.
pub fn parse_line<'a>(
    line: &'a [u8],
    default_time: LogTime,
    record: &mut Record<'a>,
) -> Result<(), Malformed> {
    record.fields.clear();
    let mut p = Parser { s: line, i: 0 };
    let mut secs: Option<i64> = None;
    let mut nanos: u32 = 0;
    p.ws();
    p.expect(b'{', "expected '{' (a JSON object)")?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':', "expected ':' after a key")?;
            p.ws();
            let value_at = p.i;
            let value = p.value()?;
            match key.as_ref() {
                k if k == reserved::TIME => {
                    secs = Some(parse_digits(&value).ok_or(Malformed {
                        what: "__time__ is not a whole number of seconds",
                        offset: value_at,
                    })?);
                }
                k if k == reserved::TIME_NS_PART => {
                    // Tolerate the seed's `('123',)` artefact: take the digits.
                    let digits: Vec<u8> =
                        value.iter().copied().filter(u8::is_ascii_digit).collect();
                    nanos = parse_digits(&digits)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|&n| n < 1_000_000_000)
                        .ok_or(Malformed {
                            what: "__time_ns_part__ is not a nanosecond count",
                            offset: value_at,
                        })?;
                }
                _ => record.fields.push(Field { key, value }),
            }
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => {
                    return Err(Malformed {
                        what: "expected ',' or '}' after a value",
                        offset: p.i.saturating_sub(1),
                    })
                }
            }
        }
    }
    p.ws();
    if p.i != line.len() {
        return Err(Malformed {
            what: "text after the JSON object",
            offset: p.i,
        });
    }
    record.time = match secs {
        Some(s) => LogTime::new(s, nanos).unwrap_or(default_time),
        None => default_time,
    };
    Ok(())
}

fn parse_digits(s: &[u8]) -> Option<i64> {
    let s = match s {
        [b'-', rest @ ..] => return parse_digits(rest).map(|n| -n),
        s => s,
    };
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn err(&self, what: &'static str) -> Malformed {
        Malformed {
            what,
            offset: self.i,
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Malformed> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// A value: a string's decoded bytes, or any other JSON value's text.
    fn value(&mut self) -> Result<Cow<'a, [u8]>, Malformed> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => {
                let start = self.i;
                self.skip_nested()?;
                Ok(Cow::Borrowed(&self.s[start..self.i]))
            }
            Some(_) => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                let lit = &self.s[start..self.i];
                if lit.is_empty() || !is_scalar_literal(lit) {
                    return Err(Malformed {
                        what: "expected a JSON value",
                        offset: start,
                    });
                }
                Ok(Cow::Borrowed(lit))
            }
            None => Err(self.err("line ends where a value should be")),
        }
    }

    /// Skip an object or array, checking only that brackets and strings
    /// balance; its text is forwarded as written.
    fn skip_nested(&mut self) -> Result<(), Malformed> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'{' | b'[') => {
                    depth += 1;
                    self.i += 1;
                }
                Some(b'}' | b']') => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| self.err("unbalanced bracket"))?;
                    self.i += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(_) => self.i += 1,
                None => return Err(self.err("line ends inside an object or array")),
            }
        }
    }

    /// A JSON string as bytes: borrowed when it has no escapes. Raw bytes
    /// (including invalid UTF-8 and control characters) are taken as they are.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, Malformed> {
        self.expect(b'"', "expected '\"' (a string)")?;
        let start = self.i;
        let rest = &self.s[start..];
        let Some(end) = memchr::memchr2(b'"', b'\\', rest) else {
            return Err(self.err("string is not closed"));
        };
        if rest[end] == b'"' {
            self.i = start + end + 1;
            return Ok(Cow::Borrowed(&rest[..end]));
        }
        // Escapes: decode into an owned buffer.
        let mut out = Vec::with_capacity(rest.len().min(256));
        out.extend_from_slice(&rest[..end]);
        self.i = start + end;
        loop {
            let rest = &self.s[self.i..];
            let Some(j) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(self.err("string is not closed"));
            };
            out.extend_from_slice(&rest[..j]);
            self.i += j;
            if rest[j] == b'"' {
                self.i += 1;
                return Ok(Cow::Owned(out));
            }
            self.i += 1; // the backslash
            let esc = self
                .next()
                .ok_or_else(|| self.err("string ends in a backslash"))?;
            match esc {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    let c = self.unicode_escape()?;
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
                _ => {
                    return Err(Malformed {
                        what: "unknown escape in a string",
                        offset: self.i - 2,
                    })
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, Malformed> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("\\u needs four hex digits"))?;
        let text = std::str::from_utf8(h).map_err(|_| self.err("\\u needs four hex digits"))?;
        let v = u16::from_str_radix(text, 16).map_err(|_| self.err("\\u needs four hex digits"))?;
        self.i += 4;
        Ok(v)
    }

    /// After `\u`: one code point, joining a surrogate pair; a lone surrogate
    /// becomes U+FFFD (it has no UTF-8 form).
    fn unicode_escape(&mut self) -> Result<char, Malformed> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) && self.s.get(self.i..self.i + 2) == Some(b"\\u") {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.i = save;
        }
        Ok(char::from_u32(u32::from(hi)).unwrap_or(char::REPLACEMENT_CHARACTER))
    }
}

fn is_scalar_literal(lit: &[u8]) -> bool {
    matches!(lit, b"true" | b"false" | b"null")
        || (lit[0] == b'-' || lit[0].is_ascii_digit())
            && lit
                .iter()
                .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(line: &[u8]) -> Result<Record<'_>, Malformed> {
        let mut r = Record::default();
        parse_line(line, LogTime::default(), &mut r)?;
        Ok(r)
    }

    fn pairs<'a>(r: &'a Record<'_>) -> Vec<(&'a [u8], &'a [u8])> {
        r.fields
            .iter()
            .map(|f| (f.key.as_ref(), f.value.as_ref()))
            .collect()
    }

    #[test]
    fn keeps_field_order_and_takes_time_out() {
        let r = parse(
            br#"{"__time__":"1700000000","__topic__":"t","z":"1","a":"2","__time_ns_part__":"5"}"#,
        )
        .unwrap();
        assert_eq!(r.time, LogTime::new(1_700_000_000, 5).unwrap());
        assert_eq!(
            pairs(&r),
            vec![(&b"__topic__"[..], &b"t"[..]), (b"z", b"1"), (b"a", b"2")]
        );
    }

    #[test]
    fn numeric_time_and_the_seed_tuple_artefact() {
        let r = parse(br#"{"__time__":1700000001,"__time_ns_part__":"('123',)"}"#).unwrap();
        assert_eq!(r.time, LogTime::new(1_700_000_001, 123).unwrap());
    }

    #[test]
    fn values_without_escapes_borrow_from_the_line() {
        let r = parse(br#"{"k":"plain"}"#).unwrap();
        assert!(matches!(r.fields[0].value, Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_are_decoded() {
        let r = parse(br#"{"k":"a\"b\\c\nd\re\tf\u00e9\ud83d\ude00\u0000"}"#).unwrap();
        assert_eq!(
            r.fields[0].value.as_ref(),
            "a\"b\\c\nd\re\tf\u{e9}\u{1F600}\0".as_bytes()
        );
    }

    #[test]
    fn lone_surrogate_becomes_replacement_character() {
        let r = parse(br#"{"k":"\ud800x"}"#).unwrap();
        assert_eq!(r.fields[0].value.as_ref(), "\u{FFFD}x".as_bytes());
    }

    #[test]
    fn raw_invalid_utf8_passes_through_untouched() {
        let r = parse(b"{\"k\":\"a\xff\xfeb\"}").unwrap();
        assert_eq!(r.fields[0].value.as_ref(), b"a\xff\xfeb");
    }

    #[test]
    fn non_string_values_are_forwarded_as_written() {
        let r = parse(br#"{"n":-1.5e3,"b":true,"z":null,"o":{"x":[1,"]}"]},"a":[]}"#).unwrap();
        assert_eq!(
            pairs(&r),
            vec![
                (&b"n"[..], &b"-1.5e3"[..]),
                (b"b", b"true"),
                (b"z", b"null"),
                (b"o", br#"{"x":[1,"]}"]}"#),
                (b"a", b"[]"),
            ]
        );
    }

    #[test]
    fn keys_may_hold_spaces_and_equals() {
        let r = parse(br#"{"a key=x":"v"}"#).unwrap();
        assert_eq!(r.fields[0].key.as_ref(), b"a key=x");
    }

    #[test]
    fn malformed_lines_say_where() {
        for (line, what) in [
            (&b"not json"[..], "expected '{' (a JSON object)"),
            (b"{\"a\":\"b\"", "expected ',' or '}' after a value"),
            (b"{\"a\":\"b}", "string is not closed"),
            (b"{\"a\":\"b\"} x", "text after the JSON object"),
            (
                b"{\"__time__\":\"soon\"}",
                "__time__ is not a whole number of seconds",
            ),
            (b"{\"a\":nope}", "expected a JSON value"),
            (b"[1]", "expected '{' (a JSON object)"),
        ] {
            assert_eq!(
                parse(line).unwrap_err().what,
                what,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn empty_object_is_a_record_without_fields() {
        assert!(parse(b" {} ").unwrap().fields.is_empty());
    }

    proptest! {
        /// Whatever serde_json writes for string fields, we read back exactly.
        #[test]
        fn reads_back_what_serde_json_writes(fields in proptest::collection::vec((".{0,12}", ".{0,40}"), 0..12)) {
            let mut line = String::from("{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 { line.push(','); }
                line.push_str(&serde_json::to_string(&format!("k{i}{k}")).unwrap());
                line.push(':');
                line.push_str(&serde_json::to_string(v).unwrap());
            }
            line.push('}');
            let r = parse(line.as_bytes()).unwrap();
            prop_assert_eq!(r.fields.len(), fields.len());
            for (i, (f, (k, v))) in r.fields.iter().zip(&fields).enumerate() {
                let want = format!("k{i}{k}");
                prop_assert_eq!(f.key.as_ref(), want.as_bytes());
                prop_assert_eq!(f.value.as_ref(), v.as_bytes());
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
