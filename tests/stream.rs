//! Streaming, seekable and parallel encryption: same bytes as one-shot seal,
//! every truncation and reordering detected, seeks against the plaintext.
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

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use lockbox::{EncryptionContext, Error, KeyEncryptionProvider, LocalKek, Opener, Sealer, SegmentSize, Suite};

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3) % 253) as u8)
        .collect()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("file", "report.pdf").unwrap()
}

fn stream_seal(sealer: &Sealer<'_>, pt: &[u8], chunk: usize, seed: u8) -> Vec<u8> {
    let header = sealer.seal_header_with_rng(&mut SeqRng(seed), &ctx()).unwrap();
    let mut enc = lockbox::Encryptor::new(header, Vec::new()).unwrap();
    for c in pt.chunks(chunk.max(1)) {
        enc.write_all(c).unwrap();
    }
    enc.finish().unwrap()
}

fn stream_open(p: &dyn KeyEncryptionProvider, env: &[u8], buf: usize) -> std::io::Result<Vec<u8>> {
    let mut dec = Opener::new(p).decryptor(env, &ctx())?;
    let mut out = Vec::new();
    let mut chunk = vec![0u8; buf];
    loop {
        let n = dec.read(&mut chunk)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn lockbox_error(e: &std::io::Error) -> &Error {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .expect("a lockbox error")
}

#[test]
fn streaming_produces_and_reads_exactly_the_one_shot_bytes() {
    for suite in Suite::ALL {
        let sealer = Sealer::new(&FixedWrap).suite(suite).segment_size(SegmentSize::MIN);
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 640, 1000] {
            let pt = pattern(len);
            let one_shot = sealer.seal_with_rng(&mut SeqRng(9), &pt, &ctx()).unwrap();
            for chunk in [1, 7, 64, 100, len.max(1)] {
                assert_eq!(
                    stream_seal(&sealer, &pt, chunk, 9),
                    one_shot,
                    "{suite} len {len} chunk {chunk}"
                );
            }
            for buf in [1, 13, 64, 4096] {
                assert_eq!(
                    stream_open(&FixedWrap, &one_shot, buf).unwrap(),
                    pt,
                    "{suite} len {len} buf {buf}"
                );
            }
        }
    }
}

#[test]
fn default_segments_round_trip_with_a_local_kek() {
    let kek = LocalKek::generate().unwrap();
    let seg = SegmentSize::DEFAULT.bytes();
    for len in [seg - 1, seg, seg + 1, 3 * seg + 17] {
        let pt = pattern(len);
        let mut enc = Sealer::new(&kek).encryptor(Vec::new(), &ctx()).unwrap();
        enc.write_all(&pt).unwrap();
        let env = enc.finish().unwrap();
        assert_eq!(lockbox::open(&kek, &env, &ctx()).unwrap(), pt);
        let mut out = Vec::new();
        Opener::new(&kek)
            .decryptor(&env[..], &ctx())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, pt);
    }
}

#[test]
fn every_truncation_point_fails_without_reporting_success() {
    let sealer = Sealer::new(&FixedWrap).segment_size(SegmentSize::MIN);
    let env = sealer.seal_with_rng(&mut SeqRng(1), &pattern(300), &ctx()).unwrap();
    for len in 0..env.len() {
        let r = Opener::new(&FixedWrap)
            .decryptor(&env[..len], &ctx())
            .and_then(|mut d| d.read_to_end(&mut Vec::new()));
        assert!(r.is_err(), "truncated to {len} read as complete");
    }
}

#[test]
fn appended_reordered_and_tampered_streams_fail() {
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
    for (what, bad) in [
        ("appended byte", appended),
        ("appended segment", appended_segment),
        ("swapped segments", swapped),
        ("flipped bit", flipped),
    ] {
        let mut dec = Opener::new(&FixedWrap).decryptor(&bad[..], &ctx()).unwrap();
        let mut out = Vec::new();
        let e = dec.read_to_end(&mut out).unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Authentication), "{what}: {e}");
        // Only whole, verified segments were released before the failure.
        assert_eq!(out.len() % 64, 0, "{what}");
        assert_eq!(out, pattern(300)[..out.len()], "{what}");
        // The decryptor stays failed.
        assert!(dec.read(&mut [0u8; 8]).is_err());
    }
}

#[test]
fn an_unfinished_encryptor_never_yields_a_valid_envelope() {
    let kek = LocalKek::generate().unwrap();
    let mut out = Vec::new();
    {
        let mut enc = Sealer::new(&kek)
            .segment_size(SegmentSize::MIN)
            .encryptor(&mut out, &ctx())
            .unwrap();
        enc.write_all(&pattern(500)).unwrap();
        // Dropped without finish().
    }
    assert!(lockbox::open(&kek, &out, &ctx()).is_err());
    let r = Opener::new(&kek)
        .decryptor(&out[..], &ctx())
        .unwrap()
        .read_to_end(&mut Vec::new());
    assert!(r.is_err());
}

#[test]
fn header_errors_surface_when_the_decryptor_is_created() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    let e = Opener::new(&kek)
        .decryptor(&env[..], &EncryptionContext::new().with("file", "other").unwrap())
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::ContextMismatch { .. }));
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    let other = LocalKek::generate().unwrap();
    let e = Opener::new(&other).decryptor(&env[..], &ctx()).unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::NoProviderCouldUnwrap { .. }));
    let mut v2 = env.clone();
    v2[4] = 2;
    let e = Opener::new(&kek).decryptor(&v2[..], &ctx()).unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::UnsupportedVersion(2)));
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn seeking_to_random_offsets_matches_the_plaintext() {
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(5000);
    for size in [SegmentSize::MIN, SegmentSize::new(1024).unwrap()] {
        let env = Sealer::new(&kek).segment_size(size).seal(&pt, &ctx()).unwrap();
        // The envelope need not start at offset 0 of the source.
        let mut file = b"some prefix".to_vec();
        file.extend_from_slice(&env);
        let mut src = Cursor::new(file);
        src.seek(SeekFrom::Start(11)).unwrap();
        let mut dec = Opener::new(&kek).decryptor(src, &ctx()).unwrap();
        // Read a little sequentially first, then jump around.
        let mut head = [0u8; 10];
        dec.read_exact(&mut head).unwrap();
        assert_eq!(head, pt[..10]);
        assert_eq!(dec.plaintext_len().unwrap(), 5000);
        let mut state = 12345u64;
        for _ in 0..200 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (state >> 33) % 5001;
            let n = ((state >> 13) % 300) as usize;
            assert_eq!(dec.seek(SeekFrom::Start(at)).unwrap(), at);
            let mut got = vec![0u8; n];
            let read = dec.read(&mut got).unwrap();
            let end = (at as usize + n).min(5000);
            assert!(read <= end - at as usize);
            assert_eq!(got[..read], pt[at as usize..at as usize + read], "at {at}");
        }
        assert_eq!(dec.seek(SeekFrom::End(-100)).unwrap(), 4900);
        let mut tail = Vec::new();
        dec.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, pt[4900..]);
        assert_eq!(dec.seek(SeekFrom::Current(-50)).unwrap(), 4950);
        assert_eq!(dec.stream_position().unwrap(), 4950);
        let e = dec.seek(SeekFrom::Start(5001)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // Still usable after an out-of-range seek.
        dec.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        dec.read_to_end(&mut all).unwrap();
        assert_eq!(all, pt);
    }
}

#[test]
fn seeking_authenticates_the_length() {
    let kek = LocalKek::generate().unwrap();
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(640), &ctx())
        .unwrap();
    // Cut off the last segment exactly: the rest still frames.
    let cut = env.len() - 80;
    let mut dec = Opener::new(&kek)
        .decryptor(Cursor::new(env[..cut].to_vec()), &ctx())
        .unwrap();
    let e = dec.seek(SeekFrom::Start(0)).unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
    assert!(dec.read(&mut [0u8; 4]).is_err());
}

#[test]
fn parallel_and_sequential_give_the_same_bytes() {
    let pt = pattern(100_000);
    for suite in Suite::ALL {
        let base = Sealer::new(&FixedWrap)
            .suite(suite)
            .segment_size(SegmentSize::new(1024).unwrap());
        let seq = base.seal_with_rng(&mut SeqRng(5), &pt, &ctx()).unwrap();
        for threads in [2, 3, 8, 200] {
            let par = base
                .clone()
                .threads(threads)
                .seal_with_rng(&mut SeqRng(5), &pt, &ctx())
                .unwrap();
            assert_eq!(par, seq, "{suite} {threads} threads");
            assert_eq!(Opener::new(&FixedWrap).threads(threads).open(&seq, &ctx()).unwrap(), pt);
        }
        // A tampered segment fails the parallel open and releases nothing.
        let mut bad = seq.clone();
        let n = bad.len();
        bad[n / 2] ^= 1;
        let mut out = b"keep".to_vec();
        assert!(
            Opener::new(&FixedWrap)
                .threads(4)
                .open_to(&bad, &ctx(), &mut out)
                .is_err()
        );
        assert_eq!(out, b"keep");
    }
}

#[test]
fn a_failed_length_check_poisons_the_decryptor() {
    // Found in review: plaintext_len() on an envelope cut at a segment
    // boundary failed, but left a decryptor that then released non-plaintext
    // bytes and reported a clean end.
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(640);
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pt, &ctx())
        .unwrap();
    let cut = env.len() - 80;
    let mut dec = Opener::new(&kek)
        .decryptor(Cursor::new(env[..cut].to_vec()), &ctx())
        .unwrap();
    let mut head = [0u8; 10];
    dec.read_exact(&mut head).unwrap();
    assert_eq!(head, pt[..10]);
    let e = dec.plaintext_len().unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
    assert!(dec.read(&mut [0u8; 64]).is_err());
    assert!(dec.seek(SeekFrom::End(0)).is_err());
    assert!(dec.read_to_end(&mut Vec::new()).is_err());
}

#[test]
fn tiny_header_limits_fail_cleanly() {
    // Found in review: a header limit below 255 bytes panicked, below 5 looped.
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    for max in [0, 1, 4, 5, 100, h - 1, h, 255, 70_000] {
        let opener = Opener::new(&kek).limits(lockbox::Limits::default().with_max_header_len(max));
        match opener.decryptor(&env[..], &ctx()) {
            Err(e) => {
                assert!(max < h, "max {max} >= header {h} refused: {e}");
                assert!(
                    matches!(lockbox_error(&e), Error::LimitExceeded { .. }),
                    "max {max}: {e}"
                );
            }
            Ok(mut d) => {
                assert!(max >= h, "max {max} < header {h} accepted");
                let mut out = Vec::new();
                d.read_to_end(&mut out).unwrap();
                assert_eq!(out, b"x");
            }
        }
    }
}

#[test]
fn ciphertext_range_fetches_exactly_what_a_range_read_needs() {
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(20_000);
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::new(1024).unwrap())
        .seal(&pt, &ctx())
        .unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    let last_segment = env.len() - (20_000 % 1024 + 16);
    let mut state = 99u64;
    for _ in 0..100 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (state >> 33) % 20_000;
        let b = (a + (state >> 20) % 3000).min(20_000);
        let r = lockbox::ciphertext_range(&env[..h + 10], env.len() as u64, a..b).unwrap();
        // An object store would serve only these bytes: header, range, final segment.
        let mut sparse = vec![0xEE; env.len()];
        sparse[..h].copy_from_slice(&env[..h]);
        sparse[r.start as usize..r.end as usize].copy_from_slice(&env[r.start as usize..r.end as usize]);
        sparse[last_segment..].copy_from_slice(&env[last_segment..]);
        let mut dec = Opener::new(&kek).decryptor(Cursor::new(sparse), &ctx()).unwrap();
        dec.seek(SeekFrom::Start(a)).unwrap();
        let mut got = vec![0u8; (b - a) as usize];
        dec.read_exact(&mut got).unwrap();
        assert_eq!(got, pt[a as usize..b as usize], "{a}..{b}");
        // Whole segments, on segment boundaries.
        assert_eq!((r.start - h as u64) % 1040, 0);
    }
    assert!(lockbox::ciphertext_range(&env, env.len() as u64, 0..20_001).is_err());
    assert!(lockbox::ciphertext_range(&env[..10], env.len() as u64, 0..1).is_err());
    // A length that cannot frame (a final segment shorter than its tag).
    assert!(lockbox::ciphertext_range(&env, (h + 19 * 1040 + 5) as u64, 0..1).is_err());
    assert_eq!(
        lockbox::ciphertext_range(&env, env.len() as u64, 0..0).unwrap(),
        h as u64..(h + 1040) as u64
    );
}

/// Plaintext bytes in one parallel batch of 64-byte segments on `threads`
/// threads: at least 8 segments and 128 KiB of payload per thread.
fn batch_bytes(threads: usize) -> usize {
    (threads * 128 * 1024).div_ceil(64).max(8 * threads) * 64
}

#[test]
fn parallel_streams_give_the_same_bytes_and_the_same_guarantees() {
    let b2 = batch_bytes(2);
    for suite in Suite::ALL {
        let base = Sealer::new(&FixedWrap).suite(suite).segment_size(SegmentSize::MIN);
        // Small ones, and lengths around one and two batches of two threads.
        for len in [0, 1, 64, 65, 1000, b2 - 1, b2, b2 + 1, 2 * b2 + 70] {
            if len > 2000 && suite != Suite::Aes256Gcm {
                // Batching does not depend on the suite: large ones once.
                continue;
            }
            let pt = pattern(len);
            let one_shot = base.seal_with_rng(&mut SeqRng(4), &pt, &ctx()).unwrap();
            let chunks: &[usize] = if len < 2000 {
                &[1, 64, 100, 4096]
            } else {
                &[4096, 100_000]
            };
            for threads in [2, 3, 8] {
                let sealer = base.clone().threads(threads);
                for &chunk in chunks.iter().chain([len.max(1)].iter()) {
                    assert_eq!(
                        stream_seal(&sealer, &pt, chunk, 4),
                        one_shot,
                        "{suite} {len} {threads} {chunk}"
                    );
                }
                let opener = Opener::new(&FixedWrap).threads(threads);
                for buf in [7, 4096] {
                    if len > 2000 && buf == 7 {
                        continue;
                    }
                    let mut dec = opener.decryptor(&one_shot[..], &ctx()).unwrap();
                    let mut out = Vec::new();
                    let mut chunk = vec![0u8; buf];
                    loop {
                        let n = dec.read(&mut chunk).unwrap();
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&chunk[..n]);
                    }
                    assert_eq!(out, pt, "{suite} {len} {threads} {buf}");
                }
            }
        }
    }
    // Truncation, tampering and reordering with two threads, around the
    // boundaries of the three batches this envelope spans.
    let len = 2 * b2 + 2500;
    let env = Sealer::new(&FixedWrap)
        .segment_size(SegmentSize::MIN)
        .seal_with_rng(&mut SeqRng(1), &pattern(len), &ctx())
        .unwrap();
    let opener = Opener::new(&FixedWrap).threads(2);
    let h = lockbox::inspect(&env).unwrap().header_len();
    let per = b2 / 64;
    let mut cuts: Vec<usize> = (0..h + 100).collect();
    for k in [1, per - 1, per, per + 1, 2 * per - 1, 2 * per, 2 * per + 1] {
        for d in [0, 1, 15, 16, 17, 79] {
            cuts.push(h + k * 80 - 1 + d);
        }
    }
    cuts.extend(env.len() - 100..env.len());
    for cut in cuts {
        let r = opener
            .decryptor(&env[..cut], &ctx())
            .and_then(|mut d| d.read_to_end(&mut Vec::new()));
        assert!(r.is_err(), "truncated to {cut} read as complete");
    }
    for at in [
        h + 5,
        h + 80 + 70,
        h + per * 80 - 1,
        h + per * 80 + 3,
        h + 2 * per * 80 + 9,
        env.len() - 1,
    ] {
        let mut bad = env.clone();
        bad[at] ^= 1;
        let mut out = Vec::new();
        let e = opener
            .decryptor(&bad[..], &ctx())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Authentication));
        assert_eq!(
            out,
            pattern(len)[..out.len()],
            "only verified plaintext before the failure"
        );
        // Whole batches only: nothing of the batch holding the damage.
        assert_eq!(out.len() % b2, 0, "a partial batch was released (tamper at {at})");
    }
    let mut appended = env.clone();
    appended.extend_from_slice(&env[h..h + 80]);
    assert!(
        opener
            .decryptor(&appended[..], &ctx())
            .unwrap()
            .read_to_end(&mut Vec::new())
            .is_err()
    );
    // Seeking still works after parallel reads.
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(3000);
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .threads(4)
        .seal(&pt, &ctx())
        .unwrap();
    let mut dec = Opener::new(&kek)
        .threads(4)
        .decryptor(Cursor::new(env), &ctx())
        .unwrap();
    let mut head = [0u8; 300];
    dec.read_exact(&mut head).unwrap();
    assert_eq!(head, pt[..300]);
    dec.seek(SeekFrom::Start(2500)).unwrap();
    let mut tail = Vec::new();
    dec.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, pt[2500..]);
}
