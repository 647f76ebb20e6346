//! Streaming over tokio's `AsyncWrite` / `AsyncRead` / `AsyncSeek`: the same
//! format, bytes and guarantees as the `std::io` [`Encryptor`](crate::Encryptor)
//! and [`Decryptor`](crate::Decryptor), pumping the same engine (batches on
//! several threads and seeking included).
//!
//! Nothing here blocks on I/O: all I/O goes through the inner reader or
//! writer's `poll_*` methods, and the cryptography is bounded per segment (or
//! per parallel batch). The key phase is separate:
//! [`AsyncSealer::encryptor`](crate::AsyncSealer::encryptor) and
//! [`AsyncOpener::decryptor`](crate::AsyncOpener::decryptor) await the
//! providers (any provider: every blocking one is async too), and
//! [`Encryptor::new`] / [`Decryptor::new`] start from a
//! [`SealedHeader`] / [`UnlockedHeader`] made by either kind of sealer or
//! opener.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     let kek = lockbox::LocalKek::generate().map_err(std::io::Error::other)?;
//!     let ctx = lockbox::EncryptionContext::new();
//!     let mut enc = lockbox::AsyncSealer::new(&kek).encryptor(Vec::new(), &ctx).await?;
//!     enc.write_all(b"streamed ").await?;
//!     enc.write_all(b"plaintext").await?;
//!     let envelope = enc.finish().await?;
//!     assert_eq!(lockbox::open(&kek, &envelope, &ctx).unwrap(), b"streamed plaintext");
//!
//!     let mut dec = lockbox::AsyncOpener::new(&kek).decryptor(&envelope[..], &ctx).await?;
//!     let mut plaintext = Vec::new();
//!     dec.read_to_end(&mut plaintext).await?;
//!     assert_eq!(plaintext, b"streamed plaintext");
//!     Ok(())
//! })
//! # }
//! ```

use core::future::poll_fn;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use std::io::{self, SeekFrom};

use ::tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::context::EncryptionContext;
use crate::engine::open::OpenOptions;
use crate::engine::stream::{HeaderBuf, Io, Output, SegmentOpener, SegmentSealer};
use crate::format::Limits;
use crate::io::{RawHeader, UnlockedHeader, io_error, poisoned};
use crate::open::AsyncOpener;
use crate::rewrap::AsyncRewrapper;
use crate::seal::{AsyncSealer, SealedHeader};

fn shut() -> io::Error {
    io::Error::other("lockbox stream already shut down")
}

/// Reads a header from `reader` (see [`RawHeader::read`]), for
/// [`AsyncOpener::unlock`] or [`Opener::unlock`](crate::Opener::unlock).
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(reader: &mut R, limits: &Limits) -> io::Result<RawHeader> {
    let mut hb = HeaderBuf::new(*limits);
    while let Some(space) = hb.read_space().map_err(io_error)? {
        let n = poll_fn(|cx| poll_read_once(Pin::new(&mut *reader), cx, space)).await?;
        hb.read_done(n);
    }
    Ok(RawHeader::from_bytes(hb.into_bytes()))
}

/// One read into `buf`, retrying on `Interrupted`.
fn poll_read_once<R: AsyncRead + ?Sized>(
    mut reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    loop {
        let mut rb = ReadBuf::new(buf);
        match ready!(reader.as_mut().poll_read(cx, &mut rb)) {
            Ok(()) => return Poll::Ready(Ok(rb.filled().len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Where an [`Encryptor`] is in its life.
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
/// Created by [`AsyncSealer::encryptor`] or [`Encryptor::new`]; the header is
/// written before it is returned. Bytes written are buffered up to one
/// segment (or a parallel batch), encrypted and passed on (sealed output
/// waits for the inner writer, so a slow writer pushes back through
/// `poll_write`). `poll_flush` writes out pending ciphertext and flushes the
/// inner writer; the partly filled segment stays buffered, as a segment can
/// only be written whole.
///
/// The stream **must** be ended with [`shutdown`](AsyncWriteExt::shutdown)
/// (`poll_shutdown`) or [`finish`](Self::finish): this seals the last segment
/// with the final flag, writes it, and flushes and shuts down the inner
/// writer. An encryptor dropped before that leaves an envelope that never
/// opens (its buffered plaintext is zeroized). After an error every further
/// call fails.
#[must_use = "an Encryptor must be ended with .shutdown() or .finish(), or the envelope never opens"]
pub struct Encryptor<W: AsyncWrite + Unpin> {
    /// `None` only once [`finish`](Self::finish) has taken it.
    inner: Option<W>,
    core: SegmentSealer,
    phase: Phase,
    failed: bool,
}

impl AsyncSealer<'_> {
    /// Starts a streaming encryption into a tokio `writer`:
    /// [`seal_header`](Self::seal_header) (the providers awaited), then
    /// [`Encryptor::new`]. The header is written (not flushed) before this
    /// returns.
    pub async fn encryptor<W: AsyncWrite + Unpin>(
        &self,
        writer: W,
        context: &EncryptionContext,
    ) -> io::Result<Encryptor<W>> {
        let header = self.seal_header(context).await.map_err(io_error)?;
        Encryptor::new(header, writer).await
    }
}

impl<W: AsyncWrite + Unpin> Encryptor<W> {
    /// Starts the stream of `header` (from either sealer) into `writer`; the
    /// header is written before this returns.
    pub async fn new(header: SealedHeader, writer: W) -> io::Result<Self> {
        let mut enc = Self {
            inner: Some(writer),
            core: SegmentSealer::new(header.header, header.cipher, header.segment_size, header.threads),
            phase: Phase::Open,
            failed: false,
        };
        let r = poll_fn(|cx| enc.poll_drain(cx)).await;
        enc.check(r)?;
        Ok(enc)
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
        while !self.core.pending().is_empty() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, self.core.pending()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.core.consume(n);
        }
        Poll::Ready(Ok(()))
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
            accepted = accepted.saturating_add(self.core.accept(rest).map_err(io_error)?);
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
            self.core.finish().map_err(io_error)?;
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

impl<W: AsyncWrite + Unpin> AsyncWrite for Encryptor<W> {
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

impl<W: AsyncWrite + Unpin> core::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("segment_size", &self.core.segment_size())
            .field("segments_sealed", &self.core.segments())
            .field("finished", &(self.phase == Phase::Closed))
            .finish_non_exhaustive()
    }
}

/// A seek in progress on a [`Decryptor`].
#[derive(Clone, Copy, Debug)]
enum Seeking {
    /// Indexing (the payload length), then resolving this target.
    Index(SeekFrom),
    /// Loading the segment at this plaintext offset.
    Load(u64),
}

/// Decrypts an envelope from an [`AsyncRead`], segment by segment.
///
/// Created by [`AsyncOpener::decryptor`] or [`Decryptor::new`]. Plaintext is
/// released one segment at a time, only after that segment's tag verified.
/// Truncation, reordering and appended data are detected; the error comes at
/// the point of the damage, so **read to the end** (until a read fills
/// nothing) before acting on the data: only then is it complete. After an
/// error every further read fails.
///
/// Over an `AsyncRead + AsyncSeek` source it also implements [`AsyncSeek`]
/// (in plaintext offsets), reading only the segments it needs; the first seek
/// verifies the last segment, so the length is authenticated too. With
/// [`AsyncOpener::threads`] it verifies batches of segments on several
/// threads, as the `std::io` decryptor does.
///
/// Errors are `io::Error`s wrapping a [`lockbox::Error`](crate::Error):
/// `e.get_ref().and_then(|e| e.downcast_ref::<lockbox::Error>())`.
pub struct Decryptor<R: AsyncRead + Unpin> {
    inner: R,
    core: SegmentOpener,
    pump: Pump,
}

/// What a [`Decryptor`] must remember across `Pending`.
#[derive(Debug, Default)]
struct Pump {
    /// A segment is being read (started, not yet complete).
    loading: bool,
    /// The inner reader was asked to seek and has not completed.
    inner_seeking: bool,
    seeking: Option<Seeking>,
}

impl AsyncOpener<'_> {
    /// Reads and authenticates the header from a tokio `reader` (the
    /// providers awaited) and returns a decryptor for the payload:
    /// [`read_header`], [`unlock`](Self::unlock), then [`Decryptor::new`].
    pub async fn decryptor<R: AsyncRead + Unpin>(
        &self,
        mut reader: R,
        context: &EncryptionContext,
    ) -> io::Result<Decryptor<R>> {
        let raw = read_header(&mut reader, self.limits_ref()).await?;
        let header = self.unlock(raw, context).await.map_err(io_error)?;
        Ok(Decryptor::new(header, reader))
    }
}

impl AsyncRewrapper<'_> {
    /// Rewraps the envelope read from `reader` into `writer`, as
    /// [`Rewrapper::rewrap_stream`](crate::Rewrapper::rewrap_stream) does,
    /// with the providers awaited and tokio I/O.
    pub async fn rewrap_stream<R, W>(
        &self,
        mut reader: R,
        mut writer: W,
        context: &EncryptionContext,
    ) -> io::Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let opts = self.options.open;
        let raw = read_header(&mut reader, &opts.limits).await?;
        let (header, unlocked) = {
            let (header, cipher) = self
                .new_header(raw.header(&opts.limits).map_err(io_error)?, context)
                .await
                .map_err(io_error)?;
            let copy = OpenOptions { threads: 1, ..opts };
            (
                header,
                UnlockedHeader::new(raw, cipher, context, &copy).map_err(io_error)?,
            )
        };
        writer.write_all(&header).await?;
        let verify = self.options.verify_payload;
        let mut copy = Decryptor::with_output(unlocked, reader, Output::Ciphertext { verify });
        let n = ::tokio::io::copy(&mut copy, &mut writer).await?;
        writer.flush().await?;
        Ok(u64::try_from(header.len()).unwrap_or(u64::MAX).saturating_add(n))
    }
}

impl<R: AsyncRead + Unpin> Decryptor<R> {
    /// A decryptor for the payload after `header` (from either opener);
    /// `reader` must be the one the header was read from, where it left it.
    pub fn new(header: UnlockedHeader, reader: R) -> Self {
        Self::with_output(header, reader, Output::Plaintext)
    }

    fn with_output(header: UnlockedHeader, reader: R, output: Output) -> Self {
        let core = header.into_opener(output);
        Self {
            inner: reader,
            core,
            pump: Pump::default(),
        }
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.core.fail();
        e
    }

    /// Performs the reads the core asks for (a sequential read never asks
    /// for a seek). Resumable: the core keeps its progress across `Pending`.
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.core.io().map_err(io_error)? {
                None => return Poll::Ready(Ok(())),
                Some(Io::Read(buf)) => {
                    let n = ready!(poll_read_once(Pin::new(&mut self.inner), cx, buf))?;
                    self.core.read_done(n);
                }
                Some(Io::Seek(_)) => {
                    return Poll::Ready(Err(io::Error::other("lockbox stream needs a seekable reader")));
                }
            }
        }
    }
}

impl<R: AsyncRead + AsyncSeek + Unpin> Decryptor<R> {
    /// Performs the reads and seeks the core asks for.
    fn poll_drive_seek(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.core.io().map_err(io_error)? {
                None => return Poll::Ready(Ok(())),
                Some(Io::Read(buf)) => {
                    let n = ready!(poll_read_once(Pin::new(&mut self.inner), cx, buf))?;
                    self.core.read_done(n);
                }
                Some(Io::Seek(pos)) => {
                    if !self.pump.inner_seeking {
                        Pin::new(&mut self.inner).start_seek(pos)?;
                        self.pump.inner_seeking = true;
                    }
                    let at = ready!(Pin::new(&mut self.inner).poll_complete(cx));
                    self.pump.inner_seeking = false;
                    self.core.seek_done(at?).map_err(io_error)?;
                }
            }
        }
    }

    /// [`poll_drive_seek`](Self::poll_drive_seek), poisoning on error.
    fn poll_drive_or_fail(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.poll_drive_seek(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(self.fail(e))),
        }
    }

    /// The plaintext length, authenticated (the last segment is verified;
    /// the reader is put back where it was). A failure poisons the decryptor.
    pub async fn plaintext_len(&mut self) -> io::Result<u64> {
        if self.core.is_failed() {
            return Err(poisoned());
        }
        self.core.start_index(true);
        poll_fn(|cx| self.poll_drive_or_fail(cx)).await?;
        self.core.indexed_len().ok_or_else(poisoned)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Decryptor<R> {
    /// Fills `out` with verified plaintext from the current segment, reading
    /// and verifying the next one when it is used up. Fills nothing (with
    /// room in `out`) only at the authenticated end of the envelope.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.core.is_failed() {
                return Poll::Ready(Err(poisoned()));
            }
            let src = this.core.output();
            if !src.is_empty() {
                let n = src.len().min(out.remaining());
                out.put_slice(src.get(..n).unwrap_or_default());
                this.core.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.core.is_finished() || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !this.pump.loading {
                this.core.start_next();
                this.pump.loading = true;
            }
            let r = ready!(this.poll_drive(cx));
            this.pump.loading = false;
            if let Err(e) = r {
                return Poll::Ready(Err(this.fail(e)));
            }
        }
    }
}

impl<R: AsyncRead + AsyncSeek + Unpin> AsyncSeek for Decryptor<R> {
    /// Starts a seek in plaintext offsets, `0..=len`; `poll_complete`
    /// performs it. A target outside that range fails with `InvalidInput`
    /// and leaves the decryptor as it was; any other failure (I/O,
    /// authentication) poisons it.
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        if this.core.is_failed() {
            return Err(poisoned());
        }
        if this.pump.seeking.is_some() {
            return Err(io::Error::other("a seek is already in progress"));
        }
        this.core.start_index(false);
        this.pump.seeking = Some(Seeking::Index(pos));
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        loop {
            match this.pump.seeking {
                None => return Poll::Ready(Ok(this.core.position())),
                Some(Seeking::Index(pos)) => {
                    if let Err(e) = ready!(this.poll_drive_or_fail(cx)) {
                        this.pump.seeking = None;
                        return Poll::Ready(Err(e));
                    }
                    let Some(target) = this.core.resolve(pos) else {
                        this.pump.seeking = None;
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "seek outside the plaintext",
                        )));
                    };
                    if let Err(e) = this.core.start_load(target) {
                        this.pump.seeking = None;
                        return Poll::Ready(Err(this.fail(io_error(e))));
                    }
                    this.pump.loading = false;
                    this.pump.seeking = Some(Seeking::Load(target));
                }
                Some(Seeking::Load(target)) => {
                    let r = ready!(this.poll_drive_or_fail(cx));
                    this.pump.seeking = None;
                    return Poll::Ready(r.map(|()| target));
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> core::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("segment_size", &self.core.segment_size())
            .field("segments_read", &self.core.segments_read())
            .field("finished", &self.core.is_finished())
            .finish_non_exhaustive()
    }
}
