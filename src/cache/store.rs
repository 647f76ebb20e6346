//! The cache store: entries keyed by a digest, each holding a boxed data key
//! and its limits and counters, with least-recently-used eviction. It knows
//! nothing of providers; `logic.rs` decides what to look up and keep.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use secrecy::ExposeSecret;

use super::{Clock, MonotonicClock};
use crate::error::Error;
use crate::keys::{DataKey, WrappedKey};

/// The limits an entry is held to. All fields are `u64` (ages in
/// nanoseconds): see [`Entry`] for why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EntryLimits {
    pub(super) max_age: u64,
    pub(super) max_messages: u64,
    pub(super) max_bytes: u64,
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

/// The store behind one or more [`CachingProvider`](super::CachingProvider)s
/// and [`AsyncCachingProvider`](super::AsyncCachingProvider)s: at most `capacity`
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
    pub(super) fn now(&self) -> u64 {
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
    pub(super) fn take_for_seal(&self, key: &[u8; 32], limits: EntryLimits, len: u64) -> Option<(DataKey, WrappedKey)> {
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
                Some((entry.dek.duplicate(), WrappedKey::clone(wrapped)))
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
    pub(super) fn take_for_open(&self, key: &[u8; 32], limits: EntryLimits) -> Option<DataKey> {
        let now = self.now();
        let mut st = self.lock();
        st.clock = st.clock.wrapping_add(1);
        let tick = st.clock;
        let entry = st.entries.get_mut(key)?;
        if entry.wrapped.is_none() && entry.fresh(now, limits.tighter(entry.limits)) {
            entry.last_used = tick;
            return Some(entry.dek.duplicate());
        }
        st.entries.remove(key);
        drop(st);
        self.count_evictions(1);
        None
    }

    /// Caches `dek` and its wrapped form for sealing, created at `created`
    /// and already counted for its first message of `len` bytes.
    pub(super) fn insert_seal(
        &self,
        key: [u8; 32],
        (dek, wrapped): (&DataKey, &WrappedKey),
        created: u64,
        limits: EntryLimits,
        len: u64,
    ) {
        let entry = Entry {
            dek: boxed_copy(dek),
            wrapped: Some(Box::new(wrapped.clone())),
            created,
            limits,
            last_used: 0,
            messages: 1,
            bytes: len,
        };
        self.insert(key, entry);
    }

    /// Caches an unwrapped `dek`, created at `created`.
    pub(super) fn insert_open(&self, key: [u8; 32], dek: &DataKey, created: u64, limits: EntryLimits) {
        let entry = Entry {
            dek: boxed_copy(dek),
            wrapped: None,
            created,
            limits,
            last_used: 0,
            messages: 0,
            bytes: 0,
        };
        self.insert(key, entry);
    }

    /// Inserts an entry, making room if needed: first every entry that can no
    /// longer be used, then the least recently used.
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
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A boxed copy of `dek`, filled after boxing so the bytes go straight to the heap.
fn boxed_copy(dek: &DataKey) -> Box<DataKey> {
    let mut k = Box::new(DataKey::zeroed());
    k.bytes_mut().copy_from_slice(dek.expose_secret());
    k
}
