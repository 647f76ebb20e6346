//! AsyncSealer / AsyncOpener: the same envelopes as the sync path, byte for
//! byte, with providers that are only async; every error path; futures Send.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, Binding, BoxFuture, DataKey, EncryptionContext, Error,
    KeyEncryptionProvider, KeyId, KeyVersion, LimitKind, Limits, LocalKek, Opener, ProviderError, ProviderErrorKind,
    ProviderIdentity, Sealer, SegmentSize, Suite, WrappedKey, WrappedKeyRef,
};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "test")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

/// What a caller supplies to open `ctx()`: its whole context (opening is
/// exact by default), labelled differently (labels do not matter).
fn open_ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with_required("purpose", "test")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

/// The required entry only: what a lenient opener needs.
#[allow(dead_code)]
fn required_only() -> EncryptionContext {
    EncryptionContext::new().with_required("tenant", "acme").unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A deterministic "RNG" for tests only: counts upwards from a seed.
struct CountingRng(u8);

impl TryRng for CountingRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("lockbox draws bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("lockbox draws bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

impl TryCryptoRng for CountingRng {}

/// Returns `Pending` once (waking itself), then `Ready`: a stand-in for a
/// network round trip.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A deterministic test-only provider, sync, so the same provider serves
/// both paths: the wrapped key is the binding followed by the data key
/// xored with a pad (no secrecy at all; it exists to make envelopes
/// reproducible). Optionally generates the data key itself.
#[derive(Debug)]
struct Deterministic {
    id: &'static str,
    generate: bool,
}

impl ProviderIdentity for Deterministic {
    fn provider_id(&self) -> &str {
        "test.deterministic"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.deterministic" && w.key_id() == self.id
    }
}

impl KeyEncryptionProvider for Deterministic {
    fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let mut bytes = b.as_bytes().to_vec();
        bytes.extend(dek.expose_secret().iter().map(|x| x ^ 0x5a));
        Ok(WrappedKey::new(self.provider_id(), KeyId::new(self.id).unwrap(), KeyVersion(1), bytes).unwrap())
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        let bytes = w.bytes();
        let n = b.as_bytes().len();
        if bytes.len() != n + 32 || &bytes[..n] != b.as_bytes() {
            return Err(ProviderError::new(
                ProviderErrorKind::Authentication,
                self.provider_id(),
            ));
        }
        let mut k = [0u8; 32];
        for (o, x) in k.iter_mut().zip(&bytes[n..]) {
            *o = x ^ 0x5a;
        }
        Ok(lockbox::hazmat::data_key_from_bytes(k))
    }
    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let b = request.binding();
        if !self.generate {
            return Ok(None);
        }
        let dek = lockbox::hazmat::data_key_from_bytes([7u8; 32]);
        let w = self.wrap(&dek, b)?;
        Ok(Some((dek, w)))
    }
}

#[test]
fn the_async_path_writes_the_sync_path_bytes() {
    let a = Deterministic {
        id: "a",
        generate: false,
    };
    let b = Deterministic {
        id: "b",
        generate: false,
    };
    let generating = Deterministic {
        id: "g",
        generate: true,
    };
    let seg = SegmentSize::new(64).unwrap();
    for suite in Suite::ALL {
        for len in [0, 1, 63, 64, 65, 1000] {
            let pt = pattern(len);
            for (first, second) in [(&a, &b), (&generating, &a)] {
                let sync = Sealer::new(first)
                    .also_wrap_with(second)
                    .suite(suite)
                    .segment_size(seg)
                    .seal_with_rng(&mut CountingRng(3), &pt, &ctx())
                    .unwrap();
                let asynced = block_on(
                    AsyncSealer::new(first)
                        .also_wrap_with(second)
                        .suite(suite)
                        .segment_size(seg)
                        .seal_with_rng(&mut CountingRng(3), &pt, &ctx()),
                )
                .unwrap();
                assert_eq!(sync, asynced, "{suite:?}, {len} bytes");
                // And each opens what the other sealed.
                assert_eq!(block_on(AsyncOpener::new(second).open(&sync, &open_ctx())).unwrap(), pt);
                assert_eq!(Opener::new(first).open(&asynced, &open_ctx()).unwrap(), pt);
            }
        }
    }
}

#[test]
fn sealing_with_the_os_rng_interoperates_with_the_sync_path() {
    let kek = LocalKek::generate().unwrap();
    let env = block_on(AsyncSealer::new(&kek).seal(b"async sealed", &ctx())).unwrap();
    assert_eq!(lockbox::open(&kek, &env, &open_ctx()).unwrap(), b"async sealed");
    let env = lockbox::seal(&kek, b"sync sealed", &ctx()).unwrap();
    assert_eq!(
        block_on(AsyncOpener::new(&kek).open(&env, &open_ctx())).unwrap(),
        b"sync sealed"
    );
    // seal_to / open_to append.
    let mut out = b"prefix".to_vec();
    block_on(AsyncSealer::new(&kek).seal_to(b"x", &ctx(), &mut out)).unwrap();
    assert_eq!(&out[..6], b"prefix");
    let mut pt = b"before:".to_vec();
    block_on(AsyncOpener::new(&kek).open_to(&out[6..], &open_ctx(), &mut pt)).unwrap();
    assert_eq!(pt, b"before:x");
}

/// An async-only provider: a local key behind futures that suspend.
#[derive(Debug)]
struct Remote {
    kek: LocalKek,
    wraps: AtomicUsize,
    unwraps: AtomicUsize,
    fail_wrap: bool,
    /// Returns a wrapped key naming another key id (which it does not match).
    misnames: bool,
    /// Returns some other data key from unwrap.
    lies: bool,
}

impl Remote {
    fn new() -> Self {
        Self {
            kek: LocalKek::generate().unwrap(),
            wraps: AtomicUsize::new(0),
            unwraps: AtomicUsize::new(0),
            fail_wrap: false,
            misnames: false,
            lies: false,
        }
    }
}

impl ProviderIdentity for Remote {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(w)
    }
}

#[derive(Debug)]
struct Timeout;
impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request timed out")
    }
}
impl std::error::Error for Timeout {}

impl AsyncKeyEncryptionProvider for Remote {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move {
            YieldOnce(false).await;
            self.wraps.fetch_add(1, Ordering::SeqCst);
            if self.fail_wrap {
                return Err(ProviderError::new(ProviderErrorKind::Unavailable, self.provider_id()).with_source(Timeout));
            }
            let w = self.kek.wrap(dek, binding)?;
            if self.misnames {
                return Ok(WrappedKey::new(
                    w.provider_id(),
                    KeyId::new("someone-else").unwrap(),
                    w.key_version(),
                    w.bytes().to_vec(),
                )
                .unwrap());
            }
            Ok(w)
        })
    }
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            YieldOnce(false).await;
            self.unwraps.fetch_add(1, Ordering::SeqCst);
            if self.lies {
                return Ok(DataKey::generate().unwrap());
            }
            self.kek.unwrap(wrapped, binding)
        })
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn futures_and_types_are_send() {
    assert_send_sync::<AsyncSealer<'static>>();
    assert_send_sync::<AsyncOpener<'static>>();
    let p = Remote::new();
    let sealer = AsyncSealer::new(&p);
    let opener = AsyncOpener::new(&p);
    let c = ctx();
    let mut out = Vec::new();
    let mut rng = CountingRng(0);
    // Each future, polled on a multi-threaded runtime, may move between threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let env = rt.block_on(assert_send(sealer.seal(b"send", &c))).unwrap();
    rt.block_on(assert_send(sealer.seal_to(b"send", &c, &mut out))).unwrap();
    rt.block_on(assert_send(sealer.seal_with_rng(&mut rng, b"send", &c)))
        .unwrap();
    assert_eq!(rt.block_on(assert_send(opener.open(&env, &c))).unwrap(), b"send");
    let mut pt = Vec::new();
    rt.block_on(assert_send(opener.open_to(&env, &c, &mut pt))).unwrap();
    assert_eq!(pt, b"send");
    // Spawned tasks need 'static + Send futures: an Arc'd provider works.
    let shared = std::sync::Arc::new(Remote::new());
    let task = rt.spawn({
        let shared = shared.clone();
        async move {
            let env = AsyncSealer::new(&*shared).seal(b"spawned", &ctx()).await?;
            AsyncOpener::new(&*shared).open(&env, &open_ctx()).await
        }
    });
    assert_eq!(rt.block_on(task).unwrap().unwrap(), b"spawned");
}

#[test]
fn an_async_only_provider_seals_and_opens() {
    let p = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"remote", &ctx())).unwrap();
    assert_eq!(p.wraps.load(Ordering::SeqCst), 1);
    assert_eq!(
        block_on(AsyncOpener::new(&p).open(&env, &open_ctx())).unwrap(),
        b"remote"
    );
    assert_eq!(p.unwraps.load(Ordering::SeqCst), 1);
    // The sync path reads it with the same key.
    assert_eq!(lockbox::open(&p.kek, &env, &open_ctx()).unwrap(), b"remote");
}

#[test]
fn provider_side_generation_is_used() {
    let p = Deterministic {
        id: "g",
        generate: true,
    };
    let env = block_on(AsyncSealer::new(&p).seal(b"generated", &ctx())).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let binding = lockbox::BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let dek = p.unwrap(info.wrapped_keys()[0].as_ref(), binding.as_binding()).unwrap();
    assert_eq!(dek.expose_secret(), &[7u8; 32]);
}

#[test]
fn a_wrong_context_is_an_authentication_failure_with_the_provider_error_as_source() {
    let p = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap();
    let wrong = open_ctx().with_required("tenant", "evil").unwrap();
    let mut out = b"keep".to_vec();
    match block_on(AsyncOpener::new(&p).open_to(&env, &wrong, &mut out)) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => assert_eq!(e.kind(), ProviderErrorKind::Authentication),
        other => panic!("{other:?}"),
    }
    assert_eq!(out, b"keep");
}

#[test]
fn context_errors_are_specific() {
    let p = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap();
    let e = block_on(
        AsyncOpener::new(&p)
            .lenient_context()
            .open(&env, &EncryptionContext::new()),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::MissingContext { key, .. } if key == "tenant"),
        "{e:?}"
    );
    let e = block_on(AsyncOpener::new(&p).open(&env, &required_only())).unwrap_err();
    assert!(
        matches!(&e, Error::MissingContext { key, .. } if key == "purpose"),
        "{e:?}"
    );
    let mismatch = open_ctx().with("purpose", "other").unwrap();
    let e = block_on(AsyncOpener::new(&p).open(&env, &mismatch)).unwrap_err();
    assert!(
        matches!(&e, Error::ContextMismatch { key, .. } if key == "purpose"),
        "{e:?}"
    );
    // No provider call was needed to find any of this.
    assert_eq!(p.unwraps.load(Ordering::SeqCst), 0);
    assert_eq!(
        block_on(AsyncOpener::new(&p).strict_context().open(&env, &ctx())).unwrap(),
        b"x"
    );
    assert_eq!(p.unwraps.load(Ordering::SeqCst), 1);
}

#[test]
fn open_with_context_returns_the_whole_authenticated_context() {
    let p = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap();
    let (pt, full) = block_on(AsyncOpener::new(&p).open_with_context(&env, &open_ctx())).unwrap();
    assert_eq!(pt, b"x");
    assert_eq!(full.get("purpose"), Some("test"));
    assert_eq!(full.get("tenant"), Some("acme"));
    assert_eq!(full.storage("tenant"), Some(lockbox::Storage::Required));
    let sync = Opener::new(&p.kek).open_with_context(&env, &open_ctx()).unwrap().1;
    assert_eq!(format!("{full:?}"), format!("{sync:?}"));
    let wrong = EncryptionContext::new().with_required("tenant", "evil").unwrap();
    assert!(block_on(AsyncOpener::new(&p).open_with_context(&env, &wrong)).is_err());
}

#[test]
fn providers_that_do_not_match_are_never_called() {
    let p = Remote::new();
    let other = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap();
    let e = block_on(AsyncOpener::new(&other).open(&env, &open_ctx())).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NoProviderCouldUnwrap {
                attempts: 0,
                source: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(other.unwraps.load(Ordering::SeqCst), 0);
    // also_try: the second provider opens it.
    assert_eq!(
        block_on(AsyncOpener::new(&other).also_try(&p).open(&env, &open_ctx())).unwrap(),
        b"x"
    );
}

#[test]
fn a_wrong_data_key_fails_the_commitment() {
    let mut p = Remote::new();
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap();
    p.lies = true;
    let e = block_on(AsyncOpener::new(&p).open(&env, &open_ctx())).unwrap_err();
    assert!(matches!(e, Error::Authentication), "{e:?}");
}

#[test]
fn tampering_and_truncation_fail_and_release_nothing() {
    let p = Remote::new();
    let env = block_on(
        AsyncSealer::new(&p)
            .segment_size(SegmentSize::new(64).unwrap())
            .seal(&pattern(200), &ctx()),
    )
    .unwrap();
    let header_len = lockbox::inspect(&env).unwrap().header_len();
    for at in [9, header_len - 1, header_len, env.len() - 17, env.len() - 1] {
        let mut bad = env.clone();
        bad[at] ^= 1;
        let mut out = b"untouched".to_vec();
        assert!(block_on(AsyncOpener::new(&p).open_to(&bad, &open_ctx(), &mut out)).is_err());
        assert_eq!(out, b"untouched", "byte {at}");
    }
    for cut in [1, 16, env.len() - header_len] {
        let r = block_on(AsyncOpener::new(&p).open(&env[..env.len() - cut], &open_ctx()));
        assert!(r.is_err(), "cut {cut}");
    }
    let e = block_on(AsyncOpener::new(&p).open(b"not an envelope at all", &open_ctx())).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
}

#[test]
fn limits_are_enforced_on_both_sides() {
    let p = Remote::new();
    let mut big = EncryptionContext::new();
    for i in 0..4 {
        big.insert(&format!("k{i}"), "v").unwrap();
    }
    let small = Limits::default().with_max_context_entries(2);
    let e = block_on(AsyncSealer::new(&p).limits(small).seal(b"x", &big)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: LimitKind::ContextEntries,
                max: 2,
                ..
            }
        ),
        "{e:?}"
    );
    // Checked before the provider is asked to wrap anything.
    assert_eq!(p.wraps.load(Ordering::SeqCst), 0);
    let env = block_on(AsyncSealer::new(&p).seal(b"x", &big)).unwrap();
    let e = block_on(AsyncOpener::new(&p).limits(small).open(&env, &big)).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: LimitKind::ContextEntries,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_provider_failure_on_seal_is_reported_and_changes_nothing() {
    let mut p = Remote::new();
    p.fail_wrap = true;
    let mut out = b"unchanged".to_vec();
    let e = block_on(AsyncSealer::new(&p).seal_to(b"x", &ctx(), &mut out)).unwrap_err();
    match &e {
        Error::Provider(pe) => {
            assert_eq!(pe.kind(), ProviderErrorKind::Unavailable);
            let backend = std::error::Error::source(pe).unwrap();
            assert_eq!(backend.to_string(), "request timed out");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out, b"unchanged");
    // A failing second provider fails the seal too.
    let ok = Remote::new();
    let e = block_on(AsyncSealer::new(&ok).also_wrap_with(&p).seal(b"x", &ctx())).unwrap_err();
    assert!(matches!(e, Error::Provider(_)), "{e:?}");
}

#[test]
fn a_provider_that_does_not_match_its_own_wrapped_key_is_caught_when_sealing() {
    let mut p = Remote::new();
    p.misnames = true;
    let e = block_on(AsyncSealer::new(&p).seal(b"x", &ctx())).unwrap_err();
    match e {
        Error::Provider(pe) => {
            assert_eq!(pe.kind(), ProviderErrorKind::Other);
            assert_eq!(pe.provider_id(), lockbox::LOCAL_PROVIDER_ID);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn debug_shows_configuration_only() {
    let p = Remote::new();
    let s = format!("{:?}", AsyncSealer::new(&p).suite(Suite::ChaCha20Poly1305));
    assert!(s.starts_with("AsyncSealer") && s.contains("ChaCha20Poly1305"), "{s}");
    let o = format!("{:?}", AsyncOpener::new(&p));
    assert!(o.starts_with("AsyncOpener"), "{o}");
}

/// Streams over async-only providers (the `tokio` feature).
#[cfg(feature = "tokio")]
mod streams {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn stream_seal(sealer: &AsyncSealer<'_>, pt: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
        let mut enc = sealer.encryptor(Vec::new(), ctx).await.unwrap();
        for chunk in pt.chunks(100) {
            enc.write_all(chunk).await.unwrap();
        }
        enc.finish().await.unwrap()
    }

    async fn stream_open(opener: &AsyncOpener<'_>, env: &[u8], ctx: &EncryptionContext) -> std::io::Result<Vec<u8>> {
        let mut dec = opener.decryptor(env, ctx).await?;
        let mut out = Vec::new();
        dec.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[test]
    fn an_async_only_provider_streams_both_ways() {
        let p = Remote::new();
        let pt = pattern(300_000);
        let env = block_on(stream_seal(&AsyncSealer::new(&p), &pt, &ctx()));
        assert_eq!(p.wraps.load(Ordering::SeqCst), 1);
        // The one-shot paths read it, and the async stream reads a one-shot envelope.
        assert_eq!(lockbox::open(&p.kek, &env, &open_ctx()).unwrap(), pt);
        assert_eq!(
            block_on(stream_open(&AsyncOpener::new(&p), &env, &open_ctx())).unwrap(),
            pt
        );
        let one_shot = block_on(AsyncSealer::new(&p).seal(&pt, &ctx())).unwrap();
        assert_eq!(
            block_on(stream_open(&AsyncOpener::new(&p), &one_shot, &open_ctx())).unwrap(),
            pt
        );
        assert_eq!(p.unwraps.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_async_stream_writes_the_sync_stream_bytes() {
        let a = Deterministic {
            id: "a",
            generate: false,
        };
        let pt = pattern(5000);
        let seg = SegmentSize::new(1024).unwrap();
        let sync = block_on(async {
            let header = Sealer::new(&a)
                .segment_size(seg)
                .seal_header_with_rng(&mut CountingRng(9), &ctx())
                .unwrap();
            let mut enc = lockbox::tokio::Encryptor::new(header, Vec::new()).await.unwrap();
            enc.write_all(&pt).await.unwrap();
            enc.finish().await.unwrap()
        });
        let asynced = block_on(async {
            let header = AsyncSealer::new(&a)
                .segment_size(seg)
                .seal_header_with_rng(&mut CountingRng(9), &ctx())
                .await
                .unwrap();
            let mut enc = lockbox::tokio::Encryptor::new(header, Vec::new()).await.unwrap();
            enc.write_all(&pt).await.unwrap();
            enc.finish().await.unwrap()
        });
        assert_eq!(sync, asynced);
        // And the one-shot envelope with the same randomness is the same too.
        let one_shot = Sealer::new(&a)
            .segment_size(seg)
            .seal_with_rng(&mut CountingRng(9), &pt, &ctx())
            .unwrap();
        assert_eq!(one_shot, asynced);
    }

    fn lockbox_error(e: &std::io::Error) -> &Error {
        e.get_ref().and_then(|e| e.downcast_ref::<Error>()).unwrap()
    }

    #[test]
    fn stream_errors_carry_the_lockbox_error() {
        let p = Remote::new();
        let env = block_on(stream_seal(&AsyncSealer::new(&p), b"streamed", &ctx()));
        let wrong = open_ctx().with_required("tenant", "evil").unwrap();
        let e = block_on(stream_open(&AsyncOpener::new(&p), &env, &wrong)).unwrap_err();
        assert!(
            matches!(lockbox_error(&e), Error::NoProviderCouldUnwrap { attempts: 1, .. }),
            "{e:?}"
        );
        let other = Remote::new();
        let e = block_on(stream_open(&AsyncOpener::new(&other), &env, &open_ctx())).unwrap_err();
        assert!(
            matches!(lockbox_error(&e), Error::NoProviderCouldUnwrap { attempts: 0, .. }),
            "{e:?}"
        );
        // A payload bit flip fails the read; a header one fails the constructor.
        let mut bad = env.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = block_on(stream_open(&AsyncOpener::new(&p), &bad, &open_ctx())).unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Authentication), "{e:?}");
        let e = block_on(stream_open(&AsyncOpener::new(&p), &env[..20], &open_ctx())).unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Malformed { .. }), "{e:?}");
        let tiny = Limits::default().with_max_header_len(40);
        let e = block_on(stream_open(&AsyncOpener::new(&p).limits(tiny), &env, &open_ctx())).unwrap_err();
        assert!(
            matches!(
                lockbox_error(&e),
                Error::LimitExceeded {
                    limit: LimitKind::HeaderBytes,
                    ..
                }
            ),
            "{e:?}"
        );
        // A provider failure fails the encryptor's constructor.
        let mut failing = Remote::new();
        failing.fail_wrap = true;
        let e = block_on(AsyncSealer::new(&failing).encryptor(Vec::new(), &ctx())).unwrap_err();
        assert!(matches!(lockbox_error(&e), Error::Provider(_)), "{e:?}");
    }

    #[test]
    fn stream_futures_are_send() {
        let p = Remote::new();
        let c = ctx();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let sealer = AsyncSealer::new(&p);
        let mut enc = rt.block_on(assert_send(sealer.encryptor(Vec::new(), &c))).unwrap();
        rt.block_on(enc.write_all(b"send")).unwrap();
        let env = rt.block_on(enc.finish()).unwrap();
        let opener = AsyncOpener::new(&p);
        let mut dec = rt.block_on(assert_send(opener.decryptor(&env[..], &c))).unwrap();
        let mut out = Vec::new();
        rt.block_on(dec.read_to_end(&mut out)).unwrap();
        assert_eq!(out, b"send");
    }
}
