//! The key-encryption provider joint: the traits every key store implements,
//! and what an implementation needs from lockbox to be as good as the ones
//! lockbox ships.
//!
//! A provider outside this crate (Google Cloud KMS, Azure Key Vault, an
//! in-house key store) uses the same public items the in-tree providers use:
//!
//! - [`KeyEncryptionProvider`] (blocking) or [`AsyncKeyEncryptionProvider`]
//!   (network services), both over [`ProviderIdentity`];
//! - [`DataKeyRequest`] for provider-side data-key generation;
//! - [`hazmat::data_key_with`](crate::hazmat::data_key_with) to build a
//!   [`DataKey`] in place from a backend's output, with no copy left behind;
//! - [`fill_random`] for nonces and IVs from the OS CSPRNG;
//! - [`WrappedKey`] and [`WrappedKeyRef::new`] / [`WrappedKeyRef::is_for`];
//! - [`net::require_tls_or_loopback`] for endpoint policy;
//! - the conformance suite in the `lockbox-testing` crate.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt::Debug;
use core::future::Future;
use core::pin::Pin;
use core::task::Poll;

use crate::context::Binding;
use crate::error::{Error, ProviderError};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef};
pub use crate::pq::PostQuantum;

pub mod net;

/// Fills `buf` from the operating system's CSPRNG (`getrandom`): for the
/// nonces, IVs and salts a provider draws. The only failure is the OS
/// generator failing ([`Error::Random`]).
pub fn fill_random(buf: &mut [u8]) -> Result<(), Error> {
    crate::keys::os_random(buf)
}

/// What a sealer asks a provider for when it offers provider-side data-key
/// generation ([`KeyEncryptionProvider::generate_data_key`]): the binding the
/// new key's wrap must be bound to, and what is known about its use.
///
/// Like the AWS Encryption SDK's materials request, it is a struct so that new
/// hints are new fields, not new trait methods: it is `#[non_exhaustive]`,
/// built with [`new`](Self::new) and the `with_*` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataKeyRequest<'a> {
    binding: Binding<'a>,
    plaintext_len: Option<u64>,
}

impl<'a> DataKeyRequest<'a> {
    /// A request for a data key bound to `binding`, nothing else known.
    pub fn new(binding: Binding<'a>) -> Self {
        Self {
            binding,
            plaintext_len: None,
        }
    }

    /// The length of the plaintext the key will seal, when known in advance
    /// (a one-shot seal); a streaming seal leaves it unknown.
    #[must_use]
    pub fn with_plaintext_len(mut self, len: u64) -> Self {
        self.plaintext_len = Some(len);
        self
    }

    /// The binding the wrapped key must be bound to.
    pub fn binding(&self) -> Binding<'a> {
        self.binding
    }

    /// The plaintext length, if known (`None` when streaming). A data-key
    /// cache ([`CachingProvider`](crate::cache::CachingProvider)) counts it
    /// against its byte limit.
    pub fn plaintext_len(&self) -> Option<u64> {
        self.plaintext_len
    }
}

/// Who a provider is and which wrapped keys it can open: shared by
/// [`KeyEncryptionProvider`] and [`AsyncKeyEncryptionProvider`], so a type that
/// is both (every sync provider is, through a blanket implementation) has one
/// `provider_id` and one `matches`.
pub trait ProviderIdentity: Send + Sync + Debug + 'static {
    /// A stable id for this kind of provider, recorded in every wrapped key it
    /// produces (for example `lockbox.local`, `aws-kms`). 1 to 64 bytes of
    /// visible ASCII.
    fn provider_id(&self) -> &str;

    /// Whether this provider should try to unwrap `wrapped`: the provider id
    /// and the key id must name a key this provider was configured with.
    ///
    /// There is deliberately no default. Matching on the provider id alone
    /// ("discovery") would let an envelope name any key, for example a KMS
    /// key an attacker controls and whose policy lets the caller decrypt:
    /// such an envelope, built entirely by the attacker, would open. A
    /// provider that offers discovery must make it an explicit opt-in.
    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool;

    /// Whether this provider's wraps resist an attacker with a quantum
    /// computer: [`PostQuantum::Yes`] for symmetric key-encryption keys and
    /// post-quantum KEMs, [`PostQuantum::No`] for classical public-key
    /// wraps (X25519, RSA, ECDH). Sealers and rewrappers refuse to mix `No`
    /// with `Yes` in one envelope unless told otherwise (see
    /// [`PostQuantum`]).
    ///
    /// Defaults to [`PostQuantum::Unknown`], which the mix rule ignores; a
    /// public-key provider **must** return `No` (or `Yes` for a post-quantum
    /// KEM), and a symmetric one should return `Yes`.
    fn post_quantum(&self) -> PostQuantum {
        PostQuantum::Unknown
    }
}

/// Wraps and unwraps data keys under a key-encryption key (KEK) it holds or
/// can reach: a local key, a keyring, an HSM, a cloud KMS.
///
/// Both [`wrap`](Self::wrap) and [`unwrap`](Self::unwrap) receive the
/// envelope's [`Binding`] (its suite and whole encryption context), and an
/// implementation **must** authenticate the wrapped key against it, so that a
/// wrapped key opens only under the context it was sealed with. The local
/// provider uses [`Binding::as_bytes`] as AEAD associated data; AWS KMS maps it
/// to an `EncryptionContext`. A provider that binds a map instead of the bytes
/// must include the suite (and should include the binding's label) as well as
/// every entry with its storage kind.
///
/// The trait is object-safe and `Send + Sync + Debug + 'static`: lockbox takes
/// providers as `&dyn KeyEncryptionProvider` (an `Arc<dyn ...>` derefs to one),
/// and there is no process-wide default. `Debug` must not print secrets.
///
/// Optional abilities are defaulted methods returning `Ok(None)` ("not offered"),
/// so adding one later is not a breaking change.
///
/// # Implementing
///
/// ```
/// use lockbox::{Binding, DataKey, KeyEncryptionProvider, ProviderError, ProviderIdentity, WrappedKey, WrappedKeyRef};
///
/// /// Delegates to a local KEK but reports its own provider id.
/// #[derive(Debug)]
/// struct Renamed(lockbox::LocalKek);
///
/// impl ProviderIdentity for Renamed {
///     fn provider_id(&self) -> &str { "example.renamed" }
///     fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
///         w.is_for("example.renamed", self.0.key_id().as_str())
///     }
/// }
///
/// impl KeyEncryptionProvider for Renamed {
///     fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
///         let w = self.0.wrap(dek, binding)?;
///         WrappedKey::new(self.provider_id(), w.key_id().clone(), w.key_version(), w.bytes().to_vec())
///             .map_err(|e| ProviderError::new(lockbox::ProviderErrorKind::Other, "example.renamed").with_source(e))
///     }
///     fn unwrap(&self, w: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
///         let inner = WrappedKeyRef::new(lockbox::LOCAL_PROVIDER_ID, w.key_id(), w.key_version(), w.bytes())
///             .map_err(|e| ProviderError::new(lockbox::ProviderErrorKind::Other, "example.renamed").with_source(e))?;
///         self.0.unwrap(inner, binding)
///     }
/// }
/// # let p = Renamed(lockbox::LocalKek::generate().unwrap());
/// # let ctx = lockbox::EncryptionContext::new();
/// # let env = lockbox::seal(&p, b"hi", &ctx).unwrap();
/// # assert_eq!(lockbox::open(&p, &env, &ctx).unwrap(), b"hi");
/// ```
pub trait KeyEncryptionProvider: ProviderIdentity {
    /// Wraps `dek`, authenticated and bound to `binding`.
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError>;

    /// Unwraps `wrapped`, which must have been wrapped under the same binding.
    /// A wrong key, wrong binding or tampered bytes must fail with
    /// [`ProviderErrorKind::Authentication`](crate::ProviderErrorKind::Authentication).
    ///
    /// Whichever key an unwrap yields, lockbox accepts it only if it matches
    /// the envelope's key commitment and then authenticates the whole header
    /// (wrapped keys included) with it.
    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError>;

    /// Provider-side data-key generation (as KMS `GenerateDataKey` does):
    /// returns a fresh data key and its wrapped form, bound to
    /// `request.binding()`, in one call, or `Ok(None)` if the provider does
    /// not offer it, in which case lockbox draws the key from the OS CSPRNG
    /// and calls [`wrap`](Self::wrap). Sealers ask the first provider only.
    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let _ = request;
        Ok(None)
    }

    /// Server-side rewrap (as KMS `ReEncrypt` does): re-wraps `wrapped` under
    /// the provider's current key without handing the data key to the caller,
    /// or `Ok(None)` if not offered (lockbox then unwraps and wraps). An
    /// envelope's header tag covers its wrapped keys and is keyed from the data
    /// key, so rewriting an envelope's header still needs the data key; this
    /// method serves wrapped keys kept outside envelopes (cached or stored data
    /// keys) and providers that rotate their own keys.
    fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
        let _ = (wrapped, binding);
        Ok(None)
    }
}

macro_rules! forward_provider {
    ($($ty:ty),*) => {$(
        impl<P: ProviderIdentity + ?Sized> ProviderIdentity for $ty {
            fn provider_id(&self) -> &str { (**self).provider_id() }
            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool { (**self).matches(wrapped) }
            fn post_quantum(&self) -> PostQuantum { (**self).post_quantum() }
        }
        impl<P: KeyEncryptionProvider + ?Sized> KeyEncryptionProvider for $ty {
            fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
                (**self).wrap(dek, binding)
            }
            fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
                (**self).unwrap(wrapped, binding)
            }
            fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
                (**self).generate_data_key(request)
            }
            fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
                (**self).rewrap(wrapped, binding)
            }
        }
    )*};
}

forward_provider!(Arc<P>, Box<P>);

/// A boxed, `Send` future, as returned by [`AsyncKeyEncryptionProvider`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The async twin of [`KeyEncryptionProvider`], for providers that talk to a
/// network service (KMS, Vault) without blocking a thread.
///
/// Every [`KeyEncryptionProvider`] is also an `AsyncKeyEncryptionProvider`
/// through a blanket implementation whose futures are ready at once (so a sync
/// provider that blocks on I/O blocks the task polling it: run such providers
/// on a blocking pool). lockbox never calls `block_on`; an async-only provider
/// implements [`ProviderIdentity`] and this trait alone. Same contract as the
/// sync trait: bind every wrap to the [`Binding`]. The methods carry an
/// `_async` suffix so that both traits can be in scope without ambiguity.
///
/// The returned futures live on the heap: an implementation should produce a
/// [`DataKey`] in the step that returns it, not keep it in the future's state
/// across an `.await` (moving it out would leave an unzeroized copy there).
pub trait AsyncKeyEncryptionProvider: ProviderIdentity {
    /// See [`KeyEncryptionProvider::wrap`].
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>>;

    /// See [`KeyEncryptionProvider::unwrap`].
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>>;

    /// See [`KeyEncryptionProvider::generate_data_key`].
    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        let _ = request;
        Box::pin(core::future::ready(Ok(None)))
    }

    /// See [`KeyEncryptionProvider::rewrap`].
    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        let _ = (wrapped, binding);
        Box::pin(core::future::ready(Ok(None)))
    }
}

// The futures compute their result when polled and hand it straight back:
// `core::future::ready(value)` would keep the value (a data key, on unwrap and
// generate) inside the boxed future, and moving it out would leave a copy in
// the heap block that is freed without being zeroized.
impl<T: KeyEncryptionProvider + ?Sized> AsyncKeyEncryptionProvider for T {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(core::future::poll_fn(move |_| Poll::Ready(self.wrap(dek, binding))))
    }
    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.unwrap(wrapped, binding))
        }))
    }
    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.generate_data_key(request))
        }))
    }
    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        Box::pin(core::future::poll_fn(move |_| {
            Poll::Ready(self.rewrap(wrapped, binding))
        }))
    }
}
