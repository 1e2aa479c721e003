//! The command line (clap derive). Each subcommand's help says what it is
//! for; the config keys themselves are documented in docs/configuration.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Forward logs from a consumer group (Alibaba Cloud Log Service, local
/// NDJSON files) to a SIEM over syslog: RFC 5424/3164 over UDP, TCP or TLS.
#[derive(Debug, Parser)]
#[command(name = "siemfwd", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
    /// Threads that run siemfwd's work (reading, decoding, formatting,
    /// sending). One costs the least CPU per byte (no work handed between
    /// cores) and handles ~500 raw MB per CPU-second; raise it only when
    /// siemfwd keeps one core busy all the time and lags.
    #[arg(
        long,
        global = true,
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=1024),
        env = "SIEMFWD_WORKER_THREADS"
    )]
    pub worker_threads: u16,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Forward: read the source, send to the SIEM, commit checkpoints after
    /// delivery. Stops at the end of the input (files without `follow`) or
    /// on SIGINT/SIGTERM (drains first; a second signal stops at once).
    Run(RunArgs),
    /// Validate the configuration and try to connect to the sink; exit
    /// non-zero with the reason.
    Check(ConfigArgs),
    /// Print exactly the bytes that would go on the wire (framing included)
    /// instead of sending them; commits nothing. Same as `run --dry-run`.
    Tap(ConfigArgs),
    /// Receive syslog on UDP, TCP, TLS and RELP (octet-counted and LF
    /// framing, auto-detected) and print each parsed message, or write JSON
    /// lines, or count and discard (for benchmarks).
    Listen(Box<ListenArgs>),
    /// Show the Log Service consumer group: each shard's status, the
    /// consumer that committed last, its checkpoint and lag (log groups and
    /// time behind).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask again every INTERVAL (default 5s) until interrupted, each answer
    /// headed by how far behind every group is and how fast that changes
    /// (with --json: one JSON document per line).
    #[arg(
        long,
        value_name = "INTERVAL",
        num_args = 0..=1,
        default_missing_value = "5s",
        value_parser = parse_interval
    )]
    pub watch: Option<std::time::Duration>,
}

/// `--watch`'s INTERVAL: `5s`, `500ms`, a bare number of seconds; 100ms at
/// least (each round asks the server once per shard).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = match text.trim().parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text.trim())
            .map_err(|e| format!("{text:?} is not a duration like 5s or 500ms: {e}"))?,
    };
    if d < std::time::Duration::from_millis(100) {
        return Err(format!("{text:?}: at least 100ms"));
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The TOML configuration file. Every key can also come from the
    /// environment (SIEMFWD_SINK_ADDRESS, …; SLS_* as in Alibaba's sample).
    #[arg(short, long, env = "SIEMFWD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the wire bytes to stdout instead of sending; commit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Format of siemfwd's own log (on stderr, or in --log-file).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "SIEMFWD_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Write siemfwd's own log to this file instead of stderr (appended;
    /// SIGHUP opens it again, for logrotate).
    #[arg(long, global = true, value_name = "FILE", env = "SIEMFWD_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Log level filter (`info`, `debug`, `siemfwd=debug,warn`, …).
    #[arg(long, global = true, default_value = "info", env = "SIEMFWD_LOG")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListenOutput {
    /// Readable: the header fields, structured data and message.
    Print,
    /// One JSON object per message (fields, parsed SD, raw bytes).
    Json,
    /// Count messages and bytes, print a line per second (benchmarks).
    Discard,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("relp_listener").args(["relp", "relp_tls"]).multiple(true)))]
pub(crate) struct ListenArgs {
    /// UDP address to listen on, e.g. 127.0.0.1:5514.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<std::net::SocketAddr>,
    /// TCP address to listen on, e.g. 127.0.0.1:5514.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<std::net::SocketAddr>,
    /// TLS address to listen on, e.g. 127.0.0.1:6514 (needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub tls: Option<std::net::SocketAddr>,
    /// RELP address to listen on, e.g. 127.0.0.1:20514: each message is
    /// acknowledged once it is written to the output.
    #[arg(long, value_name = "ADDR")]
    pub relp: Option<std::net::SocketAddr>,
    /// RELP over TLS address to listen on (needs --tls-cert and --tls-key).
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub relp_tls: Option<std::net::SocketAddr>,
    /// RELP fault: never acknowledge a message (they are still written).
    #[arg(long, requires = "relp_listener")]
    pub relp_withhold_acks: bool,
    /// RELP fault: refuse every Nth message with `500` (not written).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        requires = "relp_listener"
    )]
    pub relp_refuse_every: u64,
    /// RELP fault: hold every answer back this many milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        requires = "relp_listener"
    )]
    pub relp_answer_delay_ms: u64,
    /// PEM certificate chain of the TLS listener.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// What to do with each message.
    #[arg(long, value_enum, default_value_t = ListenOutput::Print)]
    pub output: ListenOutput,
    /// TCP and TLS connections open at once; more are closed as soon as
    /// they are accepted, counted, and warned about once a minute.
    #[arg(long, value_name = "N", default_value_t = siemfwd::listen::DEFAULT_MAX_CONNECTIONS)]
    pub(crate) max_connections: usize,
}

/// `siemfwd listen`: bind, say where (on stderr, so stdout stays the
/// messages), receive until SIGINT/SIGTERM.
pub(crate) async fn listen(args: ListenArgs) -> anyhow::Result<u8> {
    use siemfwd::listen::{ListenConfig, Listener, Output};
    use tokio_util::sync::CancellationToken;

    let output = match args.output {
        ListenOutput::Print => Output::Print,
        ListenOutput::Json => Output::JsonLines,
        ListenOutput::Discard => Output::Discard,
    };
    let config = ListenConfig {
        udp: args.udp,
        tcp: args.tcp,
        tls: args.tls,
        relp: args.relp,
        relp_tls: args.relp_tls,
        relp_faults: siemfwd::listen::RelpFaults {
            withhold_acks: args.relp_withhold_acks,
            refuse_every: args.relp_refuse_every,
            answer_delay: std::time::Duration::from_millis(args.relp_answer_delay_ms),
        },
        tls_cert_file: args.tls_cert,
        tls_key_file: args.tls_key,
        tls_client_ca_file: args.tls_client_ca,
        output,
        max_connections: args.max_connections,
        ..ListenConfig::default()
    };
    let listener = Listener::bind(config).await?;
    eprintln!("siemfwd listen: listening on {}", listener.local_addrs());
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            cancel.cancel();
        });
    }
    if output == Output::Discard {
        // One count line a second on stderr: the benchmark's progress view.
        let stats = listener.stats();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut last = stats.snapshot();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = cancel.cancelled() => return,
                }
                let now = stats.snapshot();
                if now.messages != last.messages {
                    eprintln!(
                        "siemfwd listen: {} messages ({} bytes) in total, +{}/s",
                        now.messages,
                        now.bytes,
                        now.messages - last.messages
                    );
                }
                last = now;
            }
        });
    }
    let stats = listener.run(tokio::io::stdout(), cancel).await?;
    eprintln!(
        "siemfwd listen: stopped after {} messages, {} bytes, {} connections, {} parse errors, \
         {} framing errors, {} failed TLS handshakes, {} connections refused over the limit",
        stats.messages,
        stats.bytes,
        stats.connections,
        stats.parse_errors,
        stats.framing_errors,
        stats.tls_handshake_errors,
        stats.refused_connections
    );
    Ok(0)
}
