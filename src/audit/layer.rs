//! [`Audit`]: the audit settings, a [`Layer`] that records every provider
//! call, and what sealers and openers record envelopes with.

use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use super::{AuditEvent, AuditKey, AuditSink, ContextValues, ContextView, EventOutcome, ProviderEvent};
use crate::access::{Call, Layer, Operation, Outcome, WallClock};
use crate::context::Binding;
use crate::error::{ProviderError, ProviderErrorKind};

/// Who audits and how: a sink, a principal, a [`ContextValues`] policy, a
/// clock and an optional digest key.
///
/// As a [`Layer`] (in [`Layered`](crate::access::Layered) or
/// [`AsyncLayered`](crate::access::AsyncLayered)) it records a
/// [`ProviderEvent`] for every wrap, unwrap, generation and rewrap of the
/// provider behind it, successful, failed or refused by a grant inside it
/// (put grants *inside* the audit, so their refusals are recorded). Calls
/// the provider answers with "not offered" (a generation a local key does
/// not do) are not key uses and are not recorded.
///
/// Given to a sealer or opener ([`Sealer::audit`](crate::Sealer::audit),
/// [`Opener::audit`](crate::Opener::audit) and the async twins), it
/// records an [`EnvelopeEvent`](super::EnvelopeEvent) per seal and open.
///
/// **Fail closed.** If the sink cannot record a provider event, the call's
/// result is withheld (a data key is zeroized) and the call fails with
/// [`ProviderErrorKind::Unavailable`], whose source is the
/// [`AuditError`](super::AuditError): no key is used unrecorded. Build with
/// [`fail_open`](AuditBuilder::fail_open) to hand results out regardless.
/// Envelope events are recorded best-effort (the provider events under
/// them fail closed).
pub struct Audit {
    sink: Arc<dyn AuditSink>,
    principal: Option<String>,
    values: ContextValues,
    clock: Option<Arc<dyn WallClock>>,
    digest_key: Option<AuditKey>,
    fail_open: bool,
}

/// Builds an [`Audit`]; from [`Audit::builder`].
pub struct AuditBuilder {
    audit: Audit,
}

impl Audit {
    /// An audit to `sink` with the defaults: no principal, no context
    /// values, the system clock (with `std`), an unkeyed digest, fail closed.
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self::builder(sink).build()
    }

    /// Starts building an audit to `sink`.
    pub fn builder(sink: Arc<dyn AuditSink>) -> AuditBuilder {
        AuditBuilder {
            audit: Self {
                sink,
                principal: None,
                values: ContextValues::none(),
                clock: crate::access::default_clock(),
                digest_key: None,
                fail_open: false,
            },
        }
    }

    /// The principal recorded with every event.
    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The sink.
    pub fn sink(&self) -> &Arc<dyn AuditSink> {
        &self.sink
    }

    pub(crate) fn context<'a>(&'a self, binding: Binding<'a>) -> ContextView<'a> {
        ContextView::new(binding, &self.values, self.digest_key.as_ref())
    }

    pub(crate) fn now(&self) -> Option<Duration> {
        self.clock.as_ref().map(|c| c.now())
    }

    pub(crate) fn record(&self, event: &AuditEvent<'_>) -> Result<(), super::AuditError> {
        self.sink.record(event)
    }
}

impl AuditBuilder {
    /// The principal (a service, a user, a job) recorded with every event.
    #[must_use]
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.audit.principal = Some(principal.into());
        self
    }

    /// Which context values events show (default none).
    #[must_use]
    pub fn context_values(mut self, values: ContextValues) -> Self {
        self.audit.values = values;
        self
    }

    /// The clock events are stamped with (default the system clock with
    /// `std`; without it, events have no time unless one is set).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.audit.clock = Some(clock);
        self
    }

    /// Keys the binding digests (HMAC-SHA-256), so that they cannot be
    /// matched by guessing context values.
    #[must_use]
    pub fn digest_key(mut self, key: AuditKey) -> Self {
        self.audit.digest_key = Some(key);
        self
    }

    /// Hands provider results out even when their event could not be
    /// recorded (the default fails closed).
    #[must_use]
    pub fn fail_open(mut self) -> Self {
        self.audit.fail_open = true;
        self
    }

    /// The audit.
    pub fn build(self) -> Audit {
        self.audit
    }
}

impl Layer for Audit {
    fn observe(&self, call: &Call<'_>, outcome: Outcome<'_>) -> Result<(), ProviderError> {
        let (new, result) = match outcome {
            Outcome::NotOffered => return Ok(()),
            Outcome::Wrapped(w) => (Some(w), EventOutcome::Success),
            Outcome::Unwrapped => (None, EventOutcome::Success),
            Outcome::Failed(e) => (None, EventOutcome::of_provider(e)),
        };
        // The key a call concerns: the one it unwraps or rewraps, else the
        // new wrap's.
        let (key_id, key_version) = match (call.wrapped, new) {
            (Some(w), _) => (Some(w.key_id()), Some(w.key_version())),
            (None, Some(w)) => (Some(w.key_id().as_str()), Some(w.key_version())),
            (None, None) => (None, None),
        };
        let new_key_version = new
            .filter(|_| call.operation == Operation::Rewrap)
            .map(|w| w.key_version());
        let event = AuditEvent::Provider(ProviderEvent {
            time: self.now(),
            operation: call.operation,
            provider_id: call.provider_id,
            key_id,
            key_version,
            new_key_version,
            context: self.context(call.binding),
            principal: self.principal(),
            outcome: result,
        });
        match self.record(&event) {
            Err(e) if !self.fail_open => {
                Err(ProviderError::new(ProviderErrorKind::Unavailable, call.provider_id).with_source(e))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("principal", &self.principal)
            .field("context_values", &self.values)
            .field("clock", &self.clock)
            .field("digest_key", &self.digest_key)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AuditBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuditBuilder").field(&self.audit).finish()
    }
}
