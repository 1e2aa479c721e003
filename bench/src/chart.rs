//! Bar charts of the throughput runs (`latest.png`) and of the distance runs
//! (`distance.png`), drawn by hand into an RGB buffer (see `report`).

use std::path::Path;

use crate::distance::DistanceReport;
use crate::report::Report;
use crate::run::{Program, Throughput};

const W: usize = 1000;
const H: usize = 560;

struct Canvas {
    px: Vec<u8>,
}

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [20, 20, 20];
const GREY: Rgb = [200, 200, 200];
const SIEMFWD: Rgb = [222, 110, 40];
const SEED: Rgb = [70, 110, 180];

impl Canvas {
    fn new() -> Self {
        Self {
            px: vec![255; W * H * 3],
        }
    }
    fn rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, c: Rgb) {
        for y in y0.min(H)..y1.min(H) {
            for x in x0.min(W)..x1.min(W) {
                let i = (y * W + x) * 3;
                self.px[i..i + 3].copy_from_slice(&c);
            }
        }
    }
    /// 8×8 glyphs scaled by `s`; non-ASCII characters print as '?'.
    fn text(&mut self, x: usize, y: usize, s: usize, t: &str, c: Rgb) {
        for (n, ch) in t.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let px = x + (n * 8 + col) * s;
                        let py = y + row * s;
                        self.rect(px, py, px + s, py + s, c);
                    }
                }
            }
        }
    }
    fn text_w(t: &str, s: usize) -> usize {
        t.chars().count() * 8 * s
    }
}

fn panel(
    c: &mut Canvas,
    x0: usize,
    title: &str,
    runs: &[&Throughput],
    value: impl Fn(&Throughput) -> f64,
) {
    let (top, bottom, width) = (150, H - 70, 440);
    c.text(
        x0 + (width - Canvas::text_w(title, 2).min(width)) / 2,
        top - 40,
        2,
        title,
        BLACK,
    );
    let max = runs
        .iter()
        .map(|r| value(r))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    c.rect(x0, bottom, x0 + width, bottom + 2, BLACK);
    for q in 1..=4 {
        let y = bottom - (bottom - top) * q / 4;
        c.rect(x0, y, x0 + width, y + 1, GREY);
    }
    let slot = width / runs.len().max(1);
    for (i, r) in runs.iter().enumerate() {
        let v = value(r);
        let h = ((bottom - top) as f64 * v / max) as usize;
        let bx = x0 + i * slot + slot / 6;
        let bw = slot * 2 / 3;
        let color = if r.program == Program::Siemfwd {
            SIEMFWD
        } else {
            SEED
        };
        c.rect(bx, bottom - h.max(1), bx + bw, bottom, color);
        let label = if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        let lw = Canvas::text_w(&label, 2);
        c.text(
            (bx + bw / 2).saturating_sub(lw / 2),
            bottom - h - 22,
            2,
            &label,
            BLACK,
        );
        let name = format!(
            "{} {}",
            if r.program == Program::Siemfwd {
                "siemfwd"
            } else {
                "seed"
            },
            r.transport.name()
        );
        let nw = Canvas::text_w(&name, 1);
        c.text(
            (bx + bw / 2).saturating_sub(nw / 2),
            bottom + 10,
            1,
            &name,
            BLACK,
        );
    }
}

/// Bars grouped by round trip: siemfwd and the seed program side by side.
fn grouped_panel(c: &mut Canvas, x0: usize, title: &str, groups: &[(String, Vec<(Program, f64)>)]) {
    let (top, bottom, width) = (150, H - 70, 440);
    c.text(
        x0 + (width - Canvas::text_w(title, 2).min(width)) / 2,
        top - 40,
        2,
        title,
        BLACK,
    );
    let max = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|b| b.1))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    c.rect(x0, bottom, x0 + width, bottom + 2, BLACK);
    for q in 1..=4 {
        let y = bottom - (bottom - top) * q / 4;
        c.rect(x0, y, x0 + width, y + 1, GREY);
    }
    let slot = width / groups.len().max(1);
    for (g, (label, bars)) in groups.iter().enumerate() {
        let gx = x0 + g * slot;
        let bw = (slot * 3 / 4) / bars.len().max(1);
        for (i, (program, v)) in bars.iter().enumerate() {
            let h = ((bottom - top) as f64 * v / max) as usize;
            let bx = gx + slot / 8 + i * bw;
            let color = if *program == Program::Siemfwd {
                SIEMFWD
            } else {
                SEED
            };
            c.rect(bx + 2, bottom - h.max(1), bx + bw - 2, bottom, color);
            let text = if *v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            };
            let tw = Canvas::text_w(&text, 1);
            c.text(
                (bx + bw / 2).saturating_sub(tw / 2),
                bottom - h - 12,
                1,
                &text,
                BLACK,
            );
        }
        let lw = Canvas::text_w(label, 1);
        c.text(
            (gx + slot / 2).saturating_sub(lw / 2),
            bottom + 10,
            1,
            label,
            BLACK,
        );
    }
}

fn legend(c: &mut Canvas) {
    c.rect(20, H - 30, 34, H - 16, SIEMFWD);
    c.text(40, H - 27, 1, "siemfwd", BLACK);
    c.rect(120, H - 30, 134, H - 16, SEED);
    c.text(
        140,
        H - 27,
        1,
        "seed program (aliyun-log-python-sdk)",
        BLACK,
    );
}

fn save(c: &Canvas, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W as u32, H as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&c.px)?;
    Ok(())
}

/// Draws the distance chart into `path`: raw MB/s by round trip, one shard and many.
pub(crate) fn draw_distance(report: &DistanceReport, path: &Path) -> anyhow::Result<()> {
    let mut c = Canvas::new();
    c.rect(0, 0, W, H, WHITE);
    c.text(
        20,
        16,
        2,
        "Log Service read from afar: raw MB/s by round trip",
        BLACK,
    );
    let mut y = 44;
    for line in [&report.one_shard_set, &report.many_shard_set]
        .into_iter()
        .chain(report.machine.iter().take(1))
    {
        c.text(20, y, 1, &line.chars().take(120).collect::<String>(), BLACK);
        y += 12;
    }
    let groups = |shards: u32| -> Vec<(String, Vec<(Program, f64)>)> {
        report
            .rtts()
            .into_iter()
            .map(|rtt| {
                let bars = [Program::Siemfwd, Program::Seed]
                    .into_iter()
                    .filter_map(|p| report.find(p, shards, rtt).map(|t| (p, t.mb_s())))
                    .collect();
                (format!("{rtt} ms"), bars)
            })
            .collect()
    };
    grouped_panel(&mut c, 30, "one shard", &groups(1));
    grouped_panel(
        &mut c,
        530,
        &format!("{} shards", report.many_shards),
        &groups(report.many_shards),
    );
    legend(&mut c);
    save(&c, path)
}

/// Draws the chart into `path`.
pub(crate) fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    let mut c = Canvas::new();
    c.rect(0, 0, W, H, WHITE);
    c.text(
        20,
        16,
        2,
        "siemfwd vs Alibaba's seed program (Python)",
        BLACK,
    );
    let mut y = 44;
    for line in std::iter::once(&report.dataset)
        .chain(report.machine.iter().take(1))
        .chain(std::iter::once(&report.source))
    {
        c.text(20, y, 1, &line.chars().take(120).collect::<String>(), BLACK);
        y += 12;
    }
    let runs: Vec<&Throughput> = report.throughput.iter().collect();
    panel(&mut c, 30, "raw MB per CPU-second", &runs, |t| {
        t.mb_per_cpu_s()
    });
    panel(&mut c, 530, "raw MB per second", &runs, |t| t.mb_s());
    legend(&mut c);
    save(&c, path)
}
