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
//! The steps come from the `[[transforms]]` tables ([`TransformConfig`]),
//! compiled once by [`build`] (a bad regex, an unknown name, a template
//! that does not close is refused there, with the step's path) and shared
//! by every shard. A step is one file under this module implementing
//! [`Step`], plus its variant in `config.rs` and one arm in [`build`]:
//! `filter.rs`, `level.rs` (`severity`, `facility`), `map.rs`,
//! `coalesce.rs`, `parse_json.rs`, `rename.rs`,
//! `select.rs` (`drop`, `keep`), `set.rs` (`set`, `default`), `header.rs`; `when.rs` is the
//! condition any step may carry, `template.rs` the `{field}` text.
//!
//! [`Formatter::encode`]: crate::format::Formatter::encode

use std::sync::Arc;

use crate::counters::{self, Metrics};
use crate::record::{recycle, Facility, Field, Meta, Record, Severity};

mod coalesce;
pub mod config;
mod filter;
mod header;
mod level;
mod map;
mod names;
mod parse_json;
mod rename;
mod select;
mod set;
use crate::template::Template;
pub mod when;

pub use config::{LevelConfig, TransformConfig};
pub use when::WhenConfig;

/// A `[[transforms]]` table that cannot work: `key` is the path of what is
/// wrong (`transforms[2].when.matches`), `problem` says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct BuildError {
    /// e.g. `transforms[2].when.matches`.
    pub key: String,
    /// What is wrong and what to do.
    pub problem: String,
}

/// Compile the configured steps, in order, for [`Chain::new`].
///
/// # Errors
/// The first step that cannot work, with its path.
pub fn build(
    configs: &[TransformConfig],
    metrics: &Metrics,
) -> Result<Arc<[Box<dyn Step>]>, BuildError> {
    let mut steps: Vec<Box<dyn Step>> = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        let key = format!("transforms[{i}]");
        // Every message begins with the full path of what is wrong
        // (`transforms[2].when.matches: ...`): split it off.
        let fail = |message: String| match message.split_once(": ") {
            Some((path, problem)) if path.starts_with(&key) => BuildError {
                key: path.to_owned(),
                problem: problem.to_owned(),
            },
            _ => BuildError {
                key: key.clone(),
                problem: message,
            },
        };
        let when = c
            .when()
            .map(|w| when::Condition::build(w, &format!("{key}.when")))
            .transpose()
            .map_err(fail)?;
        let step: Box<dyn Step> = match c {
            TransformConfig::Filter { .. } => {
                let Some(when) = when else {
                    return Err(fail(format!(
                        "{key}: a filter needs when = {{ ... }}, the records to leave out \
                         (a filter of every record would forward nothing)"
                    )));
                };
                // The filter's condition is its decision, not a guard.
                steps.push(Box::new(filter::Filter { when }));
                continue;
            }
            TransformConfig::Severity(l) => {
                Box::new(level::SetLevel::<Severity>::build(l, &key).map_err(fail)?)
            }
            TransformConfig::Facility(l) => {
                Box::new(level::SetLevel::<Facility>::build(l, &key).map_err(fail)?)
            }
            TransformConfig::Rename { fields, .. } => {
                if fields.is_empty() {
                    return Err(fail(format!(
                        "{key}.fields: empty; write fields = {{ old = \"new\" }}"
                    )));
                }
                let names = fields
                    .iter()
                    .map(|(old, new)| (old.as_bytes().to_vec(), new.as_bytes().to_vec()))
                    .collect();
                Box::new(rename::Rename { names })
            }
            TransformConfig::Drop { fields, .. } | TransformConfig::Keep { fields, .. } => {
                if fields.is_empty() {
                    return Err(fail(format!(
                        "{key}.fields: empty; name the fields (globs with * allowed)"
                    )));
                }
                Box::new(select::Select {
                    patterns: fields.iter().map(|f| select::Pattern::new(f)).collect(),
                    keep: matches!(c, TransformConfig::Keep { .. }),
                })
            }
            TransformConfig::Set { field, value, .. }
            | TransformConfig::Default { field, value, .. } => {
                if field.is_empty() {
                    return Err(fail(format!("{key}.field: empty; name the field to set")));
                }
                Box::new(set::Set {
                    field: field.as_bytes().to_vec(),
                    value: Template::parse(value, &format!("{key}.value")).map_err(fail)?,
                    only_if_empty: matches!(c, TransformConfig::Default { .. }),
                })
            }
            TransformConfig::Map {
                field,
                to,
                map,
                default,
                ..
            } => {
                if field.is_empty() || map.is_empty() {
                    return Err(fail(format!(
                        "{key}: name the field and give map = {{ value = \"other value\" }}"
                    )));
                }
                Box::new(map::Map {
                    field: field.as_bytes().to_vec(),
                    to: to.as_deref().unwrap_or(field).as_bytes().to_vec(),
                    table: map
                        .iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                        .collect(),
                    default: default.as_ref().map(|d| d.as_bytes().to_vec()),
                })
            }
            TransformConfig::Coalesce {
                field,
                from,
                default,
                ..
            } => {
                if field.is_empty() || from.is_empty() {
                    return Err(fail(format!(
                        "{key}: name the field to set and the fields to try, from = [\"a\", \"b\"]"
                    )));
                }
                Box::new(coalesce::Coalesce {
                    field: field.as_bytes().to_vec(),
                    from: from.iter().map(|f| f.as_bytes().to_vec()).collect(),
                    default: default.as_ref().map(|d| d.as_bytes().to_vec()),
                })
            }
            TransformConfig::ParseJson {
                field,
                prefix,
                separator,
                max_depth,
                keep_original,
                ..
            } => {
                if field.is_empty() {
                    return Err(fail(format!(
                        "{key}.field: empty; name the field holding JSON"
                    )));
                }
                let separator = separator.clone().unwrap_or_else(|| ".".to_owned());
                let max_depth = max_depth.unwrap_or(parse_json::DEFAULT_MAX_DEPTH);
                if !(1..=parse_json::MAX_DEPTH).contains(&max_depth) {
                    return Err(fail(format!(
                        "{key}.max_depth: {max_depth} is outside 1 (the top level of the \
                         object) to {} (default {})",
                        parse_json::MAX_DEPTH,
                        parse_json::DEFAULT_MAX_DEPTH
                    )));
                }
                Box::new(parse_json::ParseJson {
                    field: field.as_bytes().to_vec(),
                    prefix: prefix
                        .clone()
                        .unwrap_or_else(|| format!("{field}{separator}"))
                        .into_bytes(),
                    separator: separator.into_bytes(),
                    max_depth,
                    keep_original: *keep_original,
                    metrics: metrics.clone(),
                    slot: i,
                })
            }
            TransformConfig::Header {
                hostname,
                app_name,
                procid,
                msgid,
                ..
            } => {
                let t = |name: &str, v: &Option<String>| {
                    v.as_deref()
                        .map(|text| Template::parse(text, &format!("{key}.{name}")))
                        .transpose()
                };
                let header = header::Header {
                    hostname: t("hostname", hostname).map_err(fail)?,
                    app_name: t("app_name", app_name).map_err(fail)?,
                    procid: t("procid", procid).map_err(fail)?,
                    msgid: t("msgid", msgid).map_err(fail)?,
                };
                if [
                    &header.hostname,
                    &header.app_name,
                    &header.procid,
                    &header.msgid,
                ]
                .iter()
                .all(|t| t.is_none())
                {
                    return Err(fail(format!(
                        "{key}: sets nothing; give hostname, app_name, procid or msgid"
                    )));
                }
                Box::new(header)
            }
        };
        steps.push(match when {
            Some(when) => Box::new(Guarded { when, step }),
            None => step,
        });
    }
    Ok(steps.into())
}

/// A step that runs only for the records its `when` holds for.
#[derive(Debug)]
struct Guarded {
    when: when::Condition,
    step: Box<dyn Step>,
}

impl Step for Guarded {
    fn apply<'r>(&self, record: &mut Record<'r>, meta: &mut Meta, scratch: &'r Scratch) -> Verdict {
        if self.when.holds(record) {
            self.step.apply(record, meta, scratch)
        } else {
            Verdict::Keep
        }
    }
}

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
    /// [`Meta::NONE`] for every record. Bytes a step makes for the record
    /// (a new name, a rendered value) go in `scratch`, which lives as long
    /// as the record.
    fn apply<'r>(&self, record: &mut Record<'r>, meta: &mut Meta, scratch: &'r Scratch) -> Verdict;
}

/// Memory for the bytes steps make while they work on one record (new
/// field names and values), given back whole when the record is done: one
/// reset per record instead of a `malloc` and a `free` per field, which
/// cost a third of the CPU of `parse_json` on ActionTrail events.
#[derive(Debug, Default)]
pub struct Scratch {
    arena: bumpalo::Bump,
    /// Where a template is rendered before it is copied into the arena.
    line: std::cell::RefCell<Vec<u8>>,
    /// Emptied buffers of the last record's header fields ([`Meta`] owns
    /// its bytes), for the next record's.
    buffers: std::cell::RefCell<Vec<Vec<u8>>>,
    /// The names `parse_json` steps made for earlier records.
    names: names::Names,
    /// What `parse_json` works in.
    json: std::cell::RefCell<parse_json::Buffers>,
}

impl Scratch {
    /// A copy of `bytes` that lives as long as the record.
    pub fn copy<'s>(&'s self, bytes: &[u8]) -> &'s [u8] {
        self.arena.alloc_slice_copy(bytes)
    }

    fn render<'s>(&'s self, template: &Template, record: &Record<'_>) -> &'s [u8] {
        let mut line = self.line.borrow_mut();
        line.clear();
        template.render_into(record, &mut line);
        self.arena.alloc_slice_copy(&line)
    }

    /// An empty buffer for a header field, from an earlier record if one
    /// is left.
    fn buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            // Room for what header fields hold (RFC 5424 caps them at 32
            // to 255 bytes), so most are allocated once.
            .unwrap_or_else(|| Vec::with_capacity(64))
    }

    /// Ready for the next record: the arena given back whole, `meta` back
    /// to [`Meta::NONE`] with its buffers kept.
    fn reset(&mut self, meta: &mut Meta) {
        self.arena.reset();
        meta.clear_into(self.buffers.get_mut());
        self.names.take_in();
    }
}

/// The configured steps in order, with the scratch space they work in. One
/// chain per shard task (it is not shared, so it needs no lock).
#[derive(Debug, Default)]
pub struct Chain {
    /// Compiled once, shared by every shard's chain.
    steps: Arc<[Box<dyn Step>]>,
    /// The copy's field vector between records (empty, allocation kept).
    spare: Vec<Field<'static>>,
    /// What the steps make for the record in hand; reset between records.
    scratch: Scratch,
    meta: Meta,
    /// Where filtered records are counted.
    metrics: Metrics,
}

impl Chain {
    /// A chain of these steps, in this order, counting into `metrics`.
    pub fn new(steps: Vec<Box<dyn Step>>, metrics: &Metrics) -> Self {
        Self::shared(steps.into(), metrics)
    }

    /// A chain of steps compiled once by [`build`] and shared with other
    /// shards' chains, counting into `metrics`.
    pub fn shared(steps: Arc<[Box<dyn Step>]>, metrics: &Metrics) -> Self {
        Self {
            steps,
            spare: Vec::new(),
            scratch: Scratch::default(),
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
    pub fn run<T>(
        &mut self,
        record: &Record<'_>,
        then: impl FnOnce(&Record<'_>, &Meta) -> T,
    ) -> Option<T> {
        if self.steps.is_empty() {
            return Some(then(record, &Meta::NONE));
        }
        self.run_steps(record, then)
    }

    fn run_steps<T>(
        &mut self,
        record: &Record<'_>,
        then: impl FnOnce(&Record<'_>, &Meta) -> T,
    ) -> Option<T> {
        self.scratch.reset(&mut self.meta);
        let scratch = &self.scratch;
        let mut copy = Record {
            time: record.time,
            fields: recycle(std::mem::take(&mut self.spare)),
        };
        // Borrowed keys and values are copied as pointers.
        copy.fields.extend(record.fields.iter().cloned());
        let meta = &mut self.meta;
        let kept = self
            .steps
            .iter()
            .all(|step| step.apply(&mut copy, meta, scratch) == Verdict::Keep);
        let result = if kept {
            Some(then(&copy, &self.meta))
        } else {
            counters::add(&self.metrics.records_filtered, 1);
            counters::add(&self.metrics.bytes_filtered, record.raw_len() as u64);
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

    use super::{Scratch, Step, Verdict};
    use crate::record::{Field, Meta, Record, Severity};

    /// Drops records whose field `key` has value `value`.
    #[derive(Debug)]
    pub(crate) struct DropWhere {
        pub key: &'static [u8],
        pub value: &'static [u8],
    }

    impl Step for DropWhere {
        fn apply<'r>(
            &self,
            record: &mut Record<'r>,
            _meta: &mut Meta,
            _scratch: &'r Scratch,
        ) -> Verdict {
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
        fn apply<'r>(
            &self,
            record: &mut Record<'r>,
            meta: &mut Meta,
            _scratch: &'r Scratch,
        ) -> Verdict {
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

    /// The `[[transforms]]` of a config file, compiled.
    fn compiled(toml_text: &str) -> Result<Chain, String> {
        let config = crate::config::Config::from_toml(toml_text, "test.toml", &|_| None)
            .map_err(|e| e.to_string())?;
        let steps = build(&config.transforms, &Metrics::default()).map_err(|e| e.to_string())?;
        Ok(Chain::shared(steps, &Metrics::default()))
    }

    fn audit(fields: &[(&'static str, &'static str)]) -> Record<'static> {
        Record {
            time: LogTime::default(),
            fields: fields
                .iter()
                .map(|(k, v)| Field::borrowed(k.as_bytes(), v.as_bytes()))
                .collect(),
        }
    }

    #[test]
    fn configured_steps_run_in_order_under_their_conditions() {
        let mut chain = compiled(
            r#"
[[transforms]]
type = "filter"
when = { field = "event.eventRW", equals = "Read" }

[[transforms]]
type = "severity"
value = "notice"

[[transforms]]
type = "severity"
value = "warning"
when = { field = "event.errorCode", exists = true }

[[transforms]]
type = "severity"
value = "alert"
when = { field = "event.eventName", in = ["CreateAccessKey", "DeleteUser"] }

[[transforms]]
type = "header"
hostname = "{event.acsRegion}"
msgid = "{event.eventName}"

[[transforms]]
type = "set"
field = "who"
value = "{event.userIdentity.userName}@{event.acsRegion}"

[[transforms]]
type = "rename"
fields = { "event.eventName" = "action" }

[[transforms]]
type = "drop"
fields = ["__tag__:*"]
"#,
        )
        .expect("valid");
        let run = |chain: &mut Chain, r: &Record<'_>| {
            chain.run(r, |out, meta| {
                let fields: Vec<(String, String)> = out
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            String::from_utf8_lossy(&f.key).into_owned(),
                            String::from_utf8_lossy(&f.value).into_owned(),
                        )
                    })
                    .collect();
                (fields, meta.clone())
            })
        };
        let read = audit(&[("event.eventRW", "Read"), ("event.eventName", "ListUsers")]);
        assert_eq!(run(&mut chain, &read), None, "read events are filtered");

        let failed = audit(&[
            ("__tag__:__hostname__", "web-1"),
            ("event.eventRW", "Write"),
            ("event.eventName", "DeleteUser"),
            ("event.errorCode", "NoPermission"),
            ("event.acsRegion", "cn-hangzhou"),
            ("event.userIdentity.userName", "alice"),
        ]);
        let (fields, meta) = run(&mut chain, &failed).expect("kept");
        assert_eq!(
            meta.severity,
            Severity::new(1),
            "the later matching rule wins"
        );
        assert_eq!(meta.hostname.as_deref(), Some(&b"cn-hangzhou"[..]));
        assert_eq!(meta.msgid.as_deref(), Some(&b"DeleteUser"[..]));
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "event.eventRW",
                "action",
                "event.errorCode",
                "event.acsRegion",
                "event.userIdentity.userName",
                "who"
            ]
        );
        assert_eq!(fields[5].1, "alice@cn-hangzhou");

        let plain = audit(&[
            ("event.eventRW", "Write"),
            ("event.eventName", "CreateUser"),
        ]);
        let (_, meta) = run(&mut chain, &plain).expect("kept");
        assert_eq!(meta.severity, Severity::new(5));
        assert_eq!(
            meta.hostname.as_deref(),
            Some(&b""[..]),
            "a missing field renders empty"
        );
    }

    #[test]
    fn map_default_and_coalesce_fill_fields() {
        let mut chain = compiled(
            r#"
[[transforms]]
type = "map"
field = "event.eventName"
to = "category"
map = { ConsoleSignin = "authentication", CreateAccessKey = "credentials" }
default = "other"

[[transforms]]
type = "coalesce"
field = "user"
from = ["event.userIdentity.userName", "event.userIdentity.principalId"]
default = "unknown"

[[transforms]]
type = "default"
field = "event.errorCode"
value = "none ({event.eventName})"

[[transforms]]
type = "map"
field = "level"
map = { W = "warning" }
"#,
        )
        .expect("valid");
        let fields = |chain: &mut Chain, r: &Record<'_>| {
            chain
                .run(r, |out, _| {
                    out.fields
                        .iter()
                        .map(|f| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(&f.key),
                                String::from_utf8_lossy(&f.value)
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .expect("kept")
        };
        let signin = audit(&[
            ("event.eventName", "ConsoleSignin"),
            ("event.userIdentity.userName", ""),
            ("event.userIdentity.principalId", "300301"),
            ("event.errorCode", ""),
            ("level", "E"),
        ]);
        assert_eq!(
            fields(&mut chain, &signin),
            [
                "event.eventName=ConsoleSignin",
                "event.userIdentity.userName=",
                "event.userIdentity.principalId=300301",
                "event.errorCode=none (ConsoleSignin)",
                "level=E",
                "category=authentication",
                "user=300301",
            ]
        );
        let other = audit(&[
            ("event.eventName", "StopInstance"),
            ("event.errorCode", "Forbidden"),
            ("level", "W"),
        ]);
        assert_eq!(
            fields(&mut chain, &other),
            [
                "event.eventName=StopInstance",
                "event.errorCode=Forbidden",
                "level=warning",
                "category=other",
                "user=unknown",
            ]
        );
    }

    #[test]
    fn steps_that_cannot_work_are_refused_with_their_path() {
        for (text, says) in [
            (
                "[[transforms]]\ntype = \"shout\"",
                "unknown variant `shout`",
            ),
            (
                "[[transforms]]\ntype = \"severity\"\nvalue = \"info\"\ncolour = \"red\"",
                "unknown field `colour`",
            ),
            (
                "[[transforms]]\ntype = \"filter\"",
                "transforms[0]: a filter needs when",
            ),
            (
                "[[transforms]]\ntype = \"severity\"\nvalue = \"info\"\n[[transforms]]\ntype = \"filter\"\nwhen = { field = \"a\", matches = \"(\" }",
                "transforms[1].when.matches: not a valid regular expression",
            ),
            (
                "[[transforms]]\ntype = \"set\"\nfield = \"x\"\nvalue = \"{open\"",
                "transforms[0].value: '{' at byte 0 is never closed",
            ),
            (
                "[[transforms]]\ntype = \"header\"",
                "transforms[0]: sets nothing",
            ),
            (
                "[[transforms]]\ntype = \"drop\"\nfields = []",
                "transforms[0].fields: empty",
            ),
        ] {
            let e = compiled(text).expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn an_empty_chain_hands_the_record_on_unchanged() {
        let mut chain = Chain::default();
        let r = record();
        let seen = chain.run(&r, |out, meta| (out.clone().into_owned(), meta.clone()));
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
                .run(&r, |out, meta| {
                    (out.clone().into_owned().fields, meta.clone())
                })
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
        assert_eq!(
            counters::get(&metrics.bytes_filtered),
            record().raw_len() as u64
        );
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
