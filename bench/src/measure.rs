//! Resource figures of one child process, read from procfs while it is alive: CPU time
//! (`utime + stime` of `/proc/PID/stat`, every thread of the process, no children) and
//! peak resident memory (`VmHWM` of `/proc/PID/status`, the kernel's high-water mark).
//!
//! The harness takes the last sample right before it asks the process to stop, so the
//! figures cover start-up and the whole transfer but not the shutdown drain.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// One reading.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// user + system CPU seconds so far.
    pub cpu_secs: f64,
    /// Peak RSS so far, KiB.
    pub hwm_kib: u64,
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
pub(crate) fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Reads the process's figures, `None` once it is gone.
pub(crate) fn sample(pid: u32, tck: f64) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of proc(5), so utime (14) and stime (15) are at 11, 12.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_secs: (utime + stime) as f64 / tck,
        hwm_kib,
    })
}

/// Sends SIGTERM to the child by its PID, waits up to `grace`, then kills it.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Percentile (0–100) of sorted values, nearest rank.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn sample_reads_this_process() {
        let s = sample(std::process::id(), clk_tck());
        assert!(s.is_some_and(|s| s.hwm_kib > 0));
    }
}
