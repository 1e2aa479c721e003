//! HTTP-level tests against an in-process emulator: raw request bytes in, status, headers
//! and bodies checked. A raw client (not an SDK) so the exact wire shape is under test,
//! including absolute-form request lines and dropped connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use prost::Message as _;
use sls_emulator::auth::{v1_signature, v1_string_to_sign, SignedParts};
use sls_emulator::compress::Compression;
use sls_emulator::proto::{Content, Log, LogGroup, LogGroupList};
use sls_emulator::{cursor, Emulator, RunningEmulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("missing header {name}: {self:?}"))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn error_code(&self) -> String {
        self.json()["errorCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A request to send; `sign` = Some((ak, secret)) adds a v1 signature.
struct Request<'a> {
    method: &'a str,
    path: String,
    query: Vec<(&'a str, String)>,
    host: &'a str,
    headers: Vec<(&'a str, String)>,
    body: Vec<u8>,
    sign: Option<(&'a str, &'a str)>,
    absolute_form: bool,
}

impl<'a> Request<'a> {
    fn new(method: &'a str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: vec![],
            host: "proj.127.0.0.1",
            headers: vec![],
            body: vec![],
            sign: None,
            absolute_form: false,
        }
    }

    fn path_owned(mut self, path: String) -> Self {
        self.path = path;
        self
    }

    fn q(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }

    fn header(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    fn json(mut self, body: serde_json::Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.header("Content-Type", "application/json")
    }

    async fn send(self, addr: SocketAddr) -> Option<Resp> {
        let mut headers = self.headers.clone();
        headers.push(("x-log-apiversion", "0.6.0".into()));
        headers.push((
            "Date",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        ));
        if !self.body.is_empty() {
            use md5::{Digest as _, Md5};
            let md5: String = Md5::digest(&self.body)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            headers.push(("Content-MD5", md5));
        }
        if let Some((ak, secret)) = self.sign {
            headers.push(("x-log-signaturemethod", "hmac-sha1".into()));
            let lower: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let q: Vec<(String, String)> = self
                .query
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let parts = SignedParts {
                method: self.method,
                path: &self.path,
                query: &q,
                headers: &lower,
            };
            let sig = v1_signature(secret, &v1_string_to_sign(&parts));
            headers.push(("Authorization", format!("LOG {ak}:{sig}")));
        }
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.query)
            .finish();
        let target = format!(
            "{}{}{}",
            self.path,
            if query.is_empty() { "" } else { "?" },
            query
        );
        let target = if self.absolute_form {
            format!("http://{}:{}{target}", self.host, addr.port())
        } else {
            target
        };
        let mut raw = format!(
            "{} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.host
        );
        for (k, v) in &headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(&self.body);
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&bytes).await.expect("write");
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("response in time")
            .ok()?;
        if buf.is_empty() {
            return None;
        }
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = String::from_utf8_lossy(&buf[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect();
        Some(Resp {
            status,
            headers,
            body: buf[split + 4..].to_vec(),
        })
    }
}

async fn emulator() -> RunningEmulator {
    Emulator::builder()
        .logstore("proj", "store", 2)
        .start()
        .await
        .expect("start")
}

fn group(seq: u32) -> LogGroup {
    LogGroup {
        logs: vec![Log {
            time: 1_700_000_000 + seq,
            contents: vec![Content {
                key: b"seq".to_vec(),
                value: seq.to_string().into_bytes(),
            }],
            time_ns: Some(seq),
        }],
        topic: Some(b"topic".to_vec()),
        source: Some(b"10.1.2.3".to_vec()),
        ..Default::default()
    }
}

async fn begin_cursor(addr: SocketAddr, shard: u32) -> String {
    let r = Request::new("GET", &format!("/logstores/store/shards/{shard}"))
        .q("type", "cursor")
        .q("from", "begin")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["cursor"].as_str().expect("cursor").to_owned()
}

#[tokio::test]
async fn list_shards_via_absolute_form_takes_project_from_host() {
    let emu = emulator().await;
    let mut req = Request::new("GET", "/logstores/store/shards");
    req.absolute_form = true;
    req.host = "proj.sls.example.test";
    let r = req.send(emu.addr()).await.expect("resp");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.h("content-type"), "application/json");
    assert!(!r.h("x-log-requestid").is_empty());
    let shards = r.json();
    assert_eq!(shards.as_array().map(Vec::len), Some(2));
    assert_eq!(shards[0]["status"], "readwrite");
    assert_eq!(
        shards[0]["inclusiveBeginKey"],
        "00000000000000000000000000000000"
    );
    assert_eq!(
        shards[1]["inclusiveBeginKey"],
        "80000000000000000000000000000000"
    );
    assert!(shards[0]["createTime"].is_i64());
    let mut other = Request::new("GET", "/logstores/store/shards");
    other.host = "other.127.0.0.1";
    let r = other.send(emu.addr()).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (200, ""),
        "auto-created project: {r:?}"
    );
}

#[tokio::test]
async fn signatures_are_checked_with_the_real_error_shape() {
    let emu = Emulator::builder()
        .access_key("ak", "secret")
        .logstore("proj", "store", 1)
        .start()
        .await
        .expect("start");
    let mut ok = Request::new("GET", "/logstores/store/shards");
    ok.sign = Some(("ak", "secret"));
    assert_eq!(ok.send(emu.addr()).await.expect("resp").status, 200);

    let mut bad = Request::new("GET", "/logstores/store/shards").q("x", "1");
    bad.sign = Some(("ak", "wrong"));
    let r = bad.send(emu.addr()).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "SignatureNotMatch"),
        "{r:?}"
    );
    assert!(r.json()["errorMessage"]
        .as_str()
        .is_some_and(|m| m.contains("/logstores/store/shards?x=1")));

    let mut unknown = Request::new("GET", "/logstores/store/shards");
    unknown.sign = Some(("nobody", "secret"));
    assert_eq!(
        unknown.send(emu.addr()).await.expect("resp").error_code(),
        "InvalidAccessKeyId"
    );
    let r = Request::new("GET", "/logstores/store/shards")
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!((r.status, r.error_code().as_str()), (401, "Unauthorized"));

    let mut no_version = Request::new("GET", "/logstores/store/shards");
    no_version.sign = Some(("ak", "secret"));
    no_version
        .headers
        .push(("x-log-apiversion", "0.5.0".into()));
    let r = no_version.send(emu.addr()).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "InvalidAPIVersion"),
        "{r:?}"
    );

    let mut skewed = Request::new("GET", "/logstores/store/shards");
    skewed.sign = Some(("ak", "secret"));
    // The signed Date is replaced by an old one: signature and skew checks both see it.
    skewed
        .headers
        .push(("Date", "Mon, 01 Jan 2001 00:00:00 GMT".into()));
    let r = skewed.send(emu.addr()).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "RequestTimeTooSkewed"),
        "{r:?}"
    );
}

#[tokio::test]
async fn pull_logs_serves_every_compression_with_sls_headers() {
    let emu = emulator().await;
    let groups: Vec<LogGroup> = (0..5).map(group).collect();
    emu.append("proj", "store", 0, &groups).expect("append");
    let begin = begin_cursor(emu.addr(), 0).await;
    for (accept, want) in [
        ("lz4", Some("lz4")),
        ("zstd", Some("zstd")),
        ("gzip, deflate", Some("deflate")),
        ("", None),
    ] {
        let r = Request::new("GET", "/logstores/store/shards/0")
            .q("type", "log")
            .q("cursor", begin.clone())
            .q("count", "3")
            .header("Accept", "application/x-protobuf")
            .header("Accept-Encoding", accept)
            .send(emu.addr())
            .await
            .expect("resp");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.headers.get("x-log-compresstype").map(String::as_str),
            want
        );
        assert!(!r.headers.contains_key("content-encoding"));
        assert_eq!(r.h("x-log-count"), "3");
        let raw_size: usize = r.h("x-log-bodyrawsize").parse().expect("size");
        let kind = Compression::from_header(want.unwrap_or("")).expect("kind");
        let raw = kind
            .decompress(&r.body, Some(raw_size))
            .expect("decompress");
        let list = LogGroupList::decode(raw.as_slice()).expect("LogGroupList");
        assert_eq!(list.log_groups, groups[..3].to_vec());
        let next = cursor::decode(r.h("x-log-cursor")).expect("cursor");
        assert_eq!(next, cursor::decode(&begin).expect("begin") + 3);
        assert_eq!(r.h("x-log-read-last-cursor"), (next - 1).to_string());
    }
    // With end_cursor, and at the end: nothing, same cursor.
    let b = cursor::decode(&begin).expect("begin");
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "logs")
        .q("cursor", begin.clone())
        .q("count", "1000")
        .q("end_cursor", cursor::encode(b + 2))
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(r.h("x-log-count"), "2");
    let end = cursor::encode(b + 5);
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "log")
        .q("cursor", end.clone())
        .q("count", "10")
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(
        (
            r.h("x-log-count"),
            r.h("x-log-bodyrawsize"),
            r.h("x-log-cursor")
        ),
        ("0", "0", end.as_str())
    );
    assert_eq!(r.h("x-log-end-of-cursor"), "1");
    assert!(r.body.is_empty());
    for bad in ["0", "1001", "x"] {
        let r = Request::new("GET", "/logstores/store/shards/0")
            .q("type", "log")
            .q("cursor", begin.clone())
            .q("count", bad)
            .send(emu.addr())
            .await
            .expect("resp");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "ParameterInvalid"),
            "count={bad}"
        );
    }
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "log")
        .q("cursor", cursor::encode(b + 99))
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!((r.status, r.error_code().as_str()), (400, "InvalidCursor"));
    let r = Request::new("GET", "/logstores/store/shards/9")
        .q("type", "log")
        .q("cursor", begin.clone())
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!((r.status, r.error_code().as_str()), (400, "ShardNotExist"));
    let r = Request::new("GET", "/logstores/nope/shards/0")
        .q("type", "cursor")
        .q("from", "begin")
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(r.status, 200, "auto-create on first use: {r:?}");
    // cursor_time and from=<unix>
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "cursor_time")
        .q("cursor", begin.clone())
        .send(emu.addr())
        .await
        .expect("resp");
    let t = r.json()["cursor_time"].as_i64().expect("time");
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "cursor")
        .q("from", t.to_string())
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(r.json()["cursor"], begin.as_str());
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "cursor")
        .q("from", (t + 3600).to_string())
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(r.json()["cursor"], end.as_str());
}

#[tokio::test]
async fn spl_query_and_processor_filter_and_count_what_they_scanned() {
    let emu = Emulator::builder()
        .logstore("proj", "store", 1)
        .processor(
            "odd",
            "* | where seq like '%1' or seq like '%3' | project seq",
        )
        .start()
        .await
        .expect("start");
    let groups: Vec<LogGroup> = (0..10).map(group).collect();
    emu.append("proj", "store", 0, &groups).expect("append");
    let begin = begin_cursor(emu.addr(), 0).await;
    let pull = |param: &'static str, value: &'static str| {
        Request::new("GET", "/logstores/store/shards/0")
            .q("type", "log")
            .q("cursor", begin.clone())
            .q("count", "4")
            .q(param, value)
            .q("pullMode", "scan_on_stream")
            .header("Accept-Encoding", "lz4")
            .send(emu.addr())
    };
    for (param, value) in [
        ("query", "* | where seq = '1' or seq = '3'"),
        ("processor", "odd"),
    ] {
        let r = pull(param, value).await.expect("resp");
        assert_eq!(r.status, 200, "{r:?}");
        // Four groups scanned, two returned, and the cursor moved past all four.
        assert_eq!(r.h("x-log-count"), "2", "{param}");
        assert_eq!(r.h("x-log-rawdatacount"), "4");
        assert_eq!(r.h("x-log-rawdatalines"), "4");
        assert_eq!(r.h("x-log-resultlines"), "2");
        assert_eq!(r.h("x-log-failedlines"), "0");
        let scanned: usize = r.h("x-log-rawdatasize").parse().expect("size");
        let raw_size: usize = r.h("x-log-bodyrawsize").parse().expect("size");
        assert!(scanned > raw_size, "{scanned} scanned, {raw_size} returned");
        assert!(!r.headers.contains_key("x-log-read-last-cursor"));
        let next = cursor::decode(r.h("x-log-cursor")).expect("cursor");
        assert_eq!(next, cursor::decode(&begin).expect("begin") + 4);
        let raw = Compression::Lz4
            .decompress(&r.body, Some(raw_size))
            .expect("decompress");
        let list = LogGroupList::decode(raw.as_slice()).expect("LogGroupList");
        let seqs: Vec<&[u8]> = list
            .log_groups
            .iter()
            .map(|g| g.logs[0].contents[0].value.as_slice())
            .collect();
        assert_eq!(seqs, [&b"1"[..], b"3"]);
        // The group's own parts stay.
        assert_eq!(list.log_groups[0].topic.as_deref(), Some(&b"topic"[..]));
    }
    // A pull the statement empties still moves the cursor.
    let r = pull("query", "* | where seq = 'none'").await.expect("resp");
    assert_eq!((r.h("x-log-count"), r.h("x-log-resultlines")), ("0", "0"));
    assert_eq!(
        cursor::decode(r.h("x-log-cursor")).expect("cursor"),
        cursor::decode(&begin).expect("begin") + 4
    );
    for (param, value, status, code) in [
        ("processor", "missing", 404, "ConsumeProcessorNotExist"),
        ("query", "* | stats count(*)", 400, "ParameterInvalid"),
    ] {
        let r = pull(param, value).await.expect("resp");
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.json()["errorCode"], code);
    }
}

#[tokio::test]
async fn put_logs_accepts_every_form_and_compression() {
    let emu = emulator().await;
    let raw = group(7).encode_to_vec();
    let forms: [(&str, Option<&str>); 3] = [
        ("/logstores/store/shards/lb", None),
        ("/logstores/store/shards/route", Some("ffff")),
        ("/logstores/store", None),
    ];
    let mut n = 0;
    for (path, key) in forms {
        for kind in [
            Compression::Lz4,
            Compression::Zstd,
            Compression::Deflate,
            Compression::None,
        ] {
            let mut req = Request::new("POST", path)
                .header("Content-Type", "application/x-protobuf")
                .header("x-log-bodyrawsize", raw.len().to_string());
            if let Some(k) = key {
                req = req.q("key", k);
            }
            if let Some(ct) = kind.header_value() {
                req = req.header("x-log-compresstype", ct);
            }
            req.body = kind.compress(&raw);
            let r = req.send(emu.addr()).await.expect("resp");
            assert_eq!(r.status, 200, "{path} {kind:?}: {r:?}");
            assert!(r.body.is_empty());
            n += 1;
        }
    }
    let sizes = emu.shard_sizes("proj", "store").expect("store");
    assert_eq!(sizes.values().sum::<usize>(), n);
    assert!(
        sizes[&1] >= 4,
        "route key ffff… goes to the upper shard: {sizes:?}"
    );

    let mut bad = Request::new("POST", "/logstores/store/shards/lb")
        .header("x-log-compresstype", "snappy")
        .header("x-log-bodyrawsize", "3");
    bad.body = b"abc".to_vec();
    assert_eq!(
        bad.send(emu.addr()).await.expect("resp").error_code(),
        "InvalidCompressType"
    );
    let mut garbage = Request::new("POST", "/logstores/store/shards/lb");
    garbage.body = vec![0xff, 0xff, 0xff];
    assert_eq!(
        garbage.send(emu.addr()).await.expect("resp").error_code(),
        "PostBodyInvalid"
    );
    let mut wrong_md5 = Request::new("POST", "/logstores/store/shards/lb")
        .header("Content-MD5", "00000000000000000000000000000000");
    wrong_md5.body = raw.clone();
    assert_eq!(wrong_md5.send(emu.addr()).await.expect("resp").status, 400);
}

#[tokio::test]
async fn consumer_group_lifecycle_and_rules() {
    let emu = Emulator::builder()
        .logstore("proj", "store", 2)
        .group_quota(2)
        .start()
        .await
        .expect("start");
    let a = emu.addr();
    let create = |name: &str| {
        Request::new("POST", "/logstores/store/consumergroups")
            .json(serde_json::json!({"consumerGroup": name, "timeout": 40, "order": false}))
    };
    assert_eq!(create("g1").send(a).await.expect("resp").status, 200);
    assert_eq!(
        create("g1").send(a).await.expect("resp").error_code(),
        "ConsumerGroupAlreadyExist"
    );
    assert_eq!(create("g2").send(a).await.expect("resp").status, 200);
    assert_eq!(
        create("g3").send(a).await.expect("resp").error_code(),
        "ConsumerGroupQuotaExceed"
    );
    let list = Request::new("GET", "/logstores/store/consumergroups")
        .send(a)
        .await
        .expect("resp")
        .json();
    assert_eq!(
        list,
        serde_json::json!([{"name": "g1", "timeout": 40, "order": false}, {"name": "g2", "timeout": 40, "order": false}])
    );
    let r = Request::new("PUT", "/logstores/store/consumergroups/g1")
        .json(serde_json::json!({"order": true, "timeout": 10}))
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.status, 200);
    let bad = Request::new("POST", "/logstores/store/consumergroups")
        .json(serde_json::json!({"timeout": 10}))
        .send(a)
        .await
        .expect("resp");
    assert_eq!(bad.error_code(), "JsonInfoInvalid");

    let hb = |consumer: &str, body: serde_json::Value| {
        Request::new("POST", "/logstores/store/consumergroups/g1")
            .q("type", "heartbeat")
            .q("consumer", consumer.to_owned())
            .json(body)
    };
    assert_eq!(
        hb("c1", serde_json::json!([]))
            .send(a)
            .await
            .expect("resp")
            .json(),
        serde_json::json!([0, 1])
    );
    assert_eq!(
        hb("c1", serde_json::json!([0, 1]))
            .send(a)
            .await
            .expect("resp")
            .json(),
        serde_json::json!([0, 1])
    );
    let r = hb("ghost", serde_json::json!([0]))
        .send(a)
        .await
        .expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "NotExistConsumerWithBody")
    );

    let r = Request::new("GET", "/logstores/store/consumergroups/g1")
        .q("shard", "0")
        .send(a)
        .await
        .expect("resp");
    let cps = r.json();
    assert_eq!(cps.as_array().map(Vec::len), Some(1));
    assert_eq!(
        cps[0]["checkpoint"], "",
        "existing shard without commit: empty checkpoint"
    );
    let cp = |consumer: &str, force: &str, cursor: &str| {
        Request::new("POST", "/logstores/store/consumergroups/g1")
            .q("type", "checkpoint")
            .q("consumer", consumer.to_owned())
            .q("forceSuccess", force.to_owned())
            .json(serde_json::json!({"shard": 0, "checkpoint": cursor}))
    };
    assert_eq!(
        cp("c1", "false", "MTAwMA==")
            .send(a)
            .await
            .expect("resp")
            .status,
        200
    );
    assert_eq!(
        cp("c2", "false", "MTAwMA==")
            .send(a)
            .await
            .expect("resp")
            .error_code(),
        "ConsumerNotExist"
    );
    assert_eq!(
        cp("c2", "True", "MTAwMQ==")
            .send(a)
            .await
            .expect("resp")
            .status,
        200,
        "Python's forceSuccess=True"
    );
    assert_eq!(
        cp("c1", "true", "not a cursor!")
            .send(a)
            .await
            .expect("resp")
            .error_code(),
        "InvalidShardCheckPoint"
    );
    let all = Request::new("GET", "/logstores/store/consumergroups/g1")
        .send(a)
        .await
        .expect("resp")
        .json();
    assert_eq!(all[0]["checkpoint"], "MTAwMQ==");
    assert_eq!(all[0]["consumer"], "c2");
    assert!(all[0]["updateTime"]
        .as_i64()
        .is_some_and(|t| t > 1_000_000_000_000_000));
    assert_eq!(all[1]["checkpoint"], "");
    let stored = emu.checkpoints("proj", "store", "g1").expect("group");
    assert_eq!(stored[0].checkpoint, "MTAwMQ==");
    // Every update is kept in order, refused ones with their code.
    let log: Vec<(String, String, bool, Option<String>)> = emu
        .checkpoint_updates()
        .into_iter()
        .map(|u| (u.consumer, u.cursor, u.force, u.refused))
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        log,
        vec![
            (s("c1"), s("MTAwMA=="), false, None),
            (s("c2"), s("MTAwMA=="), false, Some(s("ConsumerNotExist"))),
            (s("c2"), s("MTAwMQ=="), true, None),
            (
                s("c1"),
                s("not a cursor!"),
                true,
                Some(s("InvalidShardCheckPoint"))
            ),
        ]
    );
    let over_http = Request::new("GET", "/_emulator/checkpoint-updates")
        .send(a)
        .await
        .expect("resp")
        .json();
    assert_eq!(over_http.as_array().map(Vec::len), Some(4));
    assert_eq!(
        (
            &over_http[1]["group"],
            &over_http[1]["shard"],
            &over_http[1]["consumer"],
            &over_http[1]["refused"]
        ),
        (
            &serde_json::json!("g1"),
            &serde_json::json!(0),
            &serde_json::json!("c2"),
            &serde_json::json!("ConsumerNotExist")
        )
    );
    assert_eq!(over_http[0]["refused"], serde_json::Value::Null);

    assert!(emu.expire_consumer("proj", "store", "g1", "c1"));
    assert_eq!(
        hb("c1", serde_json::json!([0, 1]))
            .send(a)
            .await
            .expect("resp")
            .error_code(),
        "NotExistConsumerWithBody"
    );

    assert_eq!(
        Request::new("DELETE", "/logstores/store/consumergroups/g1")
            .send(a)
            .await
            .expect("resp")
            .status,
        200
    );
    let r = hb("c1", serde_json::json!([])).send(a).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "ConsumerGroupNotExist")
    );
}

#[tokio::test]
async fn injected_faults_fire_and_clear() {
    let emu = emulator().await;
    let a = emu.addr();
    let begin = begin_cursor(a, 0).await;
    let pull = || {
        Request::new("GET", "/logstores/store/shards/0")
            .q("type", "log")
            .q("cursor", begin.clone())
    };
    emu.faults().set_read_throttle_rate(1.0);
    let r = pull().send(a).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "ReadQuotaExceed")
    );
    emu.faults().clear();
    emu.faults().set_server_error_rate(1.0);
    let r = pull().send(a).await.expect("resp");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (500, "InternalServerError")
    );
    emu.faults().clear();
    emu.faults().set_reset_rate(1.0);
    assert!(
        pull().send(a).await.is_none(),
        "connection dropped without a response"
    );
    emu.faults().clear();
    emu.faults()
        .set_latency(Duration::from_millis(200), Duration::ZERO);
    let t = std::time::Instant::now();
    assert_eq!(pull().send(a).await.expect("resp").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    emu.faults().clear();
    // A slow share of 1 delays every request by `slow`.
    emu.faults().set_slow(1.0, Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert_eq!(pull().send(a).await.expect("resp").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    emu.faults().clear();
    // A short pull (set over the control API): half of the four groups
    // there, and the cursor right after them.
    emu.append(
        "proj",
        "store",
        0,
        &[group(1), group(2), group(3), group(4)],
    )
    .expect("append");
    let r = Request::new("PUT", "/_emulator/faults")
        .json(serde_json::json!({"short_pull_rate": 1.0}))
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.status, 200);
    let r = pull().q("count", "10").send(a).await.expect("resp");
    assert_eq!(r.h("x-log-count"), "2", "a short pull returns half");
    let b = cursor::decode(&begin).expect("begin");
    assert_eq!(r.h("x-log-cursor"), cursor::encode(b + 2));
    emu.faults().clear();
    let r = pull().q("count", "10").send(a).await.expect("resp");
    assert_eq!(r.h("x-log-count"), "4", "cleared: all four");
    let fired = emu.faults().counts();
    assert_eq!(
        (
            fired.read_throttles,
            fired.server_errors,
            fired.resets,
            fired.slowed,
            fired.short_pulls
        ),
        (1, 1, 1, 1, 1),
        "each fault that fired was counted once"
    );
    let faults = Request::new("GET", "/_emulator/faults")
        .send(a)
        .await
        .expect("resp")
        .json();
    assert_eq!(
        faults["fired"],
        serde_json::json!({"slowed": 1, "resets": 1, "server_errors": 1, "read_throttles": 1, "write_throttles": 0, "short_pulls": 1, "identity_errors": 0})
    );

    // Cursor expiry: the old begin cursor becomes invalid and begin moves forward.
    emu.append("proj", "store", 0, &[group(1), group(2), group(3)])
        .expect("append");
    let new_begin = emu.expire_groups("proj", "store", 0, 2).expect("expire");
    let r = pull().send(a).await.expect("resp");
    assert_eq!((r.status, r.error_code().as_str()), (400, "InvalidCursor"));
    assert_eq!(begin_cursor(a, 0).await, cursor::encode(new_begin));
}

#[tokio::test]
async fn split_and_merge_over_http_leave_readonly_shards_readable() {
    let emu = emulator().await;
    let a = emu.addr();
    emu.append("proj", "store", 0, &[group(1)]).expect("append");
    let r = Request::new("POST", "/logstores/store/shards/0")
        .q("action", "split")
        .q("key", "40000000000000000000000000000000")
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.status, 200, "{r:?}");
    let shards = r.json();
    let status: Vec<(i64, String)> = shards
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["shardID"].as_i64().unwrap_or(-1),
                s["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        status,
        vec![
            (0, "readonly".into()),
            (1, "readwrite".into()),
            (2, "readwrite".into()),
            (3, "readwrite".into())
        ]
    );
    let begin = begin_cursor(a, 0).await;
    let r = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "log")
        .q("cursor", begin)
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.h("x-log-count"), "1");
    let r = Request::new("POST", "/logstores/store/shards/2")
        .q("action", "merge")
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json().as_array().map(Vec::len), Some(5));
    let r = Request::new("DELETE", "/logstores/store/shards/1")
        .send(a)
        .await
        .expect("resp");
    assert_eq!(r.status, 400, "read-write shards cannot be deleted");
    assert_eq!(
        Request::new("DELETE", "/logstores/store/shards/0")
            .send(a)
            .await
            .expect("resp")
            .status,
        200
    );
}

#[tokio::test]
async fn data_directory_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let emu = Emulator::builder()
        .data_dir(dir.path())
        .logstore("proj", "store", 2)
        .start()
        .await
        .expect("start");
    emu.append("proj", "store", 1, &[group(1), group(2)])
        .expect("append");
    let begin = begin_cursor(emu.addr(), 1).await;
    let create = Request::new("POST", "/logstores/store/consumergroups")
        .json(serde_json::json!({"consumerGroup": "g", "timeout": 40, "order": false}));
    assert_eq!(create.send(emu.addr()).await.expect("resp").status, 200);
    let cp = Request::new("POST", "/logstores/store/consumergroups/g")
        .q("type", "checkpoint")
        .q("forceSuccess", "true")
        .json(serde_json::json!({"shard": 1, "checkpoint": cursor::encode(cursor::decode(&begin).expect("c") + 1)}));
    assert_eq!(cp.send(emu.addr()).await.expect("resp").status, 200);
    // A logstore auto-created by its first PutLogs survives too.
    let mut put = Request::new("POST", "/logstores/fresh/shards/lb");
    put.body = group(9).encode_to_vec();
    assert_eq!(put.send(emu.addr()).await.expect("resp").status, 200);
    emu.shutdown().await;

    let emu = Emulator::builder()
        .data_dir(dir.path())
        .start()
        .await
        .expect("restart");
    assert_eq!(
        emu.shard_sizes("proj", "fresh")
            .map(|s| s.values().sum::<usize>()),
        Some(1)
    );
    assert_eq!(
        begin_cursor(emu.addr(), 1).await,
        begin,
        "cursors are stable across restarts"
    );
    let r = Request::new("GET", "/logstores/store/shards/1")
        .q("type", "log")
        .q("cursor", begin.clone())
        .send(emu.addr())
        .await
        .expect("resp");
    assert_eq!(r.h("x-log-count"), "2");
    let stored = emu
        .checkpoints("proj", "store", "g")
        .expect("group survives");
    assert_eq!(
        stored[1].checkpoint,
        cursor::encode(cursor::decode(&begin).expect("c") + 1)
    );
}

#[tokio::test]
async fn load_writes_repeatable_audit_events() {
    let emu = emulator().await;
    let spec = sls_emulator::LoadSpec {
        logs: 1000,
        logs_per_group: 50,
        ..Default::default()
    };
    assert_eq!(emu.load("proj", "store", &spec).expect("load"), 1000);
    let sizes = emu.shard_sizes("proj", "store").expect("store");
    assert_eq!(sizes.values().copied().collect::<Vec<_>>(), vec![10, 10]);
}

#[tokio::test]
async fn split_shards_reach_consumers_and_a_finished_readonly_shard_is_released() {
    let emu = emulator().await;
    let a = emu.addr();
    let create = Request::new("POST", "/logstores/store/consumergroups")
        .json(serde_json::json!({"consumerGroup": "g", "timeout": 60, "order": true}));
    assert_eq!(create.send(a).await.expect("resp").status, 200);
    let hb = |held: serde_json::Value| {
        Request::new("POST", "/logstores/store/consumergroups/g")
            .q("type", "heartbeat")
            .q("consumer", "c")
            .json(held)
    };
    assert_eq!(
        hb(serde_json::json!([]))
            .send(a)
            .await
            .expect("resp")
            .json(),
        serde_json::json!([0, 1])
    );
    emu.append("proj", "store", 0, &[group(1), group(2)])
        .expect("append");
    emu.split_shard("proj", "store", 0, "40000000000000000000000000000000")
        .expect("split");
    // order=true: children 2 and 3 wait until their parent 0 is finished.
    assert_eq!(
        hb(serde_json::json!([0, 1]))
            .send(a)
            .await
            .expect("resp")
            .json(),
        serde_json::json!([0, 1])
    );
    let end = Request::new("GET", "/logstores/store/shards/0")
        .q("type", "cursor")
        .q("from", "end")
        .send(a)
        .await
        .expect("resp");
    let end = end.json()["cursor"].as_str().expect("cursor").to_owned();
    let cp = Request::new("POST", "/logstores/store/consumergroups/g")
        .q("type", "checkpoint")
        .q("consumer", "c")
        .q("forceSuccess", "false")
        .json(serde_json::json!({"shard": 0, "checkpoint": end}));
    assert_eq!(cp.send(a).await.expect("resp").status, 200);
    assert_eq!(
        hb(serde_json::json!([0, 1]))
            .send(a)
            .await
            .expect("resp")
            .json(),
        serde_json::json!([1, 2, 3])
    );
}

/// A signed ListShards with a temporary key: its status and error code.
async fn list_shards_with(addr: SocketAddr, key: &serde_json::Value, token: &str) -> (u16, String) {
    let id = key["AccessKeyId"].as_str().expect("id");
    let secret = key["AccessKeySecret"].as_str().expect("secret");
    let mut req =
        Request::new("GET", "/logstores/store/shards").header("x-acs-security-token", token);
    req.sign = Some((id, secret));
    let resp = req.send(addr).await.expect("response");
    let code = if resp.status == 200 {
        String::new()
    } else {
        resp.error_code()
    };
    (resp.status, code)
}

#[tokio::test]
async fn the_metadata_service_is_hardened_and_its_keys_sign_requests_until_they_expire() {
    let emu = Emulator::builder()
        .access_key("AK", "SECRET")
        .logstore("proj", "store", 2)
        .ecs_role("forwarder-role")
        .credential_ttl(Duration::from_secs(2))
        .start()
        .await
        .expect("start");
    let addr = emu.addr();
    let put_token = |ttl: Option<&str>| {
        let req = Request::new("PUT", "/latest/api/token");
        match ttl {
            Some(t) => req.header("X-aliyun-ecs-metadata-token-ttl-seconds", t),
            None => req,
        }
    };
    assert_eq!(put_token(None).send(addr).await.expect("resp").status, 400);
    assert_eq!(
        put_token(Some("21601"))
            .send(addr)
            .await
            .expect("resp")
            .status,
        400
    );
    let token = put_token(Some("60")).send(addr).await.expect("resp");
    assert_eq!(token.status, 200);
    let token = String::from_utf8(token.body).expect("text");
    let path = "/latest/meta-data/ram/security-credentials/";
    // Without the session token (or with a made-up one): refused.
    assert_eq!(
        Request::new("GET", path)
            .send(addr)
            .await
            .expect("resp")
            .status,
        403
    );
    let forged = Request::new("GET", path).header("X-aliyun-ecs-metadata-token", "forged");
    assert_eq!(forged.send(addr).await.expect("resp").status, 403);
    let get = |p: String| {
        Request::new("GET", "")
            .header("X-aliyun-ecs-metadata-token", token.clone())
            .path_owned(p)
    };
    let role = get(path.to_owned()).send(addr).await.expect("resp");
    assert_eq!(
        (role.status, role.body.as_slice()),
        (200, b"forwarder-role".as_slice())
    );
    assert_eq!(
        get(format!("{path}other-role"))
            .send(addr)
            .await
            .expect("resp")
            .status,
        404
    );
    let keys = get(format!("{path}forwarder-role"))
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(keys.status, 200);
    let key = keys.json();
    assert_eq!(key["Code"], "Success");
    for field in [
        "AccessKeyId",
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
        "LastUpdated",
    ] {
        assert!(
            key[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {key}"
        );
    }
    let expiration = key["Expiration"].as_str().expect("expiration");
    // Whole seconds, UTC, as Alibaba writes it: `2026-12-05T10:00:00Z`.
    assert!(
        expiration.len() == 20 && expiration.parse::<jiff::Timestamp>().is_ok(),
        "{expiration}"
    );
    let token = key["SecurityToken"].as_str().expect("token").to_owned();
    assert_eq!(
        list_shards_with(addr, &key, &token).await,
        (200, String::new())
    );
    assert_eq!(
        list_shards_with(addr, &key, "wrong").await,
        (401, "Unauthorized".to_owned())
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        list_shards_with(addr, &key, &token).await,
        (401, "Unauthorized".to_owned())
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn sts_assumes_the_trusted_role_with_the_trusted_oidc_token_and_refuses_the_rest() {
    let trust = sls_emulator::OidcTrust::default();
    let emu = Emulator::builder()
        .access_key("AK", "SECRET")
        .logstore("proj", "store", 2)
        .start()
        .await
        .expect("start");
    let addr = emu.addr();
    let assume = |token: &str, role: &str, duration: &str| {
        Request::new("GET", "/")
            .q("Action", "AssumeRoleWithOIDC")
            .q("Format", "JSON")
            .q("Version", "2015-04-01")
            .q("RoleArn", role)
            .q("OIDCProviderArn", trust.provider_arn.clone())
            .q("OIDCToken", token)
            .q("RoleSessionName", "test")
            .q("DurationSeconds", duration)
    };
    let ok = assume(&trust.token, &trust.role_arn, "3600")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(ok.status, 200, "{ok:?}");
    let answer = ok.json();
    let key = &answer["Credentials"];
    let token = key["SecurityToken"].as_str().expect("token").to_owned();
    assert_eq!(
        list_shards_with(addr, key, &token).await,
        (200, String::new())
    );
    assert!(answer["AssumedRoleUser"]["Arn"]
        .as_str()
        .is_some_and(|a| a.contains(":assumed-role/") && a.ends_with("/test")));
    // The parameters in a form body, as siemfwd sends them (the token stays out of URLs).
    let mut form = Request::new("POST", "/")
        .q("Action", "AssumeRoleWithOIDC")
        .header("Content-Type", "application/x-www-form-urlencoded");
    form.body = form_urlencoded::Serializer::new(String::new())
        .append_pair("RoleArn", &trust.role_arn)
        .append_pair("OIDCProviderArn", &trust.provider_arn)
        .append_pair("OIDCToken", &trust.token)
        .finish()
        .into_bytes();
    assert_eq!(form.send(addr).await.expect("resp").status, 200);
    let refused = |resp: Resp| {
        let body = resp.json();
        for field in ["RequestId", "HostId", "Message"] {
            assert!(body[field].as_str().is_some(), "{field} in {body}");
        }
        (
            resp.status,
            body["Code"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let bad_token = assume("not-the-token", &trust.role_arn, "3600")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(
        refused(bad_token),
        (400, "InvalidParameter.OIDCToken".to_owned())
    );
    let bad_role = assume(&trust.token, "acs:ram::1:role/other", "3600")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(refused(bad_role), (404, "EntityNotExist.Role".to_owned()));
    let short = assume(&trust.token, &trust.role_arn, "60")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(
        refused(short),
        (400, "InvalidParameter.DurationSeconds".to_owned())
    );
    let missing = Request::new("GET", "/")
        .q("Action", "AssumeRoleWithOIDC")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(refused(missing), (400, "MissingParameter".to_owned()));
    emu.shutdown().await;
}

#[tokio::test]
async fn an_identity_outage_refuses_every_credential_service_and_is_counted() {
    let emu = Emulator::builder()
        .logstore("proj", "store", 2)
        .start()
        .await
        .expect("start");
    let addr = emu.addr();
    emu.faults().set_identity_error_rate(1.0);
    let token = Request::new("PUT", "/latest/api/token")
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "60");
    assert_eq!(token.send(addr).await.expect("resp").status, 503);
    let sts = Request::new("GET", "/").q("Action", "AssumeRoleWithOIDC");
    assert_eq!(sts.send(addr).await.expect("resp").status, 503);
    let uri = Request::new("GET", "/_emulator/credentials");
    assert_eq!(uri.send(addr).await.expect("resp").status, 503);
    assert_eq!(emu.faults().counts().identity_errors, 3);
    // Log Service itself is not part of the outage.
    let shards = Request::new("GET", "/logstores/store/shards")
        .send(addr)
        .await
        .expect("resp");
    assert_eq!(shards.status, 200);
    emu.faults().set_identity_error_rate(0.0);
    let uri = Request::new("GET", "/_emulator/credentials");
    assert_eq!(uri.send(addr).await.expect("resp").status, 200);
    emu.shutdown().await;
}
