//! Request signature verification (protocol notes §1.3 v1 HMAC-SHA1, §1.4 v4
//! SLS4-HMAC-SHA256) against a configured AccessKey map.
//!
//! Verification uses the headers exactly as received (names lower-cased) and the query as
//! form-decoded pairs, because that is what every SDK signed. The Python SDK adds
//! `x-log-date` *after* computing a v1 signature, so v1 leaves that header out of the
//! canonical block; v4 signs it. The functions that build strings to sign are public so
//! the test vectors of §1.3/§1.4 pin them down, and so the emulator's own `load` client can
//! sign requests (this code is deliberately not shared with siemfwd's client).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// The parts of a request that signatures cover.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// URL path, e.g. `/logstores/ls/shards/0`.
    pub path: &'a str,
    /// Query parameters, form-decoded, in any order.
    pub query: &'a [(String, String)],
    /// Headers with lower-case names, values as received.
    pub headers: &'a [(String, String)],
}

impl SignedParts<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was refused; maps to the SLS error codes of §1.6.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header, or one in neither known form.
    #[error("Authorization header is missing or malformed")]
    MissingAuthorization,
    /// The AccessKeyId is not in the key map.
    #[error("AccessKeyId {0} is not known to the emulator")]
    UnknownAccessKey(String),
    /// The signature does not match.
    #[error("signature does not match; server string to sign: {0:?}")]
    SignatureMismatch(String),
    /// v1 without a `Date` header.
    #[error("Date header is missing")]
    MissingDate,
}

impl AuthError {
    /// The SLS `errorCode` and HTTP status for this failure.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            Self::MissingAuthorization => ("Unauthorized", 401),
            Self::UnknownAccessKey(_) => ("InvalidAccessKeyId", 401),
            Self::SignatureMismatch(_) => ("SignatureNotMatch", 401),
            Self::MissingDate => ("MissingDate", 400),
        }
    }
}

fn is_signed_log_header(name: &str) -> bool {
    name.starts_with("x-acs-") || (name.starts_with("x-log-") && !name.starts_with("x-log-meta-"))
}

/// The v1 string to sign (§1.3).
pub fn v1_string_to_sign(parts: &SignedParts<'_>) -> String {
    let mut s = String::with_capacity(256);
    s.push_str(parts.method);
    s.push('\n');
    s.push_str(parts.header("content-md5").unwrap_or(""));
    s.push('\n');
    s.push_str(parts.header("content-type").unwrap_or(""));
    s.push('\n');
    s.push_str(
        parts
            .header("date")
            .or_else(|| parts.header("x-log-date"))
            .unwrap_or(""),
    );
    s.push('\n');
    let mut signed: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter(|(k, _)| is_signed_log_header(k) && k != "x-log-date")
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    signed.sort();
    for (k, v) in signed {
        s.push_str(k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(parts.path);
    if !parts.query.is_empty() {
        let mut q: Vec<&(String, String)> = parts.query.iter().collect();
        q.sort_by(|a, b| a.0.cmp(&b.0));
        s.push('?');
        for (i, (k, v)) in q.into_iter().enumerate() {
            if i > 0 {
                s.push('&');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn v1_signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn v4_uri_encode(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The v4 canonical request (§1.4).
pub fn v4_canonical_request(parts: &SignedParts<'_>) -> (String, String) {
    let mut headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter(|(k, _)| k == "host" || k == "content-type" || is_signed_log_header(k))
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    headers.sort();
    let signed_names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed_names = signed_names.join(";");
    let mut q: Vec<&(String, String)> = parts.query.iter().collect();
    q.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::with_capacity(512);
    s.push_str(parts.method);
    s.push('\n');
    s.push_str(parts.path);
    s.push('\n');
    for (i, (k, v)) in q.into_iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        if !v.is_empty() {
            s.push('=');
            v4_uri_encode(v, &mut s);
        }
    }
    s.push('\n');
    for (k, v) in &headers {
        s.push_str(k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&signed_names);
    s.push('\n');
    s.push_str(parts.header("x-log-content-sha256").unwrap_or(EMPTY_SHA256));
    (s, signed_names)
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The v4 signature (lower-case hex) for `parts`, given the request's `x-log-date`
/// datetime (`YYYYMMDDTHHMMSSZ`) and region.
pub fn v4_signature(secret: &str, region: &str, datetime: &str, parts: &SignedParts<'_>) -> String {
    let date = datetime.get(..8).unwrap_or(datetime);
    let (canonical, _) = v4_canonical_request(parts);
    let scope = format!("{date}/{region}/sls/aliyun_v4_request");
    let string_to_sign = format!(
        "SLS4-HMAC-SHA256\n{datetime}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k1 = hmac256(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    let k2 = hmac256(&k1, region.as_bytes());
    let k3 = hmac256(&k2, b"sls");
    let k4 = hmac256(&k3, b"aliyun_v4_request");
    hex(&hmac256(&k4, string_to_sign.as_bytes()))
}

/// Constant-time-ish comparison (timing is not a concern for a test emulator, but it costs
/// nothing).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks the request's `Authorization` against `keys` (AccessKeyId → secret).
///
/// # Errors
/// [`AuthError`] naming why the request is refused.
pub fn verify(keys: &HashMap<String, String>, parts: &SignedParts<'_>) -> Result<(), AuthError> {
    let auth = parts
        .header("authorization")
        .ok_or(AuthError::MissingAuthorization)?;
    if let Some(rest) = auth.strip_prefix("LOG ") {
        let (ak, sig) = rest
            .trim()
            .rsplit_once(':')
            .ok_or(AuthError::MissingAuthorization)?;
        let secret = keys
            .get(ak)
            .ok_or_else(|| AuthError::UnknownAccessKey(ak.to_owned()))?;
        if parts.header("date").is_none() && parts.header("x-log-date").is_none() {
            return Err(AuthError::MissingDate);
        }
        let sts = v1_string_to_sign(parts);
        if same(&v1_signature(secret, &sts), sig) {
            Ok(())
        } else {
            Err(AuthError::SignatureMismatch(sts))
        }
    } else if let Some(rest) = auth.strip_prefix("SLS4-HMAC-SHA256 ") {
        // Credential={ak}/{date}/{region}/sls/aliyun_v4_request,Signature={hex}
        let mut credential = None;
        let mut signature = None;
        for item in rest.split(',') {
            let item = item.trim();
            if let Some(v) = item.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = item.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let (credential, signature) = credential
            .zip(signature)
            .ok_or(AuthError::MissingAuthorization)?;
        let mut it = credential.split('/');
        let ak = it.next().unwrap_or("");
        let _date = it.next();
        let region = it.next().ok_or(AuthError::MissingAuthorization)?;
        let secret = keys
            .get(ak)
            .ok_or_else(|| AuthError::UnknownAccessKey(ak.to_owned()))?;
        let datetime = parts.header("x-log-date").ok_or(AuthError::MissingDate)?;
        let expected = v4_signature(secret, region, datetime, parts);
        if same(&expected, signature) {
            Ok(())
        } else {
            Err(AuthError::SignatureMismatch(v4_canonical_request(parts).0))
        }
    } else {
        Err(AuthError::MissingAuthorization)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn v1(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        secret: &str,
    ) -> String {
        let q = h(query);
        let hd = h(headers);
        let parts = SignedParts {
            method,
            path,
            query: &q,
            headers: &hd,
        };
        v1_signature(secret, &v1_string_to_sign(&parts))
    }

    const GO_DATE: &str = "Mon, 3 Jan 2010 08:33:47 GMT";
    const PY_DATE: &str = "Tue, 04 Nov 2025 08:00:00 GMT";

    #[test]
    fn vector_a_go_list_logstores() {
        let sig = v1(
            "GET",
            "/logstores",
            &[],
            &[
                ("date", GO_DATE),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-bodyrawsize", "0"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ],
            "mockAccessKeySecret",
        );
        assert_eq!(sig, "Rwm6cTKzoti4HWoe+GKcb6Kv07E=");
    }

    #[test]
    fn vector_b_go_with_body() {
        let sig = v1(
            "GET",
            "/logstores/app_log",
            &[],
            &[
                ("date", GO_DATE),
                ("content-type", "application/x-protobuf"),
                ("content-md5", "8D6881250FF5559F59BBDF04100F6E59"),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-bodyrawsize", "50"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ],
            "mockAccessKeySecret",
        );
        assert_eq!(sig, "87xQWqFaOSewqRIma8kPjGYlXHc=");
    }

    #[test]
    fn vector_c_python_pull_logs() {
        let q = h(&[("type", "log"), ("cursor", "MTAwMA=="), ("count", "1000")]);
        let hd = h(&[
            ("date", PY_DATE),
            ("x-log-date", PY_DATE),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ]);
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert_eq!(
            v1_string_to_sign(&parts),
            format!(
                "GET\n\n\n{PY_DATE}\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:0\nx-log-signaturemethod:hmac-sha1\n/logstores/ls/shards/0?count=1000&cursor=MTAwMA==&type=log"
            )
        );
        assert_eq!(
            v1_signature("my-ak-secret", &v1_string_to_sign(&parts)),
            "z9DLtiIYQSxGWoZF1jnIrXYpTvY="
        );
    }

    #[test]
    fn vector_d_python_heartbeat() {
        let sig = v1(
            "POST",
            "/logstores/ls/consumergroups/cg",
            &[("type", "heartbeat"), ("consumer", "c1")],
            &[
                ("date", PY_DATE),
                ("content-type", "application/json"),
                ("content-md5", "264884439B70AB09A86BC848421C6DE6"),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ],
            "my-ak-secret",
        );
        assert_eq!(sig, "ny8bj6UuRf0LWaDQaDQoSpjfR3A=");
    }

    #[test]
    fn vector_e_python_checkpoint_with_sts_token() {
        let sig = v1(
            "POST",
            "/logstores/ls/consumergroups/cg",
            &[
                ("type", "checkpoint"),
                ("consumer", "c1"),
                ("forceSuccess", "True"),
            ],
            &[
                ("date", PY_DATE),
                ("content-type", "application/json"),
                ("content-md5", "B322AC79654280295407B66344ACFF5D"),
                ("x-acs-security-token", "tok123"),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ],
            "my-ak-secret",
        );
        assert_eq!(sig, "AGmiy6vqLBBnDfEI/UeP8w+MDvI=");
    }

    #[test]
    fn vector_f_rust_sdk() {
        let sig = v1(
            "POST",
            "/logstores/test-logstore",
            &[("type", "log"), ("offset", "0"), ("line", "100")],
            &[
                ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("content-type", "application/json"),
                ("content-md5", "CE688F8D1AC3ED309BA9BE0A5ABAFCE5"),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ],
            "test-access-key",
        );
        assert_eq!(sig, "4pL2xZJERC3tPKtRiHh9+nMG3tI=");
    }

    #[test]
    fn v4_go_vector() {
        let body_hash = hex(&Sha256::digest(b"adasd= -asd zcas"));
        let hd = h(&[
            ("x-log-date", "20220808T032330Z"),
            ("x-log-content-sha256", &body_hash),
        ]);
        let parts = SignedParts {
            method: "POST",
            path: "/logstores",
            query: &[],
            headers: &hd,
        };
        assert_eq!(
            v4_signature("zxasdasdasw2", "cn-shanghai", "20220808T032330Z", &parts),
            "8a10a5e723cb2e75964816de660b2c16a58af8bc0261f7f0722d832468c76ce8"
        );
    }

    #[test]
    fn v4_python_pull_logs_vector() {
        let q = h(&[("type", "log"), ("cursor", "MTAwMA=="), ("count", "1000")]);
        let hd = h(&[
            ("host", "proj.cn-hangzhou.log.aliyuncs.com"),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-content-sha256", EMPTY_SHA256),
            ("x-log-date", "20251104T080000Z"),
        ]);
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert_eq!(
            v4_signature("my-ak-secret", "cn-hangzhou", "20251104T080000Z", &parts),
            "0d761ff6944f6d79ccac8e9feb467d5f40c9cbafd63e91f5209a575c5109be86"
        );
    }

    #[test]
    fn verify_accepts_good_and_names_bad_signatures() {
        let keys = HashMap::from([("my-ak-id".to_string(), "my-ak-secret".to_string())]);
        let q = h(&[("type", "log"), ("cursor", "MTAwMA=="), ("count", "1000")]);
        let mut hd = h(&[
            ("date", PY_DATE),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("authorization", "LOG my-ak-id:z9DLtiIYQSxGWoZF1jnIrXYpTvY="),
        ]);
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert_eq!(verify(&keys, &parts), Ok(()));
        hd[4].1 = "LOG my-ak-id:AAAAtiIYQSxGWoZF1jnIrXYpTvY=".into();
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert!(matches!(
            verify(&keys, &parts),
            Err(AuthError::SignatureMismatch(_))
        ));
        hd[4].1 = "LOG other:z9DLtiIYQSxGWoZF1jnIrXYpTvY=".into();
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert_eq!(
            verify(&keys, &parts),
            Err(AuthError::UnknownAccessKey("other".into()))
        );
        hd.pop();
        let parts = SignedParts {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &q,
            headers: &hd,
        };
        assert_eq!(verify(&keys, &parts), Err(AuthError::MissingAuthorization));
    }
}
