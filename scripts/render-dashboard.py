#!/usr/bin/env python3
"""render-dashboard.py DATA.json OUT.png — draw siemfwd's Grafana dashboard with real data.

There is no Grafana on the machines this project is built on, so the picture in the README
is drawn here instead: the panels of packaging/grafana-dashboard.json in their grid places,
each with the series its own PromQL queries returned from the real Prometheus that
tests/it/prometheus.rs runs (a Log Service run with injected 5xx answers, a backlog read,
then the SIEM going away with `when_blocked = "drop"`). Get the data with

    SIEMFWD_DASHBOARD_DATA=/tmp/dash.json cargo test -p siemfwd --test it prometheus
    python3 scripts/render-dashboard.py /tmp/dash.json docs/dashboard.png

Needs matplotlib (pip install matplotlib). The look follows Grafana's dark theme loosely;
the numbers are the run's.
"""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
ROW_PX = 30  # Grafana's grid row height


def label(legend, metric):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), legend or "")
    return text or ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__")


def human(value, unit):
    if unit == "bytes" or unit == "Bps":
        for size, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}" + ("/s" if unit == "Bps" else "")
        return f"{value:.0f} B" + ("/s" if unit == "Bps" else "")
    if unit == "s":
        return f"{value:.0f} s" if abs(value) >= 10 else f"{value:.1f} s"
    if unit == "ops":
        return f"{value:,.0f}/s" if abs(value) >= 10 else f"{value:.1f}/s"
    return f"{value:g}"


def main():
    data = json.load(open(sys.argv[1]))
    start = data["start"]
    panels = data["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    width_px, height_px = 1800, bottom * ROW_PX + 20
    fig = plt.figure(figsize=(width_px / 100, height_px / 100), dpi=100, facecolor=BG)

    def box(grid, margins):
        x = grid["x"] / 24
        w = grid["w"] / 24
        top = 1 - grid["y"] * ROW_PX / height_px
        h = grid["h"] * ROW_PX / height_px
        # Room inside the panel's place for the axis labels and the title.
        left, bottom, title = (0.045, 0.045, 0.02) if margins else (0.004, 0.006, 0.02)
        return [x + left, top - h + bottom, w - left - 0.006, h - bottom - title]

    for p in panels:
        g = p["gridPos"]
        if p["type"] == "row":
            fig.text(g["x"] / 24 + 0.005, 1 - (g["y"] + 0.6) * ROW_PX / height_px, p["title"],
                     color=TEXT, fontsize=12, fontweight="bold")
            continue
        ax = fig.add_axes(box(g, p["type"] != "stat"), facecolor=PANEL)
        for side in ax.spines.values():
            side.set_color(GRID)
        ax.set_title(p["title"], color=TEXT, fontsize=10, loc="left")
        unit = p.get("unit")
        if p["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            shown = []
            for t in p["targets"]:
                for s in t["series"]:
                    if s["values"]:
                        v = float(s["values"][-1][1])
                        text = label(t["legend"], s["metric"]) if p["title"] == "Version" else human(v, unit)
                        shown.append(text)
            ax.text(0.5, 0.45, "  ".join(shown) or "—", color=COLOURS[0], fontsize=22,
                    ha="center", va="center", transform=ax.transAxes, fontweight="bold")
            continue
        i = 0
        for t in p["targets"]:
            for s in t["series"]:
                xs = [float(v[0]) - start for v in s["values"]]
                ys = [float(v[1]) for v in s["values"]]
                ax.plot(xs, ys, color=COLOURS[i % len(COLOURS)], linewidth=1.4,
                        label=label(t["legend"], s["metric"]))
                i += 1
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _, u=unit: human(v, u)))
        ax.set_xlabel("seconds into the run", color=TEXT, fontsize=7)
        if i:
            ax.legend(fontsize=6, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT,
                      loc="upper right", ncol=2 if i > 4 else 1)
    fig.savefig(sys.argv[2], facecolor=BG)


if __name__ == "__main__":
    main()
