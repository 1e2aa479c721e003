//! siemfwd's own log: human-readable on stderr by default, JSON by option,
//! optionally to a daily-rotated file. Log lines are for incidents and
//! lifecycle, never one per record (the per-record path only bumps counters).

use anyhow::Context;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// Install the global subscriber. Keep the returned guard alive until exit:
/// it flushes the file writer.
pub(crate) fn init(args: &LogArgs) -> anyhow::Result<Option<WorkerGuard>> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a valid filter", args.log_level))?;
    let (writer, guard) = match &args.log_file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .with_context(|| format!("--log-file {} has no file name", path.display()))?;
            // A folder that does not exist is most likely a typo: say so
            // rather than create a tree of folders somewhere unexpected.
            if !dir.is_dir() {
                anyhow::bail!(
                    "--log-file {}: the folder {} does not exist; create it first",
                    path.display(),
                    dir.display()
                );
            }
            let appender = tracing_appender::rolling::daily(dir, name);
            let (w, g) = tracing_appender::non_blocking(appender);
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(w),
                Some(g),
            )
        }
        None => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(args.log_file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match args.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    Ok(guard)
}
