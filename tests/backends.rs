//! The AWS-LC backend against the RustCrypto one: byte-identical envelopes
//! for every suite and size class, each backend opening the other's, and the
//! same failure behaviour (nothing released, `open_in_place` restores).
#![cfg(feature = "aws-lc")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

mod common;
use common::{FixedWrap, SeqRng};

use lockbox::{Backend, EncryptionContext, Error, LocalKek, Opener, Sealer, SegmentSize, Suite};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("tenant", "acme").unwrap()
}

const SEG: usize = 1024;

fn sizes() -> Vec<usize> {
    vec![0, 1, 32, SEG - 1, SEG, SEG + 1, 3 * SEG + 7, 1 << 20]
}

#[test]
fn default_backend_is_aws_lc_with_the_feature() {
    assert_eq!(Backend::default(), Backend::AwsLc);
}

#[test]
fn both_backends_seal_the_same_bytes_and_open_each_other() {
    let seg = SegmentSize::new(SEG).unwrap();
    for suite in Suite::ALL {
        for len in sizes() {
            let pt = pattern(len);
            let seal = |backend| {
                Sealer::new(&FixedWrap)
                    .suite(suite)
                    .segment_size(seg)
                    .backend(backend)
                    .seal_with_rng(&mut SeqRng(9), &pt, &ctx())
                    .unwrap()
            };
            let rc = seal(Backend::RustCrypto);
            let lc = seal(Backend::AwsLc);
            assert_eq!(rc, lc, "{suite} {len} B: backends disagree");
            for (sealed_by, opened_by) in [
                (Backend::RustCrypto, Backend::AwsLc),
                (Backend::AwsLc, Backend::RustCrypto),
            ] {
                let env = if sealed_by == Backend::RustCrypto { &rc } else { &lc };
                let opener = Opener::new(&FixedWrap).backend(opened_by);
                assert_eq!(opener.open(env, &ctx()).unwrap(), pt, "{suite} {len} B");
                let mut buf = env.clone();
                opener.open_in_place(&mut buf, &ctx()).unwrap();
                assert_eq!(buf, pt);
            }
            let mut buf = pt.clone();
            Sealer::new(&FixedWrap)
                .suite(suite)
                .segment_size(seg)
                .backend(Backend::AwsLc)
                .seal_in_place(&mut buf, &ctx())
                .unwrap();
            let back = Opener::new(&FixedWrap)
                .backend(Backend::RustCrypto)
                .open(&buf, &ctx())
                .unwrap();
            assert_eq!(back, pt);
        }
    }
}

#[test]
fn aws_lc_streams_match_one_shot_bytes() {
    use std::io::{Read, Write};
    let seg = SegmentSize::new(SEG).unwrap();
    for suite in Suite::ALL {
        let pt = pattern(5 * SEG + 3);
        let sealer = Sealer::new(&FixedWrap)
            .suite(suite)
            .segment_size(seg)
            .backend(Backend::AwsLc);
        let one_shot = sealer.seal_with_rng(&mut SeqRng(1), &pt, &ctx()).unwrap();
        let header = sealer.seal_header_with_rng(&mut SeqRng(1), &ctx()).unwrap();
        let mut enc = lockbox::Encryptor::new(header, Vec::new()).unwrap();
        enc.write_all(&pt).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(streamed, one_shot);
        let mut dec = Opener::new(&FixedWrap)
            .backend(Backend::AwsLc)
            .decryptor(&one_shot[..], &ctx())
            .unwrap();
        let mut back = Vec::new();
        dec.read_to_end(&mut back).unwrap();
        assert_eq!(back, pt);
    }
}

#[test]
fn failures_release_nothing_on_either_backend() {
    let kek = LocalKek::generate().unwrap();
    let seg = SegmentSize::new(SEG).unwrap();
    for suite in Suite::ALL {
        let pt = pattern(3 * SEG);
        let env = Sealer::new(&kek)
            .suite(suite)
            .segment_size(seg)
            .seal(&pt, &ctx())
            .unwrap();
        // The header (byte 9), the first segment, the last tag.
        for at in [9, env.len() - 3 * (SEG + 16) + 5, env.len() - 1] {
            let mut bad = env.clone();
            bad[at] ^= 0x01;
            for backend in [Backend::RustCrypto, Backend::AwsLc] {
                let opener = Opener::new(&kek).backend(backend);
                assert!(matches!(opener.open(&bad, &ctx()), Err(Error::Authentication)));
                let mut out = b"kept".to_vec();
                assert!(opener.open_to(&bad, &ctx(), &mut out).is_err());
                assert_eq!(out, b"kept", "open_to left bytes behind");
                let mut copy = bad.clone();
                assert!(opener.open_in_place(&mut copy, &ctx()).is_err());
                assert_eq!(copy, bad, "open_in_place did not restore the envelope");
            }
        }
    }
}
