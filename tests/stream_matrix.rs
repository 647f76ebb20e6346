//! Every kind of provider streams to every kind of I/O: the key phase
//! (blocking `Sealer`/`Opener` or async `AsyncSealer`/`AsyncOpener`) is
//! separate from the I/O (`std::io` or tokio), and all four combinations
//! produce and read the same bytes. Also the tokio decryptor's seeking and
//! threads, and rewrap and re-encrypt streams with async providers.
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

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use common::SeqRng;
use lockbox::secrecy::SecretBox;
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncReencryptor, AsyncRewrapper, AsyncSealer, Binding, BoxFuture,
    DataKey, Decryptor, EncryptionContext, Encryptor, Error, LocalKek, Opener, ProviderError, ProviderIdentity,
    RawHeader, Reencryptor, Rewrapper, Sealer, SegmentSize, WrappedKey, WrappedKeyRef,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// A local KEK behind the async trait only, as a network key service is:
/// it cannot be given to `Sealer` or `Opener`.
#[derive(Debug)]
struct AsyncOnly(LocalKek);

impl ProviderIdentity for AsyncOnly {
    fn provider_id(&self) -> &str {
        self.0.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.0.matches(w)
    }
}

impl AsyncKeyEncryptionProvider for AsyncOnly {
    fn wrap_async<'a>(&'a self, dek: &'a DataKey, b: Binding<'a>) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            lockbox::KeyEncryptionProvider::wrap(&self.0, dek, b)
        })
    }
    fn unwrap_async<'a>(
        &'a self,
        w: WrappedKeyRef<'a>,
        b: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            lockbox::KeyEncryptionProvider::unwrap(&self.0, w, b)
        })
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8)
        .collect()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("file", "matrix")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn lockbox_error(e: &std::io::Error) -> &Error {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .expect("a lockbox error")
}

const SEG: usize = 256;

fn kek(byte: u8) -> LocalKek {
    lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([byte; 32])))
}

#[tokio::test]
async fn both_provider_kinds_stream_to_both_io_kinds_with_the_same_bytes() {
    let local = kek(1);
    let remote = AsyncOnly(kek(1));
    let size = SegmentSize::new(SEG).unwrap();
    for len in [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 3] {
        let pt = pattern(len);
        let one_shot = Sealer::new(&local)
            .segment_size(size)
            .seal_with_rng(&mut SeqRng(3), &pt, &ctx())
            .unwrap();
        // Seal: blocking key phase → std and tokio; async key phase → std and tokio.
        let blocking = || {
            Sealer::new(&local)
                .segment_size(size)
                .seal_header_with_rng(&mut SeqRng(3), &ctx())
                .unwrap()
        };
        let sealer = AsyncSealer::new(&remote).segment_size(size);
        let mut outputs = Vec::new();
        for header in [
            blocking(),
            sealer.seal_header_with_rng(&mut SeqRng(3), &ctx()).await.unwrap(),
        ] {
            let mut enc = Encryptor::new(header, Vec::new()).unwrap();
            enc.write_all(&pt).unwrap();
            outputs.push(enc.finish().unwrap());
        }
        for header in [
            blocking(),
            sealer.seal_header_with_rng(&mut SeqRng(3), &ctx()).await.unwrap(),
        ] {
            let mut enc = lockbox::tokio::Encryptor::new(header, Vec::new()).await.unwrap();
            enc.write_all(&pt).await.unwrap();
            outputs.push(enc.finish().await.unwrap());
        }
        for (i, out) in outputs.iter().enumerate() {
            assert_eq!(out, &one_shot, "len {len}, combination {i}");
        }

        // Open: blocking key phase → std and tokio; async key phase → std and tokio.
        let opener = Opener::new(&local);
        let async_opener = AsyncOpener::new(&remote);
        let mut plaintexts = Vec::new();
        for use_async in [false, true] {
            let mut reader = &one_shot[..];
            let raw = RawHeader::read(&mut reader, opener.limits_ref()).unwrap();
            let unlocked = if use_async {
                async_opener.unlock(raw, &ctx()).await.unwrap()
            } else {
                opener.unlock(raw, &ctx()).unwrap()
            };
            assert_eq!(unlocked.context(), &ctx(), "the whole authenticated context");
            let mut out = Vec::new();
            Decryptor::new(unlocked, reader).read_to_end(&mut out).unwrap();
            plaintexts.push(out);

            let mut reader = &one_shot[..];
            let raw = lockbox::tokio::read_header(&mut reader, opener.limits_ref())
                .await
                .unwrap();
            let unlocked = if use_async {
                async_opener.unlock(raw, &ctx()).await.unwrap()
            } else {
                opener.unlock(raw, &ctx()).unwrap()
            };
            let mut out = Vec::new();
            lockbox::tokio::Decryptor::new(unlocked, reader)
                .read_to_end(&mut out)
                .await
                .unwrap();
            plaintexts.push(out);
        }
        for (i, out) in plaintexts.iter().enumerate() {
            assert_eq!(out, &pt, "len {len}, combination {i}");
        }
    }
}

#[tokio::test]
async fn unlock_refuses_what_open_refuses() {
    let remote = AsyncOnly(kek(2));
    let env = AsyncSealer::new(&remote).seal(b"x", &ctx()).await.unwrap();
    let opener = AsyncOpener::new(&remote);
    let wrong = EncryptionContext::new().with_required("tenant", "evil").unwrap();
    let raw = RawHeader::read(&mut &env[..], opener.limits_ref()).unwrap();
    let e = opener.unlock(raw, &wrong).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::MissingContext { .. } | Error::ContextMismatch { .. } | Error::NoProviderCouldUnwrap { .. }
        ),
        "{e}"
    );
    // A truncated header is reported when reading it.
    let e = RawHeader::read(&mut &env[..20], opener.limits_ref()).unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Malformed { .. }), "{e}");
    let e = lockbox::tokio::read_header(&mut &env[..20], opener.limits_ref())
        .await
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Malformed { .. }), "{e}");
}

/// The std decryptor's seek test, on tokio's `AsyncSeek`.
#[tokio::test]
async fn the_tokio_decryptor_seeks_like_the_std_one() {
    let local = kek(3);
    let pt = pattern(5000);
    for size in [SegmentSize::MIN, SegmentSize::new(1024).unwrap()] {
        let env = Sealer::new(&local).segment_size(size).seal(&pt, &ctx()).unwrap();
        // The envelope need not start at offset 0 of the source.
        let mut file = b"some prefix".to_vec();
        file.extend_from_slice(&env);
        let mut src = Cursor::new(file.clone());
        src.set_position(11);
        let mut dec = AsyncOpener::new(&local).decryptor(src, &ctx()).await.unwrap();
        let mut std_src = Cursor::new(file);
        std_src.set_position(11);
        let mut std_dec = Opener::new(&local).decryptor(std_src, &ctx()).unwrap();
        let mut head = [0u8; 10];
        dec.read_exact(&mut head).await.unwrap();
        assert_eq!(head, pt[..10]);
        assert_eq!(dec.plaintext_len().await.unwrap(), 5000);
        // Reading on after the length check continues where it was.
        dec.read_exact(&mut head).await.unwrap();
        assert_eq!(head, pt[10..20]);
        let mut state = 12345u64;
        for _ in 0..200 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (state >> 33) % 5001;
            let n = ((state >> 13) % 300) as usize;
            assert_eq!(dec.seek(SeekFrom::Start(at)).await.unwrap(), at);
            assert_eq!(std_dec.seek(SeekFrom::Start(at)).unwrap(), at);
            let mut got = vec![0u8; n];
            let mut std_got = vec![0u8; n];
            let read = dec.read(&mut got).await.unwrap();
            let std_read = std_dec.read(&mut std_got).unwrap();
            assert_eq!(read, std_read, "at {at}: both front ends release the same bytes");
            assert_eq!(got[..read], pt[at as usize..at as usize + read], "at {at}");
        }
        assert_eq!(dec.seek(SeekFrom::End(-100)).await.unwrap(), 4900);
        let mut tail = Vec::new();
        dec.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail, pt[4900..]);
        assert_eq!(dec.seek(SeekFrom::Current(-50)).await.unwrap(), 4950);
        assert_eq!(dec.stream_position().await.unwrap(), 4950);
        let e = dec.seek(SeekFrom::Start(5001)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // Still usable after an out-of-range seek.
        dec.seek(SeekFrom::Start(0)).await.unwrap();
        let mut all = Vec::new();
        dec.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, pt);
    }
}

#[tokio::test]
async fn tokio_seeking_authenticates_the_length_and_poisons_on_failure() {
    let local = kek(4);
    let pt = pattern(640);
    let env = Sealer::new(&local)
        .segment_size(SegmentSize::MIN)
        .seal(&pt, &ctx())
        .unwrap();
    // Cut off the last segment exactly: the rest still frames.
    let cut = env.len() - 80;
    let opener = AsyncOpener::new(&local);
    let mut dec = opener
        .decryptor(Cursor::new(env[..cut].to_vec()), &ctx())
        .await
        .unwrap();
    let e = dec.seek(SeekFrom::Start(0)).await.unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
    assert!(dec.read(&mut [0u8; 4]).await.is_err());
    assert!(dec.seek(SeekFrom::Start(0)).await.is_err());
    let mut dec = opener
        .decryptor(Cursor::new(env[..cut].to_vec()), &ctx())
        .await
        .unwrap();
    let mut head = [0u8; 10];
    dec.read_exact(&mut head).await.unwrap();
    let e = dec.plaintext_len().await.unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
    assert!(dec.read_to_end(&mut Vec::new()).await.is_err());
    // A reader that cannot seek is told so.
    let mut dec = opener.decryptor(&env[..], &ctx()).await.unwrap();
    let mut out = Vec::new();
    dec.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, pt);
}

#[tokio::test]
async fn the_tokio_decryptor_verifies_batches_on_threads() {
    let local = kek(5);
    let pt = pattern(100_000);
    let env = Sealer::new(&local)
        .segment_size(SegmentSize::new(1024).unwrap())
        .seal(&pt, &ctx())
        .unwrap();
    for threads in [1, 2, 4] {
        let opener = AsyncOpener::new(&local).threads(threads);
        let mut out = Vec::new();
        opener
            .decryptor(&env[..], &ctx())
            .await
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, pt, "{threads} threads");
        // A tampered segment fails the batch and releases none of it.
        let mut bad = env.clone();
        let n = bad.len();
        bad[n - 500] ^= 1;
        let mut dec = opener.decryptor(&bad[..], &ctx()).await.unwrap();
        let mut got = Vec::new();
        let e = dec.read_to_end(&mut got).await.unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
        assert!(got.len() <= n - 500, "nothing past the damage is released");
    }
}

#[tokio::test]
async fn rewrap_and_reencrypt_streams_work_with_async_providers() {
    let old = AsyncOnly(kek(6));
    let new = AsyncOnly(kek(7));
    let old_local = kek(6);
    let new_local = kek(7);
    let pt = pattern(3000);
    let env = Sealer::new(&old_local)
        .segment_size(SegmentSize::MIN)
        .seal(&pt, &ctx())
        .unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    // Rewrap over tokio with async providers = rewrap over std with blocking ones.
    for verify in [false, true] {
        let mut out = Vec::new();
        let n = AsyncRewrapper::new(&old)
            .wrap_with(&new)
            .verify_payload(verify)
            .rewrap_stream(&env[..], &mut out, &ctx())
            .await
            .unwrap();
        assert_eq!(n, out.len() as u64);
        assert_eq!(out[h..], env[h..], "payload byte-identical");
        let mut std_out = Vec::new();
        Rewrapper::new(&old_local)
            .wrap_with(&new_local)
            .verify_payload(verify)
            .rewrap_stream(&env[..], &mut std_out, &ctx())
            .unwrap();
        assert_eq!(out.len(), std_out.len());
        assert_eq!(lockbox::open(&new_local, &out, &ctx()).unwrap(), pt);
        assert!(lockbox::open(&old_local, &out, &ctx()).is_err());
    }
    // A tampered payload segment: caught with verify_payload, before it is written.
    let mut bad = env.clone();
    bad[h + 100] ^= 1;
    let mut out = Vec::new();
    let e = AsyncRewrapper::new(&old)
        .wrap_with(&new)
        .verify_payload(true)
        .rewrap_stream(&bad[..], &mut out, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(lockbox_error(&e), Error::Authentication), "{e}");
    assert!(out.len() < h + 80 * 2, "the bad segment was not written");
    // Re-encrypt with async providers; the new envelope keeps the whole context.
    let r = AsyncReencryptor::new(AsyncOpener::new(&old), AsyncSealer::new(&new));
    let fresh = r.reencrypt(&env, &ctx()).await.unwrap();
    assert_eq!(lockbox::open(&new_local, &fresh, &ctx()).unwrap(), pt);
    assert_ne!(
        lockbox::inspect(&fresh).unwrap().message_id(),
        lockbox::inspect(&env).unwrap().message_id()
    );
    let batch = r.reencrypt_batch([(&env[..], &ctx()), (&bad[..], &ctx())]).await;
    assert!(batch[0].is_ok() && batch[1].is_err());
    // And the std stream re-encryptor still works on blocking providers.
    let out = Reencryptor::new(Opener::new(&old_local), Sealer::new(&new_local))
        .reencrypt_stream(&env[..], Vec::new(), &ctx())
        .unwrap();
    assert_eq!(lockbox::open(&new_local, &out, &ctx()).unwrap(), pt);
}
