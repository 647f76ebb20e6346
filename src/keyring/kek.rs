//! One keyring version's key: AES-256-GCM wrapping of data keys, with the
//! envelope's binding as associated data (the approach of `LocalKek`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use hmac::Hmac;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::context::Binding;
use crate::error::Error;
use crate::keys::{DATA_KEY_LEN, DataKey, os_random};
use crate::local::{nonce_prf, synthetic_nonce};

/// Length of a keyring version's key.
pub(crate) const VERSION_KEY_LEN: usize = 32;
/// Version byte that starts every keyring wrapped key.
const WRAP_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Wrap version, nonce, encrypted data key, tag.
pub(crate) const WRAPPED_LEN: usize = 1 + NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

/// Why an unwrap with a version key failed.
pub(crate) struct UnwrapFailed;

/// A version's 256-bit key, its AES key schedule and its wrap-nonce PRF,
/// computed once. All zeroized on drop (aes-gcm's and hmac's `zeroize`
/// features, `SecretBox`).
pub(crate) struct VersionKey {
    cipher: Aes256Gcm,
    nonce_prf: Hmac<Sha256>,
    key: SecretBox<[u8; VERSION_KEY_LEN]>,
}

impl VersionKey {
    /// A fresh key from the OS CSPRNG.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut key = Box::new([0u8; VERSION_KEY_LEN]);
        os_random(key.as_mut_slice())?;
        Ok(Self::from_secret(SecretBox::new(key)))
    }

    pub(crate) fn from_secret(key: SecretBox<[u8; VERSION_KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(key.expose_secret().into());
        let nonce_prf = nonce_prf(key.expose_secret());
        Self { cipher, nonce_prf, key }
    }

    pub(crate) fn bytes(&self) -> &[u8; VERSION_KEY_LEN] {
        self.key.expose_secret()
    }

    /// `0x01 || nonce || AES-256-GCM(key, nonce, dek, aad = binding)`, the
    /// nonce synthetic as a local KEK's (no OS random call per wrap).
    pub(crate) fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<Vec<u8>, Error> {
        let nonce: [u8; NONCE_LEN] = synthetic_nonce(&self.nonce_prf, dek, binding);
        let mut ct = [0u8; DATA_KEY_LEN];
        let buf = InOutBuf::new(dek.expose_secret(), &mut ct).map_err(|_| Error::InvalidArgument {
            what: "data key buffer length",
        })?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&Array::from(nonce), binding.as_bytes(), buf)
            .map_err(|_| Error::InvalidArgument {
                what: "wrap input too long",
            })?;
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(crate) fn unwrap(&self, wrapped: &[u8], binding: Binding<'_>) -> Result<DataKey, UnwrapFailed> {
        let bytes: &[u8; WRAPPED_LEN] = wrapped.try_into().map_err(|_| UnwrapFailed)?;
        let (version, rest) = bytes.split_first().ok_or(UnwrapFailed)?;
        if *version != WRAP_V1 {
            return Err(UnwrapFailed);
        }
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN).ok_or(UnwrapFailed)?;
        let (ct, tag) = rest.split_at_checked(DATA_KEY_LEN).ok_or(UnwrapFailed)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| UnwrapFailed)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| UnwrapFailed)?;
        let mut dek = DataKey::zeroed();
        let buf = InOutBuf::new(ct, dek.bytes_mut().as_mut_slice()).map_err(|_| UnwrapFailed)?;
        self.cipher
            .decrypt_inout_detached(&Array::from(nonce), binding.as_bytes(), buf, &Array::from(tag))
            .map_err(|_| UnwrapFailed)?;
        Ok(dek)
    }
}

impl fmt::Debug for VersionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VersionKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use hkdf::Hkdf;
    use hmac::{KeyInit as _, Mac as _};

    use super::*;
    use crate::{BindingBuf, EncryptionContext, Suite};

    #[test]
    fn wrap_nonce_is_keyring_md_s_synthetic_nonce() {
        let key = VersionKey::from_secret(SecretBox::new(Box::new([9u8; VERSION_KEY_LEN])));
        let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new().with("t", "1").unwrap());
        let dek = DataKey::from_array([3; 32]);
        let mut k = [0u8; 32];
        Hkdf::<Sha256>::new(None, &[9u8; 32])
            .expand(b"lockbox v1 local wrap nonce key", &mut k)
            .unwrap();
        let mut mac = <Hmac<Sha256>>::new_from_slice(&k).unwrap();
        mac.update(&[3; 32]);
        mac.update(b.as_binding().as_bytes());
        let expected = mac.finalize().into_bytes();
        let w = key.wrap(&dek, b.as_binding()).unwrap();
        assert_eq!(&w[1..13], &expected[..12]);
        assert_eq!(w, key.wrap(&dek, b.as_binding()).unwrap());
        let other = key.wrap(&DataKey::from_array([4; 32]), b.as_binding()).unwrap();
        assert_ne!(&w[1..13], &other[1..13]);
        assert_eq!(
            key.unwrap(&w, b.as_binding()).ok().map(|d| *d.expose_secret()),
            Some([3; 32])
        );
    }
}
