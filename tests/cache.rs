//! The data-key cache: every limit enforced exactly, partitions, the open-side
//! cache, eviction, statistics, concurrency, and that cached envelopes are
//! ordinary envelopes of the inner provider.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use lockbox::cache::{CacheStats, CachingProvider, Clock, DataKeyCache};
use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    Binding, DataKey, EncryptionContext, Error, KeyEncryptionProvider, LocalKek, Opener, ProviderError,
    ProviderErrorKind, ProviderIdentity, Sealer, Suite, WrappedKey, WrappedKeyRef, hazmat,
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
    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
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

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "cache-test")
        .unwrap()
        .with_required("tenant", tenant)
        .unwrap()
}

fn cached<P: KeyEncryptionProvider>(inner: P, cache: &DataKeyCache) -> CachingProvider<P> {
    CachingProvider::builder(inner, cache, MINUTE).build().unwrap()
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

#[test]
fn zero_limits_and_bad_partitions_are_rejected() {
    let invalid = |r: Result<_, Error>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(invalid(DataKeyCache::new(0).map(|_| ())));
    let cache = DataKeyCache::new(1).unwrap();
    let b = || CachingProvider::builder(LocalKek::generate().unwrap(), &cache, MINUTE);
    assert!(invalid(
        CachingProvider::builder(LocalKek::generate().unwrap(), &cache, Duration::ZERO)
            .build()
            .map(|_| ())
    ));
    assert!(invalid(b().max_messages(0).build().map(|_| ())));
    assert!(invalid(b().max_bytes(0).build().map(|_| ())));
    assert!(invalid(b().partition("").build().map(|_| ())));
    assert!(invalid(b().partition("x".repeat(256)).build().map(|_| ())));
    // The smallest valid values build.
    assert!(
        b().partition("x".repeat(255))
            .max_messages(1)
            .max_bytes(1)
            .build()
            .is_ok()
    );
    assert!(
        CachingProvider::builder(LocalKek::generate().unwrap(), &cache, Duration::from_nanos(1))
            .build()
            .is_ok()
    );
}

#[test]
fn reuse_never_repeats_message_keys() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let msg = [0u8; 100];
    let a = lockbox::seal(&p, &msg, &c).unwrap();
    let b = lockbox::seal(&p, &msg, &c).unwrap();
    assert_eq!(p.inner().fresh_keys(), 1, "one data key for both messages");
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
    assert_eq!(lockbox::open(&p.inner().kek, &a, &c).unwrap(), msg);
    assert_eq!(lockbox::open(&p.inner().kek, &b, &c).unwrap(), msg);
}

#[test]
fn cached_dek_is_the_inner_providers_and_is_passed_the_length() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = cached(Counting::new(true), &cache);
    let c = ctx("acme");
    for len in [5usize, 7, 0] {
        let env = lockbox::seal(&p, &vec![1u8; len], &c).unwrap();
        assert_eq!(lockbox::open(&p.inner().kek, &env, &c).unwrap(), vec![1u8; len]);
    }
    // Provider-side generation was used once; its key was reused.
    assert_eq!(p.inner().generates.load(Ordering::SeqCst), 1);
    assert_eq!(p.inner().wraps.load(Ordering::SeqCst), 0);
    assert_eq!(*p.inner().lengths.lock().unwrap(), [Some(5)]);
    assert_eq!(p.stats(), stats(2, 1, 0, 0, 0));
}

#[test]
fn max_messages_is_exact() {
    for n in [1u64, 2, 3, 7] {
        let cache = DataKeyCache::new(4).unwrap();
        let p = CachingProvider::builder(Counting::new(false), &cache, MINUTE)
            .max_messages(n)
            .build()
            .unwrap();
        let c = ctx("acme");
        let envs: Vec<Vec<u8>> = (0..2 * n + 1).map(|_| lockbox::seal(&p, b"m", &c).unwrap()).collect();
        // Messages 1..=n share one key, n+1..=2n the next, 2n+1 a third.
        for (i, env) in envs.iter().enumerate() {
            let run = i / usize::try_from(n).unwrap();
            let first = &envs[run * usize::try_from(n).unwrap()];
            assert_eq!(wrapped_of(env), wrapped_of(first), "n={n} message {i}");
            if run > 0 {
                assert_ne!(wrapped_of(env), wrapped_of(&envs[0]), "n={n} message {i}");
            }
        }
        assert_eq!(p.inner().fresh_keys(), 3, "n={n}");
        assert_eq!(p.stats(), stats(2 * n - 2, 3, 0, 0, 0), "n={n}");
    }
}

#[test]
fn max_bytes_is_exact() {
    let cache = DataKeyCache::new(4).unwrap();
    let p = CachingProvider::builder(Counting::new(false), &cache, MINUTE)
        .max_bytes(100)
        .build()
        .unwrap();
    let c = ctx("acme");
    let seal = |len: usize| lockbox::seal(&p, &vec![9u8; len], &c).unwrap();
    let a = seal(60); // miss: 60 of 100
    let b = seal(40); // hit: exactly 100
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(p.inner().fresh_keys(), 1);
    let d = seal(1); // 101 would exceed: a new key
    assert_ne!(wrapped_of(&d), wrapped_of(&a));
    assert_eq!(p.inner().fresh_keys(), 2);
    let e = seal(99); // exactly 100 on the new key
    assert_eq!(wrapped_of(&e), wrapped_of(&d));
    assert_eq!(p.inner().fresh_keys(), 2);
    assert_eq!(p.stats(), stats(2, 2, 0, 0, 0));
    // A message longer than the limit on its own bypasses the cache and is
    // not cached; one of exactly the limit is sealed with a fresh key that is
    // not kept (it is spent).
    let f = seal(101);
    assert_eq!(p.stats(), stats(2, 2, 1, 0, 0));
    let g = seal(100);
    let h = seal(100);
    assert_ne!(wrapped_of(&g), wrapped_of(&h));
    assert_eq!(p.inner().fresh_keys(), 5);
    assert_eq!(p.stats(), stats(2, 4, 1, 0, 0));
    for (env, len) in [(&f, 101), (&g, 100), (&h, 100)] {
        assert_eq!(lockbox::open(&p.inner().kek, env, &c).unwrap(), vec![9u8; len]);
    }
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

#[test]
fn max_age_is_exact_on_both_sides() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(8, clock.clone()).unwrap();
    let age = Duration::from_secs(10);
    let p = CachingProvider::builder(Counting::new(false), &cache, age)
        .build()
        .unwrap();
    let c = ctx("acme");
    clock.set(Duration::from_secs(100));
    let a = lockbox::seal(&p, b"a", &c).unwrap();
    clock.set(Duration::from_secs(110) - Duration::from_nanos(1));
    let b = lockbox::seal(&p, b"b", &c).unwrap();
    assert_eq!(wrapped_of(&a), wrapped_of(&b), "one nanosecond before max_age: a hit");
    clock.set(Duration::from_secs(110));
    let d = lockbox::seal(&p, b"d", &c).unwrap();
    assert_ne!(wrapped_of(&a), wrapped_of(&d), "at max_age: expired");
    assert_eq!(p.stats(), stats(1, 2, 0, 0, 0));

    // Open side: unwrapped at t=200, served until t=210 - 1ns.
    clock.set(Duration::from_secs(200));
    assert_eq!(lockbox::open(&p, &a, &c).unwrap(), b"a");
    clock.set(Duration::from_secs(210) - Duration::from_nanos(1));
    assert_eq!(lockbox::open(&p, &a, &c).unwrap(), b"a");
    assert_eq!(p.inner().unwraps(), 1);
    clock.set(Duration::from_secs(210));
    assert_eq!(lockbox::open(&p, &a, &c).unwrap(), b"a");
    assert_eq!(p.inner().unwraps(), 2);
    assert_eq!(p.stats(), stats(1, 2, 0, 1, 2));
}

#[test]
fn a_clock_going_backwards_expires_entries() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(8, clock.clone()).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    clock.set(Duration::from_secs(5));
    let a = lockbox::seal(&p, b"a", &c).unwrap();
    clock.set(Duration::from_secs(4));
    let b = lockbox::seal(&p, b"b", &c).unwrap();
    assert_ne!(wrapped_of(&a), wrapped_of(&b));
}

#[test]
fn capacity_evicts_least_recently_used() {
    let cache = DataKeyCache::new(2).unwrap();
    let p = cached(Counting::new(false), &cache);
    let (a, b, c) = (ctx("a"), ctx("b"), ctx("c"));
    let seal = |ctx: &EncryptionContext| wrapped_of(&lockbox::seal(&p, b"x", ctx).unwrap());
    let wa = seal(&a); // miss
    let wb = seal(&b); // miss
    assert_eq!(seal(&a), wa); // hit: A is now the most recent
    assert_eq!(cache.len(), 2);
    let wc = seal(&c); // miss: evicts B, the least recently used
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.evictions(), 1);
    assert_eq!(seal(&a), wa); // A survived
    assert_eq!(seal(&c), wc); // C is cached
    assert_ne!(seal(&b), wb); // B was evicted: a new key (evicting A, now the LRU)
    assert_eq!(cache.evictions(), 2);
    assert_ne!(seal(&a), wa);
    assert_eq!(p.stats(), stats(3, 5, 0, 0, 0));
    assert_eq!(p.inner().fresh_keys(), 5);
}

#[test]
fn dead_entries_make_room_before_live_ones() {
    let clock = Arc::new(ManualClock::default());
    let cache = DataKeyCache::with_clock(2, clock.clone()).unwrap();
    let short = CachingProvider::builder(Counting::new(false), &cache, Duration::from_secs(1))
        .build()
        .unwrap();
    let long = cached(Counting::new(false), &cache);
    let wl = wrapped_of(&lockbox::seal(&long, b"x", &ctx("l")).unwrap()); // LRU, alive
    lockbox::seal(&short, b"x", &ctx("s")).unwrap(); // MRU, expires at t=1s
    clock.set(Duration::from_secs(2));
    lockbox::seal(&long, b"x", &ctx("new")).unwrap(); // evicts the expired one, not the LRU
    assert_eq!(wrapped_of(&lockbox::seal(&long, b"x", &ctx("l")).unwrap()), wl);
    assert_eq!(cache.evictions(), 1);
}

#[test]
fn partitions_isolate() {
    let cache = DataKeyCache::new(16).unwrap();
    let kek = Arc::new(Counting::new(false));
    let build = |name: Option<&str>| {
        let b = CachingProvider::builder(kek.clone(), &cache, MINUTE);
        match name {
            Some(n) => b.partition(n),
            None => b,
        }
        .build()
        .unwrap()
    };
    let c = ctx("acme");
    let (p1, p1b, p2) = (build(Some("one")), build(Some("one")), build(Some("two")));
    let (u1, u2) = (build(None), build(None));
    let w = |p: &CachingProvider<Arc<Counting>>| wrapped_of(&lockbox::seal(p, b"x", &c).unwrap());
    let w1 = w(&p1);
    assert_eq!(w(&p1b), w1, "same partition name: shared");
    assert_ne!(w(&p2), w1, "another partition: not shared");
    let wu1 = w(&u1);
    assert_ne!(wu1, w1);
    assert_ne!(w(&u2), wu1, "unnamed partitions are private");
    assert_eq!(w(&u1), wu1);
    assert_eq!(kek.fresh_keys(), 4);

    // Open side too: p2 does not see p1's unwrapped key.
    let env = lockbox::seal(&*kek, b"y", &c).unwrap();
    lockbox::open(&p1, &env, &c).unwrap();
    lockbox::open(&p1b, &env, &c).unwrap();
    assert_eq!(kek.unwraps(), 1);
    lockbox::open(&p2, &env, &c).unwrap();
    assert_eq!(kek.unwraps(), 2);
}

#[test]
fn seal_entries_are_per_binding_and_suite() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let w = |s: Suite, c: &EncryptionContext| wrapped_of(&Sealer::new(&p).suite(s).seal(b"x", c).unwrap());
    let base = w(Suite::Aes256Gcm, &c);
    assert_eq!(w(Suite::Aes256Gcm, &c), base);
    assert_ne!(w(Suite::ChaCha20Poly1305, &c), base);
    assert_ne!(w(Suite::Aes256Gcm, &ctx("other")), base);
    // A stored entry differing only in storage kind is another binding.
    let stored = EncryptionContext::new()
        .with("purpose", "cache-test")
        .unwrap()
        .with("tenant", "acme")
        .unwrap();
    assert_ne!(w(Suite::Aes256Gcm, &stored), base);
    assert_eq!(p.inner().fresh_keys(), 4);
}

#[test]
fn unwrap_hits_avoid_the_inner_provider() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    // Sealed without the cache: every envelope has its own wrapped key.
    let e1 = lockbox::seal(&p.inner().kek, b"one", &c).unwrap();
    let e2 = lockbox::seal(&p.inner().kek, b"two", &c).unwrap();
    for _ in 0..5 {
        assert_eq!(lockbox::open(&p, &e1, &c).unwrap(), b"one");
    }
    assert_eq!(p.inner().unwraps(), 1);
    assert_eq!(lockbox::open(&p, &e2, &c).unwrap(), b"two");
    assert_eq!(p.inner().unwraps(), 2);
    assert_eq!(p.stats(), stats(0, 0, 0, 4, 2));

    // Envelopes sealed through the cache share a wrapped key: one unwrap opens all.
    let q = cached(Counting::new(false), &DataKeyCache::new(16).unwrap());
    let envs: Vec<_> = (0..10u8).map(|i| lockbox::seal(&q, &[i], &c).unwrap()).collect();
    for (i, env) in (0..10u8).zip(&envs) {
        assert_eq!(lockbox::open(&q, env, &c).unwrap(), [i]);
    }
    assert_eq!(q.inner().unwraps(), 1);
}

#[test]
fn a_cached_key_does_not_open_under_another_context() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let env = lockbox::seal(&p, b"secret", &c).unwrap();
    assert_eq!(lockbox::open(&p, &env, &c).unwrap(), b"secret");
    // The data key is cached for (wrapped key, binding of "acme"). Another
    // required value is another binding: the cache is not consulted for it,
    // the inner unwrap fails, and nothing opens.
    let r = lockbox::open(&p, &env, &ctx("evil"));
    match r {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => {
            assert_eq!(e.kind(), ProviderErrorKind::Authentication);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.stats().open_hits, 0);
    assert_eq!(p.stats().open_misses, 2);
    // A tampered wrapped key is another cache key too.
    let info = lockbox::inspect(&env).unwrap();
    let w = &info.wrapped_keys()[0];
    let mut bytes = w.bytes().to_vec();
    bytes[0] ^= 1;
    let tampered = WrappedKey::new(w.provider_id(), w.key_id().clone(), w.key_version(), bytes).unwrap();
    let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
    let e = p.unwrap(tampered.as_ref(), b.as_binding()).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Authentication);
    // The genuine one is a hit and is the right key.
    let k = p.unwrap(w.as_ref(), b.as_binding()).unwrap();
    let direct = p.inner().kek.unwrap(w.as_ref(), b.as_binding()).unwrap();
    assert_eq!(k.expose_secret(), direct.expose_secret());
    assert_eq!(p.stats().open_hits, 1);
}

#[test]
fn provider_failures_are_returned_and_not_cached() {
    let cache = DataKeyCache::new(16).unwrap();
    for offer in [false, true] {
        let p = cached(Counting::new(offer), &cache);
        let c = ctx("acme");
        let env = lockbox::seal(&p.inner().kek, b"x", &c).unwrap();
        p.inner().fail.store(true, Ordering::SeqCst);
        match lockbox::seal(&p, b"x", &c) {
            Err(Error::Provider(e)) => assert_eq!(e.kind(), ProviderErrorKind::Unavailable),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            lockbox::open(&p, &env, &c),
            Err(Error::NoProviderCouldUnwrap { attempts: 1, .. })
        ));
        assert!(cache.is_empty());
        p.inner().fail.store(false, Ordering::SeqCst);
        let a = lockbox::seal(&p, b"x", &c).unwrap();
        assert_eq!(lockbox::open(&p, &a, &c).unwrap(), b"x");
        assert_eq!(lockbox::open(&p, &env, &c).unwrap(), b"x");
        // Seal and open entries are separate: three unwraps, one of which failed.
        assert_eq!(p.stats(), stats(0, 2, 0, 0, 3));
        cache.clear();
    }
}

#[test]
fn clear_and_drop_remove_entries() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = cached(Counting::new(false), &cache);
    let c = ctx("acme");
    let a = lockbox::seal(&p, b"x", &c).unwrap();
    lockbox::open(&p, &a, &c).unwrap();
    assert_eq!(cache.len(), 2, "one seal entry, one open entry");
    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.evictions(), 2);
    assert_ne!(wrapped_of(&lockbox::seal(&p, b"x", &c).unwrap()), wrapped_of(&a));
    // The store lives as long as a handle to it does.
    drop(p);
    assert_eq!(cache.len(), 1);
}

#[test]
fn forwards_identity_and_other_calls() {
    let cache = DataKeyCache::new(16).unwrap();
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let p = cached(kek, &cache);
    assert_eq!(p.provider_id(), lockbox::LOCAL_PROVIDER_ID);
    let c = ctx("acme");
    let b = lockbox::BindingBuf::new(Suite::Aes256Gcm, &c);
    let dek = DataKey::generate().unwrap();
    let w = p.wrap(&dek, b.as_binding()).unwrap();
    assert!(p.matches(w.as_ref()));
    let wo = other.wrap(&dek, b.as_binding()).unwrap();
    assert!(!p.matches(wo.as_ref()));
    assert!(p.rewrap(w.as_ref(), b.as_binding()).unwrap().is_none());
    assert!(
        p.generate_data_key(lockbox::DataKeyRequest::new(b.as_binding()))
            .unwrap()
            .is_none()
    );
    assert_eq!(p.stats(), stats(0, 0, 1, 0, 0));
    // Wrapping with a second provider: the cached key is wrapped by both, and
    // either opens every envelope.
    let sealer = Sealer::new(&p).also_wrap_with(&other);
    let e1 = sealer.seal(b"1", &c).unwrap();
    let e2 = sealer.seal(b"2", &c).unwrap();
    assert_eq!(p.stats().seal_hits, 1);
    for (env, m) in [(&e1, b"1"), (&e2, b"2")] {
        assert_eq!(lockbox::open(&other, env, &c).unwrap(), m);
        assert_eq!(Opener::new(&p).open(env, &c).unwrap(), m);
    }
}

#[test]
fn debug_redacts_keys() {
    let cache = DataKeyCache::new(16).unwrap();
    let p = CachingProvider::builder(Counting::new(true), &cache, MINUTE)
        .partition("billing")
        .build()
        .unwrap();
    let c = ctx("acme");
    lockbox::seal(&p, b"x", &c).unwrap();
    // The counting provider's first key is 00..01 5a 5a ... 5a.
    let s = format!("{p:?} {cache:?}");
    assert!(
        s.contains("CachingProvider") && s.contains("billing") && s.contains("len: 1"),
        "{s}"
    );
    assert!(!s.to_lowercase().contains("5a5a") && !s.contains("90, 90"), "{s}");
    let unnamed = cached(LocalKek::generate().unwrap(), &cache);
    assert!(format!("{unnamed:?}").contains("partition: <private>"));
}

#[test]
fn eight_threads_share_one_cache_within_the_limits() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 200;
    const MAX_MESSAGES: u64 = 16;
    let cache = DataKeyCache::new(64).unwrap();
    let p = Arc::new(
        CachingProvider::builder(Counting::new(false), &cache, MINUTE)
            .max_messages(MAX_MESSAGES)
            .build()
            .unwrap(),
    );
    let c = ctx("acme");
    let envs: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let p = &p;
                let c = &c;
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let msg = format!("{t}/{i}");
                            let env = lockbox::seal(&**p, msg.as_bytes(), c).unwrap();
                            // Open on this thread too, interleaved with others' seals.
                            assert_eq!(lockbox::open(&**p, &env, c).unwrap(), msg.as_bytes());
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
    let st = p.stats();
    let total = u64::try_from(total).unwrap();
    assert_eq!(st.seal_hits + st.seal_misses, total);
    assert_eq!(st.seal_bypasses, 0);
    // Every miss produced exactly one inner key, and every key in use came from a miss.
    assert_eq!(usize::try_from(st.seal_misses).unwrap(), p.inner().fresh_keys());
    assert_eq!(u64::try_from(per_key.len()).unwrap(), st.seal_misses);
    assert!(st.seal_misses >= total.div_ceil(MAX_MESSAGES));
    // Opens: every call counted, every miss is one inner unwrap, and each
    // wrapped key is unwrapped at most once per thread (a racing miss).
    assert_eq!(st.open_hits + st.open_misses, total);
    assert_eq!(u64::try_from(p.inner().unwraps()).unwrap(), st.open_misses);
    assert!(p.inner().unwraps() <= per_key.len() * THREADS);
    assert!(st.open_hits > 0);
    // Every envelope opens without the cache.
    for env in envs.iter().step_by(97) {
        lockbox::open(&p.inner().kek, env, &c).unwrap();
    }
}

/// Each limit in isolation: a strict and a lax provider share a partition;
/// whichever created an entry, a lookup obeys the tighter of the two limits.
#[test]
fn a_shared_partition_enforces_the_tighter_limits() {
    type P = CachingProvider<Arc<Counting>>;
    let c = ctx("acme");
    let w = |p: &P, len: usize| wrapped_of(&lockbox::seal(p, &vec![0; len], &c).unwrap());
    let setup = |age: Duration, messages: u64, bytes: u64| {
        let clock = Arc::new(ManualClock::default());
        let cache = DataKeyCache::with_clock(16, clock.clone()).unwrap();
        let kek = Arc::new(Counting::new(false));
        let strict = CachingProvider::builder(kek.clone(), &cache, age)
            .partition("shared")
            .max_messages(messages)
            .max_bytes(bytes)
            .build()
            .unwrap();
        let lax = CachingProvider::builder(kek, &cache, MINUTE)
            .partition("shared")
            .build()
            .unwrap();
        (clock, strict, lax)
    };
    let big = u64::MAX;

    // Messages.
    let (_, strict, lax) = setup(MINUTE, 2, big);
    let a = w(&strict, 1);
    assert_eq!(w(&lax, 1), a);
    assert_ne!(w(&lax, 1), a, "the strict creator allowed 2 messages");
    let (_, strict, lax) = setup(MINUTE, 2, big);
    let a = w(&lax, 1);
    assert_eq!(w(&strict, 1), a);
    assert_ne!(w(&strict, 1), a, "the strict user allows 2 messages");

    // Bytes.
    let (_, strict, lax) = setup(MINUTE, big, 10);
    let a = w(&strict, 1);
    assert_eq!(w(&lax, 9), a);
    assert_ne!(w(&lax, 1), a, "the strict creator allowed 10 bytes");
    let (_, strict, lax) = setup(MINUTE, big, 10);
    let a = w(&lax, 1);
    assert_eq!(w(&strict, 9), a);
    assert_ne!(w(&strict, 1), a, "the strict user allows 10 bytes");

    // Age.
    let (clock, strict, lax) = setup(Duration::from_secs(1), big, big);
    let a = w(&strict, 1);
    clock.set(Duration::from_secs(1));
    assert_ne!(w(&lax, 1), a, "the strict creator allowed 1 s");
    let (clock, strict, lax) = setup(Duration::from_secs(1), big, big);
    let a = w(&lax, 1);
    clock.set(Duration::from_secs(1));
    assert_eq!(w(&lax, 1), a, "the lax provider still uses its entry");
    assert_ne!(w(&strict, 1), a, "the strict user allows 1 s");

    // Age on the open side, both ways.
    for strict_first in [true, false] {
        let (clock, strict, lax) = setup(Duration::from_secs(1), big, big);
        let env = lockbox::seal(&lax.inner().kek, b"o", &c).unwrap();
        let (first, second) = if strict_first { (&strict, &lax) } else { (&lax, &strict) };
        lockbox::open(first, &env, &c).unwrap();
        clock.set(Duration::from_secs(1));
        lockbox::open(second, &env, &c).unwrap();
        assert_eq!(lax.inner().unwraps(), 2, "strict_first={strict_first}");
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random limits and random runs of (context, length, clock step):
        /// the cache reuses a key exactly when the model does, and no key
        /// ever exceeds a limit.
        #[test]
        fn seal_side_matches_the_model(
            capacity in 1usize..4,
            age in 1u64..20,
            messages in 1u64..6,
            bytes in 1u64..12,
            ops in proptest::collection::vec((0usize..5, 0u64..14, 0u64..4), 1..60),
        ) {
            let l = ModelLimits { capacity, age, messages, bytes };
            let clock = Arc::new(ManualClock::default());
            let cache = DataKeyCache::with_clock(capacity, clock.clone()).unwrap();
            let p = CachingProvider::builder(Counting::new(false), &cache, Duration::from_nanos(age))
                .max_messages(messages)
                .max_bytes(bytes)
                .build()
                .unwrap();
            let contexts: Vec<EncryptionContext> = (0..5).map(|i| ctx(&i.to_string())).collect();
            let mut model = Model::default();
            // model key id -> wrapped bytes; wrapped bytes -> (first use, uses, bytes)
            let mut ids: HashMap<usize, Vec<u8>> = HashMap::new();
            let mut usage: HashMap<Vec<u8>, (u64, u64, u64)> = HashMap::new();
            let mut now = 0u64;
            for (c, len, step) in ops {
                now += step;
                clock.set(Duration::from_nanos(now));
                let env = lockbox::seal(&p, &vec![0u8; usize::try_from(len).unwrap()], &contexts[c]).unwrap();
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
                prop_assert!(u.1 <= messages, "message limit exceeded");
                prop_assert!(u.2 <= bytes.max(len), "byte limit exceeded");
                prop_assert!(now - u.0 < age || u.1 == 1, "age limit exceeded");
            }
            let st = p.stats();
            prop_assert_eq!(usize::try_from(st.seal_misses + st.seal_bypasses).unwrap(), model.keys);
            prop_assert!(cache.len() <= capacity);
        }
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
    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
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
        g.generate_data_key(lockbox::DataKeyRequest::new(b.as_binding()))
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
fn a_wrapped_key_the_provider_would_not_open_is_not_cached() {
    let cache = DataKeyCache::new(4).unwrap();
    let mut inner = Counting::new(true);
    inner.foreign = Some(LocalKek::generate().unwrap());
    let p = cached(inner, &cache);
    let c = ctx("acme");
    for _ in 0..2 {
        assert!(matches!(lockbox::seal(&p, b"x", &c), Err(Error::Provider(_))));
    }
    assert!(cache.is_empty());
    assert_eq!(p.inner().generates.load(Ordering::SeqCst), 2);
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
    let sealer = lockbox::AsyncSealer::new(&p);
    let a = sealer.seal(b"first", &c).await.unwrap();
    let b = sealer.seal(b"second", &c).await.unwrap();
    // One data key for both (one miss, one hit), and the inner provider saw
    // the length of the one message it was asked about.
    assert_eq!(wrapped_of(&a), wrapped_of(&b));
    assert_eq!(p.stats(), stats(1, 1, 0, 0, 0));
    assert_eq!(*p.inner().lengths.lock().unwrap(), [Some(5)]);
    let opener = lockbox::AsyncOpener::new(&p);
    assert_eq!(opener.open(&a, &c).await.unwrap(), b"first");
    assert_eq!(opener.open(&b, &c).await.unwrap(), b"second");
}
