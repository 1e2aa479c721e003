//! Memory a broken or hostile Log Service endpoint can take (issue 12, items
//! 3 and 4): an answer that announces gigabytes and streams them, and a
//! small PullLogs answer whose `x-log-bodyrawsize` claims a gigabyte. Before
//! the fix the first took siemfwd to ~8 GB of RSS in 20 s and the second
//! allocated 1 GiB per shard.
//!
//! A proxy in front of the emulator forwards every request as it is, except
//! what the test tells it to spoil. siemfwd must keep its memory bounded,
//! say what is wrong in its log, and — once the endpoint behaves — deliver
//! every log: nothing is lost because an answer was refused.

use crate::sls_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 2;
const PER_SHARD: u64 = 5_000;

/// What the proxy does to PullLogs answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Spoil {
    /// Forward as it is.
    Nothing = 0,
    /// Claim `x-log-bodyrawsize: 1073741824` on a small real body.
    RawSize = 1,
    /// Announce 10 GB and stream zeros for as long as the client reads.
    HugeLength = 2,
    /// Stream zeros, chunked, without end (no length announced).
    Endless = 3,
}

/// A proxy that reads one HTTP/1.1 request at a time, forwards it to the
/// emulator and spoils PullLogs answers as told.
#[derive(Clone)]
struct SpoilingProxy {
    addr: SocketAddr,
    spoil: Arc<AtomicU8>,
}

/// Reads a request or response head (through the blank line) and its body
/// (by `Content-Length`); `None` at end of stream.
fn read_message(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

impl SpoilingProxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let me = Self {
            addr: listener.local_addr().expect("addr"),
            spoil: Arc::new(AtomicU8::new(Spoil::Nothing as u8)),
        };
        let proxy = me.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let proxy = proxy.clone();
                std::thread::spawn(move || proxy.serve(client, upstream));
            }
        });
        me
    }

    fn set(&self, spoil: Spoil) {
        self.spoil.store(spoil as u8, Ordering::SeqCst);
    }

    fn serve(&self, client: TcpStream, upstream: SocketAddr) {
        let Ok(mut out) = client.try_clone() else {
            return;
        };
        let mut requests = BufReader::new(client);
        let Ok(server) = TcpStream::connect(upstream) else {
            return;
        };
        let Ok(mut to_server) = server.try_clone() else {
            return;
        };
        let mut answers = BufReader::new(server);
        while let Some((head, body)) = read_message(&mut requests) {
            let pull = head.starts_with("GET ") && head.contains("type=log&");
            let spoil = self.spoil.load(Ordering::SeqCst);
            if pull && (spoil == Spoil::HugeLength as u8 || spoil == Spoil::Endless as u8) {
                let chunked = spoil == Spoil::Endless as u8;
                let length = if chunked {
                    "transfer-encoding: chunked"
                } else {
                    "content-length: 10000000000"
                };
                let _ = out.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\n{length}\r\nx-log-count: 1\r\n\
                         x-log-bodyrawsize: 100\r\nx-log-cursor: MQ==\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let mut chunk = Vec::new();
                if chunked {
                    chunk.extend_from_slice(b"10000\r\n");
                }
                chunk.resize(chunk.len() + (64 << 10), 0);
                if chunked {
                    chunk.extend_from_slice(b"\r\n");
                }
                while out.write_all(&chunk).is_ok() {}
                return;
            }
            if to_server.write_all(head.as_bytes()).is_err() || to_server.write_all(&body).is_err()
            {
                return;
            }
            let Some((mut answer, body)) = read_message(&mut answers) else {
                return;
            };
            if pull && spoil == Spoil::RawSize as u8 && answer.contains("x-log-bodyrawsize") {
                answer = answer
                    .lines()
                    .map(|l| {
                        if l.to_ascii_lowercase().starts_with("x-log-bodyrawsize:") {
                            "x-log-bodyrawsize: 1073741824".to_owned()
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n")
                    + "\r\n";
            }
            if out.write_all(answer.as_bytes()).is_err() || out.write_all(&body).is_err() {
                return;
            }
        }
    }
}

/// Peak resident memory of a process, KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak RSS allowed (a debug build; the whole pipeline with defaults stays
/// well under it, one gigabyte answer would not).
const MAX_PEAK_RSS_MIB: u64 = 200;

async fn refused_then_delivered(spoil: Spoil, expect_in_log: &str) {
    let emu = emulator(SHARDS).await;
    load(&emu, SHARDS, 0, PER_SHARD, 100);
    let proxy = SpoilingProxy::start(emu.addr());
    proxy.set(spoil);
    let receiver = SeqCounter::start(SHARDS, PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "fwd-1",
        &format!("http://{}", proxy.addr),
        receiver.addr,
        "lf",
        "heartbeat_timeout = \"20s\"\nheartbeat_interval = \"2s\"",
    );
    let mut fwd = Siemfwd::start(dir.path(), "fwd-1", &cfg);
    // The endpoint misbehaves for a while: nothing arrives, the memory stays
    // bounded, and the log says why.
    let said = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            fwd.log_text().contains(expect_in_log).then_some(())
        })
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak_spoiled = peak_rss_kib(fwd.pid());
    assert!(
        said.is_some(),
        "no \"{expect_in_log}\" in the log:\n{}",
        fwd.log_text()
    );
    assert_eq!(receiver.lines(), 0, "a refused answer delivered something");
    // It behaves again: every log arrives, once.
    proxy.set(Spoil::Nothing);
    let total = u64::from(SHARDS) * PER_SHARD;
    let arrived = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            (receiver.missing().0 == 0).then_some(())
        })
    });
    let peak = peak_rss_kib(fwd.pid());
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    println!(
        "sls_hostile {spoil:?}: peak RSS {peak_spoiled} KiB while spoiled, {peak} KiB in all; \
         {} of {total} logs received",
        receiver.lines()
    );
    assert!(
        arrived.is_some(),
        "{} logs missing after the endpoint healed:\n{}",
        receiver.missing().0,
        warnings(&fwd.log_text()).join("\n")
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(
        peak < MAX_PEAK_RSS_MIB * 1024,
        "peak RSS {peak} KiB over {MAX_PEAK_RSS_MIB} MiB"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_bodyrawsize_claim_is_refused_not_allocated() {
    refused_then_delivered(Spoil::RawSize, "(by x-log-bodyrawsize) is over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_announced_body_is_refused_unread() {
    refused_then_delivered(Spoil::HugeLength, "(by Content-Length) is over").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_at_the_limit() {
    refused_then_delivered(Spoil::Endless, "(by the body read so far) is over").await;
}
