//! Issue 16 acceptance: rsyslog SIGKILLed 10 times during a 1,000,000-line
//! run, with a main queue that writes each message out before going on
//! (`queue.type="Direct"`): over RELP, where rsyslog answers a message only
//! once it is written, nothing may be missing — a SIGKILL loses only what
//! rsyslog had not answered, and siemfwd sends that again. Duplicates (what
//! rsyslog wrote but died before answering, and answers lost with the
//! connection) are counted and printed.
//!
//! The same run over TCP is printed beside it, not judged: there a batch is
//! "delivered" once rsyslog's kernel acknowledged it and the connection then
//! stayed up for `settle_time`, and a SIGKILL can still take lines rsyslog
//! had read but not yet written. Whatever that run shows is what TCP can
//! promise against a receiver killed outright.

use crate::delivery_support::{self, Interruption};
use crate::support::peers::Input;

#[test]
fn rsyslog_sigkilled_10_times_during_1m_lines_over_relp_loses_nothing() {
    let _alone = crate::support::alone();
    let lines = delivery_support::env_usize("SIEMFWD_TEST_LINES", 1_000_000);
    delivery_support::receiver_interrupted(
        Input::Relp,
        4,
        lines,
        100_000,
        10,
        Interruption::Kill { lossless: true },
    );
}

#[test]
fn the_same_sigkills_over_tcp_for_comparison() {
    let _alone = crate::support::alone();
    let lines = delivery_support::env_usize("SIEMFWD_TEST_LINES", 1_000_000);
    delivery_support::receiver_interrupted(
        Input::Tcp,
        4,
        lines,
        100_000,
        10,
        Interruption::Kill { lossless: false },
    );
}
