//! One keyring version's key: the synthetic-nonce AES-256-GCM wrap of a
//! local KEK (`crate::crypto::kek_wrap`), with the envelope's binding as
//! associated data (`KEYRING.md` §5).

pub(crate) use crate::crypto::kek_wrap::Kek as VersionKey;

/// Length of a keyring version's key.
pub(crate) const VERSION_KEY_LEN: usize = crate::crypto::kek_wrap::KEK_LEN;

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use hkdf::Hkdf;
    use hmac::{Hmac, KeyInit as _, Mac as _};
    use secrecy::{ExposeSecret, SecretBox};
    use sha2::Sha256;

    use super::*;
    use crate::keys::DataKey;
    use crate::{BindingBuf, EncryptionContext, Suite};

    #[test]
    fn wrap_nonce_is_keyring_md_s_synthetic_nonce() {
        let key = VersionKey::new(SecretBox::new(Box::new([9u8; VERSION_KEY_LEN])));
        let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new().with("t", "1").unwrap());
        let aad = b.as_binding().as_bytes();
        let dek = DataKey::from_array([3; 32]);
        let mut k = [0u8; 32];
        Hkdf::<Sha256>::new(None, &[9u8; 32])
            .expand(b"lockbox v1 local wrap nonce key", &mut k)
            .unwrap();
        let mut mac = <Hmac<Sha256>>::new_from_slice(&k).unwrap();
        mac.update(&[3; 32]);
        mac.update(aad);
        let expected = mac.finalize().into_bytes();
        let w = key.wrap(&dek, aad).unwrap();
        assert_eq!(&w[1..13], &expected[..12]);
        assert_eq!(w, key.wrap(&dek, aad).unwrap());
        let other = key.wrap(&DataKey::from_array([4; 32]), aad).unwrap();
        assert_ne!(&w[1..13], &other[1..13]);
        assert_eq!(key.unwrap(&w, aad).ok().map(|d| *d.expose_secret()), Some([3; 32]));
    }
}
