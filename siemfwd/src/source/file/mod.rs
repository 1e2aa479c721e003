//! The embedded default source: NDJSON files, one shard per file.
//!
//! It needs nothing installed, so a fresh machine can run the whole pipeline
//! (`examples/quickstart.toml`), and it is what a person uses to replay an
//! export from Log Service. A file's position is a byte offset (plus the line
//! number, for error messages); checkpoints live in a local state directory,
//! one small JSON file per input, replaced atomically (write to a temporary
//! file, fsync, rename, fsync the directory) so a crash leaves either the old
//! or the new checkpoint, never a torn one.
//!
//! A batch is the complete lines already in the read buffer: records borrow
//! from that buffer, so it can only be refilled between batches. A final line
//! without a newline counts as a line once the file has ended (and is not
//! followed); when following, it waits for its newline.
//!
//! Standard input (`-`) is read the same way but never checkpointed: a pipe
//! cannot be re-read.
//!
//! Rotation (`identity.rs` says why a path is not enough): a position
//! records the file's device, inode and a fingerprint of its first bytes.
//! - *Rename rotation, delete and recreate*: while following, the path is
//!   checked every poll; once it names another file, the open one is read to
//!   its end and, after it stayed unchanged for a poll interval (a writer may
//!   still append before it reopens), reading moves to the new file from its
//!   start. At start-up, a checkpoint whose file is no longer at the path is
//!   looked for among the path's siblings (`app.log.1`): found, it is
//!   finished from the checkpoint first; not found, the new file is read
//!   from its start and a warning says what could not be read.
//!   The old file is done once it stayed unchanged for a poll interval and
//!   the new one has been written to (the writer reopened), or after
//!   `ROTATE_GRACE`.
//! - *copytruncate, or a file rewritten in place*: the same inode no longer
//!   starts with the fingerprinted bytes, or is shorter than what was read
//!   (checked after every read, before the bytes are used). A sibling that
//!   starts with those bytes and is long enough is the copy: it is finished
//!   from the position first; then (or without a copy) the file is read
//!   from its start. (What the writer wrote between the copy and the
//!   truncation is in neither: copytruncate can lose lines whatever reads
//!   the file; rename rotation cannot.)
//! - Not handled: two rotations before the first is noticed (stopped, or a
//!   reader lagging across both) — the file in the middle is skipped.

pub mod config;
mod identity;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use identity::{FileId, Fingerprint};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ndjson::parse_line;
use super::{BatchEnd, Error, Flow, GroupSource, ShardReader};
use crate::counters::{self, Metrics};
use crate::pipeline::tracker::Checkpoint;
use crate::record::{LogTime, Record};
use config::{FileSourceConfig, OnMalformed};

/// How much is read from the file at once.
const READ_CHUNK: usize = 256 * 1024;

/// Where in a file reading resumes: the byte after the last consumed line,
/// and that line's number (1-based lines; `line` counts the lines consumed),
/// in which file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Lines consumed before `offset`.
    pub line: u64,
    /// The file's device and inode (`None`: standard input, or a checkpoint
    /// written before siemfwd recorded them).
    pub file: Option<FileId>,
    /// Its first bytes, as far as they were known then.
    pub fingerprint: Fingerprint,
}

/// The input files named by the config: each path, or each matching file in
/// a named directory (sorted, so shard order is stable).
///
/// # Errors
/// A path that does not exist or a directory that cannot be listed.
pub fn expand_paths(config: &FileSourceConfig) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in &config.paths {
        let path = PathBuf::from(p);
        if p == "-" {
            out.push(path);
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| Error::Io {
            what: format!("source.file.paths: {p:?}"),
            cause: source,
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|source| Error::Io {
                what: format!("source.file.paths: listing {p:?}"),
                cause: source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && matches!(
                            f.extension().and_then(|e| e.to_str()),
                            Some("ndjson" | "jsonl" | "json" | "log")
                        )
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// The configured files as a finite source: every file is a shard, all
/// assigned at once, each done when its reader ends (at the end of the file,
/// or never while following); the run ends when all are.
#[derive(Debug)]
pub struct FileGroup {
    inputs: Vec<PathBuf>,
    config: FileSourceConfig,
    /// Opened by `join` (it creates the state directory), not at build:
    /// `siemfwd check` changes nothing on disk.
    store: Option<CheckpointStore>,
    metrics: Metrics,
    assigned: bool,
}

impl FileGroup {
    /// The files of `config` (see [`expand_paths`]), checkpointed in its
    /// state directory.
    ///
    /// # Errors
    /// A path that does not exist.
    pub fn new(config: &FileSourceConfig, metrics: &Metrics) -> Result<Self, Error> {
        let refuse = |key: &str, problem: &str| {
            Err(Error::Config {
                key: format!("source.file.{key}"),
                problem: problem.to_owned(),
            })
        };
        if config.follow && config.poll_interval.0 < std::time::Duration::from_millis(10) {
            return refuse(
                "poll_interval",
                "must be at least 10ms (a shorter one only spins)",
            );
        }
        if config.max_line.0 < 16 {
            return refuse(
                "max_line",
                "must be at least 16 bytes: no log line fits in less",
            );
        }
        let inputs = expand_paths(config)?;
        if inputs.is_empty() {
            return refuse(
                "paths",
                "no input files; name files or directories (or \"-\" for stdin)",
            );
        }
        Ok(Self {
            inputs,
            config: config.clone(),
            store: None,
            metrics: metrics.clone(),
            assigned: false,
        })
    }

    /// The input files, one shard each, in shard order.
    pub fn inputs(&self) -> &[PathBuf] {
        &self.inputs
    }
}

impl GroupSource for FileGroup {
    type Reader = FileShard;

    async fn join(&mut self) -> Result<(), Error> {
        self.store = Some(CheckpointStore::open(&self.config.state_dir)?);
        Ok(())
    }

    /// Every file, once; nothing changes afterwards.
    async fn assignment(&mut self) -> Result<Vec<u32>, Error> {
        if self.assigned {
            return std::future::pending().await;
        }
        self.assigned = true;
        Ok((0..self.inputs.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect())
    }

    fn set_held(&self, _held: &[u32]) {}

    async fn open(&self, shard: u32) -> Result<FileShard, Error> {
        let path = usize::try_from(shard)
            .ok()
            .and_then(|i| self.inputs.get(i))
            .ok_or_else(|| Error::Io {
                what: format!("file shard {shard}"),
                cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such input"),
            })?;
        let store = self.store.as_ref().ok_or_else(|| Error::Io {
            what: "file source".to_owned(),
            cause: std::io::Error::other("opened before join"),
        })?;
        FileShard::open(path, &self.config, store, &self.metrics).await
    }

    fn ended(&mut self, _shard: u32) -> bool {
        true
    }

    fn finite(&self) -> bool {
        true
    }

    async fn leave(&mut self) {}
}

/// For `siemfwd check`: can checkpoints be written under `dir`? If it
/// exists, a probe file is created in it and removed; if not, the same in
/// the nearest existing folder above it (where it will be created), which
/// is left as it was. Returns what was found, for the report.
///
/// # Errors
/// The folder (or the one it would be created in) cannot be written, or a
/// file stands where a folder should.
pub fn check_state_dir(dir: &Path) -> Result<String, Error> {
    let mut probe_in = dir;
    while !probe_in.exists() {
        match probe_in.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe_in = p,
            _ => {
                probe_in = Path::new(".");
                break;
            }
        }
    }
    let what = |problem: String| Error::Checkpoint {
        path: dir.display().to_string(),
        problem,
    };
    if !probe_in.is_dir() {
        return Err(what(format!(
            "{} is not a folder: source.file.state_dir cannot be created there",
            probe_in.display()
        )));
    }
    let probe = probe_in.join(format!(".siemfwd-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            what(format!(
                "cannot write in {} ({e}): checkpoints could not be saved",
                probe_in.display()
            ))
        })?;
    Ok(if probe_in == dir {
        format!("{} is writable", dir.display())
    } else {
        format!(
            "{} will be created in {}, which is writable",
            dir.display(),
            probe_in.display()
        )
    })
}

/// Checkpoints of file shards, one JSON file each in a state directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    path: String,
    offset: u64,
    line: u64,
    /// Absent in checkpoints of earlier versions (matched by path and size).
    #[serde(default)]
    file: Option<FileId>,
    #[serde(default)]
    fingerprint: Fingerprint,
}

impl CheckpointStore {
    /// A store in `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("source.file.state_dir: creating {}", dir.display()),
            cause: source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The checkpoint file for `input`: its name plus a hash of its absolute
    /// path, so two `app.log` in different folders don't collide.
    fn file_for(&self, input: &Path) -> PathBuf {
        let abs = std::path::absolute(input).unwrap_or_else(|_| input.to_owned());
        // FNV-1a: stable across runs and Rust versions (unlike `DefaultHasher`).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in abs.as_os_str().as_encoded_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let stem: String = input
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    .collect()
            })
            .unwrap_or_default();
        self.dir.join(format!("{stem}.{h:016x}.checkpoint.json"))
    }

    /// The saved position of `input`, if any.
    ///
    /// # Errors
    /// A checkpoint that exists but cannot be read or parsed: refusing is
    /// safer than starting over and sending everything again, or skipping.
    pub fn load(&self, input: &Path) -> Result<Option<FilePosition>, Error> {
        let f = self.file_for(input);
        let text = match std::fs::read(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Checkpoint {
                    path: f.display().to_string(),
                    problem: e.to_string(),
                })
            }
        };
        let c: CheckpointFile = serde_json::from_slice(&text).map_err(|e| Error::Checkpoint {
            path: f.display().to_string(),
            problem: format!("{e} (delete it to start the file from the beginning)"),
        })?;
        Ok(Some(FilePosition {
            offset: c.offset,
            line: c.line,
            file: c.file,
            fingerprint: c.fingerprint,
        }))
    }

    /// Replace the checkpoint of `input` atomically.
    ///
    /// # Errors
    /// Writing, syncing or renaming failed.
    pub fn save(&self, input: &Path, pos: FilePosition) -> Result<(), Error> {
        use std::io::Write;
        let target = self.file_for(input);
        let tmp = target.with_extension("tmp");
        let body = serde_json::to_vec(&CheckpointFile {
            path: input.display().to_string(),
            offset: pos.offset,
            line: pos.line,
            file: pos.file,
            fingerprint: pos.fingerprint,
        })
        .map_err(|e| Error::Checkpoint {
            path: target.display().to_string(),
            problem: e.to_string(),
        })?;
        let fail = |e: std::io::Error| Error::Checkpoint {
            path: target.display().to_string(),
            problem: e.to_string(),
        };
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(&body).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        std::fs::rename(&tmp, &target).map_err(fail)?;
        // The rename is durable only once the directory is synced.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            d.sync_all().map_err(fail)?;
        }
        Ok(())
    }
}

/// Where to start reading `path` given its checkpoint: the file to read
/// (the one at `path`, or its rotated predecessor to finish first), the
/// position in it, and whether a newer file waits at `path`.
fn resume(
    path: &Path,
    checkpoint: Option<FilePosition>,
) -> Result<(std::fs::File, FilePosition, Rotation), Error> {
    let (f, id, fp, len) = open_at(path)?;
    let from_start = FilePosition {
        offset: 0,
        line: 0,
        file: Some(id),
        fingerprint: fp,
    };
    let Some(cp) = checkpoint else {
        return Ok((f, from_start, Rotation::None));
    };
    let shown = path.display();
    match cp.file {
        // A checkpoint of an earlier version: path and size are all it has.
        None if cp.offset <= len => Ok((
            f,
            FilePosition {
                file: Some(id),
                fingerprint: fp,
                ..cp
            },
            Rotation::None,
        )),
        None => {
            tracing::warn!(file = %shown, checkpoint = cp.offset, size = len,
                "file is shorter than its checkpoint (truncated or replaced); reading it from the start");
            Ok((f, from_start, Rotation::None))
        }
        Some(cp_id) if cp_id == id => {
            let same = cp.offset <= len
                && cp
                    .fingerprint
                    .check(&f)
                    .map_err(io_error(format!("reading {shown}")))?
                    .is_some();
            if same {
                return Ok((f, cp, Rotation::None));
            }
            // copytruncate: what came after the checkpoint is in the copy.
            if let Some((copy, copy_f)) = find_rotated(path, None, cp.fingerprint)
                .filter(|(_, c)| c.metadata().is_ok_and(|m| m.len() >= cp.offset))
            {
                tracing::info!(file = %shown, copy = %copy.display(), checkpoint = cp.offset,
                    "file was truncated since its checkpoint; finishing its copy first");
                let meta = copy_f
                    .metadata()
                    .map_err(io_error(format!("reading {}", copy.display())))?;
                let pos = FilePosition {
                    file: Some(FileId::of(&meta)),
                    ..cp
                };
                let rotation = Rotation::Finishing {
                    len: meta.len(),
                    since: Instant::now(),
                };
                return Ok((copy_f, pos, rotation));
            }
            tracing::warn!(file = %shown, checkpoint = cp.offset, size = len,
                "file was truncated or rewritten since its checkpoint and no copy of it is \
                 beside it; reading it from the start");
            Ok((f, from_start, Rotation::None))
        }
        Some(cp_id) => match find_rotated(path, Some(cp_id), cp.fingerprint) {
            Some((old, old_f)) if old_f.metadata().is_ok_and(|m| m.len() >= cp.offset) => {
                tracing::info!(file = %shown, rotated = %old.display(), checkpoint = cp.offset,
                    "file was rotated since its checkpoint; finishing the rotated file first");
                let len = old_f.metadata().map_or(0, |m| m.len());
                Ok((
                    old_f,
                    cp,
                    Rotation::Finishing {
                        len,
                        since: Instant::now(),
                    },
                ))
            }
            _ => {
                tracing::warn!(file = %shown, checkpoint = cp.offset,
                    "file was replaced since its checkpoint and the old one is not beside it; \
                     reading the new one from the start (lines written to the old one after the \
                     checkpoint were not read)");
                Ok((f, from_start, Rotation::None))
            }
        },
    }
}

/// What a [`FileShard`] reads from.
#[derive(Debug)]
enum Input {
    /// A file, and a second handle on it for `fstat` and reads at offset 0
    /// (the fingerprint) that leave the reading position alone.
    File(tokio::fs::File, std::fs::File),
    Stdin(tokio::io::Stdin),
}

/// Rotation of the followed file, as seen by the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    /// The path names the file being read.
    None,
    /// The path names another file: the open one is read to its end first.
    /// `len` is its size at the last check, `since` when that size was first
    /// seen, to tell when it stopped changing.
    Finishing { len: u64, since: Instant },
    /// The open file is done (see `check_rotation`): its last line counts
    /// without a newline, then the file at the path is opened.
    Finished,
}

/// How long a replaced file that stopped changing is kept open while the
/// new file at the path is still empty: a writer may append to the renamed
/// file until it reopens (logrotate's `postrotate` signal can come late).
/// Nothing is read in that time either way; it only holds the old file.
const ROTATE_GRACE: Duration = Duration::from_secs(30);

/// The least a fingerprint must cover to look for a file by it alone (a
/// copy left by copytruncate has another inode): a few bytes could match
/// an unrelated file.
const COPY_FINGERPRINT_MIN: u32 = 64;

/// One input file being read.
#[derive(Debug)]
pub struct FileShard {
    /// The configured path (checkpoints are kept under it).
    path: PathBuf,
    name: String,
    input: Input,
    store: Option<CheckpointStore>,
    /// Bytes read but not consumed yet; `buf[0]` is at `pos`.
    buf: Vec<u8>,
    pos: FilePosition,
    /// The input returned end-of-file on the last read.
    at_eof: bool,
    /// Throwing away the rest of an over-long line (it was reported).
    skipping_long_line: bool,
    follow: bool,
    poll_interval: Duration,
    max_line: usize,
    on_malformed: OnMalformed,
    rotation: Rotation,
    /// A restart from the start of the file is under way (see `restart`).
    restarting: bool,
    /// Where records read and lines skipped are counted.
    metrics: Metrics,
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        what,
        cause: source,
    }
}

/// The file at `path`, opened, with its identity, fingerprint and size.
fn try_open(path: &Path) -> std::io::Result<(std::fs::File, FileId, Fingerprint, u64)> {
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let fp = Fingerprint::read(&f)?;
    Ok((f, FileId::of(&meta), fp, meta.len()))
}

/// [`try_open`] with the error saying which file.
fn open_at(path: &Path) -> Result<(std::fs::File, FileId, Fingerprint, u64), Error> {
    try_open(path).map_err(io_error(format!("opening {}", path.display())))
}

/// The directory `path` is in: `app.log` has the parent "", which names
/// the working directory.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A file in `path`'s directory, other than `path`, whose identity is `id`
/// and which still starts as `fp` says: where a rotated file went
/// (`app.log.1`, `app.log-20261205`, …). With no `id`, by the fingerprint
/// alone (a copytruncate copy), and only when it covers enough bytes.
fn find_rotated(
    path: &Path,
    id: Option<FileId>,
    fp: Fingerprint,
) -> Option<(PathBuf, std::fs::File)> {
    if id.is_none() && fp.len < COPY_FINGERPRINT_MIN {
        return None;
    }
    let path_id = std::fs::metadata(path).ok().map(|m| FileId::of(&m));
    let dir = std::fs::read_dir(directory_of(path)).ok()?;
    for entry in dir.filter_map(Result::ok) {
        let candidate = entry.path();
        if candidate == path {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let candidate_id = FileId::of(&meta);
        if !meta.is_file()
            || id.is_some_and(|id| id != candidate_id)
            || path_id == Some(candidate_id)
        {
            continue;
        }
        let Ok(f) = std::fs::File::open(&candidate) else {
            continue;
        };
        if matches!(fp.check(&f), Ok(Some(_))) {
            return Some((candidate, f));
        }
    }
    None
}

impl FileShard {
    /// Open `path` (or stdin for `-`) and seek to its checkpoint; see the
    /// module doc for a checkpoint whose file was rotated or truncated.
    ///
    /// # Errors
    /// The file cannot be opened, or its checkpoint is unreadable.
    pub async fn open(
        path: &Path,
        config: &FileSourceConfig,
        store: &CheckpointStore,
        metrics: &Metrics,
    ) -> Result<Self, Error> {
        let stdin = path == Path::new("-");
        let (input, store, pos, rotation) = if stdin {
            (
                Input::Stdin(tokio::io::stdin()),
                None,
                FilePosition::default(),
                Rotation::None,
            )
        } else {
            let (f, pos, rotation) = resume(path, store.load(path)?)?;
            let mut tokio_file = tokio::fs::File::from_std(
                f.try_clone()
                    .map_err(io_error(format!("opening {}", path.display())))?,
            );
            tokio_file
                .seek(std::io::SeekFrom::Start(pos.offset))
                .await
                .map_err(io_error(format!("seeking in {}", path.display())))?;
            (
                Input::File(tokio_file, f),
                Some(store.clone()),
                pos,
                rotation,
            )
        };
        Ok(Self {
            path: path.to_owned(),
            name: if stdin {
                "stdin".to_owned()
            } else {
                path.display().to_string()
            },
            input,
            store,
            buf: Vec::with_capacity(READ_CHUNK),
            pos,
            at_eof: false,
            skipping_long_line: false,
            follow: config.follow && !stdin,
            poll_interval: config.poll_interval.0,
            max_line: usize::try_from(config.max_line.0).unwrap_or(usize::MAX),
            on_malformed: config.on_malformed,
            rotation,
            restarting: false,
            metrics: metrics.clone(),
        })
    }

    /// The position reading resumes from.
    pub fn position(&self) -> FilePosition {
        self.pos
    }

    /// Read more into the buffer; `Ok(false)` at end of input.
    ///
    /// Cancel-safe: `read_buf` appends only what was read, so dropping this
    /// future (the pipeline races reads against acknowledgements) loses
    /// nothing and leaves no stray bytes.
    async fn fill(&mut self) -> Result<bool, Error> {
        self.buf.reserve(READ_CHUNK);
        let n = match &mut self.input {
            Input::File(f, _) => f.read_buf(&mut self.buf).await,
            Input::Stdin(s) => s.read_buf(&mut self.buf).await,
        }
        .map_err(|source| Error::Io {
            what: format!("reading {}", self.name),
            cause: source,
        })?;
        self.at_eof = n == 0;
        Ok(n > 0)
    }

    /// Make sure the buffer holds at least one complete line (or the final
    /// unterminated line at end of input). `Ok(false)`: the input ended and
    /// nothing is left.
    async fn ensure_line(&mut self) -> Result<bool, Error> {
        if self.restarting {
            // A restart cut short (this future was dropped): finish it.
            self.restart().await?;
        }
        loop {
            if self.skipping_long_line {
                match memchr::memchr(b'\n', &self.buf) {
                    Some(i) => {
                        self.consume(i + 1);
                        self.skipping_long_line = false;
                    }
                    None => {
                        let n = self.buf.len();
                        self.consume_bytes_only(n);
                    }
                }
            }
            if !self.skipping_long_line {
                if memchr::memchr(b'\n', &self.buf).is_some() {
                    return Ok(true);
                }
                if self.buf.len() > self.max_line {
                    self.report_malformed(&format!(
                        "line is longer than source.file.max_line ({} bytes)",
                        self.max_line
                    ))?;
                    self.skipping_long_line = true;
                    continue;
                }
            }
            if self.fill().await? {
                // Before the new bytes are used: a file truncated and
                // written past the offset read so far shows no end, and what
                // was just read would be the middle of new content. (Also
                // keeps the fingerprint growing with the file.)
                self.check_truncation().await?;
                continue;
            }
            // End of this file.
            if self.last_of_file() {
                if self.skipping_long_line {
                    // The over-long last line ends here.
                    self.skipping_long_line = false;
                } else if !self.buf.is_empty() {
                    // Its last line, without a newline.
                    return Ok(true);
                }
                if self.rotation != Rotation::None && self.switch_to_path()? {
                    continue;
                }
                if !self.follow {
                    return Ok(false);
                }
                // Followed, and nothing at the path (deleted, not recreated
                // yet): go on with the open file; the next checks see a new
                // one.
                self.rotation = Rotation::None;
            }
            tokio::time::sleep(self.poll_interval).await;
            self.check_rotation().await?;
        }
    }

    /// Whether the end of the file being read is its end for good: it is not
    /// followed, or it was replaced and has stayed unchanged since.
    fn last_of_file(&self) -> bool {
        !self.follow || self.rotation == Rotation::Finished
    }

    /// A followed file truncated or rewritten in place (no longer as long
    /// as what was read, or no longer starting with the fingerprinted bytes)
    /// is read again from its start, and what was read of it since is
    /// dropped. The file's size when it was not (the caller's `fstat`
    /// too); `None` when it was, or for standard input.
    async fn check_truncation(&mut self) -> Result<Option<u64>, Error> {
        let Input::File(_, f) = &self.input else {
            return Ok(None);
        };
        let len = f
            .metadata()
            .map_err(io_error(format!("reading the size of {}", self.name)))?
            .len();
        let read_to = self.pos.offset + self.buf.len() as u64;
        let fingerprint = self
            .pos
            .fingerprint
            .check(f)
            .map_err(io_error(format!("reading {}", self.name)))?;
        match fingerprint {
            Some(fp) if len >= read_to => {
                self.pos.fingerprint = fp;
                Ok(Some(len))
            }
            _ => {
                // copytruncate: what was not read yet is in the copy.
                let copy = find_rotated(&self.path, None, self.pos.fingerprint)
                    .filter(|(_, c)| c.metadata().is_ok_and(|m| m.len() >= self.pos.offset));
                if let Some((copy, copy_f)) = copy {
                    tracing::info!(file = %self.name, copy = %copy.display(), read = self.pos.offset,
                        "file was truncated (copytruncate); finishing its copy first");
                    self.finish_copy(&copy, copy_f)?;
                    return Ok(None);
                }
                tracing::warn!(file = %self.name, read = read_to, size = len,
                    "file was truncated or rewritten and no copy of it is beside it; reading it \
                     again from the start");
                self.restarting = true;
                self.restart().await?;
                Ok(None)
            }
        }
    }

    /// Go on from the current position in `copy_f` (a copy of the file made
    /// before it was truncated), then read the file at the path from its
    /// start. What was read past the position is dropped: it may be the
    /// truncated file's new content.
    fn finish_copy(&mut self, copy: &Path, mut copy_f: std::fs::File) -> Result<(), Error> {
        use std::io::Seek;
        let what = || format!("reading {}", copy.display());
        let meta = copy_f.metadata().map_err(io_error(what()))?;
        // A handle of our own, nothing in flight: a plain seek is enough.
        copy_f
            .seek(std::io::SeekFrom::Start(self.pos.offset))
            .map_err(io_error(what()))?;
        let tokio_file = tokio::fs::File::from_std(copy_f.try_clone().map_err(io_error(what()))?);
        self.input = Input::File(tokio_file, copy_f);
        self.buf.clear();
        self.pos.file = Some(FileId::of(&meta));
        self.at_eof = false;
        self.skipping_long_line = false;
        self.rotation = Rotation::Finishing {
            len: meta.len(),
            since: Instant::now(),
        };
        Ok(())
    }

    /// Look for rotation of a followed file at the end of what it holds (see
    /// the module doc): truncation as above; a path that names another file
    /// starts finishing this one, which is done once it stayed unchanged
    /// for a poll interval.
    async fn check_rotation(&mut self) -> Result<(), Error> {
        let Some(len) = self.check_truncation().await? else {
            return Ok(());
        };
        self.rotation = match self.rotation {
            Rotation::None => match std::fs::metadata(&self.path) {
                Ok(meta) if Some(FileId::of(&meta)) != self.pos.file => {
                    tracing::info!(file = %self.name,
                        "file was rotated (the path names a new file); finishing the old one first");
                    Rotation::Finishing {
                        len,
                        since: Instant::now(),
                    }
                }
                // The same file, or none at the path yet (deleted, not
                // recreated): go on with the open one.
                _ => Rotation::None,
            },
            // Done once it stopped changing for a poll interval and the
            // writer has moved to the new file (or ROTATE_GRACE passed).
            Rotation::Finishing { len: before, since } if self.at_eof && len == before => {
                let idle = since.elapsed();
                let new_written = std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
                if idle >= self.poll_interval && (new_written || idle >= ROTATE_GRACE) {
                    Rotation::Finished
                } else {
                    Rotation::Finishing { len, since }
                }
            }
            Rotation::Finishing { .. } => Rotation::Finishing {
                len,
                since: Instant::now(),
            },
            Rotation::Finished => Rotation::Finished,
        };
        Ok(())
    }

    /// Read the open file again from its start. Cancel-safe: the seek is
    /// repeated until the state is reset (`restarting`).
    async fn restart(&mut self) -> Result<(), Error> {
        let Input::File(tf, f) = &mut self.input else {
            self.restarting = false;
            return Ok(());
        };
        tf.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(io_error(format!("seeking in {}", self.name)))?;
        let fingerprint =
            Fingerprint::read(f).map_err(io_error(format!("reading {}", self.name)))?;
        self.buf.clear();
        self.pos = FilePosition {
            offset: 0,
            line: 0,
            file: self.pos.file,
            fingerprint,
        };
        self.at_eof = false;
        self.skipping_long_line = false;
        self.restarting = false;
        Ok(())
    }

    /// Move from the finished old file to the one now at the path, from
    /// its start.
    fn switch_to_path(&mut self) -> Result<bool, Error> {
        let (f, id, fingerprint) = match try_open(&self.path) {
            Ok((f, id, fp, _)) => (f, id, fp),
            // Deleted and not recreated (yet).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(format!("opening {}", self.name))(e)),
        };
        let tokio_file = tokio::fs::File::from_std(
            f.try_clone()
                .map_err(io_error(format!("opening {}", self.name)))?,
        );
        tracing::info!(file = %self.name, lines = self.pos.line,
            "finished the rotated file; reading the new one from its start");
        self.input = Input::File(tokio_file, f);
        self.buf.clear();
        self.pos = FilePosition {
            offset: 0,
            line: 0,
            file: Some(id),
            fingerprint,
        };
        self.at_eof = false;
        self.rotation = Rotation::None;
        Ok(true)
    }

    /// Drop `n` bytes that ended a line.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.pos.offset += n as u64;
        self.pos.line += 1;
    }

    /// Drop `n` bytes in the middle of a line.
    fn consume_bytes_only(&mut self, n: usize) {
        self.buf.drain(..n);
        self.pos.offset += n as u64;
    }

    fn report_malformed(&self, problem: &str) -> Result<(), Error> {
        let origin = format!("{}:{}", self.name, self.pos.line + 1);
        match self.on_malformed {
            OnMalformed::Skip => {
                counters::add(&self.metrics.malformed_skipped, 1);
                tracing::warn!(at = %origin, problem, "skipping malformed line");
                Ok(())
            }
            OnMalformed::Stop => Err(Error::Malformed {
                origin,
                problem: problem.to_owned(),
            }),
        }
    }
}

impl ShardReader for FileShard {
    type Position = FilePosition;

    fn name(&self) -> &str {
        &self.name
    }

    async fn read_batch(
        &mut self,
        visit: &mut (dyn FnMut(&Record<'_>) -> Flow + Send),
    ) -> Result<Option<BatchEnd<FilePosition>>, Error> {
        let stop = match self.ensure_line().await {
            Ok(true) => None,
            Ok(false) => return Ok(None),
            Err(e @ Error::Malformed { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        if stop.is_some() {
            return Ok(Some(BatchEnd {
                position: self.pos,
                records: 0,
                stop,
            }));
        }
        // Visit complete lines; the record borrows from `buf`, so nothing
        // may touch `buf` until the loop ends.
        let final_unterminated = self.at_eof && self.last_of_file();
        let default_time = LogTime::now();
        let mut used = 0usize;
        let mut lines = 0u64;
        let mut records = 0usize;
        let mut malformed: Option<(u64, String)> = None;
        {
            let mut record = Record::default();
            let buf = &self.buf;
            while used < buf.len() {
                let rest = &buf[used..];
                let (line, advance) = match memchr::memchr(b'\n', rest) {
                    Some(i) => (&rest[..i], i + 1),
                    None if final_unterminated => (rest, rest.len()),
                    None => break,
                };
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > self.max_line {
                    // A whole line in the buffer is held to the limit too,
                    // not only one still waiting for its newline.
                    malformed = Some((
                        lines,
                        format!(
                            "line is longer than source.file.max_line ({} bytes)",
                            self.max_line
                        ),
                    ));
                    break;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    used += advance;
                    lines += 1;
                    continue;
                }
                if let Err(e) = parse_line(line, default_time, &mut record) {
                    malformed = Some((lines, e.to_string()));
                    break;
                }
                used += advance;
                lines += 1;
                records += 1;
                counters::add(&self.metrics.records_in, 1);
                if visit(&record) == Flow::Full {
                    break;
                }
            }
        }
        self.buf.drain(..used);
        counters::add(&self.metrics.bytes_in, used as u64);
        self.pos.offset += used as u64;
        self.pos.line += lines;
        let mut stop = None;
        if let Some((_, problem)) = malformed {
            // Report the line (numbered from the position now reached), then
            // skip it or stop before it.
            match self.report_malformed(&problem) {
                Ok(()) => {
                    let end = memchr::memchr(b'\n', &self.buf).map_or(self.buf.len(), |i| i + 1);
                    self.consume(end);
                }
                Err(e) => stop = Some(e),
            }
        }
        Ok(Some(BatchEnd {
            position: self.pos,
            records,
            stop,
        }))
    }

    async fn commit(&mut self, checkpoint: &Checkpoint<FilePosition>) -> Result<(), Error> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let path = self.path.clone();
        let pos = *checkpoint.position();
        tokio::task::spawn_blocking(move || store.save(&path, pos))
            .await
            .map_err(|e| Error::Checkpoint {
                path: self.name.clone(),
                problem: e.to_string(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tracker::Tracker;

    fn config(on_malformed: OnMalformed) -> FileSourceConfig {
        FileSourceConfig {
            on_malformed,
            ..FileSourceConfig::default()
        }
    }

    /// Read the whole shard; returns (values of field `n`, stop error).
    async fn drain(shard: &mut FileShard) -> (Vec<String>, Option<Error>) {
        let mut seen = Vec::new();
        loop {
            let mut batch = Vec::new();
            let end = shard
                .read_batch(&mut |r: &Record<'_>| {
                    batch.push(String::from_utf8_lossy(r.get(b"n").unwrap_or(b"?")).into_owned());
                    Flow::Continue
                })
                .await
                .unwrap();
            seen.extend(batch);
            match end {
                None => return (seen, None),
                Some(BatchEnd { stop: Some(e), .. }) => return (seen, Some(e)),
                Some(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn reads_every_line_including_an_unterminated_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\r\n\n{\"n\":\"2\"}\n{\"n\":\"3\"}").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store, &Metrics::default())
            .await
            .unwrap();
        let (seen, stop) = drain(&mut s).await;
        assert_eq!(seen, ["1", "2", "3"]);
        assert!(stop.is_none());
        assert_eq!((s.position().offset, s.position().line), (31, 4));
    }

    #[tokio::test]
    async fn resumes_after_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\n{\"n\":\"2\"}\n{\"n\":\"3\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = config(OnMalformed::Skip);
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        let mut first = None;
        let end = s
            .read_batch(&mut |r: &Record<'_>| {
                first = r.get(b"n").map(<[u8]>::to_vec);
                Flow::Full
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.as_deref(), Some(&b"1"[..]));
        let mut t = Tracker::new();
        let ticket = t.sent(end.position);
        t.delivered(ticket);
        s.commit(&t.committable().unwrap()).await.unwrap();
        let mut again = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut again).await.0, ["2", "3"]);
    }

    #[tokio::test]
    async fn malformed_line_is_skipped_and_counted_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\nnot json\n{\"n\":\"3\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let metrics = Metrics::default();
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store, &metrics)
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, ["1", "3"]);
        assert_eq!(counters::get(&metrics.malformed_skipped), 1);
        assert_eq!(counters::get(&metrics.records_in), 2);
    }

    #[tokio::test]
    async fn malformed_line_stops_with_file_and_line_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\n{\"n\":\"2\"}\n{oops\n{\"n\":\"4\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Stop), &store, &Metrics::default())
            .await
            .unwrap();
        let (seen, stop) = drain(&mut s).await;
        assert_eq!(seen, ["1", "2"]);
        let msg = stop.unwrap().to_string();
        assert!(msg.contains("a.ndjson:3: malformed input"), "{msg}");
        // The position stops just before the bad line.
        assert_eq!((s.position().offset, s.position().line), (20, 2));
    }

    #[tokio::test]
    async fn over_long_line_is_malformed_and_skipped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        let long = format!("{{\"n\":\"{}\"}}\n", "x".repeat(600_000));
        std::fs::write(&f, format!("{{\"n\":\"1\"}}\n{long}{{\"n\":\"3\"}}\n")).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = FileSourceConfig {
            max_line: crate::units::ByteSize(100_000),
            ..config(OnMalformed::Skip)
        };
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, ["1", "3"]);
        assert_eq!(s.position().line, 3);
    }

    #[tokio::test]
    async fn a_complete_line_over_max_line_is_malformed_too() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        let long = format!("{{\"n\":\"{}\"}}\n", "x".repeat(5000));
        std::fs::write(&f, format!("{{\"n\":\"1\"}}\n{long}{{\"n\":\"3\"}}\n")).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = FileSourceConfig {
            max_line: crate::units::ByteSize(1024),
            ..config(OnMalformed::Skip)
        };
        let metrics = Metrics::default();
        let mut s = FileShard::open(&f, &cfg, &store, &metrics).await.unwrap();
        assert_eq!(drain(&mut s).await.0, ["1", "3"]);
        assert_eq!(counters::get(&metrics.malformed_skipped), 1);
        let stop = FileSourceConfig {
            max_line: crate::units::ByteSize(1024),
            ..config(OnMalformed::Stop)
        };
        let mut s = FileShard::open(&f, &stop, &store, &Metrics::default())
            .await
            .unwrap();
        let (seen, e) = drain(&mut s).await;
        assert_eq!(seen, ["1"]);
        let e = e.expect("stopped").to_string();
        assert!(e.contains("a.ndjson:2") && e.contains("max_line"), "{e}");
    }

    #[tokio::test]
    async fn checkpoint_beyond_the_end_restarts_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        store
            .save(
                &f,
                FilePosition {
                    offset: 999,
                    line: 50,
                    ..FilePosition::default()
                },
            )
            .unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, ["1"]);
    }

    #[test]
    fn the_state_dir_check_writes_nothing_and_finds_what_cannot_work() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("state");
        std::fs::create_dir(&existing).unwrap();
        assert!(check_state_dir(&existing).unwrap().ends_with("is writable"));
        assert_eq!(
            std::fs::read_dir(&existing).unwrap().count(),
            0,
            "probe removed"
        );
        let missing = dir.path().join("a/b/state");
        let said = check_state_dir(&missing).unwrap();
        assert!(said.contains("will be created in"), "{said}");
        assert!(!dir.path().join("a").exists(), "nothing created");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = check_state_dir(&file.join("state"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }

    #[test]
    fn corrupt_checkpoint_is_an_error_not_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let input = dir.path().join("x.ndjson");
        std::fs::write(store.file_for(&input), b"{garbage").unwrap();
        let e = store.load(&input).unwrap_err().to_string();
        assert!(e.contains("delete it"), "{e}");
    }

    #[test]
    fn directories_expand_to_their_log_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.ndjson", "a.jsonl", "c.txt"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let cfg = FileSourceConfig {
            paths: vec![dir.path().display().to_string()],
            ..FileSourceConfig::default()
        };
        let names: Vec<_> = expand_paths(&cfg)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jsonl", "b.ndjson"]);
        let bad = FileSourceConfig {
            paths: vec!["/no/such/file".into()],
            ..FileSourceConfig::default()
        };
        assert!(expand_paths(&bad)
            .unwrap_err()
            .to_string()
            .contains("source.file.paths"));
    }

    fn lines(range: std::ops::RangeInclusive<u32>) -> String {
        range.map(|n| format!("{{\"n\":\"{n}\"}}\n")).collect()
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn following() -> FileSourceConfig {
        FileSourceConfig {
            follow: true,
            poll_interval: crate::units::HumanDuration(Duration::from_millis(20)),
            ..FileSourceConfig::default()
        }
    }

    /// Read a followed shard until `n` values came (or 10 s passed); each
    /// batch's end is committed through `store`.
    async fn read_n(shard: &mut FileShard, n: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut tracker = Tracker::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < n {
            let mut batch = Vec::new();
            let mut visit = |r: &Record<'_>| {
                batch.push(String::from_utf8_lossy(r.get(b"n").unwrap_or(b"?")).into_owned());
                Flow::Continue
            };
            let read = shard.read_batch(&mut visit);
            let end = match tokio::time::timeout_at(deadline, read).await {
                Ok(end) => end.unwrap(),
                Err(_) => panic!("only {seen:?} of {n} values within 10 s"),
            };
            seen.extend(batch);
            let Some(end) = end else { break };
            let t = tracker.sent(end.position);
            tracker.delivered(t);
            if let Some(cp) = tracker.committable() {
                shard.commit(&cp).await.unwrap();
            }
        }
        seen
    }

    fn numbers(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|n| n.to_string()).collect()
    }

    #[tokio::test]
    async fn copytruncate_while_following_rereads_the_new_content_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, lines(1..=3)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &following(), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(read_n(&mut s, 3).await, numbers(1..=3));
        // Copied away, truncated, and written past the old offset before
        // the next poll: the case a size check alone misses.
        std::fs::copy(&f, dir.path().join("app.log.1")).unwrap();
        std::fs::File::create(&f).unwrap();
        append(&f, &lines(100..=120));
        assert_eq!(read_n(&mut s, 21).await, numbers(100..=120));
    }

    #[tokio::test]
    async fn rename_rotation_while_following_finishes_the_old_file_then_reads_the_new() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        let old = dir.path().join("app.log.1");
        std::fs::write(&f, lines(1..=3)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &following(), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(read_n(&mut s, 3).await, numbers(1..=3));
        append(&f, &lines(4..=5));
        std::fs::rename(&f, &old).unwrap();
        // The writer has not reopened yet: it still appends to the old one,
        // and its last line has no newline.
        append(&old, &lines(6..=7));
        append(&old, "{\"n\":\"8\"}");
        std::fs::write(&f, lines(9..=12)).unwrap();
        assert_eq!(read_n(&mut s, 12 - 3).await, numbers(4..=12));
        // The checkpoint now names the new file.
        let cp = store.load(&f).unwrap().unwrap();
        assert_eq!(cp.file, Some(FileId::of(&std::fs::metadata(&f).unwrap())));
        append(&f, &lines(13..=13));
        assert_eq!(read_n(&mut s, 1).await, numbers(13..=13));
    }

    /// Lines long enough that a fingerprint of the first ones may find a
    /// copy by itself (`COPY_FINGERPRINT_MIN`).
    fn padded(range: std::ops::RangeInclusive<u32>) -> String {
        range
            .map(|n| format!("{{\"n\":\"{n}\",\"pad\":\"{}\"}}\n", "p".repeat(40)))
            .collect()
    }

    #[tokio::test]
    async fn copytruncate_while_behind_finishes_the_copy_then_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, padded(1..=3)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &following(), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(read_n(&mut s, 3).await, numbers(1..=3));
        // Written, copied away and truncated, and new content written past
        // the old offset, all before the reader gets to it.
        append(&f, &padded(4..=6));
        std::fs::copy(&f, dir.path().join("app.log.1")).unwrap();
        std::fs::File::create(&f).unwrap();
        append(&f, &padded(100..=120));
        let mut expected = numbers(4..=6);
        expected.extend(numbers(100..=120));
        assert_eq!(read_n(&mut s, expected.len()).await, expected);
    }

    #[tokio::test]
    async fn copytruncate_while_stopped_finishes_the_copy_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, padded(1..=2)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = config(OnMalformed::Skip);
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(1..=2));
        s.commit(&checkpoint_at(s.position())).await.unwrap();
        drop(s);
        append(&f, &padded(3..=5));
        std::fs::copy(&f, dir.path().join("app.log.1")).unwrap();
        std::fs::File::create(&f).unwrap();
        append(&f, &padded(100..=120));
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        let mut expected = numbers(3..=5);
        expected.extend(numbers(100..=120));
        assert_eq!(drain(&mut s).await.0, expected);
    }

    #[tokio::test]
    async fn a_renamed_file_is_kept_while_the_new_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        let old = dir.path().join("app.log.1");
        std::fs::write(&f, lines(1..=3)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &following(), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(read_n(&mut s, 3).await, numbers(1..=3));
        // logrotate `create`: renamed, a new empty file, and the writer's
        // reopen comes late (several poll intervals of silence first).
        std::fs::rename(&f, &old).unwrap();
        std::fs::File::create(&f).unwrap();
        let reader = tokio::spawn(async move {
            let seen = read_n(&mut s, 4).await;
            (s, seen)
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        append(&old, &lines(4..=5));
        tokio::time::sleep(Duration::from_millis(150)).await;
        append(&f, &lines(6..=7));
        let (_s, seen) = reader.await.unwrap();
        assert_eq!(seen, numbers(4..=7));
    }

    #[tokio::test]
    async fn delete_and_recreate_while_following_reads_the_new_file_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, lines(1..=2)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &following(), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(read_n(&mut s, 2).await, numbers(1..=2));
        std::fs::remove_file(&f).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Longer than the old offset.
        std::fs::write(&f, lines(10..=30)).unwrap();
        assert_eq!(read_n(&mut s, 21).await, numbers(10..=30));
    }

    #[tokio::test]
    async fn a_file_rotated_while_stopped_is_finished_from_its_checkpoint_first() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, lines(1..=2)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = config(OnMalformed::Skip);
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(1..=2));
        s.commit(&checkpoint_at(s.position())).await.unwrap();
        drop(s);
        // While siemfwd is down: more lines, then logrotate (rename, create).
        append(&f, &lines(3..=4));
        std::fs::rename(&f, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&f, lines(5..=40)).unwrap();
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(3..=40));
    }

    #[test]
    fn a_rotated_file_is_found_beside_a_relative_path_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.log"), lines(1..=2)).unwrap();
        let f = std::fs::File::open(dir.path().join("app.log")).unwrap();
        let id = FileId::of(&f.metadata().unwrap());
        let fp = Fingerprint::read(&f).unwrap();
        std::fs::rename(dir.path().join("app.log"), dir.path().join("app.log.1")).unwrap();
        std::fs::write(dir.path().join("app.log"), lines(3..=4)).unwrap();
        let found = find_rotated(&dir.path().join("app.log"), Some(id), fp).map(|(p, _)| p);
        assert_eq!(found, Some(dir.path().join("app.log.1")));
        // `paths = ["app.log"]`: its siblings are in the working directory.
        assert_eq!(directory_of(Path::new("app.log")), Path::new("."));
        assert_eq!(
            directory_of(Path::new("/var/log/app.log")),
            Path::new("/var/log")
        );
    }

    #[tokio::test]
    async fn a_file_replaced_while_stopped_without_its_old_copy_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, lines(1..=2)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = config(OnMalformed::Skip);
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(1..=2));
        s.commit(&checkpoint_at(s.position())).await.unwrap();
        drop(s);
        // Rewritten in place, longer than the checkpoint (same inode).
        std::fs::write(&f, lines(50..=80)).unwrap();
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(50..=80));
        s.commit(&checkpoint_at(s.position())).await.unwrap();
        drop(s);
        // Deleted and recreated (the old one gone), longer again.
        std::fs::remove_file(&f).unwrap();
        std::fs::write(&f, lines(100..=200)).unwrap();
        let mut s = FileShard::open(&f, &cfg, &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(100..=200));
    }

    #[tokio::test]
    async fn a_checkpoint_of_an_earlier_version_still_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("app.log");
        std::fs::write(&f, lines(1..=3)).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        // What 0.1 wrote: path, offset and line only.
        let old = format!(
            "{{\"path\":{:?},\"offset\":10,\"line\":1}}",
            f.display().to_string()
        );
        std::fs::write(store.file_for(&f), old).unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store, &Metrics::default())
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, numbers(2..=3));
    }

    fn checkpoint_at(pos: FilePosition) -> Checkpoint<FilePosition> {
        let mut t = Tracker::new();
        let ticket = t.sent(pos);
        t.delivered(ticket);
        t.committable().expect("delivered")
    }
}
