//! Acceptance (issue 5): a consumer cut off from the Log Service for longer
//! than the group's heartbeat timeout. Its shards move to the other consumer;
//! the commits it sent during the cut reach the server after the heal and are
//! refused, so it never writes its older position over the new owner's; it
//! lets go of the shards without stopping, re-joins, and no log is lost.
//!
//! Two siemfwd processes, "a" and "b", share 4 shards in one group and
//! forward to one receiver. "a" reaches the emulator through a TCP proxy in
//! this test that holds every byte while cut (a partition, not a refusal: the
//! harder case, since nothing fails fast). Logs are written all along.

use crate::sls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sls_emulator::Assign;
use sls_support::*;

const SHARDS: u32 = 4;
const PER_GROUP: u64 = 50;
/// Logs per shard written before the processes start.
const INITIAL: u64 = 2_000;
/// Logs per shard at the end.
const TOTAL: u64 = 10_000;
/// The group timeout and heartbeat interval the processes configure
/// (`sls_support::config`'s defaults).
const GROUP_TIMEOUT: Duration = Duration::from_secs(3);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

fn held_by(emu: &sls_emulator::RunningEmulator) -> BTreeMap<String, Vec<u32>> {
    let mut by: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (shard, a) in emu.assignment(PROJECT, LOGSTORE, "cg").unwrap_or_default() {
        if let Assign::Held(c) = a {
            by.entry(c).or_default().push(shard);
        }
    }
    by
}

fn position(cursor: &str) -> i64 {
    sls_emulator::cursor::decode(cursor).unwrap_or_else(|e| panic!("cursor {cursor:?}: {e:?}"))
}

/// Logs of `shard` before its group checkpoint, and who wrote it.
fn committed(emu: &sls_emulator::RunningEmulator, shard: u32) -> (u64, String) {
    let begin = position(&emu.cursor(PROJECT, LOGSTORE, shard, "begin").unwrap());
    let cps = emu.checkpoints(PROJECT, LOGSTORE, "cg").unwrap_or_default();
    match cps.into_iter().find(|c| c.shard == shard) {
        Some(c) if !c.checkpoint.is_empty() => (
            (position(&c.checkpoint) - begin) as u64 * PER_GROUP,
            c.consumer,
        ),
        _ => (0, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_cut_off_past_the_timeout_loses_its_shards_and_its_late_commits_are_refused() {
    let emu = Arc::new(emulator(SHARDS).await);
    load(&emu, SHARDS, 0, INITIAL, PER_GROUP);
    let receiver = SeqCounter::start(SHARDS, TOTAL);
    let proxy = CutProxy::start(emu.addr());
    let dir = tempfile::tempdir().unwrap();
    let cfg_a = config(
        dir.path(),
        "a",
        &format!("http://{}", proxy.addr),
        receiver.addr,
        "lf",
        "",
    );
    let cfg_b = config(dir.path(), "b", &emu.endpoint(), receiver.addr, "lf", "");

    // Logs keep being written: 50 per shard every 100 ms until TOTAL.
    let written = Arc::new(AtomicU64::new(INITIAL));
    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer = {
        let (emu, written, stop) = (emu.clone(), written.clone(), stop_writer.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                if n >= TOTAL {
                    return;
                }
                load(&emu, SHARDS, n, PER_GROUP, PER_GROUP);
                written.store(n + PER_GROUP, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100)); // the write rate, not a wait
            }
        })
    };

    let mut a = Siemfwd::start(dir.path(), "a", &cfg_a);
    let mut b = Siemfwd::start(dir.path(), "b", &cfg_b);
    let logs = |a: &Siemfwd, b: &Siemfwd| {
        format!(
            "--- a\n{}\n--- b\n{}",
            warnings(&a.log_text()).join("\n"),
            warnings(&b.log_text()).join("\n")
        )
    };

    // 2/2, and "a" has delivered past its last checkpoint on one of its
    // shards: a commit is due, and it will be sent during the cut.
    let a_shards = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_by(&emu);
            let mine = by.get("a")?.clone();
            (by.len() == 2 && mine.len() == 2 && by.get("b")?.len() == 2).then_some(())?;
            mine.iter()
                .any(|s| {
                    let (logs, who) = committed(&emu, *s);
                    who == "a" && receiver.prefix(*s) > logs
                })
                .then_some(mine)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no 2/2 split with a delivering: {:?}\n{}",
            held_by(&emu),
            logs(&a, &b)
        )
    });

    proxy.cut();
    let cut_at = Instant::now();
    let written_at_cut = written.load(Ordering::Relaxed);

    // "b" is given every shard, and the server has dropped "a".
    let b_all = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_by(&emu);
            let consumers = emu.consumers(PROJECT, LOGSTORE, "cg").unwrap_or_default();
            (by.len() == 1
                && by.get("b").map(Vec::len) == Some(SHARDS as usize)
                && consumers == ["b"])
            .then_some(by)
        })
    });
    let moved_after = cut_at.elapsed();
    assert!(
        b_all.is_some(),
        "b never held every shard during the cut: {:?}\n{}",
        held_by(&emu),
        logs(&a, &b)
    );
    // The last heartbeat that got through was at most one interval (and a
    // round trip) before the cut.
    assert!(
        moved_after >= GROUP_TIMEOUT - HEARTBEAT_INTERVAL - Duration::from_millis(500),
        "shards moved {moved_after:?} after the cut, before the group timeout ({GROUP_TIMEOUT:?})"
    );
    // "a" gives its shards up by itself while still cut off, although its
    // heartbeat never got an answer (held, not refused).
    let gave_up = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(20), || {
            a.log_text()
                .contains("no heartbeat answer for longer than the group timeout")
                .then_some(())
        })
    });
    assert!(
        gave_up.is_some(),
        "a kept its shards while cut off\n{}",
        a.log_text()
    );
    // Writes went on during the cut.
    let written_in_cut = written.load(Ordering::Relaxed) - written_at_cut;
    assert!(written_in_cut > 0, "nothing was written during the cut");

    proxy.heal();
    let cut_for = cut_at.elapsed();

    // The commits "a" sent during the cut reach the server now, and are
    // refused: the shards are b's.
    let refused = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let r: Vec<sls_emulator::CheckpointUpdate> = emu
                .checkpoint_updates()
                .into_iter()
                .filter(|u| u.consumer == "a" && u.refused.is_some() && a_shards.contains(&u.shard))
                .collect();
            (!r.is_empty() && a.log_text().contains("the server refused the checkpoint"))
                .then_some(r)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no refused commit by a: {:?}\n{}",
            emu.checkpoint_updates()
                .iter()
                .filter(|u| u.consumer == "a")
                .collect::<Vec<_>>(),
            a.log_text()
        )
    });
    for u in &refused {
        assert!(
            matches!(
                u.refused.as_deref(),
                Some("ConsumerNotExist" | "ConsumerNotMatch")
            ),
            "{u:?}"
        );
        assert!(!u.force, "siemfwd commits with forceSuccess=false: {u:?}");
    }

    // "a" did not stop: it re-joins and gets its share back.
    let rejoined = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_by(&emu);
            (by.get("a").map(Vec::len) == Some(2) && by.get("b").map(Vec::len) == Some(2))
                .then_some(by)
        })
    });
    assert!(
        rejoined.is_some(),
        "a did not get shards back after the heal: {:?}\n{}",
        held_by(&emu),
        logs(&a, &b)
    );
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "a exited\n{}",
        a.log_text()
    );

    // Every log arrives.
    writer.join().unwrap();
    let expected = u64::from(SHARDS) * TOTAL;
    let complete = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            (receiver.missing().0 == 0).then_some(())
        })
    });
    let (missing, first_missing) = receiver.missing();
    assert!(
        complete.is_some(),
        "{missing} of {expected} logs missing, e.g. {first_missing:?}\n{}",
        logs(&a, &b)
    );
    let at_end = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            checkpoints_at_end(&emu, SHARDS).then_some(())
        })
    });
    assert!(
        at_end.is_some(),
        "{:?}",
        emu.checkpoints(PROJECT, LOGSTORE, "cg")
    );
    for p in [&mut a, &mut b] {
        let st = tokio::task::block_in_place(|| p.terminate(Duration::from_secs(20)));
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", p.log_text());
    }

    // No accepted commit ever moved a shard's checkpoint back: "a" never
    // wrote its older position over b's.
    let updates = emu.checkpoint_updates();
    let mut last: BTreeMap<u32, (i64, String)> = BTreeMap::new();
    for u in updates
        .iter()
        .filter(|u| u.group == "cg" && u.refused.is_none())
    {
        let p = position(&u.cursor);
        if let Some((prev, who)) = last.get(&u.shard) {
            assert!(
                p >= *prev,
                "shard {}: {} committed {p} after {who} committed {prev}",
                u.shard,
                u.consumer
            );
        }
        last.insert(u.shard, (p, u.consumer.clone()));
    }
    let codes: BTreeSet<&str> = refused
        .iter()
        .filter_map(|u| u.refused.as_deref())
        .collect();
    let refused_shards: BTreeSet<u32> = refused.iter().map(|u| u.shard).collect();
    println!(
        "sls_cutoff: a held {a_shards:?}; cut for {cut_for:?} ({written_in_cut} logs per shard \
         written meanwhile); b held every shard {moved_after:?} after the cut; a's late commits \
         refused: {} on shards {refused_shards:?} ({codes:?}); {} updates accepted, none \
         backwards; {expected} logs: 0 missing, {} duplicates (by shard {:?})",
        refused.len(),
        updates.iter().filter(|u| u.refused.is_none()).count(),
        receiver.duplicates(),
        receiver.duplicates_by_shard()
    );
    stop_writer.store(true, Ordering::Relaxed);
    if let Ok(emu) = Arc::try_unwrap(emu) {
        emu.shutdown().await;
    }
}
