//! Envelope format v1: byte layout, strict parsing and encoding. No keys here.
//!
//! The layout is specified in `FORMAT.md`; this module is its executable form.
//! Parsing borrows from the input (no copies of the envelope), validates every
//! field before anything is allocated, and checks the caller's [`Limits`] as it
//! goes, so a hostile length field can never make us allocate or read more than
//! the input justifies.

use core::str;

use crate::error::{Error, LimitKind};
use crate::suite::Suite;

/// The four magic bytes every envelope starts with.
pub(crate) const MAGIC: [u8; 4] = *b"LKBX";
/// Format version written by this release.
pub(crate) const VERSION_1: u8 = 1;
/// Length of the per-message id (HKDF salt).
pub const MESSAGE_ID_LEN: usize = 32;
/// Length of the key commitment.
pub(crate) const COMMITMENT_LEN: usize = 32;
/// Length of every AEAD tag in the format (header tag and segment tags).
pub(crate) const TAG_LEN: usize = 16;
/// magic, version, suite, segment exponent, flags, message id.
pub(crate) const FIXED_LEN: usize = 4 + 1 + 1 + 1 + 1 + MESSAGE_ID_LEN;

/// Context entry kinds on the wire.
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

/// Parsing limits, checked before any allocation. Configurable on open.
///
/// The defaults accept every envelope that [`Sealer`](crate::Sealer) writes with
/// its own defaults, and are small enough that a hostile header cannot cost
/// more than a few tens of kilobytes of work.
///
/// | limit | default | format maximum |
/// |---|---|---|
/// | header bytes | 65 536 | unbounded (checked) |
/// | wrapped keys | 16 | 255 |
/// | context entries | 64 | 65 535 |
/// | context bytes (all keys + stored values) | 16 384 | unbounded (checked) |
/// | segment size | 16 MiB | 16 MiB |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    max_header_len: usize,
    max_wrapped_keys: usize,
    max_context_entries: usize,
    max_context_bytes: usize,
    max_segment_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_len: 64 * 1024,
            max_wrapped_keys: 16,
            max_context_entries: 64,
            max_context_bytes: 16 * 1024,
            max_segment_size: 1 << MAX_SEGMENT_EXP,
        }
    }
}

impl Limits {
    /// Largest header accepted, in bytes.
    pub fn max_header_len(&self) -> usize {
        self.max_header_len
    }
    /// Most wrapped keys accepted in one envelope.
    pub fn max_wrapped_keys(&self) -> usize {
        self.max_wrapped_keys
    }
    /// Most encryption-context entries accepted.
    pub fn max_context_entries(&self) -> usize {
        self.max_context_entries
    }
    /// Most encryption-context bytes accepted in a header: every key plus
    /// the values of stored entries (required values are never in a header).
    pub fn max_context_bytes(&self) -> usize {
        self.max_context_bytes
    }
    /// Largest segment size accepted, in bytes (bounds a streaming reader's buffer).
    pub fn max_segment_size(&self) -> usize {
        self.max_segment_size
    }
    /// Sets the largest header accepted.
    #[must_use]
    pub fn with_max_header_len(mut self, n: usize) -> Self {
        self.max_header_len = n;
        self
    }
    /// Sets the most wrapped keys accepted (the format caps this at 255).
    #[must_use]
    pub fn with_max_wrapped_keys(mut self, n: usize) -> Self {
        self.max_wrapped_keys = n.min(usize::from(u8::MAX));
        self
    }
    /// Sets the most encryption-context entries accepted.
    #[must_use]
    pub fn with_max_context_entries(mut self, n: usize) -> Self {
        self.max_context_entries = n.min(usize::from(u16::MAX));
        self
    }
    /// Sets the most encryption-context bytes accepted.
    #[must_use]
    pub fn with_max_context_bytes(mut self, n: usize) -> Self {
        self.max_context_bytes = n;
        self
    }
    /// Sets the largest segment size accepted.
    #[must_use]
    pub fn with_max_segment_size(mut self, n: usize) -> Self {
        self.max_segment_size = n;
        self
    }
}

/// The plaintext size of every segment but the last: a power of two between
/// 64 bytes and 16 MiB. The default, 64 KiB, suits one-shot and streaming use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentSize(u8);

impl Default for SegmentSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl SegmentSize {
    /// 64 KiB.
    pub const DEFAULT: Self = Self(16);
    /// Smallest allowed: 64 bytes.
    pub const MIN: Self = Self(MIN_SEGMENT_EXP);
    /// Largest allowed: 16 MiB.
    pub const MAX: Self = Self(MAX_SEGMENT_EXP);

    /// A segment size of `bytes`, which must be a power of two in `64..=16 MiB`.
    pub fn new(bytes: usize) -> Result<Self, Error> {
        if bytes.is_power_of_two() {
            let exp = u8::try_from(bytes.trailing_zeros()).map_err(|_| Error::InvalidArgument {
                what: "segment size must be a power of two between 64 B and 16 MiB",
            })?;
            Self::from_exponent(exp)
        } else {
            Err(Error::InvalidArgument {
                what: "segment size must be a power of two between 64 B and 16 MiB",
            })
        }
    }

    /// A segment size of `2^exp` bytes, `exp` in `6..=24`.
    pub fn from_exponent(exp: u8) -> Result<Self, Error> {
        if (MIN_SEGMENT_EXP..=MAX_SEGMENT_EXP).contains(&exp) {
            Ok(Self(exp))
        } else {
            Err(Error::InvalidArgument {
                what: "segment size must be a power of two between 64 B and 16 MiB",
            })
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> usize {
        1usize << self.0
    }

    /// The base-two exponent recorded in the header.
    pub fn exponent(self) -> u8 {
        self.0
    }
}

/// A strict cursor over untrusted bytes. Every read is bounds-checked and
/// reports the offset at which the input ran out.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        // Errors are built only on failure: this is the hot path of every open.
        let end = self.pos.checked_add(n).ok_or_else(|| Error::Malformed {
            offset: self.pos,
            what: "length overflow",
        })?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| Error::Malformed {
            offset: self.buf.len(),
            what: "truncated",
        })?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], Error> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| Error::Malformed {
            offset: self.pos,
            what: "truncated",
        })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(*self.array::<4>()?))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn utf8(bytes: &[u8], offset: usize) -> Result<&str, Error> {
    str::from_utf8(bytes).map_err(|_| Error::Malformed {
        offset,
        what: "invalid UTF-8",
    })
}

/// Provider ids are short, visible ASCII.
pub(crate) fn valid_provider_id(s: &str) -> bool {
    (1..=MAX_PROVIDER_ID_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Key ids are UTF-8 without control characters.
pub(crate) fn valid_key_id(s: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&s.len()) && !s.chars().any(char::is_control)
}

/// One encryption-context entry as it appears in a header: required entries
/// carry no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderContextEntry<'a> {
    pub(crate) key: &'a str,
    /// `Some` for stored entries, `None` for required-but-not-stored ones.
    pub(crate) value: Option<&'a str>,
}

/// A validated context block; iterating it cannot fail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContextBlock<'a> {
    raw: &'a [u8],
    count: u16,
}

impl<'a> ContextBlock<'a> {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = HeaderContextEntry<'a>> + 'a {
        let mut r = Reader::new(self.raw);
        (0..self.count).map_while(move |_| read_context_entry(&mut r, 0).ok())
    }
}

fn read_context_entry<'a>(r: &mut Reader<'a>, base: usize) -> Result<HeaderContextEntry<'a>, Error> {
    let at = base.saturating_add(r.pos());
    let kind = r.u8()?;
    if kind != KIND_STORED && kind != KIND_REQUIRED {
        return Err(Error::Malformed {
            offset: at,
            what: "unknown context entry kind",
        });
    }
    let klen = usize::from(r.u16()?);
    if klen == 0 {
        return Err(Error::Malformed {
            offset: at,
            what: "empty context key",
        });
    }
    let key_at = base.saturating_add(r.pos());
    let key = utf8(r.take(klen)?, key_at)?;
    if key.chars().any(char::is_control) {
        return Err(Error::Malformed {
            offset: key_at,
            what: "control character in context key",
        });
    }
    let value = if kind == KIND_STORED {
        let vlen = usize::from(r.u16()?);
        let val_at = base.saturating_add(r.pos());
        Some(utf8(r.take(vlen)?, val_at)?)
    } else {
        None
    };
    Ok(HeaderContextEntry { key, value })
}

/// A wrapped key as it appears in a header, borrowed from the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WrappedEntry<'a> {
    pub(crate) provider_id: &'a str,
    pub(crate) key_id: &'a str,
    pub(crate) key_version: u32,
    pub(crate) bytes: &'a [u8],
}

/// A validated wrapped-key block; iterating it cannot fail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WrappedBlock<'a> {
    raw: &'a [u8],
    count: u8,
}

impl<'a> WrappedBlock<'a> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = WrappedEntry<'a>> + 'a {
        let mut r = Reader::new(self.raw);
        (0..self.count).map_while(move |_| read_wrapped_entry(&mut r, 0).ok())
    }
}

fn read_wrapped_entry<'a>(r: &mut Reader<'a>, base: usize) -> Result<WrappedEntry<'a>, Error> {
    let at = base.saturating_add(r.pos());
    let plen = usize::from(r.u8()?);
    let provider_id = utf8(r.take(plen)?, at)?;
    if !valid_provider_id(provider_id) {
        return Err(Error::Malformed {
            offset: at,
            what: "invalid provider id",
        });
    }
    let kat = base.saturating_add(r.pos());
    let klen = usize::from(r.u8()?);
    let key_id = utf8(r.take(klen)?, kat)?;
    if !valid_key_id(key_id) {
        return Err(Error::Malformed {
            offset: kat,
            what: "invalid key id",
        });
    }
    let key_version = r.u32()?;
    let wat = base.saturating_add(r.pos());
    let wlen = usize::from(r.u16()?);
    if wlen == 0 {
        return Err(Error::Malformed {
            offset: wat,
            what: "empty wrapped key",
        });
    }
    let bytes = r.take(wlen)?;
    Ok(WrappedEntry {
        provider_id,
        key_id,
        key_version,
        bytes,
    })
}

/// A parsed, validated v1 header borrowing from the envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header<'a> {
    /// The bytes covered by the header tag: everything before it.
    pub(crate) authenticated: &'a [u8],
    /// Total header length, tag included: the payload starts here.
    pub(crate) len: usize,
    pub(crate) suite: Suite,
    pub(crate) segment_size: SegmentSize,
    pub(crate) message_id: &'a [u8; MESSAGE_ID_LEN],
    pub(crate) context: ContextBlock<'a>,
    pub(crate) commitment: &'a [u8; COMMITMENT_LEN],
    pub(crate) wrapped: WrappedBlock<'a>,
    pub(crate) tag: &'a [u8; TAG_LEN],
}

/// Reads the format version without validating anything else.
pub(crate) fn read_version(input: &[u8]) -> Result<u8, Error> {
    let mut r = Reader::new(input);
    let magic = r.array::<4>()?;
    if *magic != MAGIC {
        return Err(Error::Malformed {
            offset: 0,
            what: "not a lockbox envelope (bad magic)",
        });
    }
    r.u8()
}

/// Parses and validates a header. Returns the header and the payload slice.
pub(crate) fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<(Header<'a>, &'a [u8]), Error> {
    let version = read_version(input)?;
    if version != VERSION_1 {
        return Err(Error::UnsupportedVersion(version));
    }
    // Never look further than the header limit while parsing the header.
    let window = input.get(..limits.max_header_len).unwrap_or(input);
    let header_too_long = |e: Error| match e {
        Error::Malformed { what: "truncated", .. } if window.len() < input.len() => Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            max: limits.max_header_len,
        },
        other => other,
    };
    parse_v1(window, limits).map_err(header_too_long).and_then(|h| {
        let payload = input.get(h.len..).ok_or_else(|| Error::Malformed {
            offset: input.len(),
            what: "truncated",
        })?;
        Ok((h, payload))
    })
}

fn parse_v1<'a>(input: &'a [u8], limits: &Limits) -> Result<Header<'a>, Error> {
    let mut r = Reader::new(input);
    r.take(5)?; // magic + version, checked by the caller
    let suite_id = r.u8()?;
    let suite = Suite::from_id(suite_id).ok_or_else(|| Error::UnsupportedSuite(suite_id))?;
    let exp_at = r.pos();
    let segment_size = SegmentSize::from_exponent(r.u8()?).map_err(|_| Error::Malformed {
        offset: exp_at,
        what: "segment size out of range",
    })?;
    if segment_size.bytes() > limits.max_segment_size {
        return Err(Error::LimitExceeded {
            limit: LimitKind::SegmentSize,
            max: limits.max_segment_size,
        });
    }
    let flags_at = r.pos();
    if r.u8()? != 0 {
        return Err(Error::Malformed {
            offset: flags_at,
            what: "reserved flags set",
        });
    }
    let message_id = r.array::<MESSAGE_ID_LEN>()?;

    // Context block: count, then entries in strictly increasing key order.
    let ctx_count = r.u16()?;
    if usize::from(ctx_count) > limits.max_context_entries {
        return Err(Error::LimitExceeded {
            limit: LimitKind::ContextEntries,
            max: limits.max_context_entries,
        });
    }
    let ctx_start = r.pos();
    let mut ctx_bytes = 0usize;
    let mut prev: Option<&str> = None;
    for _ in 0..ctx_count {
        let at = r.pos();
        let e = read_context_entry(&mut r, 0)?;
        if prev.is_some_and(|p| p.as_bytes() >= e.key.as_bytes()) {
            return Err(Error::Malformed {
                offset: at,
                what: "context keys not in strictly increasing order",
            });
        }
        prev = Some(e.key);
        ctx_bytes = ctx_bytes
            .saturating_add(e.key.len())
            .saturating_add(e.value.map_or(0, str::len));
        if ctx_bytes > limits.max_context_bytes {
            return Err(Error::LimitExceeded {
                limit: LimitKind::ContextBytes,
                max: limits.max_context_bytes,
            });
        }
    }
    let context = ContextBlock {
        raw: input.get(ctx_start..r.pos()).unwrap_or_default(),
        count: ctx_count,
    };

    let commitment = r.array::<COMMITMENT_LEN>()?;

    let wcount_at = r.pos();
    let wcount = r.u8()?;
    if wcount == 0 {
        return Err(Error::Malformed {
            offset: wcount_at,
            what: "no wrapped keys",
        });
    }
    if usize::from(wcount) > limits.max_wrapped_keys {
        return Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: limits.max_wrapped_keys,
        });
    }
    let wstart = r.pos();
    for _ in 0..wcount {
        read_wrapped_entry(&mut r, 0)?;
    }
    let wrapped = WrappedBlock {
        raw: input.get(wstart..r.pos()).unwrap_or_default(),
        count: wcount,
    };
    // The header tag covers every header byte before it, wrapped keys included.
    let authenticated = input.get(..r.pos()).unwrap_or_default();
    let tag = r.array::<TAG_LEN>()?;
    Ok(Header {
        authenticated,
        len: r.pos(),
        suite,
        segment_size,
        message_id,
        context,
        commitment,
        wrapped,
        tag,
    })
}

/// How a payload of a given length splits into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segments {
    /// Plaintext bytes in every segment but the last.
    pub(crate) size: usize,
    /// Number of segments (at least one).
    pub(crate) count: usize,
    /// Plaintext bytes in the last segment.
    pub(crate) last_len: usize,
}

impl Segments {
    /// Segmentation of a plaintext of `len` bytes.
    pub(crate) fn for_plaintext(len: usize, size: SegmentSize) -> Result<Self, Error> {
        let size = size.bytes();
        let count = if len == 0 { 1 } else { len.div_ceil(size) };
        let full = count.saturating_sub(1).saturating_mul(size);
        let last_len = len.saturating_sub(full);
        if u32::try_from(count).is_err() {
            return Err(Error::InvalidArgument {
                what: "plaintext too long for one envelope (more than 2^32 - 1 segments)",
            });
        }
        Ok(Self { size, count, last_len })
    }

    /// Segmentation of a payload (ciphertext segments with tags) of `len`
    /// bytes, rejecting any length a sealer cannot have produced.
    pub(crate) fn for_payload(len: usize, size: SegmentSize, payload_at: usize) -> Result<Self, Error> {
        let size = size.bytes();
        let stride = size.saturating_add(TAG_LEN);
        let truncated = Error::Malformed {
            offset: payload_at.saturating_add(len),
            what: "truncated payload",
        };
        if len < TAG_LEN {
            return Err(truncated);
        }
        let full = len.checked_div(stride).unwrap_or(0);
        let rem = len.checked_rem(stride).unwrap_or(0);
        let (count, last_len) = match rem {
            0 => (full, size),
            r if r < TAG_LEN => return Err(truncated),
            r => (full.saturating_add(1), r.saturating_sub(TAG_LEN)),
        };
        if last_len == 0 && count > 1 {
            return Err(Error::Malformed {
                offset: payload_at.saturating_add(len).saturating_sub(TAG_LEN),
                what: "empty final segment after a full one",
            });
        }
        if u32::try_from(count).is_err() {
            return Err(Error::Malformed {
                offset: payload_at,
                what: "more than 2^32 - 1 segments",
            });
        }
        Ok(Self { size, count, last_len })
    }

    /// Total plaintext length.
    pub(crate) fn plaintext_len(&self) -> usize {
        self.count
            .saturating_sub(1)
            .saturating_mul(self.size)
            .saturating_add(self.last_len)
    }

    /// Total payload length (plaintext plus one tag per segment).
    pub(crate) fn payload_len(&self) -> Option<usize> {
        self.count.checked_mul(TAG_LEN)?.checked_add(self.plaintext_len())
    }

    /// Plaintext length of segment `i`.
    pub(crate) fn len_of(&self, i: usize) -> usize {
        if i.saturating_add(1) == self.count {
            self.last_len
        } else {
            self.size
        }
    }
}

/// Appends big-endian integers and length-prefixed fields.
pub(crate) trait Put {
    fn put(&mut self, bytes: &[u8]);
    fn put_u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn put_u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
}

impl Put for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Encoded length of one wrapped-key entry.
pub(crate) fn wrapped_entry_len(provider_id: &str, key_id: &str, bytes: &[u8]) -> usize {
    1usize
        .saturating_add(provider_id.len())
        .saturating_add(1)
        .saturating_add(key_id.len())
        .saturating_add(4)
        .saturating_add(2)
        .saturating_add(bytes.len())
}

/// Writes one wrapped-key entry. Lengths were validated when the
/// [`WrappedKey`](crate::WrappedKey) was built.
pub(crate) fn put_wrapped_entry(out: &mut impl Put, provider_id: &str, key_id: &str, version: u32, bytes: &[u8]) {
    out.put_u8(u8::try_from(provider_id.len()).unwrap_or(u8::MAX));
    out.put(provider_id.as_bytes());
    out.put_u8(u8::try_from(key_id.len()).unwrap_or(u8::MAX));
    out.put(key_id.as_bytes());
    out.put_u32(version);
    out.put_u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
    out.put(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_for_payload_matches_for_plaintext() {
        let size = SegmentSize::from_exponent(6).unwrap();
        for len in 0..1000usize {
            let s = Segments::for_plaintext(len, size).unwrap();
            let payload = s.payload_len().unwrap();
            let back = Segments::for_payload(payload, size, 0).unwrap();
            assert_eq!(s, back, "len {len}");
            assert_eq!(back.plaintext_len(), len);
        }
    }

    #[test]
    fn impossible_payload_lengths_are_rejected() {
        let size = SegmentSize::from_exponent(6).unwrap();
        for len in 0..16 {
            assert!(Segments::for_payload(len, size, 0).is_err());
        }
        // One full segment plus an empty final one is never written.
        assert!(Segments::for_payload(80 + 16, size, 0).is_err());
        // A full segment plus a partial tag.
        assert!(Segments::for_payload(80 + 15, size, 0).is_err());
    }

    #[test]
    fn segment_size_bounds() {
        assert!(SegmentSize::new(32).is_err());
        assert!(SegmentSize::new(100).is_err());
        assert!(SegmentSize::new(1 << 25).is_err());
        assert_eq!(SegmentSize::new(64).unwrap().exponent(), 6);
        assert_eq!(SegmentSize::DEFAULT.bytes(), 65536);
    }
}
