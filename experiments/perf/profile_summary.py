#!/usr/bin/env python3
"""Summarizes an `ncu --csv --metrics gpu__time_duration.sum` log of one training step
(experiments/perf/run.sh profile): GPU time per kernel name, largest first, and the total.

  python3 experiments/perf/profile_summary.py ncu.csv [top]
"""
import collections
import csv
import sys


def short(name):
    # Template arguments and parameter lists make names unreadable; keep the head.
    for cut in ("(", "<"):
        if cut in name and not name.startswith(cut):
            name = name.split(cut)[0] if cut == "(" else name
    return name[:110]


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    lines = [l for l in open(path) if l.startswith('"')]
    rows = list(csv.DictReader(lines))
    time_ns = collections.Counter()
    count = collections.Counter()
    total = 0.0
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ns = float(r["Metric Value"].replace(",", ""))
        if r.get("Metric Unit") in ("usecond", "us"):
            ns *= 1e3
        elif r.get("Metric Unit") in ("msecond", "ms"):
            ns *= 1e6
        key = short(r["Kernel Name"]) + "  grid" + r.get("Grid Size", "")
        time_ns[key] += ns
        count[key] += 1
        total += ns
    print(f"kernels {sum(count.values())}, GPU time {total / 1e6:.2f} ms")
    for key, ns in time_ns.most_common(top):
        print(f"{ns / 1e6:8.3f} ms {100 * ns / total:5.1f}% x{count[key]:4d}  {key}")


if __name__ == "__main__":
    main()
