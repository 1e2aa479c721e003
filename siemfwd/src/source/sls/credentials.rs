//! Which credentials sign the requests: `[source.sls]`'s keys, else the
//! lookup the Alibaba Cloud credential libraries make, read from the same
//! environment variables so that a forwarder dropped onto an ECS instance
//! or an ACK pod set up for those libraries works as they do.
//!
//! The order of the lookup (`credentials = "auto"` and none of the keys
//! below set) is theirs:
//! 1. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` (and `_SECURITY_TOKEN`);
//! 2. RRSA: `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`
//!    and `ALIBABA_CLOUD_OIDC_TOKEN_FILE` all set;
//! 3. the ECS instance's RAM role, if its metadata service answers
//!    (skipped with `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`);
//! 4. `ALIBABA_CLOUD_CREDENTIALS_URI`.
//!
//! The first two are decided here, from the environment alone; the last
//! two need the network, so they go to the client as a
//! [`client::CredentialSource::Lookup`] tried at the first request. RRSA
//! comes before the RAM role on purpose (it is the libraries' order too):
//! in an ACK pod the node's metadata service answers as well, with the
//! node's role — a wider identity than the pod's.
//!
//! A key of this table names its source outright (`credentials_uri`, an
//! `oidc_*` key, `ecs_ram_role`, the AccessKey); two sources named at once,
//! or one that contradicts `credentials`, is an error that says which keys.

use std::path::PathBuf;

use sls_client as client;

use super::config::{CredentialsFrom, SlsSourceConfig};
use super::{config_error, Error};

/// The process environment, as a function (the tests pass their own).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The credential source `cfg` (and the environment) describe.
///
/// # Errors
/// [`Error::Config`] naming the key to fix.
pub(crate) fn source(cfg: &SlsSourceConfig, env: Env) -> Result<client::CredentialSource, Error> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let set = |v: &str| !v.trim().is_empty();
    let named: Vec<(CredentialsFrom, &str)> = [
        (
            set(&cfg.access_key_id) || !cfg.access_key_secret.is_empty(),
            CredentialsFrom::AccessKey,
            "access_key_id",
        ),
        (
            set(&cfg.credentials_uri),
            CredentialsFrom::Uri,
            "credentials_uri",
        ),
        (
            set(&cfg.oidc_role_arn) || set(&cfg.oidc_provider_arn) || set(&cfg.oidc_token_file),
            CredentialsFrom::Oidc,
            "oidc_role_arn",
        ),
        (
            set(&cfg.ecs_ram_role),
            CredentialsFrom::EcsRamRole,
            "ecs_ram_role",
        ),
    ]
    .into_iter()
    .filter(|(named, _, _)| *named)
    .map(|(_, kind, key)| (kind, key))
    .collect();
    let kind = match cfg.credentials {
        CredentialsFrom::Auto => match named.as_slice() {
            [] => return lookup(cfg, &var),
            [(kind, _)] => *kind,
            [(_, first), (_, second), ..] => {
                return Err(config_error(
                    second,
                    format!(
                        "names a second credentials source beside {first}: keep one \
                         (or choose with credentials = \"...\")"
                    ),
                ))
            }
        },
        chosen => {
            if let Some((_, key)) = named.iter().find(|(kind, _)| *kind != chosen) {
                return Err(config_error(
                    key,
                    format!(
                        "belongs to another credentials source than credentials = \"{}\": \
                         remove it, or change credentials",
                        name(chosen)
                    ),
                ));
            }
            chosen
        }
    };
    match kind {
        CredentialsFrom::AccessKey | CredentialsFrom::Auto => access_key(cfg, &var),
        CredentialsFrom::Uri => uri(cfg, &var),
        CredentialsFrom::Oidc => oidc(cfg, &var),
        CredentialsFrom::EcsRamRole => ecs_ram_role(cfg, &var),
    }
}

type Var<'a> = &'a dyn Fn(&str) -> Option<String>;

fn name(kind: CredentialsFrom) -> &'static str {
    match kind {
        CredentialsFrom::Auto => "auto",
        CredentialsFrom::AccessKey => "access_key",
        CredentialsFrom::Oidc => "oidc",
        CredentialsFrom::EcsRamRole => "ecs_ram_role",
        CredentialsFrom::Uri => "uri",
    }
}

/// Nothing configured: the environment's AccessKey or RRSA, else the
/// sources that need the network, tried in order at the first request.
fn lookup(cfg: &SlsSourceConfig, var: Var) -> Result<client::CredentialSource, Error> {
    if var("ALIBABA_CLOUD_ACCESS_KEY_ID").is_some()
        || var("ALIBABA_CLOUD_ACCESS_KEY_SECRET").is_some()
    {
        return access_key(cfg, var);
    }
    let rrsa = [
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    ];
    let (set, unset): (Vec<&str>, Vec<&str>) = rrsa.iter().partition(|v| var(v).is_some());
    if unset.is_empty() {
        return oidc(cfg, var);
    }
    if !set.is_empty() {
        // A pod spec half set up for RRSA: going on would find the node's
        // metadata service, and the node's (wider) role.
        return Err(config_error(
            "oidc_role_arn",
            format!(
                "RRSA is half set up: {} set but not {}; set all three (or none)",
                set.join(", "),
                unset.join(", ")
            ),
        ));
    }
    let mut candidates = Vec::new();
    let imds_disabled =
        var("ALIBABA_CLOUD_ECS_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !imds_disabled {
        candidates.push(ecs_ram_role(cfg, var)?);
    }
    if var("ALIBABA_CLOUD_CREDENTIALS_URI").is_some() {
        candidates.push(uri(cfg, var)?);
    }
    if candidates.is_empty() {
        return Err(config_error(
            "access_key_id",
            "no credentials: set access_key_id and access_key_secret (or SLS_AK_ID and \
             SLS_AK_KEY), or choose a source with credentials = \"oidc\", \"ecs_ram_role\" \
             or \"uri\" (docs/configuration.md, \"Credentials\")",
        ));
    }
    Ok(client::CredentialSource::Lookup(candidates))
}

fn access_key(cfg: &SlsSourceConfig, var: Var) -> Result<client::CredentialSource, Error> {
    let from_table = !cfg.access_key_id.trim().is_empty() || !cfg.access_key_secret.is_empty();
    let (id, secret, token) = if from_table {
        (
            cfg.access_key_id.trim().to_owned(),
            cfg.access_key_secret.expose().to_owned(),
            cfg.security_token.expose().to_owned(),
        )
    } else {
        (
            var("ALIBABA_CLOUD_ACCESS_KEY_ID").unwrap_or_default(),
            var("ALIBABA_CLOUD_ACCESS_KEY_SECRET").unwrap_or_default(),
            var("ALIBABA_CLOUD_SECURITY_TOKEN").unwrap_or_default(),
        )
    };
    let (id_var, secret_var) = if from_table {
        ("SLS_AK_ID", "SLS_AK_KEY")
    } else {
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        )
    };
    if id.is_empty() {
        return Err(config_error(
            "access_key_id",
            format!("required (or set {id_var}) with the secret"),
        ));
    }
    if secret.is_empty() {
        return Err(config_error(
            "access_key_secret",
            format!("required (or set {secret_var}) with the AccessKey ID"),
        ));
    }
    Ok(client::CredentialSource::Static(client::Credentials {
        access_key_id: id,
        access_key_secret: client::Secret::new(secret),
        security_token: client::Secret::new(token),
    }))
}

fn uri(cfg: &SlsSourceConfig, var: Var) -> Result<client::CredentialSource, Error> {
    let url = Some(cfg.credentials_uri.trim().to_owned())
        .filter(|u| !u.is_empty())
        .or_else(|| var("ALIBABA_CLOUD_CREDENTIALS_URI"))
        .ok_or_else(|| {
            config_error(
                "credentials_uri",
                "required with credentials = \"uri\" (or set ALIBABA_CLOUD_CREDENTIALS_URI)",
            )
        })?;
    // The URL as given (a trailing `/` may matter to the server); only its
    // scheme is checked, and an error never repeats its query or user.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(config_error(
            "credentials_uri",
            format!(
                "{} must be an http:// or https:// URL",
                client::without_query(&url)
            ),
        ));
    }
    Ok(client::CredentialSource::Uri(url))
}

fn ecs_ram_role(cfg: &SlsSourceConfig, var: Var) -> Result<client::CredentialSource, Error> {
    let role = Some(cfg.ecs_ram_role.trim().to_owned())
        .filter(|r| !r.is_empty())
        .or_else(|| var("ALIBABA_CLOUD_ECS_METADATA"));
    if let Some(role) = &role {
        if !client::is_role_name(role) {
            return Err(config_error(
                "ecs_ram_role",
                format!("{role:?} is not a RAM role name (letters, digits, '.', '-'; at most 64)"),
            ));
        }
    }
    Ok(client::CredentialSource::EcsRamRole(client::EcsRamRole {
        endpoint: http_url("metadata_endpoint", cfg.metadata_endpoint.trim())?,
        role,
    }))
}

fn oidc(cfg: &SlsSourceConfig, var: Var) -> Result<client::CredentialSource, Error> {
    let either = |key: &str, value: &str, env: &str| {
        Some(value.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| var(env))
            .ok_or_else(|| config_error(key, format!("required for RRSA (or set {env})")))
    };
    let role_arn = either(
        "oidc_role_arn",
        &cfg.oidc_role_arn,
        "ALIBABA_CLOUD_ROLE_ARN",
    )?;
    let provider_arn = either(
        "oidc_provider_arn",
        &cfg.oidc_provider_arn,
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    )?;
    let token_file = either(
        "oidc_token_file",
        &cfg.oidc_token_file,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    )?;
    for (key, arn, kind) in [
        ("oidc_role_arn", &role_arn, ":role/"),
        ("oidc_provider_arn", &provider_arn, ":oidc-provider/"),
    ] {
        if !(arn.starts_with("acs:ram::") && arn.contains(kind)) {
            return Err(config_error(
                key,
                format!("{arn:?} is not an ARN of the form acs:ram::<account>{kind}<name>"),
            ));
        }
    }
    let session_name = Some(cfg.role_session_name.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| var("ALIBABA_CLOUD_ROLE_SESSION_NAME"))
        .unwrap_or_else(default_session_name);
    let session_ok = (2..=64).contains(&session_name.len())
        && session_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !session_ok {
        return Err(config_error(
            "role_session_name",
            format!("{session_name:?}: 2 to 64 letters, digits, '.', '_', '@' or '-'"),
        ));
    }
    let sts_endpoint = match cfg.sts_endpoint.trim() {
        "" => {
            let vpc = var("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let prefix = if vpc { "sts-vpc" } else { "sts" };
            match var("ALIBABA_CLOUD_STS_REGION") {
                Some(region) => format!("https://{prefix}.{region}.aliyuncs.com"),
                None => "https://sts.aliyuncs.com".to_owned(),
            }
        }
        host if !host.contains("://") => format!("https://{host}"),
        url => url.to_owned(),
    };
    Ok(client::CredentialSource::Oidc(client::OidcRole {
        sts_endpoint: http_url("sts_endpoint", &sts_endpoint)?,
        role_arn,
        provider_arn,
        token_file: PathBuf::from(token_file),
        session_name,
    }))
}

/// `siemfwd-{hostname}`, cut to what STS accepts.
fn default_session_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut name: String = format!("siemfwd-{host}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

fn http_url(key: &str, url: &str) -> Result<String, Error> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(config_error(
            key,
            format!("{url:?} must be an http:// or https:// URL"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Secret;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn describe(cfg: &SlsSourceConfig, vars: &[(&str, &str)]) -> Result<String, String> {
        source(cfg, &env(vars))
            .map(|s| s.describe())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_table_s_keys_name_their_source() {
        let mut cfg = SlsSourceConfig {
            access_key_id: "AK".to_owned(),
            access_key_secret: Secret::from("s"),
            ..SlsSourceConfig::default()
        };
        // The table wins over anything in the environment.
        let rrsa = [
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "acs:ram::1:oidc-provider/p",
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/t"),
        ];
        assert_eq!(describe(&cfg, &rrsa).as_deref(), Ok("a static AccessKey"));
        cfg.credentials_uri = "http://127.0.0.1:1/creds".to_owned();
        let two = describe(&cfg, &[]).expect_err("two sources");
        assert!(
            two.contains("credentials_uri") && two.contains("access_key_id"),
            "{two}"
        );
        cfg.access_key_id.clear();
        cfg.access_key_secret = Secret::default();
        assert_eq!(
            describe(&cfg, &[]).as_deref(),
            Ok("the credentials URI http://127.0.0.1:1/creds")
        );
        cfg.credentials = CredentialsFrom::EcsRamRole;
        let contradicts = describe(&cfg, &[]).expect_err("contradiction");
        assert!(
            contradicts.starts_with("source.sls.credentials_uri: belongs to another"),
            "{contradicts}"
        );
        cfg.credentials_uri.clear();
        cfg.metadata_endpoint = "http://127.0.0.1:9".to_owned();
        assert_eq!(
            describe(&cfg, &[("ALIBABA_CLOUD_ECS_METADATA", "fwd")]).as_deref(),
            Ok("the ECS RAM role \"fwd\" at http://127.0.0.1:9")
        );
        cfg.ecs_ram_role = "bad/role".to_owned();
        assert!(describe(&cfg, &[])
            .expect_err("bad role")
            .contains("not a RAM role name"));
    }

    #[test]
    fn the_lookup_follows_the_alibaba_libraries_order() {
        let cfg = SlsSourceConfig {
            metadata_endpoint: "http://127.0.0.1:9".to_owned(),
            ..SlsSourceConfig::default()
        };
        let key = [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "AK"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "t"),
        ];
        let rrsa = [
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "acs:ram::1:oidc-provider/p",
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/token"),
            ("ALIBABA_CLOUD_STS_REGION", "cn-hangzhou"),
        ];
        let uri = [(
            "ALIBABA_CLOUD_CREDENTIALS_URI",
            "http://127.0.0.1:2/c?secret=x",
        )];
        let all: Vec<(&str, &str)> = key.iter().chain(&rrsa).chain(&uri).copied().collect();
        assert_eq!(describe(&cfg, &all).as_deref(), Ok("a static STS token"));
        let no_key: Vec<(&str, &str)> = rrsa.iter().chain(&uri).copied().collect();
        assert_eq!(
            describe(&cfg, &no_key).as_deref(),
            Ok("AssumeRoleWithOIDC of acs:ram::1:role/r at https://sts.cn-hangzhou.aliyuncs.com")
        );
        // Without RRSA, the network sources, the URI's query string never
        // printed.
        assert_eq!(
            describe(&cfg, &uri).as_deref(),
            Ok(
                "the first of: the ECS instance's RAM role at http://127.0.0.1:9, \
                the credentials URI http://127.0.0.1:2/c"
            )
        );
        let disabled: Vec<(&str, &str)> = uri
            .iter()
            .copied()
            .chain([("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "TRUE")])
            .collect();
        assert_eq!(
            describe(&cfg, &disabled).as_deref(),
            Ok("the first of: the credentials URI http://127.0.0.1:2/c")
        );
        let half = describe(&cfg, &rrsa[..2]).expect_err("half set up");
        assert!(
            half.starts_with("source.sls.oidc_role_arn: RRSA is half set up")
                && half.contains("not ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
            "{half}"
        );
        let secret_only =
            describe(&cfg, &[("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s")]).expect_err("no id");
        assert!(
            secret_only.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"),
            "{secret_only}"
        );
        let nothing = describe(&cfg, &[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")])
            .expect_err("nothing");
        assert!(
            nothing.starts_with("source.sls.access_key_id: no credentials"),
            "{nothing}"
        );
    }

    #[test]
    fn rrsa_settings_are_checked_and_named() {
        let mut cfg = SlsSourceConfig {
            credentials: CredentialsFrom::Oidc,
            ..SlsSourceConfig::default()
        };
        let missing = describe(&cfg, &[]).expect_err("missing");
        assert_eq!(
            missing,
            "source.sls.oidc_role_arn: required for RRSA (or set ALIBABA_CLOUD_ROLE_ARN)"
        );
        cfg.oidc_role_arn = "arn:aws:iam::1:role/r".to_owned();
        cfg.oidc_provider_arn = "acs:ram::1:oidc-provider/p".to_owned();
        cfg.oidc_token_file = "/t".to_owned();
        assert!(describe(&cfg, &[])
            .expect_err("arn")
            .contains("acs:ram::<account>:role/<name>"));
        cfg.oidc_role_arn = "acs:ram::1:role/r".to_owned();
        cfg.role_session_name = "has space".to_owned();
        assert!(describe(&cfg, &[])
            .expect_err("session")
            .starts_with("source.sls.role_session_name"));
        cfg.role_session_name.clear();
        cfg.sts_endpoint = "sts-vpc.cn-shanghai.aliyuncs.com".to_owned();
        assert_eq!(
            describe(&cfg, &[]).as_deref(),
            Ok("AssumeRoleWithOIDC of acs:ram::1:role/r at https://sts-vpc.cn-shanghai.aliyuncs.com")
        );
        assert!(default_session_name().starts_with("siemfwd-"));
    }
}
