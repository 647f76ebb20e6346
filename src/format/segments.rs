//! How a payload splits into segments: the arithmetic every front end and
//! every range read shares, with no keys and no I/O.

use core::ops::Range;

use crate::error::Error;

use super::{SegmentSize, TAG_LEN};

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

    /// Ciphertext segment length plus its tag, for every segment but the last.
    pub(crate) fn stride(&self) -> usize {
        self.size.saturating_add(TAG_LEN)
    }

    /// The segment index `i` as the AEAD's 32-bit counter.
    pub(crate) fn index(i: usize) -> Result<u32, Error> {
        u32::try_from(i).map_err(|_| Error::InvalidArgument {
            what: "more than 2^32 - 1 segments",
        })
    }

    /// The payload byte range (relative to the envelope, after a header of
    /// `header_len` bytes) holding the segments that cover the plaintext
    /// offsets `plaintext`; `None` if the range lies outside the plaintext.
    pub(crate) fn ciphertext_range(&self, header_len: u64, plaintext: Range<u64>) -> Option<Range<u64>> {
        let len = u64::try_from(self.plaintext_len()).ok()?;
        if plaintext.start > plaintext.end || plaintext.end > len {
            return None;
        }
        let size = u64::try_from(self.size).ok()?;
        let stride = size.checked_add(16)?;
        let first = plaintext.start.checked_div(size)?;
        // The segment holding the last byte of the range (or the first, if empty).
        let last = plaintext.end.saturating_sub(1).max(plaintext.start).checked_div(size)?;
        let last = last.min(u64::try_from(self.count.saturating_sub(1)).ok()?);
        let last_len = u64::try_from(self.len_of(usize::try_from(last).ok()?)).ok()?;
        let start = header_len.checked_add(first.checked_mul(stride)?)?;
        let end = header_len
            .checked_add(last.checked_mul(stride)?)?
            .checked_add(last_len)?
            .checked_add(16)?;
        Some(start..end)
    }
}

/// Where the next segment of a stream ends, from what was read: `have` bytes
/// are buffered (at most segment + tag + 1), `eof` says whether the input
/// ended, `index` is the segment's number. Returns the ciphertext length and
/// whether it is the last segment (one followed by more input is not).
#[cfg(feature = "std")]
pub(crate) fn frame_segment(have: usize, eof: bool, segment: usize, index: u64) -> Result<(usize, bool), Error> {
    if eof && have <= segment.saturating_add(TAG_LEN) {
        if have < TAG_LEN {
            return Err(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            });
        }
        if have == TAG_LEN && index > 0 {
            return Err(Error::Malformed {
                offset: 0,
                what: "empty final segment after a full one",
            });
        }
        Ok((have.saturating_sub(TAG_LEN), true))
    } else {
        Ok((segment, false))
    }
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
}
