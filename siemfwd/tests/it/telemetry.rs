//! `/metrics`, `/health` and `/ready` of a real siemfwd process (issue 17, first part):
//! reading a followed file, sending to an in-process receiver over TCP. `/metrics` says
//! what the receiver counted; `/ready` turns 503 (with why) when the receiver goes away
//! and 200 again when it is back; `/health` stays 200 (no consumer group to lose).

use crate::support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::http::metrics_address;
use support::inprocess;
use support::siemfwd::{command, toml_path, Running};

const LINES: u64 = 5_000;

/// `GET path`: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    support::http::get(addr, path).expect("an answer")
}

/// The value of a sample in the exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_what_arrived_and_ready_follows_the_receiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.ndjson");
    let text: String = (0..LINES)
        .map(|i| format!("{{\"seq\":\"{i}\"}}\n"))
        .collect();
    std::fs::write(&input, text).expect("input");
    let inprocess::Receiver {
        addr: rx_addr,
        stats,
        stop: stop_rx,
    } = inprocess::tcp("127.0.0.1:0".parse().expect("addr")).await;
    let cfg = dir.path().join("siemfwd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"file\"\n[source.file]\npaths = [{}]\nfollow = true\nstate_dir = {}\n\
             [sink]\ntype = \"tcp\"\naddress = \"{rx_addr}\"\nbackoff_max = \"200ms\"\n\
             [metrics]\naddress = \"127.0.0.1:0\"\n",
            toml_path(&input),
            toml_path(&dir.path().join("state")),
        ),
    )
    .expect("config");
    let mut fwd = Running::start(command(&["run", "-c", cfg.to_str().expect("utf-8")]));
    let addr: SocketAddr = tokio::task::block_in_place(|| {
        until("the metrics address in the log", || {
            metrics_address(&fwd.stderr())
        })
    });
    tokio::task::block_in_place(|| {
        until("every line delivered and shown", || {
            let (status, text) = get(addr, "/metrics");
            let shown = sample(&text, "siemfwd_messages_delivered_total")?;
            (status == 200 && shown == LINES as f64 && stats.snapshot().messages == LINES)
                .then_some(())
        })
    });
    let (_, text) = tokio::task::block_in_place(|| get(addr, "/metrics"));
    assert_eq!(
        sample(&text, "siemfwd_records_in_total"),
        Some(LINES as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "siemfwd_source_assigned"),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "siemfwd_delivered_timestamp_seconds").is_some_and(|t| t > 0.0));
    assert!(text.contains("siemfwd_build_info{version=\""), "{text}");
    assert_eq!(
        sample(&text, "siemfwd_bytes_in_total"),
        Some(std::fs::metadata(&input).expect("input").len() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "siemfwd_messages_sent_total"),
        Some(LINES as f64),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "siemfwd_records_discarded_total{reason=\"filtered\",intentional=\"true\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(tokio::task::block_in_place(|| get(addr, "/ready")).0, 200);
    assert_eq!(tokio::task::block_in_place(|| get(addr, "/health")).0, 200);

    // The receiver goes away; a new line makes the sink find out.
    stop_rx.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| f.write_all(b"{\"seq\":\"late\"}\n"))
        .expect("append");
    let why = tokio::task::block_in_place(|| {
        until("/ready to say the SIEM is unreachable", || {
            let (status, body) = get(addr, "/ready");
            (status == 503).then_some(body)
        })
    });
    let why: serde_json::Value = serde_json::from_str(&why).expect("JSON");
    assert_eq!(why["status"], "not ready");
    assert!(
        why["why"]
            .as_str()
            .is_some_and(|w| w.contains("unreachable")),
        "{why}"
    );

    // Back on the same port: ready again, and the late line arrives.
    let inprocess::Receiver {
        stats,
        stop: stop_rx,
        ..
    } = inprocess::tcp(rx_addr).await;
    tokio::task::block_in_place(|| {
        until("/ready again", || {
            (get(addr, "/ready").0 == 200 && stats.snapshot().messages >= 1).then_some(())
        })
    });
    fwd.signal("TERM");
    let status = fwd.wait_exit(Duration::from_secs(30));
    stop_rx.cancel();
    assert!(status.success(), "{}", fwd.stderr());
}

/// siemfwd reading the emulator's logstore, sending to `sink`, serving `[metrics]` on a
/// port of its choice: the process and that address.
fn start_sls(
    dir: &std::path::Path,
    name: &str,
    emu: &sls_emulator::RunningEmulator,
    sink: SocketAddr,
) -> (crate::sls_support::Siemfwd, SocketAddr) {
    let cfg = crate::sls_support::config(dir, name, &emu.endpoint(), sink, "lf", "");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[metrics]\naddress = \"127.0.0.1:0\"\n");
    std::fs::write(&cfg, text).expect("config");
    let fwd = crate::sls_support::Siemfwd::start(dir, name, &cfg);
    let addr = tokio::task::block_in_place(|| {
        until("the metrics address in the log", || {
            metrics_address(&fwd.log_text())
        })
    });
    (fwd, addr)
}

/// `/health` flips to 503 (why: refused credentials) when Log Service refuses the AccessKey
/// the group had accepted — the key disabled mid-run for longer than the group's timeout —
/// and back to 200 once it is enabled again; the process keeps running throughout and then
/// delivers every log, the ones written during the refusal included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_key_refused_and_accepted_again() {
    use crate::sls_support::{self, AK_ID};
    const SHARDS: u32 = 2;
    const PER_SHARD: u64 = 1_000;
    let emu = sls_support::emulator(SHARDS).await;
    sls_support::load(&emu, SHARDS, 0, PER_SHARD / 2, 50);
    let rx = sls_support::Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut fwd, addr) = start_sls(dir.path(), "health", &emu, rx.addr);
    tokio::task::block_in_place(|| {
        until("the first half delivered, healthy", || {
            let half = (u64::from(SHARDS) * PER_SHARD / 2) as usize;
            (rx.count() >= half && get(addr, "/health").0 == 200).then_some(())
        })
    });

    assert!(emu.set_key_enabled(AK_ID, false));
    sls_support::load(&emu, SHARDS, PER_SHARD / 2, PER_SHARD / 2, 50);
    let why = tokio::task::block_in_place(|| {
        until("/health to report the refused credentials", || {
            let (status, body) = get(addr, "/health");
            (status == 503).then_some(body)
        })
    });
    let why: serde_json::Value = serde_json::from_str(&why).expect("JSON");
    assert_eq!(why["status"], "failing");
    assert!(
        why["why"]
            .as_str()
            .is_some_and(|w| w.contains("refused the credentials")),
        "{why}"
    );
    let (_, metrics) = tokio::task::block_in_place(|| get(addr, "/metrics"));
    assert_eq!(sample(&metrics, "siemfwd_healthy"), Some(0.0), "{metrics}");
    assert!(
        sample(
            &metrics,
            "siemfwd_credentials_refused_since_timestamp_seconds"
        )
        .is_some_and(|t| t > 0.0),
        "{metrics}"
    );

    // Longer than the group's timeout (3 s): the group lets the shards go,
    // and hands them back from their checkpoints once the key works again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!emu.set_key_enabled(AK_ID, true));
    // Every log, the ones written during the refusal included (some of the first half
    // come twice: the shards went back to their checkpoints).
    tokio::task::block_in_place(|| {
        until("healthy again, every log delivered", || {
            (get(addr, "/health").0 == 200 && rx.missing(SHARDS, PER_SHARD) == 0).then_some(())
        })
    });
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    assert!(status.is_some_and(|s| s.success()), "{}", fwd.log_text());
    let log = fwd.log_text();
    assert!(
        log.contains("refuses the credentials it accepted before"),
        "{log}"
    );
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    println!("{} warnings:\n{}", warnings.len(), warnings.join("\n"));
}

/// A RAM policy changed mid-run so that checkpoint commits are refused while reads work:
/// one warning per shard, `/health` 503 saying so, checkpoint failures counted; allowed
/// again, the checkpoints reach the end and `/health` is 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_commits_refused_by_a_policy_until_allowed() {
    use crate::sls_support::{self, AK_ID};
    const SHARDS: u32 = 2;
    let emu = sls_support::emulator(SHARDS).await;
    sls_support::load(&emu, SHARDS, 0, 500, 50);
    let rx = sls_support::Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut fwd, addr) = start_sls(dir.path(), "commits", &emu, rx.addr);
    tokio::task::block_in_place(|| {
        until("the first logs committed", || {
            sls_support::checkpoints_at_end(&emu, SHARDS).then_some(())
        })
    });
    emu.deny_actions(AK_ID, &["log:ConsumerGroupUpdateCheckPoint"]);
    sls_support::load(&emu, SHARDS, 500, 500, 50);
    let why = tokio::task::block_in_place(|| {
        until("/health to report the refused commits", || {
            let (status, body) = get(addr, "/health");
            (status == 503).then_some(body)
        })
    });
    assert!(why.contains("refused the credentials"), "{why}");
    let (_, metrics) = tokio::task::block_in_place(|| get(addr, "/metrics"));
    assert!(
        sample(&metrics, "siemfwd_sls_checkpoint_failures_total").is_some_and(|f| f > 0.0),
        "{metrics}"
    );
    assert!(!sls_support::checkpoints_at_end(&emu, SHARDS));
    emu.deny_actions(AK_ID, &[]);
    tokio::task::block_in_place(|| {
        until("committed to the end, healthy", || {
            (sls_support::checkpoints_at_end(&emu, SHARDS) && get(addr, "/health").0 == 200)
                .then_some(())
        })
    });
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    assert!(status.is_some_and(|s| s.success()), "{}", fwd.log_text());
    let log = fwd.log_text();
    let warned = log
        .lines()
        .filter(|l| l.contains("allow log:ConsumerGroupUpdateCheckPoint"))
        .count();
    assert!(
        (1..=usize::try_from(SHARDS).unwrap_or(2)).contains(&warned),
        "{log}"
    );
    // The receiver's thread may still be reading what the kernel took.
    tokio::task::block_in_place(|| {
        until("every log at the receiver", || {
            (rx.count() >= 2_000).then_some(())
        })
    });
    assert_eq!(rx.count(), 2_000, "every log once");
}
