//! `siemfwd-bench`: raw MB per CPU-second of siemfwd, side by side with Alibaba's seed
//! program, against the SLS emulator and a loopback receiver.
//!
//! ```sh
//! cargo run --release -p siemfwd-bench --                 # 200 MB, sls source, TCP + TLS
//! cargo run --release -p siemfwd-bench -- --size 2GB      # the full run quoted in the README
//! cargo run --release -p siemfwd-bench -- --source file --no-seed
//! cargo run --release -p siemfwd-bench -- --distance 0,50,100,300   # Log Service far away
//! ```
//!
//! Everything runs on this machine: an in-process emulator serving a cached, seeded data set,
//! an in-process receiver (siemfwd's `listen` code), and the program under test as a child
//! process whose CPU time and peak RSS are read from procfs. Results go to
//! `bench/results/latest.{md,json,png}`, or with `--distance` to `distance.{md,json,png}`.

mod chart;
mod dataset;
mod distance;
mod measure;
mod pki;
mod receiver;
mod report;
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};

use crate::dataset::{DataSpec, LOGSTORE, PROJECT};
use crate::run::{Ctx, LatencySink, Program, Source, Transport, AK_ID, AK_SECRET};

/// The shape of the generated logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShapeArg {
    /// Flat audit events (`--log-size`, `--fields`).
    Flat,
    /// ActionTrail as Log Service delivers it: the event one JSON string in `event`.
    Actiontrail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceKind {
    /// Alibaba Cloud Log Service, served by the emulator (the real comparison).
    Sls,
    /// NDJSON files (format + sink alone; the seed program still reads the emulator).
    File,
}

/// Measure siemfwd's raw MB per CPU-second side by side with Alibaba's seed program.
#[derive(Debug, Parser)]
#[command(name = "siemfwd-bench", version)]
struct Args {
    /// siemfwd's source.
    #[arg(long, value_enum, default_value_t = SourceKind::Sls)]
    source: SourceKind,
    /// Raw size of the data set (e.g. 200MB, 2GB; 10^6 / 10^9 bytes).
    #[arg(long, default_value = "200MB")]
    size: String,
    /// Shards of the logstore (files for --source file).
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Log size range in raw bytes.
    #[arg(long, default_value = "200-1000")]
    log_size: String,
    /// Fields per log.
    #[arg(long, default_value = "10-30")]
    fields: String,
    /// What the logs look like (`actiontrail`: ~1 KB JSON events in one field, for
    /// `parse_json`; `--log-size` and `--fields` then do not apply).
    #[arg(long, value_enum, default_value_t = ShapeArg::Flat)]
    shape: ShapeArg,
    /// Give siemfwd the `[[transforms]]` of this config file (everything from the first line
    /// that is `[[transforms]]` to the end), e.g. bench/actiontrail-transforms.toml.
    #[arg(long, value_name = "FILE")]
    transforms: Option<PathBuf>,
    /// Give siemfwd the `[format]` table of this config file instead of the bench's own
    /// (RFC 5424, `||` kv body), e.g. examples/arcsight-cef.toml for its CEF body and map.
    #[arg(long, value_name = "FILE")]
    format: Option<PathBuf>,
    /// Logs per log group.
    #[arg(long, default_value_t = 100)]
    logs_per_group: u32,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 7)]
    data_seed: u64,
    /// Transports to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tcp,tls")]
    transport: Vec<Transport>,
    /// Run each siemfwd measurement this many times and report the median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Skip the seed program.
    #[arg(long)]
    no_seed: bool,
    /// Round trip added by the emulator to every request of the throughput runs,
    /// milliseconds (Log Service read from afar).
    #[arg(long, default_value_t = 0)]
    sls_latency_ms: u64,
    /// Instead of the main runs: one shard and all shards at each of these round trips
    /// (ms), both programs, latency included; writes distance.{md,json,png}.
    #[arg(long, value_delimiter = ',', value_name = "MS,...")]
    distance: Vec<u64>,
    /// Raw size of the one-shard data set of --distance.
    #[arg(long, default_value = "100MB")]
    distance_shard_size: String,
    /// Skip the latency runs.
    #[arg(long)]
    no_latency: bool,
    /// Offered rate of the latency runs, logs per second.
    #[arg(long, default_value_t = 2000)]
    latency_rate: u64,
    /// Measured seconds of each latency run (after a 3 s warm-up).
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// siemfwd binary (default: build this workspace's, next to this program).
    #[arg(long)]
    siemfwd: Option<PathBuf>,
    /// Python with aliyun-log-python-sdk (default: sls-emulator/tests/python/setup.sh's venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Stop the seed program after this many seconds and measure what it moved.
    #[arg(long, default_value_t = 180)]
    seed_max_secs: u64,
    /// Give up on any run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    max_secs: u64,
    /// Where generated data sets are cached (default: <target dir>/bench-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where results go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only redraw NAME.md and NAME.png from this saved NAME.json (no runs).
    #[arg(long, value_name = "JSON")]
    rerender: Option<PathBuf>,
    /// Base name of the result files (NAME.md, NAME.json, NAME.png).
    #[arg(long, default_value = "latest")]
    name: String,
    /// Record a `perf` profile (call graphs) of each siemfwd throughput run into this
    /// directory (`perf report -i DIR/perf-siemfwd-tcp.data`). Profiling costs CPU: the
    /// figures of such a run are not comparable.
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// Keep the scratch directory (configs, logs of every run) and print where it is.
    #[arg(long)]
    keep_work: bool,
    /// Extra siemfwd setting KEY=VALUE (as SIEMFWD_KEY env), e.g. pipeline.batch_records=2000.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mul) = [
        ("GB", 1e9),
        ("MB", 1e6),
        ("KB", 1e3),
        ("G", 1e9),
        ("M", 1e6),
        ("B", 1.0),
    ]
    .iter()
    .find_map(|(suf, m)| t.strip_suffix(suf).map(|n| (n.trim().to_owned(), *m)))
    .unwrap_or((t.clone(), 1.0));
    let n: f64 = num
        .parse()
        .with_context(|| format!("--size {s:?}: expected e.g. 200MB or 2GB"))?;
    Ok((n * mul) as u64)
}

fn range(s: &str, what: &str) -> anyhow::Result<(usize, usize)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--{what} {s:?}: expected MIN-MAX"))?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn build_siemfwd() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no directory of this program")?;
    eprintln!("bench: cargo build --release -p siemfwd");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "siemfwd", "--bin", "siemfwd"])
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", dir.parent().unwrap_or(dir))
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "building siemfwd failed");
    Ok(dir.join("siemfwd"))
}

fn python_venv() -> anyhow::Result<PathBuf> {
    let setup = workspace().join("sls-emulator/tests/python/setup.sh");
    eprintln!(
        "bench: {} (the official SDK for the seed program)",
        setup.display()
    );
    let out = Command::new("bash")
        .arg(&setup)
        .output()
        .context("running setup.sh")?;
    anyhow::ensure!(
        out.status.success(),
        "setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(PathBuf::from(path))
}

fn env_overrides(set: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    set.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
            Ok((
                format!(
                    "SIEMFWD_{}",
                    k.trim().to_ascii_uppercase().replace('.', "_")
                ),
                v.to_owned(),
            ))
        })
        .collect()
}

/// NAME.md, NAME.json and NAME.png of a throughput report, into `dir`.
fn write_report(rep: &report::Report, dir: &Path, name: &str) -> anyhow::Result<()> {
    rep.write(dir, name)?;
    chart::draw(rep, &dir.join(format!("{name}.png")))
}

/// NAME.md, NAME.json and NAME.png of a `--distance` report, into `dir`.
fn write_distance(rep: &distance::DistanceReport, dir: &Path, name: &str) -> anyhow::Result<()> {
    rep.write(dir, name)?;
    chart::draw_distance(rep, &dir.join(format!("{name}.png")))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    if let Some(json) = &args.rerender {
        let text = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
        let out = json.parent().unwrap_or(Path::new("."));
        match serde_json::from_slice::<report::Report>(&text) {
            Ok(rep) => write_report(&rep, out, &args.name)?,
            Err(_) => {
                let rep: distance::DistanceReport = serde_json::from_slice(&text)
                    .with_context(|| format!("{}: not a bench result", json.display()))?;
                write_distance(&rep, out, &args.name)?;
            }
        }
        eprintln!("bench: redrew {}/{}.{{md,png}}", out.display(), args.name);
        return Ok(());
    }
    let spec = DataSpec {
        bytes: parse_size(&args.size)?,
        shards: args.shards.max(1),
        size: range(&args.log_size, "log-size")?,
        fields: range(&args.fields, "fields")?,
        logs_per_group: args.logs_per_group.max(1),
        seed: args.data_seed,
        shape: match args.shape {
            ShapeArg::Flat => sls_emulator::Shape::Flat,
            ShapeArg::Actiontrail => sls_emulator::Shape::ActionTrail,
        },
    };
    let transforms = match &args.transforms {
        None => String::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --transforms {}", path.display()))?;
            // The first line that opens a table (not a comment that names one).
            let at = text
                .match_indices("[[transforms]]")
                .map(|(at, _)| at)
                .find(|&at| at == 0 || text[..at].ends_with('\n'))
                .with_context(|| format!("{}: no [[transforms]] table", path.display()))?;
            text[at..].to_owned()
        }
    };
    let format = match &args.format {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --format {}", path.display()))?;
            let mut table: toml::Table = text
                .parse()
                .with_context(|| format!("{}: not TOML", path.display()))?;
            let format = table
                .remove("format")
                .with_context(|| format!("{}: no [format] table", path.display()))?;
            let mut only = toml::Table::new();
            only.insert("format".to_owned(), format);
            Some(toml::to_string(&only).context("writing the [format] table back")?)
        }
    };
    let seed = !args.no_seed;
    let need_emu = args.source == SourceKind::Sls || seed;
    let data_root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("bench-data"));
    let ds = dataset::prepare(&data_root, &spec, need_emu, args.source == SourceKind::File).await?;
    let siemfwd = match &args.siemfwd {
        Some(p) => p.clone(),
        None => build_siemfwd()?,
    };
    let python = match (&args.python, seed) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(python_venv()?),
        (None, false) => None,
    };
    let work = tempfile::Builder::new()
        .prefix("siemfwd-bench-")
        .tempdir()?;
    // Kept (not removed on exit) when asked, also when a run fails.
    let _work_guard;
    let work_path = if args.keep_work {
        let p = work.keep();
        eprintln!("bench: scratch directory (kept): {}", p.display());
        _work_guard = None;
        p
    } else {
        let p = work.path().to_owned();
        _work_guard = Some(work);
        p
    };
    let ctx = Ctx {
        siemfwd: siemfwd.clone(),
        python,
        seed_script: workspace().join("bench/seed/sync_data_to_syslog.py"),
        pki: pki::make(&work_path)?,
        work: work_path.clone(),
        env: env_overrides(&args.set)?,
        tck: measure::clk_tck(),
        max_secs: args.max_secs,
        seed_max_secs: args.seed_max_secs,
        perf: args.perf.clone(),
        transforms,
        format,
    };
    let emu = if need_emu {
        eprintln!("bench: starting the emulator on the cached data set");
        Some(
            sls_emulator::Emulator::builder()
                .data_dir(ds.emu_dir())
                .access_key(AK_ID, AK_SECRET)
                .group_quota(100_000)
                .faults(sls_emulator::FaultConfig {
                    latency: std::time::Duration::from_millis(args.sls_latency_ms),
                    ..Default::default()
                })
                .start()
                .await
                .context("starting the emulator")?,
        )
    } else {
        None
    };
    let sls = emu.as_ref().map(|e| Source::Sls {
        endpoint: e.endpoint(),
        logstore: LOGSTORE.to_owned(),
    });
    let siemfwd_source = match args.source {
        SourceKind::Sls => sls.clone().context("no emulator")?,
        SourceKind::File => Source::File {
            dir: ds.ndjson_dir(),
        },
    };
    if !args.distance.is_empty() {
        if let Some(e) = emu {
            e.shutdown().await;
        }
        let one_spec = DataSpec {
            bytes: parse_size(&args.distance_shard_size)?,
            shards: 1,
            ..spec.clone()
        };
        let one = dataset::prepare(&data_root, &one_spec, true, false).await?;
        let plan = distance::Plan {
            rtts: &args.distance,
            one: (&one, &one_spec),
            many: (&ds, &spec),
            transport: args.transport.first().copied().unwrap_or(Transport::Tcp),
            seed,
            latency: (!args.no_latency).then_some((args.latency_rate, args.latency_secs)),
        };
        let mut rep = distance::measure(&ctx, &plan).await?;
        rep.settings = args.set.clone();
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| workspace().join("bench/results"));
        let name = if args.name == "latest" {
            "distance"
        } else {
            &args.name
        };
        write_distance(&rep, &out, name)?;
        println!("{}", rep.markdown());
        eprintln!("bench: wrote {}/{name}.{{md,json,png}}", out.display());
        return Ok(());
    }
    let mut throughput = Vec::new();
    for &t in &args.transport {
        // siemfwd's runs are short, so repeating them is cheap; the median (by MB per
        // CPU-second) damps noise from whatever else the machine is doing.
        let mut runs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            runs.push(run::throughput(&ctx, Program::Siemfwd, t, &siemfwd_source, &ds).await?);
        }
        runs.sort_by(|a, b| a.mb_per_cpu_s().total_cmp(&b.mb_per_cpu_s()));
        if runs.len() > 1 {
            eprintln!(
                "bench: siemfwd {}: {} runs, MB per CPU-second {}; keeping the median",
                t.name(),
                runs.len(),
                runs.iter()
                    .map(|r| format!("{:.0}", r.mb_per_cpu_s()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let spread = runs
            .iter()
            .map(run::Throughput::mb_per_cpu_s)
            .collect::<Vec<_>>();
        let mut median = runs.swap_remove(runs.len() / 2);
        median.runs = spread;
        throughput.push(median);
        if let (true, Some(sls)) = (seed && t.seed_speaks(), &sls) {
            throughput.push(run::throughput(&ctx, Program::Seed, t, sls, &ds).await?);
        }
    }
    if let Some(e) = emu {
        e.shutdown().await;
    }
    let mut latency = Vec::new();
    if !args.no_latency {
        let lat_emu = sls_emulator::Emulator::builder()
            .access_key(AK_ID, AK_SECRET)
            .group_quota(100_000)
            .start()
            .await?;
        let mut n = 0;
        for &t in &args.transport {
            let mut programs = vec![Program::Siemfwd];
            if seed && t.seed_speaks() {
                programs.push(Program::Seed);
            }
            for p in programs {
                n += 1;
                let logstore = format!("lat{n}");
                lat_emu.create_logstore(PROJECT, &logstore, spec.shards)?;
                let sls_source = Source::Sls {
                    endpoint: lat_emu.endpoint(),
                    logstore: logstore.clone(),
                };
                let (source, sink) = if p == Program::Siemfwd && args.source == SourceKind::File {
                    let dir = ctx.work.join(format!("lat-files-{n}"));
                    (Source::File { dir: dir.clone() }, LatencySink::Files(dir))
                } else {
                    (sls_source, LatencySink::Emulator(&lat_emu, logstore))
                };
                latency.push(
                    run::latency(
                        &ctx,
                        p,
                        t,
                        &source,
                        sink,
                        &spec,
                        args.latency_rate,
                        args.latency_secs,
                    )
                    .await?,
                );
            }
        }
        lat_emu.shutdown().await;
    }
    let rep = report::Report {
        machine: report::machine(),
        dataset: format!(
            "{} logs, {:.0} MB raw, {} shards, {}-{} B and {}-{} fields per log, {} logs per group, lz4 on the wire, seed {}",
            ds.summary.logs,
            ds.summary.raw_bytes as f64 / 1e6,
            spec.shards,
            spec.size.0,
            spec.size.1,
            spec.fields.0,
            spec.fields.1,
            spec.logs_per_group,
            spec.seed
        ),
        source: match args.source {
            SourceKind::Sls => "siemfwd reads sls (emulator), the seed program sls (emulator)".into(),
            SourceKind::File => "siemfwd reads file (NDJSON), the seed program sls (emulator)".into(),
        },
        siemfwd: siemfwd.display().to_string(),
        throughput,
        latency,
        settings: args.set.clone(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace().join("bench/results"));
    write_report(&rep, &out, &args.name)?;
    println!("{}", rep.markdown());
    eprintln!(
        "bench: wrote {}/{}.{{md,json,png}}",
        out.display(),
        args.name
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("siemfwd-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("siemfwd-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
