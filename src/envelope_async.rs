//! Sealing and opening with [`AsyncKeyEncryptionProvider`]s: the async
//! entry points for key stores reached over the network.
//!
//! The envelopes are the same, byte for byte, as [`Sealer`] and [`Opener`]
//! produce and accept (given the same randomness): only the provider calls
//! are awaited. The payload cryptography runs inside the future, on the
//! thread polling it, bounded by the plaintext size. Nothing here starts a
//! runtime or blocks on one, and every future is `Send`.

use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::context::{Binding, EncryptionContext};
use crate::crypto::PayloadCipher;
use crate::envelope::{Sealer, check_own_wrapped, full_context, open_payload, verify_data_key, wrapped_refs};
use crate::error::{Error, ProviderError};
use crate::format::{self, Header, Limits, MESSAGE_ID_LEN, SegmentSize, Segments};
use crate::keys::{DATA_KEY_LEN, DataKey, os_random, rng_random};
use crate::provider::AsyncKeyEncryptionProvider;
use crate::suite::{Backend, Suite};

/// Seals envelopes, wrapping the data key with async providers.
///
/// The async twin of [`Sealer`], with the same options and the same output.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// use lockbox::{AsyncOpener, AsyncSealer, EncryptionContext, LocalKek};
/// // Any provider works (every sync one is async too); a KMS client would be
/// // an async-only provider.
/// let kek = LocalKek::generate()?;
/// let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
/// let envelope = AsyncSealer::new(&kek).seal(b"over the network", &ctx).await?;
/// let plaintext = AsyncOpener::new(&kek).open(&envelope, &ctx).await?;
/// assert_eq!(plaintext, b"over the network");
/// // The sync opener reads it too.
/// assert_eq!(lockbox::open(&kek, &envelope, &ctx)?, b"over the network");
/// # Ok(()) })
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncSealer<'p> {
    /// The first wraps (or generates) the data key; the others wrap it too.
    providers: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    suite: Suite,
    segment_size: SegmentSize,
    limits: Limits,
    backend: Backend,
}

impl fmt::Debug for AsyncSealer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSealer")
            .field("providers", &self.providers)
            .field("suite", &self.suite)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

impl<'p> AsyncSealer<'p> {
    /// A sealer wrapping data keys with `provider`, with default options.
    pub fn new(provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        Self {
            providers: alloc::vec![provider],
            suite: Suite::default(),
            segment_size: SegmentSize::default(),
            limits: Limits::default(),
            backend: Backend::default(),
        }
    }

    /// Also wraps each data key with `provider`; see [`Sealer::also_wrap_with`].
    #[must_use]
    pub fn also_wrap_with(mut self, provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Sets the algorithm suite (default AES-256-GCM).
    #[must_use]
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// Sets the segment size (default 64 KiB).
    #[must_use]
    pub fn segment_size(mut self, size: SegmentSize) -> Self {
        self.segment_size = size;
        self
    }

    /// Sets the AEAD implementation; see [`Sealer::backend`].
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the limits the sealed header must respect; see [`Sealer::limits`].
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seals `plaintext` into a new buffer. The data key and message id come
    /// from the OS CSPRNG (or the first provider's `generate_data_key`).
    pub async fn seal(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal_to(plaintext, context, &mut out).await?;
        Ok(out)
    }

    /// Seals `plaintext` and appends the envelope to `out`. On error `out`
    /// is unchanged.
    pub async fn seal_to(&self, plaintext: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let (sealer, prepared) = self
            .prepare(context, u64::try_from(plaintext.len()).ok(), os_random)
            .await?;
        sealer.write(&prepared, context, plaintext, out)
    }

    /// Seals `plaintext`, drawing the data key and message id from `rng`;
    /// see [`Sealer::seal_with_rng`]. Same bytes as the sync sealer given
    /// the same generator state.
    pub async fn seal_with_rng<R: TryCryptoRng + Send + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let plaintext_len = u64::try_from(plaintext.len()).ok();
        let (sealer, prepared) = self.prepare(context, plaintext_len, |b| rng_random(rng, b)).await?;
        sealer.write(&prepared, context, plaintext, &mut out)?;
        Ok(out)
    }

    /// The options as a provider-less [`Sealer`], for the shared steps.
    fn options(&self) -> Sealer<'static> {
        Sealer::without_providers(self.suite, self.segment_size, self.limits).backend(self.backend)
    }

    /// As [`Sealer`]'s preparation, with the provider calls awaited: checks
    /// the limits, draws or generates the data key, wraps it with every
    /// provider, derives the message keys and drops the data key.
    async fn prepare(
        &self,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
        mut random: impl FnMut(&mut [u8]) -> Result<(), Error> + Send,
    ) -> Result<(Sealer<'static>, crate::envelope::Prepared), Error> {
        let sealer = self.options();
        sealer.check_seal_limits(context, self.providers.len())?;
        let (first, others) = self.providers.split_first().ok_or(Error::InvalidArgument {
            what: "no provider to wrap the data key",
        })?;
        let binding_bytes = context.binding_bytes(sealer.suite_ref());
        let binding = Binding::from_encoded(sealer.suite_ref(), binding_bytes.as_slice());
        let mut message_id = [0u8; MESSAGE_ID_LEN];
        let mut wrapped = Vec::with_capacity(self.providers.len());
        // One data key, filled in place and never moved: this future's state
        // may live on the heap (a spawned task), and a moved-from key would
        // stay there unzeroized. It is zeroized where it lies when dropped.
        let mut dek = DataKey::zeroed();
        // Secrets are borrowed, never moved, and dropped in place at the end
        // of blocks without an await in them.
        let offered = {
            let generated = first
                .generate_data_key_async(crate::envelope::request(binding, plaintext_len))
                .await?;
            match &generated {
                Some((key, w)) => {
                    dek.bytes_mut().copy_from_slice(key.expose_secret());
                    wrapped.push(w.clone());
                    true
                }
                None => false,
            }
        };
        if offered {
            random(&mut message_id)?;
        } else {
            {
                // One draw for key and message id, as the sync sealer does.
                let mut draw = Zeroizing::new([0u8; DATA_KEY_LEN + MESSAGE_ID_LEN]);
                random(draw.as_mut_slice())?;
                let (k, m) = draw.split_at(DATA_KEY_LEN);
                dek.bytes_mut().copy_from_slice(k);
                message_id.copy_from_slice(m);
            }
            wrapped.push(first.wrap_async(&dek, binding).await?);
        }
        for p in others {
            wrapped.push(p.wrap_async(&dek, binding).await?);
        }
        let mut rest = wrapped.into_iter();
        let first_wrapped = rest.next().ok_or(Error::InvalidArgument {
            what: "no provider to wrap the data key",
        })?;
        let other_wrapped: Vec<_> = rest.collect();
        check_own_wrapped(&self.providers, &first_wrapped, &other_wrapped)?;
        let prepared = sealer.finish_prepare(context, &dek, message_id, first_wrapped, other_wrapped)?;
        Ok((sealer, prepared))
    }
}

/// Opens envelopes, unwrapping the data key with async providers.
///
/// The async twin of [`Opener`](crate::Opener): the same checks in the same
/// order, and plaintext only when everything authenticated.
#[derive(Clone)]
pub struct AsyncOpener<'p> {
    providers: Vec<&'p dyn AsyncKeyEncryptionProvider>,
    limits: Limits,
    strict_context: bool,
    backend: Backend,
}

impl fmt::Debug for AsyncOpener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncOpener")
            .field("providers", &self.providers)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'p> AsyncOpener<'p> {
    /// An opener unwrapping with `provider`, with default limits.
    pub fn new(provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        Self {
            providers: alloc::vec![provider],
            limits: Limits::default(),
            strict_context: false,
            backend: Backend::default(),
        }
    }

    /// Also tries `provider`; see [`Opener::also_try`](crate::Opener::also_try).
    #[must_use]
    pub fn also_try(mut self, provider: &'p dyn AsyncKeyEncryptionProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Sets the AEAD implementation; see [`Opener::backend`](crate::Opener::backend).
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the parsing limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Requires every context entry to be supplied; see
    /// [`Opener::strict_context`](crate::Opener::strict_context).
    #[must_use]
    pub fn strict_context(mut self) -> Self {
        self.strict_context = true;
        self
    }

    /// Opens `envelope` into a new buffer.
    pub async fn open(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.open_to(envelope, context, &mut out).await?;
        Ok(out)
    }

    /// Opens `envelope` and also returns the whole authenticated context; see
    /// [`Opener::open_with_context`](crate::Opener::open_with_context).
    pub async fn open_with_context(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, EncryptionContext), Error> {
        let plaintext = self.open(envelope, context).await?;
        let (h, _) = format::parse(envelope, &self.limits)?;
        Ok((plaintext, full_context(&h, context)?))
    }

    /// Opens `envelope` and appends the plaintext to `out`. On error `out` is
    /// unchanged (anything written is zeroized first).
    pub async fn open_to(&self, envelope: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let (h, payload) = format::parse(envelope, &self.limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size, h.len)?;
        let cipher = self.unlock(&h, context).await?;
        open_payload(&cipher, segs, payload, 1, out)
    }

    /// Reconciles the context, unwraps the data key with the first matching
    /// provider that can, and authenticates the header: as
    /// [`Opener`](crate::Opener) does, with the unwraps awaited.
    async fn unlock(&self, h: &Header<'_>, context: &EncryptionContext) -> Result<PayloadCipher, Error> {
        let binding_bytes = context.reconcile(h.context, h.suite, self.strict_context)?;
        let binding = Binding::from_encoded(h.suite, binding_bytes.as_slice());
        let mut attempts = 0usize;
        let mut last: Option<ProviderError> = None;
        let mut wrong_key = false;
        for w in wrapped_refs(h) {
            for provider in self.providers.iter().filter(|p| p.matches(w)) {
                attempts = attempts.saturating_add(1);
                match provider.unwrap_async(w, binding).await {
                    Ok(dek) => match verify_data_key(h, self.backend, &dek)? {
                        Some(cipher) => return Ok(cipher),
                        // Not this envelope's data key: try the others.
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
}

#[cfg(feature = "tokio")]
mod streams {
    use std::boxed::Box;
    use std::io;
    use std::vec::Vec;

    use rand_core::TryCryptoRng;
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::{AsyncOpener, AsyncSealer};
    use crate::context::EncryptionContext;
    use crate::keys::{os_random, rng_random};
    use crate::stream::{ParseStep, io_error, parse_step};
    use crate::stream_async::{AsyncDecryptor, AsyncEncryptor, fill};

    impl AsyncSealer<'_> {
        /// Starts a streaming encryption into `writer`, the data key wrapped
        /// by the async providers (awaited); the header is written before
        /// this returns. See [`AsyncEncryptor`] for how to end the stream.
        pub async fn async_encryptor<W: AsyncWrite + Unpin>(
            &self,
            writer: W,
            context: &EncryptionContext,
        ) -> io::Result<AsyncEncryptor<W>> {
            self.start_stream(writer, context, os_random).await
        }

        /// [`async_encryptor`](Self::async_encryptor) drawing the data key
        /// and message id from `rng` (see [`Sealer::seal_with_rng`](crate::Sealer::seal_with_rng)).
        pub async fn async_encryptor_with_rng<W: AsyncWrite + Unpin, R: TryCryptoRng + Send + ?Sized>(
            &self,
            rng: &mut R,
            writer: W,
            context: &EncryptionContext,
        ) -> io::Result<AsyncEncryptor<W>> {
            self.start_stream(writer, context, |b| rng_random(rng, b)).await
        }

        async fn start_stream<W: AsyncWrite + Unpin>(
            &self,
            writer: W,
            context: &EncryptionContext,
            random: impl FnMut(&mut [u8]) -> Result<(), crate::Error> + Send,
        ) -> io::Result<AsyncEncryptor<W>> {
            let mut header = Vec::new();
            // The message keys are boxed in a block with no await after the
            // one that prepares them, so no unboxed copy stays in this
            // future's state (which may live on the heap).
            let (cipher, size) = {
                let (sealer, prepared) = self.prepare(context, None, random).await.map_err(io_error)?;
                let (cipher, size) = sealer
                    .start_prepared(prepared, context, &mut header)
                    .map_err(io_error)?;
                (Box::new(cipher), size)
            };
            AsyncEncryptor::from_header(writer, &header, cipher, size).await
        }
    }

    impl AsyncOpener<'_> {
        /// Reads the header from `reader`, unwraps the data key with the
        /// async providers (awaited), authenticates the header and returns a
        /// decryptor for the payload. The header is read incrementally, never
        /// more than the header limit plus one byte before it parses.
        pub async fn async_decryptor<R: AsyncRead + Unpin>(
            &self,
            mut reader: R,
            context: &EncryptionContext,
        ) -> io::Result<AsyncDecryptor<R>> {
            let mut buf: Vec<u8> = Vec::with_capacity(1024);
            let mut eof = false;
            loop {
                let want = match parse_step(&self.limits, &buf, eof).map_err(io_error)? {
                    ParseStep::Parsed(h) => {
                        let cipher = self.unlock(&h, context).await.map_err(io_error)?;
                        let (header_len, size) = (h.len, h.segment_size);
                        return Ok(AsyncDecryptor::from_parts(reader, cipher, header_len, size, buf));
                    }
                    ParseStep::Read(want) => want,
                };
                eof = fill(&mut reader, &mut buf, want).await?;
            }
        }
    }
}
