#!/usr/bin/env python3
"""The README's performance table from repeated runs of perf/benches/table.rs.

Usage (from the repository root):
  for i in 1 2 3; do cargo bench --manifest-path perf/Cargo.toml --bench table -- --save-baseline run$i; done
  python3 perf/table.py run1 run2 run3   [--criterion target/criterion]

Each cell is the median over the runs of `raw time / lockbox time` (1.00 =
as fast as the bare AEAD of the same backend, higher is better) with the
range over the runs; at 32 B and 1 KiB, where the AEAD is a small part of
the work, the median time per call is printed too. The raw AEAD is
AES-256-GCM with a fixed key: seal in place, open into a buffer.
"""
import json
import pathlib
import statistics
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
# criterion writes under the bench package's target directory.
root = next((p for p in (pathlib.Path("perf/target/criterion"), pathlib.Path("target/criterion")) if p.exists()),
            pathlib.Path("perf/target/criterion"))
if "--criterion" in sys.argv:
    root = pathlib.Path(sys.argv[sys.argv.index("--criterion") + 1])
    args = [a for a in args if a != str(root)]
runs = args or ["new"]

# times[(op, size, func)][run] = median ns
times = {}
for bench in root.glob("*/*/" + runs[0] + "/benchmark.json"):
    meta = json.loads(bench.read_text())
    group, func = meta["group_id"], meta["function_id"]
    if "/" not in group:
        continue
    op, size = group.split("/")
    if op not in ("seal", "open") or not size.isdigit():
        continue
    for run in runs:
        est = bench.parent.parent / run / "estimates.json"
        if est.exists():
            times.setdefault((op, int(size), func), {})[run] = json.loads(est.read_text())["median"]["point_estimate"]

if not times:
    sys.exit(f"no criterion results for {runs} under {root}")


def fmt_t(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def cell(op, size, func, base, show_time):
    """Small sizes: the time per call (median, range over the runs); the
    AEAD is a small part of it, so a ratio would say little. Larger: the
    ratio against the raw AEAD (median, range)."""
    t, b = times.get((op, size, func)), times.get((op, size, base))
    if not t or not b:
        return "-"
    if show_time:
        v = list(t.values())
        return f"{fmt_t(statistics.median(v))} ({fmt_t(min(v))}-{fmt_t(max(v))})"
    ratios = [b[r] / t[r] for r in runs if r in t and r in b]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


sizes = sorted({k[1] for k in times})
label = {32: "32 B", 1024: "1 KiB", 65536: "64 KiB", 1048576: "1 MiB"}
print(f"32 B and 1 KiB: time per call; 64 KiB and 1 MiB: raw AEAD time / time (1.00 = the bare AEAD). "
      f"Median and range over {len(runs)} runs.\n")
print("| size | | backend | raw AEAD | one-shot (new buffer) | into caller's buffer | in place | tink-rust envelope |")
print("|---|---|---|---|---|---|---|---|")
for size in sizes:
    small = size <= 1024
    for op in ("seal", "open"):
        for backend in ("awslc", "rustcrypto"):
            base = f"raw-{backend}"
            raw = times.get((op, size, base), {})
            raw_t = fmt_t(statistics.median(raw.values())) if raw else "-"
            in_place = cell(op, size, f"in-place-{backend}", base, small)
            if op == "open":
                in_place += " (incl. copy-in)"
            tink = cell(op, size, "tink", base, small) if backend == "rustcrypto" else ""
            row = [label.get(size, str(size)), op, {"awslc": "AWS-LC", "rustcrypto": "RustCrypto"}[backend], raw_t,
                   cell(op, size, f"lockbox-{backend}", base, small), cell(op, size, f"into-{backend}", base, small),
                   in_place, tink]
            print("| " + " | ".join(row) + " |")
