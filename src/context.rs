//! Encryption context and the binding every wrapped key is tied to.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use core::fmt;

use crate::error::{Error, LimitKind};
use crate::format::MAX_CONTEXT_FIELD_LEN;
use crate::format::binding::{self, BindingBytes};
use crate::format::v1::ContextField;
use crate::suite::Suite;

// The binding types live with their encoding in `format::binding`.
pub(crate) use crate::format::binding::Binding;

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
/// Keys are 1 to 65 535 bytes without control characters (Unicode Cc) or
/// format characters (Cf: invisible characters such as U+200B and
/// bidirectional controls such as U+202E, which would let two different keys
/// look alike), values 0 to 65 535 bytes of any UTF-8; keys are compared
/// byte for byte, never normalized (`FORMAT.md` §1). The canonical encoding
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
        if key.is_empty() || key.chars().any(crate::format::forbidden_in_context_key) {
            return Err(Error::InvalidArgument {
                what: "encryption context keys must be non-empty and free of control and format characters (Unicode Cc, Cf)",
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

    /// The entries as a header's context block holds them: required ones
    /// without their value. (Encoded by `format::v1`.)
    pub(crate) fn header_fields(&self) -> impl Iterator<Item = ContextField<'_>> + Clone {
        self.entries.iter().map(|(k, e)| ContextField {
            key: k,
            value: match e.storage {
                Storage::Stored => Some(e.value.as_str()),
                Storage::Required => None,
            },
        })
    }

    /// The canonical binding bytes for `suite` and this whole context.
    pub(crate) fn binding_bytes(&self, suite: Suite) -> BindingBytes {
        binding::encode(suite, self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_entries_are_refused() {
        let mut c = EncryptionContext::new();
        assert!(c.insert("", "v").is_err());
        assert!(c.insert("a\nb", "v").is_err());
        assert!(c.insert("nul\0", "v").is_err());
        assert!(c.insert("zero\u{200B}width", "v").is_err());
        assert!(c.insert("\u{202E}rtl", "v").is_err());
        c.insert("k", "values may hold \u{200B} and \u{202E}").unwrap();
        c.insert("k", "multi\nline values are fine").unwrap();
        assert!(c.remove("k"));
        assert!(c.insert(&"k".repeat(65536), "v").is_err());
        assert!(c.insert("k", &"v".repeat(65536)).is_err());
        assert!(c.is_empty());
    }
}
