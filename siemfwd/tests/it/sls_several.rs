//! Several logstores in one process (issue 15, part 3): three logstores of
//! four shards — two in one project, one in another project with
//! credentials of its own (temporary keys from a credentials URI, replaced
//! every few seconds) — read by two siemfwd processes through one
//! `[[source.sls.logstores]]` config, one of them SIGKILLed halfway. Every
//! log arrives (duplicates only from what the killed one delivered after its
//! last commits), each carrying `__project__` and `__logstore__` of where it
//! was read, every group's checkpoints reach the end, and `siemfwd status`
//! reports all three groups.

use crate::sls_support;

use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 4;
const PER_SHARD: u64 = 20_000;

/// (project, logstore, consumer group) of the three.
const STREAMS: [(&str, &str, &str); 3] = [
    ("proj", "audit", "cg"),
    ("proj", "waf", "cg-waf"),
    ("edge", "access", "cg"),
];

fn config(
    dir: &std::path::Path,
    name: &str,
    emu: &sls_emulator::RunningEmulator,
    sink: std::net::SocketAddr,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"[source]
type = "sls"

[source.sls]
endpoint = "{endpoint}"
access_key_id = "{AK_ID}"
access_key_secret = "{AK_SECRET}"
project = "proj"
consumer_group = "cg"
consumer_name = "{name}"
heartbeat_interval = "1s"
heartbeat_timeout = "3s"
fetch_interval = "200ms"
fetch_bytes = "32KiB"
prefetch_bytes = "0"

[[source.sls.logstores]]
logstore = "audit"

[[source.sls.logstores]]
logstore = "waf"
consumer_group = "cg-waf"

[[source.sls.logstores]]
project = "edge"
logstore = "access"
credentials_uri = "http://{addr}/_emulator/credentials"

[sink]
type = "tcp"
address = "{sink}"
framing = "lf"

[pipeline]
batch_records = 2000
batch_bytes = "1MiB"
in_flight_batches = 4
checkpoint_interval = "300ms"
drain_timeout = "10s"
"#,
        endpoint = emu.endpoint(),
        addr = emu.addr(),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn all_at_end(emu: &sls_emulator::RunningEmulator) -> bool {
    STREAMS.iter().all(|(project, logstore, group)| {
        let Some(cps) = emu.checkpoints(project, logstore, group) else {
            return false;
        };
        (0..SHARDS).all(|s| {
            let end = emu.cursor(project, logstore, s, "end").unwrap_or_default();
            cps.iter().any(|c| c.shard == s && c.checkpoint == end)
        })
    })
}

/// Shards `consumer` holds in every group.
fn held_by(emu: &sls_emulator::RunningEmulator, consumer: &str) -> Vec<usize> {
    STREAMS
        .iter()
        .map(|(project, logstore, group)| {
            emu.assignment(project, logstore, group)
                .unwrap_or_default()
                .iter()
                .filter(|(_, a)| matches!(a, sls_emulator::Assign::Held(c) if c == consumer))
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_read_three_logstores_and_one_takes_over_when_the_other_is_killed() {
    let mut builder = sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .credential_ttl(Duration::from_secs(3));
    for (project, logstore, _) in STREAMS {
        builder = builder.logstore(project, logstore, SHARDS);
    }
    let emu = builder.start().await.expect("emulator starts");
    // Shard s of stream i counts as shard 4i+s at the receiver, which checks
    // that its lines say where they were read.
    let mut labels = Vec::new();
    for (i, (project, logstore, _)) in STREAMS.iter().enumerate() {
        for shard in 0..SHARDS {
            let label = i as u32 * SHARDS + shard;
            load_shard_of(&emu, (project, logstore), shard, label, 0, PER_SHARD, 50);
            labels.push(vec![
                format!("__project__={project}"),
                format!("__logstore__={logstore}"),
            ]);
        }
    }
    let streams = STREAMS.len() as u32 * SHARDS;
    // Slow enough that the kill comes early in the run.
    emu.faults()
        .set_latency(Duration::from_millis(20), Duration::from_millis(5));
    let receiver = SeqCounter::start_labelled(streams, PER_SHARD, labels);
    let dir = tempfile::tempdir().unwrap();
    let mut a = Siemfwd::start(
        dir.path(),
        "a",
        &config(dir.path(), "a", &emu, receiver.addr),
    );
    let mut b = Siemfwd::start(
        dir.path(),
        "b",
        &config(dir.path(), "b", &emu, receiver.addr),
    );
    let total = u64::from(streams) * PER_SHARD;
    // Both at work in every group, a quarter of the logs delivered: kill b.
    let shared = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            let both = held_by(&emu, "a").iter().all(|n| *n > 0)
                && held_by(&emu, "b").iter().all(|n| *n > 0);
            (both && receiver.lines() > total / 4).then_some(())
        })
    });
    assert!(
        shared.is_some(),
        "the groups were not shared: a {:?}, b {:?}\n{}",
        held_by(&emu, "a"),
        held_by(&emu, "b"),
        a.log_text()
    );
    b.child.kill().unwrap(); // SIGKILL
    let _ = b.child.wait();
    let unread = total - receiver.lines().min(total);
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            (receiver.missing().0 == 0 && all_at_end(&emu) && held_by(&emu, "a") == [4, 4, 4])
                .then_some(())
        })
    });
    let log = a.log_text();
    assert!(
        done.is_some(),
        "{} of {total} missing (first {:?}); a holds {:?}\n{}",
        receiver.missing().0,
        receiver.missing().1,
        held_by(&emu, "a"),
        warnings(&log).join("\n")
    );
    emu.faults().clear();
    let cfg = config(dir.path(), "a", &emu, receiver.addr);
    let status = tokio::task::block_in_place(|| {
        crate::support::siemfwd::hermetic()
            .args(["status", "--json", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
    });
    let exit = tokio::task::block_in_place(|| a.terminate(Duration::from_secs(30)));
    let log = a.log_text();
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "{}",
        warnings(&log).join("\n")
    );
    println!(
        "sls_several: {total} logs from 3 logstores through 2 processes, one SIGKILLed with \
         {unread} not yet received: 0 missing, {} duplicates",
        receiver.duplicates()
    );
    assert_eq!(
        receiver.mislabelled(),
        0,
        "lines without their project and logstore"
    );
    assert_eq!(receiver.reordered(), 0);
    // The shards are named by logstore in the log.
    assert!(log.contains("shard=edge/access "), "{log}");
    // `status` reports the three groups, each caught up.
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let groups: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let reported: Vec<(String, String, String)> = groups
        .as_array()
        .expect("a list of groups")
        .iter()
        .map(|g| {
            let text = |k: &str| g[k].as_str().unwrap_or_default().to_owned();
            assert!(
                g["shards"]
                    .as_array()
                    .is_some_and(|s| s.len() == SHARDS as usize
                        && s.iter().all(|s| s["lag_log_groups"] == 0)),
                "{g}"
            );
            (text("project"), text("logstore"), text("consumer_group"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = STREAMS
        .iter()
        .map(|(p, l, g)| ((*p).to_owned(), (*l).to_owned(), (*g).to_owned()))
        .collect();
    assert_eq!(reported, expected);
    emu.shutdown().await;
}
