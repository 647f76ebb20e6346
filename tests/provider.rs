//! The provider joint: object safety, the async twin and its blanket
//! implementation, and a provider that exists only in async form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, Binding, BindingBuf, BoxFuture, DataKey, EncryptionContext, KeyEncryptionProvider,
    LocalKek, ProviderError, ProviderErrorKind, ProviderIdentity, Suite, WrappedKey, WrappedKeyRef,
};

/// Polls a future that must be ready at once (the blanket impl's are).
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("future was not ready"),
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn every_sync_provider_is_an_async_provider() {
    let kek = LocalKek::generate().unwrap();
    let p: &dyn AsyncKeyEncryptionProvider = &kek;
    assert_eq!(p.provider_id(), lockbox::LOCAL_PROVIDER_ID);
    let ctx = EncryptionContext::new().with("k", "v").unwrap();
    let b = BindingBuf::new(Suite::ChaCha20Poly1305, &ctx);
    let dek = DataKey::generate().unwrap();
    let w = ready(assert_send(p.wrap_async(&dek, b.as_binding()))).unwrap();
    assert!(p.matches(w.as_ref()));
    let back = ready(assert_send(p.unwrap_async(w.as_ref(), b.as_binding()))).unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
    assert!(
        ready(p.generate_data_key_async(lockbox::DataKeyRequest::new(b.as_binding())))
            .unwrap()
            .is_none()
    );
    assert!(ready(p.rewrap_async(w.as_ref(), b.as_binding())).unwrap().is_none());
    // Wrong binding through the async path fails the same way.
    let other = BindingBuf::new(Suite::Aes256Gcm, &ctx);
    let e = ready(p.unwrap_async(w.as_ref(), other.as_binding())).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Authentication);
}

/// A provider implementing only the async trait, as a network client would
/// (its body delegates to a local key; a real one would await a request).
/// That this compiles shows the blanket impl leaves room for async-only providers.
#[derive(Debug)]
struct AsyncOnly(LocalKek);

impl ProviderIdentity for AsyncOnly {
    fn provider_id(&self) -> &str {
        "test.async-only"
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.key_id() == self.0.key_id().as_str()
    }
}

impl AsyncKeyEncryptionProvider for AsyncOnly {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(async move { self.0.wrap(dek, binding) })
    }
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move { self.0.unwrap(wrapped, binding) })
    }
}

#[test]
fn async_only_providers_are_possible_and_send() {
    let p = AsyncOnly(LocalKek::generate().unwrap());
    let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let dek = DataKey::generate().unwrap();
    let w = ready(assert_send(p.wrap_async(&dek, b.as_binding()))).unwrap();
    let back = ready(p.unwrap_async(w.as_ref(), b.as_binding())).unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
    let shared: std::sync::Arc<dyn AsyncKeyEncryptionProvider> = std::sync::Arc::new(p);
    assert_eq!(shared.provider_id(), "test.async-only");
}

#[test]
fn boxed_and_arc_providers_forward_everything() {
    let kek = LocalKek::generate().unwrap();
    let id = kek.key_id().clone();
    let boxed: Box<dyn KeyEncryptionProvider> = Box::new(kek);
    let ctx = EncryptionContext::new();
    let env = lockbox::seal(&boxed, b"boxed", &ctx).unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().wrapped_keys()[0].key_id(), &id);
    let arc: std::sync::Arc<dyn KeyEncryptionProvider> = std::sync::Arc::from(boxed);
    assert_eq!(lockbox::open(&arc, &env, &ctx).unwrap(), b"boxed");
    // Matching is forwarded too: another KEK behind an Arc is never asked.
    let other: std::sync::Arc<dyn KeyEncryptionProvider> = std::sync::Arc::new(LocalKek::generate().unwrap());
    let w = lockbox::inspect(&env).unwrap().wrapped_keys()[0].clone();
    assert!(arc.matches(w.as_ref()));
    assert!(!other.matches(w.as_ref()));
}
