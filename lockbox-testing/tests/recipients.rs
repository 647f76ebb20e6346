//! The conformance suite for lockbox's recipient and passphrase providers:
//! X25519 and X-Wing identities (which wrap to their own recipient and
//! unwrap) and passphrases, through the sync and the async entry points.
//!
//! A bare `Recipient` is not run through the suite: it is the wrapping half
//! of an identity and refuses every unwrap by design (`Unsupported`), which
//! `tests/recipients.rs` in the core crate checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lockbox::passphrase::Passphrase;
use lockbox::recipient::{Identity, RecipientKind};
use lockbox::secrecy::SecretString;
use lockbox_testing::{CHECKS, check_async_provider, check_provider};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn x25519_identity_passes_the_suite() {
    let id = Identity::generate_kind(RecipientKind::X25519).unwrap();
    let other = Identity::generate_kind(RecipientKind::X25519).unwrap();
    let report = check_provider(&id, &other).unwrap();
    assert_eq!(report.checks(), CHECKS);
    assert_eq!(report.provider_id(), "lockbox.x25519");
    assert_eq!(report.wrapped_len(), 81);
    assert_eq!(report.tampered_variants(), 81 * 2 + 2);
    let report = rt().block_on(check_async_provider(&id, &other)).unwrap();
    assert_eq!(report.checks(), CHECKS);
}

#[test]
fn xwing_identity_passes_the_suite() {
    let id = Identity::generate().unwrap();
    let other = Identity::generate().unwrap();
    let report = check_provider(&id, &other).unwrap();
    assert_eq!(report.checks(), CHECKS);
    assert_eq!(report.provider_id(), "lockbox.xwing");
    assert_eq!(report.wrapped_len(), 1169);
    // Longer than 512 bytes: the first and last 256 bytes, two bits each.
    assert_eq!(report.tampered_variants(), 512 * 2 + 2);
    let report = rt().block_on(check_async_provider(&id, &other)).unwrap();
    assert_eq!(report.checks(), CHECKS);
}

#[test]
fn passphrase_passes_the_suite() {
    // Test cost (8 KiB, 1 pass): the suite unwraps a few hundred times. The
    // limits are the defaults, so tampered cost fields are refused as over
    // the limits or fail authentication.
    let weak = lockbox::hazmat::argon2_params_unchecked(8, 1, 1).unwrap();
    let p = Passphrase::new(SecretString::from("correct horse battery staple"))
        .unwrap()
        .with_params(weak);
    let other = Passphrase::new(SecretString::from("Tr0ub4dor&3"))
        .unwrap()
        .with_label("other")
        .unwrap()
        .with_params(weak);
    let report = check_provider(&p, &other).unwrap();
    assert_eq!(report.checks(), CHECKS);
    assert_eq!(report.provider_id(), "lockbox.passphrase");
    assert_eq!(report.wrapped_len(), 93);
    assert_eq!(report.tampered_variants(), 93 * 2 + 2);
    let report = rt().block_on(check_async_provider(&p, &other)).unwrap();
    assert_eq!(report.checks(), CHECKS);
}
