//! The local key-encryption key: an AES-256 key held in process memory.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

use base64ct::{Base64, Encoding};
use rand_core::TryCryptoRng;
use secrecy::SecretBox;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::context::Binding;
use crate::crypto::kek_wrap::{KEK_LEN, Kek};
use crate::error::{Error, ProviderError, ProviderErrorKind};
use crate::keys::{DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef, rng_random};
use crate::provider::{KeyEncryptionProvider, ProviderIdentity};

/// Provider id of [`LocalKek`] wrapped keys.
pub const LOCAL_PROVIDER_ID: &str = "lockbox.local";
/// Length of a local KEK in bytes.
pub const LOCAL_KEK_LEN: usize = KEK_LEN;
/// Prefix hashed with the key to form its id.
const KEY_ID_LABEL: &[u8] = b"lockbox v1 local kek id";
/// Largest key file accepted (a base64 key is 44 bytes).
#[cfg(feature = "std")]
const MAX_KEY_FILE_LEN: u64 = 1024;

/// A local key-encryption key: AES-256-GCM under a 256-bit key that lives in
/// this process. It is the simplest provider, for development, tests, and
/// deployments whose key arrives as a file or an environment variable.
///
/// - Its [`KeyId`] is a fingerprint: the first 16 bytes of
///   `SHA-256("lockbox v1 local kek id" || key)`, in hex. Every way of loading
///   the same key gives the same id; the id reveals nothing about the key.
/// - Wrapping is AES-256-GCM with the envelope's [`Binding`] as associated
///   data (`FORMAT.md`, "Local KEK"). The 96-bit nonce is synthetic (as in
///   SIV): a PRF (HMAC-SHA-256 under a key derived from the KEK) of the data
///   key and the binding. Data keys are random, so nonces are as unique as
///   random ones; wrapping needs no call to the OS generator; and wrapping the
///   same key for the same binding twice repeats the whole output, never a
///   nonce alone. Key schedules are computed once, when the key is loaded.
/// - The key bytes are zeroized on drop; `Debug` shows only the id.
/// - Under one KEK, keep the number of wraps below 2^32 (96-bit nonces).
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// let kek = lockbox::LocalKek::generate()?;
/// let ctx = lockbox::EncryptionContext::new();
/// let envelope = lockbox::seal(&kek, b"hello", &ctx)?;
/// assert_eq!(lockbox::open(&kek, &envelope, &ctx)?, b"hello");
/// # Ok(()) }
/// ```
pub struct LocalKek {
    /// The key, its AES key schedule and nonce PRF (zeroized on drop).
    kek: Kek,
    key_id: KeyId,
}

impl LocalKek {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        Kek::generate().map(Self::from_kek)
    }

    /// A fresh key from the caller's CSPRNG (for targets without an OS
    /// generator).
    pub fn generate_with_rng<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let mut key = Box::new([0u8; LOCAL_KEK_LEN]);
        rng_random(rng, key.as_mut_slice())?;
        Ok(Self::from_boxed(SecretBox::new(key)))
    }

    pub(crate) fn from_boxed(key: SecretBox<[u8; LOCAL_KEK_LEN]>) -> Self {
        Self::from_kek(Kek::new(key))
    }

    fn from_kek(kek: Kek) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_LABEL)
            .chain_update(kek.bytes())
            .finalize();
        let mut hex = String::with_capacity(32);
        for b in digest.iter().take(16) {
            hex.extend(char::from_digit(u32::from(b >> 4), 16));
            hex.extend(char::from_digit(u32::from(b & 0x0f), 16));
        }
        // 32 lowercase hex digits always form a valid key id.
        let key_id = KeyId::new(hex).unwrap_or_else(|_| unreachable_key_id());
        Self { kek, key_id }
    }

    /// Decodes a key from standard, padded base64 (44 characters, surrounding
    /// whitespace ignored). The input is not copied except into zeroized buffers.
    pub(crate) fn from_base64(text: &str) -> Result<Self, Error> {
        let mut key = Box::new([0u8; LOCAL_KEK_LEN]);
        let decoded = Base64::decode(text.trim_ascii(), key.as_mut_slice());
        match decoded {
            Ok(d) if d.len() == LOCAL_KEK_LEN => Ok(Self::from_boxed(SecretBox::new(key))),
            _ => Err(Error::KeyLoad {
                what: String::from("key is not standard base64 of exactly 32 bytes"),
                source: None,
            }),
        }
    }

    /// The key in standard, padded base64.
    pub(crate) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(Base64::encode_string(self.kek.bytes()))
    }

    pub(crate) fn key_bytes(&self) -> &[u8; LOCAL_KEK_LEN] {
        self.kek.bytes()
    }

    /// The key's id (its fingerprint).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The key's version: always 1 for a local key (keyrings add versions).
    pub fn key_version(&self) -> KeyVersion {
        KeyVersion(1)
    }

    fn err(kind: ProviderErrorKind) -> ProviderError {
        ProviderError::new(kind, LOCAL_PROVIDER_ID)
    }
}

fn unreachable_key_id() -> KeyId {
    // A hex fingerprint is always valid; this is only a typed fallback.
    KeyId(alloc::sync::Arc::from("0"))
}

#[cfg(feature = "std")]
mod io {
    use super::*;
    use crate::secret_file;
    use std::path::Path;

    fn load_err(what: String) -> Error {
        Error::KeyLoad { what, source: None }
    }

    impl LocalKek {
        /// Loads a key file: standard base64 of 32 bytes, optionally followed by
        /// a newline (the form [`write_new_file`](Self::write_new_file) writes).
        ///
        /// The file is opened without following a symbolic link and without
        /// blocking, and checked on the opened handle (`FORMAT.md` §10): it
        /// must be a regular file (not a link, a FIFO, a device or a
        /// directory) and, on Unix, owned by the process's effective user (or
        /// root) and neither readable nor writable by group or others (mode
        /// `0600` or stricter). Otherwise this fails with
        /// [`Error::UnsafeFile`] and a [`FileProblem`](crate::FileProblem)
        /// saying which (and how to fix it). A key file that is a link you
        /// made (a Kubernetes secret volume, say) loads through its target:
        /// `LocalKek::from_file(std::fs::canonicalize(path)?)`.
        pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
            let path = path.as_ref();
            let shown = path.display();
            let text = secret_file::read(path, "key file", MAX_KEY_FILE_LEN)?;
            let text =
                core::str::from_utf8(&text).map_err(|_| load_err(format!("key file {shown} is not base64 text")))?;
            Self::from_base64(text).map_err(|_| {
                load_err(format!(
                    "key file {shown} does not hold standard base64 of exactly 32 bytes"
                ))
            })
        }

        /// Loads a key from the environment variable `name`, holding standard
        /// base64 of 32 bytes.
        ///
        /// **The variable stays in the process environment**: every child
        /// process inherits it and it shows in crash dumps and
        /// `/proc/<pid>/environ`. lockbox cannot remove it for you: removing
        /// an environment variable (`std::env::remove_var`) is `unsafe` in
        /// Rust 2024 (it races with any other thread reading the
        /// environment), and this crate forbids unsafe code. lockbox itself
        /// starts no process. The safe pattern, in your binary:
        ///
        /// ```no_run
        /// fn main() -> Result<(), lockbox::Error> {
        ///     // First thing in main, before any thread starts (no runtime,
        ///     // no logger thread yet): read the key, then remove the variable.
        ///     let kek = lockbox::LocalKek::from_env("APP_KEK")?;
        ///     // SAFETY: no other thread exists yet, so nothing reads the
        ///     // environment concurrently.
        ///     unsafe { std::env::remove_var("APP_KEK") };
        ///     // ... start the runtime, threads and child processes after.
        ///     # let _ = kek;
        ///     Ok(())
        /// }
        /// ```
        ///
        /// If you cannot do that (a library, or threads started before `main`),
        /// keep the variable away from children you start
        /// (`std::process::Command::env_remove("APP_KEK")`, or `env_clear`),
        /// or better, do not pass the key in the environment at all: use a
        /// key file ([`from_file`](Self::from_file), owner-only) or a secret
        /// manager or KMS provider.
        pub fn from_env(name: &str) -> Result<Self, Error> {
            let value = secret_file::env_var(name)?;
            Self::from_base64(&value).map_err(|_| {
                load_err(format!(
                    "environment variable {name} does not hold standard base64 of exactly 32 bytes"
                ))
            })
        }

        /// Writes the key to a new file at `path`, readable only by its owner
        /// (mode `0600` on Unix), atomically: the key is written and synced to a
        /// temporary file in the same directory, which is then linked into
        /// place. An existing file (or link) is never overwritten (losing a KEK
        /// loses every envelope it wrapped), and a crash leaves either no key
        /// file or a complete one; a crash before the temporary file is removed
        /// can leave it behind (`.<name>.tmp-<16 hex digits>`, mode `0600`,
        /// holding the key): remove it. Needs a file system with hard links.
        pub fn write_new_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
            // The newline is written separately: appending it to the key
            // text would reallocate it and leave a copy in freed memory.
            let text = self.to_base64();
            secret_file::write_new(path.as_ref(), "key file", &[text.as_bytes(), b"\n"])
        }
    }
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for LocalKek {
    fn provider_id(&self) -> &str {
        LOCAL_PROVIDER_ID
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(LOCAL_PROVIDER_ID, self.key_id.as_str())
    }

    /// AES-256-GCM under a 256-bit key: symmetric, post-quantum.
    fn post_quantum(&self) -> crate::PostQuantum {
        crate::PostQuantum::Yes
    }
}

impl KeyEncryptionProvider for LocalKek {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let out = self
            .kek
            .wrap(dek, binding.as_bytes())
            .map_err(|_| Self::err(ProviderErrorKind::Other))?;
        WrappedKey::from_static(LOCAL_PROVIDER_ID, self.key_id.clone(), self.key_version(), &out)
            .map_err(|e| Self::err(ProviderErrorKind::Other).with_source(e))
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        if !self.matches(wrapped) || wrapped.key_version() != self.key_version() {
            return Err(Self::err(ProviderErrorKind::KeyNotFound));
        }
        self.kek
            .unwrap(wrapped.bytes(), binding.as_bytes())
            .map_err(|_| Self::err(ProviderErrorKind::Authentication))
    }
}

#[cfg(test)]
mod tests {
    use hkdf::Hkdf;
    use hmac::{Hmac, KeyInit as _, Mac as _};
    use secrecy::ExposeSecret;

    use super::*;
    use crate::BindingBuf;
    use crate::context::EncryptionContext;
    use crate::suite::Suite;

    fn kek() -> LocalKek {
        LocalKek::from_boxed(SecretBox::new(Box::new(core::array::from_fn(|i| {
            u8::try_from(i).unwrap_or(0)
        }))))
    }

    #[test]
    fn wrap_nonce_is_the_documented_synthetic_iv() {
        // Recomputed from FORMAT.md §10 with a 32-byte HMAC key (not the
        // zero-padded block the implementation uses: the MAC is the same).
        let kek = kek();
        let dek = DataKey::from_array([0x42; 32]);
        let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new().with("a", "1").unwrap());
        let mut k = [0u8; 32];
        Hkdf::<Sha256>::new(None, kek.key_bytes())
            .expand(b"lockbox v1 local wrap nonce key", &mut k)
            .unwrap();
        let mut mac = <Hmac<Sha256>>::new_from_slice(&k).unwrap();
        mac.update(&[0x42; 32]);
        mac.update(b.as_binding().as_bytes());
        let expected = mac.finalize().into_bytes();
        let w = kek.wrap(&dek, b.as_binding()).unwrap();
        assert_eq!(&w.bytes()[1..13], &expected[..12]);
        assert_eq!(
            kek.unwrap(w.as_ref(), b.as_binding()).unwrap().expose_secret(),
            &[0x42; 32]
        );
    }

    #[test]
    fn wrap_is_deterministic_per_key_and_binding_only() {
        let kek = kek();
        let b1 = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
        let b2 = BindingBuf::new(Suite::ChaCha20Poly1305, &EncryptionContext::new());
        let d1 = DataKey::from_array([1; 32]);
        let d2 = DataKey::from_array([2; 32]);
        let w = |d: &DataKey, b: &BindingBuf| kek.wrap(d, b.as_binding()).unwrap().bytes().to_vec();
        assert_eq!(w(&d1, &b1), w(&d1, &b1));
        assert_ne!(w(&d1, &b1)[1..13], w(&d2, &b1)[1..13]);
        assert_ne!(w(&d1, &b1)[1..13], w(&d1, &b2)[1..13]);
        let other = LocalKek::generate().unwrap();
        assert_ne!(
            w(&d1, &b1)[1..13],
            other.wrap(&d1, b1.as_binding()).unwrap().bytes()[1..13]
        );
    }
}
