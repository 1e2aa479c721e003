//! Runs the `siemfwd` binary as a real process, as an operator would: a config file in a temp
//! dir, the file source reading an NDJSON corpus written there, stderr captured.
//!
//! Every process started here is owned by a [`Running`], which kills it by its PID when
//! dropped (also when a test panics), so no test leaves a siemfwd behind.
//!
//! Also here: [`ndjson_line`], a writer for NDJSON lines whose strings may hold raw bytes
//! that are not UTF-8 (siemfwd's NDJSON reader takes them as they are; `serde_json` cannot
//! write them).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Poll interval while waiting for a condition (not a synchronisation sleep).
const POLL: Duration = Duration::from_millis(20);

/// The binary Cargo built for this test run.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_siemfwd")
}

/// The `siemfwd` binary as a command that cannot reach a real cloud: no
/// `ALIBABA_CLOUD_*` variable of the caller's (a credentials lookup reads
/// them), and the lookup's probe of the ECS metadata service off, so that a
/// test whose config lacks keys never asks 100.100.100.200. Tests of the
/// lookup set the variables they mean, pointing at the emulator.
pub(crate) fn hermetic() -> Command {
    hermetic_at(binary())
}

/// [`hermetic`] for another siemfwd binary (the one a package installed).
pub(crate) fn hermetic_at(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALIBABA_CLOUD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    cmd
}

/// A [`hermetic`] `siemfwd` command with a clean environment: no `SIEMFWD_*` or `SLS_*`
/// variable of the caller leaks into the config (both are read as config overrides).
pub(crate) fn command(args: &[&str]) -> Command {
    command_at(binary(), args)
}

/// [`command`] for another siemfwd binary.
pub(crate) fn command_at(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut cmd = hermetic_at(program);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("SIEMFWD_") || k.starts_with("SLS_") {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A started siemfwd process with its stdout and stderr being collected.
pub(crate) struct Running {
    child: Option<Child>,
    pid: u32,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn collect(mut from: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => match sink.lock() {
                    Ok(mut b) => b.extend_from_slice(&chunk[..n]),
                    Err(_) => return,
                },
            }
        }
    });
    (buf, handle)
}

impl Running {
    /// Starts `cmd` (made by [`command`]).
    pub(crate) fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary()));
        let pid = child.id();
        let mut readers = Vec::new();
        let stdout = match child.stdout.take() {
            Some(out) => {
                let (buf, h) = collect(out);
                readers.push(h);
                buf
            }
            None => Arc::default(),
        };
        let stderr = match child.stderr.take() {
            Some(err) => {
                let (buf, h) = collect(err);
                readers.push(h);
                buf
            }
            None => Arc::default(),
        };
        Running {
            child: Some(child),
            pid,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// What the process wrote on stderr so far (lossy UTF-8).
    pub(crate) fn stderr(&self) -> String {
        let b = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    /// What the process wrote on stdout so far (lossy UTF-8).
    pub(crate) fn stdout(&self) -> String {
        let b = self.stdout.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    /// Once it exited, stdout and stderr are complete.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    for h in self.readers.drain(..) {
                        let _ = h.join();
                    }
                    return self.status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => return None,
                Err(e) => panic!("waiting for siemfwd (pid {}): {e}", self.pid),
            }
        }
    }

    /// Waits for exit or panics with what the process printed.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_timeout(timeout) {
            Some(s) => s,
            None => panic!(
                "siemfwd (pid {}) still running after {timeout:?}; stderr:\n{}",
                self.pid,
                self.stderr()
            ),
        }
    }

    /// Waits until `cond(stderr so far)` holds; panics after `timeout` with the stderr.
    pub(crate) fn wait_stderr(
        &mut self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if cond(&text) {
                return;
            }
            if let Some(status) = self.status.or_else(|| {
                self.child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
            }) {
                // One more look: the last lines may have come with the exit.
                self.wait_timeout(Duration::from_secs(5));
                let text = self.stderr();
                if cond(&text) {
                    return;
                }
                panic!("siemfwd exited ({status}) before {what}; stderr:\n{text}");
            }
            if Instant::now() >= deadline {
                panic!("no {what} within {timeout:?}; stderr:\n{text}");
            }
            thread::sleep(POLL);
        }
    }

    /// Sends `sig` (`TERM`, `INT`, `KILL`) to the process if it has not exited yet.
    pub(crate) fn signal(&mut self, sig: &str) {
        if self.wait_timeout(Duration::ZERO).is_some() {
            return;
        }
        // std has no kill(2) and tests forbid `unsafe`; bash's builtin `kill` does it by PID.
        let _ = Command::new("bash")
            .args(["-c", "kill -s \"$0\" \"$1\"", sig, &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                // SIGKILL to our own child's PID; `wait` reaps it.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs `siemfwd args` to completion (bounded by `timeout`): exit status, stdout, stderr.
pub(crate) fn run_to_end(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut p = Running::start(command(args));
    let status = p.wait_exit(timeout);
    (status, p.stdout(), p.stderr())
}

/// The counters of siemfwd's last `siemfwd stopped` line in a JSON-format log
/// (`--log-format json`), as `name → value`; counters at zero are not printed, so a missing
/// name means 0.
pub(crate) fn stopped_counters(stderr: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    let line = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["message"] == "siemfwd stopped")?;
    let text = line["counters"].as_str()?;
    Some(
        text.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect(),
    )
}

/// One NDJSON line (with its LF) holding `fields` in order as JSON strings. Keys and values
/// are bytes: `"`, `\` and control characters are escaped as JSON requires, every other
/// byte (including bytes that are not UTF-8) is written raw.
pub(crate) fn ndjson_line(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![b'{'];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(k, &mut out);
        out.push(b':');
        json_string(v, &mut out);
    }
    out.extend_from_slice(b"}\n");
    out
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1F => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A TOML basic string for a path (temp dirs are plain, but quote them properly anyway).
pub(crate) fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

/// A TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Checkpoint files siemfwd wrote in `state_dir` (`*.checkpoint.json`).
pub(crate) fn checkpoint_files(state_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(state_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".checkpoint.json"))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}
