//! Criterion benches for streaming throughput, next to one-shot seal/open
//! (sequential and on two threads) and the raw AEAD in the same group, at
//! 1 MiB and 64 MiB, AES-256-GCM with a local KEK:
//!
//! - `raw`: AES-256-GCM over the whole buffer, fixed key, one nonce, in place
//!   (seal) or into a reused buffer (open): the ceiling.
//! - `one-shot`: `Sealer::seal` / `Opener::open`, allocating the output.
//! - `one-shot-into`: `seal_to` / `open_to` into a reused buffer (no
//!   allocation, as in `stream`: isolates the allocation's cost).
//! - `one-shot-parallel`: `seal` / `open` with `threads(2)`.
//! - `stream-parallel`: the streaming API with `threads(2)`.
//! - `stream`: an `Encryptor` fed in 64 KiB writes into a pre-allocated
//!   `Vec`; a `Decryptor` read in 64 KiB chunks into one reused buffer
//!   (memory stays at a few segments, whatever the size).
//!
//! Every lockbox function includes the per-message work (data key, wrap,
//! derivation, header). `cargo bench --bench stream`; `LOCKBOX_BENCH_MAX`
//! caps the sizes (e.g. `LOCKBOX_BENCH_MAX=1048576`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]

use std::hint::black_box;
use std::io::{Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};

const SIZES: [usize; 2] = [1 << 20, 64 << 20];
/// Write and read size for the streaming functions.
const CHUNK: usize = 64 * 1024;
/// Generous room for the header and tags (one 16-byte tag per 64 KiB segment).
const OVERHEAD: usize = 64 * 1024;

fn sizes() -> Vec<usize> {
    // LOCKBOX_BENCH_MAX caps the sizes for quick runs (e.g. 1048576).
    let max = std::env::var("LOCKBOX_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    SIZES.into_iter().filter(|&s| s <= max).collect()
}

fn raw_seal(c: &Aes256Gcm, buf: &mut [u8]) -> [u8; 16] {
    c.encrypt_inout_detached(&Array::from([1u8; 12]), &[], buf.into())
        .unwrap()
        .into()
}

fn raw_open(c: &Aes256Gcm, ct: &[u8], out: &mut [u8], tag: &[u8; 16]) {
    let buf = InOutBuf::new(ct, out).unwrap();
    c.decrypt_inout_detached(&Array::from([1u8; 12]), &[], buf, &Array::from(*tag))
        .unwrap();
}

fn stream(c: &mut Criterion) {
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with("purpose", "bench").unwrap();
    let raw = Aes256Gcm::new(&Array::from([7u8; 32]));
    let sealer = Sealer::new(&kek);
    let parallel_sealer = Sealer::new(&kek).threads(2);
    let opener = Opener::new(&kek);
    let parallel_opener = Opener::new(&kek).threads(2);

    let mut g = c.benchmark_group("stream/seal");
    for size in sizes() {
        let pt = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("raw", size), &pt, |b, pt| {
            let mut buf = pt.clone();
            b.iter(|| black_box(raw_seal(&raw, black_box(&mut buf))))
        });
        g.bench_with_input(BenchmarkId::new("one-shot", size), &pt, |b, pt| {
            b.iter(|| black_box(sealer.seal(black_box(pt), &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("one-shot-into", size), &pt, |b, pt| {
            let mut out = Vec::with_capacity(size + OVERHEAD);
            b.iter(|| {
                out.clear();
                sealer.seal_to(black_box(pt), &ctx, &mut out).unwrap();
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("one-shot-parallel", size), &pt, |b, pt| {
            b.iter(|| black_box(parallel_sealer.seal(black_box(pt), &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("stream", size), &pt, |b, pt| {
            let mut out = Vec::with_capacity(size + OVERHEAD);
            b.iter(|| {
                out.clear();
                let mut enc = sealer.encryptor(&mut out, &ctx).unwrap();
                for chunk in black_box(pt).chunks(CHUNK) {
                    enc.write_all(chunk).unwrap();
                }
                enc.finish().unwrap();
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("stream-parallel", size), &pt, |b, pt| {
            let mut out = Vec::with_capacity(size + OVERHEAD);
            b.iter(|| {
                out.clear();
                let mut enc = parallel_sealer.encryptor(&mut out, &ctx).unwrap();
                for chunk in black_box(pt).chunks(CHUNK) {
                    enc.write_all(chunk).unwrap();
                }
                enc.finish().unwrap();
                black_box(out.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("stream/open");
    for size in sizes() {
        let pt = vec![0x5au8; size];
        let env = sealer.seal(&pt, &ctx).unwrap();
        let mut raw_ct = pt.clone();
        let raw_tag = raw_seal(&raw, &mut raw_ct);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("raw", size), &raw_ct, |b, ct| {
            let mut out = vec![0u8; ct.len()];
            b.iter(|| raw_open(&raw, black_box(ct), &mut out, &raw_tag))
        });
        g.bench_with_input(BenchmarkId::new("one-shot", size), &env, |b, env| {
            b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("one-shot-into", size), &env, |b, env| {
            let mut out = Vec::with_capacity(size);
            b.iter(|| {
                out.clear();
                opener.open_to(black_box(env), &ctx, &mut out).unwrap();
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("one-shot-parallel", size), &env, |b, env| {
            b.iter(|| black_box(parallel_opener.open(black_box(env), &ctx).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("stream", size), &env, |b, env| {
            let mut buf = vec![0u8; CHUNK];
            b.iter(|| {
                let mut dec = opener.decryptor(black_box(&env[..]), &ctx).unwrap();
                let mut total = 0usize;
                loop {
                    match dec.read(&mut buf).unwrap() {
                        0 => break,
                        n => total += n,
                    }
                }
                assert_eq!(total, size);
                black_box(total)
            })
        });
        g.bench_with_input(BenchmarkId::new("stream-parallel", size), &env, |b, env| {
            let mut buf = vec![0u8; CHUNK];
            b.iter(|| {
                let mut dec = parallel_opener.decryptor(black_box(&env[..]), &ctx).unwrap();
                let mut total = 0usize;
                loop {
                    match dec.read(&mut buf).unwrap() {
                        0 => break,
                        n => total += n,
                    }
                }
                assert_eq!(total, size);
                black_box(total)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    // Ten samples keep the 64 MiB runs short; command-line options still apply.
    config = Criterion::default().sample_size(10);
    targets = stream
}
criterion_main!(benches);
