//! Audit: one event model and one [`AuditSink`] trait for the whole crate.
//!
//! Three families of [`AuditEvent`]s reach a sink:
//!
//! - [`ProviderEvent`]: every wrap, unwrap, data-key generation and rewrap
//!   of a provider behind an [`Audit`] layer ([`Layered`](crate::access::Layered)
//!   or [`AsyncLayered`](crate::access::AsyncLayered)), success and failure,
//!   grant refusals included;
//! - [`EnvelopeEvent`]: every seal and open of a [`Sealer`](crate::Sealer) /
//!   [`Opener`](crate::Opener) (or their async twins) given
//!   [`audit`](crate::Sealer::audit): message id, sizes, keys, outcome;
//! - [`KeyringEvent`]: a [`Keyring`](crate::keyring::Keyring)'s lifecycle
//!   events, wraps and unwraps.
//!
//! Events carry ids, versions, times, the principal, a digest of the
//! binding and the context keys, and context **values only where the
//! [`ContextValues`] policy allows** (none by default). Never key bytes,
//! never plaintext.
//!
//! Shipped sinks: [`MemorySink`] (tests), [`JsonLinesSink`] (a file of
//! JSON lines, hash-chained and optionally HMAC-ed, with [`LogVerifier`]
//! catching deleted, modified, inserted and reordered records) and, with
//! the `tracing` feature, [`TracingSink`].
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use std::sync::Arc;
//! use lockbox::access::Layered;
//! use lockbox::audit::{Audit, ContextValues, MemorySink};
//! use lockbox::{EncryptionContext, LocalKek};
//!
//! let log = Arc::new(MemorySink::new());
//! let audit = Audit::builder(log.clone())
//!     .principal("billing-service")
//!     .context_values(ContextValues::only(["tenant"]))
//!     .build();
//! let kek = Layered::new(LocalKek::generate()?, audit);
//! let ctx = EncryptionContext::new().with("tenant", "acme")?.with_required("user", "u-17")?;
//! let envelope = lockbox::seal(&kek, b"invoice", &ctx)?;
//! lockbox::open(&kek, &envelope, &ctx)?;
//!
//! let records = log.records();
//! assert_eq!(records.len(), 2);
//! assert_eq!((records[0].operation.as_str(), records[1].operation.as_str()), ("wrap", "unwrap"));
//! // tenant's value is allowed; user's is not.
//! assert_eq!(records[1].context, [("tenant".into(), Some("acme".into())), ("user".into(), None)]);
//! # Ok(()) }
//! ```
//!
//! # Migrating from the keyring's audit hook
//!
//! `lockbox::keyring::AuditSink` is this module's [`AuditSink`] (re-exported
//! there); its `record` now takes the crate-wide [`AuditEvent`] and returns
//! a `Result`. The keyring's event is the [`AuditEvent::Keyring`] family
//! ([`KeyringEvent`], with `keyring::AuditAction` renamed
//! [`KeyringAction`]), and its context shows keys and a digest, not
//! values.

mod envelope;
mod keyring;
mod layer;
#[cfg(feature = "std")]
mod log;
#[cfg(feature = "std")]
mod memory;
mod record;
#[cfg(feature = "tracing")]
mod tracing;

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use core::fmt;
use core::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretBox;
use sha2::{Digest, Sha256};

use crate::access::{AccessDenied, Operation};
use crate::context::{Binding, ContextEntry, Storage};
use crate::error::{BoxError, Error, ProviderError, ProviderErrorKind};
use crate::format::MESSAGE_ID_LEN;
use crate::keys::{KeyVersion, WrappedKeyRef};
use crate::suite::Suite;

pub(crate) use envelope::EnvelopeAudit;
pub use keyring::{KeyringAction, KeyringEvent};
pub use layer::{Audit, AuditBuilder};
#[cfg(feature = "std")]
pub use log::{ChainHead, JsonLinesBuilder, JsonLinesSink, LogError, LogReport, LogVerifier, Tamper};
#[cfg(feature = "std")]
pub use memory::MemorySink;
pub use record::AuditRecord;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use tracing::TracingSink;

/// Receives audit events: implement it to forward them to a log, a SIEM or
/// a metrics system, or use a shipped sink.
///
/// `record` is called synchronously, from whichever thread (or task) makes
/// the call being audited, so it must be fast and never wait on the network:
/// queue the event ([`JsonLinesSink`] writes from a thread of its own).
/// Events borrow from the call; [`AuditEvent::to_record`] makes an owned
/// copy.
///
/// An error means the event was **not** recorded. An [`Audit`] layer then
/// refuses to release the call's result (fail closed) unless built with
/// [`fail_open`](AuditBuilder::fail_open); envelope events and keyring
/// events cannot be undone and are reported best-effort.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use lockbox::audit::{AuditError, AuditEvent, AuditSink};
/// use lockbox::keyring::{Keyring, UnixTime};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
/// impl AuditSink for Log {
///     fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
///         self.0.lock().unwrap().push(format!("{event}"));
///         Ok(())
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
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError>;
}

/// The sink that drops every event (a keyring's default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: &AuditEvent<'_>) -> Result<(), AuditError> {
        Ok(())
    }
}

/// A sink could not record an event (an I/O error, a writer that stopped).
#[derive(Debug)]
pub struct AuditError {
    what: String,
    source: Option<BoxError>,
}

impl AuditError {
    /// An error saying `what` went wrong (no secrets, no context values).
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit record not written: {}", self.what)
    }
}

impl core::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| -> &(dyn core::error::Error + 'static) { e })
    }
}

/// One audit event, of one of three families. Borrowed from the call it
/// describes; [`to_record`](Self::to_record) makes an owned
/// [`AuditRecord`] (what every shipped sink writes).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum AuditEvent<'a> {
    /// A provider call through an [`Audit`] layer.
    Provider(ProviderEvent<'a>),
    /// A seal or open of a sealer or opener with an audit.
    Envelope(EnvelopeEvent<'a>),
    /// A keyring's lifecycle event, wrap or unwrap.
    Keyring(KeyringEvent<'a>),
}

impl AuditEvent<'_> {
    /// Whether the audited operation succeeded.
    pub fn succeeded(&self) -> bool {
        match self {
            Self::Provider(e) => matches!(e.outcome, EventOutcome::Success),
            Self::Envelope(e) => matches!(e.outcome, EventOutcome::Success),
            Self::Keyring(e) => e.succeeded(),
        }
    }

    /// The family's name: `provider`, `envelope` or `keyring`.
    pub fn family(&self) -> &'static str {
        match self {
            Self::Provider(_) => "provider",
            Self::Envelope(_) => "envelope",
            Self::Keyring(_) => "keyring",
        }
    }

    /// An owned copy with the same content.
    pub fn to_record(&self) -> AuditRecord {
        AuditRecord::from_event(self)
    }
}

impl fmt::Display for AuditEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keyring(k) => k.fmt(f),
            _ => f.write_str(&self.to_record().to_json()),
        }
    }
}

/// How an audited operation ended.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum EventOutcome<'a> {
    /// It succeeded.
    Success,
    /// A [`Grant`](crate::access::Grant) refused it.
    Denied(&'a AccessDenied),
    /// A provider failed (or refused it: a key service's own permission
    /// check, a disabled key).
    ProviderFailed(&'a ProviderError),
    /// An envelope operation failed.
    Failed(&'a Error),
}

impl<'a> EventOutcome<'a> {
    fn of_provider(e: &'a ProviderError) -> Self {
        AccessDenied::of(e).map_or(Self::ProviderFailed(e), Self::Denied)
    }

    fn of_error(e: &'a Error) -> Self {
        AccessDenied::in_error(e).map_or(Self::Failed(e), Self::Denied)
    }

    /// `success`, `denied` or `failure`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied(_) => "denied",
            Self::ProviderFailed(_) | Self::Failed(_) => "failure",
        }
    }
}

/// A stable code for a provider error kind, as written in audit records.
pub(crate) fn provider_error_code(kind: ProviderErrorKind) -> &'static str {
    match kind {
        ProviderErrorKind::Authentication => "authentication",
        ProviderErrorKind::KeyNotFound => "key_not_found",
        ProviderErrorKind::KeyDisabled => "key_disabled",
        ProviderErrorKind::KeyDestroyed => "key_destroyed",
        ProviderErrorKind::KeyCompromised => "key_compromised",
        ProviderErrorKind::Unsupported => "unsupported",
        ProviderErrorKind::Unavailable => "unavailable",
        ProviderErrorKind::PermissionDenied => "permission_denied",
        ProviderErrorKind::LimitExceeded => "limit_exceeded",
        ProviderErrorKind::Throttled => "throttled",
        ProviderErrorKind::Other => "other",
    }
}

/// A stable code for an envelope error, as written in audit records.
pub(crate) fn error_code(e: &Error) -> &'static str {
    match e {
        Error::Authentication => "authentication",
        Error::UnsupportedVersion(_) => "unsupported_version",
        Error::UnsupportedSuite(_) => "unsupported_suite",
        Error::Malformed { .. } => "malformed",
        Error::LimitExceeded { .. } => "limit_exceeded",
        Error::MissingContext { .. } => "missing_context",
        Error::ContextMismatch { .. } => "context_mismatch",
        Error::NoProviderCouldUnwrap { .. } => "no_provider_could_unwrap",
        Error::Provider(p) => provider_error_code(p.kind()),
        Error::Random => "random",
        Error::InvalidArgument { .. } => "invalid_argument",
        Error::BufferTooSmall { .. } => "buffer_too_small",
        Error::KeyLoad { .. } => "key_load",
        Error::UnsafeFile { .. } => "unsafe_file",
        Error::QuantumDowngrade { .. } => "quantum_downgrade",
        Error::KeyString(_) => "key_string",
        Error::QuorumNotMet { .. } => "quorum_not_met",
        Error::Keyring(_) => "keyring",
        #[cfg(feature = "secrets")]
        Error::Secrets(_) => "secrets",
        #[cfg(feature = "fernet")]
        Error::Fernet(_) => "fernet",
    }
}

/// One provider call through an [`Audit`] layer.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ProviderEvent<'a> {
    /// When it ended (from the audit's clock), since the Unix epoch.
    pub time: Option<Duration>,
    /// What was asked.
    pub operation: Operation,
    /// The provider's id.
    pub provider_id: &'a str,
    /// The key: the wrapped key's for unwrap and rewrap, the new wrap's for
    /// wrap and generation (unknown when a wrap failed).
    pub key_id: Option<&'a str>,
    /// That key's version.
    pub key_version: Option<KeyVersion>,
    /// For a rewrap: the version it was rewrapped to.
    pub new_key_version: Option<KeyVersion>,
    /// The call's context: keys, digest, allowed values.
    pub context: ContextView<'a>,
    /// The principal the audit was built for, if any.
    pub principal: Option<&'a str>,
    /// How it ended.
    pub outcome: EventOutcome<'a>,
}

/// An envelope operation, in an [`EnvelopeEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvelopeOperation {
    /// A one-shot seal.
    Seal,
    /// A stream's header sealed (`seal_header`, `encryptor`).
    SealStream,
    /// A one-shot open.
    Open,
    /// A stream's header authenticated and its key unwrapped (`unlock`,
    /// `decryptor`); the payload is checked as it is read.
    OpenStream,
}

impl EnvelopeOperation {
    /// `seal`, `seal_stream`, `open` or `open_stream`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seal => "seal",
            Self::SealStream => "seal_stream",
            Self::Open => "open",
            Self::OpenStream => "open_stream",
        }
    }
}

/// One seal or open by a sealer or opener given an [`Audit`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct EnvelopeEvent<'a> {
    /// When it ended, since the Unix epoch.
    pub time: Option<Duration>,
    /// What was done.
    pub operation: EnvelopeOperation,
    /// The envelope's message id (for an open that failed before the header
    /// authenticated, as the header claims it; absent if it did not parse).
    pub message_id: Option<&'a [u8; MESSAGE_ID_LEN]>,
    /// Plaintext bytes sealed or released (unknown for streams).
    pub plaintext_len: Option<u64>,
    /// Envelope bytes produced or read (the header's, for streams).
    pub envelope_len: Option<u64>,
    /// The envelope's wrapped keys (provider, key id, version; the bytes are
    /// not recorded).
    pub wrapped_keys: &'a [WrappedKeyRef<'a>],
    /// The envelope's context, when known (not when an open's context did
    /// not reconcile with the header).
    pub context: Option<ContextView<'a>>,
    /// The principal the audit was built for, if any.
    pub principal: Option<&'a str>,
    /// How it ended.
    pub outcome: EventOutcome<'a>,
}

/// Which context values audit events may show. Keys are always shown (and
/// a digest of the whole binding); values only as this policy says. The
/// default shows none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextValues(Values);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Values {
    #[default]
    None,
    Stored,
    All,
    Only(BTreeSet<String>),
}

impl ContextValues {
    /// No value (the default).
    pub const fn none() -> Self {
        Self(Values::None)
    }

    /// The values of [stored](Storage::Stored) entries (readable in the
    /// envelope header anyway), never those of required ones.
    pub const fn stored() -> Self {
        Self(Values::Stored)
    }

    /// Every value. Only for contexts that hold nothing sensitive.
    pub const fn all() -> Self {
        Self(Values::All)
    }

    /// The values of these keys only.
    pub fn only<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(Values::Only(keys.into_iter().map(|k| k.as_ref().to_string()).collect()))
    }

    /// Whether `entry`'s value may be shown.
    pub fn allows(&self, entry: &ContextEntry<'_>) -> bool {
        match &self.0 {
            Values::None => false,
            Values::Stored => entry.storage == Storage::Stored,
            Values::All => true,
            Values::Only(keys) => keys.contains(entry.key),
        }
    }
}

/// A call's or envelope's context as an audit event shows it: the suite,
/// every key, the values the [`ContextValues`] policy allows, and a digest
/// of the whole binding.
#[derive(Clone, Copy)]
pub struct ContextView<'a> {
    binding: Binding<'a>,
    values: &'a ContextValues,
    key: Option<&'a AuditKey>,
}

/// One entry of a [`ContextView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextItem<'a> {
    /// The key.
    pub key: &'a str,
    /// Stored in the header, or required from the caller.
    pub storage: Storage,
    /// The value, if the policy allows showing it.
    pub value: Option<&'a str>,
}

const DIGEST_LABEL: &[u8] = b"lockbox.audit.v1 binding\0";

impl<'a> ContextView<'a> {
    pub(crate) fn new(binding: Binding<'a>, values: &'a ContextValues, key: Option<&'a AuditKey>) -> Self {
        Self { binding, values, key }
    }

    /// The envelope's suite.
    pub fn suite(&self) -> Suite {
        self.binding.suite()
    }

    /// Every entry, in canonical order, with its value where allowed.
    pub fn items(&self) -> impl Iterator<Item = ContextItem<'a>> + 'a {
        let values = self.values;
        self.binding.entries().map(move |e| ContextItem {
            key: e.key,
            storage: e.storage,
            value: values.allows(&e).then_some(e.value),
        })
    }

    /// SHA-256 of the binding (domain-separated), or HMAC-SHA-256 under the
    /// audit's digest key if it has one. Equal digests mean equal suite and
    /// context. An unkeyed digest of a low-entropy context can be matched
    /// by guessing values: configure [`AuditBuilder::digest_key`] when
    /// values are sensitive.
    pub fn digest(&self) -> [u8; 32] {
        match self.key {
            Some(k) => k.mac(&[DIGEST_LABEL, self.binding.as_bytes()]),
            None => Sha256::new()
                .chain_update(DIGEST_LABEL)
                .chain_update(self.binding.as_bytes())
                .finalize()
                .into(),
        }
    }

    /// Whether [`digest`](Self::digest) is keyed.
    pub fn digest_is_keyed(&self) -> bool {
        self.key.is_some()
    }
}

impl fmt::Debug for ContextView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for i in self.items() {
            match i.value {
                Some(v) => m.entry(&i.key, &v),
                None => m.entry(&i.key, &format_args!("<redacted>")),
            };
        }
        m.finish()
    }
}

/// A 256-bit secret key of the audit's own (never a KEK): authenticates
/// a [`JsonLinesSink`]'s records (HMAC-SHA-256) and keys binding digests.
/// Zeroized on drop; `Debug` shows only its id, a fingerprint.
pub struct AuditKey {
    key: SecretBox<[u8; 32]>,
}

const KEY_ID_LABEL: &[u8] = b"lockbox.audit.v1 key id\0";

impl AuditKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut key = Box::new([0u8; 32]);
        crate::keys::os_random(key.as_mut_slice())?;
        Ok(Self {
            key: SecretBox::new(key),
        })
    }

    pub(crate) fn from_boxed(key: SecretBox<[u8; 32]>) -> Self {
        Self { key }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        secrecy::ExposeSecret::expose_secret(&self.key)
    }

    /// Loads a key from the environment variable `name` (standard base64 of
    /// 32 bytes), for a verifier in another process.
    #[cfg(feature = "std")]
    pub fn from_env(name: &str) -> Result<Self, Error> {
        use base64ct::{Base64, Encoding};
        let value = std::env::var(name)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| Error::key_load(format!("environment variable {name} is not set or not UTF-8"), None))?;
        let mut key = Box::new([0u8; 32]);
        match Base64::decode(value.trim_ascii(), key.as_mut_slice()) {
            Ok(d) if d.len() == 32 => Ok(Self::from_boxed(SecretBox::new(key))),
            _ => Err(Error::key_load(
                format!("environment variable {name} does not hold standard base64 of exactly 32 bytes"),
                None,
            )),
        }
    }

    /// The key's id: 16 hex digits of an HMAC of a fixed label, the same
    /// for every copy of the key and revealing nothing about it.
    pub fn id(&self) -> String {
        let mac = self.mac(&[KEY_ID_LABEL]);
        let mut s = String::with_capacity(16);
        for b in mac.iter().take(8) {
            s.push_str(&alloc::format!("{b:02x}"));
        }
        s
    }

    /// HMAC-SHA-256 over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.hmac();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    pub(crate) fn hmac(&self) -> Hmac<Sha256> {
        // HMAC pads a 32-byte key with zeros to the 64-byte block.
        let mut block = zeroize::Zeroizing::new([0u8; 64]);
        if let Some(head) = block.get_mut(..32) {
            head.copy_from_slice(self.bytes());
        }
        <Hmac<Sha256> as KeyInit>::new((&*block).into())
    }
}

/// A copy of the key (for a sink and a verifier in one process), in its own
/// zeroized allocation.
impl Clone for AuditKey {
    fn clone(&self) -> Self {
        Self::from_boxed(SecretBox::new(Box::new(*self.bytes())))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}
