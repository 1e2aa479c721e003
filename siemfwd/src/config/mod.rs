//! Configuration: the TOML file, the environment overlay, and validation.
//!
//! Two levels, as in ripgrep's `lowargs`/`hiargs`: [`Config`] is what the user
//! wrote (TOML + environment, checked for syntax and unknown keys only);
//! `pipeline::Pipeline::build` turns it into runtime objects (a built
//! formatter, loaded certificates, resolved paths) and reports semantic
//! problems with the same key paths.
//!
//! Every key can also come from the environment: `SIEMFWD_` + the key path in
//! upper case with `.` → `_` (`sink.tls.ca_file` → `SIEMFWD_SINK_TLS_CA_FILE`).
//! The seed program's variables are accepted as they are (`SLS_ENDPOINT`,
//! `SLS_AK_ID`, `SLS_AK_KEY`, `SLS_PROJECT`, `SLS_LOGSTORE`, `SLS_CG`). The
//! environment wins over the file; `SIEMFWD_*` wins over `SLS_*`. The list of
//! keys lives in [`reference::KEYS`], which also feeds the documentation test.
//!
//! Unknown keys are refused with their path (a typo must not silently fall
//! back to a default that sends logs somewhere else), and secrets are wrapped
//! in [`Secret`] so they never reach a log line, an error or `Debug` output.

pub(crate) mod reference;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::format::FormatConfig;
use crate::sink::{SinkConfig, Transport};
use crate::units::{ByteSize, HumanDuration};

pub use crate::source::file::config::{FileSourceConfig, OnMalformed};
pub use crate::source::sls::config::{AuthVersion, SlsSourceConfig, StartPosition};
pub use crate::units::Secret;

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        /// Why (in the message; not a `source()`, so a chain prints it once).
        cause: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A key is unknown or its value is not allowed.
    #[error("{key}: {problem}")]
    Key {
        /// Path of the key (`sink.address`).
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// An environment variable holds a value the key does not allow.
    #[error("{var} (for {key}): {problem}")]
    Env {
        /// The variable (`SIEMFWD_SINK_MAX_DATAGRAM`).
        var: String,
        /// The key it sets.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The whole configuration as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where records come from.
    pub source: SourceConfig,
    /// How a record becomes a syslog message.
    pub format: FormatConfig,
    /// Where messages go.
    pub sink: SinkConfig,
    /// Batching, checkpoints, shutdown.
    pub pipeline: PipelineConfig,
    /// Per-record steps between the source and the encoder, in order
    /// (`[[transforms]]`; docs/transforms.md).
    pub transforms: Vec<crate::transform::TransformConfig>,
    /// `/metrics`, `/health` and `/ready` (`[metrics]`).
    pub metrics: MetricsConfig,
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of the HTTP endpoint (`/metrics`, `/health`, `/ready`);
    /// empty: none.
    pub address: String,
}

/// Which source to read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Local NDJSON files (the embedded default).
    #[default]
    File,
    /// An Alibaba Cloud Log Service consumer group.
    Sls,
}

/// The `[source]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `file` (default) or `sls`. When unset and `SLS_ENDPOINT` is in the
    /// environment, `sls`.
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// Settings of the `file` source.
    pub file: FileSourceConfig,
    /// Settings of the `sls` source.
    pub sls: SlsSourceConfig,
}

/// The `[pipeline]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most records formatted into one batch (one write to the SIEM).
    pub batch_records: usize,
    /// Most bytes of messages in one batch.
    pub batch_bytes: ByteSize,
    /// Batches of one shard that may be in flight to the sink at once
    /// (written but not yet safe, see `sink.settle_time`): a per-shard cap
    /// (positions tracked, duplicates after a crash); memory is bounded by
    /// `max_in_flight_bytes`. Large enough by default that one busy shard
    /// can use the whole byte budget with batches of one Log Service pull
    /// (~250 KB), not only with full `batch_bytes` ones.
    pub in_flight_batches: usize,
    /// Message bytes of every shard's in-flight batches together, held until
    /// the sink answers them: the memory bound that does not grow with the
    /// shard count. A shard waits for room before it hands a batch over.
    pub max_in_flight_bytes: ByteSize,
    /// How often delivered positions are written as checkpoints (they are
    /// also written when a shard ends and on shutdown).
    pub checkpoint_interval: HumanDuration,
    /// On SIGINT/SIGTERM: how long to wait for in-flight batches to be
    /// delivered before giving up on them (they are then not committed).
    pub drain_timeout: HumanDuration,
    /// While the source is behind, one log line this often with the lag,
    /// the pace and when it will have caught up (`progress.rs`). `0s`:
    /// never.
    pub progress_interval: HumanDuration,
    /// What to do while the SIEM cannot take data: wait (the default,
    /// nothing is ever dropped) or, after `drop_after`, drop and count.
    pub when_blocked: WhenBlocked,
    /// With `when_blocked = "drop"`: how long the receiver must have been
    /// unable to take data before records are dropped. Unset: 60s. Refused
    /// with `when_blocked = "wait"`, where it would mean nothing.
    pub drop_after: Option<HumanDuration>,
}

/// The `pipeline.when_blocked` policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenBlocked {
    /// Back-pressure: stop reading until the SIEM takes data again; the
    /// source keeps the backlog. Nothing is dropped.
    #[default]
    Wait,
    /// After `drop_after` of the SIEM being unable to take data, drop
    /// records (counted, positions committed) to stay current.
    Drop,
}

/// Default of `pipeline.drop_after`.
pub const DEFAULT_DROP_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            batch_records: 1000,
            batch_bytes: ByteSize(1 << 20),
            in_flight_batches: 128,
            max_in_flight_bytes: ByteSize(20 << 20),
            checkpoint_interval: HumanDuration(std::time::Duration::from_secs(3)),
            drain_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            progress_interval: HumanDuration(std::time::Duration::from_secs(30)),
            when_blocked: WhenBlocked::Wait,
            drop_after: None,
        }
    }
}

/// Where the environment is read from; a function so tests can pass a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl SourceKind {
    /// The name `source.type` takes, which is also its table's.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Sls => "sls",
        }
    }
}

impl Config {
    /// Read `path` (if any), overlay the process environment, and check every
    /// key.
    ///
    /// # Errors
    /// [`Error`] naming the file, key or variable and what to fix.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| Error::Read {
                path: p.to_owned(),
                cause: source,
            })?,
            None => String::new(),
        };
        let name = path.map_or_else(
            || "<no config file>".to_owned(),
            |p| p.display().to_string(),
        );
        let config = Self::from_toml(&text, &name, &|k| std::env::var(k).ok())?;
        let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
        for (var, closest) in reference::unknown_vars(names) {
            match closest {
                Some(known) => tracing::warn!(variable = %var, did_you_mean = %known,
                    "not a siemfwd setting; ignored"),
                None => tracing::warn!(variable = %var, "not a siemfwd setting; ignored"),
            }
        }
        Ok(config)
    }

    /// Parse TOML `text` (named `name` in errors) and overlay `env`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_toml(text: &str, name: &str, env: EnvLookup<'_>) -> Result<Self, Error> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Syntax {
            path: name.to_owned(),
            message: syntax_message(text, &e),
        })?;
        // What the file says, before the environment adds to it: only keys
        // the user wrote are held against the chosen types (an `SLS_*`
        // variable left in a shell must not break a file-source config).
        let written = table.clone();
        reference::overlay_env(&mut table, env)?;
        expand_logstores(&mut table)?;
        let de = toml::Value::Table(table);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            Error::Key {
                key: if key == "." {
                    "<top level>".to_owned()
                } else {
                    key
                },
                problem: e.into_inner().message().to_owned(),
            }
        })?;
        config.refuse_keys_of_other_types(&written)?;
        Ok(config)
    }

    /// Refuse a key written for a source or sink type other than the one
    /// chosen (`[sink.tls]` with `type = "tcp"`, `[source.sls]` with the
    /// file source): it would be ignored without a word.
    fn refuse_keys_of_other_types(&self, written: &toml::Table) -> Result<(), Error> {
        let table =
            |t: &toml::Table, key: &str| t.get(key).and_then(toml::Value::as_table).cloned();
        if let Some(source) = table(written, "source") {
            let chosen = self.source.kind.name();
            // Every table under `[source]` is a source's (any other key was
            // refused as unknown already).
            for (other, value) in &source {
                if value.is_table() && other != chosen {
                    return Err(Error::Key {
                        key: format!("source.{other}"),
                        problem: format!(
                            "applies only to source.type = \"{other}\", and the source is \
                             \"{chosen}\": remove the table or change the type"
                        ),
                    });
                }
            }
        }
        if let Some(sink) = table(written, "sink") {
            let keys = self.sink.transport.keys();
            let chosen = self.sink.transport.name();
            if let Some(key) = sink
                .keys()
                .find(|k| k.as_str() != "type" && !keys.contains(&k.as_str()))
            {
                let which: Vec<String> = Transport::all()
                    .filter(|t| t.keys().contains(&key.as_str()))
                    .map(|t| format!("\"{}\"", t.name()))
                    .collect();
                return Err(Error::Key {
                    key: format!("sink.{key}"),
                    problem: format!(
                        "applies only to sink.type = {}, and the sink is \"{chosen}\": remove it \
                         or change the type",
                        which.join(" or ")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The keys that say where credentials come from: an entry of
/// `[[source.sls.logstores]]` that sets one of them inherits none of them
/// (its own `credentials_uri` beside the table's AccessKey would be two
/// sources).
const CREDENTIAL_KEYS: &[&str] = &[
    "credentials",
    "access_key_id",
    "access_key_secret",
    "security_token",
    "credentials_uri",
    "ecs_ram_role",
    "oidc_role_arn",
    "oidc_provider_arn",
    "oidc_token_file",
    "role_session_name",
];

/// Fill each `[[source.sls.logstores]]` entry in with the keys of
/// `[source.sls]` it does not set itself, so that an entry reads as a whole
/// `[source.sls]` table (and its errors name `source.sls.logstores[i].key`).
/// Credentials go as a whole ([`CREDENTIAL_KEYS`]). Done on the TOML, after
/// the environment: a variable such as `SLS_AK_ID` reaches every entry that
/// does not say otherwise.
fn expand_logstores(table: &mut toml::Table) -> Result<(), Error> {
    let Some(sls) = table
        .get_mut("source")
        .and_then(toml::Value::as_table_mut)
        .and_then(|s| s.get_mut("sls"))
        .and_then(toml::Value::as_table_mut)
    else {
        return Ok(());
    };
    let Some(entries) = sls.remove("logstores") else {
        return Ok(());
    };
    let toml::Value::Array(entries) = entries else {
        return Err(Error::Key {
            key: "source.sls.logstores".to_owned(),
            problem: "must be a list of tables: [[source.sls.logstores]]".to_owned(),
        });
    };
    let mut filled = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let toml::Value::Table(entry) = entry else {
            return Err(Error::Key {
                key: format!("source.sls.logstores[{i}]"),
                problem: "must be a table: [[source.sls.logstores]]".to_owned(),
            });
        };
        let mut whole = sls.clone();
        if CREDENTIAL_KEYS.iter().any(|k| entry.contains_key(*k)) {
            whole.retain(|k, _| !CREDENTIAL_KEYS.contains(&k));
        }
        whole.extend(entry);
        filled.push(toml::Value::Table(whole));
    }
    sls.insert("logstores".to_owned(), toml::Value::Array(filled));
    Ok(())
}

/// The parser's message with its line and column, without the excerpt of
/// the file that `toml`'s own `Display` prints: that line may be
/// `access_key_secret = "…` with the quote missing.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("TOML syntax error at line {line}, column {column}: {message}")
        }
        None => format!("TOML syntax error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn key_of(r: Result<Config, Error>) -> (String, String) {
        match r {
            Err(Error::Key { key, problem }) => (key, problem),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn each_logstore_entry_is_the_table_with_its_own_keys_over_it() {
        let text = r#"
[source]
type = "sls"
[source.sls]
endpoint = "127.0.0.1:1"
project = "proj"
consumer_group = "siem"
query = "* | where a = '1'"
[[source.sls.logstores]]
logstore = "audit"
[[source.sls.logstores]]
logstore = "waf"
project = "edge"
query = ""
credentials_uri = "http://127.0.0.1:2/creds"
"#;
        let env = |k: &str| (k == "SLS_AK_ID").then(|| "from-env".to_owned());
        let c = Config::from_toml(text, "t", &env).unwrap();
        let l = &c.source.sls.logstores;
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].project.as_str(), l[0].logstore.as_str()),
            ("proj", "audit")
        );
        assert_eq!(
            (l[1].project.as_str(), l[1].logstore.as_str()),
            ("edge", "waf")
        );
        assert_eq!(l[0].query, "* | where a = '1'");
        assert_eq!(l[1].query, "", "an entry's own key wins");
        assert!(l.iter().all(|e| e.consumer_group == "siem"));
        assert_eq!(l[0].access_key_id, "from-env");
        assert_eq!(
            (l[1].access_key_id.as_str(), l[1].credentials_uri.as_str()),
            ("", "http://127.0.0.1:2/creds"),
            "an entry's credentials replace the table's whole"
        );
        assert!(l.iter().all(|e| e.logstores.is_empty()));

        let (key, problem) = key_of(Config::from_toml(
            "[source.sls]\n[[source.sls.logstores]]\nlogstore = \"a\"\nprojet = \"p\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "source.sls.logstores[0].projet");
        assert!(problem.contains("unknown field"), "{problem}");
        let (key, _) = key_of(Config::from_toml(
            "[source.sls]\nlogstores = \"a,b\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "source.sls.logstores");
    }

    #[test]
    fn the_several_logstores_example_of_the_docs_reads_as_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let section = doc
            .split("#### Several logstores in one process")
            .nth(1)
            .expect("the section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("its example");
        let c = Config::from_toml(example, "docs", &no_env).unwrap();
        let l = &c.source.sls.logstores;
        let names: Vec<(&str, &str)> = l
            .iter()
            .map(|e| (e.project.as_str(), e.logstore.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("security", "actiontrail"),
                ("security", "waf-logs"),
                ("edge-sg", "access")
            ]
        );
        assert_eq!(l[2].endpoint, "ap-southeast-1.log.aliyuncs.com");
        assert!(l.iter().all(|e| e.consumer_group == "siem"));
        assert!(l[0].query.contains("eventRW") && l[1].query.is_empty());
    }

    #[test]
    fn keys_of_another_sink_type_are_refused_with_their_path() {
        let (key, problem) = key_of(Config::from_toml(
            "[sink]\ntype = \"tcp\"\n[sink.tls]\nca_file = \"ca.pem\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "sink.tls");
        assert!(
            problem.contains("\"tls\"") && problem.contains("\"tcp\""),
            "{problem}"
        );
        let (key, problem) = key_of(Config::from_toml(
            "[sink]\nmax_datagram = \"4KiB\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "sink.max_datagram");
        assert!(problem.contains("\"udp\""), "{problem}");
        let (key, _) = key_of(Config::from_toml(
            "[sink]\ntype = \"udp\"\nsettle_time = \"1s\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "sink.settle_time");
        let (key, _) = key_of(Config::from_toml(
            "[sink]\ntype = \"stdout\"\naddress = \"127.0.0.1:514\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "sink.address");
        // Each key with its own type is fine.
        for ok in [
            "[sink]\ntype = \"udp\"\naddress = \"127.0.0.1:514\"\nmax_datagram = 4096\n",
            "[sink]\ntype = \"tls\"\nsettle_time = \"1s\"\n[sink.tls]\nca_file = \"ca.pem\"\n",
            "[sink]\ntype = \"stdout\"\n",
        ] {
            assert!(Config::from_toml(ok, "t", &no_env).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_table_of_the_other_source_is_refused_but_not_a_variable_left_in_the_shell() {
        let (key, problem) = key_of(Config::from_toml(
            "[source]\ntype = \"file\"\n[source.sls]\nproject = \"p\"\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "source.sls");
        assert!(problem.contains("\"file\""), "{problem}");
        let (key, _) = key_of(Config::from_toml(
            "[source]\ntype = \"sls\"\n[source.file]\npaths = [\"a.ndjson\"]\n",
            "t",
            &no_env,
        ));
        assert_eq!(key, "source.file");
        let env = |k: &str| (k == "SLS_PROJECT").then(|| "p".to_owned());
        let c = Config::from_toml(
            "[source]\ntype = \"file\"\n[source.file]\npaths = [\"a.ndjson\"]\n",
            "t",
            &env,
        );
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = Config::from_toml("", "t", &no_env).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn unknown_key_is_refused_with_its_path() {
        let e = Config::from_toml("[sink]\nadress = \"x:1\"\n", "t", &no_env).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("sink.adress: unknown field `adress`"), "{s}");
        assert!(s.contains("address"), "lists the allowed keys: {s}");
    }

    #[test]
    fn bad_value_names_the_key_and_what_is_allowed() {
        let e = Config::from_toml("[sink]\nmax_datagram = \"2 parsecs\"\n", "t", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("sink.max_datagram: "), "{e}");
        assert!(e.contains("64KiB"), "{e}");
        let e = Config::from_toml("[sink]\ntype = \"carrier-pigeon\"\n", "t", &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("sink.type: unknown variant `carrier-pigeon`"),
            "{e}"
        );
        assert!(e.contains("`udp`"), "{e}");
    }

    #[test]
    fn syntax_error_names_the_file_and_line() {
        let e = Config::from_toml("[sink\n", "my.toml", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("my.toml: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn a_syntax_error_never_echoes_the_line_it_is_on() {
        // The quote is missing: toml's own message prints the line.
        let text = "[source.sls]\naccess_key_secret = \"hunter2\n";
        let e = Config::from_toml(text, "my.toml", &no_env)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.starts_with("my.toml: TOML syntax error at line 2"), "{e}");
        let e = Config::from_toml("token = \"abc\" extra\n", "t", &no_env)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("abc"), "{e}");
        assert!(e.contains("line 1, column "), "{e}");
    }

    #[test]
    fn facility_and_severity_may_be_numbers() {
        let c = Config::from_toml("[format]\nfacility = 3\nseverity = 6\n", "t", &no_env).unwrap();
        assert_eq!(
            (c.format.facility.as_str(), c.format.severity.as_str()),
            ("3", "6")
        );
        let e = Config::from_toml("[format]\nfacility = -1\n", "t", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("format.facility: "), "{e}");
    }

    #[test]
    fn secret_never_shows_in_debug_or_errors() {
        let c = Config::from_toml(
            "[source]\ntype = \"sls\"\n[source.sls]\naccess_key_secret = \"hunter2\"\n",
            "t",
            &no_env,
        )
        .unwrap();
        assert_eq!(c.source.sls.access_key_secret.expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = Config::from_toml(
            "[source]\ntype = \"sls\"\n[source.sls]\naccess_key_secret = 12345\n",
            "t",
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(!e.contains("12345"), "{e}");
    }
}
