//! Access control over the PKCS#11 provider, against the real SoftHSM2
//! token (`bash scripts/services.sh start`): a grant and an audit layer and
//! capability handles, through the sync drivers and the async ones.
//! Without the token the test skips with a reason, unless
//! `LOCKBOX_REQUIRE_SERVICES=1` makes that a failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lockbox::secrecy::SecretString;
use lockbox_pkcs11::Pkcs11Kek;
use lockbox_testing::{check_access, check_access_async};

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

#[test]
fn pkcs11_behind_grant_audit_and_handles_sync_and_async() {
    let (Some(module), Some(pin), Some(token), Some(key)) = (
        service_env("LOCKBOX_TEST_PKCS11_MODULE"),
        service_env("LOCKBOX_TEST_PKCS11_PIN"),
        service_env("LOCKBOX_TEST_PKCS11_TOKEN_LABEL"),
        service_env("LOCKBOX_TEST_PKCS11_KEY_LABEL"),
    ) else {
        return;
    };
    let kek = Arc::new(
        Pkcs11Kek::builder(&module)
            .token_label(&token)
            .pin(SecretString::from(pin))
            .key_label(&key)
            .open()
            .unwrap(),
    );
    check_access(|| kek.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(check_access_async(|| kek.clone())).unwrap();
}
