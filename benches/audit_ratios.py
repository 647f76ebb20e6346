#!/usr/bin/env python3
"""Print the audit bench's times as ratios to the plain provider, from one run.

Usage: cargo bench --bench audit && python3 benches/audit_ratios.py [target/criterion]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
for op in ("seal", "open"):
    times = {}
    for bench in root.glob(f"audit_{op}/*/32/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        times[meta["function_id"]] = est["median"]["point_estimate"]
    if "plain" not in times:
        sys.exit(f"no audit/{op} results under {root}")
    base = times["plain"]
    for name, ns in sorted(times.items(), key=lambda kv: kv[1]):
        print(f"audit/{op:4} {name:18} {ns / 1000:7.2f} us  x{ns / base:.2f}")
