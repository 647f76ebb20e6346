//! Large messages against the raw AEAD, interleaved in one process (thread
//! CPU time; per-round ratios against the raw AEAD, the first row, which is
//! what a loaded machine's memory bandwidth moves least): every form of
//! seal and open on AWS-LC and RustCrypto. `large [size] [rounds] [batch_ms]`
//! (default 1 MiB, 15, 30).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use lockbox::{Backend, EncryptionContext, LocalKek, Opener, Sealer};
use lockbox_perf::interleave::{Op, Ratio, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1 << 20);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(15);
    let ms: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(30.0);
    let kek: &'static LocalKek = Box::leak(Box::new(LocalKek::generate().unwrap()));
    let ctx: &'static EncryptionContext = Box::leak(Box::new(
        EncryptionContext::new()
            .with("purpose", "bench")
            .unwrap()
            .with_required("tenant", "acme")
            .unwrap(),
    ));
    let pt: &'static [u8] = Box::leak(vec![0x5au8; size].into_boxed_slice());
    let env: &'static [u8] = Box::leak(Sealer::new(kek).seal(pt, ctx).unwrap().into_boxed_slice());
    for (backend, name) in [(Backend::AwsLc, "AWS-LC"), (Backend::RustCrypto, "RustCrypto")] {
        let sealer: &'static Sealer<'static> = Box::leak(Box::new(Sealer::new(kek).backend(backend)));
        let opener: &'static Opener<'static> = Box::leak(Box::new(Opener::new(kek).backend(backend)));
        let raw_seal: Op;
        let raw_open: Op;
        if backend == Backend::AwsLc {
            let k: &'static LessSafeKey = Box::leak(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap(),
            )));
            let mut buf = pt.to_vec();
            raw_seal = Box::new(move || {
                let _ = black_box(
                    k.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut buf)
                        .unwrap(),
                );
            });
            let mut ct = pt.to_vec();
            let tag = k
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1; 12]), Aad::empty(), &mut ct)
                .unwrap();
            let mut out = vec![0u8; size];
            raw_open = Box::new(move || {
                k.open_separate_gather(
                    Nonce::assume_unique_for_key([1; 12]),
                    Aad::empty(),
                    &ct,
                    tag.as_ref(),
                    &mut out,
                )
                .unwrap();
            });
        } else {
            let c: &'static Aes256Gcm = Box::leak(Box::new(Aes256Gcm::new(&Array::from([7u8; 32]))));
            let mut buf = pt.to_vec();
            raw_seal = Box::new(move || {
                black_box(
                    c.encrypt_inout_detached(&Array::from([1u8; 12]), &[], (&mut buf[..]).into())
                        .unwrap(),
                );
            });
            let mut ct = pt.to_vec();
            let tag = c
                .encrypt_inout_detached(&Array::from([1u8; 12]), &[], (&mut ct[..]).into())
                .unwrap();
            let mut out = vec![0u8; size];
            raw_open = Box::new(move || {
                c.decrypt_inout_detached(
                    &Array::from([1u8; 12]),
                    &[],
                    InOutBuf::new(&ct, &mut out).unwrap(),
                    &tag,
                )
                .unwrap();
            });
        }
        let big: &'static Sealer<'static> =
            Box::leak(Box::new(Sealer::new(kek).backend(backend).segment_size(
                lockbox::SegmentSize::new(size.next_power_of_two().clamp(64, 16 << 20)).unwrap(),
            )));
        let mut into_big = vec![0u8; size + 4096];
        let mut into = vec![0u8; size + 4096];
        let mut to = Vec::with_capacity(size + 4096);
        let mut ip = Vec::with_capacity(size + 4096);
        ip.extend_from_slice(pt);
        run(
            &format!("seal {size} B, {name}"),
            "form",
            vec![
                ("raw AEAD, in place", raw_seal),
                (
                    "seal_into (caller's &mut [u8])",
                    Box::new(move || {
                        black_box(sealer.seal_into(black_box(pt), ctx, &mut into).unwrap());
                    }),
                ),
                (
                    "seal_into, one segment for the whole message",
                    Box::new(move || {
                        black_box(big.seal_into(black_box(pt), ctx, &mut into_big).unwrap());
                    }),
                ),
                (
                    "seal (new Vec)",
                    Box::new(move || {
                        black_box(sealer.seal(black_box(pt), ctx).unwrap());
                    }),
                ),
                (
                    "seal_to (reused Vec)",
                    Box::new(move || {
                        to.clear();
                        sealer.seal_to(black_box(pt), ctx, &mut to).unwrap();
                    }),
                ),
                (
                    "seal_in_place",
                    Box::new(move || {
                        ip.truncate(size);
                        sealer.seal_in_place(black_box(&mut ip), ctx).unwrap();
                    }),
                ),
            ],
            Ratio::FirstOverTime,
            rounds,
            ms,
        );
        let mut out = vec![0u8; size];
        let mut copy = Vec::with_capacity(env.len() + size + 4096);
        let mut copy2 = Vec::with_capacity(env.len() + size + 4096);
        run(
            &format!("open {size} B, {name}"),
            "form",
            vec![
                ("raw AEAD, into a buffer", raw_open),
                (
                    "open_into (caller's &mut [u8])",
                    Box::new(move || {
                        black_box(opener.open_into(black_box(env), ctx, &mut out).unwrap());
                    }),
                ),
                (
                    "open (new Vec)",
                    Box::new(move || {
                        black_box(opener.open(black_box(env), ctx).unwrap());
                    }),
                ),
                (
                    "copy of the envelope (below)",
                    Box::new(move || {
                        copy2.clear();
                        copy2.extend_from_slice(black_box(env));
                    }),
                ),
                (
                    "open_in_place, with that copy",
                    Box::new(move || {
                        copy.clear();
                        copy.extend_from_slice(env);
                        opener.open_in_place(black_box(&mut copy), ctx).unwrap();
                    }),
                ),
            ],
            Ratio::FirstOverTime,
            rounds,
            ms,
        );
    }
}
