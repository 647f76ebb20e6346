//! Versioned keyrings of key-encryption keys: lifecycle, rotation policy,
//! persistence under a master key, and audit.
//!
//! A [`Keyring`] is the middle level of a three-level hierarchy:
//!
//! ```text
//! master key (any provider, sync or async: LocalKek, HSM, AWS KMS, OpenBao)
//!   └─ keyring file: every KEK version, sealed under the master (KEYRING.md)
//!        └─ envelopes: each DEK wrapped by the keyring's primary version (FORMAT.md)
//! ```
//!
//! Rotating the master re-encrypts only the keyring file (save it under the
//! new master); no envelope changes. Rotating the keyring adds a version that
//! wraps new data keys, while older versions keep unwrapping until they are
//! disabled, trimmed or destroyed.
//!
//! # Versions and their states
//!
//! Every version has a number (from 1, never reused), a creation time, a state
//! and a `compromised` flag:
//!
//! | State | Wraps | Unwraps | Leaves by |
//! |---|---|---|---|
//! | [`Enabled`](KeyState::Enabled) | only the primary | yes | `disable`, `set_decrypt_only`, `schedule_destruction` |
//! | [`DecryptOnly`](KeyState::DecryptOnly) | no | yes | `enable`, `disable`, `schedule_destruction` |
//! | [`Disabled`](KeyState::Disabled) | no | no | `enable`, `set_decrypt_only`, `schedule_destruction` |
//! | [`ScheduledForDestruction`](KeyState::ScheduledForDestruction) | no | no | `cancel_destruction` (→ disabled), `destroy` once due |
//! | [`Destroyed`](KeyState::Destroyed) | no | no | never: a tombstone, so errors say "destroyed" |
//!
//! Exactly one version is the **primary**; it is always enabled and never
//! compromised, and it cannot be disabled, made decrypt-only or scheduled for
//! destruction (promote another first). A new version is added *staged*
//! ([`add_version`](Keyring::add_version): enabled, so it unwraps, but not
//! primary) and later [promoted](Keyring::promote), so that every reader has
//! it before any writer uses it (Tink's add → promote);
//! [`rotate`](Keyring::rotate) does both at once. Operations that change
//! nothing (enabling an enabled version) succeed; every refused transition is
//! a specific [`KeyringError`].
//!
//! [`compromised`](Keyring::compromised) marks a version as compromised: if it
//! was the primary, a new primary is generated and promoted at once; the
//! version becomes decrypt-only (if it was enabled), never wraps again, cannot be enabled or
//! promoted, and unwraps only through the [`MigrationProvider`]
//! ([`Keyring::migration_provider`]), which the caller hands to rewrap /
//! re-encrypt as the unwrapping side. Ordinary opens fail with
//! [`ProviderErrorKind::KeyCompromised`](crate::ProviderErrorKind::KeyCompromised).
//! [`Keyring::needs_migration`] tells which envelopes to migrate.
//!
//! To move envelopes to the primary, rewrap them ([`Rewrapper`](crate::Rewrapper),
//! payload untouched) with the keyring (or, for compromised versions, its
//! migration provider) on the unwrap side and the keyring on the wrap side;
//! wrapped keys kept outside envelopes move with the provider's own
//! [`rewrap`](crate::KeyEncryptionProvider::rewrap).
//!
//! A **minimum decryption version** refuses unwraps below it;
//! [`trim`](Keyring::trim) then removes those versions (and their keys) for good.
//!
//! Times are passed in by the caller ([`UnixTime`]); the library runs no timers.
//!
//! # Persistence (feature `std`)
//!
//! [`Keyring::save`] seals the keyring under a master provider into a file
//! (`KEYRING.md`): owner-only, atomic (temporary file, fsync, rename, fsync of
//! the directory) and guarded against lost updates by an exclusive lock on
//! `<file>.lock` plus a compare-and-swap on the file's generation number.
//! [`Keyring::load`] never writes, so a tampered file stays as it is and fails
//! with [`KeyringError::FileRejected`]. A file put back to an older generation
//! (a restored backup) is refused by every load, reload, save and update
//! ([`KeyringError::Rollback`]; across restarts, with
//! [`Keyring::raise_generation_floor`]), and files that are links, FIFOs,
//! another user's or writable by others are refused ([`Error::UnsafeFile`]). Several processes sharing a file
//! change it with [`Keyring::update`] (read-modify-write under the lock) and
//! pick up each other's changes with [`Keyring::reload_if_changed`]. Without
//! `std`, [`Keyring::to_sealed_bytes`] and [`Keyring::from_sealed_bytes`] give
//! the same sealed form for storage of your own.
//!
//! # An async master (AWS KMS, OpenBao)
//!
//! Each of these takes a sync master ([`KeyEncryptionProvider`](crate::KeyEncryptionProvider))
//! and has an `_async` twin taking an async one
//! ([`AsyncKeyEncryptionProvider`](crate::AsyncKeyEncryptionProvider)), so a
//! keyring can be sealed under a cloud KMS or OpenBao Transit:
//! [`save_async`](Keyring::save_async), [`load_async`](Keyring::load_async),
//! [`load_with_audit_async`](Keyring::load_with_audit_async),
//! [`update_async`](Keyring::update_async), [`reload_async`](Keyring::reload_async),
//! [`reload_if_changed_async`](Keyring::reload_if_changed_async),
//! [`to_sealed_bytes_async`](Keyring::to_sealed_bytes_async) and
//! [`from_sealed_bytes_async`](Keyring::from_sealed_bytes_async). The file,
//! its checks, errors and audit events are the same (one implementation);
//! only the master's calls are awaited. The file I/O itself stays blocking
//! `std::fs` (a small file and an `fsync`), and `save_async` / `update_async`
//! hold the lock file across the master's `.await`. The file does not record
//! whether its master was sync or async: a keyring saved under one loads
//! under the other if they hold the same key.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lockbox::Error> {
//! use lockbox::keyring::{Keyring, UnixTime};
//! use lockbox::{KeyId, LocalKek};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("payments.keyring");
//! // `master` would be an AWS KMS or OpenBao provider; any async provider
//! // works, a LocalKek too (every sync provider is also an async one).
//! let master = LocalKek::generate()?;
//! let t0 = UnixTime(1_700_000_000);
//! let mut ring = Keyring::generate(KeyId::new("payments")?, t0)?;
//! ring.save_async(&path, &master).await?;
//!
//! // Another process: load, and rotate under the lock.
//! let mut other = Keyring::load_async(&path, &master).await?;
//! let v2 = other.update_async(&path, &master, |r| r.rotate(t0.plus_secs(86_400))).await?;
//! // The first copy picks the rotation up.
//! assert!(ring.reload_if_changed_async(&path, &master).await?);
//! assert_eq!(ring.primary(), v2);
//! # Ok(()) }
//! ```
//!
//! Every lifecycle event, wrap, unwrap and failure goes to an [`AuditSink`]
//! as a [`KeyringEvent`] (with ids, versions, times and the envelope
//! context's keys and digest, never key bytes or context values).
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::keyring::{Keyring, UnixTime};
//! use lockbox::{EncryptionContext, KeyId};
//!
//! let t0 = UnixTime(1_700_000_000);
//! let mut ring = Keyring::generate(KeyId::new("payments")?, t0)?;
//! let ctx = EncryptionContext::new().with("purpose", "demo")?;
//! let old = lockbox::seal(&ring, b"sealed under v1", &ctx)?;
//!
//! let v2 = ring.rotate(t0.plus_secs(86_400))?;
//! assert_eq!(ring.primary(), v2);
//! assert!(ring.needs_migration(&lockbox::inspect(&old)?));
//! // v1 still unwraps until it is disabled or destroyed.
//! assert_eq!(lockbox::open(&ring, &old, &ctx)?, b"sealed under v1");
//! # Ok(()) }
//! ```

pub(crate) mod codec;
mod error;
#[cfg(feature = "std")]
mod file;
mod kek;
mod provider;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::fmt;

use crate::audit::KeyringAction as AuditAction;
/// The audit hook is the crate-wide one ([`crate::audit`]); a keyring's
/// events are its [`KeyringEvent`] family.
pub use crate::audit::{AuditEvent, AuditSink, KeyringAction, KeyringEvent, NoAudit};
pub use error::KeyringError;
pub use provider::MigrationProvider;

use crate::error::Error;
use crate::inspect::EnvelopeInfo;
use crate::keys::{KeyId, KeyVersion};
use kek::VersionKey;

/// Provider id of keyring wrapped keys. The key id is the keyring's id and the
/// key version its version number.
pub const KEYRING_PROVIDER_ID: &str = "lockbox.keyring";

/// Most versions one keyring holds at a time (tombstones included); trim old ones.
pub const MAX_VERSIONS: usize = 65_535;

/// Default minimum delay between scheduling a destruction and its earliest
/// time: 7 days, as cloud KMSs enforce.
pub const DEFAULT_MIN_DESTRUCTION_DELAY_SECS: u64 = 7 * 24 * 60 * 60;

/// A point in time, in whole seconds since the Unix epoch, supplied by the
/// caller (the library reads no clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// The current system time (times before 1970 read as 0).
    #[cfg(feature = "std")]
    pub fn now() -> Self {
        Self::from(std::time::SystemTime::now())
    }

    /// `self + secs`, saturating at the end of time.
    #[must_use]
    pub fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }
}

#[cfg(feature = "std")]
impl From<std::time::SystemTime> for UnixTime {
    fn from(t: std::time::SystemTime) -> Self {
        Self(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unix time {}", self.0)
    }
}

/// The lifecycle state of a keyring version (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Unwraps; wraps if it is the primary; may be promoted.
    Enabled,
    /// Unwraps, never wraps, may not be promoted.
    DecryptOnly,
    /// Neither wraps nor unwraps; reversible.
    Disabled,
    /// Neither wraps nor unwraps; destroyed once `not_before` has passed,
    /// unless cancelled.
    ScheduledForDestruction {
        /// Earliest time of destruction.
        not_before: UnixTime,
    },
    /// The key bytes are gone; the version's number and history remain.
    Destroyed {
        /// When it was destroyed.
        at: UnixTime,
    },
}

impl KeyState {
    /// The state without its data.
    pub fn kind(&self) -> KeyStateKind {
        match self {
            Self::Enabled => KeyStateKind::Enabled,
            Self::DecryptOnly => KeyStateKind::DecryptOnly,
            Self::Disabled => KeyStateKind::Disabled,
            Self::ScheduledForDestruction { .. } => KeyStateKind::ScheduledForDestruction,
            Self::Destroyed { .. } => KeyStateKind::Destroyed,
        }
    }
}

/// A [`KeyState`] without its times, for errors and matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyStateKind {
    /// [`KeyState::Enabled`].
    Enabled,
    /// [`KeyState::DecryptOnly`].
    DecryptOnly,
    /// [`KeyState::Disabled`].
    Disabled,
    /// [`KeyState::ScheduledForDestruction`].
    ScheduledForDestruction,
    /// [`KeyState::Destroyed`].
    Destroyed,
}

impl fmt::Display for KeyStateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enabled => "enabled",
            Self::DecryptOnly => "decrypt-only",
            Self::Disabled => "disabled",
            Self::ScheduledForDestruction => "scheduled for destruction",
            Self::Destroyed => "destroyed",
        })
    }
}

/// A lifecycle operation, named in [`KeyringError::IllegalTransition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LifecycleOp {
    /// [`Keyring::promote`].
    Promote,
    /// [`Keyring::enable`].
    Enable,
    /// [`Keyring::set_decrypt_only`].
    DecryptOnly,
    /// [`Keyring::disable`].
    Disable,
    /// [`Keyring::schedule_destruction`].
    ScheduleDestruction,
    /// [`Keyring::cancel_destruction`].
    CancelDestruction,
    /// [`Keyring::destroy`].
    Destroy,
    /// [`Keyring::compromised`].
    Compromise,
}

impl fmt::Display for LifecycleOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Promote => "promote",
            Self::Enable => "enable",
            Self::DecryptOnly => "make decrypt-only",
            Self::Disable => "disable",
            Self::ScheduleDestruction => "schedule destruction of",
            Self::CancelDestruction => "cancel destruction of",
            Self::Destroy => "destroy",
            Self::Compromise => "declare compromised",
        })
    }
}

/// A snapshot of one version's metadata (never its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The version number.
    pub version: KeyVersion,
    /// When it was generated.
    pub created: UnixTime,
    /// Its lifecycle state.
    pub state: KeyState,
    /// Whether it was declared compromised.
    pub compromised: bool,
    /// Whether it is the primary.
    pub primary: bool,
}

/// The keyring's rotation and destruction policy. Stored in the keyring file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    rotation_period_secs: Option<u64>,
    min_destruction_delay_secs: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RotationPolicy {
    /// No periodic rotation; destruction scheduled at least
    /// [`DEFAULT_MIN_DESTRUCTION_DELAY_SECS`] ahead.
    pub fn new() -> Self {
        Self {
            rotation_period_secs: None,
            min_destruction_delay_secs: DEFAULT_MIN_DESTRUCTION_DELAY_SECS,
        }
    }

    /// Rotation is due once the primary is `secs` old (0 disables periodic rotation).
    #[must_use]
    pub fn rotate_every(mut self, secs: u64) -> Self {
        self.rotation_period_secs = if secs == 0 { None } else { Some(secs) };
        self
    }

    /// The minimum time between scheduling a destruction and its earliest
    /// time (0 allows immediate destruction, for tests and emergencies).
    #[must_use]
    pub fn min_destruction_delay(mut self, secs: u64) -> Self {
        self.min_destruction_delay_secs = secs;
        self
    }

    /// The rotation period in seconds, if periodic rotation is on.
    pub fn rotation_period_secs(&self) -> Option<u64> {
        self.rotation_period_secs
    }

    /// The minimum destruction delay in seconds.
    pub fn min_destruction_delay_secs(&self) -> u64 {
        self.min_destruction_delay_secs
    }
}

#[derive(Clone, Debug)]
struct Entry {
    created: UnixTime,
    state: KeyState,
    compromised: bool,
    /// `None` once destroyed. Shared with migration-provider snapshots.
    key: Option<Arc<VersionKey>>,
}

/// Everything a keyring knows, cloned (cheaply: keys are shared) into
/// migration-provider snapshots.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    id: KeyId,
    entries: BTreeMap<u32, Entry>,
    primary: u32,
    minimum: u32,
    /// Versions below this were trimmed (1: none).
    trimmed_below: u32,
    /// The highest version number ever allocated.
    last_version: u32,
    policy: RotationPolicy,
}

impl Table {
    fn missing(&self, v: u32) -> KeyringError {
        if v >= 1 && v < self.trimmed_below {
            KeyringError::Trimmed(KeyVersion(v))
        } else {
            KeyringError::UnknownVersion(KeyVersion(v))
        }
    }

    fn info(&self, v: u32, e: &Entry) -> VersionInfo {
        VersionInfo {
            version: KeyVersion(v),
            created: e.created,
            state: e.state,
            compromised: e.compromised,
            primary: v == self.primary,
        }
    }
}

/// A versioned keyring of AES-256-GCM key-encryption keys; itself a
/// [`KeyEncryptionProvider`](crate::KeyEncryptionProvider) (see the
/// [module docs](self)).
///
/// As a provider it wraps with the primary version and unwraps with the
/// version a wrapped key names; refusals carry a [`ProviderErrorKind`](crate::ProviderErrorKind)
/// (`KeyNotFound`, `KeyDisabled`, `KeyDestroyed`, `KeyCompromised`,
/// `Authentication`) and a [`KeyringError`] source saying exactly why.
///
/// Lifecycle operations take `&mut self`; share a keyring between threads
/// behind a `RwLock` (seal and open through a read guard). Key bytes are
/// zeroized when their version is destroyed or trimmed (once no
/// [`MigrationProvider`] snapshot still holds them) and when the keyring is
/// dropped; `Debug` prints metadata only.
pub struct Keyring {
    table: Table,
    /// The generation this copy was loaded or last saved at (0: never saved).
    generation: u64,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("id", &self.table.id)
            .field("primary", &KeyVersion(self.table.primary))
            .field("minimum_decryption_version", &KeyVersion(self.table.minimum))
            .field("versions", &self.table.entries.len())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

type Res<T> = Result<T, KeyringError>;

impl Keyring {
    /// A new keyring named `id` with one version (1, primary), generated from
    /// the OS CSPRNG at `now`, and the default [`RotationPolicy`].
    pub fn generate(id: KeyId, now: UnixTime) -> Result<Self, Error> {
        Self::generate_with_audit(id, now, Arc::new(NoAudit))
    }

    /// [`generate`](Self::generate), sending every event to `sink` from the
    /// start (the first version's generation included).
    pub fn generate_with_audit(id: KeyId, now: UnixTime, sink: Arc<dyn AuditSink>) -> Result<Self, Error> {
        let mut ring = Self {
            table: Table {
                id,
                entries: BTreeMap::new(),
                primary: 0,
                minimum: 1,
                trimmed_below: 1,
                last_version: 0,
                policy: RotationPolicy::new(),
            },
            generation: 0,
            audit: sink,
        };
        let v = ring.add_inner(now)?;
        ring.table.primary = v;
        Ok(ring)
    }

    /// Sets the policy (builder form).
    #[must_use]
    pub fn with_policy(mut self, policy: RotationPolicy) -> Self {
        self.table.policy = policy;
        self
    }

    /// Sets the policy.
    pub fn set_policy(&mut self, policy: RotationPolicy) {
        self.table.policy = policy;
    }

    /// The policy.
    pub fn policy(&self) -> RotationPolicy {
        self.table.policy
    }

    /// Sends every later event to `sink` (the default is [`NoAudit`]).
    pub fn set_audit_sink(&mut self, sink: Arc<dyn AuditSink>) {
        self.audit = sink;
    }

    /// The keyring's id: the key id of every wrapped key it makes.
    pub fn id(&self) -> &KeyId {
        &self.table.id
    }

    /// The primary version, which wraps every new data key.
    pub fn primary(&self) -> KeyVersion {
        KeyVersion(self.table.primary)
    }

    /// The minimum decryption version: lower versions never unwrap.
    pub fn minimum_decryption_version(&self) -> KeyVersion {
        KeyVersion(self.table.minimum)
    }

    /// The generation this copy was loaded or last saved at (0: never saved).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Raises this copy's generation to `at_least` (never lowers it), so
    /// that its next save is numbered above every generation the file has
    /// had: for restoring an older keyring (a backup) **on purpose**, which
    /// a save would otherwise refuse as a rollback. Pass the live file's
    /// generation (or its floor, `Keyring::generation_floor`); then the save
    /// writes `at_least + 1`, and no generation number ever names two
    /// different keyrings (`KEYRING.md` §3.4). A restore brings back every
    /// version the backup holds, destroyed ones included.
    pub fn advance_generation(&mut self, at_least: u64) {
        self.generation = self.generation.max(at_least);
    }

    /// One version's metadata. Fails with [`KeyringError::UnknownVersion`] or
    /// [`KeyringError::Trimmed`].
    pub fn version(&self, version: KeyVersion) -> Result<VersionInfo, Error> {
        let e = self
            .table
            .entries
            .get(&version.0)
            .ok_or_else(|| self.table.missing(version.0))?;
        Ok(self.table.info(version.0, e))
    }

    /// Every version's metadata, oldest first (tombstones included, trimmed
    /// versions not).
    pub fn versions(&self) -> impl Iterator<Item = VersionInfo> + '_ {
        self.table.entries.iter().map(|(v, e)| self.table.info(*v, e))
    }

    fn emit(&self, action: AuditAction, version: Option<u32>, now: Option<UnixTime>, error: Option<&KeyringError>) {
        let mut ev = KeyringEvent::new(&self.table.id, action, version.map(KeyVersion));
        ev.time = now;
        ev.error = error;
        // Lifecycle events cannot be undone: recorded best-effort.
        let _ = self.audit.record(&AuditEvent::Keyring(ev));
    }

    /// Reports `r` to the audit sink and converts its error.
    fn done<T>(&self, action: AuditAction, version: u32, now: UnixTime, r: Res<T>) -> Result<T, Error> {
        match r {
            Ok(t) => {
                self.emit(action, Some(version), Some(now), None);
                Ok(t)
            }
            Err(e) => {
                self.emit(action, Some(version), Some(now), Some(&e));
                Err(Error::Keyring(e))
            }
        }
    }

    fn entry_mut(&mut self, v: u32) -> Res<&mut Entry> {
        let missing = self.table.missing(v);
        match self.table.entries.get_mut(&v) {
            None => Err(missing),
            Some(e) if matches!(e.state, KeyState::Destroyed { .. }) => Err(KeyringError::Destroyed(KeyVersion(v))),
            Some(e) => Ok(e),
        }
    }

    fn add_inner(&mut self, now: UnixTime) -> Result<u32, Error> {
        let too_many = KeyringError::TooManyVersions { max: MAX_VERSIONS };
        let next = self.table.last_version.checked_add(1);
        let v = match next {
            Some(v) if self.table.entries.len() < MAX_VERSIONS => v,
            _ => {
                self.emit(AuditAction::Add, None, Some(now), Some(&too_many));
                return Err(Error::Keyring(too_many));
            }
        };
        let key = VersionKey::generate()?;
        self.emit(AuditAction::Generate, Some(v), Some(now), None);
        self.table.entries.insert(
            v,
            Entry {
                created: now,
                state: KeyState::Enabled,
                compromised: false,
                key: Some(Arc::new(key)),
            },
        );
        self.table.last_version = v;
        self.emit(AuditAction::Add, Some(v), Some(now), None);
        Ok(v)
    }

    /// Adds a new version, staged: enabled (it unwraps) but not primary.
    /// Distribute the keyring to every reader, then [`promote`](Self::promote) it.
    pub fn add_version(&mut self, now: UnixTime) -> Result<KeyVersion, Error> {
        self.add_inner(now).map(KeyVersion)
    }

    /// Makes `version` the primary. It must be enabled, not compromised, and
    /// not below the minimum decryption version. The previous primary stays
    /// enabled (so it can be promoted back).
    pub fn promote(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        let previous = KeyVersion(self.table.primary);
        let minimum = self.table.minimum;
        let v = version.0;
        let r = (|| {
            let e = self.entry_mut(v)?;
            if e.compromised {
                return Err(KeyringError::Compromised(version));
            }
            if e.state != KeyState::Enabled {
                return Err(KeyringError::IllegalTransition {
                    version,
                    state: e.state.kind(),
                    op: LifecycleOp::Promote,
                });
            }
            if v < minimum {
                return Err(KeyringError::BelowMinimum {
                    version,
                    minimum: KeyVersion(minimum),
                });
            }
            self.table.primary = v;
            Ok(())
        })();
        self.done(AuditAction::Promote { previous }, v, now, r)
    }

    /// Adds a new version and promotes it at once (for single-process users;
    /// several readers should [`add_version`](Self::add_version), distribute,
    /// then [`promote`](Self::promote)). Returns the new primary.
    pub fn rotate(&mut self, now: UnixTime) -> Result<KeyVersion, Error> {
        let v = self.add_version(now)?;
        self.promote(v, now)?;
        Ok(v)
    }

    /// Enables a decrypt-only or disabled version. Refused for compromised,
    /// scheduled and destroyed versions.
    pub fn enable(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        self.set_reversible(
            version,
            now,
            KeyState::Enabled,
            LifecycleOp::Enable,
            AuditAction::Enable,
        )
    }

    /// Makes an enabled or disabled version decrypt-only (it unwraps, never
    /// wraps, cannot be promoted). Refused for the primary.
    pub fn set_decrypt_only(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        self.set_reversible(
            version,
            now,
            KeyState::DecryptOnly,
            LifecycleOp::DecryptOnly,
            AuditAction::DecryptOnly,
        )
    }

    /// Disables a version: it neither wraps nor unwraps until enabled again.
    /// Refused for the primary.
    pub fn disable(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        self.set_reversible(
            version,
            now,
            KeyState::Disabled,
            LifecycleOp::Disable,
            AuditAction::Disable,
        )
    }

    /// The reversible transitions among enabled, decrypt-only and disabled.
    /// Enabling is refused for a compromised version; the other two for the
    /// primary; all three for scheduled and destroyed versions.
    fn set_reversible(
        &mut self,
        version: KeyVersion,
        now: UnixTime,
        to: KeyState,
        op: LifecycleOp,
        action: AuditAction,
    ) -> Result<(), Error> {
        let primary = self.table.primary;
        let r = (|| {
            let e = self.entry_mut(version.0)?;
            if matches!(to, KeyState::Enabled) {
                if e.compromised {
                    return Err(KeyringError::Compromised(version));
                }
            } else if version.0 == primary {
                return Err(KeyringError::IsPrimary(version));
            }
            match e.state {
                KeyState::Enabled | KeyState::DecryptOnly | KeyState::Disabled => {
                    e.state = to;
                    Ok(())
                }
                s => Err(KeyringError::IllegalTransition {
                    version,
                    state: s.kind(),
                    op,
                }),
            }
        })();
        self.done(action, version.0, now, r)
    }

    /// Schedules a version for destruction at `not_before` or later, which must
    /// be at least the policy's minimum delay after `now`. The version stops
    /// wrapping and unwrapping at once; [`cancel_destruction`](Self::cancel_destruction)
    /// undoes it until [`destroy`](Self::destroy). Refused for the primary.
    pub fn schedule_destruction(
        &mut self,
        version: KeyVersion,
        not_before: UnixTime,
        now: UnixTime,
    ) -> Result<(), Error> {
        let primary = self.table.primary;
        let min_delay = self.table.policy.min_destruction_delay_secs;
        let r = (|| {
            let e = self.entry_mut(version.0)?;
            if version.0 == primary {
                return Err(KeyringError::IsPrimary(version));
            }
            let earliest = now.plus_secs(min_delay);
            if not_before < earliest {
                return Err(KeyringError::DestructionTooSoon {
                    min_delay_secs: min_delay,
                    earliest,
                });
            }
            match e.state {
                KeyState::Enabled | KeyState::DecryptOnly | KeyState::Disabled => {
                    e.state = KeyState::ScheduledForDestruction { not_before };
                    Ok(())
                }
                s => Err(KeyringError::IllegalTransition {
                    version,
                    state: s.kind(),
                    op: LifecycleOp::ScheduleDestruction,
                }),
            }
        })();
        self.done(AuditAction::ScheduleDestruction { not_before }, version.0, now, r)
    }

    /// Cancels a scheduled destruction; the version becomes disabled (enable
    /// it to use it again).
    pub fn cancel_destruction(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        let r = (|| {
            let e = self.entry_mut(version.0)?;
            match e.state {
                KeyState::ScheduledForDestruction { .. } => {
                    e.state = KeyState::Disabled;
                    Ok(())
                }
                s => Err(KeyringError::IllegalTransition {
                    version,
                    state: s.kind(),
                    op: LifecycleOp::CancelDestruction,
                }),
            }
        })();
        self.done(AuditAction::CancelDestruction, version.0, now, r)
    }

    /// Destroys a version scheduled for destruction whose time has come: its
    /// key is dropped and zeroized (once no [`MigrationProvider`] snapshot
    /// holds it) and is left out of every later save; a tombstone remains so
    /// unwraps fail with "destroyed". Irreversible, except that copies of the
    /// keyring saved earlier (backups, snapshots) still hold the key: expire
    /// them too (`KEYRING.md` §3.3).
    pub fn destroy(&mut self, version: KeyVersion, now: UnixTime) -> Result<(), Error> {
        let r = (|| {
            let e = self.entry_mut(version.0)?;
            match e.state {
                KeyState::ScheduledForDestruction { not_before } if now < not_before => {
                    Err(KeyringError::DestructionNotDue { version, not_before })
                }
                KeyState::ScheduledForDestruction { .. } => {
                    e.state = KeyState::Destroyed { at: now };
                    e.key = None;
                    Ok(())
                }
                s => Err(KeyringError::IllegalTransition {
                    version,
                    state: s.kind(),
                    op: LifecycleOp::Destroy,
                }),
            }
        })();
        self.done(AuditAction::Destroy, version.0, now, r)
    }

    /// Declares `version` compromised. If it is the primary, a new version is
    /// generated and promoted first (returned). The version then never wraps
    /// again, cannot be enabled or promoted, becomes decrypt-only if it was
    /// enabled, and unwraps only through [`migration_provider`](Self::migration_provider).
    /// Migrate the envelopes that [`needs_migration`](Self::needs_migration)
    /// selects (re-encrypt rather than rewrap, if the data keys may have leaked
    /// too), then schedule it for destruction. Declaring an already compromised
    /// version again changes nothing.
    pub fn compromised(&mut self, version: KeyVersion, now: UnixTime) -> Result<Option<KeyVersion>, Error> {
        let v = version.0;
        let check = self.entry_mut(v).map(|e| e.compromised);
        let already = match check {
            Ok(c) => c,
            Err(e) => return self.done(AuditAction::Compromise, v, now, Err(e)),
        };
        if already {
            return self.done(AuditAction::Compromise, v, now, Ok(None));
        }
        let mut new_primary = None;
        if v == self.table.primary {
            let n = self.add_inner(now)?;
            self.promote(KeyVersion(n), now)?;
            new_primary = Some(KeyVersion(n));
        }
        let r = self.entry_mut(v).map(|e| {
            e.compromised = true;
            if e.state == KeyState::Enabled {
                e.state = KeyState::DecryptOnly;
            }
            new_primary
        });
        self.done(AuditAction::Compromise, v, now, r)
    }

    /// Sets the minimum decryption version: versions below it no longer
    /// unwrap (with [`KeyringError::BelowMinimum`]). It may not exceed the
    /// primary, nor go below versions already trimmed.
    pub fn set_minimum_decryption_version(&mut self, minimum: KeyVersion, now: UnixTime) -> Result<(), Error> {
        let t = &self.table;
        let r = if minimum.0 < t.trimmed_below {
            Err(KeyringError::MinimumBelowTrimmed {
                minimum,
                trimmed_below: KeyVersion(t.trimmed_below),
            })
        } else if minimum.0 > t.primary {
            Err(KeyringError::MinimumAbovePrimary {
                minimum,
                primary: KeyVersion(t.primary),
            })
        } else {
            self.table.minimum = minimum.0;
            Ok(())
        };
        self.done(AuditAction::SetMinimumDecryptionVersion, minimum.0, now, r)
    }

    /// Removes every version below the minimum decryption version, keys and
    /// tombstones alike; their numbers are never reused and unwraps naming
    /// them fail with [`KeyringError::Trimmed`]. Returns how many were removed.
    pub fn trim(&mut self, now: UnixTime) -> Result<usize, Error> {
        let minimum = self.table.minimum;
        let keep = self.table.entries.split_off(&minimum);
        let removed = core::mem::replace(&mut self.table.entries, keep);
        self.table.trimmed_below = minimum;
        let n = removed.len();
        drop(removed);
        self.done(AuditAction::Trim { removed: n }, minimum, now, Ok(n))
    }

    /// Whether the policy's rotation period has passed since the primary was
    /// created (always `false` without a period).
    pub fn rotation_due(&self, now: UnixTime) -> bool {
        let Some(period) = self.table.policy.rotation_period_secs else {
            return false;
        };
        self.table
            .entries
            .get(&self.table.primary)
            .is_some_and(|e| now >= e.created.plus_secs(period))
    }

    /// Rotates if [`rotation_due`](Self::rotation_due); returns the new
    /// primary if it did.
    pub fn rotate_if_due(&mut self, now: UnixTime) -> Result<Option<KeyVersion>, Error> {
        if self.rotation_due(now) {
            self.rotate(now).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether an envelope has a data key wrapped by this keyring under a
    /// version other than the primary: the envelopes to rewrap (or
    /// re-encrypt) before an old version is disabled or destroyed. Takes
    /// [`inspect`](crate::inspect)'s unauthenticated view; it selects work,
    /// it decides nothing about trust.
    pub fn needs_migration(&self, info: &EnvelopeInfo) -> bool {
        info.wrapped_keys().iter().any(|w| {
            w.provider_id() == KEYRING_PROVIDER_ID
                && w.key_id() == &self.table.id
                && w.key_version().0 != self.table.primary
        })
    }

    /// Whether an envelope has a data key wrapped by this keyring under a
    /// compromised version (after [`compromised`](Self::compromised), the
    /// envelopes to migrate first).
    pub fn uses_compromised_version(&self, info: &EnvelopeInfo) -> bool {
        info.wrapped_keys().iter().any(|w| {
            w.provider_id() == KEYRING_PROVIDER_ID
                && w.key_id() == &self.table.id
                && self
                    .table
                    .entries
                    .get(&w.key_version().0)
                    .is_some_and(|e| e.compromised)
        })
    }

    /// A provider for migrating data away from old versions: it wraps with the
    /// primary like the keyring, and unwraps like the keyring but also with
    /// compromised versions (still not with disabled, scheduled, destroyed,
    /// trimmed or below-minimum ones). Pass it to rewrap / re-encrypt as the
    /// unwrapping side; never use it for ordinary opens.
    ///
    /// It is a snapshot of the keyring as it is now (lifecycle changes made
    /// later do not reach it) and keeps the keys it covers alive: drop it when
    /// the migration is done, before relying on `destroy` having zeroized them.
    pub fn migration_provider(&self) -> MigrationProvider {
        MigrationProvider::new(self.table.clone(), self.audit.clone())
    }
}
