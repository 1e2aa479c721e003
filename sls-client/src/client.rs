//! A thin Log Service HTTP client: the calls a consumer needs (protocol
//! notes §2), signed with v1 (§1.3) or v4 (§1.4), over one shared `reqwest`
//! connection pool.
//!
//! Why our own client and not `aliyun-log-rust-sdk`: §8 — it pulls in
//! OpenSSL and a C lz4, decodes values as UTF-8 (one bad byte fails a whole
//! pull), has no zstd and no consumer-group worker.
//!
//! **Endpoint and Host.** The project is the first label of the `Host`
//! header (§1.1): real requests go to `{project}.{endpoint}`. When the
//! endpoint's host is an IP address or `localhost` (an emulator or a proxy on
//! this machine), there is no DNS name to prefix, so we connect to that
//! address as given and send `Host: {project}.{host}`; the emulator takes the
//! first label. An endpoint without a scheme uses `https` — AccessKey-signed
//! requests and log data should not cross networks in clear text (the
//! Python SDK defaults to `http`) — except for IP/`localhost` endpoints,
//! which default to `http`.
//!
//! Retries here are short and only for failures that a second try usually
//! fixes (network errors, 5xx): at most [`ATTEMPTS`] tries with jittered
//! back-off. Throttling and everything else go back to the caller, whose loop
//! (pull, heartbeat) has its own, longer back-off.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::credentials::{CredentialSource, Keyring};
use crate::cursor::{Cursor, ShardId};
use crate::error::Error;
use crate::sign;

/// Tries per request for network errors and 5xx answers.
pub(crate) const ATTEMPTS: u32 = 3;

const API_VERSION: &str = "0.6.0";

/// Where the server is and how to address a project on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
}

impl Endpoint {
    /// Parse `[http://|https://]host[:port][/path]` (the path is ignored, as
    /// the SDKs do).
    ///
    /// # Errors
    /// An empty host or a bad port.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |problem: String| Error::Config {
            key: "endpoint".to_owned(),
            problem,
        };
        let s = s.trim();
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Some("https"), r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Some("http"), r)
        } else if s.contains("://") {
            return Err(bad(format!(
                "{s:?}: only http:// and https:// are supported"
            )));
        } else {
            (None, s)
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad(format!("{s:?}: unclosed '['")))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad(
                "no host in it; give the region's endpoint, e.g. cn-hangzhou.log.aliyuncs.com"
                    .to_owned(),
            ));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| bad(format!("{s:?}: bad port {p:?}")))
            })
            .transpose()?;
        let local = host.parse::<IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost");
        let scheme = scheme.unwrap_or(if local { "http" } else { "https" });
        Ok(Self { scheme, host, port })
    }

    /// True when the host is an address (or `localhost`): connect to it and
    /// put the project only in the `Host` header.
    pub fn is_direct(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok() || self.host.eq_ignore_ascii_case("localhost")
    }

    /// The URL prefix for `project`, and the `Host` header to send:
    /// `{project}.{host}` without the port, as the Python SDK sends it (and
    /// signs it, in v4).
    pub fn base(&self, project: &str) -> (String, String) {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let host_header = format!("{project}.{}", self.host);
        if self.is_direct() {
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            (format!("{}://{host}{port}", self.scheme), host_header)
        } else {
            (
                format!("{}://{project}.{}{port}", self.scheme, self.host),
                host_header,
            )
        }
    }
}

/// How requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// HMAC-SHA1 (every SDK's default).
    V1,
    /// SLS4-HMAC-SHA256 for a region (e.g. `cn-hangzhou`).
    V4 {
        /// The region in the credential scope.
        region: String,
    },
}

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Project.
    pub project: String,
    /// Logstore.
    pub logstore: String,
    /// Where the AccessKey comes from.
    pub credentials: CredentialSource,
    /// Signature version.
    pub auth: Auth,
    /// `User-Agent`.
    pub user_agent: String,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Idle connections kept per host in the shared pool.
    pub pool_max_idle: usize,
    /// The wait before retry `attempt` (1, 2, …) of a request that failed
    /// on the network or with a 5xx answer: the caller's backoff rule, so a
    /// program has one.
    pub retry_delay: fn(u32) -> Duration,
}

/// The server's answer to a request signed with an expired STS token.
pub(crate) fn token_expired(e: &Error) -> bool {
    matches!(e, Error::Api { status: 401, message, .. }
        if message.to_ascii_lowercase().contains("security token")
            && message.to_ascii_lowercase().contains("expired"))
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ShardInfo {
    /// Shard id.
    #[serde(rename = "shardID")]
    pub id: u32,
    /// `readwrite` or `readonly`.
    pub status: String,
}

impl ShardInfo {
    /// A read-only shard (after a split or merge) ends once consumed.
    pub fn is_readonly(&self) -> bool {
        self.status.eq_ignore_ascii_case("readonly")
    }
}

/// A consumer group as ListConsumerGroup describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupInfo {
    /// Name.
    pub name: String,
    /// Seconds without heartbeat before the server drops a consumer.
    pub timeout: u64,
    /// Ordered consumption across split/merge.
    pub order: bool,
}

/// One entry of GetCheckPoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckpointInfo {
    /// Shard id.
    pub shard: u32,
    /// The cursor, empty when never committed.
    pub checkpoint: String,
    /// Last update (the server's unit; microseconds on the emulator).
    #[serde(rename = "updateTime", default)]
    pub update_time: i64,
    /// The consumer that committed last.
    #[serde(default)]
    pub consumer: String,
}

/// The answer to PullLogs, body still compressed.
#[derive(Debug)]
pub struct Pulled {
    /// Where to pull next (equals the request cursor when nothing came).
    pub next: Cursor,
    /// Log groups in the body.
    pub count: u64,
    /// `x-log-compresstype` (empty: uncompressed).
    pub compress_type: String,
    /// `x-log-bodyrawsize`.
    pub raw_size: usize,
    /// `x-log-end-of-cursor: 1`: the pull reached the shard's end (an
    /// optional header; absent means "not said").
    pub at_end: bool,
    /// With a [`Rule`]: what the server scanned before filtering, when it
    /// said (`x-log-rawdatacount` and `x-log-rawdatasize` both present).
    pub scanned: Option<Scanned>,
    /// The body.
    pub body: Bytes,
}

/// Rule-based consumption: the server filters (and may reshape) the logs
/// before they are sent (protocol notes §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// An SPL statement, sent as `query` with `pullMode=scan_on_stream`, as
    /// the Python and Go SDKs send it.
    Query(String),
    /// The name of a consume processor defined on the server.
    Processor(String),
}

/// What a PullLogs with a [`Rule`] scanned before filtering
/// (`x-log-rawdata*`, `x-log-resultlines`, `x-log-failedlines`; of the
/// line counts, one the server leaves out is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Log groups scanned.
    pub groups: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Logs scanned.
    pub lines: u64,
    /// Logs returned.
    pub result_lines: u64,
    /// Logs the rule failed on.
    pub failed_lines: u64,
}

/// Compression asked for in PullLogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Raw LZ4 block (the SDKs' default).
    #[default]
    Lz4,
    /// zstd frame (smaller, a little more CPU).
    Zstd,
}

/// Called once per request the client sends again after a network error
/// or a 5xx answer (see [`Client::on_retry`]): how a program counts them.
#[derive(Clone)]
pub struct RetryHook(std::sync::Arc<dyn Fn() + Send + Sync>);

impl RetryHook {
    /// Wrap `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for RetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryHook")
    }
}

/// The client; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Told about each retry, if set.
    on_retry: Option<RetryHook>,
    /// The current credentials (refreshed here when temporary).
    keys: std::sync::Arc<Keyring>,
    cfg: std::sync::Arc<ClientConfig>,
    base: String,
    host: String,
    host_value: HeaderValue,
    user_agent: HeaderValue,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(rename = "errorMessage", default)]
    message: String,
}

/// Largest body read from a JSON answer (group, shard and checkpoint lists):
/// far above any real one, and what a broken endpoint can make us hold.
const MAX_JSON_BODY: usize = 16 << 20;

/// Most of an error answer's body read: the error code and message are at
/// its start, and a large 5xx page must not count as "too large" data.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Largest log group Log Service accepts: 5 MB documented, with room for
/// the list's framing.
pub const MAX_LOG_GROUP: usize = 6 << 20;

/// The most a compressed body of `raw` decompressed bytes can take: lz4's
/// and zstd's worst cases (incompressible input) are a little above it.
fn compressed_bound(raw: usize) -> usize {
    raw.saturating_add(raw / 128).saturating_add(4096)
}

struct Request<'a> {
    what: String,
    method: reqwest::Method,
    path: String,
    query: Vec<(&'a str, String)>,
    body: Option<Vec<u8>>,
    accept_encoding: Option<&'static str>,
    /// The largest answer body read; a longer one is an error.
    max_body: usize,
}

impl Client {
    /// Build the client and its connection pool.
    ///
    /// # Errors
    /// The TLS setup or a header value is invalid.
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10).min(cfg.request_timeout))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Fatal(format!("cannot build the HTTP client: {e}")))?;
        let (base, host) = cfg.endpoint.base(&cfg.project);
        let bad = |what: &str| Error::Config {
            key: what.to_owned(),
            problem: "contains characters not allowed in an HTTP header".to_owned(),
        };
        let host_value = HeaderValue::from_str(&host).map_err(|_| bad("project"))?;
        let user_agent = HeaderValue::from_str(&cfg.user_agent).map_err(|_| bad("user_agent"))?;
        Ok(Self {
            http,
            on_retry: None,
            keys: std::sync::Arc::new(Keyring::new(cfg.credentials.clone())),
            cfg: std::sync::Arc::new(cfg),
            base,
            host,
            host_value,
            user_agent,
        })
    }

    /// Call `hook` for each request sent again after a network error or a
    /// 5xx answer (this client and its clones from now on).
    #[must_use]
    pub fn on_retry(mut self, hook: RetryHook) -> Self {
        self.on_retry = Some(hook);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn ls_path(&self, rest: &str) -> String {
        format!("/logstores/{}{rest}", self.cfg.logstore)
    }

    async fn send(&self, req: Request<'_>) -> Result<(HeaderMap, Bytes), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(&req).await {
                Err(e)
                    if attempt < ATTEMPTS
                        && (matches!(e, Error::Network { .. })
                            || matches!(e, Error::Api { status, .. } if status >= 500)) =>
                {
                    let wait = (self.cfg.retry_delay)(attempt);
                    tracing::debug!(error = %e, ?wait, "SLS request failed; retrying");
                    if let Some(hook) = &self.on_retry {
                        (hook.0)();
                    }
                    tokio::time::sleep(wait).await;
                }
                // A temporary key the server already holds for expired (a
                // clock a little off): sign again with a fresh one.
                Err(e) if attempt < ATTEMPTS && token_expired(&e) && self.keys.expired() => {
                    tracing::debug!(error = %e, "security token expired; refreshing it");
                }
                r => return r,
            }
        }
    }

    async fn send_once(&self, req: &Request<'_>) -> Result<(HeaderMap, Bytes), Error> {
        let now = SystemTime::now();
        let (md5, content_type) = match &req.body {
            Some(b) => (sign::content_md5(b), "application/json"),
            None => (String::new(), ""),
        };
        let body: &[u8] = req.body.as_deref().unwrap_or_default();
        let body_len = body.len().to_string();
        let query: Vec<(&str, &str)> = req.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let credentials = self.keys.current(&self.http).await?;
        let token = credentials.security_token.expose();
        let mut headers: Vec<(&'static str, String)> = vec![
            ("x-log-apiversion", API_VERSION.to_owned()),
            ("x-log-bodyrawsize", body_len),
        ];
        if !token.is_empty() {
            headers.push(("x-acs-security-token", token.to_owned()));
        }
        let auth = match &self.cfg.auth {
            Auth::V1 => {
                let date = httpdate::fmt_http_date(now);
                headers.push(("x-log-signaturemethod", "hmac-sha1".to_owned()));
                let signed: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let auth = sign::authorization(
                    &credentials.access_key_id,
                    credentials.access_key_secret.expose(),
                    &sign::Signed {
                        method: req.method.as_str(),
                        content_md5: &md5,
                        content_type,
                        date: &date,
                        headers: &signed,
                        path: &req.path,
                        query: &query,
                    },
                );
                headers.push(("date", date));
                auth
            }
            Auth::V4 { region } => {
                let datetime = jiff::Timestamp::try_from(now)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                    .strftime("%Y%m%dT%H%M%SZ")
                    .to_string();
                headers.push(("x-log-date", datetime.clone()));
                headers.push(("x-log-content-sha256", sign::content_sha256(body)));
                let mut signed: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                signed.push(("host", &self.host));
                if !content_type.is_empty() {
                    signed.push(("content-type", content_type));
                }
                sign::v4_authorization(
                    &credentials.access_key_id,
                    credentials.access_key_secret.expose(),
                    region,
                    &datetime,
                    &sign::SignedV4 {
                        method: req.method.as_str(),
                        path: &req.path,
                        query: &query,
                        headers: &signed,
                    },
                )
            }
        };
        let mut b = self
            .http
            .request(req.method.clone(), format!("{}{}", self.base, req.path))
            .query(&query)
            .header("authorization", auth)
            .header(reqwest::header::HOST, self.host_value.clone())
            .header(reqwest::header::USER_AGENT, self.user_agent.clone());
        for (k, v) in &headers {
            b = b.header(HeaderName::from_static(k), v.as_str());
        }
        if let Some(enc) = req.accept_encoding {
            b = b
                .header("accept", "application/x-protobuf")
                .header("accept-encoding", enc);
        }
        if let Some(body) = &req.body {
            b = b
                .header("content-type", content_type)
                .header("content-md5", md5)
                .body(body.clone());
        }
        let net = |e: reqwest::Error| Error::Network {
            what: req.what.clone(),
            cause: crate::error::chain(&e),
        };
        let mut resp = b.send().await.map_err(net)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let too_large = |size: u64, by: &'static str| Error::TooLarge {
            what: req.what.clone(),
            size,
            by,
            limit: req.max_body as u64,
        };
        // Never `bytes()`: it buffers whatever the peer sends (an endpoint
        // announcing gigabytes took the process to 8 GB). An error answer is
        // read up to its first bytes, which say what went wrong.
        let ok = status == 200;
        if let Some(n) = resp
            .content_length()
            .filter(|n| ok && *n > req.max_body as u64)
        {
            return Err(too_large(n, "Content-Length"));
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut len = 0usize;
        while let Some(chunk) = resp.chunk().await.map_err(net)? {
            len = len.saturating_add(chunk.len());
            if !ok && len >= MAX_ERROR_BODY {
                chunks.push(chunk);
                break;
            }
            if len > req.max_body {
                return Err(too_large(len as u64, "the body read so far"));
            }
            chunks.push(chunk);
        }
        // One chunk (the common case) is the body as hyper read it.
        let body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => Bytes::from(chunks.concat()),
        };
        if status == 200 {
            return Ok((headers, body));
        }
        let request_id = headers
            .get("x-log-requestid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if !e.code.is_empty() => (e.code, e.message),
            _ => (
                format!("HTTP{status}"),
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            ),
        };
        Err(Error::Api {
            what: req.what.clone(),
            status,
            code,
            message,
            request_id,
        })
    }

    fn json<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Protocol {
            what: what.to_owned(),
            problem: format!("bad JSON: {e}"),
        })
    }

    fn get(what: String, path: String, query: Vec<(&'static str, String)>) -> Request<'static> {
        Request {
            what,
            method: reqwest::Method::GET,
            path,
            query,
            body: None,
            accept_encoding: None,
            max_body: MAX_JSON_BODY,
        }
    }

    /// ListShards.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_shards(&self) -> Result<Vec<ShardInfo>, Error> {
        let (_, body) = self
            .send(Self::get(
                "ListShards".into(),
                self.ls_path("/shards"),
                vec![],
            ))
            .await?;
        Self::json("ListShards", &body)
    }

    /// GetCursor `from` = `begin`, `end` or Unix seconds.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_cursor(&self, shard: ShardId, from: &str) -> Result<Cursor, Error> {
        #[derive(Deserialize)]
        struct R {
            cursor: String,
        }
        let what = format!("GetCursor shard {shard} from={from}");
        let (_, body) = self
            .send(Self::get(
                what.clone(),
                self.ls_path(&format!("/shards/{shard}")),
                vec![("type", "cursor".into()), ("from", from.to_owned())],
            ))
            .await?;
        let r: R = Self::json(&what, &body)?;
        Cursor::new(r.cursor).ok_or(Error::Protocol {
            what,
            problem: "empty cursor".into(),
        })
    }

    /// GetCursorTime: the receive time (Unix seconds) of the log group at
    /// `cursor`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_cursor_time(&self, shard: ShardId, cursor: &Cursor) -> Result<i64, Error> {
        #[derive(Deserialize)]
        struct R {
            cursor_time: i64,
        }
        let what = format!("GetCursorTime shard {shard}");
        let (_, body) = self
            .send(Self::get(
                what.clone(),
                self.ls_path(&format!("/shards/{shard}")),
                vec![
                    ("type", "cursor_time".into()),
                    ("cursor", cursor.as_str().to_owned()),
                ],
            ))
            .await?;
        Ok(Self::json::<R>(&what, &body)?.cursor_time)
    }

    /// PullLogs: up to `count` log groups from `cursor`, at most `max_raw`
    /// bytes decompressed (`x-log-bodyrawsize`, and a compressed body that
    /// could hold them): a larger answer is [`Error::TooLarge`], and nothing
    /// is allocated for what a header claims beyond it. With a `rule` the
    /// server filters first; [`Pulled::scanned`] says what it read, and
    /// [`Pulled::next`] moves past that even when nothing came back.
    ///
    /// # Errors
    /// [`Error`]; `InvalidCursor` comes back as [`Error::Api`].
    pub async fn pull_logs(
        &self,
        shard: ShardId,
        cursor: &Cursor,
        count: u32,
        compression: Compression,
        max_raw: usize,
        rule: Option<&Rule>,
    ) -> Result<Pulled, Error> {
        let what = format!("PullLogs shard {shard}");
        let mut query = vec![
            ("type", "log".into()),
            ("cursor", cursor.as_str().to_owned()),
            ("count", count.to_string()),
        ];
        match rule {
            None => {}
            Some(Rule::Query(spl)) => {
                query.push(("query", spl.clone()));
                query.push(("pullMode", "scan_on_stream".into()));
            }
            Some(Rule::Processor(name)) => query.push(("processor", name.clone())),
        }
        let mut req = Self::get(
            what.clone(),
            self.ls_path(&format!("/shards/{shard}")),
            query,
        );
        req.accept_encoding = Some(match compression {
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        });
        req.max_body = compressed_bound(max_raw);
        let (headers, body) = self.send(req).await?;
        let header = |name: &str| -> Result<&str, Error> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Protocol {
                    what: what.clone(),
                    problem: format!("missing header {name}"),
                })
        };
        let number = |name: &str| -> Result<u64, Error> {
            header(name)?.trim().parse().map_err(|_| Error::Protocol {
                what: what.clone(),
                problem: format!("header {name} is not a number"),
            })
        };
        let count = number("x-log-count")?;
        let claimed = number("x-log-bodyrawsize")?;
        if claimed > max_raw as u64 {
            return Err(Error::TooLarge {
                what,
                size: claimed,
                by: "x-log-bodyrawsize",
                limit: max_raw as u64,
            });
        }
        let raw_size = usize::try_from(claimed).unwrap_or(usize::MAX);
        // An empty `x-log-cursor` means "no move" (the SDKs keep the old one).
        let next = Cursor::new(header("x-log-cursor")?.trim()).unwrap_or_else(|| cursor.clone());
        let compress_type = if raw_size == 0 {
            String::new()
        } else {
            headers
                .get("x-log-compresstype")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let at_end = headers
            .get("x-log-end-of-cursor")
            .is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
        let figure = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let scanned = match (
            rule,
            figure("x-log-rawdatacount"),
            figure("x-log-rawdatasize"),
        ) {
            (Some(_), Some(groups), Some(bytes)) => Some(Scanned {
                groups,
                bytes,
                lines: figure("x-log-rawdatalines").unwrap_or(0),
                result_lines: figure("x-log-resultlines").unwrap_or(0),
                failed_lines: figure("x-log-failedlines").unwrap_or(0),
            }),
            _ => None,
        };
        Ok(Pulled {
            next,
            count,
            compress_type,
            raw_size,
            at_end,
            scanned,
            body,
        })
    }

    fn group_path(&self, group: &str) -> String {
        self.ls_path(&format!("/consumergroups/{group}"))
    }

    /// ListConsumerGroup.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>, Error> {
        let (_, body) = self
            .send(Self::get(
                "ListConsumerGroup".into(),
                self.ls_path("/consumergroups"),
                vec![],
            ))
            .await?;
        Self::json("ListConsumerGroup", &body)
    }

    /// CreateConsumerGroup.
    ///
    /// # Errors
    /// [`Error`] (`ConsumerGroupAlreadyExist` when it exists).
    pub async fn create_group(&self, group: &str, timeout: u64, order: bool) -> Result<(), Error> {
        let body = serde_json::json!({"consumerGroup": group, "timeout": timeout, "order": order});
        self.send(Request {
            what: format!("CreateConsumerGroup {group}"),
            method: reqwest::Method::POST,
            path: self.ls_path("/consumergroups"),
            query: vec![],
            body: Some(body.to_string().into_bytes()),
            accept_encoding: None,
            max_body: MAX_JSON_BODY,
        })
        .await
        .map(drop)
    }

    /// UpdateConsumerGroup.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn update_group(&self, group: &str, timeout: u64, order: bool) -> Result<(), Error> {
        let body = serde_json::json!({"timeout": timeout, "order": order});
        self.send(Request {
            what: format!("UpdateConsumerGroup {group}"),
            method: reqwest::Method::PUT,
            path: self.group_path(group),
            query: vec![],
            body: Some(body.to_string().into_bytes()),
            accept_encoding: None,
            max_body: MAX_JSON_BODY,
        })
        .await
        .map(drop)
    }

    /// HeartBeat: report the shards held, learn the shards to hold.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn heartbeat(
        &self,
        group: &str,
        consumer: &str,
        held: &[ShardId],
    ) -> Result<Vec<ShardId>, Error> {
        let ids: Vec<u32> = held.iter().map(|s| s.0).collect();
        let body = serde_json::to_vec(&ids).unwrap_or_else(|_| b"[]".to_vec());
        let (_, body) = self
            .send(Request {
                what: "HeartBeat".into(),
                method: reqwest::Method::POST,
                path: self.group_path(group),
                query: vec![("type", "heartbeat".into()), ("consumer", consumer.into())],
                body: Some(body),
                accept_encoding: None,
                max_body: MAX_JSON_BODY,
            })
            .await?;
        let ids: Vec<u32> = Self::json("HeartBeat", &body)?;
        Ok(ids.into_iter().map(ShardId).collect())
    }

    /// UpdateCheckPoint. `force = false` succeeds only while `consumer`
    /// holds the shard (see `docs/architecture.md` for why we use that).
    ///
    /// # Errors
    /// [`Error`] (`ConsumerNotMatch`, `ConsumerNotExist`, `ShardNotExist`
    /// when the shard is no longer ours).
    pub async fn update_checkpoint(
        &self,
        group: &str,
        consumer: &str,
        shard: ShardId,
        cursor: &Cursor,
        force: bool,
    ) -> Result<(), Error> {
        let body = serde_json::json!({"shard": shard.0, "checkpoint": cursor.as_str()});
        self.send(Request {
            what: format!("UpdateCheckPoint shard {shard}"),
            method: reqwest::Method::POST,
            path: self.group_path(group),
            query: vec![
                ("type", "checkpoint".into()),
                ("consumer", consumer.into()),
                ("forceSuccess", force.to_string()),
            ],
            body: Some(body.to_string().into_bytes()),
            accept_encoding: None,
            max_body: MAX_JSON_BODY,
        })
        .await
        .map(drop)
    }

    /// GetCheckPoint for one shard or all.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_checkpoints(
        &self,
        group: &str,
        shard: Option<ShardId>,
    ) -> Result<Vec<CheckpointInfo>, Error> {
        let query = shard
            .map(|s| vec![("shard", s.0.to_string())])
            .unwrap_or_default();
        let (_, body) = self
            .send(Self::get(
                "GetCheckPoint".into(),
                self.group_path(group),
                query,
            ))
            .await?;
        Self::json("GetCheckPoint", &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_endpoint_puts_the_project_in_the_url_host() {
        let e = Endpoint::parse("cn-hangzhou.log.aliyuncs.com").unwrap();
        assert_eq!(e.scheme, "https");
        assert_eq!(
            e.base("proj"),
            (
                "https://proj.cn-hangzhou.log.aliyuncs.com".to_owned(),
                "proj.cn-hangzhou.log.aliyuncs.com".to_owned()
            )
        );
        let e = Endpoint::parse("http://cn-hangzhou.log.aliyuncs.com:8080/x").unwrap();
        assert_eq!(e.base("p").0, "http://p.cn-hangzhou.log.aliyuncs.com:8080");
    }

    #[test]
    fn ip_endpoint_connects_directly_and_sends_the_project_in_host() {
        let e = Endpoint::parse("http://127.0.0.1:18080").unwrap();
        assert_eq!(
            e.base("proj"),
            (
                "http://127.0.0.1:18080".to_owned(),
                "proj.127.0.0.1".to_owned()
            )
        );
        let e = Endpoint::parse("localhost:9").unwrap();
        assert_eq!(e.scheme, "http");
        assert_eq!(e.base("p").1, "p.localhost");
        let e = Endpoint::parse("[::1]:9").unwrap();
        assert_eq!(e.base("p").0, "http://[::1]:9");
    }

    #[test]
    fn bad_endpoints_name_the_key() {
        for bad in ["", "ftp://x", "host:notaport"] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("endpoint: "), "{e}");
        }
    }
}
