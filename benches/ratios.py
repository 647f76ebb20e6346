#!/usr/bin/env python3
"""Print lockbox's overhead as ratios against the raw AEAD from one criterion run.

Usage: cargo bench --bench seal_open && python3 benches/ratios.py [target/criterion]

For every group `<suite>/<seal|open>` and size it prints the median time of
the raw AEAD and of lockbox, throughput, and raw/lockbox throughput ratio
(1.00 = as fast as the raw AEAD; higher is better, 0.50 = half the speed).
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for bench in root.glob("**/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    group, func, value = meta["group_id"], meta["function_id"], meta.get("value_str")
    # Only the seal/open groups (other benches share target/criterion).
    if not (group.endswith("/seal") or group.endswith("/open")) or not (value or "").isdigit():
        continue
    size = int(value)
    rows.setdefault((group, size), {})[func] = est["median"]["point_estimate"]  # ns

if not rows:
    sys.exit(f"no criterion results under {root}")


def fmt_time(ns):
    return f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"


def fmt_rate(size, ns):
    gbs = size / ns  # bytes per ns == GB/s
    return f"{gbs:.2f} GB/s" if gbs >= 0.1 else f"{gbs * 1000:.0f} MB/s"


# (lockbox function, raw baseline) pairs: RustCrypto, and AWS-LC when benched.
PAIRS = [("lockbox", "raw"), ("lockbox-into", "raw"), ("lockbox-awslc", "raw-awslc")]
print("| group | size | backend | raw | lockbox | ratio (raw time / lockbox time) |")
print("|---|---|---|---|---|---|")
for (group, size) in sorted(rows, key=lambda k: (k[0], k[1])):
    r = rows[(group, size)]
    for func, base in PAIRS:
        lb, raw = r.get(func), r.get(base)
        if raw is None or lb is None:
            continue
        backend = {"lockbox": "RustCrypto", "lockbox-into": "RustCrypto, into caller's buffer",
                   "lockbox-awslc": "AWS-LC"}[func]
        cells = [group, f"{size:,} B", backend, f"{fmt_time(raw)} ({fmt_rate(size, raw)})",
                 f"{fmt_time(lb)} ({fmt_rate(size, lb)})", f"{raw / lb:.2f}x"]
        print("| " + " | ".join(cells) + " |")
