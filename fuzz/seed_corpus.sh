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
# Recipient and passphrase providers: wrapped bytes (prefixed with the byte
# that picks the provider: 0 X25519, 1 X-Wing, 2 passphrase) and key strings.
pick = {"lockbox.x25519": 0, "lockbox.xwing": 1, "lockbox.passphrase": 2}
d = pathlib.Path("corpus") / "recipient_unwrap"
d.mkdir(parents=True, exist_ok=True)
for v in sorted(pathlib.Path("../tests/vectors/recipients").glob("[0-9]*.json")):
    for w in json.loads(v.read_text())["wrapped_keys"]:
        seed = bytes([pick[w["provider_id"]]]) + bytes.fromhex(w["bytes_hex"])
        (d / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
d = pathlib.Path("corpus") / "key_strings"
d.mkdir(parents=True, exist_ok=True)
strings = json.loads(pathlib.Path("../tests/vectors/recipients/strings.json").read_text())["vectors"]
for s in strings:
    seed = s["input"].encode()
    (d / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
print(f"seeded recipient wraps and {len(strings)} key strings")
# Secrets files (both forms) and Fernet tokens.
for form in ["dotenv", "json"]:
    d = pathlib.Path("corpus") / f"secrets_{form}"
    d.mkdir(parents=True, exist_ok=True)
    for v in sorted(pathlib.Path("../tests/vectors/secrets").glob("*.json")):
        doc = json.loads(v.read_text())
        if doc["form"] == form:
            seed = bytes.fromhex(doc["file_hex"])
            (d / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
d = pathlib.Path("corpus") / "fernet_token"
d.mkdir(parents=True, exist_ok=True)
tokens = []
for name in ["generate.json", "verify.json", "invalid.json"]:
    tokens += [t["token"] for t in json.loads((pathlib.Path("../tests/vectors/fernet") / name).read_text())]
tokens += [t["token"] for t in json.loads(pathlib.Path("../tests/vectors/fernet/python-tokens.json").read_text())["tokens"]]
for t in tokens:
    (d / hashlib.sha1(t.encode()).hexdigest()).write_bytes(t.encode())
print(f"seeded secrets files and {len(tokens)} Fernet tokens")
PY
