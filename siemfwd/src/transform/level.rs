//! `severity` and `facility`: set the record's PRI from a literal, from a
//! field holding a name or a number, or through a map of the field's
//! values.
//!
//! This is what Alibaba's guide means by "set the log of the specified
//! content to a higher severity level": `severity` with a `when`, or with
//! `from` and a `map`. A field that holds nothing usable (missing, or a
//! value neither in the map nor a name or number) gets `default`, or keeps
//! what the record had — a record is never refused for its level.

use std::collections::HashMap;

use super::config::LevelConfig;
use super::{Scratch, Step, Verdict};
use crate::format;
use crate::record::{Facility, Meta, Record, Severity};

/// The two things a level step can set.
pub(crate) trait Level: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Parse a name or number; `key` names the setting in the error.
    fn parse(text: &str, key: &str) -> Result<Self, String>;
    /// A name or number read from a record; `None` when it is neither.
    fn read(text: &str) -> Option<Self>;
    /// Store it in the record's metadata.
    fn set(self, meta: &mut Meta);
}

impl Level for Severity {
    fn parse(text: &str, key: &str) -> Result<Self, String> {
        format::severity_named(text, key).map_err(|e| e.to_string())
    }

    fn read(text: &str) -> Option<Self> {
        format::severity_in(text)
    }

    fn set(self, meta: &mut Meta) {
        meta.severity = Some(self);
    }
}

impl Level for Facility {
    fn parse(text: &str, key: &str) -> Result<Self, String> {
        format::facility_named(text, key).map_err(|e| e.to_string())
    }

    fn read(text: &str) -> Option<Self> {
        format::facility_in(text)
    }

    fn set(self, meta: &mut Meta) {
        meta.facility = Some(self);
    }
}

/// A compiled `severity` or `facility` step.
#[derive(Debug)]
pub(crate) enum SetLevel<L: Level> {
    Literal(L),
    FromField {
        field: Vec<u8>,
        map: Option<HashMap<Vec<u8>, L>>,
        default: Option<L>,
    },
}

impl<L: Level> SetLevel<L> {
    /// Compile `c`; `key` is the step's path (`transforms[3]`).
    pub(crate) fn build(c: &LevelConfig, key: &str) -> Result<Self, String> {
        match (&c.value, &c.from) {
            (Some(_), Some(_)) => Err(format!(
                "{key}: value and from both given; a literal value, or from = \"field\" (with a map)"
            )),
            (None, None) => Err(format!(
                "{key}: say where it comes from: value = \"warning\", or from = \"field\" (with a map)"
            )),
            (Some(v), None) => {
                if c.map.is_some() || c.default.is_some() {
                    return Err(format!(
                        "{key}: map and default go with from = \"field\", not with a literal value"
                    ));
                }
                Ok(SetLevel::Literal(L::parse(v, &format!("{key}.value"))?))
            }
            (None, Some(field)) => {
                let map = match &c.map {
                    None => None,
                    Some(m) => Some(
                        m.iter()
                            .map(|(k, v)| {
                                L::parse(v, &format!("{key}.map.{k}"))
                                    .map(|l| (k.as_bytes().to_vec(), l))
                            })
                            .collect::<Result<HashMap<_, _>, _>>()?,
                    ),
                };
                let default = match &c.default {
                    None => None,
                    Some(d) => Some(L::parse(d, &format!("{key}.default"))?),
                };
                Ok(SetLevel::FromField {
                    field: field.as_bytes().to_vec(),
                    map,
                    default,
                })
            }
        }
    }
}

impl<L: Level> Step for SetLevel<L> {
    fn apply<'r>(
        &self,
        record: &mut Record<'r>,
        meta: &mut Meta,
        _scratch: &'r Scratch,
    ) -> Verdict {
        let level = match self {
            SetLevel::Literal(l) => Some(*l),
            SetLevel::FromField {
                field,
                map,
                default,
            } => {
                let value = record.get(field);
                let found = value.and_then(|v| match map {
                    Some(m) => m.get(v).copied(),
                    None => std::str::from_utf8(v).ok().and_then(L::read),
                });
                found.or(*default)
            }
        };
        if let Some(l) = level {
            l.set(meta);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Field, LogTime};

    fn level(toml_text: &str) -> Result<SetLevel<Severity>, String> {
        let c: LevelConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        SetLevel::build(&c, "transforms[0]")
    }

    fn severity_of(
        step: &SetLevel<Severity>,
        fields: &[(&'static str, &'static str)],
    ) -> Option<u8> {
        let mut r = Record {
            time: LogTime::default(),
            fields: fields
                .iter()
                .map(|(k, v)| Field::borrowed(k.as_bytes(), v.as_bytes()))
                .collect(),
        };
        let mut meta = Meta::NONE;
        assert_eq!(
            step.apply(&mut r, &mut meta, &Scratch::default()),
            Verdict::Keep
        );
        meta.severity.map(Severity::code)
    }

    #[test]
    fn a_literal_a_field_and_a_map_each_set_the_severity() {
        let lit = level(r#"value = "warning""#).expect("ok");
        assert_eq!(severity_of(&lit, &[]), Some(4));
        let from = level(r#"from = "level""#).expect("ok");
        assert_eq!(severity_of(&from, &[("level", "ERR")]), Some(3));
        assert_eq!(severity_of(&from, &[("level", "2")]), Some(2));
        assert_eq!(
            severity_of(&from, &[("level", "loud")]),
            None,
            "kept as it was"
        );
        assert_eq!(severity_of(&from, &[]), None);
        let mapped = level(
            r#"from = "level"
default = "info"
map = { FATAL = "crit", WARN = "warning" }"#,
        )
        .expect("ok");
        assert_eq!(severity_of(&mapped, &[("level", "FATAL")]), Some(2));
        assert_eq!(severity_of(&mapped, &[("level", "WARN")]), Some(4));
        assert_eq!(
            severity_of(&mapped, &[("level", "DEBUG")]),
            Some(6),
            "default"
        );
        assert_eq!(severity_of(&mapped, &[]), Some(6), "missing field: default");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_their_path() {
        for (text, says) in [
            ("", "say where it comes from"),
            (r#"value = "x""#, "transforms[0].value: unknown value \"x\""),
            (
                r#"value = "info"
from = "level""#,
                "both given",
            ),
            (
                r#"value = "info"
default = "info""#,
                "go with from",
            ),
            (
                r#"from = "l"
map = { A = "loudest" }"#,
                "transforms[0].map.A: unknown value",
            ),
            (
                r#"from = "l"
default = "9""#,
                "transforms[0].default",
            ),
        ] {
            let e = level(text).expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn facility_uses_its_own_names() {
        let c: LevelConfig = toml::from_str(r#"value = "local4""#).expect("toml");
        let step = SetLevel::<Facility>::build(&c, "t").expect("ok");
        let mut meta = Meta::NONE;
        step.apply(&mut Record::default(), &mut meta, &Scratch::default());
        assert_eq!(meta.facility.map(Facility::code), Some(20));
        let c: LevelConfig = toml::from_str(r#"value = "warning""#).expect("toml");
        assert!(SetLevel::<Facility>::build(&c, "t").is_err());
    }
}
