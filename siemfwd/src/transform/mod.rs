//! The transform stage: per-record decisions between a source and the
//! encoder — keep or drop a record, change its fields, set its severity,
//! facility and header fields ([`Meta`]).
//!
//! Where it runs: inside the shard's visitor (`pipeline/shard.rs`), on the
//! record the source lends, before [`Formatter::encode`]. A dropped record
//! counts as done: its position is covered by the batch's end like any
//! other, so the checkpoint passes it and a restart does not send it; it is
//! counted in `records_filtered`.
//!
//! Why a copy: a source lends its record read-only because it reuses parts
//! of it for the next one (a Log Service log group's topic, source and tags
//! lead every log of the group), so a step that changed them in place would
//! change the next record too. The chain works on its own copy of the field
//! list instead — pointers into the source's buffer, one reused allocation
//! — and only when steps are configured: with none, [`Chain::run`] hands the
//! source's record straight to the encoder and costs one branch.
//!
//! A step is one file under this module implementing [`Step`], plus one
//! line where the configured steps are built (the transforms issue adds
//! the `[[transforms]]` table that does it).
//!
//! [`Formatter::encode`]: crate::format::Formatter::encode

use crate::counters::{self, Metrics};
use crate::record::{recycle, Field, Meta, Record};

/// What a step decided about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next step (or to the encoder).
    Keep,
    /// Leave the record out: no message, counted in `records_filtered`, its
    /// position done.
    Drop,
}

/// One transform step.
pub trait Step: std::fmt::Debug + Send + Sync {
    /// Look at `record`, change it, set its `meta`; say whether it goes on.
    /// Steps run in their configured order; `meta` starts as
    /// [`Meta::NONE`] for every record.
    fn apply(&self, record: &mut Record<'_>, meta: &mut Meta) -> Verdict;
}

/// The configured steps in order, with the scratch space they work in. One
/// chain per shard task (it is not shared, so it needs no lock).
#[derive(Debug, Default)]
pub struct Chain {
    steps: Vec<Box<dyn Step>>,
    /// The copy's field vector between records (empty, allocation kept).
    spare: Vec<Field<'static>>,
    meta: Meta,
    /// Where filtered records are counted.
    metrics: Metrics,
}

impl Chain {
    /// A chain of these steps, in this order, counting into `metrics`.
    pub fn new(steps: Vec<Box<dyn Step>>, metrics: &Metrics) -> Self {
        Self {
            steps,
            spare: Vec::new(),
            meta: Meta::NONE,
            metrics: metrics.clone(),
        }
    }

    /// True when no step is configured.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Run the steps over `record` and hand what they kept, with its
    /// metadata, to `then` (the encoder); `None` when a step dropped it.
    #[inline]
    pub fn run<'a, T>(
        &mut self,
        record: &Record<'a>,
        then: impl FnOnce(&Record<'a>, &Meta) -> T,
    ) -> Option<T> {
        if self.steps.is_empty() {
            return Some(then(record, &Meta::NONE));
        }
        self.run_steps(record, then)
    }

    fn run_steps<'a, T>(
        &mut self,
        record: &Record<'a>,
        then: impl FnOnce(&Record<'a>, &Meta) -> T,
    ) -> Option<T> {
        let mut copy = Record {
            time: record.time,
            fields: recycle(std::mem::take(&mut self.spare)),
        };
        // Borrowed keys and values are copied as pointers.
        copy.fields.extend(record.fields.iter().cloned());
        self.meta.clear();
        let kept = self
            .steps
            .iter()
            .all(|step| step.apply(&mut copy, &mut self.meta) == Verdict::Keep);
        let result = if kept {
            Some(then(&copy, &self.meta))
        } else {
            counters::add(&self.metrics.records_filtered, 1);
            None
        };
        self.spare = recycle(copy.fields);
        result
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Steps for tests of the seam itself (the real steps come with the
    //! transforms issue).

    use super::{Step, Verdict};
    use crate::record::{Field, Meta, Record, Severity};

    /// Drops records whose field `key` has value `value`.
    #[derive(Debug)]
    pub(crate) struct DropWhere {
        pub key: &'static [u8],
        pub value: &'static [u8],
    }

    impl Step for DropWhere {
        fn apply(&self, record: &mut Record<'_>, _meta: &mut Meta) -> Verdict {
            if record.get(self.key) == Some(self.value) {
                Verdict::Drop
            } else {
                Verdict::Keep
            }
        }
    }

    /// Sets the severity and renames the first field to `renamed`.
    #[derive(Debug)]
    pub(crate) struct Mark {
        pub severity: Severity,
        pub renamed: &'static [u8],
    }

    impl Step for Mark {
        fn apply(&self, record: &mut Record<'_>, meta: &mut Meta) -> Verdict {
            meta.severity = Some(self.severity);
            if let Some(first) = record.fields.first_mut() {
                *first = Field::borrowed(self.renamed, &[]);
                first.value = std::borrow::Cow::Owned(b"changed".to_vec());
            }
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{DropWhere, Mark};
    use super::*;
    use crate::record::{LogTime, Severity};

    fn record() -> Record<'static> {
        Record {
            time: LogTime::new(1, 0).unwrap_or_default(),
            fields: vec![
                Field::borrowed(b"__topic__", b"audit"),
                Field::borrowed(b"k", b"v"),
            ],
        }
    }

    #[test]
    fn an_empty_chain_hands_the_record_on_unchanged() {
        let mut chain = Chain::default();
        let r = record();
        let seen = chain.run(&r, |out, meta| (out.clone(), meta.clone()));
        assert_eq!(seen, Some((r, Meta::NONE)));
    }

    #[test]
    fn steps_change_a_copy_and_set_metadata_leaving_the_source_record_alone() {
        let mut chain = Chain::new(
            vec![Box::new(Mark {
                severity: Severity::new(2).expect("crit"),
                renamed: b"topic",
            })],
            &Metrics::default(),
        );
        let r = record();
        for _ in 0..3 {
            let (fields, meta) = chain
                .run(&r, |out, meta| (out.fields.clone(), meta.clone()))
                .expect("kept");
            assert_eq!(fields[0].key.as_ref(), b"topic");
            assert_eq!(fields[0].value.as_ref(), b"changed");
            assert_eq!(fields[1], r.fields[1]);
            assert_eq!(meta.severity, Severity::new(2));
        }
        assert_eq!(r, record(), "the source's record is untouched");
    }

    #[test]
    fn a_dropped_record_is_not_encoded_and_is_counted() {
        let metrics = Metrics::default();
        let mut chain = Chain::new(
            vec![
                Box::new(DropWhere {
                    key: b"__topic__",
                    value: b"audit",
                }),
                Box::new(Mark {
                    severity: Severity::new(0).expect("emerg"),
                    renamed: b"x",
                }),
            ],
            &metrics,
        );
        let mut called = false;
        assert_eq!(chain.run(&record(), |_, _| called = true), None);
        assert!(!called);
        assert_eq!(counters::get(&metrics.records_filtered), 1);
        // Metadata does not leak from one record to the next.
        let other = Record {
            fields: vec![Field::borrowed(b"__topic__", b"web")],
            ..record()
        };
        let meta = chain.run(&other, |_, meta| meta.clone()).expect("kept");
        assert_eq!(meta.severity, Severity::new(0));
        let mut only_drop = Chain::new(
            vec![Box::new(DropWhere {
                key: b"none",
                value: b"",
            })],
            &metrics,
        );
        let meta = only_drop.run(&other, |_, meta| meta.clone()).expect("kept");
        assert_eq!(meta, Meta::NONE);
    }
}
