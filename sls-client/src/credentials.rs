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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A credentials URI on loopback answering each request with the next of
    /// `answers` (status, body); returns its URL and how many it answered.
    fn serve(answers: Vec<(u16, String)>) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/creds", listener.local_addr().expect("addr"));
        let served = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&served);
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut conn, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        (url, served)
    }

    fn answer(id: &str, expires: SystemTime) -> (u16, String) {
        let expiration = jiff::Timestamp::try_from(expires)
            .expect("time")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        (
            200,
            format!(
                r#"{{"Code":"Success","AccessKeyId":"{id}","AccessKeySecret":"s","SecurityToken":"t","Expiration":"{expiration}"}}"#
            ),
        )
    }

    #[tokio::test]
    async fn keys_are_fetched_once_then_replaced_when_due_and_kept_while_a_refresh_fails() {
        let hour = SystemTime::now() + Duration::from_secs(3600);
        let (url, served) = serve(vec![
            answer("STS.1", hour),
            answer("STS.2", hour),
            (500, "down".to_owned()),
        ]);
        let http = reqwest::Client::new();
        let ring = Keyring::new(CredentialSource::Uri(url));
        assert_eq!(
            ring.current(&http).await.expect("first").access_key_id,
            "STS.1"
        );
        // Fresh: no second fetch.
        assert_eq!(
            ring.current(&http).await.expect("held").access_key_id,
            "STS.1"
        );
        assert_eq!(served.load(Ordering::SeqCst), 1);
        // Due for replacement: the next key.
        let due = |ring: &Keyring| {
            let mut held = ring.held.try_lock().expect("unlocked");
            if let Some(h) = held.as_mut() {
                h.refresh_at = SystemTime::now() - Duration::from_secs(1);
            }
        };
        due(&ring);
        assert_eq!(
            ring.current(&http).await.expect("refresh").access_key_id,
            "STS.2"
        );
        // A refresh that fails keeps the valid key ...
        due(&ring);
        assert_eq!(
            ring.current(&http).await.expect("kept").access_key_id,
            "STS.2"
        );
        assert_eq!(served.load(Ordering::SeqCst), 3);
        // ... and the server saying it expired drops it: the next request
        // fetches again (here the URI is gone: an error, not a stale key).
        assert!(ring.expired().await);
        assert!(ring.current(&http).await.is_err());
    }

    #[tokio::test]
    async fn a_static_key_is_never_fetched_nor_dropped() {
        let ring = Keyring::new(CredentialSource::Static(Credentials {
            access_key_id: "AK".to_owned(),
            access_key_secret: Secret::new("s"),
            security_token: Secret::default(),
        }));
        let http = reqwest::Client::new();
        assert_eq!(
            ring.current(&http).await.expect("static").access_key_id,
            "AK"
        );
        assert!(!ring.expired().await);
    }

    #[test]
    fn the_server_refusing_an_expired_token_is_told_apart() {
        let refused = |message: &str| crate::Error::Api {
            what: "PullLogs".to_owned(),
            status: 401,
            code: "Unauthorized".to_owned(),
            message: message.to_owned(),
            request_id: String::new(),
        };
        assert!(crate::client::token_expired(&refused(
            "The security token you provided has expired"
        )));
        assert!(!crate::client::token_expired(&refused(
            "signature mismatch"
        )));
    }
}
