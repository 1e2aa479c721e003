//! Acceptance: scale-out and failover in one consumer group, with siemfwd as
//! real processes against the emulator.
//!
//! Three processes split 8 shards 3/3/2; a fourth joins and the shards
//! rebalance to 2/2/2/2; one is SIGKILLed and its shards move to the others
//! within two heartbeat timeouts, each resuming exactly at the dead process's
//! last checkpoint. No log is lost; duplicates (possible only for what the
//! dead process delivered after its last commit) are counted and printed.
//!
//! Each process writes to its own in-process receiver, so the test knows who
//! delivered what.

use crate::sls_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sls_emulator::Assign;
use sls_support::*;

const SHARDS: u32 = 8;
const PER_GROUP: u64 = 50;
const TIMEOUT: Duration = Duration::from_secs(3);

fn held_counts(emu: &sls_emulator::RunningEmulator) -> BTreeMap<String, Vec<u32>> {
    let mut by: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (shard, a) in emu.assignment(PROJECT, LOGSTORE, "cg").unwrap_or_default() {
        if let Assign::Held(c) = a {
            by.entry(c).or_default().push(shard);
        }
    }
    by
}

fn split(by: &BTreeMap<String, Vec<u32>>) -> Vec<usize> {
    let mut v: Vec<usize> = by.values().map(Vec::len).collect();
    v.sort_unstable();
    v
}

fn sequence(cursor: &str) -> i64 {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .unwrap();
    String::from_utf8(raw).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_rebalance_and_take_over_a_killed_ones_shards() {
    let emu = emulator(SHARDS).await;
    let dir = tempfile::tempdir().unwrap();
    let mut per_shard = 4000u64;
    load(&emu, SHARDS, 0, per_shard, PER_GROUP);

    let names = ["a", "b", "c", "d"];
    let receivers: Vec<Receiver> = names.iter().map(|_| Receiver::start()).collect();
    let mut procs: Vec<Option<Siemfwd>> = Vec::new();
    for (i, name) in names.iter().enumerate().take(3) {
        let cfg = config(
            dir.path(),
            name,
            &emu.endpoint(),
            receivers[i].addr,
            "lf",
            "",
        );
        procs.push(Some(Siemfwd::start(dir.path(), name, &cfg)));
    }
    let logs = |procs: &Vec<Option<Siemfwd>>| -> String {
        procs
            .iter()
            .flatten()
            .map(|p| format!("--- {}\n{}", p.log.display(), p.log_text()))
            .collect()
    };

    let three = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_counts(&emu);
            (by.len() == 3 && split(&by) == vec![2, 3, 3]).then_some(by)
        })
    });
    let three = three
        .unwrap_or_else(|| panic!("no 3/3/2 split: {:?}\n{}", held_counts(&emu), logs(&procs)));
    println!("three processes: {three:?}");

    let cfg = config(
        dir.path(),
        "d",
        &emu.endpoint(),
        receivers[3].addr,
        "lf",
        "",
    );
    procs.push(Some(Siemfwd::start(dir.path(), "d", &cfg)));
    let four = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_counts(&emu);
            (by.len() == 4 && split(&by) == vec![2, 2, 2, 2]).then_some(by)
        })
    });
    let four = four.unwrap_or_else(|| {
        panic!(
            "no 2/2/2/2 split: {:?}\n{}",
            held_counts(&emu),
            logs(&procs)
        )
    });
    println!("four processes: {four:?}");

    // More data while everyone works, then kill "b" mid-stream.
    load(&emu, SHARDS, per_shard, 4000, PER_GROUP);
    per_shard += 4000;
    let victim = 1usize;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            (receivers[victim].count() > 0).then_some(())
        })
    });
    let victims_shards = held_counts(&emu).remove("b").unwrap_or_default();
    {
        let p = procs[victim].as_mut().unwrap();
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
    }
    let killed_at = Instant::now();
    let received_by_victim = receivers[victim].count();
    let counts_at_kill: Vec<usize> = receivers.iter().map(Receiver::count).collect();
    // Its last checkpoints: nobody else may commit these shards until they move.
    let cps: BTreeMap<u32, String> = emu
        .checkpoints(PROJECT, LOGSTORE, "cg")
        .unwrap()
        .into_iter()
        .map(|c| (c.shard, c.checkpoint))
        .collect();
    procs[victim] = None;

    let moved = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let by = held_counts(&emu);
            (!by.contains_key("b") && by.values().map(Vec::len).sum::<usize>() == SHARDS as usize)
                .then_some(by)
        })
    });
    let took = killed_at.elapsed();
    let moved = moved.unwrap_or_else(|| {
        panic!(
            "shards of b never moved: {:?}\n{}",
            held_counts(&emu),
            logs(&procs)
        )
    });
    println!("after SIGKILL of b (held {victims_shards:?}): {moved:?} in {took:?}");
    assert!(
        took <= 2 * TIMEOUT + Duration::from_millis(500),
        "shards moved after {took:?}, more than two heartbeat timeouts ({TIMEOUT:?} each)"
    );

    // Data written after the kill reaches the survivors too.
    load(&emu, SHARDS, per_shard, 2000, PER_GROUP);
    per_shard += 2000;

    let all_lines = || -> Vec<(usize, String)> {
        receivers
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|l| (i, l.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let complete = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(180), || {
            let lines = all_lines();
            let (missing, _, _) = tally(
                lines.iter().filter_map(|(_, l)| seq_of(l)),
                SHARDS,
                per_shard,
            );
            missing.is_empty().then_some(())
        })
    });
    let lines = all_lines();
    let (missing, dups, seen) = tally(
        lines.iter().filter_map(|(_, l)| seq_of(l)),
        SHARDS,
        per_shard,
    );
    assert!(
        complete.is_some(),
        "lost {} logs, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        logs(&procs)
    );
    let dup_shards: Vec<u32> = {
        let mut v: Vec<u32> = seen
            .iter()
            .filter(|(_, c)| **c > 1)
            .map(|((s, _), _)| *s)
            .collect();
        v.dedup();
        v
    };
    println!(
        "failover: {} logs, {} received ({} by b before the kill), {dups} duplicates (shards {dup_shards:?})",
        u64::from(SHARDS) * per_shard,
        lines.len(),
        received_by_victim
    );
    // Duplicates can only come from the victim's shards: what it delivered
    // after its last commit. Rebalancing hands shards over after a drain and
    // a commit, so it repeats nothing.
    for s in &dup_shards {
        assert!(
            victims_shards.contains(s),
            "duplicates on shard {s}, which b did not hold ({victims_shards:?})"
        );
    }
    // (Counted now: what b wrote before dying may reach its receiver from
    // the socket buffer after the kill.)
    let delivered_by_victim = receivers[victim].count();
    assert!(
        dups <= delivered_by_victim as u64,
        "{dups} duplicates, but b delivered only {delivered_by_victim}"
    );

    // Each of b's shards resumed exactly at b's last checkpoint: the first
    // log its new owner delivered is the first log after that checkpoint.
    for s in &victims_shards {
        let begin = emu.cursor(PROJECT, LOGSTORE, *s, "begin").unwrap();
        let cp = cps.get(s).cloned().unwrap_or_default();
        let expected_first = if cp.is_empty() {
            0
        } else {
            (sequence(&cp) - sequence(&begin)) as u64 * PER_GROUP
        };
        let owner = moved
            .iter()
            .find(|(_, v)| v.contains(s))
            .map(|(k, _)| names.iter().position(|n| n == k).unwrap())
            .unwrap();
        // What reached the new owner for this shard after the kill starts
        // at the checkpoint.
        let all: Vec<u64> = receivers[owner]
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| seq_of(l))
            .filter(|(sh, _)| sh == s)
            .map(|(_, n)| n)
            .collect();
        let after: Vec<u64> = receivers[owner].lines.lock().unwrap()[counts_at_kill[owner]..]
            .iter()
            .filter_map(|l| seq_of(l))
            .filter(|(sh, _)| sh == s)
            .map(|(_, n)| n)
            .collect();
        let resumed_at = after.first().copied();
        println!(
            "shard {s}: b's checkpoint at log {expected_first}; {} delivered {:?}",
            names[owner],
            ranges(&all)
        );
        assert!(
            resumed_at == Some(expected_first) || (resumed_at.is_none() && expected_first == per_shard),
            "shard {s}: new owner {} resumed at {resumed_at:?}, b's checkpoint was at log {expected_first}",
            names[owner]
        );
    }

    for p in procs.iter_mut().flatten() {
        let st = tokio::task::block_in_place(|| p.terminate(Duration::from_secs(20)));
        assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", p.log_text());
    }
    emu.shutdown().await;
}

/// `[0,1,2,5,6]` → `[(0,2),(5,6)]`, for readable failure output.
fn ranges(v: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &n in v {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
}
