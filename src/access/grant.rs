//! Grants: a [`Layer`] that admits a call only within its operations,
//! validity window, context constraints and number of uses.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::layer::{Call, Layer, Outcome};
use super::{Operation, Operations, WallClock};
use crate::context::{Binding, EncryptionContext};
use crate::error::{Error, ProviderError, ProviderErrorKind};
use crate::keyring::UnixTime;

/// A predicate over a call's binding, for [`GrantBuilder::predicate`].
type Predicate = Arc<dyn Fn(Binding<'_>) -> bool + Send + Sync>;

/// One context constraint.
#[derive(Clone)]
enum Rule {
    /// `key` must be present with one of `values`.
    OneOf { key: String, values: Vec<String> },
    /// Every key must be present (any value).
    HasKeys(Vec<String>),
    /// No key outside the set may be present.
    OnlyKeys(BTreeSet<String>),
    /// A named predicate must hold.
    Predicate { name: String, f: Predicate },
}

impl fmt::Debug for Rule {
    // Values are not printed: a grant's Debug can end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OneOf { key, values } => write!(f, "{key:?} in <{} value(s)>", values.len()),
            Self::HasKeys(keys) => write!(f, "has keys {keys:?}"),
            Self::OnlyKeys(keys) => write!(f, "only keys {keys:?}"),
            Self::Predicate { name, .. } => write!(f, "predicate {name:?}"),
        }
    }
}

/// Why a [`Grant`] refused a call: which constraint was violated. Never
/// holds a context value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// The operation is not among the grant's operations.
    Operation(Operation),
    /// The grant is not valid yet.
    NotYetValid {
        /// When it becomes valid.
        not_before: UnixTime,
    },
    /// The grant has expired.
    Expired {
        /// The last second it was valid.
        not_after: UnixTime,
    },
    /// The grant's uses are spent.
    UsesExhausted {
        /// How many it had.
        max_uses: u64,
    },
    /// A context key the grant requires is absent.
    ContextKeyMissing {
        /// The key.
        key: String,
    },
    /// A context key has a value the grant does not allow (the value is
    /// deliberately not recorded).
    ContextValue {
        /// The key.
        key: String,
    },
    /// The context has a key outside the grant's allowed set.
    ContextKeyNotAllowed {
        /// The key.
        key: String,
    },
    /// A context predicate refused.
    ContextPredicate {
        /// The predicate's name.
        name: String,
    },
    /// The grant has a validity window but no clock to check it with.
    NoClock,
}

impl Violation {
    /// A stable short code for the constraint (as written in audit
    /// records): `operation`, `not_before`, `not_after`, `max_uses`,
    /// `context.missing`, `context.value`, `context.extra`,
    /// `context.predicate`, `clock`.
    pub fn constraint(&self) -> &'static str {
        match self {
            Self::Operation(_) => "operation",
            Self::NotYetValid { .. } => "not_before",
            Self::Expired { .. } => "not_after",
            Self::UsesExhausted { .. } => "max_uses",
            Self::ContextKeyMissing { .. } => "context.missing",
            Self::ContextValue { .. } => "context.value",
            Self::ContextKeyNotAllowed { .. } => "context.extra",
            Self::ContextPredicate { .. } => "context.predicate",
            Self::NoClock => "clock",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operation(op) => write!(f, "operation {op} is not allowed"),
            Self::NotYetValid { not_before } => write!(f, "not valid before {not_before}"),
            Self::Expired { not_after } => write!(f, "expired after {not_after}"),
            Self::UsesExhausted { max_uses } => write!(f, "all {max_uses} use(s) spent"),
            Self::ContextKeyMissing { key } => write!(f, "context key {key:?} is required"),
            Self::ContextValue { key } => write!(f, "context key {key:?} does not have an allowed value"),
            Self::ContextKeyNotAllowed { key } => write!(f, "context key {key:?} is not allowed"),
            Self::ContextPredicate { name } => write!(f, "context predicate {name:?} refused"),
            Self::NoClock => f.write_str("no clock to check the validity window"),
        }
    }
}

/// A refusal by a [`Grant`]: the source of the
/// [`PermissionDenied`](ProviderErrorKind::PermissionDenied) provider error
/// it returns. Names the grant and the [`Violation`], never a context value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDenied {
    grant: String,
    violation: Violation,
}

impl AccessDenied {
    /// The name of the grant that refused.
    pub fn grant(&self) -> &str {
        &self.grant
    }

    /// The violated constraint.
    pub fn violation(&self) -> &Violation {
        &self.violation
    }

    /// The violation's short code ([`Violation::constraint`]).
    pub fn constraint(&self) -> &'static str {
        self.violation.constraint()
    }

    /// The grant refusal behind a provider error, if it is one.
    pub fn of(error: &ProviderError) -> Option<&Self> {
        core::error::Error::source(error).and_then(|s| s.downcast_ref::<Self>())
    }

    /// The grant refusal behind an envelope error (a failed seal, or an open
    /// whose last unwrap attempt was refused), if it is one.
    pub fn in_error(error: &Error) -> Option<&Self> {
        match error {
            Error::Provider(p) => Self::of(p),
            Error::NoProviderCouldUnwrap { source: Some(p), .. } => Self::of(p),
            _ => None,
        }
    }
}

impl fmt::Display for AccessDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access denied by grant {:?}: {}", self.grant, self.violation)
    }
}

impl core::error::Error for AccessDenied {}

/// A provider view constrained by operations, a validity window, the
/// encryption context and a number of uses: a [`Layer`], put in front of a
/// provider with [`Layered`](super::Layered) (sync) or
/// [`AsyncLayered`](super::AsyncLayered) (async). See the
/// [module documentation](super) for an example.
///
/// Every call is checked, in this order: the operation (see
/// [`Operations`] for what a set implies), the validity window, each
/// context constraint (against the call's [`Binding`], on wrap, unwrap,
/// generation and rewrap alike), then the number of uses. A refusal is a
/// [`ProviderError`] of kind [`PermissionDenied`](ProviderErrorKind::PermissionDenied)
/// with an [`AccessDenied`] source; the inner provider is not called.
///
/// A use is taken when a call is admitted, before the inner provider
/// answers (a call that then fails still counts; counts run high, never
/// low), and given back when the provider turns out not to offer the
/// operation (generation or rewrap answered "not offered", after which
/// the sealer wraps instead). Counting is atomic: with `max_uses(n)`, at
/// most `n` calls are ever admitted, however many threads race.
///
/// The binding checked on unwrap is the one the opener reconstructed: the
/// header's stored entries and the caller's required ones. A caller who
/// supplies a required value the grant allows but the envelope was not
/// sealed with gets past the grant and then fails authentication in the
/// inner provider: the wrapped key opens only under its own binding.
///
/// Grants nest: a grant in front of a granted provider adds its checks to
/// the inner grant's, so it can only narrow (fewer operations, a shorter
/// window, fewer uses, more context constraints); the inner grant's uses
/// count the calls of every grant built on it.
pub struct Grant {
    name: String,
    operations: Operations,
    not_before: Option<UnixTime>,
    not_after: Option<UnixTime>,
    clock: Option<Arc<dyn WallClock>>,
    max_uses: Option<u64>,
    /// Pointer-sized, so that targets without 64-bit atomics have grants
    /// (a maximum above `usize::MAX` counts as `usize::MAX`).
    used: AtomicUsize,
    rules: Vec<Rule>,
}

/// Builds a [`Grant`]; from [`Grant::builder`].
pub struct GrantBuilder {
    grant: Grant,
}

impl Grant {
    /// Starts a grant named `name` (shown in refusals and audit records)
    /// allowing `operations`, with no other constraint yet.
    pub fn builder(name: impl Into<String>, operations: Operations) -> GrantBuilder {
        GrantBuilder {
            grant: Grant {
                name: name.into(),
                operations,
                not_before: None,
                not_after: None,
                clock: super::default_clock(),
                max_uses: None,
                used: AtomicUsize::new(0),
                rules: Vec::new(),
            },
        }
    }

    /// The grant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operations it allows.
    pub fn operations(&self) -> Operations {
        self.operations
    }

    /// How many calls it has admitted (minus those given back).
    pub fn uses(&self) -> u64 {
        u64::try_from(self.used.load(Ordering::Acquire)).unwrap_or(u64::MAX)
    }

    /// How many more calls it will admit, if it has a maximum.
    pub fn remaining_uses(&self) -> Option<u64> {
        self.max_uses.map(|m| m.saturating_sub(self.uses()))
    }

    fn deny(&self, provider_id: &str, violation: Violation) -> ProviderError {
        ProviderError::new(ProviderErrorKind::PermissionDenied, provider_id).with_source(AccessDenied {
            grant: self.name.clone(),
            violation,
        })
    }

    /// Every check but the use count.
    fn violation(&self, call: &Call<'_>) -> Option<Violation> {
        if !self.operations.permits(call.operation) {
            return Some(Violation::Operation(call.operation));
        }
        if self.not_before.is_some() || self.not_after.is_some() {
            let Some(clock) = &self.clock else {
                return Some(Violation::NoClock);
            };
            let now = UnixTime(clock.now().as_secs());
            if let Some(nb) = self.not_before.filter(|nb| now < *nb) {
                return Some(Violation::NotYetValid { not_before: nb });
            }
            if let Some(na) = self.not_after.filter(|na| now > *na) {
                return Some(Violation::Expired { not_after: na });
            }
        }
        self.rules.iter().find_map(|r| check_rule(r, call.binding))
    }

    /// Takes one use, if any is left.
    fn take_use(&self) -> Result<(), Violation> {
        let max = self
            .max_uses
            .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < max).then(|| u.saturating_add(1))
            })
            .map(|_| ())
            .map_err(|_| Violation::UsesExhausted {
                max_uses: self.max_uses.unwrap_or(u64::MAX),
            })
    }
}

fn check_rule(rule: &Rule, binding: Binding<'_>) -> Option<Violation> {
    let value_of = |key: &str| binding.entries().find(|e| e.key == key).map(|e| e.value);
    match rule {
        Rule::OneOf { key, values } => match value_of(key) {
            None => Some(Violation::ContextKeyMissing { key: key.clone() }),
            Some(v) if values.iter().any(|a| a == v) => None,
            Some(_) => Some(Violation::ContextValue { key: key.clone() }),
        },
        Rule::HasKeys(keys) => keys
            .iter()
            .find(|k| value_of(k).is_none())
            .map(|k| Violation::ContextKeyMissing { key: k.clone() }),
        Rule::OnlyKeys(allowed) => binding
            .entries()
            .find(|e| !allowed.contains(e.key))
            .map(|e| Violation::ContextKeyNotAllowed { key: e.key.to_string() }),
        Rule::Predicate { name, f } => (!f(binding)).then(|| Violation::ContextPredicate { name: name.clone() }),
    }
}

impl Layer for Grant {
    fn check(&self, call: &Call<'_>) -> Result<(), ProviderError> {
        if let Some(v) = self.violation(call) {
            return Err(self.deny(call.provider_id, v));
        }
        self.take_use().map_err(|v| self.deny(call.provider_id, v))
    }

    fn observe(&self, _call: &Call<'_>, outcome: Outcome<'_>) -> Result<(), ProviderError> {
        if matches!(outcome, Outcome::NotOffered) {
            // Not a use of the key: give it back.
            let _ = self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1));
        }
        Ok(())
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("operations", &self.operations)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("max_uses", &self.max_uses)
            .field("uses", &self.uses())
            .field("context", &self.rules)
            .finish()
    }
}

impl GrantBuilder {
    fn rule(mut self, rule: Rule) -> Self {
        self.grant.rules.push(rule);
        self
    }

    /// The context must hold `key` with exactly `value` (stored or
    /// required). Several calls add several constraints, all of which must
    /// hold.
    #[must_use]
    pub fn require(self, key: &str, value: &str) -> Self {
        self.require_one_of(key, [value])
    }

    /// The context must hold `key` with one of `values`.
    #[must_use]
    pub fn require_one_of<I, S>(self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let values = values.into_iter().map(|v| v.as_ref().to_string()).collect();
        self.rule(Rule::OneOf {
            key: key.to_string(),
            values,
        })
    }

    /// The context must hold every one of `keys`, with any value.
    #[must_use]
    pub fn require_keys<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.rule(Rule::HasKeys(
            keys.into_iter().map(|k| k.as_ref().to_string()).collect(),
        ))
    }

    /// The context may hold no key outside `keys`.
    #[must_use]
    pub fn allow_only_keys<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.rule(Rule::OnlyKeys(
            keys.into_iter().map(|k| k.as_ref().to_string()).collect(),
        ))
    }

    /// The context must be exactly `context`'s key-value pairs, no more and
    /// no fewer (whether each entry is stored or required is not compared).
    #[must_use]
    pub fn require_exactly(mut self, context: &EncryptionContext) -> Self {
        for e in context.iter() {
            self = self.require(e.key, e.value);
        }
        self.allow_only_keys(context.iter().map(|e| e.key))
    }

    /// `f` must return `true` for the call's binding (its suite and every
    /// context entry). `name` identifies it in refusals.
    #[must_use]
    pub fn predicate(self, name: impl Into<String>, f: impl Fn(Binding<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.rule(Rule::Predicate {
            name: name.into(),
            f: Arc::new(f),
        })
    }

    /// Refuses calls before `t` (valid from `t`, inclusive).
    #[must_use]
    pub fn not_before(mut self, t: UnixTime) -> Self {
        self.grant.not_before = Some(t);
        self
    }

    /// Refuses calls after `t` (valid through `t`, inclusive: the whole
    /// second).
    #[must_use]
    pub fn not_after(mut self, t: UnixTime) -> Self {
        self.grant.not_after = Some(t);
        self
    }

    /// Admits at most `n` calls (see [`Grant`] for what counts).
    #[must_use]
    pub fn max_uses(mut self, n: u64) -> Self {
        self.grant.max_uses = Some(n);
        self
    }

    /// The clock the validity window is checked against (default
    /// [`SystemClock`](super::SystemClock) with `std`; required without it
    /// if a window is set).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.grant.clock = Some(clock);
        self
    }

    /// Checks and builds the grant. An empty name, a window that ends
    /// before it starts, and a window without a clock are
    /// [`Error::InvalidArgument`]s.
    pub fn build(self) -> Result<Grant, Error> {
        let g = self.grant;
        if g.name.is_empty() {
            return Err(Error::invalid_argument("a grant needs a name"));
        }
        if let (Some(nb), Some(na)) = (g.not_before, g.not_after)
            && na < nb
        {
            return Err(Error::invalid_argument("grant window ends before it starts"));
        }
        if (g.not_before.is_some() || g.not_after.is_some()) && g.clock.is_none() {
            return Err(Error::invalid_argument("a grant with a validity window needs a clock"));
        }
        Ok(g)
    }
}

impl fmt::Debug for GrantBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GrantBuilder").field(&self.grant).finish()
    }
}
