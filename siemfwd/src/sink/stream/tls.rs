//! The TLS client configuration (RFC 5425) and readable TLS errors: the
//! TLS half of the connection layer, used by the `tls` transport and by
//! RELP over TLS.
//!
//! Built once at start-up from `[sink.tls]`: trusted roots from `ca_file`
//! (PEM, one or more CAs) or else the system store (`rustls-native-certs`);
//! an optional client certificate and key for mutual TLS (RFC 5425 §5.1
//! requires implementations to support it); the name sent as SNI and checked
//! against the certificate. RFC 5425 §5.2 asks for path validation with name
//! matching against subjectAltName: rustls/webpki do exactly that, and match
//! an IP address literal against IP SANs. TLS 1.2 and 1.3 are offered.
//!
//! Verification is on unless `insecure_skip_verify` is set; then a verifier
//! that accepts any certificate is installed through rustls's `dangerous()`
//! door, and [`TlsSettings::build`] logs a warning naming the danger.
//!
//! Certificate failures are turned into one line naming the cause and the
//! setting to look at ([`describe`]): a user reading "invalid peer
//! certificate: UnknownIssuer" at 3 a.m. should not need to know rustls.
//! Key files are never echoed, not even in part: errors about them say what
//! kind of problem, not which bytes.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::super::{describe_io, Endpoint, Error, TlsConfig};

/// Everything a TLS connection needs, validated and loaded.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for TlsSettings {
    // The client config holds the private key: print the name only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn config_error(key: &str, problem: String) -> Error {
    Error::Config {
        key: key.to_owned(),
        problem,
    }
}

impl TlsSettings {
    /// Load certificates and keys, build the rustls client configuration.
    pub(crate) fn build(tls: &TlsConfig, endpoint: &Endpoint) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_name = match &tls.server_name {
            Some(name) => ServerName::try_from(name.clone()).map_err(|_| {
                config_error(
                    "sink.tls.server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                )
            })?,
            None => match endpoint.ip() {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => ServerName::try_from(endpoint.host().to_owned()).map_err(|_| {
                    config_error(
                        "sink.tls.server_name",
                        format!(
                            "the host of sink.address ({:?}) is not a valid TLS server name; set sink.tls.server_name",
                            endpoint.host()
                        ),
                    )
                })?,
            },
        };

        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error("sink.tls", format!("TLS setup failed: {e}")))?;

        let builder = if tls.insecure_skip_verify {
            tracing::warn!(
                "sink.tls.insecure_skip_verify is set: the receiver's certificate is NOT verified; \
                 anyone on the network path can impersonate the SIEM and read every log. Use it for tests only."
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(load_roots(tls.ca_file.as_deref())?)
        };

        let config = match (&tls.cert_file, &tls.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert_file), Some(key_file)) => {
                let chain = load_certs(cert_file, "sink.tls.cert_file")?;
                let key = load_key(key_file)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    config_error(
                        "sink.tls.key_file",
                        format!("cannot use the key of {key_file:?} with the certificate of {cert_file:?}: {e}"),
                    )
                })?
            }
            (Some(_), None) => {
                return Err(config_error(
                    "sink.tls.key_file",
                    "is missing: sink.tls.cert_file is set, and a client certificate needs its private key".to_owned(),
                ))
            }
            (None, Some(_)) => {
                return Err(config_error(
                    "sink.tls.cert_file",
                    "is missing: sink.tls.key_file is set, and a private key needs its certificate".to_owned(),
                ))
            }
        };

        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The name the certificate is checked against, for messages.
    pub(crate) fn server_name(&self) -> String {
        self.server_name.to_str().into_owned()
    }

    /// Run the client handshake on `tcp`. The caller bounds it with
    /// `connect_timeout`.
    pub(crate) async fn handshake<S>(&self, tcp: S) -> io::Result<TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

fn read_file(path: &str, key: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| config_error(key, format!("cannot read {path:?}: {}", describe_io(&e))))
}

/// Describe a PEM parse failure without echoing file content.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as P;
    match e {
        P::MissingSectionEnd { .. } => "a PEM section has no END line",
        P::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        P::Base64Decode(_) => "a PEM section is not valid base64",
        P::SectionTooLarge => "a PEM section is too large",
        _ => "it is not a valid PEM file",
    }
}

fn load_certs(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read_file(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(key, format!("cannot parse {path:?}: {}", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(config_error(
            key,
            format!(
                "no certificate found in {path:?} (expected PEM \"-----BEGIN CERTIFICATE-----\")"
            ),
        ));
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, Error> {
    let key = "sink.tls.key_file";
    let pem = read_file(path, key)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let problem = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key found (expected PEM PKCS#8, PKCS#1 or SEC1)"
            }
            other => pem_problem(&other),
        };
        config_error(key, format!("cannot parse {path:?}: {problem}"))
    })
}

fn load_roots(ca_file: Option<&str>) -> Result<RootCertStore, Error> {
    let key = "sink.tls.ca_file";
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for (i, cert) in load_certs(path, key)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    config_error(
                        key,
                        format!("certificate #{} in {path:?} is not a usable CA: {e}", i + 1),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipping part of the system certificate store");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "loaded the system's trusted CAs");
            if added == 0 {
                return Err(config_error(
                    key,
                    "is not set and no trusted CA was found in the system store; \
                     set sink.tls.ca_file to the PEM file of the CA that signed the receiver's certificate"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(roots)
}

/// One line for a failed TLS session; `server_name` is the name the
/// certificate was checked against.
pub(crate) fn describe(e: &io::Error, server_name: &str) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_tls(tls, server_name),
        None => describe_io(e),
    }
}

/// One line for a failed TLS handshake.
pub(crate) fn describe_handshake(e: &io::Error, server_name: &str) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if tls.is_none() && e.kind() == io::ErrorKind::UnexpectedEof {
        return "the receiver closed the connection during the TLS handshake \
                (it may require a client certificate: sink.tls.cert_file, or accept no common TLS version)"
            .to_owned();
    }
    describe(e, server_name)
}

fn describe_tls(e: &rustls::Error, server_name: &str) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => describe_certificate(c, server_name),
        E::AlertReceived(alert) => describe_alert(*alert),
        E::NoCertificatesPresented => "the receiver presented no certificate".to_owned(),
        other => format!("TLS error: {other}"),
    }
}

fn describe_certificate(c: &CertificateError, server_name: &str) -> String {
    match c {
        CertificateError::UnknownIssuer => {
            "certificate is not signed by a trusted CA (sink.tls.ca_file)".to_owned()
        }
        CertificateError::NotValidForName => format!(
            "certificate is not valid for name {server_name} (sink.tls.server_name, or the host of sink.address)"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "certificate is not valid for name {server_name}; it names {} (sink.tls.server_name, or the host of sink.address)",
            if presented.is_empty() {
                "nothing".to_owned()
            } else {
                presented.iter().map(|n| plain_name(n)).collect::<Vec<_>>().join(", ")
            }
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet (check the clocks)".to_owned()
        }
        CertificateError::Revoked => "certificate has been revoked".to_owned(),
        CertificateError::BadSignature => "certificate has an invalid signature".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not meant for a TLS server (extended key usage)".to_owned()
        }
        CertificateError::BadEncoding => "certificate is malformed".to_owned(),
        other => format!("certificate refused: {other:?}"),
    }
}

/// rustls renders presented names as `DnsName("x")` / `IpAddress(x)`; a
/// user wants `x`.
fn plain_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|r| r.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

/// The receiver ended the session right after our side of a TLS 1.3
/// handshake: what rsyslog and syslog-ng do when they refuse our client
/// certificate (or the lack of one), without an alert.
pub(crate) fn describe_post_handshake(e: &io::Error, server_name: &str) -> String {
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if alert.is_none()
        && matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
        )
    {
        return "the receiver closed the connection right after the TLS handshake: it refused our \
                client certificate or requires one (sink.tls.cert_file, sink.tls.key_file)"
            .to_owned();
    }
    describe(e, server_name)
}

fn describe_alert(alert: AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            "the receiver requires a client certificate (set sink.tls.cert_file and sink.tls.key_file)".to_owned()
        }
        AlertDescription::UnknownCA => {
            "the receiver does not trust our client certificate's CA (sink.tls.cert_file)".to_owned()
        }
        AlertDescription::BadCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateRevoked
        | AlertDescription::AccessDenied => {
            format!("the receiver refused our client certificate ({alert:?} alert; sink.tls.cert_file)")
        }
        AlertDescription::HandshakeFailure => {
            "the receiver refused the handshake (handshake_failure alert): it may require a client \
             certificate (sink.tls.cert_file) or share no cipher suite with us"
                .to_owned()
        }
        AlertDescription::ProtocolVersion => {
            "the receiver supports neither TLS 1.2 nor TLS 1.3".to_owned()
        }
        AlertDescription::CloseNotify => "the receiver closed the TLS session".to_owned(),
        other => format!("the receiver sent the TLS alert {other:?}"),
    }
}

/// `insecure_skip_verify`: accepts any certificate for any name. Handshake
/// signatures are still checked (so the peer must hold the key of the
/// certificate it shows), which protects nothing without a trusted
/// certificate but keeps rustls's state machine honest.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::plain_name;

    #[test]
    fn plain_name_strips_rustls_rendering() {
        assert_eq!(plain_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(plain_name("other"), "other");
    }
}
