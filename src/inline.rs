//! A byte buffer that lives inline up to `N` bytes and on the heap beyond:
//! the hot path builds bindings and wrapped keys in it without allocating.
//! Not for secrets (it is not zeroized): bindings and wrapped keys are public.

use alloc::vec::Vec;
use core::hash::{Hash, Hasher};

use crate::format::Put;

/// Up to `N` bytes inline, then a `Vec`.
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
}
