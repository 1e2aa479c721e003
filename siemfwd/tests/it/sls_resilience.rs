//! The Log Service source under the conditions the protocol notes (§10.2)
//! ask to decide consciously, each against the emulator with siemfwd as a
//! real process: injected server errors, throttling and connection resets;
//! a consumer the server forgot; an expired cursor (InvalidCursor); a shard
//! split (read-only parent finished and released); `start_position = "end"`.

use crate::sls_support;

use std::collections::BTreeSet;
use std::time::Duration;

use sls_emulator::Assign;
use sls_support::*;

fn received(r: &Receiver) -> Vec<(u32, u64)> {
    r.lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| seq_of(l))
        .collect()
}

fn wait_complete(r: &Receiver, want: &BTreeSet<(u32, u64)>, timeout: Duration) -> bool {
    wait_until(timeout, || {
        let got: BTreeSet<(u32, u64)> = received(r).into_iter().collect();
        want.is_subset(&got).then_some(())
    })
    .is_some()
}

fn all(shards: &[u32], from: u64, to: u64) -> BTreeSet<(u32, u64)> {
    shards
        .iter()
        .flat_map(|s| (from..to).map(move |n| (*s, n)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_throttling_and_resets_are_retried_without_loss_or_duplicates() {
    let emu = emulator(4).await;
    load(&emu, 4, 0, 5000, 10);
    emu.faults().set_server_error_rate(0.1);
    emu.faults().set_read_throttle_rate(0.1);
    emu.faults().set_reset_rate(0.02);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    // zstd here, lz4 everywhere else.
    let cfg = config(
        dir.path(),
        "f",
        &emu.endpoint(),
        r.addr,
        "lf",
        "compression = \"zstd\"\nheartbeat_timeout = \"20s\"\nmax_fetch_log_groups = 20",
    );
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    let want = all(&[0, 1, 2, 3], 0, 5000);
    let ok = tokio::task::block_in_place(|| wait_complete(&r, &want, Duration::from_secs(120)));
    assert!(ok, "not everything arrived\n{}", fwd.log_text());
    emu.faults().clear();
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
    let (missing, dups, _) = tally(received(&r), 4, 5000);
    assert!(missing.is_empty());
    assert_eq!(
        dups, 0,
        "faults are drawn before the emulator acts, so retries never duplicate"
    );
    assert!(
        checkpoints_at_end(&emu, 4),
        "{:?}",
        emu.checkpoints(PROJECT, LOGSTORE, "cg")
    );
    let warned = warnings(&fwd.log_text());
    assert!(
        warned
            .iter()
            .any(|w| w.contains("retrying") || w.contains("failed")),
        "the faults were seen and retried: {warned:#?}\n{}",
        fwd.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_the_server_forgot_rejoins_and_goes_on() {
    let emu = emulator(2).await;
    load(&emu, 2, 0, 1000, 50);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "f", &emu.endpoint(), r.addr, "lf", "");
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    let first = all(&[0, 1], 0, 1000);
    assert!(tokio::task::block_in_place(|| wait_complete(
        &r,
        &first,
        Duration::from_secs(60)
    )));
    // The server drops the consumer, as after a timeout; its next heartbeat
    // (with its shards) gets NotExistConsumerWithBody.
    assert!(emu.expire_consumer(PROJECT, LOGSTORE, "cg", "f"));
    load(&emu, 2, 1000, 1000, 50);
    let second = all(&[0, 1], 0, 2000);
    let ok = tokio::task::block_in_place(|| wait_complete(&r, &second, Duration::from_secs(60)));
    assert!(ok, "{}", fwd.log_text());
    // It learns it was dropped either from its next heartbeat
    // (NotExistConsumerWithBody) or from its next commit (ConsumerNotExist),
    // whichever comes first; either way it lets go of its shards and
    // re-joins.
    let noticed = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let log = fwd.log_text();
            (log.contains("no longer knows this consumer")
                || log.contains("the server refused the checkpoint"))
            .then_some(())
        })
    });
    assert!(noticed.is_some(), "{}", fwd.log_text());
    // After re-joining it holds both shards again and reads what comes next.
    load(&emu, 2, 2000, 1000, 50);
    let third = all(&[0, 1], 0, 3000);
    let ok = tokio::task::block_in_place(|| wait_complete(&r, &third, Duration::from_secs(60)));
    assert!(ok, "{}", fwd.log_text());
    let held = emu.assignment(PROJECT, LOGSTORE, "cg").unwrap();
    assert!(
        held.values().all(|a| *a == Assign::Held("f".into())),
        "{held:?}"
    );
    let (missing, dups, _) = tally(received(&r), 2, 3000);
    assert!(missing.is_empty());
    println!("forgotten consumer: {dups} duplicates (what it delivered after its last commit)");
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_resumes_at_the_oldest_kept_data_not_the_end() {
    let emu = emulator(1).await;
    load(&emu, 1, 0, 1000, 50);
    let dir = tempfile::tempdir().unwrap();
    let r1 = Receiver::start();
    let cfg = config(dir.path(), "f", &emu.endpoint(), r1.addr, "lf", "");
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    assert!(tokio::task::block_in_place(|| wait_complete(
        &r1,
        &all(&[0], 0, 1000),
        Duration::from_secs(60)
    )));
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
    assert!(checkpoints_at_end(&emu, 1));
    // More data, then the server expires everything up to the middle of it:
    // the committed checkpoint (log 1000) now points at deleted data.
    load(&emu, 1, 1000, 1000, 50);
    emu.expire_groups(PROJECT, LOGSTORE, 0, 30).unwrap(); // 30 groups × 50 = logs 0..1500
    let r2 = Receiver::start();
    let cfg = config(dir.path(), "g", &emu.endpoint(), r2.addr, "lf", "");
    let mut fwd = Siemfwd::start(dir.path(), "g", &cfg);
    let kept = all(&[0], 1500, 2000);
    let ok = tokio::task::block_in_place(|| wait_complete(&r2, &kept, Duration::from_secs(60)));
    assert!(ok, "{}", fwd.log_text());
    let got = received(&r2);
    assert_eq!(
        got.first(),
        Some(&(0, 1500)),
        "starts at the oldest kept log"
    );
    assert_eq!(got.len(), 500, "nothing kept was skipped or repeated");
    assert!(
        fwd.log_text().contains("cursor no longer valid"),
        "{}",
        fwd.log_text()
    );
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_is_read_to_its_end_committed_and_released() {
    let emu = emulator(1).await;
    load(&emu, 1, 0, 1000, 50);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "f",
        &emu.endpoint(),
        r.addr,
        "lf",
        "in_order = true",
    );
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    assert!(tokio::task::block_in_place(|| wait_complete(
        &r,
        &all(&[0], 0, 500),
        Duration::from_secs(60)
    )));
    emu.split_shard(PROJECT, LOGSTORE, 0, "80000000000000000000000000000000")
        .unwrap();
    let children: Vec<u32> = emu
        .shard_sizes(PROJECT, LOGSTORE)
        .unwrap()
        .keys()
        .copied()
        .filter(|s| *s != 0)
        .collect();
    assert_eq!(children.len(), 2, "{children:?}");
    for c in &children {
        load_shard(&emu, *c, 0, 300, 50);
    }
    let mut want = all(&[0], 0, 1000);
    want.extend(all(&children, 0, 300));
    let ok = tokio::task::block_in_place(|| wait_complete(&r, &want, Duration::from_secs(60)));
    assert!(ok, "{}", fwd.log_text());
    // The parent is released for good: committed at its end and no longer
    // assigned.
    let released = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let a = emu.assignment(PROJECT, LOGSTORE, "cg").unwrap();
            (!a.contains_key(&0)).then_some(())
        })
    });
    assert!(
        released.is_some(),
        "{:?}\n{}",
        emu.assignment(PROJECT, LOGSTORE, "cg"),
        fwd.log_text()
    );
    let end0 = emu.cursor(PROJECT, LOGSTORE, 0, "end").unwrap();
    let cps = emu.checkpoints(PROJECT, LOGSTORE, "cg").unwrap();
    assert!(
        cps.iter().any(|c| c.shard == 0 && c.checkpoint == end0),
        "{cps:?}"
    );
    let (_, dups, _) = tally(received(&r).into_iter().filter(|(s, _)| *s == 0), 1, 1000);
    assert_eq!(dups, 0);
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_position_end_reads_only_what_comes_after_the_start() {
    let emu = emulator(2).await;
    load(&emu, 2, 0, 500, 50);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "f",
        &emu.endpoint(),
        r.addr,
        "lf",
        "start_position = \"end\"",
    );
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    // Wait until both shards have a reader (it commits nothing yet, but the
    // server lists them as held), then write more.
    let held = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let a = emu.assignment(PROJECT, LOGSTORE, "cg")?;
            (a.len() == 2).then_some(())
        })
    });
    assert!(held.is_some());
    // The readers look up their start as soon as they are assigned; give the
    // lookup a definite point to have passed: its GetCursor shows up as the
    // shard being pulled at the end (an idle commit of the end cursor).
    let started = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            checkpoints_at_end(&emu, 2).then_some(())
        })
    });
    assert!(started.is_some(), "{}", fwd.log_text());
    load(&emu, 2, 500, 200, 50);
    let ok = tokio::task::block_in_place(|| {
        wait_complete(&r, &all(&[0, 1], 500, 700), Duration::from_secs(60))
    });
    assert!(ok, "{}", fwd.log_text());
    assert!(
        received(&r).iter().all(|(_, n)| *n >= 500),
        "nothing from before the start"
    );
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_signed_requests_consume_like_v1() {
    let emu = emulator(2).await;
    load(&emu, 2, 0, 500, 50);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "f",
        &emu.endpoint(),
        r.addr,
        "lf",
        "auth_version = \"v4\"\nregion = \"cn-hangzhou\"",
    );
    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    let ok = tokio::task::block_in_place(|| {
        wait_complete(&r, &all(&[0, 1], 0, 500), Duration::from_secs(60))
    });
    assert!(ok, "{}", fwd.log_text());
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            checkpoints_at_end(&emu, 2).then_some(())
        })
    });
    assert!(done.is_some(), "{}", fwd.log_text());
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
}
