//! The seal side of the core: the key phase ([`SealPlan`]) between provider
//! calls, and the payload of a one-shot seal ([`Prepared`]).

use alloc::vec::Vec;

use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::context::EncryptionContext;
use crate::crypto::{self, PayloadCipher};
use crate::error::{Error, LimitKind, ProviderError, ProviderErrorKind};
use crate::format::binding::{Binding, BindingBytes};
use crate::format::codec::SliceWriter;
use crate::format::{COMMITMENT_LEN, Limits, MESSAGE_ID_LEN, Put, SegmentSize, Segments, TAG_LEN, v1};
use crate::keys::{DATA_KEY_LEN, DataKey, WrappedKey, WrappedKeyRef};
use crate::pq::MixCheck;
use crate::provider::{DataKeyRequest, ProviderIdentity};
use crate::suite::{Backend, Suite};

use super::parallel;

/// A sealer's options (shared by the sync and async sealers).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SealOptions {
    pub(crate) suite: Suite,
    pub(crate) segment_size: SegmentSize,
    pub(crate) limits: Limits,
    pub(crate) backend: Backend,
    pub(crate) threads: usize,
    /// The caller's opt-in to mixing classical and post-quantum wraps.
    pub(crate) allow_classical_with_pq: bool,
    /// `Some(k)`: the seal succeeds when at least `k` providers wrapped (an
    /// explicit opt-in); `None`: every provider must wrap (the default).
    pub(crate) quorum: Option<usize>,
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            suite: Suite::default(),
            segment_size: SegmentSize::default(),
            limits: Limits::default(),
            backend: Backend::default(),
            threads: 1,
            allow_classical_with_pq: false,
            quorum: None,
        }
    }
}

/// A provider that failed to wrap the data key of a seal that still met its
/// quorum ([`Sealer::quorum`](crate::Sealer::quorum)): the envelope lacks
/// this provider's wrapped key. Heal it later by adding the missing wrap
/// (header only), for example with the bulk engine's heal
/// ([`rotation::Job`](crate::rotation::Job) with a policy that
/// [requires](crate::rotation::MigrationPolicy::require) the provider).
#[derive(Debug)]
#[non_exhaustive]
pub struct WrapFailure {
    /// The provider's position in the sealer (0: the first).
    pub index: usize,
    /// Why it did not wrap.
    pub error: ProviderError,
}

/// The key phase of one seal, advanced by a driver that makes the provider
/// calls: [`new`](Self::new) checks the limits and encodes the binding; the
/// first provider is asked for a data key ([`request`](Self::request),
/// [`generated`](Self::generated)); every provider still without a wrap
/// ([`next_wrapper`](Self::next_wrapper)) wraps [`dek`](Self::dek)
/// ([`wrapped`](Self::wrapped)); [`finish`](Self::finish) checks the wrapped
/// keys, derives the message keys and drops the data key where it lies.
///
/// The data key is filled in place and never moved, so a driver whose state
/// lives on the heap (an async sealer's future) leaves no copy of it there.
pub(crate) struct SealPlan<'c, 'p, P: ?Sized> {
    opts: SealOptions,
    context: &'c EncryptionContext,
    providers: &'p [&'p P],
    head: &'p P,
    binding: BindingBytes,
    plaintext_len: Option<u64>,
    dek: DataKey,
    message_id: [u8; MESSAGE_ID_LEN],
    wrapped: Vec<WrappedKey>,
    first: Option<WrappedKey>,
    /// The next provider to wrap (an index into `providers`).
    cursor: usize,
    /// Providers that failed under a quorum (empty otherwise).
    failed: Vec<WrapFailure>,
}

impl<'c, 'p, P: ProviderIdentity + ?Sized> SealPlan<'c, 'p, P> {
    /// Checks every limit that does not depend on a provider's answer and
    /// encodes the binding. `plaintext_len` is `None` when streaming.
    pub(crate) fn new(
        opts: &SealOptions,
        context: &'c EncryptionContext,
        providers: &'p [&'p P],
        plaintext_len: Option<u64>,
    ) -> Result<Self, Error> {
        let limits = &opts.limits;
        let exceeded = |limit, max| Error::LimitExceeded { limit, max };
        let head = providers.first().copied().ok_or_else(|| Error::InvalidArgument {
            what: "no provider to wrap the data key",
        })?;
        if context.len() > limits.max_context_entries() {
            return Err(exceeded(LimitKind::ContextEntries, limits.max_context_entries()));
        }
        if context.stored_bytes() > limits.max_context_bytes() {
            return Err(exceeded(LimitKind::ContextBytes, limits.max_context_bytes()));
        }
        if opts.segment_size.bytes() > limits.max_segment_size() {
            return Err(exceeded(LimitKind::SegmentSize, limits.max_segment_size()));
        }
        let max_wrapped = limits.max_wrapped_keys().min(usize::from(u8::MAX));
        if providers.len() > max_wrapped {
            return Err(exceeded(LimitKind::WrappedKeys, max_wrapped));
        }
        if opts.quorum.is_some_and(|k| k == 0 || k > providers.len()) {
            return Err(Error::InvalidArgument {
                what: "a quorum must be between 1 and the number of providers",
            });
        }
        let mut mix = MixCheck::new(opts.allow_classical_with_pq);
        for p in providers {
            mix.add(p.provider_id(), p.post_quantum())?;
        }
        Ok(Self {
            opts: *opts,
            context,
            providers,
            head,
            binding: context.binding_bytes(opts.suite),
            plaintext_len,
            dek: DataKey::zeroed(),
            message_id: [0u8; MESSAGE_ID_LEN],
            wrapped: Vec::new(),
            first: None,
            cursor: 0,
            failed: Vec::new(),
        })
    }

    /// Records a provider failure: under a quorum the provider is skipped
    /// (and reported); otherwise the seal fails with it.
    fn failure(&mut self, error: ProviderError) -> Result<(), Error> {
        if self.opts.quorum.is_none() {
            return Err(Error::Provider(error));
        }
        self.failed.push(WrapFailure {
            index: self.cursor,
            error,
        });
        self.cursor = self.cursor.saturating_add(1);
        Ok(())
    }

    /// The provider asked for the data key (and that wraps first).
    pub(crate) fn first(&self) -> &'p P {
        self.head
    }

    /// The binding every wrap is bound to.
    pub(crate) fn binding(&self) -> Binding<'_> {
        Binding::from_encoded(self.opts.suite, self.binding.as_slice())
    }

    /// The first provider's data-key request.
    pub(crate) fn request(&self) -> DataKeyRequest<'_> {
        let r = DataKeyRequest::new(self.binding());
        match self.plaintext_len {
            Some(n) => r.with_plaintext_len(n),
            None => r,
        }
    }

    /// Takes the first provider's answer to [`request`](Self::request): its
    /// data key and wrap, or `None`, in which case the data key and the
    /// message id come from one call to `random` (else only the message id).
    /// A failure ends the seal, unless a quorum is set: then the first
    /// provider is recorded as failed and the key is drawn locally.
    pub(crate) fn generated(
        &mut self,
        generated: Result<Option<(DataKey, WrappedKey)>, ProviderError>,
        mut random: impl FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let generated = match generated {
            Ok(g) => g,
            Err(e) => {
                self.failure(e)?;
                None
            }
        };
        match generated {
            Some((key, w)) => {
                self.dek.bytes_mut().copy_from_slice(key.expose_secret());
                drop(key);
                random(&mut self.message_id)?;
                self.first = Some(w);
                self.cursor = 1;
            }
            None => {
                let mut draw = Zeroizing::new([0u8; DATA_KEY_LEN + MESSAGE_ID_LEN]);
                random(draw.as_mut_slice())?;
                let (k, m) = draw.split_at(DATA_KEY_LEN);
                self.dek.bytes_mut().copy_from_slice(k);
                self.message_id.copy_from_slice(m);
            }
        }
        Ok(())
    }

    /// The next provider that has not wrapped the data key yet, in order.
    pub(crate) fn next_wrapper(&self) -> Option<&'p P> {
        self.providers.get(self.cursor).copied()
    }

    /// The data key, to wrap.
    pub(crate) fn dek(&self) -> &DataKey {
        &self.dek
    }

    /// Records the wrap (or the failure) of the provider
    /// [`next_wrapper`](Self::next_wrapper) gave. A failure ends the seal
    /// unless a quorum is set.
    pub(crate) fn wrapped(&mut self, w: Result<WrappedKey, ProviderError>) -> Result<(), Error> {
        let w = match w {
            Ok(w) => w,
            Err(e) => return self.failure(e),
        };
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.wrapped.push(w);
        }
        self.cursor = self.cursor.saturating_add(1);
        Ok(())
    }

    /// Checks that every provider wrapped and matches its own wrap, derives
    /// the payload cipher and commitment, and checks the header length.
    ///
    /// Takes `&mut self`, not `self`: the plan (and its data key) is never
    /// moved out of where the driver keeps it (an async driver's future may
    /// live on the heap, and a moved-from copy there would not be wiped). The
    /// data key is zeroized where it lies when the plan is dropped.
    pub(crate) fn finish(&mut self) -> Result<Prepared<'c>, Error> {
        let done = self.wrapped.len().saturating_add(usize::from(self.first.is_some()));
        let required = self.opts.quorum.unwrap_or(self.providers.len());
        if done < required || done.saturating_add(self.failed.len()) != self.providers.len() {
            return Err(Error::QuorumNotMet {
                required,
                wrapped: done,
                last: self.failed.pop().map(|f| f.error),
            });
        }
        let first = self.first.take().ok_or_else(|| Error::InvalidArgument {
            what: "no provider to wrap the data key",
        })?;
        let failed = &self.failed;
        let succeeded = self
            .providers
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.iter().any(|f| f.index == *i))
            .map(|(_, p)| *p);
        check_own(succeeded, core::iter::once(&first).chain(&self.wrapped))?;
        let keys = crypto::derive(
            self.opts.suite,
            self.opts.backend,
            self.dek.expose_secret(),
            &self.message_id,
        );
        let header_len = v1::header_len(
            self.context.header_fields(),
            core::iter::once(first.as_ref()).chain(self.wrapped.iter().map(WrappedKey::as_ref)),
        );
        if header_len > self.opts.limits.max_header_len() {
            return Err(Error::LimitExceeded {
                limit: LimitKind::HeaderBytes,
                max: self.opts.limits.max_header_len(),
            });
        }
        Ok(Prepared {
            opts: self.opts,
            context: self.context,
            cipher: keys.cipher,
            commitment: keys.commitment,
            message_id: self.message_id,
            first,
            others: core::mem::take(&mut self.wrapped),
            header_len,
            failed: core::mem::take(&mut self.failed),
        })
    }
}

/// Fails unless every provider matches the wrapped key it produced: an
/// envelope its own providers would not try to open is a provider bug; catch
/// it when sealing (or rewrapping) rather than when the data is needed.
pub(crate) fn check_own<'w, 'q, P: ProviderIdentity + ?Sized + 'q>(
    providers: impl IntoIterator<Item = &'q P>,
    wrapped: impl Iterator<Item = &'w WrappedKey>,
) -> Result<(), Error> {
    for (p, w) in providers.into_iter().zip(wrapped) {
        if !p.matches(w.as_ref()) {
            return Err(Error::Provider(ProviderError::new(
                ProviderErrorKind::Other,
                p.provider_id(),
            )));
        }
    }
    Ok(())
}

/// Everything a seal needs once the data key is wrapped; holds no data key.
pub(crate) struct Prepared<'c> {
    opts: SealOptions,
    context: &'c EncryptionContext,
    cipher: PayloadCipher,
    commitment: [u8; COMMITMENT_LEN],
    message_id: [u8; MESSAGE_ID_LEN],
    /// The first provider's wrapped key, kept apart so that the common
    /// one-provider seal does not allocate a vector.
    first: WrappedKey,
    others: Vec<WrappedKey>,
    /// Whole header, tag included.
    header_len: usize,
    /// Providers that did not wrap under a quorum (empty otherwise).
    failed: Vec<WrapFailure>,
}

impl Prepared<'_> {
    fn wrapped(&self) -> impl Iterator<Item = WrappedKeyRef<'_>> + Clone {
        core::iter::once(self.first.as_ref()).chain(self.others.iter().map(WrappedKey::as_ref))
    }

    /// The providers that did not wrap (under a quorum), taken out.
    pub(crate) fn take_failures(&mut self) -> Vec<WrapFailure> {
        core::mem::take(&mut self.failed)
    }

    /// The options the seal was planned with.
    #[cfg(feature = "std")]
    pub(crate) fn options(&self) -> &SealOptions {
        &self.opts
    }

    /// Writes the header up to, not including, the header tag.
    fn put_header(&self, out: &mut impl Put) {
        let fields = v1::Fields {
            suite: self.opts.suite,
            segment_size: self.opts.segment_size,
            message_id: &self.message_id,
            commitment: &self.commitment,
        };
        v1::encode(out, fields, self.context.header_fields(), self.wrapped());
    }

    /// Appends the complete header, tag included, to `out`.
    pub(crate) fn write_header(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.reserve(self.header_len);
        self.put_header(out);
        let tag = self.cipher.header_tag(out.get(start..).unwrap_or_default())?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The whole envelope of `plaintext`, in a buffer of its own (one
    /// allocation, sized exactly).
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.seal_to(plaintext, &mut out)?;
        Ok(out)
    }

    /// Appends the whole envelope of `plaintext` to `out` (one reservation);
    /// on error `out` is restored (anything written is zeroized).
    pub(crate) fn seal_to(&self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let r = self.seal_to_inner(plaintext, out, start);
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

    /// The segmentation of `len` plaintext bytes and the whole envelope's length.
    fn layout(&self, len: usize) -> Result<(Segments, usize), Error> {
        let segs = Segments::for_plaintext(len, self.opts.segment_size)?;
        let total = segs
            .payload_len()
            .and_then(|n| n.checked_add(self.header_len))
            .ok_or_else(|| Error::InvalidArgument {
                what: "plaintext too long",
            })?;
        Ok((segs, total))
    }

    fn seal_to_inner(&self, plaintext: &[u8], out: &mut Vec<u8>, start: usize) -> Result<(), Error> {
        let (segs, total) = self.layout(plaintext.len())?;
        out.try_reserve_exact(total).map_err(|_| Error::InvalidArgument {
            what: "envelope too large to allocate",
        })?;
        self.write_header(out)?;
        let threads = parallel::threads_for(self.opts.threads, plaintext.len());
        if threads > 1 && segs.count > 1 {
            let payload_start = out.len();
            out.resize(start.saturating_add(total), 0);
            let payload = out.get_mut(payload_start..).unwrap_or_default();
            return seal_parallel(&self.cipher, threads, segs, 0, plaintext, payload);
        }
        seal_appending(&self.cipher, segs, plaintext, out)
    }

    /// Writes the whole envelope of `plaintext` at the start of `out` and
    /// returns its length. `out` too short: [`Error::BufferTooSmall`] with
    /// the exact length, and `out` untouched. On any other error what was
    /// written is zeroized. No allocation, no zero-filling: every byte of
    /// the envelope is written once.
    pub(crate) fn seal_into(&self, plaintext: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let (segs, total) = self.layout(plaintext.len())?;
        let dst = out.get_mut(..total).ok_or(Error::BufferTooSmall { needed: total })?;
        let r = self.seal_exact(segs, plaintext, dst);
        if r.is_err() {
            dst.zeroize();
        }
        r.map(|()| total)
    }

    /// [`seal_into`](Self::seal_into) into a `dst` of exactly the envelope's length.
    fn seal_exact(&self, segs: Segments, plaintext: &[u8], dst: &mut [u8]) -> Result<(), Error> {
        let (header, payload) = dst.split_at_mut_checked(self.header_len).ok_or_else(too_short)?;
        self.write_header_into(header)?;
        let threads = parallel::threads_for(self.opts.threads, plaintext.len());
        seal_parallel(&self.cipher, threads, segs, 0, plaintext, payload)
    }

    /// Writes the complete header, tag included, into `header` (exactly
    /// [`header_len`](Self) bytes).
    fn write_header_into(&self, header: &mut [u8]) -> Result<(), Error> {
        let (authenticated, tag) = header
            .split_at_mut_checked(self.header_len.saturating_sub(TAG_LEN))
            .ok_or_else(too_short)?;
        self.put_header(&mut SliceWriter::new(authenticated));
        tag.copy_from_slice(&self.cipher.header_tag(authenticated)?);
        Ok(())
    }

    /// Seals in place: `buf` holds the plaintext before and the envelope
    /// after. Errors before this call (providers, limits) left `buf` alone,
    /// and so does an allocation failure here. An error once encryption has
    /// begun (a cipher refusal or a segment index past the format's range,
    /// both ruled out by the limits checked in `layout`) zeroizes `buf`:
    /// half encrypted, it is neither the plaintext nor an envelope.
    ///
    /// Each segment moves right to its place (the header and the tags before
    /// it) and is encrypted there at once, last segment first, so the move
    /// and the encryption share one trip through the cache.
    pub(crate) fn seal_in_place(&self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let (segs, total) = self.layout(buf.len())?;
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
        let r = self.seal_moving(segs, buf);
        if r.is_err() {
            buf.zeroize();
        }
        r
    }

    /// The loop of [`seal_in_place`](Self::seal_in_place): `buf` has the
    /// envelope's length, the plaintext at its start.
    fn seal_moving(&self, segs: Segments, buf: &mut [u8]) -> Result<(), Error> {
        let stride = segs.stride();
        // Segments only move right: last first, none overwrites one not yet moved.
        for i in (0..segs.count).rev() {
            let (from, len) = (i.saturating_mul(segs.size), segs.len_of(i));
            let to = self.header_len.saturating_add(i.saturating_mul(stride));
            buf.copy_within(from..from.saturating_add(len), to);
            let end = to.saturating_add(len).saturating_add(TAG_LEN);
            let chunk = buf.get_mut(to..end).ok_or_else(too_short)?;
            let (ct, tag) = chunk.split_at_mut_checked(len).ok_or_else(too_short)?;
            let last = i.saturating_add(1) == segs.count;
            tag.copy_from_slice(&self.cipher.seal_segment_in_place(Segments::index(i)?, last, ct)?);
        }
        self.write_header_into(buf.get_mut(..self.header_len).ok_or_else(too_short)?)
    }

    /// The header (tag included), the payload cipher and the segment size: a
    /// stream's start.
    #[cfg(feature = "std")]
    pub(crate) fn into_stream_start(self) -> Result<(Vec<u8>, PayloadCipher, SegmentSize), Error> {
        let mut header = Vec::new();
        self.write_header(&mut header)?;
        Ok((header, self.cipher, self.opts.segment_size))
    }
}

fn too_short() -> Error {
    Error::InvalidArgument {
        what: "buffer too short",
    }
}

/// One thread: grows `out` by one segment (zeroed) at a time and encrypts
/// into it while it is in cache. Zero-filling the whole output first would be
/// one more pass over memory, and copying the plaintext in to encrypt it in
/// place costs a read as well as a write. `out` has the capacity reserved.
fn seal_appending(cipher: &PayloadCipher, segs: Segments, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut chunks = plaintext.chunks(segs.size.max(1));
    for i in 0..segs.count {
        let last = i.saturating_add(1) == segs.count;
        let pt = chunks.next().unwrap_or_default();
        let at = out.len();
        out.resize(at.saturating_add(pt.len()).saturating_add(TAG_LEN), 0);
        cipher.seal_segment(Segments::index(i)?, last, pt, out.get_mut(at..).unwrap_or_default())?;
    }
    Ok(())
}

/// Encrypts consecutive segments starting at segment `first` of a payload
/// laid out by `segs` (which says which one is last): `src` holds their
/// plaintext, `dst` room for their ciphertexts and tags.
pub(crate) fn seal_run(
    cipher: &PayloadCipher,
    segs: Segments,
    first: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), Error> {
    let mut chunks = src.chunks(segs.size.max(1));
    for (j, out) in dst.chunks_mut(segs.stride()).enumerate() {
        let i = first.saturating_add(j);
        let last = i.saturating_add(1) == segs.count;
        let pt = chunks.next().unwrap_or_default();
        cipher.seal_segment(Segments::index(i)?, last, pt, out)?;
    }
    Ok(())
}

/// Seals the `batch.count` segments of `src` (the first is segment `base` of
/// a payload laid out by `whole`) into `dst` on up to `threads` threads.
pub(crate) fn seal_parallel_batch(
    cipher: &PayloadCipher,
    threads: usize,
    batch: Segments,
    whole: Segments,
    base: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), Error> {
    if threads <= 1 || batch.count <= 1 {
        // An empty batch still seals one (empty) segment.
        return seal_run(cipher, whole, base, src, dst);
    }
    let per = batch.count.div_ceil(threads).max(1);
    let pairs = src
        .chunks(per.saturating_mul(batch.size))
        .zip(dst.chunks_mut(per.saturating_mul(batch.stride())));
    parallel::run(pairs, |t, (s, d)| {
        seal_run(cipher, whole, base.saturating_add(t.saturating_mul(per)), s, d)
    })
}

fn seal_parallel(
    cipher: &PayloadCipher,
    threads: usize,
    segs: Segments,
    base: usize,
    src: &[u8],
    dst: &mut [u8],
) -> Result<(), Error> {
    seal_parallel_batch(cipher, threads, segs, segs, base, src, dst)
}
