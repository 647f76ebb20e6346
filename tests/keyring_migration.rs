//! Migrating envelopes between keyring versions with the rewrap engine:
//! rotation then rewrap (payload byte-identical), compromise then rewrap or
//! re-encrypt through the migration provider, batches with per-item results.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod keyring_common;

use keyring_common::t;
use lockbox::keyring::{Keyring, RotationPolicy};
use lockbox::{EncryptionContext, Error, KeyId, KeyVersion, Opener, ProviderErrorKind, Reencryptor, Rewrapper, Sealer};

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new().with_required("tenant", tenant).unwrap()
}

fn ring() -> Keyring {
    Keyring::generate(KeyId::new("m").unwrap(), t(0))
        .unwrap()
        .with_policy(RotationPolicy::new().min_destruction_delay(0))
}

fn payload(env: &[u8]) -> &[u8] {
    &env[lockbox::inspect(env).unwrap().header_len()..]
}

fn version_of(env: &[u8]) -> KeyVersion {
    lockbox::inspect(env).unwrap().wrapped_keys()[0].key_version()
}

#[test]
fn rewrap_moves_envelopes_to_the_new_primary_with_the_payload_untouched() {
    let mut r = ring();
    let c = ctx("acme");
    let old = lockbox::seal(&r, &[7u8; 100_000], &c).unwrap();
    r.rotate(t(1)).unwrap();
    assert!(r.needs_migration(&lockbox::inspect(&old).unwrap()));
    let new = Rewrapper::new(&r).wrap_with(&r).rewrap(&old, &c).unwrap();
    assert_eq!(payload(&new), payload(&old));
    assert_eq!(lockbox::inspect(&new).unwrap().wrapped_keys().len(), 1);
    assert_eq!(version_of(&new), KeyVersion(2));
    assert!(!r.needs_migration(&lockbox::inspect(&new).unwrap()));
    // v1 can go; the rewrapped envelope opens, the original no longer does.
    r.schedule_destruction(KeyVersion(1), t(2), t(2)).unwrap();
    r.destroy(KeyVersion(1), t(2)).unwrap();
    assert_eq!(lockbox::open(&r, &new, &c).unwrap(), vec![7u8; 100_000]);
    match lockbox::open(&r, &old, &c) {
        Err(Error::NoProviderCouldUnwrap { source: Some(e), .. }) => {
            assert_eq!(e.kind(), ProviderErrorKind::KeyDestroyed)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_a_compromise_only_the_migration_provider_can_rewrap_or_reencrypt() {
    let mut r = ring();
    let c = ctx("acme");
    let old = lockbox::seal(&r, b"ledger", &c).unwrap();
    assert_eq!(r.compromised(KeyVersion(1), t(1)).unwrap(), Some(KeyVersion(2)));
    // The keyring itself refuses to unwrap for the rewrap...
    match Rewrapper::new(&r).wrap_with(&r).rewrap(&old, &c) {
        Err(Error::NoProviderCouldUnwrap { source: Some(e), .. }) => {
            assert_eq!(e.kind(), ProviderErrorKind::KeyCompromised);
        }
        other => panic!("{other:?}"),
    }
    // ...the migration provider does.
    let m = r.migration_provider();
    let rewrapped = Rewrapper::new(&m).wrap_with(&r).rewrap(&old, &c).unwrap();
    assert_eq!(payload(&rewrapped), payload(&old));
    assert_eq!(version_of(&rewrapped), KeyVersion(2));
    assert_eq!(lockbox::open(&r, &rewrapped, &c).unwrap(), b"ledger");
    // Re-encrypt: new data key, new message id, new payload.
    let reencrypted = Reencryptor::new(Opener::new(&m), Sealer::new(&r))
        .reencrypt(&old, &c)
        .unwrap();
    assert_ne!(payload(&reencrypted), payload(&old));
    assert_ne!(
        lockbox::inspect(&reencrypted).unwrap().message_id(),
        lockbox::inspect(&old).unwrap().message_id()
    );
    assert_eq!(version_of(&reencrypted), KeyVersion(2));
    assert_eq!(lockbox::open(&r, &reencrypted, &c).unwrap(), b"ledger");
    // Once destroyed, not even the migration provider opens it.
    r.schedule_destruction(KeyVersion(1), t(2), t(2)).unwrap();
    r.destroy(KeyVersion(1), t(2)).unwrap();
    assert!(
        Rewrapper::new(&r.migration_provider())
            .wrap_with(&r)
            .rewrap(&old, &c)
            .is_err()
    );
}

#[test]
fn batch_migration_reports_each_item() {
    let mut r = ring();
    let (a, b) = (ctx("a"), ctx("b"));
    let e1 = lockbox::seal(&r, b"one", &a).unwrap();
    let e2 = lockbox::seal(&r, b"two", &b).unwrap();
    r.rotate(t(1)).unwrap();
    let e3 = lockbox::seal(&r, b"three", &a).unwrap();
    let mut corrupt = e2.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let items: Vec<(&[u8], &EncryptionContext)> = vec![(&e1, &a), (&e2, &a), (&e3, &a), (&corrupt, &b)];
    let selected: Vec<_> = items
        .iter()
        .filter(|(e, _)| r.needs_migration(&lockbox::inspect(e).unwrap()))
        .copied()
        .collect();
    assert_eq!(selected.len(), 3, "e3 is already under the primary");
    let out = Rewrapper::new(&r.migration_provider())
        .wrap_with(&r)
        .verify_payload(true)
        .rewrap_batch(selected);
    assert_eq!(out.len(), 3);
    assert_eq!(lockbox::open(&r, out[0].as_ref().unwrap(), &a).unwrap(), b"one");
    assert!(out[1].is_err(), "wrong context for e2");
    assert!(out[2].is_err(), "corrupt payload");
}
