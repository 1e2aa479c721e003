//! `set`: a field from a template — its first value replaced, or the field
//! appended when the record has none of that name. `default` is the same
//! step, run only where the field is missing or empty.

use std::borrow::Cow;

use super::{Scratch, Step, Verdict};
use crate::record::{Field, Meta, Record};
use crate::template::Template;

/// A compiled `set`.
#[derive(Debug)]
pub(crate) struct Set {
    pub(crate) field: Vec<u8>,
    pub(crate) value: Template,
    /// `default`: leave a field that has a value alone.
    pub(crate) only_if_empty: bool,
}

impl Step for Set {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        if self.only_if_empty && record.get(&self.field).is_some_and(|v| !v.is_empty()) {
            return Verdict::Keep;
        }
        let value = scratch.render(&self.value, record);
        set_field(record, &self.field, value, scratch);
        Verdict::Keep
    }
}

/// Replace the first value of `key`, or append the field: what every step
/// that writes a field does.
pub(crate) fn set_field<'r>(
    record: &mut Record<'r>,
    key: &[u8],
    value: &'r [u8],
    scratch: &'r Scratch,
) {
    match record.fields.iter_mut().find(|f| f.key.as_ref() == key) {
        Some(f) => f.value = Cow::Borrowed(value),
        None => record.fields.push(Field {
            key: Cow::Borrowed(scratch.copy(key)),
            value: Cow::Borrowed(value),
        }),
    }
}
