//! Micro-benchmarks of the pieces of a 32-byte seal/open on this machine
//! (thread CPU time, median of rounds): which primitive costs what per call.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]

use std::hint::black_box;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

fn now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

fn bench(name: &str, f: impl FnMut()) {
    bench_n(name, 20_000, f)
}

fn bench_n(name: &str, n: usize, mut f: impl FnMut()) {
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = now();
            for _ in 0..n {
                f();
            }
            (now() - t) / n as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("{name:48} {:8.1} ns (min {:.1})", v[v.len() / 2], v[0]);
}

fn main() {
    let key = [7u8; 32];
    let aad = [3u8; 53];
    let rc = Aes256Gcm::new(&Array::from(key));
    let lc = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let mut buf = [5u8; 32];
    bench("RustCrypto AES-GCM seal 32 B + 53 B aad", || {
        black_box(
            rc.encrypt_inout_detached(&Array::from([1u8; 12]), black_box(&aad), (&mut buf[..]).into())
                .unwrap(),
        );
    });
    bench("AWS-LC AES-GCM seal 32 B + 53 B aad", || {
        black_box(
            lc.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([1u8; 12]),
                Aad::from(black_box(&aad)),
                &mut buf,
            )
            .unwrap(),
        );
    });
    let siv = LessSafeKey::new(UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM_SIV, &key).unwrap());
    bench("AWS-LC AES-GCM-SIV seal 32 B + 53 B aad", || {
        black_box(
            siv.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(black_box(&aad)),
                &mut buf,
            )
            .unwrap(),
        );
    });
    let mut sbuf = [5u8; 32];
    let stag = siv
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0u8; 12]), Aad::from(&aad), &mut sbuf)
        .unwrap();
    bench("AWS-LC AES-GCM-SIV open 32 B + 53 B aad", || {
        let mut b = sbuf;
        black_box(
            siv.open_in_place_separate_tag(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(black_box(&aad)),
                stag.as_ref(),
                &mut b,
            )
            .unwrap(),
        );
    });
    let mut gbuf = [5u8; 32];
    let gtag = lc
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([3u8; 12]), Aad::from(&aad), &mut gbuf)
        .unwrap();
    bench("AWS-LC AES-GCM open 32 B + 53 B aad", || {
        let mut b = gbuf;
        black_box(
            lc.open_in_place_separate_tag(
                Nonce::assume_unique_for_key([3u8; 12]),
                Aad::from(black_box(&aad)),
                gtag.as_ref(),
                &mut b,
            )
            .unwrap(),
        );
    });
    let mut hdr = [9u8; 190];
    bench("RustCrypto AES-GCM tag of 190 B aad", || {
        black_box(
            rc.encrypt_inout_detached(&Array::from([2u8; 12]), black_box(&hdr), (&mut [][..]).into())
                .unwrap(),
        );
    });
    bench("AWS-LC AES-GCM tag of 190 B aad", || {
        black_box(
            lc.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([2u8; 12]),
                Aad::from(black_box(&hdr[..])),
                &mut [],
            )
            .unwrap(),
        );
    });
    hdr[0] ^= 1;
    bench("RustCrypto Aes256Gcm::new", || {
        black_box(Aes256Gcm::new(&Array::from(black_box(key))));
    });
    bench("AWS-LC LessSafeKey::new(UnboundKey::new)", || {
        black_box(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, black_box(&key)).unwrap(),
        ));
    });
    let mut st = [1u32; 8];
    let block = [[0u8; 64]];
    bench("sha2 compress256 (one block)", || {
        sha2::block_api::compress256(black_box(&mut st), black_box(&block));
    });
    let mut r = [0u8; 64];
    bench("getrandom 64 B", || {
        getrandom::fill(black_box(&mut r)).unwrap();
    });
    bench("getrandom 32 B", || {
        getrandom::fill(black_box(&mut r[..32])).unwrap();
    });
    if std::env::args().nth(1).as_deref() == Some("large") {
        large();
    }
}

/// 1 MiB: raw AWS-LC in place against lockbox's forms on AWS-LC.
fn large() {
    use lockbox::{Backend, EncryptionContext, LocalKek, Opener, Sealer};
    let size = 1 << 20;
    let n = 200;
    let lc = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut buf = vec![5u8; size];
    bench_n("raw AWS-LC seal in place 1 MiB", n, || {
        black_box(
            lc.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), &mut buf)
                .unwrap(),
        );
    });
    let src = vec![5u8; size];
    let mut dst = vec![0u8; size];
    let mut tg = [0u8; 16];
    bench_n("raw AWS-LC seal out of place 1 MiB (one call)", n, || {
        lc.seal_out_of_place_scatter(
            Nonce::assume_unique_for_key([1u8; 12]),
            Aad::empty(),
            &src,
            &mut dst,
            &[],
            &mut tg,
        )
        .unwrap();
    });
    bench_n("raw AWS-LC seal in place 16 x 64 KiB", n, || {
        for c in buf.chunks_mut(65536) {
            black_box(
                lc.seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), c)
                    .unwrap(),
            );
        }
    });
    bench_n("raw AWS-LC seal out of place 16 x 64 KiB", n, || {
        for (s, d) in src.chunks(65536).zip(dst.chunks_mut(65536)) {
            lc.seal_out_of_place_scatter(
                Nonce::assume_unique_for_key([1u8; 12]),
                Aad::empty(),
                s,
                d,
                &[],
                &mut tg,
            )
            .unwrap();
        }
    });
    let mut dst2 = vec![0u8; size + 16 * 16];
    bench_n("raw AWS-LC seal out of place 16 x 64 KiB, strided dst", n, || {
        for (s, d) in src.chunks(65536).zip(dst2.chunks_mut(65536 + 16)) {
            let (c, t) = d.split_at_mut(65536);
            lc.seal_out_of_place_scatter(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), s, c, &[], t)
                .unwrap();
        }
    });
    let mut ct = vec![5u8; size];
    let tag = lc
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), &mut ct)
        .unwrap();
    let mut out = vec![0u8; size];
    bench_n("raw AWS-LC open out of place 1 MiB", n, || {
        lc.open_separate_gather(
            Nonce::assume_unique_for_key([1u8; 12]),
            Aad::empty(),
            &ct,
            tag.as_ref(),
            &mut out,
        )
        .unwrap();
    });
    // Opening 16 segments from an envelope-like layout: aligned and not.
    for offset in [0usize, 1, 8, 16, 190] {
        let mut env = vec![0u8; offset + size + 16 * 16];
        let mut tags = Vec::new();
        for (i, d) in env[offset..].chunks_mut(65536 + 16).enumerate() {
            let (c, t) = d.split_at_mut(65536);
            c.copy_from_slice(&src[i * 65536..(i + 1) * 65536]);
            let tag = lc
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), c)
                .unwrap();
            t.copy_from_slice(tag.as_ref());
            tags.push(());
        }
        bench_n(
            &format!("raw AWS-LC open 16 x 64 KiB, envelope at +{offset}"),
            n,
            || {
                for (d, o) in env[offset..].chunks(65536 + 16).zip(out.chunks_mut(65536)) {
                    let (c, t) = d.split_at(65536);
                    lc.open_separate_gather(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), c, t, o)
                        .unwrap();
                }
            },
        );
    }
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new();
    let sealer = Sealer::new(&kek).backend(Backend::AwsLc);
    let opener = Opener::new(&kek).backend(Backend::AwsLc);
    let pt = vec![5u8; size];
    let mut env = vec![0u8; size + 4096];
    bench_n("lockbox seal_into 1 MiB", n, || {
        black_box(sealer.seal_into(&pt, &ctx, &mut env).unwrap());
    });
    let mut v = Vec::with_capacity(size + 4096);
    bench_n("lockbox seal_to (reused Vec) 1 MiB", n, || {
        v.clear();
        sealer.seal_to(&pt, &ctx, &mut v).unwrap();
    });
    bench_n("lockbox seal (new Vec) 1 MiB", n, || {
        black_box(sealer.seal(&pt, &ctx).unwrap());
    });
    let mut ip = Vec::with_capacity(size + 4096);
    ip.extend_from_slice(&pt);
    bench_n("lockbox seal_in_place 1 MiB", n, || {
        ip.truncate(size);
        sealer.seal_in_place(&mut ip, &ctx).unwrap();
    });
    let sealed = sealer.seal(&pt, &ctx).unwrap();
    let mut back = vec![0u8; size];
    bench_n("lockbox open_into 1 MiB", n, || {
        black_box(opener.open_into(&sealed, &ctx, &mut back).unwrap());
    });
    bench_n("lockbox open (new Vec) 1 MiB", n, || {
        black_box(opener.open(&sealed, &ctx).unwrap());
    });
    let mut ib = Vec::with_capacity(sealed.len() + 65536);
    bench_n("memcpy of the envelope (in-place open's reset)", n, || {
        ib.clear();
        ib.extend_from_slice(&sealed);
    });
    bench_n("lockbox open_in_place 1 MiB (incl. reset)", n, || {
        ib.clear();
        ib.extend_from_slice(&sealed);
        opener.open_in_place(&mut ib, &ctx).unwrap();
    });
}
