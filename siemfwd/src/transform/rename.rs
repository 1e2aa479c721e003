//! `rename`: new names for fields, `fields = { old = "new" }`. Every field
//! of that name is renamed (Log Service keeps duplicate keys); its place in
//! the order stays.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `rename`.
#[derive(Debug)]
pub(crate) struct Rename {
    pub(crate) names: HashMap<Vec<u8>, Vec<u8>>,
}

impl Step for Rename {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        for f in &mut record.fields {
            if let Some(new) = self.names.get(f.key.as_ref()) {
                f.key = Cow::Borrowed(scratch.copy(new));
            }
        }
        Verdict::Keep
    }
}
