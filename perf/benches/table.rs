//! The README's performance table: for each size, seal and open by lockbox
//! (one-shot, into a caller's buffer, in place; both backends) next to the
//! raw AEAD of each backend and to a peer, tink-rust's envelope AEAD, all in
//! one criterion group so every ratio comes from one run.
//!
//! ```text
//! for i in 1 2 3; do
//!   cargo bench --manifest-path perf/Cargo.toml --bench table -- --save-baseline run$i
//! done
//! python3 perf/table.py run1 run2 run3
//! ```
//!
//! Rows: `raw-awslc` / `raw-rustcrypto` (AES-256-GCM, fixed key and nonce:
//! seal in place, open out of place into a buffer), `lockbox-<backend>`
//! (`seal` / `open`, a new buffer each call), `into-<backend>` (`seal_into`
//! / `open_into` a reused buffer), `in-place-<backend>` (`seal_in_place`
//! re-sealing the same bytes; `open_in_place` includes copying the envelope
//! in, measured on its own as `copy`), `tink` (encrypt / decrypt, a new
//! buffer each call). Context: one stored and one required entry (Tink:
//! the same bytes as associated data).
#![allow(missing_docs, clippy::unwrap_used, clippy::as_conversions)]

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lockbox::{Backend, EncryptionContext, LocalKek, Opener, Sealer};

const SIZES: [usize; 4] = [32, 1024, 64 * 1024, 1 << 20];
const BACKENDS: [(Backend, &str); 2] = [(Backend::AwsLc, "awslc"), (Backend::RustCrypto, "rustcrypto")];

fn table(c: &mut Criterion) {
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new()
        .with("purpose", "bench")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap();
    let aad = b"purpose=bench;tenant=acme";
    let tink = lockbox_perf::tink_envelope();
    let lc = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let rc = Aes256Gcm::new(&Array::from([7u8; 32]));
    let max = std::env::var("LOCKBOX_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);

    for size in SIZES.into_iter().filter(|&s| s <= max) {
        let pt = vec![0x5au8; size];
        let mut g = c.benchmark_group(format!("seal/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = pt.clone();
        g.bench_function("raw-awslc", |b| {
            b.iter(|| {
                black_box(
                    lc.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut buf)
                        .unwrap(),
                )
            })
        });
        g.bench_function("raw-rustcrypto", |b| {
            b.iter(|| {
                black_box(
                    rc.encrypt_inout_detached(&Array::from([1u8; 12]), &[], (&mut buf[..]).into())
                        .unwrap(),
                )
            })
        });
        for (backend, name) in BACKENDS {
            let sealer = Sealer::new(&kek).backend(backend);
            g.bench_function(format!("lockbox-{name}"), |b| {
                b.iter(|| black_box(sealer.seal(black_box(&pt), &ctx).unwrap()))
            });
            let mut out = vec![0u8; size + 4096];
            g.bench_function(format!("into-{name}"), |b| {
                b.iter(|| black_box(sealer.seal_into(black_box(&pt), &ctx, &mut out).unwrap()))
            });
            let mut ip = Vec::with_capacity(size + 4096);
            ip.extend_from_slice(&pt);
            g.bench_function(format!("in-place-{name}"), |b| {
                b.iter(|| {
                    ip.truncate(size);
                    sealer.seal_in_place(black_box(&mut ip), &ctx).unwrap();
                })
            });
        }
        g.bench_function("tink", |b| {
            b.iter(|| black_box(tink.encrypt(black_box(&pt), aad).unwrap()))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("open/{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut ct = pt.clone();
        let tag = lc
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut ct)
            .unwrap();
        let mut out = vec![0u8; size];
        g.bench_function("raw-awslc", |b| {
            b.iter(|| {
                lc.open_separate_gather(
                    Nonce::assume_unique_for_key([1; 12]),
                    Aad::empty(),
                    &ct,
                    tag.as_ref(),
                    &mut out,
                )
                .unwrap()
            })
        });
        let mut rct = pt.clone();
        let rtag = rc
            .encrypt_inout_detached(&Array::from([1u8; 12]), &[], (&mut rct[..]).into())
            .unwrap();
        g.bench_function("raw-rustcrypto", |b| {
            b.iter(|| {
                let inout = InOutBuf::new(&rct, &mut out).unwrap();
                rc.decrypt_inout_detached(&Array::from([1u8; 12]), &[], inout, &rtag)
                    .unwrap()
            })
        });
        let env = Sealer::new(&kek).seal(&pt, &ctx).unwrap();
        let mut copy = Vec::with_capacity(env.len() + size + 4096);
        g.bench_function("copy", |b| {
            b.iter(|| {
                copy.clear();
                copy.extend_from_slice(black_box(&env));
            })
        });
        for (backend, name) in BACKENDS {
            let opener = Opener::new(&kek).backend(backend);
            g.bench_function(format!("lockbox-{name}"), |b| {
                b.iter(|| black_box(opener.open(black_box(&env), &ctx).unwrap()))
            });
            g.bench_function(format!("into-{name}"), |b| {
                b.iter(|| black_box(opener.open_into(black_box(&env), &ctx, &mut out).unwrap()))
            });
            g.bench_function(format!("in-place-{name}"), |b| {
                b.iter(|| {
                    copy.clear();
                    copy.extend_from_slice(&env);
                    opener.open_in_place(black_box(&mut copy), &ctx).unwrap();
                })
            });
        }
        let sealed = tink.encrypt(&pt, aad).unwrap();
        g.bench_function("tink", |b| {
            b.iter(|| black_box(tink.decrypt(black_box(&sealed), aad).unwrap()))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    targets = table
}
criterion_main!(benches);
