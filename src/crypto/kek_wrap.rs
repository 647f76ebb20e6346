//! The one synthetic-nonce AES-256-GCM key wrap, shared by local KEKs
//! (`FORMAT.md` §10) and keyring versions (`KEYRING.md` §5).
//!
//! Wrapped bytes (61): `0x01 || nonce (12) || AES-256-GCM(K, nonce, DEK, aad)
//! (32) || tag (16)`, where the nonce is the first 12 bytes of
//! `HMAC-SHA-256(K_n, DEK || aad)` and `K_n = HKDF-SHA-256(IKM = K, salt =
//! none, info = "lockbox v1 local wrap nonce key")`. The caller passes the
//! envelope's binding bytes as `aad`; this module knows keys and its own
//! wrapped bytes, nothing of envelopes or providers.
//!
//! The AES-256-GCM runs on AWS-LC when the `aws-lc` feature is on (the same
//! bytes; about twice as fast for a data key), else on RustCrypto's
//! `aes-gcm`. The nonce PRF is [`HmacSha256`] with its pads computed once.

use alloc::boxed::Box;
use core::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::prf::HmacSha256;
use crate::error::Error;
use crate::keys::{DATA_KEY_LEN, DataKey, os_random};

/// Length of a key-encryption key.
pub(crate) const KEK_LEN: usize = 32;
/// Version byte that starts every wrapped key.
const WRAP_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Version byte, nonce, encrypted data key, tag.
pub(crate) const WRAPPED_LEN: usize = 1 + NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
/// HKDF-Expand info of the key that derives synthetic wrap nonces.
const NONCE_KEY_LABEL: &[u8] = b"lockbox v1 local wrap nonce key";

/// A wrap or unwrap failed. Unwrap failures (wrong length or version byte,
/// wrong key, wrong `aad`, tampered bytes) are deliberately not told apart;
/// callers map this to their own error.
#[derive(Debug)]
pub(crate) struct Failed;

/// A 256-bit key-encryption key with its AES key schedule and nonce PRF,
/// computed once. All three are zeroized on drop (`SecretBox`, aes-gcm's
/// `zeroize` feature or AWS-LC's wipe on free, [`HmacSha256`]); `Debug`
/// prints no key material.
pub(crate) struct Kek {
    cipher: WrapCipher,
    /// HMAC-SHA-256 keyed with the nonce key `K_n`.
    nonce_prf: HmacSha256,
    key: SecretBox<[u8; KEK_LEN]>,
}

/// The AES-256-GCM of the wrap, on AWS-LC when it is built in.
enum WrapCipher {
    #[cfg_attr(
        feature = "aws-lc",
        allow(dead_code, reason = "the fallback if AWS-LC refuses a key")
    )]
    RustCrypto(Box<Aes256Gcm>),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

impl WrapCipher {
    fn new(key: &[u8; KEK_LEN]) -> Self {
        #[cfg(feature = "aws-lc")]
        if let Ok(k) = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key) {
            return Self::AwsLc(aws_lc_rs::aead::LessSafeKey::new(k));
        }
        Self::RustCrypto(Box::new(Aes256Gcm::new(key.into())))
    }

    /// Encrypts `buf` in place; returns the tag.
    fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Failed> {
        match self {
            Self::RustCrypto(c) => c
                .encrypt_inout_detached(&Array::from(nonce), aad, InOutBuf::from(buf))
                .map(Into::into)
                .map_err(|_| Failed),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                let tag = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
                    .map_err(|_| Failed)?;
                tag.as_ref().try_into().map_err(|_| Failed)
            }
        }
    }

    /// Verifies and decrypts `buf` in place. On failure `buf` holds no
    /// plaintext (RustCrypto leaves the ciphertext, AWS-LC zeroizes it).
    fn open(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut [u8], tag: [u8; TAG_LEN]) -> Result<(), Failed> {
        match self {
            Self::RustCrypto(c) => c
                .decrypt_inout_detached(&Array::from(nonce), aad, InOutBuf::from(buf), &Array::from(tag))
                .map_err(|_| Failed),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => {
                use aws_lc_rs::aead::{Aad, Nonce};
                k.open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &tag, buf)
                    .map(|_| ())
                    .map_err(|_| Failed)
            }
        }
    }
}

impl Kek {
    /// A fresh key from the OS CSPRNG, drawn straight into its heap box.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut key = Box::new([0u8; KEK_LEN]);
        os_random(key.as_mut_slice())?;
        Ok(Self::new(SecretBox::new(key)))
    }

    /// The key schedules of `key`.
    pub(crate) fn new(key: SecretBox<[u8; KEK_LEN]>) -> Self {
        let bytes = key.expose_secret();
        Self {
            cipher: WrapCipher::new(bytes),
            nonce_prf: nonce_prf(bytes),
            key,
        }
    }

    /// The raw key (for key files and the keyring contents).
    pub(crate) fn bytes(&self) -> &[u8; KEK_LEN] {
        self.key.expose_secret()
    }

    /// The synthetic nonce: the first 12 bytes of `HMAC-SHA-256(K_n, DEK || aad)`.
    fn nonce(&self, dek: &DataKey, aad: &[u8]) -> [u8; NONCE_LEN] {
        let out = self.nonce_prf.mac(&[dek.expose_secret(), aad]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(out.get(..NONCE_LEN).unwrap_or(&[0u8; NONCE_LEN]));
        nonce
    }

    /// Wraps `dek` bound to `aad`. Deterministic: the same key and `aad`
    /// give the same bytes (never a repeated nonce with another key). Fails
    /// only on an `aad` beyond AES-GCM's limit.
    pub(crate) fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<[u8; WRAPPED_LEN], Failed> {
        let nonce = self.nonce(dek, aad);
        let mut out = [0u8; WRAPPED_LEN];
        let (version, rest) = out.split_at_mut(1);
        let (n, rest) = rest.split_at_mut(NONCE_LEN);
        let (ct, tag) = rest.split_at_mut(DATA_KEY_LEN);
        version.copy_from_slice(&[WRAP_V1]);
        n.copy_from_slice(&nonce);
        // The data key is copied into the output and encrypted there.
        ct.copy_from_slice(dek.expose_secret());
        let t = self.cipher.seal(nonce, aad, ct).inspect_err(|_| ct.zeroize())?;
        tag.copy_from_slice(&t);
        Ok(out)
    }

    /// Unwraps bytes made by [`wrap`](Self::wrap) with this key and `aad`,
    /// decrypting straight into the returned key.
    pub(crate) fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, Failed> {
        let bytes: &[u8; WRAPPED_LEN] = wrapped.try_into().map_err(|_| Failed)?;
        let (version, rest) = bytes.split_first().ok_or(Failed)?;
        if *version != WRAP_V1 {
            return Err(Failed);
        }
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN).ok_or(Failed)?;
        let (ct, tag) = rest.split_at_checked(DATA_KEY_LEN).ok_or(Failed)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Failed)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Failed)?;
        // Decrypted where the key will live: no copy of it elsewhere.
        let mut dek = DataKey::zeroed();
        dek.bytes_mut().copy_from_slice(ct);
        self.cipher.open(nonce, aad, dek.bytes_mut(), tag)?;
        Ok(dek)
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([REDACTED])")
    }
}

/// HMAC-SHA-256 keyed with `K_n`, 32 bytes.
fn nonce_prf(kek: &[u8; KEK_LEN]) -> HmacSha256 {
    let mut nonce_key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's output limit.
    let _ = Hkdf::<Sha256>::new(None, kek).expand(NONCE_KEY_LABEL, nonce_key.as_mut_slice());
    HmacSha256::new(&nonce_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(b: u8) -> Kek {
        Kek::new(SecretBox::new(Box::new([b; KEK_LEN])))
    }

    #[test]
    fn round_trips_and_rejects_every_change() {
        let k = kek(1);
        let dek = DataKey::from_array([7; 32]);
        let w = k.wrap(&dek, b"aad").unwrap();
        assert_eq!(w[0], WRAP_V1);
        assert_eq!(k.unwrap(&w, b"aad").unwrap().expose_secret(), &[7; 32]);
        assert!(k.unwrap(&w, b"aae").is_err());
        assert!(kek(2).unwrap(&w, b"aad").is_err());
        assert!(k.unwrap(&w[..60], b"aad").is_err());
        for i in 0..WRAPPED_LEN {
            let mut bad = w;
            bad[i] ^= 0x80;
            assert!(k.unwrap(&bad, b"aad").is_err(), "byte {i}");
        }
    }
}
