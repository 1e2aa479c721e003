//! The benchmark's data set: synthetic audit events from the emulator's seeded generator,
//! made once and cached on disk under a directory named after the spec, so every run (and
//! both programs) reads byte-identical logs.
//!
//! Two forms are kept side by side: an emulator data directory (`emu/`, served by an
//! in-process emulator for `--source sls` and for the seed program) and one NDJSON file per
//! shard (`ndjson/`, for `--source file`). "Raw bytes" is what Log Service bills as raw size:
//! the sum of key and value bytes of every log's contents (no time, topic, source or tags).

use std::fs;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sls_emulator::load::generate;
use sls_emulator::proto::{Log, LogGroup};
use sls_emulator::LoadSpec;

/// Project and logstore the cached set lives in.
pub(crate) const PROJECT: &str = "bench";
/// Logstore of the cached set.
pub(crate) const LOGSTORE: &str = "audit";

/// Bump when the emulator's generator (`sls_emulator::load`) or the forms written here
/// change, so a cached set made by older code is not mistaken for the current one.
const FORMAT_VERSION: u32 = 1;

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct DataSpec {
    /// Target raw bytes (the generator stops at the first log group past it).
    pub bytes: u64,
    /// Shards (files for the file source).
    pub shards: u32,
    /// Log size range (key + value bytes).
    pub size: (usize, usize),
    /// Fields per log.
    pub fields: (usize, usize),
    /// Logs per log group.
    pub logs_per_group: u32,
    /// RNG seed.
    pub seed: u64,
    /// What a log looks like.
    pub shape: sls_emulator::Shape,
}

impl DataSpec {
    /// The cache directory name: every parameter that changes the bytes.
    pub(crate) fn key(&self) -> String {
        format!(
            "v{FORMAT_VERSION}-b{}-s{}-z{}-{}-f{}-{}-g{}-seed{}",
            self.bytes,
            self.shards,
            self.size.0,
            self.size.1,
            self.fields.0,
            self.fields.1,
            self.logs_per_group,
            self.seed
        ) + match self.shape {
            sls_emulator::Shape::Flat => "",
            sls_emulator::Shape::ActionTrail => "-actiontrail",
        }
    }

    fn load_spec(&self) -> LoadSpec {
        // The generator draws sizes uniformly, so the mean decides how many logs reach the
        // target; the summary records the exact figure. ActionTrail events are ~1 KB.
        let mean = match self.shape {
            sls_emulator::Shape::Flat => ((self.size.0 + self.size.1) / 2).max(1) as u64,
            sls_emulator::Shape::ActionTrail => 1000,
        };
        LoadSpec {
            logs: self.bytes.div_ceil(mean),
            logs_per_group: self.logs_per_group,
            min_size: self.size.0,
            max_size: self.size.1,
            min_fields: self.fields.0,
            max_fields: self.fields.1,
            seed: self.seed,
            shape: self.shape,
            ..LoadSpec::default()
        }
    }
}

/// Exact figures of a generated set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Logs.
    pub logs: u64,
    /// Raw bytes (keys + values).
    pub raw_bytes: u64,
    /// Log groups.
    pub groups: u64,
}

/// A data set on disk.
#[derive(Debug, Clone)]
pub(crate) struct Dataset {
    /// Its cache directory.
    pub dir: PathBuf,
    /// Its figures.
    pub summary: Summary,
}

impl Dataset {
    /// The emulator data directory.
    pub(crate) fn emu_dir(&self) -> PathBuf {
        self.dir.join("emu")
    }
    /// The NDJSON directory (one file per shard).
    pub(crate) fn ndjson_dir(&self) -> PathBuf {
        self.dir.join("ndjson")
    }
}

/// Raw size of one log, as Log Service counts it.
pub(crate) fn raw_size(log: &Log) -> u64 {
    log.contents
        .iter()
        .map(|c| (c.key.len() + c.value.len()) as u64)
        .sum()
}

/// Makes sure the requested forms exist under `root/<key>/`, generating what is missing.
pub(crate) async fn prepare(
    root: &Path,
    spec: &DataSpec,
    emu: bool,
    ndjson: bool,
) -> anyhow::Result<Dataset> {
    let dir = root.join(spec.key());
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut summary = None;
    for (want, form) in [(emu, "emu"), (ndjson, "ndjson")] {
        if !want {
            continue;
        }
        let done = dir.join(format!("{form}.done"));
        if let Ok(text) = fs::read(&done) {
            summary = Some(serde_json::from_slice(&text).context("reading a cached summary")?);
            eprintln!("bench: using cached data set {} ({form})", dir.display());
            continue;
        }
        let target = dir.join(form);
        if target.exists() {
            // A half-written form from an interrupted run.
            fs::remove_dir_all(&target)
                .with_context(|| format!("removing {}", target.display()))?;
        }
        eprintln!(
            "bench: generating the data set ({} MB raw, {} shards) as {form} in {} — once, then cached",
            spec.bytes / 1_000_000,
            spec.shards,
            target.display()
        );
        let started = Instant::now();
        let s = if form == "emu" {
            write_emu(&target, spec).await?
        } else {
            write_ndjson(&target, spec)?
        };
        eprintln!(
            "bench: generated {} logs, {:.1} MB raw in {:.1}s",
            s.logs,
            s.raw_bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        fs::write(&done, serde_json::to_vec(&s)?)?;
        summary = Some(s);
    }
    Ok(Dataset {
        dir,
        summary: summary.unwrap_or_default(),
    })
}

fn progress(s: &Summary, spec: &DataSpec, last: &mut Instant) {
    if last.elapsed().as_secs() >= 2 {
        *last = Instant::now();
        eprintln!(
            "bench:   … {:.0}% ({:.0} MB)",
            100.0 * s.raw_bytes as f64 / spec.bytes.max(1) as f64,
            s.raw_bytes as f64 / 1e6
        );
    }
}

async fn write_emu(target: &Path, spec: &DataSpec) -> anyhow::Result<Summary> {
    let emu = sls_emulator::Emulator::builder()
        .data_dir(target)
        .start()
        .await
        .context("starting an emulator on the data directory")?;
    emu.create_logstore(PROJECT, LOGSTORE, spec.shards)?;
    let shards: Vec<u32> = (0..spec.shards).collect();
    let load = spec.load_spec();
    let mut s = Summary::default();
    let mut last = Instant::now();
    for (shard, group) in generate(&load, &shards) {
        count(&mut s, &group);
        emu.append(PROJECT, LOGSTORE, shard, std::slice::from_ref(&group))?;
        progress(&s, spec, &mut last);
    }
    emu.shutdown().await;
    Ok(s)
}

fn count(s: &mut Summary, group: &LogGroup) {
    s.groups += 1;
    s.logs += group.logs.len() as u64;
    s.raw_bytes += group.logs.iter().map(raw_size).sum::<u64>();
}

/// One log as an NDJSON line in Log Service's export shape.
pub(crate) fn ndjson_line(out: &mut Vec<u8>, group: &LogGroup, log: &Log) -> anyhow::Result<()> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    out.push(b'{');
    write!(out, "\"__time__\":\"{}\"", log.time)?;
    if let Some(ns) = log.time_ns {
        write!(out, ",\"__time_ns_part__\":\"{ns}\"")?;
    }
    let pair = |out: &mut Vec<u8>, k: &str, v: &str| -> anyhow::Result<()> {
        out.push(b',');
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v)?;
        Ok(())
    };
    pair(
        out,
        "__topic__",
        &text(group.topic.as_deref().unwrap_or_default()),
    )?;
    pair(
        out,
        "__source__",
        &text(group.source.as_deref().unwrap_or_default()),
    )?;
    for t in &group.log_tags {
        pair(out, &format!("__tag__:{}", text(&t.key)), &text(&t.value))?;
    }
    for c in &log.contents {
        pair(out, &text(&c.key), &text(&c.value))?;
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

fn write_ndjson(target: &Path, spec: &DataSpec) -> anyhow::Result<Summary> {
    fs::create_dir_all(target)?;
    let mut files = (0..spec.shards)
        .map(|i| {
            let p = target.join(format!("shard-{i:02}.ndjson"));
            fs::File::create(&p)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .with_context(|| format!("creating {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shards: Vec<u32> = (0..spec.shards).collect();
    let load = spec.load_spec();
    let mut s = Summary::default();
    let mut last = Instant::now();
    let mut line = Vec::with_capacity(4096);
    for (shard, group) in generate(&load, &shards) {
        count(&mut s, &group);
        let f = &mut files[shard as usize];
        for log in &group.logs {
            line.clear();
            ndjson_line(&mut line, &group, log)?;
            f.write_all(&line)?;
        }
        progress(&s, spec, &mut last);
    }
    for mut f in files {
        f.flush()?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siemfwd::record::{LogTime, Record};

    #[test]
    fn ndjson_form_carries_the_same_logs_as_the_emulator_form() {
        let spec = LoadSpec {
            logs: 30,
            logs_per_group: 10,
            ..LoadSpec::default()
        };
        for (_, group) in generate(&spec, &[0, 1]) {
            for log in &group.logs {
                let mut line = Vec::new();
                ndjson_line(&mut line, &group, log).expect("line");
                let line = line.strip_suffix(b"\n").expect("LF");
                let mut rec = Record::default();
                siemfwd::source::ndjson::parse_line(line, LogTime::default(), &mut rec)
                    .expect("siemfwd parses the line");
                assert_eq!(rec.time.secs(), i64::from(log.time));
                assert_eq!(rec.time.nanos(), log.time_ns.unwrap_or(0));
                // topic, source and one tag come first, then the contents in order.
                let contents: Vec<(&[u8], &[u8])> = rec.fields[3..]
                    .iter()
                    .map(|f| (f.key.as_ref(), f.value.as_ref()))
                    .collect();
                let want: Vec<(&[u8], &[u8])> = log
                    .contents
                    .iter()
                    .map(|c| (c.key.as_slice(), c.value.as_slice()))
                    .collect();
                assert_eq!(contents, want);
                let meta: usize = rec.fields[..3]
                    .iter()
                    .map(|f| f.key.len() + f.value.len())
                    .sum();
                assert_eq!(raw_size(log) as usize, rec.raw_len() - meta);
            }
        }
    }

    #[test]
    fn cache_key_names_every_parameter_that_changes_the_bytes() {
        let a = DataSpec {
            bytes: 1,
            shards: 2,
            size: (3, 4),
            fields: (5, 6),
            logs_per_group: 7,
            seed: 8,
            shape: sls_emulator::Shape::Flat,
        };
        let mut keys = vec![a.key()];
        for f in [
            |s: &mut DataSpec| s.bytes += 1,
            |s: &mut DataSpec| s.shards += 1,
            |s: &mut DataSpec| s.size.1 += 1,
            |s: &mut DataSpec| s.fields.0 += 1,
            |s: &mut DataSpec| s.logs_per_group += 1,
            |s: &mut DataSpec| s.seed += 1,
            |s: &mut DataSpec| s.shape = sls_emulator::Shape::ActionTrail,
        ] {
            let mut b = a.clone();
            f(&mut b);
            keys.push(b.key());
        }
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
    }
}
