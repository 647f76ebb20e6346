//! The owned form of an audit event, and its JSON encoding (what
//! [`JsonLinesSink`](super::JsonLinesSink) writes, [`MemorySink`](super::MemorySink)
//! keeps and [`TracingSink`](super::TracingSink) emits).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use super::{AuditEvent, ContextView, EventOutcome, error_code, provider_error_code};
use crate::format::MESSAGE_ID_LEN;
use crate::json::write_string;

/// An owned audit event: the fields of every family, flattened (a field
/// that does not apply is `None` or empty). Never holds key bytes,
/// plaintext, or a context value the policy did not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// `provider`, `envelope` or `keyring`.
    pub family: &'static str,
    /// What was done: an [`Operation`](crate::access::Operation) name for
    /// providers, an [`EnvelopeOperation`](super::EnvelopeOperation) name
    /// for envelopes, `keyring.<action>` for keyrings.
    pub operation: String,
    /// `success`, `denied` or `failure`.
    pub outcome: &'static str,
    /// When (since the Unix epoch), if the source had a clock.
    pub time: Option<Duration>,
    /// The principal, if one was attached.
    pub principal: Option<String>,
    /// The provider's id.
    pub provider_id: Option<String>,
    /// The key id.
    pub key_id: Option<String>,
    /// The key version.
    pub key_version: Option<u32>,
    /// For a rewrap, the version rewrapped to.
    pub new_key_version: Option<u32>,
    /// The keyring's id (keyring events).
    pub keyring: Option<String>,
    /// The caller-supplied time of a keyring lifecycle operation (seconds).
    pub lifecycle_time: Option<u64>,
    /// The keyring action in words (`promote (previous primary v2)`).
    pub detail: Option<String>,
    /// The suite's name.
    pub suite: Option<&'static str>,
    /// The binding digest ([`ContextView::digest`]).
    pub binding_digest: Option<[u8; 32]>,
    /// Whether that digest is keyed.
    pub binding_digest_keyed: bool,
    /// The context's keys, each with its value where the policy allowed it.
    pub context: Vec<(String, Option<String>)>,
    /// The envelope's message id.
    pub message_id: Option<[u8; MESSAGE_ID_LEN]>,
    /// Plaintext bytes sealed or released.
    pub plaintext_len: Option<u64>,
    /// Envelope bytes produced or read.
    pub envelope_len: Option<u64>,
    /// The envelope's wrapped keys: provider id, key id, version.
    pub wrapped_keys: Vec<(String, String, u32)>,
    /// A stable error code (`authentication`, `permission_denied`, ...).
    pub error: Option<&'static str>,
    /// The error in words (names keys, never values).
    pub message: Option<String>,
    /// The grant that refused, for `denied`.
    pub denied_by: Option<String>,
    /// The violated constraint ([`Violation::constraint`](crate::access::Violation::constraint)).
    pub violation: Option<&'static str>,
}

impl AuditRecord {
    fn new(family: &'static str, operation: String, outcome: &'static str) -> Self {
        Self {
            family,
            operation,
            outcome,
            time: None,
            principal: None,
            provider_id: None,
            key_id: None,
            key_version: None,
            new_key_version: None,
            keyring: None,
            lifecycle_time: None,
            detail: None,
            suite: None,
            binding_digest: None,
            binding_digest_keyed: false,
            context: Vec::new(),
            message_id: None,
            plaintext_len: None,
            envelope_len: None,
            wrapped_keys: Vec::new(),
            error: None,
            message: None,
            denied_by: None,
            violation: None,
        }
    }

    fn context(&mut self, c: &ContextView<'_>) {
        self.suite = Some(c.suite().name());
        self.binding_digest = Some(c.digest());
        self.binding_digest_keyed = c.digest_is_keyed();
        self.context = c
            .items()
            .map(|i| (i.key.to_string(), i.value.map(ToString::to_string)))
            .collect();
    }

    fn outcome(&mut self, o: &EventOutcome<'_>) {
        match o {
            EventOutcome::Success => {}
            EventOutcome::Denied(d) => {
                self.error = Some("permission_denied");
                self.message = Some(d.to_string());
                self.denied_by = Some(d.grant().to_string());
                self.violation = Some(d.constraint());
            }
            EventOutcome::ProviderFailed(e) => {
                self.error = Some(provider_error_code(e.kind()));
                self.message = Some(e.to_string());
            }
            EventOutcome::Failed(e) => {
                self.error = Some(error_code(e));
                self.message = Some(e.to_string());
            }
        }
    }

    pub(super) fn from_event(event: &AuditEvent<'_>) -> Self {
        match event {
            AuditEvent::Provider(e) => {
                let mut r = Self::new("provider", e.operation.name().to_string(), e.outcome.name());
                r.time = e.time;
                r.principal = e.principal.map(ToString::to_string);
                r.provider_id = Some(e.provider_id.to_string());
                r.key_id = e.key_id.map(ToString::to_string);
                r.key_version = e.key_version.map(|v| v.0);
                r.new_key_version = e.new_key_version.map(|v| v.0);
                r.context(&e.context);
                r.outcome(&e.outcome);
                r
            }
            AuditEvent::Envelope(e) => {
                let mut r = Self::new("envelope", e.operation.name().to_string(), e.outcome.name());
                r.time = e.time;
                r.principal = e.principal.map(ToString::to_string);
                r.message_id = e.message_id.copied();
                r.plaintext_len = e.plaintext_len;
                r.envelope_len = e.envelope_len;
                r.wrapped_keys = e
                    .wrapped_keys
                    .iter()
                    .map(|w| (w.provider_id().to_string(), w.key_id().to_string(), w.key_version().0))
                    .collect();
                if let Some(c) = &e.context {
                    r.context(c);
                }
                r.outcome(&e.outcome);
                r
            }
            AuditEvent::Keyring(e) => {
                let outcome = if e.succeeded() { "success" } else { "failure" };
                let mut r = Self::new("keyring", alloc::format!("keyring.{}", e.action.name()), outcome);
                r.keyring = Some(e.keyring.to_string());
                r.key_id = Some(e.keyring.to_string());
                r.provider_id = Some(crate::keyring::KEYRING_PROVIDER_ID.to_string());
                r.key_version = e.version.map(|v| v.0);
                r.lifecycle_time = e.time.map(|t| t.0);
                r.detail = Some(e.action.to_string());
                if let Some(c) = &e.context {
                    r.context(c);
                }
                if let Some(err) = e.error {
                    r.error = Some("keyring");
                    r.message = Some(err.to_string());
                }
                r
            }
        }
    }

    /// The record as one JSON object on one line (no newline).
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        self.write_fields(&mut out);
        out.push('}');
        out
    }

    /// The record's fields, comma-separated, without braces. A context
    /// larger than [`MAX_CONTEXT_JSON`] is replaced by `"context_omitted"`
    /// so that a line stays bounded.
    pub(crate) fn write_fields(&self, out: &mut String) {
        let mut w = Fields { out, first: true };
        w.str("family", self.family);
        w.str("operation", &self.operation);
        w.str("outcome", self.outcome);
        if let Some(t) = self.time {
            w.key("time");
            w.out.push('"');
            rfc3339(w.out, t);
            w.out.push('"');
        }
        w.opt_str("principal", self.principal.as_deref());
        w.opt_str("provider_id", self.provider_id.as_deref());
        w.opt_str("keyring", self.keyring.as_deref());
        w.opt_str("key_id", self.key_id.as_deref());
        w.opt_num("key_version", self.key_version.map(u64::from));
        w.opt_num("new_key_version", self.new_key_version.map(u64::from));
        w.opt_num("lifecycle_time", self.lifecycle_time);
        w.opt_str("detail", self.detail.as_deref());
        w.opt_str("suite", self.suite);
        if let Some(d) = &self.binding_digest {
            w.hex("binding_digest", d);
            w.raw(
                "binding_digest_keyed",
                if self.binding_digest_keyed { "true" } else { "false" },
            );
        }
        if !self.context.is_empty() {
            let size: usize = self
                .context
                .iter()
                .map(|(k, v)| k.len().saturating_add(v.as_ref().map_or(0, String::len)))
                .fold(0, usize::saturating_add);
            if size > MAX_CONTEXT_JSON {
                w.raw("context_omitted", "true");
            } else {
                w.key("context");
                w.out.push('{');
                for (i, (k, v)) in self.context.iter().enumerate() {
                    if i > 0 {
                        w.out.push(',');
                    }
                    write_string(w.out, k);
                    w.out.push(':');
                    match v {
                        Some(v) => write_string(w.out, v),
                        None => w.out.push_str("null"),
                    }
                }
                w.out.push('}');
            }
        }
        if let Some(m) = &self.message_id {
            w.hex("message_id", m);
        }
        w.opt_num("plaintext_len", self.plaintext_len);
        w.opt_num("envelope_len", self.envelope_len);
        if !self.wrapped_keys.is_empty() {
            w.key("wrapped_keys");
            w.out.push('[');
            for (i, (p, k, v)) in self.wrapped_keys.iter().enumerate() {
                if i > 0 {
                    w.out.push(',');
                }
                w.out.push_str("{\"provider_id\":");
                write_string(w.out, p);
                w.out.push_str(",\"key_id\":");
                write_string(w.out, k);
                let _ = write!(w.out, ",\"key_version\":{v}}}");
            }
            w.out.push(']');
        }
        w.opt_str("error", self.error);
        w.opt_str("message", self.message.as_deref());
        w.opt_str("denied_by", self.denied_by.as_deref());
        w.opt_str("violation", self.violation);
    }
}

/// Context bytes (keys and shown values) above which a record leaves the
/// context out (the digest stays): 64 KiB.
pub(crate) const MAX_CONTEXT_JSON: usize = 64 * 1024;

struct Fields<'o> {
    out: &'o mut String,
    first: bool,
}

impl Fields<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        write_string(self.out, v);
    }
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.key(k);
            let _ = write!(self.out, "{v}");
        }
    }
    fn hex(&mut self, k: &str, v: &[u8]) {
        self.key(k);
        self.out.push('"');
        push_hex(self.out, v);
        self.out.push('"');
    }
}

/// Lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// `t` (since the Unix epoch) as RFC 3339 UTC with milliseconds:
/// `2024-05-01T12:00:00.123Z`.
pub(crate) fn rfc3339(out: &mut String, t: Duration) {
    let secs = t.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        t.subsec_millis()
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = doe
        .saturating_sub(doe / 1460)
        .saturating_add(doe / 36_524)
        .saturating_sub(doe / 146_096)
        / 365;
    let doy = doe.saturating_sub(
        yoe.saturating_mul(365)
            .saturating_add(yoe / 4)
            .saturating_sub(yoe / 100),
    );
    let mp = doy.saturating_mul(5).saturating_add(2) / 153;
    let d = doy
        .saturating_sub(mp.saturating_mul(153).saturating_add(2) / 5)
        .saturating_add(1);
    let m = if mp < 10 {
        mp.saturating_add(3)
    } else {
        mp.saturating_sub(9)
    };
    let y = yoe
        .saturating_add(era.saturating_mul(400))
        .saturating_add(u64::from(m <= 2));
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut s = String::new();
        rfc3339(&mut s, Duration::from_millis(0));
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        rfc3339(&mut s, Duration::from_millis(1_709_210_096_789)); // a leap day
        assert_eq!(s, "2024-02-29T12:34:56.789Z");
        s.clear();
        rfc3339(&mut s, Duration::from_secs(951_782_400)); // 2000-02-29
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
    }
}
