//! Telling systemd how the service is doing (`Type=notify`, sd_notify(3)):
//! `READY=1` once siemfwd forwards (the source has its shards and the sink
//! a working connection: what `/ready` checks), `STOPPING=1` when it starts
//! to drain, and `WATCHDOG=1` every half `WatchdogSec` while its consumer
//! group answers heartbeats ([`crate::telemetry::alive`], `/health` less
//! refused credentials, which a restart cannot fix and which would make the
//! new process stop at start) — so systemd restarts a siemfwd whose
//! consumer group stopped answering, not only one that died.
//!
//! The protocol is one datagram per state to the socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace); without
//! it (not started by systemd) nothing is sent. No crate: a dozen lines of
//! `std`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::counters::Metrics;

/// The notification socket, if systemd gave one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; a socket that cannot be used is logged once and
    /// ignored (the service then simply never says it is ready).
    pub fn from_env() -> Self {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { socket: None };
        };
        let name = name.to_string_lossy().into_owned();
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        } else {
            std::os::unix::net::SocketAddr::from_pathname(&name)
        };
        let socket = addr.and_then(|addr| UnixDatagram::unbound().map(|s| (s, addr)));
        match socket {
            Ok(s) => Self { socket: Some(s) },
            Err(e) => {
                tracing::warn!(socket = %name, error = %e, "NOTIFY_SOCKET unusable; systemd will not hear from siemfwd");
                Self { socket: None }
            }
        }
    }

    /// Send one state line (`READY=1`, ...).
    pub fn notify(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket {
            if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
                tracing::debug!(error = %e, state, "sd_notify failed");
            }
        }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), for this
/// process (`WATCHDOG_PID` unset or ours).
fn watchdog() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => (usec > 0).then(|| Duration::from_micros(usec)),
    }
}

/// Say `READY=1` once the pipeline forwards, `WATCHDOG=1` while it is
/// alive, and `STOPPING=1` when `stopping` fires; ends then.
pub async fn run(notifier: Notifier, metrics: Metrics, stopping: CancellationToken) {
    if !notifier.enabled() {
        return;
    }
    let beat = watchdog().map(|w| w / 2);
    let mut ready = false;
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stopping.cancelled() => {
                notifier.notify("STOPPING=1");
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if !ready && crate::telemetry::ready(&metrics).is_ok() {
            ready = true;
            notifier.notify("READY=1\nSTATUS=forwarding");
        }
        if let Some(beat) = beat {
            if last_beat.elapsed() >= beat && crate::telemetry::alive(&metrics).is_ok() {
                notifier.notify("WATCHDOG=1");
                last_beat = tokio::time::Instant::now();
            }
        }
    }
}
