//! The HTTP/1.1 front: accepts connections, turns each request into a [`routes::Req`],
//! applies injected faults and signature checks, dispatches, and writes the SLS response
//! shape (protocol notes §1.5: `x-log-requestid`, `Date`, JSON error envelope, lower-case
//! header names, never `Content-Encoding`).
//!
//! Absolute-form request lines (`GET http://proj.host:port/path HTTP/1.1`, what an HTTP
//! client sends through a proxy) work because only `uri.path()`/`uri.query()` are used for
//! routing and the project comes from the `Host` header (falling back to the URI's
//! authority).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, SignedParts};
use crate::error::ApiError;
use crate::faults::{Injected, RequestKind};
use crate::routes::{self, Reply, Req};
use crate::Shared;

/// Largest request body accepted (PutLogs bodies are at most a few MB in production).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Serves until `token` is cancelled; each connection runs in a task of `tracker` and is
/// shut down gracefully on cancellation.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let token = token.clone();
        tracker.spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = token.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Error type that makes hyper drop the connection (used for injected resets).
#[derive(Debug)]
struct InjectedReset;

impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for InjectedReset {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    let seq = shared.request_seq.fetch_add(1, Ordering::Relaxed);
    let request_id = format!(
        "{:016X}{:08X}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        seq as u32
    );
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(respond(
                &request_id,
                Err(ApiError::new(
                    400,
                    "PostBodyTooLarge",
                    format!("request body unreadable or larger than {MAX_BODY} bytes: {e}"),
                )),
            ))
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let host = headers
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.clone())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
    let req = Req {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        project: host
            .as_deref()
            .and_then(routes::project_from_host)
            .or_else(|| shared.config.default_project.clone()),
        query,
        headers,
        body,
    };

    if routes::identity::is_identity(&req) {
        return Ok(respond(
            &request_id,
            Ok(routes::identity::route(&shared, &req)),
        ));
    }
    if req.path.starts_with(routes::CONTROL_PREFIX) {
        return Ok(respond(&request_id, routes::control(&shared, &req)));
    }

    let delay = shared.faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let kind = routes::request_kind(&req);
    match shared.faults.draw(kind) {
        Injected::None => {}
        Injected::Reset => return Err(InjectedReset),
        Injected::ServerError => {
            return Ok(respond(
                &request_id,
                Err(ApiError::new(
                    500,
                    "InternalServerError",
                    "injected fault: internal server error",
                )),
            ))
        }
        Injected::Throttle => {
            let (code, msg) = match kind {
                RequestKind::Write => ("WriteQuotaExceed", "injected fault: Write QPS Exceed"),
                _ => ("ReadQuotaExceed", "injected fault: Read QPS Exceed"),
            };
            return Ok(respond(&request_id, Err(ApiError::new(403, code, msg))));
        }
    }

    // Handlers hash, (de)compress and may write the data directory: run them on the blocking
    // pool so a large PullLogs never stalls the connections sharing a runtime thread.
    let result = tokio::task::spawn_blocking(move || {
        let result = check_request(&shared, &req).and_then(|()| routes::dispatch(&shared, &req));
        (req, result)
    })
    .await;
    let (req, result) = match result {
        Ok(x) => x,
        Err(e) => {
            // A handler panicked: answer 500 as the real service would on an internal fault.
            let err = ApiError::new(
                500,
                "InternalServerError",
                format!("emulator handler failed: {e}"),
            );
            return Ok(respond(&request_id, Err(err)));
        }
    };
    if let Err(e) = &result {
        tracing::debug!(method = %req.method, path = %req.path, code = e.code, message = %e.message, "request refused");
    }
    Ok(respond(&request_id, result))
}

/// The AccessKeyId an `Authorization` header names (v1 `LOG id:sig`, v4
/// `Credential=id/…`).
fn access_key_of(authorization: &str) -> Option<&str> {
    if let Some(rest) = authorization.strip_prefix("LOG ") {
        return rest.trim().rsplit_once(':').map(|(ak, _)| ak);
    }
    let at = authorization.find("Credential=")? + "Credential=".len();
    authorization[at..].split('/').next()
}

/// Signature, clock skew and Content-MD5 checks.
fn check_request(shared: &Shared, req: &Req) -> Result<(), ApiError> {
    if let crate::Auth::Keys(keys) = &shared.config.auth {
        // With signatures on, the common headers every SDK sends are required too (§1.2).
        match req.header("x-log-apiversion") {
            None => {
                return Err(ApiError::new(
                    400,
                    "MissingAPIVersion",
                    "x-log-apiversion header is missing",
                ))
            }
            Some(v) if v.trim() != "0.6.0" => {
                return Err(ApiError::new(
                    400,
                    "InvalidAPIVersion",
                    format!("x-log-apiversion {v:?} is not 0.6.0"),
                ))
            }
            Some(_) => {}
        }
        if req
            .header("authorization")
            .is_some_and(|a| a.starts_with("LOG "))
        {
            match req.header("x-log-signaturemethod") {
                None => {
                    return Err(ApiError::new(
                        400,
                        "MissingSignatureMethod",
                        "x-log-signaturemethod header is missing",
                    ))
                }
                Some(v) if !v.trim().eq_ignore_ascii_case("hmac-sha1") => {
                    return Err(ApiError::new(
                        400,
                        "InvalidSignatureMethod",
                        format!("x-log-signaturemethod {v:?} is not hmac-sha1"),
                    ))
                }
                Some(_) => {}
            }
        }
        let parts = SignedParts {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &req.headers,
        };
        // A temporary key the emulator issued: its own secret, its token, its expiry.
        let temporary = access_key_of(req.header("authorization").unwrap_or("")).and_then(|ak| {
            let keys = shared
                .temporary_keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.get(ak).map(|k| (ak.to_owned(), k.clone()))
        });
        let one;
        let keys = match &temporary {
            None => keys,
            Some((ak, key)) => {
                if req.header("x-acs-security-token") != Some(key.token.as_str()) {
                    return Err(ApiError::new(
                        401,
                        "Unauthorized",
                        "The security token you provided is invalid",
                    ));
                }
                if SystemTime::now() >= key.expires {
                    return Err(ApiError::new(
                        401,
                        "Unauthorized",
                        "The security token you provided has expired",
                    ));
                }
                one = std::collections::HashMap::from([(ak.clone(), key.secret.clone())]);
                &one
            }
        };
        auth::verify(keys, &parts).map_err(|e| {
            let (code, status) = e.code_and_status();
            ApiError::new(status, code, e.to_string())
        })?;
        // Checked after the signature, as a service does: a disabled key is a known one.
        if let Some(ak) = access_key_of(req.header("authorization").unwrap_or("")) {
            if shared.key_disabled(ak) {
                return Err(ApiError::new(
                    401,
                    "Unauthorized",
                    format!("The AccessKeyId {ak} is disabled"),
                ));
            }
            let action = crate::routes::action(req);
            if shared.action_denied(ak, action) {
                return Err(ApiError::new(
                    401,
                    "Unauthorized",
                    format!(
                        "denied by sts or ram, action: {action}, resource: acs:log:*:*:{}",
                        req.path
                    ),
                ));
            }
        }
        if let (Some(max), Some(date)) = (shared.config.max_clock_skew, req.header("date")) {
            if req
                .header("authorization")
                .is_some_and(|a| a.starts_with("LOG "))
            {
                let t = httpdate::parse_http_date(date).map_err(|_| {
                    ApiError::new(
                        400,
                        "InvalidDateFormat",
                        format!("Date {date:?} is not an RFC 1123 date"),
                    )
                })?;
                let now = SystemTime::now();
                let skew = now
                    .duration_since(t)
                    .or_else(|_| t.duration_since(now))
                    .unwrap_or_default();
                if skew > max {
                    return Err(ApiError::new(
                        400,
                        "RequestTimeTooSkewed",
                        format!(
                            "Date {date:?} is {}s away from the server clock",
                            skew.as_secs()
                        ),
                    ));
                }
            }
        }
    }
    if let Some(md5) = req.header("content-md5") {
        use md5::{Digest as _, Md5};
        let actual: String = Md5::digest(&req.body)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        if !actual.eq_ignore_ascii_case(md5.trim()) {
            return Err(ApiError::new(
                400,
                "InvalidContentMD5",
                format!("Content-MD5 {md5} does not match the body ({actual})"),
            ));
        }
    }
    Ok(())
}

fn respond(request_id: &str, result: Result<Reply, ApiError>) -> Response<Full<Bytes>> {
    let reply = match result {
        Ok(r) => r,
        Err(e) => Reply {
            status: e.status,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: Bytes::from(
                serde_json::json!({"errorCode": e.code, "errorMessage": e.message, "requestId": request_id}).to_string(),
            ),
        },
    };
    let mut b = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("x-log-requestid", request_id)
        .header("date", httpdate::fmt_http_date(SystemTime::now()))
        .header("server", "sls-emulator")
        .header("content-length", reply.body.len().to_string());
    if let Some(ct) = reply.content_type {
        b = b.header("content-type", ct);
    }
    for (k, v) in reply.headers {
        b = b.header(k, v);
    }
    b.body(Full::new(reply.body)).unwrap_or_else(|_| {
        // Only reachable with an invalid header value, which routes never produce.
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}
