//! RRSA on ACK: a RAM role assumed with the pod's OIDC token.
//!
//! Kubernetes mounts a service-account token (a JWT) in a file and rotates
//! it; the RAM role trusts the cluster's OIDC provider. STS's
//! `AssumeRoleWithOIDC` exchanges the token for temporary keys without a
//! signature (the token is the proof). The file is read again at every
//! refresh, since the one read an hour ago may have been replaced. The token
//! goes in the form body, never in the URL (which proxies and access logs
//! keep).

use std::path::PathBuf;
use std::time::Duration;

use super::{exchange, KeyAnswer, Temporary};
use crate::Error;

/// Asked-for life of the keys (STS's range is 900 s to the role's maximum
/// session duration, at least an hour).
const DURATION_SECONDS: &str = "3600";

/// The role to assume and the token to assume it with.
#[derive(Debug, Clone)]
pub struct OidcRole {
    /// STS's base URL (`https://sts.aliyuncs.com`, or a regional or VPC one).
    pub sts_endpoint: String,
    /// The RAM role's ARN (`acs:ram::<account>:role/<name>`).
    pub role_arn: String,
    /// The OIDC provider's ARN (`acs:ram::<account>:oidc-provider/<name>`).
    pub provider_arn: String,
    /// The file holding the OIDC token.
    pub token_file: PathBuf,
    /// The session's name, as ActionTrail will show it.
    pub session_name: String,
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(rename = "Credentials")]
    credentials: KeyAnswer,
}

#[derive(serde::Deserialize)]
struct Refusal {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "RequestId", default)]
    request_id: String,
}

impl OidcRole {
    pub(super) fn describe(&self) -> String {
        format!(
            "AssumeRoleWithOIDC of {} at {}",
            self.role_arn, self.sts_endpoint
        )
    }

    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<Temporary, Error> {
        let from = |problem: String| Error::Credentials {
            from: self.describe(),
            problem,
        };
        // A small file read once per refresh: not worth a blocking-pool hop.
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            from(format!(
                "cannot read the OIDC token file {}: {e}",
                self.token_file.display()
            ))
        })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(from(format!(
                "the OIDC token file {} is empty",
                self.token_file.display()
            )));
        }
        let timestamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let request = http
            .post(format!("{}/", self.sts_endpoint.trim_end_matches('/')))
            .query(&[
                ("Action", "AssumeRoleWithOIDC"),
                ("Format", "JSON"),
                ("Version", "2015-04-01"),
                ("Timestamp", timestamp.as_str()),
            ])
            .form(&[
                ("RoleArn", self.role_arn.as_str()),
                ("OIDCProviderArn", self.provider_arn.as_str()),
                ("OIDCToken", token),
                ("RoleSessionName", self.session_name.as_str()),
                ("DurationSeconds", DURATION_SECONDS),
            ])
            .timeout(Duration::from_secs(10));
        let (status, body) = exchange(request, &from).await?;
        if !status.is_success() {
            let refusal: Option<Refusal> = serde_json::from_slice(&body).ok();
            return Err(from(match refusal {
                Some(r) if !r.code.is_empty() => format!(
                    "HTTP {status} {}: {} (request id {})",
                    r.code, r.message, r.request_id
                ),
                _ => format!("answered {status}"),
            }));
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| from(format!("not AssumeRoleWithOIDC's answer: {e}")))?;
        answer.credentials.into_temporary(&from)
    }
}
