//! Fidelity test: Alibaba's official Python SDK (PyPI `aliyun-log-python-sdk`, unchanged)
//! against an in-process emulator; and Alibaba's official credential library
//! (`alibabacloud_credentials`) against its metadata service and STS.
//!
//! `tests/python/setup.sh` installs the SDK into a venv (default `/var/cache/siemfwd-venv`,
//! or `$SLS_SDK_VENV`); `tests/python/fidelity.py` runs the SDK's own PutLogs, ConsumerWorker
//! and checkpoint calls. The SDK reaches the emulator through its HTTP proxy setting
//! (`HTTP_PROXY` → absolute-form request lines), so no SDK code is patched and the emulator
//! runs on an ephemeral loopback port.
//!
//! If the SDK cannot be installed the tests fail loudly. Set `SLS_EMULATOR_SKIP_SDK=1` to
//! skip them instead (a line saying so is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sls_emulator::proto::{Content, Log, LogGroup};
use sls_emulator::{Assign, RunningEmulator};
use tokio::process::{Child, Command};

const AK_ID: &str = "fidelity-ak";
const AK_SECRET: &str = "fidelity-secret";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reports a skipped test on the real stderr: libtest captures `println!`/`eprintln!` of
/// passing tests, and a skip must be visible.
fn skip(reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// The venv's python, or `None` when skipping was asked for.
fn python() -> Option<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let res = PY.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(crate_dir().join("tests/python/setup.sh"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run tests/python/setup.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{}", stderr.trim());
        if !out.status.success() {
            return Err(format!(
                "tests/python/setup.sh failed ({}):\n{stderr}",
                out.status
            ));
        }
        stdout
            .lines()
            .last()
            .map(PathBuf::from)
            .ok_or_else(|| "setup.sh printed no python path".to_owned())
    });
    match res {
        Ok(p) => Some(p.clone()),
        Err(e) if std::env::var_os("SLS_EMULATOR_SKIP_SDK").is_some() => {
            skip(&format!("aliyun-log-python-sdk unavailable and SLS_EMULATOR_SKIP_SDK is set: {e}"));
            None
        }
        Err(e) => panic!(
            "the Python SDK fidelity test needs aliyun-log-python-sdk from PyPI and could not install it.\n{e}\n\
             Fix network/pip access, point SLS_SDK_VENV at a venv that has it, or set SLS_EMULATOR_SKIP_SDK=1 to skip."
        ),
    }
}

/// One SDK invocation against `emu`, reached through the SDK's HTTP proxy setting.
fn sdk(py: &Path, emu: &RunningEmulator, project: &str, logstore: &str, args: &[&str]) -> Command {
    let port = emu.addr().port();
    let proxy = format!("http://127.0.0.1:{port}");
    let mut c = sdk_at(py, &format!("127.0.0.1:{port}"), project, logstore, args);
    c.env("HTTP_PROXY", &proxy).env("http_proxy", &proxy);
    c
}

/// One SDK invocation with `endpoint` as given and no proxy.
fn sdk_at(py: &Path, endpoint: &str, project: &str, logstore: &str, args: &[&str]) -> Command {
    let mut c = Command::new(py);
    c.arg(crate_dir().join("tests/python/fidelity.py"))
        .args([
            "--endpoint",
            endpoint,
            "--ak-id",
            AK_ID,
            "--ak-secret",
            AK_SECRET,
        ])
        .args(["--project", project, "--logstore", logstore])
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run_ok(mut cmd: Command, what: &str) -> String {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
        .unwrap_or_else(|e| panic!("{what}: cannot start python: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn start_emulator() -> RunningEmulator {
    sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .auto_create(false)
        .logstore("proj", "store", 4)
        .start()
        .await
        .expect("emulator starts")
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(shard, seq)` lines a consumer recorded.
fn recorded(path: &Path) -> Vec<(u32, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (s, q) = l.split_once('\t')?;
            Some((s.parse().ok()?, q.trim().parse().ok()?))
        })
        .collect()
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("child still running").to_string();
    let st = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} {pid} failed");
}

async fn stop(mut child: Child, what: &str) {
    signal(&child, "-TERM");
    match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(Ok(st)) => assert!(st.success(), "{what} exited with {st}"),
        Ok(Err(e)) => panic!("{what}: wait failed: {e}"),
        Err(_) => {
            let _ = child.start_kill();
            panic!("{what} did not stop within 60 s of SIGTERM");
        }
    }
}

fn held(emu: &RunningEmulator, logstore: &str, group: &str) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (shard, a) in emu.assignment("proj", logstore, group).unwrap_or_default() {
        if let Assign::Held(c) = a {
            out.entry(c).or_default().insert(shard);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_put_logs_then_consumer_worker_reads_each_log_exactly_once() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    let n = 2000u64;
    run_ok(
        sdk(
            &py,
            &emu,
            "proj",
            "store",
            &["put", "--logs", &n.to_string()],
        ),
        "SDK put_logs",
    )
    .await;
    let sizes = emu.shard_sizes("proj", "store").expect("logstore");
    assert_eq!(
        sizes.values().sum::<usize>(),
        40,
        "40 PutLogs requests of 50 logs: {sizes:?}"
    );
    assert!(
        sizes.values().filter(|n| **n > 0).count() > 1,
        "lb/route spread the writes: {sizes:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("c1.out");
    let consumer = sdk(
        &py,
        &emu,
        "proj",
        "store",
        &[
            "consume",
            "--group",
            "cg",
            "--name",
            "c1",
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
    )
    .spawn()
    .expect("start consumer");
    wait_until(
        Duration::from_secs(60),
        "the consumer to record every log",
        || recorded(&out).len() as u64 >= n,
    )
    .await;
    stop(consumer, "consumer c1").await;

    let seen = recorded(&out);
    let seqs: BTreeSet<u64> = seen.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        seen.len() as u64,
        n,
        "every log exactly once (no duplicates)"
    );
    assert_eq!(
        seqs,
        (0..n).collect::<BTreeSet<u64>>(),
        "every log written was consumed"
    );

    // Checkpoints: as stored by the emulator and as the SDK reads them back.
    let report = run_ok(
        sdk(
            &py,
            &emu,
            "proj",
            "store",
            &["checkpoints", "--group", "cg"],
        ),
        "SDK checkpoints",
    )
    .await;
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("checkpoints JSON");
    assert_eq!(report["groups"], serde_json::json!(["cg"]));
    let stored = emu
        .checkpoints("proj", "store", "cg")
        .expect("group exists");
    assert_eq!(stored.len(), 4);
    for cp in &stored {
        let end = report["ends"][cp.shard.to_string()]
            .as_str()
            .expect("end cursor");
        assert_eq!(
            cp.checkpoint, end,
            "shard {} committed up to its end",
            cp.shard
        );
        assert_eq!(cp.consumer, "c1");
        let sdk_cp = report["checkpoints"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["shard"] == cp.shard))
            .expect("SDK reports the shard");
        assert_eq!(sdk_cp["checkpoint"], cp.checkpoint.as_str());
    }
    emu.shutdown().await;
}

fn groups_with_seqs(first: u64, count: u64) -> Vec<LogGroup> {
    (first..first + count)
        .map(|seq| LogGroup {
            logs: vec![Log {
                time: 1_700_000_000,
                contents: vec![
                    Content {
                        key: b"seq".to_vec(),
                        value: seq.to_string().into_bytes(),
                    },
                    Content {
                        key: b"kind".to_vec(),
                        value: b"takeover".to_vec(),
                    },
                ],
                time_ns: None,
            }],
            topic: Some(b"t".to_vec()),
            ..Default::default()
        })
        .collect()
}

/// Appends `per_shard` one-log groups to each of the 4 shards; returns the seqs by shard.
fn append_round(emu: &RunningEmulator, first: u64, per_shard: u64) -> BTreeMap<u32, Vec<u64>> {
    let mut by_shard = BTreeMap::new();
    for shard in 0..4u32 {
        let start = first + u64::from(shard) * per_shard;
        emu.append("proj", "store", shard, &groups_with_seqs(start, per_shard))
            .expect("append");
        by_shard.insert(shard, (start..start + per_shard).collect());
    }
    by_shard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_consumer_with_a_query_receives_what_the_query_keeps() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    let by_shard = append_round(&emu, 0, 250);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("q.out");
    // The SDK sends `query` with `pullMode=scan_on_stream`; the emulator's SPL subset
    // keeps the seqs ending in 7 (what siemfwd's tests/it/sls_rules.rs gets with a query).
    let consumer = sdk(
        &py,
        &emu,
        "proj",
        "store",
        &[
            "consume",
            "--group",
            "cgq",
            "--name",
            "q1",
            "--out",
            out.to_str().expect("utf-8 path"),
            "--query",
            "* | where seq like '%7' and kind = 'takeover'",
        ],
    )
    .spawn()
    .expect("start consumer");
    let want: BTreeSet<(u32, u64)> = by_shard
        .iter()
        .flat_map(|(shard, seqs)| seqs.iter().map(move |s| (*shard, *s)))
        .filter(|(_, s)| s % 10 == 7)
        .collect();
    wait_until(
        Duration::from_secs(60),
        "the SDK consumer to record what the query keeps",
        || recorded(&out).len() >= want.len(),
    )
    .await;
    stop(consumer, "consumer q1").await;
    let seen = recorded(&out);
    assert_eq!(seen.len(), want.len(), "each kept log once");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sdk_consumers_split_shards_and_one_takes_over_after_the_other_dies() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_a, out_b) = (dir.path().join("a.out"), dir.path().join("b.out"));
    let spawn = |name: &str, out: &Path| {
        sdk(
            &py,
            &emu,
            "proj",
            "store",
            &[
                "consume",
                "--group",
                "cg2",
                "--name",
                name,
                "--out",
                out.to_str().expect("utf-8"),
            ],
        )
        .spawn()
        .expect("start consumer")
    };
    let round1 = append_round(&emu, 0, 10);

    let a = spawn("a", &out_a);
    wait_until(Duration::from_secs(30), "a to hold all 4 shards", || {
        held(&emu, "store", "cg2").get("a").map(BTreeSet::len) == Some(4)
    })
    .await;
    let b = spawn("b", &out_b);
    wait_until(
        Duration::from_secs(30),
        "a 2/2 split between a and b",
        || {
            let h = held(&emu, "store", "cg2");
            h.get("a").map(BTreeSet::len) == Some(2) && h.get("b").map(BTreeSet::len) == Some(2)
        },
    )
    .await;
    let split = held(&emu, "store", "cg2");
    let (shards_a, shards_b) = (split["a"].clone(), split["b"].clone());
    assert!(shards_a.is_disjoint(&shards_b));

    // Round 2 is written after the split, so each consumer must read its own shards.
    let round2 = append_round(&emu, 1000, 10);
    let all_12: BTreeSet<u64> = round1
        .values()
        .chain(round2.values())
        .flatten()
        .copied()
        .collect();
    wait_until(
        Duration::from_secs(60),
        "rounds 1 and 2 consumed by a and b together",
        || {
            let seen: BTreeSet<u64> = recorded(&out_a)
                .into_iter()
                .chain(recorded(&out_b))
                .map(|(_, s)| s)
                .collect();
            all_12.is_subset(&seen)
        },
    )
    .await;
    for (who, path, mine) in [("a", &out_a, &shards_a), ("b", &out_b, &shards_b)] {
        let got: BTreeSet<u64> = recorded(path).into_iter().map(|(_, s)| s).collect();
        for shard in mine {
            assert!(
                round2[shard].iter().all(|s| got.contains(s)),
                "{who} read round 2 of its shard {shard}"
            );
        }
    }

    // The 4 -> 2/2 rebalance went through a commit-and-omit hand-over: nothing of rounds 1
    // and 2 may have been read twice.
    let before_kill: Vec<u64> = recorded(&out_a)
        .into_iter()
        .chain(recorded(&out_b))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        before_kill.len(),
        all_12.len(),
        "graceful hand-over reads every log exactly once"
    );

    // a dies without a word; b must take over a's shards once a's heartbeats time out.
    signal(&a, "-KILL");
    let mut a = a;
    tokio::time::timeout(Duration::from_secs(30), a.wait())
        .await
        .expect("a exits")
        .expect("wait a");
    let round3 = append_round(&emu, 2000, 10);
    wait_until(Duration::from_secs(60), "b to hold all 4 shards", || {
        held(&emu, "store", "cg2").get("b").map(BTreeSet::len) == Some(4)
    })
    .await;
    assert_eq!(
        emu.consumers("proj", "store", "cg2"),
        Some(vec!["b".to_owned()])
    );
    let want3: BTreeSet<u64> = round3.values().flatten().copied().collect();
    wait_until(
        Duration::from_secs(60),
        "b to consume round 3 on all shards",
        || {
            let got: BTreeSet<u64> = recorded(&out_b).into_iter().map(|(_, s)| s).collect();
            want3.is_subset(&got)
        },
    )
    .await;
    let b_shards: BTreeSet<u32> = recorded(&out_b)
        .into_iter()
        .filter(|(_, s)| want3.contains(s))
        .map(|(shard, _)| shard)
        .collect();
    assert_eq!(b_shards, (0..4).collect(), "b read a's former shards too");
    // Nothing of b's own shards is read twice: only a's uncommitted tail may repeat.
    let b_seen = recorded(&out_b);
    let mut dup = BTreeMap::<u64, usize>::new();
    for (_, s) in &b_seen {
        *dup.entry(*s).or_default() += 1;
    }
    assert!(dup.values().all(|n| *n == 1), "b never reads a log twice");

    stop(b, "consumer b").await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_and_a_denied_action_are_refused_to_the_sdk_until_allowed_again() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    let shards = || async {
        let out = run_ok(
            sdk(&py, &emu, "proj", "store", &["shards"]),
            "SDK list_shards",
        )
        .await;
        serde_json::from_str::<serde_json::Value>(out.trim()).expect("JSON")
    };
    assert_eq!(shards().await["shards"], 4);
    assert!(emu.set_key_enabled(AK_ID, false), "it was enabled");
    let refused = shards().await;
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["code"], "Unauthorized", "{refused}");
    assert!(!emu.set_key_enabled(AK_ID, true), "it was disabled");
    assert_eq!(shards().await["shards"], 4);
    // A RAM policy without the action: the same refusal, naming the action.
    emu.deny_actions(AK_ID, &["log:ListShards"]);
    let denied = shards().await;
    assert_eq!(denied["status"], 401, "{denied}");
    assert_eq!(denied["code"], "Unauthorized", "{denied}");
    assert!(
        denied["message"]
            .as_str()
            .is_some_and(|m| m.contains("action: log:ListShards")),
        "{denied}"
    );
    emu.deny_actions(AK_ID, &[]);
    assert_eq!(shards().await["shards"], 4);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_v4_signing_and_zstd_bodies_work() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    run_ok(
        sdk(
            &py,
            &emu,
            "proj",
            "store",
            &[
                "--v4",
                "cn-hangzhou",
                "put",
                "--logs",
                "300",
                "--compress",
                "zstd",
            ],
        ),
        "SDK put_logs v4 + zstd",
    )
    .await;
    assert_eq!(
        emu.shard_sizes("proj", "store")
            .expect("store")
            .values()
            .sum::<usize>(),
        6
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("z.out");
    let consumer = sdk(
        &py,
        &emu,
        "proj",
        "store",
        &[
            "--v4",
            "cn-hangzhou",
            "consume",
            "--group",
            "cgz",
            "--name",
            "z",
            "--out",
            out.to_str().expect("utf-8"),
            "--compress",
            "zstd",
        ],
    )
    .spawn()
    .expect("start consumer");
    wait_until(
        Duration::from_secs(60),
        "the zstd consumer to read all 300 logs",
        || recorded(&out).len() >= 300,
    )
    .await;
    stop(consumer, "consumer z").await;
    let seqs: BTreeSet<u64> = recorded(&out).into_iter().map(|(_, s)| s).collect();
    assert_eq!(seqs, (0..300).collect());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_bare_ip_endpoint_reaches_the_emulator_on_port_80_of_its_own_loopback_address() {
    let Some(py) = python() else { return };
    // The SDK's other unpatched route: endpoint "127.a.b.c" means http://127.a.b.c:80 with
    // Host "proj.127.a.b.c". A random loopback address keeps parallel runs apart.
    let ip = std::net::Ipv4Addr::new(
        127,
        fastrand::u8(1..=254),
        fastrand::u8(1..=254),
        fastrand::u8(2..=254),
    );
    let started = sls_emulator::Emulator::builder()
        .addr(std::net::SocketAddr::from((ip, 80)))
        .access_key(AK_ID, AK_SECRET)
        .logstore("proj", "store", 2)
        .start()
        .await;
    let emu = match started {
        Ok(emu) => emu,
        Err(e) => {
            skip(&format!(
                "cannot listen on {ip}:80 (needs root or CAP_NET_BIND_SERVICE): {e}"
            ));
            return;
        }
    };
    let endpoint = ip.to_string();
    run_ok(
        sdk_at(&py, &endpoint, "proj", "store", &["put", "--logs", "100"]),
        "SDK put_logs (bare IP)",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ip.out");
    let consumer = sdk_at(
        &py,
        &endpoint,
        "proj",
        "store",
        &[
            "consume",
            "--group",
            "cgip",
            "--name",
            "ip",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .spawn()
    .expect("start consumer");
    wait_until(
        Duration::from_secs(60),
        "the bare-IP consumer to read 100 logs",
        || recorded(&out).len() >= 100,
    )
    .await;
    stop(consumer, "consumer ip").await;
    let seqs: BTreeSet<u64> = recorded(&out).into_iter().map(|(_, s)| s).collect();
    assert_eq!(seqs, (0..100).collect());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_consumer_rides_out_injected_server_errors_resets_and_short_pulls() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    // Ten logs a group: fifty groups, so a pull finds many and a short one returns fewer.
    run_ok(
        sdk(
            &py,
            &emu,
            "proj",
            "store",
            &["put", "--logs", "500", "--batch", "10"],
        ),
        "SDK put_logs",
    )
    .await;
    // Faults are drawn before a request is processed, so the SDK's retries never duplicate.
    emu.faults().set_server_error_rate(0.05);
    emu.faults().set_reset_rate(0.05);
    // The SDK continues from `x-log-cursor`, whatever came back. Every pull that finds more
    // than one group is short: at a lower rate a run can find each shard's groups in one
    // unshortened pull and show nothing about short pulls.
    emu.faults().set_short_pull_rate(1.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("f.out");
    let consumer = sdk(
        &py,
        &emu,
        "proj",
        "store",
        &[
            "consume",
            "--group",
            "cgf",
            "--name",
            "f",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .spawn()
    .expect("start consumer");
    wait_until(
        Duration::from_secs(90),
        "the consumer to read 500 logs despite faults",
        || recorded(&out).len() >= 500,
    )
    .await;
    emu.faults().clear();
    assert!(
        emu.faults().counts().short_pulls > 0,
        "no short pull happened, so the run shows nothing about them: {:?}",
        emu.faults().counts()
    );
    stop(consumer, "consumer f").await;
    let seen = recorded(&out);
    let seqs: BTreeSet<u64> = seen.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (0..500).collect());
    assert_eq!(seen.len(), 500, "no log read twice");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_consumer_follows_a_split_and_finishes_the_readonly_parent() {
    let Some(py) = python() else { return };
    let emu = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .auto_create(false)
        .logstore("proj", "store", 2)
        .start()
        .await
        .expect("emulator starts");
    emu.append("proj", "store", 0, &groups_with_seqs(0, 20))
        .expect("append");
    emu.append("proj", "store", 1, &groups_with_seqs(100, 20))
        .expect("append");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("s.out");
    let consumer = sdk(
        &py,
        &emu,
        "proj",
        "store",
        &[
            "consume",
            "--group",
            "cgs",
            "--name",
            "s",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .spawn()
    .expect("start consumer");
    wait_until(Duration::from_secs(60), "round 1 consumed", || {
        recorded(&out).len() >= 40
    })
    .await;

    emu.split_shard("proj", "store", 0, "40000000000000000000000000000000")
        .expect("split");
    emu.append("proj", "store", 2, &groups_with_seqs(200, 10))
        .expect("append");
    emu.append("proj", "store", 3, &groups_with_seqs(300, 10))
        .expect("append");
    wait_until(
        Duration::from_secs(60),
        "the new shards 2 and 3 consumed",
        || {
            let got: BTreeSet<u32> = recorded(&out).into_iter().map(|(shard, _)| shard).collect();
            got.contains(&2) && got.contains(&3) && recorded(&out).len() >= 60
        },
    )
    .await;
    // The SDK commits the read-only parent's end after 30 s idle; then the emulator marks it
    // finished and stops assigning it.
    let end0 = emu.cursor("proj", "store", 0, "end").expect("end cursor");
    wait_until(
        Duration::from_secs(90),
        "the read-only shard 0 committed to its end and released",
        || {
            let cp0 = emu
                .checkpoints("proj", "store", "cgs")
                .and_then(|c| c.into_iter().find(|c| c.shard == 0));
            let assigned0 = emu
                .assignment("proj", "store", "cgs")
                .is_some_and(|a| a.contains_key(&0));
            cp0.is_some_and(|c| c.checkpoint == end0) && !assigned0
        },
    )
    .await;
    stop(consumer, "consumer s").await;
    let seen = recorded(&out);
    let seqs: BTreeSet<u64> = seen.iter().map(|(_, s)| *s).collect();
    let want: BTreeSet<u64> = (0..20)
        .chain(100..120)
        .chain(200..210)
        .chain(300..310)
        .collect();
    assert_eq!(seqs, want);
    assert_eq!(seen.len(), want.len(), "no log read twice");
    emu.shutdown().await;
}

/// `tests/python/credentials.py ARGS` against `emu`: its one JSON line.
async fn credentials_py(py: &Path, emu: &RunningEmulator, args: &[&str]) -> serde_json::Value {
    let url = format!("http://{}", emu.addr());
    let mut c = Command::new(py);
    // The library reads these; none of the caller's may steer it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALIBABA_CLOUD_") {
            c.env_remove(&key);
        }
    }
    c.arg(crate_dir().join("tests/python/credentials.py"))
        .arg(args[0])
        .arg(&url)
        .args(&args[1..])
        .env("HTTP_PROXY", &url)
        .env("http_proxy", &url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = run_ok(c, "credentials.py").await;
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_credential_library_gets_keys_from_the_metadata_service_and_sts() {
    let Some(py) = python() else { return };
    let emu = start_emulator().await;
    // The metadata service, hardened, role discovered; the key signs a ListShards.
    let ecs = credentials_py(&py, &emu, &["ecs"]).await;
    assert_eq!(ecs["provider"], "ecs_ram_role", "{ecs}");
    assert!(
        ecs["access_key_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("STS.")),
        "{ecs}"
    );
    assert_eq!(ecs["shards"], 4, "{ecs}");
    // STS with the trusted OIDC token; then with another one, refused as the library reports.
    let trust = sls_emulator::OidcTrust::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, &trust.token).expect("token file");
    let token = token.display().to_string();
    let args = ["oidc", token.as_str(), &trust.role_arn, &trust.provider_arn];
    let oidc = credentials_py(&py, &emu, &args).await;
    assert_eq!(oidc["provider"], "oidc_role_arn", "{oidc}");
    assert_eq!(oidc["shards"], 4, "{oidc}");
    std::fs::write(&token, "not-the-token").expect("token file");
    let refused = credentials_py(&py, &emu, &args).await;
    let message = refused["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("http_code: 400") && message.contains("InvalidParameter.OIDCToken"),
        "{refused}"
    );
    emu.shutdown().await;
}
