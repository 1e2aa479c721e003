//! `when`: the condition that guards a step.
//!
//! A condition tests one field — equals a text, is one of a list, matches a
//! regular expression, exists, is missing, compares as a number — or joins
//! others with `all`, `any` and `not`. The topic is the field `__topic__`,
//! a tag `__tag__:name`: a condition sees the record as the encoder would.
//!
//! Conditions are compiled once, when the pipeline is built: a bad regular
//! expression or a test without a field is refused there with the key path,
//! never met on a record.
//!
//! Values are bytes (a Log Service value need not be UTF-8): `equals` and
//! `in` compare bytes, `matches` runs a byte regex (Unicode-aware where the
//! value is valid UTF-8), and a numeric test parses the value as a decimal
//! number — a value that is not one makes the test false.

use regex::bytes::Regex;
use serde::Deserialize;

use crate::record::Record;

/// A condition as written in the config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhenConfig {
    /// The field a test looks at.
    pub field: Option<String>,
    /// The field's value is exactly this.
    pub equals: Option<String>,
    /// The field's value is one of these.
    #[serde(rename = "in")]
    pub one_of: Option<Vec<String>>,
    /// The field's value matches this regular expression (anywhere in it;
    /// anchor with `^` and `$`).
    pub matches: Option<String>,
    /// `true`: the field is present (any value, even empty); `false`: it
    /// is not.
    pub exists: Option<bool>,
    /// The value, as a number, is greater than this.
    pub gt: Option<f64>,
    /// … greater than or equal to.
    pub ge: Option<f64>,
    /// … less than.
    pub lt: Option<f64>,
    /// … less than or equal to.
    pub le: Option<f64>,
    /// Every condition holds.
    pub all: Option<Vec<WhenConfig>>,
    /// At least one condition holds.
    pub any: Option<Vec<WhenConfig>>,
    /// The condition does not hold.
    pub not: Option<Box<WhenConfig>>,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    Equals(Vec<u8>, Vec<u8>),
    OneOf(Vec<u8>, Vec<Vec<u8>>),
    Matches(Vec<u8>, Regex),
    Exists(Vec<u8>, bool),
    Compare(Vec<u8>, Cmp, f64),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Deeper `all`/`any`/`not` nesting than any rule needs; refused so a
/// config cannot make evaluation recurse without bound.
const MAX_DEPTH: usize = 32;

impl Condition {
    /// Compile `config`; `key` is its path for errors (`transforms[2].when`).
    pub(crate) fn build(config: &WhenConfig, key: &str) -> Result<Self, String> {
        Self::build_at(config, key, 0)
    }

    fn build_at(c: &WhenConfig, key: &str, depth: usize) -> Result<Self, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "{key}: nested deeper than {MAX_DEPTH} levels of all/any/not"
            ));
        }
        let tests = [
            c.equals.is_some(),
            c.one_of.is_some(),
            c.matches.is_some(),
            c.exists.is_some(),
            c.gt.is_some(),
            c.ge.is_some(),
            c.lt.is_some(),
            c.le.is_some(),
        ]
        .iter()
        .filter(|t| **t)
        .count();
        let joins = [c.all.is_some(), c.any.is_some(), c.not.is_some()]
            .iter()
            .filter(|t| **t)
            .count();
        let write = "write one test, e.g. { field = \"__topic__\", equals = \"audit\" }, \
                     or join tests with all = [...], any = [...] or not = {...}";
        match (joins, tests, &c.field) {
            (0, 0, _) => Err(format!("{key}: no test; {write}")),
            (1, 0, None) => {
                if let Some(list) = &c.all {
                    Ok(Condition::All(Self::build_list(list, &format!("{key}.all"), depth)?))
                } else if let Some(list) = &c.any {
                    Ok(Condition::Any(Self::build_list(list, &format!("{key}.any"), depth)?))
                } else if let Some(inner) = &c.not {
                    let inner = Self::build_at(inner, &format!("{key}.not"), depth + 1)?;
                    Ok(Condition::Not(Box::new(inner)))
                } else {
                    Err(format!("{key}: no test; {write}"))
                }
            }
            (0, 1, Some(field)) => Self::build_test(c, field.as_bytes().to_vec(), key),
            (0, 1, None) => Err(format!("{key}: the test has no field; add field = \"name\"")),
            (0, _, _) => Err(format!(
                "{key}: more than one test in one condition; join them with all = [...] or any = [...]"
            )),
            _ => Err(format!(
                "{key}: all/any/not stand alone (no field or test beside them); {write}"
            )),
        }
    }

    fn build_list(list: &[WhenConfig], key: &str, depth: usize) -> Result<Vec<Self>, String> {
        if list.is_empty() {
            return Err(format!("{key}: an empty list; give at least one condition"));
        }
        list.iter()
            .enumerate()
            .map(|(i, c)| Self::build_at(c, &format!("{key}[{i}]"), depth + 1))
            .collect()
    }

    fn build_test(c: &WhenConfig, field: Vec<u8>, key: &str) -> Result<Self, String> {
        if let Some(v) = &c.equals {
            return Ok(Condition::Equals(field, v.as_bytes().to_vec()));
        }
        if let Some(list) = &c.one_of {
            let list = list.iter().map(|v| v.as_bytes().to_vec()).collect();
            return Ok(Condition::OneOf(field, list));
        }
        if let Some(pattern) = &c.matches {
            let re = Regex::new(pattern)
                .map_err(|e| format!("{key}.matches: not a valid regular expression: {e}"))?;
            return Ok(Condition::Matches(field, re));
        }
        if let Some(present) = c.exists {
            return Ok(Condition::Exists(field, present));
        }
        let (cmp, n) = match (c.gt, c.ge, c.lt, c.le) {
            (Some(n), ..) => (Cmp::Gt, n),
            (_, Some(n), ..) => (Cmp::Ge, n),
            (_, _, Some(n), _) => (Cmp::Lt, n),
            (.., Some(n)) => (Cmp::Le, n),
            _ => return Err(format!("{key}: no test")),
        };
        if !n.is_finite() {
            return Err(format!("{key}: compare with a finite number"));
        }
        Ok(Condition::Compare(field, cmp, n))
    }

    /// Whether the condition holds for `record`.
    pub(crate) fn holds(&self, record: &Record<'_>) -> bool {
        match self {
            Condition::Equals(f, v) => record.get(f) == Some(v.as_slice()),
            Condition::OneOf(f, list) => record
                .get(f)
                .is_some_and(|v| list.iter().any(|item| item.as_slice() == v)),
            Condition::Matches(f, re) => record.get(f).is_some_and(|v| re.is_match(v)),
            Condition::Exists(f, present) => record.get(f).is_some() == *present,
            Condition::Compare(f, cmp, n) => {
                record.get(f).and_then(number).is_some_and(|v| match cmp {
                    Cmp::Gt => v > *n,
                    Cmp::Ge => v >= *n,
                    Cmp::Lt => v < *n,
                    Cmp::Le => v <= *n,
                })
            }
            Condition::All(list) => list.iter().all(|c| c.holds(record)),
            Condition::Any(list) => list.iter().any(|c| c.holds(record)),
            Condition::Not(c) => !c.holds(record),
        }
    }
}

/// A field's value as a number: decimal, surrounding spaces allowed, no
/// `inf` or `NaN`.
fn number(v: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(v).ok()?.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Field, LogTime};

    fn when(toml_text: &str) -> Result<Condition, String> {
        let c: WhenConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Condition::build(&c, "transforms[0].when")
    }

    fn rec(fields: &[(&'static str, &'static [u8])]) -> Record<'static> {
        Record {
            time: LogTime::default(),
            fields: fields
                .iter()
                .map(|(k, v)| Field::borrowed(k.as_bytes(), v))
                .collect(),
        }
    }

    #[test]
    fn each_test_holds_where_it_should() {
        let r = rec(&[
            ("__topic__", b"actiontrail_audit_event"),
            ("event.eventName", b"DeleteUser"),
            ("count", b" 42 "),
            ("empty", b""),
            ("bin", b"\xff\xfe"),
        ]);
        let holds = |t: &str| when(t).expect(t).holds(&r);
        assert!(holds(
            r#"field = "__topic__"
equals = "actiontrail_audit_event""#
        ));
        assert!(!holds(
            r#"field = "__topic__"
equals = "actiontrail""#
        ));
        assert!(holds(
            r#"field = "event.eventName"
in = ["CreateUser", "DeleteUser"]"#
        ));
        assert!(holds(
            r#"field = "event.eventName"
matches = "^Delete""#
        ));
        assert!(!holds(
            r#"field = "event.eventName"
matches = "^Create""#
        ));
        assert!(holds(
            r#"field = "empty"
exists = true"#
        ));
        assert!(holds(
            r#"field = "nope"
exists = false"#
        ));
        assert!(holds(
            r#"field = "count"
gt = 41"#
        ));
        assert!(holds(
            r#"field = "count"
le = 42"#
        ));
        assert!(!holds(
            r#"field = "count"
lt = 42"#
        ));
        // Not a number: every comparison is false.
        assert!(!holds(
            r#"field = "event.eventName"
lt = 1e300"#
        ));
        assert!(!holds(
            r#"field = "bin"
ge = 0"#
        ));
        // A byte regex reaches values that are not UTF-8.
        assert!(holds(
            r#"field = "bin"
matches = "(?-u)^\\xff""#
        ));
    }

    #[test]
    fn all_any_and_not_combine() {
        let r = rec(&[("a", b"1"), ("b", b"2")]);
        let holds = |t: &str| when(t).expect(t).holds(&r);
        assert!(holds(
            r#"all = [{ field = "a", equals = "1" }, { field = "b", equals = "2" }]"#
        ));
        assert!(!holds(
            r#"all = [{ field = "a", equals = "1" }, { field = "b", equals = "3" }]"#
        ));
        assert!(holds(
            r#"any = [{ field = "a", equals = "9" }, { field = "b", equals = "2" }]"#
        ));
        assert!(holds(r#"not = { field = "c", exists = true }"#));
        assert!(!holds(
            r#"not = { any = [{ field = "a", exists = true }, { field = "z", exists = true }] }"#
        ));
    }

    #[test]
    fn conditions_that_cannot_mean_anything_are_refused_with_their_path() {
        for (text, says) in [
            ("", "no test"),
            (r#"equals = "x""#, "has no field"),
            (r#"field = "a""#, "no test"),
            (
                r#"field = "a"
equals = "x"
exists = true"#,
                "more than one test",
            ),
            (
                r#"field = "a"
all = [{ field = "b", exists = true }]"#,
                "stand alone",
            ),
            ("all = []", "transforms[0].when.all: an empty list"),
            (
                r#"field = "a"
matches = "(unclosed""#,
                "transforms[0].when.matches: not a valid regular expression",
            ),
            (
                r#"any = [{ field = "a" }]"#,
                "transforms[0].when.any[0]: no test",
            ),
        ] {
            let e = when(text).expect_err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let deep = format!(
            "{}field = \"a\", exists = true{}",
            "not = { ".repeat(40),
            " }".repeat(40)
        );
        assert!(when(&deep).expect_err("deep").contains("nested deeper"));
    }
}
