//! Recipients and passphrases: sealing 32 bytes to 1, 10 and 100 recipients
//! of each kind (X25519, X-Wing; a local KEK is the symmetric baseline),
//! opening with an identity (its entry first, or last of 100), and a
//! passphrase wrap and unwrap at the default Argon2id cost.
//!
//! `cargo bench --bench recipients --features recipients,passphrase`;
//! quick look: add `-- --quick`. Ratios: `python3 benches/recipient_ratios.py`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::print_stderr,
    clippy::unreachable
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lockbox::passphrase::Passphrase;
use lockbox::recipient::{Identity, RecipientKind};
use lockbox::secrecy::SecretString;
use lockbox::{BindingBuf, DataKey, EncryptionContext, KeyEncryptionProvider, Limits, LocalKek, Opener, Sealer, Suite};

const MESSAGE: &[u8; 32] = b"thirty-two bytes of plaintext!!!";
const COUNTS: [usize; 3] = [1, 10, 100];

/// Room for 100 X-Wing wraps (about 120 KiB of header).
fn limits() -> Limits {
    Limits::default()
        .with_max_wrapped_keys(255)
        .with_max_header_len(1 << 20)
}

fn seal_to_many(c: &mut Criterion) {
    let ctx = EncryptionContext::new().with("bench", "recipients").unwrap();
    let mut g = c.benchmark_group("seal_32B");
    for (name, kind) in [
        ("x25519", Some(RecipientKind::X25519)),
        ("xwing", Some(RecipientKind::XWing)),
        ("local_kek", None),
    ] {
        for n in COUNTS {
            let providers: Vec<Box<dyn KeyEncryptionProvider>> = (0..n)
                .map(|_| -> Box<dyn KeyEncryptionProvider> {
                    match kind {
                        Some(k) => Box::new(Identity::generate_kind(k).unwrap().recipient().clone()),
                        None => Box::new(LocalKek::generate().unwrap()),
                    }
                })
                .collect();
            let mut sealer = Sealer::new(providers[0].as_ref()).limits(limits());
            for p in &providers[1..] {
                sealer = sealer.also_wrap_with(p.as_ref());
            }
            let len = sealer.seal(MESSAGE, &ctx).unwrap().len();
            eprintln!("seal_32B/{name}/{n}: envelope {len} bytes");
            g.bench_with_input(BenchmarkId::new(name, n), &sealer, |b, s| {
                b.iter(|| s.seal(black_box(MESSAGE), &ctx).unwrap())
            });
        }
    }
    g.finish();
}

/// The bare HPKE single-shot seal of 32 bytes (the `hpke` crate, the same
/// suites), so that lockbox's overhead over the KEM is a ratio.
fn raw_hpke(c: &mut Criterion) {
    use hpke::aead::ChaCha20Poly1305;
    use hpke::kdf::HkdfSha256;
    use hpke::kem::{X25519HkdfSha256, XWing};
    use hpke::{Kem, OpModeS};
    use lockbox::rand_core::{TryCryptoRng, TryRng};

    /// The OS generator, for the bench only (panics if it fails).
    struct Os;
    impl TryRng for Os {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!()
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            lockbox::provider::fill_random(dst).unwrap();
            Ok(())
        }
    }
    impl TryCryptoRng for Os {}

    fn seal<K: Kem>(pk: &K::PublicKey) {
        let mut buf = *MESSAGE;
        hpke::single_shot_seal_inout_detached_with_rng::<ChaCha20Poly1305, HkdfSha256, K>(
            &OpModeS::Base,
            pk,
            b"info",
            hpke::inout::InOutBuf::from(&mut buf[..]),
            b"aad",
            &mut Os,
        )
        .unwrap();
        black_box(buf);
    }
    let mut g = c.benchmark_group("seal_32B");
    let (_, pk) = X25519HkdfSha256::gen_keypair_with_rng(&mut Os);
    g.bench_function(BenchmarkId::new("raw_hpke_x25519", 1), |b| {
        b.iter(|| seal::<X25519HkdfSha256>(&pk))
    });
    let (_, pk) = XWing::gen_keypair_with_rng(&mut Os);
    g.bench_function(BenchmarkId::new("raw_hpke_xwing", 1), |b| b.iter(|| seal::<XWing>(&pk)));
    g.finish();
}

fn open_with_identity(c: &mut Criterion) {
    let ctx = EncryptionContext::new().with("bench", "recipients").unwrap();
    let mut g = c.benchmark_group("open_32B");
    for (name, kind) in [("x25519", RecipientKind::X25519), ("xwing", RecipientKind::XWing)] {
        let me = Identity::generate_kind(kind).unwrap();
        let env = Sealer::new(me.recipient()).seal(MESSAGE, &ctx).unwrap();
        let opener = Opener::new(&me);
        g.bench_function(BenchmarkId::new(name, "1"), |b| {
            b.iter(|| opener.open(black_box(&env), &ctx).unwrap())
        });
        // The identity's entry is the last of 100: found by key id, no trial decryption.
        let others: Vec<_> = (0..99).map(|_| Identity::generate_kind(kind).unwrap()).collect();
        let mut sealer = Sealer::new(others[0].recipient()).limits(limits());
        for o in &others[1..] {
            sealer = sealer.also_wrap_with(o.recipient());
        }
        let env = sealer.also_wrap_with(me.recipient()).seal(MESSAGE, &ctx).unwrap();
        let opener = Opener::new(&me).limits(limits());
        g.bench_function(BenchmarkId::new(name, "last_of_100"), |b| {
            b.iter(|| opener.open(black_box(&env), &ctx).unwrap())
        });
    }
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, MESSAGE, &ctx).unwrap();
    g.bench_function(BenchmarkId::new("local_kek", "1"), |b| {
        b.iter(|| lockbox::open(&kek, black_box(&env), &ctx).unwrap())
    });
    g.finish();
}

fn passphrase_default_cost(c: &mut Criterion) {
    let pass = Passphrase::new(SecretString::from("correct horse battery staple")).unwrap();
    let dek = DataKey::generate().unwrap();
    let binding = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let wrapped = pass.wrap(&dek, binding.as_binding()).unwrap();
    let mut g = c.benchmark_group("passphrase_default_cost");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("wrap", |b| {
        b.iter(|| pass.wrap(black_box(&dek), binding.as_binding()).unwrap())
    });
    g.bench_function("unwrap", |b| {
        b.iter(|| pass.unwrap(black_box(wrapped.as_ref()), binding.as_binding()).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    seal_to_many,
    raw_hpke,
    open_with_identity,
    passphrase_default_cost
);
criterion_main!(benches);
