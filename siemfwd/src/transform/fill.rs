//! `default` and `coalesce`: fill a field that is missing or empty.
//!
//! `default` sets `field` to a template's rendering only when the record
//! has no such field or its value is empty. `coalesce` sets `field` to the
//! first non-empty value among the fields `from` (ActionTrail names a user
//! in `userName`, or only by `principalId` for an assumed role), and to
//! `default` when none has one.

use super::set::set_field;
use super::template::Template;
use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `default`.
#[derive(Debug)]
pub(crate) struct Default {
    pub(crate) field: Vec<u8>,
    pub(crate) value: Template,
}

impl Step for Default {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        if record.get(&self.field).map_or(true, <[u8]>::is_empty) {
            let value = scratch.render(&self.value, record);
            set_field(record, &self.field, value, scratch);
        }
        Verdict::Keep
    }
}

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
