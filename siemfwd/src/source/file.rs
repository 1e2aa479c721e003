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

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ndjson::parse_line;
use super::{BatchEnd, Error, Flow, ShardReader};
use crate::config::{FileSourceConfig, OnMalformed};
use crate::counters::{self, COUNTERS};
use crate::pipeline::tracker::Checkpoint;
use crate::record::{LogTime, Record};

/// How much is read from the file at once.
const READ_CHUNK: usize = 256 * 1024;

/// Where in a file reading resumes: the byte after the last consumed line,
/// and that line's number (1-based lines; `line` counts the lines consumed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Lines consumed before `offset`.
    pub line: u64,
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
            source,
        })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|source| Error::Io {
                what: format!("source.file.paths: listing {p:?}"),
                source,
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
}

impl CheckpointStore {
    /// A store in `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("source.file.state_dir: creating {}", dir.display()),
            source,
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

/// What a [`FileShard`] reads from.
#[derive(Debug)]
enum Input {
    File(tokio::fs::File),
    Stdin(tokio::io::Stdin),
}

/// One input file being read.
#[derive(Debug)]
pub struct FileShard {
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
}

impl FileShard {
    /// Open `path` (or stdin for `-`) and seek to its checkpoint.
    ///
    /// # Errors
    /// The file cannot be opened, or its checkpoint is unreadable.
    pub async fn open(
        path: &Path,
        config: &FileSourceConfig,
        store: &CheckpointStore,
    ) -> Result<Self, Error> {
        let stdin = path == Path::new("-");
        let (input, store, pos) = if stdin {
            (
                Input::Stdin(tokio::io::stdin()),
                None,
                FilePosition::default(),
            )
        } else {
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|source| Error::Io {
                    what: format!("opening {}", path.display()),
                    source,
                })?;
            let mut pos = store.load(path)?.unwrap_or_default();
            let len = f
                .metadata()
                .await
                .map_err(|source| Error::Io {
                    what: format!("reading the size of {}", path.display()),
                    source,
                })?
                .len();
            if pos.offset > len {
                tracing::warn!(
                    file = %path.display(),
                    checkpoint = pos.offset,
                    size = len,
                    "file is shorter than its checkpoint (truncated or replaced); reading it from the start"
                );
                pos = FilePosition::default();
            }
            f.seek(std::io::SeekFrom::Start(pos.offset))
                .await
                .map_err(|source| Error::Io {
                    what: format!("seeking in {}", path.display()),
                    source,
                })?;
            (Input::File(f), Some(store.clone()), pos)
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
            Input::File(f) => f.read_buf(&mut self.buf).await,
            Input::Stdin(s) => s.read_buf(&mut self.buf).await,
        }
        .map_err(|source| Error::Io {
            what: format!("reading {}", self.name),
            source,
        })?;
        self.at_eof = n == 0;
        Ok(n > 0)
    }

    /// Make sure the buffer holds at least one complete line (or the final
    /// unterminated line at end of input). `Ok(false)`: the input ended and
    /// nothing is left.
    async fn ensure_line(&mut self) -> Result<bool, Error> {
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
                continue;
            }
            // End of input.
            if self.follow {
                tokio::time::sleep(self.poll_interval).await;
                continue;
            }
            if self.skipping_long_line {
                self.skipping_long_line = false;
                return Ok(false);
            }
            return Ok(!self.buf.is_empty());
        }
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
                counters::add(&COUNTERS.malformed_skipped, 1);
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
        let final_unterminated = self.at_eof && !self.follow;
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
                counters::add(&COUNTERS.records_in, 1);
                if visit(&record) == Flow::Full {
                    break;
                }
            }
        }
        self.buf.drain(..used);
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
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store)
            .await
            .unwrap();
        let (seen, stop) = drain(&mut s).await;
        assert_eq!(seen, ["1", "2", "3"]);
        assert!(stop.is_none());
        assert_eq!(
            s.position(),
            FilePosition {
                offset: 31,
                line: 4
            }
        );
    }

    #[tokio::test]
    async fn resumes_after_the_committed_position() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\n{\"n\":\"2\"}\n{\"n\":\"3\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = config(OnMalformed::Skip);
        let mut s = FileShard::open(&f, &cfg, &store).await.unwrap();
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
        let mut again = FileShard::open(&f, &cfg, &store).await.unwrap();
        assert_eq!(drain(&mut again).await.0, ["2", "3"]);
    }

    #[tokio::test]
    async fn malformed_line_is_skipped_and_counted_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\nnot json\n{\"n\":\"3\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let before = COUNTERS
            .malformed_skipped
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store)
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, ["1", "3"]);
        assert!(
            COUNTERS
                .malformed_skipped
                .load(std::sync::atomic::Ordering::Relaxed)
                > before
        );
    }

    #[tokio::test]
    async fn malformed_line_stops_with_file_and_line_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        std::fs::write(&f, "{\"n\":\"1\"}\n{\"n\":\"2\"}\n{oops\n{\"n\":\"4\"}\n").unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Stop), &store)
            .await
            .unwrap();
        let (seen, stop) = drain(&mut s).await;
        assert_eq!(seen, ["1", "2"]);
        let msg = stop.unwrap().to_string();
        assert!(msg.contains("a.ndjson:3: malformed input"), "{msg}");
        // The position stops just before the bad line.
        assert_eq!(
            s.position(),
            FilePosition {
                offset: 20,
                line: 2
            }
        );
    }

    #[tokio::test]
    async fn over_long_line_is_malformed_and_skipped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ndjson");
        let long = format!("{{\"n\":\"{}\"}}\n", "x".repeat(600_000));
        std::fs::write(&f, format!("{{\"n\":\"1\"}}\n{long}{{\"n\":\"3\"}}\n")).unwrap();
        let store = CheckpointStore::open(&dir.path().join("state")).unwrap();
        let cfg = FileSourceConfig {
            max_line: crate::config::units::ByteSize(100_000),
            ..config(OnMalformed::Skip)
        };
        let mut s = FileShard::open(&f, &cfg, &store).await.unwrap();
        assert_eq!(drain(&mut s).await.0, ["1", "3"]);
        assert_eq!(s.position().line, 3);
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
                },
            )
            .unwrap();
        let mut s = FileShard::open(&f, &config(OnMalformed::Skip), &store)
            .await
            .unwrap();
        assert_eq!(drain(&mut s).await.0, ["1"]);
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
}
