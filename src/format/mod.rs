//! The envelope format: every byte layout, parsed and encoded, per version.
//! No keys here (see `crypto`), no I/O (see the front ends).
//!
//! The layout is specified in `FORMAT.md`; this module is its executable form.
//! Parsing borrows from the input (no copies of the envelope), validates every
//! field before anything is allocated, and checks the caller's [`Limits`] as it
//! goes, so a hostile length field can never make us allocate or read more than
//! the input justifies. Running out of input is a typed outcome
//! ([`Parsed::Incomplete`]), so streaming readers know how much to read next
//! without inspecting error messages.
//!
//! - [`codec`]: the reader and writer every layout uses;
//! - [`v1`]: the version 1 header, parser and encoder;
//! - [`binding`]: the binding every wrapped key is bound to;
//! - [`limits`], [`segments`]: limits, segment sizes and payload arithmetic.
//!
//! A new format version is a new module beside [`v1`] and an arm of
//! [`Header`].

use crate::error::{Error, LimitKind};
use crate::keys::WrappedKeyRef;
use crate::suite::Suite;

#[cfg(feature = "recipients")]
pub(crate) mod bech32;
pub(crate) mod binding;
pub(crate) mod codec;
#[cfg(any(feature = "recipients", feature = "passphrase"))]
pub(crate) mod keywrap;
mod limits;
pub(crate) mod segments;
pub(crate) mod v1;

pub(crate) use codec::{InlineBuf, Put, ReadError, Reader};
pub use limits::{Limits, SegmentSize};
pub(crate) use segments::Segments;
#[cfg(feature = "std")]
pub(crate) use segments::frame_segment;

/// The four magic bytes every envelope starts with.
pub(crate) const MAGIC: [u8; 4] = *b"LKBX";
/// Length of the per-message id (HKDF salt).
pub const MESSAGE_ID_LEN: usize = 32;
/// Length of the key commitment.
pub(crate) const COMMITMENT_LEN: usize = 32;
/// Length of every AEAD tag in the format (header tag and segment tags).
pub(crate) const TAG_LEN: usize = 16;

/// Context entry kinds on the wire (header and binding).
pub(crate) const KIND_STORED: u8 = 0;
pub(crate) const KIND_REQUIRED: u8 = 1;

/// Smallest and largest segment-size exponents the format allows.
pub(crate) const MIN_SEGMENT_EXP: u8 = 6;
pub(crate) const MAX_SEGMENT_EXP: u8 = 24;

/// Longest provider id (bytes).
pub(crate) const MAX_PROVIDER_ID_LEN: usize = 64;
/// Longest key id (bytes).
pub(crate) const MAX_KEY_ID_LEN: usize = 255;
/// Longest wrapped key (bytes).
pub(crate) const MAX_WRAPPED_LEN: usize = 65_535;
/// Longest context key or value (bytes).
pub(crate) const MAX_CONTEXT_FIELD_LEN: usize = 65_535;

/// Provider ids are short, visible ASCII.
pub(crate) fn valid_provider_id(s: &str) -> bool {
    (1..=MAX_PROVIDER_ID_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The Unicode format characters (general category Cf) of Unicode 16.0, as
/// inclusive ranges: invisible characters (U+200B ZERO WIDTH SPACE, U+FEFF,
/// U+00AD SOFT HYPHEN, tags) and bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069, U+200E/U+200F, U+061C). Frozen by `FORMAT.md` §1: a later
/// Unicode version adding Cf characters does not change this list.
const FORMAT_CHARS: [(u32, u32); 21] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a format character (`FORMAT.md` §1).
pub(crate) fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// What a context key may not contain: control characters (Cc) and format
/// characters (Cf), so that no two different keys look alike when shown.
pub(crate) fn forbidden_in_context_key(c: char) -> bool {
    c.is_control() || is_format_char(c)
}

/// Key ids are UTF-8 without control characters (checked bytewise when
/// ASCII, the common case: `0x00..=0x1F` and `0x7F` are its controls).
pub(crate) fn valid_key_id(s: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&s.len())
        && if s.is_ascii() {
            s.bytes().all(|b| b >= 0x20 && b != 0x7f)
        } else {
            !s.chars().any(char::is_control)
        }
}

/// A parsed, validated header of any version this release implements.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Header<'a> {
    /// Format version 1.
    V1(v1::Header<'a>),
}

impl<'a> Header<'a> {
    /// The format version.
    pub(crate) fn version(&self) -> u8 {
        match self {
            Self::V1(_) => v1::VERSION,
        }
    }
    /// Total header length, tag included: the payload starts here.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::V1(h) => h.len,
        }
    }
    pub(crate) fn suite(&self) -> Suite {
        match self {
            Self::V1(h) => h.suite,
        }
    }
    pub(crate) fn segment_size(&self) -> SegmentSize {
        match self {
            Self::V1(h) => h.segment_size,
        }
    }
    pub(crate) fn message_id(&self) -> &'a [u8; MESSAGE_ID_LEN] {
        match self {
            Self::V1(h) => h.message_id,
        }
    }
    pub(crate) fn context(&self) -> v1::ContextBlock<'a> {
        match self {
            Self::V1(h) => h.context,
        }
    }
    pub(crate) fn commitment(&self) -> &'a [u8; COMMITMENT_LEN] {
        match self {
            Self::V1(h) => h.commitment,
        }
    }
    /// The wrapped keys, in header order.
    pub(crate) fn wrapped(&self) -> v1::WrappedBlock<'a> {
        match self {
            Self::V1(h) => h.wrapped,
        }
    }
    /// The bytes the header tag covers, exactly as received.
    pub(crate) fn authenticated(&self) -> &'a [u8] {
        match self {
            Self::V1(h) => h.authenticated,
        }
    }
    pub(crate) fn tag(&self) -> &'a [u8; TAG_LEN] {
        match self {
            Self::V1(h) => h.tag,
        }
    }

    /// The length of this header with its wrapped keys replaced by `entries`.
    pub(crate) fn rewrapped_len<'b>(&self, entries: impl Iterator<Item = WrappedKeyRef<'b>>) -> usize {
        match self {
            Self::V1(h) => h
                .kept_prefix()
                .len()
                .saturating_add(v1::wrapped_block_len(entries))
                .saturating_add(TAG_LEN),
        }
    }

    /// Writes this header with its wrapped keys replaced by `entries`, up to
    /// (not including) the tag: everything else is copied as received.
    pub(crate) fn encode_rewrapped<'b>(
        &self,
        out: &mut impl Put,
        entries: impl Iterator<Item = WrappedKeyRef<'b>> + Clone,
    ) {
        match self {
            Self::V1(h) => {
                out.put(h.kept_prefix());
                v1::put_wrapped_block(out, entries);
            }
        }
    }
}

/// What parsing a prefix of an envelope found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Parsed<'a> {
    /// A complete, well-formed header (not yet authenticated).
    Complete(Header<'a>),
    /// The input ended inside the header: at least `need` bytes in total are
    /// needed (never more than the header limit plus one).
    Incomplete {
        #[cfg_attr(
            not(feature = "std"),
            expect(dead_code, reason = "read by the streaming header reader")
        )]
        need: usize,
    },
}

/// Reads the format version without validating anything else.
pub(crate) fn read_version(input: &[u8]) -> Result<u8, ReadError> {
    let mut r = Reader::new(input);
    if *r.array::<4>()? != MAGIC {
        return Err(ReadError::Bad(Error::Malformed {
            offset: 0,
            what: "not a lockbox envelope (bad magic)",
        }));
    }
    r.u8()
}

/// Parses the header at the start of `input`, which may be a prefix of an
/// envelope (a stream read so far). Never looks further than the header
/// limit; a header that would be longer is [`Error::LimitExceeded`] once
/// more bytes than the limit are present, [`Parsed::Incomplete`] before.
pub(crate) fn parse_prefix<'a>(input: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, Error> {
    let max = limits.max_header_len();
    let window = input.get(..max).unwrap_or(input);
    let parsed = match read_version(window) {
        Ok(v1::VERSION) => v1::parse(window, limits).map(|h| Parsed::Complete(Header::V1(h))),
        Ok(version) => return Err(Error::UnsupportedVersion(version)),
        Err(e) => Err(e),
    };
    match parsed {
        Ok(p) => Ok(p),
        Err(ReadError::Bad(e)) => Err(e),
        Err(ReadError::Short { need }) if need > max => {
            if input.len() > max {
                Err(Error::LimitExceeded {
                    limit: LimitKind::HeaderBytes,
                    max,
                })
            } else {
                // One byte more than the limit tells "too long" from "truncated".
                Ok(Parsed::Incomplete {
                    need: max.saturating_add(1),
                })
            }
        }
        Err(ReadError::Short { need }) => Ok(Parsed::Incomplete { need }),
    }
}

/// Parses and validates the header of a complete envelope. Returns the header
/// and the payload slice.
pub(crate) fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<(Header<'a>, &'a [u8]), Error> {
    match parse_prefix(input, limits)? {
        Parsed::Complete(h) => {
            let payload = input.get(h.len()..).ok_or_else(|| Error::Malformed {
                offset: input.len(),
                what: "truncated",
            })?;
            Ok((h, payload))
        }
        Parsed::Incomplete { .. } => Err(Error::Malformed {
            offset: input.len(),
            what: "truncated",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_are_incomplete_until_the_limit() {
        let limits = Limits::default().with_max_header_len(100);
        assert!(matches!(
            parse_prefix(b"LKB", &limits),
            Ok(Parsed::Incomplete { need: 4 })
        ));
        assert!(matches!(
            parse_prefix(b"LKBX", &limits),
            Ok(Parsed::Incomplete { need: 5 })
        ));
        assert!(matches!(
            parse_prefix(b"XXXXX", &limits),
            Err(Error::Malformed { offset: 0, .. })
        ));
        assert!(matches!(
            parse_prefix(b"LKBX\x02", &limits),
            Err(Error::UnsupportedVersion(2))
        ));
        // A header that claims 300 context bytes needs more than the limit.
        let mut h = alloc::vec::Vec::new();
        h.extend_from_slice(b"LKBX\x01\x01\x10\x00");
        h.extend_from_slice(&[0; 32]);
        h.extend_from_slice(&[0, 1, 0, 0, 1, b'k', 1, 44]);
        assert!(matches!(
            parse_prefix(&h, &limits),
            Ok(Parsed::Incomplete { need: 101 })
        ));
        h.resize(100, b'x');
        assert!(matches!(
            parse_prefix(&h, &limits),
            Ok(Parsed::Incomplete { need: 101 })
        ));
        assert!(matches!(
            parse(&h, &limits),
            Err(Error::Malformed { what: "truncated", .. })
        ));
        h.push(b'x');
        assert!(matches!(
            parse_prefix(&h, &limits),
            Err(Error::LimitExceeded {
                limit: LimitKind::HeaderBytes,
                max: 100
            })
        ));
    }
}
