//! Error types.
//!
//! Authentication failures are deliberately uninformative: one variant,
//! whatever failed (commitment, header tag, a segment tag, truncation). Errors
//! about structure, limits and key routing are specific, because they leak
//! nothing an attacker did not already put in the envelope and they save
//! operators hours.
//!
//! No error message contains key bytes or plaintext.

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

/// Everything that can go wrong sealing, opening or inspecting an envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope (or a key in it) failed authentication: it was modified,
    /// truncated, extended, or produced under another data key. Deliberately
    /// says no more.
    #[error("authentication failed")]
    Authentication,

    /// The envelope has a format version this release does not implement.
    #[error("unsupported envelope format version {0}")]
    UnsupportedVersion(u8),

    /// The envelope names an algorithm suite this release does not implement.
    #[error("unsupported algorithm suite id {0}")]
    UnsupportedSuite(u8),

    /// The bytes are not a well-formed envelope.
    #[error("malformed envelope at byte {offset}: {what}")]
    #[non_exhaustive]
    Malformed {
        /// Offset of the offending field.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },

    /// A parsing or sealing limit was exceeded.
    #[error("limit exceeded: more {limit} than the maximum of {max}")]
    #[non_exhaustive]
    LimitExceeded {
        /// Which limit.
        limit: LimitKind,
        /// The limit in force.
        max: usize,
    },

    /// A required (not stored) encryption-context entry was not supplied to open.
    #[error("encryption context key {key:?} is required to open this envelope but was not supplied")]
    #[non_exhaustive]
    MissingContext {
        /// The missing key.
        key: String,
    },

    /// An encryption-context entry supplied to open does not match the envelope:
    /// a stored value differs, or the key is not part of the envelope's context.
    #[error("encryption context key {key:?} does not match the envelope")]
    #[non_exhaustive]
    ContextMismatch {
        /// The key whose value differs, or which the envelope does not have.
        key: String,
    },

    /// No wrapped key in the envelope could be unwrapped by the given
    /// provider(s). `attempts` is how many matching wrapped keys were tried
    /// (0: none was addressed to the provider); `source` is the last failure.
    ///
    /// A source of kind [`ProviderErrorKind::Authentication`] means the
    /// provider holds the named key but the wrapped key did not authenticate
    /// under the binding: a wrong value for a required context entry, a header
    /// whose suite or stored context was altered, or a tampered wrapped key.
    #[error("no provider could unwrap the data key ({attempts} matching wrapped key(s) tried)")]
    #[non_exhaustive]
    NoProviderCouldUnwrap {
        /// Number of wrapped keys that matched a provider and were tried.
        attempts: usize,
        /// The last provider failure, if any was tried.
        #[source]
        source: Option<ProviderError>,
    },

    /// A key-encryption provider failed while sealing (or in another operation
    /// that is not an unwrap attempt during open).
    #[error("key provider failed")]
    Provider(#[from] ProviderError),

    /// Fewer providers wrapped the data key than the seal required: all of
    /// them by default, or the quorum set with
    /// [`Sealer::quorum`](crate::Sealer::quorum). `last` is the last
    /// provider failure.
    #[error("only {wrapped} provider(s) wrapped the data key; {required} required")]
    #[non_exhaustive]
    QuorumNotMet {
        /// How many providers had to wrap.
        required: usize,
        /// How many did.
        wrapped: usize,
        /// The last provider failure, if any.
        #[source]
        last: Option<ProviderError>,
    },

    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Random,

    /// An argument was out of range (a key id too long, a segment size not a
    /// power of two, ...).
    #[error("invalid argument: {what}")]
    #[non_exhaustive]
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
    },

    /// The caller's buffer is too short for the output of
    /// [`Sealer::seal_into`](crate::Sealer::seal_into) or
    /// [`Opener::open_into`](crate::Opener::open_into) (and their async
    /// twins). Nothing was written to it.
    #[error("buffer too short: {needed} bytes needed")]
    #[non_exhaustive]
    BufferTooSmall {
        /// The exact length this output needs (a seal's is that attempt's
        /// envelope: see [`Sealer::seal_into`](crate::Sealer::seal_into)).
        needed: usize,
    },

    /// A key could not be loaded (file, environment variable, encoding).
    #[error("could not load key: {what}")]
    #[non_exhaustive]
    KeyLoad {
        /// What was wrong; never contains key material.
        what: String,
        /// The underlying I/O error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// lockbox refused a file because of what it is, who owns it or who may
    /// access it, checked on the opened handle: a key file, a keyring file or
    /// its lock file that is a symbolic link, a FIFO or another non-regular
    /// file, owned by another user, or open to group or others. The
    /// [`FileProblem`] says which; nothing was read from or written to it.
    #[error("refusing {what} {path}: {problem}")]
    #[non_exhaustive]
    UnsafeFile {
        /// What the file is for ("key file", "keyring file", "lock file").
        what: &'static str,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        problem: FileProblem,
    },

    /// A keyring operation failed: an illegal lifecycle transition, a version
    /// that may not be used, or a keyring file that is rejected, from another
    /// keyring, or changed since it was loaded. The
    /// [`KeyringError`](crate::keyring::KeyringError) says which.
    #[error(transparent)]
    Keyring(#[from] crate::keyring::KeyringError),

    /// A sealer or rewrapper refused to produce an envelope that mixes a
    /// classical public-key wrap with a post-quantum one: the envelope would
    /// be only as strong as its weakest (classical) wrap. Opt in with
    /// `allow_classical_with_post_quantum()` if that is intended; see
    /// [`PostQuantum`](crate::PostQuantum).
    #[error(
        "refusing to mix a classical public-key wrap ({classical}) with a post-quantum one ({post_quantum}): \
         the envelope would be only as strong as its classical wrap; opt in with allow_classical_with_post_quantum()"
    )]
    #[non_exhaustive]
    QuantumDowngrade {
        /// The provider id of the (first) classical wrap.
        classical: String,
        /// The provider id of the (first) post-quantum wrap.
        post_quantum: String,
    },

    /// A recipient or identity string was refused: a typo (checksum), the
    /// wrong kind of key, or not a key string at all.
    #[error("invalid key string: {0}")]
    KeyString(#[from] KeyStringError),

    /// A secrets-file operation failed (structure, names, key coverage,
    /// verification, I/O); the [`SecretsError`](crate::secrets::SecretsError)
    /// says which. A tampered file is [`Error::Authentication`].
    #[cfg(feature = "secrets")]
    #[error(transparent)]
    Secrets(Box<crate::secrets::SecretsError>),

    /// A Fernet token was refused for its structure or its time (after its
    /// authenticator verified); the [`FernetError`](crate::fernet::FernetError)
    /// says which. A token that fails its HMAC is [`Error::Authentication`].
    #[cfg(feature = "fernet")]
    #[error(transparent)]
    Fernet(#[from] crate::fernet::FernetError),
}

/// Why a recipient or identity string (`FORMAT.md` §15) was refused. The
/// messages never contain the string itself (an identity string is a secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStringError {
    /// The prefix names no kind of key lockbox knows.
    #[error("unknown prefix: not a lockbox recipient or identity string")]
    UnknownPrefix,
    /// A known kind of key, but not the one expected (an identity where a
    /// recipient was expected, an X25519 key where an X-Wing key was).
    #[error("expected {expected}, found {found}")]
    #[non_exhaustive]
    WrongKeyType {
        /// What the caller asked for.
        expected: &'static str,
        /// What the string holds.
        found: &'static str,
    },
    /// A character outside the Bech32 alphabet (or no separator).
    #[error("character {position} is not allowed in a key string")]
    #[non_exhaustive]
    InvalidCharacter {
        /// Zero-based character position.
        position: usize,
    },
    /// Upper and lower case letters mixed.
    #[error("mixed upper and lower case")]
    MixedCase,
    /// The checksum does not match: a character is wrong, missing, extra or
    /// swapped.
    #[error("checksum mismatch: the string has a typo or was cut short")]
    Checksum,
    /// The string, or the key it holds, has the wrong length.
    #[error("wrong length for this kind of key")]
    Length,
    /// Non-zero padding bits: not the canonical encoding of any key.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// The bytes are not a valid key of this kind (an ML-KEM encapsulation
    /// key that fails its modulus check).
    #[error("not a valid key of this kind")]
    InvalidKey,
}

impl Error {
    /// An [`Error::InvalidArgument`] (its fields are `#[non_exhaustive]`):
    /// for providers and other code outside lockbox that reports a bad
    /// argument in lockbox's error type.
    pub const fn invalid_argument(what: &'static str) -> Self {
        Self::InvalidArgument { what }
    }

    /// An [`Error::KeyLoad`] (its fields are `#[non_exhaustive]`), with the
    /// underlying error if any. `what` must not contain key material.
    pub fn key_load(what: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::KeyLoad {
            what: what.into(),
            source,
        }
    }
}

/// Why a file was refused ([`Error::UnsafeFile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FileProblem {
    /// The path names a symbolic link. lockbox opens these files without
    /// following a link in the last path component (a planted link would
    /// redirect the read or the write elsewhere); pass the path the link
    /// points to (`std::fs::canonicalize`) if the link is yours.
    #[error("it is a symbolic link (not followed; pass the path it points to if the link is yours)")]
    Symlink,
    /// The path names a FIFO (named pipe): reading it could block forever.
    #[error("it is a FIFO (named pipe), not a regular file")]
    Fifo,
    /// The path names a directory, a socket or a device.
    #[error("it is not a regular file")]
    NotRegular,
    /// The file belongs to another user than the process's effective user (or
    /// root), who could change it at will.
    #[error("it is owned by user id {owner}, not by this process's user id {user} or root")]
    OtherOwner {
        /// The file's owner.
        owner: u32,
        /// The process's effective user id.
        user: u32,
    },
    /// A secret (a key file) that group or others may read or write.
    #[error("group or others may access it (mode {mode:03o}); run `chmod 600` on it")]
    AccessibleByOthers {
        /// The file's permission bits.
        mode: u32,
    },
    /// A file that group or others may write (a keyring or lock file: they
    /// could put an older keyring back).
    #[error("group or others may write it (mode {mode:03o}); run `chmod go-w` on it")]
    WritableByOthers {
        /// The file's permission bits.
        mode: u32,
    },
}

/// Which limit an [`Error::LimitExceeded`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// Header bytes.
    HeaderBytes,
    /// Wrapped keys in one envelope.
    WrappedKeys,
    /// Encryption-context entries.
    ContextEntries,
    /// Encryption-context bytes (keys plus values).
    ContextBytes,
    /// Bytes in one context key or value.
    ContextField,
    /// Segment size in bytes.
    SegmentSize,
    /// Memory of a key-derivation function (Argon2id), in KiB.
    KdfMemory,
    /// Passes (iterations) of a key-derivation function (Argon2id).
    KdfIterations,
    /// Lanes (parallelism) of a key-derivation function (Argon2id).
    KdfParallelism,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HeaderBytes => "header bytes",
            Self::WrappedKeys => "wrapped keys",
            Self::ContextEntries => "encryption-context entries",
            Self::ContextBytes => "encryption-context bytes",
            Self::ContextField => "bytes in one encryption-context key or value",
            Self::SegmentSize => "segment bytes",
            Self::KdfMemory => "KiB of key-derivation memory",
            Self::KdfIterations => "key-derivation passes",
            Self::KdfParallelism => "key-derivation lanes",
        })
    }
}

/// A boxed error from a provider's backend (an SDK, a token library, I/O).
pub type BoxError = Box<dyn core::error::Error + Send + Sync + 'static>;

/// The kind of a [`ProviderError`], so callers can react without parsing text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The wrapped key did not authenticate: wrong key, wrong binding
    /// (context or suite), or tampered bytes. Deliberately not more specific.
    Authentication,
    /// The provider does not hold the key the wrapped key names.
    KeyNotFound,
    /// The key exists but may not be used for this operation (disabled,
    /// decrypt-only asked to wrap, ...).
    KeyDisabled,
    /// The key was destroyed.
    KeyDestroyed,
    /// The key was declared compromised: it unwraps only to migrate data away
    /// from it (a keyring's [`MigrationProvider`](crate::keyring::MigrationProvider)),
    /// never for ordinary opens, and never wraps.
    KeyCompromised,
    /// The provider does not support this operation.
    Unsupported,
    /// The backend could not be reached or refused the request; retrying may help.
    Unavailable,
    /// The backend refused the request because the caller exceeded a quota or
    /// rate (a KMS `ThrottlingException`, HTTP 429): retry later, more
    /// slowly. The bulk engine ([`rotation`](crate::rotation)) backs off and
    /// retries on it, as on [`Unavailable`](Self::Unavailable).
    Throttled,
    /// The backend refused the caller's credentials (an invalid or expired
    /// token, an access-denied policy): fix the credentials, not the key.
    PermissionDenied,
    /// The wrapped key asks for more work or memory than the provider's
    /// limits allow (a passphrase wrap's Argon2id parameters); refused
    /// before any of that work is done.
    LimitExceeded,
    /// Anything else.
    Other,
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authentication => "wrapped key failed authentication",
            Self::KeyNotFound => "key not found",
            Self::KeyDisabled => "key may not be used for this operation",
            Self::KeyDestroyed => "key destroyed",
            Self::KeyCompromised => "key compromised; usable only to migrate data away from it",
            Self::Unsupported => "operation not supported",
            Self::Unavailable => "key service unavailable",
            Self::Throttled => "key service throttled the request (rate or quota exceeded)",
            Self::PermissionDenied => "permission denied by the key service",
            Self::LimitExceeded => "wrapped key exceeds the provider's resource limits",
            Self::Other => "provider error",
        })
    }
}

/// An error from a [`KeyEncryptionProvider`](crate::KeyEncryptionProvider).
///
/// Carries a [`ProviderErrorKind`], the provider id, and optionally the
/// backend's own error as [`source`](core::error::Error::source).
#[derive(Debug)]
pub struct ProviderError {
    kind: ProviderErrorKind,
    provider_id: String,
    source: Option<BoxError>,
}

impl ProviderError {
    /// A new error of `kind` from the provider `provider_id`.
    pub fn new(kind: ProviderErrorKind, provider_id: impl Into<String>) -> Self {
        Self {
            kind,
            provider_id: provider_id.into(),
            source: None,
        }
    }

    /// Attaches the backend's error as the source.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ProviderErrorKind {
        self.kind
    }

    /// The id of the provider that failed.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.provider_id, self.kind)
    }
}

impl core::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| -> &(dyn core::error::Error + 'static) { e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_are_send_sync_static() {
        assert_send_sync::<Error>();
        assert_send_sync::<ProviderError>();
    }

    #[test]
    fn provider_error_chains_its_source() {
        #[derive(Debug)]
        struct Backend;
        impl fmt::Display for Backend {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("backend exploded")
            }
        }
        impl core::error::Error for Backend {}
        let e = Error::from(ProviderError::new(ProviderErrorKind::Unavailable, "kms").with_source(Backend));
        let p = core::error::Error::source(&e).unwrap();
        assert_eq!(alloc::format!("{p}"), "kms: key service unavailable");
        let b = p.source().unwrap();
        assert_eq!(alloc::format!("{b}"), "backend exploded");
    }
}
