//! Helpers shared by the keyring tests: times, an independent decoder of
//! the keyring file contents written from KEYRING.md, and an async-only
//! provider (`async_only`, also used by `tests/cache.rs`).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub(crate) mod async_only;

use lockbox::keyring::UnixTime;
use lockbox::{EncryptionContext, KeyEncryptionProvider};

pub(crate) const T0: u64 = 1_700_000_000;

pub(crate) fn t(n: u64) -> UnixTime {
    UnixTime(T0 + n)
}

/// One decoded version entry (KEYRING.md §3.2).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawEntry {
    pub(crate) version: u32,
    pub(crate) created: u64,
    pub(crate) state: u8,
    pub(crate) flags: u8,
    pub(crate) time: u64,
    pub(crate) key: Option<[u8; 32]>,
}

/// The decoded contents of a keyring file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawKeyring {
    pub(crate) id: String,
    pub(crate) generation: u64,
    pub(crate) primary: u32,
    pub(crate) minimum: u32,
    pub(crate) trimmed_below: u32,
    pub(crate) last_version: u32,
    pub(crate) rotation: u64,
    pub(crate) min_delay: u64,
    pub(crate) entries: Vec<RawEntry>,
}

/// Opens a keyring file with the master and decodes its contents, following
/// KEYRING.md alone.
pub(crate) fn decode_file(file: &[u8], master: &dyn KeyEncryptionProvider) -> (Vec<u8>, RawKeyring) {
    // Lenient: the file's context (KEYRING.md §2) is not known in advance.
    let body = lockbox::Opener::new(master)
        .lenient_context()
        .open(file, &EncryptionContext::new())
        .unwrap();
    let mut p = 0usize;
    let mut take = |n: usize| {
        let s = body[p..p + n].to_vec();
        p += n;
        s
    };
    assert_eq!(take(8), b"LKBXRING");
    assert_eq!(take(1), [1]);
    let q = usize::from(take(1)[0]);
    let id = String::from_utf8(take(q)).unwrap();
    let u64_ = |b: Vec<u8>| u64::from_be_bytes(b.try_into().unwrap());
    let u32_ = |b: Vec<u8>| u32::from_be_bytes(b.try_into().unwrap());
    let generation = u64_(take(8));
    let primary = u32_(take(4));
    let minimum = u32_(take(4));
    let trimmed_below = u32_(take(4));
    let last_version = u32_(take(4));
    let rotation = u64_(take(8));
    let min_delay = u64_(take(8));
    let n = u32_(take(4));
    let mut entries = Vec::new();
    for _ in 0..n {
        let version = u32_(take(4));
        let created = u64_(take(8));
        let state = take(1)[0];
        let flags = take(1)[0];
        let time = u64_(take(8));
        let key = if state == 4 {
            None
        } else {
            Some(take(32).try_into().unwrap())
        };
        entries.push(RawEntry {
            version,
            created,
            state,
            flags,
            time,
            key,
        });
    }
    assert_eq!(p, body.len(), "trailing bytes");
    let raw = RawKeyring {
        id,
        generation,
        primary,
        minimum,
        trimmed_below,
        last_version,
        rotation,
        min_delay,
        entries,
    };
    (body, raw)
}

/// Every live version's key, from a keyring file.
pub(crate) fn version_keys(file: &[u8], master: &dyn KeyEncryptionProvider) -> Vec<(u32, [u8; 32])> {
    let (_, raw) = decode_file(file, master);
    raw.entries
        .iter()
        .filter_map(|e| e.key.map(|k| (e.version, k)))
        .collect()
}
