//! Streaming over `std::io`: [`Encryptor`] (`Write`) and [`Decryptor`]
//! (`Read`, and `Seek` over seekable sources), in the same format (and for the
//! same input and randomness, the same bytes) as one-shot
//! [`seal`](crate::seal) and [`open`](crate::open). These are pumps over the
//! engine's stream core; `lockbox::tokio` pumps the same core with tokio's
//! traits.
//!
//! The key phase is separate from the I/O, so either kind of provider streams
//! to either kind of I/O: [`Sealer::seal_header`] or
//! [`AsyncSealer::seal_header`](crate::AsyncSealer::seal_header) give a
//! [`SealedHeader`], [`Opener::unlock`] or
//! [`AsyncOpener::unlock`](crate::AsyncOpener::unlock) turn a [`RawHeader`]
//! into an [`UnlockedHeader`].

use std::boxed::Box;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::vec::Vec;

use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::engine::open::{OpenOptions, full_context};
use crate::engine::stream::{HeaderBuf, Io, Output, SegmentOpener, SegmentSealer};
use crate::error::Error;
use crate::format::{self, Header, Limits, Parsed, SegmentSize};
use crate::open::Opener;
use crate::rewrap::{Reencryptor, Rewrapper};
use crate::seal::{SealedHeader, Sealer};

/// Wraps a lockbox error for `std::io`; `get_ref()` and `downcast` give it back.
pub(crate) fn io_error(e: Error) -> io::Error {
    let kind = match e {
        Error::Authentication
        | Error::Malformed { .. }
        | Error::UnsupportedVersion(_)
        | Error::UnsupportedSuite(_)
        | Error::LimitExceeded { .. } => io::ErrorKind::InvalidData,
        Error::MissingContext { .. } | Error::ContextMismatch { .. } | Error::InvalidArgument { .. } => {
            io::ErrorKind::InvalidInput
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

pub(crate) fn poisoned() -> io::Error {
    io::Error::other("lockbox stream already failed")
}

/// A header read from a stream, not yet authenticated: what
/// [`Opener::unlock`] and [`AsyncOpener::unlock`](crate::AsyncOpener::unlock)
/// take. It holds the header and any payload bytes read with it, so the
/// decryptor must then read from the same reader, where this left it.
#[derive(Clone)]
pub struct RawHeader {
    bytes: Vec<u8>,
}

impl RawHeader {
    /// Reads a header from `reader`: incrementally, never more than the
    /// header limit plus one byte before it parses (growing from 256 bytes).
    /// Any I/O error other than `Interrupted` ends the read.
    pub fn read<R: Read + ?Sized>(reader: &mut R, limits: &Limits) -> io::Result<Self> {
        let mut hb = HeaderBuf::new(*limits);
        while let Some(space) = hb.read_space().map_err(io_error)? {
            let n = read_retrying(reader, space)?;
            hb.read_done(n);
        }
        Ok(Self::from_bytes(hb.into_bytes()))
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// The parsed (unauthenticated) header.
    /// The header's bytes as read.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn header(&self, limits: &Limits) -> Result<Header<'_>, Error> {
        match format::parse_prefix(&self.bytes, limits)? {
            Parsed::Complete(h) => Ok(h),
            Parsed::Incomplete { .. } => Err(Error::Malformed {
                offset: self.bytes.len(),
                what: "truncated",
            }),
        }
    }
}

impl core::fmt::Debug for RawHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawHeader").field("read", &self.bytes.len()).finish()
    }
}

/// A header authenticated and its payload key unwrapped: what a streaming
/// decryptor ([`Decryptor::new`], `lockbox::tokio::Decryptor::new`) starts
/// from. Also carries the envelope's whole authenticated context.
///
/// Holds the payload key (boxed, zeroized on drop); `Debug` shows no key.
pub struct UnlockedHeader {
    pub(crate) cipher: Box<PayloadCipher>,
    pub(crate) segment_size: SegmentSize,
    pub(crate) header_len: usize,
    pub(crate) read: Vec<u8>,
    pub(crate) threads: usize,
    context: EncryptionContext,
}

impl UnlockedHeader {
    pub(crate) fn new(
        raw: RawHeader,
        cipher: PayloadCipher,
        context: &EncryptionContext,
        opts: &OpenOptions,
    ) -> Result<Self, Error> {
        let h = raw.header(&opts.limits)?;
        let (segment_size, header_len) = (h.segment_size(), h.len());
        let context = full_context(h.context(), context)?;
        Ok(Self {
            cipher: Box::new(cipher),
            segment_size,
            header_len,
            read: raw.bytes,
            threads: opts.threads,
            context,
        })
    }

    /// The envelope's whole context, authenticated: its stored entries and
    /// the required ones the caller supplied.
    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The header's length in bytes (the payload starts here).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The envelope's segment size.
    pub fn segment_size(&self) -> SegmentSize {
        self.segment_size
    }

    pub(crate) fn into_opener(self, output: Output) -> SegmentOpener {
        SegmentOpener::new(
            self.cipher,
            self.segment_size,
            self.header_len,
            self.read,
            self.threads,
            output,
        )
    }
}

impl core::fmt::Debug for UnlockedHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnlockedHeader")
            .field("header_len", &self.header_len)
            .field("segment_size", &self.segment_size)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Reads once, retrying on `Interrupted`.
fn read_retrying<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Encrypts a stream into an envelope, segment by segment, writing to `W`.
///
/// Created by [`Sealer::encryptor`] (or [`Encryptor::new`] from any
/// [`SealedHeader`]); the header is written at once. Bytes written are
/// buffered up to one segment (or a parallel batch), encrypted and passed on.
/// The stream **must** be ended with [`finish`](Self::finish), which seals the
/// last segment with the final flag and returns the writer: an encryptor
/// dropped unfinished leaves an envelope that never opens (its buffered
/// plaintext is zeroized). After an error every further call fails.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Write;
/// let kek = lockbox::LocalKek::generate().map_err(std::io::Error::other)?;
/// let ctx = lockbox::EncryptionContext::new();
/// let mut enc = lockbox::Sealer::new(&kek).encryptor(Vec::new(), &ctx)?;
/// enc.write_all(b"streamed ")?;
/// enc.write_all(b"plaintext")?;
/// let envelope = enc.finish()?;
/// assert_eq!(lockbox::open(&kek, &envelope, &ctx).unwrap(), b"streamed plaintext");
/// # Ok(()) }
/// ```
#[must_use = "an Encryptor must be finished with .finish(), or the envelope never opens"]
pub struct Encryptor<W: Write> {
    inner: Option<W>,
    core: SegmentSealer,
    failed: bool,
}

impl Sealer<'_> {
    /// Starts a streaming encryption into `writer` (header written at once):
    /// [`seal_header`](Self::seal_header) then [`Encryptor::new`].
    pub fn encryptor<W: Write>(&self, writer: W, context: &EncryptionContext) -> io::Result<Encryptor<W>> {
        Encryptor::new(self.seal_header(context).map_err(io_error)?, writer)
    }
}

impl<W: Write> Encryptor<W> {
    /// Starts the stream of `header` (from either sealer) into `writer`; the
    /// header is written before this returns.
    pub fn new(header: SealedHeader, writer: W) -> io::Result<Self> {
        let core = SegmentSealer::new(header.header, header.cipher, header.segment_size, header.threads);
        let mut enc = Self {
            inner: Some(writer),
            core,
            failed: false,
        };
        enc.drain()?;
        Ok(enc)
    }

    /// Writes everything the core has sealed.
    fn drain(&mut self) -> io::Result<()> {
        let inner = self.inner.as_mut().ok_or_else(poisoned)?;
        let pending = self.core.pending();
        let n = pending.len();
        let r = inner.write_all(pending);
        self.core.consume(n);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Seals the last segment, writes it, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.failed {
            return Err(poisoned());
        }
        self.drain()?;
        self.core.finish().map_err(io_error)?;
        self.drain()?;
        let mut inner = self.inner.take().ok_or_else(poisoned)?;
        inner.flush()?;
        Ok(inner)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> Option<&W> {
        self.inner.as_ref()
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(poisoned());
        }
        let mut rest = data;
        while !rest.is_empty() {
            self.drain()?;
            match self.core.accept(rest) {
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                Err(e) => {
                    self.failed = true;
                    return Err(io_error(e));
                }
            }
        }
        Ok(data.len())
    }

    /// Writes out the sealed segments and flushes the inner writer. The
    /// partly filled segment stays buffered: a segment can only be written
    /// whole.
    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(poisoned());
        }
        self.drain()?;
        self.inner.as_mut().ok_or_else(poisoned)?.flush()
    }
}

impl<W: Write> core::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("segment_size", &self.core.segment_size())
            .field("segments_written", &self.core.segments())
            .finish_non_exhaustive()
    }
}

/// Decrypts an envelope from `R`, segment by segment.
///
/// Created by [`Opener::decryptor`] (or [`Decryptor::new`] from any
/// [`UnlockedHeader`]), which reads and authenticates the header. Plaintext
/// is released one segment at a time, only after that segment's tag verified.
/// Truncation, reordering and appended data are detected; the error comes at
/// the point of the damage, so **read to the end** (until `read` returns
/// `Ok(0)`) before acting on the data: only then is it complete. After an
/// error every further read fails.
///
/// Over a `Read + Seek` source the decryptor also implements [`Seek`] (in
/// plaintext offsets), decrypting only the segments it reads; the first seek
/// verifies the last segment, so the length is authenticated too.
///
/// A segment is released once the first byte after it has arrived (or the
/// input ended): that is how the last segment is recognised, so on a pipe or
/// socket plaintext lags the sender by up to one segment. Memory grows with
/// the bytes that arrive (up to one segment, or one parallel batch, plus one
/// byte), not with the segment size a header announces. The source should
/// block: any I/O error other than `Interrupted` (`WouldBlock` included) ends
/// the stream.
///
/// Errors are `io::Error`s wrapping a [`lockbox::Error`](crate::Error):
/// `e.get_ref().and_then(|e| e.downcast_ref::<lockbox::Error>())`.
pub struct Decryptor<R: Read> {
    inner: R,
    core: SegmentOpener,
}

impl Opener<'_> {
    /// Reads and authenticates the header from `reader` and returns a
    /// decryptor for the payload: [`RawHeader::read`], [`unlock`](Self::unlock),
    /// then [`Decryptor::new`].
    pub fn decryptor<R: Read>(&self, mut reader: R, context: &EncryptionContext) -> io::Result<Decryptor<R>> {
        let raw = RawHeader::read(&mut reader, self.limits_ref())?;
        Ok(Decryptor::new(self.unlock(raw, context).map_err(io_error)?, reader))
    }
}

impl<R: Read> Decryptor<R> {
    /// A decryptor for the payload after `header` (from either opener);
    /// `reader` must be the one the header was read from, where it left it.
    pub fn new(header: UnlockedHeader, reader: R) -> Self {
        Self::with_output(header, reader, Output::Plaintext)
    }

    fn with_output(header: UnlockedHeader, reader: R, output: Output) -> Self {
        Self {
            inner: reader,
            core: header.into_opener(output),
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

    /// Performs the reads the core asks for (no seeks: a sequential read
    /// never asks for one).
    fn drive(&mut self) -> io::Result<()> {
        while let Some(io) = self.core.io().map_err(io_error)? {
            match io {
                Io::Read(buf) => {
                    let n = read_retrying(&mut self.inner, buf)?;
                    self.core.read_done(n);
                }
                Io::Seek(_) => return Err(io::Error::other("lockbox stream needs a seekable reader")),
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.core.is_failed() {
                return Err(poisoned());
            }
            let src = self.core.output();
            if !src.is_empty() {
                let n = src.len().min(out.len());
                if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
                    d.copy_from_slice(s);
                }
                self.core.consume(n);
                return Ok(n);
            }
            if self.core.is_finished() || out.is_empty() {
                return Ok(0);
            }
            self.core.start_next();
            if let Err(e) = self.drive() {
                return Err(self.fail(e));
            }
        }
    }
}

impl<R: Read + Seek> Decryptor<R> {
    /// Performs the reads and seeks the core asks for.
    fn drive_seek(&mut self) -> io::Result<()> {
        let r = (|| {
            while let Some(io) = self.core.io().map_err(io_error)? {
                match io {
                    Io::Read(buf) => {
                        let n = read_retrying(&mut self.inner, buf)?;
                        self.core.read_done(n);
                    }
                    Io::Seek(pos) => {
                        let at = self.inner.seek(pos)?;
                        self.core.seek_done(at).map_err(io_error)?;
                    }
                }
            }
            Ok(())
        })();
        r.map_err(|e| self.fail(e))
    }

    /// The plaintext length, authenticated (the last segment is verified;
    /// the reader is put back where it was). A failure poisons the decryptor.
    pub fn plaintext_len(&mut self) -> io::Result<u64> {
        if self.core.is_failed() {
            return Err(poisoned());
        }
        self.core.start_index(true);
        self.drive_seek()?;
        self.core.indexed_len().ok_or_else(poisoned)
    }
}

impl<R: Read + Seek> Seek for Decryptor<R> {
    /// Seeks in plaintext offsets, `0..=len`. A target outside that range
    /// fails with `InvalidInput` and leaves the decryptor as it was; any other
    /// failure (I/O, authentication) poisons it.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.core.is_failed() {
            return Err(poisoned());
        }
        self.core.start_index(false);
        self.drive_seek()?;
        let Some(target) = self.core.resolve(pos) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the plaintext",
            ));
        };
        if let Err(e) = self.core.start_load(target) {
            return Err(self.fail(io_error(e)));
        }
        self.drive_seek()?;
        Ok(target)
    }
}

impl<R: Read> core::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("segment_size", &self.core.segment_size())
            .field("position", &self.core.position())
            .field("segments_read", &self.core.segments_read())
            .field("finished", &self.core.is_finished())
            .finish_non_exhaustive()
    }
}

impl Rewrapper<'_> {
    /// Rewraps the envelope read from `reader` into `writer`: reads the
    /// header (at most the header limit), writes the new header, then copies
    /// the payload one segment at a time, checking its framing (and, with
    /// [`verify_payload`](Self::verify_payload), each segment's tag before
    /// writing it). Memory stays at one header plus one segment whatever the
    /// envelope's size. Returns the number of bytes written.
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
        context: &EncryptionContext,
    ) -> io::Result<u64> {
        let (header, copy) = self.stream_start(&mut reader, context)?;
        writer.write_all(&header)?;
        let verify = self.options.verify_payload;
        let mut copy = Decryptor::with_output(copy, reader, Output::Ciphertext { verify });
        let n = io::copy(&mut copy, &mut writer)?;
        writer.flush()?;
        Ok(u64::try_from(header.len()).unwrap_or(u64::MAX).saturating_add(n))
    }

    /// Reads the header and rewraps it: the new header and the state to copy
    /// the payload with.
    fn stream_start<R: Read>(
        &self,
        reader: &mut R,
        context: &EncryptionContext,
    ) -> io::Result<(Vec<u8>, UnlockedHeader)> {
        let opts = self.options.open;
        let raw = RawHeader::read(reader, &opts.limits)?;
        let (header, cipher) = self
            .new_header(raw.header(&opts.limits).map_err(io_error)?, context)
            .map_err(io_error)?;
        let unlocked =
            UnlockedHeader::new(raw, cipher, context, &OpenOptions { threads: 1, ..opts }).map_err(io_error)?;
        Ok((header, unlocked))
    }
}

impl Reencryptor<'_> {
    /// Re-encrypts the envelope read from `reader` into `writer` through a
    /// [`Decryptor`] and an [`Encryptor`], one segment at a time, and returns
    /// the writer.
    ///
    /// Plaintext passes through a zeroized buffer. Output is written
    /// before the whole input has been verified; if the input turns out
    /// to be damaged the new envelope is left unfinished (its last segment
    /// is never written, so it never opens) and an error is returned:
    /// still write to a temporary file and rename it into place only on
    /// success.
    pub fn reencrypt_stream<R: Read, W: Write>(
        &self,
        reader: R,
        writer: W,
        context: &EncryptionContext,
    ) -> io::Result<W> {
        let (opener, sealer) = self.parts();
        let mut reader = reader;
        let raw = RawHeader::read(&mut reader, opener.limits_ref())?;
        let unlocked = opener.unlock(raw, context).map_err(io_error)?;
        let mut enc = sealer.encryptor(writer, unlocked.context())?;
        let mut dec = Decryptor::new(unlocked, reader);
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
