//! The file source survives restarts of both ends: siemfwd SIGKILLed in the
//! middle of a burst and started again, and the SIEM receiver (a real
//! rsyslog) stopped and started again on the same port while siemfwd keeps
//! running. Every line arrives at least once, in order per file: each file's
//! received sequence only ever moves to the next line or replays earlier ones
//! (duplicates), never skips. The test prints how many duplicates it saw.
//!
//! Scope: the receiver is restarted between bursts (siemfwd holds an idle
//! connection that the restart kills). A receiver that dies with siemfwd's
//! bytes unread in its socket is the harder case of TCP delivery; see
//! docs/architecture.md, "Delivery".

use crate::support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::peers::{require, Input, Rsyslog, RsyslogOpts};

const FILES: [&str; 3] = ["a", "b", "c"];
const DEADLINE: Duration = Duration::from_secs(60);

/// A siemfwd process, SIGKILLed on drop if still running.
struct Siemfwd {
    child: Child,
    log: PathBuf,
}

impl Siemfwd {
    fn start(dir: &Path, run: usize) -> Self {
        let log = dir.join(format!("siemfwd-{run}.log"));
        let child = crate::support::siemfwd::hermetic()
            .args(["run", "-c", "c.toml"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("siemfwd starts");
        Self { child, log }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "siemfwd did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Siemfwd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Append lines `from..to` to every file.
fn append(dir: &Path, from: usize, to: usize) {
    append_to(dir, "", from, to);
}

/// Append lines `from..to` of every file to `{file}.ndjson{suffix}`.
fn append_to(dir: &Path, suffix: &str, from: usize, to: usize) {
    for f in FILES {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{f}.ndjson{suffix}")))
            .unwrap();
        let mut text = String::new();
        for seq in from..to {
            text.push_str(&format!(
                "{{\"__time__\":\"{}\",\"file\":\"{f}\",\"seq\":\"{seq}\",\"pad\":\"{}\"}}\n",
                1_790_000_000 + seq,
                "x".repeat(seq % 97)
            ));
        }
        file.write_all(text.as_bytes()).unwrap();
    }
}

/// (file, seq) of every message rsyslog received, in arrival order.
fn received(rs: &Rsyslog) -> Vec<(String, usize)> {
    rs.messages(Input::Tcp)
        .iter()
        .map(|m| {
            let msg = m["msg"].as_str().unwrap_or_default();
            let field = |k: &str| {
                msg.split("||")
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .unwrap_or_else(|| panic!("no {k} in {msg:?}"))
                    .to_owned()
            };
            (field("file"), field("seq").parse().unwrap())
        })
        .collect()
}

fn wait_until(rs: &Rsyslog, what: &str, done: impl Fn(&[(String, usize)]) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if done(&received(rs)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            rs.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(got: &[(String, usize)]) -> usize {
    got.len()
}

#[test]
fn file_source_delivers_every_line_through_restarts_of_siemfwd_and_the_receiver() {
    let Some(mut rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = FILES.iter().map(|f| format!("\"{f}.ndjson\"")).collect();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[source.file]\npaths = [{}]\nstate_dir = \"state\"\nfollow = true\npoll_interval = \"20ms\"\n\
             [format]\nhostname = \"h\"\napp_name = \"t\"\n\
             [sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:{}\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n\
             [pipeline]\nbatch_records = 100\ncheckpoint_interval = \"50ms\"\n",
            paths.join(", "),
            rs.port(Input::Tcp)
        ),
    )
    .unwrap();

    // Burst 1, and siemfwd SIGKILLed while it is forwarding it.
    let per_burst = 20_000;
    append(dir.path(), 0, per_burst);
    let first = Siemfwd::start(dir.path(), 1);
    wait_until(&rs, "part of burst 1", |got| count(got) >= 5_000);
    drop(first); // SIGKILL
    let mut second = Siemfwd::start(dir.path(), 2);
    wait_until(&rs, "all of burst 1", |got| {
        FILES.iter().all(|f| {
            got.iter()
                .filter(|(g, s)| g == f && *s == per_burst - 1)
                .count()
                > 0
        })
    });

    // The receiver restarts under an idle siemfwd; burst 2 then goes to the
    // new rsyslog over a new connection.
    rs.restart().expect("rsyslog restarts on the same port");
    append(dir.path(), per_burst, 2 * per_burst);
    // And siemfwd is SIGKILLed once more during burst 2.
    wait_until(&rs, "part of burst 2", |got| {
        got.iter().any(|(_, s)| *s >= per_burst + 2_000)
    });
    drop(std::mem::replace(
        &mut second,
        Siemfwd::start(dir.path(), 3),
    ));
    let total = 2 * per_burst;
    wait_until(&rs, "every line", |got| {
        let mut seen: BTreeMap<&str, Vec<bool>> =
            FILES.iter().map(|f| (*f, vec![false; total])).collect();
        for (f, s) in got {
            if let Some(v) = seen.get_mut(f.as_str()) {
                v[*s] = true;
            }
        }
        seen.values().all(|v| v.iter().all(|b| *b))
    });
    let status = second.terminate();
    assert!(status.success(), "siemfwd exits 0 on SIGTERM: {status:?}");

    let got = received(&rs);
    let duplicates = assert_in_order(&got, total);
    println!(
        "file_restart: {} lines in {} files, {} messages received, {duplicates} duplicates",
        total * FILES.len(),
        FILES.len(),
        got.len()
    );
}

/// In order per file, each message the next line or a replay, and lines
/// `0..total` of every file all there; the number of replays.
fn assert_in_order(got: &[(String, usize)], total: usize) -> usize {
    let mut duplicates = 0;
    for f in FILES {
        let mut next = 0usize;
        for (_, s) in got.iter().filter(|(g, _)| g == f) {
            assert!(
                *s <= next,
                "{f}: line {s} arrived before line {next} (a gap or reordering)"
            );
            if *s == next {
                next += 1;
            } else {
                duplicates += 1;
            }
        }
        assert_eq!(next, total, "{f}: every line arrived");
    }
    duplicates
}

/// Every file's lines `0..upto` have arrived.
fn all_up_to(got: &[(String, usize)], upto: usize) -> bool {
    FILES.iter().all(|f| {
        let mut seen = vec![false; upto];
        for (_, s) in got.iter().filter(|(g, _)| g == f) {
            if let Some(b) = seen.get_mut(*s) {
                *b = true;
            }
        }
        seen.iter().all(|b| *b)
    })
}

#[test]
fn logrotate_by_rename_while_running_and_while_stopped_and_copytruncate_lose_nothing() {
    let Some(rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![Input::Tcp],
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let paths: Vec<String> = FILES.iter().map(|f| format!("\"{f}.ndjson\"")).collect();
    std::fs::write(
        d.join("c.toml"),
        format!(
            "[source.file]\npaths = [{}]\nstate_dir = \"state\"\nfollow = true\npoll_interval = \"20ms\"\n\
             [format]\nhostname = \"h\"\napp_name = \"t\"\n\
             [sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:{}\"\n\
             [pipeline]\nbatch_records = 100\ncheckpoint_interval = \"50ms\"\n",
            paths.join(", "),
            rs.port(Input::Tcp)
        ),
    )
    .unwrap();
    let rotate = |suffix: &str| {
        for f in FILES {
            std::fs::rename(
                d.join(format!("{f}.ndjson")),
                d.join(format!("{f}.ndjson{suffix}")),
            )
            .unwrap();
        }
    };

    append(d, 0, 10_000);
    let first = Siemfwd::start(d, 1);
    wait_until(&rs, "part of the first lines", |got| count(got) >= 3_000);
    // logrotate `create` while siemfwd reads: rename, the writer appends to
    // the renamed file until it reopens, then writes to a new file.
    rotate(".1");
    append_to(d, ".1", 10_000, 12_000);
    append(d, 12_000, 20_000);
    wait_until(&rs, "lines 0..20000 across a rename", |got| {
        all_up_to(got, 20_000)
    });

    // Rotated while siemfwd is down: the rest of the old file is found
    // beside the new one by its inode.
    drop(first); // SIGKILL
    append(d, 20_000, 21_000);
    rotate(".2");
    append(d, 21_000, 30_000);
    let second = Siemfwd::start(d, 2);
    wait_until(&rs, "lines 0..30000 across a rename while stopped", |got| {
        all_up_to(got, 30_000)
    });

    // copytruncate, and more written after it than siemfwd had read of the
    // old content before the next poll.
    for f in FILES {
        let path = d.join(format!("{f}.ndjson"));
        std::fs::copy(&path, d.join(format!("{f}.ndjson.3"))).unwrap();
        std::fs::File::create(&path).unwrap();
    }
    append(d, 30_000, 40_000);
    wait_until(&rs, "lines 0..40000 across a copytruncate", |got| {
        all_up_to(got, 40_000)
    });
    let status = second.terminate();
    assert!(status.success(), "siemfwd exits 0 on SIGTERM: {status:?}");
    let got = received(&rs);
    let duplicates = assert_in_order(&got, 40_000);
    println!(
        "file_restart (logrotate): {} lines in {} files, {} messages received, {duplicates} duplicates",
        40_000 * FILES.len(),
        FILES.len(),
        got.len()
    );
}
