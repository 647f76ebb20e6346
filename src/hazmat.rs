//! Hazardous materials: raw key import and export.
//!
//! Everything here moves key bytes across lockbox's boundary, where lockbox can
//! no longer vouch for where they came from or where they go. Legitimate uses:
//!
//! - a [`KeyEncryptionProvider`](crate::KeyEncryptionProvider) whose backend
//!   returns an unwrapped data key as bytes ([`data_key_from_bytes`]);
//! - importing or escrowing a local KEK that was generated elsewhere
//!   ([`local_kek_from_bytes`], [`local_kek_to_base64`]);
//! - test vectors and interoperability tests.
//!
//! Keys built here are only as good as their bytes: never derive them from a
//! password, a timestamp or a seeded PRNG.

use secrecy::{SecretBox, SecretString};

use crate::keys::{DATA_KEY_LEN, DataKey};
use crate::local::{LOCAL_KEK_LEN, LocalKek};

/// A data key from raw bytes. The array is moved in; zeroize your own copies.
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
