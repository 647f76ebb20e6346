"""Opens every secrets-file vector (tests/vectors/secrets/*.json) with the
independent decoder `lockbox_secrets.py` (written from SECRETS.md and
FORMAT.md): positive vectors must give exactly their values, negative ones
must fail with their `expect` outcome. Prints one line per vector and
`N passed, M failed`; exits non-zero on any failure or if none was found."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import lockbox_v1  # noqa: E402
from lockbox_secrets import open_secrets  # noqa: E402
from lockbox_v1 import LocalKek, LockboxError  # noqa: E402

OUTCOMES = {
    "authentication": "authentication",
    "no-provider-could-unwrap": "no-provider-could-unwrap",
}


def main() -> int:
    root = pathlib.Path(__file__).resolve().parents[2]
    d = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "tests" / "vectors" / "secrets"
    lockbox_v1.self_test()
    passed = failed = 0
    for path in sorted(d.glob("*.json")):
        v = json.loads(path.read_text())
        kek = LocalKek.from_base64(v["kek_base64"])
        ctx = {e["key"]: e["value"] for e in v["open_context"]}
        data = bytes.fromhex(v["file_hex"])
        try:
            got = open_secrets(v["form"], data, [kek], ctx)
            outcome = "success"
        except LockboxError as e:
            got, outcome = None, e.kind
        ok = outcome == v["expect"]
        if ok and outcome == "success":
            want = [(x["name"], x["type"], x["value"]) for x in v["values"]]
            ok = got == want
        print(f"{'PASS' if ok else 'FAIL'} {path.name}" + ("" if ok else f": expected {v['expect']}, got {outcome} {got}"))
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
