//! The data-key cache at 32 B: seal and open through
//! `CachingProvider<LocalKek>` (and `AsyncCachingProvider<LocalKek>` through
//! `AsyncSealer`/`AsyncOpener`), without the cache, and the raw AES-256-GCM
//! (fixed key, in place) in the same group, so the cost reads as a ratio.
//! The async runs poll each future once: every provider future here is
//! ready at once, so this measures the async path's own overhead.
//!
//! `cargo bench --bench cache`; a quick run:
//! `cargo bench --bench cache -- --warm-up-time 1 --measurement-time 3`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::cache::{AsyncCachingProvider, CachingProvider, DataKeyCache};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, EncryptionContext, KeyEncryptionProvider,
    LocalKek, Opener, Sealer, Suite,
};

const SIZE: usize = 32;

/// The output of a future that is ready on its first poll.
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}

fn cache(c: &mut Criterion) {
    let ctx = EncryptionContext::new()
        .with("purpose", "bench")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap();
    let kek = LocalKek::generate().unwrap();
    let store = DataKeyCache::new(1024).unwrap();
    // An hour and the default message limit: the measured loop only hits
    // (one miss, the first seal, is outside it).
    let cached = CachingProvider::builder(LocalKek::generate().unwrap(), &store, Duration::from_secs(3600))
        .build()
        .unwrap();
    let cached_async = AsyncCachingProvider::builder(LocalKek::generate().unwrap(), &store, Duration::from_secs(3600))
        .build()
        .unwrap();
    let raw = Aes256Gcm::new(&Array::from([7u8; 32]));
    let nonce = Array::from([1u8; 12]);
    let pt = vec![0x5au8; SIZE];

    let mut g = c.benchmark_group("cache/seal");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_with_input(BenchmarkId::new("raw", SIZE), &pt, |b, pt| {
        let mut buf = pt.clone();
        b.iter(|| black_box(raw.encrypt_inout_detached(&nonce, &[], black_box(&mut buf[..]).into())))
    });
    g.bench_with_input(BenchmarkId::new("lockbox", SIZE), &pt, |b, pt| {
        let sealer = Sealer::new(&kek);
        b.iter(|| black_box(sealer.seal(black_box(pt), &ctx).unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("lockbox-cached", SIZE), &pt, |b, pt| {
        let sealer = Sealer::new(&cached);
        b.iter(|| black_box(sealer.seal(black_box(pt), &ctx).unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("lockbox-cached-async", SIZE), &pt, |b, pt| {
        let sealer = AsyncSealer::new(&cached_async);
        b.iter(|| black_box(ready(sealer.seal(black_box(pt), &ctx)).unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("lockbox-cached-into", SIZE), &pt, |b, pt| {
        let sealer = Sealer::new(&cached);
        let mut out = Vec::with_capacity(SIZE + 4096);
        b.iter(|| {
            out.clear();
            sealer.seal_to(black_box(pt), &ctx, &mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();

    let env = Sealer::new(&kek).seal(&pt, &ctx).unwrap();
    let env_cached = Sealer::new(&cached).seal(&pt, &ctx).unwrap();
    let env_cached_async = ready(AsyncSealer::new(&cached_async).seal(&pt, &ctx)).unwrap();
    let mut raw_ct = pt.clone();
    let raw_tag = raw
        .encrypt_inout_detached(&nonce, &[], raw_ct.as_mut_slice().into())
        .unwrap();
    let mut g = c.benchmark_group("cache/open");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_with_input(BenchmarkId::new("raw", SIZE), &raw_ct, |b, ct| {
        let mut out = vec![0u8; ct.len()];
        b.iter(|| {
            let buf = InOutBuf::new(black_box(&ct[..]), &mut out[..]).unwrap();
            raw.decrypt_inout_detached(&nonce, &[], buf, &raw_tag).unwrap()
        })
    });
    g.bench_with_input(BenchmarkId::new("lockbox", SIZE), &env, |b, env| {
        let opener = Opener::new(&kek);
        b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
    });
    g.bench_with_input(BenchmarkId::new("lockbox-cached", SIZE), &env_cached, |b, env| {
        let opener = Opener::new(&cached);
        b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
    });
    g.bench_with_input(
        BenchmarkId::new("lockbox-cached-async", SIZE),
        &env_cached_async,
        |b, env| {
            let opener = AsyncOpener::new(&cached_async);
            b.iter(|| black_box(ready(opener.open(black_box(env), &ctx)).unwrap()))
        },
    );
    g.bench_with_input(BenchmarkId::new("lockbox-cached-into", SIZE), &env_cached, |b, env| {
        let opener = Opener::new(&cached);
        let mut out = Vec::with_capacity(SIZE);
        b.iter(|| {
            out.clear();
            opener.open_to(black_box(env), &ctx, &mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();

    // The cache's own cost per message: a seal-side hit and an open-side hit
    // (hash, lock, map lookup, key copy; the seal side also clones the
    // wrapped key), without the envelope work.
    let binding = BindingBuf::new(Suite::Aes256Gcm, &ctx);
    let wrapped = lockbox::inspect(&env_cached).unwrap().wrapped_keys()[0].clone();
    let mut g = c.benchmark_group("cache/lookup");
    g.bench_function("seal-hit", |b| {
        b.iter(|| {
            black_box(
                cached
                    .generate_data_key(lockbox::DataKeyRequest::new(binding.as_binding()).with_plaintext_len(32))
                    .unwrap(),
            )
        })
    });
    g.bench_function("open-hit", |b| {
        b.iter(|| black_box(cached.unwrap(wrapped.as_ref(), binding.as_binding()).unwrap()))
    });
    // The async shell: the same hits, plus boxing and polling its future.
    let wrapped_async = lockbox::inspect(&env_cached_async).unwrap().wrapped_keys()[0].clone();
    g.bench_function("seal-hit-async", |b| {
        b.iter(|| {
            let request = lockbox::DataKeyRequest::new(binding.as_binding()).with_plaintext_len(32);
            black_box(ready(cached_async.generate_data_key_async(request)).unwrap())
        })
    });
    g.bench_function("open-hit-async", |b| {
        b.iter(|| {
            let f = cached_async.unwrap_async(wrapped_async.as_ref(), binding.as_binding());
            black_box(ready(f).unwrap())
        })
    });
    g.finish();

    for s in [cached.stats(), cached_async.stats()] {
        assert_eq!(s.seal_bypasses, 0);
        assert!(s.seal_hits > 0 && s.open_hits > 0);
    }
}

criterion_group!(benches, cache);
criterion_main!(benches);
