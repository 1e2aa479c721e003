//! Interop: siemfwd and Alibaba's official Python consumer
//! (`aliyun-log-python-sdk`'s `ConsumerWorker`, unchanged) in one consumer
//! group against the emulator. Both follow the server's assignment: after the
//! 4/4 split each reads only its own shards, every log is read exactly once,
//! and the checkpoints end at the shards' end cursors.
//!
//! The SDK comes from `sls-emulator/tests/python/setup.sh` (a venv; PyPI
//! access on first run) and runs the emulator's `fidelity.py consume`, which
//! records `<shard>\t<seq>` per log. It reaches the emulator through
//! `HTTP_PROXY` (protocol notes §1.1). If the SDK cannot be installed the
//! test fails, unless `SLS_EMULATOR_SKIP_SDK=1`, which turns that into a
//! printed `SKIPPED:` line.

use crate::sls_support;
use crate::support::python::{self, emulator_dir};

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sls_emulator::Assign;
use sls_support::*;

const SHARDS: u32 = 8;

struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn held(emu: &sls_emulator::RunningEmulator) -> BTreeMap<String, BTreeSet<u32>> {
    let mut by: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (shard, a) in emu.assignment(PROJECT, LOGSTORE, "cg").unwrap_or_default() {
        if let Assign::Held(c) = a {
            by.entry(c).or_default().insert(shard);
        }
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siemfwd_and_the_python_consumer_share_one_group() {
    let Some(py) = tokio::task::block_in_place(python::venv_python) else {
        return;
    };
    let emu = emulator(SHARDS).await;
    let dir = tempfile::tempdir().unwrap();
    let port = emu.addr().port();
    let out = dir.path().join("py.tsv");
    let py_log = std::fs::File::create(dir.path().join("py.log")).unwrap();
    let proxy = format!("http://127.0.0.1:{port}");
    let child = Command::new(&py)
        .arg(emulator_dir().join("fidelity.py"))
        .args(["--endpoint", &format!("127.0.0.1:{port}")])
        .args(["--ak-id", AK_ID, "--ak-secret", AK_SECRET])
        .args(["--project", PROJECT, "--logstore", LOGSTORE])
        .args(["consume", "--group", "cg", "--name", "py", "--out"])
        .arg(&out)
        .args(["--heartbeat", "1", "--fetch-interval", "0.2"])
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(py_log)
        .spawn()
        .expect("python starts");
    let mut py_proc = Py(child);
    let receiver = Receiver::start();
    let cfg = config(dir.path(), "fwd", &emu.endpoint(), receiver.addr, "lf", "");
    let mut fwd = Siemfwd::start(dir.path(), "fwd", &cfg);
    let py_log_text = || std::fs::read_to_string(dir.path().join("py.log")).unwrap_or_default();

    let split = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            let by = held(&emu);
            (by.len() == 2 && by.values().all(|s| s.len() == 4)).then_some(by)
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no 4/4 split: {:?}\nsiemfwd:\n{}\npython:\n{}",
            held(&emu),
            fwd.log_text(),
            py_log_text()
        )
    });
    println!("assignment: {split:?}");

    // Data arrives after the split: each consumer must read only its shards.
    let per_shard = 2000;
    load(&emu, SHARDS, 0, per_shard, 50);
    let py_seqs = || -> Vec<(u32, u64)> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (_, seq) = l.split_once('\t')?;
                let (s, n) = seq.split_once(':')?;
                Some((s.parse().ok()?, n.parse().ok()?))
            })
            .collect()
    };
    let fwd_seqs = || -> Vec<(u32, u64)> {
        receiver
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| seq_of(l))
            .collect()
    };
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            let all = py_seqs().into_iter().chain(fwd_seqs());
            tally(all, SHARDS, per_shard).0.is_empty().then_some(())
        })
    });
    let (missing, dups, _) = tally(py_seqs().into_iter().chain(fwd_seqs()), SHARDS, per_shard);
    assert!(
        done.is_some(),
        "missing {} logs, e.g. {:?}\nsiemfwd:\n{}\npython:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        fwd.log_text(),
        py_log_text()
    );
    let fwd_shards: BTreeSet<u32> = fwd_seqs().iter().map(|(s, _)| *s).collect();
    let py_shards: BTreeSet<u32> = py_seqs().iter().map(|(s, _)| *s).collect();
    println!(
        "siemfwd read shards {fwd_shards:?} ({} logs), python read {py_shards:?} ({} logs), {dups} duplicates",
        fwd_seqs().len(),
        py_seqs().len()
    );
    assert_eq!(
        Some(&fwd_shards),
        split.get("fwd"),
        "siemfwd follows the assignment"
    );
    assert_eq!(
        Some(&py_shards),
        split.get("py"),
        "python follows the assignment"
    );
    assert_eq!(dups, 0);

    // Both stop cleanly and leave the checkpoints at the end cursors.
    let _ = Command::new("kill")
        .args(["-TERM", &py_proc.0.id().to_string()])
        .status();
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", fwd.log_text());
    let py_done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            py_proc.0.try_wait().ok().flatten()
        })
    });
    assert!(
        py_done.is_some(),
        "python consumer did not stop\n{}",
        py_log_text()
    );
    let at_end = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), || {
            checkpoints_at_end(&emu, SHARDS).then_some(())
        })
    });
    assert!(
        at_end.is_some(),
        "checkpoints {:?}\npython:\n{}",
        emu.checkpoints(PROJECT, LOGSTORE, "cg"),
        py_log_text()
    );
    emu.shutdown().await;
}
