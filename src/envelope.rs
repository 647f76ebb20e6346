//! Sealing, opening and inspecting envelopes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use rand_core::TryCryptoRng;
use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::context::{Binding, EncryptionContext};
use crate::crypto::{self, PayloadCipher};
use crate::error::{Error, LimitKind, ProviderError};
use crate::format::{
    self, COMMITMENT_LEN, FIXED_LEN, Header, Limits, MAGIC, MESSAGE_ID_LEN, Put, SegmentSize, Segments, TAG_LEN,
    VERSION_1,
};
use crate::keys::{DATA_KEY_LEN, DataKey, KeyVersion, WrappedKey, WrappedKeyRef, os_random, rng_random};
use crate::provider::{KeyEncryptionProvider, ProviderIdentity};
use crate::suite::{Backend, Suite};

/// Seals plaintext into an envelope under one provider, with the default
/// suite (AES-256-GCM), segment size (64 KiB) and limits.
///
/// A fresh data key and message id are drawn from the OS CSPRNG, the data key
/// is wrapped by `provider` bound to `context`, and zeroized before this
/// returns. See [`Sealer`] for the options and the in-place variants.
pub fn seal(
    provider: &dyn KeyEncryptionProvider,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, Error> {
    Sealer::new(provider).seal(plaintext, context)
}

/// Opens an envelope with one provider and the default limits.
///
/// `context` must hold every [required](crate::Storage::Required) entry the
/// envelope was sealed with; stored entries may be given too, and must then
/// match. Stored entries left out are **not** checked: any envelope the
/// provider can open passes, whatever else its context says. When that
/// matters, use [`Opener::strict_context`] or [`Opener::open_with_context`].
/// Plaintext is returned only if everything authenticated: on any failure
/// nothing is released. See [`Opener`].
pub fn open(
    provider: &dyn KeyEncryptionProvider,
    envelope: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, Error> {
    Opener::new(provider).open(envelope, context)
}

/// Reads an envelope's header without any key, with the default limits.
///
/// Nothing reported here is authenticated yet: an attacker can forge any of
/// it. Use it to route (which provider, which key), never to decide trust.
pub fn inspect(envelope: &[u8]) -> Result<EnvelopeInfo, Error> {
    inspect_with_limits(envelope, &Limits::default())
}

/// [`inspect`] with explicit limits.
pub fn inspect_with_limits(envelope: &[u8], limits: &Limits) -> Result<EnvelopeInfo, Error> {
    let (h, payload) = format::parse(envelope, limits)?;
    let segs = Segments::for_payload(payload.len(), h.segment_size, h.len)?;
    let mut stored = Vec::new();
    let mut required = Vec::new();
    for e in h.context.iter() {
        match e.value {
            Some(v) => stored.push((e.key.to_string(), v.to_string())),
            None => required.push(e.key.to_string()),
        }
    }
    Ok(EnvelopeInfo {
        version: VERSION_1,
        suite: h.suite,
        message_id: *h.message_id,
        segment_size: h.segment_size,
        segment_count: segs.count,
        stored_context: stored,
        required_context_keys: required,
        wrapped_keys: h.wrapped.iter().map(|w| entry_ref(w).to_owned()).collect(),
        header_len: h.len,
        payload_len: payload.len(),
        plaintext_len: segs.plaintext_len(),
    })
}

/// For range reads (object stores): the byte range of an envelope that holds
/// the segments covering `plaintext` (a range of plaintext offsets).
///
/// `header_prefix` must start at the envelope's first byte and hold at least
/// the whole header (fetch, say, the first 64 KiB); `envelope_len` is the
/// envelope's total size (an object store's content length). Nothing is
/// authenticated here. Fetch the header and the returned range and decrypt
/// the segments with a [`Decryptor`](crate::Decryptor) over a reader that
/// serves those bytes at their offsets: its first seek also verifies the
/// final segment (which proves the length), so fetch that segment too.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// let kek = lockbox::LocalKek::generate()?;
/// let ctx = lockbox::EncryptionContext::new();
/// let env = lockbox::Sealer::new(&kek)
///     .segment_size(lockbox::SegmentSize::new(1024)?)
///     .seal(&[7u8; 10_000], &ctx)?;
/// let r = lockbox::ciphertext_range(&env, env.len() as u64, 2_000..2_100)?;
/// // Plaintext 2000..2100 lies in segment 1 (1024..2048) and 2 (2048..3072).
/// let h = lockbox::inspect(&env)?.header_len() as u64;
/// assert_eq!(r, h + 1040..h + 3 * 1040);
/// # Ok(()) }
/// ```
pub fn ciphertext_range(
    header_prefix: &[u8],
    envelope_len: u64,
    plaintext: core::ops::Range<u64>,
) -> Result<core::ops::Range<u64>, Error> {
    let (h, _) = format::parse(header_prefix, &Limits::default())?;
    let header_len = u64::try_from(h.len).unwrap_or(u64::MAX);
    let payload = envelope_len.checked_sub(header_len).ok_or_else(|| Error::Malformed {
        offset: h.len,
        what: "truncated payload",
    })?;
    let payload = usize::try_from(payload).map_err(|_| Error::InvalidArgument {
        what: "envelope too large for this platform",
    })?;
    let segs = Segments::for_payload(payload, h.segment_size, h.len)?;
    let len = u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX);
    if plaintext.start > plaintext.end || plaintext.end > len {
        return Err(Error::InvalidArgument {
            what: "plaintext range outside the envelope's plaintext",
        });
    }
    let size = u64::try_from(segs.size).unwrap_or(u64::MAX);
    let stride = size.saturating_add(16);
    let first = plaintext.start.checked_div(size).unwrap_or(0);
    // The segment holding the last byte of the range (or the first, if empty).
    let last = plaintext
        .end
        .saturating_sub(1)
        .max(plaintext.start)
        .checked_div(size)
        .unwrap_or(0);
    let last = last.min(u64::try_from(segs.count.saturating_sub(1)).unwrap_or(u64::MAX));
    let last_len = u64::try_from(segs.len_of(usize::try_from(last).unwrap_or(usize::MAX))).unwrap_or(u64::MAX);
    let start = header_len.saturating_add(first.saturating_mul(stride));
    let end = header_len
        .saturating_add(last.saturating_mul(stride))
        .saturating_add(last_len)
        .saturating_add(16);
    Ok(start..end)
}

/// What [`inspect`] reads from a header. Unauthenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeInfo {
    version: u8,
    suite: Suite,
    message_id: [u8; MESSAGE_ID_LEN],
    segment_size: SegmentSize,
    segment_count: usize,
    stored_context: Vec<(String, String)>,
    required_context_keys: Vec<String>,
    wrapped_keys: Vec<WrappedKey>,
    header_len: usize,
    payload_len: usize,
    plaintext_len: usize,
}

impl EnvelopeInfo {
    /// Format version (1).
    pub fn version(&self) -> u8 {
        self.version
    }
    /// Algorithm suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }
    /// The random per-message id.
    pub fn message_id(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.message_id
    }
    /// Segment size.
    pub fn segment_size(&self) -> SegmentSize {
        self.segment_size
    }
    /// Number of payload segments.
    pub fn segment_count(&self) -> usize {
        self.segment_count
    }
    /// Stored encryption-context entries, in canonical order.
    pub fn stored_context(&self) -> impl Iterator<Item = (&str, &str)> {
        self.stored_context.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// Keys of the required (not stored) entries a caller must supply to open.
    pub fn required_context_keys(&self) -> impl Iterator<Item = &str> {
        self.required_context_keys.iter().map(String::as_str)
    }
    /// The wrapped data keys: provider, key id, version and opaque bytes.
    pub fn wrapped_keys(&self) -> &[WrappedKey] {
        &self.wrapped_keys
    }
    /// Header length in bytes (the payload starts here).
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Payload length in bytes (segments and their tags).
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
    /// Plaintext length in bytes.
    pub fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }
}

fn entry_ref(w: format::WrappedEntry<'_>) -> WrappedKeyRef<'_> {
    WrappedKeyRef {
        provider_id: w.provider_id,
        key_id: w.key_id,
        key_version: KeyVersion(w.key_version),
        bytes: w.bytes,
    }
}

/// Seals envelopes with chosen options.
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
    suite: Suite,
    segment_size: SegmentSize,
    limits: Limits,
    threads: usize,
    backend: Backend,
}

impl fmt::Debug for Sealer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("providers", &self.providers)
            .field("suite", &self.suite)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

/// Everything a seal needs once the data key is wrapped; holds no plaintext key.
pub(crate) struct Prepared {
    cipher: PayloadCipher,
    commitment: [u8; COMMITMENT_LEN],
    message_id: [u8; MESSAGE_ID_LEN],
    /// The first provider's wrapped key, kept apart so that the common
    /// one-provider seal does not allocate a vector.
    first_wrapped: WrappedKey,
    other_wrapped: Vec<WrappedKey>,
    /// Whole header, tag included.
    header_len: usize,
}

impl Prepared {
    fn wrapped(&self) -> impl Iterator<Item = &WrappedKey> {
        core::iter::once(&self.first_wrapped).chain(&self.other_wrapped)
    }
}

/// A writer into a slice that was sized exactly beforehand.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Put for SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
}

impl<'p> Sealer<'p> {
    /// Options only, no provider: the async sealer wraps the data key itself
    /// and uses this for everything else.
    pub(crate) fn without_providers(suite: Suite, segment_size: SegmentSize, limits: Limits) -> Self {
        Self {
            providers: Vec::new(),
            suite,
            segment_size,
            limits,
            threads: 1,
            backend: Backend::default(),
        }
    }

    /// The suite set with `suite`.
    pub(crate) fn suite_ref(&self) -> Suite {
        self.suite
    }

    /// A sealer wrapping data keys with `provider`, with default options.
    pub fn new(provider: &'p dyn KeyEncryptionProvider) -> Self {
        Self {
            providers: alloc::vec![provider],
            suite: Suite::default(),
            segment_size: SegmentSize::default(),
            limits: Limits::default(),
            threads: 1,
            backend: Backend::default(),
        }
    }

    /// Encrypts the segments of one-shot seals, and of streams started with
    /// [`encryptor`](Self::encryptor), on up to `threads` threads (scoped,
    /// spawned per call or per batch; worth it from about a megabyte). The
    /// bytes are the same as with one thread. A parallel stream buffers 8
    /// segments per thread (1 MiB for two threads at the default segment
    /// size) instead of one segment. Default 1.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of threads set with `threads` (1 by default).
    #[cfg(feature = "std")]
    pub(crate) fn thread_count(&self) -> usize {
        self.threads
    }

    /// Also wraps each data key with `provider` (for example a disaster-recovery
    /// key or a second region's KMS): any one of the providers can open the
    /// envelope. Wrapped keys appear in the header in the order added.
    #[must_use]
    pub fn also_wrap_with(mut self, provider: &'p dyn KeyEncryptionProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Sets the algorithm suite (default AES-256-GCM).
    #[must_use]
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// Sets the AEAD implementation (default [`Backend::default`]); the bytes
    /// are the same with every backend.
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Sets the segment size (default 64 KiB).
    #[must_use]
    pub fn segment_size(mut self, size: SegmentSize) -> Self {
        self.segment_size = size;
        self
    }

    /// Sets the limits the sealed header must respect (default
    /// [`Limits::default`], so that default openers accept the result).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seals `plaintext` into a new buffer (one allocation, sized exactly).
    pub fn seal(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal_to(plaintext, context, &mut out)?;
        Ok(out)
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
        let mut out = Vec::new();
        let p = self.prepare(context, len_u64(plaintext.len()), |b| rng_random(rng, b))?;
        self.write(&p, context, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext` and appends the envelope to `out` (no allocation if
    /// `out` has the capacity). On error `out` is unchanged.
    pub fn seal_to(&self, plaintext: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let p = self.prepare(context, len_u64(plaintext.len()), os_random)?;
        self.write(&p, context, plaintext, out)
    }

    /// Seals in place: `buf` holds the plaintext before and the envelope after.
    /// Provider, randomness, limit and allocation errors leave `buf` unchanged
    /// (they happen before it is touched). Reserve the envelope's overhead in `buf`
    /// to avoid a copy; if it lacks the capacity, the plaintext is moved to a
    /// new allocation and the old one is zeroized before it is freed.
    pub fn seal_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let too_short = || Error::InvalidArgument {
            what: "buffer too short",
        };
        let p = self.prepare(context, len_u64(buf.len()), os_random)?;
        let segs = Segments::for_plaintext(buf.len(), self.segment_size)?;
        let total = segs
            .payload_len()
            .and_then(|n| n.checked_add(p.header_len))
            .ok_or_else(|| Error::InvalidArgument {
                what: "plaintext too long",
            })?;
        let stride = segs.size.saturating_add(TAG_LEN);
        if buf.capacity() < total {
            // Growing in place would let the allocator free the old block with
            // the plaintext still in it: move to a new buffer, wipe the old one.
            let mut grown = Vec::new();
            grown.try_reserve_exact(total).map_err(|_| Error::InvalidArgument {
                what: "envelope too large to allocate",
            })?;
            grown.extend_from_slice(buf);
            buf.zeroize();
            *buf = grown;
        }
        buf.resize(total, 0);
        // Move segments to their final places, last first (they only move right).
        for i in (0..segs.count).rev() {
            let from = i.saturating_mul(segs.size);
            let to = p.header_len.saturating_add(i.saturating_mul(stride));
            buf.copy_within(from..from.saturating_add(segs.len_of(i)), to);
        }
        let (header, payload) = buf.split_at_mut_checked(p.header_len).ok_or_else(too_short)?;
        let (authenticated, tag) = header
            .split_at_mut_checked(p.header_len.saturating_sub(TAG_LEN))
            .ok_or_else(too_short)?;
        self.write_header(
            &p,
            context,
            &mut SliceWriter {
                buf: authenticated,
                pos: 0,
            },
        );
        tag.copy_from_slice(&p.cipher.header_tag(authenticated)?);
        for (i, chunk) in payload.chunks_mut(stride).enumerate() {
            let last = i.saturating_add(1) == segs.count;
            let (ct, tag) = chunk.split_at_mut_checked(segs.len_of(i)).ok_or_else(too_short)?;
            let index = u32::try_from(i).map_err(|_| Error::InvalidArgument {
                what: "too many segments",
            })?;
            tag.copy_from_slice(&p.cipher.seal_segment_in_place(index, last, ct)?);
        }
        Ok(())
    }

    /// Prepares a message and writes its complete header (tag included) into
    /// `out`, returning the payload cipher: what a streaming encryptor needs.
    #[cfg(feature = "std")]
    pub(crate) fn start(
        &self,
        context: &EncryptionContext,
        random: impl FnMut(&mut [u8]) -> Result<(), Error>,
        out: &mut Vec<u8>,
    ) -> Result<(PayloadCipher, SegmentSize), Error> {
        let p = self.prepare(context, None, random)?;
        self.start_prepared(p, context, out)
    }

    /// Writes the complete header of a prepared message into `out` and
    /// returns the payload cipher (shared with the async sealer's streams).
    #[cfg(feature = "std")]
    pub(crate) fn start_prepared(
        &self,
        p: Prepared,
        context: &EncryptionContext,
        out: &mut Vec<u8>,
    ) -> Result<(PayloadCipher, SegmentSize), Error> {
        let start = out.len();
        out.reserve(p.header_len);
        self.write_header(&p, context, out);
        let tag = p.cipher.header_tag(out.get(start..).unwrap_or_default())?;
        out.extend_from_slice(&tag);
        Ok((p.cipher, self.segment_size))
    }

    /// Checks the context, draws the data key and message id (one random call),
    /// wraps with every provider, derives the message keys and drops the data key.
    /// `plaintext_len` (`None` when streaming) goes to the first provider's
    /// `generate_data_key_for`, so that a data-key cache can count bytes.
    fn prepare(
        &self,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
        mut random: impl FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> Result<Prepared, Error> {
        self.check_seal_limits(context, self.providers.len())?;
        let (first, others) = self.providers.split_first().ok_or_else(|| Error::InvalidArgument {
            what: "no provider to wrap the data key",
        })?;
        let binding_bytes = context.binding_bytes(self.suite);
        let binding = Binding::from_encoded(self.suite, binding_bytes.as_slice());
        let mut message_id = [0u8; MESSAGE_ID_LEN];
        let (dek, first_wrapped) = match first.generate_data_key(request(binding, plaintext_len))? {
            Some((dek, w)) => {
                random(&mut message_id)?;
                (dek, w)
            }
            None => {
                let mut draw = Zeroizing::new([0u8; DATA_KEY_LEN + MESSAGE_ID_LEN]);
                random(draw.as_mut_slice())?;
                let (k, m) = draw.split_at(DATA_KEY_LEN);
                let mut dek = DataKey::zeroed();
                dek.bytes_mut().copy_from_slice(k);
                message_id.copy_from_slice(m);
                let w = first.wrap(&dek, binding)?;
                (dek, w)
            }
        };
        let other_wrapped = others
            .iter()
            .map(|p| p.wrap(&dek, binding))
            .collect::<Result<Vec<_>, _>>()?;
        check_own_wrapped(&self.providers, &first_wrapped, &other_wrapped)?;
        self.finish_prepare(context, &dek, message_id, first_wrapped, other_wrapped)
    }

    /// The limits a seal checks before any provider is called (shared with
    /// the async sealer).
    pub(crate) fn check_seal_limits(&self, context: &EncryptionContext, providers: usize) -> Result<(), Error> {
        let exceeded = |limit, max| Error::LimitExceeded { limit, max };
        if context.len() > self.limits.max_context_entries() {
            return Err(exceeded(LimitKind::ContextEntries, self.limits.max_context_entries()));
        }
        if context.stored_bytes() > self.limits.max_context_bytes() {
            return Err(exceeded(LimitKind::ContextBytes, self.limits.max_context_bytes()));
        }
        if self.segment_size.bytes() > self.limits.max_segment_size() {
            return Err(exceeded(LimitKind::SegmentSize, self.limits.max_segment_size()));
        }
        let max_wrapped = self.limits.max_wrapped_keys().min(usize::from(u8::MAX));
        if providers > max_wrapped {
            return Err(exceeded(LimitKind::WrappedKeys, max_wrapped));
        }
        Ok(())
    }

    /// Derives the message keys from the wrapped data key and checks the
    /// header length (shared with the async sealer). The caller drops the
    /// data key where it lies.
    pub(crate) fn finish_prepare(
        &self,
        context: &EncryptionContext,
        dek: &DataKey,
        message_id: [u8; MESSAGE_ID_LEN],
        first_wrapped: WrappedKey,
        other_wrapped: Vec<WrappedKey>,
    ) -> Result<Prepared, Error> {
        let exceeded = |limit, max| Error::LimitExceeded { limit, max };
        let keys = crypto::derive(self.suite, self.backend, dek.expose_secret(), &message_id);
        let header_len = core::iter::once(&first_wrapped).chain(&other_wrapped).fold(
            FIXED_LEN
                .saturating_add(context.header_len())
                .saturating_add(COMMITMENT_LEN)
                .saturating_add(1)
                .saturating_add(TAG_LEN),
            |acc, w| {
                let w = w.as_ref();
                acc.saturating_add(format::wrapped_entry_len(w.provider_id, w.key_id, w.bytes))
            },
        );
        if header_len > self.limits.max_header_len() {
            return Err(exceeded(LimitKind::HeaderBytes, self.limits.max_header_len()));
        }
        Ok(Prepared {
            cipher: keys.cipher,
            commitment: keys.commitment,
            message_id,
            first_wrapped,
            other_wrapped,
            header_len,
        })
    }

    /// Writes the header up to, not including, the header tag.
    fn write_header(&self, p: &Prepared, context: &EncryptionContext, out: &mut impl Put) {
        out.put(&MAGIC);
        out.put_u8(VERSION_1);
        out.put_u8(self.suite.id());
        out.put_u8(self.segment_size.exponent());
        out.put_u8(0);
        out.put(&p.message_id);
        context.put_header(out);
        out.put(&p.commitment);
        // At most 255 entries: checked in `prepare`.
        out.put_u8(u8::try_from(p.other_wrapped.len().saturating_add(1)).unwrap_or(u8::MAX));
        for w in p.wrapped() {
            let w = w.as_ref();
            format::put_wrapped_entry(out, w.provider_id, w.key_id, w.key_version.0, w.bytes);
        }
    }

    /// Appends header and payload to `out`; on error `out` is restored.
    pub(crate) fn write(
        &self,
        p: &Prepared,
        context: &EncryptionContext,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let start = out.len();
        let r = self.write_inner(p, context, plaintext, out, start);
        if r.is_err() {
            // Only ciphertext was written, but a caller's buffer is left as
            // it was found: nothing of a failed seal stays in its capacity.
            if let Some(written) = out.get_mut(start..) {
                written.zeroize();
            }
            out.truncate(start);
        }
        r
    }

    fn write_inner(
        &self,
        p: &Prepared,
        context: &EncryptionContext,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Error> {
        let segs = Segments::for_plaintext(plaintext.len(), self.segment_size)?;
        let total = segs
            .payload_len()
            .and_then(|n| n.checked_add(p.header_len))
            .ok_or_else(|| Error::InvalidArgument {
                what: "plaintext too long",
            })?;
        out.try_reserve_exact(total).map_err(|_| Error::InvalidArgument {
            what: "envelope too large to allocate",
        })?;
        self.write_header(p, context, out);
        let tag = p.cipher.header_tag(out.get(start..).unwrap_or_default())?;
        out.extend_from_slice(&tag);
        if self.threads > 1 && segs.count > 1 {
            let payload_start = out.len();
            out.resize(start.saturating_add(total), 0);
            let payload = out.get_mut(payload_start..).unwrap_or_default();
            return run_parallel(
                self.threads,
                Direction::Seal,
                segs,
                plaintext,
                payload,
                |first, src, dst| seal_run(&p.cipher, segs, first, src, dst),
            );
        }
        seal_appending(&p.cipher, segs, plaintext, out)
    }
}

/// The data-key request of a seal.
pub(crate) fn request(binding: Binding<'_>, plaintext_len: Option<u64>) -> crate::DataKeyRequest<'_> {
    let r = crate::DataKeyRequest::new(binding);
    match plaintext_len {
        Some(n) => r.with_plaintext_len(n),
        None => r,
    }
}

/// A plaintext length for [`KeyEncryptionProvider::generate_data_key`]
/// (`None` only on a platform where it does not fit, which no cache counts).
fn len_u64(len: usize) -> Option<u64> {
    u64::try_from(len).ok()
}

/// Opens envelopes with chosen limits.
///
/// Opening checks, in order: the header's structure and limits; the caller's
/// context against the header (missing or mismatched entries are reported by
/// key); unwrapping the data key with the first matching wrapped key that a
/// provider can open; the key commitment (constant time); the header tag; then
/// each segment's tag before that segment is decrypted. Plaintext is released
/// only when every check passed.
#[derive(Clone)]
pub struct Opener<'p> {
    providers: Vec<&'p dyn KeyEncryptionProvider>,
    limits: Limits,
    threads: usize,
    strict_context: bool,
    backend: Backend,
}

impl fmt::Debug for Opener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("providers", &self.providers)
            .field("limits", &self.limits)
            .finish()
    }
}

/// An authenticated header: the payload cipher and where the payload lies.
struct Unlocked {
    cipher: PayloadCipher,
    header_len: usize,
    segs: Segments,
}

impl<'p> Opener<'p> {
    /// An opener unwrapping with `provider`, with default limits.
    pub fn new(provider: &'p dyn KeyEncryptionProvider) -> Self {
        Self {
            providers: alloc::vec![provider],
            limits: Limits::default(),
            threads: 1,
            strict_context: false,
            backend: Backend::default(),
        }
    }

    /// The number of threads set with `threads` (1 by default).
    #[cfg(feature = "std")]
    pub(crate) fn thread_count(&self) -> usize {
        self.threads
    }

    /// Requires the caller's context to name every entry of the envelope's
    /// context, stored ones included (with their values), so an envelope with
    /// any entry the caller did not expect fails with
    /// [`Error::MissingContext`]. Without it, stored entries the caller leaves
    /// out are accepted as the envelope has them: use
    /// [`open_with_context`](Self::open_with_context) to see them.
    #[must_use]
    pub fn strict_context(mut self) -> Self {
        self.strict_context = true;
        self
    }

    /// Verifies and decrypts the segments of one-shot opens, and of streams
    /// read with [`decryptor`](Self::decryptor), on up to `threads` threads.
    /// On failure the whole output is zeroized, as with one thread; a parallel
    /// stream releases a batch (8 segments per thread) only if all of it
    /// verified. Default 1.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Also tries `provider`. For each wrapped key, in header order, the
    /// providers that match it are tried in the order they were given.
    #[must_use]
    pub fn also_try(mut self, provider: &'p dyn KeyEncryptionProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Sets the AEAD implementation (default [`Backend::default`]); every
    /// backend opens every envelope.
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

    /// Opens `envelope` into a new buffer.
    pub fn open(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.open_to(envelope, context, &mut out)?;
        Ok(out)
    }

    /// Opens `envelope` and also returns the whole authenticated context: the
    /// envelope's stored entries and the required ones the caller supplied.
    /// Decide on the data only after checking it (or use
    /// [`strict_context`](Self::strict_context)).
    pub fn open_with_context(
        &self,
        envelope: &[u8],
        context: &EncryptionContext,
    ) -> Result<(Vec<u8>, EncryptionContext), Error> {
        let plaintext = self.open(envelope, context)?;
        let (h, _) = format::parse(envelope, &self.limits)?;
        Ok((plaintext, full_context(&h, context)?))
    }

    /// Opens `envelope` and appends the plaintext to `out`. On error `out` is
    /// unchanged (anything written is zeroized first).
    pub fn open_to(&self, envelope: &[u8], context: &EncryptionContext, out: &mut Vec<u8>) -> Result<(), Error> {
        let (u, payload) = self.unlock(envelope, context)?;
        open_payload(&u.cipher, u.segs, payload, self.threads, out)
    }

    /// Opens in place: `buf` holds the envelope before and the plaintext
    /// after. On error `buf` still holds the envelope, byte for byte: segments
    /// already decrypted are encrypted back (no plaintext is left behind).
    pub fn open_in_place(&self, buf: &mut Vec<u8>, context: &EncryptionContext) -> Result<(), Error> {
        let (mut u, _) = self.unlock(buf, context)?;
        // AWS-LC overwrites a segment that fails to open; this method promises
        // the envelope back byte for byte, so it decrypts with RustCrypto.
        if let Some(twin) = u.cipher.preserving_twin() {
            u.cipher = twin;
        }
        let stride = u.segs.size.saturating_add(TAG_LEN);
        let payload = buf.get_mut(u.header_len..).unwrap_or_default();
        let mut failed = None;
        for (i, chunk) in payload.chunks_mut(stride).enumerate() {
            if let Err(e) = open_chunk_in_place(&u, i, chunk) {
                failed = Some((i, e));
                break;
            }
        }
        if let Some((bad, e)) = failed {
            // Restore the ciphertext of the segments before `bad`.
            for (i, chunk) in payload.chunks_mut(stride).take(bad).enumerate() {
                let last = i.saturating_add(1) == u.segs.count;
                if let (Some((pt, _)), Ok(index)) = (chunk.split_at_mut_checked(u.segs.len_of(i)), u32::try_from(i))
                    && u.cipher.seal_segment_in_place(index, last, pt).is_err()
                {
                    pt.zeroize();
                }
            }
            return Err(e);
        }
        for i in 0..u.segs.count {
            let from = u.header_len.saturating_add(i.saturating_mul(stride));
            let to = i.saturating_mul(u.segs.size);
            buf.copy_within(from..from.saturating_add(u.segs.len_of(i)), to);
        }
        let pt_len = u.segs.plaintext_len();
        if let Some(tail) = buf.get_mut(pt_len..) {
            tail.zeroize();
        }
        buf.truncate(pt_len);
        Ok(())
    }

    /// Parses, routes, unwraps and authenticates the header.
    fn unlock<'e>(&self, envelope: &'e [u8], context: &EncryptionContext) -> Result<(Unlocked, &'e [u8]), Error> {
        let (h, payload) = format::parse(envelope, &self.limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size, h.len)?;
        let cipher = self.unlock_header(&h, context)?;
        Ok((
            Unlocked {
                cipher,
                header_len: h.len,
                segs,
            },
            payload,
        ))
    }

    /// Reconciles the context, unwraps and authenticates a parsed header.
    pub(crate) fn unlock_header(&self, h: &Header<'_>, context: &EncryptionContext) -> Result<PayloadCipher, Error> {
        let binding_bytes = context.reconcile(h.context, h.suite, self.strict_context)?;
        self.unwrap_and_verify(h, Binding::from_encoded(h.suite, binding_bytes.as_slice()))
    }

    /// The limits in force.
    #[cfg(feature = "std")]
    pub(crate) fn limits_ref(&self) -> &Limits {
        &self.limits
    }

    fn unwrap_and_verify(&self, h: &Header<'_>, binding: Binding<'_>) -> Result<PayloadCipher, Error> {
        let mut attempts = 0usize;
        let mut last: Option<ProviderError> = None;
        let mut wrong_key = false;
        let candidates = h.wrapped.iter().map(entry_ref).flat_map(|w| {
            self.providers
                .iter()
                .filter(move |p| p.matches(w))
                .map(move |p| (w, *p))
        });
        for (w, provider) in candidates {
            attempts = attempts.saturating_add(1);
            match provider.unwrap(w, binding) {
                Ok(dek) => match verify_data_key(h, self.backend, &dek)? {
                    Some(cipher) => return Ok(cipher),
                    // Not this envelope's data key (a wrapped key lifted
                    // from another envelope): try the other entries.
                    None => wrong_key = true,
                },
                Err(e) => last = Some(e),
            }
        }
        if wrong_key {
            return Err(Error::Authentication);
        }
        Err(Error::NoProviderCouldUnwrap { attempts, source: last })
    }
}

/// The whole context of an opened envelope: its stored entries and the
/// required ones the caller supplied (shared with the async opener).
pub(crate) fn full_context(h: &Header<'_>, context: &EncryptionContext) -> Result<EncryptionContext, Error> {
    let mut full = EncryptionContext::new();
    for e in h.context.iter() {
        match e.value {
            Some(v) => full.insert(e.key, v)?,
            None => {
                // Reconciling already required it; a typed error, not a default, if not.
                let v = context
                    .get(e.key)
                    .ok_or_else(|| Error::MissingContext { key: e.key.to_string() })?;
                full.insert_required(e.key, v)?;
            }
        }
    }
    Ok(full)
}

/// Fails unless every provider matches the wrapped key it produced: an
/// envelope its own providers would not try to open is a provider bug; catch
/// it when sealing rather than when the data is needed.
pub(crate) fn check_own_wrapped<P: ProviderIdentity + ?Sized>(
    providers: &[&P],
    first: &WrappedKey,
    others: &[WrappedKey],
) -> Result<(), Error> {
    for (p, w) in providers.iter().zip(core::iter::once(first).chain(others)) {
        if !p.matches(w.as_ref()) {
            return Err(Error::Provider(ProviderError::new(
                crate::ProviderErrorKind::Other,
                p.provider_id(),
            )));
        }
    }
    Ok(())
}

/// Checks an unwrapped data key against the header: `Ok(None)` if it is not
/// this envelope's key (commitment mismatch, constant time), an error if the
/// header tag fails, else the payload cipher. The caller drops the data key
/// where it lies (moving it would leave a copy behind).
pub(crate) fn verify_data_key(h: &Header<'_>, backend: Backend, dek: &DataKey) -> Result<Option<PayloadCipher>, Error> {
    let keys = crypto::derive(h.suite, backend, dek.expose_secret(), h.message_id);
    if !crypto::commitment_matches(&keys.commitment, h.commitment) {
        return Ok(None);
    }
    keys.cipher.verify_header_tag(h.authenticated, h.tag)?;
    Ok(Some(keys.cipher))
}

/// Decrypts an authenticated payload and appends the plaintext to `out`; on
/// error `out` is unchanged (anything written is zeroized first).
pub(crate) fn open_payload(
    cipher: &PayloadCipher,
    segs: Segments,
    payload: &[u8],
    threads: usize,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    let pt_len = segs.plaintext_len();
    out.try_reserve_exact(pt_len).map_err(|_| Error::InvalidArgument {
        what: "plaintext too large to allocate",
    })?;
    let r = if threads > 1 && segs.count > 1 {
        out.resize(start.saturating_add(pt_len), 0);
        let dst = out.get_mut(start..).unwrap_or_default();
        run_parallel(threads, Direction::Open, segs, payload, dst, |first, src, dst| {
            open_run(cipher, segs, first, src, dst)
        })
    } else {
        open_appending(cipher, segs, payload, out)
    };
    if r.is_err() {
        if let Some(written) = out.get_mut(start..) {
            written.zeroize();
        }
        out.truncate(start);
    }
    r
}

/// The parts of a parsed header the async opener routes on.
pub(crate) fn wrapped_refs<'h>(h: &'h Header<'_>) -> impl Iterator<Item = WrappedKeyRef<'h>> + 'h {
    h.wrapped.iter().map(entry_ref)
}

/// One thread: grows `out` by one segment (zeroed) at a time and encrypts
/// into it while it is in cache. Zero-filling the whole output first would be
/// one more pass over memory, and copying the plaintext in to encrypt it in
/// place costs a read as well as a write (a quarter of the time of a megabyte
/// with AWS-LC). `out` has the capacity reserved.
fn seal_appending(cipher: &PayloadCipher, segs: Segments, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut chunks = plaintext.chunks(segs.size.max(1));
    for i in 0..segs.count {
        let last = i.saturating_add(1) == segs.count;
        let pt = chunks.next().unwrap_or_default();
        let at = out.len();
        out.resize(at.saturating_add(pt.len()).saturating_add(TAG_LEN), 0);
        let index = u32::try_from(i).map_err(|_| Error::InvalidArgument {
            what: "too many segments",
        })?;
        cipher.seal_segment(index, last, pt, out.get_mut(at..).unwrap_or_default())?;
    }
    Ok(())
}

/// One thread: grows `out` by one segment (zeroed) at a time and verifies and
/// decrypts into it. On error the caller zeroizes what was appended (a failed
/// segment leaves zeros or, with AWS-LC, zeroized bytes: never plaintext).
fn open_appending(cipher: &PayloadCipher, segs: Segments, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let stride = segs.size.saturating_add(TAG_LEN);
    for (i, chunk) in payload.chunks(stride).enumerate() {
        let last = i.saturating_add(1) == segs.count;
        let (ct, tag) = chunk.split_at_checked(segs.len_of(i)).ok_or(Error::Authentication)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Authentication)?;
        let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
        let at = out.len();
        out.resize(at.saturating_add(ct.len()), 0);
        cipher.open_segment(index, last, ct, out.get_mut(at..).unwrap_or_default(), tag)?;
    }
    Ok(())
}

/// Encrypts consecutive segments starting at segment `first`: `src` holds
/// their plaintext, `dst` room for their ciphertexts and tags.
pub(crate) fn seal_run(
    cipher: &PayloadCipher,
    segs: Segments,
    first: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), Error> {
    let stride = segs.size.saturating_add(TAG_LEN);
    let mut chunks = src.chunks(segs.size);
    for (j, out) in dst.chunks_mut(stride).enumerate() {
        let i = first.saturating_add(j);
        let last = i.saturating_add(1) == segs.count;
        let pt = chunks.next().unwrap_or_default();
        let index = u32::try_from(i).map_err(|_| Error::InvalidArgument {
            what: "too many segments",
        })?;
        cipher.seal_segment(index, last, pt, out)?;
    }
    Ok(())
}

/// Verifies and decrypts consecutive segments starting at segment `first`.
fn open_run(cipher: &PayloadCipher, segs: Segments, first: usize, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
    let stride = segs.size.saturating_add(TAG_LEN);
    let mut outs = dst.chunks_mut(segs.size.max(1));
    for (j, chunk) in src.chunks(stride).enumerate() {
        let i = first.saturating_add(j);
        let last = i.saturating_add(1) == segs.count;
        let (ct, tag) = chunk.split_at_checked(segs.len_of(i)).ok_or(Error::Authentication)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Authentication)?;
        let out = if ct.is_empty() {
            &mut [][..]
        } else {
            outs.next().ok_or(Error::Authentication)?
        };
        let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
        cipher.open_segment(index, last, ct, out, tag)?;
    }
    Ok(())
}

/// Which side of a segment run carries the tags.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Seal,
    Open,
}

/// Runs `work` over the segments, on up to `threads` scoped threads, each
/// taking a contiguous run of whole segments of `src` (input) and `dst`
/// (output). Same bytes as one thread.
pub(crate) fn run_parallel<F>(
    threads: usize,
    direction: Direction,
    segs: Segments,
    src: &[u8],
    dst: &mut [u8],
    work: F,
) -> Result<(), Error>
where
    F: Fn(usize, &[u8], &mut [u8]) -> Result<(), Error> + Sync,
{
    #[cfg(feature = "std")]
    if threads > 1 && segs.count > 1 {
        let per = segs.count.div_ceil(threads);
        let stride = segs.size.saturating_add(TAG_LEN);
        let (src_unit, dst_unit) = match direction {
            Direction::Seal => (segs.size, stride),
            Direction::Open => (stride, segs.size),
        };
        let work = &work;
        return std::thread::scope(|scope| {
            let handles: Vec<_> = src
                .chunks(per.saturating_mul(src_unit))
                .zip(dst.chunks_mut(per.saturating_mul(dst_unit)))
                .enumerate()
                .map(|(t, (s, d))| scope.spawn(move || work(t.saturating_mul(per), s, d)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join().unwrap_or(Err(Error::InvalidArgument {
                    what: "a worker thread panicked",
                }))
            })
        });
    }
    let _ = (threads, direction, segs);
    work(0, src, dst)
}

fn open_chunk_in_place(u: &Unlocked, i: usize, chunk: &mut [u8]) -> Result<(), Error> {
    let last = i.saturating_add(1) == u.segs.count;
    let (ct, tag) = chunk
        .split_at_mut_checked(u.segs.len_of(i))
        .ok_or(Error::Authentication)?;
    let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Authentication)?;
    let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
    u.cipher.open_segment_in_place(index, last, ct, &tag)
}

/// Small, fast tests of the whole seal/open path, sized for Miri (CI runs
/// the unit tests under it); the integration tests cover sizes and limits.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalKek;

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
