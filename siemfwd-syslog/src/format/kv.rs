//! The `kv` body, compatible with the seed program: for every field in order,
//! `SEP key=value` (so the body starts with the separator, `||` by default).
//!
//! Seed compatibility means keys and values are written as they are, with no
//! escaping and no quoting: a SIEM parser written for the seed's output keeps
//! working. The one exception is LF framing (RFC 6587 §3.4.2), where a CR or
//! LF would split one log into two: then CR, LF and backslash are escaped as
//! `\r`, `\n`, `\\` (the separator too, at build time, so the whole body can
//! be unescaped in one pass), or the record is refused, per `format.newline`.
//!
//! Bytes that are not UTF-8 are written unchanged (RFC 5424 §6.4 MSG-ANY); the
//! caller then leaves out the BOM, which may only announce a UTF-8 MSG.

use super::escape::{escape_newlines, NewlineRefused};
use super::{refused, Body, Context, Error, Fields, NewlinePolicy, Tally};
use crate::record::{Field, Meta, Record};

/// The `kv` body with its separator pre-rendered.
#[derive(Debug)]
pub(crate) struct Kv {
    separator: Box<[u8]>,
}

impl Kv {
    /// Check the separator against the framing and pre-render it.
    pub(crate) fn build(separator: &str, newline: Option<NewlinePolicy>) -> Result<Self, Error> {
        let separator = match newline {
            None => separator.as_bytes().to_vec(),
            Some(policy) => {
                let mut out = Vec::with_capacity(separator.len());
                escape_newlines(separator.as_bytes(), &mut out, policy).map_err(
                    |NewlineRefused| Error::Config {
                        key: "format.body.separator".to_owned(),
                        problem: format!(
                            "{separator:?} holds a CR, LF or NUL, which LF framing cannot carry \
                             with format.newline = \"refuse\""
                        ),
                    },
                )?;
                out
            }
        };
        Ok(Self {
            separator: separator.into_boxed_slice(),
        })
    }

    /// Append the body for `fields`.
    pub(crate) fn write_fields<'f, 'a: 'f>(
        &self,
        fields: impl Iterator<Item = &'f Field<'a>>,
        out: &mut Vec<u8>,
        newline: Option<NewlinePolicy>,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        if let (None, &[a, b]) = (newline, &*self.separator) {
            // The usual case (no LF framing, a two-byte separator such as
            // the default `||`) in a loop of its own, with nothing to decide
            // per field.
            for field in fields {
                out.extend_from_slice(&[a, b]);
                out.extend_from_slice(&field.key);
                out.push(b'=');
                out.extend_from_slice(&field.value);
            }
            return Ok(());
        }
        for field in fields {
            // The separator is nearly always one or two bytes: a fixed-size
            // copy compiles to a store instead of a `memcpy` call per field.
            match *self.separator {
                [a, b] => out.extend_from_slice(&[a, b]),
                [a] => out.push(a),
                ref sep => out.extend_from_slice(sep),
            }
            match newline {
                None => {
                    out.extend_from_slice(&field.key);
                    out.push(b'=');
                    out.extend_from_slice(&field.value);
                }
                Some(policy) => {
                    tally.newlines_escaped += escape_newlines(&field.key, out, policy)
                        .map_err(|_| refused(&field.key, "key"))?;
                    out.push(b'=');
                    tally.newlines_escaped += escape_newlines(&field.value, out, policy)
                        .map_err(|_| refused(&field.key, "value"))?;
                }
            }
        }
        Ok(())
    }
}

impl Body for Kv {
    fn write(
        &self,
        fields: Fields<'_, '_>,
        _record: &Record<'_>,
        _meta: &Meta,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match fields.unfiltered() {
            Some(all) => self.write_fields(all.iter(), out, cx.newline, cx.tally),
            None => self.write_fields(fields, out, cx.newline, cx.tally),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::escape::unescape_newlines;
    use proptest::prelude::*;

    fn body(
        sep: &str,
        fields: &[Field<'_>],
        newline: Option<NewlinePolicy>,
    ) -> Result<Vec<u8>, Error> {
        let kv = Kv::build(sep, newline)?;
        let mut out = Vec::new();
        kv.write_fields(fields.iter(), &mut out, newline, &mut Tally::default())?;
        Ok(out)
    }

    #[test]
    fn kv_body_matches_seed_layout() {
        // The seed's verified example (sls-protocol.md §6.1).
        let fields = [
            Field::borrowed(b"__topic__", b"t1"),
            Field::borrowed(b"__source__", b"10.0.0.1"),
            Field::borrowed(b"__tag__:__hostname__", b"h1"),
            Field::borrowed(b"k", "v ü".as_bytes()),
        ];
        let out = body("||", &fields, None).expect("no refusal");
        assert_eq!(
            out,
            "||__topic__=t1||__source__=10.0.0.1||__tag__:__hostname__=h1||k=v ü".as_bytes()
        );
    }

    #[test]
    fn kv_writes_keys_and_values_unescaped_without_lf_framing() {
        let fields = [Field::borrowed(b"a b=\\", b"x\ny\r\"]\xff")];
        let out = body("|", &fields, None).expect("no refusal");
        assert_eq!(out, b"|a b=\\=x\ny\r\"]\xff");
    }

    #[test]
    fn kv_separator_is_configurable_and_may_be_empty() {
        let fields = [Field::borrowed(b"a", b"1"), Field::borrowed(b"b", b"2")];
        assert_eq!(body(" ", &fields, None).expect("ok"), b" a=1 b=2");
        assert_eq!(body("", &fields, None).expect("ok"), b"a=1b=2");
    }

    #[test]
    fn kv_escapes_cr_lf_and_backslash_under_lf_framing() {
        let fields = [Field::borrowed(b"k\n", b"a\r\nb\\c")];
        let mut tally = Tally::default();
        let kv = Kv::build("||", Some(NewlinePolicy::Escape)).expect("valid");
        let mut out = Vec::new();
        kv.write_fields(
            fields.iter(),
            &mut out,
            Some(NewlinePolicy::Escape),
            &mut tally,
        )
        .expect("escape policy never refuses");
        assert_eq!(out, b"||k\\n=a\\r\\nb\\\\c");
        assert_eq!(tally.newlines_escaped, 3);
    }

    #[test]
    fn kv_refuses_cr_or_lf_under_refuse_policy() {
        let fields = [Field::borrowed(b"k", b"a\nb")];
        let err = body("||", &fields, Some(NewlinePolicy::Refuse));
        let Err(Error::Refused(why)) = err else {
            panic!("LF must be refused, got {err:?}");
        };
        assert!(why.contains("\"k\""), "{why}");
        // A backslash alone is fine and written as-is.
        let fields = [Field::borrowed(b"k", b"a\\b")];
        assert_eq!(
            body("||", &fields, Some(NewlinePolicy::Refuse)).expect("ok"),
            b"||k=a\\b"
        );
    }

    #[test]
    fn kv_separator_with_newline_under_refuse_is_a_config_error() {
        assert!(matches!(
            Kv::build("\n", Some(NewlinePolicy::Refuse)),
            Err(Error::Config { ref key, .. }) if key == "format.body.separator"
        ));
        assert!(Kv::build("\n", None).is_ok());
    }

    proptest! {
        #[test]
        fn kv_plain_body_is_separator_key_equals_value_for_every_field(
            sep in "[|\\\\\n a]{0,3}",
            kvs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 0..16)),
                0..6,
            )
        ) {
            // Whichever loop runs (two-byte separator or not), the body is
            // the seed's layout, byte for byte.
            let fields: Vec<Field<'_>> = kvs.iter().map(|(k, v)| Field::borrowed(k, v)).collect();
            let mut want = Vec::new();
            for (k, v) in &kvs {
                want.extend_from_slice(sep.as_bytes());
                want.extend_from_slice(k);
                want.push(b'=');
                want.extend_from_slice(v);
            }
            prop_assert_eq!(body(&sep, &fields, None).expect("no refusal"), want);
        }

        #[test]
        fn kv_escaped_body_unescapes_to_the_seed_body(
            sep in "[|\\\\\n a]{0,3}",
            kvs in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 0..16)),
                0..6,
            )
        ) {
            let fields: Vec<Field<'_>> = kvs.iter().map(|(k, v)| Field::borrowed(k, v)).collect();
            let plain = body(&sep, &fields, None).expect("no refusal");
            let escaped = body(&sep, &fields, Some(NewlinePolicy::Escape)).expect("no refusal");
            prop_assert!(memchr::memchr3(b'\r', b'\n', 0, &escaped).is_none());
            prop_assert_eq!(unescape_newlines(&escaped), plain);
        }
    }
}
