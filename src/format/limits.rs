//! Limits a parser enforces and the segment size a header records.

use crate::error::Error;

use super::{MAX_SEGMENT_EXP, MIN_SEGMENT_EXP};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_size_bounds() {
        assert!(SegmentSize::new(32).is_err());
        assert!(SegmentSize::new(100).is_err());
        assert!(SegmentSize::new(1 << 25).is_err());
        assert_eq!(SegmentSize::new(64).unwrap().exponent(), 6);
        assert_eq!(SegmentSize::DEFAULT.bytes(), 65536);
    }
}
