//! Minimal syslog senders for tests: std sockets and a blocking rustls client.
//!
//! They exist to prove a receiver (a [`super::peers`] peer, `siemfwd listen`) independently of
//! siemfwd's own sinks, so a bug in a sink cannot hide behind the same bug in the test.
//! Messages are sent byte for byte as given; framing is explicit ([`octet_counted`], [`lf`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How long a TLS send waits for the receiver to close after our close_notify. The receiver
/// keeping the connection open is not an error; this only bounds the wait.
const TLS_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`, where MSG-LEN counts bytes.
pub(crate) fn octet_counted(msg: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", msg.len()).into_bytes();
    frame.extend_from_slice(msg);
    frame
}

/// RFC 6587 §3.4.2 non-transparent framing: the message followed by LF.
pub(crate) fn lf(msg: &[u8]) -> Vec<u8> {
    let mut frame = msg.to_vec();
    frame.push(b'\n');
    frame
}

/// Sends one datagram holding `msg` from an ephemeral loopback port.
pub(crate) fn udp(to: SocketAddr, msg: &[u8]) -> io::Result<()> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    let sent = sock.send_to(msg, to)?;
    if sent != msg.len() {
        return Err(io::Error::other(format!(
            "sent {sent} of {} bytes",
            msg.len()
        )));
    }
    Ok(())
}

/// Connects, writes `bytes` (already framed), and closes the connection.
pub(crate) fn tcp(to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
    let mut stream = TcpStream::connect(to)?;
    stream.write_all(bytes)?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)
}

/// A rustls client configuration trusting `ca_pem`, presenting `client` (cert chain PEM,
/// private key PEM) when given.
pub(crate) fn tls_config(
    ca_pem: &Path,
    client: Option<(&Path, &Path)>,
) -> io::Result<Arc<ClientConfig>> {
    let bad = |what: &Path, e: rustls::pki_types::pem::Error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", what.display()),
        )
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).map_err(|e| bad(ca_pem, e))? {
        roots
            .add(cert.map_err(|e| bad(ca_pem, e))?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_file_iter(cert_pem)
                .map_err(|e| bad(cert_pem, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(cert_pem, e))?;
            let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| bad(key_pem, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(io::Error::other)?
        }
    };
    Ok(Arc::new(config))
}

/// Connects with TLS (verifying the server as `server_name`), writes `bytes` (already framed),
/// sends close_notify and waits (bounded) for the receiver to close.
///
/// `Err` when the handshake fails, a write fails, or the receiver answers with a TLS alert.
/// A receiver that refuses our client certificate under TLS 1.3 may only drop the connection
/// after the handshake looked complete to us: so `Ok` does not prove delivery; the peer's
/// output does.
pub(crate) fn tls(
    to: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let sock = TcpStream::connect(to)?;
    sock.set_read_timeout(Some(TLS_CLOSE_WAIT))?;
    let mut tls = StreamOwned::new(conn, sock);
    let step =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(step("handshake"))?;
    }
    tls.write_all(bytes).map_err(step("write"))?;
    tls.flush().map_err(step("flush"))?;
    tls.conn.send_close_notify();
    tls.conn
        .complete_io(&mut tls.sock)
        .map_err(step("close_notify"))?;
    let mut sink = [0u8; 1024];
    loop {
        match tls.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            // A TLS alert from the receiver: rustls reports it as InvalidData.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(e),
            // Closed without close_notify, reset, or still open at the deadline: the data was
            // written; whether it was accepted is for the receiver's output to tell.
            Err(_) => return Ok(()),
        }
    }
}

/// Sends `msgs` over a plain RELP session (open, one `syslog` command each, close) and checks
/// that the receiver acknowledged every command with `200`. RELP frame:
/// `TXNR SP COMMAND SP DATALEN [SP DATA] LF` (librelp's `doc/relp.html`).
pub(crate) fn relp(to: SocketAddr, msgs: &[&[u8]]) -> io::Result<()> {
    let mut stream = TcpStream::connect(to)?;
    stream.set_read_timeout(Some(TLS_CLOSE_WAIT))?;
    let mut reader = io::BufReader::new(stream.try_clone()?);
    let mut txnr = 1u32;
    let mut command = |stream: &mut TcpStream, cmd: &str, data: &[u8]| -> io::Result<()> {
        let mut frame = format!("{txnr} {cmd} {}", data.len()).into_bytes();
        if !data.is_empty() {
            frame.push(b' ');
            frame.extend_from_slice(data);
        }
        frame.push(b'\n');
        stream.write_all(&frame)?;
        let (rsp_txnr, body) = read_relp_rsp(&mut reader)?;
        if rsp_txnr != txnr || !body.starts_with(b"200") {
            return Err(io::Error::other(format!(
                "RELP {cmd} txnr {txnr}: got txnr {rsp_txnr} {:?}",
                String::from_utf8_lossy(&body)
            )));
        }
        txnr += 1;
        Ok(())
    };
    command(
        &mut stream,
        "open",
        b"relp_version=0\nrelp_software=siemfwd-test\ncommands=syslog",
    )?;
    for msg in msgs {
        command(&mut stream, "syslog", msg)?;
    }
    // `close` is answered by `rsp` then `serverclose`; the session is over either way.
    let _ = command(&mut stream, "close", b"");
    Ok(())
}

/// Reads one `TXNR rsp DATALEN [SP DATA] LF` frame; returns the txnr and DATA.
fn read_relp_rsp(reader: &mut impl io::BufRead) -> io::Result<(u32, Vec<u8>)> {
    let bad =
        |what: String| io::Error::new(io::ErrorKind::InvalidData, format!("RELP response: {what}"));
    let (txnr, _) = read_token(reader)?;
    let (command, _) = read_token(reader)?;
    let (datalen, ended_by) = read_token(reader)?;
    let txnr = txnr.parse().map_err(|_| bad(format!("txnr {txnr:?}")))?;
    if command != "rsp" {
        return Err(bad(format!("command {command:?}")));
    }
    let len: usize = datalen
        .parse()
        .map_err(|_| bad(format!("datalen {datalen:?}")))?;
    if ended_by == b'\n' {
        return if len == 0 {
            Ok((txnr, Vec::new()))
        } else {
            Err(bad("data missing".into()))
        };
    }
    let mut data = vec![0u8; len + 1];
    reader.read_exact(&mut data)?;
    if data.pop() != Some(b'\n') {
        return Err(bad("missing LF trailer".into()));
    }
    Ok((txnr, data))
}

/// Reads up to the next SP or LF; returns the text before it and which one ended it.
fn read_token(reader: &mut impl io::BufRead) -> io::Result<(String, u8)> {
    let mut token = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        reader.read_exact(&mut byte)?;
        if byte[0] == b' ' || byte[0] == b'\n' {
            return Ok((String::from_utf8_lossy(&token).into_owned(), byte[0]));
        }
        token.push(byte[0]);
    }
}
