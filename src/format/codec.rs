//! The byte-level codec every layout is written with: a strict reader over
//! untrusted bytes, a writer trait, and a small-buffer type for the hot path.

use alloc::vec::Vec;
use core::hash::{Hash, Hasher};
use core::str;

use crate::error::Error;

/// Why a read stopped: the input ended (more bytes may complete it), or the
/// bytes present are invalid (no amount of further input helps).
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The input ended; at least `need` bytes in total are needed.
    Short { need: usize },
    /// The input is invalid.
    Bad(Error),
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        Self::Bad(e)
    }
}

/// A strict cursor over untrusted bytes. Every read is bounds-checked; running
/// out of input is a typed [`ReadError::Short`], never an invalid-data error,
/// so callers can tell "read more" from "reject" without inspecting messages.
#[derive(Clone)]
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

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        // Errors are built only on failure: this is the hot path of every open.
        let end = self.pos.checked_add(n).ok_or_else(|| {
            ReadError::Bad(Error::Malformed {
                offset: self.pos,
                what: "length overflow",
            })
        })?;
        let out = self.buf.get(self.pos..end).ok_or(ReadError::Short { need: end })?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], ReadError> {
        let end = self.pos.saturating_add(N);
        self.take(N)?.try_into().map_err(|_| ReadError::Short { need: end })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        let [b] = *self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(*self.array::<2>()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(*self.array::<4>()?))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Validates UTF-8, reporting `offset` on failure.
pub(crate) fn utf8(bytes: &[u8], offset: usize) -> Result<&str, ReadError> {
    str::from_utf8(bytes).map_err(|_| {
        ReadError::Bad(Error::Malformed {
            offset,
            what: "invalid UTF-8",
        })
    })
}

/// Appends big-endian integers and length-prefixed fields.
pub(crate) trait Put {
    fn put(&mut self, bytes: &[u8]);
    /// A write whose length is known at compile time: writers override it
    /// with a store of that size (the hot path writes a header and a binding
    /// of a few dozen fields; a call to `memcpy` each is most of their cost).
    #[inline]
    fn put_array<const N: usize>(&mut self, bytes: [u8; N]) {
        self.put(&bytes);
    }
    #[inline]
    fn put_u8(&mut self, v: u8) {
        self.put_array([v]);
    }
    #[inline]
    fn put_u16(&mut self, v: u16) {
        self.put_array(v.to_be_bytes());
    }
    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.put_array(v.to_be_bytes());
    }
}

impl Put for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn put_array<const N: usize>(&mut self, bytes: [u8; N]) {
        self.extend_from_slice(&bytes);
    }
}

/// A writer into a slice sized exactly beforehand (bytes past its end are
/// dropped; callers size it from the same `*_len` function they encode with).
pub(crate) struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }
}

impl Put for SliceWriter<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
    #[inline]
    fn put_array<const N: usize>(&mut self, bytes: [u8; N]) {
        let end = self.pos.saturating_add(N);
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(&bytes);
        }
        self.pos = end;
    }
}

/// Up to `N` bytes inline, then a `Vec`: the hot path builds bindings and
/// wrapped keys in it without allocating. Not for secrets (it is not
/// zeroized): bindings and wrapped keys are public.
#[derive(Clone)]
pub(crate) enum InlineBuf<const N: usize> {
    Inline { len: usize, buf: [u8; N] },
    Heap(Vec<u8>),
}

impl<const N: usize> InlineBuf<N> {
    pub(crate) const fn new() -> Self {
        Self::Inline { len: 0, buf: [0u8; N] }
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        let mut b = Self::new();
        b.put(bytes);
        b
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, buf } => buf.get(..*len).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}

impl<const N: usize> Put for InlineBuf<N> {
    #[inline]
    fn put_array<const M: usize>(&mut self, bytes: [u8; M]) {
        if let Self::Inline { len, buf } = self {
            let end = len.saturating_add(M);
            if let Some(dst) = buf.get_mut(*len..end) {
                dst.copy_from_slice(&bytes);
                *len = end;
                return;
            }
        }
        self.put(&bytes);
    }
    fn put(&mut self, bytes: &[u8]) {
        match self {
            Self::Inline { len, buf } => {
                let end = len.saturating_add(bytes.len());
                if let Some(dst) = buf.get_mut(*len..end) {
                    dst.copy_from_slice(bytes);
                    *len = end;
                } else {
                    let mut v = Vec::with_capacity(end.max(N.saturating_mul(2)));
                    v.extend_from_slice(buf.get(..*len).unwrap_or_default());
                    v.extend_from_slice(bytes);
                    *self = Self::Heap(v);
                }
            }
            Self::Heap(v) => v.extend_from_slice(bytes),
        }
    }
}

impl<const N: usize> From<Vec<u8>> for InlineBuf<N> {
    fn from(v: Vec<u8>) -> Self {
        Self::Heap(v)
    }
}

impl<const N: usize> core::fmt::Debug for InlineBuf<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl<const N: usize> PartialEq for InlineBuf<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for InlineBuf<N> {}

impl<const N: usize> Hash for InlineBuf<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_inline_to_heap_keeping_every_byte() {
        let mut b = InlineBuf::<4>::new();
        b.put(&[1, 2]);
        assert!(matches!(b, InlineBuf::Inline { .. }));
        b.put(&[3, 4]);
        assert!(matches!(b, InlineBuf::Inline { .. }));
        b.put(&[5]);
        assert!(matches!(b, InlineBuf::Heap(_)));
        b.put(&[6]);
        assert_eq!(b.as_slice(), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(b, InlineBuf::from(alloc::vec![1, 2, 3, 4, 5, 6]));
        assert_ne!(b, InlineBuf::from_slice(&[1, 2, 3]));
    }

    #[test]
    fn running_out_is_short_not_bad() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16().ok(), Some(0x0102));
        assert!(matches!(r.u16(), Err(ReadError::Short { need: 4 })));
        assert!(matches!(r.take(usize::MAX), Err(ReadError::Bad(_))));
        assert!(matches!(r.take(10), Err(ReadError::Short { need: 12 })));
    }
}
