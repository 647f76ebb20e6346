//! The audit hook: every lifecycle event, wrap and unwrap of a keyring.

use core::fmt;

use super::{KeyringError, UnixTime};
use crate::context::Binding;
use crate::keys::{KeyId, KeyVersion};

/// Receives a keyring's audit events. Implement it to forward events to a log,
/// a SIEM or a metrics system; install it with
/// [`Keyring::set_audit_sink`](super::Keyring::set_audit_sink). The default is
/// [`NoAudit`].
///
/// `record` is called synchronously, from whichever thread performs the
/// operation (wraps and unwraps included), so keep it fast and never block on
/// the network inside it. Events never contain key bytes.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use lockbox::keyring::{AuditEvent, AuditSink, Keyring, UnixTime};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
/// impl AuditSink for Log {
///     fn record(&self, event: &AuditEvent<'_>) {
///         self.0.lock().unwrap().push(format!("{event}"));
///     }
/// }
///
/// # fn main() -> Result<(), lockbox::Error> {
/// let log = Arc::new(Log::default());
/// let mut ring = Keyring::generate(lockbox::KeyId::new("payments")?, UnixTime(1_700_000_000))?;
/// ring.set_audit_sink(log.clone());
/// ring.rotate(UnixTime(1_700_000_100))?;
/// assert!(log.0.lock().unwrap().iter().any(|e| e.contains("promote")));
/// # Ok(()) }
/// ```
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent<'_>);
}

/// The default [`AuditSink`]: drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: &AuditEvent<'_>) {}
}

/// What happened, in an [`AuditEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditAction {
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
    /// A data key was unwrapped through the [`MigrationProvider`](super::MigrationProvider)
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

impl fmt::Display for AuditAction {
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

/// One audit event: which keyring, what, which version, when, under which
/// envelope context, and the error if it failed. Never holds key bytes.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AuditEvent<'a> {
    /// The keyring's id.
    pub keyring: &'a KeyId,
    /// What happened (or was attempted, when `error` is set).
    pub action: AuditAction,
    /// The version concerned, if any.
    pub version: Option<KeyVersion>,
    /// The caller-supplied time of a lifecycle operation (wraps and unwraps have none).
    pub time: Option<UnixTime>,
    /// For wraps and unwraps: the envelope's binding (suite and context).
    pub binding: Option<Binding<'a>>,
    /// Set when the operation failed.
    pub error: Option<&'a KeyringError>,
}

impl<'a> AuditEvent<'a> {
    pub(crate) fn new(keyring: &'a KeyId, action: AuditAction, version: Option<KeyVersion>) -> Self {
        Self {
            keyring,
            action,
            version,
            time: None,
            binding: None,
            error: None,
        }
    }

    /// Whether the operation succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for AuditEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keyring {}: {}", self.keyring, self.action)?;
        if let Some(v) = self.version {
            write!(f, " {v}")?;
        }
        if let Some(t) = self.time {
            write!(f, " at {t}")?;
        }
        if let Some(b) = self.binding {
            write!(f, " context {b:?}")?;
        }
        match self.error {
            Some(e) => write!(f, " FAILED: {e}"),
            None => f.write_str(" ok"),
        }
    }
}
