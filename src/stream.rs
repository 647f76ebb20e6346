//! Streaming encryption and decryption over `std::io`, in the same format
//! (and for the same input and randomness, the same bytes) as one-shot
//! [`seal`](crate::seal) and [`open`](crate::open).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::vec::Vec;

use rand_core::TryCryptoRng;
use zeroize::Zeroize;

use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::envelope::{Direction, Opener, Sealer, run_parallel, seal_run};
use crate::error::Error;
use crate::format::{self, SegmentSize, Segments, TAG_LEN};
use crate::keys::{os_random, rng_random};

/// Segments per thread in one parallel streaming batch: enough work (512 KiB
/// at the default segment size) to pay for spawning a scoped thread.
const SEGMENTS_PER_THREAD: usize = 8;

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

fn poisoned() -> io::Error {
    io::Error::other("lockbox stream already failed")
}

/// Encrypts a stream into an envelope, segment by segment, writing to `W`.
///
/// Created by [`Sealer::encryptor`]; the header is written at once. Bytes
/// written are buffered up to one segment, encrypted and passed on. The
/// stream **must** be ended with [`finish`](Self::finish), which seals the last
/// segment with the final flag and returns the writer: an encryptor dropped
/// unfinished leaves an envelope that never opens (its buffered plaintext is
/// zeroized).
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
    cipher: PayloadCipher,
    segment: usize,
    /// Plaintext being buffered: one segment (one thread, encrypted in place,
    /// capacity segment + tag) or a batch of `threads` segments.
    buf: Vec<u8>,
    /// With several threads: the sealed batch, reused.
    out: Vec<u8>,
    threads: usize,
    index: u32,
    failed: bool,
}

impl Sealer<'_> {
    /// Starts a streaming encryption into `writer` (header written at once).
    pub fn encryptor<W: Write>(&self, writer: W, context: &EncryptionContext) -> io::Result<Encryptor<W>> {
        Encryptor::start(self, writer, context, os_random)
    }

    /// [`encryptor`](Self::encryptor) drawing the data key and message id from
    /// `rng` (see [`Sealer::seal_with_rng`]).
    pub fn encryptor_with_rng<W: Write, R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        writer: W,
        context: &EncryptionContext,
    ) -> io::Result<Encryptor<W>> {
        Encryptor::start(self, writer, context, |b| rng_random(rng, b))
    }
}

impl<W: Write> Encryptor<W> {
    fn start(
        sealer: &Sealer<'_>,
        mut writer: W,
        context: &EncryptionContext,
        random: impl FnMut(&mut [u8]) -> Result<(), Error>,
    ) -> io::Result<Self> {
        let mut header = Vec::new();
        let (cipher, size) = sealer.start(context, random, &mut header).map_err(io_error)?;
        writer.write_all(&header)?;
        let segment = size.bytes();
        let threads = sealer.thread_count().max(1);
        Ok(Self {
            inner: Some(writer),
            cipher,
            segment,
            buf: Vec::with_capacity(if threads > 1 {
                segment.saturating_mul(threads).saturating_mul(SEGMENTS_PER_THREAD)
            } else {
                segment.saturating_add(TAG_LEN)
            }),
            out: Vec::new(),
            threads,
            index: 0,
            failed: false,
        })
    }

    /// Bytes buffered before sealing: one segment, or a batch of
    /// `SEGMENTS_PER_THREAD` per thread.
    fn batch(&self) -> usize {
        if self.threads > 1 {
            self.segment
                .saturating_mul(self.threads)
                .saturating_mul(SEGMENTS_PER_THREAD)
        } else {
            self.segment
        }
    }

    /// Encrypts what is buffered and writes it: one segment in place, or a
    /// batch of segments on several threads (the same bytes).
    fn emit(&mut self, last: bool) -> io::Result<()> {
        if self.threads > 1 {
            return self.emit_batch(last);
        }
        self.emit_one(last)
    }

    /// Seals the buffered batch on `threads` threads; only the batch that
    /// ends the stream holds the last segment.
    fn emit_batch(&mut self, last: bool) -> io::Result<()> {
        let inner = self.inner.as_mut().ok_or_else(poisoned)?;
        let n = self.buf.len();
        let nsegs = if n == 0 { 1 } else { n.div_ceil(self.segment) };
        let base = usize::try_from(self.index).unwrap_or(usize::MAX);
        if base.saturating_add(nsegs) > usize::try_from(u32::MAX).unwrap_or(usize::MAX) {
            return Err(io::Error::other("more than 2^32 - 1 segments"));
        }
        let last_len = n.saturating_sub(nsegs.saturating_sub(1).saturating_mul(self.segment));
        // Work split over the batch; "last" judged against the whole stream.
        let batch = Segments {
            size: self.segment,
            count: nsegs,
            last_len,
        };
        let stream = Segments {
            size: self.segment,
            count: if last { base.saturating_add(nsegs) } else { usize::MAX },
            last_len,
        };
        self.out.clear();
        self.out.resize(n.saturating_add(nsegs.saturating_mul(TAG_LEN)), 0);
        let cipher = &self.cipher;
        let r = run_parallel(
            self.threads,
            Direction::Seal,
            batch,
            &self.buf,
            &mut self.out,
            |first, src, dst| seal_run(cipher, stream, base.saturating_add(first), src, dst),
        );
        // The next batch overwrites the plaintext; drop and finish zeroize it.
        self.buf.clear();
        r.map_err(io_error)?;
        inner.write_all(&self.out)?;
        self.index = self.index.saturating_add(u32::try_from(nsegs).unwrap_or(u32::MAX));
        Ok(())
    }

    /// Encrypts the buffered segment in place and writes it with its tag.
    fn emit_one(&mut self, last: bool) -> io::Result<()> {
        // At most 2^32 - 1 segments: indices 0 ..= 2^32 - 2.
        if self.index == u32::MAX {
            return Err(io::Error::other("more than 2^32 - 1 segments"));
        }
        let inner = self.inner.as_mut().ok_or_else(poisoned)?;
        let tag = self
            .cipher
            .seal_segment_in_place(self.index, last, &mut self.buf)
            .map_err(io_error)?;
        self.buf.extend_from_slice(&tag);
        let r = inner.write_all(&self.buf);
        self.buf.clear();
        r?;
        self.index = self.index.saturating_add(1);
        Ok(())
    }

    /// Seals the last segment, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.failed {
            return Err(poisoned());
        }
        self.emit(true)?;
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
            if self.buf.len() == self.batch() {
                // A full segment is final only if nothing follows: more does.
                if let Err(e) = self.emit(false) {
                    self.failed = true;
                    return Err(e);
                }
            }
            let take = self.batch().saturating_sub(self.buf.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.buf.extend_from_slice(now);
            rest = later;
        }
        Ok(data.len())
    }

    /// Flushes the inner writer. The partly filled segment stays buffered: a
    /// segment can only be written whole.
    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(poisoned());
        }
        self.inner.as_mut().ok_or_else(poisoned)?.flush()
    }
}

impl<W: Write> Drop for Encryptor<W> {
    fn drop(&mut self) {
        self.buf.zeroize();
        self.out.zeroize();
    }
}

impl<W: Write> core::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Encryptor")
            .field("segment_size", &self.segment)
            .field("segments_written", &self.index)
            .finish_non_exhaustive()
    }
}

/// What reading a header from a stream needs next.
#[allow(clippy::large_enum_variant, reason = "built once per stream, never stored")]
pub(crate) enum HeaderStep {
    /// The header is complete and authenticated.
    Ready {
        cipher: PayloadCipher,
        header_len: usize,
        segment: SegmentSize,
    },
    /// Have this many bytes buffered, then try again.
    Read(usize),
}

/// One step of reading a header from a stream (shared by the sync and async
/// decryptors): authenticates it once `buf` holds all of it, or says how many
/// bytes to buffer next (see [`parse_step`]).
pub(crate) fn header_step(
    opener: &Opener<'_>,
    buf: &[u8],
    eof: bool,
    context: &EncryptionContext,
) -> Result<HeaderStep, Error> {
    match parse_step(opener.limits_ref(), buf, eof)? {
        ParseStep::Parsed(h) => {
            let cipher = opener.unlock_header(&h, context)?;
            Ok(HeaderStep::Ready {
                cipher,
                header_len: h.len,
                segment: h.segment_size,
            })
        }
        ParseStep::Read(want) => Ok(HeaderStep::Read(want)),
    }
}

/// What parsing a header from a stream found.
pub(crate) enum ParseStep<'a> {
    /// The header is complete and well formed (not yet authenticated).
    Parsed(format::Header<'a>),
    /// Have this many bytes buffered, then try again.
    Read(usize),
}

/// Parses a header from the bytes read so far, or says how many bytes to
/// buffer next, growing geometrically and never past one byte more than the
/// header limit (the parser then reports the limit). Shared by the sync and
/// async openers' streams.
pub(crate) fn parse_step<'a>(limits: &format::Limits, buf: &'a [u8], eof: bool) -> Result<ParseStep<'a>, Error> {
    match format::parse(buf, limits) {
        Ok((h, _)) => {
            if h.segment_size.bytes() > limits.max_segment_size() {
                return Err(Error::LimitExceeded {
                    limit: crate::LimitKind::SegmentSize,
                    max: limits.max_segment_size(),
                });
            }
            Ok(ParseStep::Parsed(h))
        }
        Err(Error::Malformed { what: "truncated", .. }) if !eof => {
            let want = buf
                .len()
                .saturating_mul(2)
                .max(256)
                .min(limits.max_header_len().saturating_add(1));
            if want <= buf.len() {
                // Only with a limit shorter than the fixed fields.
                return Err(Error::LimitExceeded {
                    limit: crate::LimitKind::HeaderBytes,
                    max: limits.max_header_len(),
                });
            }
            Ok(ParseStep::Read(want))
        }
        Err(e) => Err(e),
    }
}

/// Where the next segment ends, from what was read (shared by the sync and
/// async decryptors): `have` bytes are buffered, at most segment + tag + 1,
/// and `eof` says whether the input ended. Returns the ciphertext length and
/// whether it is the last segment (one followed by more input is not).
pub(crate) fn frame_segment(have: usize, eof: bool, segment: usize, index: u64) -> Result<(usize, bool), Error> {
    if eof && have <= segment.saturating_add(TAG_LEN) {
        if have < TAG_LEN {
            return Err(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            });
        }
        if have == TAG_LEN && index > 0 {
            return Err(Error::Malformed {
                offset: 0,
                what: "empty final segment after a full one",
            });
        }
        Ok((have.saturating_sub(TAG_LEN), true))
    } else {
        Ok((segment, false))
    }
}

/// Decrypts an envelope from `R`, segment by segment.
///
/// Created by [`Opener::decryptor`], which reads and authenticates the header.
/// Plaintext is released one segment at a time, only after that segment's tag
/// verified. Truncation, reordering and appended data are detected; the error
/// comes at the point of the damage, so **read to the end** (until `read`
/// returns `Ok(0)`) before acting on the data: only then is it complete.
/// After an error every further read fails.
///
/// Over a `Read + Seek` source the decryptor also implements [`Seek`] (in
/// plaintext offsets), decrypting only the segments it reads; the first seek
/// verifies the last segment, so the length is authenticated too.
///
/// A segment is released once the first byte after it has arrived (or the
/// input ended): that is how the last segment is recognised, so on a pipe or
/// socket plaintext lags the sender by up to one segment. The source should
/// block: any I/O error other than `Interrupted` (`WouldBlock` included) ends
/// the stream.
///
/// Errors are `io::Error`s wrapping a [`lockbox::Error`](crate::Error):
/// `e.get_ref().and_then(|e| e.downcast_ref::<lockbox::Error>())`.
pub struct Decryptor<R: Read> {
    inner: R,
    cipher: PayloadCipher,
    segment: usize,
    header_len: u64,
    /// Input bytes; after a decrypt, plaintext at `plain`, unread input after.
    buf: Vec<u8>,
    plain: core::ops::Range<usize>,
    /// Input bytes read ahead, not yet part of a decrypted segment.
    carry: core::ops::Range<usize>,
    /// Index of the next segment to decrypt.
    index: u64,
    /// Bytes read from `inner` since the envelope started.
    consumed: u64,
    /// Plaintext offset of `plain.start`.
    position: u64,
    finished: bool,
    failed: bool,
    /// Known after the first seek (and authenticated): the payload's segmentation.
    indexed: Option<Segments>,
    /// Segments verified per read on several threads (1: one at a time).
    threads: usize,
    /// Known after the first seek: the reader offset where the envelope starts.
    base: u64,
}

impl Opener<'_> {
    /// Reads and authenticates the header from `reader` and returns a
    /// decryptor for the payload.
    pub fn decryptor<R: Read>(&self, mut reader: R, context: &EncryptionContext) -> io::Result<Decryptor<R>> {
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut eof = false;
        let (cipher, header_len, size) = loop {
            match header_step(self, &buf, eof, context).map_err(io_error)? {
                HeaderStep::Ready {
                    cipher,
                    header_len,
                    segment,
                } => break (cipher, header_len, segment),
                HeaderStep::Read(want) => eof = fill(&mut reader, &mut buf, want)?,
            }
        };
        let have = buf.len();
        Ok(Decryptor {
            inner: reader,
            cipher,
            segment: size.bytes(),
            header_len: u64::try_from(header_len).unwrap_or(u64::MAX),
            buf,
            plain: 0..0,
            carry: header_len..have,
            index: 0,
            consumed: u64::try_from(have).unwrap_or(u64::MAX),
            position: 0,
            finished: false,
            failed: false,
            indexed: None,
            base: 0,
            threads: self.thread_count().max(1),
        })
    }
}

/// Reads into `buf` until it holds `want` bytes or the reader ends; returns
/// whether it ended.
fn fill<R: Read>(reader: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(want.max(start), 0);
    let mut have = start;
    let mut eof = false;
    while have < want {
        match reader.read(buf.get_mut(have..).unwrap_or_default()) {
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

impl<R: Read> Decryptor<R> {
    fn stride(&self) -> usize {
        self.segment.saturating_add(TAG_LEN)
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.failed = true;
        self.buf.zeroize();
        self.plain = 0..0;
        e
    }

    /// Decrypts the next segment in stream order (length found by reading one
    /// byte ahead: a segment followed by more input is not the last).
    fn next_sequential(&mut self) -> io::Result<()> {
        if self.threads > 1 {
            return self.next_batch();
        }
        self.next_one()
    }

    /// Reads up to `threads` segments (plus one byte ahead), verifies and
    /// decrypts them in place on several threads, and releases their
    /// plaintext only if all of them verified.
    fn next_batch(&mut self) -> io::Result<()> {
        let stride = self.stride();
        let per_batch = self.threads.saturating_mul(SEGMENTS_PER_THREAD);
        let full = stride.saturating_mul(per_batch);
        let carry = self.carry.clone();
        let carried = carry.len();
        self.buf.copy_within(carry, 0);
        self.buf.truncate(carried);
        let eof = fill(&mut self.inner, &mut self.buf, full.saturating_add(1))?;
        let have = self.buf.len();
        self.consumed = self
            .consumed
            .saturating_add(u64::try_from(have.saturating_sub(carried)).unwrap_or(u64::MAX));
        let size = SegmentSize::new(self.segment).map_err(io_error)?;
        let (region, segs, last) = if have > full {
            let segs = Segments {
                size: self.segment,
                count: per_batch,
                last_len: self.segment,
            };
            (full, segs, false)
        } else {
            let _ = eof;
            let segs = Segments::for_payload(have, size, 0).map_err(io_error)?;
            if segs.count == 1 && segs.last_len == 0 && self.index > 0 {
                return Err(io_error(Error::Malformed {
                    offset: 0,
                    what: "empty final segment after a full one",
                }));
            }
            (have, segs, true)
        };
        let base = self.index;
        let cipher = &self.cipher;
        let per = segs.count.div_ceil(self.threads).max(1);
        let area = self
            .buf
            .get_mut(..region)
            .ok_or_else(|| io_error(Error::Authentication))?;
        let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
            let handles: Vec<_> = area
                .chunks_mut(per.saturating_mul(stride))
                .enumerate()
                .map(|(t, group)| {
                    scope.spawn(move || {
                        for (j, chunk) in group.chunks_mut(stride).enumerate() {
                            let k = t.saturating_mul(per).saturating_add(j);
                            let is_last = last && k.saturating_add(1) == segs.count;
                            let index = u64::try_from(k)
                                .ok()
                                .and_then(|k| base.checked_add(k))
                                .and_then(|i| u32::try_from(i).ok())
                                .ok_or(Error::Authentication)?;
                            let (ct, tag) = chunk
                                .split_at_mut_checked(segs.len_of(k))
                                .ok_or(Error::Authentication)?;
                            let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Authentication)?;
                            cipher.open_segment_in_place(index, is_last, ct, &tag)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(Error::Authentication)))
                .collect()
        });
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(io_error(e));
        }
        // Move the plaintexts together (tags sit between them).
        for k in 0..segs.count {
            let from = k.saturating_mul(stride);
            self.buf.copy_within(
                from..from.saturating_add(segs.len_of(k)),
                k.saturating_mul(self.segment),
            );
        }
        self.plain = 0..segs.plaintext_len();
        self.carry = region..have;
        self.index = self.index.saturating_add(u64::try_from(segs.count).unwrap_or(u64::MAX));
        if last {
            self.finished = true;
        }
        Ok(())
    }

    /// Decrypts the next single segment.
    fn next_one(&mut self) -> io::Result<()> {
        let stride = self.stride();
        let carry = self.carry.clone();
        let carried = carry.len();
        self.buf.copy_within(carry, 0);
        self.buf.truncate(carried);
        let before = self.buf.len();
        let eof = fill(&mut self.inner, &mut self.buf, stride.saturating_add(1))?;
        self.consumed = self
            .consumed
            .saturating_add(u64::try_from(self.buf.len().saturating_sub(before)).unwrap_or(u64::MAX));
        let have = self.buf.len();
        let (ct_len, last) = frame_segment(have, eof, self.segment, self.index).map_err(io_error)?;
        self.decrypt_at(ct_len, last)?;
        self.carry = ct_len.saturating_add(TAG_LEN)..have;
        Ok(())
    }

    /// Verifies and decrypts the segment at the front of `buf`.
    fn decrypt_at(&mut self, ct_len: usize, last: bool) -> io::Result<()> {
        let index = u32::try_from(self.index).map_err(|_| io_error(Error::Authentication))?;
        let (ct, rest) = self
            .buf
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

impl<R: Read> Decryptor<R> {
    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.failed {
                return Err(poisoned());
            }
            if !self.plain.is_empty() {
                let src = self.buf.get(self.plain.clone()).unwrap_or_default();
                let n = src.len().min(out.len());
                if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
                    d.copy_from_slice(s);
                }
                self.plain.start = self.plain.start.saturating_add(n);
                self.position = self.position.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                return Ok(n);
            }
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            // After a seek the reader sits on a segment boundary with nothing
            // carried over, so reading on is ordinary sequential reading.
            if let Err(e) = self.next_sequential() {
                return Err(self.fail(e));
            }
        }
    }
}

impl<R: Read + Seek> Decryptor<R> {
    /// Switches to indexed reading: finds the payload length, checks it frames,
    /// and verifies the last segment so that the length is authenticated. The
    /// layout is kept only once that check passed.
    fn index(&mut self) -> io::Result<Segments> {
        if let Some(s) = self.indexed {
            return Ok(s);
        }
        let here = self.inner.stream_position()?;
        let base = here
            .checked_sub(self.consumed)
            .ok_or_else(|| io::Error::other("reader moved under the decryptor"))?;
        let end = self.inner.seek(SeekFrom::End(0))?;
        let payload = end
            .checked_sub(base)
            .and_then(|n| n.checked_sub(self.header_len))
            .ok_or_else(|| {
                io_error(Error::Malformed {
                    offset: 0,
                    what: "truncated",
                })
            })?;
        let payload = usize::try_from(payload).map_err(|_| io::Error::other("envelope too large for this platform"))?;
        let size = SegmentSize::new(self.segment).map_err(io_error)?;
        let header_len = usize::try_from(self.header_len).unwrap_or(usize::MAX);
        let segs = Segments::for_payload(payload, size, header_len).map_err(io_error)?;
        self.base = base;
        // Authenticate the length: the last segment must verify as final.
        // Verified in a scratch buffer, and the reader put back, so the
        // stream state (and which segments get fetched) is unchanged.
        self.verify_last(segs)?;
        self.inner.seek(SeekFrom::Start(here))?;
        self.indexed = Some(segs);
        Ok(segs)
    }
}

impl<R: Read + Seek> Decryptor<R> {
    /// Verifies the final segment (in a scratch buffer, zeroized after).
    fn verify_last(&mut self, segs: Segments) -> io::Result<()> {
        let k = segs.count.saturating_sub(1);
        let stride = u64::try_from(self.stride()).unwrap_or(u64::MAX);
        let at = u64::try_from(k)
            .ok()
            .and_then(|k| k.checked_mul(stride))
            .and_then(|o| o.checked_add(self.base))
            .and_then(|o| o.checked_add(self.header_len))
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        self.inner.seek(SeekFrom::Start(at))?;
        let len = segs.len_of(k);
        let mut scratch = Vec::with_capacity(len.saturating_add(TAG_LEN));
        fill(&mut self.inner, &mut scratch, len.saturating_add(TAG_LEN))?;
        let index = u32::try_from(k).map_err(|_| io_error(Error::Authentication))?;
        let r = match scratch.split_at_mut_checked(len) {
            Some((ct, tag)) => match <[u8; TAG_LEN]>::try_from(&*tag) {
                Ok(tag) => self.cipher.open_segment_in_place(index, true, ct, &tag),
                Err(_) => Err(Error::Malformed {
                    offset: 0,
                    what: "truncated payload",
                }),
            },
            None => Err(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            }),
        };
        scratch.zeroize();
        r.map_err(io_error)
    }

    /// Reads and decrypts segment `k` of `segs` by position.
    fn load(&mut self, segs: Segments, k: usize) -> io::Result<()> {
        let stride = u64::try_from(self.stride()).unwrap_or(u64::MAX);
        let at = u64::try_from(k)
            .ok()
            .and_then(|k| k.checked_mul(stride))
            .and_then(|o| o.checked_add(self.base))
            .and_then(|o| o.checked_add(self.header_len))
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        self.inner.seek(SeekFrom::Start(at))?;
        let len = segs.len_of(k).saturating_add(TAG_LEN);
        self.buf.clear();
        let eof = fill(&mut self.inner, &mut self.buf, len)?;
        if eof && self.buf.len() < len {
            return Err(io_error(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            }));
        }
        self.carry = 0..0;
        self.index = u64::try_from(k).unwrap_or(u64::MAX);
        self.position = u64::try_from(k.saturating_mul(self.segment)).unwrap_or(u64::MAX);
        self.finished = false;
        let last = k.saturating_add(1) == segs.count;
        self.decrypt_at(segs.len_of(k), last)
    }

    /// Positions the decryptor at plaintext offset `p` (at most the length).
    fn seek_plain(&mut self, p: u64) -> io::Result<()> {
        let segs = self.indexed.ok_or_else(|| io::Error::other("not indexed"))?;
        let len = u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX);
        if p >= len {
            // At the end: nothing left to read (the length is authenticated).
            self.buf.zeroize();
            self.plain = 0..0;
            self.position = len;
            self.finished = true;
            return Ok(());
        }
        let seg = u64::try_from(self.segment).unwrap_or(u64::MAX);
        let k = usize::try_from(p.checked_div(seg).unwrap_or(0)).unwrap_or(usize::MAX);
        self.load(segs, k)?;
        let skip = usize::try_from(p.saturating_sub(self.position)).unwrap_or(usize::MAX);
        self.plain.start = self.plain.start.saturating_add(skip).min(self.plain.end);
        self.position = p;
        Ok(())
    }

    /// The plaintext length, authenticated (switches to indexed mode: the
    /// last segment is verified). A failure poisons the decryptor.
    pub fn plaintext_len(&mut self) -> io::Result<u64> {
        if self.failed {
            return Err(poisoned());
        }
        match self.index() {
            Ok(segs) => Ok(u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX)),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl<R: Read + Seek> Seek for Decryptor<R> {
    /// Seeks in plaintext offsets, `0..=len`. A target outside that range
    /// fails with `InvalidInput` and leaves the decryptor as it was; any other
    /// failure (I/O, authentication) poisons it.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        if self.failed {
            return Err(poisoned());
        }
        let segs = match self.index() {
            Ok(segs) => segs,
            Err(e) => return Err(self.fail(e)),
        };
        let len = u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX);
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        let Some(target) = target.filter(|t| *t <= len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the plaintext",
            ));
        };
        match self.seek_plain(target) {
            Ok(()) => Ok(target),
            Err(e) => Err(self.fail(e)),
        }
    }
}

impl<R: Read> Drop for Decryptor<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl<R: Read> core::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decryptor")
            .field("segment_size", &self.segment)
            .field("position", &self.position)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}
