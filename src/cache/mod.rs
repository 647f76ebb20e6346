//! A data-key cache: [`CachingProvider`] (over a sync provider) and
//! [`AsyncCachingProvider`] (over an async one, such as AWS KMS or OpenBao)
//! reuse data keys across messages, within limits, so that a remote key
//! service is called once per many messages.
//!
//! Modelled on the AWS Encryption SDK's caching materials manager, with its
//! sharp edges removed:
//!
//! - **Seal side.** A data key and its wrapped form are reused for a bounded
//!   run of messages sealed under the same partition, provider and
//!   [`Binding`](crate::Binding) (suite and whole encryption context). The maximum age is
//!   required; the maximum number of messages and of plaintext bytes default
//!   to the AWS SDK's (2³² messages, 2⁶³ − 1 bytes) and are best set lower.
//!   A limit is never exceeded, not by one message nor by one byte: a message
//!   that would cross one gets a fresh data key, and a message longer than the
//!   byte limit on its own is sealed without the cache. An entry that has
//!   reached its message or byte limit is retired at once (it no longer takes
//!   a place in the cache).
//! - **Open side.** A data key unwrapped by the inner provider is kept, keyed
//!   by the partition, the provider id, key id, key version, the wrapped bytes
//!   and the binding, so opening many envelopes that share a wrapped key calls
//!   the inner provider once. The same maximum age applies.
//!
//! # Why reusing a data key never repeats a nonce
//!
//! In format v1 a data key never encrypts anything itself. Every envelope
//! draws a fresh random 32-byte message id, and its payload key and key
//! commitment are derived with HKDF-SHA-256 from the data key *and* that
//! message id (`FORMAT.md` §3); the nonces are counters under that
//! per-message payload key (§4). Two envelopes sealed with one cached data
//! key therefore share no key and no (key, nonce) pair unless their random
//! message ids collide: probability about m²/2²⁵⁷ for m messages (2⁻¹⁹³ at
//! the default limit of 2³²). What reuse does change is the blast radius: the
//! one data key, if exposed, opens every envelope sealed with it. The limits
//! bound that run.
//!
//! # Streaming
//!
//! A streaming [`Encryptor`](crate::Encryptor) does not know the plaintext
//! length when it draws its data key, so it cannot be counted against the byte
//! limit before the bytes are sealed. Such messages **bypass** the cache (the
//! inner provider is asked for a fresh key, as without a cache) and are
//! counted in [`CacheStats::seal_bypasses`]. Streamed messages are large, so a
//! provider call per message costs little next to the payload.
//!
//! # What is counted
//!
//! Only the first provider of a [`Sealer`](crate::Sealer) (or
//! [`AsyncSealer`](crate::AsyncSealer)) is asked for the data key; a caching
//! provider given to [`also_wrap_with`](crate::Sealer::also_wrap_with) just
//! wraps (uncached).
//! A message is counted when its key is handed out, so a seal that fails
//! afterwards still counts: counts can run high, never low.
//!
//! # Partitions
//!
//! One [`DataKeyCache`] (a store with a capacity) can serve several
//! caching providers, sync and async. Entries are shared only between providers built with
//! the **same partition name**, which asserts that they hold the same keys
//! and may read each other's data keys. A provider built without a name gets
//! a random partition of its own and shares nothing. An entry carries the
//! limits of the provider that created it, and a lookup enforces the tighter
//! of those and its own.
//!
//! # Rotation and revocation
//!
//! A cached data key stays in use until a limit retires it, even if the
//! key-encryption key that wrapped it was rotated or disabled meanwhile: call
//! [`DataKeyCache::clear`] when that happens, and keep `max_age` as short as
//! the deployment tolerates.
//!
//! # Cost
//!
//! A hit costs one SHA-256 over the binding (the open side: also over the
//! wrapped key), one uncontended lock, a map lookup, a copy of the key and,
//! on the seal side, a clone of the wrapped key (three small allocations).
//! Making room in a full cache scans every entry (O(capacity)); it happens
//! only on a miss, next to a call to the inner provider.
//!
//! # Memory
//!
//! Every cached data key lives in its own heap allocation (a `Box`), so
//! growing the map moves pointers, never key bytes; an entry's key is zeroized
//! when the entry is evicted (age, exhaustion, capacity, replacement,
//! [`DataKeyCache::clear`]) and when the cache is dropped. Callers receive
//! their own copy of the key, which lockbox zeroizes as soon as the message's
//! keys are derived.
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use std::time::Duration;
//! use lockbox::cache::{CachingProvider, DataKeyCache};
//! use lockbox::{EncryptionContext, LocalKek};
//!
//! let cache = DataKeyCache::new(1000)?;
//! let provider = CachingProvider::builder(LocalKek::generate()?, &cache, Duration::from_secs(300))
//!     .max_messages(10_000)
//!     .max_bytes(1 << 30)
//!     .partition("billing")
//!     .build()?;
//!
//! let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
//! let a = lockbox::seal(&provider, b"first", &ctx)?;
//! let b = lockbox::seal(&provider, b"second", &ctx)?; // same data key, own message keys
//! assert_eq!(lockbox::open(&provider, &a, &ctx)?, b"first");
//! assert_eq!(lockbox::open(&provider, &b, &ctx)?, b"second");
//! let stats = provider.stats();
//! assert_eq!((stats.seal_misses, stats.seal_hits), (1, 1));
//! # Ok(()) }
//! ```
//!
//! # Async providers
//!
//! A provider that is async only (it implements
//! [`AsyncKeyEncryptionProvider`](crate::AsyncKeyEncryptionProvider) but not
//! the sync trait: AWS KMS, OpenBao Transit, a provider of your own) is
//! cached by [`AsyncCachingProvider`], built the same way, and used with
//! [`AsyncSealer`](crate::AsyncSealer) and [`AsyncOpener`](crate::AsyncOpener).
//! It is the same cache: the same limits, partitions and statistics, and it
//! can share a [`DataKeyCache`] with sync providers. (One generic type
//! cannot serve both kinds: every sync provider is also an async one, so
//! there are two thin types over one implementation.)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lockbox::Error> {
//! use std::time::Duration;
//! use lockbox::cache::{AsyncCachingProvider, DataKeyCache};
//! use lockbox::{AsyncOpener, AsyncSealer, EncryptionContext, LocalKek};
//!
//! // Any async provider: a KMS client in production. A LocalKek is one too
//! // (every sync provider is), which keeps this example self-contained.
//! let kms = LocalKek::generate()?;
//! let cache = DataKeyCache::new(1000)?;
//! let provider = AsyncCachingProvider::builder(kms, &cache, Duration::from_secs(300))
//!     .max_messages(10_000)
//!     .build()?;
//!
//! let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
//! let sealer = AsyncSealer::new(&provider);
//! let a = sealer.seal(b"first", &ctx).await?;
//! let b = sealer.seal(b"second", &ctx).await?; // no call to the KMS
//! let opener = AsyncOpener::new(&provider);
//! assert_eq!(opener.open(&a, &ctx).await?, b"first");
//! assert_eq!(opener.open(&b, &ctx).await?, b"second"); // one unwrap for both
//! let stats = provider.stats();
//! assert_eq!((stats.seal_misses, stats.seal_hits, stats.open_misses, stats.open_hits), (1, 1, 1, 1));
//! # Ok(()) }
//! ```

mod logic;
mod provider;
mod store;

use core::fmt;
use core::time::Duration;
use std::time::Instant;

pub use provider::{AsyncCachingProvider, CachingProvider, CachingProviderBuilder};
pub use store::DataKeyCache;

/// Default [`CachingProviderBuilder::max_messages`]: 2³².
pub const DEFAULT_MAX_MESSAGES: u64 = 1 << 32;
/// Default [`CachingProviderBuilder::max_bytes`]: 2⁶³ − 1.
pub const DEFAULT_MAX_BYTES: u64 = (1 << 63) - 1;
/// Longest partition name, in bytes.
pub const MAX_PARTITION_LEN: usize = 255;

/// A monotonic clock for the cache's age limit. The default is
/// [`MonotonicClock`]; tests inject their own to check age limits exactly.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since a fixed origin of the clock's choosing. Must never
    /// decrease. (An entry whose creation time is later than `now` is treated
    /// as expired.)
    fn now(&self) -> Duration;
}

/// The default [`Clock`]: [`std::time::Instant`], from when it was created.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Hit and miss counters of one caching provider, from
/// [`CachingProvider::stats`] or [`AsyncCachingProvider::stats`]. Each
/// counter wraps at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Seals that reused a cached data key.
    pub seal_hits: u64,
    /// Seals that asked the inner provider for a new data key and cached it.
    pub seal_misses: u64,
    /// Seals that went to the inner provider without the cache: unknown
    /// length (streaming), or a plaintext longer than the byte limit.
    pub seal_bypasses: u64,
    /// Unwraps served from the cache.
    pub open_hits: u64,
    /// Unwraps that called the inner provider (successfully or not).
    pub open_misses: u64,
}
