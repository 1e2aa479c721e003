//! `rename`: new names for fields, `fields = { old = "new" }`. Every field
//! of that name is renamed (Log Service keeps duplicate keys); its place in
//! the order stays.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `rename`.
#[derive(Debug)]
pub(crate) struct Rename {
    pub(crate) names: HashMap<Vec<u8>, Vec<u8>>,
}

impl Step for Rename {
    fn apply(&self, record: &mut Record<'_>, _meta: &mut Meta) -> Verdict {
        for f in &mut record.fields {
            if let Some(new) = self.names.get(f.key.as_ref()) {
                f.key = Cow::Owned(new.clone());
            }
        }
        Verdict::Keep
    }
}
