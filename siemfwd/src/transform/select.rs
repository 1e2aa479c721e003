//! `drop` and `keep`: remove the fields named, or all but them. Names may be
//! globs, `*` standing for any run of bytes (`__tag__:*`, `event.*Id`).

use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A field name or a glob, in the shape that tests it cheapest: most
/// patterns are an exact name or a prefix (`__tag__:*`), and a `drop` tests
/// every field of every record against each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// No `*`: this name only.
    Exact(Vec<u8>),
    /// One `*`, at the end.
    Prefix(Vec<u8>),
    /// Any other: the parts between `*`s (at least two; the first and last
    /// may be empty).
    Glob(Vec<Vec<u8>>),
}

impl Pattern {
    pub(crate) fn new(text: &str) -> Self {
        let mut parts: Vec<Vec<u8>> = text.split('*').map(|p| p.as_bytes().to_vec()).collect();
        match parts.as_mut_slice() {
            [name] => Self::Exact(std::mem::take(name)),
            [prefix, last] if last.is_empty() => Self::Prefix(std::mem::take(prefix)),
            _ => Self::Glob(parts),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        match self {
            // Lengths and the last byte decide nearly every other name
            // (`event.` names share their first bytes) without a call to
            // compare slices.
            Self::Exact(exact) => {
                name.len() == exact.len() && name.last() == exact.last() && name == exact.as_slice()
            }
            Self::Prefix(prefix) => {
                name.len() >= prefix.len()
                    && (prefix.is_empty() || name.first() == prefix.first())
                    && name.starts_with(prefix)
            }
            Self::Glob(parts) => glob(parts, name),
        }
    }
}

/// `parts` (at least two) in order, the first at the start of `name`, the
/// last at its end, the ends not overlapping.
fn glob(parts: &[Vec<u8>], name: &[u8]) -> bool {
    let [first, middle @ .., last] = parts else {
        return false;
    };
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in middle {
        match memchr::memmem::find(rest, part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A compiled `drop` (`keep: false`) or `keep` (`keep: true`).
#[derive(Debug)]
pub(crate) struct Select {
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) keep: bool,
}

impl Step for Select {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        _scratch: &'r Scratch,
    ) -> Verdict {
        // `Vec::retain`, written out: it cost twice this on ActionTrail
        // records (~50 fields, a few dropped), bench/results/issue-13.md.
        let fields = &mut record.fields;
        let mut kept = 0;
        for i in 0..fields.len() {
            if self.patterns.iter().any(|p| p.matches(&fields[i].key)) == self.keep {
                fields.swap(kept, i);
                kept += 1;
            }
        }
        fields.truncate(kept);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        let m = |p: &str, n: &str| Pattern::new(p).matches(n.as_bytes());
        assert!(m("event.eventName", "event.eventName"));
        assert!(!m("event.eventName", "event.eventNames"));
        assert!(m("__tag__:*", "__tag__:__hostname__"));
        assert!(m("*Id", "event.requestId"));
        assert!(m("event.*.type", "event.userIdentity.type"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(!m("ab*ba", "aba"), "the two ends must not overlap");
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", "anything"));
        assert!(m("**", ""));
        assert!(!m("__tag__:*", "__tag_"));
        assert!(!m("__tag__:*", "event.__tag__:x"));
    }

    #[test]
    fn patterns_take_the_cheapest_shape_that_means_the_same() {
        assert_eq!(Pattern::new("a.b"), Pattern::Exact(b"a.b".to_vec()));
        assert_eq!(Pattern::new("a.*"), Pattern::Prefix(b"a.".to_vec()));
        assert_eq!(Pattern::new("*"), Pattern::Prefix(Vec::new()));
        assert!(matches!(Pattern::new("*a"), Pattern::Glob(_)));
        assert!(matches!(Pattern::new("a*b"), Pattern::Glob(_)));
    }

    /// The textbook definition, one byte at a time: the oracle.
    fn wildcard(p: &[u8], n: &[u8]) -> bool {
        match (p.split_first(), n.split_first()) {
            (None, _) => n.is_empty(),
            (Some((b'*', rest)), _) => wildcard(rest, n) || (!n.is_empty() && wildcard(p, &n[1..])),
            (Some((c, rest)), Some((d, tail))) => c == d && wildcard(rest, tail),
            (Some(_), None) => false,
        }
    }

    proptest! {
        #[test]
        fn a_name_without_stars_matches_only_itself(a in "[a-z._:]{0,12}", b in "[a-z._:]{0,12}") {
            prop_assert_eq!(Pattern::new(&a).matches(b.as_bytes()), a == b);
        }

        #[test]
        fn every_shape_matches_as_a_wildcard_does(p in "[ab*]{0,6}", n in "[ab]{0,8}") {
            prop_assert_eq!(Pattern::new(&p).matches(n.as_bytes()), wildcard(p.as_bytes(), n.as_bytes()));
        }

        #[test]
        fn a_step_keeps_the_fields_its_patterns_say(
            patterns in proptest::collection::vec(prop_oneof!["[ab_*]{0,4}", "a{61,65}\\*?"], 1..4),
            names in proptest::collection::vec(prop_oneof![
                proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'_'), any::<u8>()], 0..6),
                "a{61,66}".prop_map(String::into_bytes),
            ], 0..12),
            keep in any::<bool>(),
        ) {
            let scratch = Scratch::default();
            let step = Select {
                patterns: patterns.iter().map(|p| Pattern::new(p)).collect(),
                keep,
            };
            let mut record = Record {
                time: crate::record::LogTime::default(),
                fields: names.iter().map(|n| crate::record::Field::borrowed(n, b"v")).collect(),
            };
            step.apply(&mut record, &mut Meta::default(), &scratch);
            let got: Vec<&[u8]> = record.fields.iter().map(|f| f.key.as_ref()).collect();
            let want: Vec<&[u8]> = names
                .iter()
                .filter(|n| patterns.iter().any(|p| wildcard(p.as_bytes(), n)) == keep)
                .map(Vec::as_slice)
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn prefix_star_matches_every_extension(a in "[a-z._:]{0,12}", rest in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut name = a.as_bytes().to_vec();
            name.extend_from_slice(&rest);
            let glob = format!("{a}*");
            prop_assert!(Pattern::new(&glob).matches(&name));
        }
    }
}
