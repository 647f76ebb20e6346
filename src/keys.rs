//! Typed key handles.

use alloc::borrow::Cow;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;
use secrecy::ExposeSecret;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;
use crate::format::{MAX_WRAPPED_LEN, valid_key_id, valid_provider_id};

/// Length of a data key in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::Random)
}

/// Fills `buf` from a caller's cryptographic RNG.
pub(crate) fn rng_random<R: TryCryptoRng + ?Sized>(rng: &mut R, buf: &mut [u8]) -> Result<(), Error> {
    rng.try_fill_bytes(buf).map_err(|_| Error::Random)
}

/// A data-encryption key (DEK): 256 random bits that encrypt one envelope's
/// payload (or, through a data-key cache, a bounded run of envelopes).
///
/// - Generated only from the operating system's CSPRNG ([`DataKey::generate`]).
/// - Zeroized on drop; `Debug` prints `DataKey([REDACTED])`; not `Clone`.
/// - The bytes are reachable only through [`ExposeSecret::expose_secret`], which
///   providers need to wrap them. Building a `DataKey` from caller bytes lives in
///   [`hazmat`](crate::hazmat).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
}

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut key = Self {
            bytes: [0u8; DATA_KEY_LEN],
        };
        os_random(&mut key.bytes)?;
        Ok(key)
    }

    pub(crate) fn from_array(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// An all-zero key to be filled in place (so key bytes are never copied
    /// through temporaries).
    pub(crate) fn zeroed() -> Self {
        Self {
            bytes: [0u8; DATA_KEY_LEN],
        }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; DATA_KEY_LEN] {
        &mut self.bytes
    }

    /// A copy, built in place (`DataKey` is not `Clone`): for the few places
    /// that must keep a key where it lies (a cache entry; the value an
    /// `.await` left in a future's state, which is zeroized there).
    pub(crate) fn duplicate(&self) -> Self {
        let mut key = Self::zeroed();
        key.bytes.copy_from_slice(&self.bytes);
        key
    }

    /// A key filled in place by `init`; if `init` fails, the partly filled
    /// key is zeroized and the error returned. See
    /// [`hazmat::data_key_with`](crate::hazmat::data_key_with).
    pub(crate) fn try_init_with<E>(init: impl FnOnce(&mut [u8; DATA_KEY_LEN]) -> Result<(), E>) -> Result<Self, E> {
        let mut key = Self::zeroed();
        init(&mut key.bytes)?;
        Ok(key)
    }
}

impl ExposeSecret<[u8; DATA_KEY_LEN]> for DataKey {
    fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// The name of a key-encryption key inside its provider: a local key's
/// fingerprint, a KMS key ARN, a PKCS#11 label, a Transit key name.
///
/// 1 to 255 bytes of UTF-8 without control characters.
///
/// Cloning is cheap (the text is shared), so a provider can stamp its id on
/// every wrapped key without allocating.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub(crate) Arc<str>);

impl KeyId {
    /// Validates and wraps `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        if valid_key_id(&id) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(Error::InvalidArgument {
                what: "key id must be 1 to 255 bytes of UTF-8 without control characters",
            })
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a key-encryption key within its [`KeyId`]. Keyrings number
/// versions from 1; providers without versions use 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(pub u32);

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A data key wrapped by a provider: which provider, which key and version,
/// and the provider's opaque bytes. Not secret: it is stored in the envelope.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedKey {
    provider_id: Cow<'static, str>,
    key_id: KeyId,
    key_version: KeyVersion,
    bytes: WrappedBytes,
}

/// Wrapped bytes: inline up to 96 bytes (a local wrap is 61, a PKCS#11 or
/// AES-KW wrap less), so the hot path does not allocate for them.
type WrappedBytes = crate::format::InlineBuf<96>;

impl WrappedKey {
    /// Builds a wrapped key. `provider_id` must be 1 to 64 bytes of visible
    /// ASCII; `bytes` 1 to 65 535 bytes.
    pub fn new(provider_id: &str, key_id: KeyId, key_version: KeyVersion, bytes: Vec<u8>) -> Result<Self, Error> {
        Self::check(provider_id, &bytes)?;
        Ok(Self {
            provider_id: Cow::Owned(provider_id.to_string()),
            key_id,
            key_version,
            bytes: WrappedBytes::from(bytes),
        })
    }

    /// Like [`new`](Self::new), for a provider whose id is a constant and whose
    /// wrapped bytes are in a buffer of its own: small wrapped keys are then
    /// built without any allocation (the seal hot path).
    pub fn from_static(
        provider_id: &'static str,
        key_id: KeyId,
        key_version: KeyVersion,
        bytes: &[u8],
    ) -> Result<Self, Error> {
        Self::check(provider_id, bytes)?;
        Ok(Self {
            provider_id: Cow::Borrowed(provider_id),
            key_id,
            key_version,
            bytes: WrappedBytes::from_slice(bytes),
        })
    }

    fn check(provider_id: &str, bytes: &[u8]) -> Result<(), Error> {
        if !valid_provider_id(provider_id) {
            return Err(Error::InvalidArgument {
                what: "provider id must be 1 to 64 bytes of visible ASCII",
            });
        }
        if bytes.is_empty() || bytes.len() > MAX_WRAPPED_LEN {
            return Err(Error::InvalidArgument {
                what: "wrapped key must be 1 to 65535 bytes",
            });
        }
        Ok(())
    }

    /// The id of the provider that wrapped the key.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }
    /// The key-encryption key's id.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }
    /// The key-encryption key's version.
    pub fn key_version(&self) -> KeyVersion {
        self.key_version
    }
    /// The provider's opaque wrapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }
    /// A borrowed view, as passed to [`KeyEncryptionProvider::unwrap`](crate::KeyEncryptionProvider::unwrap).
    pub fn as_ref(&self) -> WrappedKeyRef<'_> {
        WrappedKeyRef {
            provider_id: &self.provider_id,
            key_id: self.key_id.as_str(),
            key_version: self.key_version,
            bytes: self.bytes.as_slice(),
        }
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

/// A wrapped key borrowed from an envelope header, without copying.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WrappedKeyRef<'a> {
    pub(crate) provider_id: &'a str,
    pub(crate) key_id: &'a str,
    pub(crate) key_version: KeyVersion,
    pub(crate) bytes: &'a [u8],
}

impl<'a> WrappedKeyRef<'a> {
    /// A borrowed wrapped key, validated as [`WrappedKey::new`] validates:
    /// for a provider that stores wrapped keys itself (or rewrites another
    /// provider's entries) and needs to hand one to an unwrap.
    pub fn new(provider_id: &'a str, key_id: &'a str, key_version: KeyVersion, bytes: &'a [u8]) -> Result<Self, Error> {
        WrappedKey::check(provider_id, bytes)?;
        if !valid_key_id(key_id) {
            return Err(Error::InvalidArgument {
                what: "key id must be 1 to 255 bytes of UTF-8 without control characters",
            });
        }
        Ok(Self {
            provider_id,
            key_id,
            key_version,
            bytes,
        })
    }

    /// Whether this wrapped key names `provider_id` and `key_id`: the usual
    /// body of [`ProviderIdentity::matches`](crate::ProviderIdentity::matches)
    /// for a provider holding one key.
    pub fn is_for(&self, provider_id: &str, key_id: &str) -> bool {
        self.provider_id == provider_id && self.key_id == key_id
    }

    /// The id of the provider that wrapped the key.
    pub fn provider_id(&self) -> &'a str {
        self.provider_id
    }
    /// The key-encryption key's id (validated UTF-8 without control characters).
    pub fn key_id(&self) -> &'a str {
        self.key_id
    }
    /// The key-encryption key's version.
    pub fn key_version(&self) -> KeyVersion {
        self.key_version
    }
    /// The provider's opaque wrapped bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// An owned copy.
    pub fn to_owned(&self) -> WrappedKey {
        WrappedKey {
            provider_id: Cow::Owned(self.provider_id.to_string()),
            key_id: KeyId(Arc::from(self.key_id)),
            key_version: self.key_version,
            bytes: WrappedBytes::from_slice(self.bytes),
        }
    }
}

impl fmt::Debug for WrappedKeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("provider_id", &self.provider_id)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version.0)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn data_key_debug_redacts() {
        let k = DataKey::from_array([0xAB; 32]);
        let s = format!("{k:?}");
        assert_eq!(s, "DataKey([REDACTED])");
        assert!(!s.contains("ab") && !s.contains("171"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn ids_are_validated() {
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("a\nb").is_err());
        assert!(KeyId::new("x".repeat(256)).is_err());
        assert!(KeyId::new("arn:aws:kms:eu-west-1:111122223333:key/abc").is_ok());
        let id = KeyId::new("k").unwrap();
        assert!(WrappedKey::new("", id.clone(), KeyVersion(1), alloc::vec![1]).is_err());
        assert!(WrappedKey::new("has space", id.clone(), KeyVersion(1), alloc::vec![1]).is_err());
        assert!(WrappedKey::new("p", id.clone(), KeyVersion(1), alloc::vec![]).is_err());
        assert!(WrappedKey::new("p", id, KeyVersion(1), alloc::vec![0; 65536]).is_err());
    }
}
