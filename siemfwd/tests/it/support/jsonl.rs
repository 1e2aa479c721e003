//! A byte-preserving reader for the peers' JSON-lines output.
//!
//! Why not `serde_json`: rsyslog's `jsonf` writes bytes that are not UTF-8 into its JSON
//! strings unchanged, so its output files are not valid JSON text and `serde_json` (which
//! the generic [`super::peers::Peer::messages`] uses) refuses the whole line. A conformance
//! test must see exactly those bytes, so this parser takes strings as bytes: raw bytes pass
//! through, escapes (`\"`, `\\`, `\n`, `\uXXXX` with surrogate pairs, …) are decoded.
//!
//! It is written here, not taken from siemfwd's own NDJSON parser, so that a decoding bug in
//! siemfwd's input side cannot cancel out the same bug when reading what a receiver got.

use std::fs;
use std::io;
use std::path::Path;

/// A JSON value with strings as raw bytes. Only what the peers write is kept apart:
/// strings and objects; any other value is its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum J {
    /// A string's decoded bytes.
    Str(Vec<u8>),
    /// An object's members in order.
    Obj(Vec<(Vec<u8>, J)>),
    /// Numbers, `true`, `false`, `null`, arrays: their text as written.
    Other(Vec<u8>),
}

impl J {
    /// The member `key` of an object (`None` for other values or a missing key).
    pub(crate) fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(members) => members
                .iter()
                .find(|(k, _)| k.as_slice() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The bytes of the string member `key`.
    pub(crate) fn str(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(J::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// Every complete line of `path` parsed as one object; a missing file is no line.
/// A line still being written (no LF yet) is left out.
pub(crate) fn read(path: &Path) -> io::Result<Vec<J>> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let Some(end) = text.iter().rposition(|b| *b == b'\n') else {
        return Ok(Vec::new());
    };
    text[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            parse(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}: {}", path.display(), String::from_utf8_lossy(line)),
                )
            })
        })
        .collect()
}

/// Parses one JSON value that must fill `line` (surrounding whitespace aside).
pub(crate) fn parse(line: &[u8]) -> Result<J, String> {
    let mut p = P { s: line, i: 0 };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != line.len() {
        return Err(format!("text after the value at byte {}", p.i));
    }
    Ok(v)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn value(&mut self) -> Result<J, String> {
        match self.s.get(self.i) {
            Some(b'"') => self.string().map(J::Str),
            Some(b'{') => self.object(),
            Some(b'[') => {
                let start = self.i;
                let mut depth = 0usize;
                while let Some(&b) = self.s.get(self.i) {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(J::Other(self.s[start..self.i].to_vec()));
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                self.err("unterminated array")
            }
            Some(_) => {
                let start = self.i;
                while let Some(&b) = self.s.get(self.i) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                if start == self.i {
                    return self.err("expected a value");
                }
                Ok(J::Other(self.s[start..self.i].to_vec()))
            }
            None => self.err("end of line where a value should be"),
        }
    }

    fn object(&mut self) -> Result<J, String> {
        self.i += 1; // '{'
        let mut members = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(J::Obj(members));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return self.err("expected ':'");
            }
            self.i += 1;
            self.ws();
            let value = self.value()?;
            members.push((key, value));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(J::Obj(members));
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(digits) = self.s.get(self.i..self.i + 4) else {
            return self.err("short \\u escape");
        };
        let text = std::str::from_utf8(digits).map_err(|_| "bad \\u escape".to_owned())?;
        let n = u32::from_str_radix(text, 16).map_err(|_| format!("bad \\u escape {text:?}"))?;
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0C),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let low = self.hex4()?;
                                if (0xDC00..0xE000).contains(&low) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                                } else {
                                    self.i = save;
                                }
                            }
                            let c = char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return Err(format!(
                                "unknown escape \\{} at byte {}",
                                other as char, self.i
                            ))
                        }
                    }
                }
                other => out.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_bytes_and_decodes_escapes() {
        let line =
            b"{\"a\":\"x\xff\\\"\\\\\\u00e9\\ud83d\\ude00\\n\", \"n\":{\"k\":\"v\"}, \"z\":1}";
        let v = parse(line).expect("parses");
        assert_eq!(
            v.str("a"),
            Some(&b"x\xff\"\\\xc3\xa9\xf0\x9f\x98\x80\n"[..])
        );
        assert_eq!(v.get("n").and_then(|n| n.str("k")), Some(&b"v"[..]));
        assert_eq!(v.get("z"), Some(&J::Other(b"1".to_vec())));
    }
}
