//! `--distance 0,50,100,300`: Log Service read from afar.
//!
//! Most SIEMs sit on premises and read Log Service over the internet. For each round trip,
//! the emulator delays every request by that long (`FaultConfig::latency`: one round trip
//! per request on a kept-alive connection; bandwidth is loopback's), and both programs move
//! (a) a one-shard logstore, for what a single shard can keep up with, and (b) the 16-shard
//! set, for the whole process, then serve the latency load (2000 logs/s written while they
//! run). Results go to `distance.{md,json,png}` next to the main report.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dataset::{DataSpec, Dataset, PROJECT};
use crate::run::{self, Ctx, Latency, LatencySink, Program, Source, Throughput, Transport};

/// One throughput run at one round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Point {
    /// Round trip added to every request, ms.
    pub rtt_ms: u64,
    /// Shards of the logstore read.
    pub shards: u32,
    /// The run.
    pub run: Throughput,
}

/// One latency run at one round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LatencyPoint {
    /// Round trip added to every request, ms.
    pub rtt_ms: u64,
    /// The run.
    pub latency: Latency,
}

/// The whole distance report.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DistanceReport {
    /// Machine description lines.
    pub machine: Vec<String>,
    /// The one-shard data set.
    pub one_shard_set: String,
    /// The many-shard data set.
    pub many_shard_set: String,
    /// Shards of the many-shard set.
    pub many_shards: u32,
    /// siemfwd binary.
    pub siemfwd: String,
    /// Extra `--set` overrides.
    pub settings: Vec<String>,
    /// Throughput runs.
    pub points: Vec<Point>,
    /// Latency runs.
    pub latency: Vec<LatencyPoint>,
}

/// What the distance runs need besides [`Ctx`].
pub(crate) struct Plan<'a> {
    /// Round trips, ms.
    pub rtts: &'a [u64],
    /// The one-shard set and its spec.
    pub one: (&'a Dataset, &'a DataSpec),
    /// The many-shard set and its spec.
    pub many: (&'a Dataset, &'a DataSpec),
    /// Transport of every run.
    pub transport: Transport,
    /// Whether the seed program runs too.
    pub seed: bool,
    /// Offered rate of the latency runs, logs/s, and their measured seconds; `None`: none.
    pub latency: Option<(u64, u64)>,
}

fn describe(ds: &Dataset, spec: &DataSpec) -> String {
    format!(
        "{} logs, {:.0} MB raw, {} shard{}, {} logs per group",
        ds.summary.logs,
        ds.summary.raw_bytes as f64 / 1e6,
        spec.shards,
        if spec.shards == 1 { "" } else { "s" },
        spec.logs_per_group
    )
}

async fn emulator(ds: &Dataset) -> anyhow::Result<sls_emulator::RunningEmulator> {
    Ok(sls_emulator::Emulator::builder()
        .data_dir(ds.emu_dir())
        .access_key(run::AK_ID, run::AK_SECRET)
        .group_quota(100_000)
        .start()
        .await?)
}

/// Runs every round trip of the plan.
pub(crate) async fn measure(ctx: &Ctx, plan: &Plan<'_>) -> anyhow::Result<DistanceReport> {
    let one = emulator(plan.one.0).await?;
    let many = emulator(plan.many.0).await?;
    let lat_emu = sls_emulator::Emulator::builder()
        .access_key(run::AK_ID, run::AK_SECRET)
        .group_quota(100_000)
        .start()
        .await?;
    let mut programs = vec![Program::Siemfwd];
    if plan.seed {
        programs.push(Program::Seed);
    }
    let mut points = Vec::new();
    let mut latency = Vec::new();
    for (n, &rtt) in plan.rtts.iter().enumerate() {
        let delay = Duration::from_millis(rtt);
        for emu in [&one, &many, &lat_emu] {
            emu.faults().set_latency(delay, Duration::ZERO);
        }
        eprintln!("bench: distance: {rtt} ms round trip");
        for ((emu, (ds, spec)), p) in [(&one, plan.one), (&many, plan.many)]
            .into_iter()
            .flat_map(|e| programs.iter().map(move |p| (e, *p)))
        {
            let source = Source::Sls {
                endpoint: emu.endpoint(),
                logstore: crate::dataset::LOGSTORE.to_owned(),
            };
            let t = run::throughput(ctx, p, plan.transport, &source, ds).await?;
            points.push(Point {
                rtt_ms: rtt,
                shards: spec.shards,
                run: t,
            });
        }
        if let Some((rate, secs)) = plan.latency {
            for &p in &programs {
                let who = p.name().split(' ').next().unwrap_or("p");
                let logstore = format!("distance-{n}-{who}");
                lat_emu.create_logstore(PROJECT, &logstore, plan.many.1.shards)?;
                let source = Source::Sls {
                    endpoint: lat_emu.endpoint(),
                    logstore: logstore.clone(),
                };
                let l = run::latency(
                    ctx,
                    p,
                    plan.transport,
                    &source,
                    LatencySink::Emulator(&lat_emu, logstore),
                    plan.many.1,
                    rate,
                    secs,
                )
                .await?;
                latency.push(LatencyPoint {
                    rtt_ms: rtt,
                    latency: l,
                });
            }
        }
    }
    one.shutdown().await;
    many.shutdown().await;
    lat_emu.shutdown().await;
    Ok(DistanceReport {
        machine: crate::report::machine(),
        one_shard_set: describe(plan.one.0, plan.one.1),
        many_shard_set: describe(plan.many.0, plan.many.1),
        many_shards: plan.many.1.shards,
        siemfwd: ctx.siemfwd.display().to_string(),
        settings: Vec::new(),
        points,
        latency,
    })
}

fn f1(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.0}"))
}

impl DistanceReport {
    /// The run of `program` on `shards` shards at `rtt`.
    pub(crate) fn find(&self, program: Program, shards: u32, rtt: u64) -> Option<&Throughput> {
        self.points
            .iter()
            .find(|p| p.run.program == program && p.shards == shards && p.rtt_ms == rtt)
            .map(|p| &p.run)
    }

    /// Round trips measured, in order.
    pub(crate) fn rtts(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.points.iter().map(|p| p.rtt_ms).collect();
        v.dedup();
        v
    }

    fn cell(&self, program: Program, shards: u32, rtt: u64) -> String {
        self.find(program, shards, rtt).map_or("—".into(), |t| {
            format!(
                "**{}**{} · {:.0} MiB · {}",
                f1(t.mb_s()),
                if t.complete { "" } else { "¹" },
                t.peak_rss_kib as f64 / 1024.0,
                f1(t.mb_per_cpu_s())
            )
        })
    }

    /// The Markdown page.
    pub(crate) fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# siemfwd benchmark: Log Service read from afar\n");
        let _ = writeln!(m, "- Machine: {}", self.machine.join("; "));
        let _ = writeln!(
            m,
            "- Data sets: one shard: {}; many shards: {}",
            self.one_shard_set, self.many_shard_set
        );
        let _ = writeln!(
            m,
            "- siemfwd binary `{}` with default settings{}; the seed program as in `latest.md`",
            self.siemfwd,
            if self.settings.is_empty() {
                String::new()
            } else {
                format!(" except `{}`", self.settings.join("`, `"))
            }
        );
        let _ = writeln!(
            m,
            "- Round trip: the emulator delays every request by it (one round trip per request on a kept-alive connection)\n"
        );
        let k = self.many_shards;
        let _ = writeln!(
            m,
            "Each cell: **raw MB/s** · peak RSS · raw MB per CPU-second.\n"
        );
        let _ = writeln!(
            m,
            "| round trip | siemfwd, 1 shard | seed, 1 shard | siemfwd, {k} shards | seed, {k} shards |"
        );
        let _ = writeln!(m, "|---:|---:|---:|---:|---:|");
        for rtt in self.rtts() {
            let _ = writeln!(
                m,
                "| {rtt} ms | {} | {} | {} | {} |",
                self.cell(Program::Siemfwd, 1, rtt),
                self.cell(Program::Seed, 1, rtt),
                self.cell(Program::Siemfwd, k, rtt),
                self.cell(Program::Seed, k, rtt),
            );
        }
        if self.points.iter().any(|p| !p.run.complete) {
            let _ = writeln!(
                m,
                "\n¹ stopped at the time cap or after {} s without a message; the figure covers what arrived.",
                run::STALL_SECS
            );
        }
        if !self.latency.is_empty() {
            let rate = self.latency.first().map_or(0, |l| l.latency.rate);
            let _ = writeln!(
                m,
                "\nLatency from write to receiver at {rate} logs/s ({k} shards), p50 / p99 / p99.9 in ms:\n"
            );
            let _ = writeln!(m, "| round trip | siemfwd | seed |");
            let _ = writeln!(m, "|---:|---:|---:|");
            for rtt in self.rtts() {
                let row = |p: Program| {
                    self.latency
                        .iter()
                        .find(|l| l.rtt_ms == rtt && l.latency.program == p)
                        .map_or("—".into(), |l| {
                            let l = &l.latency;
                            let lost = if l.received < l.sent {
                                format!(" ({} of {} never arrived)", l.sent - l.received, l.sent)
                            } else {
                                String::new()
                            };
                            format!(
                                "{} / {} / {}{lost}",
                                ms(l.p50_ms),
                                ms(l.p99_ms),
                                ms(l.p999_ms)
                            )
                        })
                };
                let _ = writeln!(
                    m,
                    "| {rtt} ms | {} | {} |",
                    row(Program::Siemfwd),
                    row(Program::Seed)
                );
            }
        }
        let _ = writeln!(m, "\n## Targets\n");
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
        for (rtt, floor) in [(100, 10.0), (300, 5.0)] {
            let t = self.find(Program::Siemfwd, 1, rtt);
            m.push_str(&target(
                &format!("one shard at {rtt} ms: ≥ {floor:.0} MB/s raw"),
                t.map(|t| t.mb_s() >= floor),
                t.map_or("—".into(), |t| format!("{} MB/s", f1(t.mb_s()))),
            ));
        }
        let t = self.find(Program::Siemfwd, k, 100);
        m.push_str(&target(
            &format!("{k} shards at 100 ms: peak RSS ≤ 64 MiB"),
            t.map(|t| t.peak_rss_kib <= 64 * 1024),
            t.map_or("—".into(), |t| {
                format!("{:.1} MiB", t.peak_rss_kib as f64 / 1024.0)
            }),
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: Program, mb: f64, secs: f64, rss_mib: u64) -> Throughput {
        Throughput {
            program,
            transport: Transport::Tcp,
            records: 100,
            expected: 100,
            raw_bytes: (mb * 1e6) as u64,
            wall_secs: secs,
            cpu_secs: 1.0,
            peak_rss_kib: rss_mib * 1024,
            complete: true,
            extra: 0,
            connections: 1,
            receiver_errors: 0,
            runs: Vec::new(),
        }
    }

    fn report() -> DistanceReport {
        let mut points = Vec::new();
        for (rtt, one, many) in [(100, 20.0, 60.0), (300, 4.0, 30.0)] {
            points.push(Point {
                rtt_ms: rtt,
                shards: 1,
                run: run(Program::Siemfwd, one, 1.0, 20),
            });
            points.push(Point {
                rtt_ms: rtt,
                shards: 16,
                run: run(Program::Siemfwd, many, 1.0, 70),
            });
        }
        DistanceReport {
            machine: vec!["test".into()],
            one_shard_set: "one".into(),
            many_shard_set: "many".into(),
            many_shards: 16,
            siemfwd: "siemfwd".into(),
            settings: Vec::new(),
            points,
            latency: Vec::new(),
        }
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let md = report().markdown();
        assert!(md.contains("one shard at 100 ms: ≥ 10 MB/s raw: 20.0 MB/s — met"));
        assert!(md.contains("one shard at 300 ms: ≥ 5 MB/s raw: 4.0 MB/s — **not met**"));
        assert!(md.contains("16 shards at 100 ms: peak RSS ≤ 64 MiB: 70.0 MiB — **not met**"));
    }

    #[test]
    fn rows_follow_the_round_trips() {
        let md = report().markdown();
        let a = md.find("| 100 ms |").unwrap_or(usize::MAX);
        let b = md.find("| 300 ms |").unwrap_or(0);
        assert!(a < b, "{md}");
        assert_eq!(report().rtts(), vec![100, 300]);
    }

    #[test]
    fn chart_is_a_png() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("distance.png");
        crate::chart::draw_distance(&report(), &path).unwrap_or_else(|e| panic!("draw: {e}"));
        let png = std::fs::read(&path).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"));
    }
}
