//! The keys of one secrets file and what they do (`SECRETS.md` §4–§6): the
//! file key (the payload of the key envelope), the value key and the
//! authenticator key derived from it, value encryption and the authenticator.
//! No byte layout of the text forms lives here.

use alloc::boxed::Box;
use alloc::vec::Vec;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::aead::array::Array;
use chacha20poly1305::aead::inout::InOutBuf;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;
use crate::keys::os_random;

/// Length of the file key.
pub(crate) const FILE_KEY_LEN: usize = 32;
/// Length of a file id.
pub(crate) const FILE_ID_LEN: usize = 16;
/// XChaCha20-Poly1305 nonce length.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Length of the authenticator.
pub(crate) const MAC_LEN: usize = 32;
/// Plaintexts are padded to a multiple of this many bytes.
pub(crate) const PAD_BLOCK: usize = 32;

const VALUE_KEY_INFO: &[u8] = b"lockbox secrets v1 value key";
const MAC_KEY_INFO: &[u8] = b"lockbox secrets v1 mac key";
/// Label that starts every value's associated data.
pub(crate) const VALUE_AAD_LABEL: &[u8] = b"lockbox secrets v1 value";
/// Label that starts the authenticator's input.
pub(crate) const MAC_LABEL: &[u8] = b"lockbox secrets v1 file";

/// The keys of an unlocked file: the file key, its id, the value cipher and
/// the authenticator key. Always boxed (moving a handle never copies key
/// bytes), zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct FileKeys {
    file_key: [u8; FILE_KEY_LEN],
    value_key: [u8; 32],
    mac_key: [u8; 32],
    #[zeroize(skip)]
    file_id: [u8; FILE_ID_LEN],
}

impl core::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileKeys([REDACTED])")
    }
}

impl FileKeys {
    /// The keys of file key `file_key` (copied; the caller wipes its own)
    /// and file id `file_id`.
    pub(crate) fn derive(file_key: &[u8; FILE_KEY_LEN], file_id: [u8; FILE_ID_LEN]) -> Box<Self> {
        let mut k = Box::new(Self {
            file_key: [0; FILE_KEY_LEN],
            value_key: [0; 32],
            mac_key: [0; 32],
            file_id,
        });
        k.file_key.copy_from_slice(file_key);
        let hk = Hkdf::<Sha256>::new(Some(&file_id), file_key);
        // 32 bytes is far below HKDF-SHA-256's output limit.
        let _ = hk.expand(VALUE_KEY_INFO, &mut k.value_key);
        let _ = hk.expand(MAC_KEY_INFO, &mut k.mac_key);
        k
    }

    /// A fresh file key from the OS CSPRNG for file `file_id`.
    pub(crate) fn generate(file_id: [u8; FILE_ID_LEN]) -> Result<Box<Self>, Error> {
        let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
        os_random(key.as_mut_slice())?;
        Ok(Self::derive(&key, file_id))
    }

    pub(crate) fn file_key(&self) -> &[u8; FILE_KEY_LEN] {
        &self.file_key
    }

    pub(crate) fn file_id(&self) -> &[u8; FILE_ID_LEN] {
        &self.file_id
    }

    /// Whether two handles hold the same file key (constant time).
    pub(crate) fn same_key(&self, other: &Self) -> bool {
        bool::from(self.file_key.ct_eq(&other.file_key)) && self.file_id == other.file_id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Array::from(self.value_key))
    }

    /// Encrypts `plain` (type byte and data, unpadded) under `aad`: returns
    /// `nonce || ciphertext || tag`, the plaintext padded first (§5).
    pub(crate) fn seal_value(&self, kind: u8, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let padded_len = padded_len(data.len())?;
        let total = NONCE_LEN.saturating_add(padded_len).saturating_add(TAG_LEN);
        let mut out = Vec::with_capacity(total);
        out.resize(NONCE_LEN, 0);
        os_random(out.as_mut_slice())?;
        let nonce: [u8; NONCE_LEN] = out.as_slice().try_into().map_err(|_| Error::Random)?;
        out.push(kind);
        out.extend_from_slice(data);
        out.push(0x80);
        out.resize(NONCE_LEN.saturating_add(padded_len), 0);
        let body = out.get_mut(NONCE_LEN..).unwrap_or_default();
        match self
            .cipher()
            .encrypt_inout_detached(&Array::from(nonce), aad, InOutBuf::from(body))
        {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(out)
            }
            Err(_) => {
                out.zeroize();
                Err(Error::invalid_argument("value too large to encrypt"))
            }
        }
    }

    /// Decrypts `sealed` (`nonce || ciphertext || tag`) under `aad` into a
    /// zeroized buffer and strips the padding: returns the type byte and
    /// the data. Nothing is returned unless the tag verified.
    pub(crate) fn open_value(&self, sealed: &[u8], aad: &[u8]) -> Result<(u8, Zeroizing<Vec<u8>>), Error> {
        let (nonce, rest) = sealed.split_at_checked(NONCE_LEN).ok_or(Error::Authentication)?;
        let body_len = rest.len().checked_sub(TAG_LEN).ok_or(Error::Authentication)?;
        let (body, tag) = rest.split_at_checked(body_len).ok_or(Error::Authentication)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Authentication)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Authentication)?;
        let mut plain = Zeroizing::new(body.to_vec());
        self.cipher()
            .decrypt_inout_detached(
                &Array::from(nonce),
                aad,
                InOutBuf::from(plain.as_mut_slice()),
                &Array::from(tag),
            )
            .map_err(|_| {
                plain.zeroize();
                Error::Authentication
            })?;
        let data_end = unpad(&plain).ok_or(Error::Authentication)?;
        let kind = *plain.first().ok_or(Error::Authentication)?;
        let data = Zeroizing::new(plain.get(1..data_end).unwrap_or_default().to_vec());
        Ok((kind, data))
    }

    /// The authenticator over `input` (§6).
    pub(crate) fn mac(&self, input: &[u8]) -> [u8; MAC_LEN] {
        let mut m = hmac_sha256(&self.mac_key);
        m.update(input);
        m.finalize().into_bytes().into()
    }

    /// Whether `mac` authenticates `input` (constant time).
    pub(crate) fn verify_mac(&self, input: &[u8], mac: &[u8; MAC_LEN]) -> bool {
        bool::from(self.mac(input).ct_eq(mac))
    }
}

/// HMAC-SHA-256 keyed with `key` (at most 64 bytes: HMAC pads a key
/// shorter than its block with zeros).
pub(crate) fn hmac_sha256(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; 64]);
    if let Some(k) = block.get_mut(..32) {
        k.copy_from_slice(key);
    }
    <Hmac<Sha256> as KeyInit>::new((&*block).into())
}

/// The padded plaintext length of `data_len` bytes of data: type byte, data,
/// `0x80`, zeros, to a multiple of [`PAD_BLOCK`].
pub(crate) fn padded_len(data_len: usize) -> Result<usize, Error> {
    let min = data_len
        .checked_add(2)
        .ok_or(Error::invalid_argument("value too large"))?;
    min.checked_next_multiple_of(PAD_BLOCK)
        .ok_or(Error::invalid_argument("value too large"))
}

/// The end of the data in a padded plaintext (the index of the `0x80`
/// marker), or `None` if the padding is not exactly `0x80 0x00*` or the
/// length is not a multiple of [`PAD_BLOCK`].
fn unpad(plain: &[u8]) -> Option<usize> {
    if plain.is_empty() || !plain.len().is_multiple_of(PAD_BLOCK) {
        return None;
    }
    let marker = plain.iter().rposition(|&b| b != 0)?;
    // The marker follows the type byte, and the padding is the shortest.
    if marker == 0 || plain.get(marker) != Some(&0x80) || padded_len(marker.saturating_sub(1)).ok() != Some(plain.len())
    {
        return None;
    }
    Some(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bound_to_aad_and_padded() {
        let k = FileKeys::derive(&[7; 32], [1; 16]);
        for len in [0usize, 1, 29, 30, 31, 62, 100] {
            let data = alloc::vec![0x61u8; len];
            let s = k.seal_value(1, &data, b"aad").unwrap();
            assert_eq!((s.len() - NONCE_LEN - TAG_LEN) % PAD_BLOCK, 0);
            assert_eq!(s.len() - NONCE_LEN - TAG_LEN, padded_len(len).unwrap());
            let (kind, back) = k.open_value(&s, b"aad").unwrap();
            assert_eq!((kind, back.as_slice()), (1, data.as_slice()));
            assert!(k.open_value(&s, b"aaD").is_err());
            let other = FileKeys::derive(&[7; 32], [2; 16]);
            assert!(other.open_value(&s, b"aad").is_err());
        }
        assert_eq!(padded_len(30).unwrap(), 32);
        assert_eq!(padded_len(31).unwrap(), 64);
        assert_eq!(unpad(&[1, 0x80, 0, 0]), None);
        let mut p = [0u8; 32];
        p[0] = 1;
        assert_eq!(unpad(&p), None);
        p[1] = 0x80;
        assert_eq!(unpad(&p), Some(1));
        p[5] = 1;
        assert_eq!(unpad(&p), None);
    }

    #[test]
    fn mac_is_keyed_by_the_file() {
        let a = FileKeys::derive(&[7; 32], [1; 16]);
        let b = FileKeys::derive(&[8; 32], [1; 16]);
        let m = a.mac(b"x");
        assert!(a.verify_mac(b"x", &m));
        assert!(!a.verify_mac(b"y", &m));
        assert!(!b.verify_mac(b"x", &m));
        assert!(a.same_key(&FileKeys::derive(&[7; 32], [1; 16])));
        assert!(!a.same_key(&b));
    }
}
