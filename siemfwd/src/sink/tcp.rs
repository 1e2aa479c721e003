//! The `tcp` transport (RFC 6587): plain syslog through the stream sink,
//! which does everything after this [`SPEC`] and shares it with `tls` and
//! `relp` — resolving and connecting (`stream/conn.rs`), framing, writes,
//! reconnects (`stream/`).

use super::{stream, Endpoint, Spec};

/// The `tcp` transport.
pub(super) const SPEC: Spec = Spec {
    name: "tcp",
    // `tls` reads these and its own table.
    keys: &[
        "address",
        "framing",
        "connect_timeout",
        "write_timeout",
        "backoff_initial",
        "backoff_max",
        "settle_time",
        "max_message",
    ],
    wire: stream::wire,
    build: |config, metrics| {
        let endpoint = Endpoint::parse(&config.address)?;
        Ok(stream::sink(config, endpoint, None, metrics))
    },
};
