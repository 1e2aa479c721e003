//! The packages `scripts/package` builds (issue 17): the `.deb` installs with `dpkg -i`,
//! the installed binary runs the quickstart from the installed examples, `siemfwd check`
//! passes on the installed configuration (pointed at the emulator and a receiver through
//! the environment, as an operator's `/etc/siemfwd/siemfwd.env` would), the installed unit
//! passes `systemd-analyze verify`; the `.rpm` lists the same files (`rpm -qlp`) with the
//! same configuration files; the binary asks for no glibc newer than the one scripts/package
//! links against (2.17), nor does either package. The package is purged again at the end.
//!
//! `scripts/test` builds the packages before `cargo test`; run `scripts/package` first when
//! running this alone. Installing needs root, and a machine where siemfwd is not installed
//! already (the test never replaces an operator's installation).

use crate::sls_support;
use crate::support::siemfwd::command_at;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED: &str = "/usr/bin/siemfwd";
/// The glibc scripts/package links the binary against (RHEL/CentOS 7's).
const GLIBC_FLOOR: (u32, u32) = (2, 17);

/// The packages in `target/packages` (or `$SIEMFWD_PACKAGES`).
fn packages() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var_os("SIEMFWD_PACKAGES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/packages"),
        PathBuf::from,
    );
    let find = |prefix: &str, suffix: &str| {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
    };
    match (find("siemfwd_", ".deb"), find("siemfwd-", ".rpm")) {
        (Some(deb), Some(rpm)) => Some((deb, rpm)),
        _ if std::env::var_os("SIEMFWD_SKIP_PEERS").is_some() => {
            eprintln!(
                "SKIPPED: no packages in {} (scripts/package)",
                dir.display()
            );
            None
        }
        _ => panic!(
            "no .deb and .rpm in {}: run scripts/package (scripts/test does)",
            dir.display()
        ),
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Regular files a package lists, `/usr/lib` and `/lib` as one (merged /usr).
fn files(listing: &str, paths: impl Fn(&str) -> Option<String>) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(paths)
        .map(|p| p.replacen("/lib/systemd/", "/usr/lib/systemd/", 1))
        .map(|p| p.replace("/usr/usr/", "/usr/"))
        .collect()
}

/// Purges the package when dropped, test passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "siemfwd"]).output();
    }
}

#[test]
fn the_deb_installs_runs_and_the_rpm_ships_the_same_files() {
    let Some((deb, rpm)) = packages() else { return };

    // What each ships.
    let deb_files = files(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)), |l| {
        // "-rw-r--r-- 0/0 475 2026-12-05 00:00 ./etc/logrotate.d/siemfwd"
        (!l.starts_with('d')).then(|| {
            l.split_whitespace()
                .last()
                .map(|p| p.trim_start_matches('.').to_owned())
        })?
    });
    let rpm_files = files(&run(Command::new("rpm").arg("-qlp").arg(&rpm)), |l| {
        Some(l.trim().to_owned())
    });
    // Debian wants its copyright file; RPM keeps the licence in a header.
    let mut deb_only: BTreeSet<_> = deb_files.difference(&rpm_files).cloned().collect();
    deb_only.remove("/usr/share/doc/siemfwd/copyright");
    let rpm_only: BTreeSet<_> = rpm_files.difference(&deb_files).collect();
    assert!(
        deb_only.is_empty() && rpm_only.is_empty(),
        "only in the .deb: {deb_only:?}; only in the .rpm: {rpm_only:?}"
    );
    for must in [
        INSTALLED,
        "/etc/siemfwd/siemfwd.toml",
        "/usr/lib/systemd/system/siemfwd.service",
        "/etc/logrotate.d/siemfwd",
        "/usr/share/siemfwd/examples/quickstart.toml",
    ] {
        assert!(
            deb_files.contains(must),
            "{must} not shipped: {deb_files:?}"
        );
    }
    let rpm_config: BTreeSet<String> = run(Command::new("rpm").arg("-qcp").arg(&rpm))
        .lines()
        .map(str::to_owned)
        .collect();
    let deb_config: BTreeSet<String> = run(Command::new("dpkg-deb")
        .args(["--info"])
        .arg(&deb)
        .arg("conffiles"))
    .lines()
    .map(|l| l.trim().to_owned())
    .filter(|l| !l.is_empty())
    .collect();
    assert!(
        deb_config.contains("/etc/siemfwd/siemfwd.toml"),
        "{deb_config:?}"
    );
    assert_eq!(rpm_config, deb_config, "configuration files differ");

    // Old distributions: the binary asks the loader for no glibc symbol newer than
    // the glibc scripts/package links against, and neither package asks for more.
    let unpacked = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path()));
    let symbols = run(Command::new("objdump")
        .arg("-T")
        .arg(unpacked.path().join(INSTALLED.trim_start_matches('/'))));
    let rpm_requires = run(Command::new("rpm").arg("-qpR").arg(&rpm));
    for (what, text) in [("the binary", &symbols), ("the .rpm", &rpm_requires)] {
        let newest = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .filter_map(|w| w.strip_prefix("GLIBC_").and_then(version))
            .max();
        assert!(
            newest.is_some_and(|v| v <= GLIBC_FLOOR),
            "{what} needs glibc {newest:?}, over {GLIBC_FLOOR:?}"
        );
    }
    let payload = run(Command::new("rpm")
        .args(["-qp", "--qf", "%{PAYLOADCOMPRESSOR}"])
        .arg(&rpm));
    assert_eq!(payload, "xz", "an .rpm payload that RHEL 7's rpm reads");
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    let libc6 = depends
        .split("libc6 (>= ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(version);
    assert!(
        libc6.is_some_and(|v| v <= GLIBC_FLOOR),
        "Depends: {depends} (glibc {GLIBC_FLOOR:?} is enough)"
    );

    // Installed for real.
    if !is_root() {
        if std::env::var_os("SIEMFWD_SKIP_PEERS").is_some() {
            eprintln!("SKIPPED: installing the .deb needs root");
            return;
        }
        panic!("installing the .deb needs root (scripts/test runs as root in CI)");
    }
    // Anything dpkg knows of siemfwd — installed, or removed with its configuration
    // kept — is an operator's: the test's purge would take it. Refuse.
    let known = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "siemfwd"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        (known.is_empty() || known.ends_with("not-installed")) && !Path::new(INSTALLED).exists(),
        "siemfwd is known to dpkg on this machine ({known:?}); the test will not replace it"
    );
    let _purge = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let version = run(Command::new(INSTALLED).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    // The quickstart, from the installed examples: every sample event printed.
    let state = tempfile::tempdir().expect("tempdir");
    let out = run(
        command_at(INSTALLED, &["run", "-c", "examples/quickstart.toml"])
            .current_dir("/usr/share/siemfwd")
            .env("SIEMFWD_SOURCE_FILE_STATE_DIR", state.path()),
    );
    let events = std::fs::read_to_string("/usr/share/siemfwd/examples/logs/actiontrail.ndjson")
        .expect("the sample events are installed")
        .lines()
        .count();
    assert_eq!(out.lines().count(), events, "{out}");
    assert!(out.lines().all(|l| l.starts_with('<')), "{out}");

    // `check` on the installed configuration, given what an operator fills in.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emu = rt.block_on(sls_support::emulator(2));
    let rx = sls_support::Receiver::start();
    let checked = command_at(INSTALLED, &["check", "-c", "/etc/siemfwd/siemfwd.toml"])
        .env("SLS_ENDPOINT", emu.endpoint())
        .env("SLS_AK_ID", sls_support::AK_ID)
        .env("SLS_AK_KEY", sls_support::AK_SECRET)
        .env("SLS_PROJECT", sls_support::PROJECT)
        .env("SLS_LOGSTORE", sls_support::LOGSTORE)
        .env("SIEMFWD_SINK_ADDRESS", rx.addr.to_string())
        .env("SIEMFWD_METRICS_ADDRESS", "127.0.0.1:0")
        .output()
        .expect("check starts");
    let said = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "check failed: {said}");
    rt.block_on(emu.shutdown());

    // The installed unit, with the installed binary.
    let out = Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/siemfwd.service"])
        .output()
        .expect("systemd-analyze (scripts/peers/install.sh installs systemd)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("siemfwd.service"),
        "systemd-analyze verify: {text}"
    );
    println!(
        "packages: {} files each; installed, quickstart printed {events} events, check passed",
        deb_files.len()
    );
}

/// `2.17` (or `2.17-1`, as Debian versions go) as (2, 17).
fn version(text: &str) -> Option<(u32, u32)> {
    let (major, rest) = text.trim().split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
