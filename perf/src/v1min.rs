//! Format v1 written straight from the primitives, for one local KEK and
//! one AES-256-GCM segment on AWS-LC: the floor a v1 seal or open can reach
//! on this machine (the same bytes as lockbox: `tests` checks it against
//! `Sealer::seal_with_rng` and opens each other's envelopes). Not a library:
//! no limits beyond the ones the layout needs, only the checks that decide
//! the answer.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::prf::HmacSha256;

/// A context entry: key, value, stored (`true`) or required.
pub type Entry<'a> = (&'a str, &'a str, bool);

const LOCAL: &[u8] = b"lockbox.local";

/// A local KEK with its AES key schedule and nonce PRF.
pub struct LocalV1 {
    kek: LessSafeKey,
    nonce_prf: HmacSha256,
    key_id: [u8; 32],
}

fn hex(bytes: &[u8]) -> [u8; 32] {
    let digits = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().take(16).enumerate() {
        out[2 * i] = digits[usize::from(b >> 4)];
        out[2 * i + 1] = digits[usize::from(b & 15)];
    }
    out
}

/// The binding (`FORMAT.md` §7) of `ctx` (sorted by key) for AES-256-GCM.
fn binding(ctx: &[Entry<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(b"lockbox v1 binding");
    out.push(1);
    out.extend_from_slice(&(ctx.len() as u16).to_be_bytes());
    for (k, v, stored) in ctx {
        out.push(if *stored { 0 } else { 1 });
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
}

impl LocalV1 {
    pub fn new(kek: &[u8; 32]) -> Self {
        // K_n = HKDF-SHA-256(IKM = KEK, no salt, info = label), 32 bytes.
        let prk = HmacSha256::new(&[0u8; 32]).mac(&[kek]);
        let kn = HmacSha256::new(&prk).mac(&[b"lockbox v1 local wrap nonce key", &[1]]);
        let id = Sha256::new()
            .chain_update(b"lockbox v1 local kek id")
            .chain_update(kek)
            .finalize();
        Self {
            kek: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).unwrap()),
            nonce_prf: HmacSha256::new(&kn),
            key_id: hex(&id),
        }
    }

    /// The two per-message outputs of `FORMAT.md` §3.
    fn derive(dek: &[u8; 32], message_id: &[u8]) -> (Zeroizing<[u8; 32]>, [u8; 32]) {
        let mut salt = [0u8; 32];
        salt.copy_from_slice(message_id);
        let prk = Zeroizing::new(HmacSha256::new(&salt).mac(&[dek]));
        let expand = HmacSha256::new(&prk);
        let payload = Zeroizing::new(expand.mac(&[b"lockbox v1 payload key", &[1, 1]]));
        (payload, expand.mac(&[b"lockbox v1 key commitment", &[1, 1]]))
    }

    /// Seals `pt` (at most 64 KiB: one segment) with `random` as DEK and
    /// message id.
    pub fn seal_with(&self, ctx: &[Entry<'_>], pt: &[u8], random: &[u8; 64]) -> Vec<u8> {
        assert!(pt.len() <= 65536);
        let dek: &[u8; 32] = random[..32].try_into().unwrap();
        let message_id = &random[32..];
        let mut b = Vec::with_capacity(256);
        binding(ctx, &mut b);
        // The wrap: synthetic nonce, then AES-256-GCM of the data key.
        let n = self.nonce_prf.mac(&[dek, &b]);
        let mut wrapped = [0u8; 61];
        wrapped[0] = 1;
        wrapped[1..13].copy_from_slice(&n[..12]);
        wrapped[13..45].copy_from_slice(dek);
        let nonce: [u8; 12] = n[..12].try_into().unwrap();
        let tag = self
            .kek
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&b[..]),
                &mut wrapped[13..45],
            )
            .unwrap();
        wrapped[45..].copy_from_slice(tag.as_ref());
        let (payload_key, commitment) = Self::derive(dek, message_id);
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &payload_key[..]).unwrap());
        // The header.
        let ctx_len: usize = ctx
            .iter()
            .map(|(k, v, s)| 3 + k.len() + if *s { 2 + v.len() } else { 0 })
            .sum();
        let entry_len = 1 + LOCAL.len() + 1 + 32 + 4 + 2 + 61;
        let header_len = 40 + 2 + ctx_len + 32 + 1 + entry_len + 16;
        let mut out = Vec::with_capacity(header_len + pt.len() + 16);
        out.extend_from_slice(b"LKBX\x01\x01\x10\x00");
        out.extend_from_slice(message_id);
        out.extend_from_slice(&(ctx.len() as u16).to_be_bytes());
        for (k, v, stored) in ctx {
            out.push(if *stored { 0 } else { 1 });
            out.extend_from_slice(&(k.len() as u16).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            if *stored {
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
        out.extend_from_slice(&commitment);
        out.push(1);
        out.push(LOCAL.len() as u8);
        out.extend_from_slice(LOCAL);
        out.push(32);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&61u16.to_be_bytes());
        out.extend_from_slice(&wrapped);
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
                Aad::from(&out[..]),
                &mut [],
            )
            .unwrap();
        out.extend_from_slice(tag.as_ref());
        // The one segment (the last: flag 1).
        let at = out.len();
        out.extend_from_slice(pt);
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                Aad::empty(),
                &mut out[at..],
            )
            .unwrap();
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Seals with one OS random call, as lockbox does.
    pub fn seal(&self, ctx: &[Entry<'_>], pt: &[u8]) -> Vec<u8> {
        let mut random = Zeroizing::new([0u8; 64]);
        getrandom::fill(&mut random[..]).unwrap();
        self.seal_with(ctx, pt, &random)
    }

    /// Opens an envelope sealed under this KEK with exactly `ctx`, one
    /// segment; `None` on any failure.
    pub fn open(&self, ctx: &[Entry<'_>], env: &[u8]) -> Option<Vec<u8>> {
        let mut cur = Cursor { b: env, pos: 0 };
        if cur.take(8)? != b"LKBX\x01\x01\x10\x00" {
            return None;
        }
        let message_id = cur.take(32)?;
        let count = u16::from_be_bytes(cur.take(2)?.try_into().ok()?);
        if usize::from(count) != ctx.len() {
            return None;
        }
        // The caller's context must be the header's, entry for entry.
        for (k, v, stored) in ctx {
            let kind = cur.take(1)?[0];
            let klen = usize::from(u16::from_be_bytes(cur.take(2)?.try_into().ok()?));
            let key = core::str::from_utf8(cur.take(klen)?).ok()?;
            if key != *k || kind != u8::from(!*stored) || !key.bytes().all(|b| b >= 0x20 && b != 0x7f) {
                return None;
            }
            if *stored {
                let vlen = usize::from(u16::from_be_bytes(cur.take(2)?.try_into().ok()?));
                if core::str::from_utf8(cur.take(vlen)?).ok()? != *v {
                    return None;
                }
            }
        }
        let commitment: [u8; 32] = cur.take(32)?.try_into().ok()?;
        if cur.take(1)? != [1] {
            return None;
        }
        let plen = usize::from(cur.take(1)?[0]);
        let kid_ok = cur.take(plen)? == LOCAL && cur.take(1)? == [32] && cur.take(32)? == self.key_id;
        let version = cur.take(4)?;
        let wlen = usize::from(u16::from_be_bytes(cur.take(2)?.try_into().ok()?));
        let wrapped = cur.take(wlen)?;
        let authenticated_len = cur.pos;
        let header_tag: [u8; 16] = cur.take(16)?.try_into().ok()?;
        if !kid_ok || version != [0, 0, 0, 1] || wlen != 61 || wrapped[0] != 1 {
            return None;
        }
        let payload = env.get(authenticated_len + 16..)?;
        let mut b = Vec::with_capacity(256);
        binding(ctx, &mut b);
        let mut dek = Zeroizing::new([0u8; 32]);
        dek.copy_from_slice(&wrapped[13..45]);
        let nonce: [u8; 12] = wrapped[1..13].try_into().ok()?;
        self.kek
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&b[..]),
                &wrapped[45..],
                &mut dek[..],
            )
            .ok()?;
        let (payload_key, expected) = Self::derive(&dek, message_id);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &commitment[..])) {
            return None;
        }
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &payload_key[..]).ok()?);
        cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
                Aad::from(&env[..authenticated_len]),
                &header_tag,
                &mut [],
            )
            .ok()?;
        let (ct, tag) = payload.split_at_checked(payload.len().checked_sub(16)?)?;
        let mut out = vec![0u8; ct.len()];
        cipher
            .open_separate_gather(
                Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                Aad::empty(),
                ct,
                tag,
                &mut out,
            )
            .ok()?;
        Some(out)
    }
}

/// A cursor over untrusted bytes.
pub(crate) struct Cursor<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }
}
