//! `default` and `coalesce`: fill a field that is missing or empty.
//!
//! `default` sets `field` to a template's rendering only when the record
//! has no such field or its value is empty. `coalesce` sets `field` to the
//! first non-empty value among the fields `from` (ActionTrail names a user
//! in `userName`, or only by `principalId` for an assumed role), and to
//! `default` when none has one.

use super::set::set_field;
use super::template::Template;
use super::{Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `default`.
#[derive(Debug)]
pub(crate) struct Default {
    pub(crate) field: Vec<u8>,
    pub(crate) value: Template,
}

impl Step for Default {
    fn apply(&self, record: &mut Record<'_>, _meta: &mut Meta) -> Verdict {
        if record.get(&self.field).map_or(true, <[u8]>::is_empty) {
            let value = self.value.render(record);
            set_field(record, &self.field, value);
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
    fn apply(&self, record: &mut Record<'_>, _meta: &mut Meta) -> Verdict {
        let first = self
            .from
            .iter()
            .find_map(|f| record.get(f).filter(|v| !v.is_empty()))
            .map(<[u8]>::to_vec);
        if let Some(value) = first.or_else(|| self.default.clone()) {
            set_field(record, &self.field, value);
        }
        Verdict::Keep
    }
}
