//! Moving envelopes to new keys: rewrap ([`Rewrapper`], [`AsyncRewrapper`])
//! and re-encrypt ([`Reencryptor`], [`AsyncReencryptor`]), two different
//! operations; the comparison is in [`Rewrapper`]'s documentation. Each pair
//! is a blocking and an async driver over the same engine
//! ([`RewrapPlan`](crate::engine::rewrap::RewrapPlan) for rewrap; the
//! opener and sealer for re-encrypt), differing only in `.await`.

use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::engine::rewrap::{RewrapOptions, RewrapPlan, verify_segments};
use crate::error::Error;
use crate::format::{self, Header, Segments};
use crate::open::{AsyncOpener, Opener};
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider, ProviderIdentity};
use crate::seal::{AsyncSealer, Sealer};

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
/// context is reconciled as by [`Opener`] (exactly, by default: every entry,
/// stored or required, must be supplied; see `lenient_context`) and the new
/// wrapped keys are bound to the same binding. Required values
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
    pub(crate) options: RewrapOptions<'p>,
}

/// The async twin of [`Rewrapper`], for providers reached over the network
/// ([`AsyncKeyEncryptionProvider`]s: every sync provider is one too): the same
/// options, checks and output, with the unwraps and wraps awaited. Nothing
/// here starts or blocks on a runtime, and the futures are `Send`.
///
/// With the `tokio` feature, [`rewrap_stream`](Self::rewrap_stream) rewraps
/// an envelope read from an `AsyncRead` into an `AsyncWrite`.
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
    pub(crate) options: RewrapOptions<'p>,
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
    fn new(header: Vec<u8>, replaced_len: usize) -> Self {
        Self { header, replaced_len }
    }

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

/// The options of both rewrappers, written once.
macro_rules! rewrapper_options {
    ($rewrapper:ident, $provider:ident) => {
        impl<'p> $rewrapper<'p> {
            /// A rewrapper that unwraps data keys with `unwrap_with` and, unless
            /// told otherwise with `wrap_with`, wraps them again with the same
            /// provider (a keyring wraps with its current primary version).
            pub fn new(unwrap_with: &'p dyn $provider) -> Self {
                Self {
                    unwrap_with: alloc::vec![unwrap_with],
                    wrap_with: alloc::vec![unwrap_with],
                    options: RewrapOptions::default(),
                }
            }

            /// Also tries `provider` to unwrap (after the earlier ones, for each
            /// wrapped key), as an opener's `also_try` does. It is part of the
            /// unwrap side: with the default [`Keep::Unmatched`] its entries are
            /// replaced, so wrap with it again (`also_wrap_with`) or use
            /// [`Keep::All`] if they must stay.
            #[must_use]
            pub fn also_try(mut self, provider: &'p dyn $provider) -> Self {
                self.unwrap_with.push(provider);
                self
            }

            /// Wraps the data key with `provider` only, replacing the default
            /// (the provider given to `new`) and any earlier choice.
            #[must_use]
            pub fn wrap_with(mut self, provider: &'p dyn $provider) -> Self {
                self.wrap_with.clear();
                self.wrap_with.push(provider);
                self
            }

            /// Also wraps the data key with `provider`, after the others.
            #[must_use]
            pub fn also_wrap_with(mut self, provider: &'p dyn $provider) -> Self {
                self.wrap_with.push(provider);
                self
            }

            /// Wraps with no provider at all: the new header holds only the kept
            /// entries (use with [`Keep::All`] and `remove_entries_of` to remove
            /// a provider without re-wrapping the others).
            #[must_use]
            pub fn no_new_wraps(mut self) -> Self {
                self.wrap_with.clear();
                self
            }

            /// The wrap providers, in order (the secrets files verify each).
            #[cfg(feature = "secrets")]
            pub(crate) fn wrap_providers(&self) -> &[&'p dyn $provider] {
                &self.wrap_with
            }

            /// Chooses which existing entries are kept (default [`Keep::Unmatched`]).
            #[must_use]
            pub fn keep(mut self, keep: Keep) -> Self {
                self.options.keep = keep;
                self
            }

            /// Drops every existing entry that `provider`
            /// [matches](ProviderIdentity::matches), whatever [`Keep`] says. The
            /// provider is never asked to unwrap or wrap.
            #[must_use]
            pub fn remove_entries_of(mut self, provider: &'p dyn ProviderIdentity) -> Self {
                self.options.remove.push(provider);
                self
            }

            /// Requires the caller's context to name every entry of the
            /// envelope's context, as an opener's `strict_context` does.
            /// **This is the default**; the method undoes `lenient_context`.
            #[must_use]
            pub fn strict_context(mut self) -> Self {
                self.options.open.strict_context = true;
                self
            }

            /// Accepts stored context entries the caller leaves out, as an
            /// opener's `lenient_context` does (for a migration that moves
            /// every envelope whatever its stored context): the new envelope
            /// keeps the whole context, and required entries must still be
            /// supplied.
            #[must_use]
            pub fn lenient_context(mut self) -> Self {
                self.options.open.strict_context = false;
                self
            }

            /// Also verifies every payload segment's tag before producing
            /// anything (the plaintext goes to a one-segment scratch buffer that
            /// is zeroized and never released). This costs as much as an open;
            /// without it rewrap costs only the header. Ignored by
            /// `rewrap_header`, which never sees the payload. In `rewrap_stream`
            /// each segment is verified before it is written.
            #[must_use]
            pub fn verify_payload(mut self, verify: bool) -> Self {
                self.options.verify_payload = verify;
                self
            }
        }
        crate::options::shared_options!($rewrapper, options.open);
        crate::pq::mix_option!($rewrapper, options.allow_classical_with_pq);
    };
}

rewrapper_options!(Rewrapper, KeyEncryptionProvider);
rewrapper_options!(AsyncRewrapper, AsyncKeyEncryptionProvider);

/// The new envelope: `header` followed by the unchanged payload, after
/// verifying the payload if asked to.
fn rewrapped(
    header: &[u8],
    cipher: &PayloadCipher,
    segs: Segments,
    payload: &[u8],
    options: &RewrapOptions<'_>,
) -> Result<Vec<u8>, Error> {
    if options.verify_payload {
        verify_segments(cipher, segs, payload)?;
    }
    let mut out = Vec::new();
    out.try_reserve_exact(header.len().saturating_add(payload.len()))
        .map_err(|_| Error::InvalidArgument {
            what: "envelope too large to allocate",
        })?;
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    Ok(out)
}

/// A new header (tag included) and the payload cipher it was tagged with.
pub(crate) type Rewrapped = (Vec<u8>, PayloadCipher);

/// Runs `f` on each item of an async batch, one after the other, keeping every
/// result in input order.
async fn one_by_one<'a, I, F, Fut>(items: I, f: F) -> Vec<Result<Vec<u8>, Error>>
where
    I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    F: Fn(&'a [u8], &'a EncryptionContext) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, Error>>,
{
    let mut out = Vec::new();
    for (env, ctx) in items {
        out.push(f(env, ctx).await);
    }
    out
}

/// A complete envelope's header, payload and segmentation.
fn parse<'e>(envelope: &'e [u8], options: &RewrapOptions<'_>) -> Result<(Header<'e>, &'e [u8], Segments), Error> {
    let (h, payload) = format::parse(envelope, &options.open.limits)?;
    let segs = Segments::for_payload(payload.len(), h.segment_size(), h.len())?;
    Ok((h, payload, segs))
}

impl<'p> Rewrapper<'p> {
    /// Rewraps `envelope` into a new buffer: the new header followed by the
    /// unchanged payload. On any error nothing is produced.
    pub fn rewrap(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (h, payload, segs) = parse(envelope, &self.options)?;
        let (header, cipher) = self.new_header(h, context)?;
        rewrapped(&header, &cipher, segs, payload, &self.options)
    }

    /// Rewraps only the header: `header_prefix` starts at the envelope's first
    /// byte and holds at least its whole header (anything after it is
    /// ignored). Write [`NewHeader::header`] followed by the envelope's bytes
    /// from [`NewHeader::replaced_len`] on. The payload is not examined, so
    /// its framing is not checked either; [`rewrap`](Self::rewrap) and
    /// [`rewrap_stream`](Self::rewrap_stream) check it.
    pub fn rewrap_header(&self, header_prefix: &[u8], context: &EncryptionContext) -> Result<NewHeader, Error> {
        let (h, _) = format::parse(header_prefix, &self.options.open.limits)?;
        let (header, _) = self.new_header(h, context)?;
        Ok(NewHeader::new(header, h.len()))
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

    /// The key phase: unwrap and authenticate, wrap anew, encode the new
    /// header (see [`RewrapPlan`]).
    pub(crate) fn new_header(&self, h: Header<'_>, context: &EncryptionContext) -> Result<Rewrapped, Error> {
        let mut r = RewrapPlan::new(h, context, &self.unwrap_with, &self.wrap_with, &self.options)?;
        while let Some((w, p)) = r.next_unwrap() {
            r.offer(p.unwrap(w, r.binding()))?;
        }
        while let Some(p) = r.next_wrapper()? {
            r.wrapped(p.wrap(r.dek(), r.binding())?)?;
        }
        r.finish()
    }
}

impl<'p> AsyncRewrapper<'p> {
    /// See [`Rewrapper::rewrap`].
    pub async fn rewrap(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (h, payload, segs) = parse(envelope, &self.options)?;
        let (header, cipher) = self.new_header(h, context).await?;
        rewrapped(&header, &cipher, segs, payload, &self.options)
    }

    /// See [`Rewrapper::rewrap_header`].
    pub async fn rewrap_header(&self, header_prefix: &[u8], context: &EncryptionContext) -> Result<NewHeader, Error> {
        let (h, _) = format::parse(header_prefix, &self.options.open.limits)?;
        let (header, _) = self.new_header(h, context).await?;
        Ok(NewHeader::new(header, h.len()))
    }

    /// See [`Rewrapper::rewrap_batch`]. The items are rewrapped one after
    /// the other.
    pub async fn rewrap_batch<'a, I>(&self, items: I) -> Vec<Result<Vec<u8>, Error>>
    where
        I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    {
        one_by_one(items, |env, ctx| self.rewrap(env, ctx)).await
    }

    /// The key phase, awaited: see [`Rewrapper`]'s.
    pub(crate) async fn new_header(&self, h: Header<'_>, context: &EncryptionContext) -> Result<Rewrapped, Error> {
        let mut r = RewrapPlan::new(h, context, &self.unwrap_with, &self.wrap_with, &self.options)?;
        while let Some((w, p)) = r.next_unwrap() {
            r.offer(p.unwrap_async(w, r.binding()).await)?;
        }
        while let Some(p) = r.next_wrapper()? {
            r.wrapped(p.wrap_async(r.dek(), r.binding()).await?)?;
        }
        r.finish()
    }
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

/// Re-encrypts envelopes with async providers: [`Reencryptor`] with an
/// [`AsyncOpener`] and an [`AsyncSealer`], the provider calls awaited.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use lockbox::{AsyncOpener, AsyncReencryptor, AsyncSealer, EncryptionContext, LocalKek};
/// let old = LocalKek::generate()?;
/// let new = LocalKek::generate()?; // say, a KMS key behind an async client
/// let ctx = EncryptionContext::new().with("app", "billing")?;
/// let env = lockbox::seal(&old, b"secret", &ctx)?;
/// let r = AsyncReencryptor::new(AsyncOpener::new(&old), AsyncSealer::new(&new));
/// let fresh = r.reencrypt(&env, &ctx).await?;
/// assert_eq!(lockbox::open(&new, &fresh, &ctx)?, b"secret");
/// # Ok(()) })
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncReencryptor<'p> {
    opener: AsyncOpener<'p>,
    sealer: AsyncSealer<'p>,
}

impl<'p> Reencryptor<'p> {
    /// The opener and the sealer.
    #[cfg(feature = "std")]
    pub(crate) fn parts(&self) -> (&Opener<'p>, &Sealer<'p>) {
        (&self.opener, &self.sealer)
    }

    /// Opens with `opener` (its providers, limits and context strictness) and
    /// seals with `sealer` (its providers, suite, segment size and limits).
    pub fn new(opener: Opener<'p>, sealer: Sealer<'p>) -> Self {
        Self { opener, sealer }
    }

    /// Re-encrypts `envelope` into a new envelope. `context` is what opening
    /// it needs (required entries); the new envelope gets the old one's whole
    /// context. The intermediate plaintext is zeroized.
    pub fn reencrypt(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (plaintext, full) = self.opener.open_with_context(envelope, context)?;
        self.sealer.seal(&Zeroizing::new(plaintext), &full)
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

impl<'p> AsyncReencryptor<'p> {
    /// See [`Reencryptor::new`].
    pub fn new(opener: AsyncOpener<'p>, sealer: AsyncSealer<'p>) -> Self {
        Self { opener, sealer }
    }

    /// See [`Reencryptor::reencrypt`].
    pub async fn reencrypt(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let (plaintext, full) = self.opener.open_with_context(envelope, context).await?;
        let plaintext = Zeroizing::new(plaintext);
        self.sealer.seal(&plaintext, &full).await
    }

    /// See [`Reencryptor::reencrypt_batch`]. The items are re-encrypted one
    /// after the other.
    pub async fn reencrypt_batch<'a, I>(&self, items: I) -> Vec<Result<Vec<u8>, Error>>
    where
        I: IntoIterator<Item = (&'a [u8], &'a EncryptionContext)>,
    {
        one_by_one(items, |env, ctx| self.reencrypt(env, ctx)).await
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
