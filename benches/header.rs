//! Header cost against the number of wrapped keys (1, 4, 8, 16): `inspect`
//! (parse and validate, no key), and a 32-byte open whose matching wrapped
//! key is the last in the header (the routing worst case: every other entry
//! is skipped by provider and key id, without an unwrap attempt).
//!
//! `cargo bench --bench header`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lockbox::{EncryptionContext, KeyEncryptionProvider, LocalKek, Opener, Sealer, inspect};

fn header(c: &mut Criterion) {
    let ctx = EncryptionContext::new().with("purpose", "bench").unwrap();
    let keks: Vec<LocalKek> = (0..16).map(|_| LocalKek::generate().unwrap()).collect();
    let mut inspect_g = c.benchmark_group("header/inspect");
    let envelopes: Vec<(usize, Vec<u8>)> = [1usize, 4, 8, 16]
        .into_iter()
        .map(|n| {
            let mut sealer = Sealer::new(&keks[0] as &dyn KeyEncryptionProvider);
            for k in &keks[1..n] {
                sealer = sealer.also_wrap_with(k);
            }
            (n, sealer.seal(&[0x5a; 32], &ctx).unwrap())
        })
        .collect();
    for (n, env) in &envelopes {
        inspect_g.bench_with_input(BenchmarkId::new("wrapped-keys", n), env, |b, env| {
            b.iter(|| black_box(inspect(black_box(env)).unwrap().header_len()))
        });
    }
    inspect_g.finish();

    let mut open_g = c.benchmark_group("header/open-32B-last-key");
    for (n, env) in &envelopes {
        let opener = Opener::new(&keks[n - 1]);
        open_g.bench_with_input(BenchmarkId::new("wrapped-keys", n), env, |b, env| {
            b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
        });
    }
    open_g.finish();
}

criterion_group!(benches, header);
criterion_main!(benches);
