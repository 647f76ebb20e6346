//! Bech32m (BIP-350), the text encoding of recipient and identity strings
//! (`FORMAT.md` §15.1): a human-readable prefix, the separator `1`, the data
//! in 5-bit groups, and a 6-character checksum over both.
//!
//! Unlike BIP-173/350 there is no 90-character limit (an X-Wing recipient is
//! about 2,000 characters, as age's post-quantum recipients are): within 89
//! characters any error in up to 4 characters is always detected; beyond,
//! a random error goes undetected with probability about 2^-30.
//!
//! Identity strings are secret: encoding and decoding keep every copy of the
//! data (bytes, 5-bit groups, text) in buffers that are zeroized on drop and
//! sized up front, so they never reallocate.

use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::error::KeyStringError;

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32M_CONST: u32 = 0x2bc8_30a3;
const CHECKSUM_LEN: usize = 6;
/// Longest string accepted (an X-Wing recipient is 1,970 characters).
pub(crate) const MAX_STRING_LEN: usize = 4096;

fn polymod_step(chk: u32, v: u8) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let top = chk >> 25;
    let mut chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
    for (i, g) in GEN.iter().enumerate() {
        if (top >> i) & 1 == 1 {
            chk ^= g;
        }
    }
    chk
}

/// The checksum state after the expanded (lowercase) prefix.
fn hrp_state(hrp: &[u8]) -> u32 {
    let mut chk = 1u32;
    for c in hrp {
        chk = polymod_step(chk, c.to_ascii_lowercase() >> 5);
    }
    chk = polymod_step(chk, 0);
    for c in hrp {
        chk = polymod_step(chk, c.to_ascii_lowercase() & 31);
    }
    chk
}

/// Length of `n` bytes in 5-bit groups (the last one zero-padded).
fn groups_len(n: usize) -> usize {
    n.saturating_mul(8).div_ceil(5)
}

/// The exact length of the string `encode(hrp, data)` returns.
pub(crate) fn encoded_len(hrp: &str, data_len: usize) -> usize {
    hrp.len()
        .saturating_add(1)
        .saturating_add(groups_len(data_len))
        .saturating_add(CHECKSUM_LEN)
}

/// `hrp`, `1`, `data` and the checksum, in `hrp`'s case (the prefix must be
/// all lowercase or all uppercase visible ASCII). Zeroized on drop.
pub(crate) fn encode(hrp: &str, data: &[u8]) -> Zeroizing<String> {
    let upper = hrp.bytes().any(|b| b.is_ascii_uppercase());
    let mut out = Zeroizing::new(String::with_capacity(encoded_len(hrp, data.len())));
    out.push_str(hrp);
    out.push('1');
    let mut chk = hrp_state(hrp.as_bytes());
    let mut push = |v: u8, out: &mut String| {
        chk = polymod_step(chk, v);
        let c = CHARSET.get(usize::from(v & 31)).copied().unwrap_or(b'q');
        out.push(char::from(if upper { c.to_ascii_uppercase() } else { c }));
    };
    let (mut acc, mut bits) = (0u16, 0u32);
    for b in data {
        acc = (acc << 8) | u16::from(*b);
        bits = bits.saturating_add(8);
        while bits >= 5 {
            bits = bits.saturating_sub(5);
            push(u8::try_from((acc >> bits) & 31).unwrap_or(0), &mut out);
        }
        acc &= (1u16 << bits).wrapping_sub(1);
    }
    if bits > 0 {
        push(
            u8::try_from((acc << (5u32.saturating_sub(bits))) & 31).unwrap_or(0),
            &mut out,
        );
    }
    for _ in 0..CHECKSUM_LEN {
        chk = polymod_step(chk, 0);
    }
    chk ^= BECH32M_CONST;
    for i in 0..CHECKSUM_LEN {
        let shift = 5u32.saturating_mul(u32::try_from(CHECKSUM_LEN.saturating_sub(1).saturating_sub(i)).unwrap_or(0));
        let v = u8::try_from((chk >> shift) & 31).unwrap_or(0);
        let c = CHARSET.get(usize::from(v)).copied().unwrap_or(b'q');
        out.push(char::from(if upper { c.to_ascii_uppercase() } else { c }));
    }
    out
}

/// A decoded string: its prefix (as written) and its data bytes (zeroized
/// on drop).
pub(crate) struct Decoded<'s> {
    pub(crate) hrp: &'s str,
    pub(crate) data: Zeroizing<Vec<u8>>,
}

/// The prefix of `s` (everything before the last `1`), unchecked: to name
/// the kind of a string before its checksum is verified.
pub(crate) fn prefix(s: &str) -> Option<&str> {
    s.rfind('1').and_then(|i| s.get(..i))
}

/// Decodes `s` (surrounding ASCII whitespace is the caller's to trim):
/// one case throughout, a prefix of visible ASCII, the separator, data
/// characters from the Bech32 alphabet, a valid Bech32m checksum, and zero
/// padding bits.
pub(crate) fn decode(s: &str) -> Result<Decoded<'_>, KeyStringError> {
    if s.len() > MAX_STRING_LEN {
        return Err(KeyStringError::Length);
    }
    let bytes = s.as_bytes();
    if let Some(position) = bytes.iter().position(|b| !(33..=126).contains(b)) {
        return Err(KeyStringError::InvalidCharacter { position });
    }
    if bytes.iter().any(u8::is_ascii_lowercase) && bytes.iter().any(u8::is_ascii_uppercase) {
        return Err(KeyStringError::MixedCase);
    }
    let sep = s
        .rfind('1')
        .ok_or(KeyStringError::InvalidCharacter { position: s.len() })?;
    let (hrp, rest) = (
        s.get(..sep).unwrap_or_default(),
        s.get(sep.saturating_add(1)..).unwrap_or_default(),
    );
    if hrp.is_empty() || rest.len() < CHECKSUM_LEN {
        return Err(KeyStringError::Length);
    }
    let mut values = Zeroizing::new(Vec::with_capacity(rest.len()));
    for (i, c) in rest.bytes().enumerate() {
        let lower = c.to_ascii_lowercase();
        let v = CHARSET
            .iter()
            .position(|&x| x == lower)
            .and_then(|v| u8::try_from(v).ok())
            .ok_or(KeyStringError::InvalidCharacter {
                position: sep.saturating_add(1).saturating_add(i),
            })?;
        values.push(v);
    }
    let chk = values
        .iter()
        .fold(hrp_state(hrp.as_bytes()), |c, v| polymod_step(c, *v));
    if chk != BECH32M_CONST {
        return Err(KeyStringError::Checksum);
    }
    let groups = values
        .get(..values.len().saturating_sub(CHECKSUM_LEN))
        .unwrap_or_default();
    let mut data = Zeroizing::new(Vec::with_capacity(groups.len().saturating_mul(5) / 8));
    let (mut acc, mut bits) = (0u16, 0u32);
    for v in groups {
        acc = (acc << 5) | u16::from(*v);
        bits = bits.saturating_add(5);
        if bits >= 8 {
            bits = bits.saturating_sub(8);
            data.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
        acc &= (1u16 << bits).wrapping_sub(1);
    }
    // At most 4 padding bits, all zero (BIP-173's conversion rule).
    if bits >= 5 || acc != 0 {
        return Err(KeyStringError::NonCanonical);
    }
    Ok(Decoded { hrp, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip350_valid_bech32m_strings() {
        // BIP-350, "Test vectors for Bech32m": valid strings (those whose
        // data is whole bytes decode here; the others are checked by their
        // checksum state only).
        for s in [
            "A1LQFN3A",
            "a1lqfn3a",
            "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
            "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
            "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
            "?1v759aa",
        ] {
            let sep = s.rfind('1').unwrap();
            let (hrp, rest) = (&s[..sep], &s[sep + 1..]);
            let chk = rest.bytes().fold(hrp_state(hrp.as_bytes()), |c, ch| {
                let v = CHARSET.iter().position(|&x| x == ch.to_ascii_lowercase()).unwrap();
                polymod_step(c, u8::try_from(v).unwrap())
            });
            assert_eq!(chk, BECH32M_CONST, "{s}");
        }
    }

    #[test]
    fn bip350_invalid_strings_are_refused() {
        for s in [
            "\u{20}1xj0phk",
            "\u{7f}1g6xzxy",
            "qyrz8wqd2c9m",
            "1qyrz8wqd2c9m",
            "y1b0jsk6g",
            "lt1igcx5c0",
            "in1muywd",
            "mm1crxm3i",
            "au1s5cgom",
            "M1VUXWEZ",
            "16plkw9",
            "1p2gdwpf",
            "A1LQFN3a",
        ] {
            assert!(decode(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn round_trip_and_single_errors() {
        let data: Vec<u8> = (0u8..=40).collect();
        let s = encode("lockbox-test", &data);
        assert_eq!(s.len(), encoded_len("lockbox-test", data.len()));
        let d = decode(&s).unwrap();
        assert_eq!(d.hrp, "lockbox-test");
        assert_eq!(*d.data, data);
        let up = encode("LOCKBOX-TEST-", &data);
        assert_eq!(*decode(&up).unwrap().data, data);
        assert_eq!(decode(&up.to_ascii_lowercase()).unwrap().hrp, "lockbox-test-");
        // Every one-character substitution is caught.
        for i in 0..s.len() {
            for c in CHARSET.iter() {
                let mut t = s.as_bytes().to_vec();
                if t[i] == *c || t[i] == b'1' {
                    continue;
                }
                t[i] = *c;
                let t = String::from_utf8(t).unwrap();
                assert!(decode(&t).is_err(), "{t}");
            }
        }
    }
}
