//! S3-compatible object storage (and every other backend of the
//! [`object_store`] crate) as an [`AsyncStore`] for lockbox's bulk rotation
//! engine ([`lockbox::rotation`]): census and migration jobs over a bucket.
//!
//! - **Listing**: `ListObjectsV2` with `start-after`, in key order (a job's
//!   checkpoint cursor resumes the listing where it stopped).
//! - **Header reads**: ranged `GET`s (`Range: bytes=0-4095`, then the exact
//!   header length if the header is longer), so a census or a header-only
//!   rewrap fetches kilobytes, not whole objects.
//! - **Write-if-unchanged**: every read returns the object's ETag as its
//!   [`VersionToken`]; writes are conditional `PUT`s with `If-Match` (S3
//!   conditional writes, [`S3ConditionalPut::ETagMatch`]), so an object
//!   changed by someone else since it was read is reported as
//!   [`StoreErrorKind::Conflict`], never overwritten. A header-only rewrap
//!   reads the object with `If-Match` too and writes the new header followed
//!   by the unchanged payload.
//!
//! The backend's own retries (with backoff, on throttling and 5xx) stay on;
//! what still fails after them is `Transient` for the engine's retry policy
//! when it was a timeout or a 5xx/429, else `Other`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox::rotation::{AsyncJob, Census, MigrationPolicy, TokioSleep};
//! use lockbox_object_store::{ObjectStorage, S3Settings};
//!
//! let bucket = ObjectStorage::s3(&S3Settings::new("https://s3.eu-west-1.amazonaws.com", "eu-west-1", "envelopes"))?;
//! let report = Census::new(MigrationPolicy::new()).run_async(&bucket, &TokioSleep).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::sync::Arc;

use futures::StreamExt;
use lockbox::provider::BoxFuture;
use lockbox::rotation::{AsyncStore, Fetched, ObjectMeta, StoreError, StoreErrorKind, VersionToken};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};

/// Settings for an S3 (or S3-compatible) bucket.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct S3Settings {
    /// The endpoint, `https://…` (plain `http://` only to loopback
    /// addresses, for tests).
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Access key id (else the usual environment and instance credentials
    /// of the `object_store` crate).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Extra CA certificates (PEM) to trust, for a private endpoint.
    pub ca_certificate_pem: Option<Vec<u8>>,
}

impl S3Settings {
    /// Settings for `bucket` at `endpoint` in `region`.
    pub fn new(endpoint: impl Into<String>, region: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            region: region.into(),
            bucket: bucket.into(),
            access_key_id: None,
            secret_access_key: None,
            ca_certificate_pem: None,
        }
    }

    /// Static credentials.
    #[must_use]
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret_access_key.into());
        self
    }

    /// Trusts this CA certificate (PEM) too.
    #[must_use]
    pub fn with_ca_certificate_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_certificate_pem = Some(pem);
        self
    }
}

/// Envelopes in object storage: an [`AsyncStore`] over any
/// [`ObjectStore`] (see the [crate docs](crate)).
#[derive(Clone, Debug)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// Keys are relative to this prefix (empty: the whole bucket).
    prefix: String,
}

impl ObjectStorage {
    /// Wraps an object store. For S3 it must do conditional puts with
    /// `If-Match` (`S3ConditionalPut::ETagMatch`, the default), or every
    /// write fails.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            prefix: String::new(),
        }
    }

    /// Only the objects under `prefix` (a "folder", say `tenants/acme/`),
    /// with keys relative to it.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        let mut p: String = prefix.into();
        if !p.is_empty() && !p.ends_with('/') {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    /// Creates object `key` with `bytes` if it does not exist yet (a
    /// conditional `PUT` with `If-None-Match: *`): for loading envelopes
    /// into a bucket; the engine itself only rewrites existing objects.
    pub async fn create(&self, key: &str, bytes: Vec<u8>) -> Result<VersionToken, StoreError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let r = self
            .store
            .put_opts(&self.path(key)?, PutPayload::from(bytes), options)
            .await
            .map_err(|e| error(key, e))?;
        version(key, r.e_tag)
    }

    /// The prefix keys are relative to (empty, or ending in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object store path of `key`.
    fn path(&self, key: &str) -> Result<Path, StoreError> {
        let full = [self.prefix.as_str(), key].concat();
        Path::parse(&full).map_err(|e| StoreError::new(StoreErrorKind::Other, key).with_source(e))
    }

    /// An S3 bucket (path-style requests; conditional writes with
    /// `If-Match`).
    pub fn s3(settings: &S3Settings) -> Result<Self, lockbox::Error> {
        lockbox::provider::net::require_tls_or_loopback(&settings.endpoint)?;
        let mut options = ClientOptions::new();
        if let Some(pem) = &settings.ca_certificate_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|e| lockbox::Error::key_load("S3 CA certificate", Some(Box::new(e))))?;
            options = options.with_root_certificate(cert);
        }
        if settings.endpoint.starts_with("http://") {
            options = options.with_allow_http(true);
        }
        let mut b = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(options);
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let s3 = b
            .build()
            .map_err(|e| lockbox::Error::key_load("S3 client configuration", Some(Box::new(e))))?;
        Ok(Self::new(Arc::new(s3)))
    }

    /// The object store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    async fn get(&self, key: &str, range: Option<u64>, if_match: Option<&VersionToken>) -> Result<Fetched, StoreError> {
        let path = self.path(key)?;
        let options = GetOptions {
            range: range.map(|len| GetRange::Bounded(0..len)),
            if_match: if_match.map(|v| v.as_str().to_string()),
            ..GetOptions::default()
        };
        let r = match self.store.get_opts(&path, options).await {
            Ok(r) => r,
            // An empty object has no byte 0 to range over: read it whole.
            Err(e) if range.is_some() && !matches!(e, object_store::Error::NotFound { .. }) => {
                let options = GetOptions {
                    if_match: if_match.map(|v| v.as_str().to_string()),
                    ..GetOptions::default()
                };
                self.store.get_opts(&path, options).await.map_err(|e| error(key, e))?
            }
            Err(e) => return Err(error(key, e)),
        };
        let size = r.meta.size;
        let version = version(key, r.meta.e_tag.clone())?;
        let bytes = r.bytes().await.map_err(|e| error(key, e))?;
        Ok(Fetched {
            bytes: bytes.to_vec(),
            size,
            version,
        })
    }

    async fn put(&self, key: &str, expected: &VersionToken, payload: PutPayload) -> Result<VersionToken, StoreError> {
        let options = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: Some(expected.as_str().to_string()),
                version: None,
            }),
            ..PutOptions::default()
        };
        let r = self
            .store
            .put_opts(&self.path(key)?, payload, options)
            .await
            .map_err(|e| error(key, e))?;
        version(key, r.e_tag)
    }
}

fn version(key: &str, e_tag: Option<String>) -> Result<VersionToken, StoreError> {
    e_tag
        .map(VersionToken::new)
        .ok_or_else(|| StoreError::new(StoreErrorKind::Other, key).with_source("the store returned no ETag"))
}

/// Maps the backend's error to the engine's kinds.
fn error(key: &str, e: object_store::Error) -> StoreError {
    let kind = match &e {
        object_store::Error::NotFound { .. } => StoreErrorKind::NotFound,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. } => {
            StoreErrorKind::Conflict
        }
        object_store::Error::Generic { source, .. } if transient(source.as_ref()) => StoreErrorKind::Transient,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, key).with_source(e)
}

/// A timeout, a connection failure, or a 5xx / 429 that outlasted the
/// backend's retries.
fn transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "connection",
        "503",
        "500",
        "502",
        "504",
        "429",
        "slow down",
        "slowdown",
    ]
    .iter()
    .any(|w| text.contains(w))
}

impl AsyncStore for ObjectStorage {
    fn list_after_async<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StoreError>> {
        Box::pin(async move {
            let prefix = match self.prefix.trim_end_matches('/') {
                "" => None,
                p => Some(Path::parse(p).map_err(|e| StoreError::new(StoreErrorKind::Other, p).with_source(e))?),
            };
            let mut stream = match after {
                Some(a) => self.store.list_with_offset(prefix.as_ref(), &self.path(a)?),
                None => self.store.list(prefix.as_ref()),
            };
            let mut out = Vec::with_capacity(limit.min(1000));
            while out.len() < limit {
                match stream.next().await {
                    Some(Ok(m)) => {
                        let full = m.location.as_ref();
                        let key = full.strip_prefix(self.prefix.as_str()).unwrap_or(full);
                        out.push(ObjectMeta {
                            key: key.to_string(),
                            size: m.size,
                        });
                    }
                    Some(Err(e)) => return Err(error("", e)),
                    None => break,
                }
            }
            Ok(out)
        })
    }

    fn read_prefix_async<'a>(&'a self, key: &'a str, len: u64) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(self.get(key, Some(len.max(1)), None))
    }

    fn read_async<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Fetched, StoreError>> {
        Box::pin(self.get(key, None, None))
    }

    fn replace_header_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        old_header_len: u64,
        new_header: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>> {
        Box::pin(async move {
            // S3 rewrites whole objects: fetch this exact version, splice.
            let old = self.get(key, None, Some(expected)).await?;
            let cut = usize::try_from(old_header_len).unwrap_or(usize::MAX);
            let payload = old.bytes.get(cut..).ok_or_else(|| {
                StoreError::new(StoreErrorKind::Conflict, key).with_source("shorter than its old header")
            })?;
            let mut body = Vec::with_capacity(new_header.len().saturating_add(payload.len()));
            body.extend_from_slice(new_header);
            body.extend_from_slice(payload);
            self.put(key, expected, PutPayload::from(body)).await
        })
    }

    fn write_if_unchanged_async<'a>(
        &'a self,
        key: &'a str,
        expected: &'a VersionToken,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<VersionToken, StoreError>> {
        Box::pin(self.put(key, expected, PutPayload::from(bytes.to_vec())))
    }
}
