//! Streaming encryption and decryption over tokio's `AsyncWrite` /
//! `AsyncRead`: the same format, bytes and guarantees as the blocking
//! [`Encryptor`](crate::Encryptor) / [`Decryptor`](crate::Decryptor).
//!
//! Nothing here blocks: all I/O goes through the inner reader or writer's
//! `poll_*` methods, and the cryptography is bounded per segment. The one
//! synchronous step is the provider call that wraps (on seal) or unwraps (on
//! open) the data key, made inside the constructor's future; see
//! [`Sealer::async_encryptor`] and [`Opener::async_decryptor`]. With
//! [`AsyncSealer::async_encryptor`](crate::AsyncSealer::async_encryptor) and
//! [`AsyncOpener::async_decryptor`](crate::AsyncOpener::async_decryptor) that
//! call is awaited too, for providers that are async.

use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::boxed::Box;
use std::io;
use std::vec::Vec;

use rand_core::TryCryptoRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use zeroize::Zeroize;

use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::envelope::{Opener, Sealer};
use crate::error::Error;
use crate::format::TAG_LEN;
use crate::keys::{os_random, rng_random};
use crate::stream::{HeaderStep, frame_segment, header_step, io_error};

fn poisoned() -> io::Error {
    io::Error::other("lockbox stream already failed")
}

fn shut() -> io::Error {
    io::Error::other("lockbox stream already shut down")
}

/// Where an [`AsyncEncryptor`] is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepting plaintext.
    Open,
    /// The final segment is sealed: writing it out and flushing.
    Sealed,
    /// Everything is written and flushed: shutting the inner writer down.
    Flushed,
    /// The inner writer is shut down; the envelope is complete.
    Closed,
}

/// Encrypts a stream into an envelope, segment by segment, writing to an
/// [`AsyncWrite`].
///
/// Created by [`Sealer::async_encryptor`]; the header is written before it is
/// returned. Bytes written are buffered up to one segment, encrypted and
/// passed on (at most one sealed segment waits for the inner writer, so a
/// slow writer pushes back through `poll_write`). `poll_flush` writes out
/// pending ciphertext and flushes the inner writer; the partly filled segment
/// stays buffered, as a segment can only be written whole.
///
/// The stream **must** be ended with [`shutdown`](AsyncWriteExt::shutdown)
/// (`poll_shutdown`) or [`finish`](Self::finish): this seals the last segment
/// with the final flag, writes it, and flushes and shuts down the inner
/// writer. An encryptor dropped before that leaves an envelope that never
/// opens (its buffered plaintext is zeroized). After an error every further
/// call fails.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// runtime.block_on(async {
///     let kek = lockbox::LocalKek::generate().map_err(std::io::Error::other)?;
///     let ctx = lockbox::EncryptionContext::new();
///     let mut enc = lockbox::Sealer::new(&kek).async_encryptor(Vec::new(), &ctx).await?;
///     enc.write_all(b"streamed ").await?;
///     enc.write_all(b"plaintext").await?;
///     let envelope = enc.finish().await?;
///     assert_eq!(lockbox::open(&kek, &envelope, &ctx).unwrap(), b"streamed plaintext");
///
///     let mut dec = lockbox::Opener::new(&kek).async_decryptor(&envelope[..], &ctx).await?;
///     let mut plaintext = Vec::new();
///     dec.read_to_end(&mut plaintext).await?;
///     assert_eq!(plaintext, b"streamed plaintext");
///     Ok(())
/// })
/// # }
/// ```
#[must_use = "an AsyncEncryptor must be ended with .shutdown() or .finish(), or the envelope never opens"]
pub struct AsyncEncryptor<W: AsyncWrite + Unpin> {
    /// `None` only once [`finish`](Self::finish) has taken it.
    inner: Option<W>,
    /// Boxed so that moving the encryptor (out of the future that built it,
    /// which may live on the heap) moves a pointer, not the key schedule.
    cipher: Box<PayloadCipher>,
    segment: usize,
    /// Plaintext of the segment being filled; capacity segment + tag.
    buf: Vec<u8>,
    /// Sealed ciphertext (segment and tag) not yet accepted by `inner`.
    out: Vec<u8>,
    /// How much of `out` `inner` has accepted.
    out_pos: usize,
    /// Index of the next segment to seal.
    index: u32,
    phase: Phase,
    failed: bool,
}

impl Sealer<'_> {
    /// Starts a streaming encryption into `writer`; the header is written
    /// (with `write_all`, not flushed) before this returns.
    ///
    /// The data key is wrapped by each provider's synchronous
    /// [`wrap`](crate::KeyEncryptionProvider::wrap), called inside this
    /// future: CPU only and brief for a [`LocalKek`](crate::LocalKek), but a
    /// provider that blocks on network I/O blocks the thread polling it.
    /// For a network key store, use
    /// [`AsyncSealer::async_encryptor`](crate::AsyncSealer::async_encryptor),
    /// which awaits an [`AsyncKeyEncryptionProvider`](crate::AsyncKeyEncryptionProvider).
    pub async fn async_encryptor<W: AsyncWrite + Unpin>(
        &self,
        writer: W,
        context: &EncryptionContext,
    ) -> io::Result<AsyncEncryptor<W>> {
        AsyncEncryptor::start(self, writer, context, os_random).await
    }

    /// [`async_encryptor`](Self::async_encryptor) drawing the data key and
    /// message id from `rng` (see [`Sealer::seal_with_rng`]).
    pub async fn async_encryptor_with_rng<W: AsyncWrite + Unpin, R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        writer: W,
        context: &EncryptionContext,
    ) -> io::Result<AsyncEncryptor<W>> {
        AsyncEncryptor::start(self, writer, context, |b| rng_random(rng, b)).await
    }
}

impl<W: AsyncWrite + Unpin> AsyncEncryptor<W> {
    async fn start(
        sealer: &Sealer<'_>,
        writer: W,
        context: &EncryptionContext,
        random: impl FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> io::Result<Self> {
        let mut header = Vec::new();
        // Boxed in a block without an await: no unboxed copy of the key
        // schedule is kept in this future's state.
        let (cipher, size) = {
            let (cipher, size) = sealer.start(context, random, &mut header).map_err(io_error)?;
            (Box::new(cipher), size)
        };
        Self::from_header(writer, &header, cipher, size).await
    }

    /// Writes the complete `header` and returns an encryptor for the payload
    /// (shared with [`AsyncSealer`](crate::AsyncSealer)'s streams).
    pub(crate) async fn from_header(
        mut writer: W,
        header: &[u8],
        cipher: Box<PayloadCipher>,
        size: crate::format::SegmentSize,
    ) -> io::Result<Self> {
        writer.write_all(header).await?;
        let segment = size.bytes();
        let capacity = segment.saturating_add(TAG_LEN);
        Ok(Self {
            inner: Some(writer),
            cipher,
            segment,
            buf: Vec::with_capacity(capacity),
            out: Vec::with_capacity(capacity),
            out_pos: 0,
            index: 0,
            phase: Phase::Open,
            failed: false,
        })
    }

    /// Seals the last segment, writes it, flushes and shuts down the inner
    /// writer (as [`shutdown`](AsyncWriteExt::shutdown) does), and returns it.
    pub async fn finish(mut self) -> io::Result<W> {
        self.shutdown().await?;
        self.inner.take().ok_or_else(poisoned)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> Option<&W> {
        self.inner.as_ref()
    }

    /// Marks the encryptor failed if `r` is an error.
    fn check<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Writes pending ciphertext to the inner writer until none is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = self.inner.as_mut().ok_or_else(poisoned)?;
        while self.out_pos < self.out.len() {
            let pending = self.out.get(self.out_pos..).unwrap_or_default();
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Encrypts the buffered segment and queues it, with its tag, in `out`.
    fn emit(&mut self, last: bool) -> io::Result<()> {
        let next = self
            .index
            .checked_add(1)
            .ok_or_else(|| io::Error::other("more than 2^32 - 1 segments"))?;
        let tag = self
            .cipher
            .seal_segment_in_place(self.index, last, &mut self.buf)
            .map_err(io_error)?;
        // Within capacity (segment + tag): the plaintext is never reallocated.
        self.buf.extend_from_slice(&tag);
        if self.out.is_empty() {
            // `buf` now holds only ciphertext: hand it over without a copy.
            core::mem::swap(&mut self.buf, &mut self.out);
            self.out_pos = 0;
        } else {
            self.out.extend_from_slice(&self.buf);
        }
        self.buf.clear();
        self.index = next;
        Ok(())
    }

    fn write_inner(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut accepted = 0usize;
        loop {
            // Pending ciphertext goes out before more plaintext is taken.
            match self.poll_drain(cx) {
                Poll::Ready(r) => r?,
                Poll::Pending if accepted == 0 => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Ok(accepted)),
            }
            let rest = data.get(accepted..).unwrap_or_default();
            if rest.is_empty() {
                return Poll::Ready(Ok(accepted));
            }
            if self.buf.len() >= self.segment {
                // A full segment is final only if nothing follows: more does.
                self.emit(false)?;
                continue;
            }
            let take = self.segment.saturating_sub(self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(rest.get(..take).unwrap_or_default());
            accepted = accepted.saturating_add(take);
        }
    }

    fn flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        let inner = self.inner.as_mut().ok_or_else(poisoned)?;
        Pin::new(inner).poll_flush(cx)
    }

    fn shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Each step is recorded once done, so that a writer returning
        // `Pending` never makes an earlier step run again.
        if self.phase == Phase::Open {
            ready!(self.poll_drain(cx))?;
            self.emit(true)?;
            self.phase = Phase::Sealed;
        }
        if self.phase == Phase::Sealed {
            ready!(self.flush_inner(cx))?;
            self.phase = Phase::Flushed;
        }
        if self.phase == Phase::Flushed {
            let inner = self.inner.as_mut().ok_or_else(poisoned)?;
            ready!(Pin::new(inner).poll_shutdown(cx))?;
            self.phase = Phase::Closed;
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptor<W> {
    /// Buffers `data`, sealing and writing every segment that fills up (a
    /// full segment is written only once more data follows it). Returns
    /// `Pending` only when it accepted nothing because the inner writer is
    /// not ready for the ciphertext already sealed.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(poisoned()));
        }
        if this.phase != Phase::Open {
            return Poll::Ready(Err(shut()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let r = ready!(this.write_inner(cx, data));
        Poll::Ready(this.check(r))
    }

    /// Writes out the sealed segments and flushes the inner writer. The partly
    /// filled segment stays buffered: a segment can only be written whole.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(poisoned()));
        }
        let r = ready!(this.flush_inner(cx));
        Poll::Ready(this.check(r))
    }

    /// Ends the envelope: seals the last segment with the final flag, writes
    /// it, then flushes and shuts down the inner writer. Further writes fail;
    /// shutting down again succeeds without doing anything.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(Err(poisoned()));
        }
        let r = ready!(this.shutdown_inner(cx));
        Poll::Ready(this.check(r))
    }
}

impl<W: AsyncWrite + Unpin> Drop for AsyncEncryptor<W> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl<W: AsyncWrite + Unpin> core::fmt::Debug for AsyncEncryptor<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncEncryptor")
            .field("segment_size", &self.segment)
            .field("segments_sealed", &self.index)
            .field("finished", &(self.phase == Phase::Closed))
            .finish_non_exhaustive()
    }
}

/// Decrypts an envelope from an [`AsyncRead`], segment by segment.
///
/// Created by [`Opener::async_decryptor`], which reads and authenticates the
/// header. Plaintext is released one segment at a time, only after that
/// segment's tag verified. Truncation, reordering and appended data are
/// detected; the error comes at the point of the damage, so **read to the
/// end** (until a read fills nothing) before acting on the data: only then is
/// it complete. After an error every further read fails.
///
/// Errors are `io::Error`s wrapping a [`lockbox::Error`](crate::Error):
/// `e.get_ref().and_then(|e| e.downcast_ref::<lockbox::Error>())`.
///
/// See [`AsyncEncryptor`] for an example.
pub struct AsyncDecryptor<R: AsyncRead + Unpin> {
    inner: R,
    cipher: PayloadCipher,
    segment: usize,
    /// Input bytes; after a decrypt, plaintext at `plain`, unread input after.
    buf: Vec<u8>,
    plain: core::ops::Range<usize>,
    /// Input bytes read ahead, not yet part of a decrypted segment.
    carry: core::ops::Range<usize>,
    /// While a segment is being read: the valid bytes at the front of `buf`.
    filled: usize,
    /// A segment is being read (carry moved to the front of `buf`).
    loading: bool,
    /// The inner reader ended while reading the current segment.
    eof: bool,
    /// Index of the next segment to decrypt.
    index: u64,
    finished: bool,
    failed: bool,
}

impl Opener<'_> {
    /// Reads and authenticates the header from `reader` and returns a
    /// decryptor for the payload.
    ///
    /// The header is read incrementally (never more than the header limit
    /// plus one byte before it parses). The data key is unwrapped by the
    /// provider's synchronous [`unwrap`](crate::KeyEncryptionProvider::unwrap),
    /// called inside this future: CPU only and brief for a
    /// [`LocalKek`](crate::LocalKek), but a provider that blocks on network
    /// I/O blocks the thread polling it. For a network key store, use
    /// [`AsyncOpener::async_decryptor`](crate::AsyncOpener::async_decryptor),
    /// which awaits an [`AsyncKeyEncryptionProvider`](crate::AsyncKeyEncryptionProvider).
    pub async fn async_decryptor<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        context: &EncryptionContext,
    ) -> io::Result<AsyncDecryptor<R>> {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut eof = false;
        let (cipher, header_len, size) = loop {
            match header_step(self, &buf, eof, context).map_err(io_error)? {
                HeaderStep::Ready {
                    cipher,
                    header_len,
                    segment,
                } => break (cipher, header_len, segment),
                HeaderStep::Read(want) => eof = fill(&mut reader, &mut buf, want).await?,
            }
        };
        Ok(AsyncDecryptor::from_parts(reader, cipher, header_len, size, buf))
    }
}

impl<R: AsyncRead + Unpin> AsyncDecryptor<R> {
    /// A decryptor for the payload after an authenticated header: `buf`
    /// holds what was read so far, the header's `header_len` bytes first
    /// (shared with [`AsyncOpener`](crate::AsyncOpener)'s streams).
    pub(crate) fn from_parts(
        reader: R,
        cipher: PayloadCipher,
        header_len: usize,
        size: crate::format::SegmentSize,
        buf: Vec<u8>,
    ) -> Self {
        let have = buf.len();
        AsyncDecryptor {
            inner: reader,
            cipher,
            segment: size.bytes(),
            buf,
            plain: 0..0,
            carry: header_len..have,
            filled: 0,
            loading: false,
            eof: false,
            index: 0,
            finished: false,
            failed: false,
        }
    }
}

/// Reads into `buf` until it holds `want` bytes or the reader ends; returns
/// whether it ended.
pub(crate) async fn fill<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(want.max(start), 0);
    let mut have = start;
    let mut eof = false;
    while have < want {
        match reader.read(buf.get_mut(have..).unwrap_or_default()).await {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => have = have.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(have);
                return Err(e);
            }
        }
    }
    buf.truncate(have);
    Ok(eof)
}

impl<R: AsyncRead + Unpin> AsyncDecryptor<R> {
    fn stride(&self) -> usize {
        self.segment.saturating_add(TAG_LEN)
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = true;
        self.buf.zeroize();
        self.plain = 0..0;
        self.carry = 0..0;
        e
    }

    /// Reads and decrypts the next segment in stream order (its length found
    /// by reading one byte ahead: a segment followed by more input is not the
    /// last). Resumable: progress is kept across `Pending`.
    fn poll_next_segment(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stride = self.stride();
        let want = stride.saturating_add(1);
        if !self.loading {
            let carry = self.carry.clone();
            if carry.end > self.buf.len() || carry.start > carry.end {
                return Poll::Ready(Err(io::Error::other("lockbox stream state corrupted")));
            }
            let carried = carry.len();
            self.buf.copy_within(carry, 0);
            self.plain = 0..0;
            self.carry = 0..0;
            self.filled = carried;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            self.eof = false;
            self.loading = true;
        }
        while self.filled < want && !self.eof {
            let mut rb = ReadBuf::new(self.buf.get_mut(self.filled..want).unwrap_or_default());
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => match rb.filled().len() {
                    0 => self.eof = true,
                    n => self.filled = self.filled.saturating_add(n),
                },
            }
        }
        self.loading = false;
        let have = self.filled;
        let (ct_len, last) = match frame_segment(have, self.eof, self.segment, self.index) {
            Ok(framed) => framed,
            Err(e) => return Poll::Ready(Err(io_error(e))),
        };
        self.decrypt_at(ct_len, last, have)?;
        self.carry = ct_len.saturating_add(TAG_LEN)..have;
        Poll::Ready(Ok(()))
    }

    /// Verifies and decrypts the segment at the front of `buf[..have]`.
    fn decrypt_at(&mut self, ct_len: usize, last: bool, have: usize) -> io::Result<()> {
        let index = u32::try_from(self.index).map_err(|_| io_error(Error::Authentication))?;
        let input = self
            .buf
            .get_mut(..have)
            .ok_or_else(|| io_error(Error::Authentication))?;
        let (ct, rest) = input
            .split_at_mut_checked(ct_len)
            .ok_or_else(|| io_error(Error::Authentication))?;
        let tag: [u8; TAG_LEN] = rest
            .get(..TAG_LEN)
            .and_then(|t| t.try_into().ok())
            .ok_or_else(|| io_error(Error::Authentication))?;
        self.cipher
            .open_segment_in_place(index, last, ct, &tag)
            .map_err(io_error)?;
        self.plain = 0..ct_len;
        self.index = self.index.saturating_add(1);
        if last {
            self.finished = true;
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptor<R> {
    /// Fills `out` with verified plaintext from the current segment, reading
    /// and verifying the next one when it is used up. Fills nothing (with
    /// room in `out`) only at the authenticated end of the envelope.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(Err(poisoned()));
            }
            if !this.plain.is_empty() {
                let src = this.buf.get(this.plain.clone()).unwrap_or_default();
                let n = src.len().min(out.remaining());
                out.put_slice(src.get(..n).unwrap_or_default());
                this.plain.start = this.plain.start.saturating_add(n);
                return Poll::Ready(Ok(()));
            }
            if this.finished || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.poll_next_segment(cx)) {
                Ok(()) => {}
                Err(e) => return Poll::Ready(Err(this.fail(e))),
            }
        }
    }
}

impl<R: AsyncRead + Unpin> Drop for AsyncDecryptor<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl<R: AsyncRead + Unpin> core::fmt::Debug for AsyncDecryptor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncDecryptor")
            .field("segment_size", &self.segment)
            .field("segments_read", &self.index)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}
