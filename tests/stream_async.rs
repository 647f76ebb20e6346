//! Async streaming over tokio: the same bytes as one-shot seal, readable by the
//! sync opener, correct over writers and readers that return `Pending` and
//! move a few bytes at a time, every truncation and reordering detected.
#![cfg(feature = "tokio")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

mod common;
use common::{FixedWrap, SeqRng};

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use lockbox::tokio::{Decryptor, Encryptor};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, EncryptionContext, Error, Limits, LocalKek, Sealer,
    SegmentSize, Suite,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A writer that returns `Pending` on every other call (waking at once) and
/// otherwise accepts at most `max` bytes.
#[derive(Default)]
struct Choppy {
    data: Vec<u8>,
    max: usize,
    calls: usize,
    flushes: usize,
    shut: bool,
}

impl Choppy {
    fn new(max: usize) -> Self {
        Self { max, ..Self::default() }
    }

    /// True (after waking the task) on every other call.
    fn stall(&mut self, cx: &mut Context<'_>) -> bool {
        self.calls += 1;
        // Fail, rather than hang, if the encryptor stops making progress.
        assert!(self.calls < 1_000_000, "writer polled without progress");
        if self.calls % 2 == 1 {
            cx.waker().wake_by_ref();
            true
        } else {
            false
        }
    }
}

impl AsyncWrite for Choppy {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        assert!(!self.shut, "write after shutdown");
        if self.stall(cx) {
            return Poll::Pending;
        }
        let n = buf.len().min(self.max);
        self.data.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stall(cx) {
            return Poll::Pending;
        }
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stall(cx) {
            return Poll::Pending;
        }
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

/// A reader that returns `Pending` on every other call (waking at once) and
/// otherwise yields one byte.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    calls: usize,
}

impl Trickle {
    fn new(data: &[u8]) -> Self {
        Self {
            data: data.to_vec(),
            pos: 0,
            calls: 0,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.calls += 1;
        assert!(self.calls < 1_000_000, "reader polled without progress");
        if self.calls % 2 == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(&b) = self.data.get(self.pos)
            && buf.remaining() > 0
        {
            buf.put_slice(&[b]);
            self.pos += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// A writer that fails once it has taken `budget` bytes.
struct Failing {
    budget: usize,
}

impl AsyncWrite for Failing {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "disk on fire")));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3) % 253) as u8)
        .collect()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("file", "report.pdf").unwrap()
}

const LENGTHS: [usize; 7] = [0, 1, 63, 64, 65, 200, 1000];

async fn async_seal<W: AsyncWrite + Unpin>(sealer: &Sealer<'_>, writer: W, pt: &[u8], chunk: usize, seed: u8) -> W {
    // A blocking provider's key phase, then tokio I/O.
    let header = sealer.seal_header_with_rng(&mut SeqRng(seed), &ctx()).unwrap();
    let mut enc = Encryptor::new(header, writer).await.unwrap();
    for c in pt.chunks(chunk.max(1)) {
        enc.write_all(c).await.unwrap();
    }
    enc.finish().await.unwrap()
}

async fn async_open<R: AsyncRead + Unpin>(
    p: &dyn AsyncKeyEncryptionProvider,
    src: R,
    buf: usize,
) -> io::Result<Vec<u8>> {
    let mut dec = AsyncOpener::new(p).decryptor(src, &ctx()).await?;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; buf];
    loop {
        let n = dec.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn lockbox_error(e: &io::Error) -> &Error {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .expect("a lockbox error")
}

#[tokio::test]
async fn async_streaming_produces_and_reads_exactly_the_one_shot_bytes() {
    for suite in Suite::ALL {
        let sealer = Sealer::new(&FixedWrap).suite(suite).segment_size(SegmentSize::MIN);
        for len in LENGTHS {
            let pt = pattern(len);
            let one_shot = sealer.seal_with_rng(&mut SeqRng(9), &pt, &ctx()).unwrap();
            for chunk in [1, 7, 64, 100, len.max(1)] {
                let env = async_seal(&sealer, Vec::new(), &pt, chunk, 9).await;
                assert_eq!(env, one_shot, "{suite} len {len} chunk {chunk}");
                assert_eq!(lockbox::open(&FixedWrap, &env, &ctx()).unwrap(), pt);
            }
            for buf in [1, 13, 64, 4096] {
                assert_eq!(
                    async_open(&FixedWrap, &one_shot[..], buf).await.unwrap(),
                    pt,
                    "{suite} len {len} buf {buf}"
                );
            }
            let mut out = Vec::new();
            AsyncOpener::new(&FixedWrap)
                .decryptor(&one_shot[..], &ctx())
                .await
                .unwrap()
                .read_to_end(&mut out)
                .await
                .unwrap();
            assert_eq!(out, pt);
        }
    }
}

#[tokio::test]
async fn default_segments_round_trip_with_a_local_kek() {
    let kek = LocalKek::generate().unwrap();
    let seg = SegmentSize::DEFAULT.bytes();
    for len in [seg - 1, seg, seg + 1, 3 * seg + 17] {
        let pt = pattern(len);
        let mut enc = AsyncSealer::new(&kek).encryptor(Vec::new(), &ctx()).await.unwrap();
        enc.write_all(&pt).await.unwrap();
        enc.shutdown().await.unwrap();
        let env = enc.get_ref().unwrap().clone();
        assert_eq!(lockbox::open(&kek, &env, &ctx()).unwrap(), pt);
        // A one-shot envelope with a fresh key reads the same way.
        let sealed = lockbox::seal(&kek, &pt, &ctx()).unwrap();
        for e in [&env, &sealed] {
            let mut out = Vec::new();
            AsyncOpener::new(&kek)
                .decryptor(&e[..], &ctx())
                .await
                .unwrap()
                .read_to_end(&mut out)
                .await
                .unwrap();
            assert_eq!(out, pt);
        }
    }
}

#[tokio::test]
async fn a_writer_that_stalls_and_takes_a_few_bytes_gets_the_same_bytes() {
    for suite in Suite::ALL {
        let sealer = Sealer::new(&FixedWrap).suite(suite).segment_size(SegmentSize::MIN);
        for len in LENGTHS {
            let pt = pattern(len);
            let one_shot = sealer.seal_with_rng(&mut SeqRng(3), &pt, &ctx()).unwrap();
            for chunk in [1, 50, 64, 1000] {
                let w = async_seal(&sealer, Choppy::new(7), &pt, chunk, 3).await;
                assert!(w.shut, "finish shuts the inner writer down");
                assert!(w.flushes >= 1, "finish flushes the inner writer");
                assert_eq!(w.data, one_shot, "{suite} len {len} chunk {chunk}");
            }
        }
    }
}

#[tokio::test]
async fn flushing_mid_stream_writes_whole_segments_only() {
    let sealer = Sealer::new(&FixedWrap).segment_size(SegmentSize::MIN);
    let pt = pattern(200);
    let one_shot = sealer.seal_with_rng(&mut SeqRng(4), &pt, &ctx()).unwrap();
    let h = lockbox::inspect(&one_shot).unwrap().header_len();
    let header = sealer.seal_header_with_rng(&mut SeqRng(4), &ctx()).unwrap();
    let mut enc = Encryptor::new(header, Choppy::new(7)).await.unwrap();
    enc.write_all(&pt[..100]).await.unwrap();
    enc.flush().await.unwrap();
    // The first segment is out (a second one started); the partial one is not.
    assert_eq!(enc.get_ref().unwrap().data, one_shot[..h + 80]);
    enc.write_all(&pt[100..]).await.unwrap();
    enc.flush().await.unwrap();
    // 200 = 3 * 64 + 8: segments 1 and 2 are out now, the partial last is not.
    assert_eq!(enc.get_ref().unwrap().data, one_shot[..h + 3 * 80]);
    let w = enc.finish().await.unwrap();
    assert_eq!(w.data, one_shot);
}

#[tokio::test]
async fn shutdown_is_idempotent_and_ends_writing() {
    let kek = LocalKek::generate().unwrap();
    let mut enc = AsyncSealer::new(&kek).encryptor(Vec::new(), &ctx()).await.unwrap();
    enc.write_all(b"hello").await.unwrap();
    enc.shutdown().await.unwrap();
    enc.shutdown().await.unwrap();
    assert!(enc.write_all(b"more").await.is_err());
    let env = enc.finish().await.unwrap();
    assert_eq!(lockbox::open(&kek, &env, &ctx()).unwrap(), b"hello");
}

#[tokio::test]
async fn a_duplex_pipe_with_a_tiny_buffer_streams_both_ways_at_once() {
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(5000);
    for size in [SegmentSize::MIN, SegmentSize::new(1024).unwrap()] {
        let (a, b) = tokio::io::duplex(16);
        let sealer = AsyncSealer::new(&kek).segment_size(size);
        let write = async {
            let mut enc = sealer.encryptor(a, &ctx()).await.unwrap();
            for c in pt.chunks(333) {
                enc.write_all(c).await.unwrap();
            }
            // Shutting the pipe down is what lets the reader see the end.
            enc.finish().await.unwrap();
        };
        let read = async {
            let mut dec = AsyncOpener::new(&kek).decryptor(b, &ctx()).await.unwrap();
            let mut out = Vec::new();
            dec.read_to_end(&mut out).await.unwrap();
            out
        };
        let ((), out) = tokio::join!(write, read);
        assert_eq!(out, pt);
    }
}

#[tokio::test]
async fn a_reader_that_stalls_and_yields_one_byte_at_a_time_works() {
    for suite in Suite::ALL {
        let sealer = Sealer::new(&FixedWrap).suite(suite).segment_size(SegmentSize::MIN);
        for len in LENGTHS {
            let pt = pattern(len);
            let env = sealer.seal_with_rng(&mut SeqRng(5), &pt, &ctx()).unwrap();
            for buf in [1, 64, 4096] {
                assert_eq!(
                    async_open(&FixedWrap, Trickle::new(&env), buf).await.unwrap(),
                    pt,
                    "{suite} len {len} buf {buf}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_truncation_point_fails_without_reporting_success() {
    let sealer = Sealer::new(&FixedWrap).segment_size(SegmentSize::MIN);
    let env = sealer.seal_with_rng(&mut SeqRng(1), &pattern(300), &ctx()).unwrap();
    for len in 0..env.len() {
        let r = match AsyncOpener::new(&FixedWrap).decryptor(&env[..len], &ctx()).await {
            Ok(mut d) => d.read_to_end(&mut Vec::new()).await,
            Err(e) => Err(e),
        };
        assert!(r.is_err(), "truncated to {len} read as complete");
        // One byte at a time too (a different read-ahead pattern).
        let r = match AsyncOpener::new(&FixedWrap)
            .decryptor(Trickle::new(&env[..len]), &ctx())
            .await
        {
            Ok(mut d) => d.read_to_end(&mut Vec::new()).await,
            Err(e) => Err(e),
        };
        assert!(r.is_err(), "truncated to {len} read as complete, one byte at a time");
    }
}

#[tokio::test]
async fn appended_reordered_and_tampered_streams_fail() {
    let sealer = Sealer::new(&FixedWrap).segment_size(SegmentSize::MIN);
    let env = sealer.seal_with_rng(&mut SeqRng(2), &pattern(300), &ctx()).unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    let mut appended = env.clone();
    appended.push(0);
    let mut appended_segment = env.clone();
    appended_segment.extend_from_slice(&env[h..h + 80]);
    let mut swapped = env.clone();
    swapped[h..h + 80].copy_from_slice(&env[h + 80..h + 160]);
    swapped[h + 80..h + 160].copy_from_slice(&env[h..h + 80]);
    let mut flipped = env.clone();
    flipped[h + 100] ^= 1;
    let mut flipped_last = env.clone();
    *flipped_last.last_mut().unwrap() ^= 1;
    for (what, bad) in [
        ("appended byte", appended),
        ("appended segment", appended_segment),
        ("swapped segments", swapped),
        ("flipped bit", flipped),
        ("flipped last tag bit", flipped_last),
    ] {
        let mut dec = AsyncOpener::new(&FixedWrap).decryptor(&bad[..], &ctx()).await.unwrap();
        let mut out = Vec::new();
        let e = dec.read_to_end(&mut out).await.unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Authentication), "{what}: {e}");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Only whole, verified segments were released before the failure.
        assert_eq!(out.len() % 64, 0, "{what}");
        assert_eq!(out, pattern(300)[..out.len()], "{what}");
        // The decryptor stays failed.
        assert!(dec.read(&mut [0u8; 8]).await.is_err(), "{what}");
        assert!(dec.read(&mut [0u8; 8]).await.is_err(), "{what}");
    }
}

#[tokio::test]
async fn an_encryptor_dropped_without_shutdown_never_yields_a_valid_envelope() {
    let kek = LocalKek::generate().unwrap();
    for len in [0, 1, 64, 500, 512] {
        let mut out = Vec::new();
        {
            let mut enc = AsyncSealer::new(&kek)
                .segment_size(SegmentSize::MIN)
                .encryptor(&mut out, &ctx())
                .await
                .unwrap();
            enc.write_all(&pattern(len)).await.unwrap();
            enc.flush().await.unwrap();
            // Dropped without shutdown() or finish().
        }
        assert!(lockbox::open(&kek, &out, &ctx()).is_err(), "len {len}");
        let r = match AsyncOpener::new(&kek).decryptor(&out[..], &ctx()).await {
            Ok(mut d) => d.read_to_end(&mut Vec::new()).await,
            Err(e) => Err(e),
        };
        assert!(r.is_err(), "len {len}");
    }
}

#[tokio::test]
async fn a_failing_writer_poisons_the_encryptor() {
    let kek = LocalKek::generate().unwrap();
    // Enough for the header, not for the first segment.
    let header = lockbox::inspect(&lockbox::seal(&kek, b"", &ctx()).unwrap())
        .unwrap()
        .header_len();
    let mut enc = AsyncSealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .encryptor(Failing { budget: header + 10 }, &ctx())
        .await
        .unwrap();
    let e = enc.write_all(&pattern(500)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    assert!(enc.write_all(b"x").await.is_err());
    assert!(enc.flush().await.is_err());
    assert!(enc.shutdown().await.is_err());
    assert!(enc.finish().await.is_err());
    // A header that cannot be written fails the constructor.
    let e = AsyncSealer::new(&kek)
        .encryptor(Failing { budget: 3 }, &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn header_errors_surface_when_the_decryptor_is_created() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    let e = AsyncOpener::new(&kek)
        .decryptor(&env[..], &EncryptionContext::new().with("file", "other").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::ContextMismatch { .. }));
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let other = LocalKek::generate().unwrap();
    let e = AsyncOpener::new(&other).decryptor(&env[..], &ctx()).await.unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::NoProviderCouldUnwrap { .. }));
    let mut v2 = env.clone();
    v2[4] = 2;
    let e = AsyncOpener::new(&kek).decryptor(&v2[..], &ctx()).await.unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::UnsupportedVersion(2)));
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let e = AsyncOpener::new(&kek)
        .decryptor(&b"not an envelope"[..], &ctx())
        .await
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Malformed { .. }), "{e}");
}

#[tokio::test]
async fn header_and_segment_limits_are_enforced_without_panicking() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, &pattern(100), &ctx()).unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    // Header limits below the initial read size (and below the header).
    for max in [0, 10, 100, h - 1] {
        let limits = Limits::default().with_max_header_len(max);
        let e = AsyncOpener::new(&kek)
            .limits(limits)
            .decryptor(&env[..], &ctx())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "max {max}: {e}");
    }
    let limits = Limits::default().with_max_header_len(h);
    let mut out = Vec::new();
    AsyncOpener::new(&kek)
        .limits(limits)
        .decryptor(Trickle::new(&env), &ctx())
        .await
        .unwrap()
        .read_to_end(&mut out)
        .await
        .unwrap();
    assert_eq!(out, pattern(100));
    let limits = Limits::default().with_max_segment_size(1024);
    let e = AsyncOpener::new(&kek)
        .limits(limits)
        .decryptor(&env[..], &ctx())
        .await
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::LimitExceeded { .. }), "{e}");
}

#[tokio::test]
async fn a_file_round_trip_through_tokio_fs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf.lockbox");
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(3 * SegmentSize::DEFAULT.bytes() + 12345);
    let file = tokio::fs::File::create(&path).await.unwrap();
    let mut enc = AsyncSealer::new(&kek).encryptor(file, &ctx()).await.unwrap();
    for c in pt.chunks(10_000) {
        enc.write_all(c).await.unwrap();
    }
    let file = enc.finish().await.unwrap();
    file.sync_all().await.unwrap();
    drop(file);
    let on_disk = tokio::fs::read(&path).await.unwrap();
    assert_eq!(lockbox::open(&kek, &on_disk, &ctx()).unwrap(), pt);
    let file = tokio::fs::File::open(&path).await.unwrap();
    let mut dec = AsyncOpener::new(&kek).decryptor(file, &ctx()).await.unwrap();
    let mut out = Vec::new();
    dec.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, pt);
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapters_and_their_futures_are_send() {
    let kek = std::sync::Arc::new(LocalKek::generate().unwrap());
    let sealer = AsyncSealer::new(&*kek);
    let c = ctx();
    let fut = sealer.encryptor(Vec::new(), &c);
    assert_send(&fut);
    let enc: Encryptor<Vec<u8>> = fut.await.unwrap();
    assert_send(&enc);
    let fin = enc.finish();
    assert_send(&fin);
    let env = fin.await.unwrap();
    let opener = AsyncOpener::new(&*kek);
    let fut = opener.decryptor(&env[..], &c);
    assert_send(&fut);
    let dec: Decryptor<&[u8]> = fut.await.unwrap();
    assert_send(&dec);
    // And they run on spawned tasks.
    let k = kek.clone();
    let env = tokio::spawn(async move {
        let mut enc = AsyncSealer::new(&*k).encryptor(Vec::new(), &ctx()).await.unwrap();
        enc.write_all(b"spawned").await.unwrap();
        enc.finish().await.unwrap()
    })
    .await
    .unwrap();
    let out = tokio::spawn(async move {
        let mut dec = AsyncOpener::new(&*kek).decryptor(&env[..], &ctx()).await.unwrap();
        let mut out = Vec::new();
        dec.read_to_end(&mut out).await.unwrap();
        out
    })
    .await
    .unwrap();
    assert_eq!(out, b"spawned");
}
