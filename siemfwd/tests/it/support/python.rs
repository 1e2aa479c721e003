//! The Python venv of the tests' third-party peers: Alibaba's official
//! `aliyun-log-python-sdk` and PyPI `pycef`, unchanged
//! (`sls-emulator/tests/python/setup.sh`; PyPI access on the first run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where `setup.sh` and the emulator's Python scripts live.
pub(crate) fn emulator_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sls-emulator/tests/python")
}

/// The venv's python, after `setup.sh` made sure of it. Panics when it cannot be
/// set up, unless `SLS_EMULATOR_SKIP_SDK=1`, which prints `SKIPPED:` and gives `None`.
pub(crate) fn venv_python() -> Option<PathBuf> {
    let out = Command::new("bash")
        .arg(emulator_dir().join("setup.sh"))
        .stdin(Stdio::null())
        .output();
    let reason = match out {
        Ok(o) if o.status.success() => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            if let Some(p) = stdout.lines().last() {
                return Some(PathBuf::from(p));
            }
            "setup.sh printed no python path".to_owned()
        }
        Ok(o) => format!("setup.sh failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("cannot run setup.sh: {e}"),
    };
    if std::env::var_os("SLS_EMULATOR_SKIP_SDK").is_some() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: aliyun-log-python-sdk unavailable and SLS_EMULATOR_SKIP_SDK is set: {reason}"
        );
        None
    } else {
        panic!("the interop test needs aliyun-log-python-sdk: {reason}\nset SLS_EMULATOR_SKIP_SDK=1 to skip");
    }
}
