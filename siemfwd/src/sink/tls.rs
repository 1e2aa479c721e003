//! The `tls` transport (RFC 5425): the stream sink of `tcp`, over a TLS
//! connection whose client configuration and readable errors live with the
//! connection layer (`stream/tls.rs`). Its tests run the whole sink against
//! rustls servers: certificates refused and accepted, mutual TLS, replay
//! after a connection lost.

use super::stream::{self, tls::TlsSettings};
use super::{Endpoint, Spec};

/// The `tls` transport: TCP's keys and stream sink, with `[sink.tls]`.
pub(super) const SPEC: Spec = Spec {
    name: "tls",
    keys: &[
        "address",
        "framing",
        "connect_timeout",
        "write_timeout",
        "backoff_initial",
        "backoff_max",
        "settle_time",
        "max_message",
        "tls",
    ],
    wire: stream::wire,
    build: |config, metrics| {
        let endpoint = Endpoint::parse(&config.address)?;
        let tls = TlsSettings::build(&config.tls, &endpoint)?;
        Ok(stream::sink(config, endpoint, Some(tls), metrics))
    },
};

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{batch, config, framed, read_all, read_n, within, Pki};
    use super::super::{Error, Framing, Sink, SinkConfig, TlsConfig};
    use crate::units::HumanDuration;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        (l, addr)
    }

    /// Serve one TLS connection and return what the client sent before
    /// closing, and whether it presented a certificate.
    fn serve_one(
        l: TcpListener,
        acceptor: TlsAcceptor,
    ) -> tokio::task::JoinHandle<(Vec<u8>, bool)> {
        tokio::spawn(async move {
            let (tcp, _) = l.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("server handshake");
            let had_client_cert = tls.get_ref().1.peer_certificates().is_some();
            (read_all(&mut tls).await, had_client_cert)
        })
    }

    /// Accept connections forever; count failed handshakes and any
    /// application bytes that got through.
    fn serve_counting(
        l: TcpListener,
        acceptor: TlsAcceptor,
    ) -> (
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let failures = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (f, r) = (failures.clone(), received.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                match acceptor.accept(tcp).await {
                    Err(_) => {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(mut tls) => {
                        let mut buf = Vec::new();
                        let _ = tls.read_to_end(&mut buf).await;
                        r.fetch_add(buf.len(), Ordering::SeqCst);
                    }
                }
            }
        });
        (failures, received, task)
    }

    fn tls_config(addr: &str, tls: TlsConfig) -> SinkConfig {
        let mut cfg = config("tls", addr);
        cfg.tls = tls;
        cfg
    }

    async fn check_error(
        pki: &Pki,
        cert: &(Vec<rustls::pki_types::CertificateDer<'static>>, Vec<u8>),
        tls: TlsConfig,
    ) -> String {
        let (l, addr) = listener().await;
        let (_, _, server) = serve_counting(l, pki.acceptor(cert, false));
        let mut sink = Sink::build(
            &tls_config(&addr, tls),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let err = within("check", sink.check())
            .await
            .expect_err("must be refused");
        server.abort();
        let Error::Connection(msg) = err else {
            panic!("not a connection error: {err:?}")
        };
        assert!(
            msg.starts_with(&format!("TLS handshake with {addr}: ")),
            "{msg}"
        );
        msg
    }

    #[tokio::test]
    async fn tls_server_auth_delivers_octet_counted_frames() {
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let server = serve_one(l, pki.acceptor(&pki.server, false));
        let mut sink = Sink::build(
            &tls_config(&addr, pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        assert_eq!(sink.transport().name(), "tls");
        within(
            "send",
            sink.send(&batch(&["<14>1 a", "<14>1 bc"]), &CancellationToken::new()),
        )
        .await
        .expect("send");
        // close() sends close_notify: the server reads a clean end of stream.
        sink.close().await;
        let (got, had_cert) = within("server", server).await.expect("server task");
        assert_eq!(got, b"7 <14>1 a8 <14>1 bc");
        assert!(!had_cert);
    }

    #[tokio::test]
    async fn tls_verifies_localhost_by_dns_name() {
        let pki = Pki::new();
        let (l, _) = listener().await;
        let port = l.local_addr().expect("addr").port();
        let server = serve_one(l, pki.acceptor(&pki.server, false));
        let mut sink = Sink::build(
            &tls_config(&format!("localhost:{port}"), pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        // localhost may resolve to ::1 first; the listener is IPv4 only,
        // so this also exercises trying every resolved address.
        within("check", sink.check()).await.expect("check");
        sink.close().await;
        within("server", server).await.expect("server task");
    }

    #[tokio::test]
    async fn tls_unknown_ca_is_refused_with_readable_cause() {
        let pki = Pki::new();
        let tls = TlsConfig {
            ca_file: Some(pki.other_ca_file.display().to_string()),
            ..TlsConfig::default()
        };
        let msg = check_error(&pki, &pki.server, tls).await;
        assert!(
            msg.ends_with("certificate is not signed by a trusted CA (sink.tls.ca_file)"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn tls_wrong_hostname_is_refused_with_readable_cause() {
        let pki = Pki::new();
        let tls = TlsConfig {
            server_name: Some("siem.example.com".into()),
            ..pki.tls_config()
        };
        let msg = check_error(&pki, &pki.server, tls).await;
        assert!(
            msg.contains("certificate is not valid for name siem.example.com; it names localhost, 127.0.0.1 ("),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn tls_expired_certificate_is_refused_with_readable_cause() {
        let pki = Pki::new();
        let msg = check_error(&pki, &pki.expired, pki.tls_config()).await;
        assert!(msg.ends_with("certificate has expired"), "{msg}");
    }

    #[tokio::test]
    async fn tls_insecure_skip_verify_accepts_an_untrusted_certificate() {
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let server = serve_one(l, pki.acceptor(&pki.expired, false));
        let tls = TlsConfig {
            insecure_skip_verify: true,
            server_name: Some("siem.example.com".into()),
            ..TlsConfig::default()
        };
        let mut sink = Sink::build(
            &tls_config(&addr, tls),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        within("send", sink.send(&batch(&["x"]), &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        assert_eq!(within("server", server).await.expect("server").0, b"1 x");
    }

    #[tokio::test]
    async fn tls_mutual_auth_delivers_with_client_certificate() {
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let server = serve_one(l, pki.acceptor(&pki.server, true));
        let tls = TlsConfig {
            cert_file: Some(pki.client_cert_file.display().to_string()),
            key_file: Some(pki.client_key_file.display().to_string()),
            ..pki.tls_config()
        };
        let mut sink = Sink::build(
            &tls_config(&addr, tls),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        within(
            "send",
            sink.send(&batch(&["<14>1 m"]), &CancellationToken::new()),
        )
        .await
        .expect("send");
        sink.close().await;
        let (got, had_cert) = within("server", server).await.expect("server task");
        assert_eq!(got, b"7 <14>1 m");
        assert!(had_cert);
    }

    #[tokio::test]
    async fn tls_check_names_a_missing_client_certificate() {
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let (_, _, server) = serve_counting(l, pki.acceptor(&pki.server, true));
        let mut sink = Sink::build(
            &tls_config(&addr, pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let err = within("check", sink.check()).await.expect_err("refused");
        server.abort();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("TLS session with {addr}: ")),
            "{msg}"
        );
        assert!(msg.contains("requires a client certificate"), "{msg}");
    }

    #[tokio::test]
    async fn tls_missing_client_certificate_is_not_delivered_and_retried() {
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let (failures, received, server) = serve_counting(l, pki.acceptor(&pki.server, true));
        let mut sink = Sink::build(
            &tls_config(&addr, pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let cancel = CancellationToken::new();
        let watcher = {
            let (cancel, failures) = (cancel.clone(), failures.clone());
            tokio::spawn(async move {
                // Three refused handshakes prove the sink keeps retrying.
                while failures.load(Ordering::SeqCst) < 3 {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                cancel.cancel();
            })
        };
        let r = within("send", sink.send(&batch(&["<14>1 secret-batch"]), &cancel)).await;
        assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
        within("watcher", watcher).await.expect("watcher");
        server.abort();
        assert_eq!(
            received.load(Ordering::SeqCst),
            0,
            "the receiver got application data"
        );
        let stats = sink.stats();
        assert_eq!(stats.incidents, 1, "one incident, logged once");
        let cause = stats.last_error.as_deref().unwrap_or_default();
        assert!(cause.contains("requires a client certificate"), "{cause}");
    }

    #[tokio::test]
    async fn tls_receiver_closing_during_settle_gets_the_batch_again() {
        // Bytes are counted below TLS (ciphertext), so the acknowledgement
        // check works through rustls; a receiver that reads the batch and
        // goes away within the settle time gets it again on a new session.
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let acceptor = pki.acceptor(&pki.server, false);
        let msgs = batch(&["<14>1 - h app - - - tls-settle"]);
        let expected = framed(&msgs, Framing::OctetCounting);
        let n = expected.len();
        let server = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.expect("accept 1");
            let mut first = acceptor.accept(tcp).await.expect("handshake 1");
            let got1 = read_n(&mut first, n).await;
            drop(first);
            let (tcp, _) = within("reconnect", l.accept()).await.expect("accept 2");
            let mut second = acceptor.accept(tcp).await.expect("handshake 2");
            (got1, read_all(&mut second).await)
        });
        let mut cfg = tls_config(&addr, pki.tls_config());
        cfg.settle_time = HumanDuration(std::time::Duration::from_millis(500));
        let mut sink = Sink::build(&cfg, &crate::counters::Metrics::default()).expect("build");
        within("send", sink.send(&msgs, &CancellationToken::new()))
            .await
            .expect("send");
        sink.close().await;
        let (got1, got2) = within("server", server).await.expect("server task");
        assert_eq!(got1, expected);
        assert_eq!(got2, expected, "the unsafe batch was not written again");
        assert_eq!(sink.stats().resent_messages, 1);
    }

    #[tokio::test]
    async fn tls12_missing_client_certificate_fails_the_handshake_readably() {
        // In TLS 1.2 the server judges our certificate inside the handshake.
        let pki = Pki::new();
        let (l, addr) = listener().await;
        let acceptor = pki.acceptor_with_versions(&pki.server, true, &[&rustls::version::TLS12]);
        let (_, _, server) = serve_counting(l, acceptor);
        let mut sink = Sink::build(
            &tls_config(&addr, pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let err = within("check", sink.check()).await.expect_err("refused");
        server.abort();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("TLS handshake with {addr}: ")),
            "{msg}"
        );
        assert!(msg.contains("client certificate"), "{msg}");
    }

    fn build_error(tls: TlsConfig) -> String {
        Sink::build(
            &tls_config("127.0.0.1:6514", tls),
            &crate::counters::Metrics::default(),
        )
        .expect_err("must be refused")
        .to_string()
    }

    #[test]
    fn tls_unreadable_ca_file_is_a_config_error() {
        let msg = build_error(TlsConfig {
            ca_file: Some("/nonexistent/x.pem".into()),
            ..TlsConfig::default()
        });
        assert_eq!(
            msg,
            "sink.tls.ca_file: cannot read \"/nonexistent/x.pem\": No such file or directory"
        );
    }

    #[test]
    fn tls_ca_file_without_certificate_is_a_config_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not a pem\n").expect("write");
        let msg = build_error(TlsConfig {
            ca_file: Some(p.display().to_string()),
            ..TlsConfig::default()
        });
        assert!(
            msg.starts_with("sink.tls.ca_file: no certificate found in"),
            "{msg}"
        );
    }

    #[test]
    fn tls_client_cert_and_key_come_together() {
        let pki = Pki::new();
        let msg = build_error(TlsConfig {
            cert_file: Some(pki.client_cert_file.display().to_string()),
            ..pki.tls_config()
        });
        assert!(msg.starts_with("sink.tls.key_file: is missing"), "{msg}");
        let msg = build_error(TlsConfig {
            key_file: Some(pki.client_key_file.display().to_string()),
            ..pki.tls_config()
        });
        assert!(msg.starts_with("sink.tls.cert_file: is missing"), "{msg}");
    }

    #[test]
    fn tls_bad_key_file_error_never_echoes_its_content() {
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.key");
        std::fs::write(
            &p,
            "-----BEGIN PRIVATE KEY-----\nTOPSECRET$$notbase64\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let msg = build_error(TlsConfig {
            cert_file: Some(pki.client_cert_file.display().to_string()),
            key_file: Some(p.display().to_string()),
            ..pki.tls_config()
        });
        assert!(msg.starts_with("sink.tls.key_file: cannot parse"), "{msg}");
        assert!(!msg.contains("TOPSECRET"), "{msg}");
        // Nor does the certificate-only file count as a key.
        let msg = build_error(TlsConfig {
            cert_file: Some(pki.client_cert_file.display().to_string()),
            key_file: Some(pki.client_cert_file.display().to_string()),
            ..pki.tls_config()
        });
        assert!(msg.contains("no private key found"), "{msg}");
    }

    #[test]
    fn tls_server_name_defaults_to_the_address_host() {
        let pki = Pki::new();
        let sink = Sink::build(
            &tls_config("[::1]:6514", pki.tls_config()),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let dbg = format!("{sink:?}");
        assert!(dbg.contains("IpAddress"), "{dbg}");
        let bad = build_error(TlsConfig {
            server_name: Some("bad name!".into()),
            ..pki.tls_config()
        });
        assert!(bad.starts_with("sink.tls.server_name: "), "{bad}");
    }

    #[test]
    fn tls_debug_output_holds_no_key_material() {
        let pki = Pki::new();
        let key_pem = std::fs::read_to_string(&pki.client_key_file).expect("key");
        let key_body: String = key_pem.lines().nth(1).unwrap_or_default().to_owned();
        let sink = Sink::build(
            &tls_config(
                "127.0.0.1:6514",
                TlsConfig {
                    cert_file: Some(pki.client_cert_file.display().to_string()),
                    key_file: Some(pki.client_key_file.display().to_string()),
                    ..pki.tls_config()
                },
            ),
            &crate::counters::Metrics::default(),
        )
        .expect("build");
        let dbg = format!("{sink:?}");
        assert!(
            !key_body.is_empty() && !dbg.contains(&key_body[..16]),
            "{dbg}"
        );
    }
}
