//! What the vendor bodies (`cef.rs`, `leef.rs`) share: a `|`-separated
//! header whose fields may be templates, the 1–10 severity scale SIEMs
//! rank on, and keys made from field names.
//!
//! Header fields are where a forged value would do most harm (a `|` in an
//! event name would shift every field after it), so they are escaped as
//! both formats' readers expect (`\` → `\\`, `|` → `\|`); CR, LF and NUL,
//! which no header field may hold, become a space and are counted
//! (`header_fields_sanitized`), as is a cut to the field's length. A literal
//! that breaks those rules is refused at build instead.

use std::cell::{Cell, RefCell};

use serde::Deserialize;

use super::escape::{truncate_utf8, write_escaped, Stops};
use super::{Error, Tally};
use crate::record::{LogTime, Record, Severity};
use crate::template::Template;

/// A syslog severity on the 1–10 scale of CEF (0–10) and LEEF's `sev`
/// (1–10): emerg 10, alert 9, crit 8, err 7, warning 5, notice 3, info 2,
/// debug 1. ArcSight reads 9–10 as Very-High, 7–8 High, 4–6 Medium, 0–3
/// Low, so emergencies and alerts page someone and informational events do
/// not.
pub(crate) fn scale(severity: Severity) -> u8 {
    const SCALE: [u8; 8] = [10, 9, 8, 7, 5, 3, 2, 1];
    SCALE[usize::from(severity.code()).min(7)]
}

/// What happens to the fields a body's map does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rest {
    /// Written under a key made from the field's name (and `rest_prefix`).
    #[default]
    Keep,
    /// Left out.
    Drop,
}

/// A map from field names to what a body writes for them, looked up once
/// per field of every record: names are bucketed by length, so most
/// lookups compare no bytes at all (a `BTreeMap` spent a third of a CEF
/// body's instructions comparing names).
#[derive(Debug)]
pub(crate) struct FieldMap<T> {
    by_len: Vec<Vec<(Box<[u8]>, T)>>,
}

impl<T> Default for FieldMap<T> {
    fn default() -> Self {
        Self { by_len: Vec::new() }
    }
}

impl<T> FieldMap<T> {
    /// Map `name` to `target`; false (and no change) when `name` is mapped
    /// already.
    pub(crate) fn insert(&mut self, name: &[u8], target: T) -> bool {
        if self.get(name).is_some() {
            return false;
        }
        if self.by_len.len() <= name.len() {
            self.by_len.resize_with(name.len() + 1, Vec::new);
        }
        self.by_len[name.len()].push((name.into(), target));
        true
    }

    /// What `name` maps to.
    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&T> {
        self.by_len
            .get(name.len())?
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, t)| t)
    }
}

/// One field of a `|`-separated header, from a template.
#[derive(Debug)]
pub(crate) struct HeaderField {
    template: Template,
    /// The longest the field may be, in bytes as written.
    cap: usize,
}

impl HeaderField {
    /// Compile `text` for the config key `key`; a literal (no placeholder)
    /// is checked whole here.
    pub(crate) fn build(text: &str, key: &str, cap: usize) -> Result<Self, Error> {
        let bad = |problem: String| Error::Config {
            key: key.to_owned(),
            problem,
        };
        let template = Template::parse(text, key).map_err(bad)?;
        if template
            .texts()
            .any(|t| t.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)))
        {
            return Err(bad(
                "holds a CR, LF or NUL, which no header field can carry".to_owned(),
            ));
        }
        if let Some(literal) = template.literal() {
            let mut escaped = Vec::new();
            escape_header(&literal, &mut escaped);
            if escaped.len() > cap {
                return Err(bad(format!(
                    "{} bytes as written (with `\\` and `|` escaped); at most {cap}",
                    escaped.len()
                )));
            }
        }
        Ok(Self { template, cap })
    }

    /// A field that is the same in every message (vendor, product,
    /// version): its text, escaped, refused if it names a field.
    pub(crate) fn literal(text: &str, key: &str, cap: usize) -> Result<Vec<u8>, Error> {
        let field = Self::build(text, key, cap)?;
        let Some(literal) = field.template.literal() else {
            return Err(Error::Config {
                key: key.to_owned(),
                problem: "names a field; this header field is the same for every event \
                          (write `{{` for a literal brace)"
                    .to_owned(),
            });
        };
        let mut out = Vec::new();
        escape_header(&literal, &mut out);
        Ok(out)
    }

    /// Append the field for `record`, escaped and cut to its length.
    pub(crate) fn write(&self, record: &Record<'_>, out: &mut Vec<u8>, tally: &mut Tally) {
        let start = out.len();
        let mut changed = 0;
        let mut invalid = false;
        self.template.each_part(record, |part| {
            let (c, bad) = escape_header(part, out);
            changed += c;
            invalid |= bad;
        });
        if cut_escaped(out, start, self.cap) {
            changed += 1;
        }
        tally.header_fields_sanitized += u64::from(changed > 0);
        tally.invalid_utf8_values += u64::from(invalid);
    }
}

/// What a header field escapes or replaces.
fn header_stops() -> &'static Stops {
    static STOPS: std::sync::OnceLock<Stops> = std::sync::OnceLock::new();
    STOPS.get_or_init(|| Stops::new(|b| matches!(b, b'\\' | b'|' | b'\r' | b'\n' | 0)))
}

/// Append `part` escaped for a header field; returns how many CR, LF or NUL
/// became a space, and whether it was not UTF-8.
fn escape_header(part: &[u8], out: &mut Vec<u8>) -> (u64, bool) {
    let mut replaced = 0;
    let invalid = write_escaped(part, out, header_stops(), |b, out| match b {
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'|' => out.extend_from_slice(b"\\|"),
        _ => {
            out.push(b' ');
            replaced += 1;
        }
    });
    (replaced, invalid)
}

/// Cut `out[start..]` to at most `cap` bytes without splitting a character
/// or leaving half an escape (a last lone `\` would escape the delimiter
/// after the field). True when something was cut.
pub(crate) fn cut_escaped(out: &mut Vec<u8>, start: usize, cap: usize) -> bool {
    let field = &out[start..];
    if field.len() <= cap {
        return false;
    }
    let mut keep = truncate_utf8(field, cap);
    let backslashes = field[..keep]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    if backslashes % 2 == 1 {
        keep -= 1;
    }
    out.truncate(start + keep);
    true
}

/// The keys made for the fields a body's map does not name ([`write_key`]),
/// remembered per name: the same few dozen names come in every record, and
/// making a key byte by byte cost more than the rest of a LEEF body. At
/// most [`RestKeys::MAX`] names of at most [`RestKeys::LONGEST`] bytes are
/// remembered (a source with ever-new or huge names makes their keys each
/// time instead of growing without bound).
///
/// A made key never takes the place of one the body writes itself (`rt`,
/// `devTime`, `sev`), of a key the map writes, or — in CEF — of any key
/// CEF defines: a field name comes from the log, and a log must not set a
/// SIEM's severity or source address by naming a field `sev` or `src`.
/// Such a key is written with [`RESERVED_PREFIX`] (`unmappedSev`).
pub(crate) struct RestKeys {
    prefix: Box<[u8]>,
    /// Keys a made key must not be.
    reserved: Box<Reserved>,
    /// Name → its key, `None` for a name that makes none.
    known: RefCell<FieldMap<Option<Box<[u8]>>>>,
    count: Cell<usize>,
}

/// Whether a key is one a made key must not be.
type Reserved = dyn Fn(&[u8]) -> bool + Send;

/// Put before a made key that would be a reserved one.
pub(crate) const RESERVED_PREFIX: &[u8] = b"unmapped";

impl std::fmt::Debug for RestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestKeys")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("remembered", &self.count.get())
            .finish_non_exhaustive()
    }
}

impl RestKeys {
    /// Names remembered at most.
    const MAX: usize = 4096;
    /// Longer names are not remembered (their keys are made each time), so
    /// memory stays bounded whatever the names.
    const LONGEST: usize = 128;

    pub(crate) fn new(prefix: &[u8], reserved: impl Fn(&[u8]) -> bool + Send + 'static) -> Self {
        Self {
            prefix: prefix.into(),
            reserved: Box::new(reserved),
            known: RefCell::default(),
            count: Cell::new(0),
        }
    }

    /// Append the key for `name`; false, writing nothing, when it has none.
    pub(crate) fn write(&self, name: &[u8], out: &mut Vec<u8>) -> bool {
        if let Some(key) = self.known.borrow().get(name) {
            if let Some(key) = key {
                out.extend_from_slice(key);
            }
            return key.is_some();
        }
        let start = out.len();
        let made = write_key(&self.prefix, name, out);
        if made && (self.reserved)(&out[start..]) {
            let key = out.split_off(start);
            out.extend_from_slice(RESERVED_PREFIX);
            out.push(key[0].to_ascii_uppercase());
            out.extend_from_slice(&key[1..]);
        }
        if self.count.get() < Self::MAX && name.len() <= Self::LONGEST {
            self.known
                .borrow_mut()
                .insert(name, made.then(|| out[start..].into()));
            self.count.set(self.count.get() + 1);
        }
        made
    }
}

/// Append a key made from the field name `name` under `prefix`: ASCII
/// letters and digits kept, every other run of bytes dropped and the letter
/// after it upper-cased (`event.userIdentity.userName` →
/// `eventUserIdentityUserName`, `__tag__:__receive_time__` →
/// `tagReceiveTime`), which both CEF's and QRadar's key rules accept.
/// Returns false, writing nothing, when no letter or digit is left.
fn write_key(prefix: &[u8], name: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.extend_from_slice(prefix);
    // A word starts after a prefix or after dropped bytes; the first word
    // of a name with no prefix stays as it is.
    let mut word_start = !prefix.is_empty();
    let mut any = false;
    for &b in name {
        if b.is_ascii_alphanumeric() {
            let capital = word_start && (any || !prefix.is_empty());
            out.push(if capital { b.to_ascii_uppercase() } else { b });
            word_start = false;
            any = true;
        } else {
            word_start = true;
        }
    }
    if !any {
        out.truncate(start);
    }
    any
}

/// Append `time` as Unix epoch milliseconds (CEF `rt`, LEEF `devTime`).
pub(crate) fn write_epoch_ms(time: LogTime, out: &mut Vec<u8>) {
    let ms = time
        .secs()
        .saturating_mul(1000)
        .saturating_add(i64::from(time.nanos() / 1_000_000));
    write_decimal(ms, out);
}

/// Append `n` in decimal (an epoch in milliseconds, a severity) without
/// the formatting machinery.
pub(crate) fn write_decimal(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        // A remainder below 10 fits a byte.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// What a test's reader of a vendor format found: the header fields, then
/// the key/value pairs in order.
#[cfg(test)]
pub(crate) type Parsed = (Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

/// For the tests' readers, as both specs describe a `|` header: `n` fields
/// from the start of `rest`, each ended by a `|` that no `\` escapes (a
/// `\` takes the next byte as it is); the fields and what follows them.
#[cfg(test)]
pub(crate) fn read_header(mut rest: &[u8], n: usize) -> Option<(Vec<Vec<u8>>, &[u8])> {
    let mut header = Vec::new();
    while header.len() < n {
        let mut field = Vec::new();
        let mut i = 0;
        loop {
            match *rest.get(i)? {
                b'\\' => {
                    field.push(*rest.get(i + 1)?);
                    i += 2;
                }
                b'|' => break,
                b => {
                    field.push(b);
                    i += 1;
                }
            }
        }
        header.push(field);
        rest = &rest[i + 1..];
    }
    Some((header, rest))
}

/// For the tests' readers: a value with `\\`, `\=`, `\n`, `\r` undone (a
/// `\` takes the next byte as it is; a last lone one stays).
#[cfg(test)]
pub(crate) fn unescape_value(raw: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 1 < raw.len() {
            value.push(match raw[i + 1] {
                b'n' => b'\n',
                b'r' => b'\r',
                other => other,
            });
            i += 2;
        } else {
            value.push(raw[i]);
            i += 1;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Field, LogTime};

    #[test]
    fn the_scale_keeps_order_and_ends() {
        let codes: Vec<u8> = (0..8)
            .map(|c| scale(Severity::new(c).expect("code")))
            .collect();
        assert_eq!(codes, [10, 9, 8, 7, 5, 3, 2, 1]);
        assert!(codes.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn a_made_key_never_takes_a_reserved_one() {
        let keys = RestKeys::new(b"", |k| k == b"sev" || k == b"src");
        let key = |name: &[u8]| {
            let mut out = Vec::new();
            keys.write(name, &mut out);
            String::from_utf8(out).expect("ascii")
        };
        for _ in 0..2 {
            assert_eq!(key(b"sev"), "unmappedSev");
            assert_eq!(key(b"__src"), "unmappedSrc");
            assert_eq!(key(b"severity"), "severity");
        }
        // A long name is not remembered, and still made.
        let long = vec![b'a'; 1000];
        assert_eq!(key(&long).len(), 1000);
        assert_eq!(keys.count.get(), 3);
    }

    #[test]
    fn remembered_keys_are_the_keys_made() {
        let keys = RestKeys::new(b"ali", |_| false);
        for _ in 0..2 {
            for name in [&b"event.eventName"[..], b"__", b"x.y"] {
                let (mut once, mut made) = (Vec::new(), Vec::new());
                let a = keys.write(name, &mut once);
                let b = write_key(b"ali", name, &mut made);
                assert_eq!((a, once), (b, made));
            }
        }
    }

    #[test]
    fn a_field_map_finds_each_name_and_only_those() {
        let mut map = FieldMap::default();
        assert!(map.insert(b"event.eventName", 1));
        assert!(map.insert(b"a", 2));
        assert!(map.insert(b"b", 3));
        assert!(!map.insert(b"a", 4), "mapped already");
        assert_eq!(map.get(b"a"), Some(&2));
        assert_eq!(map.get(b"b"), Some(&3));
        assert_eq!(map.get(b"event.eventName"), Some(&1));
        assert_eq!(map.get(b"event.eventNamf"), None);
        assert_eq!(map.get(b""), None);
        assert_eq!(map.get(&[b'x'; 300]), None);
    }

    #[test]
    fn decimals_are_written_as_std_writes_them() {
        for n in [0, 7, 10, -1, 1_795_000_006_000, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_decimal(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn keys_from_names_are_letters_and_digits_in_camel_case() {
        let key = |prefix: &str, name: &str| {
            let mut out = Vec::new();
            write_key(prefix.as_bytes(), name.as_bytes(), &mut out)
                .then(|| String::from_utf8(out).expect("ascii"))
        };
        assert_eq!(
            key("", "event.userIdentity.userName").as_deref(),
            Some("eventUserIdentityUserName")
        );
        assert_eq!(
            key("", "__tag__:__receive_time__").as_deref(),
            Some("tagReceiveTime")
        );
        assert_eq!(
            key("ali", "event.eventName").as_deref(),
            Some("aliEventEventName")
        );
        assert_eq!(key("", "a1").as_deref(), Some("a1"));
        assert_eq!(key("x", "__").as_deref(), None);
        assert_eq!(key("", "日本").as_deref(), None);
    }

    #[test]
    fn header_fields_escape_pipes_and_backslashes_and_replace_newlines() {
        let f = HeaderField::build("{name}", "k", 20).expect("template");
        let record = Record {
            time: LogTime::default(),
            fields: vec![Field::borrowed(b"name", b"a|b\\c\r\nd")],
        };
        let mut out = Vec::new();
        let mut tally = Tally::default();
        f.write(&record, &mut out, &mut tally);
        assert_eq!(out, b"a\\|b\\\\c  d");
        assert_eq!(tally.header_fields_sanitized, 1);
    }

    #[test]
    fn a_cut_never_leaves_half_an_escape_or_half_a_character() {
        for (field, cap, kept) in [
            (&b"abc\\|"[..], 4, &b"abc"[..]),
            (b"ab\\\\c", 4, b"ab\\\\"),
            ("aé".as_bytes(), 2, b"a"),
            (b"abc", 3, b"abc"),
        ] {
            let mut out = field.to_vec();
            cut_escaped(&mut out, 0, cap);
            assert_eq!(out, kept, "{field:?} at {cap}");
        }
    }

    #[test]
    fn a_literal_that_breaks_the_rules_is_refused_with_its_key() {
        for (text, cap) in [("a\nb", 10), ("0123456789|", 10)] {
            match HeaderField::build(text, "format.body.name", cap) {
                Err(Error::Config { key, .. }) => assert_eq!(key, "format.body.name"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(HeaderField::build("{long.field.name.is.fine}", "k", 3).is_ok());
    }
}
