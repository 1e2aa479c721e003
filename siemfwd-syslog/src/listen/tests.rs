//! The receiver end to end over real sockets on 127.0.0.1, ephemeral ports.
//! Every wait is on a condition with a deadline, never a bare sleep.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::output::base64;
use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn loopback() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 0)))
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Poll a condition until it holds or the deadline passes.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// A receiver running in-process, its output readable line by line.
struct Running {
    addrs: BoundAddrs,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    task: JoinHandle<Result<StatsSnapshot, Error>>,
    lines: Lines<BufReader<DuplexStream>>,
}

async fn start(cfg: ListenConfig) -> Running {
    let listener = Listener::bind(cfg).await.unwrap();
    let (writer, reader) = tokio::io::duplex(1 << 16);
    let cancel = CancellationToken::new();
    Running {
        addrs: listener.local_addrs(),
        stats: listener.stats(),
        task: tokio::spawn(listener.run(writer, cancel.clone())),
        cancel,
        lines: BufReader::new(reader).lines(),
    }
}

fn json_cfg() -> ListenConfig {
    ListenConfig {
        udp: loopback(),
        tcp: loopback(),
        output: Output::JsonLines,
        ..ListenConfig::default()
    }
}

impl Running {
    async fn next_line(&mut self) -> String {
        match within("an output line", self.lines.next_line())
            .await
            .unwrap()
        {
            Some(line) => line,
            None => panic!("output ended early"),
        }
    }

    async fn next_json(&mut self) -> Value {
        let line = self.next_line().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Cancel, collect the rest of the output, return the final counters.
    async fn stop(mut self) -> (StatsSnapshot, Vec<String>) {
        self.cancel.cancel();
        let mut rest = Vec::new();
        while let Some(line) = within("the output to end", self.lines.next_line())
            .await
            .unwrap()
        {
            rest.push(line);
        }
        let stats = within("run to return", self.task).await.unwrap().unwrap();
        (stats, rest)
    }
}

fn octet(msg: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", msg.len()).into_bytes();
    frame.extend_from_slice(msg);
    frame
}

async fn tcp(addrs: BoundAddrs) -> TcpStream {
    let stream = TcpStream::connect(addrs.tcp.unwrap()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Read until the peer closes (EOF or reset), within the deadline.
async fn closed_by_peer<S: AsyncRead + Unpin>(stream: &mut S) {
    within("the receiver to close the connection", async {
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn lf_frames_each_line_is_a_message() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    c.write_all(b"<14>1 - h a - - - one\n<13>Oct 11 22:14:15 host tag[7]: two\r\n")
        .await
        .unwrap();
    let one = rx.next_json().await;
    assert_eq!(
        (one["raw"].as_str(), one["msg"].as_str()),
        (Some("<14>1 - h a - - - one"), Some("one"))
    );
    assert_eq!(one["transport"], "tcp");
    assert_eq!(one["peer"], c.local_addr().unwrap().to_string());
    let two = rx.next_json().await;
    assert_eq!(two["format"], "rfc3164");
    assert_eq!(
        (
            two["app_name"].as_str(),
            two["procid"].as_str(),
            two["msg"].as_str()
        ),
        (Some("tag"), Some("7"), Some("two"))
    );
    drop(c);
    let (stats, rest) = rx.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        (stats.messages, stats.parse_errors, stats.connections),
        (2, 0, 1)
    );
}

#[tokio::test]
async fn mixed_framings_on_one_connection() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    let mut wire = octet(b"<14>1 - h a - - - first\nstill first");
    wire.extend_from_slice(b"<14>1 - h a - - - second\n");
    wire.extend(octet(b"<14>1 - h a - - - third"));
    wire.extend_from_slice(b"\n<14>1 - h a - - - fourth\n");
    c.write_all(&wire).await.unwrap();
    for msg in ["first\nstill first", "second", "third", "fourth"] {
        assert_eq!(rx.next_json().await["msg"], msg);
    }
    let (stats, _) = rx.stop().await;
    assert_eq!((stats.messages, stats.framing_errors), (4, 0));
}

#[tokio::test]
async fn final_lf_frame_without_trailer_is_delivered_at_close() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    c.write_all(b"<14>1 - h a - - - last words").await.unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(rx.next_json().await["msg"], "last words");
    rx.stop().await;
}

async fn send_in_pieces(addrs: BoundAddrs, wire: &[u8], cuts: &[usize]) {
    let mut c = tcp(addrs).await;
    let mut points = cuts.to_vec();
    points.extend([0, wire.len()]);
    points.sort_unstable();
    for w in points.windows(2) {
        c.write_all(&wire[w[0]..w[1]]).await.unwrap();
        c.flush().await.unwrap();
        // Give the receiver a chance to read each piece on its own.
        tokio::task::yield_now().await;
    }
    c.shutdown().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn octet_counted_frames_split_anywhere_parse_the_same(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let messages: [&[u8]; 4] = [
            b"<165>1 2003-10-11T22:14:15.003Z h.example app 1 ID [x@1 v=\"a\\]b\"] one\ntwo",
            b"<14>1 - - - - - -",
            b"<14>1 - h a - - - \xEF\xBB\xBF\xC3\xBC 12 <1>not a frame",
            b"<13>Oct  1 01:02:03 host tag: \n\n",
        ];
        let wire: Vec<u8> = messages.iter().flat_map(|m| octet(m)).collect();
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let mut rx = start(json_cfg()).await;
            send_in_pieces(rx.addrs, &wire, &cuts).await;
            let mut got = Vec::new();
            for _ in messages {
                got.push(rx.next_json().await);
            }
            let (stats, rest) = rx.stop().await;
            assert!(rest.is_empty(), "{rest:?}");
            assert_eq!((stats.messages, stats.framing_errors, stats.parse_errors), (4, 0, 0));
            got
        });
        for (line, msg) in got.iter().zip(messages) {
            prop_assert_eq!(line["raw"].as_str(), std::str::from_utf8(msg).ok());
        }
        prop_assert_eq!(&got[0]["msg"], "one\ntwo");
        prop_assert_eq!(&got[0]["sd"][0]["params"]["v"], "a]b");
        prop_assert_eq!(&got[2]["msg"], "ü 12 <1>not a frame");
        prop_assert_eq!(&got[2]["bom"], true);
    }
}

#[tokio::test]
async fn json_lines_fields_exact_for_hostile_message() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    let peer = c.local_addr().unwrap().to_string();
    let hostile = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 \
        [exampleSDID@32473 quote=\"say \\\"hi\\\"\" bs=\"C:\\\\tmp\\\\\" br=\"[x\\]\" other=\"\\n\" u=\"日本 ü 😀\"][empty@1] \
        \u{feff}line1\nline2 \"ü\" \\ ]";
    let non_utf8: &[u8] = b"<14>1 - h a - - - bad \xff\xfe end";
    let mut wire = octet(hostile.as_bytes());
    wire.extend(octet(non_utf8));
    c.write_all(&wire).await.unwrap();

    let first = rx.next_json().await;
    let expected = json!({
        "transport": "tcp",
        "peer": peer,
        "format": "rfc5424",
        "pri": 165, "facility": 20, "severity": 5, "version": 1,
        "timestamp": "2003-10-11T22:14:15.003Z",
        "hostname": "mymachine.example.com",
        "app_name": "evntslog",
        "procid": "1234",
        "msgid": "ID47",
        "structured_data": "[exampleSDID@32473 quote=\"say \\\"hi\\\"\" bs=\"C:\\\\tmp\\\\\" br=\"[x\\]\" other=\"\\n\" u=\"日本 ü 😀\"][empty@1]",
        "sd": [
            {"id": "exampleSDID@32473", "params": {
                "quote": "say \"hi\"", "bs": "C:\\tmp\\", "br": "[x]", "other": "\\n", "u": "日本 ü 😀"}},
            {"id": "empty@1", "params": {}},
        ],
        "bom": true,
        "msg": "line1\nline2 \"ü\" \\ ]",
        "raw": hostile,
    });
    assert_eq!(first, expected);

    let second = rx.next_json().await;
    let expected = json!({
        "transport": "tcp", "peer": peer, "format": "rfc5424",
        "pri": 14, "facility": 1, "severity": 6, "version": 1,
        "timestamp": null, "hostname": "h", "app_name": "a", "procid": null, "msgid": null,
        "structured_data": null, "sd": [], "bom": false,
        "msg": "bad \u{fffd}\u{fffd} end",
        "msg_b64": base64(b"bad \xff\xfe end"),
        "raw": String::from_utf8_lossy(non_utf8),
        "raw_b64": base64(non_utf8),
    });
    assert_eq!(second, expected);
    rx.stop().await;
}

#[tokio::test]
async fn json_lines_unparsable_message_keeps_raw_and_error() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    c.write_all(&octet(b"hello, no PRI")).await.unwrap();
    let line = rx.next_json().await;
    assert_eq!(line["raw"], "hello, no PRI");
    assert_eq!(line["format"], Value::Null);
    assert!(
        line["error"].as_str().is_some_and(|e| e.contains("PRI")),
        "{line}"
    );
    let (stats, _) = rx.stop().await;
    assert_eq!((stats.messages, stats.parse_errors), (1, 1));
}

#[tokio::test]
async fn udp_datagram_is_one_message_with_one_trailing_lf_stripped() {
    let mut rx = start(json_cfg()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = rx.addrs.udp.unwrap();
    sock.send_to(b"<14>1 - h a - - - one\n", to).await.unwrap();
    rx.next_json().await; // UDP may reorder; send the next only after this one arrived
    sock.send_to(b"<14>1 - h a - - - two\nlines\n\n", to)
        .await
        .unwrap();
    let two = rx.next_json().await;
    assert_eq!(two["msg"], "two\nlines\n");
    assert_eq!(two["transport"], "udp");
    assert_eq!(two["peer"], sock.local_addr().unwrap().to_string());
    sock.send_to(b"<14>1 - h a - - - no trailer", to)
        .await
        .unwrap();
    assert_eq!(rx.next_json().await["raw"], "<14>1 - h a - - - no trailer");
    let (stats, _) = rx.stop().await;
    assert_eq!(stats.messages, 3);
}

#[tokio::test]
async fn framing_error_closes_connection_after_earlier_frames() {
    let mut rx = start(json_cfg()).await;
    let mut c = tcp(rx.addrs).await;
    c.write_all(b"<14>1 - h a - - - before\ngarbage\n<14>1 - h a - - - after\n")
        .await
        .unwrap();
    assert_eq!(rx.next_json().await["msg"], "before");
    closed_by_peer(&mut c).await;
    let stats = Arc::clone(&rx.stats);
    wait_until("the framing error to be counted", || {
        stats.snapshot().framing_errors == 1
    })
    .await;
    // The listener itself keeps serving.
    let mut d = tcp(rx.addrs).await;
    d.write_all(b"<14>1 - h a - - - next connection\n")
        .await
        .unwrap();
    assert_eq!(rx.next_json().await["msg"], "next connection");
    let (stats, rest) = rx.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!((stats.messages, stats.framing_errors), (2, 1));
}

#[tokio::test]
async fn octet_count_above_max_message_closes_connection() {
    let mut rx = start(ListenConfig {
        max_message: 100,
        ..json_cfg()
    })
    .await;
    let mut c = tcp(rx.addrs).await;
    let mut wire = octet(&[b'x'; 100]);
    wire.extend_from_slice(b"101 ");
    c.write_all(&wire).await.unwrap();
    assert_eq!(rx.next_json().await["raw"], "x".repeat(100));
    closed_by_peer(&mut c).await;
    let (stats, _) = rx.stop().await;
    assert_eq!((stats.messages, stats.framing_errors), (1, 1));
}

#[tokio::test]
async fn discard_counts_messages_and_bytes_and_writes_nothing() {
    let rx = start(ListenConfig {
        output: Output::Discard,
        ..json_cfg()
    })
    .await;
    let mut c = tcp(rx.addrs).await;
    let mut wire = Vec::new();
    let mut bytes = 0;
    for i in 0..100 {
        let msg = format!("<14>1 - h a - - - message {i}");
        bytes += msg.len();
        if i % 2 == 0 {
            wire.extend(octet(msg.as_bytes()));
        } else {
            wire.extend_from_slice(msg.as_bytes());
            wire.push(b'\n');
        }
    }
    c.write_all(&wire).await.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Unparsable messages count too: discard frames but does not parse.
    sock.send_to(b"not syslog", rx.addrs.udp.unwrap())
        .await
        .unwrap();
    bytes += "not syslog".len();
    let stats = Arc::clone(&rx.stats);
    wait_until("101 messages", || stats.snapshot().messages == 101).await;
    let (stats, rest) = rx.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        (stats.messages, stats.bytes, stats.parse_errors),
        (101, bytes as u64, 0)
    );
}

#[tokio::test]
async fn many_concurrent_connections_all_delivered() {
    let mut rx = start(json_cfg()).await;
    let addrs = rx.addrs;
    let senders: Vec<_> = (0..50)
        .map(|conn| {
            tokio::spawn(async move {
                let mut c = tcp(addrs).await;
                for i in 0..20 {
                    let msg = format!("<14>1 - h a - - - c{conn} m{i}");
                    c.write_all(&octet(msg.as_bytes())).await.unwrap();
                }
                c.shutdown().await.unwrap();
            })
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..1000 {
        got.push(rx.next_json().await["msg"].as_str().unwrap().to_owned());
    }
    for s in senders {
        s.await.unwrap();
    }
    got.sort();
    let mut expected: Vec<String> = (0..50)
        .flat_map(|c| (0..20).map(move |i| format!("c{c} m{i}")))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    let (stats, _) = rx.stop().await;
    assert_eq!(
        (stats.messages, stats.connections, stats.active_connections),
        (1000, 50, 0)
    );
}

#[tokio::test]
async fn cancel_ends_run_with_idle_connections_open() {
    let rx = start(json_cfg()).await;
    let mut idle = tcp(rx.addrs).await;
    idle.write_all(b"<14>1 - h a - - - partial").await.unwrap();
    let stats = Arc::clone(&rx.stats);
    wait_until("the connection to be accepted", || {
        stats.snapshot().active_connections == 1
    })
    .await;
    let (stats, _) = rx.stop().await;
    assert_eq!(stats.active_connections, 0);
    closed_by_peer(&mut idle).await;
}

#[tokio::test]
async fn print_output_is_one_readable_block_per_message() {
    let mut rx = start(ListenConfig {
        output: Output::Print,
        ..json_cfg()
    })
    .await;
    let mut c = tcp(rx.addrs).await;
    let peer = c.local_addr().unwrap();
    c.write_all(b"<14>1 - h a - - - hi\n<14>1 bad\n")
        .await
        .unwrap();
    assert_eq!(
        rx.next_line().await,
        format!("--- tcp from {peer}: rfc5424 user.info (pri 14)")
    );
    let mut block = Vec::new();
    loop {
        let line = rx.next_line().await;
        let done = line.starts_with("  msg:");
        block.push(line);
        if done {
            break;
        }
    }
    assert_eq!(block.last().map(String::as_str), Some("  msg: hi"));
    assert!(block.contains(&"  hostname: h".to_owned()), "{block:?}");
    assert!(rx
        .next_line()
        .await
        .starts_with(&format!("--- tcp from {peer}: unparsed")));
    rx.stop().await;
}

#[tokio::test]
async fn bind_reports_what_to_fix() {
    assert!(matches!(
        Listener::bind(ListenConfig::default()).await,
        Err(Error::NoListener)
    ));
    let tls_only = ListenConfig {
        tls: loopback(),
        ..ListenConfig::default()
    };
    assert!(matches!(
        Listener::bind(tls_only.clone()).await,
        Err(Error::TlsFilesMissing)
    ));
    let missing = ListenConfig {
        tls_cert_file: Some(PathBuf::from("/nonexistent/cert.pem")),
        tls_key_file: Some(PathBuf::from("/nonexistent/key.pem")),
        ..tls_only
    };
    let err = Listener::bind(missing).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    let first = Listener::bind(ListenConfig {
        tcp: loopback(),
        ..ListenConfig::default()
    })
    .await
    .unwrap();
    let taken = first.local_addrs().tcp;
    let err = Listener::bind(ListenConfig {
        tcp: taken,
        ..ListenConfig::default()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Bind {
                transport: "tcp",
                ..
            }
        ),
        "{err}"
    );
}

/// A throw-away PKI made at test time: a CA, a server cert for
/// localhost/127.0.0.1, a client cert, and a client cert from another CA.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    client: (String, String),
    stranger: (String, String),
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    (params.self_signed(&key).unwrap(), key)
}

fn make_leaf(
    names: &[&str],
    client: bool,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca("siemfwd test CA");
        let (server_pem, server_key) = make_leaf(&["localhost", "127.0.0.1"], false, &ca);
        std::fs::write(dir.path().join("ca.pem"), ca.0.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_pem).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key).unwrap();
        let client = make_leaf(&["forwarder-client"], true, &ca);
        let stranger = make_leaf(&["forwarder-client"], true, &make_ca("unrelated CA"));
        Pki {
            ca: ca.0.der().clone(),
            dir,
            client,
            stranger,
        }
    }

    fn listen_cfg(&self, mtls: bool) -> ListenConfig {
        ListenConfig {
            tls: loopback(),
            tls_cert_file: Some(self.dir.path().join("server.pem")),
            tls_key_file: Some(self.dir.path().join("server.key")),
            tls_client_ca_file: mtls.then(|| self.dir.path().join("ca.pem")),
            output: Output::JsonLines,
            ..ListenConfig::default()
        }
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        client_cert: Option<&(String, String)>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }
}

#[tokio::test]
async fn tls_receives_octet_and_lf_frames() {
    let pki = Pki::new();
    let mut rx = start(pki.listen_cfg(false)).await;
    let mut c = pki.connect(rx.addrs.tls.unwrap(), None).await.unwrap();
    let mut wire = octet(b"<14>1 - h a - - - over tls\nwith lf");
    wire.extend_from_slice(b"<14>1 - h a - - - lf framed\n");
    c.write_all(&wire).await.unwrap();
    c.flush().await.unwrap();
    let one = rx.next_json().await;
    assert_eq!(
        (one["transport"].as_str(), one["msg"].as_str()),
        (Some("tls"), Some("over tls\nwith lf"))
    );
    assert_eq!(rx.next_json().await["msg"], "lf framed");
    c.shutdown().await.unwrap();
    let (stats, _) = rx.stop().await;
    assert_eq!((stats.messages, stats.tls_handshake_errors), (2, 0));
}

#[tokio::test]
async fn mtls_accepts_client_signed_by_the_ca() {
    let pki = Pki::new();
    let mut rx = start(pki.listen_cfg(true)).await;
    let mut c = pki
        .connect(rx.addrs.tls.unwrap(), Some(&pki.client))
        .await
        .unwrap();
    c.write_all(&octet(b"<14>1 - h a - - - authenticated"))
        .await
        .unwrap();
    c.flush().await.unwrap();
    assert_eq!(rx.next_json().await["msg"], "authenticated");
    let (stats, _) = rx.stop().await;
    assert_eq!((stats.messages, stats.tls_handshake_errors), (1, 0));
}

/// With TLS 1.3 the client's handshake may "succeed" before the server has
/// checked its certificate (see peers/README.md); the refusal shows up as a
/// closed connection, and nothing it sent may be output.
async fn assert_mtls_refuses(pki: &Pki, client_cert: Option<&(String, String)>) {
    let mut rx = start(pki.listen_cfg(true)).await;
    let addr = rx.addrs.tls.unwrap();
    if let Ok(mut c) = pki.connect(addr, client_cert).await {
        let _ = c
            .write_all(&octet(b"<14>1 - h a - - - must not appear"))
            .await;
        let _ = c.flush().await;
        closed_by_peer(&mut c).await;
    }
    let stats = Arc::clone(&rx.stats);
    wait_until("the handshake failure to be counted", || {
        stats.snapshot().tls_handshake_errors == 1
    })
    .await;
    let mut good = pki.connect(addr, Some(&pki.client)).await.unwrap();
    good.write_all(&octet(b"<14>1 - h a - - - good client"))
        .await
        .unwrap();
    good.flush().await.unwrap();
    assert_eq!(rx.next_json().await["msg"], "good client");
    let (stats, rest) = rx.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        (
            stats.messages,
            stats.connections,
            stats.tls_handshake_errors
        ),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn mtls_refuses_client_without_certificate() {
    let pki = Pki::new();
    assert_mtls_refuses(&pki, None).await;
}

#[tokio::test]
async fn mtls_refuses_client_certificate_from_other_ca() {
    let pki = Pki::new();
    assert_mtls_refuses(&pki, Some(&pki.stranger)).await;
}

/// An output that refuses every write, like stdout piped into a closed
/// reader.
struct BrokenPipe;

impl tokio::io::AsyncWrite for BrokenPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn output_failure_stops_run_with_error() {
    let listener = Listener::bind(json_cfg()).await.unwrap();
    let addrs = listener.local_addrs();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(listener.run(BrokenPipe, cancel.clone()));
    let mut c = tcp(addrs).await;
    c.write_all(b"<14>1 - h a - - - into the void\n")
        .await
        .unwrap();
    let result = within("run to give up", task).await.unwrap();
    assert!(matches!(result, Err(Error::Output(_))), "{result:?}");
    assert!(!cancel.is_cancelled(), "the caller's token is left alone");
    closed_by_peer(&mut c).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once_and_counted() {
    let mut rx = start(ListenConfig {
        max_connections: 2,
        ..json_cfg()
    })
    .await;
    let stats = Arc::clone(&rx.stats);
    let mut first = tcp(rx.addrs).await;
    let _second = tcp(rx.addrs).await;
    wait_until("two connections open", || {
        stats.active_connections.load(Ordering::Relaxed) == 2
    })
    .await;
    // The third is accepted by the kernel, then closed by the receiver.
    let mut third = tcp(rx.addrs).await;
    let mut buf = [0u8; 1];
    let n = within("the third connection closed", third.read(&mut buf)).await;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(stats.refused_connections.load(Ordering::Relaxed), 1);
    // The open ones still work, and a closed one frees its slot.
    first.write_all(b"6 <1>a b").await.unwrap();
    first.shutdown().await.unwrap();
    drop(first);
    let line = rx.next_line().await;
    assert!(line.contains("\"transport\":\"tcp\""), "{line}");
    wait_until("the first connection's slot freed", || {
        stats.active_connections.load(Ordering::Relaxed) == 1
    })
    .await;
    let mut fourth = tcp(rx.addrs).await;
    fourth.write_all(b"6 <1>c d").await.unwrap();
    fourth.shutdown().await.unwrap();
    rx.next_line().await;
    assert_eq!(stats.refused_connections.load(Ordering::Relaxed), 1);
}

#[test]
fn a_repeated_failure_is_warned_about_once_a_minute_with_the_count() {
    let start = std::time::Instant::now();
    let mut flood = Flood::default();
    assert_eq!(flood.warn(start), Some(0));
    for s in 1..=5 {
        assert_eq!(flood.warn(start + Duration::from_secs(s)), None);
    }
    assert_eq!(flood.warn(start + FLOOD_WINDOW), Some(5));
    assert_eq!(flood.warn(start + FLOOD_WINDOW), None);
}
