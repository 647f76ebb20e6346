//! The keyring as a key-encryption provider, and its migration view: both
//! are one [`View`] of a version table, which differ only in whether
//! compromised versions unwrap and in the audit action of an unwrap.

use alloc::sync::Arc;
use core::fmt;

use super::kek::VersionKey;
use super::{
    AuditAction, AuditEvent, AuditSink, KEYRING_PROVIDER_ID, KeyState, Keyring, KeyringError, KeyringEvent, Table,
};
use crate::context::Binding;
use crate::error::{ProviderError, ProviderErrorKind};
use crate::keys::{DataKey, KeyVersion, WrappedKey, WrappedKeyRef};
use crate::provider::{KeyEncryptionProvider, ProviderIdentity};

fn perr(kind: ProviderErrorKind, e: KeyringError) -> (ProviderErrorKind, KeyringError) {
    (kind, e)
}

impl Table {
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.is_for(KEYRING_PROVIDER_ID, self.id.as_str())
    }

    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, (ProviderErrorKind, KeyringError)> {
        let v = KeyVersion(self.primary);
        let key = self
            .entries
            .get(&self.primary)
            .and_then(|e| e.key.as_ref())
            .ok_or_else(|| perr(ProviderErrorKind::KeyNotFound, KeyringError::UnknownVersion(v)))?;
        let bytes = key
            .wrap(dek, binding.as_bytes())
            .map_err(|_| perr(ProviderErrorKind::Unavailable, KeyringError::WrapFailed(v)))?;
        WrappedKey::from_static(KEYRING_PROVIDER_ID, self.id.clone(), v, &bytes)
            .map_err(|_| perr(ProviderErrorKind::Other, KeyringError::WrapFailed(v)))
    }

    /// The key for an unwrap under `version`, or why there is none.
    /// `migration` also admits compromised versions.
    fn unwrap_key(
        &self,
        w: WrappedKeyRef<'_>,
        migration: bool,
    ) -> Result<&Arc<VersionKey>, (ProviderErrorKind, KeyringError)> {
        let version = w.key_version();
        let v = version.0;
        if !self.matches(w) {
            return Err(perr(
                ProviderErrorKind::KeyNotFound,
                KeyringError::NotThisKeyring(self.id.clone()),
            ));
        }
        let Some(e) = self.entries.get(&v) else {
            let missing = self.missing(v);
            let kind = if matches!(missing, KeyringError::Trimmed(_)) {
                ProviderErrorKind::KeyDestroyed
            } else {
                ProviderErrorKind::KeyNotFound
            };
            return Err(perr(kind, missing));
        };
        match e.state {
            KeyState::Destroyed { .. } => {
                return Err(perr(ProviderErrorKind::KeyDestroyed, KeyringError::Destroyed(version)));
            }
            KeyState::Disabled => return Err(perr(ProviderErrorKind::KeyDisabled, KeyringError::Disabled(version))),
            KeyState::ScheduledForDestruction { not_before } => {
                return Err(perr(
                    ProviderErrorKind::KeyDisabled,
                    KeyringError::ScheduledForDestruction { version, not_before },
                ));
            }
            KeyState::Enabled | KeyState::DecryptOnly => {}
        }
        if v < self.minimum {
            return Err(perr(
                ProviderErrorKind::KeyDisabled,
                KeyringError::BelowMinimum {
                    version,
                    minimum: KeyVersion(self.minimum),
                },
            ));
        }
        if e.compromised && !migration {
            return Err(perr(
                ProviderErrorKind::KeyCompromised,
                KeyringError::Compromised(version),
            ));
        }
        e.key
            .as_ref()
            .ok_or_else(|| perr(ProviderErrorKind::KeyDestroyed, KeyringError::Destroyed(version)))
    }

    fn unwrap(
        &self,
        w: WrappedKeyRef<'_>,
        binding: Binding<'_>,
        migration: bool,
    ) -> Result<DataKey, (ProviderErrorKind, KeyringError)> {
        let key = self.unwrap_key(w, migration)?;
        key.unwrap(w.bytes(), binding.as_bytes()).map_err(|_| {
            perr(
                ProviderErrorKind::Authentication,
                KeyringError::UnwrapFailed(w.key_version()),
            )
        })
    }
}

fn provider_error((kind, e): (ProviderErrorKind, KeyringError)) -> ProviderError {
    ProviderError::new(kind, KEYRING_PROVIDER_ID).with_source(e)
}

/// The provider behaviour of a version table, written once for [`Keyring`]
/// and [`MigrationProvider`]: every call is checked against the table and
/// reported to the audit sink.
struct View<'a> {
    table: &'a Table,
    audit: &'a dyn AuditSink,
    /// Compromised versions unwrap too, reported as
    /// [`AuditAction::MigrationUnwrap`].
    migration: bool,
}

impl View<'_> {
    fn emit<T>(
        &self,
        action: AuditAction,
        version: u32,
        binding: Binding<'_>,
        r: &Result<T, (ProviderErrorKind, KeyringError)>,
    ) {
        let mut ev = KeyringEvent::new(&self.table.id, action, Some(KeyVersion(version))).with_binding(binding);
        ev.error = r.as_ref().err().map(|(_, e)| e);
        let _ = self.audit.record(&AuditEvent::Keyring(ev));
    }

    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let r = self.table.wrap(dek, binding);
        self.emit(AuditAction::Wrap, self.table.primary, binding, &r);
        r.map_err(provider_error)
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let r = self.table.unwrap(wrapped, binding, self.migration);
        let action = if self.migration {
            AuditAction::MigrationUnwrap
        } else {
            AuditAction::Unwrap
        };
        self.emit(action, wrapped.key_version().0, binding, &r);
        r.map_err(provider_error)
    }

    fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<Option<WrappedKey>, ProviderError> {
        // The data key never leaves (and is zeroized on drop).
        let r = (self.table.unwrap(wrapped, binding, self.migration)).and_then(|dek| self.table.wrap(&dek, binding));
        let action = AuditAction::Rewrap {
            from: wrapped.key_version(),
        };
        self.emit(action, self.table.primary, binding, &r);
        r.map(Some).map_err(provider_error)
    }
}

impl Keyring {
    fn view(&self) -> View<'_> {
        View {
            table: &self.table,
            audit: &*self.audit,
            migration: false,
        }
    }
}

/// The keyring's migration view, from [`Keyring::migration_provider`]: wraps
/// with the primary and unwraps like the keyring, but also with compromised
/// versions. Hand it to rewrap / re-encrypt as the unwrapping side, and to
/// nothing else. Its unwraps reach the audit sink as
/// [`AuditAction::MigrationUnwrap`]; its [`rewrap`](KeyEncryptionProvider::rewrap)
/// accepts compromised versions too.
pub struct MigrationProvider {
    table: Table,
    audit: Arc<dyn AuditSink>,
}

impl MigrationProvider {
    pub(super) fn new(table: Table, audit: Arc<dyn AuditSink>) -> Self {
        Self { table, audit }
    }

    fn view(&self) -> View<'_> {
        View {
            table: &self.table,
            audit: &*self.audit,
            migration: true,
        }
    }
}

impl fmt::Debug for MigrationProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationProvider")
            .field("keyring", &self.table.id)
            .field("primary", &KeyVersion(self.table.primary))
            .finish_non_exhaustive()
    }
}

/// `Keyring` and `MigrationProvider` are providers through their [`View`].
/// A keyring's `rewrap` re-wraps a wrapped key kept outside an envelope (a
/// stored or cached data key) under the primary, with the same binding,
/// following the unwrap rules of the view; envelopes need
/// [`Rewrapper`](crate::Rewrapper) instead (their header tag must be
/// recomputed).
macro_rules! view_provider {
    ($($ty:ty),*) => {$(
        impl ProviderIdentity for $ty {
            fn provider_id(&self) -> &str {
                KEYRING_PROVIDER_ID
            }
            fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
                self.table.matches(wrapped)
            }
            /// AES-256-GCM under the version keys: symmetric.
            fn post_quantum(&self) -> crate::PostQuantum {
                crate::PostQuantum::Yes
            }
        }

        impl KeyEncryptionProvider for $ty {
            fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
                self.view().wrap(dek, binding)
            }
            fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
                self.view().unwrap(wrapped, binding)
            }
            fn rewrap(
                &self,
                wrapped: WrappedKeyRef<'_>,
                binding: Binding<'_>,
            ) -> Result<Option<WrappedKey>, ProviderError> {
                self.view().rewrap(wrapped, binding)
            }
        }
    )*};
}

view_provider!(Keyring, MigrationProvider);
