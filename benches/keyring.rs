//! Unwrapping a data key through a keyring (1 and 16 versions, the oldest and
//! the newest version) next to a plain `LocalKek` unwrap in the same group, so
//! the keyring's lookup overhead reads as a ratio; and sealing a 16-version
//! keyring under its master, through the sync and the async driver.
//!
//! `cargo bench --bench keyring`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{BindingBuf, DataKey, EncryptionContext, KeyEncryptionProvider, KeyId, LocalKek, Suite};

fn keyring(versions: u32) -> Keyring {
    let mut r = Keyring::generate(KeyId::new("bench").unwrap(), UnixTime(0)).unwrap();
    for i in 1..versions {
        r.rotate(UnixTime(u64::from(i))).unwrap();
    }
    r
}

fn unwrap(c: &mut Criterion) {
    let ctx = EncryptionContext::new().with("purpose", "bench").unwrap();
    let binding = BindingBuf::new(Suite::Aes256Gcm, &ctx);
    let b = binding.as_binding();
    let dek = DataKey::generate().unwrap();
    let mut g = c.benchmark_group("unwrap");

    let local = LocalKek::generate().unwrap();
    let w = local.wrap(&dek, b).unwrap();
    g.bench_function("local-kek", |bench| {
        bench.iter(|| local.unwrap(black_box(w.as_ref()), black_box(b)).unwrap())
    });

    let one = keyring(1);
    let w = one.wrap(&dek, b).unwrap();
    g.bench_function("keyring-1-version", |bench| {
        bench.iter(|| one.unwrap(black_box(w.as_ref()), black_box(b)).unwrap())
    });

    // Wrapped under v1, then 15 rotations: the oldest of 16 versions.
    let mut sixteen = keyring(1);
    let oldest = sixteen.wrap(&dek, b).unwrap();
    for i in 1..16 {
        sixteen.rotate(UnixTime(i)).unwrap();
    }
    let newest = sixteen.wrap(&dek, b).unwrap();
    g.bench_function("keyring-16-versions-oldest", |bench| {
        bench.iter(|| sixteen.unwrap(black_box(oldest.as_ref()), black_box(b)).unwrap())
    });
    g.bench_function("keyring-16-versions-newest", |bench| {
        bench.iter(|| sixteen.unwrap(black_box(newest.as_ref()), black_box(b)).unwrap())
    });
    g.finish();
}

/// The output of a future that is ready on its first poll (a `LocalKek`
/// master's futures are).
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}

fn seal_under_master(c: &mut Criterion) {
    let master = LocalKek::generate().unwrap();
    let mut ring = keyring(16);
    let mut g = c.benchmark_group("keyring/seal-16-versions");
    g.bench_function("to_sealed_bytes", |bench| {
        bench.iter(|| black_box(ring.to_sealed_bytes(&master).unwrap()))
    });
    g.bench_function("to_sealed_bytes_async", |bench| {
        bench.iter(|| black_box(ready(ring.to_sealed_bytes_async(&master)).unwrap()))
    });
    let bytes = ring.to_sealed_bytes(&master).unwrap();
    g.bench_function("from_sealed_bytes", |bench| {
        bench.iter(|| black_box(Keyring::from_sealed_bytes(black_box(&bytes), &master).unwrap()))
    });
    g.bench_function("from_sealed_bytes_async", |bench| {
        bench.iter(|| black_box(ready(Keyring::from_sealed_bytes_async(black_box(&bytes), &master)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, unwrap, seal_under_master);
criterion_main!(benches);
