//! `cargo xtask gen-recipient-vectors <dir>`: generates the frozen vectors of
//! lockbox's recipient and passphrase providers (`FORMAT.md` §15) into `<dir>`
//! (`tests/vectors/recipients`).
//!
//! Unlike the v1 envelope vectors these are **deterministic**: the identities
//! are fixed test keys, the data key and message id come from a counting
//! generator, the KEM randomness and passphrase salts are fixed bytes
//! (through `lockbox::hazmat`). So the generator both writes missing files
//! and checks that every existing file is exactly what this build produces:
//! a difference means the wrapped-key format changed, which is a breaking
//! change (frozen files are never rewritten). Every case is also checked
//! against this build of lockbox (opens, or fails exactly as `expect` says).
//!
//! `tests/recipient_vectors.rs` checks the files with the library and
//! `tests/interop/check_recipients.py` with an independent Python decoder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a developer tool that checks its own output; it panics on a bug in itself"
)]

use std::convert::Infallible;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;

use lockbox::passphrase::Passphrase;
use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::recipient::{Identity, RecipientKind};
use lockbox::secrecy::{ExposeSecret, SecretBox, SecretString};
use lockbox::{
    Binding, DataKey, EncryptionContext, Error, KeyEncryptionProvider, KeyId, Opener, PostQuantum, ProviderError,
    ProviderErrorKind, ProviderIdentity, Sealer, Storage, Suite, WrappedKey, WrappedKeyRef, hazmat,
};
use serde_json::{Value, json};

use crate::gen_vectors::BoxResult;

const fn counting(start: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = start + i as u8;
        i += 1;
    }
    k
}

/// The X25519 test identity: secret bytes `40 41 … 5f`.
const X25519_SECRET: [u8; 32] = counting(0x40);
/// A second X25519 identity: `a0 a1 … bf`.
const X25519_OTHER: [u8; 32] = counting(0xa0);
/// The X-Wing test identity: seed `60 61 … 7f`.
const XWING_SECRET: [u8; 32] = counting(0x60);
/// The passphrase of the passphrase vectors.
const PASSPHRASE: &str = "correct horse battery staple";

/// Serves fixed bytes (KEM randomness), repeating them if asked for more.
struct Fixed(Vec<u8>, usize);
impl TryRng for Fixed {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.0[self.1 % self.0.len()];
            self.1 += 1;
        }
        Ok(())
    }
}
impl TryCryptoRng for Fixed {}

fn identity(kind: RecipientKind, secret: [u8; 32]) -> Identity {
    hazmat::identity_from_bytes(kind, SecretBox::new(Box::new(secret))).unwrap()
}

fn passphrase(text: &str, memory_kib: u32, iterations: u32) -> Passphrase {
    Passphrase::new(SecretString::from(text))
        .unwrap()
        .with_params(hazmat::argon2_params_unchecked(memory_kib, iterations, 1).unwrap())
}

type WrapFn = Box<dyn Fn(&DataKey, Binding<'_>) -> Result<WrappedKey, ProviderError> + Send + Sync>;

/// A provider that wraps deterministically (fixed KEM randomness or salt)
/// and then, for negative vectors, edits its own wrapped bytes.
struct Deterministic {
    provider_id: String,
    key_id: KeyId,
    pq: PostQuantum,
    wrap: WrapFn,
}

impl fmt::Debug for Deterministic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deterministic")
    }
}

impl ProviderIdentity for Deterministic {
    fn provider_id(&self) -> &str {
        &self.provider_id
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.is_for(&self.provider_id, self.key_id.as_str())
    }
    fn post_quantum(&self) -> PostQuantum {
        self.pq
    }
}

impl KeyEncryptionProvider for Deterministic {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        (self.wrap)(dek, binding)
    }
    fn unwrap(&self, _: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::Unsupported, "vector"))
    }
}

fn edited(w: WrappedKey, edit: fn(&mut Vec<u8>)) -> Result<WrappedKey, ProviderError> {
    let mut bytes = w.bytes().to_vec();
    edit(&mut bytes);
    Ok(WrappedKey::new(w.provider_id(), w.key_id().clone(), w.key_version(), bytes).unwrap())
}

/// Wraps to `secret`'s identity with KEM randomness `seed` repeated, then `edit`.
fn to_identity(kind: RecipientKind, secret: [u8; 32], seed: u8, edit: fn(&mut Vec<u8>)) -> Deterministic {
    let id = identity(kind, secret);
    let recipient = id.recipient().clone();
    Deterministic {
        provider_id: kind.provider_id().to_string(),
        key_id: recipient.key_id().clone(),
        pq: kind.post_quantum(),
        wrap: Box::new(move |dek, b| {
            let randomness: Vec<u8> = (0..64u8).map(|i| seed.wrapping_add(i)).collect();
            let w = hazmat::wrap_to_recipient_with_rng(&recipient, dek, b, &mut Fixed(randomness, 0))?;
            edited(w, edit)
        }),
    }
}

/// Wraps under `text` with the given cost and salt `seed` repeated, then `edit`.
fn to_passphrase(
    text: &'static str,
    memory_kib: u32,
    iterations: u32,
    seed: u8,
    edit: fn(&mut Vec<u8>),
) -> Deterministic {
    let p = passphrase(text, memory_kib, iterations);
    Deterministic {
        provider_id: lockbox::passphrase::PASSPHRASE_PROVIDER_ID.to_string(),
        key_id: p.label().clone(),
        pq: PostQuantum::Yes,
        wrap: Box::new(move |dek, b| {
            let salt: [u8; 32] = std::array::from_fn(|i| seed.wrapping_add(i as u8));
            let w = hazmat::passphrase_wrap_with_salt(&p, dek, b, &salt)?;
            edited(w, edit)
        }),
    }
}

fn keep(_: &mut Vec<u8>) {}

/// Counts up from its seed: the data key and the message id.
struct Counting(u8);
impl TryRng for Counting {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}
impl TryCryptoRng for Counting {}

/// Who opens a vector.
#[derive(Clone)]
enum OpenWith {
    Identity(RecipientKind, [u8; 32]),
    Passphrase(&'static str),
}

impl OpenWith {
    fn json(&self) -> Value {
        match self {
            Self::Identity(kind, secret) => {
                let id = identity(*kind, *secret);
                json!({
                    "provider_id": kind.provider_id(),
                    "identity": id.to_secret_string().expose_secret(),
                    "identity_secret_hex": hex::encode(secret),
                    "recipient": id.recipient().to_string(),
                    "recipient_public_hex": hex::encode(id.recipient().as_bytes()),
                    "key_id": id.key_id().as_str(),
                })
            }
            Self::Passphrase(text) => json!({
                "provider_id": lockbox::passphrase::PASSPHRASE_PROVIDER_ID,
                "passphrase": text,
                "label": lockbox::passphrase::DEFAULT_LABEL,
            }),
        }
    }

    fn provider(&self) -> Box<dyn KeyEncryptionProvider> {
        match self {
            Self::Identity(kind, secret) => Box::new(identity(*kind, *secret)),
            Self::Passphrase(text) => Box::new(passphrase(text, 8, 1)),
        }
    }
}

struct Case {
    name: &'static str,
    description: &'static str,
    /// `None`: must open. Else the error kind and detail.
    expect: Option<(&'static str, &'static str)>,
    wrap_with: Vec<Deterministic>,
    allow_mix: bool,
    open_with: Vec<OpenWith>,
    suite: Suite,
    sealed: Vec<(&'static str, &'static str, Storage)>,
    open: Vec<(&'static str, &'static str)>,
    plaintext: &'static [u8],
}

fn context(entries: &[(&str, &str, Storage)]) -> EncryptionContext {
    let mut c = EncryptionContext::new();
    for (k, v, s) in entries {
        c = match s {
            Storage::Stored => c.with(k, v).unwrap(),
            _ => c.with_required(k, v).unwrap(),
        };
    }
    c
}

fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::Stored => "stored",
        _ => "required",
    }
}

/// The outcome of opening, as `expect` and `error_detail` spell it.
fn outcome(r: &Result<Vec<u8>, Error>) -> (String, String) {
    match r {
        Ok(_) => ("success".into(), String::new()),
        Err(Error::NoProviderCouldUnwrap { attempts, source, .. }) => {
            let kind = match source.as_ref().map(ProviderError::kind) {
                Some(ProviderErrorKind::Authentication) => "authentication",
                Some(ProviderErrorKind::LimitExceeded) => "limit-exceeded",
                Some(ProviderErrorKind::KeyNotFound) => "key-not-found",
                Some(ProviderErrorKind::Unsupported) => "unsupported",
                Some(_) => "other",
                None => "none",
            };
            (
                "no-provider-could-unwrap".into(),
                format!("attempts={attempts}; source={kind}"),
            )
        }
        Err(Error::Authentication) => ("authentication".into(), String::new()),
        Err(e) => (format!("{e:?}"), String::new()),
    }
}

fn cases() -> Vec<Case> {
    use RecipientKind::{X25519, XWing};
    use Storage::{Required, Stored};
    let x = || OpenWith::Identity(X25519, X25519_SECRET);
    let w = || OpenWith::Identity(XWing, XWING_SECRET);
    let p = || OpenWith::Passphrase(PASSPHRASE);
    let ctx = vec![("purpose", "test-vector", Stored), ("tenant", "acme", Required)];
    let open = vec![("tenant", "acme")];
    let base = |name, description, wrap_with, open_with| Case {
        name,
        description,
        expect: None,
        wrap_with,
        allow_mix: false,
        open_with,
        suite: Suite::Aes256Gcm,
        sealed: ctx.clone(),
        open: open.clone(),
        plaintext: b"The quick brown fox jumps over the lazy dog.",
    };
    let flip_enc = |v: &mut Vec<u8>| v[1] ^= 0x01;
    let flip_tag = |v: &mut Vec<u8>| *v.last_mut().unwrap() ^= 0x80;
    let truncate = |v: &mut Vec<u8>| {
        v.pop();
    };
    let version_2 = |v: &mut Vec<u8>| v[0] = 0x02;
    let memory_huge = |v: &mut Vec<u8>| v[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    let passes_huge = |v: &mut Vec<u8>| v[5..9].copy_from_slice(&1_000_000u32.to_be_bytes());
    let salt_flip = |v: &mut Vec<u8>| v[13] ^= 0x01;
    vec![
        base(
            "001-x25519-short",
            "One X25519 recipient (lockbox.x25519), AES-256-GCM, a stored and a required context entry.",
            vec![to_identity(X25519, X25519_SECRET, 0x10, keep)],
            vec![x()],
        ),
        Case {
            suite: Suite::ChaCha20Poly1305,
            plaintext: b"",
            ..base(
                "002-x25519-chacha20poly1305-empty",
                "One X25519 recipient, ChaCha20-Poly1305, empty plaintext.",
                vec![to_identity(X25519, X25519_SECRET, 0x20, keep)],
                vec![x()],
            )
        },
        base(
            "003-xwing-short",
            "One X-Wing recipient (lockbox.xwing): wrapped key 1169 bytes.",
            vec![to_identity(XWing, XWING_SECRET, 0x30, keep)],
            vec![w()],
        ),
        base(
            "004-passphrase-short",
            "One passphrase wrap (lockbox.passphrase), Argon2id m=8 KiB t=1 p=1 (test cost), label \"passphrase\".",
            vec![to_passphrase(PASSPHRASE, 8, 1, 0x40, keep)],
            vec![p()],
        ),
        base(
            "005-passphrase-owasp-minimum-cost",
            "One passphrase wrap at Argon2id m=19456 KiB t=2 p=1 (the minimum Argon2Params::new accepts).",
            vec![to_passphrase(PASSPHRASE, 19 * 1024, 2, 0x50, keep)],
            vec![p()],
        ),
        base(
            "006-x25519-second-of-two",
            "Two X25519 recipients; the opener holds the second one's identity only.",
            vec![
                to_identity(X25519, X25519_OTHER, 0x60, keep),
                to_identity(X25519, X25519_SECRET, 0x61, keep),
            ],
            vec![x()],
        ),
        base(
            "007-xwing-and-passphrase-opened-by-passphrase",
            "An X-Wing recipient and a passphrase (both post-quantum); opened by the passphrase.",
            vec![
                to_identity(XWing, XWING_SECRET, 0x70, keep),
                to_passphrase(PASSPHRASE, 8, 1, 0x71, keep),
            ],
            vec![p()],
        ),
        Case {
            allow_mix: true,
            ..base(
                "008-mixed-x25519-xwing-opened-by-x25519",
                "X-Wing and X25519 recipients in one envelope (the sealer was told to allow the classical wrap); opened by the X25519 identity.",
                vec![
                    to_identity(XWing, XWING_SECRET, 0x80, keep),
                    to_identity(X25519, X25519_SECRET, 0x81, keep),
                ],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "009-x25519-enc-bit-flipped",
                "As 001, but bit 0 of the wrapped key's byte 1 (the first byte of enc) is flipped before the header tag was computed: the HPKE open fails.",
                vec![to_identity(X25519, X25519_SECRET, 0x10, flip_enc)],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "010-x25519-tag-bit-flipped",
                "As 001, but bit 7 of the wrapped key's last byte (the AEAD tag) is flipped.",
                vec![to_identity(X25519, X25519_SECRET, 0x10, flip_tag)],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "011-x25519-truncated",
                "As 001, but the wrapped key is 80 bytes (its last byte removed): malformed, refused before any cryptography.",
                vec![to_identity(X25519, X25519_SECRET, 0x10, truncate)],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "012-x25519-version-2",
                "As 001, but the wrapped key's version byte is 0x02 (unknown).",
                vec![to_identity(X25519, X25519_SECRET, 0x10, version_2)],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            open: vec![("tenant", "evil-corp")],
            ..base(
                "013-x25519-wrong-required-context",
                "As 001; the opener supplies tenant=\"evil-corp\": the binding (HPKE AAD) differs.",
                vec![to_identity(X25519, X25519_SECRET, 0x10, keep)],
                vec![x()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "014-xwing-enc-bit-flipped",
                "As 003, but bit 0 of the wrapped key's byte 1 (the ML-KEM ciphertext) is flipped: ML-KEM's implicit rejection yields another shared secret.",
                vec![to_identity(XWing, XWING_SECRET, 0x30, flip_enc)],
                vec![w()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=limit-exceeded")),
            ..base(
                "015-passphrase-memory-absurd",
                "As 004, but the Argon2id memory field is 0xffffffff KiB (4 TiB): refused by the default limits (1 GiB) before any work.",
                vec![to_passphrase(PASSPHRASE, 8, 1, 0x40, memory_huge)],
                vec![p()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=limit-exceeded")),
            ..base(
                "016-passphrase-passes-absurd",
                "As 004, but the Argon2id passes field is 1000000: refused by the default limits (10) before any work.",
                vec![to_passphrase(PASSPHRASE, 8, 1, 0x40, passes_huge)],
                vec![p()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "017-passphrase-salt-bit-flipped",
                "As 004, but bit 0 of the salt's first byte (wrapped byte 13) is flipped: another key is derived.",
                vec![to_passphrase(PASSPHRASE, 8, 1, 0x40, salt_flip)],
                vec![p()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=1; source=authentication")),
            ..base(
                "018-passphrase-wrong-passphrase",
                "As 004, sealed under \"Correct horse battery staple\" (capital C); opened with the usual passphrase.",
                vec![to_passphrase("Correct horse battery staple", 8, 1, 0x40, keep)],
                vec![p()],
            )
        },
        Case {
            expect: Some(("no-provider-could-unwrap", "attempts=0; source=none")),
            ..base(
                "019-x25519-other-identity",
                "Sealed to the second X25519 identity only; the opener holds the first: no wrapped key is addressed to it.",
                vec![to_identity(X25519, X25519_OTHER, 0x90, keep)],
                vec![x()],
            )
        },
    ]
}

/// One vector's JSON and its check against this build.
fn build(c: &Case) -> BoxResult<Value> {
    let sealed = context(&c.sealed);
    let providers: Vec<&dyn KeyEncryptionProvider> = c.wrap_with.iter().map(|p| p as _).collect();
    let mut sealer = Sealer::new(providers[0]).suite(c.suite);
    for p in &providers[1..] {
        sealer = sealer.also_wrap_with(*p);
    }
    if c.allow_mix {
        sealer = sealer.allow_classical_with_post_quantum();
    }
    let envelope = sealer.seal_with_rng(&mut Counting(1), c.plaintext, &sealed)?;
    // Check: open with the listed providers, supplying the required values
    // only (the stored entries come from the header: lenient, as the vector
    // file's `open_context` lists them and tests/recipient_vectors.rs opens).
    let openers: Vec<Box<dyn KeyEncryptionProvider>> = c.open_with.iter().map(OpenWith::provider).collect();
    let mut opener = Opener::new(openers[0].as_ref()).lenient_context();
    for p in &openers[1..] {
        opener = opener.also_try(p.as_ref());
    }
    let mut open_ctx = EncryptionContext::new();
    for (k, v) in &c.open {
        open_ctx = open_ctx.with_required(k, v)?;
    }
    let got = outcome(&opener.open(&envelope, &open_ctx));
    let want = match c.expect {
        None => ("success".to_string(), String::new()),
        Some((k, d)) => (k.to_string(), d.to_string()),
    };
    if got != want {
        return Err(format!("{}: expected {want:?}, got {got:?}", c.name).into());
    }
    let info = lockbox::inspect(&envelope)?;
    let mut v = json!({
        "name": c.name,
        "description": c.description,
        "expect": want.0,
        "open_with": c.open_with.iter().map(OpenWith::json).collect::<Vec<_>>(),
        "open_context": c.open.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "suite": c.suite.name(),
        "sealed_context": c.sealed.iter().map(|(k, v, s)| json!({"key": k, "value": v, "storage": storage_name(*s)})).collect::<Vec<_>>(),
        "post_quantum": info.post_quantum().to_string(),
        "wrapped_keys": info.wrapped_keys().iter().map(|w| json!({
            "provider_id": w.provider_id(),
            "key_id": w.key_id().as_str(),
            "key_version": w.key_version().0,
            "bytes_hex": hex::encode(w.bytes()),
        })).collect::<Vec<_>>(),
    });
    if c.expect.is_some() {
        v["error_detail"] = json!(want.1);
    } else {
        v["plaintext_hex"] = json!(hex::encode(c.plaintext));
    }
    v["envelope_hex"] = json!(hex::encode(&envelope));
    Ok(v)
}

/// Key-string vectors: strings to parse as a recipient or an identity, and
/// what must come out.
fn string_vectors() -> Vec<Value> {
    let x = identity(RecipientKind::X25519, X25519_SECRET);
    let w = identity(RecipientKind::XWing, XWING_SECRET);
    let xr = x.recipient().to_string();
    let xs = x.to_secret_string().expose_secret().to_string();
    let ws = w.to_secret_string().expose_secret().to_string();
    let typo = {
        let mut t = xr.clone().into_bytes();
        let i = 30;
        t[i] = if t[i] == b'q' { b'p' } else { b'q' };
        String::from_utf8(t).unwrap()
    };
    let swapped = {
        let mut t = xr.clone().into_bytes();
        let i = (20..t.len() - 1).find(|&i| t[i] != t[i + 1]).unwrap();
        t.swap(i, i + 1);
        String::from_utf8(t).unwrap()
    };
    let mut mixed = xr.clone();
    mixed.replace_range(25..26, &xr[25..26].to_ascii_uppercase());
    let ok = |name: &str, desc: &str, input: &str, parse_as: &str, kind: &str, hexkey: String| json!({"name": name, "description": desc, "input": input, "parse_as": parse_as, "expect": "valid", "kind": kind, "key_hex": hexkey});
    let bad = |name: &str, desc: &str, input: &str, parse_as: &str, expect: &str| json!({"name": name, "description": desc, "input": input, "parse_as": parse_as, "expect": expect});
    vec![
        ok(
            "s01-x25519-recipient",
            "The X25519 test identity's recipient string.",
            &xr,
            "recipient",
            "x25519",
            hex::encode(x.recipient().as_bytes()),
        ),
        ok(
            "s02-x25519-identity",
            "The X25519 test identity (secret bytes 40 41 … 5f).",
            &xs,
            "identity",
            "x25519",
            hex::encode(X25519_SECRET),
        ),
        ok(
            "s03-x25519-identity-lowercase",
            "The same identity in lowercase: Bech32 is case-insensitive.",
            &xs.to_ascii_lowercase(),
            "identity",
            "x25519",
            hex::encode(X25519_SECRET),
        ),
        ok(
            "s04-xwing-recipient",
            "The X-Wing test identity's recipient string (1970 characters).",
            &w.recipient().to_string(),
            "recipient",
            "xwing",
            hex::encode(w.recipient().as_bytes()),
        ),
        ok(
            "s05-xwing-identity",
            "The X-Wing test identity (seed 60 61 … 7f).",
            &ws,
            "identity",
            "xwing",
            hex::encode(XWING_SECRET),
        ),
        bad(
            "s06-typo",
            "s01 with character 30 replaced.",
            &typo,
            "recipient",
            "checksum",
        ),
        bad(
            "s07-swapped",
            "s01 with two adjacent differing characters swapped.",
            &swapped,
            "recipient",
            "checksum",
        ),
        bad(
            "s08-truncated",
            "s01 without its last character.",
            &xr[..xr.len() - 1],
            "recipient",
            "checksum",
        ),
        bad(
            "s09-identity-as-recipient",
            "s02 parsed as a recipient.",
            &xs,
            "recipient",
            "wrong-key-type",
        ),
        bad(
            "s10-recipient-as-identity",
            "s01 parsed as an identity.",
            &xr,
            "identity",
            "wrong-key-type",
        ),
        bad(
            "s11-mixed-case",
            "s01 with character 25 in upper case.",
            &mixed,
            "recipient",
            "mixed-case",
        ),
        bad(
            "s12-age-recipient",
            "An age X25519 recipient: another format.",
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
            "recipient",
            "unknown-prefix",
        ),
        bad(
            "s13-no-separator",
            "No separator at all.",
            "lockbox-x25519-pub",
            "recipient",
            "unknown-prefix",
        ),
    ]
}

fn check_strings(vectors: &[Value]) -> BoxResult<()> {
    for v in vectors {
        let input = v["input"].as_str().unwrap();
        let r = if v["parse_as"] == "recipient" {
            lockbox::recipient::Recipient::parse(input).map(|r| hex::encode(r.as_bytes()))
        } else {
            Identity::parse(input).map(|i| hex::encode(hazmat::identity_bytes(&i)))
        };
        let got = match r {
            Ok(h) => {
                if v["key_hex"].as_str() != Some(h.as_str()) {
                    return Err(format!("{}: wrong key", v["name"]).into());
                }
                "valid".to_string()
            }
            Err(Error::KeyString(e)) => key_string_name(e).to_string(),
            Err(e) => format!("{e:?}"),
        };
        if v["expect"].as_str() != Some(got.as_str()) {
            return Err(format!("{}: expected {}, got {got}", v["name"], v["expect"]).into());
        }
    }
    Ok(())
}

/// The `expect` name of a key-string error.
pub(crate) fn key_string_name(e: lockbox::KeyStringError) -> &'static str {
    use lockbox::KeyStringError as K;
    match e {
        K::UnknownPrefix => "unknown-prefix",
        K::WrongKeyType { .. } => "wrong-key-type",
        K::InvalidCharacter { .. } => "invalid-character",
        K::MixedCase => "mixed-case",
        K::Checksum => "checksum",
        K::Length => "length",
        K::NonCanonical => "non-canonical",
        K::InvalidKey => "invalid-key",
        _ => "other",
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

/// Generates every vector, checks it, writes the missing files, and fails if
/// an existing file differs from what this build produces.
pub(crate) fn run(dir: PathBuf) -> BoxResult<()> {
    let mut files: Vec<(String, String)> = Vec::new();
    for c in cases() {
        files.push((format!("{}.json", c.name), pretty(&build(&c)?)));
    }
    let strings = string_vectors();
    check_strings(&strings)?;
    files.push((
        "strings.json".to_string(),
        pretty(&json!({
            "description": "Recipient and identity strings (FORMAT.md §15.1): each is parsed as `parse_as`; `expect` is `valid` (then `kind` and `key_hex` give the key) or the error.",
            "vectors": strings,
        })),
    ));
    fs::create_dir_all(&dir)?;
    let (mut kept, mut written, mut differ) = (0, 0, Vec::new());
    for (name, text) in &files {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(existing) if existing == *text => kept += 1,
            Ok(_) => differ.push(name.clone()),
            Err(_) => {
                let mut f = OpenOptions::new().write(true).create_new(true).open(&path)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                println!("wrote   {}", path.display());
                written += 1;
            }
        }
    }
    if !differ.is_empty() {
        return Err(format!(
            "frozen vector(s) differ from what this build produces (a wrapped-key format change?): {}",
            differ.join(", ")
        )
        .into());
    }
    println!("{written} new vector file(s) written, {kept} existing identical");
    Ok(())
}
