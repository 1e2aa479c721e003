//! The `siemfwd` binary as a person uses it: `check` on broken configs, `run`
//! and `tap` on the bundled sample, the malformed-line policies, the example
//! configs. Each test runs the real binary in a temp dir.

use std::path::Path;
use std::process::{Command, Output};

fn siemfwd(dir: &Path, args: &[&str]) -> Output {
    crate::support::siemfwd::hermetic()
        .args(args)
        .current_dir(dir)
        .env_remove("SIEMFWD_CONFIG")
        .env_remove("SLS_ENDPOINT")
        .output()
        .expect("siemfwd runs")
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_names_the_key_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("[sink]\nadress = \"x:1\"\n", "sink.adress: unknown field `adress`"),
        ("[sink]\ntype = \"smoke-signal\"\n", "sink.type: unknown variant `smoke-signal`"),
        ("[sink]\nconnect_timeout = \"soon\"\n", "sink.connect_timeout: "),
        ("[format]\nfacility = \"local9\"\n", "format.facility"),
        ("[format]\napp_name = \"has space\"\n", "format.app_name"),
        ("[pipeline]\nbatch_records = 0\n", "pipeline.batch_records: must be at least 1"),
        (
            "[source.file]\npaths = [\"logs\"]\n[sink]\ntype = \"tls\"\naddress = \"127.0.0.1:6514\"\n[sink.tls]\nca_file = \"missing.pem\"\n",
            "sink.tls.ca_file",
        ),
        ("[source.file]\npaths = [\"nope.ndjson\"]\n", "source.file.paths"),
        ("[sink\n", "line 1"),
        // Issue 12: overflowing values were accepted and then panicked.
        (
            "[pipeline]\ncheckpoint_interval = \"18446744073709551615s\"\n",
            "pipeline.checkpoint_interval: \"18446744073709551615s\" is longer than a year",
        ),
        (
            "[source.sls]\nheartbeat_interval = \"18446744073709551615s\"\n",
            "source.sls.heartbeat_interval: ",
        ),
        (
            "[pipeline]\nmax_in_flight_bytes = \"100000TiB\"\n",
            "pipeline.max_in_flight_bytes: \"100000TiB\" is larger than 1TiB",
        ),
        // Issue 14: CEF and LEEF maps are checked against their formats.
        (
            "[format.body]\ntype = \"cef\"\n[format.body.fields]\n\"event.sourceIpAddress\" = \"sourceAddress\"\n",
            "format.body.fields.\"event.sourceIpAddress\": \"sourceAddress\" is not a CEF key",
        ),
        (
            "[format.body]\ntype = \"cef\"\nversion = 3\n",
            "format.body.version: \"3\" is not a CEF version",
        ),
        (
            "[format.body]\ntype = \"leef\"\nversion = 2.0\ndelimiter = \"^^\"\n",
            "format.body.delimiter: \"^^\" is not one ASCII character",
        ),
        (
            "[format.body]\ntype = \"cef\"\nvendr = \"x\"\n",
            "unknown field `vendr`",
        ),
        // A syntax error says where, never what the line holds (a secret).
        (
            "[source.sls]\naccess_key_secret = \"hunter2\n",
            "TOML syntax error at line 2",
        ),
    ];
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    for (config, expected) in cases {
        std::fs::write(dir.path().join("c.toml"), config).unwrap();
        let out = siemfwd(dir.path(), &["check", "-c", "c.toml"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{config}\n{err}");
        assert!(
            err.contains(expected),
            "{config}: expected {expected:?} in\n{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!err.contains("hunter2"), "a secret in an error: {err}");
    }
}

#[test]
fn check_reports_an_unreachable_sink_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("a.ndjson"), "{}\n").unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[source.file]\npaths = [\"a.ndjson\"]\n[sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let out = siemfwd(dir.path(), &["check", "-c", "c.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn check_reports_a_state_dir_that_cannot_be_written_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), "{}\n").unwrap();
    let config = |state: &str| {
        format!("[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"{state}\"\n[sink]\ntype = \"stdout\"\n")
    };
    std::fs::write(dir.path().join("c.toml"), config("new/state")).unwrap();
    let out = siemfwd(dir.path(), &["check", "-c", "c.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("state: ok (new/state will be created in"),
        "{said}"
    );
    assert!(
        !dir.path().join("new").exists(),
        "check created the state dir"
    );
    // A file where the folder should be: found by check, not after sending.
    std::fs::write(dir.path().join("c.toml"), config("a.ndjson/state")).unwrap();
    let out = siemfwd(dir.path(), &["check", "-c", "c.toml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("state check failed") && err.contains("not a folder"),
        "{err}"
    );
}

#[test]
fn a_log_file_in_a_missing_folder_and_an_unreadable_config_are_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = siemfwd(
        dir.path(),
        &[
            "check",
            "--log-file",
            "no/such/folder/siemfwd.log",
            "-c",
            "c.toml",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the folder no/such/folder does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("no").exists(), "folders were created");
    // A config path that is a folder: its cause once, not twice.
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let out = siemfwd(dir.path(), &["check", "-c", "conf.d"]);
    let err = stderr(&out);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

#[test]
fn secrets_never_reach_errors_or_help() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "[source]\ntype = \"sls\"\n").unwrap();
    let out = crate::support::siemfwd::hermetic()
        .args(["check", "-c", "c.toml"])
        .current_dir(dir.path())
        .env("SLS_AK_KEY", "hunter2-secret")
        .env("SLS_AK_ID", "id")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
    let help = siemfwd(dir.path(), &["run", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("SIEMFWD_CONFIG"));
}

/// The README's first command, end to end: every bundled log is printed once
/// as an RFC 5424 message, and a second run prints nothing (checkpoints).
#[test]
fn quickstart_forwards_every_bundled_log_once() {
    let dir = tempfile::tempdir().unwrap();
    let sample = repo_root().join("examples/logs/actiontrail.ndjson");
    let lines = std::fs::read_to_string(&sample).unwrap().lines().count();
    let config = std::fs::read_to_string(repo_root().join("examples/quickstart.toml"))
        .unwrap()
        .replace(
            "examples/logs/actiontrail.ndjson",
            &sample.display().to_string(),
        )
        .replace("target/quickstart-state", "state");
    std::fs::write(dir.path().join("q.toml"), config).unwrap();
    let first = siemfwd(dir.path(), &["run", "-c", "q.toml"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = String::from_utf8(first.stdout).unwrap();
    assert_eq!(out.lines().count(), lines);
    for line in out.lines() {
        assert!(line.starts_with("<158>1 2026-11-"), "{line}");
        assert!(
            line.contains(" actiontrail - audit [siemfwd@32473 event.eventName=\""),
            "{line}"
        );
        assert!(
            line.contains("] ||__topic__=actiontrail_audit_event||__source__=actiontrail||"),
            "{line}"
        );
    }
    let second = siemfwd(dir.path(), &["run", "-c", "q.toml"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(second.stdout.is_empty(), "resumed after the checkpoint");
}

/// `tap` prints the exact wire bytes (octet counting for a TCP sink) and
/// commits nothing, so a later run still sends everything.
#[test]
fn tap_prints_framed_wire_bytes_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.ndjson"),
        "{\"__time__\":\"1700000000\",\"__time_ns_part__\":\"123456789\",\"msg\":\"two\\nlines\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"state\"\n\
         [format]\nhostname = \"h\"\napp_name = \"app\"\n\
         [sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let msg = "<14>1 2023-11-14T22:13:20.123456Z h app - - - ||msg=two\nlines";
    for _ in 0..2 {
        let out = siemfwd(dir.path(), &["tap", "-c", "c.toml"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{} {msg}", msg.len())
        );
    }
    // LF framing escapes the newline instead.
    let lf = std::fs::read_to_string(dir.path().join("c.toml")).unwrap() + "framing = \"lf\"\n";
    std::fs::write(dir.path().join("c.toml"), lf).unwrap();
    let out = siemfwd(dir.path(), &["run", "--dry-run", "-c", "c.toml"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "<14>1 2023-11-14T22:13:20.123456Z h app - - - ||msg=two\\nlines\n"
    );
}

#[test]
fn malformed_line_is_reported_with_file_and_line_then_skipped_or_stops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.ndjson"),
        "{\"n\":\"1\"}\n{\"n\":\"2\"\n{\"n\":\"3\"}\n",
    )
    .unwrap();
    let base = "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"state\"\n";
    let run = |policy: &str, state: &str| {
        std::fs::write(
            dir.path().join("c.toml"),
            format!("{}on_malformed = \"{policy}\"\n[format]\nhostname = \"h\"\n[sink]\ntype = \"stdout\"\n", base.replace("\"state\"", state)),
        )
        .unwrap();
        siemfwd(dir.path(), &["run", "-c", "c.toml"])
    };
    let skip = run("skip", "\"s1\"");
    assert!(skip.status.success(), "{}", stderr(&skip));
    let out = String::from_utf8_lossy(&skip.stdout).into_owned();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("||n=1") && out.contains("||n=3"));
    assert!(stderr(&skip).contains("a.ndjson:2"), "{}", stderr(&skip));
    assert!(
        stderr(&skip).contains("malformed_skipped=1"),
        "{}",
        stderr(&skip)
    );

    let stop = run("stop", "\"s2\"");
    assert_eq!(stop.status.code(), Some(1), "{}", stderr(&stop));
    let out = String::from_utf8_lossy(&stop.stdout).into_owned();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        stderr(&stop).contains("a.ndjson:2: malformed input"),
        "{}",
        stderr(&stop)
    );
    // What came before the bad line was delivered and committed.
    let again = run("stop", "\"s2\"");
    assert_eq!(String::from_utf8(again.stdout).unwrap().lines().count(), 0);
}

#[test]
fn every_example_config_parses_and_builds_its_formatter() {
    let examples = std::fs::read_dir(repo_root().join("examples")).unwrap();
    // The packages' /etc/siemfwd/siemfwd.toml too.
    let packaged = repo_root().join("packaging/siemfwd.toml");
    for path in examples.map(|e| e.unwrap().path()).chain([packaged]) {
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let config =
            siemfwd::config::Config::from_toml(&text, &path.display().to_string(), &|_| None)
                .unwrap_or_else(|e| panic!("{e}"));
        let c = siemfwd::pipeline::constraints_for(&config.sink);
        siemfwd::format::Formatter::build(
            &config.format,
            c,
            &siemfwd::counters::Metrics::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn worker_threads_zero_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = siemfwd(dir.path(), &["check", "--worker-threads", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--worker-threads"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn more_worker_threads_forward_the_same_bytes() {
    // The thread count changes who runs the work, never what goes out:
    // four files (four shard tasks) tapped with one worker and with four.
    let dir = tempfile::tempdir().expect("tempdir");
    for f in 0..4 {
        let lines: String = (0..500)
            .map(|i| format!("{{\"__time__\":\"1700000000\",\"f\":\"{f}\",\"i\":\"{i}\"}}\n"))
            .collect();
        std::fs::write(dir.path().join(format!("{f}.ndjson")), lines).expect("write input");
    }
    std::fs::write(
        dir.path().join("c.toml"),
        "[source.file]\npaths = [\"0.ndjson\", \"1.ndjson\", \"2.ndjson\", \"3.ndjson\"]\n\
         state_dir = \"state\"\n[format]\nhostname = \"h\"\n\
         [sink]\ntype = \"tcp\"\naddress = \"127.0.0.1:9\"\n",
    )
    .expect("write config");
    let sorted = |o: &Output| {
        // Octet-counted frames, split by their lengths. Shards interleave
        // differently from run to run; compare each file's messages in order.
        let mut per_file: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
        let mut rest = &o.stdout[..];
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').expect("MSG-LEN SP");
            let len: usize = std::str::from_utf8(&rest[..sp])
                .expect("digits")
                .parse()
                .expect("a length");
            let msg = &rest[sp + 1..sp + 1 + len];
            rest = &rest[sp + 1 + len..];
            let at = msg
                .windows(4)
                .position(|w| w == b"||f=")
                .expect("the f field");
            per_file[usize::from(msg[at + 4] - b'0')].push(msg.to_vec());
        }
        per_file
    };
    let one = siemfwd(dir.path(), &["tap", "-c", "c.toml"]);
    let four = siemfwd(
        dir.path(),
        &["tap", "-c", "c.toml", "--worker-threads", "4"],
    );
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(four.status.success(), "{}", stderr(&four));
    let (one, four) = (sorted(&one), sorted(&four));
    assert!(
        one.iter().all(|f| f.len() == 500),
        "{:?}",
        one.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(one, four);
}

#[test]
fn run_to_a_stdout_that_fails_for_good_exits_1_and_commits_nothing() {
    // Issue 12: stdout on a full disk (or a closed pipe) ended with exit 0,
    // no error line and nothing delivered.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.ndjson"),
        "{\"a\":\"1\"}\n{\"a\":\"2\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"st\"\n[sink]\ntype = \"stdout\"\n",
    )
    .unwrap();
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("SKIPPED: no /dev/full on this system");
        return;
    };
    let out = crate::support::siemfwd::hermetic()
        .args(["run", "-c", "c.toml"])
        .current_dir(dir.path())
        .env_remove("SIEMFWD_CONFIG")
        .env_remove("SLS_ENDPOINT")
        .stdout(full)
        .output()
        .expect("siemfwd runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("siemfwd: error: writing to standard output: No space left on device"),
        "{err}"
    );
    // Nothing was delivered, so nothing is committed: a second run with a
    // working stdout sends both lines.
    let out = siemfwd(dir.path(), &["run", "-c", "c.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

/// Whether the file at `path` comes to contain `what` within 20 s.
fn file_says(path: &std::path::Path, what: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(what)
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn hup_and_usr_signals_do_not_kill_a_run() {
    // Issue 12: SIGHUP (logrotate, systemd ExecReload) and SIGUSR1 ended the
    // process at once, without draining or committing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), "{\"a\":\"1\"}\n").unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"st\"\nfollow = true\n\
         [sink]\ntype = \"stdout\"\n[pipeline]\ncheckpoint_interval = \"100ms\"\n",
    )
    .unwrap();
    let log = dir.path().join("err.log");
    let mut child = crate::support::siemfwd::hermetic()
        .args(["run", "-c", "c.toml"])
        .current_dir(dir.path())
        .env_remove("SIEMFWD_CONFIG")
        .env_remove("SLS_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("siemfwd starts");
    let pid = child.id().to_string();
    let wait_for = |what: &str| file_says(&log, what);
    assert!(wait_for("siemfwd started"), "never started");
    let kill = |sig: &str| {
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
    };
    for sig in ["-HUP", "-USR1", "-USR2"] {
        kill(sig);
    }
    assert!(
        wait_for("SIGUSR2 ignored"),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "a signal ended the run"
    );
    kill("-TERM");
    let status = child.wait().expect("wait");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("SIGHUP: no log file to reopen"), "{text}");
    assert!(text.contains("SIGUSR1 ignored"), "{text}");
}

#[test]
fn hup_opens_the_log_file_again_after_logrotate_renamed_it() {
    // Issue 17: what logrotate does — rename the file, then SIGHUP — leaves
    // the old lines in the renamed file and the new ones in a new file at
    // the configured path.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.ndjson"), "{\"a\":\"1\"}\n").unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"st\"\nfollow = true\n\
         [sink]\ntype = \"stdout\"\n",
    )
    .unwrap();
    let log = dir.path().join("siemfwd.log");
    let rotated = dir.path().join("siemfwd.log.1");
    let mut child = crate::support::siemfwd::hermetic()
        .args(["run", "-c", "c.toml", "--log-file", "siemfwd.log"])
        .current_dir(dir.path())
        .env_remove("SIEMFWD_CONFIG")
        .env_remove("SLS_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("siemfwd starts");
    let pid = child.id().to_string();
    assert!(file_says(&log, "siemfwd started"), "never started");
    std::fs::rename(&log, &rotated).unwrap();
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(
        file_says(&log, "log file opened again"),
        "no new file: {}",
        std::fs::read_to_string(&rotated).unwrap_or_default()
    );
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(old.contains("siemfwd started"), "{old}");
    assert!(!old.contains("opened again"), "{old}");
    assert!(!new.contains("siemfwd started"), "{new}");
    assert!(new.contains("siemfwd stopped"), "{new}");
}

#[test]
fn a_record_over_max_message_is_cut_not_resent_forever() {
    // Issue 12: a 60 MB record to a receiver that closes the connection on
    // an oversized frame was sent again after every reconnect, forever.
    // This receiver closes on any octet-counted frame over 64 KiB.
    use std::io::{BufRead as _, Read as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut r = std::io::BufReader::new(conn);
            loop {
                let mut len = Vec::new();
                if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                    break;
                }
                let Ok(n) = String::from_utf8_lossy(&len).trim().parse::<usize>() else {
                    break;
                };
                if n > 64 << 10 {
                    break; // oversized: drop the connection
                }
                let mut msg = vec![0; n];
                if r.read_exact(&mut msg).is_err() {
                    break;
                }
                let _ = tx.send(n);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(1 << 20);
    std::fs::write(
        dir.path().join("a.ndjson"),
        format!("{{\"big\":\"{big}\"}}\n{{\"small\":\"ok\"}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[source.file]\npaths = [\"a.ndjson\"]\nstate_dir = \"st\"\n\
             [sink]\ntype = \"tcp\"\naddress = \"{addr}\"\nsettle_time = \"50ms\"\n"
        ),
    )
    .unwrap();
    let mut child = crate::support::siemfwd::hermetic()
        .args(["run", "-c", "c.toml"])
        .current_dir(dir.path())
        .env_remove("SIEMFWD_CONFIG")
        .env_remove("SLS_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("siemfwd starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.is_some(), "never finished (resent forever?):\n{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    // siemfwd may exit before the receiver thread has read what the kernel
    // already took: wait for both, then for anything more.
    let wait = std::time::Duration::from_secs(10);
    let mut sizes: Vec<usize> = (0..2).filter_map(|_| rx.recv_timeout(wait).ok()).collect();
    sizes.extend(rx.recv_timeout(std::time::Duration::from_millis(200)));
    assert_eq!(sizes.len(), 2, "both records, once each: {sizes:?}");
    assert_eq!(sizes[0], 64 << 10, "the big one cut to sink.max_message");
    assert!(err.contains("stream_truncated=1"), "{err}");
}

#[test]
fn transforms_set_pri_per_record_and_filtered_records_are_committed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.ndjson"),
        concat!(
            "{\"__time__\":\"1700000000\",\"event.eventRW\":\"Read\",\"event.eventName\":\"ListUsers\"}\n",
            "{\"__time__\":\"1700000000\",\"event.eventRW\":\"Write\",\"event.eventName\":\"DeleteUser\",\"event.errorCode\":\"NoPermission\"}\n",
            "{\"__time__\":\"1700000000\",\"event.eventRW\":\"Write\",\"event.eventName\":\"CreateUser\"}\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        r#"[source.file]
paths = ["a.ndjson"]
state_dir = "state"
[format]
hostname = "h"
app_name = "app"
facility = "local4"
[sink]
type = "stdout"

[[transforms]]
type = "filter"
when = { field = "event.eventRW", equals = "Read" }

[[transforms]]
type = "severity"
value = "warning"
when = { field = "event.errorCode", exists = true }

[[transforms]]
type = "header"
msgid = "{event.eventName}"
"#,
    )
    .unwrap();
    let out = siemfwd(dir.path(), &["run", "-c", "c.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // local4 = 20: warning 20*8+4 = 164; the configured info 20*8+6 = 166.
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("<164>1 2023-11-14T22:13:20.000000Z h app - DeleteUser - "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("<166>1 2023-11-14T22:13:20.000000Z h app - CreateUser - "),
        "{}",
        lines[1]
    );
    assert!(
        stderr(&out).contains("records_filtered=1"),
        "{}",
        stderr(&out)
    );
    // Everything, the filtered record included, was committed: a second run
    // sends nothing.
    let again = siemfwd(dir.path(), &["run", "-c", "c.toml"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
    // `check` names the path of a step that cannot work.
    let bad = std::fs::read_to_string(dir.path().join("c.toml")).unwrap()
        + "\n[[transforms]]\ntype = \"severity\"\nfrom = \"level\"\nmap = { FATAL = \"loudest\" }\n";
    std::fs::write(dir.path().join("c.toml"), bad).unwrap();
    let check = siemfwd(dir.path(), &["check", "-c", "c.toml"]);
    assert!(!check.status.success());
    assert!(
        stderr(&check).contains("transforms[3].map.FATAL: unknown value \"loudest\""),
        "{}",
        stderr(&check)
    );
}
