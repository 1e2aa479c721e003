//! Temporary credentials (issue 15, part 2): siemfwd signs with keys from
//! each source of temporary keys — a credentials URI, the ECS instance's
//! RAM role found by the lookup, RRSA's `AssumeRoleWithOIDC` — all served by
//! the emulator on loopback, issuing STS-style keys valid for a few seconds
//! and refusing them once expired. siemfwd replaces them before they
//! expire, without a restart and without giving up a shard: every log
//! arrives, the checkpoints reach the end, and the keys were replaced
//! several times. The RAM-role run is the long one (a million logs) and
//! goes through an outage of the credential services: each failed refresh
//! is one log line, and the key held carries the run through.

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
    without_access_key(&cfg);
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
    until_refreshed(&fwd, 2);
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

/// Take the AccessKey out of a config that `sls_support::config` wrote.
fn without_access_key(cfg: &std::path::Path) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("access_key_id") && !l.starts_with("access_key_secret"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(cfg, text).unwrap();
}

/// Keep siemfwd running (its heartbeats keep signing requests) until its log shows `n`
/// replacements of the keys: however fast the logs went through, the keys must have been
/// replaced in flight, at least `n` times.
fn until_refreshed(fwd: &Siemfwd, n: usize) {
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            (fwd.log_text()
                .matches("temporary credentials refreshed")
                .count()
                >= n)
                .then_some(())
        })
    });
}

/// Lines of the log that say a refresh failed.
fn refresh_failures(log: &str) -> usize {
    log.matches("cannot refresh the temporary credentials")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookup_finds_the_ecs_ram_role_and_a_million_logs_cross_a_credentials_outage() {
    const SHARDS: u32 = 4;
    const PER_SHARD: u64 = 250_000;
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, SHARDS)
        .ecs_role("forwarder")
        .credential_ttl(Duration::from_secs(6))
        .start()
        .await
        .expect("emulator starts");
    load(&emu, SHARDS, 0, PER_SHARD, 100);
    // Requests a little slow, so the run outlasts a few keys.
    emu.faults()
        .set_latency(Duration::from_millis(10), Duration::from_millis(5));
    let receiver = SeqCounter::start(SHARDS, PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    // Nothing says where keys come from: the lookup finds the metadata
    // service (the emulator's, not 100.100.100.200) and the role on it.
    let cfg = config(
        dir.path(),
        "ecs",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        &format!("metadata_endpoint = \"http://{}\"", emu.addr()),
    );
    without_access_key(&cfg);
    let mut fwd = Siemfwd::start_with_env(
        dir.path(),
        "ecs",
        &cfg,
        &[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")],
    );
    let total = u64::from(SHARDS) * PER_SHARD;
    // Keys live 6 s, less the part of a second their whole-second
    // `Expiration` cuts off: 5 to 6 s. Right after they were replaced, every
    // credential service goes down from 0.5 s to 4.3 s: the next refresh
    // falls due inside (at two thirds of the life, 3.3 to 4 s) and fails,
    // the retry comes before the outage ends or after it, and the key held
    // (1.7 s of life left when due) outlives it.
    let refreshed = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            fwd.log_text()
                .contains("temporary credentials refreshed")
                .then(std::time::Instant::now)
        })
    });
    let refreshed = refreshed.unwrap_or_else(|| panic!("no refresh:\n{}", fwd.log_text()));
    tokio::time::sleep_until((refreshed + Duration::from_millis(500)).into()).await;
    emu.faults().set_identity_error_rate(1.0);
    tokio::time::sleep_until((refreshed + Duration::from_millis(4300)).into()).await;
    emu.faults().set_identity_error_rate(0.0);
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(300), || {
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
    until_refreshed(&fwd, 2);
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    let log = fwd.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        warnings(&log).join("\n")
    );
    assert!(
        log.contains("temporary credentials obtained")
            && log.contains("the ECS instance's RAM role at http://127.0.0.1:"),
        "{log}"
    );
    let refreshed = log.matches("temporary credentials refreshed").count();
    let failed = refresh_failures(&log);
    let refused = emu.faults().counts().identity_errors;
    println!(
        "sls_credentials: {total} logs over the ECS RAM role, keys replaced {refreshed} times, \
         {failed} refreshes failed in the outage ({refused} requests refused), {} duplicates",
        receiver.duplicates()
    );
    assert!(refreshed >= 2, "keys replaced {refreshed} times");
    // Each failed refresh is one request refused (the session token's PUT)
    // and one log line: not one per request that used the key meanwhile.
    assert!(failed >= 1, "the outage was not met:\n{log}");
    assert_eq!(failed as u64, refused, "{}", warnings(&log).join("\n"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsa_assumes_the_role_with_the_token_file_and_refreshes_it() {
    const SHARDS: u32 = 2;
    const PER_SHARD: u64 = 50_000;
    let trust = sls_emulator::OidcTrust::default();
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, SHARDS)
        .credential_ttl(Duration::from_secs(2))
        .start()
        .await
        .expect("emulator starts");
    load(&emu, SHARDS, 0, PER_SHARD, 50);
    emu.faults()
        .set_latency(Duration::from_millis(5), Duration::from_millis(5));
    let receiver = SeqCounter::start(SHARDS, PER_SHARD);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", trust.token)).unwrap();
    let cfg = config(
        dir.path(),
        "rrsa",
        &emu.endpoint(),
        receiver.addr,
        "lf",
        &format!("sts_endpoint = \"http://{}\"", emu.addr()),
    );
    without_access_key(&cfg);
    // The variables ACK's RRSA sets in the pod, as the Alibaba Cloud
    // credential libraries read them.
    let token_path = token_file.display().to_string();
    let mut fwd = Siemfwd::start_with_env(
        dir.path(),
        "rrsa",
        &cfg,
        &[
            ("ALIBABA_CLOUD_ROLE_ARN", trust.role_arn.as_str()),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                trust.provider_arn.as_str(),
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token_path.as_str()),
        ],
    );
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
    until_refreshed(&fwd, 2);
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    let log = fwd.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        warnings(&log).join("\n")
    );
    assert!(log.contains("AssumeRoleWithOIDC of acs:ram::"), "{log}");
    let refreshed = log.matches("temporary credentials refreshed").count();
    assert!(refreshed >= 2, "keys replaced {refreshed} times:\n{log}");
    assert_eq!(refresh_failures(&log), 0, "{}", warnings(&log).join("\n"));
    // The token is a secret: never in the log.
    assert!(!log.contains(&trust.token), "the OIDC token was logged");
    emu.shutdown().await;
}
