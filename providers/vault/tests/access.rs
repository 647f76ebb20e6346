//! Access control over the Vault / OpenBao Transit provider, against an
//! OpenBao dev server on 127.0.0.1 (`bash scripts/services.sh start`): a
//! grant and an audit layer and capability handles, through the async
//! drivers (the provider is async only). Without the service the test skips
//! with a reason, unless `LOCKBOX_REQUIRE_SERVICES=1` makes that a failure.
#![allow(clippy::unwrap_used)]

use lockbox::secrecy::SecretString;
use lockbox_testing::check_access_async;
use lockbox_vault::{VaultConfig, VaultTransit};

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

#[test]
fn vault_behind_grant_audit_and_handles() {
    let (Some(addr), Some(token), Some(ca), Some(key)) = (
        service_env("LOCKBOX_TEST_VAULT_ADDR"),
        service_env("LOCKBOX_TEST_VAULT_TOKEN"),
        service_env("LOCKBOX_TEST_VAULT_CA_CERT"),
        service_env("LOCKBOX_TEST_VAULT_KEY"),
    ) else {
        return;
    };
    let config =
        VaultConfig::new(&addr, SecretString::from(token), &key).ca_certificate_pem(std::fs::read(ca).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // One client, cloned for each layer and handle.
        let transit = VaultTransit::connect(config).await.unwrap();
        check_access_async(|| transit.clone()).await.unwrap();
    });
}
