//! Moving envelopes to new keys: rewrap ([`Rewrapper`]) and re-encrypt
//! ([`Reencryptor`]), two different operations; the comparison is in
//! [`Rewrapper`]'s documentation, which is public (this module is not).

use alloc::vec::Vec;

use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::context::{Binding, EncryptionContext};
use crate::crypto::{self, PayloadCipher};
use crate::envelope::{Opener, Sealer, full_context};
use crate::error::{Error, LimitKind, ProviderError, ProviderErrorKind};
use crate::format::{self, Header, Limits, Put, Segments, TAG_LEN, WrappedEntry};
use crate::keys::{DataKey, KeyVersion, WrappedKey, WrappedKeyRef};
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider, ProviderIdentity};

/// Which of an envelope's existing wrapped keys a [`Rewrapper`] keeps (copies
/// unchanged into the new header, after the new ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Keep {
    /// Keep the entries that none of the unwrap providers matches: other
    /// providers' keys (a disaster-recovery HSM, another region) survive,
    /// while the entries the unwrap side is addressed to are replaced by the
    /// new wraps. The default.
    #[default]
    Unmatched,
    /// Keep every existing entry (to add a provider without replacing any).
    All,
    /// Keep none: the new header holds only the new wraps.
    Nothing,
}

/// Rewraps envelopes: replaces their wrapped data keys without touching the
/// payload.
///
/// The new header holds, in order: one entry per wrap provider (by default
/// the provider given to [`new`](Self::new); see [`wrap_with`](Self::wrap_with)
/// and [`also_wrap_with`](Self::also_wrap_with)), then the existing entries
/// [`Keep`] selects, in header order, minus those of any provider named with
/// [`remove_entries_of`](Self::remove_entries_of). Entries are not
/// deduplicated.
///
/// Unwrapping follows [`Opener`]'s rules exactly: for each wrapped key in
/// header order, the unwrap providers that match it, in the order given; the
/// first data key that passes the key commitment is used, and the envelope's
/// header tag must verify with it before anything is wrapped. The caller's
/// context is reconciled as by [`Opener`] (required entries must be supplied)
/// and the new wrapped keys are bound to the same binding. Required values
/// are not in the header: a wrong one is caught because the unwrap is bound to
/// it and fails, so a rewrap can only be as strict as the unwrap providers'
/// binding (every provider must authenticate it; `LocalKek` does).
///
/// Rewrap does **not** verify the payload's segment tags unless asked to with
/// [`verify_payload`](Self::verify_payload): a tampered payload is copied as
/// it is and fails when opened, exactly as it would have before the rewrap.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::{EncryptionContext, LocalKek, Rewrapper, Sealer};
/// let primary = LocalKek::generate()?;
/// let recovery = LocalKek::generate()?;
/// let ctx = EncryptionContext::new();
/// let env = lockbox::seal(&primary, b"x", &ctx)?;
///
/// // Add a recovery key: the primary's entry is re-made, the new one added.
/// let two = Rewrapper::new(&primary).also_wrap_with(&recovery).rewrap(&env, &ctx)?;
/// assert_eq!(lockbox::inspect(&two)?.wrapped_keys().len(), 2);
/// assert_eq!(lockbox::open(&recovery, &two, &ctx)?, b"x");
///
/// // And remove it again.
/// let one = Rewrapper::new(&primary).remove_entries_of(&recovery).rewrap(&two, &ctx)?;
/// assert_eq!(lockbox::inspect(&one)?.wrapped_keys().len(), 1);
/// assert!(lockbox::open(&recovery, &one, &ctx).is_err());
/// # Ok(()) }
/// ```
///
/// # Rewrap or re-encrypt?
///
/// Two different operations:
///
/// | | [`Rewrapper`] (rewrap) | [`Reencryptor`] (re-encrypt) |
/// |---|---|---|
/// | data key (DEK) | kept | new |
/// | message id, key commitment, payload | byte-identical | new |
/// | changes | the wrapped keys and the header tag | every byte |
/// | plaintext produced | never | yes, in memory, zeroized after use |
/// | cost | proportional to the header (plus provider calls) | proportional to the payload |
/// | use it for | KEK rotation, retiring a KEK version, adding or removing a provider | a suspected DEK compromise; a KEK compromise where old wrapped keys may have been copied |
///
/// **Rewrap** unwraps the data key with the old provider(s), verifies the key
/// commitment and the envelope's header tag (an unauthenticated header is
/// never rewrapped), wraps the same data key with the new provider(s), and
/// writes a new header: the same message id, suite, segment size, context and
/// commitment, the new wrapped keys, and a header tag recomputed with the
/// payload key. The payload bytes are copied unchanged (`FORMAT.md` §5).
///
/// Rewrap keeps the data key: anyone who copied an old wrapped key and later
/// obtains the old KEK can still recover it. After a KEK compromise, re-encrypt
/// the envelopes whose old wrapped keys may have leaked.
///
/// **Re-encrypt** opens the envelope (fully authenticated) and seals the
/// plaintext again with a fresh data key and message id, under a [`Sealer`]'s
/// providers and options.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::{EncryptionContext, LocalKek, Rewrapper};
/// let old = LocalKek::generate()?;
/// let new = LocalKek::generate()?;
/// let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
/// let envelope = lockbox::seal(&old, b"ledger", &ctx)?;
///
/// // Unwrap with the old KEK, wrap with the new one; the payload is untouched.
/// let rewrapped = Rewrapper::new(&old).wrap_with(&new).rewrap(&envelope, &ctx)?;
/// assert_eq!(lockbox::open(&new, &rewrapped, &ctx)?, b"ledger");
/// assert!(lockbox::open(&old, &rewrapped, &ctx).is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Rewrapper<'p> {
    unwrap_with: Vec<&'p dyn KeyEncryptionProvider>,
    wrap_with: Vec<&'p dyn KeyEncryptionProvider>,
    options: Options<'p>,
}

/// A rewrapped header, from [`Rewrapper::rewrap_header`]: the bytes that
/// replace the first [`replaced_len`](Self::replaced_len) bytes of the
/// envelope (its old header). The rest of the envelope stays as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHeader {
    header: Vec<u8>,
    replaced_len: usize,
}

impl NewHeader {
    /// The new header, header tag included.
    pub fn header(&self) -> &[u8] {
        &self.header
    }
    /// The length of the old header: the new envelope is
    /// `header() || envelope[replaced_len()..]`.
    pub fn replaced_len(&self) -> usize {
        self.replaced_len
    }
    /// The new header as an owned buffer.
    pub fn into_header(self) -> Vec<u8> {
        self.header
    }
}

impl<'p> Rewrapper<'p> {
    /// A rewrapper that unwraps data keys with `unwrap_with` and, unless told
    /// otherwise with [`wrap_with`](Self::wrap_with), wraps them again with
    /// the same provider (a keyring wraps with its current primary version).
    pub fn new(unwrap_with: &'p dyn KeyEncryptionProvider) -> Self {
        Self {
            unwrap_with: alloc::vec![unwrap_with],
            wrap_with: alloc::vec![unwrap_with],
            options: Options::default(),
        }
    }

    /// Also tries `provider` to unwrap (after the earlier ones, for each
    /// wrapped key), as [`Opener::also_try`] does. It is part of the unwrap
    /// side: with the default [`Keep::Unmatched`] its entries are replaced,
    /// so wrap with it again ([`also_wrap_with`](Self::also_wrap_with)) or
    /// use [`Keep::All`] if they must stay.
    #[must_use]
    pub fn also_try(mut self, provider: &'p dyn KeyEncryptionProvider) -> Self {
        self.unwrap_with.push(provider);
        self
    }

    /// Wraps the data key with `provider` only, replacing the default (the
    /// provider given to [`new`](Self::new)) and any earlier choice.
    #[must_use]
    pub fn wrap_with(mut self, provider: &'p dyn KeyEncryptionProvider) -> Self {
        self.wrap_with.clear();
        self.wrap_with.push(provider);
        self
    }

    /// Also wraps the data key with `provider`, after the others.
    #[must_use]
    pub fn also_wrap_with(mut self, provider: &'p dyn KeyEncryptionProvider) -> Self {
        self.wrap_with.push(provider);
        self
    }

    /// Wraps with no provider at all: the new header holds only the kept
    /// entries (use with [`Keep::All`] and
    /// [`remove_entries_of`](Self::remove_entries_of) to remove a provider
    /// without re-wrapping the others).
    #[must_use]
    pub fn no_new_wraps(mut self) -> Self {
        self.wrap_with.clear();
        self
    }

    /// Chooses which existing entries are kept (default [`Keep::Unmatched`]).
    #[must_use]
    pub fn keep(mut self, keep: Keep) -> Self {
        self.options.keep = keep;
        self
    }

    /// Drops every existing entry that `provider` [matches](ProviderIdentity::matches),
    /// whatever [`Keep`] says. The provider is never asked to unwrap or wrap.
    #[must_use]
    pub fn remove_entries_of(mut self, provider: &'p dyn ProviderIdentity) -> Self {
        self.options.remove.push(provider);
        self
    }

    /// Sets the limits: the envelope must respect them, and so must the new
    /// header (so an opener with the same limits accepts the result).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// Requires the caller's context to name every entry of the envelope's
    /// context, as [`Opener::strict_context`] does.
    #[must_use]
    pub fn strict_context(mut self) -> Self {
        self.options.strict_context = true;
        self
    }

    /// Also verifies every payload segment's tag before producing anything
    /// (the plaintext goes to a one-segment scratch buffer that is zeroized
    /// and never released). This costs as much as an open; without it rewrap
    /// costs only the header. Ignored by [`rewrap_header`](Self::rewrap_header),
    /// which never sees the payload. In [`rewrap_stream`](Self::rewrap_stream)
    /// each segment is verified before it is written.
    #[must_use]
    pub fn verify_payload(mut self, verify: bool) -> Self {
        self.options.verify_payload = verify;
        self
    }

    /// Rewraps `envelope` into a new buffer: the new header followed by the
    /// unchanged payload. On any error nothing is produced.
    pub fn rewrap(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (h, payload) = format::parse(envelope, &self.options.limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size, h.len)?;
        let (header, cipher) = self.new_header(&h, context)?;
        if self.options.verify_payload {
            verify_segments(&cipher, segs, payload)?;
        }
        let mut out = Vec::new();
        out.try_reserve_exact(header.len().saturating_add(payload.len()))
            .map_err(|_| Error::InvalidArgument {
                what: "envelope too large to allocate",
            })?;
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(out)
    }

    /// Rewraps only the header: `header_prefix` starts at the envelope's first
    /// byte and holds at least its whole header (anything after it is
    /// ignored). Write [`NewHeader::header`] followed by the envelope's bytes
    /// from [`NewHeader::replaced_len`] on. The payload is not examined, so
    /// its framing is not checked either; [`rewrap`](Self::rewrap) and
    /// [`rewrap_stream`](Self::rewrap_stream) check it.
    pub fn rewrap_header(&self, header_prefix: &[u8], context: &EncryptionContext) -> Result<NewHeader, Error> {
        let (h, _) = format::parse(header_prefix, &self.options.limits)?;
        let (header, _cipher) = self.new_header(&h, context)?;
        Ok(NewHeader {
            header,
            replaced_len: h.len,
        })
    }

    /// Rewraps every envelope of a batch, each with its own context. A failed
    /// item never stops the others; the results are in input order, and the
    /// inputs are not modified.
    pub fn rewrap_batch<'a, I>(&self, items: I) -> Vec<Result<Vec<u8>, Error>>
    where
        I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    {
        items.into_iter().map(|(env, ctx)| self.rewrap(env, ctx)).collect()
    }

    /// Reconciles the context, unwraps and authenticates the header, wraps
    /// with the new providers and encodes the new header (tag included).
    fn new_header(&self, h: &Header<'_>, context: &EncryptionContext) -> Result<(Vec<u8>, PayloadCipher), Error> {
        let plan = plan(h, context, &self.unwrap_with, self.wrap_with.len(), &self.options)?;
        let binding = Binding::from_encoded(h.suite, plan.binding_bytes.as_slice());
        // Never wrap a data key from a header that did not authenticate.
        let (dek, cipher) = unwrap_verified(&self.unwrap_with, h, binding)?;
        let mut fresh = Vec::with_capacity(self.wrap_with.len());
        for p in &self.wrap_with {
            let w = p.wrap(&dek, binding)?;
            check_own(*p, &w)?;
            fresh.push(w);
        }
        drop(dek);
        let header = encode(h, &plan, &fresh, &cipher, &self.options.limits)?;
        Ok((header, cipher))
    }
}

/// The async twin of [`Rewrapper`], for providers reached over the network
/// ([`AsyncKeyEncryptionProvider`]s: every sync provider is one too): the same
/// options, checks and output, with the unwraps and wraps awaited. Nothing
/// here starts or blocks on a runtime, and the futures are `Send`.
///
/// There is no streaming variant: for large envelopes read a prefix holding
/// the header, call [`rewrap_header`](Self::rewrap_header), write the new
/// header and copy the rest of the envelope after it (its framing is then
/// checked when it is opened).
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use lockbox::{AsyncRewrapper, EncryptionContext, LocalKek};
/// let old = LocalKek::generate()?;
/// let new = LocalKek::generate()?; // say, a KMS key behind an async client
/// let ctx = EncryptionContext::new();
/// let env = lockbox::seal(&old, b"x", &ctx)?;
/// let out = AsyncRewrapper::new(&old).wrap_with(&new).rewrap(&env, &ctx).await?;
/// assert_eq!(lockbox::open(&new, &out, &ctx)?, b"x");
/// # Ok(()) })
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncRewrapper<'p> {
    unwrap_with: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    wrap_with: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    options: Options<'p>,
}

impl<'p> AsyncRewrapper<'p> {
    /// See [`Rewrapper::new`].
    pub fn new(unwrap_with: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        Self {
            unwrap_with: alloc::vec![unwrap_with],
            wrap_with: alloc::vec![unwrap_with],
            options: Options::default(),
        }
    }

    /// See [`Rewrapper::also_try`].
    #[must_use]
    pub fn also_try(mut self, provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        self.unwrap_with.push(provider);
        self
    }

    /// See [`Rewrapper::wrap_with`].
    #[must_use]
    pub fn wrap_with(mut self, provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        self.wrap_with.clear();
        self.wrap_with.push(provider);
        self
    }

    /// See [`Rewrapper::also_wrap_with`].
    #[must_use]
    pub fn also_wrap_with(mut self, provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        self.wrap_with.push(provider);
        self
    }

    /// See [`Rewrapper::no_new_wraps`].
    #[must_use]
    pub fn no_new_wraps(mut self) -> Self {
        self.wrap_with.clear();
        self
    }

    /// See [`Rewrapper::keep`].
    #[must_use]
    pub fn keep(mut self, keep: Keep) -> Self {
        self.options.keep = keep;
        self
    }

    /// See [`Rewrapper::remove_entries_of`].
    #[must_use]
    pub fn remove_entries_of(mut self, provider: &'p dyn ProviderIdentity) -> Self {
        self.options.remove.push(provider);
        self
    }

    /// See [`Rewrapper::limits`].
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.options.limits = limits;
        self
    }

    /// See [`Rewrapper::strict_context`].
    #[must_use]
    pub fn strict_context(mut self) -> Self {
        self.options.strict_context = true;
        self
    }

    /// See [`Rewrapper::verify_payload`].
    #[must_use]
    pub fn verify_payload(mut self, verify: bool) -> Self {
        self.options.verify_payload = verify;
        self
    }

    /// See [`Rewrapper::rewrap`].
    pub async fn rewrap(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (h, payload) = format::parse(envelope, &self.options.limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size, h.len)?;
        let (header, cipher) = self.new_header(&h, context).await?;
        if self.options.verify_payload {
            verify_segments(&cipher, segs, payload)?;
        }
        let mut out = Vec::new();
        out.try_reserve_exact(header.len().saturating_add(payload.len()))
            .map_err(|_| Error::InvalidArgument {
                what: "envelope too large to allocate",
            })?;
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        Ok(out)
    }

    /// See [`Rewrapper::rewrap_header`].
    pub async fn rewrap_header(&self, header_prefix: &[u8], context: &EncryptionContext) -> Result<NewHeader, Error> {
        let (h, _) = format::parse(header_prefix, &self.options.limits)?;
        let (header, _cipher) = self.new_header(&h, context).await?;
        Ok(NewHeader {
            header,
            replaced_len: h.len,
        })
    }

    /// See [`Rewrapper::rewrap_batch`]. The items are rewrapped one after
    /// the other.
    pub async fn rewrap_batch<'a, I>(&self, items: I) -> Vec<Result<Vec<u8>, Error>>
    where
        I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    {
        let mut out = Vec::new();
        for (env, ctx) in items {
            out.push(self.rewrap(env, ctx).await);
        }
        out
    }

    async fn new_header(&self, h: &Header<'_>, context: &EncryptionContext) -> Result<(Vec<u8>, PayloadCipher), Error> {
        let plan = plan(h, context, &self.unwrap_with, self.wrap_with.len(), &self.options)?;
        let binding = Binding::from_encoded(h.suite, plan.binding_bytes.as_slice());
        let (dek, cipher) = unwrap_verified_async(&self.unwrap_with, h, binding).await?;
        let mut fresh = Vec::with_capacity(self.wrap_with.len());
        for p in &self.wrap_with {
            let w = p.wrap_async(&dek, binding).await?;
            check_own(*p, &w)?;
            fresh.push(w);
        }
        drop(dek);
        let header = encode(h, &plan, &fresh, &cipher, &self.options.limits)?;
        Ok((header, cipher))
    }
}

/// The options a [`Rewrapper`] and an [`AsyncRewrapper`] share.
#[derive(Clone, Debug, Default)]
struct Options<'p> {
    remove: Vec<&'p dyn ProviderIdentity>,
    keep: Keep,
    limits: Limits,
    strict_context: bool,
    verify_payload: bool,
}

/// What a rewrap will write, decided from the header's routing alone, before
/// any provider is called.
struct Plan<'a> {
    /// The reconciled binding (the new wraps are bound to it too).
    binding_bytes: crate::context::BindingBytes,
    /// Old entries that go into the new header, in header order.
    kept: Vec<WrappedEntry<'a>>,
}

/// Reconciles the context and selects the kept entries; refuses a rewrap
/// whose result could not be written (no entry left, too many entries).
fn plan<'a, U: ProviderIdentity + ?Sized>(
    h: &Header<'a>,
    context: &EncryptionContext,
    unwrap_with: &[&U],
    new_wraps: usize,
    options: &Options<'_>,
) -> Result<Plan<'a>, Error> {
    let binding_bytes = context.reconcile(h.context, h.suite, options.strict_context)?;
    let keeps = |w: WrappedKeyRef<'_>| {
        if options.remove.iter().any(|p| p.matches(w)) {
            return false;
        }
        match options.keep {
            Keep::All => true,
            Keep::Nothing => false,
            Keep::Unmatched => !unwrap_with.iter().any(|p| p.matches(w)),
        }
    };
    let kept: Vec<WrappedEntry<'a>> = h.wrapped.iter().filter(|w| keeps(entry_ref(*w))).collect();
    let count = kept.len().saturating_add(new_wraps);
    if count == 0 {
        return Err(Error::InvalidArgument {
            what: "a rewrap must leave at least one wrapped key",
        });
    }
    let max_wrapped = options.limits.max_wrapped_keys().min(usize::from(u8::MAX));
    if count > max_wrapped {
        return Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: max_wrapped,
        });
    }
    Ok(Plan { binding_bytes, kept })
}

/// As when sealing: a wrapped key its own provider would not try to open is
/// a provider bug.
fn check_own<P: ProviderIdentity + ?Sized>(provider: &P, w: &WrappedKey) -> Result<(), Error> {
    if provider.matches(w.as_ref()) {
        Ok(())
    } else {
        Err(Error::Provider(ProviderError::new(
            ProviderErrorKind::Other,
            provider.provider_id(),
        )))
    }
}

/// Encodes the new header: everything before the wrapped-key count copied
/// as received (it was authenticated: magic through commitment), the new
/// entries, the kept ones, and the header tag.
fn encode(
    h: &Header<'_>,
    plan: &Plan<'_>,
    fresh: &[WrappedKey],
    cipher: &PayloadCipher,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let inconsistent = Error::Malformed {
        offset: 0,
        what: "inconsistent header",
    };
    let old_entries = h.wrapped.iter().fold(0usize, |acc, w| {
        acc.saturating_add(format::wrapped_entry_len(w.provider_id, w.key_id, w.bytes))
    });
    let prefix_len = h
        .authenticated
        .len()
        .checked_sub(old_entries)
        .and_then(|n| n.checked_sub(1));
    let prefix = prefix_len.and_then(|n| h.authenticated.get(..n)).ok_or(inconsistent)?;
    let entries = || {
        fresh
            .iter()
            .map(WrappedKey::as_ref)
            .chain(plan.kept.iter().map(|w| entry_ref(*w)))
    };
    let header_len = entries().fold(prefix.len().saturating_add(1).saturating_add(TAG_LEN), |acc, w| {
        acc.saturating_add(format::wrapped_entry_len(w.provider_id, w.key_id, w.bytes))
    });
    if header_len > limits.max_header_len() {
        return Err(Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            max: limits.max_header_len(),
        });
    }
    let mut out = Vec::with_capacity(header_len);
    out.put(prefix);
    // At most 255 entries: checked by `plan`.
    out.put_u8(u8::try_from(fresh.len().saturating_add(plan.kept.len())).unwrap_or(u8::MAX));
    for w in entries() {
        format::put_wrapped_entry(&mut out, w.provider_id, w.key_id, w.key_version.0, w.bytes);
    }
    let tag = cipher.header_tag(&out)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn entry_ref(w: WrappedEntry<'_>) -> WrappedKeyRef<'_> {
    WrappedKeyRef {
        provider_id: w.provider_id,
        key_id: w.key_id,
        key_version: KeyVersion(w.key_version),
        bytes: w.bytes,
    }
}

/// Checks that `dek` is the envelope's data key (the commitment, in constant
/// time) and then the header tag. `Ok(None)`: another data key (try the next
/// entry); `Err`: the header did not authenticate (final).
fn verify_dek(h: &Header<'_>, dek: DataKey) -> Result<Option<(DataKey, PayloadCipher)>, Error> {
    let keys = crypto::derive(h.suite, crate::Backend::default(), dek.expose_secret(), h.message_id);
    if !crypto::commitment_matches(&keys.commitment, h.commitment) {
        return Ok(None);
    }
    keys.cipher.verify_header_tag(h.authenticated, h.tag)?;
    Ok(Some((dek, keys.cipher)))
}

/// Unwraps the data key as an [`Opener`] does (header order, then provider
/// order, only matching providers), checks the commitment and the header tag,
/// and returns the data key with the payload cipher.
fn unwrap_verified(
    providers: &[&dyn KeyEncryptionProvider],
    h: &Header<'_>,
    binding: Binding<'_>,
) -> Result<(DataKey, PayloadCipher), Error> {
    let mut attempts = 0usize;
    let mut last: Option<ProviderError> = None;
    let mut wrong_key = false;
    for w in h.wrapped.iter().map(entry_ref) {
        for p in providers.iter().filter(|p| p.matches(w)) {
            attempts = attempts.saturating_add(1);
            match p.unwrap(w, binding) {
                Ok(dek) => match verify_dek(h, dek)? {
                    Some(found) => return Ok(found),
                    None => wrong_key = true,
                },
                Err(e) => last = Some(e),
            }
        }
    }
    if wrong_key {
        return Err(Error::Authentication);
    }
    Err(Error::NoProviderCouldUnwrap { attempts, source: last })
}

/// [`unwrap_verified`] with the unwraps awaited.
async fn unwrap_verified_async(
    providers: &[&dyn AsyncKeyEncryptionProvider],
    h: &Header<'_>,
    binding: Binding<'_>,
) -> Result<(DataKey, PayloadCipher), Error> {
    let mut attempts = 0usize;
    let mut last: Option<ProviderError> = None;
    let mut wrong_key = false;
    for w in h.wrapped.iter().map(entry_ref) {
        for p in providers.iter().filter(|p| p.matches(w)) {
            attempts = attempts.saturating_add(1);
            match p.unwrap_async(w, binding).await {
                Ok(dek) => match verify_dek(h, dek)? {
                    Some(found) => return Ok(found),
                    None => wrong_key = true,
                },
                Err(e) => last = Some(e),
            }
        }
    }
    if wrong_key {
        return Err(Error::Authentication);
    }
    Err(Error::NoProviderCouldUnwrap { attempts, source: last })
}

/// Verifies every segment tag of `payload` into a zeroized scratch buffer.
fn verify_segments(cipher: &PayloadCipher, segs: Segments, payload: &[u8]) -> Result<(), Error> {
    let stride = segs.size.saturating_add(TAG_LEN);
    let mut scratch = Zeroizing::new(Vec::new());
    scratch
        .try_reserve_exact(segs.size.min(payload.len()))
        .map_err(|_| Error::InvalidArgument {
            what: "segment too large to allocate",
        })?;
    for (i, chunk) in payload.chunks(stride).enumerate() {
        let last = i.saturating_add(1) == segs.count;
        verify_segment(cipher, i, last, segs.len_of(i), chunk, &mut scratch)?;
    }
    Ok(())
}

/// Verifies one segment (`chunk` = ciphertext of `ct_len` bytes, then tag).
fn verify_segment(
    cipher: &PayloadCipher,
    index: usize,
    last: bool,
    ct_len: usize,
    chunk: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), Error> {
    let (ct, tag) = chunk.split_at_checked(ct_len).ok_or(Error::Authentication)?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Authentication)?;
    let index = u32::try_from(index).map_err(|_| Error::Authentication)?;
    scratch.clear();
    scratch.resize(ct.len(), 0);
    let r = cipher.open_segment(index, last, ct, scratch, tag);
    scratch.zeroize();
    r
}

/// Re-encrypts envelopes: opens each (fully authenticated) with an
/// [`Opener`] and seals the plaintext again with a [`Sealer`], under a new
/// data key and message id. See
/// [Rewrap or re-encrypt?](Rewrapper#rewrap-or-re-encrypt) for when to prefer
/// it over rewrap.
///
/// The new envelope has the same encryption context, required entries staying
/// required; its suite, segment size and providers are the sealer's. The
/// intermediate plaintext is zeroized.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::{EncryptionContext, LocalKek, Opener, Reencryptor, Sealer};
/// let old = LocalKek::generate()?;
/// let new = LocalKek::generate()?;
/// let ctx = EncryptionContext::new().with("app", "billing")?;
/// let env = lockbox::seal(&old, b"secret", &ctx)?;
/// let fresh = Reencryptor::new(Opener::new(&old), Sealer::new(&new)).reencrypt(&env, &ctx)?;
/// assert_ne!(lockbox::inspect(&fresh)?.message_id(), lockbox::inspect(&env)?.message_id());
/// assert_eq!(lockbox::open(&new, &fresh, &ctx)?, b"secret");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Reencryptor<'p> {
    opener: Opener<'p>,
    sealer: Sealer<'p>,
}

impl<'p> Reencryptor<'p> {
    /// Opens with `opener` (its providers, limits and context strictness) and
    /// seals with `sealer` (its providers, suite, segment size and limits).
    pub fn new(opener: Opener<'p>, sealer: Sealer<'p>) -> Self {
        Self { opener, sealer }
    }

    /// Re-encrypts `envelope` into a new envelope. `context` is what opening
    /// it needs (required entries); the new envelope gets the old one's whole
    /// context.
    pub fn reencrypt(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut plaintext = Zeroizing::new(Vec::new());
        self.opener.open_to(envelope, context, &mut plaintext)?;
        // The open accepted it under the opener's limits; parse it again
        // for its context without them.
        let (h, _) = format::parse(envelope, &accepted())?;
        let full = full_context(&h, context)?;
        self.sealer.seal(&plaintext, &full)
    }

    /// Re-encrypts every envelope of a batch, each with its own context. A
    /// failed item never stops the others; the results are in input order,
    /// and the inputs are not modified.
    pub fn reencrypt_batch<'a, I>(&self, items: I) -> Vec<Result<Vec<u8>, Error>>
    where
        I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    {
        items.into_iter().map(|(env, ctx)| self.reencrypt(env, ctx)).collect()
    }
}

/// Limits that accept any header the format allows: only for re-parsing an
/// envelope that was already accepted under the caller's limits.
fn accepted() -> Limits {
    Limits::default()
        .with_max_header_len(usize::MAX)
        .with_max_wrapped_keys(usize::MAX)
        .with_max_context_entries(usize::MAX)
        .with_max_context_bytes(usize::MAX)
        .with_max_segment_size(usize::MAX)
}

#[cfg(feature = "std")]
mod io {
    //! The streaming variants (`std::io`).

    use std::io::{self, Read, Write};
    use std::vec::Vec;

    use zeroize::Zeroizing;

    use super::{Reencryptor, Rewrapper, full_context, verify_segment};
    use crate::error::{Error, LimitKind};
    use crate::format::{self, Limits, TAG_LEN};
    use crate::stream::{frame_segment, io_error};

    /// Reads into `buf` until it holds `want` bytes or the reader ends;
    /// returns whether it ended.
    fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        while buf.len() < want {
            let n = want.saturating_sub(buf.len()).min(chunk.len());
            match reader.read(chunk.get_mut(..n).unwrap_or_default()) {
                Ok(0) => return Ok(true),
                Ok(k) => buf.extend_from_slice(chunk.get(..k).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Reads from `reader` until `buf` holds a whole header (and possibly the
    /// start of the payload), growing geometrically, never past one byte
    /// more than the header limit.
    fn read_header<R: Read>(reader: &mut R, limits: &Limits) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut eof = false;
        loop {
            match format::parse(&buf, limits) {
                Ok(_) => return Ok(buf),
                Err(Error::Malformed { what: "truncated", .. }) if !eof => {
                    let want = buf
                        .len()
                        .saturating_mul(2)
                        .max(256)
                        .min(limits.max_header_len().saturating_add(1));
                    if want <= buf.len() {
                        return Err(io_error(Error::LimitExceeded {
                            limit: LimitKind::HeaderBytes,
                            max: limits.max_header_len(),
                        }));
                    }
                    eof = fill(reader, &mut buf, want)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    impl Rewrapper<'_> {
        /// Rewraps the envelope read from `reader` into `writer`: reads the
        /// header (at most the header limit), writes the new header, then
        /// copies the payload one segment at a time, checking its framing
        /// (and, with [`verify_payload`](Self::verify_payload), each
        /// segment's tag before writing it). Memory stays at one header plus
        /// one segment whatever the envelope's size. Returns the number of
        /// bytes written.
        ///
        /// Nothing is written before the old header has authenticated and the
        /// new one is complete. A failure later (truncated or malformed
        /// payload, a bad segment tag with `verify_payload`, I/O) leaves a
        /// partial output: write to a temporary file and rename it into place
        /// only on success. Errors are `io::Error`s wrapping a
        /// [`lockbox::Error`](crate::Error) where lockbox found the fault.
        pub fn rewrap_stream<R: Read, W: Write>(
            &self,
            mut reader: R,
            mut writer: W,
            context: &crate::EncryptionContext,
        ) -> io::Result<u64> {
            let buf = read_header(&mut reader, &self.options.limits)?;
            let (h, rest) = format::parse(&buf, &self.options.limits).map_err(io_error)?;
            let (header, cipher) = self.new_header(&h, context).map_err(io_error)?;
            let segment = h.segment_size.bytes();
            let stride = segment.saturating_add(TAG_LEN);
            let mut pending: Vec<u8> = Vec::with_capacity(stride.saturating_add(1).max(rest.len()));
            pending.extend_from_slice(rest);
            drop(buf);
            writer.write_all(&header)?;
            let mut written = u64::try_from(header.len()).unwrap_or(u64::MAX);
            let mut scratch = Zeroizing::new(Vec::new());
            let mut index = 0usize;
            loop {
                let eof = fill(&mut reader, &mut pending, stride.saturating_add(1))?;
                let (ct_len, last) =
                    frame_segment(pending.len(), eof, segment, u64::try_from(index).unwrap_or(u64::MAX))
                        .map_err(io_error)?;
                let seg_len = ct_len.saturating_add(TAG_LEN);
                let chunk = pending.get(..seg_len).ok_or_else(|| {
                    io_error(Error::Malformed {
                        offset: 0,
                        what: "truncated payload",
                    })
                })?;
                if self.options.verify_payload {
                    verify_segment(&cipher, index, last, ct_len, chunk, &mut scratch).map_err(io_error)?;
                }
                writer.write_all(chunk)?;
                written = written.saturating_add(u64::try_from(seg_len).unwrap_or(u64::MAX));
                pending.drain(..seg_len);
                if last {
                    break;
                }
                index = index
                    .checked_add(1)
                    .filter(|i| u32::try_from(*i).is_ok())
                    .ok_or_else(|| {
                        io_error(Error::Malformed {
                            offset: 0,
                            what: "more than 2^32 - 1 segments",
                        })
                    })?;
            }
            writer.flush()?;
            Ok(written)
        }
    }

    impl Reencryptor<'_> {
        /// Re-encrypts the envelope read from `reader` into `writer` through a
        /// [`Decryptor`](crate::Decryptor) and an [`Encryptor`](crate::Encryptor),
        /// one segment at a time, and returns the writer.
        ///
        /// Plaintext passes through a zeroized buffer. Output is written
        /// before the whole input has been verified; if the input turns out
        /// to be damaged the new envelope is left unfinished (its last segment
        /// is never written, so it never opens) and an error is returned:
        /// still write to a temporary file and rename it into place only on
        /// success.
        pub fn reencrypt_stream<R: Read, W: Write>(
            &self,
            mut reader: R,
            writer: W,
            context: &crate::EncryptionContext,
        ) -> io::Result<W> {
            let limits = *self.opener.limits_ref();
            let head = read_header(&mut reader, &limits)?;
            let full = {
                let (h, _) = format::parse(&head, &limits).map_err(io_error)?;
                full_context(&h, context).map_err(io_error)?
            };
            let mut dec = self.opener.decryptor(io::Cursor::new(head).chain(reader), context)?;
            let mut enc = self.sealer.encryptor(writer, &full)?;
            let mut buf = Zeroizing::new(std::vec![0u8; 64 * 1024]);
            loop {
                let n = match dec.read(buf.as_mut_slice()) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                enc.write_all(buf.get(..n).unwrap_or_default())?;
            }
            enc.finish()
        }
    }
}

/// Small tests of the whole rewrap path, sized for Miri (CI runs the unit
/// tests under it); `tests/rewrap.rs` covers the rest.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalKek, SegmentSize};

    #[test]
    fn rewrap_keeps_the_payload_and_authenticates_the_header_first() {
        let old = LocalKek::generate().unwrap();
        let new = LocalKek::generate().unwrap();
        let ctx = EncryptionContext::new().with_required("t", "x").unwrap();
        let env = Sealer::new(&old)
            .segment_size(SegmentSize::MIN)
            .seal(&[7u8; 70], &ctx)
            .unwrap();
        let rw = Rewrapper::new(&old).wrap_with(&new).verify_payload(true);
        let out = rw.rewrap(&env, &ctx).unwrap();
        let h = crate::inspect(&env).unwrap().header_len();
        assert_eq!(out.len(), env.len());
        assert_eq!(out.get(h..), env.get(h..));
        assert_eq!(crate::open(&new, &out, &ctx).unwrap(), [7u8; 70]);
        assert!(crate::open(&old, &out, &ctx).is_err());
        // A header byte, the header tag, a payload byte.
        for at in [9, h - 1, h + 3] {
            let mut bad = env.clone();
            bad[at] ^= 1;
            assert!(rw.rewrap(&bad, &ctx).is_err(), "byte {at}");
        }
        let fresh = Reencryptor::new(Opener::new(&old), Sealer::new(&new))
            .reencrypt(&env, &ctx)
            .unwrap();
        assert_eq!(crate::open(&new, &fresh, &ctx).unwrap(), [7u8; 70]);
    }
}
