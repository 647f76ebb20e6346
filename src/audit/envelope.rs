//! Envelope events: what a sealer or opener given an [`Audit`] records.
//! The drivers call [`EnvelopeAudit::sealed`] after a seal, and
//! [`EnvelopeAudit::probe`] before / [`EnvelopeAudit::opened`] after an
//! open (the probe keeps what an in-place open overwrites). Without an
//! audit every call is a no-op that allocates nothing.

use alloc::vec::Vec;

use super::{Audit, AuditEvent, EnvelopeEvent, EnvelopeOperation, EventOutcome};
use crate::context::EncryptionContext;
use crate::engine::open::reconcile;
use crate::error::Error;
use crate::format::binding::{Binding, BindingBytes};
use crate::format::{self, Header, Limits, MESSAGE_ID_LEN, Parsed};
use crate::keys::{WrappedKey, WrappedKeyRef};
use crate::suite::Suite;

/// A sealer's or opener's audit, if it has one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EnvelopeAudit<'p>(pub(crate) Option<&'p Audit>);

/// What an open's event needs from the envelope, taken before the open.
pub(crate) struct OpenProbe {
    envelope_len: usize,
    header: Option<HeaderFacts>,
}

struct HeaderFacts {
    message_id: Option<[u8; MESSAGE_ID_LEN]>,
    wrapped: Vec<WrappedKey>,
    binding: Option<(Suite, BindingBytes)>,
}

impl HeaderFacts {
    fn of(h: &Header<'_>, context: &EncryptionContext) -> Self {
        Self {
            message_id: Some(*h.message_id()),
            wrapped: h.wrapped().iter().map(|w| w.to_owned()).collect(),
            binding: reconcile(context, h.context(), h.suite(), false)
                .ok()
                .map(|b| (h.suite(), b)),
        }
    }
}

fn len(n: usize) -> Option<u64> {
    u64::try_from(n).ok()
}

impl EnvelopeAudit<'_> {
    fn emit(
        &self,
        audit: &Audit,
        operation: EnvelopeOperation,
        facts: Option<&HeaderFacts>,
        sizes: (Option<usize>, Option<usize>),
        outcome: EventOutcome<'_>,
    ) {
        let refs: Vec<WrappedKeyRef<'_>> =
            facts.map_or_else(Vec::new, |f| f.wrapped.iter().map(WrappedKey::as_ref).collect());
        let context = facts
            .and_then(|f| f.binding.as_ref())
            .map(|(suite, b)| audit.context(Binding::from_encoded(*suite, b.as_slice())));
        let event = AuditEvent::Envelope(EnvelopeEvent {
            time: audit.now(),
            operation,
            message_id: facts.and_then(|f| f.message_id.as_ref()),
            plaintext_len: sizes.0.and_then(len),
            envelope_len: sizes.1.and_then(len),
            wrapped_keys: &refs,
            context,
            principal: audit.principal(),
            outcome,
        });
        // Best-effort: the provider events under this one fail closed.
        let _ = audit.record(&event);
    }

    /// After a seal: `envelope` is what it produced (the header, for a
    /// stream; empty on failure), `plaintext_len` what it sealed (unknown
    /// for a stream).
    pub(crate) fn sealed<T>(
        self,
        operation: EnvelopeOperation,
        (suite, limits): (Suite, &Limits),
        context: &EncryptionContext,
        plaintext_len: Option<usize>,
        envelope: &[u8],
        result: &Result<T, Error>,
    ) {
        let Some(audit) = self.0 else { return };
        let facts = match (result, format::parse_prefix(envelope, limits)) {
            (Ok(_), Ok(Parsed::Complete(h))) => HeaderFacts::of(&h, context),
            // Failed before an envelope existed: no message id, no keys.
            _ => HeaderFacts {
                message_id: None,
                wrapped: Vec::new(),
                binding: Some((suite, context.binding_bytes(suite))),
            },
        };
        let outcome = result
            .as_ref()
            .map_or_else(EventOutcome::of_error, |_| EventOutcome::Success);
        let sizes = (plaintext_len, result.is_ok().then_some(envelope.len()));
        self.emit(audit, operation, Some(&facts), sizes, outcome);
    }

    /// Before an open of `envelope` (or a stream header's bytes).
    pub(crate) fn probe(self, envelope: &[u8], context: &EncryptionContext, limits: &Limits) -> Option<OpenProbe> {
        self.0?;
        let header = match format::parse_prefix(envelope, limits) {
            Ok(Parsed::Complete(h)) => Some(HeaderFacts::of(&h, context)),
            _ => None,
        };
        Some(OpenProbe {
            envelope_len: envelope.len(),
            header,
        })
    }

    /// After an open: `plaintext_len` is what it released (unknown for a
    /// stream).
    pub(crate) fn opened<T>(
        self,
        probe: Option<OpenProbe>,
        operation: EnvelopeOperation,
        plaintext_len: Option<usize>,
        result: &Result<T, Error>,
    ) {
        let (Some(audit), Some(probe)) = (self.0, probe) else {
            return;
        };
        let outcome = result
            .as_ref()
            .map_or_else(EventOutcome::of_error, |_| EventOutcome::Success);
        let released = plaintext_len.filter(|_| result.is_ok());
        self.emit(
            audit,
            operation,
            probe.header.as_ref(),
            (released, Some(probe.envelope_len)),
            outcome,
        );
    }
}
