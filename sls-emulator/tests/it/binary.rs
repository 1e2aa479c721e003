//! The `sls-emulator` binary: `serve` prints its ready line, preloads, answers the control
//! endpoints and stops cleanly on SIGTERM; `load` fills a data directory that `serve` then
//! serves.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_sls-emulator");

/// Starts `serve` on an ephemeral port and returns it with its address, read from the
/// ready line.
async fn serve(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start sls-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready line within 30 s")
        .expect("read stdout")
        .expect("a ready line");
    let addr = line
        .strip_prefix("sls-emulator listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: proj.127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

async fn terminate(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let st = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(st.success(), "serve exited with {st}");
}

fn groups_in(status: &serde_json::Value, logstore: &str) -> u64 {
    status["projects"]["proj"]["logstores"][logstore]["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["groups"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn serve_preloads_answers_control_endpoints_and_stops_on_sigterm() {
    let (child, addr) = serve(&[
        "--logstore",
        "proj/store:2",
        "--preload",
        "500",
        "--fault-read-throttle-rate",
        "0.5",
        "--fault-slow-rate",
        "0.25",
        "--fault-slow-ms",
        "10",
    ])
    .await;
    let (st, status) = http(addr, "GET", "/_emulator/status", "").await;
    assert_eq!(st, 200);
    assert_eq!(groups_in(&status, "store"), 5, "500 logs in groups of 100");
    let (_, faults) = http(addr, "GET", "/_emulator/faults", "").await;
    assert_eq!(faults["read_throttle_rate"], 0.5);
    assert_eq!(
        (&faults["slow_rate"], &faults["slow_ms"]),
        (&serde_json::json!(0.25), &serde_json::json!(10))
    );
    let (st, faults) = http(
        addr,
        "PUT",
        "/_emulator/faults",
        r#"{"read_throttle_rate": 0, "latency_ms": 1, "slow_rate": 0.05, "slow_ms": 2000}"#,
    )
    .await;
    assert_eq!(
        (
            st,
            faults["read_throttle_rate"].as_f64(),
            faults["latency_ms"].as_u64(),
            faults["slow_rate"].as_f64(),
            faults["slow_ms"].as_u64()
        ),
        (200, Some(0.0), Some(1), Some(0.05), Some(2000))
    );
    let (st, _) = http(addr, "PUT", "/_emulator/faults", r#"{"reset_rate": 2}"#).await;
    assert_eq!(st, 400, "rates outside [0, 1] are refused");
    let (st, shards) = http(addr, "GET", "/logstores/store/shards", "").await;
    assert_eq!((st, shards.as_array().map(Vec::len)), (200, Some(2)));
    let (st, r) = http(
        addr,
        "POST",
        "/_emulator/expire-consumer",
        r#"{"project":"proj","logstore":"store","group":"none","consumer":"c"}"#,
    )
    .await;
    assert_eq!((st, r["expired"].as_bool()), (200, Some(false)));
    terminate(child).await;
}

#[tokio::test]
async fn load_fills_a_data_directory_that_serve_then_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let out = Command::new(BIN)
        .args([
            "load",
            "--data-dir",
            d,
            "--logstore",
            "proj/big:3",
            "--logs",
            "3000",
            "--seed",
            "9",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run load");
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("proj/big: wrote 3000 logs"));
    assert!(Path::new(d).join("meta.json").exists());
    let (child, addr) = serve(&["--data-dir", d]).await;
    let (_, status) = http(addr, "GET", "/_emulator/status", "").await;
    assert_eq!(groups_in(&status, "big"), 30);
    terminate(child).await;
}
