//! The results: a Markdown table (`latest.md`), the raw figures (`latest.json`) and a bar
//! chart (`latest.png`). The chart is drawn into a pixel buffer and encoded with `png`, with
//! text from the public-domain `font8x8` glyphs: no font files or C libraries are needed,
//! so it renders the same on a bare machine.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::run::{Latency, Program, Throughput, Transport};

/// Everything a report needs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    /// Machine description lines.
    pub machine: Vec<String>,
    /// Data set description.
    pub dataset: String,
    /// Sources of both programs.
    pub source: String,
    /// siemfwd binary used.
    pub siemfwd: String,
    /// Throughput runs.
    pub throughput: Vec<Throughput>,
    /// Latency runs.
    pub latency: Vec<Latency>,
    /// Extra `--set` overrides.
    pub settings: Vec<String>,
}

/// `nproc`, CPU model, kernel, date.
pub(crate) fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cmd = |c: &str, a: &[&str]| {
        std::process::Command::new(c)
            .args(a)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(String::new(), |k| {
            format!(", {:.0} GiB RAM", k as f64 / 1048576.0)
        });
    vec![
        format!("{} CPUs (nproc), {model}{mem}", cmd("nproc", &[])),
        format!("Linux {}", cmd("uname", &["-r"])),
        cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    ]
}

fn f1(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

impl Report {
    fn find(&self, p: Program, t: Transport) -> Option<&Throughput> {
        self.throughput
            .iter()
            .find(|r| r.program == p && r.transport == t)
    }
    fn lat(&self, p: Program, t: Transport) -> Option<&Latency> {
        self.latency
            .iter()
            .find(|r| r.program == p && r.transport == t)
    }

    /// The Markdown page.
    pub(crate) fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# siemfwd benchmark: latest results\n");
        let _ = writeln!(m, "- Machine: {}", self.machine.join("; "));
        let _ = writeln!(m, "- Data set: {}", self.dataset);
        let _ = writeln!(
            m,
            "- Sources: {}; siemfwd binary `{}`{}",
            self.source,
            self.siemfwd,
            if self.settings.is_empty() {
                String::new()
            } else {
                format!("; overrides `{}`", self.settings.join("`, `"))
            }
        );
        let _ = writeln!(
            m,
            "- Both programs: RFC 5424 header, `||`-separated kv body, to `siemfwd listen` (count and discard) on 127.0.0.1\n"
        );
        let rate = self.latency.first().map(|l| l.rate);
        let _ = writeln!(
            m,
            "| program | transport | raw MB/s | records/s | CPU-seconds | raw MB per CPU-second | peak RSS (MiB) | latency p50 / p99 / p99.9 (ms){} |",
            rate.map_or(String::new(), |r| format!(" at {r} logs/s"))
        );
        let _ = writeln!(m, "|---|---|---:|---:|---:|---:|---:|---:|");
        for t in &self.throughput {
            let lat = self.lat(t.program, t.transport).map_or("—".into(), |l| {
                let lost = if l.received < l.sent {
                    format!(" ({} of {} never arrived)", l.sent - l.received, l.sent)
                } else {
                    String::new()
                };
                format!(
                    "{} / {} / {}{lost}",
                    l.p50_ms.map_or("—".into(), f1),
                    l.p99_ms.map_or("—".into(), f1),
                    l.p999_ms.map_or("—".into(), f1)
                )
            });
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.0} | {:.2} | **{}** | {:.1} | {lat} |",
                t.program.name(),
                t.transport.name(),
                f1(t.mb_s()),
                t.rec_s(),
                t.cpu_secs,
                f1(t.mb_per_cpu_s()),
                t.peak_rss_kib as f64 / 1024.0,
            );
        }
        for tr in [Transport::Tcp, Transport::Tls] {
            if let (Some(a), Some(b)) = (
                self.find(Program::Siemfwd, tr),
                self.find(Program::Seed, tr),
            ) {
                let lat = match (self.lat(Program::Siemfwd, tr), self.lat(Program::Seed, tr)) {
                    (Some(x), Some(y)) => match (x.p50_ms, y.p50_ms, x.p99_ms, y.p99_ms) {
                        (Some(a50), Some(b50), Some(a99), Some(b99)) => {
                            format!("{:.2}× / {:.2}×", a50 / b50, a99 / b99)
                        }
                        _ => "—".into(),
                    },
                    _ => "—".into(),
                };
                let _ = writeln!(
                    m,
                    "| **siemfwd / seed** | {} | {:.1}× | {:.1}× | | **{:.1}×** | {:.2}× | {lat} |",
                    tr.name(),
                    a.mb_s() / b.mb_s().max(1e-9),
                    a.rec_s() / b.rec_s().max(1e-9),
                    a.mb_per_cpu_s() / b.mb_per_cpu_s().max(1e-9),
                    a.peak_rss_kib as f64 / (b.peak_rss_kib as f64).max(1.0),
                );
            }
        }
        let partial: Vec<String> = self
            .throughput
            .iter()
            .filter(|t| !t.complete)
            .map(|t| {
                format!(
                    "{} {} was stopped (time cap, or {} s without a message) when {} of the set's {} logs \
                     had arrived ({:.0} MB raw); its figures cover what arrived",
                    t.program.name(),
                    t.transport.name(),
                    crate::run::STALL_SECS,
                    t.records,
                    t.expected,
                    t.raw_bytes as f64 / 1e6
                )
            })
            .collect();
        for t in self.throughput.iter().filter(|t| t.runs.len() > 1) {
            let _ = writeln!(
                m,
                "\n{} {}: median of {} runs; raw MB per CPU-second of each: {}.",
                t.program.name(),
                t.transport.name(),
                t.runs.len(),
                t.runs.iter().map(|x| f1(*x)).collect::<Vec<_>>().join(", ")
            );
        }
        if !partial.is_empty() {
            let _ = writeln!(m, "\nNote: {}.", partial.join("; "));
        }
        let _ = writeln!(m, "\n## Targets (2-core machine)\n");
        let target = |name: &str, ok: Option<bool>, got: String| {
            format!(
                "- {name}: {got} — {}\n",
                match ok {
                    Some(true) => "met",
                    Some(false) => "**not met**",
                    None => "not measured",
                }
            )
        };
        let s_tcp = self.find(Program::Siemfwd, Transport::Tcp);
        let s_tls = self.find(Program::Siemfwd, Transport::Tls);
        let seed_tcp = self.find(Program::Seed, Transport::Tcp);
        m.push_str(&target(
            "≥ 500 raw MB per CPU-second over TCP",
            s_tcp.map(|t| t.mb_per_cpu_s() >= 500.0),
            s_tcp.map_or("—".into(), |t| f1(t.mb_per_cpu_s())),
        ));
        m.push_str(&target(
            "≥ 350 raw MB per CPU-second over TLS",
            s_tls.map(|t| t.mb_per_cpu_s() >= 350.0),
            s_tls.map_or("—".into(), |t| f1(t.mb_per_cpu_s())),
        ));
        for tr in [Transport::Relp, Transport::RelpTls] {
            let relp = self.find(Program::Siemfwd, tr);
            let base = if tr == Transport::Relp { s_tcp } else { s_tls };
            let ratio = relp
                .zip(base)
                .map(|(r, b)| r.mb_per_cpu_s() / b.mb_per_cpu_s().max(1e-9));
            m.push_str(&target(
                &format!(
                    "{} ≥ 70 % of {}'s raw MB per CPU-second",
                    tr.name(),
                    if tr == Transport::Relp { "tcp" } else { "tls" }
                ),
                ratio.map(|r| r >= 0.7),
                ratio.map_or("—".into(), |r| format!("{:.0} %", r * 100.0)),
            ));
        }
        let ratio = s_tcp
            .zip(seed_tcp)
            .map(|(a, b)| a.mb_per_cpu_s() / b.mb_per_cpu_s().max(1e-9));
        m.push_str(&target(
            "≥ 30× the seed's MB per CPU-second (TCP)",
            ratio.map(|r| r >= 30.0),
            ratio.map_or("—".into(), |r| format!("{r:.1}×")),
        ));
        let rss = self
            .throughput
            .iter()
            .filter(|t| t.program == Program::Siemfwd)
            .map(|t| t.peak_rss_kib)
            .max();
        for tr in [Transport::Tcp, Transport::Tls] {
            let p99 = self.lat(Program::Siemfwd, tr).and_then(|l| l.p99_ms);
            m.push_str(&target(
                &format!("latency p99 ≤ 250 ms at the offered rate ({})", tr.name()),
                p99.map(|v| v <= 250.0),
                p99.map_or("—".into(), |v| format!("{} ms", f1(v))),
            ));
        }
        m.push_str(&target(
            "peak RSS ≤ 64 MiB with 16 shards",
            rss.map(|k| k <= 64 * 1024),
            rss.map_or("—".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        ));
        m.push_str(METHOD);
        m
    }

    /// Writes NAME.md and NAME.json into `dir` (the picture is `chart.rs`'s).
    pub(crate) fn write(&self, dir: &Path, name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.md")), self.markdown())?;
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec_pretty(self)?,
        )?;
        Ok(())
    }
}

const METHOD: &str = "
## Method

- **Raw MB** = sum of key and value bytes of every log's fields (what Log Service counts as
  raw size), 10^6 bytes per MB; the data set's exact figure is computed while generating it.
  `__topic__`, `__source__` and tags are not counted (siemfwd's own `raw_len` counts them:
  ~60 bytes more per log here), so these figures are on the low side.
- **raw MB/s, records/s**: from the first to the last message at the receiver.
- **CPU-seconds**: `utime + stime` of the program's process (all its threads; not the
  emulator, not the receiver) from `/proc/PID/stat`, read right after the last message
  arrived; start-up is included, the shutdown drain is not.
- **peak RSS**: `VmHWM` of `/proc/PID/status` at the same moment.
- **Latency**: a second, in-memory emulator; the harness writes log groups into it at a fixed
  rate (one group per 10 ms, round-robin over the shards), each log carrying
  `bench_sent_ns=<write time>`; the receiver parses every message (`siemfwd listen --output
  json` code) and takes receive time − write time. The first 3 s are a warm-up and are not
  counted. It includes the consumer's polling interval: a shard with nothing new is polled
  every `poll_interval` (100 ms) by siemfwd and every `data_fetch_interval = 1s` by the seed
  program.
- The emulator, the receiver and the program under test share the machine's cores.
- The seed program is `bench/seed/sync_data_to_syslog.py`: Alibaba's consumer-group sample
  rebuilt from its description with the official `aliyun-log-python-sdk` and its
  `SyslogClientRFC5424` (one connection per batch, LF framing).
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        program: Program,
        transport: Transport,
        raw_mb: f64,
        cpu: f64,
        rss_mib: u64,
    ) -> Throughput {
        Throughput {
            program,
            transport,
            records: 1000,
            expected: 1000,
            raw_bytes: (raw_mb * 1e6) as u64,
            wall_secs: cpu,
            cpu_secs: cpu,
            peak_rss_kib: rss_mib * 1024,
            complete: true,
            extra: 0,
            connections: 1,
            receiver_errors: 0,
            runs: Vec::new(),
        }
    }

    fn report() -> Report {
        Report {
            machine: vec!["test machine".into()],
            dataset: "test set".into(),
            source: "test".into(),
            siemfwd: "siemfwd".into(),
            throughput: vec![
                run(Program::Siemfwd, Transport::Tcp, 600.0, 1.0, 40),
                run(Program::Seed, Transport::Tcp, 15.0, 1.0, 400),
                run(Program::Siemfwd, Transport::Tls, 300.0, 1.0, 80),
            ],
            latency: vec![Latency {
                program: Program::Seed,
                transport: Transport::Tcp,
                rate: 100,
                sent: 10,
                received: 7,
                p50_ms: Some(5.0),
                p99_ms: Some(9.0),
                p999_ms: Some(9.5),
            }],
            settings: Vec::new(),
        }
    }

    #[test]
    fn ratios_are_siemfwd_over_seed_per_transport() {
        let md = report().markdown();
        assert!(
            md.contains("| **siemfwd / seed** | tcp | 40.0× | 1.0× | | **40.0×** | 0.10× |"),
            "{md}"
        );
        // No seed run over TLS: no TLS ratio row.
        assert!(!md.contains("| **siemfwd / seed** | tls"), "{md}");
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let md = report().markdown();
        assert!(
            md.contains("≥ 500 raw MB per CPU-second over TCP: 600 — met"),
            "{md}"
        );
        assert!(
            md.contains("≥ 350 raw MB per CPU-second over TLS: 300 — **not met**"),
            "{md}"
        );
        assert!(
            md.contains("≥ 30× the seed's MB per CPU-second (TCP): 40.0× — met"),
            "{md}"
        );
        assert!(
            md.contains("peak RSS ≤ 64 MiB with 16 shards: 80.0 MiB — **not met**"),
            "{md}"
        );
    }

    #[test]
    fn lost_latency_messages_are_reported() {
        let md = report().markdown();
        assert!(
            md.contains("5.0 / 9.0 / 9.5 (3 of 10 never arrived)"),
            "{md}"
        );
    }

    #[test]
    fn chart_is_a_png_of_the_drawn_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.png");
        crate::chart::draw(&report(), &path).expect("draw");
        let decoder = png::Decoder::new(std::fs::File::open(&path).expect("open"));
        let reader = decoder.read_info().expect("a PNG");
        let info = reader.info();
        assert_eq!((info.width, info.height), (1000, 560));
    }
}
