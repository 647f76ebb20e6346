#!/usr/bin/env python3
"""Print the recipients bench as a table with ratios, from one criterion run.

Usage: cargo bench --bench recipients --features recipients,passphrase
       python3 benches/recipient_ratios.py [target/criterion]

Sealing 32 bytes to N recipients of each kind: median time, time per
recipient, and the ratio to a local KEK (symmetric baseline) with the same
N. Opening with an identity (its entry first, or last of 100) against a
local KEK. Passphrase wrap and unwrap at the default Argon2id cost.
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def median(group, func, value):
    est = root / group / func / value / "new" / "estimates.json"
    if not est.exists():
        return None
    return json.loads(est.read_text())["median"]["point_estimate"]  # ns


def fmt(ns):
    if ns is None:
        return "-"
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.0f} ns"


print("| seal 32 B to N | N | median | per recipient | vs local KEK |")
print("|---|---|---|---|---|")
for kind in ("x25519", "xwing", "local_kek"):
    for n in ("1", "10", "100"):
        t, base = median("seal_32B", kind, n), median("seal_32B", "local_kek", n)
        ratio = f"{t / base:.0f}x" if t and base else "-"
        print(f"| {kind} | {n} | {fmt(t)} | {fmt(t / int(n) if t else None)} | {ratio} |")
print()
print("| seal 32 B to 1 | lockbox | bare HPKE single-shot seal | lockbox / bare |")
print("|---|---|---|---|")
for kind in ("x25519", "xwing"):
    t, raw = median("seal_32B", kind, "1"), median("seal_32B", f"raw_hpke_{kind}", "1")
    ratio = f"{t / raw:.2f}" if t and raw else "-"
    print(f"| {kind} | {fmt(t)} | {fmt(raw)} | {ratio} |")
print()
print("| open 32 B | median | vs local KEK |")
print("|---|---|---|")
base = median("open_32B", "local_kek", "1")
for kind, value in (("x25519", "1"), ("x25519", "last_of_100"), ("xwing", "1"), ("xwing", "last_of_100"), ("local_kek", "1")):
    t = median("open_32B", kind, value)
    ratio = f"{t / base:.0f}x" if t and base else "-"
    print(f"| {kind} ({value}) | {fmt(t)} | {ratio} |")
print()
print("| passphrase, default cost | median |")
print("|---|---|")
for func in ("wrap", "unwrap"):
    est = root / "passphrase_default_cost" / func / "new" / "estimates.json"
    t = json.loads(est.read_text())["median"]["point_estimate"] if est.exists() else None
    print(f"| {func} | {fmt(t)} |")
