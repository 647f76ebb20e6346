#!/usr/bin/env python3
"""Checks the recipient and passphrase vectors with the independent Python decoder.

    python3 tests/interop/check_recipients.py [VECTOR_DIR]

VECTOR_DIR defaults to tests/vectors/recipients. Every `NNN-*.json` envelope
vector is opened with the identities (rebuilt from their strings, checked
against their raw bytes, recipient strings and key ids) or passphrases it
lists: "success" vectors must open to `plaintext_hex`, the others must fail
with `expect` and `error_detail` (`attempts=N; source=KIND`). `strings.json`
is parsed string by string. X-Wing vectors need ML-KEM-768 in `cryptography`;
without it they are reported as SKIP. Prints one line per vector and a closing
`N passed, M failed` line; exits non-zero if any failed or none was found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # leave no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lockbox_recipients as lr  # noqa: E402  (after the path tweak)
from lockbox_v1 import LockboxError, NoProviderCouldUnwrap, open_envelope  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "vectors" / "recipients"


class Skip(Exception):
    pass


def provider(spec: dict):
    if "passphrase" in spec:
        return lr.Passphrase(spec["passphrase"], spec["label"])
    kind, secret = lr.parse_key_string(spec["identity"], identity=True)
    if secret.hex() != spec["identity_secret_hex"]:
        raise AssertionError("identity string does not decode to identity_secret_hex")
    if kind == "xwing" and not lr.have_mlkem():
        raise Skip("X-Wing: this cryptography build has no ML-KEM-768")
    ident = lr.identity_from_string(spec["identity"])
    if ident.provider_id != spec["provider_id"]:
        raise AssertionError("wrong provider id")
    if ident.public.hex() != spec["recipient_public_hex"]:
        raise AssertionError("public key differs from recipient_public_hex")
    if ident.key_id != spec["key_id"]:
        raise AssertionError(f"key id {ident.key_id} differs from {spec['key_id']}")
    rkind, public = lr.parse_key_string(spec["recipient"], identity=False)
    if public != ident.public or rkind != kind:
        raise AssertionError("recipient string does not hold the identity's public key")
    hrp = lr.X25519_RECIPIENT_HRP if kind == "x25519" else lr.XWING_RECIPIENT_HRP
    if lr.bech32m_encode(hrp, public) != spec["recipient"]:
        raise AssertionError("recipient string is not the canonical encoding")
    return ident


def detail(e: LockboxError) -> str:
    if isinstance(e, NoProviderCouldUnwrap):
        source = e.last_error.kind if e.last_error is not None else "none"
        return f"attempts={e.attempts}; source={source}"
    return e.detail or ""


def check_envelope(vector: dict) -> str:
    providers = [provider(s) for s in vector["open_with"]]
    context = {e["key"]: e["value"] for e in vector["open_context"]}
    envelope = bytes.fromhex(vector["envelope_hex"])
    expect = vector["expect"]
    try:
        plaintext = open_envelope(envelope, providers, context)
    except LockboxError as e:
        if expect == "success":
            raise AssertionError(f"expected success, got {e.kind} ({detail(e)})") from None
        if e.kind != expect or detail(e) != vector["error_detail"]:
            raise AssertionError(f"expected {expect} ({vector['error_detail']}), got {e.kind} ({detail(e)})") from None
        return f"rejected: {e.kind} ({detail(e)})"
    if expect != "success":
        raise AssertionError(f"expected {expect}, but it OPENED")
    if plaintext.hex() != vector["plaintext_hex"]:
        raise AssertionError("opened to the wrong plaintext")
    return f"opened: {len(plaintext)} bytes"


def check_string(vector: dict) -> str:
    try:
        kind, key = lr.parse_key_string(vector["input"], identity=vector["parse_as"] == "identity")
    except lr.KeyStringError as e:
        if e.kind != vector["expect"]:
            raise AssertionError(f"expected {vector['expect']}, got {e.kind}") from None
        return f"refused: {e.kind}"
    if vector["expect"] != "valid" or key.hex() != vector["key_hex"] or kind != vector["kind"]:
        raise AssertionError(f"expected {vector['expect']}, got a valid {kind} key")
    return f"valid {kind} key"


def main(argv) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    passed = failed = skipped = 0

    def run(name: str, f, arg) -> None:
        nonlocal passed, failed, skipped
        try:
            message = f(arg)
        except Skip as e:
            print(f"SKIP {name}: {e}")
            skipped += 1
            return
        except Exception as e:  # noqa: BLE001  (a failed check or a decoder bug)
            print(f"FAIL {name}: {e}")
            failed += 1
            return
        print(f"PASS {name}: {message}")
        passed += 1

    files = sorted(p for p in directory.glob("*.json") if p.name != "strings.json")
    for path in files:
        run(path.stem, check_envelope, json.loads(path.read_text(encoding="utf-8")))
    strings = directory / "strings.json"
    if strings.exists():
        for v in json.loads(strings.read_text(encoding="utf-8"))["vectors"]:
            run(v["name"], check_string, v)
    if not files:
        print(f"no vectors found in {directory}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if files and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
