//! The services temporary credentials come from, on the emulator's own port so that a
//! test never reaches a real one: the ECS instance metadata service (hardened mode
//! only), STS's `AssumeRoleWithOIDC`, and a credentials URI (`/_emulator/credentials`).
//! Each issues a temporary key valid for the emulator's `credential_ttl`, which the
//! signature check then accepts with its token until it expires (`server.rs`).
//!
//! Their answers are their own, not Log Service's: the metadata service answers text or
//! JSON without an envelope, STS with `RequestId`/`HostId`/`Code`/`Message`. The
//! `identity_error_rate` fault makes any of them answer `503`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};

use super::{Reply, Req};
use crate::error::ApiError;
use crate::Shared;

/// Where the metadata service's paths start.
pub(crate) const METADATA_PREFIX: &str = "/latest/";

const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// The longest session token the metadata service gives (six hours).
const MAX_TOKEN_TTL: u64 = 21_600;

/// Whether `req` is for one of these services: a metadata path, or an STS action
/// (`Action=` in the query).
pub(crate) fn is_identity(req: &Req) -> bool {
    req.path.starts_with(METADATA_PREFIX) || (req.path == "/" && req.q("Action").is_some())
}

/// Serves a metadata or STS request.
pub(crate) fn route(shared: &Shared, req: &Req) -> Reply {
    if shared.faults.identity_fails() {
        return text(503, "injected fault: service unavailable");
    }
    if req.path.starts_with(METADATA_PREFIX) {
        metadata(shared, req)
    } else {
        sts(shared, req)
    }
}

/// `GET /_emulator/credentials`: a temporary key in the form credentials URIs answer with.
pub(crate) fn credentials_uri(shared: &Shared) -> Result<Reply, ApiError> {
    if shared.faults.identity_fails() {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "injected fault: service unavailable",
        ));
    }
    let (id, key) = issue(shared);
    Ok(Reply::json(&key_json(&id, &key)))
}

fn metadata(shared: &Shared, req: &Req) -> Reply {
    if req.path == "/latest/api/token" {
        if req.method != "PUT" {
            return text(405, "the session token is asked for with PUT");
        }
        let ttl = req
            .header("x-aliyun-ecs-metadata-token-ttl-seconds")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
            return text(
                400,
                "X-aliyun-ecs-metadata-token-ttl-seconds must be 1 to 21600",
            );
        };
        let token = random();
        let mut tokens = lock(&shared.metadata_tokens);
        let now = SystemTime::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + Duration::from_secs(ttl));
        return text(200, &token);
    }
    if req.method != "GET" {
        return text(405, "method not allowed");
    }
    // Hardened mode: every read needs a live session token.
    let valid = req.header("x-aliyun-ecs-metadata-token").is_some_and(|t| {
        lock(&shared.metadata_tokens)
            .get(t)
            .is_some_and(|e| *e > SystemTime::now())
    });
    if !valid {
        return text(
            403,
            "Forbidden: a valid X-aliyun-ecs-metadata-token is required",
        );
    }
    let role = &shared.config.ecs_role;
    match req.path.strip_prefix(CREDENTIALS_PATH) {
        Some("") => text(200, role),
        Some(name) if name == role => {
            let (id, key) = issue(shared);
            let mut answer = key_json(&id, &key);
            answer["LastUpdated"] = json!(timestamp(SystemTime::now()));
            Reply::json(&answer)
        }
        _ => text(404, "Not Found"),
    }
}

/// STS, `AssumeRoleWithOIDC` only; its parameters from the query and a form body.
fn sts(shared: &Shared, req: &Req) -> Reply {
    let mut params: Vec<(String, String)> = req.query.clone();
    if req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        params.extend(
            form_urlencoded::parse(&req.body).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let refuse = |status: u16, code: &str, message: String| {
        let body = json!({
            "RequestId": random(),
            "HostId": "sts.aliyuncs.com",
            "Code": code,
            "Message": message,
        });
        let mut reply = Reply::json(&body);
        reply.status = status;
        reply
    };
    if param("Action") != "AssumeRoleWithOIDC" {
        return refuse(
            400,
            "InvalidAction.NotFound",
            format!("the emulator's STS has no action {:?}", param("Action")),
        );
    }
    for name in ["RoleArn", "OIDCProviderArn", "OIDCToken"] {
        if param(name).is_empty() {
            return refuse(400, "MissingParameter", format!("{name} is required"));
        }
    }
    let trust = &shared.config.oidc;
    if param("RoleArn") != trust.role_arn {
        return refuse(
            404,
            "EntityNotExist.Role",
            format!("the role {} does not exist", param("RoleArn")),
        );
    }
    if param("OIDCProviderArn") != trust.provider_arn {
        return refuse(
            404,
            "EntityNotExist.OIDCProvider",
            format!(
                "the OIDC provider {} does not exist",
                param("OIDCProviderArn")
            ),
        );
    }
    if param("OIDCToken") != trust.token {
        return refuse(
            400,
            "InvalidParameter.OIDCToken",
            "the OIDC token is not valid".to_owned(),
        );
    }
    let duration = param("DurationSeconds");
    if !duration.is_empty() && duration.parse::<u64>().map_or(true, |d| d < 900) {
        return refuse(
            400,
            "InvalidParameter.DurationSeconds",
            "DurationSeconds must be at least 900".to_owned(),
        );
    }
    let (id, key) = issue(shared);
    let session = param("RoleSessionName");
    Reply::json(&json!({
        "RequestId": random(),
        "AssumedRoleUser": {
            "Arn": format!("{}/{session}", trust.role_arn.replacen(":role/", ":assumed-role/", 1)),
            "AssumedRoleId": format!("3{}:{session}", &random()[..16]),
        },
        "Credentials": key_json(&id, &key),
    }))
}

/// A new temporary key, remembered so that requests signed with it are accepted until
/// it expires.
fn issue(shared: &Shared) -> (String, crate::TemporaryKey) {
    let n = shared
        .request_seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("STS.emulator{n}");
    let key = crate::TemporaryKey {
        secret: random(),
        token: random(),
        expires: SystemTime::now() + shared.config.credential_ttl,
    };
    let mut keys = lock(&shared.temporary_keys);
    let now = SystemTime::now();
    keys.retain(|_, k| k.expires > now);
    keys.insert(id.clone(), key.clone());
    (id, key)
}

/// A key in Alibaba's JSON form, the same in the three services.
fn key_json(id: &str, key: &crate::TemporaryKey) -> Value {
    json!({
        "Code": "Success",
        "AccessKeyId": id,
        "AccessKeySecret": key.secret,
        "SecurityToken": key.token,
        "Expiration": timestamp(key.expires),
    })
}

/// `2026-12-05T10:00:00Z`, as these services write times.
fn timestamp(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn random() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        content_type: Some("text/plain"),
        headers: Vec::new(),
        body: Bytes::from(body.to_owned()),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
