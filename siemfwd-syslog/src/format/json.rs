//! The `json` body: one JSON object (RFC 8259), `{"key":"value",…}` with the
//! record's fields in order, every value a string.
//!
//! Nothing is added (the time is in the syslog header) and duplicate keys are
//! written as they come, like the `kv` body: RFC 8259 §4 leaves duplicate
//! names to the reader, and dropping one would lose data. JSON text must be
//! Unicode, so invalid UTF-8 in a key or value is replaced with U+FFFD per
//! invalid sequence and counted. Control characters are always escaped, so a
//! JSON body never holds a raw CR or LF and is safe under LF framing as it
//! is.

use super::escape::write_json_string;
use super::{Body, Context, Error, Fields, Tally};
use crate::record::{Field, Meta, Record};

/// The `json` body.
#[derive(Debug)]
pub(crate) struct Json;

impl Body for Json {
    fn write(
        &self,
        fields: Fields<'_, '_>,
        _record: &Record<'_>,
        _meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match fields.unfiltered() {
            Some(all) => write_fields(all.iter(), out, cx.tally),
            None => write_fields(fields, out, cx.tally),
        }
        Ok(())
    }

    fn always_utf8(&self) -> bool {
        true
    }
}

/// Append the JSON object for `fields`.
pub(crate) fn write_fields<'f, 'a: 'f>(
    fields: impl Iterator<Item = &'f Field<'a>>,
    out: &mut Vec<u8>,
    tally: &mut Tally,
) {
    out.push(b'{');
    let mut first = true;
    for field in fields {
        if !first {
            out.push(b',');
        }
        first = false;
        let bad_key = write_json_string(&field.key, out);
        out.push(b':');
        let bad_value = write_json_string(&field.value, out);
        tally.invalid_utf8_values += u64::from(bad_key) + u64::from(bad_value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(fields: &[Field<'_>]) -> (Vec<u8>, Tally) {
        let mut out = Vec::new();
        let mut tally = Tally::default();
        write_fields(fields.iter(), &mut out, &mut tally);
        (out, tally)
    }

    #[test]
    fn json_body_keeps_field_order_and_duplicates() {
        let fields = [
            Field::borrowed(b"__topic__", b"t"),
            Field::borrowed(b"k", b"1"),
            Field::borrowed(b"a", b"2"),
            Field::borrowed(b"k", b"3"),
        ];
        let (out, _) = body(&fields);
        assert_eq!(out, br#"{"__topic__":"t","k":"1","a":"2","k":"3"}"#);
    }

    #[test]
    fn json_body_of_no_fields_is_an_empty_object() {
        assert_eq!(body(&[]).0, b"{}");
    }

    #[test]
    fn json_body_escapes_newlines_and_quotes() {
        let fields = [Field::borrowed(b"m\"", b"a\nb\r\\")];
        let (out, _) = body(&fields);
        assert_eq!(out, br#"{"m\"":"a\nb\r\\"}"#);
    }

    #[test]
    fn json_body_replaces_invalid_utf8_and_counts_it() {
        let fields = [
            Field::borrowed(b"k", b"a\xffb"),
            Field::borrowed(b"ok", b"fine"),
        ];
        let (out, tally) = body(&fields);
        assert_eq!(out, "{\"k\":\"a\u{FFFD}b\",\"ok\":\"fine\"}".as_bytes());
        assert_eq!(tally.invalid_utf8_values, 1);
    }

    proptest! {
        #[test]
        fn json_body_always_parses_and_round_trips_valid_utf8(
            kvs in proptest::collection::vec((any::<String>(), any::<String>()), 0..6)
        ) {
            let fields: Vec<Field<'_>> =
                kvs.iter().map(|(k, v)| Field::borrowed(k.as_bytes(), v.as_bytes())).collect();
            let (out, tally) = body(&fields);
            prop_assert_eq!(tally.invalid_utf8_values, 0);
            prop_assert!(memchr::memchr2(b'\r', b'\n', &out).is_none());
            // Parse with a streaming deserializer that keeps order and duplicates.
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out);
            prop_assert!(parsed.is_ok(), "{}", String::from_utf8_lossy(&out));
            let pairs = parse_pairs(&out);
            prop_assert_eq!(pairs, kvs);
        }

        #[test]
        fn json_body_of_any_bytes_parses(
            kvs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 0..16)),
                0..6,
            )
        ) {
            let fields: Vec<Field<'_>> = kvs.iter().map(|(k, v)| Field::borrowed(k, v)).collect();
            let (out, _) = body(&fields);
            let expected: Vec<(String, String)> = kvs
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            prop_assert_eq!(parse_pairs(&out), expected);
        }
    }

    /// The object's members in order, duplicates kept (serde_json's `Map`
    /// would merge them), via a visitor.
    fn parse_pairs(json: &[u8]) -> Vec<(String, String)> {
        use serde::de::{Deserializer, MapAccess, Visitor};
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    v.push(pair);
                }
                Ok(v)
            }
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        let pairs = de
            .deserialize_map(Pairs)
            .expect("body parses as a JSON object of strings");
        de.end().expect("nothing after the object");
        pairs
    }
}
