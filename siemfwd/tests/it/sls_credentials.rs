//! Temporary credentials (issue 15, part 2, first source): siemfwd signs
//! with keys from `source.sls.credentials_uri` — here the emulator's
//! `/_emulator/credentials`, issuing STS-style keys valid for two seconds and
//! refusing them once expired — and replaces them before they expire,
//! without a restart and without giving up a shard: every log arrives, the
//! checkpoints reach the end, and the keys were replaced several times.

use crate::sls_support;

use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 4;
const PER_SHARD: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_expire_every_two_seconds_are_replaced_in_flight() {
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, SHARDS)
        .credential_ttl(Duration::from_secs(2))
        .start()
        .await
        .expect("emulator starts");
    load(&emu, SHARDS, 0, PER_SHARD, 50);
    // A few milliseconds per request spread the run over several lifetimes of a key.
    emu.faults()
        .set_latency(Duration::from_millis(5), Duration::from_millis(5));
    let receiver = SeqCounter::start(SHARDS, PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "sts",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        &format!(
            "fetch_bytes = \"32KiB\"\ncredentials_uri = \"http://{}/_emulator/credentials\"",
            emu.addr()
        ),
    );
    // No AccessKey in the file: the URI gives them.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("access_key_id") && !l.starts_with("access_key_secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, text).unwrap();
    let mut fwd = Siemfwd::start(dir.path(), "sts", &cfg);
    let total = u64::from(SHARDS) * PER_SHARD;
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(180), || {
            (receiver.missing().0 == 0 && checkpoints_at_end(&emu, SHARDS)).then_some(())
        })
    });
    let log = fwd.log_text();
    assert!(
        done.is_some(),
        "{} of {total} missing\n{}",
        receiver.missing().0,
        warnings(&log).join("\n")
    );
    emu.faults().clear();
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    let log = fwd.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        warnings(&log).join("\n")
    );
    let refreshed = log.matches("temporary credentials refreshed").count();
    println!(
        "sls_credentials: {total} logs, keys replaced {refreshed} times, {} duplicates",
        receiver.duplicates()
    );
    assert!(refreshed >= 2, "keys replaced {refreshed} times:\n{log}");
    // No shard given up, nothing refused for its credentials.
    let warned = warnings(&log);
    assert!(
        !warned
            .iter()
            .any(|w| w.contains("someone else") || w.contains("Unauthorized")),
        "{warned:#?}"
    );
    assert_eq!(receiver.reordered(), 0);
    emu.shutdown().await;
}
