//! OpenBao Transit (the dev server on 127.0.0.1) composes with lockbox's
//! composites: a keyring sealed under Transit across processes, and a
//! data-key cache that calls Transit once for many seals. Skips without the
//! service (fails in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lockbox::secrecy::SecretString;
use lockbox_vault::{VaultConfig, VaultTransit};

#[path = "../../../tests/support/composition.rs"]
mod composition;
#[path = "../../../tests/support/services.rs"]
mod services;

use services::service_env;

async fn transit() -> Option<VaultTransit> {
    let addr = service_env("LOCKBOX_TEST_VAULT_ADDR")?;
    let token = service_env("LOCKBOX_TEST_VAULT_TOKEN")?;
    let ca = std::fs::read(service_env("LOCKBOX_TEST_VAULT_CA_CERT")?).unwrap();
    let key = service_env("LOCKBOX_TEST_VAULT_KEY")?;
    let config = VaultConfig::new(addr, SecretString::from(token), key).ca_certificate_pem(ca);
    Some(VaultTransit::connect(config).await.unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_keyring_sealed_under_openbao_is_shared_and_rotated_across_processes() {
    rt().block_on(async {
        let Some(transit) = transit().await else { return };
        if let Ok(path) = std::env::var(composition::CHILD_VAR) {
            return composition::keyring_child(&transit, path.as_ref()).await;
        }
        composition::keyring_under_master_across_processes(
            &transit,
            "a_keyring_sealed_under_openbao_is_shared_and_rotated_across_processes",
        )
        .await;
    });
}

#[test]
fn a_caching_provider_over_openbao_calls_it_once_for_many_seals() {
    rt().block_on(async {
        let Some(transit) = transit().await else { return };
        composition::cache_calls_the_provider_once(transit.clone(), &transit).await;
    });
}
