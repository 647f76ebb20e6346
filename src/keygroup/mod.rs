//! k-of-n key groups: a composite provider that splits each data key into
//! `n` Shamir shares over GF(2^8) and wraps each share with a different
//! member provider, so that any `k` members together (and no `k - 1`) can
//! unwrap it: two-person control for high-value data, or sops-style key
//! groups across KMS regions and an HSM.
//!
//! [`KeyGroup`] takes blocking members, [`AsyncKeyGroup`] async ones (every
//! blocking provider is one); both are thin shells over one sans-IO core
//! (splitting, encoding, share collection, recombination), so they produce
//! and accept the same bytes (`FORMAT.md` §10b).
//!
//! Each share is wrapped by its member **bound to the envelope's binding**,
//! like every wrap; the recombined key is then checked by the opener against
//! the envelope's key commitment and header tag, so a tampered share,
//! coordinate or threshold fails as authentication. Shares and polynomial
//! coefficients live in zeroizing buffers; no share is ever returned.
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use std::sync::Arc;
//! use lockbox::keygroup::KeyGroup;
//! use lockbox::{EncryptionContext, KeyEncryptionProvider, KeyId, LocalKek};
//!
//! // Three custodians' keys (in practice: KMS regions, HSMs, people).
//! let alice: Arc<dyn KeyEncryptionProvider> = Arc::new(LocalKek::generate()?);
//! let bob: Arc<dyn KeyEncryptionProvider> = Arc::new(LocalKek::generate()?);
//! let carol: Arc<dyn KeyEncryptionProvider> = Arc::new(LocalKek::generate()?);
//! let id = KeyId::new("treasury")?;
//! let group = KeyGroup::new(id.clone(), 2, vec![alice.clone(), bob.clone(), carol.clone()])?;
//! let ctx = EncryptionContext::new();
//! let env = lockbox::seal(&group, b"wire instructions", &ctx)?;
//!
//! // Any two members open it...
//! // (the threshold is in the wrapped key; an opener names its members).
//! let two = KeyGroup::unwrap_only(id.clone(), vec![alice, carol])?;
//! assert_eq!(lockbox::open(&two, &env, &ctx)?, b"wire instructions");
//! // ...one alone does not, and says how many shares it got.
//! let one = KeyGroup::unwrap_only(id, vec![bob])?;
//! let err = lockbox::open(&one, &env, &ctx).unwrap_err();
//! assert!(format!("{}", std::error::Error::source(&err).unwrap().source().unwrap()).contains("1 of 2"));
//! # Ok(()) }
//! ```

mod shamir;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{Error, ProviderError, ProviderErrorKind};
use crate::format::binding::Binding;
use crate::format::{MAX_WRAPPED_LEN, valid_key_id, valid_provider_id};
use crate::keys::{DATA_KEY_LEN, DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef};
use crate::provider::{AsyncKeyEncryptionProvider, BoxFuture, KeyEncryptionProvider, ProviderIdentity};

/// Provider id of key-group wrapped keys (`FORMAT.md` §10b).
pub const KEYGROUP_PROVIDER_ID: &str = "lockbox.keygroup";

/// Most members (shares) in one group.
pub const MAX_MEMBERS: usize = 16;

/// The wrapped bytes' format version.
const WRAP_VERSION: u8 = 1;

/// Why a key group could not unwrap (the source of its [`ProviderError`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyGroupError {
    /// Fewer than `needed` shares could be unwrapped.
    NotEnoughShares {
        /// The group.
        group: String,
        /// Shares unwrapped.
        obtained: usize,
        /// The threshold.
        needed: usize,
        /// Shares in the wrapped key.
        shares: usize,
        /// Shares for which this group has no matching member.
        unmatched: usize,
        /// The last member failure, if any.
        last: Option<ProviderError>,
    },
    /// The wrapped bytes are not a valid key-group wrap.
    Malformed(&'static str),
    /// A member wrapped a share into an entry it would not match, or two
    /// members share an identity (one holder would get two shares).
    Member(&'static str),
}

impl fmt::Display for KeyGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnoughShares {
                group,
                obtained,
                needed,
                shares,
                unmatched,
                ..
            } => write!(
                f,
                "key group {group:?}: {obtained} of {needed} required shares unwrapped \
                 ({shares} shares in the envelope, {unmatched} with no member here)"
            ),
            Self::Malformed(what) => write!(f, "malformed key-group wrap: {what}"),
            Self::Member(what) => write!(f, "key-group member: {what}"),
        }
    }
}

impl core::error::Error for KeyGroupError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NotEnoughShares { last: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}

fn group_error(kind: ProviderErrorKind, e: KeyGroupError) -> ProviderError {
    ProviderError::new(kind, KEYGROUP_PROVIDER_ID).with_source(e)
}

/// One share entry of a parsed wrap.
#[derive(Clone, Copy, Debug)]
struct ShareEntry<'a> {
    x: u8,
    wrapped: WrappedKeyRef<'a>,
}

/// A parsed wrap (`FORMAT.md` §10b): strict, bounded, no trailing bytes.
fn parse(bytes: &[u8]) -> Result<(u8, Vec<ShareEntry<'_>>), KeyGroupError> {
    let bad = KeyGroupError::Malformed;
    let mut r = crate::format::Reader::new(bytes);
    let short = |_| bad("truncated");
    if r.u8().map_err(short)? != WRAP_VERSION {
        return Err(bad("unknown wrap version"));
    }
    let k = r.u8().map_err(short)?;
    let n = r.u8().map_err(short)?;
    if k == 0 || n == 0 || k > n || usize::from(n) > MAX_MEMBERS {
        return Err(bad("threshold and share count must satisfy 1 <= k <= n <= 16"));
    }
    let mut shares = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let x = r.u8().map_err(short)?;
        if x == 0 || shares.iter().any(|s: &ShareEntry<'_>| s.x == x) {
            return Err(bad("share coordinates must be distinct and non-zero"));
        }
        let plen = usize::from(r.u8().map_err(short)?);
        let pid = core::str::from_utf8(r.take(plen).map_err(short)?).map_err(|_| bad("provider id not UTF-8"))?;
        let klen = usize::from(r.u8().map_err(short)?);
        let kid = core::str::from_utf8(r.take(klen).map_err(short)?).map_err(|_| bad("key id not UTF-8"))?;
        let version = r.u32().map_err(short)?;
        let wlen = usize::from(r.u16().map_err(short)?);
        let w = r.take(wlen).map_err(short)?;
        if !valid_provider_id(pid) || !valid_key_id(kid) || w.is_empty() {
            return Err(bad("invalid member provider id, key id or wrapped share"));
        }
        let wrapped = WrappedKeyRef::new(pid, kid, KeyVersion(version), w).map_err(|_| bad("invalid member entry"))?;
        shares.push(ShareEntry { x, wrapped });
    }
    if !r.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok((k, shares))
}

/// Encodes a wrap from the members' wrapped shares (coordinate `i + 1` for
/// member `i`).
fn encode(k: u8, wrapped: &[WrappedKey]) -> Result<Vec<u8>, KeyGroupError> {
    let n = u8::try_from(wrapped.len()).map_err(|_| KeyGroupError::Member("too many members"))?;
    let mut out = Vec::new();
    out.extend_from_slice(&[WRAP_VERSION, k, n]);
    for (i, w) in wrapped.iter().enumerate() {
        let x = u8::try_from(i.saturating_add(1)).map_err(|_| KeyGroupError::Member("too many members"))?;
        let pid = w.provider_id().as_bytes();
        let kid = w.key_id().as_str().as_bytes();
        let b = w.bytes();
        let too_long = KeyGroupError::Member("a member's wrapped share is too long for a key-group wrap");
        out.push(x);
        out.push(u8::try_from(pid.len()).map_err(|_| KeyGroupError::Member("provider id too long"))?);
        out.extend_from_slice(pid);
        out.push(u8::try_from(kid.len()).map_err(|_| KeyGroupError::Member("key id too long"))?);
        out.extend_from_slice(kid);
        out.extend_from_slice(&w.key_version().0.to_be_bytes());
        out.extend_from_slice(&u16::try_from(b.len()).map_err(|_| too_long)?.to_be_bytes());
        out.extend_from_slice(b);
    }
    if out.len() > MAX_WRAPPED_LEN {
        return Err(KeyGroupError::Member("the key-group wrap exceeds 65535 bytes"));
    }
    Ok(out)
}

/// The group's settings (shared by both shells).
#[derive(Clone, Debug)]
struct Spec {
    id: KeyId,
    version: KeyVersion,
    threshold: u8,
    /// `false` for an unwrap-only group (its threshold is meaningless).
    seals: bool,
}

/// Splitting a data key and collecting the members' wraps of its shares.
struct Split {
    shares: Vec<DataKey>,
    wrapped: Vec<WrappedKey>,
}

impl Split {
    fn new(spec: &Spec, members: usize, dek: &DataKey) -> Result<Self, ProviderError> {
        if !spec.seals {
            return Err(ProviderError::new(ProviderErrorKind::Unsupported, KEYGROUP_PROVIDER_ID));
        }
        let k = usize::from(spec.threshold);
        let mut coeffs = Zeroizing::new(alloc::vec![0u8; DATA_KEY_LEN.saturating_mul(k.saturating_sub(1))]);
        crate::keys::os_random(&mut coeffs)
            .map_err(|_| ProviderError::new(ProviderErrorKind::Other, KEYGROUP_PROVIDER_ID))?;
        let mut shares = Vec::with_capacity(members);
        for i in 0..members {
            let x = u8::try_from(i.saturating_add(1)).unwrap_or(u8::MAX);
            let mut share = DataKey::zeroed();
            shamir::share(dek.expose_secret(), &coeffs, x, share.bytes_mut());
            shares.push(share);
        }
        shamir::wipe(&mut coeffs);
        Ok(Self {
            shares,
            wrapped: Vec::with_capacity(members),
        })
    }

    /// The next share to wrap: its member index and the share.
    fn next(&self) -> Option<(usize, &DataKey)> {
        let i = self.wrapped.len();
        self.shares.get(i).map(|s| (i, s))
    }

    fn wrapped<P: ProviderIdentity + ?Sized>(
        &mut self,
        member: &P,
        r: Result<WrappedKey, ProviderError>,
    ) -> Result<(), ProviderError> {
        let w = r?;
        if !member.matches(w.as_ref()) {
            return Err(group_error(
                ProviderErrorKind::Other,
                KeyGroupError::Member("a member's wrap does not match the member"),
            ));
        }
        let dup = self
            .wrapped
            .iter()
            .any(|o| o.provider_id() == w.provider_id() && o.key_id() == w.key_id());
        if dup {
            return Err(group_error(
                ProviderErrorKind::Other,
                KeyGroupError::Member("two members have the same provider and key id"),
            ));
        }
        self.wrapped.push(w);
        Ok(())
    }

    fn finish(&self, spec: &Spec) -> Result<WrappedKey, ProviderError> {
        let bytes = encode(spec.threshold, &self.wrapped).map_err(|e| group_error(ProviderErrorKind::Other, e))?;
        WrappedKey::from_static(KEYGROUP_PROVIDER_ID, spec.id.clone(), spec.version, &bytes)
            .map_err(|e| ProviderError::new(ProviderErrorKind::Other, KEYGROUP_PROVIDER_ID).with_source(e))
    }
}

/// Collecting shares from the members and recombining them.
struct Join<'w> {
    threshold: usize,
    entries: Vec<ShareEntry<'w>>,
    next_entry: usize,
    next_member: usize,
    tried_entry: bool,
    xs: Vec<u8>,
    shares: Vec<DataKey>,
    unmatched: usize,
    last: Option<ProviderError>,
}

impl<'w> Join<'w> {
    fn new(bytes: &'w [u8]) -> Result<Self, ProviderError> {
        let (k, entries) = parse(bytes).map_err(|e| group_error(ProviderErrorKind::Authentication, e))?;
        Ok(Self {
            threshold: usize::from(k),
            entries,
            next_entry: 0,
            next_member: 0,
            tried_entry: false,
            xs: Vec::new(),
            shares: Vec::new(),
            unmatched: 0,
            last: None,
        })
    }

    /// The next (share entry, member index) to try, until `k` shares are in:
    /// for each share in order, the members that match it, in order; a
    /// share is taken from the first member that unwraps it.
    fn next<P: ProviderIdentity + ?Sized>(&mut self, members: &[Arc<P>]) -> Option<(WrappedKeyRef<'w>, usize)> {
        while self.shares.len() < self.threshold {
            let e = *self.entries.get(self.next_entry)?;
            let got = self.xs.contains(&e.x);
            while !got && let Some(m) = members.get(self.next_member) {
                let i = self.next_member;
                self.next_member = self.next_member.saturating_add(1);
                if m.matches(e.wrapped) {
                    self.tried_entry = true;
                    return Some((e.wrapped, i));
                }
            }
            if !self.tried_entry && !got {
                self.unmatched = self.unmatched.saturating_add(1);
            }
            self.next_entry = self.next_entry.saturating_add(1);
            self.next_member = 0;
            self.tried_entry = false;
        }
        None
    }

    /// A member's answer for the entry [`next`](Self::next) gave.
    fn offer(&mut self, r: Result<DataKey, ProviderError>) {
        match r {
            Ok(share) => {
                if let Some(e) = self.entries.get(self.next_entry) {
                    let mut s = DataKey::zeroed();
                    s.bytes_mut().copy_from_slice(share.expose_secret());
                    drop(share);
                    self.xs.push(e.x);
                    self.shares.push(s);
                }
                // On to the next share entry.
                self.next_entry = self.next_entry.saturating_add(1);
                self.next_member = 0;
                self.tried_entry = false;
            }
            Err(e) => self.last = Some(e),
        }
    }

    /// The data key from `k` shares, or why there are not enough.
    fn finish(&mut self, spec: &Spec) -> Result<DataKey, ProviderError> {
        if self.shares.len() < self.threshold {
            let kind = match self.last.as_ref().map(ProviderError::kind) {
                Some(ProviderErrorKind::Unavailable) => ProviderErrorKind::Unavailable,
                Some(ProviderErrorKind::Throttled) => ProviderErrorKind::Throttled,
                Some(ProviderErrorKind::Authentication) => ProviderErrorKind::Authentication,
                _ => ProviderErrorKind::KeyNotFound,
            };
            return Err(group_error(
                kind,
                KeyGroupError::NotEnoughShares {
                    group: spec.id.as_str().to_string(),
                    obtained: self.shares.len(),
                    needed: self.threshold,
                    shares: self.entries.len(),
                    unmatched: self.unmatched,
                    last: self.last.take(),
                },
            ));
        }
        let mut key = DataKey::zeroed();
        for (i, s) in self.shares.iter().enumerate() {
            shamir::accumulate(key.bytes_mut(), s.expose_secret(), shamir::basis_at_zero(&self.xs, i));
        }
        Ok(key)
    }
}

fn check_members(threshold: usize, members: usize) -> Result<u8, Error> {
    if members == 0 || members > MAX_MEMBERS || threshold == 0 || threshold > members {
        return Err(Error::invalid_argument(
            "a key group needs 1 to 16 members and a threshold between 1 and the member count",
        ));
    }
    u8::try_from(threshold).map_err(|_| Error::invalid_argument("threshold too large"))
}

/// A k-of-n key group over blocking member providers (see the
/// [module docs](self)). Sealing wraps one share per member (every member
/// must wrap); opening needs `threshold` members that unwrap their shares.
/// To open with only some of the members, use
/// [`unwrap_only`](Self::unwrap_only) with those members.
pub struct KeyGroup {
    spec: Spec,
    members: Vec<Arc<dyn KeyEncryptionProvider>>,
}

/// A k-of-n key group over async member providers (KMS regions, OpenBao,
/// and every blocking provider); the same bytes as [`KeyGroup`].
pub struct AsyncKeyGroup {
    spec: Spec,
    members: Vec<Arc<dyn AsyncKeyEncryptionProvider>>,
}

/// What both shells share: constructor, identity, `Debug`.
macro_rules! group_shell {
    ($ty:ident, $provider:ident) => {
        impl $ty {
            /// A group named `id` (its wrapped keys' key id; version 1) of
            /// `members`, `threshold` of which are needed to unwrap. 1 to
            /// [`MAX_MEMBERS`] members, `1 <= threshold <= members`.
            pub fn new(id: KeyId, threshold: usize, members: Vec<Arc<dyn $provider>>) -> Result<Self, Error> {
                let threshold = check_members(threshold, members.len())?;
                Ok(Self {
                    spec: Spec {
                        id,
                        version: KeyVersion(1),
                        threshold,
                        seals: true,
                    },
                    members,
                })
            }

            /// A group that only opens: the members present (any number, 1 to
            /// [`MAX_MEMBERS`]) try their shares, and the threshold recorded in
            /// the wrapped key decides. It cannot seal (`Unsupported`).
            pub fn unwrap_only(id: KeyId, members: Vec<Arc<dyn $provider>>) -> Result<Self, Error> {
                let threshold = check_members(members.len(), members.len())?;
                Ok(Self {
                    spec: Spec {
                        id,
                        version: KeyVersion(1),
                        threshold,
                        seals: false,
                    },
                    members,
                })
            }

            /// Sets the version recorded in wrapped keys (default 1), to tell
            /// a re-formed group's envelopes from the old one's.
            #[must_use]
            pub fn with_version(mut self, version: KeyVersion) -> Self {
                self.spec.version = version;
                self
            }

            /// The group's id.
            pub fn id(&self) -> &KeyId {
                &self.spec.id
            }

            /// Members needed to unwrap.
            pub fn threshold(&self) -> usize {
                usize::from(self.spec.threshold)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("id", &self.spec.id)
                    .field("threshold", &self.spec.threshold)
                    .field("members", &self.members)
                    .finish()
            }
        }

        impl ProviderIdentity for $ty {
            fn provider_id(&self) -> &str {
                KEYGROUP_PROVIDER_ID
            }
            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
                wrapped.is_for(KEYGROUP_PROVIDER_ID, self.spec.id.as_str())
            }
        }
    };
}

group_shell!(KeyGroup, KeyEncryptionProvider);
group_shell!(AsyncKeyGroup, AsyncKeyEncryptionProvider);

impl KeyEncryptionProvider for KeyGroup {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let mut split = Split::new(&self.spec, self.members.len(), dek)?;
        while let Some((i, share)) = split.next() {
            let m = self.members.get(i).map(|m| &**m);
            let r = m.map(|m| m.wrap(share, binding));
            split.wrapped(member(m)?, r.unwrap_or_else(|| Err(missing())))?;
        }
        split.finish(&self.spec)
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let mut join = Join::new(wrapped.bytes())?;
        while let Some((entry, i)) = join.next(&self.members) {
            let r = self
                .members
                .get(i)
                .map_or_else(|| Err(missing()), |m| m.unwrap(entry, binding));
            join.offer(r);
        }
        join.finish(&self.spec)
    }
}

impl AsyncKeyEncryptionProvider for AsyncKeyGroup {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move {
            let mut split = Split::new(&self.spec, self.members.len(), dek)?;
            while let Some((i, share)) = split.next() {
                let m = self.members.get(i).map(|m| &**m);
                let r = match m {
                    Some(m) => m.wrap_async(share, binding).await,
                    None => Err(missing()),
                };
                split.wrapped(member(m)?, r)?;
            }
            split.finish(&self.spec)
        })
    }

    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            let mut join = Join::new(wrapped.bytes())?;
            while let Some((entry, i)) = join.next(&self.members) {
                let r = match self.members.get(i) {
                    Some(m) => m.unwrap_async(entry, binding).await,
                    None => Err(missing()),
                };
                join.offer(r);
            }
            // The key is recombined in this last step and returned at once
            // (never kept in the future across an `.await`).
            join.finish(&self.spec)
        })
    }
}

fn missing() -> ProviderError {
    ProviderError::new(ProviderErrorKind::Other, KEYGROUP_PROVIDER_ID)
}

fn member<P: ?Sized>(m: Option<&P>) -> Result<&P, ProviderError> {
    m.ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_is_strict() {
        let ok = {
            let mut v = alloc::vec![1, 1, 1, 1, 1, b'p', 1, b'k', 0, 0, 0, 1, 0, 1, 9];
            assert!(parse(&v).is_ok());
            v.push(0);
            v
        };
        assert!(matches!(parse(&ok), Err(KeyGroupError::Malformed("trailing bytes"))));
        for bad in [
            &[][..],
            &[2, 1, 1],
            &[1, 0, 1],
            &[1, 2, 1],
            &[1, 1, 17],
            &[1, 1, 1, 0, 1, b'p', 1, b'k', 0, 0, 0, 1, 0, 1, 9],
            &[1, 1, 1, 1, 1, b'p', 1, b'k', 0, 0, 0, 1, 0, 0],
            &[
                1, 1, 2, 1, 1, b'p', 1, b'k', 0, 0, 0, 1, 0, 1, 9, 1, 1, b'p', 1, b'q', 0, 0, 0, 1, 0, 1, 9,
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
