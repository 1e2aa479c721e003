//! The ECS instance RAM role, from the instance metadata service.
//!
//! Three requests, each with a short timeout (the service is on the
//! instance's own link; off ECS it does not answer at all, and a lookup
//! should move on quickly):
//! 1. `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds`
//!    — a session token. Always: an instance whose metadata service is
//!    hardened refuses requests without one, and every instance accepts
//!    them, so siemfwd never falls back to the unhardened form (one that
//!    a server-side request forgery could reach).
//! 2. `GET /latest/meta-data/ram/security-credentials/` — the role's name,
//!    unless it is configured.
//! 3. `GET /latest/meta-data/ram/security-credentials/<role>` — the keys,
//!    `Code: "Success"` and an `Expiration`.

use std::time::Duration;

use super::{exchange, KeyAnswer, Temporary};
use crate::Error;

/// How long each request to the metadata service may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The session token's life; siemfwd asks for one per refresh, so short.
const TOKEN_TTL_SECONDS: &str = "300";

const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// Where the metadata service is, and the role if it is named.
#[derive(Debug, Clone)]
pub struct EcsRamRole {
    /// The service's base URL (`http://100.100.100.200` on ECS).
    pub endpoint: String,
    /// The role's name; `None`: the one attached to the instance.
    pub role: Option<String>,
}

#[derive(serde::Deserialize)]
struct RoleAnswer {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(flatten)]
    keys: KeyAnswer,
}

impl EcsRamRole {
    pub(super) fn describe(&self) -> String {
        match &self.role {
            Some(role) => format!("the ECS RAM role {role:?} at {}", self.endpoint),
            None => format!("the ECS instance's RAM role at {}", self.endpoint),
        }
    }

    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<Temporary, Error> {
        let from = |problem: String| Error::Credentials {
            from: self.describe(),
            problem,
        };
        let base = self.endpoint.trim_end_matches('/');
        let (status, token) = exchange(
            http.put(format!("{base}/latest/api/token"))
                .header("X-aliyun-ecs-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
                .timeout(TIMEOUT),
            &from,
        )
        .await?;
        if !status.is_success() {
            return Err(from(format!("session token: answered {status}")));
        }
        let token = std::str::from_utf8(&token)
            .map(str::trim)
            .map_err(|_| from("session token: not text".to_owned()))?;
        let get = |path: String| {
            http.get(format!("{base}{path}"))
                .header("X-aliyun-ecs-metadata-token", token)
                .timeout(TIMEOUT)
        };
        let role = match &self.role {
            Some(role) => role.clone(),
            None => {
                let (status, body) = exchange(get(CREDENTIALS_PATH.to_owned()), &from).await?;
                if status == reqwest::StatusCode::NOT_FOUND {
                    return Err(from("no RAM role is attached to this instance".to_owned()));
                }
                if !status.is_success() {
                    return Err(from(format!("role name: answered {status}")));
                }
                let text = String::from_utf8_lossy(&body);
                let role = text.lines().next().unwrap_or_default().trim().to_owned();
                if !is_role_name(&role) {
                    let shown: String = role.chars().take(64).collect();
                    return Err(from(format!("role name: {shown:?} is not a RAM role name")));
                }
                role
            }
        };
        let (status, body) = exchange(get(format!("{CREDENTIALS_PATH}{role}")), &from).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(from(format!("no RAM role {role:?} on this instance")));
        }
        if !status.is_success() {
            return Err(from(format!("answered {status}")));
        }
        let answer: RoleAnswer = serde_json::from_slice(&body)
            .map_err(|e| from(format!("not the credentials JSON: {e}")))?;
        if answer.code != "Success" {
            return Err(from(format!("Code {:?}, not \"Success\"", answer.code)));
        }
        answer.keys.into_temporary(&from)
    }
}

/// A RAM role name as RAM allows it (letters, digits, `.`, `-`; at most 64):
/// it goes into a URL path, so nothing else may.
pub fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}
