//! `filter`: leave out the records its `when` holds for.
//!
//! A filtered record is done for the checkpoint like a delivered one (the
//! batch's end covers its position), counted in `records_filtered`, and not
//! sent again after a restart. Its `when` is required: a filter of every
//! record is a mistake to be told about, not a silent forwarder.

use super::when::Condition;
use super::{Scratch, Step, Verdict};
use crate::record::{Meta, Record};

/// A compiled `filter`.
#[derive(Debug)]
pub(crate) struct Filter {
    pub(crate) when: Condition,
}

impl Step for Filter {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        _meta: &mut Meta,
        _scratch: &'r Scratch,
    ) -> Verdict {
        if self.when.holds(record) {
            Verdict::Drop
        } else {
            Verdict::Keep
        }
    }
}
