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
//! Only the canonical form lives here; which headers a request carries is
//! `client.rs`'s business. v4 is not implemented: every SDK defaults to v1
//! and the service accepts it in every region.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// The parts of a request that v1 signs.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
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
pub fn string_to_sign(r: &Signed<'_>) -> String {
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
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value.
pub fn authorization(access_key_id: &str, secret: &str, r: &Signed<'_>) -> String {
    format!(
        "LOG {access_key_id}:{}",
        signature(secret, &string_to_sign(r))
    )
}

/// Uppercase hex MD5, as `Content-MD5` carries it.
pub fn content_md5(body: &[u8]) -> String {
    let digest = Md5::digest(body);
    let mut s = String::with_capacity(32);
    for b in digest {
        s.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
    }
    s
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
}
