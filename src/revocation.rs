//! What revoking a key version would cut off: [`report`] scans envelope
//! headers and lists those a version still protects.
//!
//! A thin pass over headers you already hold, with no store and no policy,
//! available without `std`. For a store at scale (a directory, a bucket;
//! sharded, concurrent, with a JSON report), use the rotation census:
//! `lockbox::rotation::Census::revoking` (feature `std`) answers the same
//! question and also counts an envelope as stranded when its other wrapped
//! keys are themselves stale under its `MigrationPolicy` (retired,
//! compromised), which this function, knowing no policy, cannot judge.

use alloc::vec::Vec;

use crate::error::Error;
use crate::format::{self, Limits, Parsed};
use crate::keys::KeyVersion;

/// A key version: provider id, key id and version, as wrapped keys name
/// them ([`WrappedKeyRef::is_for`](crate::WrappedKeyRef::is_for) plus the version).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyVersionRef<'a> {
    /// The provider id (`lockbox.keyring`, `aws-kms`, ...).
    pub provider_id: &'a str,
    /// The key id (a keyring's id, a KMS key ARN).
    pub key_id: &'a str,
    /// The version.
    pub version: KeyVersion,
}

/// What [`report`] found. `T` is whatever names an envelope (a path, an
/// object key, a row id).
#[derive(Debug)]
#[non_exhaustive]
pub struct RevocationReport<T> {
    /// Envelopes whose every wrapped key is under the version: revoking it
    /// makes them unreadable. Rewrap or re-encrypt them first.
    pub only: Vec<T>,
    /// Envelopes with a wrapped key under the version **and** another one
    /// (a recovery key, another version or region): still readable after
    /// revocation through the other, if that one is not revoked too.
    pub also: Vec<T>,
    /// Items whose header could not be read (not an envelope, truncated,
    /// over the limits), with why.
    pub unreadable: Vec<(T, Error)>,
    /// How many items were scanned.
    pub scanned: usize,
}

/// Lists the envelopes among `envelopes` that `key` still protects. Each
/// item is a name and bytes holding at least the envelope's header (the
/// whole envelope, or the first 64 KiB of an object): only headers are
/// read (unauthenticated, as [`inspect`](crate::inspect) reads them),
/// parsed with the default [`Limits`].
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::keyring::{Keyring, UnixTime, KEYRING_PROVIDER_ID};
/// use lockbox::revocation::{KeyVersionRef, report};
/// use lockbox::{EncryptionContext, KeyId, KeyVersion, LocalKek, Sealer};
///
/// let mut ring = Keyring::generate(KeyId::new("orders")?, UnixTime(1_700_000_000))?;
/// let recovery = LocalKek::generate()?;
/// let ctx = EncryptionContext::new();
/// let a = lockbox::seal(&ring, b"a", &ctx)?;                                      // v1 only
/// let b = Sealer::new(&ring).also_wrap_with(&recovery).seal(b"b", &ctx)?;          // v1 + recovery
/// ring.rotate(UnixTime(1_700_100_000))?;
/// let c = lockbox::seal(&ring, b"c", &ctx)?;                                      // v2
///
/// let v1 = KeyVersionRef { provider_id: KEYRING_PROVIDER_ID, key_id: "orders", version: KeyVersion(1) };
/// let r = report(v1, [("a", &a[..]), ("b", &b[..]), ("c", &c[..]), ("junk", b"not an envelope")]);
/// assert_eq!((r.only, r.also, r.unreadable.len(), r.scanned), (vec!["a"], vec!["b"], 1, 4));
/// # Ok(()) }
/// ```
pub fn report<T, B, I>(key: KeyVersionRef<'_>, envelopes: I) -> RevocationReport<T>
where
    I: IntoIterator<Item = (T, B)>,
    B: AsRef<[u8]>,
{
    let limits = Limits::default();
    let mut r = RevocationReport {
        only: Vec::new(),
        also: Vec::new(),
        unreadable: Vec::new(),
        scanned: 0,
    };
    for (name, bytes) in envelopes {
        r.scanned = r.scanned.saturating_add(1);
        let h = match format::parse_prefix(bytes.as_ref(), &limits) {
            Ok(Parsed::Complete(h)) => h,
            Ok(Parsed::Incomplete { .. }) => {
                r.unreadable
                    .push((name, Error::invalid_argument("bytes end inside the envelope header")));
                continue;
            }
            Err(e) => {
                r.unreadable.push((name, e));
                continue;
            }
        };
        let (mut under, mut other) = (false, false);
        for w in h.wrapped().iter() {
            if w.is_for(key.provider_id, key.key_id) && w.key_version() == key.version {
                under = true;
            } else {
                other = true;
            }
        }
        match (under, other) {
            (true, false) => r.only.push(name),
            (true, true) => r.also.push(name),
            _ => {}
        }
    }
    r
}
