//! The list of every configuration key, and the environment overlay built on
//! it.
//!
//! One table serves three purposes: it maps environment variables to keys
//! (an environment variable name alone cannot tell `sink.tls.ca_file` from
//! `sink.tls_ca.file`), it says how to read a variable's text (a number, a
//! list, …), and a test checks that the deserializer accepts each key and that
//! `docs/configuration.md` documents each one, so the reference cannot drift
//! from the code.

use super::Error;

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Taken as it is.
    Str,
    /// A secret string (never echoed).
    Secret,
    /// A whole number.
    Int,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    Bool,
    /// A list of strings, comma-separated in the environment.
    List,
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Dotted path in the TOML file.
    pub path: &'static str,
    /// How its environment variable is read.
    pub kind: Kind,
    /// An example value as TOML: the tests hold every key to it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
    /// A seed-program variable that also sets it.
    pub seed_env: Option<&'static str>,
}

const fn key(path: &'static str, kind: Kind, example: &'static str) -> Key {
    Key {
        path,
        kind,
        example,
        seed_env: None,
    }
}

const fn seed(path: &'static str, kind: Kind, example: &'static str, var: &'static str) -> Key {
    Key {
        path,
        kind,
        example,
        seed_env: Some(var),
    }
}

use Kind::{Bool, Int, List, Secret, Str};

/// Every key siemfwd reads.
pub(crate) const KEYS: &[Key] = &[
    key("source.type", Str, r#""file""#),
    key(
        "source.file.paths",
        List,
        r#"["examples/logs/actiontrail.ndjson"]"#,
    ),
    key("source.file.state_dir", Str, r#""/var/lib/siemfwd""#),
    key("source.file.on_malformed", Str, r#""skip""#),
    key("source.file.follow", Bool, "true"),
    key("source.file.poll_interval", Str, r#""500ms""#),
    key("source.file.max_line", Str, r#""16MiB""#),
    seed(
        "source.sls.endpoint",
        Str,
        r#""cn-hangzhou.log.aliyuncs.com""#,
        "SLS_ENDPOINT",
    ),
    seed("source.sls.access_key_id", Str, r#""LTAI...""#, "SLS_AK_ID"),
    seed(
        "source.sls.access_key_secret",
        Secret,
        r#""...""#,
        "SLS_AK_KEY",
    ),
    seed("source.sls.project", Str, r#""my-project""#, "SLS_PROJECT"),
    seed(
        "source.sls.logstore",
        Str,
        r#""actiontrail""#,
        "SLS_LOGSTORE",
    ),
    seed("source.sls.consumer_group", Str, r#""siem""#, "SLS_CG"),
    key("source.sls.security_token", Secret, r#""...""#),
    key("source.sls.auth_version", Str, r#""v4""#),
    key("source.sls.region", Str, r#""cn-hangzhou""#),
    key("source.sls.consumer_name", Str, r#""fwd-1""#),
    key("source.sls.create_group", Bool, "true"),
    key("source.sls.in_order", Bool, "false"),
    key("source.sls.heartbeat_interval", Str, r#""20s""#),
    key("source.sls.heartbeat_timeout", Str, r#""40s""#),
    key("source.sls.fetch_interval", Str, r#""1s""#),
    key("source.sls.poll_interval", Str, r#""100ms""#),
    key("source.sls.lag_interval", Str, r#""15s""#),
    key("source.sls.max_fetch_log_groups", Int, "1000"),
    key("source.sls.fetch_bytes", Str, r#""256KiB""#),
    key("source.sls.prefetch_bytes", Str, r#""8MiB""#),
    key("source.sls.start_position", Str, r#""begin""#),
    key(
        "source.sls.start_time",
        Str,
        r#""2026-01-01T00:00:00+08:00""#,
    ),
    key("source.sls.compression", Str, r#""lz4""#),
    key("source.sls.request_timeout", Str, r#""60s""#),
    key("source.sls.pool_max_idle", Int, "32"),
    key(
        "source.sls.query",
        Str,
        r#""* | where \"event.eventRW\" = 'Write'""#,
    ),
    key("source.sls.processor", Str, r#""siem-audit""#),
    key(
        "source.sls.credentials_uri",
        Str,
        r#""http://127.0.0.1:8080/credentials""#,
    ),
    key("source.sls.credentials", Str, r#""ecs_ram_role""#),
    key("source.sls.ecs_ram_role", Str, r#""siemfwd-forwarder""#),
    key(
        "source.sls.metadata_endpoint",
        Str,
        r#""http://100.100.100.200""#,
    ),
    key(
        "source.sls.oidc_role_arn",
        Str,
        r#""acs:ram::1234567890123456:role/siemfwd""#,
    ),
    key(
        "source.sls.oidc_provider_arn",
        Str,
        r#""acs:ram::1234567890123456:oidc-provider/ack-rrsa-c123""#,
    ),
    key(
        "source.sls.oidc_token_file",
        Str,
        r#""/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token""#,
    ),
    key("source.sls.role_session_name", Str, r#""siemfwd-fwd-1""#),
    key(
        "source.sls.sts_endpoint",
        Str,
        r#""https://sts-vpc.cn-hangzhou.aliyuncs.com""#,
    ),
    key("format.rfc", Str, r#""rfc5424""#),
    key("format.facility", Str, r#""local3""#),
    key("format.severity", Str, r#""info""#),
    key("format.hostname", Str, r#""forwarder-1.example.com""#),
    key("format.app_name", Str, r#""actiontrail""#),
    key("format.procid", Str, r#""-""#),
    key("format.msgid", Str, r#""audit""#),
    key("format.bom", Bool, "false"),
    key("format.timezone", Str, r#""Asia/Shanghai""#),
    key("format.body.type", Str, r#""kv""#),
    key("format.body.separator", Str, r#""||""#),
    // `cef` and `leef` (their `fields` and `custom` maps are tables, set in
    // the file only).
    key("format.body.version", Str, r#""2.0""#),
    key("format.body.vendor", Str, r#""Alibaba Cloud""#),
    key("format.body.product", Str, r#""ActionTrail""#),
    key("format.body.device_version", Str, r#""1""#),
    key("format.body.signature_id", Str, r#""{event.eventName}""#),
    key("format.body.name", Str, r#""{event.eventName}""#),
    key("format.body.severity_field", Str, r#""cef_severity""#),
    key("format.body.product_version", Str, r#""1""#),
    key("format.body.event_id", Str, r#""{event.eventName}""#),
    key("format.body.delimiter", Str, r#""^""#),
    key("format.body.rest", Str, r#""keep""#),
    key("format.body.rest_prefix", Str, r#""ali""#),
    key("format.structured_data.id", Str, r#""siemfwd@32473""#),
    key(
        "format.structured_data.fields",
        List,
        r#"["eventName", "sourceIpAddress"]"#,
    ),
    key("format.exclude_fields", List, r#"["__tag__:__pack_id__"]"#),
    key("format.newline", Str, r#""escape""#),
    key("sink.type", Str, r#""tls""#),
    key("sink.address", Str, r#""siem.example.com:6514""#),
    key("sink.framing", Str, r#""octet_counting""#),
    key("sink.connect_timeout", Str, r#""10s""#),
    key("sink.write_timeout", Str, r#""30s""#),
    key("sink.backoff_initial", Str, r#""200ms""#),
    key("sink.backoff_max", Str, r#""30s""#),
    key("sink.settle_time", Str, r#""200ms""#),
    key("sink.max_datagram", Str, r#""2048""#),
    key("sink.max_message", Str, r#""64KiB""#),
    key("sink.tls.ca_file", Str, r#""/etc/siemfwd/ca.pem""#),
    key("sink.tls.cert_file", Str, r#""/etc/siemfwd/client.pem""#),
    key("sink.tls.key_file", Str, r#""/etc/siemfwd/client.key""#),
    key("sink.tls.server_name", Str, r#""siem.example.com""#),
    key("sink.tls.insecure_skip_verify", Bool, "false"),
    key("sink.relp.window", Int, "16384"),
    key("metrics.address", Str, r#""127.0.0.1:9598""#),
    key("sink.relp.tls", Bool, "true"),
    key("pipeline.batch_records", Int, "1000"),
    key("pipeline.batch_bytes", Str, r#""1MiB""#),
    key("pipeline.in_flight_batches", Int, "128"),
    key("pipeline.max_in_flight_bytes", Str, r#""20MiB""#),
    key("pipeline.checkpoint_interval", Str, r#""3s""#),
    key("pipeline.drain_timeout", Str, r#""10s""#),
    key("pipeline.progress_interval", Str, r#""30s""#),
    key("pipeline.when_blocked", Str, r#""drop""#),
    key("pipeline.drop_after", Str, r#""60s""#),
];

/// The environment variable for a key: `SIEMFWD_` + path, upper case, `.` → `_`.
pub(crate) fn env_name(path: &str) -> String {
    let mut s = String::from("SIEMFWD_");
    s.extend(path.chars().map(|c| match c {
        '.' => '_',
        c => c.to_ascii_uppercase(),
    }));
    s
}

/// `SIEMFWD_*` variables that are not keys: the command line's own, and the
/// project's test scripts' (`scripts/test`, the integration tests), which
/// the processes they start inherit.
const OTHER_VARS: &[&str] = &[
    "SIEMFWD_CONFIG",
    "SIEMFWD_LOG",
    "SIEMFWD_LOG_FILE",
    "SIEMFWD_LOG_FORMAT",
    "SIEMFWD_WORKER_THREADS",
];
const SCRIPT_PREFIXES: &[&str] = &["SIEMFWD_TEST_", "SIEMFWD_SKIP_", "SIEMFWD_KEEP_"];

/// The `SIEMFWD_*` names in `names` that set nothing, each with the known
/// name closest to it when one is close (a typo): they would be ignored
/// without a word, as a misspelled key in the file is not.
pub(super) fn unknown_vars<I: IntoIterator<Item = String>>(
    names: I,
) -> Vec<(String, Option<String>)> {
    let known: Vec<String> = KEYS
        .iter()
        .map(|k| env_name(k.path))
        .chain(OTHER_VARS.iter().map(|v| (*v).to_owned()))
        .collect();
    let mut unknown: Vec<(String, Option<String>)> = names
        .into_iter()
        .filter(|n| n.starts_with("SIEMFWD_"))
        .filter(|n| !SCRIPT_PREFIXES.iter().any(|p| n.starts_with(p)))
        .filter(|n| !known.contains(n))
        .map(|n| {
            let closest = known
                .iter()
                .map(|k| (edit_distance(&n, k), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.clone());
            (n, closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Levenshtein distance, for suggestions between short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Set every key whose variable is in `env` into `table`, `SIEMFWD_*` over
/// seed variables over the file. Also: a seed `SLS_ENDPOINT` with no explicit
/// `source.type` selects the `sls` source, as the seed program would.
pub(super) fn overlay_env(table: &mut toml::Table, env: super::EnvLookup<'_>) -> Result<(), Error> {
    let type_given = get(table, "source.type").is_some() || env(&env_name("source.type")).is_some();
    for k in KEYS {
        let var = env_name(k.path);
        let (var, text) = match env(&var) {
            Some(v) => (var, v),
            None => match k.seed_env.and_then(|s| env(s).map(|v| (s.to_owned(), v))) {
                Some(found) => found,
                None => continue,
            },
        };
        let value = parse(k, &text).map_err(|problem| Error::Env {
            var: var.clone(),
            key: k.path.to_owned(),
            problem,
        })?;
        set(table, k.path, value).map_err(|problem| Error::Env {
            var,
            key: k.path.to_owned(),
            problem,
        })?;
    }
    if !type_given && env("SLS_ENDPOINT").is_some() {
        set(table, "source.type", toml::Value::String("sls".to_owned())).map_err(|problem| {
            Error::Key {
                key: "source.type".to_owned(),
                problem,
            }
        })?;
    }
    Ok(())
}

fn parse(k: &Key, text: &str) -> Result<toml::Value, String> {
    Ok(match k.kind {
        Str | Secret => toml::Value::String(text.to_owned()),
        Int => toml::Value::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        Bool => toml::Value::Boolean(match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            _ => return Err(format!("{text:?} is not a boolean; use true or false")),
        }),
        List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

fn get<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut parts = path.split('.');
    let mut cur = table.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_table()?.get(p)?;
    }
    Some(cur)
}

fn set(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().ok_or_else(|| "empty key".to_owned())?;
    let mut cur = table;
    let mut walked = String::new();
    for p in parts {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(p);
        cur = cur
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{walked} in the config file is not a table"))?;
    }
    cur.insert(last.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Config, SourceKind};

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn every_key_is_accepted_with_its_example_value() {
        // Each key of a source or sink type with that type chosen (a key of
        // another type is refused), beside every key that belongs to no
        // type (some tables need their siblings: `format.body.type`).
        // Unknown keys are refused, so a key listed here but missing from
        // the structs fails this test.
        let example = |k: &Key| -> toml::Value {
            let v: toml::Table = toml::from_str(&format!("v = {}", k.example)).unwrap();
            v["v"].clone()
        };
        let typed = |path: &str| {
            path.starts_with("source.")
                || path.starts_with("sink.")
                || (path.starts_with("format.body.") && path != "format.body.type")
        };
        // The body that reads a `format.body` key (the first, when several do).
        let body_of = |key: &str| match key {
            "separator" => "kv",
            "version" | "delimiter" | "product_version" | "event_id" => "leef",
            _ => "cef",
        };
        for k in KEYS {
            let mut table = toml::Table::new();
            for other in KEYS.iter().filter(|o| !typed(o.path)) {
                set(&mut table, other.path, example(other)).unwrap();
            }
            set(&mut table, k.path, example(k)).unwrap();
            let source_type = if k.path.starts_with("source.sls.") {
                Some("sls")
            } else if k.path.starts_with("source.file.") {
                Some("file")
            } else {
                None
            };
            if let Some(t) = source_type {
                set(&mut table, "source.type", toml::Value::String(t.into())).unwrap();
            }
            if let Some(key) = k.path.strip_prefix("format.body.").filter(|k| *k != "type") {
                set(
                    &mut table,
                    "format.body.type",
                    toml::Value::String(body_of(key).into()),
                )
                .unwrap();
                if key == "delimiter" {
                    set(
                        &mut table,
                        "format.body.version",
                        toml::Value::String("2.0".into()),
                    )
                    .unwrap();
                }
            }
            if let Some(key) = k
                .path
                .strip_prefix("sink.")
                .filter(|_| k.path != "sink.type")
            {
                let key = key.split('.').next().unwrap_or(key);
                let transport = crate::sink::Transport::all()
                    .find(|t| t.keys().contains(&key))
                    .unwrap_or_else(|| panic!("no sink type reads sink.{key}"));
                set(
                    &mut table,
                    "sink.type",
                    toml::Value::String(transport.name().into()),
                )
                .unwrap();
            }
            let text = toml::to_string(&table).unwrap();
            if let Err(e) = Config::from_toml(&text, "t", &|_| None) {
                panic!("{}: example refused: {e}\n{text}", k.path);
            }
        }
    }

    #[test]
    fn unknown_siemfwd_variables_are_found_with_the_closest_name() {
        let found = unknown_vars(
            [
                "SIEMFWD_SINK_ADRESS",
                "SIEMFWD_SINK_ADDRESS",
                "SIEMFWD_LOG",
                "SIEMFWD_TEST_RATE",
                "SIEMFWD_WHATEVER_ELSE_ENTIRELY",
                "HOME",
            ]
            .map(String::from),
        );
        assert_eq!(
            found,
            [
                (
                    "SIEMFWD_SINK_ADRESS".to_owned(),
                    Some("SIEMFWD_SINK_ADDRESS".to_owned())
                ),
                ("SIEMFWD_WHATEVER_ELSE_ENTIRELY".to_owned(), None),
            ]
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        for k in KEYS {
            assert!(
                doc.contains(&format!("`{}`", k.path)),
                "docs/configuration.md lacks `{}`",
                k.path
            );
        }
    }

    #[test]
    fn env_variable_names_follow_the_key_path() {
        assert_eq!(env_name("sink.tls.ca_file"), "SIEMFWD_SINK_TLS_CA_FILE");
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = env_of(&[
            ("SIEMFWD_SINK_ADDRESS", "10.1.2.3:6514"),
            ("SIEMFWD_PIPELINE_BATCH_RECORDS", "77"),
            ("SIEMFWD_SOURCE_FILE_PATHS", "a.ndjson, b.ndjson"),
            ("SIEMFWD_FORMAT_BOM", "yes"),
        ]);
        let c = Config::from_toml("[sink]\naddress = \"127.0.0.1:1\"\n", "t", &env).unwrap();
        assert_eq!(c.sink.address, "10.1.2.3:6514");
        assert_eq!(c.pipeline.batch_records, 77);
        assert_eq!(c.source.file.paths, vec!["a.ndjson", "b.ndjson"]);
        assert!(c.format.bom);
    }

    #[test]
    fn seed_variables_are_accepted_and_select_the_sls_source() {
        let env = env_of(&[
            ("SLS_ENDPOINT", "cn-hangzhou.log.aliyuncs.com"),
            ("SLS_AK_ID", "id"),
            ("SLS_AK_KEY", "very-secret"),
            ("SLS_PROJECT", "p"),
            ("SLS_LOGSTORE", "l"),
            ("SLS_CG", "g"),
        ]);
        let c = Config::from_toml("", "t", &env).unwrap();
        assert_eq!(c.source.kind, SourceKind::Sls);
        assert_eq!(c.source.sls.endpoint, "cn-hangzhou.log.aliyuncs.com");
        assert_eq!(c.source.sls.access_key_secret.expose(), "very-secret");
        assert_eq!(c.source.sls.consumer_group, "g");
        // An explicit type wins, and SIEMFWD_* wins over SLS_*.
        let env = env_of(&[
            ("SLS_PROJECT", "seed"),
            ("SIEMFWD_SOURCE_SLS_PROJECT", "ours"),
        ]);
        let c = Config::from_toml("[source]\ntype = \"file\"\n", "t", &env).unwrap();
        assert_eq!(c.source.kind, SourceKind::File);
        assert_eq!(c.source.sls.project, "ours");
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        let env = env_of(&[("SIEMFWD_PIPELINE_BATCH_RECORDS", "many")]);
        let e = Config::from_toml("", "t", &env).unwrap_err().to_string();
        assert!(
            e.starts_with("SIEMFWD_PIPELINE_BATCH_RECORDS (for pipeline.batch_records)"),
            "{e}"
        );
    }

    #[test]
    fn secret_from_the_environment_is_not_echoed_on_error() {
        let env = env_of(&[("SLS_AK_KEY", "s3cr3t")]);
        let e = Config::from_toml("[source]\nsls = 5\n", "t", &env)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
