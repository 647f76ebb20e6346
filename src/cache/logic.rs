//! The cache logic, written once for [`CachingProvider`](super::CachingProvider)
//! and [`AsyncCachingProvider`](super::AsyncCachingProvider): a sans-IO core
//! that never calls a provider. Each shell asks it what to do
//! ([`Core::seal_len`], [`Core::seal_lookup`], [`Core::open_lookup`]), makes
//! the provider call itself (with or without `.await`), and hands the result
//! back ([`Core::keep_sealed`], [`Core::keep_opened`]).
//!
//! Keys never wait in a step value across a provider call: a hit is handed
//! out at once, and a miss carries only the cache key, a time and a length.

use alloc::string::String;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use sha2::{Digest, Sha256};

use super::store::{EntryLimits, nanos};
use super::{CacheStats, DataKeyCache, MAX_PARTITION_LEN};
use crate::context::Binding;
use crate::error::{Error, ProviderError, ProviderErrorKind};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef, os_random};
use crate::provider::{DataKeyRequest, ProviderIdentity};

const SEAL_DOMAIN: &[u8] = b"lockbox.cache.v1 seal\0";
const OPEN_DOMAIN: &[u8] = b"lockbox.cache.v1 open\0";

/// The settings a builder collects, checked by [`Core::new`].
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) cache: DataKeyCache,
    pub(super) limits: EntryLimits,
    pub(super) partition: Option<String>,
}

impl Settings {
    pub(super) fn new(cache: &DataKeyCache, max_age: Duration) -> Self {
        Self {
            cache: cache.clone(),
            limits: EntryLimits {
                // Any non-zero duration is at least 1 ns: zero stays zero.
                max_age: nanos(max_age),
                max_messages: super::DEFAULT_MAX_MESSAGES,
                max_bytes: super::DEFAULT_MAX_BYTES,
            },
            partition: None,
        }
    }
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

/// Feeds a length-prefixed field to the hash (so fields cannot run together).
fn put_field(h: &mut Sha256, bytes: &[u8]) {
    h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    h.update(bytes);
}

/// What a lookup found: a key to hand out now, or what the shell must ask
/// the inner provider for.
pub(super) enum Lookup<H, M> {
    Hit(H),
    Miss(M),
}

/// A seal-side miss: the entry to create once the inner provider answers.
pub(super) struct SealMiss {
    key: [u8; 32],
    /// Taken before the provider call, so a slow call counts against the age.
    created: u64,
    len: u64,
}

/// An open-side miss: the entry to create if the inner unwrap succeeds.
pub(super) struct OpenMiss {
    key: [u8; 32],
    created: u64,
}

/// One caching provider's settings, partition, statistics and decisions.
pub(super) struct Core {
    cache: DataKeyCache,
    limits: EntryLimits,
    partition: Partition,
    /// SHA-256 state over the seal domain, partition and provider id.
    seal_prefix: Sha256,
    /// SHA-256 state over the open domain and partition.
    open_prefix: Sha256,
    stats: Counters,
}

impl Core {
    /// Checks the settings for a provider whose id is `provider_id`. Zero
    /// limits and an empty or over-long partition name are
    /// [`Error::InvalidArgument`]s.
    pub(super) fn new(s: Settings, provider_id: &str) -> Result<Self, Error> {
        let invalid = |what| Err(Error::InvalidArgument { what });
        if s.limits.max_age == 0 {
            return invalid("cache max_age must be non-zero");
        }
        if s.limits.max_messages == 0 {
            return invalid("cache max_messages must be at least 1");
        }
        if s.limits.max_bytes == 0 {
            return invalid("cache max_bytes must be at least 1");
        }
        let partition = match s.partition {
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
        put_field(&mut seal_prefix, provider_id.as_bytes());
        let open_prefix = prefix(OPEN_DOMAIN);
        Ok(Self {
            cache: s.cache,
            limits: s.limits,
            partition,
            seal_prefix,
            open_prefix,
            stats: Counters::default(),
        })
    }

    pub(super) fn cache(&self) -> &DataKeyCache {
        &self.cache
    }

    pub(super) fn stats(&self) -> CacheStats {
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

    /// The plaintext length to count a seal against, or `None` (counted as
    /// a bypass): the length is unknown (streaming) or above the byte limit,
    /// and the shell forwards the request to the inner provider uncached.
    pub(super) fn seal_len(&self, request: &DataKeyRequest<'_>) -> Option<u64> {
        let len = request.plaintext_len().filter(|len| *len <= self.limits.max_bytes);
        if len.is_none() {
            bump(&self.stats.seal_bypasses);
        }
        len
    }

    /// A cached data key and its wrapped form if one more message of `len`
    /// bytes under `binding` stays within every limit (counted), or the miss
    /// to fill.
    pub(super) fn seal_lookup(&self, binding: Binding<'_>, len: u64) -> Lookup<(DataKey, WrappedKey), SealMiss> {
        let mut h = self.seal_prefix.clone();
        h.update(binding.as_bytes());
        let key = h.finalize().into();
        if let Some(pair) = self.cache.take_for_seal(&key, self.limits, len) {
            bump(&self.stats.seal_hits);
            return Lookup::Hit(pair);
        }
        bump(&self.stats.seal_misses);
        let created = self.cache.now();
        Lookup::Miss(SealMiss { key, created, len })
    }

    /// Keeps the inner provider's fresh key for later messages, unless its
    /// own provider (`inner`) would not match the wrapped key: the sealer
    /// refuses such a key, so it must not be reused.
    pub(super) fn keep_sealed(&self, miss: SealMiss, pair: &(DataKey, WrappedKey), inner: &dyn ProviderIdentity) {
        if inner.matches(pair.1.as_ref()) {
            let (dek, wrapped) = pair;
            let limits = self.limits;
            self.cache
                .insert_seal(miss.key, (dek, wrapped), miss.created, limits, miss.len);
        }
    }

    /// The data key cached for this wrapped key under this binding, if fresh,
    /// or the miss to fill.
    pub(super) fn open_lookup(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Lookup<DataKey, OpenMiss> {
        let mut h = self.open_prefix.clone();
        put_field(&mut h, wrapped.provider_id().as_bytes());
        put_field(&mut h, wrapped.key_id().as_bytes());
        h.update(wrapped.key_version().0.to_be_bytes());
        put_field(&mut h, wrapped.bytes());
        h.update(binding.as_bytes());
        let key = h.finalize().into();
        if let Some(dek) = self.cache.take_for_open(&key, self.limits) {
            bump(&self.stats.open_hits);
            return Lookup::Hit(dek);
        }
        bump(&self.stats.open_misses);
        let created = self.cache.now();
        Lookup::Miss(OpenMiss { key, created })
    }

    /// Keeps a key the inner provider unwrapped (failures are not cached).
    pub(super) fn keep_opened(&self, miss: OpenMiss, dek: &DataKey) {
        self.cache.insert_open(miss.key, dek, miss.created, self.limits);
    }

    /// The shell's `Debug`: settings, store and counters, never a key.
    pub(super) fn debug(&self, f: &mut fmt::Formatter<'_>, name: &str, inner: &dyn fmt::Debug) -> fmt::Result {
        f.debug_struct(name)
            .field("inner", inner)
            .field("partition", &self.partition)
            .field("max_age", &Duration::from_nanos(self.limits.max_age))
            .field("max_messages", &self.limits.max_messages)
            .field("max_bytes", &self.limits.max_bytes)
            .field("cache", &self.cache)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A data key from the OS CSPRNG for an inner provider without provider-side
/// generation (a failure is that provider's).
pub(super) fn new_key(provider_id: &str) -> Result<DataKey, ProviderError> {
    DataKey::generate().map_err(|e| ProviderError::new(ProviderErrorKind::Other, provider_id).with_source(e))
}
