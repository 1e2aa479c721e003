//! A documented subset of SPL, Log Service's processing language, as PullLogs applies it
//! with `query` (rule-based consumption) or a named consume `processor` (protocol notes
//! §2.4): enough for a consumer's handling of filtered pulls to be tested, nothing more.
//!
//! ```text
//! * | where "event.eventRW" = 'Write' and not "event.errorCode" like '%Denied%'
//!   | project "event.eventName", "event.sourceIpAddress"
//! ```
//!
//! - A statement starts with `*` (every log), then stages separated by `|`, applied in
//!   order: `where <condition>` keeps the logs the condition holds for; `project f, …`
//!   keeps only those fields, in that order; `project-away f, …` removes them.
//! - A field is a bare name (`status`) or a double-quoted one (`"event.eventRW"`, `""` for
//!   a quote inside); a string literal is single-quoted (`'Write'`, `''` for a quote); a
//!   number is written as it is (`200`, `-1.5`).
//! - Conditions: `=`, `!=`, `<`, `<=`, `>`, `>=`, `like` (`%` any run, `_` one character),
//!   joined with `and`, `or`, `not` and parentheses (`not` binds tightest, then `and`).
//!   Keywords are case-insensitive.
//! - Values are text. Against a number literal a value is compared as a number (as Rust
//!   reads an `f64`: `1e3` and `inf` count): when a value that is not one decides the
//!   outcome (`and` and `or` look no further than they must), the log is a *failed line*,
//!   left out and counted in `x-log-failedlines`. A field the log does not have is null:
//!   every comparison with it is false (so `not` of one is true).
//! - At most 16 KiB of statement and 256 conditions, `not`s and parentheses.
//! - `__topic__`, `__source__` and `__tag__:…` are fields of every log of a group, as the
//!   service shows them; `project` keeps the group's topic, source and tags as they are
//!   and applies to the log contents only.
//!
//! Not supported (refused with `ParameterInvalid`, naming the word): other stages
//! (`extend`, `parse-json`, `stats`, …), functions, `in`, `between`, `is null`, regular
//! expressions, arithmetic. The README lists this under "what differs".

use crate::error::ApiError;
use crate::proto::{Log, LogGroup};

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Spl {
    stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Where(Cond),
    Project(Vec<Vec<u8>>),
    ProjectAway(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Cmp(Vec<u8>, Op, Literal),
    Like(Vec<u8>, Vec<u8>),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(Vec<u8>),
    Number(f64),
}

/// What applying a statement to some log groups gives.
#[derive(Debug, Default)]
pub struct Applied {
    /// The groups with logs left, re-encoded; groups left empty are dropped.
    pub groups: Vec<bytes::Bytes>,
    /// Logs looked at.
    pub scanned_lines: u64,
    /// Logs returned.
    pub result_lines: u64,
    /// Logs a condition could not be evaluated for (left out).
    pub failed_lines: u64,
}

/// The value of a condition for one log: true, false, or not evaluable.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Truth {
    True,
    False,
    Failed,
}

impl Spl {
    /// Parse `text`.
    ///
    /// # Errors
    /// `ParameterInvalid` naming what was not understood.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.len() > MAX_STATEMENT {
            return Err(unsupported(&format!(
                "a statement of {} bytes (at most {MAX_STATEMENT})",
                text.len()
            )));
        }
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            at: 0,
            conditions: 0,
        };
        p.expect(&Token::Star)?;
        let mut stages = Vec::new();
        while p.eat(&Token::Pipe) {
            let word = p.word()?;
            let stage = match word.to_ascii_lowercase().as_str() {
                "where" => Stage::Where(p.or()?),
                "project" => Stage::Project(p.fields()?),
                "project-away" => Stage::ProjectAway(p.fields()?),
                other => return Err(unsupported(&format!("the stage {other:?}"))),
            };
            stages.push(stage);
        }
        if p.at != p.tokens.len() {
            return Err(unsupported(&format!("{:?}", p.tokens[p.at])));
        }
        Ok(Self { stages })
    }

    /// Apply the statement to encoded groups.
    ///
    /// # Errors
    /// `InternalServerError` if a stored group does not decode (it was validated when
    /// written).
    pub fn apply(&self, groups: &[bytes::Bytes]) -> Result<Applied, ApiError> {
        use prost::Message as _;
        let mut out = Applied::default();
        for data in groups {
            let mut group = LogGroup::decode(data.as_ref()).map_err(|e| {
                ApiError::new(500, "InternalServerError", format!("stored group: {e}"))
            })?;
            out.scanned_lines += group.logs.len() as u64;
            let logs = std::mem::take(&mut group.logs);
            for mut log in logs {
                match self.run(&group, &mut log) {
                    Truth::True => group.logs.push(log),
                    Truth::False => {}
                    Truth::Failed => out.failed_lines += 1,
                }
            }
            out.result_lines += group.logs.len() as u64;
            if !group.logs.is_empty() {
                out.groups.push(bytes::Bytes::from(group.encode_to_vec()));
            }
        }
        Ok(out)
    }

    /// Run every stage on `log`: whether it is kept.
    fn run(&self, group: &LogGroup, log: &mut Log) -> Truth {
        for stage in &self.stages {
            match stage {
                Stage::Where(cond) => match eval(cond, group, log) {
                    Truth::True => {}
                    other => return other,
                },
                Stage::Project(fields) => {
                    let mut kept = Vec::new();
                    for f in fields {
                        if let Some(at) = log.contents.iter().position(|c| c.key == *f) {
                            kept.push(log.contents.remove(at));
                        }
                    }
                    log.contents = kept;
                }
                Stage::ProjectAway(fields) => log.contents.retain(|c| !fields.contains(&c.key)),
            }
        }
        Truth::True
    }
}

/// The value of field `name` for `log` of `group`.
fn field<'a>(name: &[u8], group: &'a LogGroup, log: &'a Log) -> Option<&'a [u8]> {
    if let Some(c) = log.contents.iter().find(|c| c.key == name) {
        return Some(&c.value);
    }
    match name {
        b"__topic__" => group.topic.as_deref(),
        b"__source__" => group.source.as_deref(),
        _ => {
            let tag = name.strip_prefix(b"__tag__:")?;
            group
                .log_tags
                .iter()
                .find(|t| t.key == tag)
                .map(|t| t.value.as_slice())
        }
    }
}

fn eval(cond: &Cond, group: &LogGroup, log: &Log) -> Truth {
    let truth = |b: bool| if b { Truth::True } else { Truth::False };
    match cond {
        Cond::Cmp(name, op, literal) => {
            let Some(value) = field(name, group, log) else {
                return Truth::False;
            };
            let ordering = match literal {
                Literal::Text(t) => value.cmp(t.as_slice()),
                Literal::Number(n) => {
                    let Some(v) = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.trim().parse::<f64>().ok())
                    else {
                        return Truth::Failed;
                    };
                    match v.partial_cmp(n) {
                        Some(o) => o,
                        None => return Truth::Failed,
                    }
                }
            };
            truth(match op {
                Op::Eq => ordering.is_eq(),
                Op::Ne => ordering.is_ne(),
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                Op::Ge => ordering.is_ge(),
            })
        }
        Cond::Like(name, pattern) => match field(name, group, log) {
            Some(value) => truth(like(value, pattern)),
            None => Truth::False,
        },
        Cond::Not(c) => match eval(c, group, log) {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Failed => Truth::Failed,
        },
        Cond::And(a, b) => match eval(a, group, log) {
            Truth::True => eval(b, group, log),
            other => other,
        },
        Cond::Or(a, b) => match eval(a, group, log) {
            Truth::False => eval(b, group, log),
            other => other,
        },
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` one character (one UTF-8
/// sequence, or one byte that is not part of one). Iterative, backtracking
/// only to the last `%`: linear in the value for each `%`, whatever the
/// pattern.
fn like(value: &[u8], pattern: &[u8]) -> bool {
    // The length of the character at the start of `v`.
    let char_len = |v: &[u8]| -> usize {
        let len = match v[0] {
            0xF0..=0xF4 => 4,
            0xE0..=0xEF => 3,
            0xC2..=0xDF => 2,
            _ => 1,
        };
        if v.len() >= len && std::str::from_utf8(&v[..len]).is_ok() {
            len
        } else {
            1
        }
    };
    let (mut v, mut p) = (0, 0);
    // Where to resume after the last `%`: (pattern after it, value from).
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'%') => {
                star = Some((p + 1, v));
                p += 1;
            }
            Some(b'_') => {
                v += char_len(&value[v..]);
                p += 1;
            }
            Some(&c) if c == value[v] => {
                v += 1;
                p += 1;
            }
            _ => match star {
                // Let the last `%` take one more character, and retry.
                Some((after, from)) => {
                    let next = from + char_len(&value[from..]);
                    star = Some((after, next));
                    p = after;
                    v = next;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'%')
}

fn unsupported(what: &str) -> ApiError {
    ApiError::param(format!(
        "SPL: {what} is not supported by the emulator (see sls-emulator/src/spl.rs)"
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Star,
    Pipe,
    Comma,
    Open,
    Close,
    Op(Op),
    Word(String),
    Field(Vec<u8>),
    Text(Vec<u8>),
    Number(f64),
}

fn tokenize(text: &str) -> Result<Vec<Token>, ApiError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let two = bytes.get(i..i + 2);
        let (token, len) = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'*' => (Token::Star, 1),
            b'|' => (Token::Pipe, 1),
            b',' => (Token::Comma, 1),
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            b'=' => (Token::Op(Op::Eq), 1),
            b'!' if two == Some(b"!=") => (Token::Op(Op::Ne), 2),
            b'<' if two == Some(b"<=") => (Token::Op(Op::Le), 2),
            b'<' if two == Some(b"<>") => (Token::Op(Op::Ne), 2),
            b'<' => (Token::Op(Op::Lt), 1),
            b'>' if two == Some(b">=") => (Token::Op(Op::Ge), 2),
            b'>' => (Token::Op(Op::Gt), 1),
            b'"' | b'\'' => {
                let (quoted, len) = quoted(&bytes[i..], b)?;
                let token = if b == b'"' {
                    Token::Field(quoted)
                } else {
                    Token::Text(quoted)
                };
                (token, len)
            }
            b'-' | b'0'..=b'9' => {
                let len = bytes[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_digit() || *c == b'.'))
                    .map_or(bytes.len() - i, |n| n + 1);
                let n = text[i..i + len]
                    .parse::<f64>()
                    .map_err(|_| unsupported(&format!("the number {:?}", &text[i..i + len])))?;
                (Token::Number(n), len)
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let len = bytes[i..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
                    .unwrap_or(bytes.len() - i);
                (Token::Word(text[i..i + len].to_owned()), len)
            }
            _ => {
                let rest: String = text[i..].chars().take(12).collect();
                return Err(unsupported(&format!("the text at {rest:?}")));
            }
        };
        tokens.push(token);
        i += len;
    }
    Ok(tokens)
}

/// A quoted run at the start of `bytes` (quote `q`, doubled inside): its content and the
/// bytes it took.
fn quoted(bytes: &[u8], q: u8) -> Result<(Vec<u8>, usize), ApiError> {
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match bytes.get(i) {
            None => return Err(ApiError::param("SPL: a quote is not closed")),
            Some(&c) if c == q => {
                if bytes.get(i + 1) == Some(&q) {
                    out.push(q);
                    i += 2;
                } else {
                    return Ok((out, i + 1));
                }
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// The longest statement taken.
const MAX_STATEMENT: usize = 16 << 10;

/// The most conditions, `not`s and parentheses in one statement: the
/// parser and the evaluator recurse through them.
const MAX_CONDITIONS: usize = 256;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Conditions, `not`s and parentheses read so far.
    conditions: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token) -> Result<(), ApiError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(unsupported(&format!(
                "{:?} where {t:?} was expected",
                self.peek()
            )))
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn word(&mut self) -> Result<String, ApiError> {
        match self.peek().cloned() {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(w)
            }
            other => Err(unsupported(&format!(
                "{other:?} where a stage was expected"
            ))),
        }
    }

    fn field(&mut self) -> Result<Vec<u8>, ApiError> {
        match self.peek().cloned() {
            Some(Token::Field(f)) => {
                self.at += 1;
                Ok(f)
            }
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(w.into_bytes())
            }
            other => Err(unsupported(&format!(
                "{other:?} where a field was expected"
            ))),
        }
    }

    fn fields(&mut self) -> Result<Vec<Vec<u8>>, ApiError> {
        let mut fields = vec![self.field()?];
        while self.eat(&Token::Comma) {
            fields.push(self.field()?);
        }
        Ok(fields)
    }

    fn or(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, ApiError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, ApiError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(unsupported(&format!(
                "more than {MAX_CONDITIONS} conditions, `not`s and parentheses"
            )));
        }
        if self.keyword("not") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        if self.eat(&Token::Open) {
            let c = self.or()?;
            self.expect(&Token::Close)?;
            return Ok(c);
        }
        let name = self.field()?;
        if self.keyword("like") {
            return match self.peek().cloned() {
                Some(Token::Text(t)) => {
                    self.at += 1;
                    Ok(Cond::Like(name, t))
                }
                other => Err(unsupported(&format!("{other:?} after like"))),
            };
        }
        let op = match self.peek().cloned() {
            Some(Token::Op(op)) => {
                self.at += 1;
                op
            }
            other => {
                return Err(unsupported(&format!(
                    "{other:?} where a comparison was expected"
                )))
            }
        };
        let literal = match self.peek().cloned() {
            Some(Token::Text(t)) => Literal::Text(t),
            Some(Token::Number(n)) => Literal::Number(n),
            other => {
                return Err(unsupported(&format!(
                    "{other:?} where a value was expected"
                )))
            }
        };
        self.at += 1;
        Ok(Cond::Cmp(name, op, literal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Content, LogTag};
    use prost::Message as _;

    fn log(pairs: &[(&str, &str)]) -> Log {
        Log {
            time: 1,
            contents: pairs
                .iter()
                .map(|(k, v)| Content {
                    key: k.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            time_ns: None,
        }
    }

    fn group(logs: Vec<Log>) -> bytes::Bytes {
        let g = LogGroup {
            logs,
            topic: Some(b"actiontrail_audit_event".to_vec()),
            log_tags: vec![LogTag {
                key: b"__receive_time__".to_vec(),
                value: b"7".to_vec(),
            }],
            ..LogGroup::default()
        };
        bytes::Bytes::from(g.encode_to_vec())
    }

    fn run(spl: &str, logs: Vec<Log>) -> (Vec<Vec<(String, String)>>, Applied) {
        let applied = Spl::parse(spl)
            .unwrap_or_else(|e| panic!("{spl}: {e:?}"))
            .apply(&[group(logs)])
            .expect("apply");
        let kept = applied
            .groups
            .iter()
            .flat_map(|g| LogGroup::decode(g.as_ref()).expect("group").logs)
            .map(|l| {
                l.contents
                    .iter()
                    .map(|c| {
                        (
                            String::from_utf8_lossy(&c.key).into_owned(),
                            String::from_utf8_lossy(&c.value).into_owned(),
                        )
                    })
                    .collect()
            })
            .collect();
        (kept, applied)
    }

    fn events() -> Vec<Log> {
        vec![
            log(&[
                ("event.eventRW", "Write"),
                ("event.eventName", "DeleteUser"),
                ("status", "200"),
            ]),
            log(&[
                ("event.eventRW", "Read"),
                ("event.eventName", "ListUsers"),
                ("status", "200"),
            ]),
            log(&[
                ("event.eventRW", "Write"),
                ("event.eventName", "CreateAccessKey"),
                ("status", "403"),
            ]),
            log(&[
                ("event.eventRW", "Write"),
                ("event.eventName", "PutObject"),
                ("status", "n/a"),
            ]),
        ]
    }

    #[test]
    fn where_filters_and_project_shapes() {
        let (kept, applied) = run(
            r#"* | where "event.eventRW" = 'Write' | project "event.eventName""#,
            events(),
        );
        assert_eq!(
            kept,
            vec![
                vec![("event.eventName".to_owned(), "DeleteUser".to_owned())],
                vec![("event.eventName".to_owned(), "CreateAccessKey".to_owned())],
                vec![("event.eventName".to_owned(), "PutObject".to_owned())],
            ]
        );
        assert_eq!((applied.scanned_lines, applied.result_lines), (4, 3));
        assert_eq!(applied.failed_lines, 0);
    }

    #[test]
    fn numbers_like_not_and_or_and_failed_lines() {
        let names = |spl: &str| -> (Vec<String>, u64) {
            let (kept, applied) = run(spl, events());
            let names = kept
                .iter()
                .map(|l| {
                    l.iter()
                        .find(|(k, _)| k == "event.eventName")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect();
            (names, applied.failed_lines)
        };
        assert_eq!(names("* | where status > 250").0, ["CreateAccessKey"]);
        assert_eq!(names("* | where status > 250").1, 1, "n/a is not a number");
        assert_eq!(
            names(r#"* | where "event.eventName" like '%User%'"#).0,
            ["DeleteUser", "ListUsers"]
        );
        assert_eq!(
            names(r#"* | WHERE NOT "event.eventRW" = 'Write' OR status != '200'"#).0,
            ["ListUsers", "CreateAccessKey", "PutObject"]
        );
        assert_eq!(
            names(r#"* | where ("event.eventRW" = 'Write' and status = '200') or "event.eventName" like 'L_st%'"#).0,
            ["DeleteUser", "ListUsers"]
        );
        assert_eq!(names("* | where missing = 'x'").0, Vec::<String>::new());
        assert_eq!(names("* | where not missing = 'x'").0.len(), 4);
        assert_eq!(
            names("* | where __topic__ = 'actiontrail_audit_event'")
                .0
                .len(),
            4
        );
        assert_eq!(
            names(r#"* | where "__tag__:__receive_time__" = '7'"#)
                .0
                .len(),
            4
        );
        let (kept, _) = run("* | project-away status, \"event.eventRW\"", events());
        assert_eq!(
            kept[0],
            vec![("event.eventName".to_owned(), "DeleteUser".to_owned())]
        );
    }

    #[test]
    fn a_group_left_empty_is_not_returned() {
        let (kept, applied) = run("* | where status = 'none'", events());
        assert!(kept.is_empty() && applied.groups.is_empty());
        assert_eq!(applied.scanned_lines, 4);
    }

    #[test]
    fn what_the_subset_does_not_have_is_refused_by_name() {
        for spl in [
            "* | extend a = 'b'",
            "* | where a in ('x')",
            "* | where a = b",
            "status = 'x'",
            "* | where a = 'unclosed",
            "* | where upper(a) = 'X'",
        ] {
            let e = Spl::parse(spl).expect_err(spl);
            assert_eq!(e.code, "ParameterInvalid", "{spl}");
        }
        assert!(like(b"abc", b"a%c") && like(b"abc", b"___") && !like(b"abc", b"__"));
        assert!(like("日本".as_bytes(), b"_\xe6\x9c\xac") && like(b"", b"%"));
        // `%` takes whole characters: one character is not two.
        assert!(!like("日".as_bytes(), b"%__") && like("日".as_bytes(), b"%_"));
        assert!(like(b"abcabd", b"%ab_") && !like(b"abcabd", b"%abc"));
        assert!(like(b"a%b", b"a%%b") && !like(b"", b"_"));
        // Linear, not exponential: many `%` against a long value without a match.
        let pattern = format!("{}a", "%".repeat(200));
        assert!(!like(&[b'b'; 100_000], pattern.as_bytes()));
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("* | where {}x = 'y'", "not ".repeat(10_000));
        assert_eq!(
            Spl::parse(&deep).expect_err("deep").code,
            "ParameterInvalid"
        );
        let parens = format!("* | where {}x = 'y'", "(".repeat(300));
        assert_eq!(
            Spl::parse(&parens).expect_err("parens").code,
            "ParameterInvalid"
        );
    }
}
