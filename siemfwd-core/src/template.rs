//! Templates: text with `{field}` placeholders, such as
//! `"{event.userIdentity.userName}@{event.acsRegion}"`.
//!
//! A placeholder names a field exactly as the record has it (dots are part
//! of the name: a JSON field parsed into `event.acsRegion` is named so). A
//! field the record does not have renders as nothing — a template never
//! fails on a record, and a missing value is better seen empty in the SIEM
//! than lost with the whole message. `{{` and `}}` write a literal brace.
//! Values are copied as bytes; the encoder escapes them for where they go.

use crate::record::Record;

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Field(Vec<u8>),
}

impl Template {
    /// Compile `text`; `key` names it in errors.
    ///
    /// # Errors
    /// An unclosed or empty placeholder, or a stray `}`, said with `key`.
    pub fn parse(text: &str, key: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.extend_from_slice(&rest.as_bytes()[..i]);
            let after = &rest[i + 1..];
            if rest[i..].starts_with("{{") {
                lit.push(b'{');
                rest = &rest[i + 2..];
            } else if rest[i..].starts_with("}}") {
                lit.push(b'}');
                rest = &rest[i + 2..];
            } else if rest[i..].starts_with('}') {
                return Err(format!(
                    "{key}: a lone '}}' at byte {}; write '}}}}' for a literal brace",
                    text.len() - rest.len() + i
                ));
            } else {
                let Some(end) = after.find('}') else {
                    return Err(format!(
                        "{key}: '{{' at byte {} is never closed; write '{{{{' for a literal brace",
                        text.len() - rest.len() + i
                    ));
                };
                let name = &after[..end];
                if name.is_empty() {
                    return Err(format!("{key}: an empty placeholder '{{}}'; name a field"));
                }
                if name.contains('{') {
                    return Err(format!(
                        "{key}: '{{' inside the placeholder '{{{name}}}'; write '{{{{' for a \
                         literal brace"
                    ));
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Field(name.as_bytes().to_vec()));
                rest = &after[end + 1..];
            }
        }
        lit.extend_from_slice(rest.as_bytes());
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self { pieces })
    }

    /// Append the template rendered for `record` to `out`.
    pub fn render_into(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t),
                Piece::Field(name) => {
                    if let Some(v) = record.get(name) {
                        out.extend_from_slice(v);
                    }
                }
            }
        }
    }

    /// Each part of the rendering for `record`, in order: the literal text
    /// and the values of the fields named (a missing field gives nothing).
    /// For a writer that escapes as it copies.
    pub fn each_part(&self, record: &Record<'_>, mut f: impl FnMut(&[u8])) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => f(t),
                Piece::Field(name) => {
                    if let Some(v) = record.get(name) {
                        f(v);
                    }
                }
            }
        }
    }

    /// The literal pieces of text between the placeholders.
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Text(t) => Some(t.as_slice()),
            Piece::Field(_) => None,
        })
    }

    /// The text, when the template names no field (checked whole at build).
    pub fn literal(&self) -> Option<Vec<u8>> {
        let mut text = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.extend_from_slice(t),
                Piece::Field(_) => return None,
            }
        }
        Some(text)
    }

    /// The template rendered for `record`.
    pub fn render(&self, record: &Record<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        self.render_into(record, &mut out);
        out
    }

    /// The fields it names, for tests and diagnostics.
    #[cfg(test)]
    fn fields(&self) -> Vec<&[u8]> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Field(f) => Some(f.as_slice()),
                Piece::Text(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Field, LogTime};
    use proptest::prelude::*;

    fn rec<'a>(fields: &[(&'a [u8], &'a [u8])]) -> Record<'a> {
        Record {
            time: LogTime::default(),
            fields: fields.iter().map(|(k, v)| Field::borrowed(k, v)).collect(),
        }
    }

    #[test]
    fn a_brace_inside_a_placeholder_is_refused() {
        let e = Template::parse("{a{b}", "k").expect_err("refused");
        assert!(e.starts_with("k: '{' inside"), "{e}");
        assert!(Template::parse("{{a}}", "k").is_ok());
    }

    #[test]
    fn placeholders_take_field_values_and_missing_fields_render_empty() {
        let t =
            Template::parse("{event.userIdentity.userName}@{event.acsRegion}", "k").expect("ok");
        assert_eq!(
            t.fields(),
            [&b"event.userIdentity.userName"[..], b"event.acsRegion"]
        );
        let r = rec(&[
            (b"event.userIdentity.userName", b"alice"),
            (b"event.acsRegion", b"cn-hangzhou"),
        ]);
        assert_eq!(t.render(&r), b"alice@cn-hangzhou");
        assert_eq!(t.render(&rec(&[(b"event.acsRegion", b"x")])), b"@x");
        assert_eq!(t.render(&rec(&[])), b"@");
    }

    #[test]
    fn braces_are_escaped_by_doubling_and_values_are_bytes() {
        let t = Template::parse("{{lit}} {v}}}", "k").expect("ok");
        let r = rec(&[(b"v", b"\xff\n")]);
        assert_eq!(t.render(&r), b"{lit} \xff\n}");
    }

    #[test]
    fn malformed_templates_are_refused_with_the_key() {
        for (text, says) in [
            ("{open", "never closed"),
            ("close}", "lone '}'"),
            ("{}", "empty placeholder"),
        ] {
            let e = Template::parse(text, "transforms[1].value").expect_err(text);
            assert!(
                e.starts_with("transforms[1].value: ") && e.contains(says),
                "{e}"
            );
        }
    }

    proptest! {
        #[test]
        fn text_without_braces_renders_as_itself(s in "[^{}]{0,200}") {
            let t = Template::parse(&s, "k").expect("no braces");
            prop_assert_eq!(t.render(&rec(&[])), s.as_bytes());
        }

        #[test]
        fn a_long_value_is_copied_whole(v in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let t = Template::parse("<{f}>", "k").expect("ok");
            let r = rec(&[(b"f", &v)]);
            let out = t.render(&r);
            prop_assert_eq!(out.len(), v.len() + 2);
            prop_assert_eq!(&out[1..out.len() - 1], &v[..]);
        }
    }
}
