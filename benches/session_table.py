#!/usr/bin/env python3
"""Tables of docs/performance.md's mqtt-session section from criterion's
results of `cargo bench -p mqtt-benches --bench session`.

Usage: benches/session_table.py [CRITERION_DIR ...]
  Each CRITERION_DIR is a copy of target/criterion from one run (default:
  $CARGO_TARGET_DIR/criterion or target/criterion). With several runs, each
  cell is the median of the runs' criterion medians.
"""
import json
import os
import statistics
import sys

N = 1000  # messages per iteration (benches/benches/session.rs)
LIBS = ["mqtt-session", "mqtt-protocol-core"]


def median_ns(root, ver, qos, lib):
    # criterion turns the '/' of the group name into '_'
    f = os.path.join(root, f"session_{ver}_qos{qos}", lib, "new", "estimates.json")
    with open(f) as fh:
        return json.load(fh)["median"]["point_estimate"]


def main():
    roots = sys.argv[1:] or [
        os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    ]
    print(f"({len(roots)} run(s); median time per {N} messages, messages/s, ratio)")
    print()
    print("| version | QoS | mqtt-session | mqtt-protocol-core | ratio |")
    print("|---|---|---:|---:|---:|")
    for ver in ["3.1.1", "5.0"]:
        for qos in [0, 1, 2]:
            cells = []
            meds = []
            for lib in LIBS:
                m = statistics.median(median_ns(r, ver, qos, lib) for r in roots)
                meds.append(m)
                cells.append(f"{m / 1000:,.0f} µs, {N / m * 1e3:.2f} M/s")
            print(f"| {ver} | {qos} | {cells[0]} | {cells[1]} | {meds[1] / meds[0]:.2f}x |")


if __name__ == "__main__":
    main()
