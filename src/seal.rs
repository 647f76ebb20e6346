//! Sealing: [`seal`], [`Sealer`] (blocking providers) and [`AsyncSealer`]
//! (async providers), side by side. Both are thin drivers over the engine's
//! [`SealPlan`](crate::engine::seal::SealPlan): they differ only in `.await`.

#[cfg(feature = "std")]
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;

use crate::audit::EnvelopeAudit;
use crate::audit::EnvelopeOperation::Seal;
#[cfg(feature = "std")]
use crate::audit::EnvelopeOperation::SealStream;
use crate::context::EncryptionContext;
#[cfg(feature = "std")]
use crate::crypto::PayloadCipher;
pub use crate::engine::seal::WrapFailure;
use crate::engine::seal::{Prepared, SealOptions, SealPlan};
use crate::error::Error;
use crate::format::SegmentSize;
use crate::keys::{os_random, rng_random};
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};
use crate::suite::Suite;

/// Seals plaintext into an envelope under one provider, with the default
/// suite (AES-256-GCM), segment size (64 KiB) and limits.
///
/// A fresh data key and message id are drawn from the OS CSPRNG, the data key
/// is wrapped by `provider` bound to `context`, and zeroized before this
/// returns. See [`Sealer`] for the options and the in-place variants, and
/// [`AsyncSealer`] for providers reached over a network.
pub fn seal(
    provider: &dyn KeyEncryptionProvider,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, Error> {
    Sealer::new(provider).seal(plaintext, context)
}

/// Seals envelopes with chosen options, wrapping each data key with blocking
/// [`KeyEncryptionProvider`]s (local keys, keyrings, HSMs).
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::{EncryptionContext, LocalKek, Opener, SegmentSize, Sealer, Suite};
/// let kek = LocalKek::generate()?;
/// let recovery = LocalKek::generate()?; // say, an offline disaster-recovery key
/// let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
/// let sealer = Sealer::new(&kek)
///     .also_wrap_with(&recovery)
///     .suite(Suite::ChaCha20Poly1305)
///     .segment_size(SegmentSize::new(16 * 1024)?);
///
/// // In place: the buffer holds the plaintext before and the envelope after.
/// let mut buf = b"attack at dawn".to_vec();
/// sealer.seal_in_place(&mut buf, &ctx)?;
/// // Either key opens it.
/// assert_eq!(Opener::new(&recovery).open(&buf, &ctx)?, b"attack at dawn");
/// Opener::new(&kek).open_in_place(&mut buf, &ctx)?;
/// assert_eq!(buf, b"attack at dawn");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Sealer<'p> {
    /// The first wraps (or generates) the data key; the others wrap it too.
    providers: Vec<&'p dyn KeyEncryptionProvider>,
    opts: SealOptions,
    audit: EnvelopeAudit<'p>,
}

/// Seals envelopes with chosen options, wrapping each data key with
/// [`AsyncKeyEncryptionProvider`]s: key services reached over a network (AWS
/// KMS, Vault / OpenBao), and every blocking provider too.
///
/// The same options, checks and bytes as [`Sealer`] (given the same
/// randomness); only the provider calls are awaited. The payload is
/// encrypted inside the future, on the thread polling it. Nothing here
/// starts a runtime or blocks on one, and every future is `Send`.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use lockbox::{AsyncOpener, AsyncSealer, EncryptionContext, LocalKek};
/// // Any provider works (every blocking one is async too); a KMS client
/// // would be an async-only provider.
/// let kek = LocalKek::generate()?;
/// let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
/// let envelope = AsyncSealer::new(&kek).seal(b"over the network", &ctx).await?;
/// let plaintext = AsyncOpener::new(&kek).open(&envelope, &ctx).await?;
/// assert_eq!(plaintext, b"over the network");
/// // The blocking opener reads it too.
/// assert_eq!(lockbox::open(&kek, &envelope, &ctx)?, b"over the network");
/// # Ok(()) })
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncSealer<'p> {
    /// The first wraps (or generates) the data key; the others wrap it too.
    providers: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    opts: SealOptions,
    audit: EnvelopeAudit<'p>,
}

/// The options of both sealers, written once.
macro_rules! sealer_options {
    ($sealer:ident, $provider:ident) => {
        impl fmt::Debug for $sealer<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($sealer))
                    .field("providers", &self.providers)
                    .field("suite", &self.opts.suite)
                    .field("segment_size", &self.opts.segment_size)
                    .finish_non_exhaustive()
            }
        }

        impl<'p> $sealer<'p> {
            /// A sealer wrapping data keys with `provider`, with default options.
            pub fn new(provider: &'p dyn $provider) -> Self {
                Self {
                    providers: alloc::vec![provider],
                    opts: SealOptions::default(),
                    audit: EnvelopeAudit::default(),
                }
            }

            /// Also wraps each data key with `provider` (for example a
            /// disaster-recovery key or a second region's KMS): any one of the
            /// providers can open the envelope. Wrapped keys appear in the
            /// header in the order added. Only the first provider is asked
            /// for a data key.
            #[must_use]
            pub fn also_wrap_with(mut self, provider: &'p dyn $provider) -> Self {
                self.providers.push(provider);
                self
            }

            /// The providers, in order (the secrets files verify each).
            #[cfg(feature = "secrets")]
            pub(crate) fn providers(&self) -> &[&'p dyn $provider] {
                &self.providers
            }

            /// Reports a seal to the audit, if any, and hands `r` back.
            fn audited<T>(
                &self,
                op: crate::audit::EnvelopeOperation,
                context: &EncryptionContext,
                plaintext_len: Option<usize>,
                envelope: Option<&[u8]>,
                r: Result<T, Error>,
            ) -> Result<T, Error> {
                let how = (self.opts.suite, &self.opts.limits);
                (self.audit).sealed(op, how, context, plaintext_len, envelope.unwrap_or_default(), &r);
                r
            }

            /// [`audited`](Self::audited) for a seal into a new buffer.
            fn audited_vec(
                &self,
                context: &EncryptionContext,
                len: usize,
                r: Result<Vec<u8>, Error>,
            ) -> Result<Vec<u8>, Error> {
                let how = (self.opts.suite, &self.opts.limits);
                let sealed = r.as_deref().unwrap_or_default();
                (self.audit).sealed(Seal, how, context, Some(len), sealed, &r);
                r
            }

            /// [`audited`](Self::audited) for a stream's header.
            #[cfg(feature = "std")]
            fn audited_header(
                &self,
                context: &EncryptionContext,
                r: Result<SealedHeader, Error>,
            ) -> Result<SealedHeader, Error> {
                let how = (self.opts.suite, &self.opts.limits);
                let header = r.as_ref().map(|h| h.header()).unwrap_or_default();
                (self.audit).sealed(SealStream, how, context, None, header, &r);
                r
            }

            /// Sets the algorithm suite (default AES-256-GCM).
            #[must_use]
            pub fn suite(mut self, suite: Suite) -> Self {
                self.opts.suite = suite;
                self
            }

            /// Sets the segment size (default 64 KiB).
            #[must_use]
            pub fn segment_size(mut self, size: SegmentSize) -> Self {
                self.opts.segment_size = size;
                self
            }

            /// Succeeds when at least `k` of the providers wrap the data key
            /// (say 2 of 3 KMS regions), instead of requiring all of them (the
            /// default). A provider that fails is left out of the envelope and
            /// reported by `seal_reporting` as a [`WrapFailure`]; if the first
            /// provider fails, the data key is drawn from the OS CSPRNG. Fewer
            /// than `k` wraps fail the seal with [`Error::QuorumNotMet`]. `k`
            /// must be between 1 and the number of providers (checked when
            /// sealing). Heal the envelopes later by adding the missing wraps
            /// (header only): see [`rotation`](crate::rotation).
            #[must_use]
            pub fn quorum(mut self, k: usize) -> Self {
                self.opts.quorum = Some(k);
                self
            }
        }

        crate::options::shared_options!($sealer, opts);
        crate::pq::mix_option!($sealer, opts.allow_classical_with_pq);
        crate::options::thread_option!($sealer, opts);
        crate::options::audit_option!($sealer, audit);
    };
}

sealer_options!(Sealer, KeyEncryptionProvider);
sealer_options!(AsyncSealer, AsyncKeyEncryptionProvider);

/// A plaintext length for the data-key request (`None` only on a platform
/// where it does not fit, which no cache counts).
fn len_u64(len: usize) -> Option<u64> {
    u64::try_from(len).ok()
}

impl<'p> Sealer<'p> {
    /// Seals `plaintext` into a new buffer (one allocation, sized exactly).
    pub fn seal(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal_to(plaintext, context, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext` and appends the envelope to `out` (no allocation if
    /// `out` has the capacity). On error `out` is unchanged.
    ///
    /// Growing a `Vec` safely means initialising what it grows by: each
    /// segment's room is zero-filled before it is encrypted into, on every
    /// call. To reuse a buffer without that pass, use
    /// [`seal_into`](Self::seal_into) on an initialised slice.
    pub fn seal_to(&self, plaintext: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let at = out.len();
        let r = self.prepare(context, len_u64(plaintext.len()), os_random, |p| {
            p.seal_to(plaintext, out)
        });
        self.audited(Seal, context, Some(plaintext.len()), out.get(at..), r)
    }

    /// Seals `plaintext` into the start of `out`, a buffer the caller owns
    /// (and may reuse across calls), and returns the envelope's length.
    ///
    /// The envelope is the plaintext, one 16-byte tag per segment, and the
    /// header, whose length depends on the context and on the wrapped keys
    /// (221 bytes of overhead, 253 in all, for a 32-byte plaintext, an empty
    /// context and one [`LocalKek`](crate::LocalKek)). If `out` is too short
    /// this fails with [`Error::BufferTooSmall`] and the exact length of this
    /// attempt's envelope, and `out` is left alone. The providers were
    /// called by then, so size generously when they are remote; and a retry
    /// with exactly that length can fall short again when the wrapped keys'
    /// lengths vary (a [`quorum`](Self::quorum) that got fewer wraps, or a
    /// provider whose wraps differ in length). On any other error what was written is zeroized. No
    /// allocation, and every byte of the envelope is written once (no
    /// zero-filling first, as growing a `Vec` needs).
    pub fn seal_into(&self, plaintext: &[u8], context: &EncryptionContext, out: &mut [u8]) -> Result<usize, Error> {
        let r = self.prepare(context, len_u64(plaintext.len()), os_random, |p| {
            p.seal_into(plaintext, out)
        });
        let sealed = r.as_ref().ok().and_then(|&n| out.get(..n));
        self.audited(Seal, context, Some(plaintext.len()), sealed, r)
    }

    /// Seals `plaintext` and reports the providers that did not wrap its data
    /// key (possible only under a [`quorum`](Self::quorum); empty
    /// otherwise): the envelope lacks their wrapped keys.
    pub fn seal_reporting(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, Vec<WrapFailure>), Error> {
        self.prepare(context, len_u64(plaintext.len()), os_random, |mut prepared| {
            let failures = prepared.take_failures();
            Ok((prepared.seal(plaintext)?, failures))
        })
    }

    /// Seals `plaintext`, drawing the data key and message id from `rng`
    /// instead of the OS generator. `rng` must be a cryptographically secure
    /// generator seeded from the OS (never from time or a fixed seed).
    pub fn seal_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let random = |b: &mut [u8]| rng_random(rng, b);
        let r = self.prepare(context, len_u64(plaintext.len()), random, |p| p.seal(plaintext));
        self.audited_vec(context, plaintext.len(), r)
    }

    /// Seals in place: `buf` holds the plaintext before and the envelope after.
    /// Provider, randomness, limit and allocation errors leave `buf` unchanged
    /// (they happen before it is touched). Reserve the envelope's overhead in `buf`
    /// to avoid a copy; if it lacks the capacity, the plaintext is moved to a
    /// new allocation and the old one is zeroized before it is freed. An
    /// error once encryption has begun (none is expected: the limits were
    /// checked before) zeroizes `buf`.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let len = buf.len();
        let r = self.prepare(context, len_u64(len), os_random, |p| p.seal_in_place(buf));
        let sealed = r.is_ok().then_some(buf.as_slice());
        self.audited(Seal, context, Some(len), sealed, r)
    }

    /// Wraps a data key and builds a header for a stream of unknown length:
    /// hand it to [`Encryptor::new`](crate::Encryptor::new) (`std::io`) or
    /// `lockbox::tokio::Encryptor::new` (tokio). [`encryptor`](Self::encryptor)
    /// does both for a `std::io` writer.
    #[cfg(feature = "std")]
    pub fn seal_header(&self, context: &EncryptionContext) -> Result<SealedHeader, Error> {
        let r = self.prepare(context, None, os_random, SealedHeader::new);
        self.audited_header(context, r)
    }

    /// [`seal_header`](Self::seal_header) drawing the data key and message id
    /// from `rng` (see [`seal_with_rng`](Self::seal_with_rng)).
    #[cfg(feature = "std")]
    pub fn seal_header_with_rng<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        context: &EncryptionContext,
    ) -> Result<SealedHeader, Error> {
        let r = self.prepare(context, None, |b| rng_random(rng, b), SealedHeader::new);
        self.audited_header(context, r)
    }

    /// The key phase: the first provider generates or wraps the data key,
    /// every other one wraps it; see [`SealPlan`]. Then `then` on the
    /// prepared seal, in this frame (the prepared seal, cipher included, is
    /// not moved back up through the callers).
    fn prepare<'c, T>(
        &self,
        context: &'c EncryptionContext,
        plaintext_len: Option<u64>,
        random: impl FnMut(&mut [u8]) -> Result<(), Error>,
        then: impl FnOnce(Prepared<'c>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut plan = SealPlan::new(&self.opts, context, &self.providers, plaintext_len)?;
        plan.generated(plan.first().generate_data_key(plan.request()), random)?;
        while let Some(p) = plan.next_wrapper() {
            plan.wrapped(p.wrap(plan.dek(), plan.binding()))?;
        }
        then(plan.finish()?)
    }
}

impl<'p> AsyncSealer<'p> {
    /// Seals `plaintext` into a new buffer; see [`Sealer::seal`].
    pub async fn seal(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal_to(plaintext, context, &mut out).await?;
        Ok(out)
    }

    /// Seals `plaintext` and appends the envelope to `out`; see [`Sealer::seal_to`].
    pub async fn seal_to(&self, plaintext: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let at = out.len();
        let r = self
            .then(context, len_u64(plaintext.len()), os_random, |p| {
                p.seal_to(plaintext, out)
            })
            .await;
        self.audited(Seal, context, Some(plaintext.len()), out.get(at..), r)
    }

    /// Seals `plaintext` into the start of `out`, a buffer the caller owns;
    /// see [`Sealer::seal_into`].
    pub async fn seal_into(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let r = self
            .then(context, len_u64(plaintext.len()), os_random, |p| {
                p.seal_into(plaintext, out)
            })
            .await;
        let sealed = r.as_ref().ok().and_then(|&n| out.get(..n));
        self.audited(Seal, context, Some(plaintext.len()), sealed, r)
    }

    /// Seals `plaintext` and reports the providers that did not wrap; see
    /// [`Sealer::seal_reporting`].
    pub async fn seal_reporting(
        &self,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, Vec<WrapFailure>), Error> {
        let mut prepared = self.prepare(context, len_u64(plaintext.len()), os_random).await?;
        let failures = prepared.take_failures();
        Ok((prepared.seal(plaintext)?, failures))
    }

    /// Seals `plaintext` with `rng`'s randomness; see [`Sealer::seal_with_rng`].
    /// Same bytes as the blocking sealer given the same generator state.
    pub async fn seal_with_rng<R: TryCryptoRng + Send + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let random = |b: &mut [u8]| rng_random(rng, b);
        let r = self
            .then(context, len_u64(plaintext.len()), random, |p| p.seal(plaintext))
            .await;
        self.audited_vec(context, plaintext.len(), r)
    }

    /// Seals in place; see [`Sealer::seal_in_place`].
    pub async fn seal_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let len = buf.len();
        let r = self
            .then(context, len_u64(len), os_random, |p| p.seal_in_place(buf))
            .await;
        let sealed = r.is_ok().then_some(buf.as_slice());
        self.audited(Seal, context, Some(len), sealed, r)
    }

    /// Wraps a data key and builds a header for a stream; see
    /// [`Sealer::seal_header`].
    #[cfg(feature = "std")]
    pub async fn seal_header(&self, context: &EncryptionContext) -> Result<SealedHeader, Error> {
        let r = self.then(context, None, os_random, SealedHeader::new).await;
        self.audited_header(context, r)
    }

    /// [`seal_header`](Self::seal_header) with `rng`'s randomness.
    #[cfg(feature = "std")]
    pub async fn seal_header_with_rng<R: TryCryptoRng + Send + ?Sized>(
        &self,
        rng: &mut R,
        context: &EncryptionContext,
    ) -> Result<SealedHeader, Error> {
        let r = self
            .then(context, None, |b| rng_random(rng, b), SealedHeader::new)
            .await;
        self.audited_header(context, r)
    }

    /// The key phase, then `finish` on the prepared seal: the body the
    /// async seals share under their audit hook.
    async fn then<'c, T>(
        &self,
        context: &'c EncryptionContext,
        plaintext_len: Option<u64>,
        random: impl FnMut(&mut [u8]) -> Result<(), Error> + Send,
        finish: impl FnOnce(Prepared<'c>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let prepared = self.prepare(context, plaintext_len, random).await?;
        finish(prepared)
    }

    /// The key phase, awaited; see [`Sealer`]'s. The data key lives in the
    /// plan, filled and dropped in place, never moved across an `.await`.
    async fn prepare<'c>(
        &self,
        context: &'c EncryptionContext,
        plaintext_len: Option<u64>,
        random: impl FnMut(&mut [u8]) -> Result<(), Error> + Send,
    ) -> Result<Prepared<'c>, Error> {
        let mut plan = SealPlan::new(&self.opts, context, &self.providers, plaintext_len)?;
        {
            // The awaited answer lands in this future's state (the await's
            // destination lives across its suspension): read the key where
            // it lies and let it drop (zeroized) there, never move it out,
            // which would leave a copy in the state's freed memory.
            let generated = plan.first().generate_data_key_async(plan.request()).await;
            let offered = match generated {
                Err(e) => Err(e),
                Ok(ref g) => Ok(g.as_ref().map(|(key, w)| (key.duplicate(), w.clone()))),
            };
            plan.generated(offered, random)?;
        }
        while let Some(p) = plan.next_wrapper() {
            plan.wrapped(p.wrap_async(plan.dek(), plan.binding()).await)?;
        }
        plan.finish()
    }
}

/// A stream's start: the data key wrapped, the header built (tag included),
/// the payload key derived. Made by [`Sealer::seal_header`] or
/// [`AsyncSealer::seal_header`], consumed by a streaming encryptor
/// ([`Encryptor::new`](crate::Encryptor::new), `lockbox::tokio::Encryptor::new`),
/// so either kind of provider streams to either kind of writer.
///
/// Holds the payload key (boxed, zeroized on drop); `Debug` shows no key.
#[cfg(feature = "std")]
pub struct SealedHeader {
    pub(crate) header: Vec<u8>,
    pub(crate) cipher: Box<PayloadCipher>,
    pub(crate) segment_size: SegmentSize,
    pub(crate) threads: usize,
    failures: Vec<WrapFailure>,
}

#[cfg(feature = "std")]
impl SealedHeader {
    fn new(mut p: Prepared<'_>) -> Result<Self, Error> {
        let threads = p.options().threads;
        let failures = p.take_failures();
        let (header, cipher, segment_size) = p.into_stream_start()?;
        Ok(Self {
            header,
            cipher: Box::new(cipher),
            segment_size,
            threads,
            failures,
        })
    }

    /// The providers that did not wrap the data key (possible only under a
    /// [`quorum`](Sealer::quorum); empty otherwise).
    pub fn wrap_failures(&self) -> &[WrapFailure] {
        &self.failures
    }

    /// The header bytes (written first by the encryptor).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The segment size of the stream.
    pub fn segment_size(&self) -> SegmentSize {
        self.segment_size
    }
}

#[cfg(feature = "std")]
impl fmt::Debug for SealedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedHeader")
            .field("header_len", &self.header.len())
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}
