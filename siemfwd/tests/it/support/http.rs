//! The two things the tests ask siemfwd's HTTP endpoint (and Prometheus) for: a `GET`, and
//! where siemfwd said it serves them.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

/// `GET path` on `addr`: status and body (`None`: no answer).
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((status, body))
}

/// A chunked body (large answers from Prometheus come so) put back together.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// The address in siemfwd's `serving /metrics, /health and /ready addr=…` log line.
pub(crate) fn metrics_address(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let at = line.find("addr=")? + 5;
    line[at..].split_whitespace().next()?.parse().ok()
}
