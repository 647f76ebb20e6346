//! The keyring's family of audit events: every lifecycle event, wrap and
//! unwrap of a [`Keyring`](crate::keyring::Keyring), failures included.

use core::fmt;

use super::{ContextValues, ContextView};
use crate::context::Binding;
use crate::keyring::{KeyringError, UnixTime};
use crate::keys::{KeyId, KeyVersion};

/// What happened to a keyring, in a [`KeyringEvent`] (the keyring's audit
/// actions; `keyring::AuditAction` before the audit model was unified).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringAction {
    /// Key material for a new version was drawn from the OS CSPRNG.
    Generate,
    /// A version was added to the keyring (staged: enabled but not primary).
    Add,
    /// A version became the primary.
    Promote {
        /// The previous primary.
        previous: KeyVersion,
    },
    /// A version was enabled.
    Enable,
    /// A version was made decrypt-only.
    DecryptOnly,
    /// A version was disabled.
    Disable,
    /// A version was scheduled for destruction.
    ScheduleDestruction {
        /// When it may be destroyed.
        not_before: UnixTime,
    },
    /// A scheduled destruction was cancelled (the version is disabled).
    CancelDestruction,
    /// A version's key bytes were destroyed (zeroized; a tombstone remains).
    Destroy,
    /// A version was declared compromised.
    Compromise,
    /// The minimum decryption version was set (the event's version).
    SetMinimumDecryptionVersion,
    /// Versions below the event's version were trimmed.
    Trim {
        /// How many versions were removed.
        removed: usize,
    },
    /// A data key was wrapped (the event's version is the primary).
    Wrap,
    /// A data key was unwrapped for an ordinary open.
    Unwrap,
    /// A data key was unwrapped through the [`MigrationProvider`](crate::keyring::MigrationProvider)
    /// (rewrap / re-encrypt), possibly under a compromised version.
    MigrationUnwrap,
    /// A wrapped key was re-wrapped under the primary (the event's version)
    /// by the provider's `rewrap`, without the data key leaving the keyring.
    Rewrap {
        /// The version it was wrapped under.
        from: KeyVersion,
    },
    /// The keyring was saved.
    Save {
        /// The generation written.
        generation: u64,
    },
    /// The keyring was loaded.
    Load {
        /// The generation read.
        generation: u64,
    },
}

impl KeyringAction {
    /// A stable short name (`generate`, `promote`, `unwrap`, ...), as
    /// written in audit records after `keyring.`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Generate => "generate",
            Self::Add => "add",
            Self::Promote { .. } => "promote",
            Self::Enable => "enable",
            Self::DecryptOnly => "decrypt_only",
            Self::Disable => "disable",
            Self::ScheduleDestruction { .. } => "schedule_destruction",
            Self::CancelDestruction => "cancel_destruction",
            Self::Destroy => "destroy",
            Self::Compromise => "compromise",
            Self::SetMinimumDecryptionVersion => "set_minimum_decryption_version",
            Self::Trim { .. } => "trim",
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::MigrationUnwrap => "migration_unwrap",
            Self::Rewrap { .. } => "rewrap",
            Self::Save { .. } => "save",
            Self::Load { .. } => "load",
        }
    }
}

impl fmt::Display for KeyringAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate => f.write_str("generate"),
            Self::Add => f.write_str("add"),
            Self::Promote { previous } => write!(f, "promote (previous primary {previous})"),
            Self::Enable => f.write_str("enable"),
            Self::DecryptOnly => f.write_str("decrypt-only"),
            Self::Disable => f.write_str("disable"),
            Self::ScheduleDestruction { not_before } => write!(f, "schedule destruction (not before {not_before})"),
            Self::CancelDestruction => f.write_str("cancel destruction"),
            Self::Destroy => f.write_str("destroy"),
            Self::Compromise => f.write_str("compromise"),
            Self::SetMinimumDecryptionVersion => f.write_str("set minimum decryption version"),
            Self::Trim { removed } => write!(f, "trim ({removed} removed)"),
            Self::Wrap => f.write_str("wrap"),
            Self::Unwrap => f.write_str("unwrap"),
            Self::MigrationUnwrap => f.write_str("migration unwrap"),
            Self::Rewrap { from } => write!(f, "rewrap (from {from})"),
            Self::Save { generation } => write!(f, "save (generation {generation})"),
            Self::Load { generation } => write!(f, "load (generation {generation})"),
        }
    }
}

/// One keyring event: which keyring, what, which version, when, under which
/// envelope context, and the error if it failed. Never holds key bytes.
///
/// Its context shows the keys and the binding's digest, never a value (a
/// keyring's audit has no value policy; put an [`Audit`](super::Audit)
/// layer in front of the keyring to record allowed values).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct KeyringEvent<'a> {
    /// The keyring's id.
    pub keyring: &'a KeyId,
    /// What happened (or was attempted, when `error` is set).
    pub action: KeyringAction,
    /// The version concerned, if any.
    pub version: Option<KeyVersion>,
    /// The caller-supplied time of a lifecycle operation (wraps and unwraps have none).
    pub time: Option<UnixTime>,
    /// For wraps and unwraps: the envelope's context (keys and digest).
    pub context: Option<ContextView<'a>>,
    /// Set when the operation failed.
    pub error: Option<&'a KeyringError>,
}

/// Keyring events record context keys only.
static KEYS_ONLY: ContextValues = ContextValues::none();

impl<'a> KeyringEvent<'a> {
    pub(crate) fn new(keyring: &'a KeyId, action: KeyringAction, version: Option<KeyVersion>) -> Self {
        Self {
            keyring,
            action,
            version,
            time: None,
            context: None,
            error: None,
        }
    }

    pub(crate) fn with_binding(mut self, binding: Binding<'a>) -> Self {
        self.context = Some(ContextView::new(binding, &KEYS_ONLY, None));
        self
    }

    /// Whether the operation succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for KeyringEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keyring {}: {}", self.keyring, self.action)?;
        if let Some(v) = self.version {
            write!(f, " {v}")?;
        }
        if let Some(t) = self.time {
            write!(f, " at {t}")?;
        }
        if let Some(c) = &self.context {
            write!(f, " context {c:?}")?;
        }
        match self.error {
            Some(e) => write!(f, " FAILED: {e}"),
            None => f.write_str(" ok"),
        }
    }
}
