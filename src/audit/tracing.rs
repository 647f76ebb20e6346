//! [`TracingSink`]: audit events as `tracing` events (feature `tracing`).

use super::{AuditError, AuditEvent, AuditSink};

/// Emits every audit event as a `tracing` event with target
/// `lockbox::audit`: successes at `INFO`, refusals and failures at `WARN`.
/// Fields: `family`, `operation`, `outcome`, `provider_id`, `key_id`,
/// `principal`, `error`, `violation`, and `record`, the whole
/// [`AuditRecord`](super::AuditRecord) as JSON. Never fails (a subscriber
/// decides where events go).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl TracingSink {
    /// The sink.
    pub fn new() -> Self {
        Self
    }
}

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let r = event.to_record();
        let json = r.to_json();
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "lockbox::audit",
                    $level,
                    family = r.family,
                    operation = %r.operation,
                    outcome = r.outcome,
                    provider_id = r.provider_id.as_deref().unwrap_or_default(),
                    key_id = r.key_id.as_deref().unwrap_or_default(),
                    principal = r.principal.as_deref().unwrap_or_default(),
                    error = r.error.unwrap_or_default(),
                    violation = r.violation.unwrap_or_default(),
                    record = %json,
                    "lockbox audit: {} {} {}", r.family, r.operation, r.outcome
                )
            };
        }
        if event.succeeded() {
            emit!(tracing::Level::INFO);
        } else {
            emit!(tracing::Level::WARN);
        }
        Ok(())
    }
}
