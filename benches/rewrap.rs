//! Rewrap versus re-encrypt versus open, over a size sweep: rewrap's cost is
//! the header's (one unwrap, one wrap, one header tag) plus a copy of the
//! payload, so it stays nearly flat while re-encrypt and open grow with the
//! payload (re-encrypt is about open plus seal). `rewrap_header` (header only, no payload copy) is flat.
//!
//! `cargo bench --bench rewrap`; quick look: `cargo bench --bench rewrap -- --quick`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::{EncryptionContext, LocalKek, Opener, Reencryptor, Rewrapper, Sealer};

const SIZES: [usize; 3] = [1024, 64 * 1024, 1 << 20];

fn rewrap(c: &mut Criterion) {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with("bench", "rewrap").unwrap();
    let rewrapper = Rewrapper::new(&old).wrap_with(&new);
    let reencryptor = Reencryptor::new(Opener::new(&old), Sealer::new(&new));
    let opener = Opener::new(&old);
    let sealer = Sealer::new(&new);
    let mut g = c.benchmark_group("rewrap");
    for size in SIZES {
        let env = Sealer::new(&old).seal(&vec![0x5a; size], &ctx).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("rewrap_header", size), &env, |b, env| {
            b.iter(|| rewrapper.rewrap_header(black_box(env), &ctx).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("rewrap", size), &env, |b, env| {
            b.iter(|| rewrapper.rewrap(black_box(env), &ctx).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("rewrap_stream", size), &env, |b, env| {
            let mut out = Vec::with_capacity(env.len() + 256);
            b.iter(|| {
                out.clear();
                rewrapper.rewrap_stream(black_box(&env[..]), &mut out, &ctx).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("open", size), &env, |b, env| {
            b.iter(|| opener.open(black_box(env), &ctx).unwrap())
        });
        let plaintext = vec![0x5a; size];
        g.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, pt| {
            b.iter(|| sealer.seal(black_box(pt), &ctx).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("reencrypt", size), &env, |b, env| {
            b.iter(|| reencryptor.reencrypt(black_box(env), &ctx).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, rewrap);
criterion_main!(benches);
