//! AWS Secrets Manager as a source of secrets (feature `secrets-manager`):
//! a local KEK, a recipient identity, or an application's secrets, fetched
//! by name and **pinned version** straight into lockbox's secret types
//! ([`SecretValue`]: zeroized on drop, redacted in `Debug`).
//!
//! The client is built from the same [`AwsKmsConfig`] as KMS, with the same
//! rules: explicit region, credentials and endpoint (`https://`, or
//! `http://` on a loopback address), no environment, profile or instance
//! metadata read, HTTPS on rustls. The service's error is the
//! [`source`](std::error::Error::source) of every [`ProviderError`]
//! (provider id [`SECRETS_MANAGER_ID`]).
//!
//! `GetSecretValue` returns the secret inside the SDK's response; lockbox
//! takes the string (or bytes) out of it without copying and zeroizes it on
//! drop, but the HTTP and JSON layers below the SDK keep their own buffers,
//! which lockbox does not control.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox::secrecy::{ExposeSecret, SecretString};
//! use lockbox_aws_kms::AwsKmsConfig;
//! use lockbox_aws_kms::secrets_manager::{SecretsManager, Version};
//!
//! let config = AwsKmsConfig::new("eu-west-1", "AKIA...", SecretString::from("secret"));
//! let sm = SecretsManager::new(&config)?;
//! // Pinned: exactly this version, whatever AWSCURRENT says tomorrow.
//! let kek = sm.fetch("prod/app/kek", Version::Id("a1b2c3d4-...")).await?.local_kek()?;
//! let db = sm.fetch("prod/app/db", Version::Stage("AWSCURRENT")).await?;
//! let password = db.field("password")?;
//! # let _ = (kek, password.expose_secret());
//! # Ok(()) }
//! ```

use aws_sdk_secretsmanager::error::SdkError;
use lockbox::secrecy::{SecretBox, SecretString};
use lockbox::secrets::SecretValue;
use lockbox::{Error, ProviderError, ProviderErrorKind};
use zeroize::Zeroizing;

use crate::{AwsKmsConfig, ClientParts, map_sdk_error_of};

/// Provider id of the errors of [`SecretsManager`].
pub const SECRETS_MANAGER_ID: &str = "aws-secretsmanager";

/// Which version of a secret to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version<'a> {
    /// A version id: exactly this version (pin it: the read is repeatable,
    /// and a rotation elsewhere does not change what this code reads).
    Id(&'a str),
    /// The version a staging label points at now (`AWSCURRENT`,
    /// `AWSPREVIOUS`, or your own): moves when the secret is rotated.
    Stage(&'a str),
}

/// A Secrets Manager client. Cheap to clone; `Debug` shows nothing of the
/// credentials.
#[derive(Clone, Debug)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl AwsKmsConfig {
    /// Builds a Secrets Manager client with these settings (the KMS
    /// client's rules: see [`build_client`](Self::build_client)).
    pub fn build_secrets_manager_client(&self) -> Result<aws_sdk_secretsmanager::Client, Error> {
        let parts: ClientParts = self.parts()?;
        Ok(client_from_parts!(aws_sdk_secretsmanager, parts))
    }
}

fn err(kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, SECRETS_MANAGER_ID)
}

impl SecretsManager {
    /// A client built from `config` (no request is made).
    pub fn new(config: &AwsKmsConfig) -> Result<Self, Error> {
        Ok(Self::from_client(config.build_secrets_manager_client()?))
    }

    /// With a client built elsewhere (for example with `aws-config`'s
    /// credential chain).
    pub fn from_client(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_secretsmanager::Client {
        &self.client
    }

    /// Reads secret `name` (a name or an ARN) at `version`: a text secret
    /// (`SecretString`) or a binary one (`SecretBinary`). The returned
    /// [`SecretValue::version`] is the version id read; with
    /// [`Version::Id`] it must equal the one asked for.
    ///
    /// Errors ([`ProviderError`], the service's error as source): no such
    /// secret or version ([`KeyNotFound`](ProviderErrorKind::KeyNotFound)),
    /// refused credentials ([`PermissionDenied`](ProviderErrorKind::PermissionDenied)),
    /// a secret scheduled for deletion or otherwise unreadable
    /// ([`Other`](ProviderErrorKind::Other)), a service that cannot be
    /// reached ([`Unavailable`](ProviderErrorKind::Unavailable)).
    pub async fn fetch(&self, name: &str, version: Version<'_>) -> Result<SecretValue, ProviderError> {
        let req = self.client.get_secret_value().secret_id(name);
        let req = match version {
            Version::Id(id) => req.version_id(id),
            Version::Stage(stage) => req.version_stage(stage),
        };
        let mut out = req
            .send()
            .await
            .map_err(|e: SdkError<_, _>| map_sdk_error_of(SECRETS_MANAGER_ID, e, ProviderErrorKind::Other))?;
        let read = out.version_id.take().ok_or_else(|| err(ProviderErrorKind::Other))?;
        if let Version::Id(id) = version
            && id != read
        {
            return Err(err(ProviderErrorKind::Other));
        }
        let shown = out.name.take().unwrap_or_else(|| name.to_string());
        if let Some(text) = out.secret_string.take() {
            return Ok(SecretValue::from_text(shown, read, SecretString::from(text)));
        }
        let blob = out.secret_binary.take().ok_or_else(|| err(ProviderErrorKind::Other))?;
        // The SDK's buffer is zeroized after the exact-size copy.
        let bytes = Zeroizing::new(blob.into_inner());
        let boxed: Box<[u8]> = bytes.as_slice().into();
        Ok(SecretValue::from_bytes(shown, read, SecretBox::new(boxed)))
    }
}
