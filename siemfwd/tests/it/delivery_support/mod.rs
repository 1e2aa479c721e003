//! Shared by the `delivery_*` tests (issue 5, "Nothing lost"): a siemfwd
//! process started and stopped by PID, numbered input lines, and an
//! incremental reader of what rsyslog wrote that counts missing and
//! duplicate lines without re-reading its whole output file each time.
//!
//! Every input line is `{"__time__":…,"f":"<file>","s":"<seq>"}`; the
//! message siemfwd makes of it carries `||f=<file>||s=<seq>` in its body,
//! which is all the analysis needs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::peers::{Input, Rsyslog};

/// A running siemfwd, SIGKILLed on drop if still running.
pub(crate) struct Siemfwd {
    child: Child,
    log: PathBuf,
}

impl Siemfwd {
    /// `siemfwd run -c c.toml` in `dir`, its stderr in `siemfwd-<run>.log`.
    pub(crate) fn start(dir: &Path, run: usize) -> Self {
        let log = dir.join(format!("siemfwd-{run}.log"));
        let child = crate::support::siemfwd::hermetic()
            .args(["run", "-c", "c.toml"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("siemfwd log file"))
            .spawn()
            .expect("siemfwd starts");
        Self { child, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resident set size now (`VmRSS`), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("siemfwd is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Still running?
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send `sig` (e.g. "TERM") to this process only.
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// Wait for the exit, failing after `limit`; returns the status and the
    /// time it took.
    pub(crate) fn wait(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "siemfwd did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Siemfwd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Input file `i`'s name.
pub(crate) fn file_name(i: usize) -> String {
    format!("in{i}.ndjson")
}

/// Append lines `from..to` to input file `i` of `dir`.
pub(crate) fn append(dir: &Path, i: usize, from: usize, to: usize) {
    let mut text = String::with_capacity((to - from) * 56);
    for seq in from..to {
        text.push_str(&format!(
            "{{\"__time__\":\"{}\",\"f\":\"{i}\",\"s\":\"{seq}\"}}\n",
            1_790_000_000 + seq % 100_000
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file_name(i)))
        .expect("open input");
    f.write_all(text.as_bytes()).expect("append input");
}

/// The config every delivery test starts from: `files` inputs, a receiver
/// at `sink` (a `[sink]` body), and `extra` appended (more tables).
pub(crate) fn write_config(dir: &Path, files: usize, follow: bool, sink: &str, extra: &str) {
    let paths: Vec<String> = (0..files)
        .map(|i| format!("\"{}\"", file_name(i)))
        .collect();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[source.file]\npaths = [{}]\nstate_dir = \"state\"\nfollow = {follow}\npoll_interval = \"20ms\"\n\
             [format]\nhostname = \"h\"\napp_name = \"t\"\n\
             [sink]\n{sink}\n{extra}",
            paths.join(", ")
        ),
    )
    .expect("write config");
}

/// The `[sink]` body for rsyslog's `input` (`Input::Tcp` or `Input::Tls`).
pub(crate) fn sink_for(rs: &Rsyslog, input: Input, certs: Option<&Path>) -> String {
    let port = rs.port(input);
    let mut s = format!(
        "address = \"127.0.0.1:{port}\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"500ms\"\n"
    );
    match input {
        Input::Tls => {
            let ca = certs.expect("certs for TLS").join("ca.pem");
            s.push_str(&format!(
                "type = \"tls\"\n[sink.tls]\nca_file = \"{}\"\n",
                ca.display()
            ));
        }
        Input::Relp => s.push_str("type = \"relp\"\n"),
        _ => s.push_str("type = \"tcp\"\n"),
    }
    s
}

/// What arrived at the receiver, read incrementally from its output file.
pub(crate) struct Received {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// Per input file, how many times each line arrived.
    counts: Vec<Vec<u16>>,
    /// Lines per input file expected in the end.
    pub expected: usize,
    /// Messages read so far.
    pub messages: usize,
    /// Lines received at least once.
    pub unique: usize,
    /// Lines whose first copy arrived after a later line of their file
    /// (a receiver that lost a line and got it again; the peers' rsyslog
    /// writes out in arrival order, with one queue worker).
    pub late: usize,
    highest: Vec<Option<usize>>,
    /// Every message read, with rsyslog's reception time, once
    /// [`Received::recording_arrivals`] asked for them.
    arrivals: Option<Vec<Arrival>>,
}

/// One message as rsyslog received it: which line, and when.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// Input file number.
    pub file: usize,
    /// Line number in that file.
    pub seq: usize,
    /// rsyslog's reception time (`timegenerated`, the `received` key of
    /// scripts/peers/rsyslog.sh's output), microseconds since the epoch.
    pub at_us: i64,
}

/// Now, in microseconds since the epoch: the clock rsyslog stamps its
/// reception times with, so the two compare.
pub(crate) fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Received {
    pub(crate) fn new(rs: &Rsyslog, input: Input, files: usize, expected: usize) -> Self {
        Self {
            path: rs
                .workdir()
                .join("out")
                .join(format!("{}.jsonl", input.name())),
            offset: 0,
            partial: Vec::new(),
            counts: vec![vec![0; expected]; files],
            expected,
            messages: 0,
            unique: 0,
            late: 0,
            highest: vec![None; files],
            arrivals: None,
        }
    }

    /// Also keep every message's reception time ([`Received::arrivals`]).
    pub(crate) fn recording_arrivals(mut self) -> Self {
        self.arrivals = Some(Vec::new());
        self
    }

    /// Every message read so far, in the order rsyslog wrote them out;
    /// empty unless [`Received::recording_arrivals`].
    pub(crate) fn arrivals(&self) -> &[Arrival] {
        self.arrivals.as_deref().unwrap_or(&[])
    }

    /// Read what was appended since the last call.
    pub(crate) fn update(&mut self) {
        let Ok(mut f) = File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let n = f.read_to_end(&mut buf).expect("read receiver output");
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let (file, seq) = parse(line);
            if let Some(arrivals) = &mut self.arrivals {
                let check = arrivals.len() % 10_000 == 0;
                arrivals.push(Arrival {
                    file,
                    seq,
                    at_us: received_us(line, check),
                });
            }
            self.messages += 1;
            let slot = &mut self.counts[file][seq];
            if *slot == 0 {
                self.unique += 1;
                if self.highest[file].is_some_and(|h| h > seq) {
                    self.late += 1;
                }
                self.highest[file] = Some(self.highest[file].map_or(seq, |h| h.max(seq)));
            }
            *slot = slot.saturating_add(1);
        }
    }

    /// Per input file, the highest line received so far.
    pub(crate) fn highest(&self) -> &[Option<usize>] {
        &self.highest
    }

    pub(crate) fn total_expected(&self) -> usize {
        self.expected * self.counts.len()
    }

    pub(crate) fn missing(&self) -> usize {
        self.total_expected() - self.unique
    }

    pub(crate) fn duplicates(&self) -> usize {
        self.messages - self.unique
    }

    /// Wait until `done(self)`, re-reading; panics after `limit` with `what`.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        diagnostics: impl Fn() -> String,
        done: impl Fn(&Self) -> bool,
    ) {
        let started = Instant::now();
        loop {
            self.update();
            if done(self) {
                return;
            }
            if started.elapsed() > limit {
                let per_file: Vec<usize> = self
                    .counts
                    .iter()
                    .map(|c| c.iter().filter(|n| **n > 0).count())
                    .collect();
                panic!(
                    "timed out after {limit:?} waiting for {what}: {} messages, {} unique of {} \
                     (per file {per_file:?}), {} missing\n{}",
                    self.messages,
                    self.unique,
                    self.total_expected(),
                    self.missing(),
                    diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Some of the lines that never arrived, for a failure message.
    pub(crate) fn missing_sample(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (f, c) in self.counts.iter().enumerate() {
            for (s, n) in c.iter().enumerate() {
                if *n == 0 && out.len() < 10 {
                    out.push((f, s));
                }
            }
        }
        out
    }
}

/// (file, seq) of one line of rsyslog's JSON output, from its `msg`.
fn parse(line: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(line).expect("UTF-8 output line");
    let msg = text
        .split_once("\"msg\":\"")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no msg in {text}"));
    let field = |k: &str| -> usize {
        let start = msg
            .find(&format!("||{k}="))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            + k.len()
            + 3;
        let digits: String = msg[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("bad {k} in {text}"))
    };
    (field("f"), field("s"))
}

/// rsyslog's reception time of one line of its JSON output, in
/// microseconds since the epoch. `check` also parses it with jiff and
/// compares (jiff is slow in a debug build, so only now and then).
fn received_us(line: &[u8], check: bool) -> i64 {
    let text = std::str::from_utf8(line).expect("UTF-8 output line");
    let stamp = text
        .rsplit_once("\"received\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(stamp, _)| stamp)
        .unwrap_or_else(|| panic!("no reception time in {text}"));
    let us = rfc3339_us(stamp).unwrap_or_else(|| panic!("bad reception time in {text}"));
    if check {
        match stamp.parse::<jiff::Timestamp>() {
            Ok(t) => assert_eq!(us, t.as_microsecond(), "{stamp}"),
            Err(e) => panic!("bad reception time {stamp:?} ({e}) in {text}"),
        }
    }
    us
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in microseconds since the
/// epoch (fraction digits past the sixth are dropped).
fn rfc3339_us(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    let mut micros = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut scale = 100_000;
        while let Some(dg) = b.get(i).filter(|c| c.is_ascii_digit()) {
            micros += i64::from(dg - b'0') * scale;
            scale /= 10;
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' => 0,
        sign @ (b'+' | b'-') => {
            let o = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1_000_000) + micros)
}

/// The committed position of each input file of `dir` (checkpoints in
/// `state/`, as [`write_config`] sets it up): how many of its lines lie
/// before the checkpoint, `None` while it has none. A checkpoint being
/// replaced reads as the old one (the store renames a complete file into
/// place).
pub(crate) fn committed_lines(dir: &Path, files: usize) -> Vec<Option<u64>> {
    let mut out = vec![None; files];
    let Ok(entries) = std::fs::read_dir(dir.join("state")) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".checkpoint.json") {
            continue;
        }
        let Ok(text) = std::fs::read(&path) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("checkpoint {} is not JSON: {e}", path.display()));
        let input = value["path"].as_str().unwrap_or_default();
        let name = Path::new(input).file_name().and_then(|n| n.to_str());
        if let Some(i) = (0..files).find(|i| name == Some(file_name(*i).as_str())) {
            out[i] = value["line"].as_u64();
        }
    }
    out
}

/// A number of the environment, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Append `per_file` lines to each of `files` inputs at about `rate` lines
/// per second in total, from a thread; `progress` counts lines written.
pub(crate) fn paced_writer(
    dir: &Path,
    files: usize,
    per_file: usize,
    rate: usize,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    gated_writer(dir, files, per_file, rate, progress, None)
}

/// [`paced_writer`] that never gets more than `gate` lines (in total) ahead:
/// it waits at the gate until the test moves it, then takes up its rate
/// again from there, without a burst to catch up. Without a gate, the
/// average rate is kept even when a write was slow.
pub(crate) fn gated_writer(
    dir: &Path,
    files: usize,
    per_file: usize,
    rate: usize,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    gate: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        let per_tick = (rate / 20 / files).max(1);
        let mut started = Instant::now();
        let mut done = 0;
        let mut ticks = 0u32;
        while done < per_file {
            let limit = gate
                .as_ref()
                .map_or(per_file, |g| g.load(Ordering::SeqCst) / files);
            let to = (done + per_tick).min(per_file).min(limit);
            if to <= done {
                // At the gate: not a synchronisation with the writing, the
                // test moves the gate when it is ready for more.
                std::thread::sleep(Duration::from_millis(5));
                started = Instant::now();
                ticks = 0;
                continue;
            }
            for i in 0..files {
                append(&dir, i, done, to);
            }
            done = to;
            progress.store(done * files, Ordering::SeqCst);
            ticks += 1;
            if let Some(wait) = (tick * ticks).checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    })
}

/// Acceptance (a): `lines` lines appended to `files` followed files at
/// `rate` lines/s, forwarded by siemfwd to rsyslog over `input`; rsyslog
/// is stopped and started again `restarts` times, evenly over the writing
/// (the writer waits for a restart that is late), so every restart hits a
/// running transfer. Asserts nothing is missing and each file's first
/// copies arrived in order, prints the counts.
pub(crate) fn receiver_restarts(
    input: Input,
    files: usize,
    lines: usize,
    rate: usize,
    restarts: usize,
) {
    receiver_interrupted(input, files, lines, rate, restarts, Interruption::Restart);
}

/// How the receiver is interrupted in [`receiver_interrupted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interruption {
    /// SIGTERM (rsyslog writes out what it accepted), then started again.
    Restart,
    /// SIGKILL of an rsyslog whose main queue is direct (it wrote out, and over RELP
    /// answered, each message before reading on), then started again; `lossless`: a line
    /// missing fails the test, else the losses are only reported (the same run over a
    /// transport that cannot know, for comparison).
    Kill { lossless: bool },
}

/// [`receiver_restarts`], the receiver interrupted as `how` says.
pub(crate) fn receiver_interrupted(
    input: Input,
    files: usize,
    lines: usize,
    rate: usize,
    restarts: usize,
    how: Interruption,
) {
    use crate::support::peers::{certs, require, RsyslogOpts};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let killing = matches!(how, Interruption::Kill { .. });
    let Some(mut rs) = require(Rsyslog::start(RsyslogOpts {
        inputs: vec![input],
        slim_output: true,
        direct_queue: killing,
        ..RsyslogOpts::default()
    })) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rate = env_usize("SIEMFWD_TEST_RATE", rate);
    let per_file = lines / files;
    let total = per_file * files;
    let certs = (input == Input::Tls).then(certs);
    write_config(
        dir.path(),
        files,
        true,
        &sink_for(&rs, input, certs),
        "[pipeline]
checkpoint_interval = \"200ms\"\n",
    );
    for i in 0..files {
        append(dir.path(), i, 0, 0);
    }
    let mut got = Received::new(&rs, input, files, per_file);
    let started = Instant::now();
    let mut siemfwd = Siemfwd::start(dir.path(), 1);
    let written = Arc::new(AtomicUsize::new(0));
    // Restart k when `point(k)` lines are written. While it runs, the writer
    // may go on up to the next point only: a restart that is slow (rsyslog
    // starting on a loaded machine) holds the writing back instead of
    // letting it finish, so every restart hits a running transfer at any
    // rate.
    let point = |k: usize| files * (per_file * k.min(restarts + 1) / (restarts + 1));
    let gate = Arc::new(AtomicUsize::new(point(2)));
    let writer = gated_writer(
        dir.path(),
        files,
        per_file,
        rate,
        written.clone(),
        Some(gate.clone()),
    );
    let mut during_run = 0;
    for k in 1..=restarts {
        while written.load(Ordering::SeqCst) < point(k) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(siemfwd.running(), "siemfwd died:\n{}", siemfwd.log());
        let t = Instant::now();
        got.update();
        let before = got.unique;
        if before < total {
            during_run += 1;
        }
        if killing {
            rs.kill_and_restart()
                .expect("rsyslog starts again on the same port");
        } else {
            rs.restart().expect("rsyslog restarts on the same port");
        }
        gate.store(point(k + 2), Ordering::SeqCst);
        got.update();
        eprintln!(
            "restart {k} at {:.2}s ({} lines written): {before} -> {} unique received while it took {:.2}s",
            started.elapsed().as_secs_f64(),
            written.load(Ordering::SeqCst),
            got.unique,
            t.elapsed().as_secs_f64()
        );
    }
    writer.join().expect("writer");
    let written_in = started.elapsed();
    let limit = Duration::from_secs(env_usize("SIEMFWD_TEST_WAIT", 300) as u64);
    let lossless = !matches!(how, Interruption::Kill { lossless: false });
    if lossless {
        got.wait_until(
            "every line",
            limit,
            || format!("{}\n--- siemfwd ---\n{}", rs.internal_log(), siemfwd.log()),
            |g| g.missing() == 0,
        );
    } else {
        // Lines lost for good never come: wait until siemfwd has delivered all it
        // will (it has committed past the last line) and the receiver went quiet.
        let mut last = usize::MAX;
        let quiet_since = Instant::now();
        let mut quiet = quiet_since;
        while quiet.elapsed() < Duration::from_secs(3) && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
            got.update();
            if got.messages != last {
                last = got.messages;
                quiet = Instant::now();
            }
        }
    }
    let run_time = started.elapsed();
    siemfwd.signal("TERM");
    let (status, _) = siemfwd.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "siemfwd failed: {status:?}\n{}",
        siemfwd.log()
    );
    std::thread::sleep(Duration::from_millis(200));
    got.update();
    let log = siemfwd.log();
    let incidents = log.matches("connection to the SIEM failed").count();
    let recoveries = log.matches("connection to the SIEM restored").count();
    println!(
        "receiver_{} over {}: {total} lines in {files} files written in {:.1}s, \
         {restarts} rsyslog {} ({during_run} before the receiver had every line), done after {:.1}s: {} messages, \
         {} missing, {} duplicates, {} first arrived out of order; siemfwd logged {incidents} incidents and {recoveries} recoveries",
        if killing { "kills" } else { "restarts" },
        input.name(),
        written_in.as_secs_f64(),
        if killing {
            "SIGKILLs (direct main queue)"
        } else {
            "restarts"
        },
        run_time.as_secs_f64(),
        got.messages,
        got.missing(),
        got.duplicates(),
        got.late,
    );
    if !lossless {
        // Reported above, whatever it shows: this run is the comparison.
        return;
    }
    assert_eq!(got.missing(), 0, "missing, e.g. {:?}", got.missing_sample());
    assert_eq!(
        during_run, restarts,
        "only {during_run} of {restarts} restarts hit a running transfer"
    );
    // siemfwd sends each file in order and, after a reconnect, resends
    // what it holds oldest first; rsyslog writes out in the order it
    // received (one queue worker, scripts/peers/rsyslog.sh). So the first
    // copy of every line arrives after the first copies of the lines
    // before it: a line that turned up late was lost once and found again.
    assert_eq!(
        got.late, 0,
        "lines of a file whose first copy arrived after a later line's"
    );
    assert!(
        incidents <= restarts,
        "more than one warning per incident: {incidents} for {restarts} restarts\n{log}"
    );
}
