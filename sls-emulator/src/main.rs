//! `sls-emulator`: run the Log Service emulator for people (`serve`) and fill it with
//! synthetic audit events (`load`). All logic lives in the library; this file parses flags,
//! builds an `EmulatorConfig` and maps errors to an exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sls_emulator::{Auth, EmulatorConfig, FaultConfig, LoadSpec, LogstoreSpec};

#[derive(Parser)]
#[command(
    name = "sls-emulator",
    version,
    about = "A local Alibaba Cloud Log Service (SLS) emulator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the SLS HTTP API until Ctrl-C / SIGTERM.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Listen address (use 127.0.0.1:80 for the Python SDK's bare-IP endpoint "127.0.0.1").
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: SocketAddr,
        /// Preload N synthetic logs into every --logstore before serving.
        #[arg(long, default_value_t = 0)]
        preload: u64,
        #[command(flatten)]
        shape: Shape,
        #[command(flatten)]
        faults: FaultFlags,
    },
    /// Write synthetic audit events into the --logstore(s) of a data directory, then exit.
    Load {
        #[command(flatten)]
        common: Common,
        /// Number of logs per logstore.
        #[arg(long)]
        logs: u64,
        #[command(flatten)]
        shape: Shape,
    },
}

#[derive(Args)]
struct Common {
    /// Create project/logstore with N shards (repeatable), e.g. `proj/store:4`.
    #[arg(long = "logstore", value_name = "PROJECT/LOGSTORE[:SHARDS]")]
    logstores: Vec<LogstoreSpec>,
    /// Persist data and state in this directory (default: memory only).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Accept this AccessKey, `ID:SECRET` (repeatable). Without any, signatures are not checked.
    #[arg(
        long = "access-key",
        value_name = "ID:SECRET",
        env = "SLS_EMULATOR_ACCESS_KEYS",
        value_delimiter = ','
    )]
    access_keys: Vec<String>,
    /// Do not auto-create projects and logstores on first use.
    #[arg(long)]
    no_auto_create: bool,
    /// Shards of auto-created logstores.
    #[arg(long, default_value_t = 2)]
    default_shards: u32,
    /// Project for requests whose Host header names none (bare IP or localhost).
    #[arg(long)]
    default_project: Option<String>,
    /// Consumer groups allowed per logstore.
    #[arg(long, default_value_t = 30)]
    group_quota: usize,
    /// Expire data older than this many seconds (cursors to it become InvalidCursor).
    #[arg(long)]
    ttl_secs: Option<u64>,
    /// A consume processor for PullLogs `processor=NAME`: NAME=SPL, e.g.
    /// `audit=* | where "event.eventRW" = 'Write'` (the SPL subset of the emulator's README).
    #[arg(long = "processor", value_name = "NAME=SPL")]
    processors: Vec<String>,
    /// Life of the temporary AccessKeys issued by the metadata service, STS and
    /// /_emulator/credentials, seconds.
    #[arg(long, default_value_t = 3600)]
    credential_ttl_secs: u64,
    /// The RAM role the metadata service (/latest/...) reports.
    #[arg(long, default_value = "siemfwd-emulator")]
    ecs_role: String,
    /// The role ARN STS's AssumeRoleWithOIDC accepts.
    #[arg(long, default_value_t = sls_emulator::OidcTrust::default().role_arn)]
    oidc_role_arn: String,
    /// The OIDC provider ARN STS's AssumeRoleWithOIDC accepts.
    #[arg(long, default_value_t = sls_emulator::OidcTrust::default().provider_arn)]
    oidc_provider_arn: String,
    /// The OIDC token STS's AssumeRoleWithOIDC accepts.
    #[arg(long, default_value_t = sls_emulator::OidcTrust::default().token)]
    oidc_token: String,
}

#[derive(Args)]
struct Shape {
    /// Logs per log group.
    #[arg(long, default_value_t = 100)]
    logs_per_group: u32,
    /// Log size range in bytes, MIN-MAX.
    #[arg(long, default_value = "200-1000")]
    size: String,
    /// Fields per log, MIN-MAX.
    #[arg(long, default_value = "10-30")]
    fields: String,
    /// Random seed (same seed, same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct FaultFlags {
    /// Fixed latency added to every request, milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_jitter_ms: u64,
    /// Probability that a request is slow (delayed by --fault-slow-ms more).
    #[arg(long, default_value_t = 0.0)]
    fault_slow_rate: f64,
    /// Extra latency of a slow request, milliseconds.
    #[arg(long, default_value_t = 0)]
    fault_slow_ms: u64,
    /// Probability of 500 InternalServerError per request.
    #[arg(long, default_value_t = 0.0)]
    fault_5xx_rate: f64,
    /// Probability of 403 ReadQuotaExceed per PullLogs.
    #[arg(long, default_value_t = 0.0)]
    fault_read_throttle_rate: f64,
    /// Probability of 403 WriteQuotaExceed per PutLogs.
    #[arg(long, default_value_t = 0.0)]
    fault_write_throttle_rate: f64,
    /// Probability of dropping the connection without an answer.
    #[arg(long, default_value_t = 0.0)]
    fault_reset_rate: f64,
    /// Probability that a PullLogs returns half the log groups it found (as a server
    /// capping its answers' size would).
    #[arg(long, default_value_t = 0.0)]
    fault_short_pull_rate: f64,
}

fn range(s: &str, what: &str) -> anyhow::Result<(usize, usize)> {
    let (a, b) = s
        .split_once('-')
        .with_context(|| format!("--{what} {s:?}: expected MIN-MAX"))?;
    let a: usize = a
        .trim()
        .parse()
        .with_context(|| format!("--{what} {s:?}: MIN is not a number"))?;
    let b: usize = b
        .trim()
        .parse()
        .with_context(|| format!("--{what} {s:?}: MAX is not a number"))?;
    anyhow::ensure!(a <= b, "--{what} {s:?}: MIN is larger than MAX");
    Ok((a, b))
}

fn config(common: &Common) -> anyhow::Result<EmulatorConfig> {
    let mut keys = std::collections::HashMap::new();
    for k in &common.access_keys {
        let (id, secret) = k
            .split_once(':')
            .context("--access-key: expected ID:SECRET")?;
        keys.insert(id.to_owned(), secret.to_owned());
    }
    let processors = common
        .processors
        .iter()
        .map(|p| {
            let (name, spl) = p
                .split_once('=')
                .context("--processor: expected NAME=SPL")?;
            sls_emulator::spl::Spl::parse(spl)
                .map_err(|e| anyhow::anyhow!("--processor {name}: {}", e.message))?;
            Ok((name.to_owned(), spl.to_owned()))
        })
        .collect::<anyhow::Result<_>>();
    Ok(EmulatorConfig {
        auth: if keys.is_empty() {
            Auth::Disabled
        } else {
            Auth::Keys(keys)
        },
        auto_create: !common.no_auto_create,
        default_shards: common.default_shards,
        default_project: common.default_project.clone(),
        group_quota: common.group_quota,
        logstores: common.logstores.clone(),
        data_dir: common.data_dir.clone(),
        ttl: common.ttl_secs.map(Duration::from_secs),
        processors: processors?,
        credential_ttl: Duration::from_secs(common.credential_ttl_secs.max(1)),
        ecs_role: common.ecs_role.clone(),
        oidc: sls_emulator::OidcTrust {
            role_arn: common.oidc_role_arn.clone(),
            provider_arn: common.oidc_provider_arn.clone(),
            token: common.oidc_token.clone(),
        },
        ..EmulatorConfig::default()
    })
}

fn spec(logs: u64, shape: &Shape) -> anyhow::Result<LoadSpec> {
    let (min_size, max_size) = range(&shape.size, "size")?;
    let (min_fields, max_fields) = range(&shape.fields, "fields")?;
    Ok(LoadSpec {
        logs,
        logs_per_group: shape.logs_per_group,
        min_size,
        max_size,
        min_fields,
        max_fields,
        seed: shape.seed,
        ..LoadSpec::default()
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve {
            common,
            listen,
            preload,
            shape,
            faults,
        } => {
            let mut cfg = config(&common)?;
            cfg.addr = listen;
            cfg.faults = FaultConfig {
                latency: Duration::from_millis(faults.fault_latency_ms),
                latency_jitter: Duration::from_millis(faults.fault_jitter_ms),
                slow_rate: faults.fault_slow_rate,
                slow: Duration::from_millis(faults.fault_slow_ms),
                server_error_rate: faults.fault_5xx_rate,
                read_throttle_rate: faults.fault_read_throttle_rate,
                write_throttle_rate: faults.fault_write_throttle_rate,
                reset_rate: faults.fault_reset_rate,
                short_pull_rate: faults.fault_short_pull_rate,
                identity_error_rate: 0.0,
            };
            let emu = sls_emulator::start(cfg)
                .await
                .context("starting the emulator")?;
            if preload > 0 {
                let spec = spec(preload, &shape)?;
                for ls in &common.logstores {
                    emu.load(&ls.project, &ls.logstore, &spec)
                        .with_context(|| format!("preloading {}/{}", ls.project, ls.logstore))?;
                }
            }
            // The "ready" line tests and scripts wait for.
            println!("sls-emulator listening on {}", emu.endpoint());
            shutdown_signal().await;
            emu.shutdown().await;
            Ok(())
        }
        Cmd::Load {
            common,
            logs,
            shape,
        } => {
            anyhow::ensure!(
                common.data_dir.is_some(),
                "load needs --data-dir (data written to memory would be lost)"
            );
            anyhow::ensure!(
                !common.logstores.is_empty(),
                "load needs at least one --logstore PROJECT/LOGSTORE[:SHARDS]"
            );
            let mut cfg = config(&common)?;
            cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
            let spec = spec(logs, &shape)?;
            let emu = sls_emulator::start(cfg)
                .await
                .context("opening the data directory")?;
            for ls in &common.logstores {
                let n = emu
                    .load(&ls.project, &ls.logstore, &spec)
                    .with_context(|| format!("loading {}/{}", ls.project, ls.logstore))?;
                println!("{}/{}: wrote {n} logs", ls.project, ls.logstore);
            }
            emu.shutdown().await;
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sls-emulator: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sls-emulator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
