//! Shared by the `sls_*.rs` integration tests: an in-process Log Service
//! emulator loaded with numbered logs, a siemfwd config for it, siemfwd as a
//! real child process (stopped by PID), and a small in-process LF syslog
//! receiver for tests where the receiver does not matter.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sls_emulator::proto::{Content, Log, LogGroup, LogTag};

pub(crate) const PROJECT: &str = "proj";
pub(crate) const LOGSTORE: &str = "store";
pub(crate) const AK_ID: &str = "test-ak";
pub(crate) const AK_SECRET: &str = "test-secret";

/// An emulator with signatures checked and `shards` shards.
pub(crate) async fn emulator(shards: u32) -> sls_emulator::RunningEmulator {
    sls_emulator::Emulator::builder()
        .access_key(AK_ID, AK_SECRET)
        .logstore(PROJECT, LOGSTORE, shards)
        .start()
        .await
        .expect("emulator starts")
}

/// Append `per_shard` logs to every shard, `per_group` logs a group. Each
/// log carries `seq=<shard>:<n>` (n counts from `first` within the shard), a
/// non-ASCII value and a duplicate key.
pub(crate) fn load(
    emu: &sls_emulator::RunningEmulator,
    shards: u32,
    first: u64,
    per_shard: u64,
    per_group: u64,
) {
    for shard in 0..shards {
        load_shard(emu, shard, first, per_shard, per_group);
    }
}

/// Append `count` numbered logs (from `first`) to one shard.
pub(crate) fn load_shard(
    emu: &sls_emulator::RunningEmulator,
    shard: u32,
    first: u64,
    count: u64,
    per_group: u64,
) {
    load_shard_of(
        emu,
        (PROJECT, LOGSTORE),
        shard,
        shard,
        first,
        count,
        per_group,
    );
}

/// [`load_shard`] into any project and logstore, the logs numbered
/// `seq=<label>:<n>` (several logstores count into one [`SeqCounter`] by
/// giving each shard a label of its own).
pub(crate) fn load_shard_of(
    emu: &sls_emulator::RunningEmulator,
    (project, logstore): (&str, &str),
    shard: u32,
    label: u32,
    first: u64,
    count: u64,
    per_group: u64,
) {
    let mut n = first;
    let end = first + count;
    let mut batch = Vec::new();
    while n < end {
        let k = per_group.min(end - n);
        let logs = (n..n + k)
            .map(|i| Log {
                time: 1_700_000_000 + (i / 100) as u32,
                contents: vec![
                    Content {
                        key: b"seq".to_vec(),
                        value: format!("{label}:{i}").into_bytes(),
                    },
                    Content {
                        key: b"user".to_vec(),
                        value: "jos\u{e9}".as_bytes().to_vec(),
                    },
                    Content {
                        key: b"dup".to_vec(),
                        value: b"a".to_vec(),
                    },
                    Content {
                        key: b"dup".to_vec(),
                        value: b"b".to_vec(),
                    },
                ],
                time_ns: Some(123_000),
            })
            .collect();
        batch.push(LogGroup {
            logs,
            topic: Some(b"t1".to_vec()),
            source: Some(b"10.0.0.1".to_vec()),
            log_tags: vec![LogTag {
                key: b"__hostname__".to_vec(),
                value: b"h1".to_vec(),
            }],
            ..Default::default()
        });
        n += k;
        if batch.len() >= 200 {
            emu.append(project, logstore, shard, &batch)
                .expect("append");
            batch.clear();
        }
    }
    if !batch.is_empty() {
        emu.append(project, logstore, shard, &batch)
            .expect("append");
    }
}

/// `(shard, n)` from a message carrying `seq=<shard>:<n>`.
pub(crate) fn seq_of(msg: &str) -> Option<(u32, u64)> {
    let at = msg.find("seq=")? + 4;
    let rest = &msg[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let (s, n) = rest[..end].split_once(':')?;
    Some((s.parse().ok()?, n.parse().ok()?))
}

/// Write a siemfwd config for the emulator and a TCP sink.
pub(crate) fn config(
    dir: &Path,
    name: &str,
    endpoint: &str,
    sink: SocketAddr,
    framing: &str,
    extra_sls: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    // Defaults for fast tests, unless the caller sets them.
    let mut extra_sls = extra_sls.to_owned();
    for (key, value) in [
        ("heartbeat_interval", "\"1s\""),
        ("heartbeat_timeout", "\"3s\""),
        ("fetch_interval", "\"200ms\""),
    ] {
        if !extra_sls.contains(key) {
            extra_sls.push_str(&format!("\n{key} = {value}"));
        }
    }
    let text = format!(
        r#"[source]
type = "sls"

[source.sls]
endpoint = "{endpoint}"
access_key_id = "{AK_ID}"
access_key_secret = "{AK_SECRET}"
project = "{PROJECT}"
logstore = "{LOGSTORE}"
consumer_group = "cg"
consumer_name = "{name}"
{extra_sls}

[sink]
type = "tcp"
address = "{sink}"
framing = "{framing}"

[pipeline]
batch_records = 2000
batch_bytes = "1MiB"
in_flight_batches = 4
checkpoint_interval = "300ms"
drain_timeout = "10s"
"#
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A siemfwd child process, killed on drop.
pub(crate) struct Siemfwd {
    pub child: Child,
    pub log: PathBuf,
}

impl Siemfwd {
    /// `siemfwd run -c config`, stderr into `dir/<name>.log`.
    pub(crate) fn start(dir: &Path, name: &str, config: &Path) -> Self {
        Self::start_with_env(dir, name, config, &[])
    }

    /// [`Siemfwd::start`] with these environment variables set as well.
    pub(crate) fn start_with_env(
        dir: &Path,
        name: &str,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = crate::support::siemfwd::hermetic()
            .envs(env.iter().copied())
            .args(["run", "-c"])
            .arg(config)
            .env("SIEMFWD_LOG", "info")
            .env_remove("SLS_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("siemfwd starts");
        Self { child, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (up to `timeout`) for the exit status.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.wait(timeout)
    }

    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Siemfwd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Poll `f` until it returns `Some` or the deadline passes.
pub(crate) fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// An in-process TCP receiver for LF-framed syslog: every line, in arrival
/// order per connection.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub addr: SocketAddr,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let lines = l2.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead as _;
                    let r = std::io::BufReader::new(conn);
                    for line in r.split(b'\n') {
                        let Ok(line) = line else { return };
                        lines
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&line).into_owned());
                    }
                });
            }
        });
        Self { addr, lines }
    }

    pub(crate) fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// How many of `per_shard` logs on each of `shards` have not arrived
    /// yet. Not the same as comparing [`Receiver::count`] with the total: a
    /// shard handed back from its checkpoint sends some logs twice.
    pub(crate) fn missing(&self, shards: u32, per_shard: u64) -> usize {
        let lines = self.lines.lock().unwrap();
        let seqs = lines.iter().filter_map(|l| seq_of(l));
        tally(seqs, shards, per_shard).0.len()
    }
}

/// What [`tally`] found: the missing `(shard, n)`, the number of
/// duplicates, and how often each was seen.
pub(crate) type Tally = (Vec<(u32, u64)>, u64, BTreeMap<(u32, u64), u32>);

/// Count each `(shard, n)` received; returns (missing, duplicates, counts).
pub(crate) fn tally(
    seqs: impl IntoIterator<Item = (u32, u64)>,
    shards: u32,
    per_shard: u64,
) -> Tally {
    let mut seen: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    for s in seqs {
        *seen.entry(s).or_default() += 1;
    }
    let mut missing = Vec::new();
    for shard in 0..shards {
        for n in 0..per_shard {
            if !seen.contains_key(&(shard, n)) {
                missing.push((shard, n));
            }
        }
    }
    let dups = seen.values().map(|c| u64::from(c - 1)).sum();
    (missing, dups, seen)
}

/// The emulator's checkpoints equal every shard's end cursor.
pub(crate) fn checkpoints_at_end(emu: &sls_emulator::RunningEmulator, shards: u32) -> bool {
    let Some(cps) = emu.checkpoints(PROJECT, LOGSTORE, "cg") else {
        return false;
    };
    (0..shards).all(|s| {
        let end = emu.cursor(PROJECT, LOGSTORE, s, "end").unwrap_or_default();
        cps.iter().any(|c| c.shard == s && c.checkpoint == end)
    })
}

/// Lines in a file (complete ones), counted without parsing them.
pub(crate) fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// `name=N` from siemfwd's `siemfwd stopped counters=…` line (0 if absent:
/// only counters that moved are printed).
pub(crate) fn counter(log: &str, name: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("siemfwd stopped"))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.trim_start_matches("counters=").split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim_matches('"').parse().ok())
        .unwrap_or(0)
}

/// The WARN/ERROR lines of a siemfwd log, for test output.
pub(crate) fn warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_owned)
        .collect()
}

/// An in-process TCP receiver for LF-framed syslog that keeps only how often
/// each `seq=<shard>:<n>` arrived (one counter per expected log), so a
/// million-log run needs a few MB rather than every line.
#[derive(Clone)]
pub(crate) struct SeqCounter {
    pub addr: SocketAddr,
    shards: u32,
    per_shard: u64,
    counts: Arc<Vec<std::sync::atomic::AtomicU32>>,
    lines: Arc<std::sync::atomic::AtomicU64>,
    /// Per shard, one more than the highest n received.
    high: Arc<Vec<std::sync::atomic::AtomicU64>>,
    /// Logs that arrived for the first time after a later log of their shard.
    reordered: Arc<std::sync::atomic::AtomicU64>,
    /// Lines without a seq in range, e.g. `["3:x", …]` (the first few).
    strays: Arc<Mutex<Vec<String>>>,
    /// Per shard, text every line of it must hold (`__logstore__=a`), if
    /// checked; and how many lines did not.
    labels: Arc<Vec<Vec<String>>>,
    mislabelled: Arc<std::sync::atomic::AtomicU64>,
}

impl SeqCounter {
    pub(crate) fn start(shards: u32, per_shard: u64) -> Self {
        Self::start_labelled(shards, per_shard, Vec::new())
    }

    /// A counter that also checks each line of shard `s` holds every text
    /// of `labels[s]` ([`SeqCounter::mislabelled`]).
    pub(crate) fn start_labelled(shards: u32, per_shard: u64, labels: Vec<Vec<String>>) -> Self {
        use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let n = (u64::from(shards) * per_shard) as usize;
        let counts: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
        let lines = Arc::new(AtomicU64::new(0));
        let strays = Arc::new(Mutex::new(Vec::new()));
        let high = Arc::new((0..shards).map(|_| AtomicU64::new(0)).collect());
        let me = Self {
            addr,
            shards,
            per_shard,
            counts,
            lines,
            high,
            reordered: Arc::new(AtomicU64::new(0)),
            strays,
            labels: Arc::new(labels),
            mislabelled: Arc::new(AtomicU64::new(0)),
        };
        let shared = me.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let me = shared.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead as _;
                    let r = std::io::BufReader::with_capacity(1 << 16, conn);
                    for line in r.split(b'\n') {
                        let Ok(line) = line else { return };
                        me.lines.fetch_add(1, Ordering::Relaxed);
                        let text = String::from_utf8_lossy(&line);
                        match seq_of(&text).filter(|(s, n)| *s < me.shards && *n < me.per_shard) {
                            Some((s, n)) => {
                                if me
                                    .labels
                                    .get(s as usize)
                                    .is_some_and(|l| l.iter().any(|t| !text.contains(t.as_str())))
                                {
                                    me.mislabelled.fetch_add(1, Ordering::Relaxed);
                                }
                                let first = me.counts[(u64::from(s) * me.per_shard + n) as usize]
                                    .fetch_add(1, Ordering::Relaxed)
                                    == 0;
                                let high = me.high[s as usize].fetch_max(n + 1, Ordering::Relaxed);
                                if first && n + 1 < high {
                                    me.reordered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => {
                                let mut st = me.strays.lock().unwrap();
                                if st.len() < 5 {
                                    st.push(String::from_utf8_lossy(&line).into_owned());
                                }
                            }
                        }
                    }
                });
            }
        });
        me
    }

    /// Lines received (with or without a seq).
    pub(crate) fn lines(&self) -> u64 {
        self.lines.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Expected logs not received yet, and the first few of them.
    pub(crate) fn missing(&self) -> (u64, Vec<(u32, u64)>) {
        let mut n = 0;
        let mut first = Vec::new();
        for (i, c) in self.counts.iter().enumerate() {
            if c.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                n += 1;
                if first.len() < 5 {
                    let i = i as u64;
                    first.push(((i / self.per_shard) as u32, i % self.per_shard));
                }
            }
        }
        (n, first)
    }

    /// How many logs of `shard` arrived without a gap from log 0.
    pub(crate) fn prefix(&self, shard: u32) -> u64 {
        self.shard_counts(shard)
            .iter()
            .take_while(|c| c.load(std::sync::atomic::Ordering::Relaxed) > 0)
            .count() as u64
    }

    /// Logs that arrived for the first time after a later log of their shard
    /// (an order violation; a resent log arriving again is a duplicate, not
    /// this).
    pub(crate) fn reordered(&self) -> u64 {
        self.reordered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lines that lacked a text of their shard's labels.
    pub(crate) fn mislabelled(&self) -> u64 {
        self.mislabelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Receptions beyond the first of each log.
    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates_by_shard().iter().sum()
    }

    /// Duplicates per shard.
    pub(crate) fn duplicates_by_shard(&self) -> Vec<u64> {
        (0..self.shards)
            .map(|s| {
                self.shard_counts(s)
                    .iter()
                    .map(|c| {
                        u64::from(
                            c.load(std::sync::atomic::Ordering::Relaxed)
                                .saturating_sub(1),
                        )
                    })
                    .sum()
            })
            .collect()
    }

    /// The reception counts of `shard`'s logs, log 0 first.
    fn shard_counts(&self, shard: u32) -> &[std::sync::atomic::AtomicU32] {
        let from = (u64::from(shard) * self.per_shard) as usize;
        &self.counts[from..from + self.per_shard as usize]
    }

    /// Lines that carried no seq in range (the first few).
    pub(crate) fn strays(&self) -> Vec<String> {
        self.strays.lock().unwrap().clone()
    }
}

/// A TCP proxy on loopback that the test can cut and heal, to cut one
/// process off from the emulator while everything else goes on.
///
/// Cut means *held*, as in a network partition: connections stay open, no
/// byte passes in either direction, and new connections are accepted but not
/// forwarded. On heal everything waiting flows again, so a request sent
/// during the cut reaches the server late (after the partition), which is
/// exactly when a stale owner's commit must be refused.
#[derive(Clone)]
pub(crate) struct CutProxy {
    pub addr: SocketAddr,
    /// `true` while cut; the condvar wakes the pumps on heal.
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl CutProxy {
    pub(crate) fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let me = Self {
            addr,
            gate: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
        };
        let proxy = me.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let proxy = proxy.clone();
                std::thread::spawn(move || {
                    proxy.wait_open();
                    let Ok(server) = std::net::TcpStream::connect(upstream) else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => (c, s),
                        _ => return,
                    };
                    let p2 = proxy.clone();
                    std::thread::spawn(move || p2.pump(c2, s2));
                    proxy.pump(server, client);
                });
            }
        });
        me
    }

    fn wait_open(&self) {
        let (cut, cv) = &*self.gate;
        let mut g = cut.lock().unwrap();
        while *g {
            g = cv.wait(g).unwrap();
        }
    }

    /// Copies `from` → `to`, holding whatever it read while the proxy is cut.
    fn pump(&self, mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
        use std::io::Read as _;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            self.wait_open();
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Read just before a cut: held until the heal like the rest.
            self.wait_open();
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
        let _ = from.shutdown(std::net::Shutdown::Read);
    }

    /// Stop forwarding (hold every connection).
    pub(crate) fn cut(&self) {
        *self.gate.0.lock().unwrap() = true;
    }

    /// Forward again, including everything held.
    pub(crate) fn heal(&self) {
        *self.gate.0.lock().unwrap() = false;
        self.gate.1.notify_all();
    }
}
