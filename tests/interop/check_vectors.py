#!/usr/bin/env python3
"""Opens every frozen v1 test vector with the independent Python decoder.

    python3 tests/interop/check_vectors.py [VECTOR_DIR]

VECTOR_DIR defaults to tests/vectors/v1 of this repository. For each
`*.json` vector: a "success" vector must open to `plaintext_hex` byte for
byte; any other `expect` value names the outcome the envelope must be rejected
with (and `error_detail`, when present, the limit, context key or attempt
count). Prints one line per file and a closing `N passed, M failed` line;
exits non-zero if any vector failed or none was found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lockbox_v1  # noqa: E402  (after the path tweak)
from lockbox_v1 import Limits, LocalKek, LockboxError, open_envelope  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "vectors" / "v1"
# Sealed by the reference local KEK: its wrap nonce is recomputed from §10.
SYNTHETIC_NONCE_VECTOR = "105-synthetic-wrap-nonce"


def load_context(pairs) -> dict:
    context = {}
    for pair in pairs:
        key, value = pair["key"], pair["value"]
        if key in context:
            raise ValueError(f"open_context supplies {key!r} twice")
        context[key] = value
    return context


def check_synthetic_nonce(envelope: bytes, kek: LocalKek, context: dict) -> str:
    """§10: the wrap nonce of a lockbox.local entry written by the reference
    is the first 12 bytes of HMAC-SHA-256(K_n, DEK || binding), K_n =
    HKDF-SHA-256(IKM = KEK, salt = none, info = "lockbox v1 local wrap nonce
    key"). Readers must not depend on it; this checks the spec's worked value
    (§14) and vector 105 against each other. Returns "" or what differs."""
    header, _ = lockbox_v1.parse(envelope)
    binding = lockbox_v1.reconcile_context(header, context)
    entry = next(e for e in header.wrapped if kek.matches(e))
    dek = kek.unwrap(entry, binding)
    k_n = lockbox_v1.hkdf_sha256(b"", kek._key, b"lockbox v1 local wrap nonce key")  # salt = none: HashLen zeros, the same HMAC key
    nonce = hmac.new(k_n, dek + binding, hashlib.sha256).digest()[:12]
    if entry.wrapped[1:13] != nonce:
        return f"wrap nonce {entry.wrapped[1:13].hex()} is not the synthetic nonce {nonce.hex()}"
    return ""


def check(path: Path) -> tuple:
    """Returns (ok, message) for one vector file."""
    try:
        vector = json.loads(path.read_text(encoding="utf-8"))
        if vector.get("format_version", 1) != 1:
            return False, f"unexpected format_version {vector['format_version']!r}"
        expect = vector["expect"]
        kek = LocalKek.from_base64(vector["kek_base64"])
        context = load_context(vector.get("open_context", []))
        envelope = bytes.fromhex(vector["envelope_hex"])
        limits = Limits(**vector["limits"]) if "limits" in vector else Limits()
        expected_plaintext = bytes.fromhex(vector["plaintext_hex"]) if expect == "success" else None
    except (KeyError, ValueError, TypeError) as e:
        return False, f"unreadable vector: {e!r}"

    try:
        plaintext = open_envelope(envelope, kek, context, limits)
    except LockboxError as e:
        if expect == "success":
            return False, f"expected success, got {e.kind} ({e})"
        if e.kind != expect:
            return False, f"expected {expect}, got {e.kind} ({e})"
        wanted_detail = vector.get("error_detail")
        if wanted_detail is not None and e.detail != wanted_detail:
            return False, f"expected {expect} ({wanted_detail}), got {e.kind} ({e.detail})"
        shown = f"{e.kind} ({e.detail})" if e.detail is not None else e.kind
        return True, f"rejected: {shown}"
    except Exception as e:  # a decoder bug, not an outcome
        return False, f"decoder crashed: {e!r}"

    if expect != "success":
        return False, f"expected {expect}, but it OPENED ({len(plaintext)} bytes)"
    if plaintext != expected_plaintext:
        return False, f"opened to the wrong plaintext ({len(plaintext)} bytes, expected {len(expected_plaintext)})"
    if path.stem == SYNTHETIC_NONCE_VECTOR:
        full = dict(context, purpose="demo")
        problem = check_synthetic_nonce(envelope, kek, full)
        if problem:
            return False, problem
        return True, f"opened: {len(plaintext)} bytes; wrap nonce = the synthetic nonce of §10"
    return True, f"opened: {len(plaintext)} bytes"


def main(argv) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    lockbox_v1.self_test()
    files = sorted(directory.glob("*.json"))
    passed = failed = 0
    for path in files:
        ok, message = check(path)
        print(f"{'PASS' if ok else 'FAIL'} {path.stem}: {message}")
        if ok:
            passed += 1
        else:
            failed += 1
    if not files:
        print(f"no vectors found in {directory}")
    print(f"{passed} passed, {failed} failed")
    return 0 if files and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
