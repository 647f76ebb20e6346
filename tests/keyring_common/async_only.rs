//! An async-only provider for tests: it wraps a sync provider (a `LocalKek`,
//! or a counting one) but implements only `ProviderIdentity` and
//! `AsyncKeyEncryptionProvider`, as the AWS KMS and OpenBao providers do. Every
//! call is counted, and its future returns `Pending` once before it answers
//! (as a network call would), so the callers' futures really are suspended
//! at each `.await`. The answer is computed in the poll that returns it: no
//! data key is kept in the future's state.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use lockbox::{
    AsyncKeyEncryptionProvider, Binding, BoxFuture, DataKey, DataKeyRequest, KeyEncryptionProvider, ProviderError,
    ProviderIdentity, WrappedKey, WrappedKeyRef,
};

/// `inner`, reachable through the async trait only.
#[derive(Debug)]
pub(crate) struct AsyncOnly<P> {
    pub(crate) inner: P,
    calls: AtomicUsize,
}

impl<P> AsyncOnly<P> {
    pub(crate) fn new(inner: P) -> Self {
        Self {
            inner,
            calls: AtomicUsize::new(0),
        }
    }

    /// Calls made through the async trait so far (every method).
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Counts a call; its future yields once, then runs `f`.
    fn call<'a, T: Send + 'a>(&'a self, f: impl FnOnce() -> T + Send + 'a) -> BoxFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(yield_then(f))
    }
}

/// Pending once (waking itself), then ready with `f()`.
fn yield_then<T>(f: impl FnOnce() -> T) -> impl Future<Output = T> {
    let mut f = Some(f);
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if !yielded {
            yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match f.take() {
            Some(f) => Poll::Ready(f()),
            None => Poll::Pending,
        }
    })
}

impl<P: ProviderIdentity> ProviderIdentity for AsyncOnly<P> {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }
    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(wrapped)
    }
}

impl<P: KeyEncryptionProvider> AsyncKeyEncryptionProvider for AsyncOnly<P> {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        self.call(move || self.inner.wrap(dek, binding))
    }
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        self.call(move || self.inner.unwrap(wrapped, binding))
    }
    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        self.call(move || self.inner.generate_data_key(request))
    }
    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        self.call(move || self.inner.rewrap(wrapped, binding))
    }
}

/// Runs a future to completion on this thread (for tests that drive async
/// code from sync test bodies or from several threads): polls, and parks
/// until woken.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
