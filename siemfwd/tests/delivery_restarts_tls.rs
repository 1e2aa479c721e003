//! Issue 5 acceptance (a) over TLS: rsyslog stopped and started again
//! 10 times while siemfwd forwards followed files to it; nothing may be
//! missing at the receiver, duplicates are counted and printed. Lines are
//! appended at a steady rate (25,000 lines/s) and the restarts are spread
//! over the writing, so each one hits a running transfer.
//!
//! The rate stays below what this rsyslog writes out (its default main
//! queue is in memory and, once stopped, discards what it has not written
//! within its shutdown timeout, 1.5 s: lines it read seconds earlier, which
//! no TCP sender can see; at 50,000 lines/s a restart lost ~20,000 lines
//! that way, see docs/architecture.md "Delivery"). At rates where rsyslog
//! lags only a little (`SIEMFWD_TEST_RATE=100000` to `200000` for 200,000
//! lines), a restart catches our bytes in its socket buffers: with the
//! safe point reduced to "acknowledged" (`SIEMFWD_SINK_SETTLE_TIME=0s`) the
//! test then loses thousands of lines; with the default settle time none.
//!
//! The default run has 200,000 lines; the 1,000,000-line run the issue
//! names is `#[ignore]`d for its length: `cargo test -p siemfwd --test delivery_restarts_tls -- --ignored`.

mod delivery_support;
mod support;

use support::peers::Input;

#[test]
fn rsyslog_restarted_10_times_during_200k_lines_over_tls_loses_nothing() {
    delivery_support::receiver_restarts(Input::Tls, 4, 200_000, 25_000, 10);
}

#[test]
#[ignore = "1,000,000 lines take several minutes in a debug build; run with --ignored"]
fn rsyslog_restarted_10_times_during_1m_lines_over_tls_loses_nothing() {
    delivery_support::receiver_restarts(Input::Tls, 4, 1_000_000, 25_000, 10);
}
