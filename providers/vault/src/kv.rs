//! Vault / OpenBao KV version 2 as a source of secrets (feature `kv`): a
//! local KEK, a recipient identity or an application's secrets, read by
//! path and **pinned version** into lockbox's secret types (zeroized on
//! drop, redacted in `Debug`).
//!
//! Same transport and rules as [`VaultTransit`](crate::VaultTransit): the
//! address must be `https://` or loopback `http://`; redirects are not
//! followed; the token is sent in a header marked sensitive and never
//! printed; the server's error is the [`source`](std::error::Error::source)
//! of every [`ProviderError`] (provider id [`VAULT_KV_ID`]), as a
//! [`VaultApiError`](crate::VaultApiError). The response body is kept in a
//! buffer zeroized on drop and the secret's data is parsed by lockbox's
//! strict JSON parser (duplicate keys refused) into zeroized buffers; the
//! HTTP layer's own buffers are beyond lockbox's control.
//!
//! Give the token `read` on `<mount>/data/<path>` only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox::secrecy::{ExposeSecret, SecretString};
//! use lockbox_vault::kv::{KvVersion, VaultKv, VaultKvConfig};
//!
//! let kv = VaultKv::new(VaultKvConfig::new("https://vault.internal:8200", SecretString::from("s.token")))?;
//! // Version 3 exactly, not whatever was written since.
//! let kek = kv.field("app/keys", "kek", KvVersion::Pinned(3)).await?.local_kek()?;
//! let (secrets, version) = kv.read("app/db", KvVersion::Latest).await?;
//! let password = secrets.require("password")?;
//! # let _ = (kek, password.expose_secret(), version);
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::secrets::{SecretValue, Secrets};
use lockbox::{Error, ProviderError, ProviderErrorKind};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{Op, build_client, check_connection, send_raw, valid_key_name};

/// Provider id of the errors of [`VaultKv`].
pub const VAULT_KV_ID: &str = "vault-kv";

/// Which version of a KV secret to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvVersion {
    /// The newest version (moves whenever the secret is written).
    Latest,
    /// Exactly this version (1 or more): a repeatable read.
    Pinned(u32),
}

/// Settings for [`VaultKv`]. `Debug` never prints the token.
#[derive(Clone)]
pub struct VaultKvConfig {
    address: String,
    token: SecretString,
    mount: String,
    namespace: Option<String>,
    timeout: Duration,
    ca_pem: Option<Vec<u8>>,
}

impl VaultKvConfig {
    /// The server at `address` with `token`; mount `secret` (the KV v2
    /// engine's usual path), 30 s per request.
    pub fn new(address: impl Into<String>, token: SecretString) -> Self {
        Self {
            address: address.into(),
            token,
            mount: String::from("secret"),
            namespace: None,
            timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }

    /// The path the KV version 2 engine is mounted at.
    #[must_use]
    pub fn mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into();
        self
    }

    /// A namespace, sent as `X-Vault-Namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Timeout for each request (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts only the CA certificates in this PEM bundle.
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }
}

impl fmt::Debug for VaultKvConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKvConfig")
            .field("address", &self.address)
            .field("token", &"[REDACTED]")
            .field("mount", &self.mount)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A KV version 2 client. Cheap to clone; `Debug` shows the address and
/// mount, never the token.
#[derive(Clone)]
pub struct VaultKv {
    http: reqwest::Client,
    /// `<address>/v1/<mount>/data`.
    base: String,
    token: SecretString,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Read<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    metadata: Metadata,
}

#[derive(Deserialize)]
struct Metadata {
    version: u32,
    #[serde(default)]
    destroyed: bool,
    #[serde(default)]
    deletion_time: String,
}

fn err(kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, VAULT_KV_ID)
}

impl VaultKv {
    /// A client (no request is made). Fails with [`Error::InvalidArgument`]
    /// for an address that is neither `https://` nor loopback `http://`, a
    /// bad mount, token or namespace, or an unusable CA bundle.
    pub fn new(config: VaultKvConfig) -> Result<Self, Error> {
        lockbox::provider::net::require_tls_or_loopback(&config.address)?;
        let mount = check_connection(&config.mount, &config.token, config.namespace.as_deref())?;
        let http = build_client(config.timeout, config.ca_pem.as_deref())?;
        let base = format!("{}/v1/{}/data", config.address.trim_end_matches('/'), mount);
        Ok(Self {
            http,
            base,
            token: config.token,
            namespace: config.namespace,
        })
    }

    /// Reads the secret at `path` (segments of `A-Z a-z 0-9 _ - .`) at
    /// `version`: every field, as [`Secrets`] (a string field's text, or the
    /// JSON text of any other value), and the version read. A
    /// [`KvVersion::Pinned`] read must come back with that version.
    ///
    /// Errors ([`ProviderError`], the server's [`VaultApiError`](crate::VaultApiError)
    /// as source): no such path or version, or a deleted or destroyed one
    /// ([`KeyNotFound`](ProviderErrorKind::KeyNotFound)), a refused token
    /// ([`PermissionDenied`](ProviderErrorKind::PermissionDenied)), an
    /// unreachable or sealed server ([`Unavailable`](ProviderErrorKind::Unavailable)).
    pub async fn read(&self, path: &str, version: KvVersion) -> Result<(Secrets, u32), ProviderError> {
        if path.is_empty() || !path.split('/').all(valid_key_name) {
            return Err(err(ProviderErrorKind::Other)
                .with_source(Error::invalid_argument("KV path must be segments of A-Z a-z 0-9 _ - .")));
        }
        let mut request = self.http.get(format!("{}/{path}", self.base));
        if let KvVersion::Pinned(v) = version {
            request = request.query(&[("version", v)]);
        }
        let body = send_raw(
            &self.token,
            self.namespace.as_deref(),
            request,
            Op::ReadSecret,
            VAULT_KV_ID,
        )
        .await?;
        let read: Read<'_> = serde_json::from_slice(&body).map_err(|e| err(ProviderErrorKind::Other).with_source(e))?;
        let meta = &read.data.metadata;
        if meta.destroyed || !meta.deletion_time.is_empty() {
            return Err(err(ProviderErrorKind::KeyNotFound));
        }
        if let KvVersion::Pinned(v) = version
            && v != meta.version
        {
            return Err(err(ProviderErrorKind::Other));
        }
        let secrets = Secrets::from_json_object(read.data.data.get())
            .map_err(|e| err(ProviderErrorKind::Other).with_source(e))?;
        Ok((secrets, meta.version))
    }

    /// One field of the secret at `path`, as a [`SecretValue`] named
    /// `path#field` at the version read: turn it into a KEK
    /// ([`local_kek`](SecretValue::local_kek)), an identity
    /// ([`parse`](SecretValue::parse)), ...
    pub async fn field(&self, path: &str, field: &str, version: KvVersion) -> Result<SecretValue, ProviderError> {
        let (secrets, read) = self.read(path, version).await?;
        let value = secrets.get(field).ok_or_else(|| err(ProviderErrorKind::KeyNotFound))?;
        Ok(SecretValue::from_text(
            format!("{path}#{field}"),
            read.to_string(),
            SecretString::from(value.expose_secret()),
        ))
    }
}

impl fmt::Debug for VaultKv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKv")
            .field("base", &self.base)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}
