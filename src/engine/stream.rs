//! Streams without I/O: the framing, buffering, batching and seeking of the
//! streaming encryptor and decryptor, written once and pumped by the
//! `std::io` front end (`io.rs`) and the tokio one (`tokio.rs`).
//!
//! A pump asks the core what it needs ([`SegmentOpener::io`],
//! [`HeaderBuf::read_space`], [`SegmentSealer::pending`]), performs that one
//! read, seek or write on its reader or writer (blocking, or by polling), and
//! reports the result back. Every decision (segment boundaries, the last
//! segment, which bytes to release, when a length is authenticated) is made
//! here.

use core::ops::Range;
use std::boxed::Box;
use std::io::SeekFrom;
use std::vec::Vec;

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::PayloadCipher;
use crate::error::{Error, LimitKind};
use crate::format::{Limits, Parsed, SegmentSize, Segments, TAG_LEN, frame_segment, parse_prefix};

use super::open::open_chunk_in_place;
use super::parallel::{self, MIN_BYTES_PER_THREAD};
use super::rewrap::verify_segment;
use super::seal::seal_parallel_batch;

/// Segments per thread in one parallel streaming batch, at the least.
const SEGMENTS_PER_THREAD: usize = 8;

/// A read buffer starts this large and at most doubles each time it grows, so
/// memory follows the data that actually arrives, not what a header
/// announces. Once grown, it is read into whole.
const READ_CHUNK: usize = 16 * 1024;

/// Segments in one parallel batch for `threads` threads: at least
/// [`SEGMENTS_PER_THREAD`] per thread, and at least
/// [`MIN_BYTES_PER_THREAD`] of payload per thread (tiny segments would
/// otherwise spawn a thread per few hundred bytes).
fn batch_segments(threads: usize, segment: usize) -> usize {
    let by_count = threads.saturating_mul(SEGMENTS_PER_THREAD);
    let by_bytes = threads.saturating_mul(MIN_BYTES_PER_THREAD).div_ceil(segment.max(1));
    by_count.max(by_bytes).max(1)
}

/// Makes `buf[filled..]` at least `min(want, ...)` long, growing
/// geometrically from what is present, and returns the space to read into.
/// A larger block is allocated fresh and the old one wiped, so no plaintext
/// left in it is freed unwiped.
fn read_space(buf: &mut Vec<u8>, filled: usize, want: usize, first: usize) -> &mut [u8] {
    let grown = filled.saturating_add(filled.max(first));
    let target = want.min(grown.max(buf.capacity()));
    if buf.len() < target {
        reserve_wiping(buf, filled, target);
        buf.resize(target, 0);
    }
    buf.get_mut(filled..target).unwrap_or_default()
}

/// Makes `buf`'s capacity at least `target`, keeping its first `keep` bytes:
/// a larger block is allocated fresh and the old one wiped before it is
/// freed (a reallocation would free it with its contents).
fn reserve_wiping(buf: &mut Vec<u8>, keep: usize, target: usize) {
    if buf.capacity() < target {
        let mut grown = Vec::with_capacity(target);
        grown.extend_from_slice(buf.get(..keep).unwrap_or_default());
        buf.zeroize();
        *buf = grown;
    }
}

/// One I/O operation a pump must perform for the core.
#[derive(Debug)]
pub(crate) enum Io<'a> {
    /// Read into this buffer, then report the count with `read_done` (0: the
    /// input ended).
    Read(&'a mut [u8]),
    /// Seek, then report the new position with `seek_done`.
    Seek(SeekFrom),
}

/// Reads a header from a stream: never more than the header limit plus one
/// byte, growing geometrically from 256 bytes.
#[derive(Debug)]
pub(crate) struct HeaderBuf {
    buf: Vec<u8>,
    filled: usize,
    eof: bool,
    limits: Limits,
}

impl HeaderBuf {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            buf: Vec::new(),
            filled: 0,
            eof: false,
            limits,
        }
    }

    /// Where to read next, or `None` once a whole header is buffered. A
    /// malformed or over-long header, or input that ends inside it, is an
    /// error.
    pub(crate) fn read_space(&mut self) -> Result<Option<&mut [u8]>, Error> {
        let have = self.buf.get(..self.filled).unwrap_or_default();
        let need = match parse_prefix(have, &self.limits)? {
            Parsed::Complete(_) => return Ok(None),
            Parsed::Incomplete { need } => need,
        };
        if self.eof {
            return Err(Error::Malformed {
                offset: self.filled,
                what: "truncated",
            });
        }
        let max = self.limits.max_header_len().saturating_add(1);
        let want = need.max(self.filled.saturating_mul(2)).max(256).min(max);
        if want <= self.filled {
            // Only with a limit shorter than the fixed fields.
            return Err(Error::LimitExceeded {
                limit: LimitKind::HeaderBytes,
                max: self.limits.max_header_len(),
            });
        }
        Ok(Some(read_space(&mut self.buf, self.filled, want, want)))
    }

    /// Reports a read of `n` bytes (0: the input ended).
    pub(crate) fn read_done(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
        }
        self.filled = self.filled.saturating_add(n).min(self.buf.len());
    }

    /// Everything read: the header, then any payload bytes read with it.
    pub(crate) fn into_bytes(mut self) -> Vec<u8> {
        self.buf.truncate(self.filled);
        self.buf
    }
}

/// Encrypts a stream segment by segment: plaintext goes in with
/// [`accept`](Self::accept), ciphertext comes out of
/// [`pending`](Self::pending). The header is the first pending output.
pub(crate) struct SegmentSealer {
    /// Boxed so moving the sealer (out of the future that built it, which may
    /// live on the heap) moves a pointer, not the key schedule.
    cipher: Box<PayloadCipher>,
    segment: usize,
    threads: usize,
    /// Plaintext bytes buffered before sealing: one segment, or a batch.
    batch: usize,
    /// Plaintext being buffered. It grows with the data written (up to a
    /// segment plus its tag, or a batch), never by reallocation: a larger
    /// block is allocated and the old one wiped.
    buf: Vec<u8>,
    /// Sealed bytes not yet written.
    out: Vec<u8>,
    out_pos: usize,
    /// Index of the next segment to seal.
    index: u32,
    finished: bool,
}

impl SegmentSealer {
    pub(crate) fn new(header: Vec<u8>, cipher: Box<PayloadCipher>, size: SegmentSize, threads: usize) -> Self {
        let segment = size.bytes();
        let threads = threads.max(1);
        let batch = if threads > 1 {
            batch_segments(threads, segment).saturating_mul(segment)
        } else {
            segment
        };
        Self {
            cipher,
            segment,
            threads,
            batch,
            buf: Vec::new(),
            out: header,
            out_pos: 0,
            index: 0,
            finished: false,
        }
    }

    /// Sealed bytes waiting to be written.
    pub(crate) fn pending(&self) -> &[u8] {
        self.out.get(self.out_pos..).unwrap_or_default()
    }

    /// Reports that `n` pending bytes were written.
    pub(crate) fn consume(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Takes plaintext from `data` (call only with nothing pending): returns
    /// how many bytes it took. A full buffer is sealed only once more data
    /// arrives (a full segment is final only if nothing follows), and then
    /// nothing is taken: write the pending output and call again.
    pub(crate) fn accept(&mut self, data: &[u8]) -> Result<usize, Error> {
        if self.finished {
            return Err(Error::InvalidArgument {
                what: "stream already finished",
            });
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.buf.len() >= self.batch {
            self.seal(false)?;
            return Ok(0);
        }
        let take = self.batch.saturating_sub(self.buf.len()).min(data.len());
        let len = self.buf.len();
        let need = len.saturating_add(take);
        if need.saturating_add(TAG_LEN) > self.buf.capacity() {
            // Room for the segment's tag too, so sealing never reallocates.
            let grown = need.max(len.saturating_mul(2)).max(READ_CHUNK);
            reserve_wiping(&mut self.buf, len, grown.min(self.batch).saturating_add(TAG_LEN));
        }
        self.buf.extend_from_slice(data.get(..take).unwrap_or_default());
        Ok(take)
    }

    /// Seals what is buffered as the end of the stream (call only with
    /// nothing pending); the last bytes then become pending.
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        if !self.finished {
            self.seal(true)?;
            self.finished = true;
        }
        Ok(())
    }

    /// Number of segments sealed so far.
    pub(crate) fn segments(&self) -> u32 {
        self.index
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segment
    }

    /// Seals the buffer into `out`: one segment in place, or a batch on
    /// several threads (the same bytes).
    fn seal(&mut self, last: bool) -> Result<(), Error> {
        let n = self.buf.len();
        let nsegs = if n == 0 { 1 } else { n.div_ceil(self.segment) };
        let base = usize::try_from(self.index).unwrap_or(usize::MAX);
        let end = base
            .checked_add(nsegs)
            .filter(|e| u32::try_from(*e).is_ok_and(|e| e < u32::MAX))
            .ok_or_else(|| Error::InvalidArgument {
                what: "more than 2^32 - 1 segments",
            })?;
        if self.threads > 1 {
            let last_len = n.saturating_sub(nsegs.saturating_sub(1).saturating_mul(self.segment));
            let batch = Segments {
                size: self.segment,
                count: nsegs,
                last_len,
            };
            // "Last" is judged against the whole stream.
            let whole = Segments {
                count: if last { end } else { usize::MAX },
                ..batch
            };
            self.out.clear();
            self.out.resize(n.saturating_add(nsegs.saturating_mul(TAG_LEN)), 0);
            let threads = parallel::threads_for(self.threads, n);
            let r = seal_parallel_batch(&self.cipher, threads, batch, whole, base, &self.buf, &mut self.out);
            // The next batch overwrites the plaintext; drop zeroizes it.
            self.buf.clear();
            r?;
        } else {
            let tag = self.cipher.seal_segment_in_place(self.index, last, &mut self.buf)?;
            // Within capacity (segment + tag): the buffer is never reallocated.
            self.buf.extend_from_slice(&tag);
            // `buf` now holds only ciphertext: hand it over without a copy.
            core::mem::swap(&mut self.buf, &mut self.out);
            self.buf.clear();
        }
        self.out_pos = 0;
        self.index = u32::try_from(end).unwrap_or(u32::MAX);
        Ok(())
    }
}

impl Drop for SegmentSealer {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// What a [`SegmentOpener`] releases.
pub(crate) enum Output {
    /// Verified plaintext.
    Plaintext,
    /// The payload's own bytes, segment by segment, each checked for framing
    /// and (with `verify`) for its tag before release: a rewrap's payload copy.
    Ciphertext { verify: bool },
}

/// The operation in progress.
#[derive(Clone, Copy, Debug)]
enum Op {
    Idle,
    /// Filling `buf` to `want` bytes for the next segment (or batch).
    Next {
        want: usize,
    },
    /// Finding the payload length: the reader's position, its end, then the
    /// last segment, verified in `scratch`; `restore` seeks back after.
    Index(IndexStage, bool),
    /// Loading segment `k` at its offset, then releasing from `skip`.
    Load {
        k: usize,
        skip: usize,
        want: usize,
        seeked: bool,
    },
    /// Seeking the reader back to where sequential reading left it.
    Restore(u64),
}

#[derive(Clone, Copy, Debug)]
enum IndexStage {
    Here,
    End { here: u64 },
    SeekLast { here: u64, segs: Segments, at: u64 },
    ReadLast { here: u64, segs: Segments, want: usize },
}

/// Decrypts a stream segment by segment (or copies it, checked, for a rewrap).
pub(crate) struct SegmentOpener {
    cipher: Box<PayloadCipher>,
    segment: usize,
    threads: usize,
    output: Output,
    header_len: u64,
    /// Input bytes; after a segment: its output at `out`, read-ahead at `carry`.
    buf: Vec<u8>,
    out: Range<usize>,
    carry: Range<usize>,
    /// While loading: the valid bytes at the front of `buf`.
    filled: usize,
    eof: bool,
    /// Index of the next segment in stream order.
    index: u64,
    /// Bytes read from the reader since the envelope started.
    consumed: u64,
    /// Plaintext offset of `out.start`.
    position: u64,
    finished: bool,
    /// A failure was reported: nothing more is released.
    failed: bool,
    op: Op,
    /// Known once indexed (and authenticated): the payload's segmentation,
    /// and the reader offset where the envelope starts.
    indexed: Option<(Segments, u64)>,
    /// The last segment, read and verified while indexing; wiped after.
    scratch: Zeroizing<Vec<u8>>,
    scratch_filled: usize,
}

impl SegmentOpener {
    /// A decryptor for the payload after an authenticated header: `read`
    /// holds every byte read so far, the header's `header_len` bytes first.
    pub(crate) fn new(
        cipher: Box<PayloadCipher>,
        size: SegmentSize,
        header_len: usize,
        read: Vec<u8>,
        threads: usize,
        output: Output,
    ) -> Self {
        let have = read.len();
        Self {
            cipher,
            segment: size.bytes(),
            threads: threads.max(1),
            output,
            header_len: u64::try_from(header_len).unwrap_or(u64::MAX),
            buf: read,
            out: 0..0,
            carry: header_len.min(have)..have,
            filled: 0,
            eof: false,
            index: 0,
            consumed: u64::try_from(have).unwrap_or(u64::MAX),
            position: 0,
            finished: false,
            failed: false,
            op: Op::Idle,
            indexed: None,
            scratch: Zeroizing::new(Vec::new()),
            scratch_filled: 0,
        }
    }

    fn stride(&self) -> usize {
        self.segment.saturating_add(TAG_LEN)
    }

    /// Whether a failure was reported (every further call must fail).
    pub(crate) fn is_failed(&self) -> bool {
        self.failed
    }

    /// Released bytes not yet consumed.
    pub(crate) fn output(&self) -> &[u8] {
        self.buf.get(self.out.clone()).unwrap_or_default()
    }

    /// Reports that `n` released bytes were consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.out.start = self.out.start.saturating_add(n);
        self.position = self.position.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// The authenticated end was reached (and everything released was consumed
    /// or is in [`output`](Self::output)).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Plaintext offset of the next byte [`output`](Self::output) releases.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segment
    }

    /// Segments read in stream order so far.
    pub(crate) fn segments_read(&self) -> u64 {
        self.index
    }

    /// After a failure: wipes what is buffered, releases nothing more.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.buf.zeroize();
        self.scratch.zeroize();
        self.out = 0..0;
        self.carry = 0..0;
        self.op = Op::Idle;
    }

    /// Starts reading the next segment (or batch) in stream order. Call when
    /// the output is used up and the stream is not finished.
    pub(crate) fn start_next(&mut self) {
        let carry = self.carry.clone();
        let carried = carry.len();
        if carry.end <= self.buf.len() {
            self.buf.copy_within(carry, 0);
        }
        self.filled = carried;
        self.carry = 0..0;
        self.out = 0..0;
        self.eof = false;
        let stride = self.stride();
        let want = if self.threads > 1 && matches!(self.output, Output::Plaintext) {
            batch_segments(self.threads, self.segment).saturating_mul(stride)
        } else {
            stride
        };
        // One byte ahead: a segment followed by more input is not the last.
        self.op = Op::Next {
            want: want.saturating_add(1),
        };
    }

    /// Starts indexing (finding and authenticating the payload length) unless
    /// already done; with `restore` the reader is put back where it was.
    pub(crate) fn start_index(&mut self, restore: bool) {
        if self.indexed.is_none() {
            self.op = Op::Index(IndexStage::Here, restore);
        }
    }

    /// The authenticated plaintext length, once indexed.
    pub(crate) fn indexed_len(&self) -> Option<u64> {
        self.indexed
            .map(|(segs, _)| u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX))
    }

    /// The plaintext offset `pos` names, if indexed and within `0..=len`.
    pub(crate) fn resolve(&self, pos: SeekFrom) -> Option<u64> {
        let len = self.indexed_len()?;
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        target.filter(|t| *t <= len)
    }

    /// Starts positioning at plaintext offset `target` (resolved, indexed).
    pub(crate) fn start_load(&mut self, target: u64) -> Result<(), Error> {
        let (segs, _) = self.indexed.ok_or_else(|| Error::InvalidArgument {
            what: "seek before the payload length is known",
        })?;
        let len = u64::try_from(segs.plaintext_len()).unwrap_or(u64::MAX);
        self.out = 0..0;
        self.carry = 0..0;
        if target >= len {
            // At the end: nothing left to read (the length is authenticated).
            self.buf.zeroize();
            self.position = len;
            self.finished = true;
            self.op = Op::Idle;
            return Ok(());
        }
        let seg = u64::try_from(self.segment).unwrap_or(u64::MAX);
        let k = usize::try_from(target.checked_div(seg).unwrap_or(0)).unwrap_or(usize::MAX);
        let start = u64::try_from(k).unwrap_or(u64::MAX).saturating_mul(seg);
        let skip = usize::try_from(target.saturating_sub(start)).unwrap_or(usize::MAX);
        self.op = Op::Load {
            k,
            skip,
            want: segs.len_of(k).saturating_add(TAG_LEN),
            seeked: false,
        };
        Ok(())
    }

    /// Offset in the reader of segment `k`'s first byte.
    fn offset_of(&self, base: u64, k: usize) -> Result<u64, Error> {
        let stride = u64::try_from(self.stride()).unwrap_or(u64::MAX);
        u64::try_from(k)
            .ok()
            .and_then(|k| k.checked_mul(stride))
            .and_then(|o| o.checked_add(base))
            .and_then(|o| o.checked_add(self.header_len))
            .ok_or_else(|| Error::InvalidArgument {
                what: "offset overflow",
            })
    }

    /// The I/O the current operation needs next, or `None` once it is done
    /// (output is then available, or the stream is finished).
    pub(crate) fn io(&mut self) -> Result<Option<Io<'_>>, Error> {
        loop {
            match self.op {
                Op::Idle => return Ok(None),
                Op::Next { want } => {
                    if self.filled < want && !self.eof {
                        return Ok(Some(Io::Read(read_space(&mut self.buf, self.filled, want, READ_CHUNK))));
                    }
                    self.op = Op::Idle;
                    self.open_next()?;
                }
                Op::Index(IndexStage::Here, _) => return Ok(Some(Io::Seek(SeekFrom::Current(0)))),
                Op::Index(IndexStage::End { .. }, _) => return Ok(Some(Io::Seek(SeekFrom::End(0)))),
                Op::Index(IndexStage::SeekLast { at, .. }, _) => return Ok(Some(Io::Seek(SeekFrom::Start(at)))),
                Op::Index(IndexStage::ReadLast { here, segs, want }, restore) => {
                    if self.scratch_filled < want && !self.eof {
                        let space = read_space(&mut self.scratch, self.scratch_filled, want, READ_CHUNK);
                        return Ok(Some(Io::Read(space)));
                    }
                    self.verify_last(segs)?;
                    let base = here.saturating_sub(self.consumed);
                    self.indexed = Some((segs, base));
                    self.op = if restore { Op::Restore(here) } else { Op::Idle };
                }
                Op::Restore(to) => return Ok(Some(Io::Seek(SeekFrom::Start(to)))),
                Op::Load { k, seeked: false, .. } => {
                    let base = self.indexed.map_or(0, |(_, b)| b);
                    return Ok(Some(Io::Seek(SeekFrom::Start(self.offset_of(base, k)?))));
                }
                Op::Load { k, skip, want, .. } => {
                    if self.filled < want && !self.eof {
                        return Ok(Some(Io::Read(read_space(&mut self.buf, self.filled, want, READ_CHUNK))));
                    }
                    self.op = Op::Idle;
                    self.open_loaded(k, skip, want)?;
                }
            }
        }
    }

    /// Reports a read of `n` bytes into the space [`io`](Self::io) gave (0:
    /// the input ended).
    pub(crate) fn read_done(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
            return;
        }
        match self.op {
            Op::Index(IndexStage::ReadLast { .. }, _) => {
                self.scratch_filled = self.scratch_filled.saturating_add(n).min(self.scratch.len());
            }
            Op::Next { .. } => {
                self.filled = self.filled.saturating_add(n).min(self.buf.len());
                self.consumed = self.consumed.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            }
            _ => self.filled = self.filled.saturating_add(n).min(self.buf.len()),
        }
    }

    /// Reports the reader's position after the seek [`io`](Self::io) asked for.
    pub(crate) fn seek_done(&mut self, pos: u64) -> Result<(), Error> {
        self.op = match self.op {
            Op::Index(IndexStage::Here, r) => Op::Index(IndexStage::End { here: pos }, r),
            Op::Index(IndexStage::End { here }, r) => {
                let base = here.checked_sub(self.consumed).ok_or_else(|| Error::InvalidArgument {
                    what: "reader moved under the decryptor",
                })?;
                let payload = pos
                    .checked_sub(base)
                    .and_then(|n| n.checked_sub(self.header_len))
                    .ok_or_else(|| Error::Malformed {
                        offset: 0,
                        what: "truncated",
                    })?;
                let payload = usize::try_from(payload).map_err(|_| Error::InvalidArgument {
                    what: "envelope too large for this platform",
                })?;
                let size = SegmentSize::new(self.segment)?;
                let header_len = usize::try_from(self.header_len).unwrap_or(usize::MAX);
                let segs = Segments::for_payload(payload, size, header_len)?;
                let at = self.offset_of(base, segs.count.saturating_sub(1))?;
                Op::Index(IndexStage::SeekLast { here, segs, at }, r)
            }
            Op::Index(IndexStage::SeekLast { here, segs, .. }, r) => {
                self.scratch.clear();
                self.scratch_filled = 0;
                self.eof = false;
                let want = segs.len_of(segs.count.saturating_sub(1)).saturating_add(TAG_LEN);
                Op::Index(IndexStage::ReadLast { here, segs, want }, r)
            }
            Op::Restore(_) => Op::Idle,
            Op::Load { k, skip, want, .. } => {
                self.buf.clear();
                self.filled = 0;
                self.eof = false;
                Op::Load {
                    k,
                    skip,
                    want,
                    seeked: true,
                }
            }
            other => other,
        };
        Ok(())
    }

    /// Verifies the final segment in the scratch buffer (then wipes it): the
    /// payload length is authenticated only once the last segment opens as
    /// the last.
    fn verify_last(&mut self, segs: Segments) -> Result<(), Error> {
        let k = segs.count.saturating_sub(1);
        let want = segs.len_of(k).saturating_add(TAG_LEN);
        if self.scratch_filled < want {
            self.scratch.zeroize();
            return Err(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            });
        }
        let chunk = self.scratch.get_mut(..want).unwrap_or_default();
        let r = open_chunk_in_place(&self.cipher, segs, k, chunk);
        self.scratch.zeroize();
        self.scratch_filled = 0;
        self.eof = false;
        r
    }

    /// Opens segment `k` after a seek: exactly its bytes were read.
    fn open_loaded(&mut self, k: usize, skip: usize, want: usize) -> Result<(), Error> {
        let (segs, _) = self.indexed.ok_or(Error::Authentication)?;
        if self.filled < want {
            return Err(Error::Malformed {
                offset: 0,
                what: "truncated payload",
            });
        }
        let chunk = self.buf.get_mut(..want).ok_or(Error::Authentication)?;
        open_chunk_in_place(&self.cipher, segs, k, chunk)?;
        let ct_len = segs.len_of(k);
        self.out = skip.min(ct_len)..ct_len;
        self.carry = 0..0;
        self.index = u64::try_from(k).unwrap_or(u64::MAX).saturating_add(1);
        let seg = u64::try_from(self.segment).unwrap_or(u64::MAX);
        self.position = u64::try_from(k)
            .unwrap_or(u64::MAX)
            .saturating_mul(seg)
            .saturating_add(u64::try_from(skip).unwrap_or(u64::MAX));
        self.finished = k.saturating_add(1) == segs.count;
        Ok(())
    }

    /// Opens what the sequential fill read: one segment, or a batch.
    fn open_next(&mut self) -> Result<(), Error> {
        if self.threads > 1 && matches!(self.output, Output::Plaintext) {
            return self.open_batch();
        }
        let have = self.filled;
        let (ct_len, last) = frame_segment(have, self.eof, self.segment, self.index)?;
        let index = u32::try_from(self.index).map_err(|_| Error::Authentication)?;
        let seg_len = ct_len.saturating_add(TAG_LEN);
        match self.output {
            Output::Plaintext => {
                let (ct, rest) = self.buf.split_at_mut_checked(ct_len).ok_or(Error::Authentication)?;
                let tag: [u8; TAG_LEN] = rest
                    .get(..TAG_LEN)
                    .and_then(|t| t.try_into().ok())
                    .ok_or(Error::Authentication)?;
                self.cipher.open_segment_in_place(index, last, ct, &tag)?;
                self.out = 0..ct_len;
            }
            Output::Ciphertext { verify } => {
                let chunk = self.buf.get(..seg_len).ok_or(Error::Authentication)?;
                if verify {
                    verify_segment(
                        &self.cipher,
                        usize::try_from(index).unwrap_or(usize::MAX),
                        last,
                        ct_len,
                        chunk,
                        &mut self.scratch,
                    )?;
                }
                self.out = 0..seg_len;
            }
        }
        self.carry = seg_len..have;
        self.index = self.index.saturating_add(1);
        self.finished = last;
        Ok(())
    }

    /// Verifies and decrypts a batch of segments in place on several threads,
    /// releasing their plaintext only if all of them verified.
    fn open_batch(&mut self) -> Result<(), Error> {
        let stride = self.stride();
        let per_batch = batch_segments(self.threads, self.segment);
        let full = stride.saturating_mul(per_batch);
        let have = self.filled;
        let (region, segs, last) = if have > full {
            let segs = Segments {
                size: self.segment,
                count: per_batch,
                last_len: self.segment,
            };
            (full, segs, false)
        } else {
            // Fewer bytes than a batch plus one: the input ended.
            let size = SegmentSize::new(self.segment)?;
            let segs = Segments::for_payload(have, size, 0)?;
            if segs.count == 1 && segs.last_len == 0 && self.index > 0 {
                return Err(Error::Malformed {
                    offset: 0,
                    what: "empty final segment after a full one",
                });
            }
            (have, segs, true)
        };
        let base = self.index;
        let cipher = &*self.cipher;
        let threads = parallel::threads_for(self.threads, region);
        let per = segs.count.div_ceil(threads).max(1);
        let area = self.buf.get_mut(..region).ok_or(Error::Authentication)?;
        parallel::run(area.chunks_mut(per.saturating_mul(stride)), |t, group| {
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
        })?;
        // Move the plaintexts together (tags sit between them).
        for k in 0..segs.count {
            let from = k.saturating_mul(stride);
            self.buf.copy_within(
                from..from.saturating_add(segs.len_of(k)),
                k.saturating_mul(self.segment),
            );
        }
        self.out = 0..segs.plaintext_len();
        self.carry = region..have;
        self.index = self.index.saturating_add(u64::try_from(segs.count).unwrap_or(u64::MAX));
        self.finished = last;
        Ok(())
    }
}

impl Drop for SegmentOpener {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sized_by_bytes_as_well_as_segments() {
        assert_eq!(batch_segments(1, 65536), 8);
        assert_eq!(batch_segments(4, 65536), 32);
        // 64-byte segments: 2 MiB of payload per 4-thread batch, not 2 KiB.
        assert_eq!(batch_segments(4, 64), 4 * MIN_BYTES_PER_THREAD / 64);
    }

    #[test]
    fn read_space_grows_geometrically_up_to_want() {
        let mut buf = Vec::new();
        assert_eq!(read_space(&mut buf, 0, 1 << 24, READ_CHUNK).len(), READ_CHUNK);
        assert_eq!(read_space(&mut buf, READ_CHUNK, 1 << 24, READ_CHUNK).len(), READ_CHUNK);
        assert_eq!(
            read_space(&mut buf, 2 * READ_CHUNK, 1 << 24, READ_CHUNK).len(),
            2 * READ_CHUNK
        );
        assert_eq!(read_space(&mut buf, 100, 150, READ_CHUNK).len(), 50);
        // Once grown, the whole capacity is read into.
        let cap = buf.capacity();
        assert_eq!(read_space(&mut buf, 1, 1 << 24, READ_CHUNK).len(), cap - 1);
    }
}
