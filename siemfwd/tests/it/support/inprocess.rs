//! siemfwd's own receiver (the code of `siemfwd listen`) run inside the test process: it
//! counts what arrives and discards it, and stops when its token is cancelled. For tests
//! about siemfwd's side (metrics, RELP sessions), where a real peer would add nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use siemfwd::listen::{ListenConfig, Listener, Output, RelpFaults, Stats};
use tokio_util::sync::CancellationToken;

/// A running receiver: where it listens, what it counted, how to stop it.
pub(crate) struct Receiver {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub stop: CancellationToken,
}

async fn start(config: ListenConfig, relp: bool) -> Receiver {
    let listener = Listener::bind(config).await.expect("bind");
    let addrs = listener.local_addrs();
    let addr = if relp { addrs.relp } else { addrs.tcp }.expect("bound");
    let stats = listener.stats();
    let stop = CancellationToken::new();
    let c = stop.clone();
    tokio::spawn(async move { listener.run(tokio::io::sink(), c).await });
    Receiver { addr, stats, stop }
}

/// Syslog over TCP on `addr` (port 0: any).
pub(crate) async fn tcp(addr: SocketAddr) -> Receiver {
    let config = ListenConfig {
        tcp: Some(addr),
        output: Output::Discard,
        ..ListenConfig::default()
    };
    start(config, false).await
}

/// RELP on a loopback port, with `faults`.
pub(crate) async fn relp(faults: RelpFaults) -> Receiver {
    let config = ListenConfig {
        relp: Some("127.0.0.1:0".parse().expect("addr")),
        relp_faults: faults,
        output: Output::Discard,
        ..ListenConfig::default()
    };
    start(config, true).await
}
