//! Access control for key-encryption providers: capability handles that can
//! only seal, only open or only rewrap; grants that constrain a provider by
//! encryption context, operation, validity window and number of uses; and
//! the [`Layer`] mechanism both grants and [audit](crate::audit) are built on.
//!
//! Every piece works with sync ([`KeyEncryptionProvider`](crate::KeyEncryptionProvider))
//! and async ([`AsyncKeyEncryptionProvider`](crate::AsyncKeyEncryptionProvider))
//! providers alike: local keys, keyrings, HSMs, cloud KMSs.
//!
//! # Capability handles: enforced by the type
//!
//! [`SealOnly`], [`OpenOnly`] and [`RewrapOnly`] hold a provider privately and
//! are **not** providers themselves, so they cannot be passed where a
//! provider is expected. A [`SealOnly`] hands out [`Sealer`](crate::Sealer)s
//! (and wraps keys directly); nothing reachable from it unwraps:
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use std::sync::Arc;
//! use lockbox::access::SealOnly;
//! use lockbox::{EncryptionContext, LocalKek};
//!
//! let kek = Arc::new(LocalKek::generate()?);
//! let ingest = SealOnly::new(kek.clone()); // give this to the ingest service
//! let ctx = EncryptionContext::new().with("tenant", "acme")?;
//! let envelope = ingest.sealer().seal(b"event", &ctx)?;
//! assert_eq!(lockbox::open(&*kek, &envelope, &ctx)?, b"event");
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use lockbox::access::SealOnly;
//! # let ingest = SealOnly::new(lockbox::LocalKek::generate().unwrap());
//! # let envelope = ingest.sealer().seal(b"x", &lockbox::EncryptionContext::new()).unwrap();
//! // A seal-only handle is not a provider: this does not compile.
//! lockbox::Opener::new(&ingest).open(&envelope, &lockbox::EncryptionContext::new());
//! ```
//!
//! # Grants: checked on every call
//!
//! A [`Grant`] is a [`Layer`]: [`Layered`] puts it in front of a sync
//! provider, [`AsyncLayered`] in front of an async one. Every wrap, unwrap,
//! data-key generation and rewrap is checked against the grant's operations,
//! validity window, context constraints (against the call's
//! [`Binding`](crate::Binding)) and maximum number of uses; a refusal is a
//! [`ProviderError`](crate::ProviderError) of kind
//! [`PermissionDenied`](crate::ProviderErrorKind::PermissionDenied) whose
//! source is an [`AccessDenied`] naming the violated constraint (never a
//! context value). A grant over a granted provider can only narrow: both
//! are checked.
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use std::sync::Arc;
//! use lockbox::access::{AccessDenied, Grant, Layered, Operations};
//! use lockbox::{EncryptionContext, LocalKek};
//!
//! let kek = Arc::new(LocalKek::generate()?);
//! let acme = EncryptionContext::new().with("tenant", "acme")?;
//! let globex = EncryptionContext::new().with("tenant", "globex")?;
//! let a = lockbox::seal(&*kek, b"acme's", &acme)?;
//! let g = lockbox::seal(&*kek, b"globex's", &globex)?;
//!
//! let grant = Grant::builder("reporting", Operations::UNWRAP).require("tenant", "acme").build()?;
//! let reporting = Layered::new(kek.clone(), grant);
//! assert_eq!(lockbox::open(&reporting, &a, &acme)?, b"acme's");
//! let err = lockbox::open(&reporting, &g, &globex).unwrap_err();
//! assert_eq!(AccessDenied::in_error(&err).unwrap().constraint(), "context.value");
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! A [`Layer`] is a sans-IO hook: [`check`](Layer::check) before the inner
//! provider is called, [`observe`](Layer::observe) after, never seeing key
//! bytes. [`Layered`] (sync) and [`AsyncLayered`] (async) are the only two
//! shells, for every layer: grants, [`Audit`](crate::audit::Audit) and your
//! own (rate limits, metrics). Two types are needed because every sync
//! provider is also an async one (a blanket implementation), so one generic
//! type could not implement both traits; the behaviour is written once.

mod grant;
mod handles;
mod layer;

use core::fmt;
use core::ops::BitOr;
use core::time::Duration;

pub use grant::{AccessDenied, Grant, GrantBuilder, Violation};
pub use handles::{OpenOnly, RewrapOnly, SealOnly};
pub use layer::{AsyncLayered, Call, Layer, Layered, Outcome};

/// One kind of provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// [`wrap`](crate::KeyEncryptionProvider::wrap): wrap a data key (seal).
    Wrap,
    /// [`unwrap`](crate::KeyEncryptionProvider::unwrap): unwrap a data key (open).
    Unwrap,
    /// [`generate_data_key`](crate::KeyEncryptionProvider::generate_data_key):
    /// a new data key and its wrap from the provider (seal).
    GenerateDataKey,
    /// [`rewrap`](crate::KeyEncryptionProvider::rewrap): server-side rewrap of
    /// a wrapped key, without handing out the data key.
    Rewrap,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 4] = [Self::Wrap, Self::Unwrap, Self::GenerateDataKey, Self::Rewrap];

    /// A stable lowercase name (`wrap`, `unwrap`, `generate_data_key`,
    /// `rewrap`), as written in audit records.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::GenerateDataKey => "generate_data_key",
            Self::Rewrap => "rewrap",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Wrap => 1,
            Self::Unwrap => 2,
            Self::GenerateDataKey => 4,
            Self::Rewrap => 8,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Operation`]s, for [`Grant::builder`]. Combine with `|`.
///
/// What a set permits follows from what the operations can do, not from
/// their names: [`WRAP`](Self::WRAP) also permits provider-side data-key
/// generation (a new key and its wrap is no more power than wrapping a key
/// of one's own), and [`UNWRAP`](Self::UNWRAP) together with
/// [`WRAP`](Self::WRAP) also permits server-side rewrap (less power than
/// unwrapping and wrapping). [`REWRAP`](Self::REWRAP) alone permits only
/// server-side rewrap; [`GENERATE_DATA_KEY`](Self::GENERATE_DATA_KEY) alone
/// only generation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Operations(u8);

impl Operations {
    /// No operation.
    pub const NONE: Self = Self(0);
    /// [`Operation::Wrap`] (and, through it, generation).
    pub const WRAP: Self = Self(Operation::Wrap.bit());
    /// [`Operation::Unwrap`].
    pub const UNWRAP: Self = Self(Operation::Unwrap.bit());
    /// [`Operation::GenerateDataKey`].
    pub const GENERATE_DATA_KEY: Self = Self(Operation::GenerateDataKey.bit());
    /// [`Operation::Rewrap`].
    pub const REWRAP: Self = Self(Operation::Rewrap.bit());
    /// What sealing needs: wrap and generate.
    pub const SEAL: Self = Self(Self::WRAP.0 | Self::GENERATE_DATA_KEY.0);
    /// What opening needs: unwrap.
    pub const OPEN: Self = Self::UNWRAP;
    /// Every operation.
    pub const ALL: Self = Self(Self::SEAL.0 | Self::UNWRAP.0 | Self::REWRAP.0);

    /// Whether `op` is in the set itself (see [`permits`](Self::permits)
    /// for what the set allows).
    pub const fn contains(self, op: Operation) -> bool {
        self.0 & op.bit() != 0
    }

    /// Whether the set allows `op`: it contains it, or implies it (generation
    /// through wrap; rewrap through unwrap and wrap).
    pub const fn permits(self, op: Operation) -> bool {
        self.contains(op)
            || match op {
                Operation::GenerateDataKey => self.contains(Operation::Wrap),
                Operation::Rewrap => self.contains(Operation::Unwrap) && self.contains(Operation::Wrap),
                Operation::Wrap | Operation::Unwrap => false,
            }
    }

    /// The operations in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }
}

impl BitOr for Operations {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl From<Operation> for Operations {
    fn from(op: Operation) -> Self {
        Self(op.bit())
    }
}

impl fmt::Debug for Operations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(Operation::ALL.iter().filter(|op| self.contains(**op)))
            .finish()
    }
}

/// A wall clock: the time since the Unix epoch, for grant validity windows
/// and audit timestamps. lockbox reads no clock of its own accord: the
/// default (with `std`) is [`SystemClock`]; tests and `no_std` targets
/// supply their own.
pub trait WallClock: Send + Sync + fmt::Debug + 'static {
    /// The time elapsed since 1970-01-01T00:00:00Z.
    fn now(&self) -> Duration;
}

/// The system's wall clock ([`std::time::SystemTime`]); times before 1970
/// read as 0.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl WallClock for SystemClock {
    fn now(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The default clock: the system's with `std`, none without.
pub(crate) fn default_clock() -> Option<alloc::sync::Arc<dyn WallClock>> {
    #[cfg(feature = "std")]
    {
        Some(alloc::sync::Arc::new(SystemClock))
    }
    #[cfg(not(feature = "std"))]
    {
        None
    }
}
