//! Where envelopes live, for the bulk engine: [`Store`] (blocking: a local
//! directory, [`DirStore`](super::DirStore)) and [`AsyncStore`] (object
//! storage: the `lockbox-object-store` crate for S3 and its kin).
//!
//! A store lists keys in lexicographic order, reads a prefix of an object
//! (a ranged GET: the header is all a census or a rewrap needs), reads a
//! whole object, and writes **only if unchanged**: every read returns a
//! [`VersionToken`] (an ETag, or a local file's identity), and a write names
//! the token it expects, so an object modified by someone else since it was
//! read is reported ([`StoreErrorKind::Conflict`]), never overwritten.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::task::Poll;

use crate::error::BoxError;
use crate::provider::BoxFuture;

/// An opaque version of one object: an S3 ETag, a local file's identity
/// (device, inode, size, modification and change times). Equal tokens mean
/// the object was not changed between the reads that returned them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionToken(String);

impl VersionToken {
    /// A token from a store's own version string.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
    /// The store's version string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VersionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key (for a directory: the path relative to the root, with `/`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a read returned: the bytes asked for, the object's total size and
/// its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The bytes read (a prefix, or the whole object).
    pub bytes: Vec<u8>,
    /// The whole object's size.
    pub size: u64,
    /// The version the bytes were read at.
    pub version: VersionToken,
}

/// The kind of a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The object does not exist (any more).
    NotFound,
    /// The object changed since the version the write expected: someone
    /// else modified it. Not overwritten.
    Conflict,
    /// A temporary failure (throttling, a timeout, a 5xx): retrying may help.
    Transient,
    /// Anything else (permissions, an invalid key, I/O).
    Other,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Conflict => "modified concurrently (write-if-unchanged refused)",
            Self::Transient => "temporary store failure",
            Self::Other => "store failure",
        })
    }
}

/// A store operation failed.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    key: String,
    source: Option<BoxError>,
}

impl StoreError {
    /// An error of `kind` about object `key`.
    pub fn new(kind: StoreErrorKind, key: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.into(),
            source: None,
        }
    }
    /// Attaches the backend's error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }
    /// The kind.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
    /// The object's key (empty for a listing).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.key, self.kind)?;
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| -> &(dyn core::error::Error + 'static) { e })
    }
}

/// A blocking envelope store (see the [module docs](self)).
pub trait Store: Send + Sync + fmt::Debug {
    /// Up to `limit` objects whose keys sort after `after` (all when `None`),
    /// in lexicographic (byte) order of their keys. Fewer than `limit` means
    /// the listing is complete.
    fn list_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<ObjectMeta>, StoreError>;

    /// The first `len` bytes of `key` (fewer if the object is shorter), its
    /// total size and version: a ranged read where the store has them.
    fn read_prefix(&self, key: &str, len: u64) -> Result<Fetched, StoreError>;

    /// The whole object and its version.
    fn read(&self, key: &str) -> Result<Fetched, StoreError>;

    /// Replaces the object's first `old_header_len` bytes with `new_header`,
    /// keeping the rest byte for byte, if and only if the object is still at
    /// `expected`; atomically (a reader sees the old or the new object,
    /// never a mix). Returns the new version.
    fn replace_header(
        &self,
        key: &str,
        expected: &VersionToken,
        old_header_len: u64,
        new_header: &[u8],
    ) -> Result<VersionToken, StoreError>;

    /// Replaces the whole object with `bytes` if and only if it is still at
    /// `expected`, atomically. Returns the new version.
    fn write_if_unchanged(&self, key: &str, expected: &VersionToken, bytes: &[u8]) -> Result<VersionToken, StoreError>;
}

/// The async twin of [`Store`], for object storage reached over a network.
/// Every [`Store`] is also an `AsyncStore` through a blanket implementation
/// whose futures complete at once (blocking the polling thread for the
/// store's I/O). The methods carry an `_async` suffix, as the provider
/// traits do.
pub trait AsyncStore: Send + Sync + fmt::Debug {
    /// See [`Store::list_after`].
    fn list_after_async<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StoreError>>;
    /// See [`Store::read_prefix`].
    fn read_prefix_async<'a>(&'a self, key: &'a str, len: u64) -> BoxFuture<'a, Result<Fetched, StoreError>>;
    /// See [`Store::read`].
    fn read_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>>;
    /// See [`Store::replace_header`].
    fn replace_header_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        old_header_len: u64,
        new_header: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>>;
    /// See [`Store::write_if_unchanged`].
    fn write_if_unchanged_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>>;
}

impl<T: Store + ?Sized> AsyncStore for T {
    fn list_after_async<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StoreError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.list_after(after, limit))
        }))
    }
    fn read_prefix_async<'a>(&'a self, key: &'a str, len: u64) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(core::future::poll_fn(move |_| Poll::Ready(self.read_prefix(key, len))))
    }
    fn read_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(core::future::poll_fn(move |_| Poll::Ready(self.read(key))))
    }
    fn replace_header_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        old_header_len: u64,
        new_header: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.replace_header(key, expected, old_header_len, new_header))
        }))
    }
    fn write_if_unchanged_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.write_if_unchanged(key, expected, bytes))
        }))
    }
}
