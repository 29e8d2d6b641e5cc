#!/usr/bin/env python3
"""Markdown tables from the criterion results of `cargo bench --bench wire`.

Usage: benches/wire_table.py [CRITERION_DIR ...]
(default: $CARGO_TARGET_DIR/criterion, else target/criterion)

For each direction (decode, encode) prints the median throughput of every
codec in millions of packets per second, then mqtt-wire's ratio to each peer
(> 1: mqtt-wire is faster) and to memcpy of the same bytes. Given several
criterion directories (copies kept after separate runs), each cell is the
median of the runs' medians: on a shared machine one run is often slowed by
a neighbour, and the median of three damps that.
"""
import json
import os
import statistics
import sys
from pathlib import Path

PEERS = ["rumqttc", "rmqtt-codec", "mqtt-protocol-core", "mqtt-proto", "mqttrs"]
# mqtt-wire-borrowed: `decode_ref` (decode only; the encoder is the same).
CODECS = ["mqtt-wire", "mqtt-wire-borrowed"] + PEERS
ORDER = [
    f"{v}/publish/qos{q}/{s}"
    for v in ("3.1.1", "5.0")
    for s in ("16B", "256B", "4KiB")
    for q in (0, 1)
] + ["3.1.1/mixed", "5.0/mixed"]


def load(root):
    res = {}
    for bench in root.rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        group = meta.get("group_id", "")
        if not (group.startswith("decode/") or group.startswith("encode/")):
            continue
        est = json.loads((bench.parent / "estimates.json").read_text())
        median_ns = est["median"]["point_estimate"]
        elements = (meta.get("throughput") or {}).get("Elements", 10_000)
        direction, workload = group.split("/", 1)
        res[(direction, workload, meta["function_id"])] = elements / (median_ns * 1e-9)
    return res


def fmt_rate(x):
    return "—" if x is None else f"{x / 1e6:.2f}"


def fmt_ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}"


def main():
    if len(sys.argv) > 1:
        roots = [Path(a) for a in sys.argv[1:]]
    else:
        roots = [Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"]
    runs = [load(r) for r in roots]
    if not any(runs):
        sys.exit(f"no wire results under {roots}")
    keys = set().union(*runs)
    res = {k: statistics.median([r[k] for r in runs if k in r]) for k in keys}
    print(f"(median of {len(runs)} run(s))")
    for direction in ("decode", "encode"):
        print(f"\n#### {direction}: median throughput, M packets/s\n")
        cols = [c for c in CODECS if direction == "decode" or c != "mqtt-wire-borrowed"] + ["memcpy"]
        print("| workload | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for w in ORDER:
            row = [fmt_rate(res.get((direction, w, c))) for c in cols]
            print(f"| {w} | " + " | ".join(row) + " |")
        for name in ["mqtt-wire"] + (["mqtt-wire-borrowed"] if direction == "decode" else []):
            print(f"\n#### {direction}: ratio {name} / peer (> 1: {name} faster)\n")
            cols = PEERS + ["memcpy"]
            print("| workload | " + " | ".join(cols) + " |")
            print("|---" * (len(cols) + 1) + "|")
            for w in ORDER:
                ours = res.get((direction, w, name))
                row = [fmt_ratio(ours, res.get((direction, w, c))) for c in cols]
                print(f"| {w} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
