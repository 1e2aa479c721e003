//! `coalesce`: set `field` to the first non-empty value among the fields
//! `from` (ActionTrail names a user in `userName`, or only by `principalId`
//! for an assumed role), and to `default` when none has one.

use super::set::set_field;
use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `coalesce`.
#[derive(Debug)]
pub(crate) struct Coalesce {
    pub(crate) field: Vec<u8>,
    pub(crate) from: Vec<Vec<u8>>,
    pub(crate) default: Option<Vec<u8>>,
}

impl Step for Coalesce {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        let first = self
            .from
            .iter()
            .find_map(|f| record.get(f).filter(|v| !v.is_empty()))
            .or(self.default.as_deref())
            .map(|v| scratch.copy(v));
        if let Some(value) = first {
            set_field(record, &self.field, value, scratch);
        }
        Verdict::Keep
    }
}
