//! Public-key recipients: seal to someone's public key, open with their
//! secret key (feature `recipients`).
//!
//! A [`Recipient`] is a public key: it can only **wrap** data keys (seal).
//! An [`Identity`] is the matching secret key: it **unwraps** (opens), and
//! knows its own recipient. Both are
//! [`KeyEncryptionProvider`]s, so they work
//! with every sealer, opener and rewrapper, next to any other provider.
//!
//! Two kinds ([`RecipientKind`]), both through HPKE (RFC 9180) base mode with
//! HKDF-SHA256 and ChaCha20-Poly1305, bound to the envelope's context like
//! every other wrap (`FORMAT.md` §15):
//!
//! - **X-Wing** (`lockbox.xwing`, the default): the hybrid of ML-KEM-768
//!   (FIPS 203) and X25519 from draft-connolly-cfrg-xwing-kem, as age 1.3
//!   and Tink use it. **Post-quantum**: it stays secure if either half does.
//! - **X25519** (`lockbox.x25519`): DHKEM(X25519, HKDF-SHA256). Classical:
//!   a future quantum computer that can break X25519 recovers the data key of
//!   every envelope recorded today. Use it only to reach parties that have
//!   X25519 keys and nothing better.
//!
//! Sealers refuse to mix an X25519 recipient with post-quantum wraps
//! (X-Wing recipients, symmetric keys, passphrases) unless told to with
//! `allow_classical_with_post_quantum()`: see [`PostQuantum`].
//!
//! # No sender authentication
//!
//! **Anyone who has a recipient string can seal to it.** An identity holder
//! who opens an envelope learns that it was sealed to them and not altered
//! since, but not *who* sealed it: recipients are public, and a wrap proves
//! nothing about its author. If the sender matters, authenticate it some
//! other way (a signature over the envelope, a channel that authenticates
//! the sender, a shared symmetric key).
//!
//! # Privacy
//!
//! A wrapped key names its recipient by [`key_id`](Recipient::key_id), a
//! fingerprint of the public key (so an identity picks its entries without
//! trial decryption): anyone who holds the recipient strings can tell whom an
//! envelope is for.
//!
//! # Strings
//!
//! Recipient and identity strings are Bech32m with distinct prefixes and a
//! checksum, so a typo is an error, never another key (`FORMAT.md` §15.1):
//!
//! | | recipient (public, share it) | identity (secret) |
//! |---|---|---|
//! | X-Wing | `lockbox-xwing-pub1…` (1,970 characters) | `LOCKBOX-XWING-SECRET-KEY-1…` |
//! | X25519 | `lockbox-x25519-pub1…` (77 characters) | `LOCKBOX-X25519-SECRET-KEY-1…` |
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::recipient::{Identity, Recipient};
//! use lockbox::secrecy::ExposeSecret;
//! use lockbox::{EncryptionContext, Opener, Sealer};
//!
//! // Alice makes an identity and publishes its recipient string.
//! let alice = Identity::generate()?;
//! let published = alice.recipient().to_string();
//! assert!(published.starts_with("lockbox-xwing-pub1"));
//!
//! // Bob seals to the string (he needs nothing else from Alice).
//! let to_alice: Recipient = published.parse()?;
//! let ctx = EncryptionContext::new().with("file", "report.pdf")?;
//! let envelope = Sealer::new(&to_alice).seal(b"the report", &ctx)?;
//!
//! // Only Alice's identity opens it; her recipient alone cannot.
//! assert_eq!(Opener::new(&alice).open(&envelope, &ctx)?, b"the report");
//! assert!(Opener::new(&to_alice).open(&envelope, &ctx).is_err());
//!
//! // Alice's secret, as text (store it like any secret key).
//! let secret = alice.to_secret_string();
//! assert!(secret.expose_secret().starts_with("LOCKBOX-XWING-SECRET-KEY-1"));
//! # Ok(()) }
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use rand_core::TryCryptoRng;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, KeyStringError, ProviderError, ProviderErrorKind};
use crate::format::bech32;
use crate::format::binding::Binding;
use crate::keys::{DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef, os_random, rng_random};
use crate::pq::PostQuantum;
use crate::provider::{KeyEncryptionProvider, ProviderIdentity};

#[cfg(feature = "std")]
mod file;
mod kem;

use kem::{BadKey, PublicKey, SECRET_LEN, SecretKey, UnwrapFailure};

/// Provider id of wraps to X25519 recipients.
pub const X25519_PROVIDER_ID: &str = "lockbox.x25519";
/// Provider id of wraps to X-Wing recipients.
pub const XWING_PROVIDER_ID: &str = "lockbox.xwing";

/// The kind of key behind a [`Recipient`] or [`Identity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecipientKind {
    /// X-Wing (ML-KEM-768 + X25519): post-quantum. The default.
    XWing,
    /// X25519: classical.
    X25519,
}

impl RecipientKind {
    /// The provider id its wraps carry.
    pub fn provider_id(self) -> &'static str {
        match self {
            Self::XWing => XWING_PROVIDER_ID,
            Self::X25519 => X25519_PROVIDER_ID,
        }
    }

    /// Whether its wraps are post-quantum secure.
    pub fn post_quantum(self) -> PostQuantum {
        match self {
            Self::XWing => PostQuantum::Yes,
            Self::X25519 => PostQuantum::No,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::XWing => "X-Wing",
            Self::X25519 => "X25519",
        }
    }

    fn recipient_hrp(self) -> &'static str {
        match self {
            Self::XWing => "lockbox-xwing-pub",
            Self::X25519 => "lockbox-x25519-pub",
        }
    }

    fn identity_hrp(self) -> &'static str {
        match self {
            Self::XWing => "LOCKBOX-XWING-SECRET-KEY-",
            Self::X25519 => "LOCKBOX-X25519-SECRET-KEY-",
        }
    }

    /// The HPKE `info` of its wraps (`FORMAT.md` §15.2).
    fn info(self) -> &'static [u8] {
        match self {
            Self::XWing => b"lockbox v1 xwing wrap",
            Self::X25519 => b"lockbox v1 x25519 wrap",
        }
    }

    /// The label hashed with the public key into the key id.
    fn key_id_label(self) -> &'static [u8] {
        match self {
            Self::XWing => b"lockbox v1 xwing recipient id",
            Self::X25519 => b"lockbox v1 x25519 recipient id",
        }
    }

    fn public_key(self, bytes: &[u8]) -> Result<PublicKey, BadKey> {
        match self {
            Self::XWing => PublicKey::xwing(bytes),
            Self::X25519 => PublicKey::x25519(bytes),
        }
    }

    const ALL: [Self; 2] = [Self::XWing, Self::X25519];
}

impl fmt::Display for RecipientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a string's prefix says it is, before its checksum is checked.
fn kind_of_prefix(hrp: &str) -> Option<(RecipientKind, bool)> {
    RecipientKind::ALL.into_iter().find_map(|k| {
        if hrp.eq_ignore_ascii_case(k.recipient_hrp()) {
            Some((k, false))
        } else if hrp.eq_ignore_ascii_case(k.identity_hrp()) {
            Some((k, true))
        } else {
            None
        }
    })
}

/// Decodes `s` (trimmed) as a key string and checks that it is one of
/// `identity` (secret) or not: the data bytes and the kind.
fn decode_key_string(s: &str, identity: bool) -> Result<(RecipientKind, Zeroizing<Vec<u8>>), Error> {
    let s = s.trim_ascii();
    let expected = if identity {
        "an identity (secret key)"
    } else {
        "a recipient (public key)"
    };
    // An unknown prefix is reported as such, whatever else is wrong.
    let decoded = bech32::decode(s).map_err(|e| match bech32::prefix(s).and_then(kind_of_prefix) {
        Some(_) => e,
        None => KeyStringError::UnknownPrefix,
    })?;
    let (kind, is_identity) = kind_of_prefix(decoded.hrp).ok_or(KeyStringError::UnknownPrefix)?;
    if is_identity != identity {
        return Err(KeyStringError::WrongKeyType {
            expected,
            found: if is_identity {
                "an identity (secret key)"
            } else {
                "a recipient (public key)"
            },
        }
        .into());
    }
    Ok((kind, decoded.data))
}

fn bad_key(e: BadKey) -> Error {
    match e {
        BadKey::Length => KeyStringError::Length.into(),
        BadKey::Invalid => KeyStringError::InvalidKey.into(),
    }
}

/// The key id of a recipient: the first 16 bytes of
/// `SHA-256(label || public key)`, in lowercase hex.
fn key_id_of(kind: RecipientKind, pk: &[u8]) -> KeyId {
    let digest = Sha256::new()
        .chain_update(kind.key_id_label())
        .chain_update(pk)
        .finalize();
    let mut hex = String::with_capacity(32);
    for b in digest.iter().take(16) {
        hex.extend(char::from_digit(u32::from(b >> 4), 16));
        hex.extend(char::from_digit(u32::from(b & 0x0f), 16));
    }
    KeyId(alloc::sync::Arc::from(hex))
}

/// A public key to seal to: wraps data keys so that only the matching
/// [`Identity`] can unwrap them. Parse one from its string
/// (`"lockbox-xwing-pub1…".parse()`); print it with `Display`.
///
/// As a provider it wraps, [`matches`](ProviderIdentity::matches) the wraps it
/// made (so [`Rewrapper::remove_entries_of`](crate::Rewrapper::remove_entries_of)
/// removes them), and refuses to unwrap
/// ([`ProviderErrorKind::Unsupported`]): a public key cannot.
///
/// Anyone holding a recipient can seal to it: see the
/// [module documentation](self#no-sender-authentication).
#[derive(Clone)]
pub struct Recipient {
    kind: RecipientKind,
    key: PublicKey,
    bytes: Vec<u8>,
    key_id: KeyId,
}

impl Recipient {
    /// A recipient of `kind` from its public key bytes (32 for X25519, 1216
    /// for X-Wing), validated.
    pub fn from_bytes(kind: RecipientKind, bytes: &[u8]) -> Result<Self, Error> {
        let key = kind.public_key(bytes).map_err(bad_key)?;
        Ok(Self::new(kind, key))
    }

    fn new(kind: RecipientKind, key: PublicKey) -> Self {
        let bytes = key.to_vec();
        let key_id = key_id_of(kind, &bytes);
        Self {
            kind,
            key,
            bytes,
            key_id,
        }
    }

    /// Parses a recipient string (surrounding whitespace ignored). A typo,
    /// an identity string, or anything else is a typed
    /// [`Error::KeyString`].
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (kind, data) = decode_key_string(s, false)?;
        Self::from_bytes(kind, &data)
    }

    /// The kind of key.
    pub fn kind(&self) -> RecipientKind {
        self.kind
    }

    /// The key id its wraps carry: a fingerprint of the public key.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The public key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Wraps with the KEM's randomness drawn from `rng` (known-answer tests).
    pub(crate) fn wrap_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        dek: &DataKey,
        binding: Binding<'_>,
        rng: &mut R,
    ) -> Result<WrappedKey, ProviderError> {
        let bytes = self
            .key
            .wrap_with_rng(dek, self.kind.info(), binding.as_bytes(), rng)
            .map_err(|e| self.err(ProviderErrorKind::Other).with_source(e))?;
        self.wrapped(&bytes)
    }

    fn wrapped(&self, bytes: &[u8]) -> Result<WrappedKey, ProviderError> {
        WrappedKey::from_static(self.kind.provider_id(), self.key_id.clone(), KeyVersion(1), bytes)
            .map_err(|e| self.err(ProviderErrorKind::Other).with_source(e))
    }

    fn err(&self, kind: ProviderErrorKind) -> ProviderError {
        ProviderError::new(kind, self.kind.provider_id())
    }
}

impl FromStr for Recipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Recipient {
    /// The recipient string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32::encode(self.kind.recipient_hrp(), &self.bytes))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.bytes == other.bytes
    }
}

impl Eq for Recipient {}

impl core::hash::Hash for Recipient {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.bytes.hash(state);
    }
}

impl ProviderIdentity for Recipient {
    fn provider_id(&self) -> &str {
        self.kind.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(self.kind.provider_id(), self.key_id.as_str())
    }

    fn post_quantum(&self) -> PostQuantum {
        self.kind.post_quantum()
    }
}

impl KeyEncryptionProvider for Recipient {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let bytes = self
            .key
            .wrap(dek, self.kind.info(), binding.as_bytes())
            .map_err(|e| self.err(ProviderErrorKind::Other).with_source(e))?;
        self.wrapped(&bytes)
    }

    /// Always fails with [`ProviderErrorKind::Unsupported`]: a public key
    /// cannot unwrap; use the [`Identity`].
    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let _ = (wrapped, binding);
        Err(self.err(ProviderErrorKind::Unsupported))
    }
}

/// A secret key: unwraps what was sealed to its [`Recipient`], and wraps to
/// it too. Generate one, or load it from its string, a file, an environment
/// variable, or a file sealed under another provider.
///
/// The 32 secret bytes (an X25519 private key, or an X-Wing seed) and the
/// KEM's key schedule live on the heap and are zeroized on drop; `Debug`
/// shows only the kind and the key id; there is no `Clone` and no
/// `Display`: [`to_secret_string`](Self::to_secret_string) is the one way to
/// the secret text.
pub struct Identity {
    secret: SecretBox<[u8; SECRET_LEN]>,
    key: SecretKey,
    recipient: Recipient,
}

impl Identity {
    /// A new X-Wing (post-quantum) identity from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        Self::generate_kind(RecipientKind::XWing)
    }

    /// A new identity of `kind` from the OS CSPRNG.
    pub fn generate_kind(kind: RecipientKind) -> Result<Self, Error> {
        let mut secret = SecretBox::new(alloc::boxed::Box::new([0u8; SECRET_LEN]));
        os_random(secret.expose_secret_mut())?;
        Self::from_secret(kind, secret)
    }

    /// A new identity of `kind` from the caller's CSPRNG (for targets
    /// without an OS generator).
    pub fn generate_with_rng<R: TryCryptoRng + ?Sized>(kind: RecipientKind, rng: &mut R) -> Result<Self, Error> {
        let mut secret = SecretBox::new(alloc::boxed::Box::new([0u8; SECRET_LEN]));
        rng_random(rng, secret.expose_secret_mut())?;
        Self::from_secret(kind, secret)
    }

    pub(crate) fn from_secret(kind: RecipientKind, secret: SecretBox<[u8; SECRET_LEN]>) -> Result<Self, Error> {
        let (key, pk) = SecretKey::new(kind == RecipientKind::XWing, secret.expose_secret()).map_err(bad_key)?;
        Ok(Self {
            secret,
            key,
            recipient: Recipient::new(kind, pk),
        })
    }

    /// Parses an identity string (surrounding whitespace ignored). The
    /// decoded bytes pass only through zeroized buffers; errors never
    /// contain the string.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (kind, data) = decode_key_string(s, true)?;
        let bytes = <&[u8; SECRET_LEN]>::try_from(data.as_slice()).map_err(|_| KeyStringError::Length)?;
        let mut secret = SecretBox::new(alloc::boxed::Box::new([0u8; SECRET_LEN]));
        secret.expose_secret_mut().copy_from_slice(bytes);
        Self::from_secret(kind, secret)
    }

    /// Its recipient (public key): give this to whoever seals to you.
    pub fn recipient(&self) -> &Recipient {
        &self.recipient
    }

    /// The kind of key.
    pub fn kind(&self) -> RecipientKind {
        self.recipient.kind
    }

    /// The key id of its recipient (and of the wraps it opens).
    pub fn key_id(&self) -> &KeyId {
        &self.recipient.key_id
    }

    /// The identity string: the secret key as text. Handle it like the key.
    pub fn to_secret_string(&self) -> SecretString {
        let text = self.secret_text();
        SecretString::from(text.as_str())
    }

    fn secret_text(&self) -> Zeroizing<String> {
        bech32::encode(self.kind().identity_hrp(), self.secret.expose_secret())
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; SECRET_LEN] {
        self.secret.expose_secret()
    }
}

impl FromStr for Identity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("kind", &self.kind())
            .field("key_id", self.key_id())
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for Identity {
    fn provider_id(&self) -> &str {
        self.recipient.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.recipient.matches(wrapped)
    }

    fn post_quantum(&self) -> PostQuantum {
        self.recipient.post_quantum()
    }
}

impl KeyEncryptionProvider for Identity {
    /// Wraps to this identity's own recipient.
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.recipient.wrap(dek, binding)
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        if !self.matches(wrapped) || wrapped.key_version() != KeyVersion(1) {
            return Err(self.recipient.err(ProviderErrorKind::KeyNotFound));
        }
        let kind = self.kind();
        self.key
            .unwrap(wrapped.bytes(), kind.info(), binding.as_bytes())
            .map_err(|e| {
                let err = self.recipient.err(ProviderErrorKind::Authentication);
                match e {
                    UnwrapFailure::Malformed(m) => err.with_source(m),
                    UnwrapFailure::Authentication => err,
                }
            })
    }
}
