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

use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    Backend, Binding, DataKey, EncryptionContext, Error, KeyEncryptionProvider, KeyId, KeyVersion, LocalKek, Opener,
    ProviderError, ProviderIdentity, Sealer, SegmentSize, Suite, WrappedKey, WrappedKeyRef, hazmat,
};

/// Deterministic bytes, so two seals draw the same data key and message id.
struct SeqRng(u8);

impl TryRng for SeqRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}
impl TryCryptoRng for SeqRng {}

/// A deterministic "wrap" (XOR with a constant): test scaffolding only, so
/// that the whole envelope, wrapped key included, is reproducible.
#[derive(Debug)]
struct Fixed;

impl ProviderIdentity for Fixed {
    fn provider_id(&self) -> &str {
        "test.fixed"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.fixed"
    }
}

impl KeyEncryptionProvider for Fixed {
    fn wrap(&self, dek: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let bytes: Vec<u8> = dek.expose_secret().iter().map(|b| b ^ 0x5a).collect();
        Ok(WrappedKey::new("test.fixed", KeyId::new("k").unwrap(), KeyVersion(1), bytes).unwrap())
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        let mut k = [0u8; 32];
        for (o, b) in k.iter_mut().zip(w.bytes()) {
            *o = b ^ 0x5a;
        }
        Ok(hazmat::data_key_from_bytes(k))
    }
}

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
                Sealer::new(&Fixed)
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
                let opener = Opener::new(&Fixed).backend(opened_by);
                assert_eq!(opener.open(env, &ctx()).unwrap(), pt, "{suite} {len} B");
                let mut buf = env.clone();
                opener.open_in_place(&mut buf, &ctx()).unwrap();
                assert_eq!(buf, pt);
            }
            let mut buf = pt.clone();
            Sealer::new(&Fixed)
                .suite(suite)
                .segment_size(seg)
                .backend(Backend::AwsLc)
                .seal_in_place(&mut buf, &ctx())
                .unwrap();
            let back = Opener::new(&Fixed)
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
        let sealer = Sealer::new(&Fixed)
            .suite(suite)
            .segment_size(seg)
            .backend(Backend::AwsLc);
        let one_shot = sealer.seal_with_rng(&mut SeqRng(1), &pt, &ctx()).unwrap();
        let mut enc = sealer.encryptor_with_rng(&mut SeqRng(1), Vec::new(), &ctx()).unwrap();
        enc.write_all(&pt).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(streamed, one_shot);
        let mut dec = Opener::new(&Fixed)
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
