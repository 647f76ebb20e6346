//! Bench-only helpers: the peer (tink-rust's envelope AEAD), the v1 floor
//! (`v1min`: v1 bytes straight from the primitives) and the format v2
//! prototype (`v2`) of `docs/format-v2.md`. See perf/README.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

pub mod interleave;
pub mod prf;
pub mod v1min;
pub mod v2;

/// tink-rust's KMS envelope AEAD with an AES-256-GCM DEK template, its
/// "remote" key-encryption AEAD a local AES-256-GCM keyset (Tink format:
/// 5-byte key prefix). Associated data protects the payload only (Tink does
/// not bind it to the wrapped key).
pub fn tink_envelope() -> Box<dyn tink_core::Aead> {
    tink_aead::init();
    let kh = tink_core::keyset::Handle::new(&tink_aead::aes256_gcm_key_template()).unwrap();
    let remote = tink_aead::new(&kh).unwrap();
    Box::new(tink_aead::KmsEnvelopeAead::new(
        tink_aead::aes256_gcm_key_template(),
        remote,
    ))
}

/// An RNG that hands out fixed bytes (to compare byte for byte with
/// lockbox's `seal_with_rng`).
pub struct FixedRng(pub Vec<u8>);

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let n = dst.len().min(self.0.len());
        dst[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

#[cfg(test)]
mod tests {
    use lockbox::{EncryptionContext, Opener, Sealer, hazmat};
    use secrecy::SecretBox;

    use super::*;

    fn ctx() -> (EncryptionContext, Vec<v1min::Entry<'static>>) {
        let c = EncryptionContext::new()
            .with("purpose", "bench")
            .unwrap()
            .with_required("tenant", "acme")
            .unwrap();
        (c, vec![("purpose", "bench", true), ("tenant", "acme", false)])
    }

    #[test]
    fn v1min_writes_lockbox_bytes_and_each_opens_the_other() {
        let key = [9u8; 32];
        let kek = hazmat::local_kek_from_bytes(SecretBox::new(Box::new(key)));
        let min = v1min::LocalV1::new(&key);
        let (c, entries) = ctx();
        let random: Vec<u8> = (0..64u8).collect();
        for pt in [&b""[..], b"32 bytes of plaintext, exactly.!", &[7u8; 1000][..]] {
            let ours = min.seal_with(&entries, pt, &random.clone().try_into().unwrap());
            let theirs = Sealer::new(&kek)
                .seal_with_rng(&mut FixedRng(random.clone()), pt, &c)
                .unwrap();
            assert_eq!(ours, theirs);
            assert_eq!(Opener::new(&kek).open(&ours, &c).unwrap(), pt);
            assert_eq!(min.open(&entries, &theirs).unwrap(), pt);
            let mut bad = ours.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert!(min.open(&entries, &bad).is_none());
        }
    }

    #[test]
    fn v2_round_trips_binds_required_values_and_rejects_tampering() {
        let (_, entries) = ctx();
        for schedule in [v2::Schedule::OneBlock, v2::Schedule::Hmac, v2::Schedule::Direct] {
            let k = v2::LocalV2::with_schedule(&[3u8; 32], schedule);
            for flags in [0, v2::FLAG_MESSAGE_ID] {
                let env = k.seal(&entries, b"hello", flags);
                assert_eq!(k.open(&entries, &env).unwrap(), b"hello");
                // Another required value: the wrap and the commitment fail.
                let other = vec![("purpose", "bench", true), ("tenant", "evil", false)];
                assert!(k.open(&other, &env).is_none());
                for i in 0..env.len() {
                    let mut bad = env.clone();
                    bad[i] ^= 1;
                    assert!(k.open(&entries, &bad).is_none(), "byte {i}");
                }
            }
        }
        // The overhead of a 32-byte message with an empty context.
        let k = v2::LocalV2::new(&[3u8; 32]);
        assert_eq!(k.seal(&[], &[0u8; 32], 0).len() - 32, 115);
        assert_eq!(k.seal(&[], &[0u8; 32], v2::FLAG_MESSAGE_ID).len() - 32, 131);
    }

    #[test]
    fn tink_peer_round_trips() {
        let t = tink_envelope();
        let ct = t.encrypt(b"hello", b"aad").unwrap();
        assert_eq!(t.decrypt(&ct, b"aad").unwrap(), b"hello");
    }
}
