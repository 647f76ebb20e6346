//! The AWS KMS provider against a KMS API on 127.0.0.1 (moto_server, started
//! by `scripts/services.sh start kms`). Without the service these tests skip
//! with a printed reason; with `LOCKBOX_REQUIRE_SERVICES=1` they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::error::Error as _;
use std::time::Duration;

use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, DataKey, EncryptionContext, Error, ProviderError,
    ProviderErrorKind, ProviderIdentity, Suite, WrappedKey,
};
use lockbox_aws_kms::{AWS_KMS_PROVIDER_ID, AwsKms, AwsKmsConfig};
use lockbox_testing::check_async_provider;

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

struct Env {
    config: AwsKmsConfig,
    untrusted: AwsKmsConfig,
    key: String,
    other: String,
    disabled: String,
}

fn env() -> Option<Env> {
    let endpoint = service_env("LOCKBOX_TEST_KMS_ENDPOINT")?;
    let region = service_env("LOCKBOX_TEST_KMS_REGION")?;
    let id = service_env("LOCKBOX_TEST_KMS_ACCESS_KEY_ID")?;
    let secret = service_env("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY")?;
    let ca = std::fs::read(service_env("LOCKBOX_TEST_KMS_CA_CERT")?).unwrap();
    let untrusted = AwsKmsConfig::new(region, id, SecretString::from(secret)).endpoint_url(endpoint);
    Some(Env {
        config: untrusted.clone().ca_certificate_pem(ca),
        untrusted,
        key: service_env("LOCKBOX_TEST_KMS_KEY_ARN")?,
        other: service_env("LOCKBOX_TEST_KMS_OTHER_KEY_ARN")?,
        disabled: service_env("LOCKBOX_TEST_KMS_DISABLED_KEY_ARN")?,
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn binding(tenant: &str) -> BindingBuf {
    let ctx = EncryptionContext::new()
        .with("purpose", "test")
        .unwrap()
        .with_required("tenant", tenant)
        .unwrap();
    BindingBuf::new(Suite::Aes256Gcm, &ctx)
}

fn kind<T: std::fmt::Debug>(r: Result<T, ProviderError>) -> ProviderErrorKind {
    let e = r.unwrap_err();
    assert_eq!(e.provider_id(), AWS_KMS_PROVIDER_ID);
    e.kind()
}

#[test]
fn kms_passes_the_conformance_suite() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    let other = AwsKms::new(&env.config, &env.other).unwrap();
    let report = rt().block_on(check_async_provider(&kms, &other)).unwrap();
    assert_eq!(report.provider_id(), AWS_KMS_PROVIDER_ID);
    assert_eq!(report.checks().len(), 9, "{:?}", report.checks());
    assert!(report.offers_generate_data_key());
    assert!(report.offers_rewrap());
}

#[test]
fn connect_resolves_an_alias_to_the_key_arn() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        let kms = AwsKms::connect(&env.config, "alias/lockbox-test").await.unwrap();
        assert_eq!(kms.key_arn().as_str(), env.key);
        let by_arn = AwsKms::connect(&env.config, &env.key).await.unwrap();
        assert_eq!(by_arn.key_arn().as_str(), env.key);
        let missing = AwsKms::connect(&env.config, "alias/no-such-key").await;
        assert_eq!(kind(missing), ProviderErrorKind::KeyNotFound);
        let disabled = AwsKms::connect(&env.config, &env.disabled).await;
        assert_eq!(kind(disabled), ProviderErrorKind::KeyDisabled);
    });
}

#[test]
fn generate_data_key_gives_a_key_that_unwraps_and_seals() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    rt().block_on(async {
        let b = binding("acme");
        let (dek, wrapped) = kms
            .generate_data_key_async(lockbox::DataKeyRequest::new(b.as_binding()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(wrapped.provider_id(), AWS_KMS_PROVIDER_ID);
        assert_eq!(wrapped.key_id().as_str(), env.key);
        assert_eq!(wrapped.bytes()[0], 1);
        assert!(kms.matches(wrapped.as_ref()));
        let back = kms.unwrap_async(wrapped.as_ref(), b.as_binding()).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
        // Two calls give two different keys.
        let (dek2, _) = kms
            .generate_data_key_async(lockbox::DataKeyRequest::new(b.as_binding()))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(dek2.expose_secret(), dek.expose_secret());

        // The async sealer uses GenerateDataKey for its first provider.
        let ctx = EncryptionContext::new().with_required("tenant", "acme").unwrap();
        let env_bytes = AsyncSealer::new(&kms).seal(b"payload", &ctx).await.unwrap();
        let info = lockbox::inspect(&env_bytes).unwrap();
        assert_eq!(info.wrapped_keys()[0].key_id().as_str(), env.key);
        assert_eq!(AsyncOpener::new(&kms).open(&env_bytes, &ctx).await.unwrap(), b"payload");
    });
}

#[test]
fn reencrypt_rewraps_without_releasing_the_key() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    rt().block_on(async {
        let b = binding("acme");
        let dek = DataKey::generate().unwrap();
        let wrapped = kms.wrap_async(&dek, b.as_binding()).await.unwrap();
        let rewrapped = kms
            .rewrap_async(wrapped.as_ref(), b.as_binding())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(rewrapped.bytes(), wrapped.bytes());
        assert_eq!(rewrapped.key_id(), wrapped.key_id());
        let back = kms.unwrap_async(rewrapped.as_ref(), b.as_binding()).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
        // ReEncrypt checks the source context: a wrong binding is refused.
        let wrong = kms.rewrap_async(wrapped.as_ref(), binding("evil").as_binding()).await;
        assert_eq!(kind(wrong), ProviderErrorKind::Authentication);
        // The rewrapped key is still bound to the original binding.
        let wrong = kms.unwrap_async(rewrapped.as_ref(), binding("evil").as_binding()).await;
        assert_eq!(kind(wrong), ProviderErrorKind::Authentication);
    });
}

#[test]
fn wrong_context_is_refused() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    rt().block_on(async {
        let dek = DataKey::generate().unwrap();
        let wrapped = kms.wrap_async(&dek, binding("acme").as_binding()).await.unwrap();
        let other_tenant = kms.unwrap_async(wrapped.as_ref(), binding("evil").as_binding()).await;
        assert_eq!(kind(other_tenant), ProviderErrorKind::Authentication);
        let ctx = EncryptionContext::new()
            .with("purpose", "test")
            .unwrap()
            .with_required("tenant", "acme")
            .unwrap();
        let other_suite = BindingBuf::new(Suite::ChaCha20Poly1305, &ctx);
        let r = kms.unwrap_async(wrapped.as_ref(), other_suite.as_binding()).await;
        assert_eq!(kind(r), ProviderErrorKind::Authentication);

        // Through the envelope: the provider's error is the source.
        let sealed = AsyncSealer::new(&kms).seal(b"payload", &ctx).await.unwrap();
        // The whole context (opening is exact), with another tenant.
        let wrong = EncryptionContext::new()
            .with("purpose", "test")
            .unwrap()
            .with_required("tenant", "evil")
            .unwrap();
        match AsyncOpener::new(&kms).open(&sealed, &wrong).await {
            Err(Error::NoProviderCouldUnwrap {
                attempts: 1,
                source: Some(e),
                ..
            }) => {
                assert_eq!(e.kind(), ProviderErrorKind::Authentication);
                let sdk = e.source().expect("the SDK error is the source");
                assert!(format!("{sdk:?}").contains("InvalidCiphertextException"), "{sdk:?}");
            }
            other => panic!("expected NoProviderCouldUnwrap, got {other:?}"),
        }
    });
}

#[test]
fn a_ciphertext_of_another_key_is_refused() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    let other = AwsKms::new(&env.config, &env.other).unwrap();
    rt().block_on(async {
        let b = binding("acme");
        let dek = DataKey::generate().unwrap();
        let theirs = other.wrap_async(&dek, b.as_binding()).await.unwrap();
        assert!(!kms.matches(theirs.as_ref()));
        // Asked anyway, the provider does not send it to KMS.
        let r = kms.unwrap_async(theirs.as_ref(), b.as_binding()).await;
        assert_eq!(kind(r), ProviderErrorKind::KeyNotFound);
        // Relabelled as ours: Decrypt names our key ARN, so KMS refuses it
        // rather than decrypting under the key the ciphertext names.
        let forged = WrappedKey::new(
            AWS_KMS_PROVIDER_ID,
            kms.key_arn().clone(),
            theirs.key_version(),
            theirs.bytes().to_vec(),
        )
        .unwrap();
        let r = kms.unwrap_async(forged.as_ref(), b.as_binding()).await;
        assert_eq!(kind(r), ProviderErrorKind::Authentication);
    });
}

#[test]
fn a_disabled_key_is_refused() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        // `connect` checks the key state with DescribeKey.
        let e = AwsKms::connect(&env.config, &env.disabled).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::KeyDisabled);
        assert_eq!(e.provider_id(), AWS_KMS_PROVIDER_ID);
        // moto does not enforce the disabled state on Encrypt / Decrypt /
        // GenerateDataKey (real KMS answers DisabledException, which maps to
        // KeyDisabled: unit test `error_codes_map_to_kinds`), so a provider
        // built without `connect` is not checked here.
    });
}

#[test]
fn the_server_certificate_is_verified() {
    let Some(env) = env() else { return };
    // The test server's CA is not among the platform's roots: TLS fails, so
    // KMS is unreachable, and the SDK's error says why.
    rt().block_on(async {
        let e = AwsKms::connect(&env.untrusted, &env.key).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
        let mut chain = String::new();
        let mut next = e.source();
        while let Some(s) = next {
            chain.push_str(&format!("{s} / {s:?}\n"));
            next = s.source();
        }
        assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    });
}

#[test]
fn an_unreachable_endpoint_is_unavailable() {
    // Needs no service: a port on 127.0.0.1 that nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = AwsKmsConfig::new("us-east-1", "id", SecretString::from("secret"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(10));
    let kms = AwsKms::new(&config, "arn:aws:kms:us-east-1:111122223333:key/k").unwrap();
    rt().block_on(async {
        let dek = DataKey::generate().unwrap();
        let e = kms.wrap_async(&dek, binding("acme").as_binding()).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
        assert!(e.source().is_some());
        let sealed = AsyncSealer::new(&kms)
            .seal(b"x", &EncryptionContext::new())
            .await
            .unwrap_err();
        match sealed {
            Error::Provider(p) => assert_eq!(p.kind(), ProviderErrorKind::Unavailable),
            other => panic!("expected a provider error, got {other:?}"),
        }
        let e = AwsKms::connect(&config, "alias/x").await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
    });
}

#[test]
fn debug_shows_no_credentials() {
    let Some(env) = env() else { return };
    let kms = AwsKms::new(&env.config, &env.key).unwrap();
    let secret = service_env("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY").unwrap();
    for shown in [format!("{kms:?}"), format!("{:?}", env.config)] {
        assert!(!shown.contains(&secret), "{shown}");
    }
    assert!(format!("{kms:?}").contains(&env.key));
}
