//! Test helpers shared by the sink's tests: configs with short timeouts,
//! batches, framed expectations, and a PKI made at test time (rcgen) with a
//! rustls server to run against. Real sockets on 127.0.0.1, port 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_rustls::TlsAcceptor;

use super::{Framing, Messages, SinkConfig, TlsConfig, Transport};
use crate::units::{ByteSize, HumanDuration};

/// Anything a test waits for must happen within this.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// Await `fut` or fail the test after [`DEADLINE`].
pub(crate) async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not done within {DEADLINE:?}"),
    }
}

pub(crate) fn batch<T: AsRef<[u8]>>(items: &[T]) -> Messages {
    let mut m = Messages::new();
    for item in items {
        m.buffer().extend_from_slice(item.as_ref());
        m.commit();
    }
    m
}

/// `n` messages of about `size` bytes each, numbered so a resend is visible.
pub(crate) fn big_batch(n: usize, size: usize) -> Messages {
    let mut m = Messages::new();
    for i in 0..n {
        let buf = m.buffer();
        buf.extend_from_slice(format!("<14>1 - h app - m{i} - ").as_bytes());
        buf.resize(buf.len() + size, b'x');
        m.commit();
    }
    m
}

/// The framing rules of RFC 6587 §3.4 written out plainly, one message at
/// a time: the model the framed bytes of [`Messages`] must match.
pub(crate) fn frame_model<'a>(
    msgs: impl IntoIterator<Item = &'a [u8]>,
    framing: Option<Framing>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        match framing {
            None => out.extend_from_slice(m),
            Some(Framing::OctetCounting) => {
                out.extend_from_slice(m.len().to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(m);
            }
            Some(Framing::Lf) => {
                out.extend_from_slice(m);
                out.push(b'\n');
            }
        }
    }
    out
}

/// What `msgs` looks like on a stream framed with `framing`.
pub(crate) fn framed(msgs: &Messages, framing: Framing) -> Vec<u8> {
    frame_model(msgs.iter(), Some(framing))
}

/// The transport named `name` (a test's typo panics).
pub(crate) fn transport(name: &str) -> Transport {
    match Transport::named(name) {
        Some(t) => t,
        None => panic!("no transport {name:?}"),
    }
}

/// A config for `address` with timeouts and backoff short enough for tests.
pub(crate) fn config(transport: &str, address: &str) -> SinkConfig {
    SinkConfig {
        transport: self::transport(transport),
        address: address.to_owned(),
        framing: Framing::OctetCounting,
        connect_timeout: HumanDuration(Duration::from_secs(2)),
        write_timeout: HumanDuration(Duration::from_secs(2)),
        backoff_initial: HumanDuration(Duration::from_millis(10)),
        backoff_max: HumanDuration(Duration::from_millis(50)),
        settle_time: HumanDuration(Duration::from_millis(20)),
        max_datagram: ByteSize(2048),
        max_message: ByteSize(super::DEFAULT_MAX_MESSAGE),
        tls: TlsConfig::default(),
        relp: super::RelpConfig::default(),
    }
}

/// A port nobody listens on, held: the socket is bound but not listening, so
/// connections are refused and no other test (nor a connection of ours, as its
/// source port) can take the port; `listen` on it brings a receiver up there.
pub(crate) fn closed_port() -> (tokio::net::TcpSocket, String) {
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    (held, addr)
}

/// Read until end of stream (or fail after [`DEADLINE`]).
pub(crate) async fn read_all<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    within("reading to end of stream", r.read_to_end(&mut out))
        .await
        .expect("read");
    out
}

/// Read exactly `n` bytes (or fail after [`DEADLINE`]).
pub(crate) async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    within("reading", r.read_exact(&mut out))
        .await
        .expect("read");
    out
}

/// A test PKI in a temp dir: a CA, a server certificate for `localhost` and
/// `127.0.0.1`, an expired one, a client certificate, and a second CA that
/// signed none of them.
pub(crate) struct Pki {
    _dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub other_ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    pub ca_der: CertificateDer<'static>,
    pub server: (Vec<CertificateDer<'static>>, Vec<u8>),
    pub expired: (Vec<CertificateDer<'static>>, Vec<u8>),
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).expect("ca"), key)
}

fn leaf(
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    expired: bool,
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![purpose];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    (params.signed_by(&key, ca, ca_key).expect("leaf"), key)
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_cert, ca_key) = ca("siemfwd test CA");
        let (other_ca, _) = ca("siemfwd other CA");
        let server_names = ["localhost", "127.0.0.1"];
        let (server, server_key) = leaf(
            &server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
            &ca_cert,
            &ca_key,
        );
        let (expired, expired_key) = leaf(
            &server_names,
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
            &ca_cert,
            &ca_key,
        );
        let (client, client_key) = leaf(
            &["client.example"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
            &ca_cert,
            &ca_key,
        );
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        Self {
            ca_file: write("ca.pem", ca_cert.pem()),
            other_ca_file: write("other-ca.pem", other_ca.pem()),
            client_cert_file: write("client.pem", client.pem()),
            client_key_file: write("client.key", client_key.serialize_pem()),
            ca_der: ca_cert.der().clone(),
            server: (vec![server.der().clone()], server_key.serialize_der()),
            expired: (vec![expired.der().clone()], expired_key.serialize_der()),
            _dir: dir,
        }
    }

    /// A TLS acceptor presenting `cert`; when `require_client_cert`, client
    /// certificates signed by the test CA are required.
    pub(crate) fn acceptor(
        &self,
        cert: &(Vec<CertificateDer<'static>>, Vec<u8>),
        require_client_cert: bool,
    ) -> TlsAcceptor {
        self.acceptor_with_versions(cert, require_client_cert, rustls::DEFAULT_VERSIONS)
    }

    /// [`Pki::acceptor`] limited to `versions`.
    pub(crate) fn acceptor_with_versions(
        &self,
        cert: &(Vec<CertificateDer<'static>>, Vec<u8>),
        require_client_cert: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.1.clone()));
        let config = builder
            .with_single_cert(cert.0.clone(), key)
            .expect("server config");
        TlsAcceptor::from(Arc::new(config))
    }

    pub(crate) fn tls_config(&self) -> TlsConfig {
        TlsConfig {
            ca_file: Some(self.ca_file.display().to_string()),
            ..TlsConfig::default()
        }
    }
}

/// Captures the log lines emitted on this thread while the guard lives
/// (use a current-thread runtime so the sink runs on it).
///
/// Why one global subscriber that writes to a per-thread capture, rather
/// than a scoped subscriber per test: tracing caches each call site's
/// interest across all subscribers, and with scoped subscribers coming and
/// going on parallel test threads a call site could be cached as disabled
/// and its line lost (seen: a test missing its one `info` line now and
/// then). One global subscriber, always at DEBUG, has no such race.
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<LogCapture>> =
        const { std::cell::RefCell::new(None) };
}

/// Stops capturing on this thread when dropped.
pub(crate) struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// The global subscriber's writer: this thread's capture, if any.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(cap) = c.borrow().as_ref() {
                if let Ok(mut b) = cap.0.lock() {
                    b.extend_from_slice(buf);
                }
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub(crate) fn install(&self) -> CaptureGuard {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadCapture)
                .finish();
            if tracing::subscriber::set_global_default(subscriber).is_err() {
                panic!("a global tracing subscriber was already set in this test binary");
            }
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
        CaptureGuard(())
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let buf = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn count(&self, level: &str, text: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
