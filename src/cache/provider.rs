//! The two caching providers: thin shells over the cache logic
//! (`logic.rs`), one for sync inner providers and one for async ones, which
//! differ only in `.await`. (One generic type cannot be both: every sync
//! provider is also async through a blanket implementation, so the async
//! implementation of a generic wrapper would overlap it.)

use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;
use core::marker::PhantomData;
use core::time::Duration;

use super::logic::{Core, Lookup, Settings, new_key};
use super::{CacheStats, DataKeyCache};
use crate::context::Binding;
use crate::error::{Error, ProviderError};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef};
use crate::provider::{AsyncKeyEncryptionProvider, BoxFuture, DataKeyRequest, KeyEncryptionProvider, ProviderIdentity};

/// Builds a caching provider over `P`: a [`CachingProvider`] (the default
/// `S`) from [`CachingProvider::builder`], or an [`AsyncCachingProvider`]
/// from [`AsyncCachingProvider::builder`]. The settings and their checks are
/// the same; `build` returns the shell the builder was started from.
pub struct CachingProviderBuilder<P, S = CachingProvider<P>> {
    inner: P,
    settings: Settings,
    shell: PhantomData<fn() -> S>,
}

impl<P: ProviderIdentity, S> CachingProviderBuilder<P, S> {
    fn new(inner: P, cache: &DataKeyCache, max_age: Duration) -> Self {
        Self {
            inner,
            settings: Settings::new(cache, max_age),
            shell: PhantomData,
        }
    }

    /// The most messages one data key seals (default
    /// [`DEFAULT_MAX_MESSAGES`](super::DEFAULT_MAX_MESSAGES)).
    #[must_use]
    pub fn max_messages(mut self, max: u64) -> Self {
        self.settings.limits.max_messages = max;
        self
    }

    /// The most plaintext bytes one data key seals, all its messages together
    /// (default [`DEFAULT_MAX_BYTES`](super::DEFAULT_MAX_BYTES)).
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.settings.limits.max_bytes = max;
        self
    }

    /// Names the partition: providers over one [`DataKeyCache`] share entries
    /// only if they have the same name (1 to
    /// [`MAX_PARTITION_LEN`](super::MAX_PARTITION_LEN) bytes). Without a name
    /// the provider gets a private random partition.
    #[must_use]
    pub fn partition(mut self, name: impl Into<String>) -> Self {
        self.settings.partition = Some(name.into());
        self
    }

    /// The inner provider and the checked core.
    fn finish(self) -> Result<(P, Core), Error> {
        let core = Core::new(self.settings, self.inner.provider_id())?;
        Ok((self.inner, core))
    }
}

impl<P: KeyEncryptionProvider> CachingProviderBuilder<P, CachingProvider<P>> {
    /// Checks the settings and builds the provider. A zero `max_age`, zero
    /// limits and an empty or over-long partition name are
    /// [`Error::InvalidArgument`]s.
    pub fn build(self) -> Result<CachingProvider<P>, Error> {
        let (inner, core) = self.finish()?;
        Ok(CachingProvider { inner, core })
    }
}

impl<P: AsyncKeyEncryptionProvider> CachingProviderBuilder<P, AsyncCachingProvider<P>> {
    /// Checks the settings and builds the provider. A zero `max_age`, zero
    /// limits and an empty or over-long partition name are
    /// [`Error::InvalidArgument`]s.
    pub fn build(self) -> Result<AsyncCachingProvider<P>, Error> {
        let (inner, core) = self.finish()?;
        Ok(AsyncCachingProvider { inner, core })
    }
}

impl<P: fmt::Debug, S> fmt::Debug for CachingProviderBuilder<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingProviderBuilder")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A [`KeyEncryptionProvider`] that caches data keys of a sync inner provider
/// (a [`LocalKek`](crate::LocalKek), an HSM): see the
/// [module documentation](super) for what is cached, the limits, and why
/// reuse is safe. For an async-only provider (a cloud KMS, OpenBao) use
/// [`AsyncCachingProvider`]; both can share one [`DataKeyCache`].
///
/// It reports the inner provider's id and `matches`, and its envelopes are
/// ordinary envelopes of the inner provider: anything that opens with the
/// inner provider opens with or without the cache. Thread-safe; `Debug`
/// shows the settings and the inner provider's `Debug`, never a key. Being a
/// sync provider, it is also an [`AsyncKeyEncryptionProvider`] (for
/// [`AsyncSealer`](crate::AsyncSealer)).
pub struct CachingProvider<P> {
    inner: P,
    core: Core,
}

/// An [`AsyncKeyEncryptionProvider`] that caches data keys of an async inner
/// provider (AWS KMS, OpenBao Transit, any provider that implements only the
/// async trait): the same cache as [`CachingProvider`] (same limits,
/// partitions, statistics and [`DataKeyCache`]), for
/// [`AsyncSealer`](crate::AsyncSealer) and [`AsyncOpener`](crate::AsyncOpener).
/// See the [module documentation](super).
///
/// Data keys are never moved out of the state of its futures: a key that
/// has to wait for the inner provider's `.await` is copied out and zeroized
/// where it lies.
pub struct AsyncCachingProvider<P> {
    inner: P,
    core: Core,
}

/// What the two shells share that does not call the inner provider.
macro_rules! shell {
    ($shell:ident, $bound:ident) => {
        impl<P: $bound> $shell<P> {
            /// Starts building a provider caching `inner`'s data keys in
            /// `cache`, each for at most `max_age` (required; zero is an error
            /// at `build`).
            pub fn builder(inner: P, cache: &DataKeyCache, max_age: Duration) -> CachingProviderBuilder<P, Self> {
                CachingProviderBuilder::new(inner, cache, max_age)
            }

            /// The inner provider.
            pub fn inner(&self) -> &P {
                &self.inner
            }

            /// The store this provider caches in.
            pub fn cache(&self) -> &DataKeyCache {
                self.core.cache()
            }

            /// This provider's hit and miss counters.
            pub fn stats(&self) -> CacheStats {
                self.core.stats()
            }
        }

        impl<P: $bound> ProviderIdentity for $shell<P> {
            fn provider_id(&self) -> &str {
                self.inner.provider_id()
            }

            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
                self.inner.matches(wrapped)
            }

            fn post_quantum(&self) -> crate::PostQuantum {
                self.inner.post_quantum()
            }
        }

        impl<P: $bound> fmt::Debug for $shell<P> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.core.debug(f, stringify!($shell), &self.inner)
            }
        }
    };
}

shell!(CachingProvider, KeyEncryptionProvider);
shell!(AsyncCachingProvider, AsyncKeyEncryptionProvider);

impl<P: KeyEncryptionProvider> CachingProvider<P> {
    /// A fresh data key and its wrapped form from the inner provider:
    /// provider-side generation if offered, else the OS CSPRNG and a wrap.
    fn fresh(&self, request: DataKeyRequest<'_>) -> Result<(DataKey, WrappedKey), ProviderError> {
        if let Some(pair) = self.inner.generate_data_key(request)? {
            return Ok(pair);
        }
        let dek = new_key(self.inner.provider_id())?;
        let wrapped = self.inner.wrap(&dek, request.binding())?;
        Ok((dek, wrapped))
    }
}

impl<P: KeyEncryptionProvider> KeyEncryptionProvider for CachingProvider<P> {
    /// Forwards to the inner provider (wrapping a caller's key is not cached).
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap(dek, binding)
    }

    /// Serves the key from the cache if this wrapped key was unwrapped under
    /// this binding within the age limit; otherwise asks the inner provider
    /// and caches a successful result (failures are not cached).
    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let miss = match self.core.open_lookup(wrapped, binding) {
            Lookup::Hit(dek) => return Ok(dek),
            Lookup::Miss(miss) => miss,
        };
        let dek = self.inner.unwrap(wrapped, binding)?;
        self.core.keep_opened(miss, &dek);
        Ok(dek)
    }

    /// Reuses a cached data key if one more message of the request's
    /// plaintext length stays within every limit; otherwise gets a fresh key
    /// from the inner provider and caches it. An unknown length (streaming),
    /// or one above the byte limit, bypasses the cache.
    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let Some(len) = self.core.seal_len(&request) else {
            return self.inner.generate_data_key(request);
        };
        let miss = match self.core.seal_lookup(request.binding(), len) {
            Lookup::Hit(pair) => return Ok(Some(pair)),
            Lookup::Miss(miss) => miss,
        };
        let pair = self.fresh(request)?;
        self.core.keep_sealed(miss, &pair, &self.inner);
        Ok(Some(pair))
    }

    /// Forwards to the inner provider.
    fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
        self.inner.rewrap(wrapped, binding)
    }
}

// The async shell. No `.await` is inside a `match` on a lookup, so a hit's
// key is never in a value that lives across a suspension point (and hence
// never in the future's heap state).
impl<P: AsyncKeyEncryptionProvider> AsyncCachingProvider<P> {
    /// As [`CachingProvider`]'s: the key drawn here lives in this future
    /// across the wrap's `.await`, so it is copied out and zeroized where it
    /// lies, not moved.
    async fn fresh(&self, request: DataKeyRequest<'_>) -> Result<(DataKey, WrappedKey), ProviderError> {
        if let Some(pair) = self.inner.generate_data_key_async(request).await? {
            return Ok(pair);
        }
        let dek = new_key(self.inner.provider_id())?;
        let wrapped = self.inner.wrap_async(&dek, request.binding()).await?;
        Ok((dek.duplicate(), wrapped))
    }
}

/// See [`CachingProvider`]'s methods: the same behaviour.
impl<P: AsyncKeyEncryptionProvider> AsyncKeyEncryptionProvider for AsyncCachingProvider<P> {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        self.inner.wrap_async(dek, binding)
    }

    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(async move {
            let miss = match self.core.open_lookup(wrapped, binding) {
                Lookup::Hit(dek) => return Ok(dek),
                Lookup::Miss(miss) => miss,
            };
            let dek = self.inner.unwrap_async(wrapped, binding).await?;
            self.core.keep_opened(miss, &dek);
            Ok(dek)
        })
    }

    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        Box::pin(async move {
            let Some(len) = self.core.seal_len(&request) else {
                return self.inner.generate_data_key_async(request).await;
            };
            let miss = match self.core.seal_lookup(request.binding(), len) {
                Lookup::Hit(pair) => return Ok(Some(pair)),
                Lookup::Miss(miss) => miss,
            };
            let pair = self.fresh(request).await?;
            self.core.keep_sealed(miss, &pair, &self.inner);
            Ok(Some(pair))
        })
    }

    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        self.inner.rewrap_async(wrapped, binding)
    }
}
