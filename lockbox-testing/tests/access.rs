//! The access check against the in-tree providers: a local key and a
//! keyring, through the sync drivers and the async ones.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{KeyId, LocalKek};
use lockbox_testing::{check_access, check_access_async};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

#[test]
fn local_kek_sync_and_async() {
    let kek = Arc::new(LocalKek::generate().unwrap());
    check_access(|| kek.clone()).unwrap();
    rt().block_on(check_access_async(|| kek.clone())).unwrap();
}

#[test]
fn keyring_sync_and_async() {
    let ring = Arc::new(Keyring::generate(KeyId::new("ring").unwrap(), UnixTime(1)).unwrap());
    check_access(|| ring.clone()).unwrap();
    rt().block_on(check_access_async(|| ring.clone())).unwrap();
}
