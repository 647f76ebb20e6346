//! Tamper and truncation sweeps the outside review could not reach:
//!
//! - **Both AEAD backends** (RustCrypto, and AWS-LC with `--features
//!   aws-lc`), every suite: every single-bit flip and every truncation of
//!   small envelopes (an empty plaintext, and 65 bytes in 64-byte segments)
//!   fails one-shot `open`, `open_to` (output untouched) and the streaming
//!   `Decryptor` (which releases only authenticated segments, so what it
//!   released is a prefix of the plaintext). Exhaustive.
//! - **Rewrap and re-encrypt**, sync and async, one-shot and streaming
//!   (`rewrap_stream`, `reencrypt_stream`, `Reencryptor`, `AsyncRewrapper`,
//!   `AsyncReencryptor`), and the **tokio `Decryptor` with seek**, on a
//!   four-segment envelope: every truncation, every bit of the header, and
//!   one bit of every payload byte (a segment's tag check treats every bit of
//!   its segment alike, so the payload is sampled, not swept bit by bit).
//!   Nothing damaged yields an envelope that opens, and nothing released is
//!   not the original plaintext.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::io::Read;
use std::time::Instant;

use lockbox::{Backend, EncryptionContext, LocalKek, Opener, Reencryptor, Rewrapper, Sealer, SegmentSize, Suite};

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "sweep")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from((i * 31 + 7) % 251).unwrap()).collect()
}

fn backends() -> Vec<Backend> {
    vec![
        Backend::RustCrypto,
        #[cfg(feature = "aws-lc")]
        Backend::AwsLc,
    ]
}

/// What an open may release of `plaintext` from a damaged envelope: nothing
/// (one-shot), or a prefix (a stream, segment by segment).
#[track_caller]
fn is_prefix(released: &[u8], plaintext: &[u8], what: &str) {
    assert!(
        plaintext.starts_with(released),
        "{what}: released {} bytes that are not the plaintext's",
        released.len()
    );
}

/// Every way to damage `env`: `(label, bytes)`. With `exhaustive`, every bit
/// of every byte; otherwise every bit of the first `header_len` bytes and one
/// bit (rotating) of each later byte. Then every truncation, and one byte
/// appended.
fn damaged(env: &[u8], header_len: usize, exhaustive: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for byte in 0..env.len() {
        let bits: Vec<u8> = if exhaustive || byte < header_len {
            (0..8).collect()
        } else {
            vec![u8::try_from(byte % 8).unwrap()]
        };
        for bit in bits {
            let mut bad = env.to_vec();
            bad[byte] ^= 1 << bit;
            out.push((format!("bit {bit} of byte {byte}"), bad));
        }
    }
    for len in 0..env.len() {
        out.push((format!("truncated to {len}"), env[..len].to_vec()));
    }
    let mut longer = env.to_vec();
    longer.push(0);
    out.push(("one byte appended".into(), longer));
    out
}

#[test]
fn every_flip_and_truncation_fails_on_every_backend() {
    let kek = LocalKek::generate().unwrap();
    let start = Instant::now();
    let mut cases = 0usize;
    for backend in backends() {
        for suite in Suite::ALL {
            for len in [0, 65] {
                let pt = pattern(len);
                let env = Sealer::new(&kek)
                    .backend(backend)
                    .suite(suite)
                    .segment_size(SegmentSize::MIN)
                    .seal(&pt, &ctx())
                    .unwrap();
                let opener = Opener::new(&kek).backend(backend);
                assert_eq!(opener.open(&env, &ctx()).unwrap(), pt);
                for (what, bad) in damaged(&env, env.len(), true) {
                    let what = format!("{backend:?} {suite} {len} B, {what}");
                    let mut out = b"untouched".to_vec();
                    assert!(opener.open_to(&bad, &ctx(), &mut out).is_err(), "{what}: opened");
                    assert_eq!(out, b"untouched", "{what}: open_to changed its output");
                    // The stream releases authenticated segments only.
                    let mut released = Vec::new();
                    let r = opener
                        .decryptor(&bad[..], &ctx())
                        .and_then(|mut d| d.read_to_end(&mut released));
                    assert!(r.is_err(), "{what}: the stream read to the end");
                    is_prefix(&released, &pt, &what);
                    cases += 1;
                }
            }
        }
    }
    println!(
        "{cases} damaged envelopes (every bit, every truncation) on {} backend(s): {:?}",
        backends().len(),
        start.elapsed()
    );
}

/// The four-segment envelope of the rewrap and re-encrypt sweeps.
fn four_segments(kek: &LocalKek) -> (Vec<u8>, Vec<u8>, usize) {
    let pt = pattern(200);
    let env = Sealer::new(kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pt, &ctx())
        .unwrap();
    let header_len = lockbox::inspect(&env).unwrap().header_len();
    (pt, env, header_len)
}

/// `out` (what a rewrap or re-encrypt produced from a damaged envelope,
/// maybe partial) must not open under `new`.
#[track_caller]
fn never_opens(new: &LocalKek, out: &[u8], what: &str) {
    if out.is_empty() {
        return;
    }
    let mut released = Vec::new();
    let r = Opener::new(new)
        .decryptor(out, &ctx())
        .and_then(|mut d| d.read_to_end(&mut released));
    assert!(r.is_err(), "{what}: the output opened");
    assert!(lockbox::open(new, out, &ctx()).is_err(), "{what}: the output opened");
}

#[test]
fn sync_rewrap_and_reencrypt_never_pass_damage_on() {
    let (old, new) = (LocalKek::generate().unwrap(), LocalKek::generate().unwrap());
    let (pt, env, header_len) = four_segments(&old);
    let rewrap = Rewrapper::new(&old).wrap_with(&new);
    let verified = rewrap.clone().verify_payload(true);
    let reencrypt = Reencryptor::new(Opener::new(&old), Sealer::new(&new).segment_size(SegmentSize::MIN));
    // The intact envelope goes through every path.
    let mut out = Vec::new();
    rewrap.rewrap_stream(&env[..], &mut out, &ctx()).unwrap();
    assert_eq!(lockbox::open(&new, &out, &ctx()).unwrap(), pt);
    let out = reencrypt.reencrypt_stream(&env[..], Vec::new(), &ctx()).unwrap();
    assert_eq!(lockbox::open(&new, &out, &ctx()).unwrap(), pt);

    let start = Instant::now();
    let cases = damaged(&env, header_len, false);
    for (what, bad) in &cases {
        // One-shot rewrap: an error, or (the payload is not verified) an
        // envelope that does not open. With verify_payload: an error.
        if let Ok(out) = rewrap.rewrap(bad, &ctx()) {
            never_opens(&new, &out, &format!("rewrap, {what}"));
        }
        assert!(verified.rewrap(bad, &ctx()).is_err(), "verified rewrap, {what}");
        // Streaming rewrap, both ways: the output, partial or whole, never opens.
        let mut out = Vec::new();
        let _ = rewrap.rewrap_stream(&bad[..], &mut out, &ctx());
        never_opens(&new, &out, &format!("rewrap_stream, {what}"));
        let mut out = Vec::new();
        assert!(
            verified.rewrap_stream(&bad[..], &mut out, &ctx()).is_err(),
            "verified rewrap_stream, {what}"
        );
        never_opens(&new, &out, &format!("verified rewrap_stream, {what}"));
        // Re-encrypt, one-shot and streaming: always an error; a partial new
        // envelope never opens.
        assert!(reencrypt.reencrypt(bad, &ctx()).is_err(), "reencrypt, {what}");
        let mut sink = Vec::new();
        assert!(
            reencrypt.reencrypt_stream(&bad[..], &mut sink, &ctx()).is_err(),
            "reencrypt_stream, {what}"
        );
        never_opens(&new, &sink, &format!("reencrypt_stream, {what}"));
    }
    println!(
        "{} damaged envelopes through sync rewrap and re-encrypt: {:?}",
        cases.len(),
        start.elapsed()
    );
}

#[cfg(feature = "tokio")]
#[test]
fn async_rewrap_reencrypt_and_the_seeking_tokio_decryptor_never_pass_damage_on() {
    use lockbox::{AsyncOpener, AsyncReencryptor, AsyncRewrapper, AsyncSealer};
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (old, new) = (LocalKek::generate().unwrap(), LocalKek::generate().unwrap());
    let (pt, env, header_len) = four_segments(&old);
    let rewrap = AsyncRewrapper::new(&old).wrap_with(&new);
    let verified = rewrap.clone().verify_payload(true);
    let reencrypt = AsyncReencryptor::new(
        AsyncOpener::new(&old),
        AsyncSealer::new(&new).segment_size(SegmentSize::MIN),
    );
    let opener = AsyncOpener::new(&old);
    let seg = SegmentSize::MIN.bytes();
    let start = Instant::now();
    let cases = damaged(&env, header_len, false);
    rt.block_on(async {
        for (what, bad) in &cases {
            if let Ok(out) = rewrap.rewrap(bad, &ctx()).await {
                never_opens(&new, &out, &format!("async rewrap, {what}"));
            }
            assert!(
                verified.rewrap(bad, &ctx()).await.is_err(),
                "async verified rewrap, {what}"
            );
            let mut out = Vec::new();
            let _ = rewrap.rewrap_stream(&bad[..], &mut out, &ctx()).await;
            never_opens(&new, &out, &format!("async rewrap_stream, {what}"));
            let mut out = Vec::new();
            assert!(
                verified.rewrap_stream(&bad[..], &mut out, &ctx()).await.is_err(),
                "async verified rewrap_stream, {what}"
            );
            never_opens(&new, &out, &format!("async verified rewrap_stream, {what}"));
            assert!(
                reencrypt.reencrypt(bad, &ctx()).await.is_err(),
                "async reencrypt, {what}"
            );

            // The tokio decryptor over a seekable source: reading to the end
            // fails; a seek to each segment and a read release only the
            // plaintext at that offset (a segment that authenticates is
            // released even when another one is damaged).
            let Ok(mut dec) = opener.decryptor(std::io::Cursor::new(bad.clone()), &ctx()).await else {
                continue; // the header did not authenticate: nothing to read
            };
            let mut all = Vec::new();
            assert!(dec.read_to_end(&mut all).await.is_err(), "tokio read to end, {what}");
            is_prefix(&all, &pt, &format!("tokio read to end, {what}"));
            for at in (0..pt.len()).step_by(seg).chain([pt.len() - 1, 0]) {
                let Ok(mut dec) = opener.decryptor(std::io::Cursor::new(bad.clone()), &ctx()).await else {
                    panic!("{what}: the header authenticated once, not twice");
                };
                let offset = u64::try_from(at).unwrap();
                match dec.seek(std::io::SeekFrom::Start(offset)).await {
                    Ok(p) => assert_eq!(p, offset),
                    Err(_) => continue,
                }
                let mut buf = vec![0u8; seg];
                if let Ok(n) = dec.read(&mut buf).await {
                    assert_eq!(&buf[..n], &pt[at..at + n], "tokio seek to {at}, {what}");
                }
            }
        }
    });
    println!(
        "{} damaged envelopes through async rewrap, re-encrypt and the seeking tokio decryptor: {:?}",
        cases.len(),
        start.elapsed()
    );
}
