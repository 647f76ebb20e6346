//! Encryption context and the binding every wrapped key is tied to.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use core::fmt;

use crate::error::{Error, LimitKind};
use crate::format::{ContextBlock, KIND_REQUIRED, KIND_STORED, MAX_CONTEXT_FIELD_LEN, Put, Reader};
use crate::suite::Suite;

/// Where an encryption-context entry lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Storage {
    /// Key and value are stored in the envelope header (readable by
    /// [`inspect`](crate::inspect)) and authenticated.
    Stored,
    /// Authenticated but not stored: only the key's name is in the header, and
    /// the caller must supply the value again to open.
    Required,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    storage: Storage,
}

/// Caller-chosen, non-secret facts an envelope is bound to (tenant, purpose,
/// record id...): an ordered map of UTF-8 keys to UTF-8 values.
///
/// Every entry is authenticated by the envelope and bound into every wrapped
/// data key, so neither the payload nor its wrapped key opens under another
/// context. Each entry is either [stored](Storage::Stored) in the header or
/// [required](Storage::Required): authenticated but never written, so the
/// caller must supply it again to open.
///
/// Keys are 1 to 65 535 bytes without control characters, values 0 to 65 535
/// bytes of any UTF-8; the canonical encoding
/// (`FORMAT.md`) sorts entries by key bytes, so insertion order never matters.
/// The sealer's [`Limits`](crate::Limits) cap the total (default 64 entries,
/// 16 KiB).
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::EncryptionContext;
/// let ctx = EncryptionContext::new()
///     .with("purpose", "invoice")?
///     .with_required("tenant", "acme-corp")?;
/// assert_eq!(ctx.get("tenant"), Some("acme-corp"));
/// # Ok(()) }
/// ```
///
/// Context is not secret: stored values are readable by anyone holding the
/// envelope. Never put keys or passwords in it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext {
    entries: BTreeMap<String, Entry>,
}

/// One entry of an [`EncryptionContext`] or a [`Binding`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContextEntry<'a> {
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
    /// Stored in the header, or required from the caller.
    pub storage: Storage,
}

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&mut self, key: &str, value: &str, storage: Storage) -> Result<(), Error> {
        if key.is_empty() || key.chars().any(char::is_control) {
            return Err(Error::InvalidArgument {
                what: "encryption context keys must be non-empty and free of control characters",
            });
        }
        if key.len() > MAX_CONTEXT_FIELD_LEN || value.len() > MAX_CONTEXT_FIELD_LEN {
            return Err(Error::LimitExceeded {
                limit: LimitKind::ContextField,
                max: MAX_CONTEXT_FIELD_LEN,
            });
        }
        if !self.entries.contains_key(key) && self.entries.len() >= usize::from(u16::MAX) {
            return Err(Error::LimitExceeded {
                limit: LimitKind::ContextEntries,
                max: usize::from(u16::MAX),
            });
        }
        self.entries.insert(
            key.to_string(),
            Entry {
                value: value.to_string(),
                storage,
            },
        );
        Ok(())
    }

    /// Inserts (or replaces) an entry stored in the header.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.put(key, value, Storage::Stored)
    }

    /// Inserts (or replaces) an entry that is authenticated but not stored:
    /// opening requires the caller to supply it again.
    pub fn insert_required(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.put(key, value, Storage::Required)
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, key: &str, value: &str) -> Result<Self, Error> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// Builder form of [`insert_required`](Self::insert_required).
    pub fn with_required(mut self, key: &str, value: &str) -> Result<Self, Error> {
        self.insert_required(key, value)?;
        Ok(self)
    }

    /// Removes an entry; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// Where the entry for `key` lives.
    pub fn storage(&self, key: &str) -> Option<Storage> {
        self.entries.get(key).map(|e| e.storage)
    }

    /// Entries in canonical (byte-wise key) order.
    pub fn iter(&self) -> impl Iterator<Item = ContextEntry<'_>> {
        self.entries.iter().map(|(k, e)| ContextEntry {
            key: k,
            value: &e.value,
            storage: e.storage,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values (what [`Limits::max_context_bytes`](crate::Limits::max_context_bytes) counts
    /// in a header: required values are not stored there, so they do not count).
    pub(crate) fn stored_bytes(&self) -> usize {
        self.entries.iter().fold(0usize, |acc, (k, e)| {
            let v = if e.storage == Storage::Stored { e.value.len() } else { 0 };
            acc.saturating_add(k.len()).saturating_add(v)
        })
    }

    /// Length of the header form: count, then per entry kind, key, and the
    /// value for stored entries.
    pub(crate) fn header_len(&self) -> usize {
        self.entries.iter().fold(2usize, |acc, (k, e)| {
            let v = if e.storage == Storage::Stored {
                2usize.saturating_add(e.value.len())
            } else {
                0
            };
            acc.saturating_add(3).saturating_add(k.len()).saturating_add(v)
        })
    }

    /// Writes the header form.
    pub(crate) fn put_header(&self, out: &mut impl Put) {
        out.put_u16(u16::try_from(self.entries.len()).unwrap_or(u16::MAX));
        for (k, e) in &self.entries {
            match e.storage {
                Storage::Stored => {
                    out.put_u8(KIND_STORED);
                    put_field(out, k);
                    put_field(out, &e.value);
                }
                Storage::Required => {
                    out.put_u8(KIND_REQUIRED);
                    put_field(out, k);
                }
            }
        }
    }

    /// The canonical binding bytes for `suite` and this whole context.
    pub(crate) fn binding_bytes(&self, suite: Suite) -> BindingBytes {
        let mut out = BindingBytes::new();
        put_binding_prefix(&mut out, suite, self.entries.len());
        for (k, e) in &self.entries {
            put_binding_entry(&mut out, k, &e.value, e.storage);
        }
        out
    }

    /// Rebuilds the full context an envelope was sealed under from its header
    /// and what the caller supplies to open, returning the binding bytes.
    /// With `strict`, every stored entry must be supplied too.
    pub(crate) fn reconcile(
        &self,
        header: ContextBlock<'_>,
        suite: Suite,
        strict: bool,
    ) -> Result<BindingBytes, Error> {
        let mut out = BindingBytes::new();
        put_binding_prefix(&mut out, suite, header.len());
        let mut matched = 0usize;
        for e in header.iter() {
            let supplied = self.get(e.key);
            match (e.value, supplied) {
                (Some(stored), Some(v)) if v != stored => {
                    return Err(Error::ContextMismatch { key: e.key.to_string() });
                }
                (Some(_), None) if strict => return Err(Error::MissingContext { key: e.key.to_string() }),
                (Some(stored), _) => put_binding_entry(&mut out, e.key, stored, Storage::Stored),
                (None, Some(v)) => put_binding_entry(&mut out, e.key, v, Storage::Required),
                (None, None) => return Err(Error::MissingContext { key: e.key.to_string() }),
            }
            if supplied.is_some() {
                matched = matched.saturating_add(1);
            }
        }
        if matched != self.entries.len() {
            // Something the caller expects is not in the envelope.
            let extra = self
                .entries
                .keys()
                .find(|k| !header.iter().any(|e| e.key == k.as_str()));
            return Err(Error::ContextMismatch {
                key: extra.cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

impl fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for e in self.iter() {
            match e.storage {
                Storage::Stored => m.entry(&e.key, &e.value),
                Storage::Required => m.entry(&e.key, &format_args!("{:?} (required)", e.value)),
            };
        }
        m.finish()
    }
}

fn put_field(out: &mut impl Put, s: &str) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put(s.as_bytes());
}

/// Domain label that starts every binding encoding.
pub(crate) const BINDING_LABEL: &[u8] = b"lockbox v1 binding";
const BINDING_PREFIX_LEN: usize = BINDING_LABEL.len() + 1 + 2;

/// Binding bytes, inline for contexts of up to about 200 bytes (no
/// allocation on the hot path), on the heap beyond.
pub(crate) type BindingBytes = crate::inline::InlineBuf<256>;

fn put_binding_prefix(out: &mut impl Put, suite: Suite, count: usize) {
    out.put(BINDING_LABEL);
    out.put_u8(suite.id());
    out.put_u16(u16::try_from(count).unwrap_or(u16::MAX));
}

fn put_binding_entry(out: &mut impl Put, key: &str, value: &str, storage: Storage) {
    out.put_u8(match storage {
        Storage::Stored => KIND_STORED,
        Storage::Required => KIND_REQUIRED,
    });
    put_field(out, key);
    put_field(out, value);
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
            bytes: context.binding_bytes(suite),
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
        assert_eq!(a.binding_bytes(Suite::Aes256Gcm), b.binding_bytes(Suite::Aes256Gcm));
    }

    #[test]
    fn binding_distinguishes_storage_suite_and_values() {
        let s = EncryptionContext::new().with("k", "v").unwrap();
        let r = EncryptionContext::new().with_required("k", "v").unwrap();
        let w = EncryptionContext::new().with("k", "w").unwrap();
        let base = s.binding_bytes(Suite::Aes256Gcm);
        assert_ne!(base, r.binding_bytes(Suite::Aes256Gcm));
        assert_ne!(base, w.binding_bytes(Suite::Aes256Gcm));
        assert_ne!(base, s.binding_bytes(Suite::ChaCha20Poly1305));
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

    #[test]
    fn invalid_entries_are_refused() {
        let mut c = EncryptionContext::new();
        assert!(c.insert("", "v").is_err());
        assert!(c.insert("a\nb", "v").is_err());
        assert!(c.insert("nul\0", "v").is_err());
        c.insert("k", "multi\nline values are fine").unwrap();
        assert!(c.remove("k"));
        assert!(c.insert(&"k".repeat(65536), "v").is_err());
        assert!(c.insert("k", &"v".repeat(65536)).is_err());
        assert!(c.is_empty());
    }
}
