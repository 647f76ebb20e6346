//! The format v2 prototype of `docs/format-v2.md`: one local KEK, AES-256-GCM
//! on AWS-LC, one segment. Behind no public API of lockbox; it exists to
//! measure the proposal (bytes and time) against v1 and a peer in one run.
//!
//! Layout (`docs/format-v2.md` §2):
//!
//! ```text
//! "LKBX" | 0x02 | suite | exponent | flags | [message id (16) if flags & 1]
//! | context: varint count, entries (kind, varint key len, key, [varint value len, value])
//! | commitment (32) | wrapped count (1) | entries
//! local-KEK entry: 0x01 | fingerprint (8) | AES-256-GCM-SIV(KEK, nonce 0, DEK, binding) (48)
//! payload: segments as v1, segment 0's associated data = the header bytes
//! ```
//!
//! Key schedule (§3), `binding` as v1's with the label "lockbox v2 binding":
//!
//! ```text
//! payload_key = SHA-256("LKBXk" || suite || flags || [message id] || DEK)          1 compression
//! commitment  = SHA-256("LKBXc" || DEK || binding)                                2 for bindings <= 82 B
//! ```

use aws_lc_rs::aead::{AES_256_GCM, AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::v1min::{Cursor, Entry};

/// Flag: the header holds a 16-byte message id (the data key may serve
/// several messages, as with a data-key cache). Without it the data key
/// is fresh and is the only per-message input.
pub const FLAG_MESSAGE_ID: u8 = 1;

const TAG_LOCAL: u8 = 1;

/// A local KEK: AES-256-GCM-SIV for the wrap (deterministic with a fixed
/// nonce, misuse-resistant: no synthetic-nonce PRF, no stored nonce), and an
/// 8-byte fingerprint as its id.
pub struct LocalV2 {
    siv: LessSafeKey,
    fingerprint: [u8; 8],
    schedule: Schedule,
}

/// The key schedule (the doc measures both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One-block SHA-256 derivations (3 compressions with the commitment).
    OneBlock,
    /// HMAC-SHA-256 keyed with the data key (RFC 5869 expand without
    /// extract, the data key being uniform): 6 compressions.
    Hmac,
    /// A fresh data key is the payload key itself (no derivation; with a
    /// message id, as `OneBlock`): 2 compressions, the commitment's.
    Direct,
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(cur: &mut Cursor<'_>) -> Option<usize> {
    let mut v = 0usize;
    for shift in [0, 7, 14] {
        let b = cur.take(1)?[0];
        v |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            // Canonical: no trailing zero group.
            return (shift == 0 || b != 0).then_some(v);
        }
    }
    None
}

/// The v2 binding: v1's layout under its own label (every wrap and the
/// commitment are bound to it, required values included).
fn binding(ctx: &[Entry<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(b"lockbox v2 binding");
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

/// The payload key and the commitment.
fn derive(
    schedule: Schedule,
    flags: u8,
    message_id: &[u8],
    dek: &[u8; 32],
    binding: &[u8],
) -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    match schedule {
        Schedule::OneBlock => (
            Zeroizing::new(crate::prf::sha256_one_block(&[b"LKBXk", &[1, flags], message_id, dek])),
            Sha256::new()
                .chain_update(b"LKBXc")
                .chain_update(dek)
                .chain_update(binding)
                .finalize()
                .into(),
        ),
        Schedule::Direct if message_id.is_empty() => (
            Zeroizing::new(*dek),
            Sha256::new()
                .chain_update(b"LKBXc")
                .chain_update(dek)
                .chain_update(binding)
                .finalize()
                .into(),
        ),
        Schedule::Direct => derive(Schedule::OneBlock, flags, message_id, dek, binding),
        Schedule::Hmac => {
            let h = crate::prf::HmacSha256::new(dek);
            (
                Zeroizing::new(h.mac(&[b"LKBXk", &[1, flags], message_id])),
                h.mac(&[b"LKBXc", binding]),
            )
        }
    }
}

const NONCE_SEGMENT0_LAST: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

impl LocalV2 {
    pub fn new(kek: &[u8; 32]) -> Self {
        Self::with_schedule(kek, Schedule::OneBlock)
    }

    pub fn with_schedule(kek: &[u8; 32], schedule: Schedule) -> Self {
        let id = Sha256::new()
            .chain_update(b"lockbox v2 local kek id")
            .chain_update(kek)
            .finalize();
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&id[..8]);
        Self {
            siv: LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, kek).unwrap()),
            fingerprint,
            schedule,
        }
    }

    /// Seals `pt` (one segment) with `random` (the data key, then the
    /// message id if `flags` asks for one).
    pub fn seal_with(&self, ctx: &[Entry<'_>], pt: &[u8], flags: u8, random: &[u8]) -> Vec<u8> {
        assert!(pt.len() <= 65536);
        let dek: &[u8; 32] = random[..32].try_into().unwrap();
        let message_id = if flags & FLAG_MESSAGE_ID != 0 {
            &random[32..48]
        } else {
            &[][..]
        };
        let mut b = Vec::with_capacity(256);
        binding(ctx, &mut b);
        let mut wrapped = [0u8; 48];
        wrapped[..32].copy_from_slice(dek);
        let tag = self
            .siv
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&b[..]),
                &mut wrapped[..32],
            )
            .unwrap();
        wrapped[32..].copy_from_slice(tag.as_ref());
        let (key, commitment) = derive(self.schedule, flags, message_id, dek, &b);
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key[..]).unwrap());
        let mut out = Vec::with_capacity(128 + b.len() + pt.len());
        out.extend_from_slice(b"LKBX\x02\x01\x10");
        out.push(flags);
        out.extend_from_slice(message_id);
        varint(&mut out, ctx.len());
        for (k, v, stored) in ctx {
            out.push(if *stored { 0 } else { 1 });
            varint(&mut out, k.len());
            out.extend_from_slice(k.as_bytes());
            if *stored {
                varint(&mut out, v.len());
                out.extend_from_slice(v.as_bytes());
            }
        }
        out.extend_from_slice(&commitment);
        out.push(1);
        out.push(TAG_LOCAL);
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&wrapped);
        // Segment 0 (here also the last) carries the header as associated data.
        let header_len = out.len();
        out.extend_from_slice(pt);
        let (header, body) = out.split_at_mut(header_len);
        let tag = cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE_SEGMENT0_LAST),
                Aad::from(&*header),
                body,
            )
            .unwrap();
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Seals with one OS random call (32 bytes, or 48 with a message id).
    pub fn seal(&self, ctx: &[Entry<'_>], pt: &[u8], flags: u8) -> Vec<u8> {
        let mut random = Zeroizing::new([0u8; 48]);
        let n = if flags & FLAG_MESSAGE_ID != 0 { 48 } else { 32 };
        getrandom::fill(&mut random[..n]).unwrap();
        self.seal_with(ctx, pt, flags, &random[..n])
    }

    /// Seals drawing the data key from `rng` (a user-space CSPRNG, as
    /// tink-rust does) instead of the OS.
    pub fn seal_rng(&self, ctx: &[Entry<'_>], pt: &[u8], rng: &mut impl rand::RngCore) -> Vec<u8> {
        let mut random = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut random[..]);
        self.seal_with(ctx, pt, 0, &random[..])
    }

    /// Opens with exactly `ctx`; `None` on any failure.
    pub fn open(&self, ctx: &[Entry<'_>], env: &[u8]) -> Option<Vec<u8>> {
        let mut cur = Cursor { b: env, pos: 0 };
        if cur.take(7)? != b"LKBX\x02\x01\x10" {
            return None;
        }
        let flags = cur.take(1)?[0];
        if flags & !FLAG_MESSAGE_ID != 0 {
            return None;
        }
        let message_id = if flags & FLAG_MESSAGE_ID != 0 {
            cur.take(16)?
        } else {
            &[][..]
        };
        if read_varint(&mut cur)? != ctx.len() {
            return None;
        }
        for (k, v, stored) in ctx {
            let kind = cur.take(1)?[0];
            let klen = read_varint(&mut cur)?;
            let key = core::str::from_utf8(cur.take(klen)?).ok()?;
            if key != *k || kind != u8::from(!*stored) || !key.bytes().all(|b| b >= 0x20 && b != 0x7f) {
                return None;
            }
            if *stored {
                let vlen = read_varint(&mut cur)?;
                if core::str::from_utf8(cur.take(vlen)?).ok()? != *v {
                    return None;
                }
            }
        }
        let stored_commitment: [u8; 32] = cur.take(32)?.try_into().ok()?;
        if cur.take(1)? != [1] || cur.take(1)? != [TAG_LOCAL] || cur.take(8)? != self.fingerprint {
            return None;
        }
        let wrapped = cur.take(48)?;
        let header_len = cur.pos;
        let mut b = Vec::with_capacity(256);
        binding(ctx, &mut b);
        let mut dek = Zeroizing::new([0u8; 32]);
        dek.copy_from_slice(&wrapped[..32]);
        self.siv
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&b[..]),
                &wrapped[32..],
                &mut dek[..],
            )
            .ok()?;
        let (key, commitment) = derive(self.schedule, flags, message_id, &dek, &b);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&commitment[..], &stored_commitment[..])) {
            return None;
        }
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key[..]).ok()?);
        let payload = env.get(header_len..)?;
        let (ct, tag) = payload.split_at_checked(payload.len().checked_sub(16)?)?;
        let mut out = vec![0u8; ct.len()];
        cipher
            .open_separate_gather(
                Nonce::assume_unique_for_key(NONCE_SEGMENT0_LAST),
                Aad::from(&env[..header_len]),
                ct,
                tag,
                &mut out,
            )
            .ok()?;
        Some(out)
    }
}
