//! AWS KMS as a key-encryption provider for [`lockbox`] (the
//! `lockbox-envelope` crate).
//!
//! [`AwsKms`] wraps data keys under one symmetric KMS key (`SYMMETRIC_DEFAULT`,
//! usage `ENCRYPT_DECRYPT`):
//!
//! | lockbox | KMS |
//! |---|---|
//! | [`wrap`](AsyncKeyEncryptionProvider::wrap_async) | `Encrypt` |
//! | [`unwrap`](AsyncKeyEncryptionProvider::unwrap_async) | `Decrypt`, with the key ARN *and* the same context |
//! | [`generate_data_key`](AsyncKeyEncryptionProvider::generate_data_key_async) | `GenerateDataKey` (32 bytes) |
//! | [`rewrap`](AsyncKeyEncryptionProvider::rewrap_async) | `ReEncrypt` (same key, same context) |
//!
//! ## Binding
//!
//! Every call carries a KMS `EncryptionContext` with exactly one pair:
//! [`ENCRYPTION_CONTEXT_KEY`] (`"lockbox:binding"`) mapped to the standard,
//! padded base64 of [`Binding::as_bytes`] (the suite and the whole lockbox
//! context, required entries included; `FORMAT.md` §7). KMS authenticates the
//! context with the ciphertext, so a wrapped key unwraps only under the binding
//! it was sealed with. The context is visible in CloudTrail, like every KMS
//! encryption context: the required values of a lockbox context are in it
//! (base64, not encrypted), so keep secrets out of contexts, as always. The
//! single opaque pair also means IAM conditions on
//! `kms:EncryptionContext:<key>` cannot name lockbox context entries.
//!
//! ## Wrapped key
//!
//! Provider id [`AWS_KMS_PROVIDER_ID`] (`"aws-kms"`), key id the key's full
//! ARN, key version 1 (KMS rotates key material behind the ARN), bytes
//! `0x01 || CiphertextBlob`; the leading byte versions this layout.
//! [`matches`](ProviderIdentity::matches) compares provider id and ARN exactly,
//! and `Decrypt` names the ARN as `KeyId`, so a ciphertext that KMS would
//! attribute to another key is refused (`IncorrectKeyException`) instead of
//! being decrypted under whatever key it names.
//!
//! ## Client
//!
//! [`AwsKmsConfig`] builds the SDK client from explicit values only: region,
//! static credentials, an optional endpoint URL, the latest behaviour
//! version, and an HTTPS client on rustls with the *ring* backend. Nothing
//! reads the environment, profile files or an instance metadata address. A
//! caller who wants the SDK's credential chain builds an
//! [`aws_sdk_kms::Client`] with `aws-config` and passes it to
//! [`AwsKms::from_client`].
//!
//! The SDK's `Client` is the one SDK type in this crate's API (in
//! [`AwsKms::from_client`], [`AwsKms::connect_with_client`],
//! [`AwsKms::client`] and [`AwsKmsConfig::build_client`]): it is how a
//! caller brings their own credentials or reaches KMS operations lockbox does
//! not wrap. The crate does not re-export the SDK; a caller who needs it
//! depends on `aws-sdk-kms = "1"` (the major version this crate uses), and
//! cargo unifies the two.
//!
//! The provider is async only (it implements [`AsyncKeyEncryptionProvider`],
//! not the blocking trait) and needs a tokio runtime to be polled on; it never
//! starts or blocks on one itself.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox_aws_kms::{AwsKms, AwsKmsConfig};
//! use lockbox::secrecy::SecretString;
//! use lockbox::{AsyncKeyEncryptionProvider, BindingBuf, EncryptionContext, Suite};
//!
//! let config = AwsKmsConfig::new("eu-west-1", "AKIA...", SecretString::from("secret"));
//! // Resolves an alias or key id to the key's ARN and checks the key is usable.
//! let kms = AwsKms::connect(&config, "alias/lockbox").await?;
//! let ctx = EncryptionContext::new().with("tenant", "acme")?;
//! let binding = BindingBuf::new(Suite::Aes256Gcm, &ctx);
//! // `GenerateDataKey`: a fresh data key and its wrapped form.
//! let (dek, wrapped) = kms.generate_data_key_async(lockbox::DataKeyRequest::new(binding.as_binding())).await?.ok_or("not offered")?;
//! let again = kms.unwrap_async(wrapped.as_ref(), binding.as_binding()).await?;
//! # let _ = (dek, again);
//! # Ok(()) }
//! ```
//!
//! This crate is built on lockbox's public provider API only
//! ([`lockbox::provider`]); it passes the conformance suite of the
//! `lockbox-testing` crate against a KMS API.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{Credentials, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_smithy_http_client::tls::{Provider as TlsProvider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use base64ct::{Base64, Encoding};
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{
    AsyncKeyEncryptionProvider, Binding, BoxFuture, DATA_KEY_LEN, DataKey, DataKeyRequest, Error, KeyId, KeyVersion,
    ProviderError, ProviderErrorKind, ProviderIdentity, WrappedKey, WrappedKeyRef,
};
use zeroize::Zeroizing;

/// Provider id recorded in every wrapped key this provider produces.
pub const AWS_KMS_PROVIDER_ID: &str = "aws-kms";

/// The single KMS encryption-context key under which the base64 binding is sent.
pub const ENCRYPTION_CONTEXT_KEY: &str = "lockbox:binding";

/// Layout version of the wrapped bytes (`0x01 || CiphertextBlob`).
const WRAP_V1: u8 = 1;

/// Explicit settings for the KMS client that [`AwsKms`] builds.
///
/// `Debug` prints the region, endpoint and access key id, never the secret
/// access key or session token.
#[derive(Clone)]
pub struct AwsKmsConfig {
    region: String,
    endpoint_url: Option<String>,
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    operation_timeout: Duration,
}

impl AwsKmsConfig {
    /// Settings for `region` with static credentials. The endpoint is the
    /// region's public KMS endpoint unless [`endpoint_url`](Self::endpoint_url)
    /// says otherwise. Connect timeout 3 s, whole-operation timeout 30 s
    /// (retries included).
    pub fn new(region: impl Into<String>, access_key_id: impl Into<String>, secret_access_key: SecretString) -> Self {
        Self {
            region: region.into(),
            endpoint_url: None,
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: None,
            ca_pem: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// A custom endpoint (a VPC endpoint, a FIPS endpoint, a local test
    /// server). Must be `https://`, or `http://` on a loopback address;
    /// anything else is refused when the client is built.
    #[must_use]
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// A session token, for temporary credentials.
    #[must_use]
    pub fn session_token(mut self, token: SecretString) -> Self {
        self.session_token = Some(token);
        self
    }

    /// Trusts only the CA certificates in this PEM bundle, instead of the
    /// platform's roots (for a private endpoint or a test server). Checked
    /// when the client is built.
    #[must_use]
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Timeout for establishing a connection (default 3 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout for a whole operation, retries included (default 30 s).
    #[must_use]
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Builds the SDK client: explicit region, credentials, endpoint and
    /// behaviour version; HTTPS through rustls with the ring backend and the
    /// platform's root certificates.
    ///
    /// Fails with [`Error::InvalidArgument`] for an empty region or access
    /// key id, an endpoint that is neither `https://` nor loopback `http://`,
    /// a CA bundle without a parsable certificate, or (without a CA bundle) a
    /// system without usable root certificates.
    pub fn build_client(&self) -> Result<aws_sdk_kms::Client, Error> {
        Ok(client_from_parts!(aws_sdk_kms, self.parts()?))
    }

    /// The settings every client built from this configuration shares:
    /// checked endpoint, static credentials, HTTPS on rustls (ring) with
    /// the platform's roots or only the caller's, timeouts.
    fn parts(&self) -> Result<ClientParts, Error> {
        if self.region.is_empty() || self.access_key_id.is_empty() {
            return Err(Error::invalid_argument(
                "AWS KMS region and access key id must not be empty",
            ));
        }
        if let Some(url) = &self.endpoint_url {
            lockbox::provider::net::require_tls_or_loopback(url)?;
        }
        let credentials = Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose_secret().to_string(),
            self.session_token.as_ref().map(|t| t.expose_secret().to_string()),
            None,
            "lockbox-static",
        );
        let mut tls = aws_smithy_http_client::Builder::new().tls_provider(TlsProvider::Rustls(CryptoMode::Ring));
        if let Some(pem) = &self.ca_pem {
            check_ca_pem(pem)?;
            let store = TrustStore::empty().with_pem_certificate(pem.clone());
            let ctx = TlsContext::builder()
                .with_trust_store(store)
                .build()
                .map_err(|e| Error::key_load(String::from("cannot configure TLS for AWS KMS"), Some(Box::new(e))))?;
            tls = tls.tls_context(ctx);
        } else {
            check_native_roots()?;
        }
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_timeout(self.operation_timeout)
            .build();
        Ok(ClientParts {
            region: Region::new(self.region.clone()),
            credentials,
            http: tls.build_https(),
            timeouts,
            endpoint: self.endpoint_url.clone(),
        })
    }
}

/// What every SDK client of this crate is built from ([`AwsKmsConfig::parts`]).
struct ClientParts {
    region: Region,
    credentials: Credentials,
    http: aws_sdk_kms::config::SharedHttpClient,
    timeouts: TimeoutConfig,
    endpoint: Option<String>,
}

/// Builds the client of SDK crate `$sdk` from [`ClientParts`]: the one place
/// a client's settings are applied (KMS, Secrets Manager).
macro_rules! client_from_parts {
    ($sdk:ident, $parts:expr) => {{
        let p: ClientParts = $parts;
        let mut builder = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region(p.region)
            .credentials_provider(p.credentials)
            .http_client(p.http)
            .timeout_config(p.timeouts);
        if let Some(url) = p.endpoint {
            builder = builder.endpoint_url(url);
        }
        $sdk::Client::from_conf(builder.build())
    }};
}
use client_from_parts;

#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;

impl fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// A KMS key as a key-encryption provider. See the [module docs](self).
///
/// Cheap to clone (the SDK client is reference-counted); `Send + Sync`.
/// `Debug` shows the key ARN and nothing of the credentials.
#[derive(Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_arn: KeyId,
}

impl AwsKms {
    /// A provider for the key `key_arn` (a full key ARN,
    /// `arn:<partition>:kms:<region>:<account>:key/<id>`), without contacting KMS.
    ///
    /// Fails with [`Error::InvalidArgument`] if `key_arn` is not a key ARN (an
    /// alias or bare key id would not match the ARN KMS reports, so it is
    /// refused here; use [`connect`](Self::connect) to resolve one) or the
    /// configuration is invalid.
    pub fn new(config: &AwsKmsConfig, key_arn: &str) -> Result<Self, Error> {
        Self::from_client(config.build_client()?, key_arn)
    }

    /// Like [`new`](Self::new), with a client built elsewhere (for example
    /// with `aws-config`'s credential chain).
    ///
    /// The ARN's region must be the client's region (KMS refuses a key ARN
    /// of another region; use the replica's ARN for a multi-Region key).
    pub fn from_client(client: aws_sdk_kms::Client, key_arn: &str) -> Result<Self, Error> {
        let Some(arn_region) = key_arn_region(key_arn) else {
            return Err(Error::invalid_argument(
                "AWS KMS key must be given as a full key ARN (arn:...:kms:...:key/...)",
            ));
        };
        if client.config().region().is_some_and(|r| r.as_ref() != arn_region) {
            return Err(Error::invalid_argument(
                "AWS KMS key ARN names another region than the client's",
            ));
        }
        Ok(Self {
            client,
            key_arn: KeyId::new(key_arn)?,
        })
    }

    /// Resolves `key` (key id, key ARN, alias name or alias ARN) to its key
    /// ARN with `DescribeKey`, and checks that the key is a symmetric
    /// `ENCRYPT_DECRYPT` key that is enabled.
    ///
    /// Errors: the configuration is invalid ([`ProviderErrorKind::Other`] with
    /// the [`Error`] as source), the key does not exist
    /// ([`KeyNotFound`](ProviderErrorKind::KeyNotFound)), is disabled or pending
    /// deletion ([`KeyDisabled`](ProviderErrorKind::KeyDisabled)), is not a
    /// symmetric encryption key ([`Unsupported`](ProviderErrorKind::Unsupported)),
    /// or KMS cannot be reached ([`Unavailable`](ProviderErrorKind::Unavailable)).
    pub async fn connect(config: &AwsKmsConfig, key: &str) -> Result<Self, ProviderError> {
        let client = config
            .build_client()
            .map_err(|e| err(ProviderErrorKind::Other).with_source(e))?;
        Self::connect_with_client(client, key).await
    }

    /// [`connect`](Self::connect) with a client built elsewhere.
    pub async fn connect_with_client(client: aws_sdk_kms::Client, key: &str) -> Result<Self, ProviderError> {
        let out = client
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ProviderErrorKind::Other))?;
        let meta = out.key_metadata().ok_or_else(|| err(ProviderErrorKind::Other))?;
        match meta.key_state() {
            Some(KeyState::Enabled) => {}
            Some(KeyState::PendingDeletion | KeyState::PendingReplicaDeletion) => {
                return Err(err(ProviderErrorKind::KeyDestroyed));
            }
            _ => return Err(err(ProviderErrorKind::KeyDisabled)),
        }
        let symmetric = matches!(meta.key_spec(), None | Some(KeySpec::SymmetricDefault))
            && matches!(meta.key_usage(), None | Some(KeyUsageType::EncryptDecrypt));
        if !symmetric {
            return Err(err(ProviderErrorKind::Unsupported));
        }
        let arn = meta.arn().ok_or_else(|| err(ProviderErrorKind::Other))?;
        Self::from_client(client, arn).map_err(|e| err(ProviderErrorKind::Other).with_source(e))
    }

    /// The key's ARN, recorded as the key id of every wrapped key.
    pub fn key_arn(&self) -> &KeyId {
        &self.key_arn
    }

    /// The SDK client, for operations lockbox does not wrap (key rotation,
    /// grants, ...).
    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }

    fn wrapped(&self, blob: Blob) -> Result<WrappedKey, ProviderError> {
        let blob = blob.into_inner();
        let mut bytes = Vec::with_capacity(blob.len().saturating_add(1));
        bytes.push(WRAP_V1);
        bytes.extend_from_slice(&blob);
        WrappedKey::new(AWS_KMS_PROVIDER_ID, self.key_arn.clone(), KeyVersion(1), bytes)
            .map_err(|e| err(ProviderErrorKind::Other).with_source(e))
    }

    /// The KMS ciphertext inside `wrapped`, after checking it is addressed to
    /// this key and has a known layout.
    fn ciphertext<'w>(&self, wrapped: WrappedKeyRef<'w>) -> Result<&'w [u8], ProviderError> {
        if !self.matches(wrapped) {
            return Err(err(ProviderErrorKind::KeyNotFound));
        }
        match wrapped.bytes().split_first() {
            Some((&WRAP_V1, blob)) if !blob.is_empty() && wrapped.key_version() == KeyVersion(1) => Ok(blob),
            _ => Err(err(ProviderErrorKind::Authentication)),
        }
    }

    async fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let out = self
            .client
            .encrypt()
            .key_id(self.key_arn.as_str())
            .plaintext(Blob::new(dek.expose_secret().as_slice()))
            .encryption_context(ENCRYPTION_CONTEXT_KEY, context_value(binding))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ProviderErrorKind::Other))?;
        self.check_key(out.key_id())?;
        let blob = out.ciphertext_blob.ok_or_else(|| err(ProviderErrorKind::Other))?;
        self.wrapped(blob)
    }

    async fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let blob = self.ciphertext(wrapped)?;
        let out = self
            .client
            .decrypt()
            .key_id(self.key_arn.as_str())
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(ENCRYPTION_CONTEXT_KEY, context_value(binding))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ProviderErrorKind::Authentication))?;
        self.check_key(out.key_id())?;
        let plaintext = out.plaintext.ok_or_else(|| err(ProviderErrorKind::Other))?;
        data_key(plaintext)
    }

    async fn generate(&self, binding: Binding<'_>) -> Result<(DataKey, WrappedKey), ProviderError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(self.key_arn.as_str())
            .number_of_bytes(32)
            .encryption_context(ENCRYPTION_CONTEXT_KEY, context_value(binding))
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ProviderErrorKind::Other))?;
        self.check_key(out.key_id())?;
        let plaintext = out.plaintext.ok_or_else(|| err(ProviderErrorKind::Other))?;
        let dek = data_key(plaintext)?;
        let blob = out.ciphertext_blob.ok_or_else(|| err(ProviderErrorKind::Other))?;
        Ok((dek, self.wrapped(blob)?))
    }

    async fn rewrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let blob = self.ciphertext(wrapped)?;
        let ctx = context_value(binding);
        let out = self
            .client
            .re_encrypt()
            .ciphertext_blob(Blob::new(blob))
            .source_key_id(self.key_arn.as_str())
            .source_encryption_context(ENCRYPTION_CONTEXT_KEY, ctx.clone())
            .destination_key_id(self.key_arn.as_str())
            .destination_encryption_context(ENCRYPTION_CONTEXT_KEY, ctx)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, ProviderErrorKind::Authentication))?;
        self.check_key(out.key_id())?;
        let blob = out.ciphertext_blob.ok_or_else(|| err(ProviderErrorKind::Other))?;
        self.wrapped(blob)
    }

    /// KMS reports the ARN of the key it used; it must be ours.
    fn check_key(&self, reported: Option<&str>) -> Result<(), ProviderError> {
        match reported {
            Some(arn) if arn == self.key_arn.as_str() => Ok(()),
            _ => Err(err(ProviderErrorKind::Authentication)),
        }
    }
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for AwsKms {
    fn provider_id(&self) -> &str {
        AWS_KMS_PROVIDER_ID
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(AWS_KMS_PROVIDER_ID, self.key_arn.as_str())
    }

    /// A symmetric KMS key (`SYMMETRIC_DEFAULT`): post-quantum.
    fn post_quantum(&self) -> lockbox::PostQuantum {
        lockbox::PostQuantum::Yes
    }
}

impl AsyncKeyEncryptionProvider for AwsKms {
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

    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        Box::pin(async move { self.generate(request.binding()).await.map(Some) })
    }

    fn rewrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<Option<WrappedKey>, ProviderError>> {
        Box::pin(async move { self.rewrap(wrapped, binding).await.map(Some) })
    }
}

fn err(kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, AWS_KMS_PROVIDER_ID)
}

/// The encryption-context value: standard padded base64 of the binding bytes.
fn context_value(binding: Binding<'_>) -> String {
    Base64::encode_string(binding.as_bytes())
}

/// Moves KMS's plaintext into a [`DataKey`], zeroizing the SDK's buffer.
fn data_key(plaintext: Blob) -> Result<DataKey, ProviderError> {
    let bytes = Zeroizing::new(plaintext.into_inner());
    lockbox::hazmat::data_key_with(|dek| {
        dek.copy_from_slice(
            bytes
                .get(..)
                .filter(|b| b.len() == DATA_KEY_LEN)
                .ok_or_else(|| err(ProviderErrorKind::Other))?,
        );
        Ok(())
    })
}

/// Checks a PEM bundle the way the SDK will load it (which panics on a bad
/// one): at least one certificate, each usable as a trust anchor.
fn check_ca_pem(pem: &[u8]) -> Result<(), Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    const BAD: Error = Error::invalid_argument("CA bundle must be PEM with at least one parsable certificate");
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BAD)?;
    if certs.is_empty() {
        return Err(BAD);
    }
    let mut roots = rustls::RootCertStore::empty();
    certs.into_iter().try_for_each(|c| roots.add(c).map_err(|_| BAD))
}

/// Checks that the platform has at least one usable root certificate, as
/// the SDK asserts (in debug builds) when it loads them.
fn check_native_roots() -> Result<(), Error> {
    let mut roots = rustls::RootCertStore::empty();
    let (valid, _invalid) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if valid == 0 {
        return Err(Error::invalid_argument(
            "no usable root certificates on this system: install them (ca-certificates) or pass ca_certificate_pem",
        ));
    }
    Ok(())
}

/// The region of a key ARN `arn:<partition>:kms:<region>:<account>:key/<id>`,
/// or `None` if `s` is not one.
fn key_arn_region(s: &str) -> Option<&str> {
    let mut parts = s.splitn(6, ':');
    let fields: [Option<&str>; 6] = std::array::from_fn(|_| parts.next());
    match fields {
        [Some("arn"), Some(p), Some("kms"), Some(r), Some(a), Some(res)]
            if !p.is_empty()
                && !r.is_empty()
                && !a.is_empty()
                && res.strip_prefix("key/").is_some_and(|id| !id.is_empty()) =>
        {
            Some(r)
        }
        _ => None,
    }
}

/// Maps an SDK error to a [`ProviderErrorKind`], keeping it as the source.
/// `invalid_input` is the kind for a rejected ciphertext
/// (`InvalidCiphertextException`, `IncorrectKeyException`): authentication
/// on unwrap and rewrap.
///
/// On unwrap and rewrap an `AccessDeniedException` is authentication too:
/// KMS (and moto) answer it when the ciphertext names a key other than the
/// one the request names, which is what a tampered or foreign wrapped key
/// looks like, and lockbox cannot tell that apart from a policy that denies
/// `kms:Decrypt`. The SDK error, kept as the source, says which. On wrap,
/// generation and `DescribeKey` it is [`ProviderErrorKind::PermissionDenied`].
fn map_sdk_error<E, R>(e: SdkError<E, R>, invalid_input: ProviderErrorKind) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    map_sdk_error_of(AWS_KMS_PROVIDER_ID, e, invalid_input)
}

/// A service error as a [`ProviderError`] of `provider_id`, the SDK's error
/// as its source.
fn map_sdk_error_of<E, R>(provider_id: &str, e: SdkError<E, R>, invalid_input: ProviderErrorKind) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ProviderErrorKind::Unavailable,
        SdkError::ServiceError(s) => kind_for_code(s.err().code(), invalid_input),
        _ => ProviderErrorKind::Other,
    };
    ProviderError::new(kind, provider_id).with_source(e)
}

fn kind_for_code(code: Option<&str>, invalid_input: ProviderErrorKind) -> ProviderErrorKind {
    match code.unwrap_or_default() {
        "InvalidCiphertextException" | "IncorrectKeyException" => invalid_input,
        "AccessDeniedException" if invalid_input == ProviderErrorKind::Authentication => invalid_input,
        "NotFoundException" | "ResourceNotFoundException" => ProviderErrorKind::KeyNotFound,
        "DisabledException" | "KMSInvalidStateException" | "InvalidKeyUsageException" => ProviderErrorKind::KeyDisabled,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken" => ProviderErrorKind::PermissionDenied,
        "KeyUnavailableException"
        | "InternalServiceError"
        | "DependencyTimeoutException"
        | "KMSInternalException"
        | "ThrottlingException"
        | "LimitExceededException"
        | "ServiceUnavailable"
        | "InternalFailure" => ProviderErrorKind::Unavailable,
        "UnsupportedOperationException" => ProviderErrorKind::Unsupported,
        _ => ProviderErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arns_are_recognised() {
        assert_eq!(
            key_arn_region("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            Some("eu-west-1")
        );
        assert_eq!(
            key_arn_region("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1"),
            Some("us-gov-west-1")
        );
        for bad in [
            "alias/lockbox",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:alias/lockbox",
            "arn:aws:s3:eu-west-1:111122223333:key/x",
            "arn:aws:kms:eu-west-1:111122223333:key/",
            "arn:aws:kms::111122223333:key/x",
            "",
        ] {
            assert_eq!(key_arn_region(bad), None, "{bad}");
        }
    }

    #[test]
    fn error_codes_map_to_kinds() {
        let auth = ProviderErrorKind::Authentication;
        assert_eq!(kind_for_code(Some("InvalidCiphertextException"), auth), auth);
        assert_eq!(kind_for_code(Some("IncorrectKeyException"), auth), auth);
        assert_eq!(
            kind_for_code(Some("InvalidCiphertextException"), ProviderErrorKind::Other),
            ProviderErrorKind::Other
        );
        assert_eq!(
            kind_for_code(Some("NotFoundException"), auth),
            ProviderErrorKind::KeyNotFound
        );
        assert_eq!(
            kind_for_code(Some("DisabledException"), auth),
            ProviderErrorKind::KeyDisabled
        );
        assert_eq!(
            kind_for_code(Some("KMSInvalidStateException"), auth),
            ProviderErrorKind::KeyDisabled
        );
        assert_eq!(kind_for_code(Some("AccessDeniedException"), auth), auth);
        assert_eq!(
            kind_for_code(Some("AccessDeniedException"), ProviderErrorKind::Other),
            ProviderErrorKind::PermissionDenied
        );
        assert_eq!(
            kind_for_code(Some("UnrecognizedClientException"), auth),
            ProviderErrorKind::PermissionDenied
        );
        assert_eq!(
            kind_for_code(Some("ThrottlingException"), auth),
            ProviderErrorKind::Unavailable
        );
        assert_eq!(kind_for_code(Some("SomethingNew"), auth), ProviderErrorKind::Other);
        assert_eq!(kind_for_code(None, auth), ProviderErrorKind::Other);
    }

    #[test]
    fn config_debug_redacts_secrets() {
        let c = AwsKmsConfig::new("eu-west-1", "AKIDEXAMPLE", SecretString::from("wJalrXUtnFEMI-secret"))
            .session_token(SecretString::from("session-token-secret"));
        let s = format!("{c:?}");
        assert!(s.contains("AKIDEXAMPLE") && s.contains("eu-west-1"));
        assert!(
            !s.contains("wJalrXUtnFEMI") && !s.contains("session-token-secret"),
            "{s}"
        );
    }

    #[test]
    fn ca_bundles_are_checked_before_the_sdk_sees_them() {
        let secret = || SecretString::from("s");
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/k";
        let base = || AwsKmsConfig::new("eu-west-1", "id", secret()).endpoint_url("https://127.0.0.1:1");
        assert!(AwsKms::new(&base().ca_certificate_pem("not pem"), arn).is_err());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(AwsKms::new(&base().ca_certificate_pem(garbage), arn).is_err());
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(AwsKms::new(&base().ca_certificate_pem(bad_base64), arn).is_err());
        assert!(AwsKms::new(&base(), arn).is_ok());
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let secret = || SecretString::from("s");
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/k";
        assert!(AwsKms::new(&AwsKmsConfig::new("", "id", secret()), arn).is_err());
        assert!(AwsKms::new(&AwsKmsConfig::new("eu-west-1", "", secret()), arn).is_err());
        let remote_http = AwsKmsConfig::new("eu-west-1", "id", secret()).endpoint_url("http://kms.example");
        assert!(AwsKms::new(&remote_http, arn).is_err());
        let ok = AwsKmsConfig::new("eu-west-1", "id", secret()).endpoint_url("http://127.0.0.1:1");
        assert!(AwsKms::new(&ok, "alias/lockbox").is_err());
        assert!(AwsKms::new(&ok, "arn:aws:kms:us-east-1:111122223333:key/k").is_err());
        let kms = AwsKms::new(&ok, arn).unwrap();
        assert_eq!(kms.key_arn().as_str(), arn);
        assert!(!format!("{kms:?}").contains("\"s\""));
    }
}
