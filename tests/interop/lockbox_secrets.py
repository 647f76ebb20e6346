"""An independent decoder for lockbox secrets files, version 1.

Written from SECRETS.md alone (and FORMAT.md for the key envelope, through
the independent envelope decoder `lockbox_v1`), not from the Rust sources.
Section numbers in comments (§n) refer to SECRETS.md.

    from lockbox_secrets import open_secrets
    values = open_secrets("dotenv", file_bytes, [LocalKek.from_base64(...)], {})
    # [(name, type, text), ...] in file order

Failures raise `SecretsError` (with a `kind` as the vectors spell it) or the
envelope decoder's `LockboxError`s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
from typing import Mapping, Sequence

from cryptography.exceptions import InvalidTag

import lockbox_v1
from lockbox_v1 import Authentication, LockboxError, _XChaCha20Poly1305, _is_control, _is_format, hkdf_sha256


class SecretsError(LockboxError):
    kind = "secrets"


class Malformed(SecretsError):
    kind = "malformed"


class DuplicateName(SecretsError):
    kind = "duplicate-name"


class UnsupportedVersion(SecretsError):
    kind = "unsupported-version"


class NotASecretsFile(SecretsError):
    kind = "not-a-secrets-file"


FORMS = {"dotenv": 1, "json": 2}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_FILE = 16 << 20
MAX_VALUES = 65535


def b64url(text: str, what: str) -> bytes:
    """Canonical base64url without padding (§2)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise Malformed(f"{what} is not base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != text:
        raise Malformed(f"{what} is not canonical base64url")
    return raw


def value_bytes(text: str) -> bytes:
    """`lockbox:<V>` (§2, §5): 24 + 32k + 16 bytes, k >= 1."""
    if not text.startswith("lockbox:"):
        raise Malformed("not an encrypted value")
    v = b64url(text[len("lockbox:"):], "value")
    body = len(v) - 40
    if body < 32 or body % 32:
        raise Malformed("encrypted value of a wrong length")
    return v


def visible(line: str) -> bool:
    return not any((_is_control(c) and c != "\t") or _is_format(c) for c in line)


def meta_version(line: str) -> None:
    rest = line[len("#lockbox:"):]
    version = rest.split(":", 1)[0]
    if version == "v1":
        return
    m = re.fullmatch(r"v([1-9][0-9]*)", version)
    if m:
        raise UnsupportedVersion(f"version {m.group(1)}")
    raise Malformed("bad #lockbox: line")


# --- §2 dotenv -------------------------------------------------------------


def parse_dotenv(data: bytes):
    text = data.decode("utf-8")  # strict
    if text.endswith("\n"):
        text = text[:-1]
    lines = [l[:-1] if l.endswith("\r") else l for l in text.split("\n")]
    if len(lines) < 2:
        raise Malformed("no trailer")
    *body_lines, header_line, mac_line = lines
    for l in (header_line, mac_line):
        if not l.startswith("#lockbox:"):
            raise Malformed("the last two lines are the trailer")
        meta_version(l)
    if not header_line.startswith("#lockbox:v1:header:") or not mac_line.startswith("#lockbox:v1:mac:"):
        raise Malformed("bad trailer")
    header = b64url(header_line[len("#lockbox:v1:header:"):], "header")
    mac = b64url(mac_line[len("#lockbox:v1:mac:"):], "mac")
    if len(mac) != 32:
        raise Malformed("authenticator length")
    entries = []
    for l in body_lines:
        if "\r" in l or not visible(l):
            raise Malformed("control or format character")
        stripped = l.lstrip(" \t")
        if stripped == "":
            continue
        if stripped.startswith("#lockbox:"):
            raise Malformed("#lockbox: line outside the trailer")
        if stripped.startswith("#"):
            continue
        name, sep, value = l.partition("=")
        if not sep or not NAME.match(name) or len(name.encode()) > 255:
            raise Malformed("bad name")
        if any(n == name for n, _ in entries):
            raise DuplicateName(name)
        entries.append((name, value_bytes(value)))
        if len(entries) > MAX_VALUES:
            raise Malformed("too many values")
    # The body as a tree: an object of leaves (§2.4, §6).
    return ("o", [(name, ("v", v)) for name, v in entries]), header, mac


# --- §3 JSON ---------------------------------------------------------------


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Malformed("duplicate key")
    return pairs


def _check_strings(s: str) -> str:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        raise Malformed("lone surrogate")
    return s


class ObjectPairs(list):
    """An object as json.loads gives it with our hook: distinct from arrays."""


def _hook(pairs):
    return ObjectPairs(_no_duplicates(pairs))


def _parse_json_tree(data: bytes):
    # Re-parse with a hook that marks objects, so {} and [] stay apart.
    if data.startswith(b"\xef\xbb\xbf"):
        raise Malformed("byte-order mark")
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_hook, parse_constant=_refuse)
    except Malformed:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise Malformed(str(e)) from None
    return doc


def _refuse(c):
    raise Malformed(f"not JSON: {c}")


def parse_json_strict(data: bytes):
    doc = _parse_json_tree(data)
    if not isinstance(doc, ObjectPairs):
        raise Malformed("not an object")
    metas = [v for k, v in doc if k == "lockbox"]
    if len(metas) != 1 or not isinstance(metas[0], ObjectPairs):
        raise Malformed("no lockbox object")
    m = dict(metas[0])
    if sorted(m) != ["header", "mac", "version"] or not all(isinstance(v, str) for v in m.values()):
        raise Malformed("lockbox object members")
    if m["version"] != "1":
        if re.fullmatch(r"[1-9][0-9]*", m["version"]):
            raise UnsupportedVersion(m["version"])
        raise Malformed("version")
    header = b64url(m["header"], "header")
    mac = b64url(m["mac"], "mac")
    if len(mac) != 32:
        raise Malformed("authenticator length")
    count = [0]

    def key(k):
        _check_strings(k)
        if any(_is_control(c) or _is_format(c) for c in k):
            raise Malformed("control or format character in a key")
        return k

    def node(v, depth):
        if isinstance(v, ObjectPairs):
            if depth > 32:
                raise Malformed("nested too deeply")
            return ("o", [(key(k), node(x, depth + 1)) for k, x in v])
        if isinstance(v, list):
            if depth > 32:
                raise Malformed("nested too deeply")
            return ("a", [node(x, depth + 1) for x in v])
        if isinstance(v, str):
            count[0] += 1
            if count[0] > MAX_VALUES:
                raise Malformed("too many values")
            return ("v", value_bytes(_check_strings(v)))
        raise Malformed("a leaf is not an encrypted value")

    body = [(key(k), node(v, 2)) for k, v in doc if k != "lockbox"]
    return ("o", body), header, mac


# --- §6, §5 ----------------------------------------------------------------


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def encode_node(n) -> bytes:
    tag, x = n
    if tag == "v":
        return b"v" + u32(len(x)) + x
    if tag == "a":
        return b"a" + u32(len(x)) + b"".join(encode_node(e) for e in x)
    out = b"o" + u32(len(x))
    for k, v in x:
        kb = k.encode("utf-8")
        out += u32(len(kb)) + kb + encode_node(v)
    return out


def leaves(n, path=()):
    tag, x = n
    if tag == "v":
        yield path, x
    elif tag == "a":
        for i, e in enumerate(x):
            yield from leaves(e, path + (("i", i),))
    else:
        for k, v in x:
            yield from leaves(v, path + (("k", k),))


def encode_path(path) -> bytes:
    out = u32(len(path))
    for kind, s in path:
        if kind == "k":
            b = s.encode("utf-8")
            out += b"k" + u32(len(b)) + b
        else:
            out += b"i" + u32(s)
    return out


def pointer(form: str, path) -> str:
    if form == "dotenv":
        return path[0][1]
    return "".join("/" + (s.replace("~", "~0").replace("/", "~1") if k == "k" else str(s)) for k, s in path)


def _is_json_number(t: str) -> bool:
    return re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", t) is not None


def open_secrets(form: str, data: bytes, providers: Sequence, context: Mapping[str, str]):
    """Opens a secrets file of `form`; returns [(name, type, text)] in file order."""
    if len(data) > MAX_FILE:
        raise Malformed("too large")
    body, header, mac = parse_dotenv(data) if form == "dotenv" else parse_json_strict(data)
    # §4 step 1: the key envelope's reserved entries.
    h, _ = lockbox_v1.parse(header)
    stored = {e.key: e.value for e in h.context if e.value is not None}
    required = [e.key for e in h.context if e.value is None]
    if any(k.startswith("lockbox.secrets.") for k in required):
        raise NotASecretsFile("a reserved entry is required")
    fmt = stored.get("lockbox.secrets.format")
    if fmt is None:
        raise NotASecretsFile("no format entry")
    if fmt != "1":
        if re.fullmatch(r"[1-9][0-9]*", fmt):
            raise UnsupportedVersion(fmt)
        raise NotASecretsFile("format entry")
    if stored.get("lockbox.secrets.form") != form:
        raise NotASecretsFile("another form")
    file_hex = stored.get("lockbox.secrets.file", "")
    if not re.fullmatch(r"[0-9a-f]{32}", file_hex):
        raise NotASecretsFile("file id")
    known = {"lockbox.secrets.format", "lockbox.secrets.form", "lockbox.secrets.file"}
    if any(k.startswith("lockbox.secrets.") and k not in known for k in stored):
        raise NotASecretsFile("unknown reserved entry")
    file_id = bytes.fromhex(file_hex)
    # §4 step 2-3: open the envelope with the reserved entries and the caller's.
    ctx = dict(context)
    ctx.update({k: stored[k] for k in known})
    file_key = lockbox_v1.open_envelope(header, providers, ctx)
    if len(file_key) != 32:
        raise NotASecretsFile("payload is not 32 bytes")
    value_key = hkdf_sha256(file_id, file_key, b"lockbox secrets v1 value key")
    mac_key = hkdf_sha256(file_id, file_key, b"lockbox secrets v1 mac key")
    # §6: the authenticator, before any value is decrypted.
    form_byte = bytes([FORMS[form]])
    expected = hmac.new(
        mac_key, b"lockbox secrets v1 file" + form_byte + u32(len(header)) + header + encode_node(body), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, mac):
        raise Authentication()
    # §5: every value.
    aead = _XChaCha20Poly1305(value_key)
    out = []
    for path, v in leaves(body):
        aad = b"lockbox secrets v1 value" + file_id + form_byte + encode_path(path)
        try:
            plain = aead.decrypt(v[:24], v[24:], aad)
        except InvalidTag:
            raise Authentication() from None
        marker = len(plain.rstrip(b"\x00")) - 1
        if marker < 1 or plain[marker] != 0x80 or len(plain) != -(-(marker - 1 + 2) // 32) * 32:
            raise Authentication()
        kind, data = plain[0], plain[1:marker]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Authentication() from None
        if kind == 1 and (form == "json" or "\x00" not in text):
            out.append((pointer(form, path), "string", text))
        elif form == "json" and kind == 2 and _is_json_number(text):
            out.append((pointer(form, path), "number", text))
        elif form == "json" and kind in (3, 4, 5) and data == b"":
            t = {3: "true", 4: "false", 5: "null"}[kind]
            out.append((pointer(form, path), t, t))
        else:
            raise Authentication()
    return out
