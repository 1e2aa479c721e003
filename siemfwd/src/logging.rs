//! siemfwd's own log: human-readable on stderr by default, JSON by option,
//! optionally to a file. Log lines are for incidents and lifecycle, never one
//! per record (the per-record path only bumps counters).
//!
//! The file is rotated the way every daemon's is, by logrotate: it renames
//! the file and sends SIGHUP, and siemfwd opens the path again
//! ([`LogFile::reopen`]); the packages install such a rule. (A file that
//! rotated itself by date, as before, grew without limit and left logrotate
//! nothing to do.)

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// The log file, reopened at its path on request (SIGHUP). Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<File> {
        File::options().create(true).append(true).open(path)
    }

    /// Open the file at its path again (after logrotate renamed it): lines
    /// written from now on go to the new file.
    ///
    /// # Errors
    /// The path cannot be opened; the old file stays in use.
    pub(crate) fn reopen(&self) -> std::io::Result<&Path> {
        let fresh = Self::open(&self.path)?;
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        // What the old file still buffers is written before it is closed.
        let _ = file.flush();
        *file = fresh;
        Ok(&self.path)
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// What [`init`] leaves the caller: keep `guard` alive until exit (it
/// flushes the file writer); `file` is there to reopen.
pub(crate) struct Installed {
    /// Flushes the file's writer thread when dropped.
    pub(crate) _guard: Option<WorkerGuard>,
    /// The log file, if there is one.
    pub(crate) file: Option<LogFile>,
}

/// Install the global subscriber.
pub(crate) fn init(args: &LogArgs) -> anyhow::Result<Installed> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("--log-level {:?} is not a valid filter", args.log_level))?;
    let (writer, guard, file) = match &args.log_file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            path.file_name()
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
            let opened = LogFile::open(path)
                .with_context(|| format!("--log-file {}: cannot open it", path.display()))?;
            let file = LogFile {
                path: path.clone(),
                file: Arc::new(Mutex::new(opened)),
            };
            let (w, g) = tracing_appender::non_blocking(file.clone());
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(w),
                Some(g),
                Some(file),
            )
        }
        None => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
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
    Ok(Installed {
        _guard: guard,
        file,
    })
}
