//! The cryptographic core: per-message key derivation, key commitment, segment
//! and header AEAD. Knows keys, not byte layouts (see `format`).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::format::{COMMITMENT_LEN, MESSAGE_ID_LEN, TAG_LEN};
use crate::suite::{Backend, Suite};

/// HKDF-Expand info label for the payload key (followed by the suite id byte).
pub(crate) const LABEL_PAYLOAD_KEY: &[u8] = b"lockbox v1 payload key";
/// HKDF-Expand info label for the key commitment (followed by the suite id byte).
pub(crate) const LABEL_COMMITMENT: &[u8] = b"lockbox v1 key commitment";

/// Nonce flag of a segment that is not the last.
const FLAG_SEGMENT: u8 = 0x00;
/// Nonce flag of the last segment.
const FLAG_FINAL: u8 = 0x01;
/// Nonce flag of the header tag (counter 0).
const FLAG_HEADER: u8 = 0x02;

/// A 12-byte nonce: seven zero bytes, the big-endian segment counter, a flag.
fn nonce12(index: u32, flag: u8) -> [u8; 12] {
    let i = index.to_be_bytes();
    [0, 0, 0, 0, 0, 0, 0, i[0], i[1], i[2], i[3], flag]
}

/// A 24-byte nonce: nineteen zero bytes, the big-endian counter, a flag.
fn nonce24(index: u32, flag: u8) -> [u8; 24] {
    let i = index.to_be_bytes();
    let mut n = [0u8; 24];
    n[19] = i[0];
    n[20] = i[1];
    n[21] = i[2];
    n[22] = i[3];
    n[23] = flag;
    n
}

fn flag(last: bool) -> u8 {
    if last { FLAG_FINAL } else { FLAG_SEGMENT }
}

/// The payload AEAD, keyed with one message's payload key. All three ciphers
/// zeroize their key schedules on drop (the crates' `zeroize` features).
#[allow(
    clippy::large_enum_variant,
    reason = "kept on the stack: boxing would cost an allocation per message"
)]
pub(crate) enum PayloadCipher {
    Aes(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
    XChaCha(XChaCha20Poly1305),
    #[cfg(feature = "aws-lc")]
    AwsLc(awslc::Cipher),
}

impl PayloadCipher {
    /// The cipher for `suite` on `backend` (XChaCha20-Poly1305 is always
    /// RustCrypto's).
    pub(crate) fn with_backend(suite: Suite, backend: Backend, key: &[u8; 32]) -> Self {
        match backend {
            Backend::RustCrypto => Self::new(suite, key),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => match awslc::Cipher::new(suite, key) {
                Some(c) => Self::AwsLc(c),
                None => Self::new(suite, key),
            },
        }
    }

    /// Whether a segment that fails to open is overwritten (zeroized) rather
    /// than left as it was: true of AWS-LC, which clears its output on
    /// failure, also in place; RustCrypto verifies before it decrypts.
    pub(crate) fn zeroizes_on_failure(&self) -> bool {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => true,
            _ => false,
        }
    }

    /// The RustCrypto cipher for `suite`.
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> Self {
        // Borrowed as an `Array`, not copied into a temporary. (The key schedule
        // itself is moved by value on the stack; only heap memory is checked
        // for stray copies, by tests/zeroize.)
        let key: &Array<u8, _> = key.into();
        match suite {
            Suite::Aes256Gcm => Self::Aes(Aes256Gcm::new(key)),
            Suite::ChaCha20Poly1305 => Self::ChaCha(ChaCha20Poly1305::new(key)),
            Suite::XChaCha20Poly1305 => Self::XChaCha(XChaCha20Poly1305::new(key)),
        }
    }

    fn encrypt(&self, index: u32, flag: u8, aad: &[u8], buf: InOutBuf<'_, '_, u8>) -> Result<[u8; TAG_LEN], Error> {
        let tag = match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => return Err(aws_lc_dispatch()),
            Self::Aes(c) => c.encrypt_inout_detached(&Array::from(nonce12(index, flag)), aad, buf),
            Self::ChaCha(c) => c.encrypt_inout_detached(&Array::from(nonce12(index, flag)), aad, buf),
            Self::XChaCha(c) => c.encrypt_inout_detached(&Array::from(nonce24(index, flag)), aad, buf),
        }
        .map_err(|_| Error::InvalidArgument {
            what: "segment too long for the AEAD",
        })?;
        Ok(tag.into())
    }

    fn decrypt(
        &self,
        index: u32,
        flag: u8,
        aad: &[u8],
        buf: InOutBuf<'_, '_, u8>,
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let tag = Array::from(*tag);
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => return Err(aws_lc_dispatch()),
            Self::Aes(c) => c.decrypt_inout_detached(&Array::from(nonce12(index, flag)), aad, buf, &tag),
            Self::ChaCha(c) => c.decrypt_inout_detached(&Array::from(nonce12(index, flag)), aad, buf, &tag),
            Self::XChaCha(c) => c.decrypt_inout_detached(&Array::from(nonce24(index, flag)), aad, buf, &tag),
        }
        .map_err(|_| Error::Authentication)
    }

    /// Encrypts segment `index` from `input` into `out`: its ciphertext, then
    /// its tag (`out` is 16 bytes longer than `input`).
    pub(crate) fn seal_segment(&self, index: u32, last: bool, input: &[u8], out: &mut [u8]) -> Result<(), Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.seal_to(nonce12(index, flag(last)), input, out);
        }
        let too_short = || Error::InvalidArgument {
            what: "segment buffers differ in length",
        };
        let (ct, tag_out) = out.split_at_mut_checked(input.len()).ok_or_else(too_short)?;
        let buf = InOutBuf::new(input, ct).map_err(|_| too_short())?;
        let tag = self.encrypt(index, flag(last), &[], buf)?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Encrypts segment `index` in place.
    pub(crate) fn seal_segment_in_place(&self, index: u32, last: bool, buf: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.seal_in_place(nonce12(index, flag(last)), &[], buf);
        }
        self.encrypt(index, flag(last), &[], InOutBuf::from(buf))
    }

    /// Verifies then decrypts segment `index` from `input` into `out`. On
    /// failure `out` holds no plaintext (RustCrypto leaves it untouched,
    /// AWS-LC's is zeroized).
    pub(crate) fn open_segment(
        &self,
        index: u32,
        last: bool,
        input: &[u8],
        out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.open_to(nonce12(index, flag(last)), input, out, tag);
        }
        let buf = InOutBuf::new(input, out).map_err(|_| Error::Authentication)?;
        self.decrypt(index, flag(last), &[], buf, tag)
    }

    /// Verifies then decrypts segment `index` in place. On failure the
    /// buffer holds no plaintext: RustCrypto leaves the ciphertext, AWS-LC's
    /// is zeroized (see [`zeroizes_on_failure`](Self::zeroizes_on_failure)).
    pub(crate) fn open_segment_in_place(
        &self,
        index: u32,
        last: bool,
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.open_in_place(nonce12(index, flag(last)), &[], buf, tag);
        }
        self.decrypt(index, flag(last), &[], InOutBuf::from(buf), tag)
    }

    /// The header tag: the AEAD tag of an empty plaintext with the header as
    /// associated data, under a nonce no segment uses.
    pub(crate) fn header_tag(&self, header: &[u8]) -> Result<[u8; TAG_LEN], Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.seal_in_place(nonce12(0, FLAG_HEADER), header, &mut []);
        }
        self.encrypt(0, FLAG_HEADER, header, InOutBuf::from(&mut [][..]))
    }

    /// Checks the header tag in constant time.
    pub(crate) fn verify_header_tag(&self, header: &[u8], tag: &[u8; TAG_LEN]) -> Result<(), Error> {
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            return c.open_in_place(nonce12(0, FLAG_HEADER), header, &mut [], tag);
        }
        self.decrypt(0, FLAG_HEADER, header, InOutBuf::from(&mut [][..]), tag)
    }
}

/// The AWS-LC variant is dispatched before the RustCrypto helpers are reached.
#[cfg(feature = "aws-lc")]
fn aws_lc_dispatch() -> Error {
    Error::InvalidArgument {
        what: "internal: AWS-LC cipher reached a RustCrypto path",
    }
}

#[cfg(test)]
impl PayloadCipher {
    /// Test-only: seal with an arbitrary nonce (Wycheproof vectors).
    pub(crate) fn seal_raw(&self, nonce: &[u8], aad: &[u8], msg: &[u8]) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut out = msg.to_vec();
        let bad = || Error::InvalidArgument { what: "nonce length" };
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
            let tag = c.seal_in_place(nonce, aad, out.as_mut_slice())?;
            out.extend_from_slice(&tag);
            return Ok(out);
        }
        let buf = InOutBuf::from(out.as_mut_slice());
        let tag = match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => return Err(aws_lc_dispatch()),
            Self::Aes(c) => c.encrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf),
            Self::ChaCha(c) => c.encrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf),
            Self::XChaCha(c) => c.encrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf),
        }
        .map_err(|_| Error::Authentication)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Test-only: open with an arbitrary nonce; `ct` includes the 16-byte tag.
    pub(crate) fn open_raw(&self, nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<alloc::vec::Vec<u8>, Error> {
        let split = ct.len().checked_sub(TAG_LEN).ok_or(Error::Authentication)?;
        let (body, tag) = ct.split_at(split);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Authentication)?;
        let mut out = body.to_vec();
        let bad = || Error::InvalidArgument { what: "nonce length" };
        #[cfg(feature = "aws-lc")]
        if let Self::AwsLc(c) = self {
            let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
            c.open_in_place(nonce, aad, out.as_mut_slice(), &tag)?;
            return Ok(out);
        }
        let buf = InOutBuf::from(out.as_mut_slice());
        let tag = Array::from(tag);
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(_) => return Err(aws_lc_dispatch()),
            Self::Aes(c) => c.decrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf, &tag),
            Self::ChaCha(c) => c.decrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf, &tag),
            Self::XChaCha(c) => c.decrypt_inout_detached(&Array::try_from(nonce).map_err(|_| bad())?, aad, buf, &tag),
        }
        .map_err(|_| Error::Authentication)?;
        Ok(out)
    }
}

/// AES-256-GCM and ChaCha20-Poly1305 on AWS-LC.
#[cfg(feature = "aws-lc")]
mod awslc;

pub(crate) mod kek_wrap;
pub(crate) mod prf;

use prf::{HmacSha256, Scratch};

/// Wycheproof AEAD vectors through the suite layer.
#[cfg(test)]
mod wycheproof;

/// What one message derives from its data key and message id.
pub(crate) struct MessageKeys {
    pub(crate) cipher: PayloadCipher,
    pub(crate) commitment: [u8; COMMITMENT_LEN],
}

/// HKDF-SHA-256 with the message id as salt and the data key as input keying
/// material; the payload key and the commitment come from distinct labels
/// (`FORMAT.md` §3). Each output is one hash block, so each expand is one
/// MAC: `HMAC(PRK, label || suite_id || 0x01)`; see [`prf`] for the cost.
pub(crate) fn derive(suite: Suite, backend: Backend, dek: &[u8; 32], message_id: &[u8; MESSAGE_ID_LEN]) -> MessageKeys {
    // One scratch block for the four MACs, wiped once when it drops.
    let mut s = Scratch::new();
    let prk = Zeroizing::new(HmacSha256::new_with(message_id, &mut s).mac_with(&[dek], &mut s));
    let expand = HmacSha256::new_with(&prk, &mut s);
    let suite_id = [suite.id(), 1];
    let payload_key = Zeroizing::new(expand.mac_with(&[LABEL_PAYLOAD_KEY, &suite_id], &mut s));
    let commitment = expand.mac_with(&[LABEL_COMMITMENT, &suite_id], &mut s);
    MessageKeys {
        cipher: PayloadCipher::with_backend(suite, backend, &payload_key),
        commitment,
    }
}

// The word-at-a-time fold of `commitment_matches` covers every byte only if
// this holds.
const _: () = assert!(COMMITMENT_LEN.is_multiple_of(8));

/// Constant-time equality of two commitments: the differences of all
/// bytes are or-ed together without a branch (a word at a time), and only
/// that word is compared, through `subtle`'s barrier.
pub(crate) fn commitment_matches(expected: &[u8; COMMITMENT_LEN], stored: &[u8; COMMITMENT_LEN]) -> bool {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0u8; 8]));
    let diff = expected
        .chunks_exact(8)
        .zip(stored.chunks_exact(8))
        .fold(0u64, |acc, (a, b)| acc | (word(a) ^ word(b)));
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_distinct_across_flags_and_indices() {
        assert_ne!(nonce12(0, FLAG_SEGMENT), nonce12(0, FLAG_FINAL));
        assert_ne!(nonce12(0, FLAG_FINAL), nonce12(0, FLAG_HEADER));
        assert_ne!(nonce12(1, FLAG_SEGMENT), nonce12(256, FLAG_SEGMENT));
        assert_eq!(nonce12(0x0102_0304, 1), [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 1]);
        assert_eq!(&nonce24(0x0102_0304, 2)[19..], &[1, 2, 3, 4, 2]);
    }

    #[test]
    fn commitments_match_only_when_equal() {
        let a = [5u8; COMMITMENT_LEN];
        assert!(commitment_matches(&a, &a));
        for i in 0..COMMITMENT_LEN {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!commitment_matches(&a, &b), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn derivation_is_hkdf_sha256_as_specified() {
        let (k, m) = ([7u8; 32], [9u8; 32]);
        for suite in Suite::ALL {
            let mut expected = [0u8; 32];
            hkdf::Hkdf::<sha2::Sha256>::new(Some(&m), &k)
                .expand_multi_info(&[LABEL_COMMITMENT, &[suite.id()]], &mut expected)
                .unwrap();
            assert_eq!(derive(suite, Backend::RustCrypto, &k, &m).commitment, expected);
        }
    }

    #[test]
    fn derivation_depends_on_every_input() {
        let k = [7u8; 32];
        let m = [9u8; 32];
        let base = derive(Suite::Aes256Gcm, Backend::RustCrypto, &k, &m).commitment;
        assert_ne!(
            base,
            derive(Suite::ChaCha20Poly1305, Backend::RustCrypto, &k, &m).commitment
        );
        assert_ne!(
            base,
            derive(Suite::Aes256Gcm, Backend::RustCrypto, &[8u8; 32], &m).commitment
        );
        assert_ne!(
            base,
            derive(Suite::Aes256Gcm, Backend::RustCrypto, &k, &[8u8; 32]).commitment
        );
        assert_eq!(base, derive(Suite::Aes256Gcm, Backend::RustCrypto, &k, &m).commitment);
    }

    #[test]
    fn segment_round_trip_and_flag_binding() {
        for suite in Suite::ALL {
            let keys = derive(suite, Backend::default(), &[1u8; 32], &[2u8; 32]);
            let pt = b"segment plaintext";
            let mut out = [0u8; 17 + TAG_LEN];
            keys.cipher.seal_segment(3, true, pt, &mut out).unwrap();
            let (ct, tag) = out.split_at(17);
            let tag: &[u8; TAG_LEN] = tag.try_into().unwrap();
            let mut back = [0u8; 17];
            assert!(keys.cipher.open_segment(3, false, ct, &mut back, tag).is_err());
            assert!(keys.cipher.open_segment(4, true, ct, &mut back, tag).is_err());
            assert_eq!(back, [0u8; 17], "failed opens release nothing");
            keys.cipher.open_segment(3, true, ct, &mut back, tag).unwrap();
            assert_eq!(&back, pt);
        }
    }
}
