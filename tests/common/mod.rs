//! Scaffolding shared by the integration tests that compare bytes: a
//! deterministic RNG and a deterministic "provider". Test-only: neither is
//! random or encrypts anything.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "each test file uses part of this module"
)]

use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    Binding, DataKey, KeyEncryptionProvider, KeyId, KeyVersion, ProviderError, ProviderErrorKind, ProviderIdentity,
    WrappedKey, WrappedKeyRef,
};

/// Counts up from its seed, one byte at a time: two seals drawing from
/// `SeqRng(n)` get the same data key and message id.
pub struct SeqRng(pub u8);

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

/// Deterministic "wrap" (XOR with a constant) for byte-equality tests only:
/// the whole envelope, wrapped key included, is reproducible.
#[derive(Debug)]
pub struct FixedWrap;

impl ProviderIdentity for FixedWrap {
    fn provider_id(&self) -> &str {
        "test.fixed"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.fixed" && w.key_id() == "k"
    }
}

impl KeyEncryptionProvider for FixedWrap {
    fn wrap(&self, dek: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let bytes = dek.expose_secret().iter().map(|b| b ^ 0x5c).collect();
        Ok(WrappedKey::new("test.fixed", KeyId::new("k").unwrap(), KeyVersion(1), bytes).unwrap())
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        let b: [u8; 32] = w
            .bytes()
            .try_into()
            .map_err(|_| ProviderError::new(ProviderErrorKind::Authentication, "test.fixed"))?;
        Ok(lockbox::hazmat::data_key_from_bytes(b.map(|x| x ^ 0x5c)))
    }
}
