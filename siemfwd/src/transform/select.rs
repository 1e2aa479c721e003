//! `drop` and `keep`: remove the fields named, or all but them. Names may be
//! globs, `*` standing for any run of bytes (`__tag__:*`, `event.*Id`).

use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A field name or a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The parts between `*`s; one part means no `*`.
    parts: Vec<Vec<u8>>,
}

impl Pattern {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            parts: text.split('*').map(|p| p.as_bytes().to_vec()).collect(),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, name: &[u8]) -> bool {
        let [first, middle @ .., last] = self.parts.as_slice() else {
            // One part: no `*`, an exact name.
            return self.parts.first().is_some_and(|p| p.as_slice() == name);
        };
        // The first bytes decide most names (every `event.` name against
        // `__tag__:*`) without a call to compare slices.
        if name.len() < first.len() + last.len()
            || first.first().is_some_and(|b| name.first() != Some(b))
            || last.last().is_some_and(|b| name.last() != Some(b))
            || !name.starts_with(first)
            || !name.ends_with(last)
        {
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
        record
            .fields
            .retain(|f| self.patterns.iter().any(|p| p.matches(&f.key)) == self.keep);
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
    }

    proptest! {
        #[test]
        fn a_name_without_stars_matches_only_itself(a in "[a-z._:]{0,12}", b in "[a-z._:]{0,12}") {
            prop_assert_eq!(Pattern::new(&a).matches(b.as_bytes()), a == b);
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
