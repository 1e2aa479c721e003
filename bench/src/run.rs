//! One measured run: start a receiver, start the program under test (siemfwd or the seed
//! program) against a source, watch the receiver's count until every log has arrived, read
//! the program's CPU and peak RSS from procfs, stop it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sls_emulator::proto::{Content, LogGroup, LogTag};
use sls_emulator::RunningEmulator;

use crate::dataset::{self, DataSpec, Dataset, PROJECT};
use crate::measure::{self, Sample};
use crate::pki::Pki;
use crate::receiver::{now_ns, Receiver, SENT_FIELD};

/// The AccessKey the emulator accepts (requests are signed as in production).
pub(crate) const AK_ID: &str = "bench-ak";
/// Its secret.
pub(crate) const AK_SECRET: &str = "bench-secret";

/// Which program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Program {
    /// siemfwd.
    Siemfwd,
    /// Alibaba's sample, rebuilt (bench/seed/).
    Seed,
}

impl Program {
    /// Its name in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Program::Siemfwd => "siemfwd",
            Program::Seed => "seed (Python)",
        }
    }
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS.
    Tls,
    /// RELP (each message answered by the receiver).
    Relp,
    /// RELP over TLS.
    #[value(name = "relp-tls")]
    #[serde(rename = "relp-tls")]
    RelpTls,
}

impl Transport {
    /// Lower-case name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Relp => "relp",
            Transport::RelpTls => "relp-tls",
        }
    }

    /// Whether the seed program can send this way (it has no RELP).
    pub(crate) fn seed_speaks(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// Where the program reads from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A logstore of the emulator.
    Sls {
        /// `http://127.0.0.1:PORT`.
        endpoint: String,
        /// Logstore.
        logstore: String,
    },
    /// NDJSON files (siemfwd only).
    File {
        /// Directory of `*.ndjson`.
        dir: PathBuf,
    },
}

/// What every run shares.
pub(crate) struct Ctx {
    /// siemfwd binary.
    pub siemfwd: PathBuf,
    /// The venv's python, when the seed program runs.
    pub python: Option<PathBuf>,
    /// bench/seed/sync_data_to_syslog.py.
    pub seed_script: PathBuf,
    /// TLS material.
    pub pki: Pki,
    /// Scratch directory of this invocation.
    pub work: PathBuf,
    /// `SIEMFWD_*` overrides from `--set`.
    pub env: Vec<(String, String)>,
    /// Clock ticks.
    pub tck: f64,
    /// Give up on a run after this long.
    pub max_secs: u64,
    /// Stop the seed program after this long (it is measured over what it moved).
    pub seed_max_secs: u64,
    /// Record a `perf` profile of each siemfwd throughput run into this directory.
    pub perf: Option<PathBuf>,
    /// `[[transforms]]` tables appended to siemfwd's config (empty: none).
    pub transforms: String,
    /// siemfwd's `[format]` table, when not the bench's own.
    pub format: Option<String>,
}

/// Throughput figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Throughput {
    /// Program.
    pub program: Program,
    /// Transport.
    pub transport: Transport,
    /// Logs received (capped at the set's count).
    pub records: u64,
    /// Logs in the set.
    pub expected: u64,
    /// Raw bytes of those logs.
    pub raw_bytes: u64,
    /// First to last message, seconds.
    pub wall_secs: f64,
    /// CPU seconds of the program's process.
    pub cpu_secs: f64,
    /// Peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// Whether every log arrived (false: stopped at the time cap or stalled).
    pub complete: bool,
    /// Messages received beyond the set (duplicates after reconnects).
    pub extra: u64,
    /// Connections the receiver accepted.
    pub connections: u64,
    /// Framing, parse and TLS handshake errors the receiver counted.
    pub receiver_errors: u64,
    /// MB per CPU-second of every repetition, when repeated (the row is the median).
    #[serde(default)]
    pub runs: Vec<f64>,
}

impl Throughput {
    /// Raw MB per wall second.
    pub(crate) fn mb_s(&self) -> f64 {
        self.raw_bytes as f64 / 1e6 / self.wall_secs.max(1e-9)
    }
    /// Records per wall second.
    pub(crate) fn rec_s(&self) -> f64 {
        self.records as f64 / self.wall_secs.max(1e-9)
    }
    /// Raw MB per CPU second.
    pub(crate) fn mb_per_cpu_s(&self) -> f64 {
        self.raw_bytes as f64 / 1e6 / self.cpu_secs.max(1e-9)
    }
}

/// Latency figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Latency {
    /// Program.
    pub program: Program,
    /// Transport.
    pub transport: Transport,
    /// Offered rate, logs/s.
    pub rate: u64,
    /// Logs written in the measured window.
    pub sent: u64,
    /// Of those, received.
    pub received: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, ms (absent in results of older versions).
    #[serde(default)]
    pub p999_ms: Option<f64>,
}

static RUN: AtomicU32 = AtomicU32::new(0);

/// A run that received nothing new for this long is over: what arrived is measured and the
/// shortfall reported (the seed program drops what it fails to send).
pub(crate) const STALL_SECS: u64 = 20;

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// siemfwd's configuration for one run: RFC 5424, kv body with `||` (or the `[format]`
/// table given), the bench's receiver.
pub(crate) fn siemfwd_config(
    source: &Source,
    group: &str,
    state_dir: &Path,
    transport: Transport,
    rx: &Receiver,
    pki: &Pki,
    format: Option<&str>,
) -> String {
    let mut c = String::new();
    match source {
        Source::Sls { endpoint, logstore } => {
            let _ = write!(
                c,
                "[source]\ntype = \"sls\"\n\n[source.sls]\nendpoint = {}\naccess_key_id = {}\n\
                 access_key_secret = {}\nproject = {}\nlogstore = {}\nconsumer_group = {}\n\n",
                toml_str(endpoint),
                toml_str(AK_ID),
                toml_str(AK_SECRET),
                toml_str(PROJECT),
                toml_str(logstore),
                toml_str(group)
            );
        }
        Source::File { dir } => {
            let _ = write!(
                c,
                "[source]\ntype = \"file\"\n\n[source.file]\npaths = [{}]\nstate_dir = {}\n\
                 follow = true\n\n",
                toml_str(&dir.to_string_lossy()),
                toml_str(&state_dir.to_string_lossy())
            );
        }
    }
    match format {
        Some(table) => {
            c.push_str(table);
            c.push('\n');
        }
        None => c.push_str(
            "[format]\nrfc = \"rfc5424\"\nfacility = \"user\"\nseverity = \"info\"\n\
             hostname = \"bench-host\"\napp_name = \"siemfwd\"\n\n[format.body]\ntype = \"kv\"\n\
             separator = \"||\"\n\n",
        ),
    }
    let (addr, kind) = match transport {
        Transport::Tcp => (rx.tcp, "tcp"),
        Transport::Tls => (rx.tls, "tls"),
        Transport::Relp => (rx.relp, "relp"),
        Transport::RelpTls => (rx.relp_tls, "relp"),
    };
    let _ = write!(c, "[sink]\ntype = \"{kind}\"\naddress = \"{addr}\"\n");
    if transport == Transport::RelpTls {
        c.push_str("\n[sink.relp]\ntls = true\n");
    }
    if matches!(transport, Transport::Tls | Transport::RelpTls) {
        let _ = write!(
            c,
            "\n[sink.tls]\nca_file = {}\nserver_name = \"localhost\"\n",
            toml_str(&pki.ca.to_string_lossy())
        );
    }
    c
}

fn spawn(
    ctx: &Ctx,
    program: Program,
    transport: Transport,
    source: &Source,
    rx: &Receiver,
    tag: &str,
) -> anyhow::Result<(Child, PathBuf)> {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let dir = ctx.work.join(format!("run-{n:02}-{tag}"));
    fs::create_dir_all(&dir)?;
    let group = format!("bench-{}-{n}", std::process::id());
    let log = dir.join("stderr.log");
    let stderr = fs::File::create(&log)?;
    let child = match program {
        Program::Siemfwd => {
            let cfg = dir.join("siemfwd.toml");
            fs::write(
                &cfg,
                siemfwd_config(
                    source,
                    &group,
                    &dir.join("state"),
                    transport,
                    rx,
                    &ctx.pki,
                    ctx.format.as_deref(),
                ) + "\n"
                    + &ctx.transforms,
            )?;
            Command::new(&ctx.siemfwd)
                .arg("run")
                .arg("-c")
                .arg(&cfg)
                .envs(ctx.env.iter().cloned())
                .env_remove("SLS_ENDPOINT")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("starting {}", ctx.siemfwd.display()))?
        }
        Program::Seed => {
            let Source::Sls { endpoint, logstore } = source else {
                anyhow::bail!("the seed program reads Log Service only");
            };
            let python = ctx
                .python
                .as_ref()
                .context("no Python for the seed program")?;
            let hostport = endpoint.trim_start_matches("http://");
            let port = match transport {
                Transport::Tcp => rx.tcp.port(),
                Transport::Tls => rx.tls.port(),
                Transport::Relp | Transport::RelpTls => {
                    anyhow::bail!("the seed program has no RELP")
                }
            };
            Command::new(python)
                .arg(&ctx.seed_script)
                .current_dir(&dir)
                .env("SLS_ENDPOINT", hostport)
                .env("SLS_AK_ID", AK_ID)
                .env("SLS_AK_KEY", AK_SECRET)
                .env("SLS_PROJECT", PROJECT)
                .env("SLS_LOGSTORE", logstore)
                .env("SLS_CG", &group)
                // The SDK only takes a bare IP as an address; through a proxy setting it
                // sends absolute-form requests, which the emulator serves (emulator README).
                .env("HTTP_PROXY", endpoint)
                .env("http_proxy", endpoint)
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .env("SYSLOG_HOST", "127.0.0.1")
                .env("SYSLOG_PORT", port.to_string())
                .env("SYSLOG_PROTOCOL", transport.name())
                .env("SYSLOG_CERT_PATH", &ctx.pki.ca)
                .env("SYSLOG_HOSTNAME", "bench-host")
                .env("SYSLOG_TAG", "seed")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("starting {}", python.display()))?
        }
    };
    Ok((child, log))
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Moves the whole data set through `program` and measures it.
pub(crate) async fn throughput(
    ctx: &Ctx,
    program: Program,
    transport: Transport,
    source: &Source,
    ds: &Dataset,
) -> anyhow::Result<Throughput> {
    let label = format!("{} {}", program.name(), transport.name());
    let rx = Receiver::start(&ctx.pki.cert, &ctx.pki.key, false).await?;
    let (mut child, log) = spawn(
        ctx,
        program,
        transport,
        source,
        &rx,
        &format!(
            "{}-{}",
            program.name().split(' ').next().unwrap_or("p"),
            transport.name()
        ),
    )?;
    let pid = child.id();
    let mut perf = match (&ctx.perf, program) {
        (Some(dir), Program::Siemfwd) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the --perf directory {}", dir.display()))?;
            let out = dir.join(format!("perf-{}-{}.data", program.name(), transport.name()));
            eprintln!("bench: {label}: perf record -> {}", out.display());
            Some(
                Command::new("perf")
                    .args([
                        "record",
                        "-F",
                        "1999",
                        "--call-graph",
                        "dwarf,16384",
                        "-q",
                        "-o",
                    ])
                    .arg(&out)
                    .args(["-p", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting perf")?,
            )
        }
        _ => None,
    };
    let expected = ds.summary.logs;
    let cap = match program {
        Program::Siemfwd => ctx.max_secs,
        Program::Seed => ctx.seed_max_secs.min(ctx.max_secs),
    };
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last_change = Instant::now();
    let mut last_count = 0;
    let mut last_print = Instant::now();
    let mut sample = Sample::default();
    let mut complete = false;
    let mut end = Instant::now();
    let count = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let count = rx.messages();
        let now = Instant::now();
        if let Some(s) = measure::sample(pid, ctx.tck) {
            sample = s;
        }
        if count > 0 && first.is_none() {
            first = Some(now);
        }
        if count != last_count {
            last_count = count;
            last_change = now;
            end = now;
        }
        if count >= expected {
            complete = true;
            break count;
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "{label}: exited early ({status}); last lines of its log:\n{}",
                tail(&log)
            );
        }
        if now.duration_since(started).as_secs() >= cap {
            eprintln!("bench: {label}: time cap of {cap}s reached; measuring what it moved");
            break count;
        }
        let stalled = now.duration_since(last_change).as_secs();
        if first.is_none() && stalled >= 60 {
            measure::stop(&mut child, Duration::from_secs(5));
            anyhow::bail!(
                "{label}: no message in {stalled}s; last lines of its log:\n{}",
                tail(&log)
            );
        }
        if first.is_some() && stalled >= STALL_SECS {
            eprintln!(
                "bench: {label}: no message for {stalled}s with {count}/{expected} received; \
                 measuring what arrived (log: {})",
                log.display()
            );
            break count;
        }
        if last_print.elapsed().as_secs() >= 2 {
            last_print = now;
            eprintln!(
                "bench: {label}: {:5.1}%  {count} logs  cpu {:.1}s  rss {:.1} MiB  {:.0}s",
                100.0 * count as f64 / expected.max(1) as f64,
                sample.cpu_secs,
                sample.hwm_kib as f64 / 1024.0,
                now.duration_since(started).as_secs_f64()
            );
        }
    };
    // The last sample was taken within 10 ms of the final message; take one more now.
    if let Some(s) = measure::sample(pid, ctx.tck) {
        sample = s;
    }
    if let Some(p) = perf.as_mut() {
        // perf writes its file on SIGINT.
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    measure::stop(&mut child, Duration::from_secs(15));
    let rs = rx.stats.snapshot();
    rx.stop().await;
    let records = count.min(expected);
    let raw_bytes = if complete {
        ds.summary.raw_bytes
    } else {
        (ds.summary.raw_bytes as f64 * records as f64 / expected.max(1) as f64) as u64
    };
    let t = Throughput {
        program,
        transport,
        records,
        expected,
        raw_bytes,
        wall_secs: end.duration_since(first.unwrap_or(started)).as_secs_f64(),
        cpu_secs: sample.cpu_secs,
        peak_rss_kib: sample.hwm_kib,
        complete,
        extra: count.saturating_sub(expected),
        connections: rs.connections,
        receiver_errors: rs.framing_errors + rs.parse_errors + rs.tls_handshake_errors,
        runs: Vec::new(),
    };
    eprintln!(
        "bench: {label}: {} logs, {:.1} MB raw in {:.2}s = {:.1} MB/s; cpu {:.2}s = {:.1} MB per CPU-second; peak RSS {:.1} MiB; {} connections, {} receiver errors{}",
        t.records,
        t.raw_bytes as f64 / 1e6,
        t.wall_secs,
        t.mb_s(),
        t.cpu_secs,
        t.mb_per_cpu_s(),
        t.peak_rss_kib as f64 / 1024.0,
        t.connections,
        t.receiver_errors,
        if complete { "" } else { " (partial)" }
    );
    Ok(t)
}

/// Where latency logs are written while the program runs.
pub(crate) enum LatencySink<'a> {
    /// Appended to a logstore of an (in-memory) emulator.
    Emulator(&'a RunningEmulator, String),
    /// Appended to NDJSON files that siemfwd follows.
    Files(PathBuf),
}

/// Offers `rate` logs/s for `secs` seconds (after a warm-up) and measures how long each
/// takes from being written into the source to arriving at the receiver.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn latency(
    ctx: &Ctx,
    program: Program,
    transport: Transport,
    source: &Source,
    sink: LatencySink<'_>,
    spec: &DataSpec,
    rate: u64,
    secs: u64,
) -> anyhow::Result<Latency> {
    let label = format!("{} {} latency", program.name(), transport.name());
    let rx = Receiver::start(&ctx.pki.cert, &ctx.pki.key, true).await?;
    let mut files = Vec::new();
    if let LatencySink::Files(dir) = &sink {
        fs::create_dir_all(dir)?;
        for i in 0..spec.shards {
            let p = dir.join(format!("shard-{i:02}.ndjson"));
            files.push(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .with_context(|| format!("creating {}", p.display()))?,
            );
        }
    }
    let (mut child, log) = spawn(ctx, program, transport, source, &rx, "latency")?;
    let warmup = Duration::from_secs(3);
    let total = warmup + Duration::from_secs(secs);
    let load = sls_emulator::LoadSpec {
        min_size: spec.size.0,
        max_size: spec.size.1,
        min_fields: spec.fields.0,
        max_fields: spec.fields.1,
        ..Default::default()
    };
    let mut rng = fastrand::Rng::with_seed(spec.seed ^ 0x5eed);
    let started = Instant::now();
    let measure_from = now_ns() + warmup.as_nanos() as u64;
    let (mut sent_total, mut sent_measured, mut tick) = (0u64, 0u64, 0u64);
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    eprintln!(
        "bench: {label}: offering {rate} logs/s for {secs}s after a {}s warm-up",
        warmup.as_secs()
    );
    while started.elapsed() < total {
        interval.tick().await;
        let due = (rate as f64 * started.elapsed().as_secs_f64()) as u64;
        if due <= sent_total {
            continue;
        }
        let n = due - sent_total;
        let shard = (tick % u64::from(spec.shards)) as u32;
        tick += 1;
        let sent = now_ns();
        let time = (sent / 1_000_000_000) as u32;
        let logs = (0..n)
            .map(|_| {
                let mut l = sls_emulator::load::audit_event(&mut rng, &load, time);
                l.contents.insert(
                    0,
                    Content {
                        key: SENT_FIELD.as_bytes().to_vec(),
                        value: sent.to_string().into_bytes(),
                    },
                );
                l
            })
            .collect();
        let group = LogGroup {
            logs,
            topic: Some(b"audit".to_vec()),
            source: Some(b"10.0.0.1".to_vec()),
            log_tags: vec![LogTag {
                key: b"__hostname__".to_vec(),
                value: b"loadgen".to_vec(),
            }],
            ..Default::default()
        };
        match &sink {
            LatencySink::Emulator(emu, logstore) => {
                emu.append(PROJECT, logstore, shard, std::slice::from_ref(&group))?;
            }
            LatencySink::Files(_) => {
                use std::io::Write as _;
                let mut buf = Vec::new();
                for l in &group.logs {
                    dataset::ndjson_line(&mut buf, &group, l)?;
                }
                files[shard as usize].write_all(&buf)?;
            }
        }
        sent_total += n;
        if sent >= measure_from {
            sent_measured += n;
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "{label}: exited early ({status}); last lines of its log:\n{}",
                tail(&log)
            );
        }
    }
    // Let the tail arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = rx
            .latencies
            .lock()
            .map(|v| v.iter().filter(|(s, _)| *s >= measure_from).count() as u64)
            .unwrap_or(0);
        if got >= sent_measured || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    measure::stop(&mut child, Duration::from_secs(15));
    let lat = std::sync::Arc::clone(&rx.latencies);
    rx.stop().await;
    let mut v: Vec<u64> = lat
        .lock()
        .map(|v| {
            v.iter()
                .filter(|(s, _)| *s >= measure_from)
                .map(|(_, l)| *l)
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    let ms = |x: Option<u64>| x.map(|n| n as f64 / 1e6);
    let l = Latency {
        program,
        transport,
        rate,
        sent: sent_measured,
        received: v.len() as u64,
        p50_ms: ms(measure::percentile(&v, 50.0)),
        p99_ms: ms(measure::percentile(&v, 99.0)),
        p999_ms: ms(measure::percentile(&v, 99.9)),
    };
    let show = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1}"));
    eprintln!(
        "bench: {label}: {}/{} received, p50 {} ms, p99 {} ms, p99.9 {} ms",
        l.received,
        l.sent,
        show(l.p50_ms),
        show(l.p99_ms),
        show(l.p999_ms)
    );
    Ok(l)
}
