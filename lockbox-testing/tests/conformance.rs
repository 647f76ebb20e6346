//! The provider conformance suite: it passes for the local KEK through both
//! entry points, and each check catches the provider bug it exists for (a
//! suite that passes everything proves nothing).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, Binding, BoxFuture, DataKey, KeyEncryptionProvider, KeyId, LocalKek, ProviderError,
    ProviderErrorKind, ProviderIdentity, WrappedKey, WrappedKeyRef,
};
use lockbox_testing::{CHECKS, ConformanceFailure, check_async_provider, check_provider};

const ALL_CHECKS: [&str; 9] = [
    "round_trip",
    "no_clear_key",
    "matches",
    "wrong_context",
    "tampered",
    "wrong_key",
    "concurrency",
    "errors",
    "debug_redacts",
];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn local_kek_passes_the_sync_suite() {
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let report = check_provider(&kek, &other).unwrap();
    assert_eq!(report.checks(), ALL_CHECKS);
    assert_eq!(report.provider_id(), lockbox::LOCAL_PROVIDER_ID);
    assert_eq!(report.wrapped_len(), 61);
    // Every byte twice, one byte shorter, one byte longer.
    assert_eq!(report.tampered_variants(), 61 * 2 + 2);
    assert!(!report.offers_generate_data_key());
    assert!(!report.offers_rewrap());
}

#[test]
fn the_published_check_list_is_the_one_that_runs() {
    assert_eq!(CHECKS, ALL_CHECKS);
}

#[test]
fn a_provider_behind_a_pointer_passes_as_the_pointer() {
    let kek: Box<dyn KeyEncryptionProvider> = Box::new(LocalKek::generate().unwrap());
    let other: std::sync::Arc<dyn KeyEncryptionProvider> = std::sync::Arc::new(LocalKek::generate().unwrap());
    assert_eq!(check_provider(&kek, &other).unwrap().checks(), ALL_CHECKS);
}

#[test]
fn local_kek_passes_the_async_suite() {
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let report = rt().block_on(check_async_provider(&kek, &other)).unwrap();
    assert_eq!(report.checks(), ALL_CHECKS);
}

#[test]
fn the_async_suite_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let kek = LocalKek::generate().unwrap();
    let other = LocalKek::generate().unwrap();
    let fut = check_async_provider(&kek, &other);
    assert_send(&fut);
}

// ---------------------------------------------------------------------------
// Providers with one bug each. They delegate to a local KEK under their own
// provider id, so the suite treats them as a provider kind of their own.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    None,
    /// Binds the wrap to nothing (as Tink does).
    IgnoresBinding,
    /// Reports a wrong binding as `KeyNotFound`.
    WrongErrorKind,
    /// Ignores one trailing byte appended to its wrapped keys.
    AcceptsTrailingByte,
    /// Matches every wrapped key that names its provider id.
    MatchesAnyKey,
    /// Puts the data key in its wrapped key next to the real wrap.
    LeaksKeyInWrapped,
    /// Prints the last data key it wrapped in its `Debug`.
    LeaksKeyInDebug,
    /// Names another provider in its errors.
    WrongProviderIdInErrors,
    /// Fails when two calls overlap.
    NotThreadSafe,
    /// Its `generate_data_key` returns a wrapped key for another data key.
    GeneratesMismatchedKeys,
}

const BUGGY_ID: &str = "test.buggy";

struct Buggy {
    kek: LocalKek,
    key_id: KeyId,
    bug: Bug,
    last_key: std::sync::Mutex<Vec<u8>>,
    in_flight: AtomicUsize,
}

impl Buggy {
    fn new(bug: Bug) -> Self {
        let kek = LocalKek::generate().unwrap();
        let key_id = kek.key_id().clone();
        Self {
            kek,
            key_id,
            bug,
            last_key: std::sync::Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn err(&self, kind: ProviderErrorKind) -> ProviderError {
        let id = if self.bug == Bug::WrongProviderIdInErrors {
            "someone.else"
        } else {
            BUGGY_ID
        };
        ProviderError::new(kind, id)
    }

    fn inner<'a>(&self, w: WrappedKeyRef<'a>, bytes: &'a [u8]) -> WrappedKey {
        WrappedKey::new(
            lockbox::LOCAL_PROVIDER_ID,
            KeyId::new(w.key_id()).unwrap(),
            w.key_version(),
            bytes.to_vec(),
        )
        .unwrap()
    }

    fn enter(&self) -> Result<Guard<'_>, ProviderError> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = Guard(&self.in_flight);
        if self.bug == Bug::NotThreadSafe {
            // Widen the window so overlapping calls really overlap.
            std::thread::sleep(std::time::Duration::from_millis(2));
            if before > 0 || self.in_flight.load(Ordering::SeqCst) > 1 {
                return Err(self.err(ProviderErrorKind::Unavailable));
            }
        }
        Ok(guard)
    }
}

struct Guard<'a>(&'a AtomicUsize);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for Buggy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Buggy");
        d.field("key_id", &self.key_id);
        if self.bug == Bug::LeaksKeyInDebug {
            d.field("last_key", &*self.last_key.lock().unwrap());
        }
        d.finish()
    }
}

impl ProviderIdentity for Buggy {
    fn provider_id(&self) -> &str {
        BUGGY_ID
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.provider_id() == BUGGY_ID && (self.bug == Bug::MatchesAnyKey || w.key_id() == self.key_id.as_str())
    }
}

impl KeyEncryptionProvider for Buggy {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let _g = self.enter()?;
        if self.bug == Bug::LeaksKeyInDebug {
            *self.last_key.lock().unwrap() = dek.expose_secret().to_vec();
        }
        let empty = lockbox::BindingBuf::new(binding.suite(), &lockbox::EncryptionContext::new());
        let binding = if self.bug == Bug::IgnoresBinding {
            empty.as_binding()
        } else {
            binding
        };
        let w = self.kek.wrap(dek, binding)?;
        let mut bytes = w.bytes().to_vec();
        if self.bug == Bug::LeaksKeyInWrapped {
            bytes.extend_from_slice(dek.expose_secret());
        }
        WrappedKey::new(BUGGY_ID, self.key_id.clone(), w.key_version(), bytes)
            .map_err(|e| self.err(ProviderErrorKind::Other).with_source(e))
    }

    fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let _g = self.enter()?;
        if w.key_id() != self.key_id.as_str() {
            return Err(self.err(ProviderErrorKind::KeyNotFound));
        }
        let mut bytes = w.bytes();
        if self.bug == Bug::LeaksKeyInWrapped && bytes.len() > 32 {
            bytes = &bytes[..bytes.len() - 32];
        }
        if self.bug == Bug::AcceptsTrailingByte && bytes.len() == 62 {
            bytes = &bytes[..61];
        }
        let empty = lockbox::BindingBuf::new(binding.suite(), &lockbox::EncryptionContext::new());
        let binding = if self.bug == Bug::IgnoresBinding {
            empty.as_binding()
        } else {
            binding
        };
        let inner = self.inner(w, bytes);
        self.kek.unwrap(inner.as_ref(), binding).map_err(|e| {
            let kind = match (self.bug, e.kind()) {
                (Bug::WrongErrorKind, ProviderErrorKind::Authentication) => ProviderErrorKind::KeyNotFound,
                (_, k) => k,
            };
            self.err(kind).with_source(e)
        })
    }

    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let binding = request.binding();
        if self.bug != Bug::GeneratesMismatchedKeys {
            return Ok(None);
        }
        let dek = DataKey::generate().unwrap();
        let other = DataKey::generate().unwrap();
        Ok(Some((dek, self.wrap(&other, binding)?)))
    }
}

fn failure(bug: Bug) -> ConformanceFailure {
    let p = Buggy::new(bug);
    let other = Buggy::new(Bug::None);
    let sync = check_provider(&p, &other).expect_err("a buggy provider passed the sync suite");
    let asynced = rt()
        .block_on(check_async_provider(&p, &other))
        .expect_err("a buggy provider passed the async suite");
    assert_eq!(sync.check(), asynced.check(), "{sync} / {asynced}");
    assert!(sync.to_string().contains(sync.check()));
    assert!(sync.to_string().contains(sync.reason()));
    sync
}

#[test]
fn a_correct_delegating_provider_passes() {
    let p = Buggy::new(Bug::None);
    let other = Buggy::new(Bug::None);
    assert_eq!(check_provider(&p, &other).unwrap().checks(), ALL_CHECKS);
    assert_eq!(
        rt().block_on(check_async_provider(&p, &other)).unwrap().checks(),
        ALL_CHECKS
    );
}

#[test]
fn ignoring_the_binding_fails_wrong_context() {
    let f = failure(Bug::IgnoresBinding);
    assert_eq!(f.check(), "wrong_context", "{f}");
    assert!(f.reason().contains("unwrap succeeded"), "{f}");
}

#[test]
fn a_wrong_error_kind_fails_wrong_context() {
    let f = failure(Bug::WrongErrorKind);
    assert_eq!(f.check(), "wrong_context", "{f}");
    assert!(f.reason().contains("KeyNotFound"), "{f}");
}

#[test]
fn accepting_an_extended_wrapped_key_fails_tampered() {
    let f = failure(Bug::AcceptsTrailingByte);
    assert_eq!(f.check(), "tampered", "{f}");
    assert!(f.reason().contains("appended"), "{f}");
}

#[test]
fn matching_other_keys_fails_matches() {
    let f = failure(Bug::MatchesAnyKey);
    assert_eq!(f.check(), "matches", "{f}");
}

#[test]
fn a_data_key_in_the_wrapped_bytes_fails_no_clear_key() {
    let f = failure(Bug::LeaksKeyInWrapped);
    assert_eq!(f.check(), "no_clear_key", "{f}");
}

#[test]
fn a_data_key_in_debug_fails_debug_redacts() {
    let f = failure(Bug::LeaksKeyInDebug);
    assert_eq!(f.check(), "debug_redacts", "{f}");
    assert!(f.reason().contains("Debug"), "{f}");
}

#[test]
fn errors_naming_another_provider_fail_errors() {
    let f = failure(Bug::WrongProviderIdInErrors);
    assert_eq!(f.check(), "errors", "{f}");
    assert!(f.reason().contains("someone.else"), "{f}");
}

#[test]
fn a_provider_that_fails_under_concurrency_fails_concurrency() {
    let p = Buggy::new(Bug::NotThreadSafe);
    let other = Buggy::new(Bug::None);
    let f = check_provider(&p, &other).unwrap_err();
    assert_eq!(f.check(), "concurrency", "{f}");
    assert!(f.reason().starts_with("user "), "{f}");
}

#[test]
fn mismatched_generated_keys_fail_round_trip() {
    let f = failure(Bug::GeneratesMismatchedKeys);
    assert_eq!(f.check(), "round_trip", "{f}");
}

// ---------------------------------------------------------------------------
// An async-only provider whose futures really suspend, so the concurrent
// users of the async suite interleave on one thread.

/// Returns `Pending` once (waking itself), then `Ready`.
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

#[derive(Debug)]
struct Suspending {
    kek: LocalKek,
    max_in_flight: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Suspending {
    fn new() -> Self {
        Self {
            kek: LocalKek::generate().unwrap(),
            max_in_flight: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }
    async fn pause(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        YieldOnce(false).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ProviderIdentity for Suspending {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(w)
    }
}

impl AsyncKeyEncryptionProvider for Suspending {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move {
            self.pause().await;
            self.kek.wrap(dek, binding)
        })
    }
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            self.pause().await;
            self.kek.unwrap(wrapped, binding)
        })
    }
}

#[test]
fn an_async_only_provider_passes_and_its_users_overlap() {
    let p = Suspending::new();
    let other = Suspending::new();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let report = runtime.block_on(check_async_provider(&p, &other)).unwrap();
    assert_eq!(report.checks(), ALL_CHECKS);
    // All 8 users were suspended inside the provider at the same time.
    assert_eq!(
        p.max_in_flight.load(Ordering::SeqCst),
        lockbox_testing::CONCURRENT_USERS
    );
}

#[test]
fn the_same_key_as_other_key_is_reported_as_such() {
    let kek = LocalKek::generate().unwrap();
    let same =
        lockbox::hazmat::local_kek_from_base64(lockbox::hazmat::local_kek_to_base64(&kek).expose_secret()).unwrap();
    let f = check_provider(&kek, &same).unwrap_err();
    assert_eq!(f.check(), "matches", "{f}");
    assert!(f.reason().contains("different key"), "{f}");
}
