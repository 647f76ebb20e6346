//! Capability handles: a provider that can only seal, only open, or only
//! rewrap, enforced by the type.
//!
//! Each handle holds its provider privately and is not a provider itself
//! (it implements [`ProviderIdentity`] only), so it cannot be passed where
//! a provider is expected, and nothing returns the provider. What it can
//! do is what its methods do: a [`SealOnly`] builds [`Sealer`]s (which
//! never unwrap and never hand their providers back) and wraps keys; an
//! [`OpenOnly`] builds [`Opener`]s and unwraps; a [`RewrapOnly`] rewraps
//! envelopes and wrapped keys onto the same provider, without ever
//! releasing a data key or plaintext.
//!
//! One generic type per capability serves sync and async providers: the
//! methods for sync providers need `P: KeyEncryptionProvider`, the `async_`
//! / `_async` ones `P: AsyncKeyEncryptionProvider` (every sync provider is
//! one too).

use alloc::vec::Vec;
use core::fmt;

use crate::context::{Binding, EncryptionContext};
use crate::error::{Error, ProviderError};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef};
use crate::open::{AsyncOpener, Opener};
use crate::provider::{AsyncKeyEncryptionProvider, DataKeyRequest, KeyEncryptionProvider, ProviderIdentity};
use crate::rewrap::{AsyncRewrapper, NewHeader, Rewrapper};
use crate::seal::{AsyncSealer, Sealer};

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<P> {
            inner: P,
        }

        impl<P: ProviderIdentity> $name<P> {
            /// A handle on `provider` (often an `Arc` of a provider shared
            /// with other handles, or a [`Layered`](super::Layered) one).
            pub fn new(provider: P) -> Self {
                Self { inner: provider }
            }
        }

        impl<P: ProviderIdentity> ProviderIdentity for $name<P> {
            fn provider_id(&self) -> &str {
                self.inner.provider_id()
            }

            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
                self.inner.matches(wrapped)
            }
        }

        impl<P: ProviderIdentity> fmt::Debug for $name<P> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.inner).finish()
            }
        }
    };
}

handle!(
    /// A provider that can only seal: wrap data keys and generate them.
    ///
    /// Build sealers with [`sealer`](Self::sealer) (sync providers) or
    /// [`async_sealer`](Self::async_sealer) (async ones), or add it to a
    /// sealer of other providers with [`add_to`](Self::add_to). A
    /// [`Sealer`] never unwraps and exposes no provider, so nothing reached
    /// from this handle can open an envelope.
    ///
    /// ```
    /// # fn main() -> Result<(), lockbox::Error> {
    /// use lockbox::access::SealOnly;
    /// use lockbox::{EncryptionContext, LocalKek};
    /// let recovery = LocalKek::generate()?;
    /// let kek = SealOnly::new(LocalKek::generate()?);
    /// let ctx = EncryptionContext::new();
    /// // Also wrap under a recovery key: either opens it.
    /// let envelope = kek.sealer().also_wrap_with(&recovery).seal(b"x", &ctx)?;
    /// assert_eq!(lockbox::open(&recovery, &envelope, &ctx)?, b"x");
    /// # Ok(()) }
    /// ```
    SealOnly
);

handle!(
    /// A provider that can only open: unwrap data keys.
    ///
    /// Build openers with [`opener`](Self::opener) or
    /// [`async_opener`](Self::async_opener), or add it to an opener with
    /// [`add_to`](Self::add_to). An [`Opener`] never wraps.
    OpenOnly
);

handle!(
    /// A provider that can only rewrap: move envelopes and wrapped keys to
    /// its current key (a keyring's primary version, a KMS key's latest
    /// version), as Vault Transit's `rewrap` permission does.
    ///
    /// The data key is unwrapped inside lockbox to recompute the header
    /// tag, wrapped again by the **same** provider, and zeroized; the holder
    /// sees neither it nor any plaintext, and cannot choose another
    /// provider to wrap with (which would let it read the envelopes). Other
    /// providers' entries are kept ([`Keep::Unmatched`](crate::Keep::Unmatched)).
    RewrapOnly
);

impl<P: KeyEncryptionProvider> SealOnly<P> {
    /// A sealer wrapping with this provider (default options).
    pub fn sealer(&self) -> Sealer<'_> {
        Sealer::new(&self.inner)
    }

    /// `sealer`, also wrapping each data key with this provider.
    pub fn add_to<'p>(&'p self, sealer: Sealer<'p>) -> Sealer<'p> {
        sealer.also_wrap_with(&self.inner)
    }

    /// Wraps `dek` bound to `binding` (for data keys kept outside envelopes).
    pub fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap(dek, binding)
    }

    /// Provider-side data-key generation, if offered.
    pub fn generate_data_key(
        &self,
        request: DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        self.inner.generate_data_key(request)
    }
}

impl<P: AsyncKeyEncryptionProvider> SealOnly<P> {
    /// An async sealer wrapping with this provider (default options).
    pub fn async_sealer(&self) -> AsyncSealer<'_> {
        AsyncSealer::new(&self.inner)
    }

    /// `async_sealer`, also wrapping each data key with this provider.
    pub fn add_to_async<'p>(&'p self, sealer: AsyncSealer<'p>) -> AsyncSealer<'p> {
        sealer.also_wrap_with(&self.inner)
    }

    /// [`wrap`](Self::wrap), awaited.
    pub async fn wrap_async(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap_async(dek, binding).await
    }

    /// [`generate_data_key`](Self::generate_data_key), awaited.
    pub async fn generate_data_key_async(
        &self,
        request: DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        self.inner.generate_data_key_async(request).await
    }
}

impl<P: KeyEncryptionProvider> OpenOnly<P> {
    /// An opener unwrapping with this provider (default options).
    pub fn opener(&self) -> Opener<'_> {
        Opener::new(&self.inner)
    }

    /// `opener`, also trying this provider.
    pub fn add_to<'p>(&'p self, opener: Opener<'p>) -> Opener<'p> {
        opener.also_try(&self.inner)
    }

    /// Unwraps a data key kept outside an envelope.
    pub fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.inner.unwrap(wrapped, binding)
    }
}

impl<P: AsyncKeyEncryptionProvider> OpenOnly<P> {
    /// An async opener unwrapping with this provider (default options).
    pub fn async_opener(&self) -> AsyncOpener<'_> {
        AsyncOpener::new(&self.inner)
    }

    /// `async_opener`, also trying this provider.
    pub fn add_to_async<'p>(&'p self, opener: AsyncOpener<'p>) -> AsyncOpener<'p> {
        opener.also_try(&self.inner)
    }

    /// [`unwrap`](Self::unwrap), awaited. The data key is produced by the
    /// step that returns it (never kept in this future's state).
    pub async fn unwrap_async(
        &self,
        wrapped: WrappedKeyRef<'_>,
        binding: Binding<'_>,
    ) -> Result<DataKey, ProviderError> {
        self.inner.unwrap_async(wrapped, binding).await
    }
}

impl<P: KeyEncryptionProvider> RewrapOnly<P> {
    /// Rewraps `envelope` onto this provider's current key: see
    /// [`Rewrapper::rewrap`]. The payload is copied unchanged.
    pub fn rewrap(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        Rewrapper::new(&self.inner).rewrap(envelope, context)
    }

    /// Rewraps the header at the start of `header_prefix`: see
    /// [`Rewrapper::rewrap_header`].
    pub fn rewrap_header(&self, header_prefix: &[u8], context: &EncryptionContext) -> Result<NewHeader, Error> {
        Rewrapper::new(&self.inner).rewrap_header(header_prefix, context)
    }

    /// Server-side rewrap of a wrapped key kept outside an envelope, if the
    /// provider offers it ([`KeyEncryptionProvider::rewrap`]).
    pub fn rewrap_key(
        &self,
        wrapped: WrappedKeyRef<'_>,
        binding: Binding<'_>,
    ) -> Result<Option<WrappedKey>, ProviderError> {
        self.inner.rewrap(wrapped, binding)
    }
}

impl<P: AsyncKeyEncryptionProvider> RewrapOnly<P> {
    /// [`rewrap`](Self::rewrap) over an async provider.
    pub async fn rewrap_async(&self, envelope: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, Error> {
        AsyncRewrapper::new(&self.inner).rewrap(envelope, context).await
    }

    /// [`rewrap_header`](Self::rewrap_header) over an async provider.
    pub async fn rewrap_header_async(
        &self,
        header_prefix: &[u8],
        context: &EncryptionContext,
    ) -> Result<NewHeader, Error> {
        AsyncRewrapper::new(&self.inner)
            .rewrap_header(header_prefix, context)
            .await
    }

    /// [`rewrap_key`](Self::rewrap_key), awaited.
    pub async fn rewrap_key_async(
        &self,
        wrapped: WrappedKeyRef<'_>,
        binding: Binding<'_>,
    ) -> Result<Option<WrappedKey>, ProviderError> {
        self.inner.rewrap_async(wrapped, binding).await
    }
}
