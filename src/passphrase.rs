//! Passphrase recipients (feature `passphrase`): a data key wrapped under a
//! key derived from a passphrase with Argon2id (RFC 9106).
//!
//! [`Passphrase`] is a [`KeyEncryptionProvider`]: it wraps and unwraps. Each
//! wrap draws a fresh random 32-byte salt, derives a 256-bit key with
//! Argon2id, and seals the data key with ChaCha20-Poly1305 bound to the
//! envelope's context; the Argon2id parameters travel in the wrapped bytes
//! (`FORMAT.md` §15.3), so they can be raised later without breaking old
//! envelopes.
//!
//! - **Strong defaults** ([`Argon2Params::DEFAULT`]): 256 MiB, 3 passes,
//!   1 lane, about 0.8 s on a 2020s x86-64 core: the memory of age's
//!   default scrypt work factor, with RFC 9106's three passes.
//! - **Limits checked before any work**: an envelope is attacker-supplied,
//!   and its parameters could ask for terabytes and hours. Unwrapping
//!   refuses parameters above [`PassphraseLimits`] (by default 1 GiB, 10
//!   passes, 16 lanes) with [`ProviderErrorKind::LimitExceeded`] before
//!   allocating anything.
//! - The passphrase is a [`SecretString`] (zeroized on drop, never printed);
//!   the derived key and Argon2id's whole working memory are zeroized after
//!   each use.
//! - **Post-quantum**: a passphrase wrap is symmetric. Its strength is the
//!   passphrase's entropy stretched by Argon2id; Grover's algorithm at best
//!   halves the exponent of a guessing attack, and needs the memory-hard
//!   function run coherently on a quantum computer, which is far out of
//!   reach. It mixes with X-Wing and symmetric keys without opt-in.
//!
//! Every seal and every open runs Argon2id once, by design. To open many
//! envelopes with one passphrase, seal an [`Identity`](crate::recipient::Identity)
//! (or a keyring) under it and seal the envelopes to that instead.
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::passphrase::{Argon2Params, Passphrase};
//! use lockbox::secrecy::SecretString;
//! use lockbox::{EncryptionContext, Opener, Sealer};
//!
//! // (Cheap parameters to keep the example fast; keep the default in real use.)
//! # let weak = lockbox::hazmat::argon2_params_unchecked(64, 1, 1)?;
//! let pass = Passphrase::new(SecretString::from("correct horse battery staple"))?
//! #   .with_params(weak)
//!     ;
//! let ctx = EncryptionContext::new();
//! let envelope = Sealer::new(&pass).seal(b"backup", &ctx)?;
//! assert_eq!(Opener::new(&pass).open(&envelope, &ctx)?, b"backup");
//!
//! let wrong = Passphrase::new(SecretString::from("Tr0ub4dor&3"))?;
//! assert!(Opener::new(&wrong).open(&envelope, &ctx).is_err());
//! # let _ = Argon2Params::DEFAULT;
//! # Ok(()) }
//! ```

use alloc::vec::Vec;
use core::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::array::Array;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, LimitKind, ProviderError, ProviderErrorKind};
use crate::format::binding::Binding;
use crate::format::keywrap::{self, KdfParams, PASSPHRASE_SALT_LEN, SEALED_KEY_LEN};
use crate::keys::{DATA_KEY_LEN, DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef, os_random};
use crate::pq::PostQuantum;
use crate::provider::{KeyEncryptionProvider, ProviderIdentity};

/// Provider id of passphrase wraps.
pub const PASSPHRASE_PROVIDER_ID: &str = "lockbox.passphrase";
/// The label a [`Passphrase`] carries unless given another
/// ([`Passphrase::with_label`]): its wraps' key id.
pub const DEFAULT_LABEL: &str = "passphrase";
/// Prefixed to every wrap's random salt before Argon2id (`FORMAT.md` §15.3).
const SALT_LABEL: &[u8] = b"lockbox v1 passphrase wrap";

/// Argon2id parameters: memory in KiB, passes, lanes. Argon2 version 0x13,
/// 32-byte output; the salt is per wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Argon2Params {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Argon2Params {
    /// The default: 256 MiB, 3 passes, 1 lane (about 0.8 s on one x86-64
    /// core; lockbox computes lanes one after the other, so more lanes add
    /// no speed, only memory bandwidth per pass).
    pub const DEFAULT: Self = Self {
        memory_kib: 256 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// The least memory [`new`](Self::new) accepts: 19 MiB (OWASP's minimum
    /// Argon2id configuration for password storage).
    pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
    /// The fewest passes [`new`](Self::new) accepts: 2.
    pub const MIN_ITERATIONS: u32 = 2;

    /// Parameters for sealing: at least [`MIN_MEMORY_KIB`](Self::MIN_MEMORY_KIB)
    /// and [`MIN_ITERATIONS`](Self::MIN_ITERATIONS), at least 1 lane and 8 KiB
    /// per lane, and within [`PassphraseLimits::DEFAULT`] (so that a default
    /// opener accepts what is sealed). Weaker parameters, for tests only, are
    /// in [`hazmat`](crate::hazmat::argon2_params_unchecked).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, Error> {
        if memory_kib < Self::MIN_MEMORY_KIB || iterations < Self::MIN_ITERATIONS {
            return Err(Error::InvalidArgument {
                what: "Argon2id parameters below the minimum (19 MiB, 2 passes)",
            });
        }
        let p = Self::unchecked(memory_kib, iterations, parallelism)?;
        PassphraseLimits::DEFAULT.check(p)?;
        Ok(p)
    }

    /// Parameters Argon2id accepts (RFC 9106 §3.1: 1 to 2^24-1 lanes, at
    /// least 8 KiB per lane, at least one pass), however weak.
    pub(crate) fn unchecked(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, Error> {
        let p = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        p.argon2().map_err(|_| Error::InvalidArgument {
            what: "not valid Argon2id parameters (1 to 2^24-1 lanes, 8 KiB per lane, 1 pass or more)",
        })?;
        Ok(p)
    }

    /// Memory in KiB (`m`).
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }
    /// Passes (`t`).
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
    /// Lanes (`p`).
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(DATA_KEY_LEN))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    fn wire(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The most work a passphrase unwrap does for an envelope: larger Argon2id
/// parameters are refused before any memory is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PassphraseLimits {
    max_memory_kib: u32,
    max_iterations: u32,
    max_parallelism: u32,
}

impl PassphraseLimits {
    /// 1 GiB, 10 passes, 16 lanes: four times the default memory. The worst
    /// an envelope can then ask for is 10 passes over 1 GiB (about 20 s on
    /// one x86-64 core); lower the limits where that is too much.
    pub const DEFAULT: Self = Self {
        max_memory_kib: 1024 * 1024,
        max_iterations: 10,
        max_parallelism: 16,
    };

    /// Limits of `max_memory_kib` KiB, `max_iterations` passes and
    /// `max_parallelism` lanes.
    pub const fn new(max_memory_kib: u32, max_iterations: u32, max_parallelism: u32) -> Self {
        Self {
            max_memory_kib,
            max_iterations,
            max_parallelism,
        }
    }

    /// Most memory, in KiB.
    pub fn max_memory_kib(&self) -> u32 {
        self.max_memory_kib
    }
    /// Most passes.
    pub fn max_iterations(&self) -> u32 {
        self.max_iterations
    }
    /// Most lanes.
    pub fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    /// [`Error::LimitExceeded`] naming the first parameter above its limit.
    fn check(&self, p: Argon2Params) -> Result<(), Error> {
        let over = |limit, max: u32| Error::LimitExceeded {
            limit,
            max: usize::try_from(max).unwrap_or(usize::MAX),
        };
        if p.memory_kib > self.max_memory_kib {
            return Err(over(LimitKind::KdfMemory, self.max_memory_kib));
        }
        if p.iterations > self.max_iterations {
            return Err(over(LimitKind::KdfIterations, self.max_iterations));
        }
        if p.parallelism > self.max_parallelism {
            return Err(over(LimitKind::KdfParallelism, self.max_parallelism));
        }
        Ok(())
    }
}

impl Default for PassphraseLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A passphrase as a key-encryption provider (see the [module docs](self)).
///
/// Its wraps carry the provider id [`PASSPHRASE_PROVIDER_ID`] and its
/// *label* as key id ([`DEFAULT_LABEL`] unless set with
/// [`with_label`](Self::with_label)), so an opener holding several
/// passphrases runs Argon2id only for the wraps labelled with its own.
/// The label is public (it is in the header); the passphrase is never
/// stored, hashed or printed anywhere but inside Argon2id.
pub struct Passphrase {
    secret: SecretString,
    label: KeyId,
    params: Argon2Params,
    limits: PassphraseLimits,
}

impl Passphrase {
    /// A passphrase provider with the default parameters and limits. An
    /// empty passphrase is refused.
    pub fn new(passphrase: SecretString) -> Result<Self, Error> {
        if passphrase.expose_secret().is_empty() {
            return Err(Error::InvalidArgument {
                what: "the passphrase is empty",
            });
        }
        Ok(Self {
            secret: passphrase,
            label: KeyId(alloc::sync::Arc::from(DEFAULT_LABEL)),
            params: Argon2Params::DEFAULT,
            limits: PassphraseLimits::DEFAULT,
        })
    }

    /// A passphrase read from the environment variable `name` (UTF-8). The
    /// variable stays in the environment; clear it if child processes must
    /// not inherit it.
    #[cfg(feature = "std")]
    pub fn from_env(name: &str) -> Result<Self, Error> {
        let value = crate::secret_file::env_var(name)?;
        Self::new(SecretString::from(value.as_str()))
    }

    /// Sets the label (the key id of its wraps): 1 to 255 bytes of UTF-8
    /// without control characters. Public: it names the passphrase, it must
    /// not contain it.
    pub fn with_label(mut self, label: &str) -> Result<Self, Error> {
        self.label = KeyId::new(label)?;
        Ok(self)
    }

    /// Sets the Argon2id parameters new wraps use (unwrapping always uses
    /// the parameters in the wrapped bytes).
    #[must_use]
    pub fn with_params(mut self, params: Argon2Params) -> Self {
        self.params = params;
        self
    }

    /// Sets the limits on the parameters of the wraps it unwraps.
    #[must_use]
    pub fn with_limits(mut self, limits: PassphraseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The label (key id).
    pub fn label(&self) -> &KeyId {
        &self.label
    }

    /// The parameters new wraps use.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// The limits unwraps enforce.
    pub fn limits(&self) -> PassphraseLimits {
        self.limits
    }

    fn err(kind: ProviderErrorKind) -> ProviderError {
        ProviderError::new(kind, PASSPHRASE_PROVIDER_ID)
    }

    /// Argon2id of the passphrase under `params` and `salt` into a zeroized
    /// key; Argon2id's working memory is allocated here (fallibly) and
    /// zeroized before it is freed.
    fn derive(&self, params: Argon2Params, salt: &[u8; PASSPHRASE_SALT_LEN]) -> Result<Zeroizing<[u8; 32]>, Error> {
        let argon = params.argon2().map_err(|_| Error::InvalidArgument {
            what: "not valid Argon2id parameters",
        })?;
        let mut full_salt = [0u8; SALT_LABEL.len() + PASSPHRASE_SALT_LEN];
        let (l, s) = full_salt.split_at_mut(SALT_LABEL.len());
        l.copy_from_slice(SALT_LABEL);
        s.copy_from_slice(salt);
        let count = argon.params().block_count();
        let mut blocks: Vec<Block> = Vec::new();
        blocks.try_reserve_exact(count).map_err(|_| Error::InvalidArgument {
            what: "not enough memory for Argon2id",
        })?;
        blocks.resize(count, Block::new());
        let mut key = Zeroizing::new([0u8; 32]);
        let r = argon.hash_password_into_with_memory(
            self.secret.expose_secret().as_bytes(),
            &full_salt,
            key.as_mut_slice(),
            blocks.as_mut_slice(),
        );
        blocks.zeroize();
        r.map_err(|_| Error::InvalidArgument {
            what: "Argon2id failed",
        })?;
        Ok(key)
    }

    /// Wraps `dek` with `salt` (the caller's randomness).
    pub(crate) fn wrap_with_salt(
        &self,
        dek: &DataKey,
        binding: Binding<'_>,
        salt: &[u8; PASSPHRASE_SALT_LEN],
    ) -> Result<WrappedKey, ProviderError> {
        let other = |e: Error| Self::err(ProviderErrorKind::Other).with_source(e);
        let key = self.derive(self.params, salt).map_err(other)?;
        let mut sealed = [0u8; SEALED_KEY_LEN];
        let (ct, tag_out) = sealed.split_at_mut(DATA_KEY_LEN);
        let cipher = ChaCha20Poly1305::new((&*key).into());
        let r = InOutBuf::new(dek.expose_secret(), ct).map_err(|_| ()).and_then(|buf| {
            cipher
                .encrypt_inout_detached(&Array::default(), binding.as_bytes(), buf)
                .map_err(|_| ())
        });
        match r {
            Ok(tag) => tag_out.copy_from_slice(&tag),
            Err(()) => {
                return Err(other(Error::InvalidArgument {
                    what: "sealing the data key failed",
                }));
            }
        }
        let bytes = keywrap::encode_passphrase_wrap(self.params.wire(), salt, &sealed);
        WrappedKey::from_static(PASSPHRASE_PROVIDER_ID, self.label.clone(), KeyVersion(1), &bytes).map_err(other)
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passphrase")
            .field("label", &self.label)
            .field("params", &self.params)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for Passphrase {
    fn provider_id(&self) -> &str {
        PASSPHRASE_PROVIDER_ID
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(PASSPHRASE_PROVIDER_ID, self.label.as_str())
    }

    /// Symmetric (Argon2id and ChaCha20-Poly1305): see the [module docs](self).
    fn post_quantum(&self) -> PostQuantum {
        PostQuantum::Yes
    }
}

impl KeyEncryptionProvider for Passphrase {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let mut salt = [0u8; PASSPHRASE_SALT_LEN];
        os_random(&mut salt).map_err(|e| Self::err(ProviderErrorKind::Other).with_source(e))?;
        self.wrap_with_salt(dek, binding, &salt)
    }

    /// Refuses parameters above the limits ([`ProviderErrorKind::LimitExceeded`],
    /// with the [`Error::LimitExceeded`] naming the parameter as source)
    /// before any work; every other failure, malformed bytes included, is
    /// [`ProviderErrorKind::Authentication`].
    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        if !self.matches(wrapped) || wrapped.key_version() != KeyVersion(1) {
            return Err(Self::err(ProviderErrorKind::KeyNotFound));
        }
        let auth = || Self::err(ProviderErrorKind::Authentication);
        let w = keywrap::parse_passphrase_wrap(wrapped.bytes()).map_err(|e| auth().with_source(e))?;
        let p = w.params;
        let params = Argon2Params {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
        };
        self.limits
            .check(params)
            .map_err(|e| Self::err(ProviderErrorKind::LimitExceeded).with_source(e))?;
        let params =
            Argon2Params::unchecked(p.memory_kib, p.iterations, p.parallelism).map_err(|e| auth().with_source(e))?;
        let key = self.derive(params, w.salt).map_err(|e| auth().with_source(e))?;
        let (ct, tag) = w.sealed.split_at(DATA_KEY_LEN);
        let cipher = ChaCha20Poly1305::new((&*key).into());
        DataKey::try_init_with(|out| {
            let tag = Array::try_from(tag).map_err(|_| ())?;
            let buf = InOutBuf::new(ct, out.as_mut_slice()).map_err(|_| ())?;
            cipher
                .decrypt_inout_detached(&Array::default(), binding.as_bytes(), buf, &tag)
                .map_err(|_| ())
        })
        .map_err(|()| auth())
    }
}
