//! The receiver: siemfwd's own `listen` module run in-process (the same code as
//! `siemfwd listen`), on TCP, TLS, RELP and RELP/TLS ports of 127.0.0.1. For throughput it frames and
//! counts (`--output discard`); the harness polls its counters every few milliseconds, which
//! a separate process's once-a-second count line could not give.
//!
//! For latency it writes JSON lines into a pipe that a task reads: each message carries
//! `bench_sent_ns=<unix ns>` (the moment the harness wrote the log into the source), and the
//! task records `now − sent` for each one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use siemfwd::listen::{ListenConfig, Listener, Output, Stats};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The field that carries the send time, in nanoseconds since the epoch.
pub(crate) const SENT_FIELD: &str = "bench_sent_ns";

/// A running receiver.
pub(crate) struct Receiver {
    /// TCP address.
    pub tcp: std::net::SocketAddr,
    /// TLS address.
    pub tls: std::net::SocketAddr,
    /// RELP address.
    pub relp: std::net::SocketAddr,
    /// RELP over TLS address.
    pub relp_tls: std::net::SocketAddr,
    /// Live counters.
    pub stats: Arc<Stats>,
    /// Latencies (ns) of marked messages, when started for latency.
    pub latencies: Arc<Mutex<Vec<(u64, u64)>>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    reader: Option<JoinHandle<()>>,
}

/// Nanoseconds since the epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Receiver {
    /// Binds TCP and TLS on ephemeral loopback ports.
    pub(crate) async fn start(cert: &Path, key: &Path, latency: bool) -> anyhow::Result<Self> {
        let any = "127.0.0.1:0".parse()?;
        let cfg = ListenConfig {
            tcp: Some(any),
            tls: Some(any),
            relp: Some(any),
            relp_tls: Some(any),
            tls_cert_file: Some(cert.to_owned()),
            tls_key_file: Some(key.to_owned()),
            output: if latency {
                Output::JsonLines
            } else {
                Output::Discard
            },
            ..ListenConfig::default()
        };
        let listener = Listener::bind(cfg).await.context("binding the receiver")?;
        let addrs = listener.local_addrs();
        let stats = listener.stats();
        let cancel = CancellationToken::new();
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let (task, reader) = if latency {
            let (w, r) = tokio::io::duplex(1 << 20);
            let c = cancel.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = listener.run(w, c).await {
                    eprintln!("bench: receiver stopped: {e}");
                }
            });
            let lat = Arc::clone(&latencies);
            let reader = tokio::spawn(async move {
                let mut r = BufReader::with_capacity(1 << 20, r);
                let mut line = Vec::new();
                let pat = format!("{SENT_FIELD}=");
                let finder = memchr_find(pat.as_bytes());
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let now = now_ns();
                    if let Some(i) = finder(&line) {
                        let digits: Vec<u8> = line[i + pat.len()..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .copied()
                            .collect();
                        if let Some(sent) = std::str::from_utf8(&digits)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            if let Ok(mut v) = lat.lock() {
                                v.push((sent, now.saturating_sub(sent)));
                            }
                        }
                    }
                }
            });
            (task, Some(reader))
        } else {
            let c = cancel.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = listener.run(tokio::io::sink(), c).await {
                    eprintln!("bench: receiver stopped: {e}");
                }
            });
            (task, None)
        };
        Ok(Self {
            tcp: addrs.tcp.context("no TCP address")?,
            tls: addrs.tls.context("no TLS address")?,
            relp: addrs.relp.context("no RELP address")?,
            relp_tls: addrs.relp_tls.context("no RELP/TLS address")?,
            stats,
            latencies,
            cancel,
            task,
            reader,
        })
    }

    /// Messages received so far.
    pub(crate) fn messages(&self) -> u64 {
        self.stats.snapshot().messages
    }

    /// Stops it and waits for its tasks.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        if let Some(r) = self.reader {
            let _ = r.await;
        }
    }
}

fn memchr_find(pat: &[u8]) -> impl Fn(&[u8]) -> Option<usize> + Send + 'static {
    let pat = pat.to_vec();
    move |hay: &[u8]| hay.windows(pat.len()).position(|w| w == pat.as_slice())
}
