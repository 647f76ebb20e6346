//! 32-byte seal and open, interleaved in one process (thread CPU time, the
//! median and range of per-round ratios against the first row): lockbox v1
//! on AWS-LC, the v1 floor (`v1min`), the v2 prototype's schedules, and
//! tink-rust's envelope AEAD. `small [rounds] [batch_ms]`.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use lockbox::{Backend, EncryptionContext, Opener, Sealer, hazmat};
use lockbox_perf::interleave::{Ratio, run};
use lockbox_perf::{tink_envelope, v1min, v2};
use secrecy::SecretBox;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let ms: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20.0);
    let key = [9u8; 32];
    let kek: &'static _ = Box::leak(Box::new(hazmat::local_kek_from_bytes(SecretBox::new(Box::new(key)))));
    let ctx: &'static EncryptionContext = Box::leak(Box::new(
        EncryptionContext::new()
            .with("purpose", "bench")
            .unwrap()
            .with_required("tenant", "acme")
            .unwrap(),
    ));
    let entries: &'static [v1min::Entry<'static>] = &[("purpose", "bench", true), ("tenant", "acme", false)];
    let pt: &'static [u8] = &[0x5a; 32];
    let v1: &'static _ = Box::leak(Box::new(v1min::LocalV1::new(&key)));
    let v2a: &'static _ = Box::leak(Box::new(v2::LocalV2::new(&key)));
    let v2h: &'static _ = Box::leak(Box::new(v2::LocalV2::with_schedule(&key, v2::Schedule::Hmac)));
    let v2d: &'static _ = Box::leak(Box::new(v2::LocalV2::with_schedule(&key, v2::Schedule::Direct)));
    let tink: &'static _ = Box::leak(tink_envelope());
    let aad = b"purpose=bench;tenant=acme";
    // Bytes of overhead for 32 bytes of plaintext and an empty context.
    {
        let empty = EncryptionContext::new();
        let other = lockbox::LocalKek::generate().unwrap();
        let ring =
            lockbox::keyring::Keyring::generate(lockbox::KeyId::new("bench").unwrap(), lockbox::keyring::UnixTime(0))
                .unwrap();
        let v1_one = Sealer::new(kek).seal(pt, &empty).unwrap().len() - 32;
        let v1_two = Sealer::new(kek).also_wrap_with(&other).seal(pt, &empty).unwrap().len() - 32;
        let v1_ring = Sealer::new(&ring).seal(pt, &empty).unwrap().len() - 32;
        let v2_one = v2a.seal(&[], pt, 0).len() - 32;
        let v2_id = v2a.seal(&[], pt, v2::FLAG_MESSAGE_ID).len() - 32;
        let tink_one = tink.encrypt(pt, b"").unwrap().len() - 32;
        println!("\nOverhead of a 32-byte message, empty context (bytes)\n");
        println!("| envelope | bytes |\n|---|---|");
        println!("| lockbox v1, one LocalKek | {v1_one} |");
        println!("| lockbox v1, two LocalKeks | {v1_two} (+{}) |", v1_two - v1_one);
        println!("| lockbox v1, a keyring (id \"bench\") | {v1_ring} |");
        println!("| v2 prototype, one local KEK, fresh data key | {v2_one} |");
        println!("| v2 prototype, with a message id | {v2_id} |");
        println!("| tink-rust envelope AEAD (AES-256-GCM DEK, local AES-256-GCM KEK) | {tink_one} |");
    }
    let sealer = Sealer::new(kek).backend(Backend::AwsLc);
    let opener = Opener::new(kek).backend(Backend::AwsLc);
    run(
        "32-byte seal",
        "implementation",
        vec![
            (
                "lockbox v1 (AWS-LC)",
                Box::new(move || {
                    black_box(sealer.clone().seal(black_box(pt), ctx).unwrap());
                }),
            ),
            (
                "v1 floor (v1min)",
                Box::new(move || {
                    black_box(v1.seal(entries, black_box(pt)));
                }),
            ),
            (
                "v2 prototype, one-block SHA-256 schedule",
                Box::new(move || {
                    black_box(v2a.seal(entries, black_box(pt), 0));
                }),
            ),
            (
                "v2 prototype, with message id",
                Box::new(move || {
                    black_box(v2a.seal(entries, black_box(pt), v2::FLAG_MESSAGE_ID));
                }),
            ),
            (
                "v2 prototype, HMAC schedule",
                Box::new(move || {
                    black_box(v2h.seal(entries, black_box(pt), 0));
                }),
            ),
            (
                "v2 prototype, direct schedule",
                Box::new(move || {
                    black_box(v2d.seal(entries, black_box(pt), 0));
                }),
            ),
            (
                "v2 prototype, direct, user-space CSPRNG (as tink)",
                Box::new(move || {
                    black_box(v2d.seal_rng(entries, black_box(pt), &mut rand::thread_rng()));
                }),
            ),
            (
                "tink-rust envelope AEAD (not committing)",
                Box::new(move || {
                    black_box(tink.encrypt(black_box(pt), aad).unwrap());
                }),
            ),
        ],
        Ratio::TimeOverFirst,
        rounds,
        ms,
    );
    let e1 = Sealer::new(kek).seal(pt, ctx).unwrap();
    let e1b = e1.clone();
    let e2 = v2a.seal(entries, pt, 0);
    let e2m = v2a.seal(entries, pt, v2::FLAG_MESSAGE_ID);
    let e2h = v2h.seal(entries, pt, 0);
    let e2d = v2d.seal(entries, pt, 0);
    let et = tink.encrypt(pt, aad).unwrap();
    run(
        "32-byte open",
        "implementation",
        vec![
            (
                "lockbox v1 (AWS-LC)",
                Box::new(move || {
                    black_box(opener.open(black_box(&e1), ctx).unwrap());
                }),
            ),
            (
                "v1 floor (v1min)",
                Box::new(move || {
                    black_box(v1.open(entries, black_box(&e1b)).unwrap());
                }),
            ),
            (
                "v2 prototype, one-block SHA-256 schedule",
                Box::new(move || {
                    black_box(v2a.open(entries, black_box(&e2)).unwrap());
                }),
            ),
            (
                "v2 prototype, with message id",
                Box::new(move || {
                    black_box(v2a.open(entries, black_box(&e2m)).unwrap());
                }),
            ),
            (
                "v2 prototype, HMAC schedule",
                Box::new(move || {
                    black_box(v2h.open(entries, black_box(&e2h)).unwrap());
                }),
            ),
            (
                "v2 prototype, direct schedule",
                Box::new(move || {
                    black_box(v2d.open(entries, black_box(&e2d)).unwrap());
                }),
            ),
            (
                "tink-rust envelope AEAD (not committing)",
                Box::new(move || {
                    black_box(tink.decrypt(black_box(&et), aad).unwrap());
                }),
            ),
        ],
        Ratio::TimeOverFirst,
        rounds,
        ms,
    );
}
