#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ seeds from the frozen test vectors, so the
# fuzzers start from real envelopes instead of random bytes.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import json, pathlib, hashlib
vectors = sorted(pathlib.Path("../tests/vectors/v1").glob("*.json"))
for target in ["inspect", "open", "header_roundtrip", "stream_open"]:
    d = pathlib.Path("corpus") / target
    d.mkdir(parents=True, exist_ok=True)
    for v in vectors:
        env = bytes.fromhex(json.loads(v.read_text())["envelope_hex"])
        if len(env) <= 4096:
            (d / hashlib.sha1(env).hexdigest()).write_bytes(env)
print(f"seeded {len(vectors)} vectors into fuzz/corpus/")
PY
