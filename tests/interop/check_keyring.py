#!/usr/bin/env python3
"""Checks the frozen keyring-file vectors with a decoder written from KEYRING.md.

    python3 tests/interop/check_keyring.py [VECTOR_DIR]

VECTOR_DIR defaults to tests/vectors/keyring of this repository. For each
`*.json` vector: open the keyring file with the master key through the
independent envelope decoder (`lockbox_v1.py`), check the file context
(KEYRING.md §2), decode and validate the contents (§3), then open the vector's
envelope with a `lockbox.keyring` provider built from the decoded versions
(§5) and compare the plaintext. Prints one line per file and a closing
`N passed, M failed` line; exits non-zero if any failed or none was found.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import lockbox_v1  # noqa: E402
from lockbox_v1 import LocalKek, ProviderError, open_envelope  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "vectors" / "keyring"
KEYRING_PROVIDER_ID = "lockbox.keyring"
STATES = {0: "enabled", 1: "decrypt-only", 2: "disabled", 3: "scheduled", 4: "destroyed"}


class Invalid(Exception):
    pass


def decode_contents(body: bytes) -> dict:
    """KEYRING.md §3, every MUST checked."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(body):
            raise Invalid("truncated")
        out = body[pos : pos + n]
        pos += n
        return out

    def u32() -> int:
        return struct.unpack(">I", take(4))[0]

    def u64() -> int:
        return struct.unpack(">Q", take(8))[0]

    if take(8) != b"LKBXRING":
        raise Invalid("magic")
    if take(1) != b"\x01":
        raise Invalid("contents format version")
    q = take(1)[0]
    if q == 0:
        raise Invalid("empty id")
    ring_id = take(q).decode("utf-8")
    if any(lockbox_v1._is_control(ch) for ch in ring_id):
        raise Invalid("control character in id")
    ring = {"id": ring_id, "generation": u64(), "primary": u32(), "minimum": u32()}
    ring["trimmed_below"], ring["last"] = u32(), u32()
    ring["rotation"], ring["min_delay"] = u64(), u64()
    n = u32()
    if ring["generation"] < 1 or ring["trimmed_below"] < 1 or n > 65535:
        raise Invalid("fixed part")
    versions, prev = {}, 0
    for _ in range(n):
        v, created, state, flags, time = u32(), u64(), take(1)[0], take(1)[0], u64()
        if not (v > prev and ring["trimmed_below"] <= v <= ring["last"]):
            raise Invalid("version order or range")
        if state not in STATES or flags & ~1:
            raise Invalid("state or flags")
        if state <= 2 and time != 0:
            raise Invalid("time on a state without one")
        compromised = bool(flags & 1)
        if compromised and state == 0:
            raise Invalid("compromised and enabled")
        key = None if state == 4 else take(32)
        versions[v] = {
            "created": created,
            "state": STATES[state],
            "compromised": compromised,
            "time": time,
            "key": key,
        }
        prev = v
    if pos != len(body):
        raise Invalid("trailing bytes")
    p = versions.get(ring["primary"])
    if p is None or p["state"] != "enabled" or p["compromised"]:
        raise Invalid("primary")
    if not ring["trimmed_below"] <= ring["minimum"] <= ring["primary"]:
        raise Invalid("minimum decryption version")
    ring["versions"] = versions
    return ring


class KeyringProvider:
    """`lockbox.keyring` (KEYRING.md §5), ordinary unwrap rules."""

    provider_id = KEYRING_PROVIDER_ID

    def __init__(self, ring: dict):
        self.ring = ring

    def matches(self, entry) -> bool:
        return entry.provider_id == KEYRING_PROVIDER_ID and entry.key_id == self.ring["id"]

    def unwrap(self, entry, binding: bytes) -> bytes:
        if not self.matches(entry):
            raise ProviderError("key-not-found")
        v = self.ring["versions"].get(entry.key_version)
        if v is None or v["state"] not in ("enabled", "decrypt-only"):
            raise ProviderError("key-not-found")
        if entry.key_version < self.ring["minimum"] or v["compromised"]:
            raise ProviderError("key-not-found")
        w = entry.wrapped
        if len(w) != 61 or w[0] != 1:
            raise ProviderError("authentication")
        try:
            return AESGCM(v["key"]).decrypt(w[1:13], w[13:], binding)
        except InvalidTag:
            raise ProviderError("authentication") from None


# KEYRING.md §6: the decoded contents of each frozen vector, every field.
EXPECTED = {
    "v1-keyring": {
        "file_len": 564,
        "contents_len": 249,
        "suite_id": 1,
        "segment_size": 65536,
        "ring": {
            "id": "vector-ring",
            "generation": 1,
            "primary": 4,
            "minimum": 2,
            "trimmed_below": 2,
            "last": 5,
            "rotation": 7_776_000,
            "min_delay": 86_400,
        },
        # version: (created, state, compromised, time, key hex or None)
        "versions": {
            2: (1_700_000_100, "destroyed", False, 1_700_100_000, None),
            3: (1_700_000_200, "decrypt-only", True, 0,
                "f7bf33f29ebf0e9bc4d4abe5eb68fa6d8d12e4c2a64a7f14fbc2fefcd6813f46"),
            4: (1_700_000_300, "enabled", False, 0,
                "2387d4c341978b3e39fb8ed29bd4e3a67ad5324ef3c5fde831988740a3ad1135"),
            5: (1_700_000_400, "enabled", False, 0,
                "70e29667e4bae16400e61ad16aea40dc03451d536e89f23a8d46264e9f137da1"),
        },
    },
}


def compare(stem: str, file: bytes, body: bytes, header, ring: dict) -> str:
    """Every decoded field against KEYRING.md §6; returns "" or what differs."""
    want = EXPECTED.get(stem)
    if want is None:
        return f"no expected contents listed for {stem}"
    got = {
        "file_len": len(file),
        "contents_len": len(body),
        "suite_id": header.suite_id,
        "segment_size": header.segment_size,
    }
    for k in ("file_len", "contents_len", "suite_id", "segment_size"):
        if got[k] != want[k]:
            return f"{k}: {got[k]} != {want[k]}"
    for k, v in want["ring"].items():
        if ring[k] != v:
            return f"{k}: {ring[k]!r} != {v!r}"
    versions = {
        n: (e["created"], e["state"], e["compromised"], e["time"], e["key"].hex() if e["key"] else None)
        for n, e in ring["versions"].items()
    }
    if versions != want["versions"]:
        return f"versions: {versions} != {want['versions']}"
    return ""


def check(path: Path) -> tuple:
    vector = json.loads(path.read_text())
    master = LocalKek(bytes.fromhex(vector["master_key_hex"]))
    file = bytes.fromhex(vector["keyring_file_hex"])
    body = open_envelope(file, master, {})
    header, _ = lockbox_v1.parse(file)
    context = {e.key: e.value for e in header.context}
    if any(not e.stored for e in header.context) or set(context) != {
        "lockbox.keyring.format",
        "lockbox.keyring.id",
        "lockbox.keyring.generation",
    }:
        return False, "file context entries"
    ring = decode_contents(body)
    differs = compare(path.stem, file, body, header, ring)
    if differs:
        return False, f"decoded contents differ from KEYRING.md §6: {differs}"
    if context["lockbox.keyring.format"] != "1":
        return False, "format"
    if context["lockbox.keyring.id"] != ring["id"] or context["lockbox.keyring.generation"] != str(ring["generation"]):
        return False, "context does not match the contents"
    envelope = bytes.fromhex(vector["envelope_hex"])
    plaintext = open_envelope(envelope, KeyringProvider(ring), {"tenant": "acme"})
    if plaintext != vector["plaintext"].encode():
        return False, "plaintext differs"
    states = ", ".join(
        f"v{v} {s['state']}{' compromised' if s['compromised'] else ''}" for v, s in ring["versions"].items()
    )
    return True, f"keyring {ring['id']} generation {ring['generation']} primary v{ring['primary']}: {states}"


def main(argv) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    files = sorted(directory.glob("*.json"))
    passed = failed = 0
    for path in files:
        try:
            ok, message = check(path)
        except (Invalid, lockbox_v1.LockboxError, ValueError, KeyError) as e:
            ok, message = False, f"{type(e).__name__}: {e}"
        print(f"{'PASS' if ok else 'FAIL'} {path.stem}: {message}")
        passed += ok
        failed += not ok
    if not files:
        print(f"no vectors found in {directory}")
    print(f"{passed} passed, {failed} failed")
    return 0 if files and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
