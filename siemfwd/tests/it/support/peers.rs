//! Real syslog receivers for integration tests: rsyslog and syslog-ng on 127.0.0.1.
//!
//! Why real programs: a SIEM is, in practice, one of these two parsers (or something that
//! behaves like them). An in-process receiver written by us would share our reading of
//! RFC 5424/5425/6587 and hide our mistakes; rsyslog and syslog-ng do not.
//!
//! The heavy lifting lives in the project's shell scripts (`scripts/peers/`), so a person can
//! start the same receivers by hand. This module only:
//! - gets free ephemeral ports: rsyslog's imtcp inputs bind port 0 themselves and report the
//!   port (`TCP_PORT=auto`); for the others we bind `127.0.0.1:0`, read the port, release it
//!   and pass it through `UDP_PORT`, `RELP_PORT`, ... (exit code 4 = the port was taken in the
//!   meantime: pick new ones and retry);
//! - waits until every TCP listener accepts, under a deadline (the script already checked
//!   that the peer's own PID holds each socket);
//! - reads what the peer received: one JSON object per line in `WORKDIR/out/<input>.jsonl`;
//! - stops the peer by its PID (SIGTERM, then SIGKILL after a deadline), also on `Drop`.
//!   rsyslog is configured (`scripts/peers/rsyslog.sh`) to write out everything it accepted
//!   before it exits, in the order it received it, and stamps each message with its reception
//!   time (`received`): a restarted receiver loses nothing it read, and tests can tell when a
//!   message arrived.
//!
//! A peer that is not installed makes the test fail with "run scripts/peers/install.sh",
//! unless `SIEMFWD_SKIP_PEERS=1`, where [`require`] prints `SKIPPED: <reason>` and the test
//! returns early. Never a silent pass.
//!
//! Set `SIEMFWD_KEEP_PEERS=1` to keep each peer's work directory (config, logs, received
//! messages) after the test, for debugging; its path is printed.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long a peer may take to start (config check, TLS key loading, binding).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a peer gets to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// The same for rsyslogd, which first writes out everything its main queue holds (up to
/// `QUEUE_SHUTDOWN_MS`, 20 s, in `scripts/peers/rsyslog.sh`): killing it earlier would lose
/// lines it had read, which no sender can notice.
const RSYSLOG_STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Poll interval while waiting for a condition; short, because it is not a synchronisation sleep.
const POLL: Duration = Duration::from_millis(20);
/// Attempts with fresh ports when a picked port was taken before the peer could bind it.
const PORT_ATTEMPTS: usize = 3;

/// Exit codes of `scripts/peers/*.sh` (see `scripts/peers/lib.sh`).
const EXIT_NOT_INSTALLED: i32 = 3;
const EXIT_PORT_IN_USE: i32 = 4;

/// The repository root: `siemfwd/` is one level below it.
pub(crate) fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.parent().unwrap_or(manifest).to_path_buf()
    })
}

fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join("peers").join(name)
}

/// Why a peer could not be used.
#[derive(Clone, Debug)]
pub(crate) enum PeerError {
    /// The peer program (or openssl) is not installed on this machine.
    NotInstalled(String),
    /// It is installed but did not start or misbehaved; the text carries its logs.
    Failed(String),
    /// A port picked for it was taken by another process before it could bind it.
    /// [`Rsyslog::start`] and [`SyslogNg::start`] retry with new ports before giving up.
    PortInUse(String),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `why` comes from the scripts and already says "run scripts/peers/install.sh".
            PeerError::NotInstalled(why) => write!(
                f,
                "test peer not installed: {why}\n(or set SIEMFWD_SKIP_PEERS=1 to skip the tests that need it)"
            ),
            PeerError::Failed(why) => write!(f, "test peer failed: {why}"),
            PeerError::PortInUse(why) => write!(f, "test peer could not bind its port: {why}"),
        }
    }
}

impl std::error::Error for PeerError {}

/// Turns a peer start result into the peer, or ends the test.
///
/// `Ok` gives `Some(peer)`. A missing peer panics with the install hint, unless
/// `SIEMFWD_SKIP_PEERS=1`: then it prints a loud `SKIPPED: <reason>` and gives `None`, and the
/// test returns. Any other failure panics. Use as
/// `let Some(rs) = require(Rsyslog::start(opts)) else { return };`
pub(crate) fn require<T>(started: Result<T, PeerError>) -> Option<T> {
    match started {
        Ok(peer) => Some(peer),
        Err(PeerError::NotInstalled(why)) if skip_requested() => {
            eprintln!("\n*** SKIPPED: {why} (SIEMFWD_SKIP_PEERS=1) ***\n");
            None
        }
        Err(err) => panic!("{err}"),
    }
}

fn skip_requested() -> bool {
    std::env::var("SIEMFWD_SKIP_PEERS").is_ok_and(|v| v == "1")
}

/// The test PKI made by `scripts/peers/gen-certs.sh`, generated once and shared by every test.
///
/// Files: `ca.pem`, `server.{pem,key}` (CN=localhost, SAN localhost/127.0.0.1/::1),
/// `client.{pem,key}`, `other-ca.pem`, `other-client.{pem,key}` (unrelated CA),
/// `expired-server.{pem,key}`, `wrong-host-server.{pem,key}` (SAN wrong.example).
///
/// Panics (with the install hint) when openssl is missing; use [`try_certs`] to handle that.
pub(crate) fn certs() -> &'static Path {
    match try_certs() {
        Ok(dir) => dir,
        Err(err) => panic!("{err}"),
    }
}

/// [`certs`], returning the error instead of panicking.
///
/// The PKI lives in `CARGO_TARGET_TMPDIR`, in a directory named after a hash of the generator
/// script: every test process reuses it (generating seven RSA keys costs seconds), a changed
/// script gets a fresh one, and nothing accumulates in `/tmp`. It is generated in a scratch
/// directory and renamed into place, so concurrent test binaries never see half a PKI.
pub(crate) fn try_certs() -> Result<&'static Path, PeerError> {
    static CERTS: OnceLock<Result<PathBuf, PeerError>> = OnceLock::new();
    match CERTS.get_or_init(make_certs) {
        Ok(dir) => Ok(dir.as_path()),
        Err(err) => Err(err.clone()),
    }
}

fn make_certs() -> Result<PathBuf, PeerError> {
    use std::hash::{Hash, Hasher};
    let gen = script("gen-certs.sh");
    let text = fs::read(&gen)
        .map_err(|e| PeerError::Failed(format!("cannot read {}: {e}", gen.display())))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(format!("peers-pki-{:016x}", hasher.finish()));
    if !dir.join("ca.pem").exists() {
        let scratch = tempfile::Builder::new()
            .prefix(".peers-pki-")
            .tempdir_in(base)
            .map_err(|e| {
                PeerError::Failed(format!("cannot create a dir in {}: {e}", base.display()))
            })?;
        run_script(Command::new("bash").arg(&gen).arg(scratch.path()))?;
        // Losing the race to another test binary is fine: its PKI is equally complete.
        if fs::rename(scratch.path(), &dir).is_ok() {
            let _kept = scratch.keep();
        }
    }
    // Files only ever appear all at once (rename), so a missing one means someone deleted it.
    for stem in [
        "ca",
        "server",
        "client",
        "other-client",
        "expired-server",
        "wrong-host-server",
    ] {
        for ext in ["pem", "key"] {
            let file = dir.join(format!("{stem}.{ext}"));
            if !file.exists() {
                let msg = format!(
                    "{} is missing: delete {} to regenerate",
                    file.display(),
                    dir.display()
                );
                return Err(PeerError::Failed(msg));
            }
        }
    }
    Ok(dir)
}

/// Runs a peers script, mapping its exit code convention (`lib.sh`) to [`PeerError`].
/// `Ok(stdout)` on success.
fn run_script(cmd: &mut Command) -> Result<String, PeerError> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        PeerError::NotInstalled(format!(
            "cannot run bash ({e}): install bash, then run scripts/peers/install.sh"
        ))
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(stdout),
        Some(EXIT_NOT_INSTALLED) => Err(PeerError::NotInstalled(stderr.trim().to_owned())),
        Some(EXIT_PORT_IN_USE) => Err(PeerError::PortInUse(stderr)),
        code => Err(PeerError::Failed(format!(
            "{cmd:?} exited with {code:?}\n--- stderr ---\n{stderr}--- stdout ---\n{stdout}"
        ))),
    }
}

/// A listener of a peer: transport, framing and TLS mode. `name()` is the name the peer
/// scripts use for its port variable and its output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Input {
    /// Plain UDP, one message per datagram.
    Udp,
    /// Plain TCP. rsyslog: LF *and* octet-counted framing (auto-detected per frame).
    /// syslog-ng: octet counting only (RFC 6587 §3.4.1); LF-framed messages are dropped.
    Tcp,
    /// Plain TCP, LF framing only (syslog-ng only).
    TcpLf,
    /// TLS with server authentication only (RFC 5425). rsyslog: both framings;
    /// syslog-ng: octet counting only.
    Tls,
    /// TLS, LF framing only (syslog-ng only).
    TlsLf,
    /// TLS where the client must present a certificate signed by the test CA.
    Mtls,
    /// RELP, plain (rsyslog only).
    Relp,
    /// RELP over TLS, server authentication only (rsyslog only).
    RelpTls,
    /// RELP over TLS, client certificate required (rsyslog only).
    RelpMtls,
}

impl Input {
    /// The input's name in the peer scripts and output files (`out/<name>.jsonl`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Input::Udp => "udp",
            Input::Tcp => "tcp",
            Input::TcpLf => "tcplf",
            Input::Tls => "tls",
            Input::TlsLf => "tlslf",
            Input::Mtls => "mtls",
            Input::Relp => "relp",
            Input::RelpTls => "relptls",
            Input::RelpMtls => "relpmtls",
        }
    }

    fn port_var(self) -> String {
        format!("{}_PORT", self.name().to_ascii_uppercase())
    }

    /// True for the one datagram input.
    pub(crate) fn is_udp(self) -> bool {
        self == Input::Udp
    }

    /// True for the inputs that expect a TLS handshake first.
    fn is_tls(self) -> bool {
        match self {
            Input::Tls | Input::TlsLf | Input::Mtls | Input::RelpTls | Input::RelpMtls => true,
            Input::Udp | Input::Tcp | Input::TcpLf | Input::Relp => false,
        }
    }
}

/// Which certificate the peer's TLS listeners present (all from [`certs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ServerCert {
    /// `server.pem`: CN=localhost, valid, signed by the test CA.
    #[default]
    Valid,
    /// `expired-server.pem`: signed by the test CA, expired in 2020.
    Expired,
    /// `wrong-host-server.pem`: signed by the test CA, for `wrong.example` only.
    WrongHost,
}

impl ServerCert {
    fn file_stem(self) -> &'static str {
        match self {
            ServerCert::Valid => "server",
            ServerCert::Expired => "expired-server",
            ServerCert::WrongHost => "wrong-host-server",
        }
    }
}

/// rsyslog's netstream driver for the imtcp TLS listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TlsDriver {
    /// GnuTLS (`gtls`), rsyslog's usual default.
    #[default]
    Gtls,
    /// OpenSSL (`ossl`).
    Ossl,
}

/// How to start an rsyslog peer.
#[derive(Clone, Debug)]
pub(crate) struct RsyslogOpts {
    /// Listeners to open, each on its own ephemeral port.
    pub inputs: Vec<Input>,
    /// Certificate the TLS listeners present.
    pub server_cert: ServerCert,
    /// TLS implementation behind the imtcp TLS listeners.
    pub tls_driver: TlsDriver,
    /// rsyslog's `parser.escapeControlCharactersOnReceive`. Off (the default here) keeps
    /// received == sent; on mimics a stock rsyslog SIEM box (LF arrives as `#012`).
    pub escape_control_chars: bool,
    /// `maxMessageSize` (e.g. `"8k"` to mimic rsyslog's default); `None` = the script's 256k.
    pub max_message_size: Option<String>,
    /// Write only `input`, `msg` and `received` per message (`OUTPUT=slim`): a fifth of the
    /// bytes, for tests that send a million messages and look at their bodies only.
    pub slim_output: bool,
    /// A direct main queue (`QUEUE_TYPE=direct`): each message is written out before rsyslog
    /// goes on reading — and, over RELP, before it answers.
    pub direct_queue: bool,
}

impl Default for RsyslogOpts {
    fn default() -> Self {
        RsyslogOpts {
            inputs: vec![Input::Udp, Input::Tcp, Input::Tls, Input::Mtls],
            server_cert: ServerCert::Valid,
            tls_driver: TlsDriver::Gtls,
            escape_control_chars: false,
            max_message_size: None,
            slim_output: false,
            direct_queue: false,
        }
    }
}

/// How to start a syslog-ng peer.
#[derive(Clone, Debug)]
pub(crate) struct SyslogNgOpts {
    /// Listeners to open, each on its own ephemeral port.
    pub inputs: Vec<Input>,
    /// Certificate the TLS listeners present.
    pub server_cert: ServerCert,
}

impl Default for SyslogNgOpts {
    fn default() -> Self {
        SyslogNgOpts {
            inputs: vec![
                Input::Udp,
                Input::Tcp,
                Input::TcpLf,
                Input::Tls,
                Input::Mtls,
            ],
            server_cert: ServerCert::Valid,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rsyslog,
    SyslogNg,
}

impl Kind {
    fn script(self) -> &'static str {
        match self {
            Kind::Rsyslog => "rsyslog.sh",
            Kind::SyslogNg => "syslog-ng.sh",
        }
    }
    /// `/proc/PID/comm` of the daemon: checked before signalling, so a recycled PID is never hit.
    fn comm(self) -> &'static str {
        match self {
            Kind::Rsyslog => "rsyslogd",
            Kind::SyslogNg => "syslog-ng",
        }
    }
    /// How long the daemon gets between SIGTERM and SIGKILL.
    fn stop_deadline(self) -> Duration {
        match self {
            Kind::Rsyslog => RSYSLOG_STOP_DEADLINE,
            Kind::SyslogNg => STOP_DEADLINE,
        }
    }
    /// Inputs whose port the peer picks itself and reports (rsyslog imtcp `listenPortFileName`),
    /// which leaves no window for another process to take it. Others get a port picked here.
    fn picks_own_port(self, input: Input) -> bool {
        self == Kind::Rsyslog && matches!(input, Input::Tcp | Input::Tls | Input::Mtls)
    }
    fn supports(self, input: Input) -> bool {
        match self {
            Kind::Rsyslog => !matches!(input, Input::TcpLf | Input::TlsLf),
            Kind::SyslogNg => !matches!(input, Input::Relp | Input::RelpTls | Input::RelpMtls),
        }
    }
}

/// A running receiver process, its work directory and its ports. Stopped on drop.
pub(crate) struct Peer {
    kind: Kind,
    pid: Option<u32>,
    ports: BTreeMap<Input, u16>,
    /// The script's settings, kept for [`Peer::restart`].
    env: Vec<(String, String)>,
    cert_dir: Option<&'static Path>,
    // Last field: dropped after `Drop::drop` stopped the process that writes into it.
    workdir: Option<TempDir>,
}

/// A private rsyslogd on loopback (see [`RsyslogOpts`]). Derefs to [`Peer`].
pub(crate) struct Rsyslog(Peer);

/// A private syslog-ng on loopback (see [`SyslogNgOpts`]). Derefs to [`Peer`].
pub(crate) struct SyslogNg(Peer);

impl Rsyslog {
    /// Starts rsyslogd with the listeners in `opts`, each on a free ephemeral port, and waits
    /// until all of them are bound (TCP ones accept a connection).
    pub(crate) fn start(opts: RsyslogOpts) -> Result<Self, PeerError> {
        let mut env = vec![
            ("SERVER_CERT", opts.server_cert.file_stem().to_owned()),
            (
                "TLS_DRIVER",
                match opts.tls_driver {
                    TlsDriver::Gtls => "gtls".to_owned(),
                    TlsDriver::Ossl => "ossl".to_owned(),
                },
            ),
            (
                "ESCAPE_CC",
                if opts.escape_control_chars {
                    "on"
                } else {
                    "off"
                }
                .to_owned(),
            ),
        ];
        if opts.slim_output {
            env.push(("OUTPUT", "slim".to_owned()));
        }
        if opts.direct_queue {
            env.push(("QUEUE_TYPE", "direct".to_owned()));
        }
        if let Some(size) = opts.max_message_size {
            env.push(("MAX_MSG", size));
        }
        Peer::start(Kind::Rsyslog, &opts.inputs, &env).map(Rsyslog)
    }
}

impl SyslogNg {
    /// Starts syslog-ng with the listeners in `opts`, each on a free ephemeral port, and waits
    /// until all of them are bound (TCP ones accept a connection).
    pub(crate) fn start(opts: SyslogNgOpts) -> Result<Self, PeerError> {
        let env = vec![("SERVER_CERT", opts.server_cert.file_stem().to_owned())];
        Peer::start(Kind::SyslogNg, &opts.inputs, &env).map(SyslogNg)
    }

    /// Messages of `input` that failed the strict RFC 5424 check of the raw header
    /// (`out/<input>.invalid.jsonl`); syslog-ng itself would have accepted them.
    pub(crate) fn invalid_messages(&self, input: Input) -> Vec<Value> {
        self.0
            .read_jsonl(&format!("{}.invalid.jsonl", input.name()))
    }
}

impl std::ops::Deref for Rsyslog {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.0
    }
}

impl std::ops::DerefMut for Rsyslog {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.0
    }
}

impl std::ops::Deref for SyslogNg {
    type Target = Peer;
    fn deref(&self) -> &Peer {
        &self.0
    }
}

impl std::ops::DerefMut for SyslogNg {
    fn deref_mut(&mut self) -> &mut Peer {
        &mut self.0
    }
}

impl Peer {
    fn start(kind: Kind, inputs: &[Input], env: &[(&str, String)]) -> Result<Self, PeerError> {
        if inputs.is_empty() {
            return Err(PeerError::Failed(format!("{kind:?}: no input requested")));
        }
        if let Some(bad) = inputs.iter().find(|i| !kind.supports(**i)) {
            return Err(PeerError::Failed(format!("{kind:?} has no {bad:?} input")));
        }
        let needs_tls = inputs.iter().any(|i| {
            matches!(
                i,
                Input::Tls | Input::TlsLf | Input::Mtls | Input::RelpTls | Input::RelpMtls
            )
        });
        let cert_dir = if needs_tls { Some(try_certs()?) } else { None };

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let workdir = tempfile::Builder::new()
                .prefix(&format!("siemfwd-{}-", kind.comm()))
                .tempdir()
                .map_err(|e| PeerError::Failed(format!("cannot create a temp dir: {e}")))?;
            let own: Vec<Input> = inputs
                .iter()
                .copied()
                .filter(|i| kind.picks_own_port(*i))
                .collect();
            let picked: Vec<Input> = inputs
                .iter()
                .copied()
                .filter(|i| !own.contains(i))
                .collect();
            let ports = pick_ports(&picked)?;
            let mut cmd = launch_command(kind, workdir.path(), &ports, &own, cert_dir, env);
            match run_script(&mut cmd) {
                Ok(stdout) => {
                    let Ok(pid) = stdout.trim().parse::<u32>() else {
                        // Started, but we cannot tell by what PID: let the script stop it.
                        let mut stop = Command::new("bash");
                        stop.arg(script(kind.script()))
                            .arg(workdir.path())
                            .arg("stop");
                        let _ = run_script(&mut stop);
                        let msg = format!("{} printed no PID: {stdout:?}", kind.script());
                        return Err(PeerError::Failed(msg));
                    };
                    // From here on, an early return drops `peer`, which stops the process.
                    let mut peer = Peer {
                        kind,
                        pid: Some(pid),
                        ports,
                        env: env
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), v.clone()))
                            .collect(),
                        cert_dir,
                        workdir: Some(workdir),
                    };
                    peer.read_reported_ports(inputs)?;
                    peer.wait_accepting()?;
                    return Ok(peer);
                }
                Err(err @ PeerError::PortInUse(_)) => last_err = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or_else(|| PeerError::Failed("no attempt made".to_owned())))
    }

    /// Stops the daemon and starts it again with the same ports, settings and work directory
    /// (received messages are appended to the same files): a SIEM restarted during a run.
    pub(crate) fn restart(&mut self) -> Result<(), PeerError> {
        self.stop();
        self.start_again()
    }

    /// SIGKILL the daemon (nothing written out, nothing said to its peers), then start it
    /// again on the same ports.
    pub(crate) fn kill_and_restart(&mut self) -> Result<(), PeerError> {
        if let Some(pid) = self.pid.take() {
            if self.is_ours(pid) {
                signal(pid, "KILL");
                let deadline = Instant::now() + self.kind.stop_deadline();
                while self.is_ours(pid) && Instant::now() < deadline {
                    thread::sleep(POLL);
                }
            }
        }
        self.start_again()
    }

    fn start_again(&mut self) -> Result<(), PeerError> {
        let env: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let mut cmd = launch_command(
            self.kind,
            self.workdir(),
            &self.ports,
            &[],
            self.cert_dir,
            &env,
        );
        let stdout = run_script(&mut cmd)?;
        let pid = stdout.trim().parse::<u32>().map_err(|_| {
            PeerError::Failed(format!(
                "{} printed no PID on restart: {stdout:?}",
                self.kind.script()
            ))
        })?;
        self.pid = Some(pid);
        self.wait_accepting()
    }

    /// Takes each listener's port from `WORKDIR/ports/<input>`, where the script records the
    /// port it verified (and, for self-picked ports, the only place that knows it).
    fn read_reported_ports(&mut self, inputs: &[Input]) -> Result<(), PeerError> {
        for &input in inputs {
            let file = self.workdir().join("ports").join(input.name());
            let text = fs::read_to_string(&file).unwrap_or_default();
            match text.trim().parse::<u16>() {
                Ok(port) if port != 0 => {
                    self.ports.insert(input, port);
                }
                _ => {
                    let diag = self.diagnostics();
                    return Err(PeerError::Failed(format!(
                        "{:?}: no port for {input:?} in {} ({text:?})\n{diag}",
                        self.kind,
                        file.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Waits until each plain TCP listener completes a TCP handshake, under
    /// [`START_DEADLINE`]. The script already checked that the peer's PID owns each socket;
    /// UDP cannot be probed, and TLS listeners are not: a probe is a handshake that fails,
    /// and rsyslog 8.2302's `ossl` driver mishandles the failed session's socket — a
    /// connection accepted soon after is reset or, worse, gets another session's bytes
    /// (about one run in forty under parallel load).
    fn wait_accepting(&mut self) -> Result<(), PeerError> {
        let deadline = Instant::now() + START_DEADLINE;
        for (input, port) in self.ports.clone() {
            if input.is_udp() || input.is_tls() {
                continue;
            }
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                match TcpStream::connect_timeout(&addr, POLL * 10) {
                    Ok(_probe) => break,
                    Err(e) if Instant::now() >= deadline => {
                        let diag = self.diagnostics();
                        return Err(PeerError::Failed(format!(
                            "{:?} {input:?} on {addr} does not accept: {e}\n{diag}",
                            self.kind
                        )));
                    }
                    Err(_) => thread::sleep(POLL),
                }
            }
        }
        Ok(())
    }

    /// The port of `input`. Panics if the peer was started without it (a test bug).
    pub(crate) fn port(&self, input: Input) -> u16 {
        match self.ports.get(&input) {
            Some(port) => *port,
            None => panic!("{:?} was started without {input:?}", self.kind),
        }
    }

    /// `127.0.0.1:<port of input>`.
    pub(crate) fn addr(&self, input: Input) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(input)))
    }

    /// The process id of the daemon (`None` once stopped).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The peer's work directory: config, `internal.log`, `out/`.
    pub(crate) fn workdir(&self) -> &Path {
        match &self.workdir {
            Some(dir) => dir.path(),
            None => Path::new("/nonexistent"),
        }
    }

    /// Every message received so far on `input`, one JSON object each (all values strings;
    /// see scripts/peers/README.md for the keys). A line still being written is left out.
    pub(crate) fn messages(&self, input: Input) -> Vec<Value> {
        self.read_jsonl(&format!("{}.jsonl", input.name()))
    }

    fn read_jsonl(&self, file: &str) -> Vec<Value> {
        let path = self.workdir().join("out").join(file);
        let text = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        // Only complete lines: the peer may be in the middle of appending the next one.
        let complete = match text.iter().rposition(|b| *b == b'\n') {
            Some(end) => &text[..end],
            None => return Vec::new(),
        };
        complete
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| match serde_json::from_slice(line) {
                Ok(value) => value,
                Err(e) => panic!(
                    "{} wrote a line that is not JSON ({e}): {}",
                    path.display(),
                    String::from_utf8_lossy(line)
                ),
            })
            .collect()
    }

    /// Waits until `input` has received at least `n` messages and returns them all.
    /// Panics after `timeout` with what did arrive and the peer's own log.
    pub(crate) fn wait_for(&self, input: Input, n: usize, timeout: Duration) -> Vec<Value> {
        match self.try_wait_for(input, n, timeout) {
            Ok(msgs) => msgs,
            Err(got) => panic!(
                "{:?} {input:?}: expected {n} message(s) within {timeout:?}, got {}: {got:#?}\n{}",
                self.kind,
                got.len(),
                self.diagnostics()
            ),
        }
    }

    /// [`Peer::wait_for`] without the panic: `Err(what arrived)` on timeout.
    pub(crate) fn try_wait_for(
        &self,
        input: Input,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Value>, Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages(input);
            if msgs.len() >= n {
                return Ok(msgs);
            }
            if Instant::now() >= deadline {
                return Err(msgs);
            }
            thread::sleep(POLL);
        }
    }

    /// The peer's own log (TLS errors, truncation warnings, dropped frames).
    pub(crate) fn internal_log(&self) -> String {
        fs::read_to_string(self.workdir().join("internal.log")).unwrap_or_default()
    }

    /// Text to print when a test about this peer fails: its log and every output file.
    pub(crate) fn diagnostics(&self) -> String {
        let mut out = format!(
            "--- {:?} work dir {} ---\n",
            self.kind,
            self.workdir().display()
        );
        out.push_str("--- internal.log ---\n");
        out.push_str(&self.internal_log());
        for name in ["rsyslogd.stdout", "syslog-ng.stdout"] {
            if let Ok(text) = fs::read_to_string(self.workdir().join(name)) {
                if !text.is_empty() {
                    out.push_str(&format!("--- {name} ---\n{text}"));
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.workdir().join("out")) {
            let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let text = fs::read_to_string(&file).unwrap_or_default();
                out.push_str(&format!("--- {} ---\n{text}", file.display()));
            }
        }
        out
    }

    /// Stops the daemon: SIGTERM, then SIGKILL if it is still alive after its deadline
    /// ([`STOP_DEADLINE`]; rsyslogd, which writes out what it accepted first,
    /// [`RSYSLOG_STOP_DEADLINE`]). Only the PID this peer started is signalled, and only while
    /// it is still that program.
    pub(crate) fn stop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        if !self.is_ours(pid) {
            return;
        }
        signal(pid, "TERM");
        let deadline = Instant::now() + self.kind.stop_deadline();
        while self.is_ours(pid) {
            if Instant::now() >= deadline {
                signal(pid, "KILL");
                break;
            }
            thread::sleep(POLL);
        }
    }

    /// True while `pid` is a live (not zombie) process running this peer's program.
    fn is_ours(&self, pid: u32) -> bool {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != self.kind.comm() {
            return false;
        }
        // The daemon was re-parented when the start script exited; until its new parent reaps
        // it, a dead one lingers as a zombie ("Z"), which no signal can affect.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        !matches!(state, None | Some(Some('Z' | 'X')) | Some(None))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
        if std::env::var("SIEMFWD_KEEP_PEERS").is_ok_and(|v| v == "1") {
            if let Some(dir) = self.workdir.take() {
                eprintln!("SIEMFWD_KEEP_PEERS: kept {}", dir.keep().display());
            }
        }
    }
}

/// The start command of `kind`'s script: every port variable is set (from `ports`, `auto` for
/// the inputs in `own`, else 0), so none leaks in from the caller's environment.
fn launch_command(
    kind: Kind,
    workdir: &Path,
    ports: &BTreeMap<Input, u16>,
    own: &[Input],
    cert_dir: Option<&Path>,
    env: &[(&str, String)],
) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script(kind.script())).arg(workdir).arg("start");
    for input in ALL_INPUTS {
        let port = match ports.get(&input) {
            Some(port) => port.to_string(),
            None if own.contains(&input) => "auto".to_owned(),
            None => "0".to_owned(),
        };
        cmd.env(input.port_var(), port);
    }
    cmd.env("BIND", "127.0.0.1");
    if let Some(dir) = cert_dir {
        cmd.env("CERT_DIR", dir);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn signal(pid: u32, sig: &str) {
    // std has no kill(2) and the crate forbids `unsafe`; bash's builtin `kill` does it (the
    // kill(1) binary comes from procps, which minimal images lack; bash runs the scripts anyway).
    let _ = Command::new("bash")
        .args(["-c", "kill -s \"$0\" \"$1\"", sig, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

const ALL_INPUTS: [Input; 9] = [
    Input::Udp,
    Input::Tcp,
    Input::TcpLf,
    Input::Tls,
    Input::TlsLf,
    Input::Mtls,
    Input::Relp,
    Input::RelpTls,
    Input::RelpMtls,
];

/// Free ports for `inputs`: the kernel picks each (bind port 0). All sockets are held until
/// every port is picked, so no two inputs get the same one, then released for the peer.
/// Another process may grab one before the peer binds it; the script then exits 4 and
/// [`Peer::start`] retries with new ports.
fn pick_ports(inputs: &[Input]) -> Result<BTreeMap<Input, u16>, PeerError> {
    let fail = |e: io::Error| PeerError::Failed(format!("cannot bind 127.0.0.1:0: {e}"));
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    let mut ports = BTreeMap::new();
    for &input in inputs {
        let port = if input.is_udp() {
            let sock = UdpSocket::bind("127.0.0.1:0").map_err(fail)?;
            let port = sock.local_addr().map_err(fail)?.port();
            held_udp.push(sock);
            port
        } else {
            let sock = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
            let port = sock.local_addr().map_err(fail)?.port();
            held_tcp.push(sock);
            port
        };
        ports.insert(input, port);
    }
    Ok(ports)
}
