"""An independent decoder for lockbox envelope format v1.

Written from FORMAT.md alone (not from the Rust sources), so that the Rust
implementation, the specification and the frozen vectors can be checked against
each other. It opens envelopes whose data key was wrapped by a local KEK
(`lockbox.local`, FORMAT.md §10), for all three suites.

Section numbers in comments (§n) refer to FORMAT.md.

    from lockbox_v1 import LocalKek, open_envelope
    kek = LocalKek.from_base64("QkJC...QkI=")
    plaintext = open_envelope(envelope_bytes, kek, {"tenant": "acme"})

Every failure is an exception derived from `LockboxError`; its `kind` is the
outcome's name as used by the vector files ("malformed", "authentication", ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

__all__ = [
    "LockboxError",
    "Malformed",
    "UnsupportedVersion",
    "UnsupportedSuite",
    "LimitExceeded",
    "MissingContext",
    "ContextMismatch",
    "NoProviderCouldUnwrap",
    "Authentication",
    "ProviderError",
    "Limits",
    "LocalKek",
    "Header",
    "WrappedEntry",
    "parse",
    "frame_payload",
    "reconcile_context",
    "derive_keys",
    "open_envelope",
    "hchacha20",
]

# ---------------------------------------------------------------------------
# Outcomes (§9.3)


class LockboxError(Exception):
    """Base class of every outcome other than success."""

    kind = "error"
    detail: Optional[str] = None


class Malformed(LockboxError):
    """The structure violates §2 or §6.3."""

    kind = "malformed"


class UnsupportedVersion(LockboxError):
    """Correct magic, version byte other than 1."""

    kind = "unsupported-version"

    def __init__(self, version: int):
        super().__init__(f"unsupported format version {version}")
        self.version = version


class UnsupportedSuite(LockboxError):
    """Suite id unknown to this decoder."""

    kind = "unsupported-suite"

    def __init__(self, suite_id: int):
        super().__init__(f"unsupported suite id {suite_id}")
        self.suite_id = suite_id


class LimitExceeded(LockboxError):
    """An open limit (§11) was exceeded. `limit` names it, e.g. "header-bytes"."""

    kind = "limit-exceeded"

    def __init__(self, limit: str, maximum: int):
        super().__init__(f"limit exceeded: {limit} (max {maximum})")
        self.limit = limit
        self.maximum = maximum
        self.detail = limit


class MissingContext(LockboxError):
    """A required context entry was not supplied."""

    kind = "missing-context"

    def __init__(self, key: str):
        super().__init__(f"required context key {key!r} not supplied")
        self.key = key
        self.detail = key


class ContextMismatch(LockboxError):
    """A supplied stored value differs, or a supplied key is not in the envelope."""

    kind = "context-mismatch"

    def __init__(self, key: str):
        super().__init__(f"context key {key!r} does not match the envelope")
        self.key = key
        self.detail = key


class NoProviderCouldUnwrap(LockboxError):
    """No matching wrapped key could be unwrapped (and none unwrapped to a wrong key)."""

    kind = "no-provider-could-unwrap"

    def __init__(self, attempts: int, last_error: Optional["ProviderError"]):
        super().__init__(f"no provider could unwrap ({attempts} matching wrapped key(s) tried)")
        self.attempts = attempts
        self.last_error = last_error
        self.detail = f"attempts={attempts}"


class Authentication(LockboxError):
    """Commitment, header tag or a segment tag failed. Deliberately uninformative."""

    kind = "authentication"

    def __init__(self) -> None:
        super().__init__("authentication failed")


class ProviderError(Exception):
    """A provider's failure to unwrap one entry (not an outcome by itself)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind  # "key-not-found" or "authentication"


# ---------------------------------------------------------------------------
# Constants (§2, §3, §4, §7, §10, §11)

MAGIC = b"LKBX"
VERSION = 1
MESSAGE_ID_LEN = 32
COMMITMENT_LEN = 32
TAG_LEN = 16
MIN_EXP, MAX_EXP = 6, 24
KIND_STORED, KIND_REQUIRED = 0x00, 0x01

LABEL_PAYLOAD_KEY = b"lockbox v1 payload key"
LABEL_COMMITMENT = b"lockbox v1 key commitment"
LABEL_BINDING = b"lockbox v1 binding"
LABEL_LOCAL_KEY_ID = b"lockbox v1 local kek id"

FLAG_SEGMENT, FLAG_FINAL, FLAG_HEADER = 0x00, 0x01, 0x02

LOCAL_PROVIDER_ID = "lockbox.local"
LOCAL_WRAP_VERSION = 0x01
LOCAL_WRAPPED_LEN = 61

MAX_SEGMENTS = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """Open limits (§11), defaults as specified."""

    max_header_len: int = 65536
    max_wrapped_keys: int = 16
    max_context_entries: int = 64
    max_context_bytes: int = 16384
    max_segment_size: int = 16 * 1024 * 1024


# ---------------------------------------------------------------------------
# Primitives


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF-SHA-256 (extract then expand)."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _rotl32(v: int, c: int) -> int:
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter_round(s: list, a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl32(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl32(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl32(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl32(s[b] ^ s[c], 7)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha §2.2): 32-byte subkey from key and 16 nonce bytes."""
    if len(key) != 32 or len(nonce16) != 16:
        raise ValueError("hchacha20 takes a 32-byte key and a 16-byte nonce")
    state = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    state += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):  # 20 rounds: column round, diagonal round
        _quarter_round(state, 0, 4, 8, 12)
        _quarter_round(state, 1, 5, 9, 13)
        _quarter_round(state, 2, 6, 10, 14)
        _quarter_round(state, 3, 7, 11, 15)
        _quarter_round(state, 0, 5, 10, 15)
        _quarter_round(state, 1, 6, 11, 12)
        _quarter_round(state, 2, 7, 8, 13)
        _quarter_round(state, 3, 4, 9, 14)
    return struct.pack("<8I", *(state[0:4] + state[12:16]))


class _XChaCha20Poly1305:
    """XChaCha20-Poly1305 (§4): HChaCha20 subkey, then ChaCha20-Poly1305 with 00×4 || nonce[16:24]."""

    def __init__(self, key: bytes):
        self._key = key

    def _inner(self, nonce: bytes):
        return ChaCha20Poly1305(hchacha20(self._key, nonce[:16])), b"\x00" * 4 + nonce[16:]

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        aead, n = self._inner(nonce)
        return aead.encrypt(n, data, aad)

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        aead, n = self._inner(nonce)
        return aead.decrypt(n, data, aad)


# suite id -> (name, AEAD constructor, nonce length)   (§2.1, §4)
SUITES = {
    0x01: ("AES-256-GCM", AESGCM, 12),
    0x02: ("ChaCha20-Poly1305", ChaCha20Poly1305, 12),
    0x03: ("XChaCha20-Poly1305", _XChaCha20Poly1305, 24),
}


def segment_nonce(suite_id: int, index: int, flag: int) -> bytes:
    """§4: zero bytes || u32(index) || flag, 12 or 24 bytes long."""
    length = SUITES[suite_id][2]
    return b"\x00" * (length - 5) + struct.pack(">IB", index, flag)


@dataclass
class MessageKeys:
    payload_key: bytes
    commitment: bytes

    def aead(self, suite_id: int):
        return SUITES[suite_id][1](self.payload_key)


def derive_keys(suite_id: int, dek: bytes, message_id: bytes) -> MessageKeys:
    """§3: HKDF-SHA-256, salt = message id, IKM = DEK, info = label || suite id."""
    suite = bytes([suite_id])
    return MessageKeys(
        payload_key=hkdf_sha256(message_id, dek, LABEL_PAYLOAD_KEY + suite),
        commitment=hkdf_sha256(message_id, dek, LABEL_COMMITMENT + suite),
    )


# ---------------------------------------------------------------------------
# Parsing (§2, §9.1)


def _is_control(ch: str) -> bool:
    """Unicode general category Cc (§1)."""
    cp = ord(ch)
    return cp <= 0x1F or 0x7F <= cp <= 0x9F


# §1: the format characters (Cf), as listed there (frozen; not unicodedata,
# whose Unicode version depends on the Python build).
_FORMAT_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)


def _is_format(ch: str) -> bool:
    """A format character (§1): Unicode general category Cf, frozen list."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _FORMAT_RANGES)


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8", errors="strict")  # rejects overlongs, surrogates, > U+10FFFF
    except UnicodeDecodeError:
        raise Malformed(f"{what} is not valid UTF-8") from None


class _Truncated(Exception):
    pass


class _Reader:
    """A bounds-checked cursor; running off the end raises _Truncated."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Truncated()
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]


@dataclass
class ContextEntry:
    key: str
    value: Optional[str]  # None for a required entry (its value is not in the header)
    offset: int

    @property
    def stored(self) -> bool:
        return self.value is not None


@dataclass
class WrappedEntry:
    provider_id: str
    key_id: str
    key_version: int
    wrapped: bytes
    offset: int


@dataclass
class Header:
    version: int
    suite_id: int
    segment_exponent: int
    message_id: bytes
    context: list = field(default_factory=list)  # [ContextEntry]
    commitment_offset: int = 0  # c
    commitment: bytes = b""
    wrapped_count_offset: int = 0  # c + 32
    wrapped: list = field(default_factory=list)  # [WrappedEntry]
    authenticated: bytes = b""  # header[0 .. h-16], the header tag's associated data
    tag: bytes = b""
    length: int = 0  # h, header tag included

    @property
    def segment_size(self) -> int:
        return 1 << self.segment_exponent


def parse(envelope: bytes, limits: Limits = Limits()) -> tuple:
    """Parses and validates the header (§9.1). Returns (Header, payload bytes)."""
    # Step 1: magic and version, from the whole input.
    if len(envelope) < 4 or envelope[:4] != MAGIC:
        raise Malformed("not a lockbox envelope (bad magic or shorter than 4 bytes)")
    if len(envelope) < 5:
        raise Malformed("truncated: no version byte")
    version = envelope[4]
    if version != VERSION:
        raise UnsupportedVersion(version)

    # Step 2: the rest of the header is read within the first max_header_len bytes.
    window = envelope[: limits.max_header_len]
    try:
        header = _parse_v1(_Reader(window, 5), window, limits)
    except _Truncated:
        if len(window) < len(envelope):
            raise LimitExceeded("header-bytes", limits.max_header_len) from None
        raise Malformed("truncated header") from None
    return header, envelope[header.length :]


def _parse_v1(r: _Reader, window: bytes, limits: Limits) -> Header:
    # Step 3: suite.
    suite_id = r.u8()
    if suite_id not in SUITES:
        raise UnsupportedSuite(suite_id)
    # Step 4: segment size exponent.
    exp = r.u8()
    if not MIN_EXP <= exp <= MAX_EXP:
        raise Malformed(f"segment size exponent {exp} out of range")
    if (1 << exp) > limits.max_segment_size:
        raise LimitExceeded("segment-size", limits.max_segment_size)
    # Step 5: flags.
    if r.u8() != 0:
        raise Malformed("reserved flags set")
    # Step 6: message id, context block.
    h = Header(version=VERSION, suite_id=suite_id, segment_exponent=exp, message_id=r.take(MESSAGE_ID_LEN))
    count = r.u16()
    if count > limits.max_context_entries:
        raise LimitExceeded("context-entries", limits.max_context_entries)
    context_bytes = 0
    previous: Optional[bytes] = None
    for _ in range(count):
        at = r.pos
        kind = r.u8()
        if kind not in (KIND_STORED, KIND_REQUIRED):
            raise Malformed(f"unknown context entry kind {kind}")
        key_len = r.u16()
        if key_len == 0:
            raise Malformed("empty context key")
        key_raw = r.take(key_len)
        key = _utf8(key_raw, "context key")
        if any(_is_control(ch) for ch in key):
            raise Malformed("control character in context key")
        if any(_is_format(ch) for ch in key):
            raise Malformed("format character in context key")
        value = None
        if kind == KIND_STORED:
            value_raw = r.take(r.u16())
            value = _utf8(value_raw, "context value")
            context_bytes += len(value_raw)
        if previous is not None and not previous < key_raw:  # bytewise, strictly increasing
            raise Malformed("context keys not in strictly increasing order")
        previous = key_raw
        context_bytes += len(key_raw)
        if context_bytes > limits.max_context_bytes:
            raise LimitExceeded("context-bytes", limits.max_context_bytes)
        h.context.append(ContextEntry(key, value, at))
    # Step 7: commitment.
    h.commitment_offset = r.pos
    h.commitment = r.take(COMMITMENT_LEN)
    # Step 8: wrapped-key block.
    h.wrapped_count_offset = r.pos
    n = r.u8()
    if n == 0:
        raise Malformed("no wrapped keys")
    if n > limits.max_wrapped_keys:
        raise LimitExceeded("wrapped-keys", limits.max_wrapped_keys)
    for _ in range(n):
        at = r.pos
        provider_id = _utf8(r.take(r.u8()), "provider id")
        if not (1 <= len(provider_id) <= 64 and all(0x21 <= ord(ch) <= 0x7E for ch in provider_id)):
            raise Malformed("invalid provider id")
        key_id = _utf8(r.take(r.u8()), "key id")
        if not key_id or any(_is_control(ch) for ch in key_id):
            raise Malformed("invalid key id")
        key_version = r.u32()
        wrapped_len = r.u16()
        if wrapped_len == 0:
            raise Malformed("empty wrapped key")
        h.wrapped.append(WrappedEntry(provider_id, key_id, key_version, r.take(wrapped_len), at))
    # Step 9: the header tag, over every header byte before it; the header ends after it.
    h.authenticated = window[: r.pos]
    h.tag = r.take(TAG_LEN)
    h.length = r.pos
    return h


@dataclass(frozen=True)
class Framing:
    count: int  # N
    last_len: int  # plaintext bytes in the last segment


def frame_payload(payload_len: int, segment_size: int) -> Framing:
    """§6.3: number of segments and length of the last one, from the payload length."""
    if payload_len < TAG_LEN:
        raise Malformed("truncated payload")
    q, r = divmod(payload_len, segment_size + TAG_LEN)
    if r == 0:
        count, last_len = q, segment_size
    elif r < TAG_LEN:
        raise Malformed("truncated payload")
    else:
        count, last_len = q + 1, r - TAG_LEN
    if last_len == 0 and count > 1:
        raise Malformed("empty final segment after a full one")
    if count > MAX_SEGMENTS:
        raise Malformed("more than 2^32 - 1 segments")
    return Framing(count, last_len)


# ---------------------------------------------------------------------------
# Binding and context (§7, §9.2 step 1)


def _field(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


def reconcile_context(header: Header, supplied: Mapping[str, str]) -> bytes:
    """Rebuilds the full context from header and caller; returns the binding bytes (§7)."""
    out = LABEL_BINDING + bytes([header.suite_id]) + struct.pack(">H", len(header.context))
    for e in header.context:
        if e.stored:
            if e.key in supplied and supplied[e.key] != e.value:
                raise ContextMismatch(e.key)
            out += bytes([KIND_STORED]) + _field(e.key.encode()) + _field(e.value.encode())
        else:
            if e.key not in supplied:
                raise MissingContext(e.key)
            out += bytes([KIND_REQUIRED]) + _field(e.key.encode()) + _field(supplied[e.key].encode())
    in_header = {e.key for e in header.context}
    extra = sorted((k for k in supplied if k not in in_header), key=lambda k: k.encode())
    if extra:
        raise ContextMismatch(extra[0])
    return out


# ---------------------------------------------------------------------------
# The local KEK provider (§10)


class LocalKek:
    """`lockbox.local`: AES-256-GCM under a 32-byte KEK, binding as associated data."""

    provider_id = LOCAL_PROVIDER_ID

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("a local KEK is 32 bytes")
        self._key = bytes(key)
        self.key_id = hashlib.sha256(LABEL_LOCAL_KEY_ID + self._key).digest()[:16].hex()

    @classmethod
    def from_base64(cls, text: str) -> "LocalKek":
        """§10 text form: canonical padded standard base64 of 32 bytes, ASCII whitespace trimmed."""
        text = text.strip(" \t\n\f\r")
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not standard base64") from None
        if len(key) != 32 or base64.b64encode(key).decode() != text:
            raise ValueError("not the canonical base64 of exactly 32 bytes")
        return cls(key)

    def matches(self, entry: WrappedEntry) -> bool:
        return entry.provider_id == LOCAL_PROVIDER_ID and entry.key_id == self.key_id

    def unwrap(self, entry: WrappedEntry, binding: bytes) -> bytes:
        if not self.matches(entry) or entry.key_version != 1:
            raise ProviderError("key-not-found")
        w = entry.wrapped
        if len(w) != LOCAL_WRAPPED_LEN or w[0] != LOCAL_WRAP_VERSION:
            raise ProviderError("authentication")
        nonce, ciphertext_and_tag = w[1:13], w[13:]
        try:
            return AESGCM(self._key).decrypt(nonce, ciphertext_and_tag, binding)
        except InvalidTag:
            raise ProviderError("authentication") from None


# ---------------------------------------------------------------------------
# Opening (§9.2)


def open_envelope(
    envelope: bytes,
    providers,
    context: Mapping[str, str],
    limits: Limits = Limits(),
) -> bytes:
    """Opens an envelope; returns the plaintext or raises a LockboxError.

    `providers` is one provider or a sequence of them (objects with `matches`
    and `unwrap`, like LocalKek), tried in that order for each wrapped key;
    `context` maps keys to values.
    """
    if not isinstance(providers, Sequence):
        providers = [providers]
    header, payload = parse(envelope, limits)
    framing = frame_payload(len(payload), header.segment_size)

    # Step 1: reconcile the context.
    binding = reconcile_context(header, context)

    # Step 2: for each entry in header order, each matching provider in the order
    # given, until a DEK passes the commitment.
    attempts, last_error, wrong_key = 0, None, False
    keys = None
    pairs = ((entry, p) for entry in header.wrapped for p in providers if p.matches(entry))
    for entry, provider in pairs:
        attempts += 1
        try:
            dek = provider.unwrap(entry, binding)
        except ProviderError as e:
            last_error = e
            continue
        candidate = derive_keys(header.suite_id, dek, header.message_id)
        if not hmac.compare_digest(candidate.commitment, header.commitment):
            wrong_key = True  # not this envelope's DEK: try the next pair
            continue
        keys = candidate
        break
    if keys is None:
        if wrong_key:
            raise Authentication()
        raise NoProviderCouldUnwrap(attempts, last_error)

    aead = keys.aead(header.suite_id)
    # Step 3: header tag over every header byte before it, wrapped keys included.
    try:
        aead.decrypt(segment_nonce(header.suite_id, 0, FLAG_HEADER), header.tag, header.authenticated)
    except InvalidTag:
        raise Authentication() from None

    # Step 4: segments; nothing is released unless all of them verify.
    size, stride = header.segment_size, header.segment_size + TAG_LEN
    chunks = []
    for i in range(framing.count):
        last = i == framing.count - 1
        start = i * stride
        segment = payload[start : start + (framing.last_len if last else size) + TAG_LEN]
        nonce = segment_nonce(header.suite_id, i, FLAG_FINAL if last else FLAG_SEGMENT)
        try:
            chunks.append(aead.decrypt(nonce, segment, b""))
        except InvalidTag:
            raise Authentication() from None
    # Step 5: release.
    return b"".join(chunks)


def self_test() -> None:
    """Known-answer test of the hand-written HChaCha20 (draft-irtf-cfrg-xchacha §2.2.1)."""
    key = bytes(range(32))
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    expected = "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    if hchacha20(key, nonce).hex() != expected:
        raise AssertionError("HChaCha20 known-answer test failed")
