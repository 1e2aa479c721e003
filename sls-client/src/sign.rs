//! Request signing, version 1 (HMAC-SHA1), protocol notes §1.3 — what every
//! Alibaba SDK sends by default.
//!
//! String to sign: `METHOD\nCONTENT-MD5\nCONTENT-TYPE\nDATE\n`, then every
//! `x-log-*`/`x-acs-*` header as `name:value\n` (names lower-cased, sorted),
//! then the path and, if there is a query, `?` and `key=value` pairs sorted
//! by key with the *raw* (not URL-encoded) values. The signature is
//! base64(HMAC-SHA1(secret, string)); the header is
//! `Authorization: LOG {AccessKeyId}:{signature}`.
//!
//! Version 4 (SLS4-HMAC-SHA256, §1.4) is here too, for accounts whose
//! policy requires it ([`crate::Auth::V4`], with a region): a
//! canonical request over the method, path, RFC 3986-encoded query, the
//! `host`, `content-type`, `x-log-*` and `x-acs-*` headers and the body's
//! SHA-256, signed with a key derived from the secret, date, region and
//! service.
//!
//! Only the canonical forms live here; which headers a request carries is
//! `client.rs`'s business.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// The parts of a request that v1 signs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'a str,
    /// Uppercase hex MD5 of the body, or empty.
    pub content_md5: &'a str,
    /// The `Content-Type` header as sent, or empty.
    pub content_type: &'a str,
    /// The `Date` header (RFC 1123).
    pub date: &'a str,
    /// Every header whose name starts with `x-log-` or `x-acs-`, names in
    /// lower case; any order.
    pub headers: &'a [(&'a str, &'a str)],
    /// The URL path, e.g. `/logstores/ls/shards/0`.
    pub path: &'a str,
    /// Query parameters with raw (decoded) values; any order.
    pub query: &'a [(&'a str, &'a str)],
}

/// The v1 string to sign.
pub(crate) fn string_to_sign(r: &Signed<'_>) -> String {
    let mut s = String::with_capacity(256);
    for part in [r.method, r.content_md5, r.content_type, r.date] {
        s.push_str(part);
        s.push('\n');
    }
    let mut headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .filter(|(k, _)| {
            (k.starts_with("x-log-") || k.starts_with("x-acs-")) && !k.starts_with("x-log-meta-")
        })
        .map(|(k, v)| (*k, v.trim()))
        .collect();
    headers.sort_unstable();
    for (k, v) in headers {
        s.push_str(k);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s.push_str(r.path);
    if !r.query.is_empty() {
        let mut q: Vec<(&str, &str)> = r.query.to_vec();
        q.sort_unstable();
        s.push('?');
        for (i, (k, v)) in q.iter().enumerate() {
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

/// base64(HMAC-SHA1(secret, string_to_sign)).
pub(crate) fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value.
pub(crate) fn authorization(access_key_id: &str, secret: &str, r: &Signed<'_>) -> String {
    format!(
        "LOG {access_key_id}:{}",
        signature(secret, &string_to_sign(r))
    )
}

/// Uppercase hex MD5, as `Content-MD5` carries it.
pub(crate) fn content_md5(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
    }
    s
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// Lowercase hex SHA-256 of a body (`x-log-content-sha256`).
pub(crate) fn content_sha256(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The parts of a request that v4 signs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedV4<'a> {
    /// `GET`, `POST`, ….
    pub method: &'a str,
    /// The URL path.
    pub path: &'a str,
    /// Query parameters with raw values; any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers with lower-case names; `host`, `content-type`, `x-log-*`
    /// (but `x-log-meta-*`) and `x-acs-*` are signed, others ignored. Must
    /// include `x-log-date` and `x-log-content-sha256`.
    pub headers: &'a [(&'a str, &'a str)],
}

fn v4_encode(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
}

/// The v4 canonical request and the signed-headers list.
pub(crate) fn v4_canonical_request(r: &SignedV4<'_>) -> (String, String) {
    let mut headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .filter(|(k, _)| {
            *k == "host"
                || *k == "content-type"
                || ((k.starts_with("x-log-") || k.starts_with("x-acs-"))
                    && !k.starts_with("x-log-meta-"))
        })
        .map(|(k, v)| (*k, v.trim()))
        .collect();
    headers.sort_unstable();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let mut query: Vec<(&str, &str)> = r.query.to_vec();
    query.sort_unstable();
    let mut s = String::with_capacity(512);
    s.push_str(r.method);
    s.push('\n');
    s.push_str(r.path);
    s.push('\n');
    for (i, (k, v)) in query.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(k);
        if !v.is_empty() {
            s.push('=');
            v4_encode(v, &mut s);
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
    s.push_str(&signed);
    s.push('\n');
    let payload = headers
        .iter()
        .find(|(k, _)| *k == "x-log-content-sha256")
        .map_or("", |(_, v)| *v);
    s.push_str(payload);
    (s, signed)
}

/// The v4 signature (lowercase hex) for `datetime` = `YYYYMMDDTHHMMSSZ`.
pub(crate) fn v4_signature(secret: &str, region: &str, datetime: &str, r: &SignedV4<'_>) -> String {
    let date = datetime.get(..8).unwrap_or(datetime);
    let scope = format!("{date}/{region}/sls/aliyun_v4_request");
    let (canonical, _) = v4_canonical_request(r);
    let to_sign = format!(
        "SLS4-HMAC-SHA256\n{datetime}\n{scope}\n{}",
        content_sha256(canonical.as_bytes())
    );
    let k1 = hmac256(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    let k2 = hmac256(&k1, region.as_bytes());
    let k3 = hmac256(&k2, b"sls");
    let k4 = hmac256(&k3, b"aliyun_v4_request");
    hex(&hmac256(&k4, to_sign.as_bytes()))
}

/// The v4 `Authorization` header value.
pub(crate) fn v4_authorization(
    access_key_id: &str,
    secret: &str,
    region: &str,
    datetime: &str,
    r: &SignedV4<'_>,
) -> String {
    let date = datetime.get(..8).unwrap_or(datetime);
    format!(
        "SLS4-HMAC-SHA256 Credential={access_key_id}/{date}/{region}/sls/aliyun_v4_request,Signature={}",
        v4_signature(secret, region, datetime, r)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        ("x-log-apiversion", "0.6.0"),
        ("x-log-signaturemethod", "hmac-sha1"),
    ];

    fn sig(secret: &str, r: Signed<'_>) -> String {
        signature(secret, &string_to_sign(&r))
    }

    #[test]
    fn vector_a_go_list_logstores() {
        let h = [BASE[0], ("x-log-bodyrawsize", "0"), BASE[1]];
        let r = Signed {
            method: "GET",
            content_md5: "",
            content_type: "",
            date: "Mon, 3 Jan 2010 08:33:47 GMT",
            headers: &h,
            path: "/logstores",
            query: &[],
        };
        assert_eq!(
            sig("mockAccessKeySecret", r),
            "Rwm6cTKzoti4HWoe+GKcb6Kv07E="
        );
    }

    #[test]
    fn vector_b_go_with_body() {
        let body = [
            0x0a, 0x32, 0x0a, 0x1e, 0x08, 0xf8, 0xb2, 0x93, 0x9e, 0x05, 0x12, 0x16, 0x0a, 0x07,
            0x54, 0x65, 0x73, 0x74, 0x4b, 0x65, 0x79, 0x12, 0x0b, 0x54, 0x65, 0x73, 0x74, 0x43,
            0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x1a, 0x00, 0x22, 0x0e, 0x31, 0x30, 0x2e, 0x32,
            0x33, 0x30, 0x2e, 0x32, 0x30, 0x31, 0x2e, 0x31, 0x31, 0x37,
        ];
        let md5 = content_md5(&body);
        assert_eq!(md5, "8D6881250FF5559F59BBDF04100F6E59");
        let h = [BASE[0], ("x-log-bodyrawsize", "50"), BASE[1]];
        let r = Signed {
            method: "GET",
            content_md5: &md5,
            content_type: "application/x-protobuf",
            date: "Mon, 3 Jan 2010 08:33:47 GMT",
            headers: &h,
            path: "/logstores/app_log",
            query: &[],
        };
        assert_eq!(
            sig("mockAccessKeySecret", r),
            "87xQWqFaOSewqRIma8kPjGYlXHc="
        );
    }

    #[test]
    fn vector_c_python_pull_logs_sorts_the_query_and_keeps_raw_values() {
        let h = [("x-log-bodyrawsize", "0"), BASE[1], BASE[0]];
        let r = Signed {
            method: "GET",
            content_md5: "",
            content_type: "",
            date: "Tue, 04 Nov 2025 08:00:00 GMT",
            headers: &h,
            path: "/logstores/ls/shards/0",
            query: &[("type", "log"), ("cursor", "MTAwMA=="), ("count", "1000")],
        };
        assert_eq!(
            string_to_sign(&r),
            "GET\n\n\nTue, 04 Nov 2025 08:00:00 GMT\nx-log-apiversion:0.6.0\n\
             x-log-bodyrawsize:0\nx-log-signaturemethod:hmac-sha1\n\
             /logstores/ls/shards/0?count=1000&cursor=MTAwMA==&type=log"
        );
        assert_eq!(sig("my-ak-secret", r), "z9DLtiIYQSxGWoZF1jnIrXYpTvY=");
        assert_eq!(
            authorization("my-ak-id", "my-ak-secret", &r),
            "LOG my-ak-id:z9DLtiIYQSxGWoZF1jnIrXYpTvY="
        );
    }

    #[test]
    fn vector_d_python_heartbeat() {
        assert_eq!(content_md5(b"[0, 1]"), "264884439B70AB09A86BC848421C6DE6");
        let r = Signed {
            method: "POST",
            content_md5: "264884439B70AB09A86BC848421C6DE6",
            content_type: "application/json",
            date: "Tue, 04 Nov 2025 08:00:00 GMT",
            headers: &BASE,
            path: "/logstores/ls/consumergroups/cg",
            query: &[("type", "heartbeat"), ("consumer", "c1")],
        };
        assert_eq!(sig("my-ak-secret", r), "ny8bj6UuRf0LWaDQaDQoSpjfR3A=");
    }

    #[test]
    fn vector_e_python_checkpoint_signs_the_security_token() {
        let body = br#"{"shard": 0, "checkpoint": "MTAwMQ=="}"#;
        assert_eq!(content_md5(body), "B322AC79654280295407B66344ACFF5D");
        let h = [BASE[0], BASE[1], ("x-acs-security-token", "tok123")];
        let r = Signed {
            method: "POST",
            content_md5: "B322AC79654280295407B66344ACFF5D",
            content_type: "application/json",
            date: "Tue, 04 Nov 2025 08:00:00 GMT",
            headers: &h,
            path: "/logstores/ls/consumergroups/cg",
            query: &[
                ("type", "checkpoint"),
                ("consumer", "c1"),
                ("forceSuccess", "True"),
            ],
        };
        assert_eq!(sig("my-ak-secret", r), "AGmiy6vqLBBnDfEI/UeP8w+MDvI=");
    }

    #[test]
    fn vector_f_rust_sdk() {
        let r = Signed {
            method: "POST",
            content_md5: "CE688F8D1AC3ED309BA9BE0A5ABAFCE5",
            content_type: "application/json",
            date: "Thu, 01 Jan 1970 00:00:00 GMT",
            headers: &BASE,
            path: "/logstores/test-logstore",
            query: &[("type", "log"), ("offset", "0"), ("line", "100")],
        };
        assert_eq!(sig("test-access-key", r), "4pL2xZJERC3tPKtRiHh9+nMG3tI=");
    }

    #[test]
    fn meta_headers_and_other_headers_are_not_signed() {
        let h = [
            BASE[0],
            BASE[1],
            ("x-log-meta-foo", "bar"),
            ("user-agent", "x"),
        ];
        let with = Signed {
            method: "GET",
            content_md5: "",
            content_type: "",
            date: "d",
            headers: &h,
            path: "/",
            query: &[],
        };
        let without = Signed {
            headers: &BASE,
            ..with
        };
        assert_eq!(string_to_sign(&with), string_to_sign(&without));
    }

    #[test]
    fn v4_go_vector() {
        let body_hash = content_sha256(b"adasd= -asd zcas");
        let h = [
            ("x-log-date", "20220808T032330Z"),
            ("x-log-content-sha256", body_hash.as_str()),
        ];
        let r = SignedV4 {
            method: "POST",
            path: "/logstores",
            query: &[],
            headers: &h,
        };
        assert_eq!(
            v4_signature("zxasdasdasw2", "cn-shanghai", "20220808T032330Z", &r),
            "8a10a5e723cb2e75964816de660b2c16a58af8bc0261f7f0722d832468c76ce8"
        );
    }

    #[test]
    fn v4_python_pull_logs_vector_encodes_the_query_and_signs_host() {
        let empty = content_sha256(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let h = [
            ("host", "proj.cn-hangzhou.log.aliyuncs.com"),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-content-sha256", empty.as_str()),
            ("x-log-date", "20251104T080000Z"),
            ("user-agent", "not signed"),
        ];
        let r = SignedV4 {
            method: "GET",
            path: "/logstores/ls/shards/0",
            query: &[("type", "log"), ("cursor", "MTAwMA=="), ("count", "1000")],
            headers: &h,
        };
        let (canonical, signed) = v4_canonical_request(&r);
        assert!(
            canonical.contains("count=1000&cursor=MTAwMA%3D%3D&type=log"),
            "{canonical}"
        );
        assert_eq!(
            signed,
            "host;x-log-apiversion;x-log-bodyrawsize;x-log-content-sha256;x-log-date"
        );
        assert_eq!(
            v4_signature("my-ak-secret", "cn-hangzhou", "20251104T080000Z", &r),
            "0d761ff6944f6d79ccac8e9feb467d5f40c9cbafd63e91f5209a575c5109be86"
        );
        assert!(v4_authorization("my-ak-id", "my-ak-secret", "cn-hangzhou", "20251104T080000Z", &r)
            .starts_with("SLS4-HMAC-SHA256 Credential=my-ak-id/20251104/cn-hangzhou/sls/aliyun_v4_request,Signature=0d761ff6"));
    }
}
