#!/usr/bin/env python3
"""Draws the broker benchmark as an SVG: throughput and broker CPU per
message, ours vs mosquitto, side by side per scenario (and the RSS per idle
connection when measured).

    python3 scripts/plot-bench.py [RESULTS_JSON] [OUT_SVG]

Defaults: target/bench-broker/results.json (written by
scripts/bench-broker.sh) and docs/bench-broker.svg. Python standard
library only.
"""

import json
import os
import sys
from xml.sax.saxutils import escape

ORDER = ["fan-in", "fan-out", "qos1", "qos2", "latency"]
LABELS = {  # two lines under each group
    "fan-in": ("fan-in 8→1", "QoS 0, 64 B"),
    "fan-out": ("fan-out 1→50", "QoS 0, 64 B"),
    "qos1": ("QoS 1, 4→4", "256 B"),
    "qos2": ("QoS 2, 4→4", "256 B"),
    "latency": ("latency 1→1", "5k msg/s QoS 1"),
}
COLORS = {"ours": "#2b6cb0", "mosquitto": "#c05621"}
NAMES = {"ours": "mqtt-sansio broker example", "mosquitto": "mosquitto"}

PANEL_W, PANEL_H = 430, 300
MARGIN_L, MARGIN_T, MARGIN_B = 60, 50, 70


def nice_max(v):
    """A round axis maximum at or above v."""
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10 if v >= 1 else 1.0
    while mag > v:
        mag /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def human(v):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    if v >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if v >= 1:
        return f"{v:.1f}"
    return f"{v:.2f}"


def panel(x0, y0, title, unit, groups, better):
    """One bar chart. groups: [((line1, line2), {broker: value})]."""
    out = []
    w = PANEL_W - MARGIN_L - 10
    h = PANEL_H - MARGIN_T - MARGIN_B
    top = max([v for _, vals in groups for v in vals.values() if v is not None] + [0])
    ymax = nice_max(top)
    out.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 + 20}" text-anchor="middle" '
        f'font-size="14" font-weight="bold">{escape(title)}</text>'
    )
    out.append(
        f'<text x="{x0 + PANEL_W / 2}" y="{y0 + 36}" text-anchor="middle" '
        f'font-size="11" fill="#555">{escape(unit)} ({better} is better)</text>'
    )
    bx, by = x0 + MARGIN_L, y0 + MARGIN_T
    for i in range(5):
        v = ymax * i / 4
        y = by + h - h * i / 4
        out.append(f'<line x1="{bx}" y1="{y}" x2="{bx + w}" y2="{y}" stroke="#ddd"/>')
        out.append(
            f'<text x="{bx - 4}" y="{y + 4}" text-anchor="end" font-size="10">{human(v)}</text>'
        )
    out.append(f'<line x1="{bx}" y1="{by + h}" x2="{bx + w}" y2="{by + h}" stroke="#333"/>')
    n = max(len(groups), 1)
    gw = w / n
    bar = gw * 0.34
    for gi, (label, vals) in enumerate(groups):
        gx = bx + gi * gw + gw / 2
        for k, broker in enumerate(["ours", "mosquitto"]):
            v = vals.get(broker)
            x = gx - bar + k * bar
            if v is None:
                continue
            bh = h * v / ymax if ymax else 0
            out.append(
                f'<rect x="{x:.1f}" y="{by + h - bh:.1f}" width="{bar - 2:.1f}" '
                f'height="{bh:.1f}" fill="{COLORS[broker]}"><title>{escape(NAMES[broker])}: '
                f"{v:g}</title></rect>"
            )
            out.append(
                f'<text x="{x + (bar - 2) / 2:.1f}" y="{by + h - bh - 3:.1f}" '
                f'text-anchor="middle" font-size="9">{human(v)}</text>'
            )
        for li, text in enumerate(label):
            out.append(
                f'<text x="{gx:.1f}" y="{by + h + 14 + 12 * li}" text-anchor="middle" '
                f'font-size="10">{escape(text)}</text>'
            )
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/bench-broker/results.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/bench-broker.svg"
    try:
        with open(src) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read {src}: {e} (run scripts/bench-broker.sh first)")
    sc = doc.get("scenarios", {})

    def groups(metric):
        return [
            (LABELS[s], {b: sc[s].get(b, {}).get(metric) for b in ("ours", "mosquitto")})
            for s in ORDER
            if s in sc
        ]

    panels = [
        ("Throughput", "delivered messages per second", groups("msgs_per_s"), "higher"),
        ("Broker CPU per message", "µs (utime + stime) per delivered message", groups("cpu_us_per_msg"), "lower"),
    ]
    if "idle" in sc:
        n = doc.get("idle_connections", "")
        panels.append((
            "Memory per idle connection",
            f"bytes of RSS, {n} connections",
            [(("idle", "connections"), {b: sc["idle"].get(b, {}).get("rss_per_conn_b") for b in ("ours", "mosquitto")})],
            "lower",
        ))
    width = PANEL_W * len(panels)
    height = PANEL_H + 60
    m = doc.get("machine", {})
    sub = (
        f"{m.get('nproc', '?')} cores, {m.get('cpu', '?')}, Linux {m.get('kernel', '?')}, "
        f"{m.get('mosquitto', '?')}; MQTT {doc.get('protocol', '5')}; "
        f"median of {doc.get('repetitions', '?')} runs of {doc.get('duration_s', '?')} s"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i, (title, unit, g, better) in enumerate(panels):
        out += panel(i * PANEL_W, 0, title, unit, g, better)
    ly = PANEL_H + 18
    for k, broker in enumerate(["ours", "mosquitto"]):
        x = 20 + k * 260
        out.append(f'<rect x="{x}" y="{ly - 10}" width="12" height="12" fill="{COLORS[broker]}"/>')
        out.append(f'<text x="{x + 18}" y="{ly}" font-size="12">{escape(NAMES[broker])}</text>')
    out.append(f'<text x="20" y="{ly + 24}" font-size="10" fill="#555">{escape(sub)}</text>')
    out.append("</svg>")
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
