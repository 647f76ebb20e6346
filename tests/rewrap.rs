//! Rewrap (new wrapped keys, same payload) and re-encrypt (new data key, new
//! payload) through the public API, and several providers per envelope.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use lockbox::{
    Binding, DataKey, EncryptionContext, Error, Keep, KeyEncryptionProvider, KeyId, LOCAL_PROVIDER_ID, LimitKind,
    Limits, LocalKek, Opener, ProviderError, ProviderErrorKind, ProviderIdentity, Reencryptor, Rewrapper, Sealer,
    SegmentSize, Suite, WrappedKey, WrappedKeyRef,
};
use proptest::prelude::*;

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

fn small(kek: &LocalKek) -> Sealer<'_> {
    Sealer::new(kek).segment_size(SegmentSize::MIN)
}

/// The payload bytes of an envelope (all its segments), via `ciphertext_range`.
fn payload(env: &[u8]) -> &[u8] {
    let len = lockbox::inspect(env).unwrap().plaintext_len() as u64;
    let r = lockbox::ciphertext_range(env, env.len() as u64, 0..len).unwrap();
    &env[r.start as usize..r.end as usize]
}

/// Header bytes before the wrapped-key count: magic through commitment.
fn prefix_len(env: &[u8]) -> usize {
    let info = lockbox::inspect(env).unwrap();
    let entries: usize = info
        .wrapped_keys()
        .iter()
        .map(|w| 1 + w.provider_id().len() + 1 + w.key_id().as_str().len() + 4 + 2 + w.bytes().len())
        .sum();
    info.header_len() - 16 - entries - 1
}

fn key_ids(env: &[u8]) -> Vec<String> {
    lockbox::inspect(env)
        .unwrap()
        .wrapped_keys()
        .iter()
        .map(|w| w.key_id().as_str().to_owned())
        .collect()
}

/// A provider with its own id and key id that delegates to a local KEK and
/// records every call in a shared log.
#[derive(Debug)]
struct Recording<'l> {
    name: &'static str,
    kek: LocalKek,
    log: &'l Mutex<Vec<String>>,
}

impl<'l> Recording<'l> {
    fn new(name: &'static str, log: &'l Mutex<Vec<String>>) -> Self {
        Self {
            name,
            kek: LocalKek::generate().unwrap(),
            log,
        }
    }
}

impl ProviderIdentity for Recording<'static> {
    fn provider_id(&self) -> &str {
        "test.recording"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.recording" && w.key_id() == self.name
    }
}

impl KeyEncryptionProvider for Recording<'static> {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.log.lock().unwrap().push(format!("wrap {}", self.name));
        let w = self.kek.wrap(dek, binding)?;
        Ok(WrappedKey::new(
            "test.recording",
            KeyId::new(self.name).unwrap(),
            w.key_version(),
            w.bytes().to_vec(),
        )
        .unwrap())
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.log.lock().unwrap().push(format!("unwrap {}", self.name));
        let inner = WrappedKey::new(
            LOCAL_PROVIDER_ID,
            self.kek.key_id().clone(),
            w.key_version(),
            w.bytes().to_vec(),
        )
        .unwrap();
        self.kek.unwrap(inner.as_ref(), binding)
    }
}

fn leak_log() -> &'static Mutex<Vec<String>> {
    Box::leak(Box::new(Mutex::new(Vec::new())))
}

/// Counts wraps; every call fails if `fail` is set.
#[derive(Debug, Default)]
struct CountingWrap {
    kek: Option<LocalKek>,
    wraps: AtomicUsize,
}

impl ProviderIdentity for CountingWrap {
    fn provider_id(&self) -> &str {
        LOCAL_PROVIDER_ID
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.kek.as_ref().is_some_and(|k| k.matches(w))
    }
}

impl KeyEncryptionProvider for CountingWrap {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        match &self.kek {
            Some(k) => k.wrap(dek, binding),
            None => Err(ProviderError::new(ProviderErrorKind::Unavailable, LOCAL_PROVIDER_ID)),
        }
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        match &self.kek {
            Some(k) => k.unwrap(w, binding),
            None => Err(ProviderError::new(ProviderErrorKind::KeyNotFound, LOCAL_PROVIDER_ID)),
        }
    }
}

fn counting(kek: LocalKek) -> CountingWrap {
    CountingWrap {
        kek: Some(kek),
        wraps: AtomicUsize::new(0),
    }
}

#[test]
fn rewrap_keeps_the_payload_byte_identical() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    for suite in Suite::ALL {
        for len in [0usize, 1, 63, 64, 65, 1000] {
            let env = small(&old).suite(suite).seal(&pattern(len), &ctx()).unwrap();
            let out = Rewrapper::new(&old).wrap_with(&new).rewrap(&env, &open_ctx()).unwrap();
            assert_eq!(payload(&out), payload(&env), "{suite:?} {len}");
            // Everything the payload depends on is unchanged too.
            let (a, b) = (lockbox::inspect(&env).unwrap(), lockbox::inspect(&out).unwrap());
            assert_eq!(a.message_id(), b.message_id());
            assert_eq!(a.suite(), b.suite());
            assert_eq!(a.segment_size(), b.segment_size());
            assert_eq!(
                a.stored_context().collect::<Vec<_>>(),
                b.stored_context().collect::<Vec<_>>()
            );
            assert_eq!(
                a.required_context_keys().collect::<Vec<_>>(),
                b.required_context_keys().collect::<Vec<_>>()
            );
            // Header bytes up to the wrapped keys (commitment included) are copied.
            let fixed = prefix_len(&env);
            assert_eq!(fixed, prefix_len(&out));
            assert_eq!(env[..fixed], out[..fixed]);
            assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), pattern(len));
        }
    }
}

#[test]
fn after_rewrap_to_a_new_kek_only_the_new_kek_opens() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let env = small(&old).seal(&pattern(300), &ctx()).unwrap();
    let out = Rewrapper::new(&old).wrap_with(&new).rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(key_ids(&out), [new.key_id().as_str()]);
    assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), pattern(300));
    assert!(matches!(
        lockbox::open(&old, &out, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    // The original is untouched and still opens with the old KEK only.
    assert_eq!(lockbox::open(&old, &env, &open_ctx()).unwrap(), pattern(300));
    assert!(lockbox::open(&new, &env, &open_ctx()).is_err());
    // Rewrapping back restores an envelope the old KEK opens.
    let back = Rewrapper::new(&new).wrap_with(&old).rewrap(&out, &open_ctx()).unwrap();
    assert_eq!(lockbox::open(&old, &back, &open_ctx()).unwrap(), pattern(300));
    assert_eq!(payload(&back), payload(&env));
}

#[test]
fn the_default_wraps_again_with_the_unwrap_provider() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(b"same key", &ctx()).unwrap();
    let out = Rewrapper::new(&kek).rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(key_ids(&out), [kek.key_id().as_str()]);
    // Local wraps are deterministic (synthetic nonce, FORMAT.md §10): wrapping
    // the same data key for the same binding again gives the same bytes, so
    // the whole envelope is reproduced.
    assert_eq!(
        lockbox::inspect(&out).unwrap().wrapped_keys()[0].bytes(),
        lockbox::inspect(&env).unwrap().wrapped_keys()[0].bytes()
    );
    assert_eq!(out, env);
    assert_eq!(lockbox::open(&kek, &out, &open_ctx()).unwrap(), b"same key");
}

#[test]
fn providers_can_be_added_and_removed() {
    let a = LocalKek::generate().unwrap();
    let b = LocalKek::generate().unwrap();
    let c = LocalKek::generate().unwrap();
    let (ida, idb, idc) = (a.key_id().as_str(), b.key_id().as_str(), c.key_id().as_str());
    let env = small(&a).also_wrap_with(&b).seal(&pattern(100), &ctx()).unwrap();
    assert_eq!(key_ids(&env), [ida, idb]);

    // Unmatched (default): a's entry is replaced, b's kept, c added after a.
    let added = Rewrapper::new(&a).also_wrap_with(&c).rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(key_ids(&added), [ida, idc, idb]);
    for k in [&a, &b, &c] {
        assert_eq!(lockbox::open(k, &added, &open_ctx()).unwrap(), pattern(100));
    }
    // The kept entry is copied byte for byte.
    let wb = |e: &[u8]| lockbox::inspect(e).unwrap().wrapped_keys().last().unwrap().clone();
    assert_eq!(wb(&added), wb(&env));

    // Keep::All with c only: every old entry stays, unchanged.
    let all = Rewrapper::new(&a)
        .wrap_with(&c)
        .keep(Keep::All)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(key_ids(&all), [idc, ida, idb]);
    let old_keys = lockbox::inspect(&env).unwrap().wrapped_keys().to_vec();
    assert_eq!(lockbox::inspect(&all).unwrap().wrapped_keys()[1..], old_keys[..]);

    // Keep::Nothing: only the new wraps.
    let only_c = Rewrapper::new(&b)
        .wrap_with(&c)
        .keep(Keep::Nothing)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(key_ids(&only_c), [idc]);
    assert!(lockbox::open(&a, &only_c, &open_ctx()).is_err());

    // Remove b without re-wrapping a: keep everything, drop b's entries.
    let removed = Rewrapper::new(&a)
        .no_new_wraps()
        .keep(Keep::All)
        .remove_entries_of(&b)
        .rewrap(&added, &open_ctx())
        .unwrap();
    assert_eq!(key_ids(&removed), [ida, idc]);
    assert!(matches!(
        lockbox::open(&b, &removed, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert_eq!(lockbox::open(&c, &removed, &open_ctx()).unwrap(), pattern(100));
    assert_eq!(payload(&removed), payload(&env));

    // A provider being removed can also be the unwrap side.
    let c_only = Rewrapper::new(&a)
        .wrap_with(&c)
        .remove_entries_of(&c)
        .rewrap(&added, &open_ctx())
        .unwrap();
    assert_eq!(key_ids(&c_only), [idc, idb]);

    // Nothing left is refused before any wrap.
    assert!(matches!(
        Rewrapper::new(&a)
            .no_new_wraps()
            .keep(Keep::Nothing)
            .rewrap(&env, &open_ctx()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Rewrapper::new(&a)
            .no_new_wraps()
            .rewrap(&small(&a).seal(b"", &ctx()).unwrap(), &open_ctx()),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn a_no_op_rewrap_reproduces_the_envelope() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(&pattern(99), &ctx()).unwrap();
    let same = Rewrapper::new(&kek)
        .no_new_wraps()
        .keep(Keep::All)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(same, env);
}

#[test]
fn the_wrong_unwrap_provider_gets_a_specific_error() {
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let env = small(&kek).seal(b"x", &ctx()).unwrap();
    assert!(matches!(
        Rewrapper::new(&other).rewrap(&env, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap {
            attempts: 0,
            source: None,
            ..
        })
    ));
    // also_try reaches the right one.
    let out = Rewrapper::new(&other)
        .also_try(&kek)
        .wrap_with(&other)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(lockbox::open(&other, &out, &open_ctx()).unwrap(), b"x");
    // The right key but the wrong required value: the unwrap fails to authenticate.
    let wrong = open_ctx().with_required("tenant", "evil").unwrap();
    match Rewrapper::new(&kek).rewrap(&env, &wrong) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => assert_eq!(e.kind(), ProviderErrorKind::Authentication),
        other => panic!("{other:?}"),
    }
}

#[test]
fn context_is_reconciled_as_when_opening() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(b"x", &ctx()).unwrap();
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&env, &EncryptionContext::new()),
        Err(Error::MissingContext { key, .. }) if key == "purpose"
    ));
    assert!(matches!(
        Rewrapper::new(&kek).lenient_context().rewrap(&env, &EncryptionContext::new()),
        Err(Error::MissingContext { key, .. }) if key == "tenant"
    ));
    let mismatch = open_ctx().with("purpose", "other").unwrap();
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&env, &mismatch),
        Err(Error::ContextMismatch { key, .. }) if key == "purpose"
    ));
    let extra = open_ctx().with("unknown", "1").unwrap();
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&env, &extra),
        Err(Error::ContextMismatch { key, .. }) if key == "unknown"
    ));
    assert!(matches!(
        Rewrapper::new(&kek).lenient_context().strict_context().rewrap(&env, &required_only()),
        Err(Error::MissingContext { key, .. }) if key == "purpose"
    ));
    let lenient = Rewrapper::new(&kek)
        .lenient_context()
        .rewrap(&env, &required_only())
        .unwrap();
    assert_eq!(lockbox::open(&kek, &lenient, &ctx()).unwrap(), b"x");
    let out = Rewrapper::new(&kek).rewrap(&env, &ctx()).unwrap();
    // The new wrapped key is bound to the same context: the required value
    // is still needed, and a wrong one still fails.
    assert!(
        Opener::new(&kek)
            .lenient_context()
            .open(&out, &EncryptionContext::new())
            .is_err()
    );
    let evil = open_ctx().with_required("tenant", "evil").unwrap();
    assert!(lockbox::open(&kek, &out, &evil).is_err());
    assert_eq!(lockbox::open(&kek, &out, &open_ctx()).unwrap(), b"x");
}

#[test]
fn a_tampered_header_is_rejected_before_anything_is_wrapped() {
    let kek = LocalKek::generate().unwrap();
    let recovery = LocalKek::generate().unwrap();
    let env = small(&kek)
        .also_wrap_with(&recovery)
        .seal(&pattern(70), &ctx())
        .unwrap();
    let header_len = lockbox::inspect(&env).unwrap().header_len();
    let target = counting(LocalKek::generate().unwrap());
    for byte in 0..header_len {
        for bit in [0x01u8, 0x80] {
            let mut bad = env.clone();
            bad[byte] ^= bit;
            let r = Rewrapper::new(&kek).wrap_with(&target).rewrap(&bad, &open_ctx());
            assert!(r.is_err(), "byte {byte} bit {bit}");
            let mut sink = Vec::new();
            assert!(
                Rewrapper::new(&kek)
                    .wrap_with(&target)
                    .rewrap_stream(&bad[..], &mut sink, &open_ctx())
                    .is_err()
            );
            assert!(sink.is_empty(), "byte {byte}: nothing written");
            assert!(
                Rewrapper::new(&kek)
                    .wrap_with(&target)
                    .rewrap_header(&bad, &open_ctx())
                    .is_err()
            );
        }
    }
    assert_eq!(
        target.wraps.load(Ordering::SeqCst),
        0,
        "no wrap of an unauthenticated data key"
    );
}

#[test]
fn tampered_wrapped_keys_and_commitments_have_the_expected_errors() {
    let kek = LocalKek::generate().unwrap();
    let recovery = LocalKek::generate().unwrap();
    let env = small(&kek).also_wrap_with(&recovery).seal(b"abc", &ctx()).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let h = info.header_len();
    let w1 = &info.wrapped_keys()[1];
    let entry1 = 1 + w1.provider_id().len() + 1 + w1.key_id().as_str().len() + 4 + 2 + w1.bytes().len();
    let w0 = &info.wrapped_keys()[0];
    let entry0 = 1 + w0.provider_id().len() + 1 + w0.key_id().as_str().len() + 4 + 2 + w0.bytes().len();
    let last_byte_of_entry0 = h - 16 - entry1 - 1;
    let commitment_at = h - 16 - entry1 - entry0 - 1 - 32;

    // The primary's wrapped bytes: its unwrap fails to authenticate.
    let mut bad = env.clone();
    bad[last_byte_of_entry0] ^= 1;
    match Rewrapper::new(&kek).rewrap(&bad, &open_ctx()) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(e),
            ..
        }) => assert_eq!(e.kind(), ProviderErrorKind::Authentication),
        other => panic!("{other:?}"),
    }
    // The recovery key's wrapped bytes (not used by this rewrap): the header tag fails.
    let mut bad = env.clone();
    bad[h - 17] ^= 1;
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&bad, &open_ctx()),
        Err(Error::Authentication)
    ));
    // The commitment: the unwrapped key no longer matches it.
    let mut bad = env.clone();
    bad[commitment_at] ^= 1;
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&bad, &open_ctx()),
        Err(Error::Authentication)
    ));
    // The header tag itself.
    let mut bad = env.clone();
    bad[h - 1] ^= 1;
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&bad, &open_ctx()),
        Err(Error::Authentication)
    ));
    // A wrapped key lifted from another envelope (right KEK, wrong data key).
    let other = small(&kek).seal(b"abc", &ctx()).unwrap();
    let other_info = lockbox::inspect(&other).unwrap();
    let mut swapped = env.clone();
    let at = h - 16 - entry1 - w0.bytes().len();
    swapped[at..at + w0.bytes().len()].copy_from_slice(other_info.wrapped_keys()[0].bytes());
    assert!(matches!(
        Rewrapper::new(&kek).rewrap(&swapped, &open_ctx()),
        Err(Error::Authentication)
    ));
}

#[test]
fn structural_errors_and_limits() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(&pattern(200), &ctx()).unwrap();
    let rw = Rewrapper::new(&kek);
    assert!(matches!(rw.rewrap(b"", &open_ctx()), Err(Error::Malformed { .. })));
    assert!(matches!(
        rw.rewrap(b"LKBX\x02", &open_ctx()),
        Err(Error::UnsupportedVersion(2))
    ));
    // A truncated payload is refused (its framing is checked), whole or streamed.
    // (200 bytes in 64-byte segments: the last segment holds 8 bytes and its
    // tag; 9 bytes fewer leave a partial tag.)
    assert!(matches!(
        rw.rewrap(&env[..env.len() - 9], &open_ctx()),
        Err(Error::Malformed { .. })
    ));
    let h = lockbox::inspect(&env).unwrap().header_len();
    assert!(matches!(
        rw.rewrap(&env[..h], &open_ctx()),
        Err(Error::Malformed { .. })
    ));
    let mut sink = Vec::new();
    let e = rw
        .rewrap_stream(&env[..env.len() - 9], &mut sink, &open_ctx())
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    // rewrap_header works on the header alone.
    assert!(rw.rewrap_header(&env[..h], &open_ctx()).is_ok());
    assert!(matches!(
        rw.rewrap_header(&env[..h - 1], &open_ctx()),
        Err(Error::Malformed { .. })
    ));

    // Input limits.
    let segs = Rewrapper::new(&kek).limits(Limits::default().with_max_segment_size(32));
    assert!(matches!(
        segs.rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::SegmentSize,
            ..
        })
    ));
    let tiny = Rewrapper::new(&kek).limits(Limits::default().with_max_header_len(40));
    assert!(matches!(
        tiny.rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            max: 40,
            ..
        })
    ));
    let mut sink = Vec::new();
    let e = tiny.rewrap_stream(&env[..], &mut sink, &open_ctx()).unwrap_err();
    let inner = e.get_ref().and_then(|e| e.downcast_ref::<Error>()).unwrap();
    assert!(matches!(
        inner,
        Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            ..
        }
    ));
    assert!(sink.is_empty());
    let two = small(&kek).also_wrap_with(&kek).seal(b"x", &ctx()).unwrap();
    assert!(matches!(
        Rewrapper::new(&kek)
            .limits(Limits::default().with_max_wrapped_keys(1))
            .rewrap(&two, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 1,
            ..
        })
    ));

    // Output limits: too many wrapped keys is refused before any wrap.
    let target = counting(LocalKek::generate().unwrap());
    let mut rw = Rewrapper::new(&kek).wrap_with(&target).keep(Keep::All);
    for _ in 0..15 {
        rw = rw.also_wrap_with(&target);
    }
    assert!(matches!(
        rw.rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 16,
            ..
        })
    ));
    assert_eq!(target.wraps.load(Ordering::SeqCst), 0);
    // Exactly at the limit is fine, and opens.
    let rw = rw.keep(Keep::Nothing);
    let full = rw.rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(lockbox::inspect(&full).unwrap().wrapped_keys().len(), 16);
    assert_eq!(lockbox::open(&target, &full, &open_ctx()).unwrap(), pattern(200));
    // A new header longer than the limit.
    let h = lockbox::inspect(&env).unwrap().header_len();
    let short = Rewrapper::new(&kek)
        .also_wrap_with(&kek)
        .limits(Limits::default().with_max_header_len(h + 10));
    assert!(matches!(
        short.rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::HeaderBytes,
            ..
        })
    ));
}

#[test]
fn provider_failures_while_wrapping_produce_nothing() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(b"x", &ctx()).unwrap();
    let down = CountingWrap::default();
    let r = Rewrapper::new(&kek).also_wrap_with(&down).rewrap(&env, &open_ctx());
    match r {
        Err(Error::Provider(e)) => assert_eq!(e.kind(), ProviderErrorKind::Unavailable),
        other => panic!("{other:?}"),
    }
    let mut sink = Vec::new();
    assert!(
        Rewrapper::new(&kek)
            .also_wrap_with(&down)
            .rewrap_stream(&env[..], &mut sink, &open_ctx())
            .is_err()
    );
    assert!(sink.is_empty());

    // A provider whose wrapped key it would not itself try to open.
    #[derive(Debug)]
    struct Mislabels(LocalKek);
    impl ProviderIdentity for Mislabels {
        fn provider_id(&self) -> &str {
            "test.mislabels"
        }
        fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
            w.provider_id() == "test.mislabels"
        }
    }
    impl KeyEncryptionProvider for Mislabels {
        fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
            self.0.wrap(dek, b)
        }
        fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
            self.0.unwrap(w, b)
        }
    }
    let bad = Mislabels(LocalKek::generate().unwrap());
    assert!(matches!(
        Rewrapper::new(&kek).wrap_with(&bad).rewrap(&env, &open_ctx()),
        Err(Error::Provider(_))
    ));
}

/// A provider that unwraps every entry addressed to it into a fixed wrong key.
#[derive(Debug)]
struct Liar;
impl ProviderIdentity for Liar {
    fn provider_id(&self) -> &str {
        LOCAL_PROVIDER_ID
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == LOCAL_PROVIDER_ID
    }
}
impl KeyEncryptionProvider for Liar {
    fn wrap(&self, _: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::Unsupported, LOCAL_PROVIDER_ID))
    }
    fn unwrap(&self, _: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        Ok(lockbox::hazmat::data_key_from_bytes([0x42; 32]))
    }
}

#[test]
fn a_wrong_data_key_fails_the_commitment_and_the_next_provider_is_tried() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(b"x", &ctx()).unwrap();
    assert!(matches!(
        Rewrapper::new(&Liar).wrap_with(&kek).rewrap(&env, &open_ctx()),
        Err(Error::Authentication)
    ));
    let out = Rewrapper::new(&Liar)
        .also_try(&kek)
        .wrap_with(&kek)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(lockbox::open(&kek, &out, &open_ctx()).unwrap(), b"x");
}

#[test]
fn verify_payload_checks_every_segment_without_releasing_it() {
    let kek = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let env = small(&kek).seal(&pattern(500), &ctx()).unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    let verified = Rewrapper::new(&kek).wrap_with(&new).verify_payload(true);
    let plain = Rewrapper::new(&kek).wrap_with(&new);
    assert_eq!(verified.rewrap(&env, &open_ctx()).unwrap().len(), env.len());
    for at in [h, h + 63, h + 64, h + 80, env.len() - 17, env.len() - 1] {
        let mut bad = env.clone();
        bad[at] ^= 1;
        // Without verification the damage is copied and caught at open.
        let copied = plain.rewrap(&bad, &open_ctx()).unwrap();
        assert!(lockbox::open(&new, &copied, &open_ctx()).is_err());
        // With it, the rewrap itself fails, whole or streamed.
        assert!(matches!(verified.rewrap(&bad, &open_ctx()), Err(Error::Authentication)));
        let mut sink = Vec::new();
        let e = verified.rewrap_stream(&bad[..], &mut sink, &open_ctx()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Nothing from the damaged segment on was written (the new header has
        // the old one's length: same kind of provider).
        let seg_start = h + (at - h) / 80 * 80;
        assert_eq!(sink.len(), seg_start, "at {at}");
    }
    // Reordered segments fail too.
    let mut swapped = env.clone();
    let (s0, s1) = (h, h + 80);
    let first: Vec<u8> = env[s0..s0 + 80].to_vec();
    swapped.copy_within(s1..s1 + 80, s0);
    swapped[s1..s1 + 80].copy_from_slice(&first);
    assert!(verified.rewrap(&swapped, &open_ctx()).is_err());
}

/// A reader that returns at most `step` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn streaming_rewrap_equals_slice_rewrap_byte_for_byte() {
    let kek = LocalKek::generate().unwrap();
    // Rewrap under the same KEK with no new wraps: deterministic output.
    let deterministic = Rewrapper::new(&kek).no_new_wraps().keep(Keep::All);
    let new = LocalKek::generate().unwrap();
    for len in [0usize, 1, 64, 65, 640, 5000] {
        let env = small(&kek).also_wrap_with(&new).seal(&pattern(len), &ctx()).unwrap();
        for step in [1usize, 7, 4096] {
            for verify in [false, true] {
                let rw = deterministic.clone().verify_payload(verify);
                let mut out = Vec::new();
                let n = rw
                    .rewrap_stream(Trickle { data: &env, step }, &mut out, &open_ctx())
                    .unwrap();
                assert_eq!(n, out.len() as u64);
                assert_eq!(out, rw.rewrap(&env, &open_ctx()).unwrap(), "len {len} step {step}");
            }
        }
        // With a new wrap (random), the header differs but the rest matches
        // the header-only variant spliced onto the payload.
        let rw = Rewrapper::new(&kek).wrap_with(&new);
        let mut out = Vec::new();
        rw.rewrap_stream(&env[..], &mut out, &open_ctx()).unwrap();
        assert_eq!(payload(&out), payload(&env));
        assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), pattern(len));
        let nh = rw.rewrap_header(&env, &open_ctx()).unwrap();
        let mut spliced = nh.header().to_vec();
        spliced.extend_from_slice(&env[nh.replaced_len()..]);
        assert_eq!(nh.replaced_len(), lockbox::inspect(&env).unwrap().header_len());
        assert_eq!(lockbox::open(&new, &spliced, &open_ctx()).unwrap(), pattern(len));
        assert_eq!(nh.into_header().len(), lockbox::inspect(&spliced).unwrap().header_len());
    }
}

#[test]
fn streaming_rewrap_rejects_trailing_data_and_truncation() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(&pattern(128), &ctx()).unwrap();
    let rw = Rewrapper::new(&kek);
    // 128 bytes = two full segments; cutting the second's tag or appending
    // bytes gives a framing or a tag failure later, never a silent success
    // that opens.
    for cut in 1..=20 {
        let mut sink = Vec::new();
        let r = rw.rewrap_stream(&env[..env.len() - cut], &mut sink, &open_ctx());
        if r.is_ok() {
            assert!(lockbox::open(&kek, &sink, &open_ctx()).is_err(), "cut {cut}");
        }
        let verified = rw.clone().verify_payload(true);
        let mut sink = Vec::new();
        assert!(
            verified
                .rewrap_stream(&env[..env.len() - cut], &mut sink, &open_ctx())
                .is_err(),
            "cut {cut}"
        );
    }
    let mut longer = env.clone();
    longer.extend_from_slice(&[0u8; 5]);
    let mut sink = Vec::new();
    assert!(
        rw.clone()
            .verify_payload(true)
            .rewrap_stream(&longer[..], &mut sink, &open_ctx())
            .is_err()
    );
}

/// A writer that fails after `ok` bytes.
struct FailingWriter {
    ok: usize,
    got: Vec<u8>,
}
impl Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.got.len() + buf.len() > self.ok {
            return Err(io::Error::other("disk full"));
        }
        self.got.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn streaming_io_errors_are_reported() {
    let kek = LocalKek::generate().unwrap();
    let env = small(&kek).seal(&pattern(300), &ctx()).unwrap();
    let mut w = FailingWriter {
        ok: 10,
        got: Vec::new(),
    };
    let e = Rewrapper::new(&kek)
        .rewrap_stream(&env[..], &mut w, &open_ctx())
        .unwrap_err();
    assert_eq!(e.to_string(), "disk full");
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("read failed"))
        }
    }
    let mut sink = Vec::new();
    let e = Rewrapper::new(&kek)
        .rewrap_stream(Broken, &mut sink, &open_ctx())
        .unwrap_err();
    assert_eq!(e.to_string(), "read failed");
}

#[test]
fn batch_rewrap_reports_each_item_and_never_stops() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let stranger = LocalKek::generate().unwrap();
    let good1 = small(&old).seal(b"one", &ctx()).unwrap();
    let foreign = small(&stranger).seal(b"two", &ctx()).unwrap();
    let good2 = small(&old).seal(b"three", &ctx()).unwrap();
    let mut tampered = small(&old).seal(b"four", &ctx()).unwrap();
    tampered[10] ^= 1;
    let acme = open_ctx();
    let other_tenant = EncryptionContext::new().with_required("tenant", "other").unwrap();
    let other = small(&old).seal(b"five", &other_tenant).unwrap();
    let originals = [
        good1.clone(),
        foreign.clone(),
        good2.clone(),
        tampered.clone(),
        other.clone(),
    ];
    let items: Vec<(&[u8], &EncryptionContext)> = vec![
        (&good1, &acme),
        (&foreign, &acme),
        (&good2, &acme),
        (&tampered, &acme),
        (&other, &other_tenant),
        (b"garbage", &acme),
    ];
    let results = Rewrapper::new(&old).wrap_with(&new).rewrap_batch(items);
    assert_eq!(results.len(), 6);
    assert_eq!(
        lockbox::open(&new, results[0].as_ref().unwrap(), &acme).unwrap(),
        b"one"
    );
    assert!(matches!(
        results[1],
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert_eq!(
        lockbox::open(&new, results[2].as_ref().unwrap(), &acme).unwrap(),
        b"three"
    );
    assert!(matches!(results[3], Err(Error::Authentication)));
    assert_eq!(
        lockbox::open(&new, results[4].as_ref().unwrap(), &other_tenant).unwrap(),
        b"five"
    );
    assert!(matches!(results[5], Err(Error::Malformed { .. })));
    // Inputs untouched (and the failed ones still open as before).
    assert_eq!([good1, foreign.clone(), good2, tampered, other], originals);
    assert_eq!(lockbox::open(&stranger, &foreign, &acme).unwrap(), b"two");
}

#[test]
fn reencrypt_makes_a_new_envelope_that_opens() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let env = small(&old).seal(&pattern(1000), &ctx()).unwrap();
    let re = Reencryptor::new(Opener::new(&old), Sealer::new(&new).suite(Suite::XChaCha20Poly1305));
    let out = re.reencrypt(&env, &open_ctx()).unwrap();
    let (a, b) = (lockbox::inspect(&env).unwrap(), lockbox::inspect(&out).unwrap());
    assert_ne!(a.message_id(), b.message_id());
    assert_eq!(b.suite(), Suite::XChaCha20Poly1305);
    assert_eq!(b.segment_size(), SegmentSize::DEFAULT);
    assert_ne!(payload(&out), payload(&env));
    // The context is the same, the required entry still required.
    assert_eq!(b.stored_context().collect::<Vec<_>>(), [("purpose", "test")]);
    assert_eq!(b.required_context_keys().collect::<Vec<_>>(), ["tenant"]);
    assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), pattern(1000));
    assert!(lockbox::open(&new, &out, &EncryptionContext::new()).is_err());
    assert!(lockbox::open(&old, &out, &open_ctx()).is_err());
    // Twice gives two different envelopes.
    assert_ne!(re.reencrypt(&env, &open_ctx()).unwrap(), out);

    // Failures: wrong key, missing context, tampering anywhere.
    assert!(matches!(
        Reencryptor::new(Opener::new(&new), Sealer::new(&new)).reencrypt(&env, &open_ctx()),
        Err(Error::NoProviderCouldUnwrap { .. })
    ));
    assert!(matches!(
        re.reencrypt(&env, &EncryptionContext::new()),
        Err(Error::MissingContext { .. })
    ));
    let mut bad = env.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(re.reencrypt(&bad, &open_ctx()), Err(Error::Authentication)));
    // A provider failure on the sealing side.
    let down = CountingWrap::default();
    assert!(matches!(
        Reencryptor::new(Opener::new(&old), Sealer::new(&down)).reencrypt(&env, &open_ctx()),
        Err(Error::Provider(_))
    ));
}

#[test]
fn batch_reencrypt_reports_each_item() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let a = small(&old).seal(b"a", &ctx()).unwrap();
    let mut b = small(&old).seal(b"b", &ctx()).unwrap();
    let at = b.len() - 3;
    b[at] ^= 4;
    let c = small(&old).seal(b"c", &ctx()).unwrap();
    let acme = open_ctx();
    let re = Reencryptor::new(Opener::new(&old), Sealer::new(&new));
    let results = re.reencrypt_batch([(&a[..], &acme), (&b[..], &acme), (&c[..], &acme)]);
    assert_eq!(lockbox::open(&new, results[0].as_ref().unwrap(), &acme).unwrap(), b"a");
    assert!(matches!(results[1], Err(Error::Authentication)));
    assert_eq!(lockbox::open(&new, results[2].as_ref().unwrap(), &acme).unwrap(), b"c");
}

#[test]
fn streaming_reencrypt_opens_and_never_finishes_on_damage() {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let env = small(&old).seal(&pattern(5000), &ctx()).unwrap();
    let re = Reencryptor::new(Opener::new(&old), Sealer::new(&new).segment_size(SegmentSize::MIN));
    for step in [1usize, 100, 1 << 16] {
        let out = re
            .reencrypt_stream(Trickle { data: &env, step }, Vec::new(), &open_ctx())
            .unwrap();
        assert_ne!(
            lockbox::inspect(&out).unwrap().message_id(),
            lockbox::inspect(&env).unwrap().message_id()
        );
        assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), pattern(5000));
        assert_eq!(
            lockbox::inspect(&out)
                .unwrap()
                .required_context_keys()
                .collect::<Vec<_>>(),
            ["tenant"]
        );
    }
    // Damage late in the input: an error, and whatever was written never opens.
    for at in [env.len() - 1, env.len() - 100] {
        let mut bad = env.clone();
        bad[at] ^= 1;
        let mut sink = Vec::new();
        assert!(re.reencrypt_stream(&bad[..], &mut sink, &open_ctx()).is_err());
        assert!(!sink.is_empty(), "output was streamed");
        assert!(lockbox::open(&new, &sink, &open_ctx()).is_err());
    }
    let mut sink = Vec::new();
    assert!(
        re.reencrypt_stream(&env[..env.len() - 1], &mut sink, &open_ctx())
            .is_err()
    );
    assert!(lockbox::open(&new, &sink, &open_ctx()).is_err());
    assert!(
        re.reencrypt_stream(&env[..], Vec::new(), &EncryptionContext::new())
            .is_err()
    );
}

#[test]
fn every_single_bit_flip_of_a_rewrapped_envelope_fails() {
    let old = LocalKek::generate().unwrap();
    let a = LocalKek::generate().unwrap();
    let b = LocalKek::generate().unwrap();
    let env = small(&old).seal(&pattern(100), &ctx()).unwrap();
    let out = Rewrapper::new(&old)
        .wrap_with(&a)
        .also_wrap_with(&b)
        .rewrap(&env, &open_ctx())
        .unwrap();
    assert_eq!(lockbox::open(&a, &out, &open_ctx()).unwrap(), pattern(100));
    for byte in 0..out.len() {
        for bit in 0..8 {
            let mut bad = out.clone();
            bad[byte] ^= 1 << bit;
            assert!(lockbox::open(&a, &bad, &open_ctx()).is_err(), "byte {byte} bit {bit}");
            assert!(lockbox::open(&b, &bad, &open_ctx()).is_err(), "byte {byte} bit {bit}");
        }
    }
    // Truncations and extensions too.
    for n in 0..out.len() {
        assert!(lockbox::open(&a, &out[..n], &open_ctx()).is_err());
    }
    let mut longer = out.clone();
    longer.push(0);
    assert!(lockbox::open(&a, &longer, &open_ctx()).is_err());
}

#[test]
fn several_providers_any_one_opens_in_a_deterministic_order() {
    let log = leak_log();
    let p1 = Recording::new("one", log);
    let p2 = Recording::new("two", log);
    let p3 = Recording::new("three", log);
    let env = Sealer::new(&p1)
        .also_wrap_with(&p2)
        .also_wrap_with(&p3)
        .seal(b"payload", &ctx())
        .unwrap();
    assert_eq!(key_ids(&env), ["one", "two", "three"]);
    assert_eq!(*log.lock().unwrap(), ["wrap one", "wrap two", "wrap three"]);
    for p in [&p1, &p2, &p3] {
        log.lock().unwrap().clear();
        assert_eq!(lockbox::open(p, &env, &open_ctx()).unwrap(), b"payload");
        // Only the provider's own entry is tried.
        assert_eq!(*log.lock().unwrap(), [format!("unwrap {}", p.name)]);
    }
    // Several providers given: header order first, then the order given.
    log.lock().unwrap().clear();
    let opener = Opener::new(&p3).also_try(&p2);
    assert_eq!(opener.open(&env, &open_ctx()).unwrap(), b"payload");
    assert_eq!(*log.lock().unwrap(), ["unwrap two"]);
    // Rewrap uses the same order.
    log.lock().unwrap().clear();
    let out = Rewrapper::new(&p3).also_try(&p2).rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(*log.lock().unwrap(), ["unwrap two", "wrap three"]);
    // p2's and p3's entries were replaced by the fresh p3 wrap.
    assert_eq!(key_ids(&out), ["three", "one"]);

    // A failing entry earlier in the header is passed over to the next.
    let wrong = open_ctx().with_required("tenant", "evil").unwrap();
    log.lock().unwrap().clear();
    assert!(Opener::new(&p3).also_try(&p1).open(&env, &wrong).is_err());
    assert_eq!(*log.lock().unwrap(), ["unwrap one", "unwrap three"]);

    // The wrapped-key limit is checked before any provider is called.
    log.lock().unwrap().clear();
    let limited = Limits::default().with_max_wrapped_keys(2);
    assert!(matches!(
        Opener::new(&p1).limits(limited).open(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 2,
            ..
        })
    ));
    assert!(matches!(
        Rewrapper::new(&p1).limits(limited).rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 2,
            ..
        })
    ));
    assert!(log.lock().unwrap().is_empty());
    // And a sealer refuses to write more than its limit.
    assert!(matches!(
        Sealer::new(&p1)
            .also_wrap_with(&p2)
            .also_wrap_with(&p3)
            .limits(limited)
            .seal(b"x", &ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 2,
            ..
        })
    ));
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn debug_output_names_no_secret() {
    let kek = LocalKek::generate().unwrap();
    let secret = lockbox::hazmat::local_kek_bytes(&kek);
    let hexed = hex::encode(secret);
    let dbg = format!(
        "{:?} {:?}",
        Rewrapper::new(&kek),
        Reencryptor::new(Opener::new(&kek), Sealer::new(&kek))
    );
    assert!(dbg.contains("Rewrapper"));
    assert!(!dbg.contains(&hexed));
    assert!(!dbg.contains(&format!("{secret:?}")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn rewrap_then_open_is_the_plaintext(
        data in proptest::collection::vec(any::<u8>(), 0..700),
        exp in 6u8..9,
        suite in 0usize..3,
        keep_all in any::<bool>(),
        extra in any::<bool>(),
    ) {
        let old = LocalKek::generate().unwrap();
        let new = LocalKek::generate().unwrap();
        let env = Sealer::new(&old)
            .suite(Suite::ALL[suite])
            .segment_size(SegmentSize::from_exponent(exp).unwrap())
            .seal(&data, &ctx())
            .unwrap();
        let mut rw = Rewrapper::new(&old).wrap_with(&new);
        if keep_all {
            rw = rw.keep(Keep::All);
        }
        if extra {
            rw = rw.also_wrap_with(&old);
        }
        let out = rw.rewrap(&env, &open_ctx()).unwrap();
        prop_assert_eq!(payload(&out), payload(&env));
        prop_assert_eq!(lockbox::open(&new, &out, &open_ctx()).unwrap(), data.clone());
        prop_assert_eq!(lockbox::open(&old, &out, &open_ctx()).is_ok(), keep_all || extra);
        let mut streamed = Vec::new();
        Rewrapper::new(&new).no_new_wraps().keep(Keep::All)
            .rewrap_stream(&out[..], &mut streamed, &open_ctx()).unwrap();
        prop_assert_eq!(&streamed, &out);
    }
}

#[test]
fn a_rewrap_that_could_not_be_written_calls_no_provider() {
    let log = leak_log();
    let p = Recording::new("solo", log);
    let q = Recording::new("other", log);
    let env = Sealer::new(&p).seal(b"x", &ctx()).unwrap();
    log.lock().unwrap().clear();
    assert!(matches!(
        Rewrapper::new(&p).no_new_wraps().rewrap(&env, &open_ctx()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Rewrapper::new(&p)
            .also_wrap_with(&q)
            .limits(Limits::default().with_max_wrapped_keys(1))
            .rewrap(&env, &open_ctx()),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            max: 1,
            ..
        })
    ));
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    // The same rewrap within the limits: one unwrap, then the wraps in order.
    let out = Rewrapper::new(&p).also_wrap_with(&q).rewrap(&env, &open_ctx()).unwrap();
    assert_eq!(*log.lock().unwrap(), ["unwrap solo", "wrap solo", "wrap other"]);
    assert_eq!(key_ids(&out), ["solo", "other"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The new header's entries against a model: the new wraps in order, then
    /// the old entries that `Keep` selects and no removed provider matches.
    #[test]
    fn the_new_wrap_set_follows_the_model(
        sealed_with in proptest::collection::vec(0usize..3, 1..5),
        unwrap_with in proptest::collection::vec(0usize..3, 1..3),
        wrap_with in proptest::collection::vec(0usize..3, 0..3),
        remove in proptest::collection::vec(0usize..3, 0..2),
        keep in 0usize..3,
    ) {
        let keks = [LocalKek::generate().unwrap(), LocalKek::generate().unwrap(), LocalKek::generate().unwrap()];
        let id = |i: usize| keks[i].key_id().as_str().to_owned();
        let mut sealer = Sealer::new(&keks[sealed_with[0]]);
        for &i in &sealed_with[1..] {
            sealer = sealer.also_wrap_with(&keks[i]);
        }
        let env = sealer.seal(b"model", &ctx()).unwrap();

        let keep = [Keep::Unmatched, Keep::All, Keep::Nothing][keep];
        let mut rw = Rewrapper::new(&keks[unwrap_with[0]]).keep(keep).no_new_wraps();
        for &i in &unwrap_with[1..] {
            rw = rw.also_try(&keks[i]);
        }
        for &i in &wrap_with {
            rw = rw.also_wrap_with(&keks[i]);
        }
        for &i in &remove {
            rw = rw.remove_entries_of(&keks[i]);
        }

        let kept: Vec<String> = sealed_with
            .iter()
            .filter(|i| !remove.contains(i))
            .filter(|i| match keep {
                Keep::All => true,
                Keep::Nothing => false,
                _ => !unwrap_with.contains(i),
            })
            .map(|&i| id(i))
            .collect();
        let expected: Vec<String> = wrap_with.iter().map(|&i| id(i)).chain(kept).collect();
        let r = rw.rewrap(&env, &open_ctx());
        if expected.is_empty() {
            prop_assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{:?}", r);
        } else if !unwrap_with.iter().any(|i| sealed_with.contains(i)) {
            prop_assert!(matches!(r, Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })), "{:?}", r);
        } else {
            let out = r.unwrap();
            prop_assert_eq!(key_ids(&out), expected.clone());
            prop_assert_eq!(payload(&out), payload(&env));
            for (i, kek) in keks.iter().enumerate() {
                let opens = lockbox::open(kek, &out, &open_ctx()).is_ok();
                prop_assert_eq!(opens, expected.contains(&id(i)), "kek {}", i);
            }
        }
    }
}

/// An async-only provider (no sync trait): delegates to a local KEK, under
/// its own provider id, after yielding to the executor once.
#[derive(Debug)]
struct AsyncOnly(LocalKek);

/// A future that is pending once, then ready.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

impl ProviderIdentity for AsyncOnly {
    fn provider_id(&self) -> &str {
        "test.async"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == "test.async" && w.key_id() == self.0.key_id().as_str()
    }
}

impl lockbox::AsyncKeyEncryptionProvider for AsyncOnly {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> lockbox::BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move {
            YieldOnce(false).await;
            let w = self.0.wrap(dek, binding)?;
            Ok(WrappedKey::new("test.async", w.key_id().clone(), w.key_version(), w.bytes().to_vec()).unwrap())
        })
    }
    fn unwrap_async<'a>(
        &'a self,
        w: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> lockbox::BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            YieldOnce(false).await;
            let inner = WrappedKey::new(
                LOCAL_PROVIDER_ID,
                self.0.key_id().clone(),
                w.key_version(),
                w.bytes().to_vec(),
            )
            .unwrap();
            self.0.unwrap(inner.as_ref(), binding)
        })
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn async_rewrap_matches_the_sync_rewrap() {
    let old = LocalKek::generate().unwrap();
    let kms = AsyncOnly(LocalKek::generate().unwrap());
    let env = small(&old).seal(&pattern(300), &ctx()).unwrap();

    // Deterministic (no new wraps): byte-identical to the sync rewrap.
    let sync = Rewrapper::new(&old).no_new_wraps().keep(Keep::All).verify_payload(true);
    let asyn = lockbox::AsyncRewrapper::new(&old)
        .no_new_wraps()
        .keep(Keep::All)
        .verify_payload(true);
    assert_eq!(
        block_on(asyn.rewrap(&env, &open_ctx())).unwrap(),
        sync.rewrap(&env, &open_ctx()).unwrap()
    );

    // Sync to an async-only provider and back; the futures are Send.
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let to_kms = lockbox::AsyncRewrapper::new(&old).wrap_with(&kms);
    let out = block_on(assert_send(to_kms.rewrap(&env, &open_ctx()))).unwrap();
    assert_eq!(key_ids(&out), [kms.0.key_id().as_str()]);
    assert_eq!(
        lockbox::inspect(&out).unwrap().wrapped_keys()[0].provider_id(),
        "test.async"
    );
    assert_eq!(payload(&out), payload(&env));
    assert!(lockbox::open(&old, &out, &open_ctx()).is_err());
    let back = lockbox::AsyncRewrapper::new(&kms).wrap_with(&old);
    let again = block_on(back.rewrap(&out, &open_ctx())).unwrap();
    assert_eq!(lockbox::open(&old, &again, &open_ctx()).unwrap(), pattern(300));
    // rewrap_header spliced onto the payload.
    let nh = block_on(back.rewrap_header(&out, &open_ctx())).unwrap();
    let mut spliced = nh.header().to_vec();
    spliced.extend_from_slice(&out[nh.replaced_len()..]);
    assert_eq!(lockbox::open(&old, &spliced, &open_ctx()).unwrap(), pattern(300));
    // Adding and removing through the async twin.
    let both = block_on(
        lockbox::AsyncRewrapper::new(&old)
            .also_wrap_with(&kms)
            .rewrap(&env, &open_ctx()),
    )
    .unwrap();
    assert_eq!(key_ids(&both), [old.key_id().as_str(), kms.0.key_id().as_str()]);
    let without = block_on(
        lockbox::AsyncRewrapper::new(&old)
            .no_new_wraps()
            .keep(Keep::All)
            .remove_entries_of(&kms)
            .rewrap(&both, &open_ctx()),
    )
    .unwrap();
    assert_eq!(key_ids(&without), [old.key_id().as_str()]);
}

#[test]
fn async_rewrap_has_the_same_errors() {
    let old = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let kms = AsyncOnly(LocalKek::generate().unwrap());
    let env = small(&old).seal(&pattern(100), &ctx()).unwrap();
    let rw = lockbox::AsyncRewrapper::new(&old).wrap_with(&kms);
    let h = lockbox::inspect(&env).unwrap().header_len();
    for at in [9, 50, h - 17, h - 1] {
        let mut bad = env.clone();
        bad[at] ^= 1;
        assert!(block_on(rw.rewrap(&bad, &open_ctx())).is_err(), "byte {at}");
    }
    let mut bad = env.clone();
    bad[h - 1] ^= 1;
    assert!(matches!(
        block_on(rw.rewrap(&bad, &open_ctx())),
        Err(Error::Authentication)
    ));
    // A payload byte: copied, or caught with verify_payload.
    let mut bad = env.clone();
    bad[h + 1] ^= 1;
    assert!(block_on(rw.rewrap(&bad, &open_ctx())).is_ok());
    assert!(matches!(
        block_on(rw.clone().verify_payload(true).rewrap(&bad, &open_ctx())),
        Err(Error::Authentication)
    ));
    assert!(matches!(
        block_on(lockbox::AsyncRewrapper::new(&other).rewrap(&env, &open_ctx())),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert!(matches!(
        block_on(
            lockbox::AsyncRewrapper::new(&Liar)
                .wrap_with(&old)
                .rewrap(&env, &open_ctx())
        ),
        Err(Error::Authentication)
    ));
    assert!(
        block_on(
            lockbox::AsyncRewrapper::new(&Liar)
                .also_try(&old)
                .wrap_with(&old)
                .rewrap(&env, &open_ctx())
        )
        .is_ok()
    );
    assert!(matches!(
        block_on(rw.clone().lenient_context().rewrap(&env, &EncryptionContext::new())),
        Err(Error::MissingContext { .. })
    ));
    assert!(matches!(
        block_on(rw.clone().rewrap(&env, &required_only())),
        Err(Error::MissingContext { .. })
    ));
    assert!(matches!(
        block_on(rw.clone().no_new_wraps().keep(Keep::Nothing).rewrap(&env, &open_ctx())),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        block_on(
            rw.clone()
                .also_wrap_with(&old)
                .limits(Limits::default().with_max_wrapped_keys(1))
                .rewrap(&env, &open_ctx())
        ),
        Err(Error::LimitExceeded {
            limit: LimitKind::WrappedKeys,
            ..
        })
    ));
    let down = CountingWrap::default();
    assert!(matches!(
        block_on(
            lockbox::AsyncRewrapper::new(&old)
                .wrap_with(&down)
                .rewrap(&env, &open_ctx())
        ),
        Err(Error::Provider(_))
    ));
    // Batch: per-item results in order.
    let acme = open_ctx();
    let results = block_on(rw.rewrap_batch([(&env[..], &acme), (&bad[..h], &acme), (&env[..], &acme)]));
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(results[1], Err(Error::Malformed { .. })));
    for r in [&results[0], &results[2]] {
        let out = r.as_ref().unwrap();
        assert_eq!(
            block_on(lockbox::AsyncRewrapper::new(&kms).wrap_with(&old).rewrap(out, &acme))
                .map(|e| lockbox::open(&old, &e, &acme).unwrap())
                .unwrap(),
            pattern(100)
        );
    }
}
