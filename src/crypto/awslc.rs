//! AES-256-GCM and ChaCha20-Poly1305 on AWS-LC (`aws-lc-rs`).
//!
//! Same nonces, associated data and tags as the RustCrypto path, so the bytes
//! are identical (tests/backends.rs checks it). AWS-LC leaves a buffer that
//! fails to open "overwritten in an unspecified way"; every failure here
//! zeroizes the output itself, so no unauthenticated byte is ever left in it.

use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroize;

use crate::error::Error;
use crate::format::TAG_LEN;
use crate::suite::Suite;

/// A keyed AWS-LC AEAD (AWS-LC wipes its key schedule when it is freed).
pub(crate) struct Cipher {
    key: LessSafeKey,
}

fn unexpected() -> Error {
    Error::InvalidArgument {
        what: "AWS-LC refused the operation",
    }
}

impl Cipher {
    /// `None` for a suite AWS-LC does not implement (XChaCha20-Poly1305).
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> Option<Self> {
        let alg = match suite {
            Suite::Aes256Gcm => &AES_256_GCM,
            Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            _ => return None,
        };
        let key_ = UnboundKey::new(alg, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key_),
        })
    }

    /// Encrypts `input` into `out`, which has room for the ciphertext and
    /// then the tag.
    pub(crate) fn seal_to(&self, nonce: [u8; 12], input: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let (ct, tag) = out.split_at_mut_checked(input.len()).ok_or_else(unexpected)?;
        if tag.len() != TAG_LEN {
            return Err(unexpected());
        }
        // The bulk out-of-place call: the "extra input" of the scatter calls
        // is meant for a few bytes (ChaCha20 runs it a block at a time).
        self.key
            .seal_out_of_place_scatter(Nonce::assume_unique_for_key(nonce), Aad::empty(), input, ct, &[], tag)
            .map_err(|_| unexpected())
    }

    /// Encrypts `buf` in place and returns the tag (an empty `buf` gives the
    /// tag of `aad` alone: the header tag).
    pub(crate) fn seal_in_place(&self, nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| unexpected())?;
        tag.as_ref().try_into().map_err(|_| unexpected())
    }

    /// Verifies and decrypts `input` into `out` (same length); zeroizes `out`
    /// on failure.
    pub(crate) fn open_to(
        &self,
        nonce: [u8; 12],
        input: &[u8],
        out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let r = self
            .key
            .open_separate_gather(Nonce::assume_unique_for_key(nonce), Aad::empty(), input, tag, out);
        if r.is_err() {
            out.zeroize();
            return Err(Error::Authentication);
        }
        Ok(())
    }

    /// Verifies and decrypts `buf` in place; zeroizes it on failure.
    pub(crate) fn open_in_place(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let r = self
            .key
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tag, buf);
        if r.is_err() {
            buf.zeroize();
            return Err(Error::Authentication);
        }
        Ok(())
    }
}
