//! AWS KMS (moto_server on 127.0.0.1) composes with lockbox's composites: a
//! keyring sealed under KMS across processes, and a data-key cache that calls
//! KMS once for many seals. Skips without the service (fails in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lockbox::secrecy::SecretString;
use lockbox_aws_kms::{AwsKms, AwsKmsConfig};

#[path = "../../../tests/support/composition.rs"]
mod composition;
#[path = "../../../tests/support/services.rs"]
mod services;

use services::service_env;

fn kms() -> Option<AwsKms> {
    let endpoint = service_env("LOCKBOX_TEST_KMS_ENDPOINT")?;
    let region = service_env("LOCKBOX_TEST_KMS_REGION")?;
    let id = service_env("LOCKBOX_TEST_KMS_ACCESS_KEY_ID")?;
    let secret = service_env("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY")?;
    let ca = std::fs::read(service_env("LOCKBOX_TEST_KMS_CA_CERT")?).unwrap();
    let config = AwsKmsConfig::new(region, id, SecretString::from(secret))
        .endpoint_url(endpoint)
        .ca_certificate_pem(ca);
    Some(AwsKms::new(&config, &service_env("LOCKBOX_TEST_KMS_KEY_ARN")?).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_keyring_sealed_under_kms_is_shared_and_rotated_across_processes() {
    let Some(kms) = kms() else { return };
    rt().block_on(async {
        if let Ok(path) = std::env::var(composition::CHILD_VAR) {
            return composition::keyring_child(&kms, path.as_ref()).await;
        }
        composition::keyring_under_master_across_processes(
            &kms,
            "a_keyring_sealed_under_kms_is_shared_and_rotated_across_processes",
        )
        .await;
    });
}

#[test]
fn a_caching_provider_over_kms_calls_it_once_for_many_seals() {
    let Some(kms) = kms() else { return };
    rt().block_on(composition::cache_calls_the_provider_once(kms.clone(), &kms));
}
