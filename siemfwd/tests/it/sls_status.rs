//! `siemfwd status` and `siemfwd check` against the emulator: the lag of a
//! group that is behind, the JSON and table forms, and `check` trying the
//! Log Service end.

use crate::sls_support;

use std::process::Output;
use std::time::Duration;

use sls_support::*;

fn siemfwd(args: &[&str], cfg: &std::path::Path) -> Output {
    crate::support::siemfwd::hermetic()
        .args(args)
        .arg("-c")
        .arg(cfg)
        .env_remove("SLS_ENDPOINT")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_how_far_behind_each_shard_is() {
    let emu = emulator(2).await;
    load(&emu, 2, 0, 500, 50);
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "f", &emu.endpoint(), r.addr, "lf", "");
    // Before anyone consumed: no checkpoints, lag unknown.
    let out = tokio::task::block_in_place(|| siemfwd(&["status"], &cfg));
    assert!(!out.status.success(), "the group does not exist yet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("consumer group \"cg\" does not exist"),
        "{err}"
    );

    let mut fwd = Siemfwd::start(dir.path(), "f", &cfg);
    let done = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            checkpoints_at_end(&emu, 2).then_some(())
        })
    });
    assert!(done.is_some(), "{}", fwd.log_text());
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0));

    // 7 more log groups on shard 1 only.
    load_shard(&emu, 1, 500, 350, 50);
    let out = tokio::task::block_in_place(|| siemfwd(&["status", "--json"], &cfg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["consumer_group"], "cg");
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards[0]["lag_log_groups"], 0);
    assert_eq!(shards[0]["lag_seconds"], 0);
    assert_eq!(shards[1]["lag_log_groups"], 7);
    let secs = shards[1]["lag_seconds"].as_i64().unwrap();
    assert!((0..120).contains(&secs), "received just now: {secs}");
    assert_eq!(shards[1]["owner"], "f");
    assert_eq!(
        shards[1]["end_cursor"],
        emu.cursor(PROJECT, LOGSTORE, 1, "end").unwrap()
    );

    let out = tokio::task::block_in_place(|| siemfwd(&["status"], &cfg));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with('1'))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], "1");
    assert_eq!(cols[1], "readwrite");
    assert_eq!(cols[2], "f");
    assert_eq!(cols[4], "7", "{table}");
    assert!(cols[5].ends_with('s'), "{table}");

    // --watch: round after round, the pace; then a forwarder catches up.
    let mut watch = crate::support::siemfwd::hermetic()
        .args(["status", "--watch", "300ms", "-c"])
        .arg(&cfg)
        .env_remove("SLS_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("status --watch starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("log groups behind") && tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(30)).expect("a round");
    let first = next();
    assert!(
        first.starts_with("7 log groups behind, the oldest") && first.contains("first measure"),
        "{first}"
    );
    let second = next();
    assert!(second.contains("not gaining on it"), "{second}");
    let mut fwd = Siemfwd::start(dir.path(), "f2", &cfg);
    let current =
        tokio::task::block_in_place(|| (0..100).map(|_| next()).find(|l| l.contains("current")));
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        current.as_deref(),
        Some("0 log groups behind, the oldest 0 s old; current")
    );
    let st = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(20)));
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_tries_the_log_service_and_names_a_bad_key() {
    let emu = emulator(3).await;
    let r = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "f", &emu.endpoint(), r.addr, "lf", "");
    let out = tokio::task::block_in_place(|| siemfwd(&["check"], &cfg));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("source: ok (sls proj/store: 3 shards; consumer group cg will be created)"),
        "{stdout}"
    );
    let bad = config(dir.path(), "g", &emu.endpoint(), r.addr, "lf", "");
    let text = std::fs::read_to_string(&bad)
        .unwrap()
        .replace(AK_SECRET, "not-the-secret");
    std::fs::write(&bad, text).unwrap();
    let out = tokio::task::block_in_place(|| siemfwd(&["check"], &bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end().lines().last().unwrap_or_default(),
        "siemfwd: error: SLS rejected the AccessKey (SignatureNotMatch): check SLS_AK_ID / \
         SLS_AK_KEY (source.sls.access_key_id / source.sls.access_key_secret)"
    );
    assert!(!err.contains("not-the-secret"), "{err}");
}
