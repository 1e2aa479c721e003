//! siemfwd's integration tests, one test binary (linking one binary per file
//! cost minutes on a two-core machine). Each module is one subject; the
//! shared harnesses are `support` (the peers: rsyslog, syslog-ng, the
//! siemfwd binary), `delivery_support` (long runs against a restarting
//! receiver) and `sls_support` (the Log Service emulator); with one binary
//! the compiler reports a helper no test uses.

mod delivery_support;
mod sls_support;
mod support;

mod cef_pycef;
mod cli;
mod conformance;
mod delivery_drop;
mod delivery_kills;
mod delivery_kills_relp;
mod delivery_outage;
mod delivery_restarts_tcp;
mod delivery_restarts_tls;
mod delivery_sigterm;
mod file_restart;
mod linkage;
mod packages;
mod peers_smoke;
mod prometheus;
mod relp_sessions;
mod sls_credentials;
mod sls_cutoff;
mod sls_failover;
mod sls_fatal;
mod sls_faults_at_scale;
mod sls_forward;
mod sls_hostile;
mod sls_pulls_ahead;
mod sls_python;
mod sls_resilience;
mod sls_rules;
mod sls_several;
mod sls_status;
mod systemd;
mod telemetry;
mod tls_refusals;
mod transforms_rsyslog;
