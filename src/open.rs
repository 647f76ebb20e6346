//! Opening: [`open`], [`Opener`] (blocking providers) and [`AsyncOpener`]
//! (async providers), side by side. Both are thin drivers over the engine's
//! [`Unlock`](crate::engine::open::Unlock): they differ only in `.await`.

use alloc::vec::Vec;
use core::fmt;

use crate::audit::EnvelopeAudit;
use crate::audit::EnvelopeOperation::Open;
#[cfg(feature = "std")]
use crate::audit::EnvelopeOperation::OpenStream;
use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::engine::open::{
    OpenOptions, Unlock, full_context, open_in_place, open_payload, open_payload_into, plaintext_dst,
};
use crate::error::Error;
use crate::format::{self, Header, Segments};
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};

/// Opens an envelope with one provider and the default limits.
///
/// `context` must be the envelope's whole context: every entry it was sealed
/// with, stored or [required](crate::Storage::Required), with its value, and
/// nothing else (how the caller labels its entries does not matter). An
/// envelope whose context has an entry the caller did not name fails with
/// [`Error::MissingContext`], one the caller named with another value or
/// that the envelope lacks with [`Error::ContextMismatch`]: a record sealed
/// for another tenant is not accepted because the entries the caller checks
/// happen to match. To accept stored entries the caller does not know in
/// advance, use [`Opener::lenient_context`] with
/// [`Opener::open_with_context`], which returns them for the caller to check.
/// Plaintext is returned only if everything authenticated: on any failure
/// nothing is released. See [`Opener`], and [`AsyncOpener`] for providers
/// reached over a network.
pub fn open(
    provider: &dyn KeyEncryptionProvider,
    envelope: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, Error> {
    Opener::new(provider).open(envelope, context)
}

/// Opens envelopes with chosen limits, unwrapping with blocking
/// [`KeyEncryptionProvider`]s.
///
/// Opening checks, in order: the header's structure and limits; the caller's
/// context against the header, exactly by default (missing or mismatched
/// entries are reported by key; see [`lenient_context`](Self::lenient_context));
/// unwrapping the data key with the first matching wrapped key that a
/// provider can open; the key commitment (constant time); the header tag; then
/// each segment's tag before that segment is decrypted. Plaintext is released
/// only when every check passed.
#[derive(Clone)]
pub struct Opener<'p> {
    providers: Vec<&'p dyn KeyEncryptionProvider>,
    opts: OpenOptions,
    audit: EnvelopeAudit<'p>,
}

/// Opens envelopes, unwrapping with [`AsyncKeyEncryptionProvider`]s (key
/// services reached over a network, and every blocking provider too).
///
/// The same options, checks, order and errors as [`Opener`]; only the
/// unwraps are awaited. The payload is decrypted inside the future, on the
/// thread polling it.
#[derive(Clone)]
pub struct AsyncOpener<'p> {
    providers: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    opts: OpenOptions,
    audit: EnvelopeAudit<'p>,
}

/// The options of both openers, written once.
macro_rules! opener_options {
    ($opener:ident, $provider:ident) => {
        impl fmt::Debug for $opener<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($opener))
                    .field("providers", &self.providers)
                    .field("limits", &self.opts.limits)
                    .finish_non_exhaustive()
            }
        }

        impl<'p> $opener<'p> {
            /// An opener unwrapping with `provider`, with default limits.
            pub fn new(provider: &'p dyn $provider) -> Self {
                Self {
                    providers: alloc::vec![provider],
                    opts: OpenOptions::default(),
                    audit: EnvelopeAudit::default(),
                }
            }

            /// Also tries `provider`. For each wrapped key, in header order,
            /// the providers that match it are tried in the order they were
            /// given.
            #[must_use]
            pub fn also_try(mut self, provider: &'p dyn $provider) -> Self {
                self.providers.push(provider);
                self
            }

            /// Requires the caller's context to name every entry of the
            /// envelope's context, stored ones included (with their values),
            /// so an envelope with any entry the caller did not expect fails
            /// with [`Error::MissingContext`]. **This is the default**; the
            /// method undoes [`lenient_context`](Self::lenient_context).
            #[must_use]
            pub fn strict_context(mut self) -> Self {
                self.opts.strict_context = true;
                self
            }

            /// Accepts stored context entries the caller leaves out, as the
            /// envelope has them (required entries must still be supplied,
            /// and every entry supplied must match). Whatever else the
            /// envelope's context says is then **not checked**: use
            /// `open_with_context` (or the stream header's `context()`) and
            /// check it before using the data, or a record sealed for another
            /// tenant may pass because the entries you named match.
            ///
            /// ```
            /// # fn main() -> Result<(), lockbox::Error> {
            /// use lockbox::{EncryptionContext, LocalKek, Opener};
            /// let kek = LocalKek::generate()?;
            /// let sealed = EncryptionContext::new().with("record", "42")?.with("tenant", "globex")?;
            /// let env = lockbox::seal(&kek, b"data", &sealed)?;
            /// let mine = EncryptionContext::new().with("record", "42")?;
            /// // Exact by default: the tenant entry was not named.
            /// assert!(lockbox::open(&kek, &env, &mine).is_err());
            /// // Lenient, and the whole context comes back to be checked.
            /// let (data, context) = Opener::new(&kek).lenient_context().open_with_context(&env, &mine)?;
            /// assert_eq!(context.get("tenant"), Some("globex")); // not "acme": refuse it
            /// # let _ = data;
            /// # Ok(()) }
            /// ```
            #[must_use]
            pub fn lenient_context(mut self) -> Self {
                self.opts.strict_context = false;
                self
            }
        }

        crate::options::shared_options!($opener, opts);
        crate::options::thread_option!($opener, opts);
        crate::options::audit_option!($opener, audit);
    };
}

opener_options!(Opener, KeyEncryptionProvider);
opener_options!(AsyncOpener, AsyncKeyEncryptionProvider);

/// A complete envelope's header, payload and segmentation.
fn parse<'e>(envelope: &'e [u8], opts: &OpenOptions) -> Result<(Header<'e>, &'e [u8], Segments), Error> {
    let (h, payload) = format::parse(envelope, &opts.limits)?;
    let segs = Segments::for_payload(payload.len(), h.segment_size(), h.len())?;
    Ok((h, payload, segs))
}

impl<'p> Opener<'p> {
    /// Opens `envelope` into a new buffer.
    pub fn open(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.open_to(envelope, context, &mut out)?;
        Ok(out)
    }

    /// Opens `envelope` and appends the plaintext to `out`. On error `out` is
    /// unchanged (anything written is zeroized first).
    pub fn open_to(&self, envelope: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let (probe, at) = (self.audit.probe(envelope, context, &self.opts.limits), out.len());
        let r = parse(envelope, &self.opts).and_then(|(h, payload, segs)| {
            self.unlock_then(h, context, |c| open_payload(&c, segs, payload, self.opts.threads, out))
        });
        self.audit.opened(probe, Open, out.len().checked_sub(at), &r);
        r
    }

    /// Opens `envelope` into the start of `out`, a buffer the caller owns
    /// (and may reuse across calls), and returns the plaintext length.
    ///
    /// `out` must hold the plaintext (the envelope's payload less one tag
    /// per segment): if it is shorter, this fails with
    /// [`Error::BufferTooSmall`] and the exact length, before any provider
    /// is called. On any error nothing is released: what was written to
    /// `out` is zeroized. No allocation, and every plaintext byte is written
    /// once (no zero-filling first, as growing a `Vec` needs).
    ///
    /// ```
    /// # fn main() -> Result<(), lockbox::Error> {
    /// use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};
    /// let kek = LocalKek::generate()?;
    /// let ctx = EncryptionContext::new();
    /// let mut sealed = vec![0u8; 4096]; // reused across calls
    /// let n = Sealer::new(&kek).seal_into(b"field value", &ctx, &mut sealed)?;
    /// let mut plain = vec![0u8; 1024];
    /// let m = Opener::new(&kek).open_into(&sealed[..n], &ctx, &mut plain)?;
    /// assert_eq!(&plain[..m], b"field value");
    /// # Ok(()) }
    /// ```
    pub fn open_into(&self, envelope: &[u8], context: &EncryptionContext, out: &mut [u8]) -> Result<usize, Error> {
        let probe = self.audit.probe(envelope, context, &self.opts.limits);
        let r = parse(envelope, &self.opts).and_then(|(h, payload, segs)| {
            let dst = plaintext_dst(segs, out)?;
            self.unlock_then(h, context, |c| {
                open_payload_into(&c, segs, payload, self.opts.threads, dst)
            })
        });
        self.audit.opened(probe, Open, r.as_ref().ok().copied(), &r);
        r
    }

    /// Opens `envelope` and also returns the whole authenticated context: the
    /// envelope's stored entries and the required ones the caller supplied.
    /// With [`lenient_context`](Self::lenient_context), decide on the data
    /// only after checking it.
    pub fn open_with_context(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, EncryptionContext), Error> {
        let probe = self.audit.probe(envelope, context, &self.opts.limits);
        let r = parse(envelope, &self.opts).and_then(|(h, payload, segs)| {
            let mut out = Vec::new();
            self.unlock_then(h, context, |c| {
                open_payload(&c, segs, payload, self.opts.threads, &mut out)
            })?;
            Ok((out, full_context(h.context(), context)?))
        });
        self.audit
            .opened(probe, Open, r.as_ref().map_or(None, |(p, _)| Some(p.len())), &r);
        r
    }

    /// Opens in place: `buf` holds the envelope before and the plaintext
    /// after. On error `buf` still holds the envelope, byte for byte: segments
    /// already decrypted are encrypted back (no plaintext is left behind).
    ///
    /// Costs: the plaintext is moved to the front of `buf` (one pass over
    /// it) after every segment authenticated. On the AWS-LC backend, which
    /// wipes a segment that fails to open, each segment is opened into a
    /// scratch buffer of one segment and copied back (one more pass, in
    /// cache): the scratch is `buf`'s spare capacity when it has one
    /// segment plus the header's length to spare (reserve that to avoid an
    /// allocation), else one allocation. [`open_into`](Self::open_into) a buffer of your own is
    /// the fastest way to open.
    pub fn open_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let probe = self.audit.probe(buf, context, &self.opts.limits);
        let unlocked =
            parse(buf, &self.opts).and_then(|(h, _, segs)| self.unlock_then(h, context, |c| Ok((c, segs, h.len()))));
        let r = unlocked.and_then(|(cipher, segs, header_len)| open_in_place(&cipher, segs, header_len, buf));
        self.audit.opened(probe, Open, Some(buf.len()), &r);
        r
    }

    /// Authenticates a header read from a stream and unwraps its payload key:
    /// hand the result to [`Decryptor::new`](crate::Decryptor::new) or
    /// `lockbox::tokio::Decryptor::new`. [`decryptor`](Self::decryptor) does
    /// both for a `std::io` reader.
    #[cfg(feature = "std")]
    pub fn unlock(&self, raw: crate::RawHeader, context: &EncryptionContext) -> Result<crate::UnlockedHeader, Error> {
        let probe = self.audit.probe(raw.bytes(), context, &self.opts.limits);
        let cipher = raw
            .header(&self.opts.limits)
            .and_then(|h| self.unlock_then(h, context, Ok));
        let r = cipher.and_then(|cipher| crate::UnlockedHeader::new(raw, cipher, context, &self.opts));
        self.audit.opened(probe, OpenStream, None, &r);
        r
    }

    /// The key phase (see [`Unlock`]), then `then` on the payload cipher in
    /// this frame (the cipher is not moved back up through the callers).
    fn unlock_then<T>(
        &self,
        h: Header<'_>,
        context: &EncryptionContext,
        then: impl FnOnce(PayloadCipher) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut u = Unlock::new(h, context, &self.providers, &self.opts, false)?;
        while let Some((w, p)) = u.next() {
            if let Some(cipher) = u.offer(p.unwrap(w, u.binding()))? {
                return then(cipher);
            }
        }
        Err(u.failure())
    }
}

impl<'p> AsyncOpener<'p> {
    /// Opens `envelope` into a new buffer; see [`Opener::open`].
    pub async fn open(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.open_to(envelope, context, &mut out).await?;
        Ok(out)
    }

    /// Opens `envelope` and appends the plaintext to `out`; see [`Opener::open_to`].
    pub async fn open_to(&self, envelope: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let (probe, at) = (self.audit.probe(envelope, context, &self.opts.limits), out.len());
        let r = self.open_to_inner(envelope, context, out).await;
        self.audit.opened(probe, Open, out.len().checked_sub(at), &r);
        r
    }

    async fn open_to_inner(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let (h, payload, segs) = parse(envelope, &self.opts)?;
        let cipher = self.unlock_cipher(h, context).await?;
        open_payload(&cipher, segs, payload, self.opts.threads, out)
    }

    /// Opens `envelope` into the start of `out`, a buffer the caller owns;
    /// see [`Opener::open_into`].
    pub async fn open_into(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let probe = self.audit.probe(envelope, context, &self.opts.limits);
        let r = self.open_into_inner(envelope, context, out).await;
        self.audit.opened(probe, Open, r.as_ref().ok().copied(), &r);
        r
    }

    async fn open_into_inner(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let (h, payload, segs) = parse(envelope, &self.opts)?;
        let dst = plaintext_dst(segs, out)?;
        let cipher = self.unlock_cipher(h, context).await?;
        open_payload_into(&cipher, segs, payload, self.opts.threads, dst)
    }

    /// Opens `envelope` and also returns the whole authenticated context; see
    /// [`Opener::open_with_context`].
    pub async fn open_with_context(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, EncryptionContext), Error> {
        let mut out = Vec::new();
        self.open_to(envelope, context, &mut out).await?;
        let (h, _, _) = parse(envelope, &self.opts)?;
        Ok((out, full_context(h.context(), context)?))
    }

    /// Opens in place; see [`Opener::open_in_place`].
    pub async fn open_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let probe = self.audit.probe(buf, context, &self.opts.limits);
        let r = self.open_in_place_inner(buf, context).await;
        self.audit.opened(probe, Open, Some(buf.len()), &r);
        r
    }

    async fn open_in_place_inner(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let (h, _, segs) = parse(buf, &self.opts)?;
        let header_len = h.len();
        let cipher = self.unlock_cipher(h, context).await?;
        open_in_place(&cipher, segs, header_len, buf)
    }

    /// Authenticates a header read from a stream and unwraps its payload key;
    /// see [`Opener::unlock`].
    #[cfg(feature = "std")]
    pub async fn unlock(
        &self,
        raw: crate::RawHeader,
        context: &EncryptionContext,
    ) -> Result<crate::UnlockedHeader, Error> {
        let probe = self.audit.probe(raw.bytes(), context, &self.opts.limits);
        let r = match raw.header(&self.opts.limits) {
            Ok(h) => self.unlock_cipher(h, context).await,
            Err(e) => Err(e),
        };
        let r = r.and_then(|cipher| crate::UnlockedHeader::new(raw, cipher, context, &self.opts));
        self.audit.opened(probe, OpenStream, None, &r);
        r
    }

    /// The key phase, awaited: see [`Unlock`].
    async fn unlock_cipher(&self, h: Header<'_>, context: &EncryptionContext) -> Result<PayloadCipher, Error> {
        let mut u = Unlock::new(h, context, &self.providers, &self.opts, false)?;
        while let Some((w, p)) = u.next() {
            // The awaited key lands in this future's state: copy it out and
            // let it drop (zeroized) where it lies, never move it out.
            let offered = {
                let unwrapped = p.unwrap_async(w, u.binding()).await;
                match unwrapped {
                    Ok(ref k) => Ok(k.duplicate()),
                    Err(e) => Err(e),
                }
            };
            if let Some(cipher) = u.offer(offered)? {
                return Ok(cipher);
            }
        }
        Err(u.failure())
    }
}

/// Small, fast tests of the whole seal/open path, sized for Miri (CI runs
/// the unit tests under it); the integration tests cover sizes and limits.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalKek, Sealer, SegmentSize, Suite};

    fn ctx() -> EncryptionContext {
        EncryptionContext::new()
            .with("a", "1")
            .unwrap()
            .with_required("t", "x")
            .unwrap()
    }

    #[test]
    fn round_trips_and_rejections_through_every_path() {
        let kek = LocalKek::generate().unwrap();
        for suite in Suite::ALL {
            let sealer = Sealer::new(&kek).suite(suite).segment_size(SegmentSize::MIN);
            let opener = Opener::new(&kek);
            // Under Miri (software AES, interpreted) fewer sizes keep CI fast.
            let lens: &[usize] = if cfg!(miri) { &[0, 65] } else { &[0, 1, 64, 65] };
            for &len in lens {
                let pt: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
                let env = sealer.seal(&pt, &ctx()).unwrap();
                assert_eq!(opener.open(&env, &ctx()).unwrap(), pt);
                let mut buf = pt.clone();
                sealer.seal_in_place(&mut buf, &ctx()).unwrap();
                opener.open_in_place(&mut buf, &ctx()).unwrap();
                assert_eq!(buf, pt);
                // The last byte of the last tag, a payload byte, a header byte.
                for at in [env.len() - 1, env.len() - 17, 9] {
                    let mut bad = env.clone();
                    bad[at] ^= 1;
                    assert!(opener.open(&bad, &ctx()).is_err());
                    let mut copy = bad.clone();
                    assert!(opener.open_in_place(&mut copy, &ctx()).is_err());
                    assert_eq!(copy, bad);
                }
                assert!(opener.open(&env[..env.len() - 1], &ctx()).is_err());
            }
        }
    }
}
