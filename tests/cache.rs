//! The data-key cache: every limit enforced exactly, partitions, the open-side
//! cache, eviction, statistics, concurrency, and that cached envelopes are
//! ordinary envelopes of the inner provider.
//!
//! Every behaviour test has one body, generic over the [`Shell`] under test,
//! and runs twice (the `both!` macro): on [`CachingProvider`] over a sync
//! provider, sealing with `lockbox::seal` / `Sealer`; and on
//! [`AsyncCachingProvider`] over the same provider made async-only
//! ([`AsyncOnly`]: only `AsyncKeyEncryptionProvider`, every call yielding
//! once), sealing with `AsyncSealer` / `AsyncOpener`.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "keyring_common/async_only.rs"]
mod async_only;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_only::{AsyncOnly, block_on};
use lockbox::cache::{AsyncCachingProvider, CacheStats, CachingProvider, CachingProviderBuilder, Clock, DataKeyCache};
use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, Binding, DataKey, DataKeyRequest, EncryptionContext, Error,
    KeyEncryptionProvider, LocalKek, Opener, ProviderError, ProviderErrorKind, ProviderIdentity, Sealer, Suite,
    WrappedKey, WrappedKeyRef, hazmat,
};

/// A clock the test moves by hand.
#[derive(Debug, Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn set(&self, d: Duration) {
        self.0.store(u64::try_from(d.as_nanos()).unwrap(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// A local KEK that counts every call, optionally offers provider-side
/// generation (with DEKs from a counter, so tests can tell them apart), and
/// can be made to fail.
#[derive(Debug)]
struct Counting {
    kek: LocalKek,
    offer_generate: bool,
    fail: AtomicBool,
    /// Generate keys wrapped under another KEK (a provider bug).
    foreign: Option<LocalKek>,
    generates: AtomicUsize,
    wraps: AtomicUsize,
    unwraps: AtomicUsize,
    /// Plaintext lengths passed to `generate_data_key`.
    lengths: std::sync::Mutex<Vec<Option<u64>>>,
}

impl Counting {
    fn new(offer_generate: bool) -> Self {
        Self {
            kek: LocalKek::generate().unwrap(),
            offer_generate,
            fail: AtomicBool::new(false),
            foreign: None,
            generates: AtomicUsize::new(0),
            wraps: AtomicUsize::new(0),
            unwraps: AtomicUsize::new(0),
            lengths: std::sync::Mutex::new(Vec::new()),
        }
    }
    fn failure(&self) -> Result<(), ProviderError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(ProviderError::new(ProviderErrorKind::Unavailable, self.provider_id()))
        } else {
            Ok(())
        }
    }
    /// Fresh data keys the inner provider produced (generated or wrapped).
    fn fresh_keys(&self) -> usize {
        self.generates.load(Ordering::SeqCst) + self.wraps.load(Ordering::SeqCst)
    }
    fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

impl ProviderIdentity for Counting {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(w)
    }
}

impl KeyEncryptionProvider for Counting {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.failure()?;
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.kek.wrap(dek, binding)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.failure()?;
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.kek.unwrap(w, binding)
    }
    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let binding = request.binding();
        self.lengths.lock().unwrap().push(request.plaintext_len());
        if !self.offer_generate {
            return Ok(None);
        }
        self.failure()?;
        let n = self.generates.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0x5Au8; 32];
        bytes[..8].copy_from_slice(&u64::try_from(n).unwrap().to_be_bytes());
        let dek = hazmat::data_key_from_bytes(bytes);
        let w = self.foreign.as_ref().unwrap_or(&self.kek).wrap(&dek, binding)?;
        Ok(Some((dek, w)))
    }
}

const MINUTE: Duration = Duration::from_secs(60);

/// A caching provider under test, over an inner provider `I` (sync; the
/// async shell sees it through [`AsyncOnly`]), and how to drive it.
trait Shell {
    /// What the shell wraps: `I`, or `AsyncOnly<I>`.
    type Inner<I: KeyEncryptionProvider>: ProviderIdentity;
    /// The caching provider. Its provider methods are called through the
    /// async trait in both cases (`p.unwrap_async(..)`): the sync shell's
    /// through the blanket implementation, which calls its sync methods.
    type P<I: KeyEncryptionProvider>: AsyncKeyEncryptionProvider + Send + Sync + 'static;

    fn builder<I: KeyEncryptionProvider>(
        inner: I,
        cache: &DataKeyCache,
        max_age: Duration,
    ) -> CachingProviderBuilder<Self::Inner<I>, Self::P<I>>;
    fn build<I: KeyEncryptionProvider>(
        b: CachingProviderBuilder<Self::Inner<I>, Self::P<I>>,
    ) -> Result<Self::P<I>, Error>;
    fn inner<I: KeyEncryptionProvider>(p: &Self::P<I>) -> &I;
    fn stats<I: KeyEncryptionProvider>(p: &Self::P<I>) -> CacheStats;
    fn cache<I: KeyEncryptionProvider>(p: &Self::P<I>) -> &DataKeyCache;
    fn debug<I: KeyEncryptionProvider>(p: &Self::P<I>) -> String;
    /// Seals with the shell as the first provider (and `also` as a second).
    async fn seal_with<I: KeyEncryptionProvider>(
        p: &Self::P<I>,
        suite: Suite,
        also: Option<&LocalKek>,
        msg: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error>;
    async fn open<I: KeyEncryptionProvider>(
        p: &Self::P<I>,
        env: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error>;

    async fn seal<I: KeyEncryptionProvider>(
        p: &Self::P<I>,
        msg: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        Self::seal_with(p, Suite::Aes256Gcm, None, msg, ctx).await
    }
    fn cached<I: KeyEncryptionProvider>(inner: I, cache: &DataKeyCache) -> Self::P<I> {
        Self::build(Self::builder(inner, cache, MINUTE)).unwrap()
    }
}

/// [`CachingProvider`] over `I`, driven through `lockbox::seal` / `Sealer` /
/// `Opener` and the sync trait.
struct SyncShell;

impl Shell for SyncShell {
    type Inner<I: KeyEncryptionProvider> = I;
    type P<I: KeyEncryptionProvider> = CachingProvider<I>;

    fn builder<I: KeyEncryptionProvider>(i: I, c: &DataKeyCache, age: Duration) -> CachingProviderBuilder<I> {
        CachingProvider::builder(i, c, age)
    }
    fn build<I: KeyEncryptionProvider>(b: CachingProviderBuilder<I>) -> Result<CachingProvider<I>, Error> {
        b.build()
    }
    fn inner<I: KeyEncryptionProvider>(p: &CachingProvider<I>) -> &I {
        p.inner()
    }
    fn stats<I: KeyEncryptionProvider>(p: &CachingProvider<I>) -> CacheStats {
        p.stats()
    }
    fn cache<I: KeyEncryptionProvider>(p: &CachingProvider<I>) -> &DataKeyCache {
        p.cache()
    }
    fn debug<I: KeyEncryptionProvider>(p: &CachingProvider<I>) -> String {
        format!("{p:?}")
    }
    async fn seal_with<I: KeyEncryptionProvider>(
        p: &CachingProvider<I>,
        suite: Suite,
        also: Option<&LocalKek>,
        msg: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        match also {
            Some(o) => Sealer::new(p).suite(suite).also_wrap_with(o).seal(msg, ctx),
            None => Sealer::new(p).suite(suite).seal(msg, ctx),
        }
    }
    async fn open<I: KeyEncryptionProvider>(
        p: &CachingProvider<I>,
        env: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        Opener::new(p).open(env, ctx)
    }
}

/// [`AsyncCachingProvider`] over `AsyncOnly<I>`, driven through
/// `AsyncSealer` / `AsyncOpener` and the async trait.
struct AsyncShell;

impl Shell for AsyncShell {
    type Inner<I: KeyEncryptionProvider> = AsyncOnly<I>;
    type P<I: KeyEncryptionProvider> = AsyncCachingProvider<AsyncOnly<I>>;

    fn builder<I: KeyEncryptionProvider>(
        i: I,
        c: &DataKeyCache,
        age: Duration,
    ) -> CachingProviderBuilder<AsyncOnly<I>, Self::P<I>> {
        AsyncCachingProvider::builder(AsyncOnly::new(i), c, age)
    }
    fn build<I: KeyEncryptionProvider>(
        b: CachingProviderBuilder<AsyncOnly<I>, Self::P<I>>,
    ) -> Result<Self::P<I>, Error> {
        b.build()
    }
    fn inner<I: KeyEncryptionProvider>(p: &Self::P<I>) -> &I {
        &p.inner().inner
    }
    fn stats<I: KeyEncryptionProvider>(p: &Self::P<I>) -> CacheStats {
        p.stats()
    }
    fn cache<I: KeyEncryptionProvider>(p: &Self::P<I>) -> &DataKeyCache {
        p.cache()
    }
    fn debug<I: KeyEncryptionProvider>(p: &Self::P<I>) -> String {
        format!("{p:?}")
    }
    async fn seal_with<I: KeyEncryptionProvider>(
        p: &Self::P<I>,
        suite: Suite,
        also: Option<&LocalKek>,
        msg: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        match also {
            Some(o) => AsyncSealer::new(p).suite(suite).also_wrap_with(o).seal(msg, ctx).await,
            None => AsyncSealer::new(p).suite(suite).seal(msg, ctx).await,
        }
    }
    async fn open<I: KeyEncryptionProvider>(
        p: &Self::P<I>,
        env: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        AsyncOpener::new(p).open(env, ctx).await
    }
}

/// One `#[test]` per shell for each generic test body `name::<S>()`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sync_shell() {
                super::block_on(super::$name::<super::SyncShell>());
            }
            #[test]
            fn async_shell() {
                super::block_on(super::$name::<super::AsyncShell>());
            }
        }
    )*};
}

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "cache-test")
        .unwrap()
        .with_required("tenant", tenant)
        .unwrap()
}

/// The wrapped bytes of an envelope's only wrapped key: equal for envelopes
/// sealed with one cached data key, different otherwise.
fn wrapped_of(env: &[u8]) -> Vec<u8> {
    let info = lockbox::inspect(env).unwrap();
    assert_eq!(info.wrapped_keys().len(), 1);
    info.wrapped_keys()[0].bytes().to_vec()
}

fn stats(seal_hits: u64, seal_misses: u64, seal_bypasses: u64, open_hits: u64, open_misses: u64) -> CacheStats {
    let mut s = CacheStats::default();
    s.seal_hits = seal_hits;
    s.seal_misses = seal_misses;
    s.seal_bypasses = seal_bypasses;
    s.open_hits = open_hits;
    s.open_misses = open_misses;
    s
}

both!(
    zero_limits_and_bad_partitions_are_rejected,
    reuse_never_repeats_message_keys,
    cached_dek_is_the_inner_providers_and_is_passed_the_length,
    max_messages_is_exact,
    max_bytes_is_exact,
    unknown_lengths_bypass_the_cache,
    max_age_is_exact_on_both_sides,
    a_clock_going_backwards_expires_entries,
    capacity_evicts_least_recently_used,
    dead_entries_make_room_before_live_ones,
    partitions_isolate,
    seal_entries_are_per_binding_and_suite,
    unwrap_hits_avoid_the_inner_provider,
    a_cached_key_does_not_open_under_another_context,
    provider_failures_are_returned_and_not_cached,
    clear_and_drop_remove_entries,
    forwards_identity_and_other_calls,
    debug_redacts_keys,
    eight_threads_share_one_cache_within_the_limits,
    a_shared_partition_enforces_the_tighter_limits,
    a_wrapped_key_the_provider_would_not_open_is_not_cached,
    one_inner_call_for_many_seals,
);

async fn zero_limits_and_bad_partitions_are_rejected<S: Shell>() {
    let invalid = |r: Result<(), Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(invalid(DataKeyCache::new(0).map(|_| ())));
    let cache = DataKeyCache::new(1).unwrap();
    let b = || S::builder(LocalKek::generate().unwrap(), &cache, MINUTE);
    let zero = S::builder(LocalKek::generate().unwrap(), &cache, Duration::ZERO);
    assert!(invalid(S::build(zero).map(|_| ())));
    assert!(invalid(S::build(b().max_messages(0)).map(|_| ())));
    assert!(invalid(S::build(b().max_bytes(0)).map(|_| ())));
    assert!(invalid(S::build(b().partition("")).map(|_| ())));
    assert!(invalid(S::build(b().partition("x".repeat(256))).map(|_| ())));
    // The smallest valid values build.
    assert!(S::build(b().partition("x".repeat(255)).max_messages(1).max_bytes(1)).is_ok());
    let tiny = S::builder(LocalKek::generate().unwrap(), &cache, Duration::from_nanos(1));
    assert!(S::build(tiny).is_ok());
}

async fn reuse_never_repeats_message_keys<S: Shell>() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let msg = [0u8; 100];
    let a = S::seal(&p, &msg, &c).await.unwrap();
    let b = S::seal(&p, &msg, &c).await.unwrap();
    assert_eq!(S::inner(&p).fresh_keys(), 1, "one data key for both messages");
    // Same data key, wrapped once ...
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    // ... but every message has its own message id, hence its own derived
    // payload key, nonces and commitment: identical plaintexts do not give
    // identical ciphertexts, and neither header nor payload bytes repeat.
    let (ia, ib) = (lockbox::inspect(&a).unwrap(), lockbox::inspect(&b).unwrap());
    assert_ne!(ia.message_id(), ib.message_id());
    assert_eq!(a.len(), b.len());
    let pa = &a[ia.header_len()..];
    let pb = &b[ib.header_len()..];
    assert_ne!(pa, pb);
    assert!(pa.iter().zip(pb).filter(|(x, y)| x == y).count() < pa.len() / 4);
    // Header keys differ too: the header tags (last 16 header bytes) differ.
    assert_ne!(
        a[ia.header_len() - 16..ia.header_len()],
        b[ib.header_len() - 16..ib.header_len()]
    );
    // Both are ordinary envelopes of the inner provider.
    assert_eq!(lockbox::open(&S::inner(&p).kek, &a, &c).unwrap(), msg);
    assert_eq!(lockbox::open(&S::inner(&p).kek, &b, &c).unwrap(), msg);
}

async fn cached_dek_is_the_inner_providers_and_is_passed_the_length<S: Shell>() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = S::cached(Counting::new(true), &cache);
    let c = ctx("acme");
    for len in [5usize, 7, 0] {
        let env = S::seal(&p, &vec![1u8; len], &c).await.unwrap();
        assert_eq!(lockbox::open(&S::inner(&p).kek, &env, &c).unwrap(), vec![1u8; len]);
    }
    // Provider-side generation was used once; its key was reused.
    assert_eq!(S::inner(&p).generates.load(Ordering::SeqCst), 1);
    assert_eq!(S::inner(&p).wraps.load(Ordering::SeqCst), 0);
    assert_eq!(*S::inner(&p).lengths.lock().unwrap(), [Some(5)]);
    assert_eq!(S::stats(&p), stats(2, 1, 0, 0, 0));
}

async fn max_messages_is_exact<S: Shell>() {
    for n in [1u64, 2, 3, 7] {
        let cache = DataKeyCache::new(4).unwrap();
        let p = S::build(S::builder(Counting::new(false), &cache, MINUTE).max_messages(n)).unwrap();
        let c = ctx("acme");
        let mut envs = Vec::new();
        for _ in 0..2 * n + 1 {
            envs.push(S::seal(&p, b"m", &c).await.unwrap());
        }
        // Messages 1..=n share one key, n+1..=2n the next, 2n+1 a third.
        for (i, env) in envs.iter().enumerate() {
            let run = i / usize::try_from(n).unwrap();
            let first = &envs[run * usize::try_from(n).unwrap()];
            assert_eq!(wrapped_of(env), wrapped_of(first), "n={n} message {i}");
            if run > 0 {
                assert_ne!(wrapped_of(env), wrapped_of(&envs[0]), "n={n} message {i}");
            }
        }
        assert_eq!(S::inner(&p).fresh_keys(), 3, "n={n}");
        assert_eq!(S::stats(&p), stats(2 * n - 2, 3, 0, 0, 0), "n={n}");
    }
}

async fn max_bytes_is_exact<S: Shell>() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = S::build(S::builder(Counting::new(false), &cache, MINUTE).max_bytes(100)).unwrap();
    let c = ctx("acme");
    let seal = async |len: usize| S::seal(&p, &vec![9u8; len], &c).await.unwrap();
    let a = seal(60).await; // miss: 60 of 100
    let b = seal(40).await; // hit: exactly 100
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(S::inner(&p).fresh_keys(), 1);
    let d = seal(1).await; // 101 would exceed: a new key
    assert_ne!(wrapped_of(&d), wrapped_of(&a));
    assert_eq!(S::inner(&p).fresh_keys(), 2);
    let e = seal(99).await; // exactly 100 on the new key
    assert_eq!(wrapped_of(&e), wrapped_of(&d));
    assert_eq!(S::inner(&p).fresh_keys(), 2);
    assert_eq!(S::stats(&p), stats(2, 2, 0, 0, 0));
    // A message longer than the limit on its own bypasses the cache and is
    // not cached; one of exactly the limit is sealed with a fresh key that is
    // not kept (it is spent).
    let f = seal(101).await;
    assert_eq!(S::stats(&p), stats(2, 2, 1, 0, 0));
    let g = seal(100).await;
    let h = seal(100).await;
    assert_ne!(wrapped_of(&g), wrapped_of(&h));
    assert_eq!(S::inner(&p).fresh_keys(), 5);
    assert_eq!(S::stats(&p), stats(2, 4, 1, 0, 0));
    for (env, len) in [(&f, 101), (&g, 100), (&h, 100)] {
        assert_eq!(lockbox::open(&S::inner(&p).kek, env, &c).unwrap(), vec![9u8; len]);
    }
}

/// A request without a plaintext length (a streaming seal) goes to the inner
/// provider uncached, and is passed on as it came.
async fn unknown_lengths_bypass_the_cache<S: Shell>() {
    for offer in [false, true] {
        let cache = DataKeyCache::new(4).unwrap();
        let p = S::cached(Counting::new(offer), &cache);
        let c = ctx("acme");
        let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
        for _ in 0..2 {
            let r = p
                .generate_data_key_async(DataKeyRequest::new(b.as_binding()))
                .await
                .unwrap();
            assert_eq!(r.is_some(), offer);
        }
        assert_eq!(S::stats(&p), stats(0, 0, 2, 0, 0));
        assert!(cache.is_empty());
        assert_eq!(*S::inner(&p).lengths.lock().unwrap(), [None, None]);
        assert_eq!(S::inner(&p).generates.load(Ordering::SeqCst), if offer { 2 } else { 0 });
    }
}

async fn max_age_is_exact_on_both_sides<S: Shell>() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(8, clock.clone()).unwrap();
    let age = Duration::from_secs(10);
    let p = S::build(S::builder(Counting::new(false), &cache, age)).unwrap();
    let c = ctx("acme");
    clock.set(Duration::from_secs(100));
    let a = S::seal(&p, b"a", &c).await.unwrap();
    clock.set(Duration::from_secs(110) - Duration::from_nanos(1));
    let b = S::seal(&p, b"b", &c).await.unwrap();
    assert_eq!(wrapped_of(&a), wrapped_of(&b), "one nanosecond before max_age: a hit");
    clock.set(Duration::from_secs(110));
    let d = S::seal(&p, b"d", &c).await.unwrap();
    assert_ne!(wrapped_of(&a), wrapped_of(&d), "at max_age: expired");
    assert_eq!(S::stats(&p), stats(1, 2, 0, 0, 0));

    // Open side: unwrapped at t=200, served until t=210 - 1ns.
    clock.set(Duration::from_secs(200));
    assert_eq!(S::open(&p, &a, &c).await.unwrap(), b"a");
    clock.set(Duration::from_secs(210) - Duration::from_nanos(1));
    assert_eq!(S::open(&p, &a, &c).await.unwrap(), b"a");
    assert_eq!(S::inner(&p).unwraps(), 1);
    clock.set(Duration::from_secs(210));
    assert_eq!(S::open(&p, &a, &c).await.unwrap(), b"a");
    assert_eq!(S::inner(&p).unwraps(), 2);
    assert_eq!(S::stats(&p), stats(1, 2, 0, 1, 2));
}

async fn a_clock_going_backwards_expires_entries<S: Shell>() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(8, clock.clone()).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    clock.set(Duration::from_secs(5));
    let a = S::seal(&p, b"a", &c).await.unwrap();
    clock.set(Duration::from_secs(4));
    let b = S::seal(&p, b"b", &c).await.unwrap();
    assert_ne!(wrapped_of(&a), wrapped_of(&b));
}

async fn capacity_evicts_least_recently_used<S: Shell>() {
    let cache = DataKeyCache::new(2).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let (a, b, c) = (ctx("a"), ctx("b"), ctx("c"));
    let seal = async |ctx: &EncryptionContext| wrapped_of(&S::seal(&p, b"x", ctx).await.unwrap());
    let wa = seal(&a).await; // miss
    let wb = seal(&b).await; // miss
    assert_eq!(seal(&a).await, wa); // hit: A is now the most recent
    assert_eq!(cache.len(), 2);
    let wc = seal(&c).await; // miss: evicts B, the least recently used
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.evictions(), 1);
    assert_eq!(seal(&a).await, wa); // A survived
    assert_eq!(seal(&c).await, wc); // C is cached
    assert_ne!(seal(&b).await, wb); // B was evicted: a new key (evicting A, now the LRU)
    assert_eq!(cache.evictions(), 2);
    assert_ne!(seal(&a).await, wa);
    assert_eq!(S::stats(&p), stats(3, 5, 0, 0, 0));
    assert_eq!(S::inner(&p).fresh_keys(), 5);
}

async fn dead_entries_make_room_before_live_ones<S: Shell>() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(2, clock.clone()).unwrap();
    let short = S::build(S::builder(Counting::new(false), &cache, Duration::from_secs(1))).unwrap();
    let long = S::cached(Counting::new(false), &cache);
    let wl = wrapped_of(&S::seal(&long, b"x", &ctx("l")).await.unwrap()); // LRU, alive
    S::seal(&short, b"x", &ctx("s")).await.unwrap(); // MRU, expires at t=1s
    clock.set(Duration::from_secs(2));
    S::seal(&long, b"x", &ctx("new")).await.unwrap(); // evicts the expired one, not the LRU
    assert_eq!(wrapped_of(&S::seal(&long, b"x", &ctx("l")).await.unwrap()), wl);
    assert_eq!(cache.evictions(), 1);
}

async fn partitions_isolate<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let kek = Arc::new(Counting::new(false));
    let build = |name: Option<&str>| {
        let b = S::builder(kek.clone(), &cache, MINUTE);
        S::build(match name {
            Some(n) => b.partition(n),
            None => b,
        })
        .unwrap()
    };
    let c = ctx("acme");
    let (p1, p1b, p2) = (build(Some("one")), build(Some("one")), build(Some("two")));
    let (u1, u2) = (build(None), build(None));
    let w = async |p: &S::P<Arc<Counting>>| wrapped_of(&S::seal(p, b"x", &c).await.unwrap());
    let w1 = w(&p1).await;
    assert_eq!(w(&p1b).await, w1, "same partition name: shared");
    assert_ne!(w(&p2).await, w1, "another partition: not shared");
    let wu1 = w(&u1).await;
    assert_ne!(wu1, w1);
    assert_ne!(w(&u2).await, wu1, "unnamed partitions are private");
    assert_eq!(w(&u1).await, wu1);
    assert_eq!(kek.fresh_keys(), 4);

    // Open side too: p2 does not see p1's unwrapped key.
    let env = lockbox::seal(&*kek, b"y", &c).unwrap();
    S::open(&p1, &env, &c).await.unwrap();
    S::open(&p1b, &env, &c).await.unwrap();
    assert_eq!(kek.unwraps(), 1);
    S::open(&p2, &env, &c).await.unwrap();
    assert_eq!(kek.unwraps(), 2);
}

async fn seal_entries_are_per_binding_and_suite<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let w = async |s: Suite, c: &EncryptionContext| wrapped_of(&S::seal_with(&p, s, None, b"x", c).await.unwrap());
    let base = w(Suite::Aes256Gcm, &c).await;
    assert_eq!(w(Suite::Aes256Gcm, &c).await, base);
    assert_ne!(w(Suite::ChaCha20Poly1305, &c).await, base);
    assert_ne!(w(Suite::Aes256Gcm, &ctx("other")).await, base);
    // A stored entry differing only in storage kind is another binding.
    let stored = EncryptionContext::new()
        .with("purpose", "cache-test")
        .unwrap()
        .with("tenant", "acme")
        .unwrap();
    assert_ne!(w(Suite::Aes256Gcm, &stored).await, base);
    assert_eq!(S::inner(&p).fresh_keys(), 4);
}

async fn unwrap_hits_avoid_the_inner_provider<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    // Sealed without the cache: every envelope has its own wrapped key.
    let e1 = lockbox::seal(&S::inner(&p).kek, b"one", &c).unwrap();
    let e2 = lockbox::seal(&S::inner(&p).kek, b"two", &c).unwrap();
    for _ in 0..5 {
        assert_eq!(S::open(&p, &e1, &c).await.unwrap(), b"one");
    }
    assert_eq!(S::inner(&p).unwraps(), 1);
    assert_eq!(S::open(&p, &e2, &c).await.unwrap(), b"two");
    assert_eq!(S::inner(&p).unwraps(), 2);
    assert_eq!(S::stats(&p), stats(0, 0, 0, 4, 2));

    // Envelopes sealed through the cache share a wrapped key: one unwrap opens all.
    let q = S::cached(Counting::new(false), &DataKeyCache::new(16).unwrap());
    let mut envs = Vec::new();
    for i in 0..10u8 {
        envs.push(S::seal(&q, &[i], &c).await.unwrap());
    }
    for (i, env) in (0..10u8).zip(&envs) {
        assert_eq!(S::open(&q, env, &c).await.unwrap(), [i]);
    }
    assert_eq!(S::inner(&q).unwraps(), 1);
}

async fn a_cached_key_does_not_open_under_another_context<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let env = S::seal(&p, b"secret", &c).await.unwrap();
    assert_eq!(S::open(&p, &env, &c).await.unwrap(), b"secret");
    // The data key is cached for (wrapped key, binding of "acme"). Another
    // required value is another binding: the cache is not consulted for it,
    // the inner unwrap fails, and nothing opens.
    match S::open(&p, &env, &ctx("evil")).await {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => {
            assert_eq!(e.kind(), ProviderErrorKind::Authentication);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(S::stats(&p).open_hits, 0);
    assert_eq!(S::stats(&p).open_misses, 2);
    // A tampered wrapped key is another cache key too.
    let info = lockbox::inspect(&env).unwrap();
    let w = &info.wrapped_keys()[0];
    let mut bytes = w.bytes().to_vec();
    bytes[0] ^= 1;
    let tampered = WrappedKey::new(w.provider_id(), w.key_id().clone(), w.key_version(), bytes).unwrap();
    let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
    let e = p.unwrap_async(tampered.as_ref(), b.as_binding()).await.unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Authentication);
    // The genuine one is a hit and is the right key.
    let k = p.unwrap_async(w.as_ref(), b.as_binding()).await.unwrap();
    let direct = S::inner(&p).kek.unwrap(w.as_ref(), b.as_binding()).unwrap();
    assert_eq!(k.expose_secret(), direct.expose_secret());
    assert_eq!(S::stats(&p).open_hits, 1);
}

async fn provider_failures_are_returned_and_not_cached<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    for offer in [false, true] {
        let p = S::cached(Counting::new(offer), &cache);
        let c = ctx("acme");
        let env = lockbox::seal(&S::inner(&p).kek, b"x", &c).unwrap();
        S::inner(&p).fail.store(true, Ordering::SeqCst);
        match S::seal(&p, b"x", &c).await {
            Err(Error::Provider(e)) => assert_eq!(e.kind(), ProviderErrorKind::Unavailable),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            S::open(&p, &env, &c).await,
            Err(Error::NoProviderCouldUnwrap { attempts: 1, .. })
        ));
        assert!(cache.is_empty());
        S::inner(&p).fail.store(false, Ordering::SeqCst);
        let a = S::seal(&p, b"x", &c).await.unwrap();
        assert_eq!(S::open(&p, &a, &c).await.unwrap(), b"x");
        assert_eq!(S::open(&p, &env, &c).await.unwrap(), b"x");
        // Seal and open entries are separate: three unwraps, one of which failed.
        assert_eq!(S::stats(&p), stats(0, 2, 0, 0, 3));
        cache.clear();
    }
}

async fn clear_and_drop_remove_entries<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = S::cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let a = S::seal(&p, b"x", &c).await.unwrap();
    S::open(&p, &a, &c).await.unwrap();
    assert_eq!(cache.len(), 2, "one seal entry, one open entry");
    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.evictions(), 2);
    assert_ne!(wrapped_of(&S::seal(&p, b"x", &c).await.unwrap()), wrapped_of(&a));
    assert_eq!(S::cache(&p).len(), 1, "the provider's handle is the same store");
    // The store lives as long as a handle to it does.
    drop(p);
    assert_eq!(cache.len(), 1);
}

async fn forwards_identity_and_other_calls<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let p = S::cached(kek, &cache);
    assert_eq!(p.provider_id(), lockbox::LOCAL_PROVIDER_ID);
    let c = ctx("acme");
    let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
    let dek = DataKey::generate().unwrap();
    let w = p.wrap_async(&dek, b.as_binding()).await.unwrap();
    assert!(p.matches(w.as_ref()));
    assert_eq!(
        S::inner(&p).unwrap(w.as_ref(), b.as_binding()).unwrap().expose_secret(),
        dek.expose_secret()
    );
    let wo = other.wrap(&dek, b.as_binding()).unwrap();
    assert!(!p.matches(wo.as_ref()));
    assert!(p.rewrap_async(w.as_ref(), b.as_binding()).await.unwrap().is_none());
    assert!(
        p.generate_data_key_async(DataKeyRequest::new(b.as_binding()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(S::stats(&p), stats(0, 0, 1, 0, 0));
    // Wrapping with a second provider: the cached key is wrapped by both, and
    // either opens every envelope.
    let e1 = S::seal_with(&p, Suite::Aes256Gcm, Some(&other), b"1", &c)
        .await
        .unwrap();
    let e2 = S::seal_with(&p, Suite::Aes256Gcm, Some(&other), b"2", &c)
        .await
        .unwrap();
    assert_eq!(S::stats(&p).seal_hits, 1);
    for (env, m) in [(&e1, b"1"), (&e2, b"2")] {
        assert_eq!(lockbox::open(&other, env, &c).unwrap(), m);
        assert_eq!(S::open(&p, env, &c).await.unwrap(), m);
    }
}

async fn debug_redacts_keys<S: Shell>() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = S::build(S::builder(Counting::new(true), &cache, MINUTE).partition("billing")).unwrap();
    let c = ctx("acme");
    S::seal(&p, b"x", &c).await.unwrap();
    // The counting provider's first key is 00..01 5a 5a ... 5a.
    let s = format!("{} {cache:?}", S::debug(&p));
    assert!(
        s.contains("CachingProvider") && s.contains("billing") && s.contains("len: 1"),
        "{s}"
    );
    assert!(!s.to_lowercase().contains("5a5a") && !s.contains("90, 90"), "{s}");
    let b = format!(
        "{:?}",
        S::builder(Counting::new(true), &cache, MINUTE).partition("billing")
    );
    assert!(b.contains("CachingProviderBuilder") && b.contains("billing"), "{b}");
    let unnamed = S::cached(LocalKek::generate().unwrap(), &cache);
    assert!(S::debug(&unnamed).contains("partition: <private>"));
}

async fn eight_threads_share_one_cache_within_the_limits<S: Shell>() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    const MAX_MESSAGES: u64 = 16;
    let cache = DataKeyCache::new(64).unwrap();
    let p = S::build(S::builder(Counting::new(false), &cache, MINUTE).max_messages(MAX_MESSAGES)).unwrap();
    let c = ctx("acme");
    // Each thread drives its own seals and opens (the async shell's on a
    // small executor of its own), interleaved with the others'.
    let envs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (p, c) = (&p, &c);
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let msg = format!("{t}/{i}");
                            let env = block_on(S::seal(p, msg.as_bytes(), c)).unwrap();
                            assert_eq!(block_on(S::open(p, &env, c)).unwrap(), msg.as_bytes());
                            env
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let total = THREADS * PER_THREAD;
    assert_eq!(envs.len(), total);
    // No data key sealed more than MAX_MESSAGES messages.
    let mut per_key: HashMap<Vec<u8>, u64> = HashMap::new();
    for env in &envs {
        *per_key.entry(wrapped_of(env)).or_default() += 1;
    }
    assert!(per_key.values().all(|&n| n <= MAX_MESSAGES), "{per_key:?}");
    let st = S::stats(&p);
    let total = u64::try_from(total).unwrap();
    assert_eq!(st.seal_hits + st.seal_misses, total);
    assert_eq!(st.seal_bypasses, 0);
    // Every miss produced exactly one inner key, and every key in use came from a miss.
    assert_eq!(usize::try_from(st.seal_misses).unwrap(), S::inner(&p).fresh_keys());
    assert_eq!(u64::try_from(per_key.len()).unwrap(), st.seal_misses);
    assert!(st.seal_misses >= total.div_ceil(MAX_MESSAGES));
    // Opens: every call counted, every miss is one inner unwrap, and each
    // wrapped key is unwrapped at most once per thread (a racing miss).
    assert_eq!(st.open_hits + st.open_misses, total);
    assert_eq!(u64::try_from(S::inner(&p).unwraps()).unwrap(), st.open_misses);
    assert!(S::inner(&p).unwraps() <= per_key.len() * THREADS);
    assert!(st.open_hits > 0);
    // Every envelope opens without the cache.
    for env in envs.iter().step_by(97) {
        lockbox::open(&S::inner(&p).kek, env, &c).unwrap();
    }
}

/// Each limit in isolation: a strict and a lax provider share a partition;
/// whichever created an entry, a lookup obeys the tighter of the two limits.
async fn a_shared_partition_enforces_the_tighter_limits<S: Shell>() {
    let c = ctx("acme");
    let w = async |p: &S::P<Arc<Counting>>, len: usize| wrapped_of(&S::seal(p, &vec![0; len], &c).await.unwrap());
    let setup = |age: Duration, messages: u64, bytes: u64| {
        let clock = Arc::new(ManualClock::default());
        let cache = DataKeyCache::with_clock(16, clock.clone()).unwrap();
        let kek = Arc::new(Counting::new(false));
        let strict = S::builder(kek.clone(), &cache, age)
            .partition("shared")
            .max_messages(messages)
            .max_bytes(bytes);
        let lax = S::builder(kek.clone(), &cache, MINUTE).partition("shared");
        (clock, kek, S::build(strict).unwrap(), S::build(lax).unwrap())
    };
    let big = u64::MAX;

    // Messages.
    let (_, _, strict, lax) = setup(MINUTE, 2, big);
    let a = w(&strict, 1).await;
    assert_eq!(w(&lax, 1).await, a);
    assert_ne!(w(&lax, 1).await, a, "the strict creator allowed 2 messages");
    let (_, _, strict, lax) = setup(MINUTE, 2, big);
    let a = w(&lax, 1).await;
    assert_eq!(w(&strict, 1).await, a);
    assert_ne!(w(&strict, 1).await, a, "the strict user allows 2 messages");

    // Bytes.
    let (_, _, strict, lax) = setup(MINUTE, big, 10);
    let a = w(&strict, 1).await;
    assert_eq!(w(&lax, 9).await, a);
    assert_ne!(w(&lax, 1).await, a, "the strict creator allowed 10 bytes");
    let (_, _, strict, lax) = setup(MINUTE, big, 10);
    let a = w(&lax, 1).await;
    assert_eq!(w(&strict, 9).await, a);
    assert_ne!(w(&strict, 1).await, a, "the strict user allows 10 bytes");

    // Age.
    let (clock, _, strict, lax) = setup(Duration::from_secs(1), big, big);
    let a = w(&strict, 1).await;
    clock.set(Duration::from_secs(1));
    assert_ne!(w(&lax, 1).await, a, "the strict creator allowed 1 s");
    let (clock, _, strict, lax) = setup(Duration::from_secs(1), big, big);
    let a = w(&lax, 1).await;
    clock.set(Duration::from_secs(1));
    assert_eq!(w(&lax, 1).await, a, "the lax provider still uses its entry");
    assert_ne!(w(&strict, 1).await, a, "the strict user allows 1 s");

    // Age on the open side, both ways.
    for strict_first in [true, false] {
        let (clock, kek, strict, lax) = setup(Duration::from_secs(1), big, big);
        let env = lockbox::seal(&kek.kek, b"o", &c).unwrap();
        let (first, second) = if strict_first { (&strict, &lax) } else { (&lax, &strict) };
        S::open(first, &env, &c).await.unwrap();
        clock.set(Duration::from_secs(1));
        S::open(second, &env, &c).await.unwrap();
        assert_eq!(kek.unwraps(), 2, "strict_first={strict_first}");
    }
}

async fn a_wrapped_key_the_provider_would_not_open_is_not_cached<S: Shell>() {
    let cache = DataKeyCache::new(4).unwrap();
    let mut inner = Counting::new(true);
    inner.foreign = Some(LocalKek::generate().unwrap());
    let p = S::cached(inner, &cache);
    let c = ctx("acme");
    for _ in 0..2 {
        assert!(matches!(S::seal(&p, b"x", &c).await, Err(Error::Provider(_))));
    }
    assert!(cache.is_empty());
    assert_eq!(S::inner(&p).generates.load(Ordering::SeqCst), 2);
}

/// The point of the cache: N seals, one call to the inner provider for a
/// data key; N opens, one unwrap.
async fn one_inner_call_for_many_seals<S: Shell>() {
    const N: usize = 50;
    for offer in [false, true] {
        let p = S::cached(Counting::new(offer), &DataKeyCache::new(4).unwrap());
        let c = ctx("acme");
        let mut envs = Vec::new();
        for i in 0..N {
            envs.push(S::seal(&p, format!("message {i}").as_bytes(), &c).await.unwrap());
        }
        assert_eq!(S::inner(&p).fresh_keys(), 1, "offer={offer}");
        for (i, env) in envs.iter().enumerate() {
            assert_eq!(S::open(&p, env, &c).await.unwrap(), format!("message {i}").as_bytes());
        }
        assert_eq!(S::inner(&p).unwraps(), 1);
        let n = u64::try_from(N).unwrap();
        assert_eq!(S::stats(&p), stats(n - 1, 1, 0, n - 1, 1));
    }
}

/// A reference model of the seal side (one provider, one partition): which
/// messages reuse which key, with capacity, LRU order and every limit.
#[derive(Default)]
struct Model {
    /// context index -> (key id, created, messages, bytes, last used)
    entries: HashMap<usize, (usize, u64, u64, u64, u64)>,
    tick: u64,
    keys: usize,
}

#[derive(Clone, Copy, Debug)]
struct ModelLimits {
    capacity: usize,
    age: u64,
    messages: u64,
    bytes: u64,
}

impl Model {
    /// The key id a seal of `len` bytes under context `ctx` at `now` uses.
    fn seal(&mut self, l: ModelLimits, ctx: usize, len: u64, now: u64) -> usize {
        let fresh = |created: u64| now.checked_sub(created).is_some_and(|a| a < l.age);
        if len > l.bytes {
            self.keys += 1;
            return self.keys; // bypass: never cached
        }
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(&ctx) {
            if fresh(e.1) && e.2 < l.messages && e.3 + len <= l.bytes {
                e.2 += 1;
                e.3 += len;
                e.4 = self.tick;
                return e.0;
            }
            self.entries.remove(&ctx);
        }
        self.keys += 1;
        let dead = |e: &(usize, u64, u64, u64, u64)| !fresh(e.1) || e.2 >= l.messages || e.3 >= l.bytes;
        let entry = (self.keys, now, 1, len, 0);
        if dead(&entry) {
            return self.keys;
        }
        self.tick += 1;
        if self.entries.len() >= l.capacity {
            self.entries.retain(|_, e| !dead(e));
        }
        while self.entries.len() >= l.capacity {
            let lru = *self.entries.iter().min_by_key(|(_, e)| e.4).unwrap().0;
            self.entries.remove(&lru);
        }
        self.entries
            .insert(ctx, (entry.0, entry.1, entry.2, entry.3, self.tick));
        self.keys
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;

    type Ops = Vec<(usize, u64, u64)>;

    fn cases() -> impl Strategy<Value = (ModelLimits, Ops)> {
        (
            1usize..4,
            1u64..20,
            1u64..6,
            1u64..12,
            proptest::collection::vec((0usize..5, 0u64..14, 0u64..4), 1..60),
        )
            .prop_map(|(capacity, age, messages, bytes, ops)| {
                let l = ModelLimits {
                    capacity,
                    age,
                    messages,
                    bytes,
                };
                (l, ops)
            })
    }

    /// Random limits and random runs of (context, length, clock step): the
    /// cache reuses a key exactly when the model does, and no key ever
    /// exceeds a limit.
    fn seal_side_matches_the_model<S: Shell>(l: ModelLimits, ops: Ops) -> Result<(), TestCaseError> {
        let clock = Arc::new(ManualClock::default());
        let cache = DataKeyCache::with_clock(l.capacity, clock.clone()).unwrap();
        let b = S::builder(Counting::new(false), &cache, Duration::from_nanos(l.age))
            .max_messages(l.messages)
            .max_bytes(l.bytes);
        let p = S::build(b).unwrap();
        let contexts: Vec<EncryptionContext> = (0..5).map(|i| ctx(&i.to_string())).collect();
        let mut model = Model::default();
        // model key id -> wrapped bytes; wrapped bytes -> (first use, uses, bytes)
        let mut ids: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut usage: HashMap<Vec<u8>, (u64, u64, u64)> = HashMap::new();
        let mut now = 0u64;
        for (c, len, step) in ops {
            now += step;
            clock.set(Duration::from_nanos(now));
            let msg = vec![0u8; usize::try_from(len).unwrap()];
            let env = block_on(S::seal(&p, &msg, &contexts[c])).unwrap();
            let w = wrapped_of(&env);
            let id = model.seal(l, c, len, now);
            match ids.get(&id) {
                Some(expected) => prop_assert_eq!(&w, expected, "model reuses key {}", id),
                None => {
                    prop_assert!(!usage.contains_key(&w), "model wants a new key, cache reused one");
                    ids.insert(id, w.clone());
                }
            }
            let u = usage.entry(w).or_insert((now, 0, 0));
            u.1 += 1;
            u.2 += len;
            prop_assert!(u.1 <= l.messages, "message limit exceeded");
            prop_assert!(u.2 <= l.bytes.max(len), "byte limit exceeded");
            prop_assert!(now - u.0 < l.age || u.1 == 1, "age limit exceeded");
        }
        let st = S::stats(&p);
        prop_assert_eq!(usize::try_from(st.seal_misses + st.seal_bypasses).unwrap(), model.keys);
        prop_assert!(cache.len() <= l.capacity);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sync_shell_matches_the_model((l, ops) in cases()) {
            seal_side_matches_the_model::<SyncShell>(l, ops)?;
        }

        #[test]
        fn async_shell_matches_the_model((l, ops) in cases()) {
            seal_side_matches_the_model::<AsyncShell>(l, ops)?;
        }
    }
}

// ---------------------------------------------------------------------------
// Entry points of one kind of sealer, and the async shell's own promises.
// ---------------------------------------------------------------------------

fn cached<P: KeyEncryptionProvider>(inner: P, cache: &DataKeyCache) -> CachingProvider<P> {
    SyncShell::cached(inner, cache)
}

#[test]
fn bytes_limit_counts_seal_in_place_and_seal_to() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = CachingProvider::builder(Counting::new(false), &cache, MINUTE)
        .max_bytes(10)
        .build()
        .unwrap();
    let c = ctx("acme");
    let sealer = Sealer::new(&p);
    let mut buf = vec![1u8; 6];
    sealer.seal_in_place(&mut buf, &c).unwrap();
    let mut out = Vec::new();
    sealer.seal_to(&[2u8; 4], &c, &mut out).unwrap();
    assert_eq!(wrapped_of(&buf), wrapped_of(&out));
    let mut rng = FixedRng(3);
    let x = sealer.seal_with_rng(&mut rng, &[3u8; 1], &c).unwrap();
    assert_ne!(wrapped_of(&x), wrapped_of(&buf), "6 + 4 + 1 > 10");
    assert_eq!(*p.inner().lengths.lock().unwrap(), [Some(6), Some(1)]);
}

/// A test RNG (never for real use): counter bytes.
struct FixedRng(u8);
impl TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from(self.0))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from(self.0))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}
impl TryCryptoRng for FixedRng {}

#[test]
fn streaming_bypasses_the_cache() {
    use std::io::Write as _;
    let cache = DataKeyCache::new(4).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let mut envs = Vec::new();
    for _ in 0..2 {
        let mut e = Sealer::new(&p).encryptor(Vec::new(), &c).unwrap();
        e.write_all(b"streamed").unwrap();
        envs.push(e.finish().unwrap());
    }
    assert_ne!(wrapped_of(&envs[0]), wrapped_of(&envs[1]));
    assert_eq!(p.stats(), stats(0, 0, 2, 0, 0));
    assert!(cache.is_empty());
    assert_eq!(*p.inner().lengths.lock().unwrap(), [None, None]);
    for env in &envs {
        assert_eq!(lockbox::open(&p, env, &c).unwrap(), b"streamed");
    }
}

/// Offers provider-side generation, counting its calls.
#[derive(Debug)]
struct GenerateOnly(LocalKek, AtomicUsize);

impl ProviderIdentity for GenerateOnly {
    fn provider_id(&self) -> &str {
        self.0.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.0.matches(w)
    }
}

impl KeyEncryptionProvider for GenerateOnly {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.0.wrap(dek, binding)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.0.unwrap(w, binding)
    }
    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let binding = request.binding();
        self.1.fetch_add(1, Ordering::SeqCst);
        let dek = DataKey::generate().unwrap();
        let w = self.0.wrap(&dek, binding)?;
        Ok(Some((dek, w)))
    }
}

#[test]
fn the_length_reaches_providers_through_arc_box_and_the_default() {
    let c = ctx("acme");
    let arc = Arc::new(Counting::new(false));
    lockbox::seal(&arc, b"12345", &c).unwrap();
    let boxed = Box::new(Counting::new(false));
    // `&Box<Counting>` as a provider: the Box forwarding impl.
    lockbox::seal(&boxed, b"123", &c).unwrap();
    assert_eq!(*arc.lengths.lock().unwrap(), [Some(5)]);
    assert_eq!(*boxed.lengths.lock().unwrap(), [Some(3)]);
    // Asked directly, without a length.
    let g = GenerateOnly(LocalKek::generate().unwrap(), AtomicUsize::new(0));
    let env = lockbox::seal(&g, b"x", &c).unwrap();
    let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
    assert!(
        g.generate_data_key(DataKeyRequest::new(b.as_binding()))
            .unwrap()
            .is_some()
    );
    assert_eq!(g.1.load(Ordering::SeqCst), 2);
    assert_eq!(lockbox::open(&g, &env, &c).unwrap(), b"x");
    // And a cache over it uses provider-side generation on a miss only.
    let p = cached(g, &DataKeyCache::new(4).unwrap());
    lockbox::seal(&p, b"x", &c).unwrap();
    lockbox::seal(&p, b"x", &c).unwrap();
    assert_eq!(p.inner().1.load(Ordering::SeqCst), 3);
}

#[test]
fn wraps_a_shared_trait_object() {
    let inner: Arc<dyn KeyEncryptionProvider> = Arc::new(LocalKek::generate().unwrap());
    let p = cached(inner.clone(), &DataKeyCache::new(4).unwrap());
    let c = ctx("acme");
    let a = lockbox::seal(&p, b"a", &c).unwrap();
    let b = lockbox::seal(&p, b"b", &c).unwrap();
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(lockbox::open(&*inner, &b, &c).unwrap(), b"b");
    // Shareable across threads as a trait object itself.
    let shared: Arc<dyn KeyEncryptionProvider> = Arc::new(p);
    std::thread::spawn(move || lockbox::seal(&*shared, b"c", &ctx("acme")).unwrap())
        .join()
        .unwrap();
}

#[tokio::test]
async fn the_async_sealer_passes_the_length_and_hits_the_cache() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let sealer = AsyncSealer::new(&p);
    let a = sealer.seal(b"first", &c).await.unwrap();
    let b = sealer.seal(b"second", &c).await.unwrap();
    // One data key for both (one miss, one hit), and the inner provider saw
    // the length of the one message it was asked about.
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(p.stats(), stats(1, 1, 0, 0, 0));
    assert_eq!(*p.inner().lengths.lock().unwrap(), [Some(5)]);
    let opener = AsyncOpener::new(&p);
    assert_eq!(opener.open(&a, &c).await.unwrap(), b"first");
    assert_eq!(opener.open(&b, &c).await.unwrap(), b"second");
}

/// One call to an async-only inner provider for N seals through
/// `AsyncSealer`, and one for N opens through `AsyncOpener`, counted at the
/// provider's async trait.
#[tokio::test]
async fn the_async_shell_makes_one_inner_call_for_n_seals() {
    const N: usize = 100;
    let cache = DataKeyCache::new(16).unwrap();
    let p = AsyncCachingProvider::builder(AsyncOnly::new(LocalKek::generate().unwrap()), &cache, MINUTE)
        .max_messages(1000)
        .partition("billing")
        .build()
        .unwrap();
    let c = ctx("acme");
    let sealer = AsyncSealer::new(&p);
    let mut envs = Vec::new();
    for i in 0..N {
        envs.push(sealer.seal(format!("message {i}").as_bytes(), &c).await.unwrap());
    }
    // LocalKek offers no provider-side generation: asked once, then one wrap.
    assert_eq!(p.inner().calls(), 2);
    let opener = AsyncOpener::new(&p);
    for (i, env) in envs.iter().enumerate() {
        assert_eq!(opener.open(env, &c).await.unwrap(), format!("message {i}").as_bytes());
        // Ordinary envelopes of the inner KEK.
        assert_eq!(
            lockbox::open(&p.inner().inner, env, &c).unwrap(),
            format!("message {i}").as_bytes()
        );
    }
    assert_eq!(p.inner().calls(), 3, "one unwrap for every open");
    let n = u64::try_from(N).unwrap();
    assert_eq!(p.stats(), stats(n - 1, 1, 0, n - 1, 1));
}

/// A sync and an async caching provider share one store: with the same
/// partition name and the same inner key, each reuses the other's entries.
#[tokio::test]
async fn sync_and_async_shells_share_a_store() {
    let cache = DataKeyCache::new(16).unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap());
    let sync = CachingProvider::builder(kek.clone(), &cache, MINUTE)
        .partition("shared")
        .build()
        .unwrap();
    let asy = AsyncCachingProvider::builder(AsyncOnly::new(kek.clone()), &cache, MINUTE)
        .partition("shared")
        .build()
        .unwrap();
    let c = ctx("acme");
    let a = lockbox::seal(&sync, b"a", &c).unwrap();
    let b = AsyncSealer::new(&asy).seal(b"b", &c).await.unwrap();
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(AsyncOpener::new(&asy).open(&a, &c).await.unwrap(), b"a");
    assert_eq!(lockbox::open(&sync, &b, &c).unwrap(), b"b");
    assert_eq!(asy.inner().calls(), 1, "only the async shell's open unwrapped");
    assert_eq!((sync.stats().seal_misses, asy.stats().seal_hits), (1, 1));
    assert_eq!((asy.stats().open_misses, sync.stats().open_hits), (1, 1));
}

/// The async shell as a shared trait object, its futures spawned on a
/// multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_shell_is_a_shareable_trait_object() {
    let inner = AsyncOnly::new(LocalKek::generate().unwrap());
    let p = AsyncCachingProvider::builder(inner, &DataKeyCache::new(4).unwrap(), MINUTE)
        .build()
        .unwrap();
    let shared: Arc<dyn AsyncKeyEncryptionProvider> = Arc::new(p);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let p = shared.clone();
            tokio::spawn(async move {
                let c = ctx("acme");
                let env = AsyncSealer::new(&*p).seal(&[i], &c).await.unwrap();
                assert_eq!(AsyncOpener::new(&*p).open(&env, &c).await.unwrap(), [i]);
                wrapped_of(&env)
            })
        })
        .collect();
    let mut wrapped = Vec::new();
    for t in tasks {
        wrapped.push(t.await.unwrap());
    }
    wrapped.dedup();
    assert!(!wrapped.is_empty());
}
