//! HMAC-SHA-256 on `sha2`'s block function (RFC 2104, FIPS 180-4), for the
//! hot path: the key schedule of every message (`FORMAT.md` §3) and the
//! synthetic nonce of the local wrap (§10).
//!
//! The same MAC as the `hmac` crate, with less work around it: a key is
//! padded and compressed once into its inner and outer states, and a MAC
//! is then one compression per 64 bytes of message (padding included) plus
//! one for the outer hash. HKDF-SHA-256 with 32-byte outputs is two such
//! MACs, so a message's key schedule (extract, then two expands) costs the
//! minimum of ten compressions, with no buffering or dispatch in between.
//! The padded key blocks, the MAC's states and its scratch block are
//! zeroized on drop; as elsewhere in the crate, copies the compiler leaves
//! on the stack (SHA-256's message schedule inside `compress256`, the
//! returned MAC before the caller wraps it) are not, and only heap memory is
//! checked (`tests/zeroize`).

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256's initial hash value (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const BLOCK: usize = 64;
/// Output length, and the longest key taken (as a zero-padded block).
pub(crate) const MAC_LEN: usize = 32;

/// A keyed HMAC-SHA-256: the states after the padded key's block.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct HmacSha256 {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// The working block and state of a hash, shared by the MACs of one
/// derivation so that it is wiped once (zeroizing writes every byte
/// separately: one wipe instead of one per MAC is most of a MAC's cost
/// outside the compressions).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Scratch {
    block: [u8; BLOCK],
    state: [u32; 8],
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            block: [0u8; BLOCK],
            state: [0u32; 8],
        }
    }
}

impl HmacSha256 {
    /// HMAC keyed with `key` (32 bytes: HMAC zero-pads it to the block).
    pub(crate) fn new(key: &[u8; MAC_LEN]) -> Self {
        Self::new_with(key, &mut Scratch::new())
    }

    /// [`new`](Self::new), working in `s`.
    pub(crate) fn new_with(key: &[u8; MAC_LEN], s: &mut Scratch) -> Self {
        s.block = [0x36u8; BLOCK];
        for (b, k) in s.block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut inner = IV;
        compress256(&mut inner, core::slice::from_ref(&s.block));
        for b in s.block.iter_mut() {
            *b ^= 0x36 ^ 0x5c;
        }
        let mut outer = IV;
        compress256(&mut outer, core::slice::from_ref(&s.block));
        Self { inner, outer }
    }

    /// The MAC of the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.mac_with(parts, &mut Scratch::new())
    }

    /// [`mac`](Self::mac), working in `s` (the inner and the outer hash use
    /// the same block).
    pub(crate) fn mac_with(&self, parts: &[&[u8]], s: &mut Scratch) -> [u8; MAC_LEN] {
        s.state = self.inner;
        // The key's block was hashed: 64 bytes so far.
        let (mut pos, mut len) = (0usize, BLOCK);
        for p in parts {
            let mut data: &[u8] = p;
            while !data.is_empty() {
                let room = s.block.get_mut(pos..).unwrap_or_default();
                let take = room.len().min(data.len());
                let (now, rest) = data.split_at(take);
                if let Some(dst) = room.get_mut(..take) {
                    dst.copy_from_slice(now);
                }
                pos = pos.saturating_add(take);
                len = len.saturating_add(take);
                data = rest;
                if pos == BLOCK {
                    compress256(&mut s.state, core::slice::from_ref(&s.block));
                    pos = 0;
                }
            }
        }
        pad(s, pos, len);
        // Outer hash: the inner digest, padded, in the same block.
        let (digest, rest) = s.block.split_at_mut(MAC_LEN);
        for (o, w) in digest.chunks_exact_mut(4).zip(&s.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        rest.fill(0);
        if let Some(b) = rest.first_mut() {
            *b = 0x80;
        }
        let bits = u64::try_from(BLOCK.saturating_add(MAC_LEN).saturating_mul(8)).unwrap_or(0);
        if let Some(l) = rest.last_chunk_mut::<8>() {
            *l = bits.to_be_bytes();
        }
        s.state = self.outer;
        compress256(&mut s.state, core::slice::from_ref(&s.block));
        let mut out = [0u8; MAC_LEN];
        for (o, w) in out.chunks_exact_mut(4).zip(&s.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// The final padding (FIPS 180-4 §5.1.1) of a hash with `pos` bytes in the
/// block and `len` in all: `0x80`, zeros, the length in bits; `s.state` is
/// then the digest.
fn pad(s: &mut Scratch, pos: usize, len: usize) {
    let bits = u64::try_from(len).unwrap_or(0).saturating_mul(8);
    let tail = s.block.get_mut(pos..).unwrap_or_default();
    tail.fill(0);
    if let Some(b) = tail.first_mut() {
        *b = 0x80;
    }
    if pos >= BLOCK.saturating_sub(8) {
        compress256(&mut s.state, core::slice::from_ref(&s.block));
        s.block.fill(0);
    }
    if let Some(l) = s.block.last_chunk_mut::<8>() {
        *l = bits.to_be_bytes();
    }
    compress256(&mut s.state, core::slice::from_ref(&s.block));
}

#[cfg(test)]
mod tests {
    use hkdf::Hkdf;
    use hmac::{Hmac, KeyInit as _, Mac as _};
    use sha2::Sha256 as RefSha256;

    use super::*;

    #[test]
    fn matches_the_hmac_crate_at_every_length_around_the_block() {
        let key: [u8; 32] = core::array::from_fn(|i| u8::try_from(i * 7 % 256).unwrap());
        let ours = HmacSha256::new(&key);
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
        for len in 0..data.len() {
            let msg = &data[..len];
            let mut r = <Hmac<RefSha256>>::new_from_slice(&key).unwrap();
            r.update(msg);
            let expected: [u8; 32] = r.finalize().into_bytes().into();
            assert_eq!(ours.mac(&[msg]), expected, "length {len}");
            // Split anywhere: the same MAC.
            let (a, b) = msg.split_at(len / 3);
            assert_eq!(ours.mac(&[a, b]), expected, "length {len} split");
        }
    }

    /// RFC 4231 test cases 1 and 2 (keys shorter than 32 bytes, zero-padded:
    /// HMAC pads every key to the block with zeros, so the MAC is the same).
    #[test]
    fn rfc4231_known_answers() {
        let hex =
            |s: &str| -> [u8; 32] { core::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()) };
        let mut k1 = [0u8; 32];
        k1[..20].fill(0x0b);
        assert_eq!(
            HmacSha256::new(&k1).mac(&[b"Hi There"]),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        let mut k2 = [0u8; 32];
        k2[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            HmacSha256::new(&k2).mac(&[b"what do ya ", b"want for nothing?"]),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn two_macs_are_hkdf_with_32_byte_outputs() {
        let salt = [9u8; 32];
        let ikm = [4u8; 32];
        let info = b"lockbox v1 payload key\x01";
        let mut expected = [0u8; 32];
        Hkdf::<RefSha256>::new(Some(&salt), &ikm)
            .expand(info, &mut expected)
            .unwrap();
        let prk = HmacSha256::new(&salt).mac(&[&ikm]);
        assert_eq!(HmacSha256::new(&prk).mac(&[info, &[1]]), expected);
    }
}
