//! Criterion benches for the hot path: seal and open for every suite over a
//! size sweep, each next to the raw AEAD (fixed key, in place, one nonce) in
//! the same group, so lockbox's overhead reads as a ratio from one run.
//!
//! With `--features aws-lc`, each group also holds AWS-LC's raw AEAD
//! (`raw-awslc`) and lockbox on the AWS-LC backend (`lockbox-awslc`); the
//! `lockbox` rows are always the RustCrypto backend.
//!
//! `cargo bench --bench seal_open` (all), or filter: `cargo bench -- aes-256-gcm/seal`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::large_enum_variant
)]

use std::hint::black_box;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::{Backend, EncryptionContext, LocalKek, Opener, Sealer, Suite};

const SIZES: [usize; 5] = [32, 1024, 64 * 1024, 1 << 20, 16 << 20];

/// The raw AEAD of a suite with a fixed key: the baseline.
enum Raw {
    Aes(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
    XChaCha(XChaCha20Poly1305),
}

impl Raw {
    fn new(suite: Suite) -> Self {
        let key = Array::from([7u8; 32]);
        match suite {
            Suite::Aes256Gcm => Self::Aes(Aes256Gcm::new(&key)),
            Suite::ChaCha20Poly1305 => Self::ChaCha(ChaCha20Poly1305::new(&key)),
            _ => Self::XChaCha(XChaCha20Poly1305::new(&key)),
        }
    }

    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        match self {
            Self::Aes(c) => c.encrypt_inout_detached(&Array::from([1u8; 12]), &[], buf.into()),
            Self::ChaCha(c) => c.encrypt_inout_detached(&Array::from([1u8; 12]), &[], buf.into()),
            Self::XChaCha(c) => c.encrypt_inout_detached(&Array::from([1u8; 24]), &[], buf.into()),
        }
        .unwrap()
        .into()
    }

    /// Verifies and decrypts `ct` into `out` (no copy, as lockbox's open does).
    fn open(&self, ct: &[u8], out: &mut [u8], tag: &[u8; 16]) {
        let tag = Array::from(*tag);
        let buf = InOutBuf::new(ct, out).unwrap();
        match self {
            Self::Aes(c) => c.decrypt_inout_detached(&Array::from([1u8; 12]), &[], buf, &tag),
            Self::ChaCha(c) => c.decrypt_inout_detached(&Array::from([1u8; 12]), &[], buf, &tag),
            Self::XChaCha(c) => c.decrypt_inout_detached(&Array::from([1u8; 24]), &[], buf, &tag),
        }
        .unwrap();
    }
}

/// AWS-LC's raw AEAD with a fixed key (AES-256-GCM and ChaCha20-Poly1305).
#[cfg(feature = "aws-lc")]
struct RawAwsLc(aws_lc_rs::aead::LessSafeKey);

#[cfg(feature = "aws-lc")]
impl RawAwsLc {
    fn new(suite: Suite) -> Option<Self> {
        use aws_lc_rs::aead::{AES_256_GCM, CHACHA20_POLY1305, LessSafeKey, UnboundKey};
        let alg = match suite {
            Suite::Aes256Gcm => &AES_256_GCM,
            Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            _ => return None,
        };
        Some(Self(LessSafeKey::new(UnboundKey::new(alg, &[7u8; 32]).unwrap())))
    }

    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), buf)
            .unwrap();
        tag.as_ref().try_into().unwrap()
    }

    fn open(&self, ct: &[u8], out: &mut [u8], tag: &[u8; 16]) {
        use aws_lc_rs::aead::{Aad, Nonce};
        self.0
            .open_separate_gather(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), ct, tag, out)
            .unwrap();
    }
}

fn label(suite: Suite) -> String {
    suite.name().to_ascii_lowercase()
}

fn sizes() -> Vec<usize> {
    // LOCKBOX_BENCH_MAX caps the sweep for quick runs (e.g. 1048576).
    let max = std::env::var("LOCKBOX_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    SIZES.into_iter().filter(|&s| s <= max).collect()
}

fn seal_open(c: &mut Criterion) {
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new()
        .with("purpose", "bench")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap();
    for suite in Suite::ALL {
        let raw = Raw::new(suite);
        let sealer = Sealer::new(&kek).suite(suite).backend(Backend::RustCrypto);
        let opener = Opener::new(&kek).backend(Backend::RustCrypto);
        #[cfg(feature = "aws-lc")]
        let fast = RawAwsLc::new(suite).map(|raw| {
            (
                raw,
                Sealer::new(&kek).suite(suite).backend(Backend::AwsLc),
                Opener::new(&kek).backend(Backend::AwsLc),
            )
        });

        let mut g = c.benchmark_group(format!("{}/seal", label(suite)));
        for size in sizes() {
            let pt = vec![0x5au8; size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("raw", size), &pt, |b, pt| {
                let mut buf = pt.clone();
                b.iter(|| black_box(raw.seal(black_box(&mut buf))))
            });
            g.bench_with_input(BenchmarkId::new("lockbox", size), &pt, |b, pt| {
                b.iter(|| black_box(sealer.seal(black_box(pt), &ctx).unwrap()))
            });
            g.bench_with_input(BenchmarkId::new("lockbox-into", size), &pt, |b, pt| {
                let mut out = Vec::with_capacity(size + 4096);
                b.iter(|| {
                    out.clear();
                    sealer.seal_to(black_box(pt), &ctx, &mut out).unwrap();
                    black_box(out.len())
                })
            });
            #[cfg(feature = "aws-lc")]
            if let Some((raw, sealer, _)) = &fast {
                g.bench_with_input(BenchmarkId::new("raw-awslc", size), &pt, |b, pt| {
                    let mut buf = pt.clone();
                    b.iter(|| black_box(raw.seal(black_box(&mut buf))))
                });
                g.bench_with_input(BenchmarkId::new("lockbox-awslc", size), &pt, |b, pt| {
                    b.iter(|| black_box(sealer.seal(black_box(pt), &ctx).unwrap()))
                });
            }
        }
        g.finish();

        let mut g = c.benchmark_group(format!("{}/open", label(suite)));
        for size in sizes() {
            let pt = vec![0x5au8; size];
            let env = sealer.seal(&pt, &ctx).unwrap();
            let mut raw_ct = pt.clone();
            let raw_tag = raw.seal(&mut raw_ct);
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("raw", size), &raw_ct, |b, ct| {
                let mut out = vec![0u8; ct.len()];
                b.iter(|| raw.open(black_box(ct), &mut out, &raw_tag))
            });
            g.bench_with_input(BenchmarkId::new("lockbox", size), &env, |b, env| {
                b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
            });
            g.bench_with_input(BenchmarkId::new("lockbox-into", size), &env, |b, env| {
                let mut out = Vec::with_capacity(size);
                b.iter(|| {
                    out.clear();
                    opener.open_to(black_box(env), &ctx, &mut out).unwrap();
                    black_box(out.len())
                })
            });
            #[cfg(feature = "aws-lc")]
            if let Some((raw, _, opener)) = &fast {
                let mut ct = pt.clone();
                let tag = raw.seal(&mut ct);
                g.bench_with_input(BenchmarkId::new("raw-awslc", size), &ct, |b, ct| {
                    let mut out = vec![0u8; ct.len()];
                    b.iter(|| raw.open(black_box(ct), &mut out, &tag))
                });
                g.bench_with_input(BenchmarkId::new("lockbox-awslc", size), &env, |b, env| {
                    b.iter(|| black_box(opener.open(black_box(env), &ctx).unwrap()))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
