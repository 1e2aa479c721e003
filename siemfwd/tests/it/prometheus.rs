//! Issue 17 acceptance (first part): a real Prometheus server (Debian's, a private copy
//! unpacked by scripts/peers/install.sh) scrapes siemfwd every second during a Log Service
//! run with faults (injected 5xx answers), and the series read back through Prometheus' HTTP
//! API agree with the receiver: delivered = received; every shard's lag, above 0 while the
//! backlog is read, falls to 0; and when the SIEM goes away with
//! `pipeline.when_blocked = "drop"`, the records dropped show in their series.

use crate::sls_support;
use crate::support::http::{get, metrics_address};
use crate::support::inprocess;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sls_support::*;

const SHARDS: u32 = 4;
const PER_SHARD: u64 = 5_000;

fn prometheus_binary() -> Option<std::path::PathBuf> {
    let private =
        std::path::Path::new("/var/cache/siemfwd-peers/prometheus/root/usr/bin/prometheus");
    if private.is_file() {
        return Some(private.to_owned());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prometheus {
    /// Started before its target exists (so that it scrapes from the target's first
    /// second); [`Prometheus::scrape`] names the target once it is bound.
    fn start(dir: &std::path::Path) -> Option<Self> {
        let binary = match prometheus_binary() {
            Some(b) => b,
            None if std::env::var_os("SIEMFWD_SKIP_PEERS").is_some() => {
                eprintln!("SKIPPED: no prometheus (scripts/peers/install.sh unpacks one)");
                return None;
            }
            None => panic!("no prometheus: run scripts/peers/install.sh"),
        };
        let config = dir.join("prometheus.yml");
        std::fs::write(dir.join("targets.json"), "[]").expect("targets");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: siemfwd\n    file_sd_configs:\n\
                 \x20     - files: ['{}']\n        refresh_interval: 1s\n",
                dir.join("targets.json").display()
            ),
        )
        .expect("prometheus config");
        // The port is free when picked, but another test may bind it before
        // Prometheus does: then Prometheus exits ("address already in use"), or
        // the readiness probe reaches that other listener. Either way, try
        // another port.
        let mut last_log = String::new();
        for attempt in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("tsdb-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
                .spawn()
                .expect("prometheus starts");
            let mut p = Prometheus { child, addr };
            let ready = wait_until(Duration::from_secs(30), || {
                if let Ok(Some(_)) = p.child.try_wait() {
                    return Some(false);
                }
                get(p.addr, "/-/ready")
                    .filter(|(s, body)| *s == 200 && body.contains("Prometheus"))
                    .map(|_| true)
            });
            if ready == Some(true) {
                return Some(p);
            }
            last_log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            eprintln!("prometheus on {addr} not ready, trying another port:\n{last_log}");
        }
        panic!("prometheus not ready on three ports:\n{last_log}");
    }

    /// Scrape `target` from now on (file service discovery: the file is replaced whole).
    fn scrape(&self, dir: &std::path::Path, target: SocketAddr) {
        let fresh = dir.join("targets.json.new");
        std::fs::write(&fresh, format!("[{{\"targets\": [\"{target}\"]}}]")).expect("targets");
        std::fs::rename(&fresh, dir.join("targets.json")).expect("targets");
    }

    /// The series `query` (PromQL) evaluates to now; `Err` with Prometheus' answer when it
    /// cannot evaluate it.
    fn query(&self, query: &str) -> Result<Vec<serde_json::Value>, String> {
        self.api(&format!("/api/v1/query?query={}", encode(query)))
    }

    /// `query` over `[start, end]` (Unix seconds), a point a second.
    fn query_range(
        &self,
        query: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<serde_json::Value>, String> {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=1",
            encode(query)
        ))
    }

    fn api(&self, path: &str) -> Result<Vec<serde_json::Value>, String> {
        let (status, body) = get(self.addr, path).ok_or_else(|| "no answer".to_owned())?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of `query` (PromQL, one series) as Prometheus has it now.
    fn value(&self, query: &str) -> Option<f64> {
        let result = self.query(query).ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_the_receiver_got_and_the_drops() {
    let started = unix_now();
    let emu = emulator(SHARDS).await;
    // A picture for the README wants a longer run than a check does.
    let picture = std::env::var_os("SIEMFWD_DASHBOARD_DATA").is_some();
    let per_shard = if picture { 8 * PER_SHARD } else { PER_SHARD };
    load(&emu, SHARDS, 0, per_shard, 50);
    emu.faults().set_server_error_rate(0.05);
    // Slow pulls of few log groups: the backlog lasts seconds, so the lag
    // Prometheus scrapes every second is seen above 0 before it falls.
    emu.faults()
        .set_latency(Duration::from_millis(250), Duration::ZERO);
    let inprocess::Receiver {
        addr: rx_addr,
        stats,
        stop: stop_rx,
    } = inprocess::tcp("127.0.0.1:0".parse().expect("addr")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        dir.path(),
        "prom",
        &emu.endpoint(),
        rx_addr,
        "lf",
        "lag_interval = \"1s\"\nmax_fetch_log_groups = 5\nprefetch_bytes = \"0\"",
    );
    // Prometheus first, so that it scrapes from siemfwd's first second.
    let Some(prom) = tokio::task::block_in_place(|| Prometheus::start(dir.path())) else {
        return;
    };
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(
        "when_blocked = \"drop\"\ndrop_after = \"1s\"\nprogress_interval = \"1s\"\n\n\
         [metrics]\naddress = \"127.0.0.1:0\"\n",
    );
    std::fs::write(&cfg, text).expect("config");
    let mut fwd = Siemfwd::start(dir.path(), "prom", &cfg);
    let metrics: SocketAddr = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || metrics_address(&fwd.log_text()))
    })
    .unwrap_or_else(|| panic!("no metrics address:\n{}", fwd.log_text()));
    prom.scrape(dir.path(), metrics);
    let total = u64::from(SHARDS) * per_shard;
    // Every log arrives despite the faults; Prometheus then says the same.
    let delivered = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(120), || {
            let got = stats.snapshot().messages;
            let scraped = prom.value("siemfwd_messages_delivered_total")?;
            (got >= total && scraped == got as f64).then_some(scraped)
        })
    });
    assert!(
        delivered.is_some(),
        "received {}, Prometheus says {:?}\n{}",
        stats.snapshot().messages,
        prom.value("siemfwd_messages_delivered_total"),
        warnings(&fwd.log_text()).join("\n")
    );
    assert!(emu.faults().counts().server_errors > 0, "the faults fired");
    assert_eq!(
        tokio::task::block_in_place(|| prom.value("siemfwd_source_assigned")),
        Some(1.0)
    );
    assert!(
        tokio::task::block_in_place(|| prom.value("siemfwd_sls_checkpoints_committed_total"))
            .is_some_and(|c| c > 0.0)
    );
    // The injected 5xx answers were retried, and counted.
    let retries = tokio::task::block_in_place(|| prom.value("siemfwd_sls_request_retries_total"));
    assert!(retries.is_some_and(|r| r > 0.0), "retries: {retries:?}");
    // Every shard's lag falls to 0 once its last position is stored ...
    let caught_up = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(30), || {
            let zero = prom.value("count(siemfwd_shard_lag_log_groups == 0)")?;
            let seconds = prom.value("max(siemfwd_shard_lag_seconds)")?;
            (zero == f64::from(SHARDS) && seconds == 0.0).then_some(())
        })
    });
    assert!(
        caught_up.is_some(),
        "lag did not fall to 0: {:?} shards at 0, max {:?} s",
        prom.value("count(siemfwd_shard_lag_log_groups == 0)"),
        prom.value("max(siemfwd_shard_lag_seconds)")
    );
    // ... from above 0 while the backlog was read.
    let peak = tokio::task::block_in_place(|| {
        prom.value("max(max_over_time(siemfwd_shard_lag_log_groups[10m]))")
    });
    assert!(peak.is_some_and(|p| p > 0.0), "no lag seen: {peak:?}");
    let read = tokio::task::block_in_place(|| prom.value("sum(siemfwd_shard_records_in_total)"));
    assert!(
        read.is_some_and(|r| r >= total as f64),
        "per-shard records: {read:?}"
    );
    let held = tokio::task::block_in_place(|| prom.value("sum(siemfwd_shard_held)"));
    assert_eq!(held, Some(f64::from(SHARDS)));
    // The progress line said so too: behind with a pace, then caught up.
    let said_caught_up = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), || {
            fwd.log_text().contains("caught up:").then_some(())
        })
    });
    let log = fwd.log_text();
    let progress: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("catching up:") || l.contains("caught up:"))
        .collect();
    assert!(
        said_caught_up.is_some() && progress.iter().any(|l| l.contains("catching up:")),
        "no progress lines:\n{log}"
    );
    println!("{}", progress.join("\n"));
    emu.faults().set_latency(Duration::ZERO, Duration::ZERO);

    // The SIEM goes away; new logs are dropped after `drop_after`, and counted.
    stop_rx.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    load_shard(&emu, 0, per_shard, 500, 50);
    let dropped = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(60), || {
            prom.value("siemfwd_records_dropped_total")
                .filter(|d| *d > 0.0)
        })
    });
    assert!(
        dropped.is_some(),
        "no drops in Prometheus:\n{}",
        warnings(&fwd.log_text()).join("\n")
    );
    if picture {
        // The drops as a stretch of time, not a point.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    check_dashboard(&prom, started);
    let ready = get(metrics, "/ready").map(|(s, _)| s);
    assert_eq!(ready, Some(503), "not ready while the SIEM is away");
    let status = tokio::task::block_in_place(|| fwd.terminate(Duration::from_secs(30)));
    assert!(status.is_some(), "siemfwd did not stop");
    println!(
        "prometheus: {total} delivered as scraped, lag peaked at {} log groups and fell to 0, \
         {} dropped as scraped, {} 5xx injected",
        peak.unwrap_or_default(),
        dropped.unwrap_or_default(),
        emu.faults().counts().server_errors
    );
    emu.shutdown().await;
}

/// `text` for a URL's query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                char::from(b).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// With `SIEMFWD_DASHBOARD_DATA=FILE`: every panel of the dashboard with the series its
/// queries gave over the run (`[start, now]`), for `scripts/render-dashboard.py` to draw the
/// picture in the README. Not a check; nothing is written without the variable.
fn dump_dashboard_data(prom: &Prometheus, dashboard: &serde_json::Value, start: u64) {
    let Some(out) = std::env::var_os("SIEMFWD_DASHBOARD_DATA") else {
        return;
    };
    let end = unix_now();
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let mut targets = Vec::new();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_default()
                .replace("$__rate_interval", "5s")
                .replace("$instance", ".*");
            let series = tokio::task::block_in_place(|| prom.query_range(&expr, start, end))
                .unwrap_or_default();
            targets.push(serde_json::json!({
                "legend": target["legendFormat"],
                "series": series,
            }));
        }
        panels.push(serde_json::json!({
            "title": panel["title"],
            "type": panel["type"],
            "gridPos": panel["gridPos"],
            "unit": panel["fieldConfig"]["defaults"]["unit"],
            "targets": targets,
        }));
    }
    let data = serde_json::json!({"start": start, "end": end, "panels": panels});
    std::fs::write(&out, data.to_string()).expect("SIEMFWD_DASHBOARD_DATA is writable");
    println!("dashboard data: {}", std::path::Path::new(&out).display());
}

/// Every query of the Grafana dashboard (`packaging/grafana-dashboard.json`) evaluates on
/// this Prometheus, with Grafana's variables as Grafana would fill them, and has data.
fn check_dashboard(prom: &Prometheus, start: u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let generated = std::process::Command::new("python3")
        .arg(path.with_extension("py"))
        .output();
    match generated {
        Err(e) if std::env::var_os("SIEMFWD_SKIP_PEERS").is_some() => {
            eprintln!("SKIPPED: the dashboard's generator (python3: {e})");
        }
        generated => {
            let generated = generated.expect("python3 runs the dashboard's generator");
            assert!(
                generated.status.success() && generated.stdout == text.as_bytes(),
        "packaging/grafana-dashboard.json is not what packaging/grafana-dashboard.py writes: \
         run python3 packaging/grafana-dashboard.py > packaging/grafana-dashboard.json"
            );
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut empty = Vec::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let result = tokio::task::block_in_place(|| prom.query(&expr))
                .unwrap_or_else(|e| panic!("panel {title:?}: {expr}: {e}"));
            queries += 1;
            if result.is_empty() {
                empty.push(title.to_owned());
            }
        }
    }
    // A misspelt series evaluates to nothing: every query must have data (every counter is
    // exported from the start, at 0).
    assert!(empty.is_empty(), "panels without data: {empty:?}");
    println!("dashboard: {queries} queries evaluate, each with data");
    dump_dashboard_data(prom, &dashboard, start);
}
