//! RELP sessions with a real siemfwd process and `siemfwd listen`'s RELP side
//! in-process: `siemfwd check` opens a session and prints the receiver's offers; and
//! (issue 16 acceptance) a receiver that stops answering (`withhold_acks`): siemfwd,
//! reading a file, fills the window and writes no more, its memory stays bounded, and it
//! commits nothing — stopped and started again against a receiver that answers, it sends
//! every line from the first, and all of them arrive.

use crate::support;

use std::time::{Duration, Instant};

use siemfwd::listen::RelpFaults;
use support::siemfwd::{command, toml_path, Running};
use tokio_util::sync::CancellationToken;

const LINES: usize = 100_000;
const WINDOW: u64 = 5_000;

fn config(dir: &std::path::Path, input: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("siemfwd.toml");
    let text = format!(
        "[source]\ntype = \"file\"\n[source.file]\npaths = [{input}]\nstate_dir = {state}\n\
         [sink]\ntype = \"relp\"\naddress = \"127.0.0.1:{port}\"\nwrite_timeout = \"60s\"\n\
         [sink.relp]\nwindow = {WINDOW}\n\
         [pipeline]\nbatch_records = 500\ndrain_timeout = \"1s\"\ncheckpoint_interval = \"100ms\"\n",
        input = toml_path(input),
        state = toml_path(&dir.join("state")),
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// The in-process RELP receiver: its port, what it counted, its stop token.
async fn receiver(
    faults: RelpFaults,
) -> (
    u16,
    std::sync::Arc<siemfwd::listen::Stats>,
    CancellationToken,
) {
    let r = support::inprocess::relp(faults).await;
    (r.addr.port(), r.stats, r.stop)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_answers_fill_the_window_stop_the_writes_and_commit_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    let mut text = String::new();
    for i in 0..LINES {
        text.push_str(&format!(
            "{{\"seq\":\"{i}\",\"pad\":\"{}\"}}\n",
            "x".repeat(200)
        ));
    }
    std::fs::write(&input, text).expect("input");

    let (port, stats, stop) = receiver(RelpFaults {
        withhold_acks: true,
        ..RelpFaults::default()
    })
    .await;
    let cfg = config(dir.path(), &input, port);
    let mut fwd = Running::start(command(&["run", "-c", cfg.to_str().expect("utf-8")]));
    // The window fills (up to the batch that would pass it), and then nothing more is
    // written.
    let started = Instant::now();
    while stats.snapshot().messages + 500 <= WINDOW && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = stats.snapshot().messages;
    let rss = rss_kib(fwd.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        written <= WINDOW && written + 500 > WINDOW,
        "{written} written: the window of {WINDOW} filled (within a batch of 500) and no more went"
    );
    assert_eq!(
        stats.snapshot().messages,
        written,
        "no write while nothing is answered"
    );
    assert!(rss < 128 * 1024, "peak RSS {rss} KiB");
    // Stopped: nothing was answered, so nothing may be committed.
    fwd.signal("TERM");
    let status = fwd.wait_exit(Duration::from_secs(30));
    stop.cancel();
    println!(
        "relp_sessions: window {WINDOW} filled, {written} written, RSS {} MiB, exit {status:?}",
        rss / 1024
    );

    // Against a receiver that answers: every line, from the first.
    let (port, stats, stop) = receiver(RelpFaults::default()).await;
    let cfg = config(dir.path(), &input, port);
    let mut fwd = Running::start(command(&["run", "-c", cfg.to_str().expect("utf-8")]));
    let status = fwd.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{}", fwd.stderr());
    let got = stats.snapshot();
    stop.cancel();
    assert_eq!(
        got.messages,
        LINES as u64,
        "the second run sent every line again: nothing had been committed\n{}",
        fwd.stderr()
    );
    assert_eq!(got.relp_acked, LINES as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_opens_a_session_and_prints_the_receivers_offers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"a\":\"1\"}\n").expect("input");
    let (port, _stats, stop) = receiver(RelpFaults::default()).await;
    let cfg = config(dir.path(), &input, port);
    let (status, stdout, stderr) = tokio::task::block_in_place(|| {
        support::siemfwd::run_to_end(
            &["check", "-c", cfg.to_str().expect("utf-8")],
            Duration::from_secs(30),
        )
    });
    stop.cancel();
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "sink: ok (relp 127.0.0.1:{port}; the receiver offers relp_version=0"
        )) && stdout.contains("commands=syslog"),
        "{stdout}"
    );
}
