//! `set`: a field from a template — its first value replaced, or the field
//! appended when the record has none of that name.

use std::borrow::Cow;

use super::template::Template;
use super::{Step, Verdict};
use crate::record::{Field, Meta, Record};

/// A compiled `set`.
#[derive(Debug)]
pub(crate) struct Set {
    pub(crate) field: Vec<u8>,
    pub(crate) value: Template,
}

impl Step for Set {
    fn apply(&self, record: &mut Record<'_>, _meta: &mut Meta) -> Verdict {
        let value = self.value.render(record);
        set_field(record, &self.field, value);
        Verdict::Keep
    }
}

/// Replace the first value of `key`, or append the field: what every step
/// that writes a field does.
pub(crate) fn set_field(record: &mut Record<'_>, key: &[u8], value: Vec<u8>) {
    match record.fields.iter_mut().find(|f| f.key.as_ref() == key) {
        Some(f) => f.value = Cow::Owned(value),
        None => record.fields.push(Field {
            key: Cow::Owned(key.to_vec()),
            value: Cow::Owned(value),
        }),
    }
}
