//! `map`: a lookup table from a field's value to another value, written to
//! the same field or to another (`to`). A value not in the table — or a
//! missing field — gets `default` when one is given, and is left alone
//! otherwise.

use std::collections::HashMap;

use super::set::set_field;
use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `map`.
#[derive(Debug)]
pub(crate) struct Map {
    pub(crate) field: Vec<u8>,
    pub(crate) to: Vec<u8>,
    pub(crate) table: HashMap<Vec<u8>, Vec<u8>>,
    pub(crate) default: Option<Vec<u8>>,
}

impl Step for Map {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        scratch: &'r Scratch,
    ) -> Verdict {
        let found = record.get(&self.field).and_then(|v| self.table.get(v));
        if let Some(value) = found.or(self.default.as_ref()) {
            let value = scratch.copy(value);
            set_field(record, &self.to, value, scratch);
        }
        Verdict::Keep
    }
}
