//! The binding: the canonical encoding of an envelope's suite and whole
//! encryption context that every wrapped data key is bound to (`FORMAT.md`,
//! "Binding"). Encoded here, and only here, for sealers, openers, rewrap and
//! providers alike.

use core::fmt;

use crate::context::{ContextEntry, EncryptionContext, Storage};
use crate::suite::Suite;

use super::codec::{InlineBuf, Put, Reader};
use super::{KIND_REQUIRED, KIND_STORED};

/// Domain label that starts every binding encoding.
pub(crate) const BINDING_LABEL: &[u8] = b"lockbox v1 binding";
const BINDING_PREFIX_LEN: usize = BINDING_LABEL.len() + 1 + 2;

/// Binding bytes, inline for contexts of up to about 200 bytes (no
/// allocation on the hot path), on the heap beyond.
pub(crate) type BindingBytes = InlineBuf<256>;

/// Writes the label, the suite id and the entry count.
pub(crate) fn put_prefix(out: &mut impl Put, suite: Suite, count: usize) {
    out.put(BINDING_LABEL);
    out.put_u8(suite.id());
    out.put_u16(u16::try_from(count).unwrap_or(u16::MAX));
}

/// Writes one entry: kind, key, value (required values included: the binding
/// holds the whole context).
pub(crate) fn put_entry(out: &mut impl Put, key: &str, value: &str, storage: Storage) {
    out.put_u8(match storage {
        Storage::Stored => KIND_STORED,
        Storage::Required => KIND_REQUIRED,
    });
    put_field(out, key);
    put_field(out, value);
}

/// A `u16` length, then the bytes. Lengths were validated when the context
/// was built (at most 65 535 bytes).
pub(crate) fn put_field(out: &mut impl Put, s: &str) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put(s.as_bytes());
}

/// The binding of `suite` and the whole of `context`.
pub(crate) fn encode(suite: Suite, context: &EncryptionContext) -> BindingBytes {
    let mut out = BindingBytes::new();
    put_prefix(&mut out, suite, context.len());
    for e in context.iter() {
        put_entry(&mut out, e.key, e.value, e.storage);
    }
    out
}

/// What a wrapped data key is bound to: the envelope's suite and its whole
/// encryption context (stored and required entries), but not its message id,
/// so that one wrapped data key may serve several messages with the same
/// context (a data-key cache).
///
/// Providers must bind their wrap to it: [`as_bytes`](Self::as_bytes) is its
/// canonical encoding (`FORMAT.md`, "Binding"), ready to use as AEAD associated
/// data; services that take a string map (AWS KMS) can use
/// [`entries`](Self::entries) and [`suite`](Self::suite) instead.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    suite: Suite,
    bytes: &'a [u8],
}

impl<'a> Binding<'a> {
    pub(crate) fn from_encoded(suite: Suite, bytes: &'a [u8]) -> Self {
        Self { suite, bytes }
    }

    /// The envelope's suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The canonical encoding: label, suite id, entry count, then each entry's
    /// kind, key and value, sorted by key.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The full context's entries in canonical order, required ones included.
    pub fn entries(&self) -> impl Iterator<Item = ContextEntry<'a>> + 'a {
        let mut r = Reader::new(self.bytes.get(BINDING_PREFIX_LEN..).unwrap_or_default());
        core::iter::from_fn(move || {
            if r.is_empty() {
                return None;
            }
            let kind = r.u8().ok()?;
            let klen = usize::from(r.u16().ok()?);
            let key = core::str::from_utf8(r.take(klen).ok()?).ok()?;
            let vlen = usize::from(r.u16().ok()?);
            let value = core::str::from_utf8(r.take(vlen).ok()?).ok()?;
            let storage = if kind == KIND_STORED {
                Storage::Stored
            } else {
                Storage::Required
            };
            Some(ContextEntry { key, value, storage })
        })
    }
}

impl fmt::Debug for Binding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binding")
            .field("suite", &self.suite)
            .field("context", &DebugEntries(*self))
            .finish()
    }
}

struct DebugEntries<'a>(Binding<'a>);

impl fmt::Debug for DebugEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.entries().map(|e| (e.key, e.value)))
            .finish()
    }
}

/// An owned [`Binding`], for calling a provider directly (tests, tools,
/// conformance suites).
#[derive(Clone, PartialEq, Eq)]
pub struct BindingBuf {
    suite: Suite,
    bytes: BindingBytes,
}

impl BindingBuf {
    /// The binding an envelope sealed with `suite` and `context` has.
    pub fn new(suite: Suite, context: &EncryptionContext) -> Self {
        Self {
            suite,
            bytes: encode(suite, context),
        }
    }

    /// Borrows it as a [`Binding`].
    pub fn as_binding(&self) -> Binding<'_> {
        Binding::from_encoded(self.suite, self.bytes.as_slice())
    }
}

impl fmt::Debug for BindingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_binding().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertion_order_does_not_matter() {
        let a = EncryptionContext::new().with("b", "2").unwrap().with("a", "1").unwrap();
        let b = EncryptionContext::new().with("a", "1").unwrap().with("b", "2").unwrap();
        assert_eq!(encode(Suite::Aes256Gcm, &a), encode(Suite::Aes256Gcm, &b));
    }

    #[test]
    fn binding_distinguishes_storage_suite_and_values() {
        let s = EncryptionContext::new().with("k", "v").unwrap();
        let r = EncryptionContext::new().with_required("k", "v").unwrap();
        let w = EncryptionContext::new().with("k", "w").unwrap();
        let base = encode(Suite::Aes256Gcm, &s);
        assert_ne!(base, encode(Suite::Aes256Gcm, &r));
        assert_ne!(base, encode(Suite::Aes256Gcm, &w));
        assert_ne!(base, encode(Suite::ChaCha20Poly1305, &s));
    }

    #[test]
    fn binding_entries_decode() {
        let c = EncryptionContext::new()
            .with("a", "1")
            .unwrap()
            .with_required("b", "")
            .unwrap();
        let buf = BindingBuf::new(Suite::XChaCha20Poly1305, &c);
        let b = buf.as_binding();
        let got: alloc::vec::Vec<_> = b.entries().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            ContextEntry {
                key: "a",
                value: "1",
                storage: Storage::Stored
            }
        );
        assert_eq!(
            got[1],
            ContextEntry {
                key: "b",
                value: "",
                storage: Storage::Required
            }
        );
        assert_eq!(b.suite(), Suite::XChaCha20Poly1305);
    }
}
