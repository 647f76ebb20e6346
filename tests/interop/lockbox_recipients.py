"""Independent decoder for lockbox's recipient and passphrase providers.

Written from FORMAT.md §15 alone (not from the Rust sources), on top of the
envelope decoder in `lockbox_v1.py`:

- §15.1: Bech32m recipient and identity strings, with every check a reader
  makes (case, alphabet, checksum, padding, prefix, key type, length);
- §15.2: `lockbox.x25519` identities: HPKE base mode, DHKEM(X25519,
  HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, with the key schedule written
  out here from RFC 9180 (HKDF by hand on `hmac`/`hashlib`; X25519 and
  ChaCha20-Poly1305 from `cryptography`);
- §15.2: `lockbox.xwing` identities, when `cryptography` has ML-KEM-768: the
  X-Wing decapsulation of draft-connolly-cfrg-xwing-kem (SHAKE-256 key
  expansion, SHA3-256 combiner) and the same key schedule;
- §15.3: `lockbox.passphrase`: Argon2id (`argon2-cffi`) and ChaCha20-Poly1305,
  with the parameter limits checked before any work.

Providers have `matches(entry)` and `unwrap(entry, binding)` like
`lockbox_v1.LocalKek`, so `lockbox_v1.open_envelope` opens with them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from lockbox_v1 import ProviderError, WrappedEntry

# ---------------------------------------------------------------------------
# §15.1 Bech32m strings

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONST = 0x2BC830A3
MAX_STRING_LEN = 4096

X25519_RECIPIENT_HRP = "lockbox-x25519-pub"
X25519_IDENTITY_HRP = "LOCKBOX-X25519-SECRET-KEY-"
XWING_RECIPIENT_HRP = "lockbox-xwing-pub"
XWING_IDENTITY_HRP = "LOCKBOX-XWING-SECRET-KEY-"
# HRP (lowercase) -> (kind, is_identity, key length)
PREFIXES = {
    X25519_RECIPIENT_HRP: ("x25519", False, 32),
    X25519_IDENTITY_HRP.lower(): ("x25519", True, 32),
    XWING_RECIPIENT_HRP: ("xwing", False, 1216),
    XWING_IDENTITY_HRP.lower(): ("xwing", True, 32),
}


class KeyStringError(Exception):
    """A refused key string; `kind` as in tests/vectors/recipients/strings.json."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def _polymod(values) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def _hrp_expand(hrp: str) -> list:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32m_decode(s: str) -> tuple:
    """Returns (hrp as written, data bytes) or raises KeyStringError."""
    if len(s) > MAX_STRING_LEN:
        raise KeyStringError("length")
    for c in s:
        if not 0x21 <= ord(c) <= 0x7E:
            raise KeyStringError("invalid-character")
    if any(c.islower() for c in s) and any(c.isupper() for c in s):
        raise KeyStringError("mixed-case")
    sep = s.rfind("1")
    if sep < 0:
        raise KeyStringError("invalid-character")
    hrp, rest = s[:sep], s[sep + 1 :]
    if not hrp or len(rest) < 6:
        raise KeyStringError("length")
    values = []
    for c in rest.lower():
        if c not in CHARSET:
            raise KeyStringError("invalid-character")
        values.append(CHARSET.index(c))
    if _polymod(_hrp_expand(hrp.lower()) + values) != BECH32M_CONST:
        raise KeyStringError("checksum")
    acc, bits, out = 0, 0, bytearray()
    for v in values[:-6]:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1
    if bits >= 5 or acc:
        raise KeyStringError("non-canonical")
    return hrp, bytes(out)


def bech32m_encode(hrp: str, data: bytes) -> str:
    groups, acc, bits = [], 0, 0
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            groups.append((acc >> bits) & 31)
        acc &= (1 << bits) - 1
    if bits:
        groups.append((acc << (5 - bits)) & 31)
    chk = _polymod(_hrp_expand(hrp.lower()) + groups + [0] * 6) ^ BECH32M_CONST
    groups += [(chk >> (5 * (5 - i))) & 31 for i in range(6)]
    text = hrp + "1" + "".join(CHARSET[g] for g in groups)
    return text.upper() if hrp.isupper() else text


def parse_key_string(s: str, identity: bool) -> tuple:
    """Returns (kind, key bytes) of a recipient (identity=False) or identity string."""
    s = s.strip(" \t\n\f\r")
    sep = s.rfind("1")
    known = sep >= 0 and s[:sep].lower() in PREFIXES
    try:
        hrp, data = bech32m_decode(s)
    except KeyStringError:
        if not known:
            raise KeyStringError("unknown-prefix") from None
        raise
    entry = PREFIXES.get(hrp.lower())
    if entry is None:
        raise KeyStringError("unknown-prefix")
    kind, is_identity, key_len = entry
    if is_identity != identity:
        raise KeyStringError("wrong-key-type")
    if len(data) != (32 if identity else key_len):
        raise KeyStringError("length")
    return kind, data


# ---------------------------------------------------------------------------
# HKDF-SHA256 and RFC 9180's labeled functions (§15.2)


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(ident: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, b"HPKE-v1" + ident + label + ikm)


def labeled_expand(ident: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + ident + label + info, length)


KDF_HKDF_SHA256, AEAD_CHACHA20POLY1305 = 0x0001, 0x0003


def key_schedule_base(kem_id: int, shared_secret: bytes, info: bytes) -> tuple:
    """RFC 9180 §5.1 in base mode: (key, base_nonce)."""
    suite_id = b"HPKE" + struct.pack(">HHH", kem_id, KDF_HKDF_SHA256, AEAD_CHACHA20POLY1305)
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    key = labeled_expand(suite_id, secret, b"key", context, 32)
    nonce = labeled_expand(suite_id, secret, b"base_nonce", context, 12)
    return key, nonce


# ---------------------------------------------------------------------------
# §15.2 Recipient identities

WRAP_VERSION = 0x01
SEALED_LEN = 48


class _Identity:
    provider_id = ""
    kem_id = 0
    info = b""
    key_id_label = b""
    enc_len = 0

    def __init__(self, public: bytes):
        self.public = public
        self.key_id = hashlib.sha256(self.key_id_label + public).digest()[:16].hex()

    def matches(self, entry: WrappedEntry) -> bool:
        return entry.provider_id == self.provider_id and entry.key_id == self.key_id

    def unwrap(self, entry: WrappedEntry, binding: bytes) -> bytes:
        if not self.matches(entry) or entry.key_version != 1:
            raise ProviderError("key-not-found")
        w = entry.wrapped
        if len(w) != 1 + self.enc_len + SEALED_LEN or w[0] != WRAP_VERSION:
            raise ProviderError("authentication")
        enc, sealed = w[1 : 1 + self.enc_len], w[1 + self.enc_len :]
        try:
            shared_secret = self.decap(enc)
        except ValueError:
            raise ProviderError("authentication") from None
        key, nonce = key_schedule_base(self.kem_id, shared_secret, self.info)
        try:
            return ChaCha20Poly1305(key).decrypt(nonce, sealed, binding)
        except InvalidTag:
            raise ProviderError("authentication") from None

    def decap(self, enc: bytes) -> bytes:
        raise NotImplementedError


class X25519Identity(_Identity):
    """`lockbox.x25519`: DHKEM(X25519, HKDF-SHA256) (RFC 9180 §4.1)."""

    provider_id = "lockbox.x25519"
    kem_id = 0x0020
    info = b"lockbox v1 x25519 wrap"
    key_id_label = b"lockbox v1 x25519 recipient id"
    enc_len = 32

    def __init__(self, secret: bytes):
        if len(secret) != 32:
            raise ValueError("an X25519 secret key is 32 bytes")
        self._sk = X25519PrivateKey.from_private_bytes(secret)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        super().__init__(self._sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def decap(self, enc: bytes) -> bytes:
        dh = self._sk.exchange(X25519PublicKey.from_public_bytes(enc))  # ValueError if all zero
        if dh == b"\x00" * 32:
            raise ValueError("all-zero shared secret")
        kem_id = b"KEM" + struct.pack(">H", self.kem_id)
        eae_prk = labeled_extract(kem_id, b"", b"eae_prk", dh)
        return labeled_expand(kem_id, eae_prk, b"shared_secret", enc + self.public, 32)


XWING_LABEL = b"\\.//^\\"


def have_mlkem() -> bool:
    try:
        from cryptography.hazmat.primitives.asymmetric import mlkem

        mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(64))
        return True
    except Exception:  # ImportError, UnsupportedAlgorithm
        return False


class XWingIdentity(_Identity):
    """`lockbox.xwing`: X-Wing (draft-connolly-cfrg-xwing-kem), KEM id 0x647a."""

    provider_id = "lockbox.xwing"
    kem_id = 0x647A
    info = b"lockbox v1 xwing wrap"
    key_id_label = b"lockbox v1 xwing recipient id"
    enc_len = 1120

    def __init__(self, seed: bytes):
        from cryptography.hazmat.primitives.asymmetric import mlkem
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if len(seed) != 32:
            raise ValueError("an X-Wing decapsulation key is 32 bytes")
        expanded = hashlib.shake_256(seed).digest(96)
        self._sk_m = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        self._sk_x = X25519PrivateKey.from_private_bytes(expanded[64:96])
        pk_m = self._sk_m.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._pk_x = self._sk_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        super().__init__(pk_m + self._pk_x)

    def decap(self, enc: bytes) -> bytes:
        ct_m, ct_x = enc[:1088], enc[1088:]
        ss_m = self._sk_m.decapsulate(ct_m)
        ss_x = self._sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
        return hashlib.sha3_256(ss_m + ss_x + ct_x + self._pk_x + XWING_LABEL).digest()


def identity_from_string(s: str) -> _Identity:
    kind, secret = parse_key_string(s, identity=True)
    return X25519Identity(secret) if kind == "x25519" else XWingIdentity(secret)


# ---------------------------------------------------------------------------
# §15.3 Passphrases

PASSPHRASE_PROVIDER_ID = "lockbox.passphrase"
PASSPHRASE_WRAP_LEN = 93
SALT_LABEL = b"lockbox v1 passphrase wrap"
DEFAULT_LIMITS = (1048576, 10, 16)  # m (KiB), t, p


class Passphrase:
    def __init__(self, passphrase: str, label: str = "passphrase", limits: tuple = DEFAULT_LIMITS):
        self._secret = passphrase.encode("utf-8")
        self.key_id = label
        self.limits = limits

    def matches(self, entry: WrappedEntry) -> bool:
        return entry.provider_id == PASSPHRASE_PROVIDER_ID and entry.key_id == self.key_id

    def unwrap(self, entry: WrappedEntry, binding: bytes) -> bytes:
        from argon2.exceptions import HashingError
        from argon2.low_level import Type, hash_secret_raw

        if not self.matches(entry) or entry.key_version != 1:
            raise ProviderError("key-not-found")
        w = entry.wrapped
        if len(w) != PASSPHRASE_WRAP_LEN or w[0] != 0x01:
            raise ProviderError("authentication")
        m, t, p = struct.unpack(">III", w[1:13])
        salt, sealed = w[13:45], w[45:]
        if m > self.limits[0] or t > self.limits[1] or p > self.limits[2]:
            raise ProviderError("limit-exceeded")  # before any work
        if t < 1 or p < 1 or p >= 2**24 or m < 8 * p:
            raise ProviderError("authentication")
        try:
            key = hash_secret_raw(
                self._secret, SALT_LABEL + salt, time_cost=t, memory_cost=m, parallelism=p,
                hash_len=32, type=Type.ID, version=19,
            )
        except HashingError:
            raise ProviderError("authentication") from None
        try:
            return ChaCha20Poly1305(key).decrypt(b"\x00" * 12, sealed, binding)
        except InvalidTag:
            raise ProviderError("authentication") from None
