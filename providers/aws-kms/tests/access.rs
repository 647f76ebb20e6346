//! Access control over the AWS KMS provider, against the KMS API on
//! 127.0.0.1 (moto_server, `bash scripts/services.sh start`): a grant and an
//! audit layer and capability handles, through the async drivers (the
//! provider is async only). Without the service the test skips with a
//! reason, unless `LOCKBOX_REQUIRE_SERVICES=1` makes that a failure.
#![allow(clippy::unwrap_used)]

use lockbox::secrecy::SecretString;
use lockbox_aws_kms::{AwsKms, AwsKmsConfig};
use lockbox_testing::check_access_async;

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

#[test]
fn kms_behind_grant_audit_and_handles() {
    let (Some(endpoint), Some(region), Some(id), Some(secret), Some(ca), Some(key)) = (
        service_env("LOCKBOX_TEST_KMS_ENDPOINT"),
        service_env("LOCKBOX_TEST_KMS_REGION"),
        service_env("LOCKBOX_TEST_KMS_ACCESS_KEY_ID"),
        service_env("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY"),
        service_env("LOCKBOX_TEST_KMS_CA_CERT"),
        service_env("LOCKBOX_TEST_KMS_KEY_ARN"),
    ) else {
        return;
    };
    let config = AwsKmsConfig::new(region, id, SecretString::from(secret))
        .endpoint_url(endpoint)
        .ca_certificate_pem(std::fs::read(ca).unwrap());
    // One client, cloned for each layer and handle (a cheap, shared clone).
    let kms = AwsKms::new(&config, &key).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(check_access_async(|| kms.clone())).unwrap();
}
