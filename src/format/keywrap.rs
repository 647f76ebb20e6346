//! The wrapped bytes of lockbox's recipient (HPKE) and passphrase (Argon2id)
//! providers (`FORMAT.md` §15): layouts only, parsed strictly and encoded
//! here; the keys and the cryptography live with the providers.

use core::fmt;

use crate::format::TAG_LEN;
use crate::keys::DATA_KEY_LEN;

#[cfg(feature = "recipients")]
/// Version byte of a recipient wrap (`lockbox.x25519`, `lockbox.xwing`).
pub(crate) const RECIPIENT_WRAP_V1: u8 = 0x01;
#[cfg(feature = "passphrase")]
/// Version byte of a passphrase wrap (`lockbox.passphrase`).
pub(crate) const PASSPHRASE_WRAP_V1: u8 = 0x01;
/// The data key sealed with its AEAD tag.
pub(crate) const SEALED_KEY_LEN: usize = DATA_KEY_LEN + TAG_LEN;
#[cfg(feature = "passphrase")]
/// Length of a passphrase wrap's salt.
pub(crate) const PASSPHRASE_SALT_LEN: usize = 32;
#[cfg(feature = "passphrase")]
/// Length of a passphrase wrap: version, three `u32` parameters, salt, sealed key.
pub(crate) const PASSPHRASE_WRAP_LEN: usize = 1 + 12 + PASSPHRASE_SALT_LEN + SEALED_KEY_LEN;

/// Why wrapped bytes were refused before any cryptography. Reported as the
/// source of an `Authentication` provider error (the structure of bytes an
/// attacker supplied is no secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MalformedWrap {
    /// Not the one length this version has.
    Length {
        /// The length the layout needs.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// An unknown version byte.
    Version(u8),
}

impl fmt::Display for MalformedWrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { expected, found } => {
                write!(f, "malformed wrapped key: {found} bytes, expected {expected}")
            }
            Self::Version(v) => write!(f, "malformed wrapped key: unknown version byte {v}"),
        }
    }
}

impl core::error::Error for MalformedWrap {}

#[cfg(feature = "recipients")]
/// Length of a recipient wrap whose KEM's encapsulated key is `enc_len` bytes.
pub(crate) const fn recipient_wrap_len(enc_len: usize) -> usize {
    enc_len.saturating_add(1 + SEALED_KEY_LEN)
}

#[cfg(feature = "recipients")]
/// A parsed recipient wrap: `0x01 || enc || sealed data key`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecipientWrap<'a> {
    /// The KEM's encapsulated key.
    pub(crate) enc: &'a [u8],
    /// The data key sealed by the HPKE context, then its 16-byte tag.
    pub(crate) sealed: &'a [u8; SEALED_KEY_LEN],
}

#[cfg(feature = "recipients")]
/// Parses a recipient wrap for a KEM whose encapsulated key is `enc_len` bytes.
pub(crate) fn parse_recipient_wrap(bytes: &[u8], enc_len: usize) -> Result<RecipientWrap<'_>, MalformedWrap> {
    let expected = recipient_wrap_len(enc_len);
    if bytes.len() != expected {
        return Err(MalformedWrap::Length {
            expected,
            found: bytes.len(),
        });
    }
    let (version, rest) = bytes
        .split_first()
        .ok_or(MalformedWrap::Length { expected, found: 0 })?;
    if *version != RECIPIENT_WRAP_V1 {
        return Err(MalformedWrap::Version(*version));
    }
    let (enc, sealed) = rest.split_at_checked(enc_len).ok_or(MalformedWrap::Length {
        expected,
        found: bytes.len(),
    })?;
    let sealed = <&[u8; SEALED_KEY_LEN]>::try_from(sealed).map_err(|_| MalformedWrap::Length {
        expected,
        found: bytes.len(),
    })?;
    Ok(RecipientWrap { enc, sealed })
}

#[cfg(feature = "recipients")]
/// Encodes a recipient wrap.
pub(crate) fn encode_recipient_wrap(enc: &[u8], sealed: &[u8; SEALED_KEY_LEN]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(recipient_wrap_len(enc.len()));
    out.push(RECIPIENT_WRAP_V1);
    out.extend_from_slice(enc);
    out.extend_from_slice(sealed);
    out
}

#[cfg(feature = "passphrase")]
/// Argon2id parameters as they appear on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KdfParams {
    /// Memory in KiB (`m`).
    pub(crate) memory_kib: u32,
    /// Passes (`t`).
    pub(crate) iterations: u32,
    /// Lanes (`p`).
    pub(crate) parallelism: u32,
}

#[cfg(feature = "passphrase")]
/// A parsed passphrase wrap:
/// `0x01 || m (u32 BE) || t (u32 BE) || p (u32 BE) || salt (32) || sealed data key (48)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassphraseWrap<'a> {
    pub(crate) params: KdfParams,
    pub(crate) salt: &'a [u8; PASSPHRASE_SALT_LEN],
    pub(crate) sealed: &'a [u8; SEALED_KEY_LEN],
}

#[cfg(feature = "passphrase")]
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at.saturating_add(4)) {
        b.copy_from_slice(s);
    }
    u32::from_be_bytes(b)
}

#[cfg(feature = "passphrase")]
/// Parses a passphrase wrap (no parameter is judged here: see the provider's limits).
pub(crate) fn parse_passphrase_wrap(bytes: &[u8]) -> Result<PassphraseWrap<'_>, MalformedWrap> {
    let short = MalformedWrap::Length {
        expected: PASSPHRASE_WRAP_LEN,
        found: bytes.len(),
    };
    if bytes.len() != PASSPHRASE_WRAP_LEN {
        return Err(short);
    }
    match bytes.first() {
        Some(&PASSPHRASE_WRAP_V1) => {}
        Some(v) => return Err(MalformedWrap::Version(*v)),
        None => return Err(short),
    }
    let params = KdfParams {
        memory_kib: be_u32(bytes, 1),
        iterations: be_u32(bytes, 5),
        parallelism: be_u32(bytes, 9),
    };
    let salt = bytes
        .get(13..13 + PASSPHRASE_SALT_LEN)
        .and_then(|s| <&[u8; PASSPHRASE_SALT_LEN]>::try_from(s).ok())
        .ok_or(short)?;
    let sealed = bytes
        .get(13 + PASSPHRASE_SALT_LEN..)
        .and_then(|s| <&[u8; SEALED_KEY_LEN]>::try_from(s).ok())
        .ok_or(short)?;
    Ok(PassphraseWrap { params, salt, sealed })
}

#[cfg(feature = "passphrase")]
/// Encodes a passphrase wrap.
pub(crate) fn encode_passphrase_wrap(
    params: KdfParams,
    salt: &[u8; PASSPHRASE_SALT_LEN],
    sealed: &[u8; SEALED_KEY_LEN],
) -> [u8; PASSPHRASE_WRAP_LEN] {
    let mut out = [0u8; PASSPHRASE_WRAP_LEN];
    let (m, t, p) = (
        params.memory_kib.to_be_bytes(),
        params.iterations.to_be_bytes(),
        params.parallelism.to_be_bytes(),
    );
    let fields = [PASSPHRASE_WRAP_V1]
        .iter()
        .chain(&m)
        .chain(&t)
        .chain(&p)
        .chain(salt)
        .chain(sealed);
    for (o, b) in out.iter_mut().zip(fields) {
        *o = *b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "passphrase")]
    #[test]
    fn passphrase_wrap_round_trips_and_refuses_bad_lengths() {
        let p = KdfParams {
            memory_kib: 262_144,
            iterations: 3,
            parallelism: 1,
        };
        let w = encode_passphrase_wrap(p, &[7; 32], &[9; 48]);
        assert_eq!(&w[..13], &[1, 0, 4, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1]);
        let r = parse_passphrase_wrap(&w).unwrap();
        assert_eq!((r.params, r.salt, r.sealed), (p, &[7; 32], &[9; 48]));
        assert!(parse_passphrase_wrap(&w[..92]).is_err());
        let mut v = w.to_vec();
        v.push(0);
        assert!(parse_passphrase_wrap(&v).is_err());
        v.pop();
        v[0] = 2;
        assert_eq!(parse_passphrase_wrap(&v).unwrap_err(), MalformedWrap::Version(2));
        assert!(parse_passphrase_wrap(&[]).is_err());
    }

    #[cfg(feature = "recipients")]
    #[test]
    fn recipient_wrap_round_trips_and_refuses_bad_lengths() {
        let w = encode_recipient_wrap(&[5; 32], &[6; 48]);
        assert_eq!(w.len(), 81);
        let r = parse_recipient_wrap(&w, 32).unwrap();
        assert_eq!((r.enc, r.sealed), (&[5u8; 32][..], &[6; 48]));
        assert!(parse_recipient_wrap(&w[..80], 32).is_err());
        assert!(parse_recipient_wrap(&w, 31).is_err());
        assert!(parse_recipient_wrap(&[], 32).is_err());
        let mut v = w.clone();
        v[0] = 0;
        assert_eq!(parse_recipient_wrap(&v, 32).unwrap_err(), MalformedWrap::Version(0));
    }
}
