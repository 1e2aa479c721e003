//! Running under systemd (issue 17): the unit in `packaging/` passes
//! `systemd-analyze verify`, and siemfwd speaks sd_notify to the socket systemd names —
//! `READY=1` once it forwards, `WATCHDOG=1` while healthy, `STOPPING=1` on SIGTERM.

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use siemfwd::listen::{ListenConfig, Listener, Output};
use support::siemfwd::{command, toml_path, Running};
use tokio_util::sync::CancellationToken;

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Ok(which) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        if std::env::var_os("SIEMFWD_SKIP_PEERS").is_some() {
            eprintln!("SKIPPED: systemd-analyze is not installed");
            return;
        }
        panic!("systemd-analyze is not installed (scripts/test installs systemd)");
    };
    assert!(which.status.success());
    let unit =
        std::fs::read_to_string(repo_root().join("packaging/siemfwd.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/bin/siemfwd run -c /etc/siemfwd/siemfwd.toml"));
    // Verified with the binary this test run built where the package puts it (verify
    // checks that ExecStart names an executable).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("siemfwd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/siemfwd", support::siemfwd::binary()),
    )
    .expect("unit copy");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("siemfwd.service"),
        "warnings about the unit:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_says_ready_then_keeps_the_watchdog_fed_then_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let listener = Listener::bind(ListenConfig {
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        output: Output::Discard,
        ..ListenConfig::default()
    })
    .await
    .expect("receiver");
    let rx = listener.local_addrs().tcp.expect("tcp");
    let stop_rx = CancellationToken::new();
    {
        let c = stop_rx.clone();
        tokio::spawn(async move { listener.run(tokio::io::sink(), c).await });
    }
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "{\"a\":\"1\"}\n").expect("input");
    let cfg = dir.path().join("siemfwd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"file\"\n[source.file]\npaths = [{}]\nfollow = true\nstate_dir = {}\n\
             [sink]\ntype = \"tcp\"\naddress = \"{rx}\"\n",
            toml_path(&input),
            toml_path(&dir.path().join("state")),
        ),
    )
    .expect("config");
    let mut cmd = command(&["run", "-c", cfg.to_str().expect("utf-8")]);
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000");
    let mut fwd = Running::start(cmd);
    let mut heard: Vec<String> = Vec::new();
    let listen = |heard: &mut Vec<String>, until: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 512];
        while !until(heard) && Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    // Beats after READY=1 (a slow start may beat before it, which systemd
    // allows: the watchdog is alive-ness, readiness is separate).
    let beats_after_ready = |h: &[String]| {
        h.iter().position(|s| s.starts_with("READY=1")).map(|at| {
            h[at..]
                .iter()
                .filter(|s| s.as_str() == "WATCHDOG=1")
                .count()
        })
    };
    tokio::task::block_in_place(|| {
        listen(&mut heard, &|h| {
            beats_after_ready(h).is_some_and(|n| n >= 2)
        });
    });
    assert!(
        beats_after_ready(&heard).is_some_and(|n| n >= 2),
        "READY=1, then two WATCHDOG=1: {heard:?}\n{}",
        fwd.stderr()
    );
    fwd.signal("TERM");
    tokio::task::block_in_place(|| {
        listen(&mut heard, &|h| h.iter().any(|s| s == "STOPPING=1"));
    });
    let status = fwd.wait_exit(Duration::from_secs(30));
    stop_rx.cancel();
    assert!(heard.iter().any(|s| s == "STOPPING=1"), "{heard:?}");
    assert!(status.success(), "{}", fwd.stderr());
}
