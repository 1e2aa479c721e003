//! The `siemfwd` binary: parse the command line, set up the program's own
//! log, call the library, map the outcome to an exit code. Everything else
//! lives in the library.
//!
//! Exit codes: 0 done (or stopped cleanly by a signal), 1 runtime failure,
//! 2 bad configuration or usage, 130 abandoned by a second signal.

mod cli;
mod logging;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use siemfwd::config::Config;
use siemfwd::pipeline::{Pipeline, Shutdown};

use cli::{Cli, Command};

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            code: 1,
            error: e.into(),
        }
    }
}

fn config_failure(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_to_file = cli.log.log_file.is_some();
    let log = match logging::init(&cli.log) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("siemfwd: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // One worker by default: measured, work stealing between two workers
    // cost 15-25% more CPU per byte (tasks and their buffers hop between
    // cores) for no throughput the in-flight budget lets through anyway.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cli.worker_threads))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("siemfwd: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command, log.file.clone())) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // The whole chain on one line, as ripgrep does; into the log file
            // too when there is one (stderr would otherwise show it twice).
            if log_to_file {
                tracing::error!("{:#}", f.error);
            }
            eprintln!("siemfwd: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

async fn run(command: Command, log_file: Option<logging::LogFile>) -> Result<u8, Failure> {
    match command {
        Command::Run(args) => forward(&args.config, args.dry_run, log_file).await,
        Command::Tap(args) => forward(&args, true, log_file).await,
        Command::Check(args) => check(&args).await,
        Command::Listen(args) => cli::listen(*args).await.map_err(Failure::from),
        Command::Status(args) => status(&args).await,
    }
}

fn load(args: &cli::ConfigArgs) -> Result<Config, Failure> {
    Config::load(args.config.as_deref())
        .context("invalid configuration")
        .map_err(config_failure)
}

async fn forward(
    args: &cli::ConfigArgs,
    dry_run: bool,
    log_file: Option<logging::LogFile>,
) -> Result<u8, Failure> {
    let config = load(args)?;
    let pipeline = Pipeline::build(&config, dry_run)
        .context("invalid configuration")
        .map_err(config_failure)?;
    let shutdown = Shutdown::default();
    tokio::spawn(watch_signals(shutdown.clone(), log_file));
    tracing::info!(
        source = ?config.source.kind,
        sink = %config.sink.describe(),
        dry_run,
        "siemfwd started"
    );
    let metrics = pipeline.metrics();
    let telemetry_stop = tokio_util::sync::CancellationToken::new();
    if !config.metrics.address.is_empty() {
        let telemetry = siemfwd::telemetry::Telemetry::bind(&config.metrics.address, &metrics)
            .await
            .map_err(config_failure)?;
        if let Some(addr) = telemetry.local_addr() {
            tracing::info!(%addr, "serving /metrics, /health and /ready");
        }
        tokio::spawn(telemetry.serve(telemetry_stop.clone()));
    }
    // Not in a dry run: nothing is stored there, so the lag never falls.
    let progress = config.pipeline.progress_interval.0;
    let progress = (!progress.is_zero() && !dry_run).then(|| {
        let behind_after =
            (config.pipeline.checkpoint_interval.0 * 3).max(std::time::Duration::from_secs(1));
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(siemfwd::progress::run(
            metrics.clone(),
            progress,
            behind_after,
        )))
    });
    tokio::spawn(siemfwd::systemd::run(
        siemfwd::systemd::Notifier::from_env(),
        metrics.clone(),
        shutdown.stop.clone(),
    ));
    let result = pipeline.run(shutdown.clone()).await;
    telemetry_stop.cancel();
    drop(progress);
    let counters: Vec<String> = metrics
        .snapshot()
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tracing::info!(counters = %counters.join(" "), "siemfwd stopped");
    let summary = result?;
    if summary.aborted {
        return Ok(130);
    }
    Ok(0)
}

async fn check(args: &cli::ConfigArgs) -> Result<u8, Failure> {
    let config = load(args)?;
    let mut pipeline = Pipeline::build(&config, false)
        .context("invalid configuration")
        .map_err(config_failure)?;
    println!("config: ok");
    if config.source.kind == siemfwd::config::SourceKind::File {
        let state = siemfwd::source::file::check_state_dir(&config.source.file.state_dir)
            .context("state check failed")?;
        println!("state: ok ({state})");
    }
    if config.source.kind == siemfwd::config::SourceKind::Sls {
        use siemfwd::source::sls;
        for (entry, table) in sls_tables(&config.source.sls) {
            let (client, settings) = sls::build(table)
                .with_context(|| invalid_in(entry))
                .map_err(config_failure)?;
            let explain = |e: sls::Error| {
                sls::explain(e, &settings.project, &settings.logstore, &settings.group)
            };
            let shards = client.list_shards().await.map_err(explain)?;
            let groups = client.list_groups().await.map_err(explain)?;
            let group = if groups.iter().any(|g| g.name == settings.group) {
                "exists"
            } else if settings.create_group {
                "will be created"
            } else {
                "missing (create_group = false)"
            };
            println!(
                "source: ok (sls {}/{}: {} shards; consumer group {} {group})",
                settings.project,
                settings.logstore,
                shards.len(),
                settings.group
            );
        }
    }
    if let Some(sink) = pipeline.sink_mut() {
        // The sink's error already names the address.
        let greeting = sink.check().await.context("sink check failed")?;
        sink.close().await;
        match greeting {
            Some(offers) => println!(
                "sink: ok ({}; the receiver offers {offers})",
                config.sink.describe()
            ),
            None => println!("sink: ok ({})", config.sink.describe()),
        }
        return Ok(0);
    }
    println!("sink: ok ({})", config.sink.describe());
    Ok(0)
}

async fn status(args: &cli::StatusArgs) -> Result<u8, Failure> {
    use siemfwd::source::sls;
    let config = load(&args.config)?;
    let tables = sls_tables(&config.source.sls);
    let several = tables.iter().any(|(entry, _)| entry.is_some());
    let mut clients = Vec::with_capacity(tables.len());
    for (entry, table) in tables {
        clients.push(
            sls::build(table)
                .with_context(|| invalid_in(entry))
                .map_err(config_failure)?,
        );
    }
    // With --watch, the previous round: when, and each group's log groups
    // behind, for the pace.
    let mut before: Option<(std::time::Instant, Vec<u64>)> = None;
    loop {
        let round = async {
            let mut groups = Vec::with_capacity(clients.len());
            for (client, settings) in &clients {
                groups.push(sls::status::collect(client, settings).await?);
            }
            Ok::<_, sls::Error>(groups)
        };
        let groups = match (round.await, args.watch) {
            (Ok(groups), _) => groups,
            (Err(e), None) => return Err(e.into()),
            // Watching: a failed round that may pass (a network blip) is
            // said and the next one tries again; a wrong key is not retried.
            (Err(e), Some(_)) if e.class() == sls::Class::Fatal => return Err(e.into()),
            (Err(e), Some(every)) => {
                eprintln!(
                    "siemfwd: {e}; asking again in {}",
                    humantime::format_duration(every)
                );
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let now = std::time::Instant::now();
        match (args.json, groups.as_slice()) {
            (true, groups) => {
                // One group: the object it always was; several: a list of
                // them. Watching: one document per line.
                let watching = args.watch.is_some();
                let text = match groups {
                    [one] if !several => json(one, watching)?,
                    _ => json(&groups, watching)?,
                };
                println!("{text}");
            }
            (false, _) => {
                if args.watch.is_some() {
                    println!(
                        "{}",
                        jiff::Timestamp::now()
                            .round(jiff::Unit::Second)
                            .unwrap_or_default()
                    );
                }
                for (i, group) in groups.iter().enumerate() {
                    if several {
                        if i > 0 {
                            println!();
                        }
                        println!(
                            "{}/{} (consumer group {})",
                            group.project, group.logstore, group.consumer_group
                        );
                    }
                    if args.watch.is_some() {
                        let then = before.as_ref().and_then(|(at, b)| {
                            Some((b.get(i).copied()?, now.duration_since(*at)))
                        });
                        println!("{}", watch_line(group, then));
                    }
                    print!("{}", sls::status::render_table(group));
                }
            }
        }
        let Some(every) = args.watch else {
            return Ok(0);
        };
        before = Some((now, groups.iter().map(|g| g.behind().0).collect()));
        if !args.json {
            println!();
        }
        tokio::time::sleep(every).await;
    }
}

/// `status --watch`'s line for `group`: how far behind, and the pace since
/// the previous round (`then`: its log groups behind, and how long ago).
fn watch_line(
    group: &siemfwd::source::sls::status::GroupStatus,
    then: Option<(u64, std::time::Duration)>,
) -> String {
    let (behind, oldest) = group.behind();
    let pace = match then {
        _ if behind == 0 => "current".to_owned(),
        None => "first measure; the pace comes with the next".to_owned(),
        Some((then, span)) => {
            let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            siemfwd::progress::pace(Some(signed(then) - signed(behind)), behind, span)
        }
    };
    let oldest = oldest.map_or_else(String::new, |s| format!(", the oldest {s} s old"));
    format!("{behind} log groups behind{oldest}; {pace}")
}

/// `value` as JSON: on one line (`compact`, a document per line), or pretty.
fn json<T: serde::Serialize>(value: &T, compact: bool) -> serde_json::Result<String> {
    if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
}

/// The Log Service tables to check or report on: `[source.sls]`, or each of
/// its `[[source.sls.logstores]]` (with its index).
fn sls_tables(
    cfg: &siemfwd::source::sls::config::SlsSourceConfig,
) -> Vec<(
    Option<usize>,
    &siemfwd::source::sls::config::SlsSourceConfig,
)> {
    if cfg.logstores.is_empty() {
        vec![(None, cfg)]
    } else {
        cfg.logstores
            .iter()
            .enumerate()
            .map(|(i, t)| (Some(i), t))
            .collect()
    }
}

fn invalid_in(entry: Option<usize>) -> String {
    match entry {
        Some(i) => format!("invalid configuration (source.sls.logstores[{i}])"),
        None => "invalid configuration".to_owned(),
    }
}

/// `tcp 10.0.0.1:514`, `stdout`: for log lines and `check`.
/// First SIGINT/SIGTERM: stop and drain. Second: abandon in-flight batches.
/// SIGHUP opens the `--log-file` again (logrotate's postrotate, systemd's
/// `ExecReload`); the configuration is not reloaded — a restart is the safe
/// way to change it (SIGTERM drains and commits; the group hands the shards
/// back). SIGUSR1 and SIGUSR2 are noted and ignored. None of the three may
/// keep its default action, which ends the process at once without draining
/// or committing (duplicates on the next start). The handlers are in place
/// when this returns (before "siemfwd started" is logged); the future does
/// the rest.
fn watch_signals(
    shutdown: Shutdown,
    log_file: Option<logging::LogFile>,
) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut usr1 = signal(SignalKind::user_defined1()).ok();
    let mut usr2 = signal(SignalKind::user_defined2()).ok();
    async move {
        let (Ok(mut term), Ok(mut int)) = (term, int) else {
            tracing::warn!("cannot listen for signals; stop siemfwd with SIGKILL");
            return;
        };
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                () = next(&mut hup) => {
                    match log_file.as_ref().map(logging::LogFile::reopen) {
                        Some(Ok(path)) => tracing::info!(
                            path = %path.display(),
                            "SIGHUP: log file opened again (the configuration is not reloaded: \
                             restart to change it)"
                        ),
                        Some(Err(e)) => tracing::warn!(
                            error = %e,
                            "SIGHUP: cannot open the log file again; still writing to the old one"
                        ),
                        None => tracing::info!(
                            "SIGHUP: no log file to reopen; the configuration is not reloaded \
                             (restart with SIGTERM, which drains and commits, to change it)"
                        ),
                    }
                    continue;
                }
                () = next(&mut usr1) => {
                    tracing::info!("SIGUSR1 ignored");
                    continue;
                }
                () = next(&mut usr2) => {
                    tracing::info!("SIGUSR2 ignored");
                    continue;
                }
            }
            seen += 1;
            if seen == 1 {
                tracing::info!("stopping: no new reads; delivering what is in flight (signal again to stop at once)");
                shutdown.stop.cancel();
            } else {
                tracing::warn!(
                    "stopping now: batches in flight are abandoned and will be sent again next run"
                );
                shutdown.stop.cancel();
                shutdown.abort.cancel();
                return;
            }
        }
    }
}
