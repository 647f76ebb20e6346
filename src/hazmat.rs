//! Hazardous materials: raw key import and export.
//!
//! Everything here moves key bytes across lockbox's boundary, where lockbox can
//! no longer vouch for where they came from or where they go. Legitimate uses:
//!
//! - a [`KeyEncryptionProvider`](crate::KeyEncryptionProvider) whose backend
//!   returns an unwrapped data key as bytes ([`data_key_with`], which fills
//!   the key where it lives, or [`data_key_from_bytes`]);
//! - importing or escrowing a local KEK that was generated elsewhere
//!   ([`local_kek_from_bytes`], [`local_kek_to_base64`]);
//! - sharing an [`AuditKey`] with a log verifier in another process
//!   ([`audit_key_from_bytes`], [`audit_key_to_base64`]; `AuditKey::from_env`
//!   reads the base64 form);
//! - test vectors and interoperability tests.
//!
//! Keys built here are only as good as their bytes: never derive them from a
//! password, a timestamp or a seeded PRNG.

use secrecy::{SecretBox, SecretString};

use crate::audit::AuditKey;
use crate::keys::{DATA_KEY_LEN, DataKey};
use crate::local::{LOCAL_KEK_LEN, LocalKek};

/// A data key filled in place by `init`, the way every provider lockbox ships
/// builds the keys it unwraps: decrypt or decode straight into the buffer, so
/// no copy of the key is left in a temporary. If `init` fails, the partly
/// filled key is zeroized and its error returned.
///
/// ```
/// use lockbox::secrecy::ExposeSecret;
/// // What a backend returned, in a buffer the provider wipes afterwards.
/// let mut plaintext = vec![7u8; 32];
/// let key = lockbox::hazmat::data_key_with(|buf| {
///     let bytes = plaintext.get(..).filter(|b| b.len() == buf.len()).ok_or("not a 32-byte key")?;
///     buf.copy_from_slice(bytes);
///     Ok::<(), &str>(())
/// });
/// zeroize::Zeroize::zeroize(&mut plaintext);
/// assert_eq!(key.unwrap().expose_secret(), &[7u8; 32]);
/// ```
pub fn data_key_with<E>(init: impl FnOnce(&mut [u8; DATA_KEY_LEN]) -> Result<(), E>) -> Result<DataKey, E> {
    DataKey::try_init_with(init)
}

/// A data key from raw bytes. The array is moved in; zeroize your own copies
/// (or use [`data_key_with`], which leaves none).
pub fn data_key_from_bytes(bytes: [u8; DATA_KEY_LEN]) -> DataKey {
    DataKey::from_array(bytes)
}

/// A local KEK from raw bytes.
pub fn local_kek_from_bytes(bytes: SecretBox<[u8; LOCAL_KEK_LEN]>) -> LocalKek {
    LocalKek::from_boxed(bytes)
}

/// A local KEK's raw bytes.
pub fn local_kek_bytes(kek: &LocalKek) -> &[u8; LOCAL_KEK_LEN] {
    kek.key_bytes()
}

/// A local KEK in standard base64, the form `LocalKek::from_env` reads.
pub fn local_kek_to_base64(kek: &LocalKek) -> SecretString {
    SecretString::from(kek.to_base64().as_str())
}

/// A local KEK from standard base64 (44 characters; surrounding whitespace is ignored).
pub fn local_kek_from_base64(text: &str) -> Result<LocalKek, crate::Error> {
    LocalKek::from_base64(text)
}

/// An audit key from raw bytes.
pub fn audit_key_from_bytes(bytes: SecretBox<[u8; 32]>) -> AuditKey {
    AuditKey::from_boxed(bytes)
}

/// An audit key in standard base64, the form `AuditKey::from_env` reads.
pub fn audit_key_to_base64(key: &AuditKey) -> SecretString {
    use base64ct::{Base64, Encoding};
    SecretString::from(zeroize::Zeroizing::new(Base64::encode_string(key.bytes())).as_str())
}

/// An identity of `kind` from its 32 secret bytes (an X25519 private key or
/// an X-Wing seed), for test vectors and interoperability tests. Generate
/// identities with [`Identity::generate`](crate::recipient::Identity::generate).
#[cfg(feature = "recipients")]
pub fn identity_from_bytes(
    kind: crate::recipient::RecipientKind,
    bytes: SecretBox<[u8; 32]>,
) -> Result<crate::recipient::Identity, crate::Error> {
    crate::recipient::Identity::from_secret(kind, bytes)
}

/// An identity's 32 secret bytes.
#[cfg(feature = "recipients")]
pub fn identity_bytes(identity: &crate::recipient::Identity) -> &[u8; 32] {
    identity.secret_bytes()
}

/// Wraps `dek` to `recipient` drawing the KEM's randomness (the ephemeral
/// key) from `rng`: deterministic output for known-answer tests. Never use
/// it with a predictable generator outside tests.
#[cfg(feature = "recipients")]
pub fn wrap_to_recipient_with_rng<R: rand_core::TryCryptoRng + ?Sized>(
    recipient: &crate::recipient::Recipient,
    dek: &DataKey,
    binding: crate::Binding<'_>,
    rng: &mut R,
) -> Result<crate::WrappedKey, crate::ProviderError> {
    recipient.wrap_with_rng(dek, binding, rng)
}

/// Argon2id parameters below [`Argon2Params::new`](crate::passphrase::Argon2Params::new)'s
/// floor (any that Argon2id accepts): for tests, vectors and fuzzing only.
/// Such a passphrase wrap is cheap to brute-force.
#[cfg(feature = "passphrase")]
pub fn argon2_params_unchecked(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<crate::passphrase::Argon2Params, crate::Error> {
    crate::passphrase::Argon2Params::unchecked(memory_kib, iterations, parallelism)
}

/// Wraps `dek` under `passphrase` with the caller's `salt` instead of a
/// random one: deterministic output for known-answer tests. Reusing a salt
/// with the same passphrase reuses the wrapping key (and the AEAD nonce):
/// never do it outside tests.
#[cfg(feature = "passphrase")]
pub fn passphrase_wrap_with_salt(
    passphrase: &crate::passphrase::Passphrase,
    dek: &DataKey,
    binding: crate::Binding<'_>,
    salt: &[u8; 32],
) -> Result<crate::WrappedKey, crate::ProviderError> {
    passphrase.wrap_with_salt(dek, binding, salt)
}

/// A Fernet token with a caller-chosen IV and time: only to reproduce the
/// Fernet specification's `generate` vectors. A repeated IV under one key
/// shows which tokens share a plaintext prefix; use
/// [`FernetKey::encrypt`](crate::fernet::FernetKey::encrypt).
#[cfg(feature = "fernet")]
pub fn fernet_encrypt_with_iv(
    key: &crate::fernet::FernetKey,
    plaintext: &[u8],
    timestamp: u64,
    iv: [u8; 16],
) -> alloc::string::String {
    key.encrypt_with_iv(plaintext, timestamp, iv)
}
