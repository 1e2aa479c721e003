//! Where the AccessKey that signs requests comes from, and keeping a
//! temporary one fresh.
//!
//! A forwarder runs for months; security teams do not give it a permanent
//! AccessKey. A temporary one (an STS token: id, secret and security token,
//! valid for an hour or so) must be replaced before it expires, without a
//! restart and without a request failing on the way. [`Keyring`] holds the
//! current one and fetches the next when two thirds of its life have
//! passed, under a lock so that many shards asking at once cause one fetch.
//! A fetch that fails while the held key is still valid is logged once per
//! failure and retried at the next request; only a key that has expired
//! with no replacement fails requests (as retryable network-like errors,
//! so shards wait rather than give up). A request refused because its token
//! expired after all (a clock a little off) drops the held key and is
//! signed again with a fresh one.
//!
//! Sources today: a static AccessKey (with an optional STS token), and a
//! credentials URI that answers `GET` with Alibaba's JSON form
//! (`AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`), as the
//! Alibaba Cloud credential libraries read it from
//! `ALIBABA_CLOUD_CREDENTIALS_URI`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::{Error, Secret};

/// The credentials one request is signed with.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// AccessKey ID.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// STS security token (empty for a permanent key).
    pub security_token: Secret,
}

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// A fixed AccessKey, permanent or (with a token) temporary.
    Static(Credentials),
    /// A URL answering `GET` with temporary credentials in Alibaba's JSON
    /// form; fetched again before they expire.
    Uri(String),
}

/// The credentials held, and when to replace them.
#[derive(Debug)]
struct Held {
    credentials: Arc<Credentials>,
    /// Fetch the next at this time.
    refresh_at: SystemTime,
    /// Unusable from this time.
    expires: SystemTime,
}

/// The current credentials of a client; see the module docs.
#[derive(Debug)]
pub(crate) struct Keyring {
    source: CredentialSource,
    fixed: Option<Arc<Credentials>>,
    held: tokio::sync::Mutex<Option<Held>>,
}

/// Alibaba's credentials-URI answer.
#[derive(Deserialize)]
struct UriAnswer {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: String,
    #[serde(rename = "SecurityToken", default)]
    security_token: String,
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl Keyring {
    pub(crate) fn new(source: CredentialSource) -> Self {
        let fixed = match &source {
            CredentialSource::Static(c) => Some(Arc::new(c.clone())),
            CredentialSource::Uri(_) => None,
        };
        Self {
            source,
            fixed,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// The credentials to sign a request with now.
    pub(crate) async fn current(&self, http: &reqwest::Client) -> Result<Arc<Credentials>, Error> {
        if let Some(fixed) = &self.fixed {
            return Ok(Arc::clone(fixed));
        }
        let CredentialSource::Uri(url) = &self.source else {
            return Err(Error::Fatal("no credentials".to_owned()));
        };
        let mut held = self.held.lock().await;
        let now = SystemTime::now();
        if let Some(h) = held.as_ref().filter(|h| now < h.refresh_at) {
            return Ok(Arc::clone(&h.credentials));
        }
        match fetch(http, url).await {
            Ok((credentials, expires)) => {
                let life = expires.duration_since(now).unwrap_or_default();
                let next = Held {
                    credentials: Arc::new(credentials),
                    refresh_at: now + life * 2 / 3,
                    expires,
                };
                if held.is_some() {
                    tracing::info!(expires_in = ?life, "temporary credentials refreshed");
                } else {
                    tracing::info!(expires_in = ?life, "temporary credentials obtained");
                }
                let current = Arc::clone(&next.credentials);
                *held = Some(next);
                Ok(current)
            }
            Err(e) => match held.as_ref().filter(|h| now < h.expires) {
                Some(h) => {
                    tracing::warn!(error = %e, "cannot refresh the temporary credentials; using the ones held until they expire");
                    Ok(Arc::clone(&h.credentials))
                }
                None => Err(e),
            },
        }
    }

    /// The server refused the held credentials as expired: fetch new ones
    /// for the next request. False when they cannot be replaced (static).
    pub(crate) async fn expired(&self) -> bool {
        if self.fixed.is_some() {
            return false;
        }
        *self.held.lock().await = None;
        true
    }
}

/// GET `url` and read Alibaba's credentials answer.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<(Credentials, SystemTime), Error> {
    let what = "credentials URI".to_owned();
    let network = |cause: String| Error::Network {
        what: what.clone(),
        cause,
    };
    let response = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| network(e.without_url().to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| network(e.without_url().to_string()))?;
    if !status.is_success() {
        return Err(network(format!("answered {status}")));
    }
    let answer: UriAnswer = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
        what: what.clone(),
        problem: format!("not the credentials JSON: {e}"),
    })?;
    let expires = jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%SZ", &answer.expiration)
        .or_else(|_| answer.expiration.parse::<jiff::Timestamp>())
        .map(SystemTime::from)
        .map_err(|e| Error::Protocol {
            what,
            problem: format!("Expiration {:?}: {e}", answer.expiration),
        })?;
    Ok((
        Credentials {
            access_key_id: answer.access_key_id,
            access_key_secret: Secret::new(answer.access_key_secret),
            security_token: Secret::new(answer.security_token),
        },
        expires,
    ))
}
