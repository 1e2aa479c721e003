//! `parse_json`: a field holding a JSON object becomes fields.
//!
//! ActionTrail, the log most users forward, arrives from Log Service with
//! its content inside one string field, `event`; a SIEM (and every `when`
//! and template) wants `event.eventName`, `event.userIdentity.userName`.
//! Nested objects are joined with the separator under the prefix (by
//! default the field's name and a dot); arrays stay JSON text, as a SIEM
//! can search them but not split them; strings are unescaped; numbers,
//! `true` and `false` keep the text they were written with; `null` becomes
//! an empty value. The new fields take the place of the one parsed, in the
//! object's order.
//!
//! What it will not do: follow objects deeper than `max_depth` (at most
//! [`MAX_DEPTH`]; the rest of such an object stays JSON text in one field),
//! or change a field that is not a JSON object — invalid JSON (RFC 8259), a
//! bare string or number, bytes that are not UTF-8, a `\u` escape of half
//! a surrogate pair in a key or a string value leave the field as it was
//! and are counted (`transform_json_failed`), as is an object whose names
//! (of its members and of the objects among them) would come to more than
//! eight times its length plus 64 KiB (a long key over many members: names
//! repeat their parents'). Memory is thus bounded by the field: values are
//! borrowed from it, names by that budget.
//!
//! # Why a parser of its own
//!
//! This is the hot path of the ActionTrail rules: the event is most of
//! every record's bytes. `serde_json` can only hand over a member's text
//! unparsed (`RawValue`) by scanning it, after which a nested object is
//! parsed again, and numbers would lose the text they were written with
//! any other way; the flattener below reads each byte once and writes the
//! fields straight into the record (two fifths of the instructions the
//! `serde_json` version took, bench/results/issue-13.md). It accepts and
//! rejects what `serde_json` does — the tests hold it to a `serde_json`
//! oracle on generated documents — and needs no recursion past
//! `max_depth`: a value it does not follow is skipped with an explicit
//! stack, however deep. The names of the members are, after the first
//! records, not made but recalled: `names.rs` keeps those of earlier
//! records, by where they stood, and a key that matches one of them is
//! not read again.

use std::borrow::Cow;

use super::names::{Names, Place};
use super::{Scratch, Step, Verdict};
use crate::counters::{self, Metrics};
use crate::record::{Field, Meta, Record};

/// Default of `max_depth`: deeper than any ActionTrail event.
pub(crate) const DEFAULT_MAX_DEPTH: usize = 10;

/// The largest `max_depth` accepted: each level followed is a frame of the
/// flattener's recursion.
pub(crate) const MAX_DEPTH: usize = 128;

/// A compiled `parse_json`.
#[derive(Debug)]
pub(crate) struct ParseJson {
    pub(crate) field: Vec<u8>,
    pub(crate) prefix: Vec<u8>,
    pub(crate) separator: Vec<u8>,
    pub(crate) max_depth: usize,
    pub(crate) keep_original: bool,
    pub(crate) metrics: Metrics,
    /// Where in [`Names`] this step's names are remembered.
    pub(crate) slot: usize,
}

impl Step for ParseJson {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        let Some(at) = record
            .fields
            .iter()
            .position(|f| f.key.as_ref() == self.field.as_slice())
        else {
            return Verdict::Keep;
        };
        // The JSON text for as long as the record: the source's own bytes
        // when it lends them, so every value without an escape is a slice
        // of them and nothing is copied.
        let text: &'r [u8] = match &record.fields[at].value {
            Cow::Borrowed(bytes) => bytes,
            Cow::Owned(bytes) => scratch.copy(bytes),
        };
        // The new fields go after the last one, then into the place of the
        // one parsed (a rotation of the fields after it). When that field
        // is the last, as `event` is in ActionTrail, it is taken out first
        // and the new fields are in place as they are made.
        let taken = if at + 1 == record.fields.len() && !self.keep_original {
            record.fields.pop()
        } else {
            None
        };
        let len = record.fields.len();
        let parsed = std::str::from_utf8(text).is_ok() && {
            let mut buffers = scratch.json.borrow_mut();
            let Buffers {
                name,
                unescaped,
                open,
            } = &mut *buffers;
            let mut flat = Flattener {
                text,
                pos: 0,
                step: self,
                scratch,
                names: &scratch.names,
                name,
                name_base: None,
                unescaped,
                open,
                name_budget: name_budget(text.len()),
                has_control: lowest(text) < 0x20,
                out: &mut record.fields,
            };
            let parsed = flat.document().is_ok();
            buffers.trim();
            parsed
        };
        if !parsed {
            record.fields.truncate(len);
            record.fields.extend(taken);
            counters::add(&self.metrics.transform_json_failed, 1);
            return Verdict::Keep;
        }
        if taken.is_some() {
            return Verdict::Keep;
        }
        let made = record.fields.len() - len;
        let from = if self.keep_original { at + 1 } else { at };
        if !self.keep_original {
            record.fields.remove(at);
        }
        record.fields[from..].rotate_right(made);
        Verdict::Keep
    }
}

/// The text is not JSON, or not an object (the field stays as it was).
#[derive(Debug)]
struct Invalid;

/// Buffers a flattener works in, kept in the [`Scratch`] from one record
/// to the next so that a record does not allocate them again.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// Where a name not remembered is made before it goes to the arena.
    name: Vec<u8>,
    /// Where a string with escapes is decoded before it goes to the arena.
    unescaped: Vec<u8>,
    /// The closing brackets of the arrays and objects a skipped value has
    /// open.
    open: Vec<u8>,
}

impl Buffers {
    /// What a buffer keeps between records, at most: a hostile text may
    /// have grown one to its own size.
    const KEEP: usize = 64 << 10;

    fn trim(&mut self) {
        for buffer in [&mut self.name, &mut self.unescaped, &mut self.open] {
            buffer.clear();
            if buffer.capacity() > Self::KEEP {
                *buffer = Vec::new();
            }
        }
    }
}

/// How many bytes of field names a text of `len` bytes may make: names
/// repeat their parents' keys and the prefix, so they may well be longer
/// than the text, but not by more than this (an ActionTrail event makes
/// about one and a half times its length).
fn name_budget(len: usize) -> usize {
    len.saturating_mul(8).saturating_add(64 << 10)
}

/// The lowest byte of `bytes` (0xff for none). A minimum over every byte
/// rather than a search that stops at the first hit, so the compiler checks
/// 16 or 32 bytes per instruction.
fn lowest(bytes: &[u8]) -> u8 {
    bytes.iter().fold(u8::MAX, |low, &b| low.min(b))
}

/// One pass over one JSON document, appending its members as fields.
struct Flattener<'r, 'a> {
    text: &'r [u8],
    pos: usize,
    step: &'a ParseJson,
    scratch: &'r Scratch,
    /// The names made for earlier records.
    names: &'r Names,
    /// Where a name not remembered is made before it goes to the arena.
    name: &'a mut Vec<u8>,
    /// The address and length of the parent's name that `name` starts
    /// with, if it does. Names made for one object share their parent's,
    /// so it is copied in once per object, not once per member. Every
    /// parent's name lives unchanged for the whole record (in the arena,
    /// in [`Names`], or the step's prefix), so within a record an address
    /// and length are the same bytes.
    name_base: Option<(usize, usize)>,
    /// Where a string with escapes is decoded before it goes to the arena.
    unescaped: &'a mut Vec<u8>,
    /// The closing brackets a skipped value has open ([`Self::skip_value`]).
    open: &'a mut Vec<u8>,
    /// Bytes of names still allowed ([`name_budget`]).
    name_budget: usize,
    /// The text has a byte below 0x20 somewhere (a newline between
    /// members, or one inside a string, which JSON does not allow): only
    /// then is each string checked for one. One pass over the whole text
    /// costs less than one per string.
    has_control: bool,
    out: &'a mut Vec<Field<'r>>,
}

impl<'r> Flattener<'r, '_> {
    /// The whole text: one object, with only whitespace around it.
    fn document(&mut self) -> Result<(), Invalid> {
        self.whitespace();
        if self.peek()? != b'{' {
            return Err(Invalid);
        }
        self.object(1, &self.step.prefix, Place::TOP)?;
        self.whitespace();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// The object at `pos` (its `{`), at nesting `depth` (1 = the field's),
    /// whose members' names start with `base` (the prefix, or the object's
    /// own name and the separator); it stands at `place` in [`Names`].
    fn object(&mut self, depth: usize, base: &[u8], place: Place) -> Result<(), Invalid> {
        self.pos += 1;
        self.whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        let mut place = place;
        loop {
            self.whitespace();
            if self.peek()? != b'"' {
                return Err(Invalid);
            }
            let (name_sep, id) = self.key(base, place)?;
            let name = &name_sep[..name_sep.len() - self.step.separator.len()];
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            self.member(depth, name_sep, name, id)?;
            place = id.map_or(Place::Unknown, Place::After);
            self.whitespace();
            match self.next()? {
                b',' => {}
                b'}' => return Ok(()),
                _ => return Err(Invalid),
            }
        }
    }

    /// The key at `pos` (its opening quote), standing at `place`: the name
    /// of its member followed by the separator, remembered from an earlier
    /// record or made now, and the member's id in [`Names`] (none when the
    /// key has an escape or [`Names::learn`] would not learn it).
    fn key(&mut self, base: &[u8], place: Place) -> Result<(&'r [u8], Option<u32>), Invalid> {
        let names = self.names;
        let sep = self.step.separator.len();
        if let Some((name_sep, len, id)) = names.recall(self.step.slot, place, self.text, self.pos)
        {
            self.charge(name_sep.len() - sep)?;
            self.pos += len + 2;
            return Ok((name_sep, Some(id)));
        }
        let start = self.pos;
        let key = self.string()?;
        self.charge(base.len() + key.len())?;
        // Joined in a buffer, then copied whole: one `memcpy` into the arena
        // (the arena's own fill-then-copy wrote the name byte by byte).
        let this_base = Some((base.as_ptr() as usize, base.len()));
        if self.name_base != this_base {
            self.name.clear();
            self.name.extend_from_slice(base);
            self.name_base = this_base;
        }
        self.name.truncate(base.len());
        self.name.extend_from_slice(key);
        match *self.step.separator {
            [one] => self.name.push(one),
            ref separator => self.name.extend_from_slice(separator),
        }
        let name_sep = self.scratch.copy(self.name);
        // Unescaping shortens: a key is plain when it took its length and
        // two quotes.
        let plain = self.pos - start == key.len() + 2;
        // After a member not learnt, `learn` would refuse anyway: most keys
        // not remembered stand there, so the call is not made.
        let id = if plain && place != Place::Unknown {
            names.learn(self.step.slot, place, key, name_sep)
        } else {
            None
        };
        Ok((name_sep, id))
    }

    /// Names repeat their parents' (a long key over many members would make
    /// quadratic bytes of names): past the budget, refuse. Charged the same
    /// whether the name is remembered or made.
    fn charge(&mut self, name: usize) -> Result<(), Invalid> {
        self.name_budget = self.name_budget.checked_sub(name).ok_or(Invalid)?;
        Ok(())
    }

    /// The value at `pos`, of the member named `name` (`name_sep` with the
    /// separator after it) whose id in [`Names`] is `id`.
    fn member(
        &mut self,
        depth: usize,
        name_sep: &'r [u8],
        name: &'r [u8],
        id: Option<u32>,
    ) -> Result<(), Invalid> {
        let value: &'r [u8] = match self.peek()? {
            b'{' if depth < self.step.max_depth => {
                return self.object(depth + 1, name_sep, id.map_or(Place::Unknown, Place::First));
            }
            b'"' => self.string()?,
            b'n' => {
                self.literal(b"null")?;
                &[]
            }
            // Numbers, true/false, arrays, objects past the depth: as written.
            _ => {
                let start = self.pos;
                self.skip_value()?;
                &self.text[start..self.pos]
            }
        };
        self.out.push(Field {
            key: Cow::Borrowed(name),
            value: Cow::Borrowed(value),
        });
        Ok(())
    }

    /// The string at `pos` (its opening quote), unescaped: a slice of the
    /// text when it has no escapes, else decoded into the arena.
    fn string(&mut self) -> Result<&'r [u8], Invalid> {
        self.pos += 1;
        let start = self.pos;
        let end = self.plain_run()?;
        if self.text[end] == b'"' {
            self.pos = end + 1;
            return Ok(&self.text[start..end]);
        }
        self.unescaped.clear();
        self.unescaped.extend_from_slice(&self.text[start..end]);
        self.pos = end;
        loop {
            // At a backslash.
            self.pos += 1;
            let decoded = match self.next()? {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let c = self.unicode_escape()?;
                    let mut buf = [0; 4];
                    self.unescaped
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.plain_tail()?;
                    if self.text[self.pos] == b'"' {
                        break;
                    }
                    continue;
                }
                _ => return Err(Invalid),
            };
            self.unescaped.push(decoded);
            self.plain_tail()?;
            if self.text[self.pos] == b'"' {
                break;
            }
        }
        self.pos += 1;
        Ok(self.scratch.copy(self.unescaped))
    }

    /// After an escape: copy the run up to the next quote or backslash and
    /// stop at it.
    fn plain_tail(&mut self) -> Result<(), Invalid> {
        let start = self.pos;
        let end = self.plain_run()?;
        self.unescaped.extend_from_slice(&self.text[start..end]);
        self.pos = end;
        Ok(())
    }

    /// Where the run of plain string bytes from `pos` ends: at a quote or a
    /// backslash. A control character (below 0x20) is not allowed in a
    /// JSON string; the text is valid UTF-8, so every other byte is.
    fn plain_run(&self) -> Result<usize, Invalid> {
        let rest = &self.text[self.pos..];
        let n = memchr::memchr2(b'"', b'\\', rest).ok_or(Invalid)?;
        if self.has_control && lowest(&rest[..n]) < 0x20 {
            return Err(Invalid);
        }
        Ok(self.pos + n)
    }

    /// `XXXX` after `\u`, and its trailing half if it is a leading
    /// surrogate; half a pair is refused, as `serde_json` refuses it.
    fn unicode_escape(&mut self) -> Result<char, Invalid> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.text.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(Invalid);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(Invalid);
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(Invalid),
            _ => u32::from(first),
        };
        char::from_u32(code).ok_or(Invalid)
    }

    fn hex4(&mut self) -> Result<u16, Invalid> {
        let digits = self.text.get(self.pos..self.pos + 4).ok_or(Invalid)?;
        let mut n = 0u16;
        for &d in digits {
            let v = (d as char).to_digit(16).ok_or(Invalid)?;
            n = (n << 4) | v as u16;
        }
        self.pos += 4;
        Ok(n)
    }

    /// Skip one value of any kind and depth, checking it. Iterative: the
    /// stack of open arrays and objects is a `Vec`, so a hostile nesting
    /// depth costs memory (bounded by the text), never the call stack.
    fn skip_value(&mut self) -> Result<(), Invalid> {
        self.open.clear();
        loop {
            // A value starts here.
            self.whitespace();
            match self.peek()? {
                b'[' => {
                    self.pos += 1;
                    self.whitespace();
                    if self.peek()? == b']' {
                        self.pos += 1;
                    } else {
                        self.open.push(b']');
                        continue;
                    }
                }
                b'{' => {
                    self.pos += 1;
                    self.whitespace();
                    if self.peek()? == b'}' {
                        self.pos += 1;
                    } else {
                        self.open.push(b'}');
                        self.skip_key()?;
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(Invalid),
            }
            // A value ended: close what it ends, or go on to the next one.
            loop {
                let Some(&close) = self.open.last() else {
                    return Ok(());
                };
                self.whitespace();
                match self.next()? {
                    b',' if close == b']' => break,
                    b',' => {
                        self.whitespace();
                        self.skip_key()?;
                        break;
                    }
                    c if c == close => {
                        self.open.pop();
                    }
                    _ => return Err(Invalid),
                }
            }
        }
    }

    /// A member's key and its colon, inside a skipped object.
    fn skip_key(&mut self) -> Result<(), Invalid> {
        if self.peek()? != b'"' {
            return Err(Invalid);
        }
        self.skip_string()?;
        self.whitespace();
        self.expect(b':')
    }

    /// A string inside a skipped value: escapes are checked for form only
    /// (`serde_json` keeps a skipped value's text as it is, so half a
    /// surrogate pair passes there too).
    fn skip_string(&mut self) -> Result<(), Invalid> {
        self.pos += 1;
        loop {
            self.pos = self.plain_run()?;
            if self.next()? == b'"' {
                return Ok(());
            }
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    self.hex4()?;
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek()? == b'-' {
            self.pos += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return Err(Invalid),
        }
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.at_least_one_digit()?;
        }
        if matches!(self.text.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.text.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.at_least_one_digit()?;
        }
        Ok(())
    }

    fn at_least_one_digit(&mut self) -> Result<(), Invalid> {
        if !self.peek()?.is_ascii_digit() {
            return Err(Invalid);
        }
        self.digits();
        Ok(())
    }

    fn digits(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.text.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    fn whitespace(&mut self) {
        // One comparison for the usual case, compact JSON: every byte
        // JSON counts as whitespace is at most a space.
        while let Some(&b) = self.text.get(self.pos) {
            if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return;
            }
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, Invalid> {
        self.text.get(self.pos).copied().ok_or(Invalid)
    }

    fn next(&mut self) -> Result<u8, Invalid> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, byte: u8) -> Result<(), Invalid> {
        if self.next()? == byte {
            Ok(())
        } else {
            Err(Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LogTime;
    use proptest::prelude::*;

    fn step(max_depth: usize, keep_original: bool, metrics: &Metrics) -> ParseJson {
        ParseJson {
            field: b"event".to_vec(),
            prefix: b"event.".to_vec(),
            separator: b".".to_vec(),
            max_depth,
            keep_original,
            metrics: metrics.clone(),
            slot: 0,
        }
    }

    fn run(step: &ParseJson, value: &[u8]) -> Vec<(String, String)> {
        let mut r = Record {
            time: LogTime::default(),
            fields: vec![
                Field::borrowed(b"__topic__", b"actiontrail_audit_event"),
                Field::borrowed(b"event", value),
                Field::borrowed(b"after", b"1"),
            ],
        };
        let scratch = Scratch::default();
        assert_eq!(
            step.apply(&mut r, &mut Meta::default(), &scratch),
            Verdict::Keep
        );
        r.fields
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.key).into_owned(),
                    String::from_utf8_lossy(&f.value).into_owned(),
                )
            })
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_last_field_is_replaced_in_place_or_kept_when_invalid() {
        let m = Metrics::default();
        for (keep_original, text, want) in [
            (
                false,
                &br#"{"a":"1","b":{"c":2}}"#[..],
                &["t", "event.a", "event.b.c"][..],
            ),
            (true, br#"{"a":"1"}"#, &["t", "event", "event.a"]),
            (false, br#"{"a":"1""#, &["t", "event"]),
            (false, b"", &["t", "event"]),
        ] {
            let mut r = Record {
                time: LogTime::default(),
                fields: vec![Field::borrowed(b"t", b"x"), Field::borrowed(b"event", text)],
            };
            let scratch = Scratch::default();
            step(10, keep_original, &m).apply(&mut r, &mut Meta::default(), &scratch);
            let names: Vec<&[u8]> = r.fields.iter().map(|f| f.key.as_ref()).collect();
            let want: Vec<&[u8]> = want.iter().map(|n| n.as_bytes()).collect();
            assert_eq!(names, want, "{}", String::from_utf8_lossy(text));
            if want.len() == 2 {
                assert_eq!(r.fields[1].value.as_ref(), text, "left as it was");
            }
        }
        assert_eq!(counters::get(&m.transform_json_failed), 2);
    }

    #[test]
    fn an_actiontrail_event_becomes_fields_in_its_place_and_order() {
        let m = Metrics::default();
        let event = br#"{"eventName":"DeleteUser","userIdentity":{"type":"ram-user","userName":"al\"ice"},"errorCode":null,"eventVersion":1.0,"readOnly":false,"resources":["acs:ram::1:user/bob", 2],"acsRegion":"cn-hangzhou"}"#;
        assert_eq!(
            run(&step(10, false, &m), event),
            pairs(&[
                ("__topic__", "actiontrail_audit_event"),
                ("event.eventName", "DeleteUser"),
                ("event.userIdentity.type", "ram-user"),
                ("event.userIdentity.userName", "al\"ice"),
                ("event.errorCode", ""),
                ("event.eventVersion", "1.0"),
                ("event.readOnly", "false"),
                ("event.resources", r#"["acs:ram::1:user/bob", 2]"#),
                ("event.acsRegion", "cn-hangzhou"),
                ("after", "1"),
            ])
        );
        assert_eq!(counters::get(&m.transform_json_failed), 0);
    }

    #[test]
    fn objects_past_the_depth_stay_json_and_the_original_can_stay() {
        let m = Metrics::default();
        let got = run(&step(1, true, &m), br#"{"a":{"b":{"c":1}},"d":"x"}"#);
        assert_eq!(
            got,
            pairs(&[
                ("__topic__", "actiontrail_audit_event"),
                ("event", r#"{"a":{"b":{"c":1}},"d":"x"}"#),
                ("event.a", r#"{"b":{"c":1}}"#),
                ("event.d", "x"),
                ("after", "1"),
            ])
        );
    }

    #[test]
    fn what_is_not_an_object_stays_as_it_was_and_is_counted() {
        let m = Metrics::default();
        let s = step(10, false, &m);
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let deep_obj = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
        let bad: [&[u8]; 6] = [
            b"not json",
            b"\"a string\"",
            b"42",
            b"{\"unterminated\":",
            b"\xff{}",
            deep.as_bytes(),
        ];
        for value in bad {
            let got = run(&s, value);
            assert_eq!(got[1].0, "event");
            assert_eq!(
                got[1].1.as_bytes(),
                String::from_utf8_lossy(value).as_bytes()
            );
        }
        assert_eq!(counters::get(&m.transform_json_failed), bad.len() as u64);
        // An object nested 100,000 deep is followed to `max_depth`; the rest
        // stays one field of JSON text (skipped, not parsed, below that).
        let got = run(&s, deep_obj.as_bytes());
        let key = format!("event{}", ".a".repeat(10));
        assert_eq!(got[1].0, key);
        assert!(got[1].1.starts_with("{\"a\":{\"a\":") && got[1].1.ends_with("}}"));
        assert_eq!(got.len(), 3);
        assert_eq!(counters::get(&m.transform_json_failed), bad.len() as u64);
    }

    #[test]
    fn work_buffers_kept_between_records_stay_small_after_a_hostile_one() {
        let m = Metrics::default();
        let s = step(10, false, &m);
        let scratch = Scratch::default();
        let apply = |text: &[u8]| {
            let mut r = Record {
                time: LogTime::default(),
                fields: vec![Field::borrowed(b"event", text)],
            };
            s.apply(&mut r, &mut Meta::default(), &scratch);
            let kept = scratch.json.borrow();
            assert!(kept.open.capacity() <= Buffers::KEEP);
            assert!(kept.unescaped.capacity() <= Buffers::KEEP);
            r.fields.len()
        };
        // Skipped 100,000 deep, below `max_depth`; a megabyte with escapes.
        let deep = "{\"a\":".repeat(100_000) + "1" + &"}".repeat(100_000);
        assert_eq!(apply(deep.as_bytes()), 1);
        let escaped = format!(r#"{{"s":"{}","t":[[1]]}}"#, "\\n".repeat(1 << 19));
        assert_eq!(apply(escaped.as_bytes()), 2);
        // The next record is flattened as well with what was kept.
        assert_eq!(apply(br#"{"a":"x\ty","b":[1,[2]]}"#), 2);
    }

    #[test]
    fn names_past_their_budget_leave_the_field_as_it_was() {
        let m = Metrics::default();
        let key = "K".repeat(64 << 10);
        let members = vec![r#""a":0"#; 2000].join(",");
        let text = format!(r#"{{"{key}":{{{members}}}}}"#);
        let got = run(&step(10, false, &m), text.as_bytes());
        assert_eq!(got[1].0, "event", "left as it was");
        assert_eq!(counters::get(&m.transform_json_failed), 1);
        // The same members under a short key are fine.
        let text = format!(r#"{{"k":{{{members}}}}}"#);
        let got = run(&step(10, false, &m), text.as_bytes());
        assert_eq!(got.len(), 2 + 2000);
    }

    #[test]
    fn a_ten_megabyte_value_is_parsed_within_its_own_size() {
        let m = Metrics::default();
        let big = "x".repeat(10 << 20);
        let event = format!(r#"{{"big":"{big}","n":1}}"#);
        let got = run(&step(10, false, &m), event.as_bytes());
        assert_eq!(got[1].0, "event.big");
        assert_eq!(got[1].1.len(), 10 << 20);
        assert_eq!(got[2], ("event.n".to_owned(), "1".to_owned()));
    }

    /// The flattening as `serde_json` does it (the implementation this file
    /// had before its own parser): members read as `RawValue`, nested
    /// objects parsed again. `None` where it refuses the text.
    fn oracle(text: &[u8], max_depth: usize) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        use serde_json::value::RawValue;
        fn flatten(
            text: &str,
            path: &mut Vec<u8>,
            depth: usize,
            max_depth: usize,
            out: &mut Vec<(Vec<u8>, Vec<u8>)>,
        ) -> Option<()> {
            let OrderedEntries(members) = serde_json::from_str(text).ok()?;
            for (key, raw) in members {
                let base = path.len();
                path.extend_from_slice(key.as_bytes());
                let value = raw.get();
                let field = match value.as_bytes().first() {
                    Some(b'{') if depth < max_depth => {
                        path.push(b'.');
                        flatten(value, path, depth + 1, max_depth, out)?;
                        path.truncate(base);
                        continue;
                    }
                    Some(b'"') => serde_json::from_str::<String>(value).ok()?.into_bytes(),
                    Some(b'n') => Vec::new(),
                    _ => value.as_bytes().to_vec(),
                };
                out.push((path.clone(), field));
                path.truncate(base);
            }
            Some(())
        }
        /// An object's members in order, values unparsed.
        struct OrderedEntries<'a>(Vec<(String, &'a RawValue)>);
        impl<'de> serde::Deserialize<'de> for OrderedEntries<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = OrderedEntries<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut v = Vec::new();
                        while let Some(e) = map.next_entry::<String, &'de RawValue>()? {
                            v.push(e);
                        }
                        Ok(OrderedEntries(v))
                    }
                }
                d.deserialize_map(V)
            }
        }
        let text = std::str::from_utf8(text).ok()?;
        let mut out = Vec::new();
        flatten(text, &mut b"event.".to_vec(), 1, max_depth, &mut out)?;
        Some(out)
    }

    /// What the step made of `text`: the fields, or `None` when it left
    /// the field as it was.
    fn flattened(text: &[u8], max_depth: usize) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        flattened_in(&mut Scratch::default(), text, max_depth)
    }

    /// As [`flattened`], in a scratch that may remember names from earlier
    /// records.
    fn flattened_in(
        scratch: &mut Scratch,
        text: &[u8],
        max_depth: usize,
    ) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let m = Metrics::default();
        flattened_by(&step(max_depth, false, &m), scratch, text)
    }

    /// What `step` makes of `text` in `scratch`, or `None` if it refused it.
    fn flattened_by(
        step: &ParseJson,
        scratch: &mut Scratch,
        text: &[u8],
    ) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        scratch.reset(&mut Meta::default());
        let m = &step.metrics;
        let failed = counters::get(&m.transform_json_failed);
        let mut r = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"event", text)],
        };
        let scratch = &*scratch;
        step.apply(&mut r, &mut Meta::default(), scratch);
        if counters::get(&m.transform_json_failed) > failed {
            return None;
        }
        Some(
            r.fields
                .iter()
                .map(|f| (f.key.to_vec(), f.value.to_vec()))
                .collect(),
        )
    }

    /// JSON text of every kind, with the escapes and number forms that
    /// matter, nested a few levels.
    fn json() -> impl Strategy<Value = String> {
        let ws = || prop::sample::select(vec!["", " ", "\n\t", "\r\n "]);
        let string = || {
            prop::collection::vec(
                prop::sample::select(vec![
                    "a",
                    "Z",
                    " ",
                    "é",
                    "日本",
                    "\\\"",
                    "\\\\",
                    "\\/",
                    "\\b",
                    "\\n",
                    "\\t",
                    "\\u0041",
                    "\\u00e9",
                    "\\ud83d\\ude00",
                    "\\ud800",
                    "\\udc00x",
                    "\\u12",
                    "\\x",
                    "\u{1}",
                    ".",
                ]),
                0..6,
            )
            .prop_map(|parts| format!("\"{}\"", parts.concat()))
        };
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
            // Numbers JSON does not allow.
            prop::sample::select(vec!["01", "-", "1.", ".5", "1e", "+1", "-01.0", "1E+"])
                .prop_map(str::to_owned),
            string(),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                (prop::collection::vec((inner.clone(), ws()), 0..4)).prop_map(|items| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{}]", items.join(","))
                }),
                (prop::collection::vec((string(), inner, ws()), 0..5)).prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}{k}{w}:{w}{v}{w}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    /// A document: mostly an object, sometimes spoiled by one edit.
    fn document() -> impl Strategy<Value = Vec<u8>> {
        (object(), prop::option::of(edit())).prop_map(|(text, edit)| match edit {
            Some(e) => edited(text.as_bytes(), e),
            None => text.into_bytes(),
        })
    }

    /// An object of a few members of every kind.
    fn object() -> impl Strategy<Value = String> {
        object_with("\"[a-zA-Z.]{1,6}\"")
    }

    /// An object of a few members of every kind, its keys matching `keys`.
    fn object_with(keys: &'static str) -> impl Strategy<Value = String> {
        (prop::collection::vec((keys, json()), 0..6), prop::bool::ANY).prop_map(|(members, pad)| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let w = if pad { " \n" } else { "" };
            format!("{w}{{{}}}{w}", members.join(","))
        })
    }

    /// An edit: at a place, delete one byte (`""`), or put text in (after
    /// the byte there, or instead of it).
    type Edit = (prop::sample::Index, &'static str, bool);

    fn edit() -> impl Strategy<Value = Edit> {
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec![
                "", "\"", ",", "}", "{", "]", ":", "0", "-", "e", "\\", "\u{0}", "x", "a",
            ]),
            prop::bool::ANY,
        )
    }

    /// `text`, then each edit of it followed by `text` again: records of
    /// one shape with a few spoiled ones among them.
    fn with_edits(text: &str, edits: Vec<Edit>) -> Vec<Vec<u8>> {
        let mut texts = vec![text.as_bytes().to_vec()];
        for e in edits {
            texts.push(edited(text.as_bytes(), e));
            texts.push(text.as_bytes().to_vec());
        }
        texts
    }

    fn edited(text: &[u8], (at, with, replace): Edit) -> Vec<u8> {
        let mut text = text.to_vec();
        let i = at.index(text.len().max(1)).min(text.len());
        let end = if (replace || with.is_empty()) && i < text.len() {
            i + 1
        } else {
            i
        };
        text.splice(i..end, with.bytes());
        text
    }

    #[test]
    fn documents_at_the_edges_of_the_grammar_go_as_serde_json_takes_them() {
        let documents: &[&[u8]] = &[
            br#"{"a":[1},"b":2}"#,
            br#"{"a":{"b":[}]},"c":1}"#,
            br#"{"a":{"b":1,}}"#,
            br#"{"a":[1,]}"#,
            br#"{"a":[,1]}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":1e+}"#,
            br#"{"a":tru}"#,
            br#"{"a":nul}"#,
            br#"{"a":1}x"#,
            b" {\"a\":1}\r\n",
            br#"{,}"#,
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":["\ud800"]}"#,
            br#"{"\udc00":1}"#,
            br#"{"a":"\ud83d\ude00"}"#,
            br#"{"a":"\ud83dx"}"#,
            b"{\"a\":\"x\x01\"}",
            b"{\"a\":[\"x\x01\"]}",
            br#"{"a":"\x"}"#,
            br#"{"a":"\u12g4"}"#,
            br#"{}"#,
            br#"{"a":{}}"#,
            br#"{"a":"\"\\\/\b\f\n\r\t\u00e9"}"#,
            br#"{"a":{"b":{"c":[{"d":null}]}},"e":-0.5E-3}"#,
        ];
        for text in documents {
            for depth in 1..4 {
                assert_eq!(
                    flattened(text, depth),
                    oracle(text, depth),
                    "{} at depth {depth}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    proptest! {
        #[test]
        fn any_bytes_leave_a_record_with_every_other_field_intact(v in proptest::collection::vec(any::<u8>(), 0..300)) {
            let m = Metrics::default();
            let got = run(&step(3, false, &m), &v);
            prop_assert_eq!(&got[0], &("__topic__".to_owned(), "actiontrail_audit_event".to_owned()));
            prop_assert_eq!(got.last(), Some(&("after".to_owned(), "1".to_owned())));
        }

        #[test]
        fn accepts_refuses_and_flattens_as_serde_json_does(text in document(), depth in 1usize..4) {
            let want = oracle(&text, depth);
            let got = flattened(&text, depth);
            prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(&text));
        }

        /// Records whose top-level keys are drawn from three letters, so
        /// that the same places see many keys come and go (learnt alone,
        /// pushed out, gone restless: `names.rs`), flatten as each does
        /// alone.
        #[test]
        fn names_remembered_where_keys_keep_changing_change_nothing(
            texts in prop::collection::vec(object_with("\"[abc]{1,2}\""), 20..60),
            depth in 1usize..4,
        ) {
            let mut scratch = Scratch::default();
            for t in &texts {
                let want = oracle(t.as_bytes(), depth);
                let got = flattened_in(&mut scratch, t.as_bytes(), depth);
                prop_assert_eq!(got, want, "{}", t);
            }
        }

        /// Names remembered from earlier records (`names.rs`) change
        /// nothing: a document, then edits of it each followed by the
        /// document again, all through one scratch, flatten as each does
        /// alone.
        #[test]
        fn names_remembered_from_earlier_records_change_nothing(
            text in object(),
            edits in prop::collection::vec(edit(), 0..6),
            depth in 1usize..4,
        ) {
            let mut scratch = Scratch::default();
            let texts = with_edits(&text, edits);
            for t in &texts {
                let want = oracle(t, depth);
                let got = flattened_in(&mut scratch, t, depth);
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(t));
            }
        }

        /// The same for other prefixes and separators (none, longer, not
        /// ASCII), against the flattener with nothing remembered.
        #[test]
        fn names_remembered_hold_for_every_prefix_and_separator(
            text in object(),
            edits in prop::collection::vec(edit(), 0..4),
            prefix in prop::sample::select(vec!["", "event.", "é"]),
            separator in prop::sample::select(vec!["", ".", "::", "é"]),
            depth in 1usize..4,
        ) {
            let step = ParseJson {
                prefix: prefix.as_bytes().to_vec(),
                separator: separator.as_bytes().to_vec(),
                ..step(depth, false, &Metrics::default())
            };
            let mut scratch = Scratch::default();
            let texts = with_edits(&text, edits);
            for t in &texts {
                let want = flattened_by(&step, &mut Scratch::default(), t);
                let got = flattened_by(&step, &mut scratch, t);
                prop_assert_eq!(got, want, "{}", String::from_utf8_lossy(t));
            }
        }

        #[test]
        fn flat_objects_come_back_field_for_field(
            members in proptest::collection::vec(("[a-z]{1,8}", "[ -~]{0,20}"), 0..10)
        ) {
            let m = Metrics::default();
            let mut seen = std::collections::HashSet::new();
            let members: Vec<(String, String)> =
                members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let text = format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).expect("k"), serde_json::to_string(v).expect("v")))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let got = run(&step(3, false, &m), text.as_bytes());
            let expected: Vec<(String, String)> = members
                .iter()
                .map(|(k, v)| (format!("event.{k}"), v.clone()))
                .collect();
            prop_assert_eq!(&got[1..got.len() - 1], &expected[..]);
        }
    }
}
