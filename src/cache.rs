//! A data-key cache: [`CachingProvider`] reuses data keys across messages, within
//! limits, so that a remote key service is called once per many messages.
//!
//! Modelled on the AWS Encryption SDK's caching materials manager, with its
//! sharp edges removed:
//!
//! - **Seal side.** A data key and its wrapped form are reused for a bounded
//!   run of messages sealed under the same partition, provider and
//!   [`Binding`] (suite and whole encryption context). The maximum age is
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
//! Only the first provider of a [`Sealer`](crate::Sealer) is asked for the
//! data key; a `CachingProvider` given to
//! [`also_wrap_with`](crate::Sealer::also_wrap_with) just wraps (uncached).
//! A message is counted when its key is handed out, so a seal that fails
//! afterwards still counts: counts can run high, never low.
//!
//! # Partitions
//!
//! One [`DataKeyCache`] (a store with a capacity) can serve several
//! `CachingProvider`s. Entries are shared only between providers built with
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

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::context::Binding;
use crate::error::{Error, ProviderError, ProviderErrorKind};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef, os_random};
use crate::provider::{DataKeyRequest, KeyEncryptionProvider, ProviderIdentity};

/// Default [`CachingProviderBuilder::max_messages`]: 2³².
pub const DEFAULT_MAX_MESSAGES: u64 = 1 << 32;
/// Default [`CachingProviderBuilder::max_bytes`]: 2⁶³ − 1.
pub const DEFAULT_MAX_BYTES: u64 = (1 << 63) - 1;
/// Longest partition name, in bytes.
pub const MAX_PARTITION_LEN: usize = 255;

const SEAL_DOMAIN: &[u8] = b"lockbox.cache.v1 seal\0";
const OPEN_DOMAIN: &[u8] = b"lockbox.cache.v1 open\0";

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

/// Hit and miss counters of one [`CachingProvider`], from
/// [`CachingProvider::stats`]. Each counter wraps at `u64::MAX`.
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

/// The limits an entry is held to. All fields are `u64` (ages in
/// nanoseconds): see [`Entry`] for why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntryLimits {
    max_age: u64,
    max_messages: u64,
    max_bytes: u64,
}

impl EntryLimits {
    fn tighter(self, other: Self) -> Self {
        Self {
            max_age: self.max_age.min(other.max_age),
            max_messages: self.max_messages.min(other.max_messages),
            max_bytes: self.max_bytes.min(other.max_bytes),
        }
    }
}

/// One cached data key.
///
/// Every field is pointer-sized or a `u64`, with no enum payload and no
/// padding, so moving an entry into the map copies no uninitialized bytes:
/// the padding or unused enum payload of a moved value is whatever was on the
/// stack there before, which can be a copy of a data key the caller just
/// handled (the zeroize check caught exactly that with an
/// `Option<WrappedKey>` field; `Option<Box<_>>` is a bare pointer).
struct Entry {
    /// Boxed so that the map moves a pointer, never the key bytes.
    dek: Box<DataKey>,
    /// The wrapped form (seal entries only).
    wrapped: Option<Box<WrappedKey>>,
    /// Creation time, nanoseconds on the cache's clock.
    created: u64,
    limits: EntryLimits,
    /// Use counter value of the last access, for least-recently-used eviction.
    last_used: u64,
    /// Messages sealed with the key so far (seal entries).
    messages: u64,
    /// Plaintext bytes sealed with the key so far (seal entries).
    bytes: u64,
}

impl Entry {
    fn fresh(&self, now: u64, limits: EntryLimits) -> bool {
        now.checked_sub(self.created).is_some_and(|age| age < limits.max_age)
    }

    /// Whether one more message of `len` bytes stays within `limits`.
    fn admits(&self, now: u64, limits: EntryLimits, len: u64) -> bool {
        self.fresh(now, limits)
            && self.messages < limits.max_messages
            && self.bytes.checked_add(len).is_some_and(|b| b <= limits.max_bytes)
    }

    /// Whether no later use is possible under the entry's own limits.
    fn dead(&self, now: u64) -> bool {
        !self.fresh(now, self.limits)
            || (self.wrapped.is_some()
                && (self.messages >= self.limits.max_messages || self.bytes >= self.limits.max_bytes))
    }
}

struct State {
    entries: HashMap<[u8; 32], Entry>,
    /// Incremented at every access; orders entries by recency.
    clock: u64,
}

struct Shared {
    capacity: usize,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    evictions: AtomicU64,
}

/// The store behind one or more [`CachingProvider`]s: at most `capacity`
/// entries (seal and open entries together), least recently used evicted
/// first. Cloning it gives another handle to the same store.
#[derive(Clone)]
pub struct DataKeyCache {
    shared: Arc<Shared>,
}

impl DataKeyCache {
    /// A cache of at most `capacity` entries, timed by a [`MonotonicClock`].
    /// A zero capacity is an [`Error::InvalidArgument`].
    pub fn new(capacity: usize) -> Result<Self, Error> {
        Self::with_clock(capacity, Arc::new(MonotonicClock::new()))
    }

    /// A cache timed by `clock` (for tests, or a clock shared with the caller).
    pub fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        if capacity == 0 {
            return Err(Error::InvalidArgument {
                what: "data-key cache capacity must be at least 1",
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                capacity,
                clock,
                state: Mutex::new(State {
                    entries: HashMap::new(),
                    clock: 0,
                }),
                evictions: AtomicU64::new(0),
            }),
        })
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The number of entries held now (expired ones included until they are
    /// looked up or make room).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries removed so far: expired, exhausted, replaced, evicted for
    /// capacity, or cleared. Each removal zeroized the entry's data key.
    pub fn evictions(&self) -> u64 {
        self.shared.evictions.load(Ordering::Relaxed)
    }

    /// Removes (and zeroizes) every entry, for example after a key-encryption
    /// key was rotated or revoked.
    pub fn clear(&self) {
        let removed = {
            let mut st = self.lock();
            let n = st.entries.len();
            st.entries.clear();
            n
        };
        self.count_evictions(removed);
    }

    /// Nanoseconds on the clock (saturating after 584 years).
    fn now(&self) -> u64 {
        nanos(self.shared.clock.now())
    }

    /// The lock. A panic while it was held cannot leave an entry half
    /// updated (every update is one map operation or plain counter writes), so
    /// a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_evictions(&self, n: usize) {
        if n != 0 {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            self.shared.evictions.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A copy of the seal entry's key and wrapped form if it admits one more
    /// message of `len` bytes under `limits` (and counts that message);
    /// otherwise removes the entry and returns `None`.
    fn take_for_seal(&self, key: &[u8; 32], limits: EntryLimits, len: u64) -> Option<(DataKey, WrappedKey)> {
        let now = self.now();
        let mut st = self.lock();
        st.clock = st.clock.wrapping_add(1);
        let tick = st.clock;
        let entry = st.entries.get_mut(key)?;
        let limits = limits.tighter(entry.limits);
        match &entry.wrapped {
            Some(wrapped) if entry.admits(now, limits, len) => {
                entry.messages = entry.messages.saturating_add(1);
                entry.bytes = entry.bytes.saturating_add(len);
                entry.last_used = tick;
                Some((copy_key(&entry.dek), WrappedKey::clone(wrapped)))
            }
            _ => {
                st.entries.remove(key);
                drop(st);
                self.count_evictions(1);
                None
            }
        }
    }

    /// A copy of the open entry's key if it is fresh under `limits`;
    /// otherwise removes the entry and returns `None`.
    fn take_for_open(&self, key: &[u8; 32], limits: EntryLimits) -> Option<DataKey> {
        let now = self.now();
        let mut st = self.lock();
        st.clock = st.clock.wrapping_add(1);
        let tick = st.clock;
        let entry = st.entries.get_mut(key)?;
        if entry.wrapped.is_none() && entry.fresh(now, limits.tighter(entry.limits)) {
            entry.last_used = tick;
            return Some(copy_key(&entry.dek));
        }
        st.entries.remove(key);
        drop(st);
        self.count_evictions(1);
        None
    }

    /// Inserts an entry created at `created`, making room if needed: first
    /// every entry that can no longer be used, then the least recently used.
    fn insert(&self, key: [u8; 32], mut entry: Entry) {
        let now = self.now();
        if entry.dead(now) {
            return;
        }
        let mut evicted = 0usize;
        {
            let mut st = self.lock();
            st.clock = st.clock.wrapping_add(1);
            entry.last_used = st.clock;
            if st.entries.remove(&key).is_some() {
                evicted = evicted.saturating_add(1);
            }
            if st.entries.len() >= self.shared.capacity {
                let before = st.entries.len();
                st.entries.retain(|_, e| !e.dead(now));
                evicted = evicted.saturating_add(before.saturating_sub(st.entries.len()));
            }
            while st.entries.len() >= self.shared.capacity {
                let oldest = st.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k);
                match oldest {
                    Some(k) => {
                        st.entries.remove(&k);
                        evicted = evicted.saturating_add(1);
                    }
                    None => break,
                }
            }
            st.entries.insert(key, entry);
        }
        self.count_evictions(evicted);
    }
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DataKeyCache");
        d.field("capacity", &self.shared.capacity);
        // `try_lock`: formatting must never wait for (or deadlock on) the lock.
        if let Ok(st) = self.shared.state.try_lock() {
            d.field("len", &st.entries.len());
        }
        d.field("evictions", &self.evictions()).finish_non_exhaustive()
    }
}

/// `d` in nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A copy of `dek` built in place (no temporary holds the bytes).
fn copy_key(dek: &DataKey) -> DataKey {
    let mut k = DataKey::zeroed();
    k.bytes_mut().copy_from_slice(dek.expose_secret());
    k
}

/// A boxed copy of `dek`, filled after boxing so the bytes go straight to the heap.
fn boxed_copy(dek: &DataKey) -> Box<DataKey> {
    let mut k = Box::new(DataKey::zeroed());
    k.bytes_mut().copy_from_slice(dek.expose_secret());
    k
}

/// Feeds a length-prefixed field to the hash (so fields cannot run together).
fn put_field(h: &mut Sha256, bytes: &[u8]) {
    h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(bytes);
}

/// How a partition is named: by the caller, or randomly.
#[derive(Clone)]
enum Partition {
    Named(String),
    Random([u8; 16]),
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(n) => fmt::Debug::fmt(n, f),
            Self::Random(_) => f.write_str("<private>"),
        }
    }
}

/// Builds a [`CachingProvider`]; from [`CachingProvider::builder`].
pub struct CachingProviderBuilder<P> {
    inner: P,
    cache: DataKeyCache,
    limits: EntryLimits,
    partition: Option<String>,
}

impl<P: KeyEncryptionProvider> CachingProviderBuilder<P> {
    /// The most messages one data key seals (default [`DEFAULT_MAX_MESSAGES`]).
    #[must_use]
    pub fn max_messages(mut self, max: u64) -> Self {
        self.limits.max_messages = max;
        self
    }

    /// The most plaintext bytes one data key seals, all its messages together
    /// (default [`DEFAULT_MAX_BYTES`]).
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.limits.max_bytes = max;
        self
    }

    /// Names the partition: providers over one [`DataKeyCache`] share entries
    /// only if they have the same name (1 to [`MAX_PARTITION_LEN`] bytes).
    /// Without a name the provider gets a private random partition.
    #[must_use]
    pub fn partition(mut self, name: impl Into<String>) -> Self {
        self.partition = Some(name.into());
        self
    }

    /// Checks the settings and builds the provider. Zero limits and an empty
    /// or over-long partition name are [`Error::InvalidArgument`]s.
    pub fn build(self) -> Result<CachingProvider<P>, Error> {
        let invalid = |what| Err(Error::InvalidArgument { what });
        if self.limits.max_age == 0 {
            return invalid("cache max_age must be non-zero");
        }
        if self.limits.max_messages == 0 {
            return invalid("cache max_messages must be at least 1");
        }
        if self.limits.max_bytes == 0 {
            return invalid("cache max_bytes must be at least 1");
        }
        let partition = match self.partition {
            Some(name) if name.is_empty() || name.len() > MAX_PARTITION_LEN => {
                return invalid("cache partition name must be 1 to 255 bytes");
            }
            Some(name) => Partition::Named(name),
            None => {
                let mut id = [0u8; 16];
                os_random(&mut id)?;
                Partition::Random(id)
            }
        };
        let prefix = |domain: &[u8]| {
            let mut h = Sha256::new();
            h.update(domain);
            match &partition {
                Partition::Named(n) => {
                    h.update([0]);
                    put_field(&mut h, n.as_bytes());
                }
                Partition::Random(id) => {
                    h.update([1]);
                    put_field(&mut h, id);
                }
            }
            h
        };
        let mut seal_prefix = prefix(SEAL_DOMAIN);
        put_field(&mut seal_prefix, self.inner.provider_id().as_bytes());
        let open_prefix = prefix(OPEN_DOMAIN);
        Ok(CachingProvider {
            inner: self.inner,
            cache: self.cache,
            limits: self.limits,
            partition,
            seal_prefix,
            open_prefix,
            stats: Counters::default(),
        })
    }
}

impl<P: KeyEncryptionProvider> fmt::Debug for CachingProviderBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingProviderBuilder")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("limits", &self.limits)
            .field("partition", &self.partition)
            .finish()
    }
}

#[derive(Default)]
struct Counters {
    seal_hits: AtomicU64,
    seal_misses: AtomicU64,
    seal_bypasses: AtomicU64,
    open_hits: AtomicU64,
    open_misses: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A [`KeyEncryptionProvider`] that caches data keys of an inner provider:
/// see the [module documentation](self) for what is cached, the limits, and
/// why reuse is safe.
///
/// It reports the inner provider's id and `matches`, and its envelopes are
/// ordinary envelopes of the inner provider: anything that opens with the
/// inner provider opens with or without the cache. Thread-safe; `Debug`
/// shows the settings and the inner provider's `Debug`, never a key.
pub struct CachingProvider<P> {
    inner: P,
    cache: DataKeyCache,
    limits: EntryLimits,
    partition: Partition,
    /// SHA-256 state over the seal domain, partition and provider id.
    seal_prefix: Sha256,
    /// SHA-256 state over the open domain and partition.
    open_prefix: Sha256,
    stats: Counters,
}

impl<P: KeyEncryptionProvider> CachingProvider<P> {
    /// Starts building a provider caching `inner`'s data keys in `cache`, each
    /// for at most `max_age` (required; zero is an error at
    /// [`build`](CachingProviderBuilder::build)).
    pub fn builder(inner: P, cache: &DataKeyCache, max_age: Duration) -> CachingProviderBuilder<P> {
        CachingProviderBuilder {
            inner,
            cache: cache.clone(),
            limits: EntryLimits {
                // Any non-zero duration is at least 1 ns: zero stays zero.
                max_age: nanos(max_age),
                max_messages: DEFAULT_MAX_MESSAGES,
                max_bytes: DEFAULT_MAX_BYTES,
            },
            partition: None,
        }
    }

    /// The inner provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The store this provider caches in.
    pub fn cache(&self) -> &DataKeyCache {
        &self.cache
    }

    /// This provider's hit and miss counters.
    pub fn stats(&self) -> CacheStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            seal_hits: get(&s.seal_hits),
            seal_misses: get(&s.seal_misses),
            seal_bypasses: get(&s.seal_bypasses),
            open_hits: get(&s.open_hits),
            open_misses: get(&s.open_misses),
        }
    }

    fn seal_key(&self, binding: Binding<'_>) -> [u8; 32] {
        let mut h = self.seal_prefix.clone();
        h.update(binding.as_bytes());
        h.finalize().into()
    }

    fn open_key(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> [u8; 32] {
        let mut h = self.open_prefix.clone();
        put_field(&mut h, wrapped.provider_id().as_bytes());
        put_field(&mut h, wrapped.key_id().as_bytes());
        h.update(wrapped.key_version().0.to_be_bytes());
        put_field(&mut h, wrapped.bytes());
        h.update(binding.as_bytes());
        h.finalize().into()
    }

    /// A fresh data key and its wrapped form from the inner provider:
    /// provider-side generation if offered, else the OS CSPRNG and a wrap.
    fn fresh(&self, binding: Binding<'_>, len: u64) -> Result<(DataKey, WrappedKey), ProviderError> {
        if let Some(pair) = self
            .inner
            .generate_data_key(DataKeyRequest::new(binding).with_plaintext_len(len))?
        {
            return Ok(pair);
        }
        let dek = DataKey::generate()
            .map_err(|e| ProviderError::new(ProviderErrorKind::Other, self.inner.provider_id()).with_source(e))?;
        let wrapped = self.inner.wrap(&dek, binding)?;
        Ok((dek, wrapped))
    }
}

impl<P: KeyEncryptionProvider> ProviderIdentity for CachingProvider<P> {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(wrapped)
    }
}

impl<P: KeyEncryptionProvider> KeyEncryptionProvider for CachingProvider<P> {
    /// Forwards to the inner provider (wrapping a caller's key is not cached).
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap(dek, binding)
    }

    /// Serves the key from the cache if this wrapped key was unwrapped under
    /// this binding within the age limit; otherwise asks the inner provider
    /// and caches a successful result (failures are not cached).
    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let key = self.open_key(wrapped, binding);
        if let Some(dek) = self.cache.take_for_open(&key, self.limits) {
            bump(&self.stats.open_hits);
            return Ok(dek);
        }
        bump(&self.stats.open_misses);
        let created = self.cache.now();
        let dek = self.inner.unwrap(wrapped, binding)?;
        self.cache.insert(
            key,
            Entry {
                dek: boxed_copy(&dek),
                wrapped: None,
                created,
                limits: self.limits,
                last_used: 0,
                messages: 0,
                bytes: 0,
            },
        );
        Ok(dek)
    }

    /// Reuses a cached data key if one more message of the request's
    /// plaintext length stays within every limit; otherwise gets a fresh key
    /// from the inner provider and caches it. An unknown length (streaming),
    /// or one above the byte limit, bypasses the cache.
    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let binding = request.binding();
        let len = match request.plaintext_len() {
            Some(len) if len <= self.limits.max_bytes => len,
            _ => {
                bump(&self.stats.seal_bypasses);
                return self.inner.generate_data_key(request);
            }
        };
        let key = self.seal_key(binding);
        if let Some(pair) = self.cache.take_for_seal(&key, self.limits, len) {
            bump(&self.stats.seal_hits);
            return Ok(Some(pair));
        }
        bump(&self.stats.seal_misses);
        // Created before the provider call, so a slow call counts against the age.
        let created = self.cache.now();
        let (dek, wrapped) = self.fresh(binding, len)?;
        if !self.inner.matches(wrapped.as_ref()) {
            // The sealer will refuse this wrapped key (its own provider would
            // not open it): do not keep it for later messages.
            return Ok(Some((dek, wrapped)));
        }
        self.cache.insert(
            key,
            Entry {
                dek: boxed_copy(&dek),
                wrapped: Some(Box::new(wrapped.clone())),
                created,
                limits: self.limits,
                last_used: 0,
                messages: 1,
                bytes: len,
            },
        );
        Ok(Some((dek, wrapped)))
    }

    /// Forwards to the inner provider.
    fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
        self.inner.rewrap(wrapped, binding)
    }
}

impl<P: KeyEncryptionProvider> fmt::Debug for CachingProvider<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingProvider")
            .field("inner", &self.inner)
            .field("partition", &self.partition)
            .field("max_age", &Duration::from_nanos(self.limits.max_age))
            .field("max_messages", &self.limits.max_messages)
            .field("max_bytes", &self.limits.max_bytes)
            .field("cache", &self.cache)
            .field("stats", &self.stats())
            .finish()
    }
}
