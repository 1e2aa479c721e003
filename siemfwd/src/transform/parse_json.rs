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
//! What it will not do: follow objects deeper than `max_depth` (the rest
//! of such an object stays JSON text in one field), or change a field that
//! is not a JSON object — invalid JSON, a bare string or number, bytes that
//! are not UTF-8, nesting past the parser's own limit (128 levels) leave
//! the field as it was and are counted (`transform_json_failed`). Memory is
//! bounded by the field: values are borrowed from it while parsing, and
//! the fields made are at most its size plus their names.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Scratch, Step, Verdict};
use crate::counters::{self, Metrics};
use crate::record::{Field, Meta, Record};

/// Default of `max_depth`: deeper than any ActionTrail event.
pub(crate) const DEFAULT_MAX_DEPTH: usize = 10;

/// A compiled `parse_json`.
#[derive(Debug)]
pub(crate) struct ParseJson {
    pub(crate) field: Vec<u8>,
    pub(crate) prefix: Vec<u8>,
    pub(crate) separator: Vec<u8>,
    pub(crate) max_depth: usize,
    pub(crate) keep_original: bool,
    pub(crate) metrics: Metrics,
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
        let mut made = Vec::new();
        let parsed = std::str::from_utf8(text).ok().is_some_and(|text| {
            let mut path = self.prefix.clone();
            self.flatten(text, &mut path, 1, &mut made, scratch).is_ok()
        });
        if !parsed {
            counters::add(&self.metrics.transform_json_failed, 1);
            return Verdict::Keep;
        }
        let from = if self.keep_original { at + 1 } else { at };
        record.fields.splice(from..at + 1, made);
        Verdict::Keep
    }
}

impl ParseJson {
    /// Append the fields of the JSON object `text` under `path` to `out`.
    fn flatten<'r>(
        &self,
        text: &'r str,
        path: &mut Vec<u8>,
        depth: usize,
        out: &mut Vec<Field<'r>>,
        scratch: &'r Scratch,
    ) -> Result<(), serde_json::Error> {
        let Entries(entries) = serde_json::from_str(text)?;
        for (key, raw) in entries {
            let base = path.len();
            path.extend_from_slice(key.as_bytes());
            let value: &'r str = raw.get();
            let bytes = value.as_bytes();
            let field = match bytes.first() {
                Some(b'{') if depth < self.max_depth => {
                    path.extend_from_slice(&self.separator);
                    self.flatten(value, path, depth + 1, out, scratch)?;
                    path.truncate(base);
                    continue;
                }
                // A string without escapes is the text between its quotes.
                Some(b'"') if memchr::memchr(b'\\', bytes).is_none() => &bytes[1..bytes.len() - 1],
                Some(b'"') => scratch.copy(serde_json::from_str::<String>(value)?.as_bytes()),
                Some(b'n') => &[],
                // Numbers, true/false, arrays, objects past the depth: as written.
                _ => bytes,
            };
            out.push(Field {
                key: Cow::Borrowed(scratch.copy(path)),
                value: Cow::Borrowed(field),
            });
            path.truncate(base);
        }
        Ok(())
    }
}

/// The members of one JSON object, in order, values unparsed.
struct Entries<'a>(Vec<(Key<'a>, &'a RawValue)>);

/// An object's key: borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl Key<'_> {
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
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
    fn a_ten_megabyte_value_is_parsed_within_its_own_size() {
        let m = Metrics::default();
        let big = "x".repeat(10 << 20);
        let event = format!(r#"{{"big":"{big}","n":1}}"#);
        let got = run(&step(10, false, &m), event.as_bytes());
        assert_eq!(got[1].0, "event.big");
        assert_eq!(got[1].1.len(), 10 << 20);
        assert_eq!(got[2], ("event.n".to_owned(), "1".to_owned()));
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
