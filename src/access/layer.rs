//! The layer mechanism: a sans-IO hook ([`Layer`]) and its two shells,
//! [`Layered`] over a sync provider and [`AsyncLayered`] over an async one.
//! The shells differ only in `.await`; what happens around a call is
//! written once, in [`begin`] and [`finish`].

use alloc::boxed::Box;
use core::fmt;

use super::Operation;
use crate::context::Binding;
use crate::error::ProviderError;
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef};
use crate::provider::{AsyncKeyEncryptionProvider, BoxFuture, DataKeyRequest, KeyEncryptionProvider, ProviderIdentity};

/// One provider call, as a [`Layer`] sees it: never a data key.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// What is asked.
    pub operation: Operation,
    /// The id of the provider behind the layer.
    pub provider_id: &'a str,
    /// The binding (suite and whole encryption context) the call is for.
    pub binding: Binding<'a>,
    /// The wrapped key to unwrap or rewrap (`None` for wrap and generate).
    pub wrapped: Option<WrappedKeyRef<'a>>,
    /// For generation: the plaintext length, when the sealer knows it.
    pub plaintext_len: Option<u64>,
}

impl<'a> Call<'a> {
    fn new(operation: Operation, provider_id: &'a str, binding: Binding<'a>) -> Self {
        Self {
            operation,
            provider_id,
            binding,
            wrapped: None,
            plaintext_len: None,
        }
    }

    fn on(mut self, wrapped: WrappedKeyRef<'a>) -> Self {
        self.wrapped = Some(wrapped);
        self
    }
}

/// How a call ended, as [`Layer::observe`] sees it: never a data key.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Outcome<'a> {
    /// A wrap, generation or rewrap produced this wrapped key.
    Wrapped(&'a WrappedKey),
    /// An unwrap produced a data key (not shown).
    Unwrapped,
    /// Generation or rewrap is not offered (the provider answered `None`).
    NotOffered,
    /// The call failed, or a layer refused it.
    Failed(&'a ProviderError),
}

/// A hook around every call of a provider, written without I/O so that one
/// implementation serves [`Layered`] (sync providers) and [`AsyncLayered`]
/// (async providers). [`Grant`](super::Grant) and
/// [`Audit`](crate::audit::Audit) are layers; so can your own be (rate
/// limits, metrics).
///
/// For each call the shell runs [`check`](Self::check); if it refuses, the
/// shell calls [`observe`](Self::observe) with that refusal and returns it
/// without calling the inner provider. Otherwise the shell calls the inner
/// provider and then [`observe`](Self::observe) with the outcome; if
/// `observe` fails, a successful result is dropped (a data key zeroized)
/// and its error returned instead, so a layer can refuse to release what
/// it could not record.
///
/// Layers never see key bytes: a [`Call`] has the binding and the wrapped
/// key, an [`Outcome`] the new wrapped key or the failure.
pub trait Layer: Send + Sync + fmt::Debug + 'static {
    /// Decides whether `call` may go to the inner provider. The default
    /// allows everything.
    fn check(&self, call: &Call<'_>) -> Result<(), ProviderError> {
        let _ = call;
        Ok(())
    }

    /// Sees how `call` ended. An error replaces a successful result. The
    /// default does nothing.
    fn observe(&self, call: &Call<'_>, outcome: Outcome<'_>) -> Result<(), ProviderError> {
        let _ = (call, outcome);
        Ok(())
    }
}

/// The results a shell hands through, and what a layer is shown of them.
trait Observed {
    fn outcome(&self) -> Outcome<'_>;
}

impl Observed for WrappedKey {
    fn outcome(&self) -> Outcome<'_> {
        Outcome::Wrapped(self)
    }
}

impl Observed for DataKey {
    fn outcome(&self) -> Outcome<'_> {
        Outcome::Unwrapped
    }
}

impl Observed for Option<WrappedKey> {
    fn outcome(&self) -> Outcome<'_> {
        self.as_ref().map_or(Outcome::NotOffered, Outcome::Wrapped)
    }
}

impl Observed for Option<(DataKey, WrappedKey)> {
    fn outcome(&self) -> Outcome<'_> {
        self.as_ref().map_or(Outcome::NotOffered, |(_, w)| Outcome::Wrapped(w))
    }
}

/// Before the inner call: the layer's check, its refusal observed.
fn begin<L: Layer + ?Sized>(layer: &L, call: &Call<'_>) -> Result<(), ProviderError> {
    layer.check(call).inspect_err(|e| {
        // The refusal stands whatever `observe` says.
        let _ = layer.observe(call, Outcome::Failed(e));
    })
}

/// After the inner call: the outcome observed; a failing `observe` replaces
/// a success (whose data key, if any, is dropped and zeroized here).
fn finish<L: Layer + ?Sized, T: Observed>(
    layer: &L,
    call: &Call<'_>,
    result: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    let seen = match &result {
        Ok(v) => layer.observe(call, v.outcome()),
        Err(e) => layer.observe(call, Outcome::Failed(e)),
    };
    match (result, seen) {
        (Ok(_), Err(e)) => Err(e),
        (result, _) => result,
    }
}

fn generate_call<'a>(provider_id: &'a str, request: &DataKeyRequest<'a>) -> Call<'a> {
    let mut call = Call::new(Operation::GenerateDataKey, provider_id, request.binding());
    call.plaintext_len = request.plaintext_len();
    call
}

/// A sync provider behind a [`Layer`]: itself a
/// [`KeyEncryptionProvider`] (and so an async one too) with the inner
/// provider's id and `matches`, whose envelopes are the inner provider's.
///
/// There is deliberately no way to reach the inner provider through it: a
/// [`Grant`](super::Grant) would be pointless if there were.
pub struct Layered<P, L> {
    inner: P,
    layer: L,
}

/// An async provider behind a [`Layer`]: the async twin of [`Layered`], for
/// providers that implement only
/// [`AsyncKeyEncryptionProvider`] (AWS KMS, OpenBao Transit). Same
/// behaviour; only the inner calls are awaited. No data key is kept in its
/// futures across an `.await`.
pub struct AsyncLayered<P, L> {
    inner: P,
    layer: L,
}

/// What the two shells share that does not call the inner provider.
macro_rules! shell {
    ($shell:ident, $bound:ident) => {
        impl<P: $bound, L: Layer> $shell<P, L> {
            /// `inner` behind `layer`.
            pub fn new(inner: P, layer: L) -> Self {
                Self { inner, layer }
            }

            /// The layer (a grant's use count, an audit's settings).
            pub fn layer(&self) -> &L {
                &self.layer
            }
        }

        impl<P: $bound, L: Layer> ProviderIdentity for $shell<P, L> {
            fn provider_id(&self) -> &str {
                self.inner.provider_id()
            }

            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
                self.inner.matches(wrapped)
            }
        }

        impl<P: $bound, L: Layer> fmt::Debug for $shell<P, L> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($shell))
                    .field("inner", &self.inner)
                    .field("layer", &self.layer)
                    .finish()
            }
        }
    };
}

shell!(Layered, KeyEncryptionProvider);
shell!(AsyncLayered, AsyncKeyEncryptionProvider);

impl<P: KeyEncryptionProvider, L: Layer> KeyEncryptionProvider for Layered<P, L> {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let call = Call::new(Operation::Wrap, self.inner.provider_id(), binding);
        begin(&self.layer, &call)?;
        finish(&self.layer, &call, self.inner.wrap(dek, binding))
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let call = Call::new(Operation::Unwrap, self.inner.provider_id(), binding).on(wrapped);
        begin(&self.layer, &call)?;
        finish(&self.layer, &call, self.inner.unwrap(wrapped, binding))
    }

    fn generate_data_key(&self, request: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let call = generate_call(self.inner.provider_id(), &request);
        begin(&self.layer, &call)?;
        finish(&self.layer, &call, self.inner.generate_data_key(request))
    }

    fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
        let call = Call::new(Operation::Rewrap, self.inner.provider_id(), binding).on(wrapped);
        begin(&self.layer, &call)?;
        finish(&self.layer, &call, self.inner.rewrap(wrapped, binding))
    }
}

// Each future checks, awaits the inner call and hands its result straight
// back: no data key lives across a suspension point (nor in the future's
// heap state).
impl<P: AsyncKeyEncryptionProvider, L: Layer> AsyncKeyEncryptionProvider for AsyncLayered<P, L> {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        let call = Call::new(Operation::Wrap, self.inner.provider_id(), binding);
        Box::pin(async move {
            begin(&self.layer, &call)?;
            finish(&self.layer, &call, self.inner.wrap_async(dek, binding).await)
        })
    }

    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        let call = Call::new(Operation::Unwrap, self.inner.provider_id(), binding).on(wrapped);
        Box::pin(async move {
            begin(&self.layer, &call)?;
            finish(&self.layer, &call, self.inner.unwrap_async(wrapped, binding).await)
        })
    }

    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        let call = generate_call(self.inner.provider_id(), &request);
        Box::pin(async move {
            begin(&self.layer, &call)?;
            finish(&self.layer, &call, self.inner.generate_data_key_async(request).await)
        })
    }

    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        let call = Call::new(Operation::Rewrap, self.inner.provider_id(), binding).on(wrapped);
        Box::pin(async move {
            begin(&self.layer, &call)?;
            finish(&self.layer, &call, self.inner.rewrap_async(wrapped, binding).await)
        })
    }
}
