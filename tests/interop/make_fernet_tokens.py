"""Makes Fernet tokens with Python's `cryptography` (the reference Fernet),
for the Rust migration tests.

    python3 tests/interop/make_fernet_tokens.py OUT.json [DIR]

writes OUT.json: three Fernet keys (as MultiFernet takes them, newest
first) and tokens made under each of them at fixed times (`encrypt_at_time`)
with plaintexts of every length class (empty, one block minus one, one
block, several blocks, binary, UTF-8). With DIR, also writes each token to
DIR/<n>.fernet (the layout `examples/fernet_migrate.rs` reads) and the keys
to DIR/keys.txt.

`tests/vectors/fernet/python-tokens.json` was made with this script once
(cryptography 48.0.0) and is frozen; CI runs it again for fresh tokens and
migrates them with the example.
"""

import json
import os
import sys

from cryptography.fernet import Fernet, MultiFernet

PLAINTEXTS = [
    b"",
    b"hello",
    b"x" * 15,
    b"y" * 16,
    b"z" * 17,
    bytes(range(256)),
    "pässwörd – 秘密 🔑".encode(),
    b"A" * 1000,
]


def main() -> None:
    out = sys.argv[1]
    directory = sys.argv[2] if len(sys.argv) > 2 else None
    keys = [Fernet.generate_key() for _ in range(3)]  # newest first
    multi = MultiFernet([Fernet(k) for k in keys])
    tokens = []
    t0 = 1_700_000_000
    for i, key in enumerate(keys):
        f = Fernet(key)
        for j, pt in enumerate(PLAINTEXTS):
            at = t0 + 100 * i + j
            tok = f.encrypt_at_time(pt, at)
            assert multi.decrypt_at_time(tok, 60, at + 10) == pt
            tokens.append(
                {
                    "key_index": i,
                    "timestamp": at,
                    "plaintext_hex": pt.hex(),
                    "token": tok.decode(),
                }
            )
    doc = {
        "comment": "Fernet tokens made by Python's cryptography package (Fernet.encrypt_at_time) "
        "with tests/interop/make_fernet_tokens.py; keys newest first as MultiFernet takes them",
        "cryptography_version": __import__("cryptography").__version__,
        "keys": [k.decode() for k in keys],
        "tokens": tokens,
    }
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    if directory:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "keys.txt"), "w") as fh:
            fh.write("\n".join(k.decode() for k in keys) + "\n")
        for n, t in enumerate(tokens):
            with open(os.path.join(directory, f"{n:03}.fernet"), "w") as fh:
                fh.write(t["token"] + "\n")
    print(f"{len(tokens)} tokens under {len(keys)} keys")


if __name__ == "__main__":
    main()
