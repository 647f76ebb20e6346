//! HashiCorp Vault / OpenBao Transit as a key-encryption provider for
//! [`lockbox`] (the `lockbox-envelope` crate).
//!
//! [`VaultTransit`] wraps data keys with one named Transit key
//! (`aes256-gcm96` or `chacha20-poly1305`) over Transit's HTTP API with token
//! authentication:
//!
//! | lockbox | Transit |
//! |---|---|
//! | [`wrap`](AsyncKeyEncryptionProvider::wrap_async) | `POST <mount>/encrypt/<key>` |
//! | [`unwrap`](AsyncKeyEncryptionProvider::unwrap_async) | `POST <mount>/decrypt/<key>` |
//! | [`rewrap`](AsyncKeyEncryptionProvider::rewrap_async) | `POST <mount>/rewrap/<key>` ([`BindingMode::DerivedKeyContext`] only) |
//!
//! ## Binding
//!
//! The standard base64 of [`Binding::as_bytes`] goes to Transit in one of two
//! ways, chosen with [`VaultConfig::binding_mode`] and checked against the
//! key's settings by [`VaultTransit::connect`]:
//!
//! - [`BindingMode::DerivedKeyContext`] (the default): as the derivation
//!   `context` of a key created with `derived=true`. Transit derives a
//!   separate AEAD key from the context (HKDF-SHA256), so a wrapped key
//!   decrypts only under the binding it was made with. This is the default
//!   because it is the mode in which Transit's `rewrap` can work: `rewrap`
//!   accepts `context` but has no `associated_data` parameter (checked
//!   against OpenBao 2.7).
//! - [`BindingMode::AssociatedData`]: as AEAD `associated_data` with a key
//!   created without derivation. The binding is authenticated exactly as the
//!   local provider does it, but server-side rewrap is not possible, so
//!   [`rewrap_async`](AsyncKeyEncryptionProvider::rewrap_async) returns
//!   `Ok(None)` and lockbox unwraps and wraps instead.
//!
//! Convergent keys are refused: their encryption is deterministic.
//!
//! ## Wrapped key
//!
//! Provider id [`VAULT_PROVIDER_ID`] (`"vault-transit"`), key id the Transit
//! key name, key version the `N` of the `vault:vN:` prefix, bytes
//! `0x01 || <Transit ciphertext, ASCII>`; the leading byte versions this
//! layout. On unwrap the version recorded in the envelope must equal the one
//! in the ciphertext. [`matches`](ProviderIdentity::matches) compares the
//! provider id and key name exactly.
//!
//! ## Transport
//!
//! An HTTP client (`reqwest`) on rustls (ring backend, the platform's root
//! certificates, or only those of [`VaultConfig::ca_certificate_pem`]),
//! built by the provider and not part of its API. The address must be
//! `https://` or loopback `http://`; redirects are not followed (the token
//! would travel with them); the standard `HTTPS_PROXY` / `NO_PROXY`
//! variables apply. The token is a [`SecretString`]: it is sent in a header
//! marked sensitive and never printed by `Debug`.
//!
//! ## Token policy
//!
//! Give the token `update` on `<mount>/encrypt/<key>`, `<mount>/decrypt/<key>`
//! and `<mount>/rewrap/<key>`, and `read` on `<mount>/keys/<key>`, but **not**
//! `create` on the encrypt path: Transit creates a missing key on encrypt when
//! the token may, so a typo or a deleted key would otherwise silently become a
//! new key. [`VaultTransit::connect`] only reads the key, and fails with
//! [`KeyNotFound`](ProviderErrorKind::KeyNotFound) if it is missing.
//!
//! The provider is async only and needs a tokio runtime to be polled on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox::secrecy::SecretString;
//! use lockbox_vault::{VaultConfig, VaultTransit};
//! use lockbox::{AsyncKeyEncryptionProvider, BindingBuf, DataKey, EncryptionContext, Suite};
//!
//! let config = VaultConfig::new("https://vault.internal:8200", SecretString::from("s.token"), "lockbox");
//! let transit = VaultTransit::connect(config).await?;
//! let ctx = EncryptionContext::new().with("tenant", "acme")?;
//! let binding = BindingBuf::new(Suite::Aes256Gcm, &ctx);
//! let dek = DataKey::generate()?;
//! let wrapped = transit.wrap_async(&dek, binding.as_binding()).await?;
//! println!("wrapped under {} {}", wrapped.key_id(), wrapped.key_version());
//! # Ok(()) }
//! ```
//!
//! This crate is built on lockbox's public provider API only
//! ([`lockbox::provider`]); it passes the conformance suite of the
//! `lockbox-testing` crate against an OpenBao server.

#![forbid(unsafe_code)]

#[cfg(feature = "kv")]
pub mod kv;

use std::fmt;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{
    AsyncKeyEncryptionProvider, Binding, BoxFuture, DATA_KEY_LEN, DataKey, Error, KeyId, KeyVersion, ProviderError,
    ProviderErrorKind, ProviderIdentity, WrappedKey, WrappedKeyRef,
};
use reqwest::header::HeaderValue;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Provider id recorded in every wrapped key this provider produces.
pub const VAULT_PROVIDER_ID: &str = "vault-transit";

/// Layout version of the wrapped bytes (`0x01 || ciphertext`).
const WRAP_V1: u8 = 1;

/// Largest Transit response body read (a wrapped data key's answer is a few
/// hundred bytes; key metadata grows with the number of versions).
const MAX_RESPONSE_LEN: usize = 1 << 20;

/// How the envelope's binding is bound to the Transit ciphertext. See the
/// [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BindingMode {
    /// The binding is the key-derivation `context` of a `derived=true` key.
    /// Server-side rewrap is available.
    DerivedKeyContext,
    /// The binding is the AEAD `associated_data` of a key without derivation.
    /// Server-side rewrap is not available.
    AssociatedData,
}

/// Settings for [`VaultTransit::connect`].
///
/// `Debug` never prints the token.
#[derive(Clone)]
pub struct VaultConfig {
    address: String,
    token: SecretString,
    key_name: String,
    mount: String,
    namespace: Option<String>,
    mode: BindingMode,
    timeout: Duration,
    ca_pem: Option<Vec<u8>>,
}

impl VaultConfig {
    /// Settings for the Transit key `key_name` on the server at `address`
    /// (for example `https://vault.internal:8200`), authenticating with
    /// `token`. Defaults: mount `transit`, [`BindingMode::DerivedKeyContext`],
    /// a 30 s timeout per request.
    pub fn new(address: impl Into<String>, token: SecretString, key_name: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            token,
            key_name: key_name.into(),
            mount: String::from("transit"),
            namespace: None,
            mode: BindingMode::DerivedKeyContext,
            timeout: Duration::from_secs(30),
            ca_pem: None,
        }
    }

    /// The path the Transit engine is mounted at (default `transit`).
    #[must_use]
    pub fn mount(mut self, mount: impl Into<String>) -> Self {
        self.mount = mount.into();
        self
    }

    /// A Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How the binding is passed to Transit (default
    /// [`BindingMode::DerivedKeyContext`]).
    #[must_use]
    pub fn binding_mode(mut self, mode: BindingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Timeout for each request (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts only the CA certificates in this PEM bundle, instead of the
    /// platform's roots (for a private CA or a test server).
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("address", &self.address)
            .field("token", &"[REDACTED]")
            .field("key_name", &self.key_name)
            .field("mount", &self.mount)
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A Transit key as a key-encryption provider. See the [module docs](self).
///
/// Cheap to clone; `Send + Sync`. `Debug` shows the address, mount, key name
/// and mode, never the token.
#[derive(Clone)]
pub struct VaultTransit {
    http: reqwest::Client,
    /// `<address>/v1/<mount>`, without a trailing slash.
    base: String,
    key: KeyId,
    token: SecretString,
    namespace: Option<String>,
    mode: BindingMode,
}

/// An error reported by the Vault / OpenBao HTTP API: the status and the
/// server's `errors` messages. The source of a [`ProviderError`] from
/// [`VaultTransit`].
#[derive(Debug)]
pub struct VaultApiError {
    status: u16,
    errors: Vec<String>,
}

impl VaultApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The server's error messages.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }
}

impl fmt::Display for VaultApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vault API returned HTTP {}", self.status)?;
        for (i, e) in self.errors.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl std::error::Error for VaultApiError {}

/// Which call an HTTP failure came from: decides what a 400 means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    ReadKey,
    /// A KV read.
    ReadSecret,
    Encrypt,
    Decrypt,
}

#[derive(Deserialize)]
struct Response<T> {
    data: T,
}

#[derive(Deserialize)]
struct KeyInfo {
    #[serde(rename = "type")]
    key_type: String,
    #[serde(default)]
    derived: bool,
    #[serde(default)]
    convergent_encryption: bool,
    #[serde(default = "yes")]
    supports_encryption: bool,
    #[serde(default = "yes")]
    supports_decryption: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct CiphertextOut {
    ciphertext: String,
}

#[derive(Deserialize)]
struct PlaintextOut {
    plaintext: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<&'a str>,
}

impl VaultTransit {
    /// Connects: reads the key's settings and checks that it exists, is an
    /// AEAD key (`aes256-gcm96` or `chacha20-poly1305`) that can encrypt and
    /// decrypt, is not convergent, and is derived exactly when the binding
    /// mode needs it. In [`BindingMode::AssociatedData`] it also checks, with
    /// a random probe value, that the server enforces `associated_data` (one
    /// that ignored it would silently drop the binding). No data key is sent.
    ///
    /// Errors: an invalid address, mount, key name or token
    /// ([`Other`](ProviderErrorKind::Other) with an [`Error`] source), a
    /// refused token ([`PermissionDenied`](ProviderErrorKind::PermissionDenied)),
    /// a missing key ([`KeyNotFound`](ProviderErrorKind::KeyNotFound)), a key
    /// of the wrong type or derivation ([`Unsupported`](ProviderErrorKind::Unsupported)),
    /// an unreachable or sealed server ([`Unavailable`](ProviderErrorKind::Unavailable)).
    pub async fn connect(config: VaultConfig) -> Result<Self, ProviderError> {
        let this = Self::from_config(config).map_err(|e| err(ProviderErrorKind::Other).with_source(e))?;
        let url = format!("{}/keys/{}", this.base, this.key.as_str());
        let info: KeyInfo = this.send(this.http.get(url), Op::ReadKey).await?;
        let aead = matches!(info.key_type.as_str(), "aes256-gcm96" | "chacha20-poly1305");
        let derived_ok = info.derived == (this.mode == BindingMode::DerivedKeyContext);
        if !aead || info.convergent_encryption || !derived_ok {
            return Err(err(ProviderErrorKind::Unsupported));
        }
        if !info.supports_encryption || !info.supports_decryption {
            return Err(err(ProviderErrorKind::KeyDisabled));
        }
        if this.mode == BindingMode::AssociatedData {
            this.probe_associated_data().await?;
        }
        Ok(this)
    }

    /// A server that ignored `associated_data` (one predating it) would
    /// silently drop the binding. Encrypt a random value under one associated
    /// data and require that decrypting under another fails and under the
    /// same succeeds.
    async fn probe_associated_data(&self) -> Result<(), ProviderError> {
        let probe = DataKey::generate().map_err(|e| err(ProviderErrorKind::Other).with_source(e))?;
        let a = Base64::encode_string(b"lockbox vault associated-data probe A");
        let b = Base64::encode_string(b"lockbox vault associated-data probe B");
        let plaintext = Zeroizing::new(Base64::encode_string(probe.expose_secret()));
        let body = Request {
            plaintext: Some(&plaintext),
            ..self.request(&a)
        };
        let out: CiphertextOut = self
            .send(self.http.post(self.url("encrypt")).json(&body), Op::Encrypt)
            .await?;
        let decrypt = |ad| Request {
            ciphertext: Some(out.ciphertext.as_str()),
            ..self.request(ad)
        };
        let wrong = self
            .send::<PlaintextOut>(self.http.post(self.url("decrypt")).json(&decrypt(&b)), Op::Decrypt)
            .await;
        match wrong {
            Err(e) if e.kind() == ProviderErrorKind::Authentication => {}
            Ok(mut p) => {
                p.plaintext.zeroize();
                return Err(err(ProviderErrorKind::Unsupported));
            }
            Err(e) => return Err(e),
        }
        let mut right: PlaintextOut = self
            .send(self.http.post(self.url("decrypt")).json(&decrypt(&a)), Op::Decrypt)
            .await?;
        let same = right.plaintext == *plaintext;
        right.plaintext.zeroize();
        if same {
            Ok(())
        } else {
            Err(err(ProviderErrorKind::Unsupported))
        }
    }

    fn from_config(config: VaultConfig) -> Result<Self, Error> {
        lockbox::provider::net::require_tls_or_loopback(&config.address)?;
        if !valid_key_name(&config.key_name) {
            return Err(Error::invalid_argument(
                "Transit key name must be 1 to 128 of A-Z a-z 0-9 _ - .",
            ));
        }
        let mount = check_connection(&config.mount, &config.token, config.namespace.as_deref())?;
        let http = build_client(config.timeout, config.ca_pem.as_deref())?;
        let base = format!("{}/v1/{}", config.address.trim_end_matches('/'), mount);
        Ok(Self {
            http,
            base,
            key: KeyId::new(config.key_name)?,
            token: config.token,
            namespace: config.namespace,
            mode: config.mode,
        })
    }

    /// The Transit key's name, recorded as the key id of every wrapped key.
    pub fn key_name(&self) -> &KeyId {
        &self.key
    }

    /// How the binding is passed to Transit.
    pub fn binding_mode(&self) -> BindingMode {
        self.mode
    }

    /// Sends a request with the token (and namespace) headers and decodes the
    /// `data` object of a successful answer.
    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        op: Op,
    ) -> Result<T, ProviderError> {
        let body = send_raw(&self.token, self.namespace.as_deref(), request, op, VAULT_PROVIDER_ID).await?;
        serde_json::from_slice::<Response<T>>(&body)
            .map(|r| r.data)
            .map_err(|e| err(ProviderErrorKind::Other).with_source(e))
    }

    fn url(&self, op: &str) -> String {
        format!("{}/{}/{}", self.base, op, self.key.as_str())
    }

    /// The binding in the request field the mode says.
    fn request<'a>(&self, binding: &'a str) -> Request<'a> {
        let (context, associated_data) = match self.mode {
            BindingMode::DerivedKeyContext => (Some(binding), None),
            BindingMode::AssociatedData => (None, Some(binding)),
        };
        Request {
            plaintext: None,
            ciphertext: None,
            context,
            associated_data,
        }
    }

    fn wrapped(&self, ciphertext: &str) -> Result<WrappedKey, ProviderError> {
        let version = parse_version(ciphertext).ok_or_else(|| err(ProviderErrorKind::Other))?;
        let mut bytes = Vec::with_capacity(ciphertext.len().saturating_add(1));
        bytes.push(WRAP_V1);
        bytes.extend_from_slice(ciphertext.as_bytes());
        WrappedKey::new(VAULT_PROVIDER_ID, self.key.clone(), version, bytes)
            .map_err(|e| err(ProviderErrorKind::Other).with_source(e))
    }

    /// The Transit ciphertext inside `wrapped`, after checking it is addressed
    /// to this key, has a known layout, and carries the version the envelope
    /// records.
    fn ciphertext<'w>(&self, wrapped: WrappedKeyRef<'w>) -> Result<&'w str, ProviderError> {
        if !self.matches(wrapped) {
            return Err(err(ProviderErrorKind::KeyNotFound));
        }
        let text = match wrapped.bytes().split_first() {
            Some((&WRAP_V1, rest)) => std::str::from_utf8(rest).ok(),
            _ => None,
        };
        match text {
            Some(t) if parse_version(t) == Some(wrapped.key_version()) => Ok(t),
            _ => Err(err(ProviderErrorKind::Authentication)),
        }
    }

    async fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let b64 = Base64::encode_string(binding.as_bytes());
        let plaintext = Zeroizing::new(Base64::encode_string(dek.expose_secret()));
        let body = Request {
            plaintext: Some(&plaintext),
            ..self.request(&b64)
        };
        let out: CiphertextOut = self
            .send(self.http.post(self.url("encrypt")).json(&body), Op::Encrypt)
            .await?;
        self.wrapped(&out.ciphertext)
    }

    async fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let ciphertext = self.ciphertext(wrapped)?;
        let b64 = Base64::encode_string(binding.as_bytes());
        let body = Request {
            ciphertext: Some(ciphertext),
            ..self.request(&b64)
        };
        let mut out: PlaintextOut = self
            .send(self.http.post(self.url("decrypt")).json(&body), Op::Decrypt)
            .await?;
        let dek = lockbox::hazmat::data_key_with(|dek| match Base64::decode(out.plaintext.as_bytes(), dek) {
            Ok(d) if d.len() == DATA_KEY_LEN => Ok(()),
            _ => Err(err(ProviderErrorKind::Other)),
        });
        out.plaintext.zeroize();
        dek
    }

    async fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let ciphertext = self.ciphertext(wrapped)?;
        let b64 = Base64::encode_string(binding.as_bytes());
        let body = Request {
            ciphertext: Some(ciphertext),
            ..self.request(&b64)
        };
        let out: CiphertextOut = self
            .send(self.http.post(self.url("rewrap")).json(&body), Op::Decrypt)
            .await?;
        self.wrapped(&out.ciphertext)
    }
}

impl fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransit")
            .field("base", &self.base)
            .field("key", &self.key)
            .field("namespace", &self.namespace)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for VaultTransit {
    fn provider_id(&self) -> &str {
        VAULT_PROVIDER_ID
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(VAULT_PROVIDER_ID, self.key.as_str())
    }

    /// A Transit AEAD key (`aes256-gcm96` or `chacha20-poly1305`): symmetric.
    fn post_quantum(&self) -> lockbox::PostQuantum {
        lockbox::PostQuantum::Yes
    }
}

impl AsyncKeyEncryptionProvider for VaultTransit {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        Box::pin(self.wrap(dek, binding))
    }

    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        Box::pin(self.unwrap(wrapped, binding))
    }

    /// Transit `rewrap` under the key's latest version, in
    /// [`BindingMode::DerivedKeyContext`]; `Ok(None)` in
    /// [`BindingMode::AssociatedData`], where Transit cannot rewrap.
    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        Box::pin(async move {
            match self.mode {
                BindingMode::DerivedKeyContext => self.rewrap(wrapped, binding).await.map(Some),
                BindingMode::AssociatedData => Ok(None),
            }
        })
    }
}

/// Sends a request with the token (and namespace) headers; the body of a
/// successful answer, bounded, in a buffer zeroized on drop, or the API's
/// error (as [`VaultApiError`], the source) as a [`ProviderError`] of
/// `provider_id`. Written once for Transit and KV.
async fn send_raw(
    token: &SecretString,
    namespace: Option<&str>,
    request: reqwest::RequestBuilder,
    op: Op,
    provider_id: &str,
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    let fail = |kind| ProviderError::new(kind, provider_id);
    let mut token =
        HeaderValue::from_str(token.expose_secret()).map_err(|_| fail(ProviderErrorKind::PermissionDenied))?;
    token.set_sensitive(true);
    let mut request = request.header("X-Vault-Token", token);
    if let Some(ns) = namespace {
        request = request.header("X-Vault-Namespace", ns);
    }
    let response = request
        .send()
        .await
        .map_err(|e| fail(ProviderErrorKind::Unavailable).with_source(e))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_RESPONSE_LEN))
    {
        return Err(fail(ProviderErrorKind::Other));
    }
    let body = Zeroizing::new(
        response
            .bytes()
            .await
            .map_err(|e| fail(ProviderErrorKind::Unavailable).with_source(e))?
            .to_vec(),
    );
    if body.len() > MAX_RESPONSE_LEN {
        return Err(fail(ProviderErrorKind::Other));
    }
    if !status.is_success() {
        let errors = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_default().errors;
        let api = VaultApiError {
            status: status.as_u16(),
            errors,
        };
        return Err(fail(kind_for(&api, op)).with_source(api));
    }
    Ok(body)
}

fn err(kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, VAULT_PROVIDER_ID)
}

/// Checks a mount path, a token and a namespace (Transit and KV alike);
/// the mount without surrounding slashes.
fn check_connection<'m>(mount: &'m str, token: &SecretString, namespace: Option<&str>) -> Result<&'m str, Error> {
    let mount = mount.trim_matches('/');
    if mount.is_empty() || !mount.split('/').all(valid_key_name) {
        return Err(Error::invalid_argument(
            "Vault mount must be a path of segments of A-Z a-z 0-9 _ - .",
        ));
    }
    if HeaderValue::from_str(token.expose_secret()).is_err() || token.expose_secret().is_empty() {
        return Err(Error::invalid_argument("Vault token must be non-empty visible ASCII"));
    }
    if namespace.is_some_and(|ns| HeaderValue::from_str(ns).is_err()) {
        return Err(Error::invalid_argument("Vault namespace must be visible ASCII"));
    }
    Ok(mount)
}

/// rustls (ring), no redirects, the platform's roots or only `ca_pem`'s.
fn build_client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| BAD_CA)?;
        if certs.is_empty() {
            return Err(BAD_CA);
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|_| BAD_CA_OR_CLIENT)
}

const BAD_CA: Error = Error::invalid_argument("CA bundle must be PEM with at least one parsable certificate");
const BAD_CA_OR_CLIENT: Error =
    Error::invalid_argument("cannot build the HTTP client for Vault (is the CA bundle valid?)");

/// `[A-Za-z0-9_.-]{1,128}`, not `.` or `..`.
fn valid_key_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The key version of a Transit ciphertext `vault:v<N>:<base64>`: `N`
/// decimal without leading zeros, 1 to `u32::MAX`; the rest non-empty.
fn parse_version(ciphertext: &str) -> Option<KeyVersion> {
    let rest = ciphertext.strip_prefix("vault:v")?;
    let (digits, payload) = rest.split_once(':')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if payload.is_empty() {
        return None;
    }
    digits.parse::<u32>().ok().map(KeyVersion)
}

/// What an HTTP error means. A 400 on decrypt or rewrap is about the
/// ciphertext or binding the caller sent (authentication), unless the message
/// says the key or version is missing or retired.
fn kind_for(e: &VaultApiError, op: Op) -> ProviderErrorKind {
    let says = |needle: &str| e.errors.iter().any(|m| m.contains(needle));
    match e.status {
        401 | 403 => ProviderErrorKind::PermissionDenied,
        404 => ProviderErrorKind::KeyNotFound,
        400 if says("key not found") => ProviderErrorKind::KeyNotFound,
        400 if says("disallowed by policy") || says("min_decryption_version") => ProviderErrorKind::KeyDisabled,
        400 if op == Op::Decrypt => ProviderErrorKind::Authentication,
        429 | 500..=599 => ProviderErrorKind::Unavailable,
        _ => ProviderErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(parse_version("vault:v1:abc"), Some(KeyVersion(1)));
        assert_eq!(parse_version("vault:v4294967295:abc"), Some(KeyVersion(u32::MAX)));
        for bad in [
            "vault:v0:abc",
            "vault:v01:abc",
            "vault:v4294967296:abc",
            "vault:v:abc",
            "vault:v1:",
            "vault:v1",
            "vault:v-1:abc",
            "vault:v+1:abc",
            "vault:1:abc",
            "other:v1:abc",
            "",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(valid_key_name("lockbox-kek_1.a"));
        for bad in ["", ".", "..", "a/b", "a b", "a?b", "ä", &"k".repeat(129)] {
            assert!(!valid_key_name(bad), "{bad}");
        }
        let token = || SecretString::from("t");
        assert!(VaultTransit::from_config(VaultConfig::new("http://127.0.0.1:1", token(), "k")).is_ok());
        assert!(VaultTransit::from_config(VaultConfig::new("http://vault.example", token(), "k")).is_err());
        assert!(VaultTransit::from_config(VaultConfig::new("http://127.0.0.1:1", token(), "../sys")).is_err());
        let bad_mount = VaultConfig::new("http://127.0.0.1:1", token(), "k").mount("a/../b");
        assert!(VaultTransit::from_config(bad_mount).is_err());
        let nested = VaultConfig::new("http://127.0.0.1:1/", token(), "k").mount("/team/transit/");
        assert_eq!(
            VaultTransit::from_config(nested).unwrap().base,
            "http://127.0.0.1:1/v1/team/transit"
        );
        let empty = VaultConfig::new("http://127.0.0.1:1", SecretString::from(""), "k");
        assert!(VaultTransit::from_config(empty).is_err());
        let newline = VaultConfig::new("http://127.0.0.1:1", SecretString::from("a\nb"), "k");
        assert!(VaultTransit::from_config(newline).is_err());
    }

    #[test]
    fn ca_bundles_are_checked() {
        let cfg = |pem: &str| {
            VaultConfig::new("https://127.0.0.1:1", SecretString::from("t"), "k").ca_certificate_pem(pem.as_bytes())
        };
        assert!(VaultTransit::from_config(cfg("not pem")).is_err());
        assert!(
            VaultTransit::from_config(cfg("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).is_err()
        );
        assert!(
            VaultTransit::from_config(cfg("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")).is_err()
        );
    }

    #[test]
    fn http_errors_map_to_kinds() {
        let e = |status, msg: &str| VaultApiError {
            status,
            errors: vec![msg.to_string()],
        };
        assert_eq!(
            kind_for(&e(403, "permission denied"), Op::Encrypt),
            ProviderErrorKind::PermissionDenied
        );
        assert_eq!(kind_for(&e(404, ""), Op::ReadKey), ProviderErrorKind::KeyNotFound);
        assert_eq!(
            kind_for(&e(400, "encryption key not found"), Op::Decrypt),
            ProviderErrorKind::KeyNotFound
        );
        assert_eq!(
            kind_for(&e(400, "cipher: message authentication failed"), Op::Decrypt),
            ProviderErrorKind::Authentication
        );
        assert_eq!(
            kind_for(
                &e(400, "ciphertext or signature version is disallowed by policy (too old)"),
                Op::Decrypt
            ),
            ProviderErrorKind::KeyDisabled
        );
        assert_eq!(kind_for(&e(400, "bad request"), Op::Encrypt), ProviderErrorKind::Other);
        assert_eq!(
            kind_for(&e(503, "Vault is sealed"), Op::Decrypt),
            ProviderErrorKind::Unavailable
        );
        let shown = format!("{}", e(400, "x"));
        assert_eq!(shown, "Vault API returned HTTP 400: x");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = VaultConfig::new("http://127.0.0.1:1", SecretString::from("hvs.very-secret-token"), "k");
        assert!(!format!("{c:?}").contains("very-secret"));
        let t = VaultTransit::from_config(c).unwrap();
        let s = format!("{t:?}");
        assert!(!s.contains("very-secret") && s.contains("127.0.0.1"), "{s}");
    }
}
