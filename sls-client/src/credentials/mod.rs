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
//! failure and retried a second later; only a key that has expired
//! with no replacement fails requests (as retryable errors, so shards wait
//! rather than give up). A request refused because its token expired after
//! all (a clock a little off) drops the held key and is signed again with a
//! fresh one.
//!
//! One file per source of temporary keys, each a variant of
//! [`CredentialSource`] and an arm of its `fetch`:
//! - `uri.rs`: a URL answering with Alibaba's JSON form, as the Alibaba
//!   Cloud credential libraries read `ALIBABA_CLOUD_CREDENTIALS_URI`;
//! - `imds.rs`: the ECS instance RAM role, from the instance metadata
//!   service, always with its session token (hardened mode);
//! - `oidc.rs`: RRSA on ACK, `AssumeRoleWithOIDC` with the token file
//!   Kubernetes mounts, read again at every refresh (it is rotated).
//!
//! [`CredentialSource::Lookup`] tries several in order and keeps the first
//! that answers for the life of the process; which ones, in which order, is
//! the caller's decision (siemfwd's is in `source/sls/credentials.rs`). No
//! endpoint is built in here: every URL comes from the caller.

mod imds;
mod oidc;
mod uri;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use imds::{is_role_name, EcsRamRole};
pub use oidc::OidcRole;

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

/// Where credentials come from. Its `Debug` is [`CredentialSource::describe`]:
/// no secret, and no URI's query or user.
#[derive(Clone)]
pub enum CredentialSource {
    /// A fixed AccessKey, permanent or (with a token) temporary.
    Static(Credentials),
    /// A URL answering `GET` with temporary credentials in Alibaba's JSON
    /// form; fetched again before they expire.
    Uri(String),
    /// The RAM role of the ECS instance, from its metadata service.
    EcsRamRole(EcsRamRole),
    /// A RAM role assumed with an OIDC token (RRSA on ACK).
    Oidc(OidcRole),
    /// The first of these that gives credentials, kept once it has; if
    /// none does, the first request fails with what each one said.
    Lookup(Vec<CredentialSource>),
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl CredentialSource {
    /// The source in words for logs and errors: what it is and where,
    /// never a secret (a URI's query string is left out).
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Static(c) if c.security_token.is_empty() => {
                "a static AccessKey".to_owned()
            }
            CredentialSource::Static(_) => "a static STS token".to_owned(),
            CredentialSource::Uri(url) => {
                format!("the credentials URI {}", without_query(url))
            }
            CredentialSource::EcsRamRole(role) => role.describe(),
            CredentialSource::Oidc(role) => role.describe(),
            CredentialSource::Lookup(sources) => {
                let names: Vec<String> = sources.iter().map(Self::describe).collect();
                format!("the first of: {}", names.join(", "))
            }
        }
    }

    /// Fetch credentials now, with when they stop working.
    async fn fetch(&self, http: &reqwest::Client) -> Result<Temporary, Error> {
        match self {
            CredentialSource::Static(c) => Ok(Temporary {
                credentials: c.clone(),
                // Never due for a refresh.
                expires: SystemTime::now() + Duration::from_secs(100 * 365 * 86_400),
            }),
            CredentialSource::Uri(url) => uri::fetch(http, url).await,
            CredentialSource::EcsRamRole(role) => role.fetch(http).await,
            CredentialSource::Oidc(role) => role.fetch(http).await,
            CredentialSource::Lookup(_) => Err(Error::Fatal(
                "a credentials lookup inside a lookup".to_owned(),
            )),
        }
    }
}

/// `scheme://host/path` of a URL: without what follows `?` or `#`, and
/// without a `user:password@` — what may be said of it in a log line.
pub fn without_query(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = bare.split_once("://").unwrap_or(("", bare));
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// Temporary credentials and the time they stop working.
#[derive(Debug)]
struct Temporary {
    credentials: Credentials,
    expires: SystemTime,
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

#[derive(Debug, Default)]
struct State {
    /// Fetches finished (either way), and what the last failed one said: a
    /// request that waited through a fetch that failed reports its error
    /// rather than fetching again at once.
    fetches: u64,
    last_error: Option<String>,
    held: Option<Held>,
    /// The source that answered (an index into `Keyring::sources`), once
    /// one has: a lookup is made once.
    chosen: Option<usize>,
}

/// The wait before trying again after a refresh failed while the held key
/// is still valid.
const RETRY: Duration = Duration::from_secs(1);

/// The current credentials of a client; see the module docs.
#[derive(Debug)]
pub(crate) struct Keyring {
    fixed: Option<Arc<Credentials>>,
    sources: Vec<CredentialSource>,
    /// Several sources to try, or one to use: a lookup that finds nothing
    /// is fatal (nothing is configured), a single source that fails is
    /// retried (it is configured, and may come back).
    lookup: bool,
    /// The key held and the source chosen, read by every request: a plain
    /// lock, held for the copy of an `Arc` and never across a fetch.
    state: std::sync::Mutex<State>,
    /// Taken by the request that fetches. While the key held is still
    /// valid the others sign with it rather than wait (a metadata service
    /// that hangs must not hold every shard up); without a valid key they
    /// wait for that one fetch instead of making their own.
    fetching: tokio::sync::Mutex<()>,
}

impl Keyring {
    pub(crate) fn new(source: CredentialSource) -> Self {
        let (fixed, sources, lookup) = match source {
            CredentialSource::Static(c) => (Some(Arc::new(c)), Vec::new(), false),
            CredentialSource::Lookup(sources) => (None, sources, true),
            one => (None, vec![one], false),
        };
        Self {
            fixed,
            sources,
            lookup,
            state: std::sync::Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data, changed in one assignment: a panic elsewhere cannot
        // leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key held if it is not due for a refresh (`Ok`), else the key
    /// held if it is still valid (`Err(Some)`).
    fn held(&self, now: SystemTime) -> Result<Arc<Credentials>, Option<Arc<Credentials>>> {
        match &self.state().held {
            Some(h) if now < h.refresh_at => Ok(Arc::clone(&h.credentials)),
            Some(h) if now < h.expires => Err(Some(Arc::clone(&h.credentials))),
            _ => Err(None),
        }
    }

    /// The credentials to sign a request with now.
    pub(crate) async fn current(&self, http: &reqwest::Client) -> Result<Arc<Credentials>, Error> {
        if let Some(fixed) = &self.fixed {
            return Ok(Arc::clone(fixed));
        }
        let valid = match self.held(SystemTime::now()) {
            Ok(fresh) => return Ok(fresh),
            Err(valid) => valid,
        };
        let before = self.state().fetches;
        let _fetching = match valid {
            Some(valid) => match self.fetching.try_lock() {
                Ok(guard) => guard,
                // Another request is fetching; this one goes on with the key held.
                Err(_) => return Ok(valid),
            },
            None => self.fetching.lock().await,
        };
        // The fetch this request waited for may have brought a key, or
        // failed just now: then its error, not a fetch more.
        if let Ok(fresh) = self.held(SystemTime::now()) {
            return Ok(fresh);
        }
        let (chosen, waited_through) = {
            let state = self.state();
            let failed = (state.fetches != before)
                .then(|| state.last_error.clone())
                .flatten();
            (state.chosen, failed)
        };
        if let Some(problem) = waited_through {
            return Err(Error::Credentials {
                from: self.describe_chosen(chosen),
                problem,
            });
        }
        let fetched = match chosen {
            Some(i) => self.sources[i].fetch(http).await.map(|t| (i, t)),
            None => self.first_answer(http).await,
        };
        // A fetch may take seconds: what follows is timed from its end.
        let now = SystemTime::now();
        let mut state = self.state();
        state.fetches += 1;
        state.last_error = fetched.as_ref().err().map(ToString::to_string);
        match fetched {
            Ok((i, temporary)) => {
                let life = temporary.expires.duration_since(now).unwrap_or_default();
                let next = Held {
                    credentials: Arc::new(temporary.credentials),
                    // Not again at once for a key that comes (nearly)
                    // expired: a service answering so would be asked
                    // at every request.
                    refresh_at: now + (life * 2 / 3).max(RETRY),
                    expires: temporary.expires,
                };
                if state.chosen.is_some() {
                    tracing::info!(expires_in = ?life, "temporary credentials refreshed");
                } else {
                    tracing::info!(from = %self.sources[i].describe(), expires_in = ?life, "temporary credentials obtained");
                }
                let current = Arc::clone(&next.credentials);
                state.chosen = Some(i);
                state.held = Some(next);
                Ok(current)
            }
            Err(e) => match state.held.as_mut().filter(|h| now < h.expires) {
                Some(h) => {
                    // Not again at the very next request: once a second at
                    // most (sooner near the end), so an outage costs a log
                    // line a second, not one per request.
                    let left = h.expires.duration_since(now).unwrap_or_default();
                    h.refresh_at = now + RETRY.min(left / 2);
                    tracing::warn!(error = %e, expires_in = ?left, "cannot refresh the temporary credentials; using the ones held until they expire");
                    Ok(Arc::clone(&h.credentials))
                }
                None => Err(e),
            },
        }
    }

    fn describe_chosen(&self, chosen: Option<usize>) -> String {
        match chosen.and_then(|i| self.sources.get(i)) {
            Some(source) => source.describe(),
            None => CredentialSource::Lookup(self.sources.clone()).describe(),
        }
    }

    /// The first source that answers, in order; for a lookup, an error
    /// listing what each one said when none does.
    async fn first_answer(&self, http: &reqwest::Client) -> Result<(usize, Temporary), Error> {
        if !self.lookup {
            let source = self
                .sources
                .first()
                .ok_or_else(|| Error::Fatal("no credentials source".to_owned()))?;
            return source.fetch(http).await.map(|t| (0, t));
        }
        let mut tried = Vec::new();
        for (i, source) in self.sources.iter().enumerate() {
            match source.fetch(http).await {
                Ok(t) => return Ok((i, t)),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(Error::NoCredentials {
            tried: tried.join("; "),
        })
    }

    /// The server refused the held credentials as expired: fetch new ones
    /// for the next request. False when they cannot be replaced (static).
    pub(crate) fn expired(&self) -> bool {
        if self.fixed.is_some() {
            return false;
        }
        self.state().held = None;
        true
    }
}

/// What the three temporary-credential services answer with: Alibaba's
/// field names, the same in each.
#[derive(serde::Deserialize)]
struct KeyAnswer {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: String,
    #[serde(rename = "SecurityToken", default)]
    security_token: String,
    #[serde(rename = "Expiration")]
    expiration: String,
}

impl KeyAnswer {
    /// The credentials, with their expiry read as Alibaba writes it
    /// (`2026-12-05T10:00:00Z`; any RFC 3339 time is taken too).
    fn into_temporary(self, from: &(dyn Fn(String) -> Error + Sync)) -> Result<Temporary, Error> {
        let expires = self
            .expiration
            .parse::<jiff::Timestamp>()
            .map(SystemTime::from)
            .map_err(|e| from(format!("Expiration {:?}: {e}", self.expiration)))?;
        Ok(Temporary {
            credentials: Credentials {
                access_key_id: self.access_key_id,
                access_key_secret: Secret::new(self.access_key_secret),
                security_token: Secret::new(self.security_token),
            },
            expires,
        })
    }
}

/// The largest answer read from a credentials service.
const MAX_ANSWER: usize = 64 << 10;

/// Send `request` and read its status and body (at most [`MAX_ANSWER`]),
/// errors phrased as `from`'s.
async fn exchange(
    request: reqwest::RequestBuilder,
    from: &(dyn Fn(String) -> Error + Sync),
) -> Result<(reqwest::StatusCode, bytes::Bytes), Error> {
    let response = request
        .send()
        .await
        .map_err(|e| from(crate::error::chain(&e.without_url())))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(from(format!("answer of over {MAX_ANSWER} bytes")));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| from(crate::error::chain(&e.without_url())))?;
    if body.len() > MAX_ANSWER {
        return Err(from(format!("answer of over {MAX_ANSWER} bytes")));
    }
    Ok((status, body))
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
                // Status 0: a service that hangs, then fails.
                let status = if status == 0 {
                    std::thread::sleep(Duration::from_secs(3));
                    500
                } else {
                    status
                };
                // Counted before the answer goes out: the client may act on
                // the answer (and read the count) before this thread runs on.
                count.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
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
            let mut state = ring.state();
            if let Some(h) = state.held.as_mut() {
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
        assert!(ring.expired());
        assert!(ring.current(&http).await.is_err());
    }

    #[tokio::test]
    async fn a_lookup_keeps_the_first_source_that_answers_and_lists_them_all_when_none_does() {
        let hour = SystemTime::now() + Duration::from_secs(3600);
        let (down, _) = serve(vec![(503, "down".to_owned())]);
        let (up, served) = serve(vec![answer("STS.up", hour), answer("STS.up2", hour)]);
        let http = reqwest::Client::new();
        let ring = Keyring::new(CredentialSource::Lookup(vec![
            CredentialSource::Uri(format!("{down}?token=t0pS3cr3t")),
            CredentialSource::Uri(up.clone()),
        ]));
        assert_eq!(
            ring.current(&http).await.expect("found").access_key_id,
            "STS.up"
        );
        // Chosen for good: a refresh asks the same source, not the lookup.
        assert!(ring.expired());
        assert_eq!(
            ring.current(&http).await.expect("again").access_key_id,
            "STS.up2"
        );
        assert_eq!(served.load(Ordering::SeqCst), 2);

        let (down, _) = serve(vec![(503, "down".to_owned())]);
        let ring = Keyring::new(CredentialSource::Lookup(vec![CredentialSource::Uri(
            format!("{down}?token=t0pS3cr3t"),
        )]));
        let e = ring.current(&http).await.expect_err("nothing found");
        assert_eq!(e.class(), crate::Class::Fatal);
        let text = e.to_string();
        assert!(text.starts_with("no credentials found"), "{text}");
        assert!(text.contains(&down) && text.contains("503"), "{text}");
        assert!(
            !text.contains("t0pS3cr3t"),
            "a URI's query is never printed: {text}"
        );
    }

    #[tokio::test]
    async fn while_one_request_waits_on_a_hanging_refresh_the_others_sign_with_the_key_held() {
        let hour = SystemTime::now() + Duration::from_secs(3600);
        let (url, _) = serve(vec![answer("STS.1", hour), (0, "hangs".to_owned())]);
        let http = reqwest::Client::new();
        let ring = Arc::new(Keyring::new(CredentialSource::Uri(url)));
        assert_eq!(
            ring.current(&http).await.expect("first").access_key_id,
            "STS.1"
        );
        if let Some(h) = ring.state().held.as_mut() {
            h.refresh_at = SystemTime::now() - Duration::from_secs(1);
        }
        let refreshing = {
            let (ring, http) = (Arc::clone(&ring), http.clone());
            tokio::spawn(async move { ring.current(&http).await.map(|c| c.access_key_id.clone()) })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let meanwhile = tokio::time::timeout(Duration::from_millis(500), ring.current(&http))
            .await
            .expect("not held up by the refresh")
            .expect("the key held");
        assert_eq!(meanwhile.access_key_id, "STS.1");
        // The refresh fails in the end; its request still signs with the key held.
        let refreshed = refreshing.await.expect("task").expect("key held");
        assert_eq!(refreshed, "STS.1");
    }

    #[tokio::test]
    async fn requests_waiting_through_a_failed_fetch_get_its_error_without_fetching_again() {
        let (url, served) = serve(vec![(0, "hangs".to_owned()), (500, "later".to_owned())]);
        let http = reqwest::Client::new();
        let ring = Arc::new(Keyring::new(CredentialSource::Uri(url)));
        let first = {
            let (ring, http) = (Arc::clone(&ring), http.clone());
            tokio::spawn(async move { ring.current(&http).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = ring.current(&http).await.expect_err("no key");
        assert!(second.to_string().contains("500"), "{second}");
        assert!(first.await.expect("task").is_err());
        assert_eq!(served.load(Ordering::SeqCst), 1, "one fetch for both");
    }

    #[test]
    fn a_uri_is_described_without_its_query_or_user() {
        assert_eq!(
            without_query("https://me:pw@creds.example:8080/sts/key?token=x#f"),
            "https://creds.example:8080/sts/key"
        );
        assert_eq!(without_query("http://127.0.0.1:1"), "http://127.0.0.1:1");
        let source = CredentialSource::Uri("http://u:p@h/c?t=1".to_owned());
        assert_eq!(format!("{source:?}"), "the credentials URI http://h/c");
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
        assert!(!ring.expired());
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
