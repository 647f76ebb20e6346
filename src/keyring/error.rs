//! The keyring's error type.

use alloc::boxed::Box;
use alloc::string::String;

use super::{KeyStateKind, LifecycleOp, UnixTime};
use crate::error::BoxError;
use crate::keys::{KeyId, KeyVersion};

/// What went wrong in a keyring operation; carried by [`Error::Keyring`](crate::Error::Keyring)
/// and, for wraps and unwraps, as the [`source`](core::error::Error::source) of the
/// [`ProviderError`](crate::ProviderError) the keyring returns.
///
/// Never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The keyring never had this version (or the wrapped key names another keyring's).
    #[error("keyring has no version {0}")]
    UnknownVersion(KeyVersion),

    /// The wrapped key was made by another provider or names another keyring.
    #[error("wrapped key does not belong to keyring {0}")]
    NotThisKeyring(KeyId),

    /// The version was removed by [`trim`](super::Keyring::trim): it was below
    /// the minimum decryption version, and its key is gone.
    #[error("version {0} was trimmed from the keyring (below the minimum decryption version); its key is gone")]
    Trimmed(KeyVersion),

    /// The version is below the keyring's minimum decryption version.
    #[error("version {version} is below the minimum decryption version {minimum}")]
    BelowMinimum {
        /// The version asked for.
        version: KeyVersion,
        /// The minimum decryption version.
        minimum: KeyVersion,
    },

    /// The version is disabled: it neither wraps nor unwraps until enabled again.
    #[error("version {0} is disabled")]
    Disabled(KeyVersion),

    /// The version is scheduled for destruction: it neither wraps nor unwraps
    /// (cancel the destruction to use it again).
    #[error("version {version} is scheduled for destruction (not before {not_before})")]
    ScheduledForDestruction {
        /// The version.
        version: KeyVersion,
        /// When it may be destroyed.
        not_before: UnixTime,
    },

    /// The version was destroyed: its key bytes are gone; only a tombstone remains.
    #[error("version {0} was destroyed")]
    Destroyed(KeyVersion),

    /// The version was declared compromised: it never wraps again and unwraps
    /// only through the [`MigrationProvider`](super::MigrationProvider).
    #[error("version {0} is compromised: it unwraps only through the migration provider")]
    Compromised(KeyVersion),

    /// The operation is not allowed on the primary version (promote another first).
    #[error("version {0} is the primary; promote another version first")]
    IsPrimary(KeyVersion),

    /// The lifecycle operation is not allowed from the version's current state.
    #[error("cannot {op} version {version}: it is {state}")]
    IllegalTransition {
        /// The version.
        version: KeyVersion,
        /// Its current state.
        state: KeyStateKind,
        /// The operation refused.
        op: LifecycleOp,
    },

    /// `destroy` was called before the scheduled time.
    #[error("version {version} may not be destroyed before {not_before}")]
    DestructionNotDue {
        /// The version.
        version: KeyVersion,
        /// When it may be destroyed.
        not_before: UnixTime,
    },

    /// A destruction was scheduled closer than the policy's minimum delay.
    #[error("destruction must be scheduled at least {min_delay_secs} s ahead (not before {earliest})")]
    DestructionTooSoon {
        /// The policy's minimum delay in seconds.
        min_delay_secs: u64,
        /// The earliest time allowed.
        earliest: UnixTime,
    },

    /// The minimum decryption version would be above the primary version.
    #[error("minimum decryption version {minimum} would be above the primary {primary}")]
    MinimumAbovePrimary {
        /// The requested minimum.
        minimum: KeyVersion,
        /// The primary version.
        primary: KeyVersion,
    },

    /// The minimum decryption version would be below versions already trimmed.
    #[error("minimum decryption version {minimum} is below {trimmed_below}: the versions below that were trimmed")]
    MinimumBelowTrimmed {
        /// The requested minimum.
        minimum: KeyVersion,
        /// The lowest version not trimmed.
        trimmed_below: KeyVersion,
    },

    /// The keyring holds the maximum number of versions (trim, or the version
    /// numbers are exhausted).
    #[error("the keyring cannot hold more versions (at most {max}; trim old versions)")]
    TooManyVersions {
        /// The maximum.
        max: usize,
    },

    /// A wrapped key did not authenticate under the version it names: wrong
    /// binding (context or suite) or tampered bytes. Deliberately not more specific.
    #[error("wrapped key failed authentication under version {0}")]
    UnwrapFailed(KeyVersion),

    /// Wrapping under the version failed: the OS random number generator
    /// failed to supply a nonce.
    #[error("wrapping under version {0} failed: the random number generator failed")]
    WrapFailed(KeyVersion),

    /// The decrypted keyring file does not follow `KEYRING.md`.
    #[error("keyring file is malformed at byte {offset} of its contents: {what}")]
    Malformed {
        /// Offset in the decrypted contents.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },

    /// The keyring file has a contents format version this release does not implement.
    #[error("unsupported keyring file format version {0}")]
    UnsupportedFormat(u8),

    /// The keyring file holds another keyring than the one expected.
    #[error("keyring file holds keyring {found}, expected {expected}")]
    IdMismatch {
        /// The id expected.
        expected: KeyId,
        /// The id in the file.
        found: KeyId,
    },

    /// The keyring file was saved by someone else since this keyring was loaded
    /// (compare-and-swap on the generation number failed): reload, reapply the
    /// change and save again, or use [`Keyring::update`](super::Keyring::update).
    #[error("keyring file changed since it was loaded: it is at generation {found}, this copy at {expected}")]
    Conflict {
        /// The generation this copy was loaded or last saved at.
        expected: u64,
        /// The generation in the file.
        found: u64,
    },

    /// The keyring file holds an older generation than this process has
    /// seen for it (or than the copy being saved or reloaded): a restored
    /// backup or a rolled-back deploy would resurrect destroyed or
    /// compromised versions, so it is neither adopted nor built on, and
    /// nothing is written (`KEYRING.md` §3.4). If the older keyring is
    /// wanted on purpose, restore it with
    /// [`Keyring::advance_generation`](super::Keyring::advance_generation).
    #[error("keyring file was rolled back: it is at generation {found}, below generation {highest_seen} seen before")]
    Rollback {
        /// The highest generation seen (this process's floor for the file,
        /// or the copy's own generation).
        highest_seen: u64,
        /// The generation in the file (or of the copy being saved, when the
        /// file is gone).
        found: u64,
    },

    /// The keyring file could not be opened as a keyring: it was modified,
    /// truncated or corrupted, sealed under another master key, or its
    /// contents are malformed. `source` is the specific error
    /// ([`Error::Authentication`](crate::Error::Authentication),
    /// [`Error::NoProviderCouldUnwrap`](crate::Error::NoProviderCouldUnwrap),
    /// [`KeyringError::Malformed`], ...). The file is left as it is.
    #[error("keyring file {path} was rejected: {source}")]
    FileRejected {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<crate::Error>,
    },

    /// Reading, writing, locking or syncing the keyring file failed.
    #[error("keyring file: {what}")]
    Io {
        /// What was being done (path included).
        what: String,
        /// The operating system's error.
        #[source]
        source: Option<BoxError>,
    },
}
