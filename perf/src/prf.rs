//! A copy of lockbox's `src/crypto/prf.rs` (crate-private there), for the
//! prototypes. HMAC-SHA-256 on `sha2`'s block function (RFC 2104, FIPS 180-4), for the
//! hot path: the key schedule of every message (`FORMAT.md` §3) and the
//! synthetic nonce of the local wrap (§10).
//!
//! The same MAC as the `hmac` crate, with less work around it: a key is
//! padded and compressed once into its inner and outer states, and a MAC
//! is then one compression per 64 bytes of message (padding included) plus
//! one for the outer hash. HKDF-SHA-256 with 32-byte outputs is two such
//! MACs, so a message's key schedule (extract, then two expands) costs the
//! minimum of ten compressions, with no buffering or dispatch in between.
//! Every state and buffer that held key material is zeroized on drop.

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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
pub const MAC_LEN: usize = 32;

/// A keyed HMAC-SHA-256: the states after the padded key's block.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HmacSha256 {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacSha256 {
    /// HMAC keyed with `key` (32 bytes: HMAC zero-pads it to the block).
    pub fn new(key: &[u8; MAC_LEN]) -> Self {
        let mut block = Zeroizing::new([0x36u8; BLOCK]);
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut inner = IV;
        compress256(&mut inner, core::slice::from_ref(&*block));
        for b in block.iter_mut() {
            *b ^= 0x36 ^ 0x5c;
        }
        let mut outer = IV;
        compress256(&mut outer, core::slice::from_ref(&*block));
        Self { inner, outer }
    }

    /// The MAC of the concatenation of `parts`. One block buffer serves the
    /// inner and the outer hash and is zeroized once, at the end.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut h = Hash {
            state: self.inner,
            block: [0u8; BLOCK],
            pos: 0,
            // The key's block.
            len: BLOCK,
        };
        for p in parts {
            h.update(p);
        }
        h.pad();
        // Outer hash: the inner digest, padded, in the same block.
        let (digest, rest) = h.block.split_at_mut(MAC_LEN);
        for (o, w) in digest.chunks_exact_mut(4).zip(h.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        rest.fill(0);
        if let Some(b) = rest.first_mut() {
            *b = 0x80;
        }
        let bits = u64::try_from(BLOCK.saturating_add(MAC_LEN).saturating_mul(8)).unwrap_or(0);
        if let Some(len) = rest.last_chunk_mut::<8>() {
            *len = bits.to_be_bytes();
        }
        h.state = self.outer;
        compress256(&mut h.state, core::slice::from_ref(&h.block));
        let mut out = [0u8; MAC_LEN];
        for (o, w) in out.chunks_exact_mut(4).zip(h.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// SHA-256 from a given state, `len` bytes hashed so far (`pos` of them in
/// `block`). Zeroized on drop: the block and state hold key material.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Hash {
    state: [u32; 8],
    block: [u8; BLOCK],
    pos: usize,
    len: usize,
}

impl Hash {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.block.get_mut(self.pos..).unwrap_or_default();
            let take = room.len().min(data.len());
            let (now, rest) = data.split_at(take);
            if let Some(dst) = room.get_mut(..take) {
                dst.copy_from_slice(now);
            }
            self.pos = self.pos.saturating_add(take);
            self.len = self.len.saturating_add(take);
            data = rest;
            if self.pos == BLOCK {
                compress256(&mut self.state, core::slice::from_ref(&self.block));
                self.pos = 0;
            }
        }
    }

    /// The final padding (FIPS 180-4 §5.1.1): `0x80`, zeros, the length in
    /// bits; `state` is then the digest.
    fn pad(&mut self) {
        let bits = u64::try_from(self.len).unwrap_or(0).saturating_mul(8);
        let tail = self.block.get_mut(self.pos..).unwrap_or_default();
        tail.fill(0);
        if let Some(b) = tail.first_mut() {
            *b = 0x80;
        }
        if self.pos >= BLOCK.saturating_sub(8) {
            compress256(&mut self.state, core::slice::from_ref(&self.block));
            self.block.fill(0);
        }
        if let Some(len) = self.block.last_chunk_mut::<8>() {
            *len = bits.to_be_bytes();
        }
        compress256(&mut self.state, core::slice::from_ref(&self.block));
    }
}

/// SHA-256 of at most 55 bytes (one block), given in parts: the v2
/// prototype's one-compression derivations.
pub fn sha256_one_block(parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut h = Hash {
        state: IV,
        block: [0u8; BLOCK],
        pos: 0,
        len: 0,
    };
    for p in parts {
        h.update(p);
    }
    h.pad();
    let mut out = [0u8; MAC_LEN];
    for (o, w) in out.chunks_exact_mut(4).zip(h.state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}
