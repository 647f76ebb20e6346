//! Behaviour of seal / open / inspect through the public API: round trips,
//! every tampering, every error kind, and that failures release nothing.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::{
    Binding, DataKey, EncryptionContext, Error, KeyEncryptionProvider, LimitKind, Limits, LocalKek, Opener,
    ProviderError, ProviderErrorKind, ProviderIdentity, Sealer, SegmentSize, Suite, WrappedKey, WrappedKeyRef,
};

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8)
        .collect()
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

#[test]
fn round_trip_every_suite_and_size() {
    let kek = LocalKek::generate().unwrap();
    let seg = SegmentSize::DEFAULT.bytes();
    let sizes = [0, 1, 31, seg - 1, seg, seg + 1, 3 * seg + 5, 1 << 20];
    for suite in Suite::ALL {
        let sealer = Sealer::new(&kek).suite(suite);
        for &len in &sizes {
            let pt = pattern(len);
            let env = sealer.seal(&pt, &ctx()).unwrap();
            let info = lockbox::inspect(&env).unwrap();
            assert_eq!(info.suite(), suite);
            assert_eq!(info.plaintext_len(), len);
            assert_eq!(info.segment_count(), len.div_ceil(seg).max(1));
            assert_eq!(lockbox::open(&kek, &env, &open_ctx()).unwrap(), pt, "{suite} {len}");
            // The full context (stored entries included) opens it too.
            assert_eq!(lockbox::open(&kek, &env, &ctx()).unwrap(), pt);
        }
    }
}

#[test]
fn round_trip_small_segments_all_variants() {
    let kek = LocalKek::generate().unwrap();
    for suite in Suite::ALL {
        let sealer = Sealer::new(&kek).suite(suite).segment_size(SegmentSize::MIN);
        let opener = Opener::new(&kek);
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let pt = pattern(len);
            // seal_in_place produces an envelope that every open variant reads.
            let mut buf = pt.clone();
            sealer.seal_in_place(&mut buf, &ctx()).unwrap();
            assert_eq!(opener.open(&buf, &open_ctx()).unwrap(), pt);
            let mut out = b"prefix".to_vec();
            opener.open_to(&buf, &open_ctx(), &mut out).unwrap();
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..], &pt[..]);
            opener.open_in_place(&mut buf, &open_ctx()).unwrap();
            assert_eq!(buf, pt);
            // seal_to appends after existing bytes.
            let mut out = b"xyz".to_vec();
            sealer.seal_to(&pt, &ctx(), &mut out).unwrap();
            assert_eq!(&out[..3], b"xyz");
            assert_eq!(opener.open(&out[3..], &open_ctx()).unwrap(), pt);
        }
    }
}

#[test]
fn one_shot_and_in_place_produce_the_same_layout() {
    let kek = LocalKek::generate().unwrap();
    let pt = pattern(300);
    let sealer = Sealer::new(&kek).segment_size(SegmentSize::MIN);
    let a = sealer.seal(&pt, &ctx()).unwrap();
    let mut b = pt.clone();
    sealer.seal_in_place(&mut b, &ctx()).unwrap();
    let (ia, ib) = (lockbox::inspect(&a).unwrap(), lockbox::inspect(&b).unwrap());
    assert_eq!(a.len(), b.len());
    assert_eq!(ia.header_len(), ib.header_len());
    assert_eq!(ia.segment_count(), 5);
    assert_eq!(a.len(), ia.header_len() + 300 + 5 * 16);
}

#[test]
fn every_message_is_fresh() {
    let kek = LocalKek::generate().unwrap();
    let a = lockbox::seal(&kek, b"same", &ctx()).unwrap();
    let b = lockbox::seal(&kek, b"same", &ctx()).unwrap();
    assert_ne!(a, b);
    let (ia, ib) = (lockbox::inspect(&a).unwrap(), lockbox::inspect(&b).unwrap());
    assert_ne!(ia.message_id(), ib.message_id());
    assert_ne!(ia.wrapped_keys()[0].bytes(), ib.wrapped_keys()[0].bytes());
}

#[test]
fn every_single_bit_flip_fails() {
    let kek = LocalKek::generate().unwrap();
    for suite in Suite::ALL {
        let env = Sealer::new(&kek)
            .suite(suite)
            .segment_size(SegmentSize::MIN)
            .seal(&pattern(100), &ctx())
            .unwrap();
        for byte in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    lockbox::open(&kek, &bad, &open_ctx()).is_err(),
                    "{suite}: flip of bit {bit} in byte {byte} opened"
                );
            }
        }
    }
}

#[test]
fn every_truncation_and_extension_fails() {
    let kek = LocalKek::generate().unwrap();
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(200), &ctx())
        .unwrap();
    for len in 0..env.len() {
        let r = lockbox::open(&kek, &env[..len], &open_ctx());
        assert!(
            matches!(r, Err(Error::Malformed { .. } | Error::Authentication)),
            "truncation to {len}: {r:?}"
        );
    }
    let info = lockbox::inspect(&env).unwrap();
    let stride = 64 + 16;
    for extra in [
        &[0u8][..],
        &[0u8; 16],
        &env[info.header_len()..info.header_len() + stride],
    ] {
        let mut long = env.clone();
        long.extend_from_slice(extra);
        let r = lockbox::open(&kek, &long, &open_ctx());
        assert!(
            matches!(r, Err(Error::Malformed { .. } | Error::Authentication)),
            "{} appended bytes: {r:?}",
            extra.len()
        );
    }
}

#[test]
fn reordered_segments_fail() {
    let kek = LocalKek::generate().unwrap();
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(200), &ctx())
        .unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    let stride = 80;
    let mut swapped = env.clone();
    let (a, b) = (h, h + stride);
    let first = env[a..a + stride].to_vec();
    swapped.copy_within(b..b + stride, a);
    swapped[b..b + stride].copy_from_slice(&first);
    assert!(matches!(
        lockbox::open(&kek, &swapped, &open_ctx()),
        Err(Error::Authentication)
    ));
}

#[test]
fn wrong_kek_is_no_provider() {
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    match lockbox::open(&other, &env, &open_ctx()) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 0,
            source: None,
            ..
        }) => {}
        r => panic!("{r:?}"),
    }
}

#[test]
fn context_errors_are_specific() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();

    // Missing entries: the first in key order is named (exact by default).
    match lockbox::open(&kek, &env, &EncryptionContext::new()) {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "purpose"),
        r => panic!("{r:?}"),
    }
    let purpose_only = EncryptionContext::new().with("purpose", "test").unwrap();
    match lockbox::open(&kek, &env, &purpose_only) {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        r => panic!("{r:?}"),
    }
    // Lenient: a required entry is still required.
    match Opener::new(&kek)
        .lenient_context()
        .open(&env, &EncryptionContext::new())
    {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        r => panic!("{r:?}"),
    }
    // A stored entry supplied with another value.
    let wrong_stored = open_ctx().with("purpose", "other").unwrap();
    match lockbox::open(&kek, &env, &wrong_stored) {
        Err(Error::ContextMismatch { key, .. }) => assert_eq!(key, "purpose"),
        r => panic!("{r:?}"),
    }
    // An entry the envelope does not have.
    let extra = open_ctx().with_required("region", "eu").unwrap();
    match lockbox::open(&kek, &env, &extra) {
        Err(Error::ContextMismatch { key, .. }) => assert_eq!(key, "region"),
        r => panic!("{r:?}"),
    }
    // A wrong required value: the wrapped key is bound to the context, so the
    // unwrap fails authentication.
    let wrong_required = purpose_only.with_required("tenant", "evil").unwrap();
    match lockbox::open(&kek, &env, &wrong_required) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => assert_eq!(e.kind(), ProviderErrorKind::Authentication),
        r => panic!("{r:?}"),
    }
}

#[test]
fn wrapped_key_from_another_envelope_fails_commitment() {
    let kek = LocalKek::generate().unwrap();
    let a = lockbox::seal(&kek, b"message a", &ctx()).unwrap();
    let b = lockbox::seal(&kek, b"message b", &ctx()).unwrap();
    let wa = lockbox::inspect(&a).unwrap().wrapped_keys()[0].bytes().to_vec();
    let wb = lockbox::inspect(&b).unwrap().wrapped_keys()[0].bytes().to_vec();
    let at = a.windows(wa.len()).position(|w| w == wa).unwrap();
    let mut forged = a.clone();
    forged[at..at + wb.len()].copy_from_slice(&wb);
    // The lifted key unwraps (same KEK, same context) but is not this envelope's key.
    assert!(matches!(
        lockbox::open(&kek, &forged, &open_ctx()),
        Err(Error::Authentication)
    ));
}

#[test]
fn structural_errors_are_specific() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    let mut v2 = env.clone();
    v2[4] = 2;
    assert!(matches!(lockbox::inspect(&v2), Err(Error::UnsupportedVersion(2))));
    assert!(matches!(
        lockbox::open(&kek, &v2, &open_ctx()),
        Err(Error::UnsupportedVersion(2))
    ));
    let mut suite = env.clone();
    suite[5] = 77;
    assert!(matches!(lockbox::inspect(&suite), Err(Error::UnsupportedSuite(77))));
    let mut flags = env.clone();
    flags[7] = 0x80;
    assert!(matches!(
        lockbox::inspect(&flags),
        Err(Error::Malformed { offset: 7, .. })
    ));
    let mut magic = env.clone();
    magic[0] = b'X';
    assert!(matches!(
        lockbox::inspect(&magic),
        Err(Error::Malformed { offset: 0, .. })
    ));
    assert!(matches!(lockbox::inspect(&[]), Err(Error::Malformed { .. })));
    assert!(matches!(lockbox::inspect(b"LKBX"), Err(Error::Malformed { .. })));
}

#[test]
fn open_limits_are_enforced() {
    let kek = LocalKek::generate().unwrap();
    let mut big = EncryptionContext::new();
    for i in 0..10 {
        big.insert(&format!("key{i}"), &"v".repeat(100)).unwrap();
    }
    let env = lockbox::seal(&kek, b"x", &big).unwrap();
    let lim = |l: Limits| Opener::new(&kek).limits(l).open(&env, &big);
    assert!(matches!(
        lim(Limits::default().with_max_context_entries(5)),
        Err(Error::LimitExceeded {
            limit: LimitKind::ContextEntries,
            max: 5,
            ..
        })
    ));
    assert!(matches!(
        lim(Limits::default().with_max_context_bytes(500)),
        Err(Error::LimitExceeded {
            limit: LimitKind::ContextBytes,
            max: 500,
            ..
        })
    ));
    assert!(matches!(
        lim(Limits::default().with_max_header_len(200)),
        Err(Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            max: 200,
            ..
        })
    ));
    assert!(matches!(
        lim(Limits::default().with_max_wrapped_keys(0)),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 0,
            ..
        })
    ));
    assert!(matches!(
        lim(Limits::default().with_max_segment_size(1024)),
        Err(Error::LimitExceeded {
            limit: LimitKind::SegmentSize,
            ..
        })
    ));
    assert_eq!(lim(Limits::default()).unwrap(), b"x");
}

#[test]
fn seal_limits_are_enforced() {
    let kek = LocalKek::generate().unwrap();
    let mut big = EncryptionContext::new();
    for i in 0..65 {
        big.insert(&format!("k{i:02}"), "v").unwrap();
    }
    assert!(matches!(
        lockbox::seal(&kek, b"x", &big),
        Err(Error::LimitExceeded {
            limit: LimitKind::ContextEntries,
            max: 64,
            ..
        })
    ));
    let huge = EncryptionContext::new().with("k", &"v".repeat(20_000)).unwrap();
    assert!(matches!(
        lockbox::seal(&kek, b"x", &huge),
        Err(Error::LimitExceeded {
            limit: LimitKind::ContextBytes,
            ..
        })
    ));
    // Raising the sealer's limits allows it, and the opener must raise its own.
    let roomy = Limits::default().with_max_context_bytes(1 << 20);
    let env = Sealer::new(&kek).limits(roomy).seal(b"x", &huge).unwrap();
    assert!(lockbox::open(&kek, &env, &huge).is_err());
    assert_eq!(Opener::new(&kek).limits(roomy).open(&env, &huge).unwrap(), b"x");
}

#[test]
fn failed_opens_release_nothing() {
    let kek = LocalKek::generate().unwrap();
    let env = Sealer::new(&kek)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(300), &ctx())
        .unwrap();
    // Tamper with the last segment, so earlier segments verify first.
    let mut bad = env.clone();
    let n = bad.len();
    bad[n - 20] ^= 1;

    let mut out = b"keep".to_vec();
    assert!(Opener::new(&kek).open_to(&bad, &open_ctx(), &mut out).is_err());
    assert_eq!(out, b"keep");

    let mut buf = bad.clone();
    assert!(matches!(
        Opener::new(&kek).open_in_place(&mut buf, &open_ctx()),
        Err(Error::Authentication)
    ));
    assert_eq!(buf, bad, "a failed in-place open restores the envelope byte for byte");
}

/// A provider whose every operation fails, counting calls.
#[derive(Debug, Default)]
struct Broken {
    calls: AtomicUsize,
}

#[derive(Debug)]
struct BackendDown;
impl std::fmt::Display for BackendDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}
impl std::error::Error for BackendDown {}

impl ProviderIdentity for Broken {
    fn provider_id(&self) -> &str {
        "test.broken"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.broken"
    }
}

impl KeyEncryptionProvider for Broken {
    fn wrap(&self, _: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(ProviderError::new(ProviderErrorKind::Unavailable, "test.broken").with_source(BackendDown))
    }
    fn unwrap(&self, _: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(ProviderError::new(ProviderErrorKind::Unavailable, "test.broken"))
    }
}

#[test]
fn provider_failure_on_seal_changes_nothing() {
    let p = Broken::default();
    let mut buf = b"plaintext".to_vec();
    let e = Sealer::new(&p).seal_in_place(&mut buf, &ctx()).unwrap_err();
    assert_eq!(buf, b"plaintext");
    let Error::Provider(pe) = &e else { panic!("{e:?}") };
    assert_eq!(pe.kind(), ProviderErrorKind::Unavailable);
    let src = std::error::Error::source(pe).unwrap();
    assert_eq!(src.to_string(), "connection refused");
    let mut out = b"keep".to_vec();
    assert!(Sealer::new(&p).seal_to(b"x", &ctx(), &mut out).is_err());
    assert_eq!(out, b"keep");
}

#[test]
fn opening_never_calls_a_provider_for_keys_it_does_not_hold() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx()).unwrap();
    let p = Broken::default();
    assert!(matches!(
        lockbox::open(&p, &env, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert_eq!(p.calls.load(Ordering::SeqCst), 0);
}

/// A provider that generates data keys itself (as KMS GenerateDataKey does).
#[derive(Debug)]
struct Generating {
    inner: LocalKek,
    generated: AtomicUsize,
}

impl ProviderIdentity for Generating {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(w)
    }
}

impl KeyEncryptionProvider for Generating {
    fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap(dek, b)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.inner.unwrap(w, b)
    }
    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let b = request.binding();
        self.generated.fetch_add(1, Ordering::SeqCst);
        let dek = lockbox::hazmat::data_key_from_bytes([9u8; 32]);
        let w = self.inner.wrap(&dek, b)?;
        Ok(Some((dek, w)))
    }
}

#[test]
fn provider_side_generation_is_used() {
    let p = Generating {
        inner: LocalKek::generate().unwrap(),
        generated: AtomicUsize::new(0),
    };
    let env = lockbox::seal(&p, b"hello", &ctx()).unwrap();
    assert_eq!(p.generated.load(Ordering::SeqCst), 1);
    assert_eq!(lockbox::open(&p, &env, &open_ctx()).unwrap(), b"hello");
    // The generated key really is the data key: unwrapping the envelope's wrapped key gives it.
    let info = lockbox::inspect(&env).unwrap();
    let binding = lockbox::BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let dek = p
        .inner
        .unwrap(info.wrapped_keys()[0].as_ref(), binding.as_binding())
        .unwrap();
    assert_eq!(dek.expose_secret(), &[9u8; 32]);
}

#[test]
fn providers_can_be_shared_as_arc_dyn_across_threads() {
    let p: Arc<dyn KeyEncryptionProvider> = Arc::new(LocalKek::generate().unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let pt = pattern(t * 100 + i);
                    let env = lockbox::seal(&*p, &pt, &ctx()).unwrap();
                    assert_eq!(lockbox::open(&p, &env, &open_ctx()).unwrap(), pt);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn inspect_reports_routing_without_keys() {
    let kek = LocalKek::generate().unwrap();
    let env = Sealer::new(&kek)
        .suite(Suite::XChaCha20Poly1305)
        .segment_size(SegmentSize::new(1024).unwrap())
        .seal(&pattern(5000), &ctx())
        .unwrap();
    let info = lockbox::inspect(&env).unwrap();
    assert_eq!(info.version(), 1);
    assert_eq!(info.suite(), Suite::XChaCha20Poly1305);
    assert_eq!(info.segment_size().bytes(), 1024);
    assert_eq!(info.segment_count(), 5);
    assert_eq!(info.stored_context().collect::<Vec<_>>(), [("purpose", "test")]);
    assert_eq!(info.required_context_keys().collect::<Vec<_>>(), ["tenant"]);
    let w = &info.wrapped_keys()[0];
    assert_eq!(w.provider_id(), lockbox::LOCAL_PROVIDER_ID);
    assert_eq!(w.key_id(), kek.key_id());
    assert_eq!(w.key_version().0, 1);
    assert_eq!(w.bytes().len(), 61);
    assert_eq!(info.header_len() + info.payload_len(), env.len());
    assert_eq!(info.plaintext_len(), 5000);
    // The required value is never written.
    assert!(!env.windows(4).any(|w| w == b"acme"));
}

#[test]
fn debug_output_redacts_secrets() {
    let bytes = [0x5au8; 32];
    let kek = lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(bytes)));
    let b64 = lockbox::hazmat::local_kek_to_base64(&kek);
    let shown = format!("{kek:?} {:?} {:?}", Sealer::new(&kek), Opener::new(&kek));
    assert!(!shown.contains(b64.expose_secret()), "{shown}");
    assert!(!shown.contains("5a5a") && !shown.contains("90, 90"), "{shown}");
    assert!(shown.contains(kek.key_id().as_str()));
    let dek = lockbox::hazmat::data_key_from_bytes(bytes);
    assert_eq!(format!("{dek:?}"), "DataKey([REDACTED])");
    // Errors never carry key material either.
    let err = lockbox::hazmat::local_kek_from_base64("not base64").unwrap_err();
    assert!(!err.to_string().contains("not base64"));
}

/// Encodes a wrapped-key block as FORMAT.md specifies (count, then entries).
fn wrapped_block(keys: &[&WrappedKey]) -> Vec<u8> {
    let mut out = vec![keys.len() as u8];
    for w in keys {
        out.push(w.provider_id().len() as u8);
        out.extend_from_slice(w.provider_id().as_bytes());
        out.push(w.key_id().as_str().len() as u8);
        out.extend_from_slice(w.key_id().as_str().as_bytes());
        out.extend_from_slice(&w.key_version().0.to_be_bytes());
        out.extend_from_slice(&(w.bytes().len() as u16).to_be_bytes());
        out.extend_from_slice(w.bytes());
    }
    out
}

/// Splits an envelope into (header before the wrapped-key block, wrapped-key
/// block, header tag, payload), per FORMAT.md.
fn split(env: &[u8]) -> (&[u8], &[u8], &[u8], &[u8]) {
    let info = lockbox::inspect(env).unwrap();
    let block_len = wrapped_block(&info.wrapped_keys().iter().collect::<Vec<_>>()).len();
    let tag_at = info.header_len() - 16;
    let block_at = tag_at - block_len;
    (
        &env[..block_at],
        &env[block_at..tag_at],
        &env[tag_at..info.header_len()],
        &env[info.header_len()..],
    )
}

#[test]
fn the_header_tag_covers_the_wrapped_keys() {
    // A valid wrapped key of the same data key, spliced in without the data
    // key, does not open: the header tag covers every header byte.
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let env = Sealer::new(&old)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(500), &ctx())
        .unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let binding = lockbox::BindingBuf::new(info.suite(), &ctx());
    let dek = old
        .unwrap(info.wrapped_keys()[0].as_ref(), binding.as_binding())
        .unwrap();
    let rewrapped = new.wrap(&dek, binding.as_binding()).unwrap();

    let (prefix, block, tag, payload) = split(&env);
    assert_eq!(block, wrapped_block(&[&info.wrapped_keys()[0]]), "FORMAT.md layout");
    let mut env2 = prefix.to_vec();
    env2.extend(wrapped_block(&[&rewrapped]));
    env2.extend_from_slice(tag);
    env2.extend_from_slice(payload);
    assert!(matches!(
        lockbox::open(&new, &env2, &open_ctx()),
        Err(Error::Authentication)
    ));
}

#[test]
fn planted_wrapped_keys_are_rejected() {
    let kek = LocalKek::generate().unwrap();
    let a = lockbox::seal(&kek, b"message a", &ctx()).unwrap();
    let b = lockbox::seal(&kek, b"message b", &ctx()).unwrap();
    let wa = lockbox::inspect(&a).unwrap().wrapped_keys()[0].clone();
    let wb = lockbox::inspect(&b).unwrap().wrapped_keys()[0].clone();
    let (prefix, _, tag, payload) = split(&a);
    let forge = |keys: &[&WrappedKey]| {
        let mut e = prefix.to_vec();
        e.extend(wrapped_block(keys));
        e.extend_from_slice(tag);
        e.extend_from_slice(payload);
        e
    };
    // b's wrapped key unwraps (same KEK and context) but fails a's commitment;
    // a's own key then passes the commitment but the header tag sees the change.
    for keys in [&[&wb, &wa][..], &[&wa, &wb], &[&wb], &[&wa, &wa]] {
        assert!(matches!(
            lockbox::open(&kek, &forge(keys), &open_ctx()),
            Err(Error::Authentication)
        ));
    }
    // The wrapped-key limit is checked before any provider is called.
    let many: Vec<&WrappedKey> = std::iter::repeat_n(&wa, 17).collect();
    assert!(matches!(
        lockbox::open(&kek, &forge(&many), &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 16,
            ..
        })
    ));
}

#[test]
fn several_providers_each_open_and_none_can_be_tampered_with() {
    let primary = LocalKek::generate().unwrap();
    let recovery = LocalKek::generate().unwrap();
    let stranger = LocalKek::generate().unwrap();
    let env = Sealer::new(&primary)
        .also_wrap_with(&recovery)
        .segment_size(SegmentSize::MIN)
        .seal(&pattern(150), &ctx())
        .unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let ids: Vec<_> = info.wrapped_keys().iter().map(|w| w.key_id().clone()).collect();
    assert_eq!(ids, [primary.key_id().clone(), recovery.key_id().clone()]);
    assert_eq!(lockbox::open(&primary, &env, &open_ctx()).unwrap(), pattern(150));
    assert_eq!(lockbox::open(&recovery, &env, &open_ctx()).unwrap(), pattern(150));
    let either = Opener::new(&stranger).also_try(&recovery);
    assert_eq!(either.open(&env, &open_ctx()).unwrap(), pattern(150));
    assert!(matches!(
        lockbox::open(&stranger, &env, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));

    // Corrupting the recovery key's entry is caught even when opening with
    // the primary key: a disaster-recovery copy cannot rot unnoticed.
    let (prefix, block, _, _) = split(&env);
    let recovery_bytes_at = prefix.len() + block.len() - 1;
    let mut bad = env.clone();
    bad[recovery_bytes_at] ^= 0x01;
    assert!(matches!(
        lockbox::open(&primary, &bad, &open_ctx()),
        Err(Error::Authentication)
    ));

    // Every single-bit flip of a two-key envelope fails with either key.
    for byte in 0..env.len() {
        let mut bad = env.clone();
        bad[byte] ^= 0x80;
        assert!(lockbox::open(&primary, &bad, &open_ctx()).is_err(), "byte {byte}");
        assert!(lockbox::open(&recovery, &bad, &open_ctx()).is_err(), "byte {byte}");
    }
}

#[test]
fn a_sealer_refuses_more_providers_than_its_limit() {
    let kek = LocalKek::generate().unwrap();
    let mut sealer = Sealer::new(&kek);
    for _ in 0..16 {
        sealer = sealer.also_wrap_with(&kek);
    }
    assert!(matches!(
        sealer.seal(b"x", &ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 16,
            ..
        })
    ));
}

#[test]
fn context_keys_with_control_characters_are_refused() {
    assert!(EncryptionContext::new().with("bad\nkey", "v").is_err());
    assert!(EncryptionContext::new().with("ok", "values may\nhold newlines").is_ok());
}

/// A deterministic "RNG" for tests only: counts upwards, and records each request.
struct CountingRng {
    next: u8,
    requests: Vec<usize>,
}

impl TryRng for CountingRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("lockbox draws bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("lockbox draws bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.requests.push(dst.len());
        for b in dst {
            *b = self.next;
            self.next = self.next.wrapping_add(1);
        }
        Ok(())
    }
}

impl TryCryptoRng for CountingRng {}

#[test]
fn seal_with_rng_draws_key_and_message_id_in_one_call() {
    let kek = LocalKek::generate().unwrap();
    let mut rng = CountingRng {
        next: 0,
        requests: Vec::new(),
    };
    let env = Sealer::new(&kek).seal_with_rng(&mut rng, b"rng", &ctx()).unwrap();
    assert_eq!(rng.requests, [64], "one draw: data key then message id");
    let info = lockbox::inspect(&env).unwrap();
    let expected_id: Vec<u8> = (32u8..64).collect();
    assert_eq!(info.message_id().as_slice(), expected_id.as_slice());
    assert_eq!(lockbox::open(&kek, &env, &open_ctx()).unwrap(), b"rng");
    // The data key is the first 32 bytes drawn.
    let binding = lockbox::BindingBuf::new(info.suite(), &ctx());
    let dek = kek
        .unwrap(info.wrapped_keys()[0].as_ref(), binding.as_binding())
        .unwrap();
    let expected_key: Vec<u8> = (0u8..32).collect();
    assert_eq!(dek.expose_secret().as_slice(), expected_key.as_slice());
}

#[test]
fn strict_context_requires_every_stored_entry() {
    let kek = LocalKek::generate().unwrap();
    let evil = EncryptionContext::new().with("tenant", "evil").unwrap();
    let env = lockbox::seal(&kek, b"evil data", &evil).unwrap();
    // Lenient (opt-in): stored entries the caller leaves out are not checked.
    assert_eq!(
        Opener::new(&kek)
            .lenient_context()
            .open(&env, &EncryptionContext::new())
            .unwrap(),
        b"evil data"
    );
    // Strict (the default, and `strict_context`): the caller must name them,
    // with their values.
    match lockbox::open(&kek, &env, &EncryptionContext::new()) {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        r => panic!("{r:?}"),
    }
    let strict = Opener::new(&kek).lenient_context().strict_context();
    match strict.open(&env, &EncryptionContext::new()) {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        strict.open(&env, &EncryptionContext::new().with("tenant", "good").unwrap()),
        Err(Error::ContextMismatch { .. })
    ));
    assert_eq!(strict.open(&env, &evil).unwrap(), b"evil data");
}

#[test]
fn open_with_context_returns_the_authenticated_context() {
    let kek = LocalKek::generate().unwrap();
    let env = lockbox::seal(&kek, b"data", &ctx()).unwrap();
    let (pt, full) = Opener::new(&kek).open_with_context(&env, &open_ctx()).unwrap();
    assert_eq!(pt, b"data");
    assert_eq!(
        full,
        ctx(),
        "stored entries from the envelope, required ones as supplied"
    );
    assert_eq!(full.get("purpose"), Some("test"));
    assert!(
        Opener::new(&kek)
            .open_with_context(&env, &EncryptionContext::new())
            .is_err()
    );
}

/// A provider whose wrapped keys name a key it would not match.
#[derive(Debug)]
struct Misnamed(LocalKek);

impl ProviderIdentity for Misnamed {
    fn provider_id(&self) -> &str {
        "test.misnamed"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.misnamed"
    }
}

impl KeyEncryptionProvider for Misnamed {
    fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        // Bug under test: reports the inner provider's id.
        self.0.wrap(dek, b)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.0.unwrap(w, b)
    }
}

#[test]
fn sealing_refuses_a_wrapped_key_its_provider_would_not_open() {
    let p = Misnamed(LocalKek::generate().unwrap());
    match lockbox::seal(&p, b"x", &ctx()) {
        Err(Error::Provider(e)) => {
            assert_eq!(e.kind(), ProviderErrorKind::Other);
            assert_eq!(e.provider_id(), "test.misnamed");
        }
        r => panic!("{r:?}"),
    }
}
