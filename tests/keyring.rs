//! The versioned keyring: every lifecycle transition (legal and illegal), the
//! keyring as a provider, compromise and migration, the rotation policy, the
//! audit hook, and destruction.
#![allow(
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod keyring_common;

use std::sync::{Arc, Mutex};

use keyring_common::{t, version_keys};
use lockbox::keyring::{
    AuditEvent, AuditSink, KEYRING_PROVIDER_ID, KeyState, KeyStateKind, Keyring, KeyringAction as AuditAction,
    KeyringError, LifecycleOp, RotationPolicy, UnixTime,
};
use lockbox::{
    BindingBuf, EncryptionContext, Error, KeyEncryptionProvider, KeyId, KeyVersion, LocalKek, ProviderError,
    ProviderErrorKind, ProviderIdentity, Suite, WrappedKey,
};

const WEEK: u64 = 7 * 24 * 3600;

fn ring() -> Keyring {
    Keyring::generate(KeyId::new("payments").unwrap(), t(0)).unwrap()
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "test")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn keyring_err(e: Error) -> KeyringError {
    match e {
        Error::Keyring(k) => k,
        other => panic!("expected a keyring error, got {other:?}"),
    }
}

/// The provider error of a failed open, and the keyring error under it.
fn open_failure(p: &dyn KeyEncryptionProvider, env: &[u8]) -> (ProviderErrorKind, String) {
    match lockbox::open(p, env, &ctx()) {
        Err(Error::NoProviderCouldUnwrap {
            attempts: 1,
            source: Some(pe),
            ..
        }) => {
            let src = std::error::Error::source(&pe).expect("keyring error as source");
            assert!(src.downcast_ref::<KeyringError>().is_some());
            (pe.kind(), src.to_string())
        }
        other => panic!("expected NoProviderCouldUnwrap, got {other:?}"),
    }
}

fn keyring_source(pe: &ProviderError) -> &KeyringError {
    std::error::Error::source(pe)
        .and_then(|s| s.downcast_ref::<KeyringError>())
        .expect("keyring error as source")
}

#[test]
fn a_new_keyring_has_one_primary_version() {
    let r = ring();
    assert_eq!(r.id().as_str(), "payments");
    assert_eq!(r.primary(), KeyVersion(1));
    assert_eq!(r.minimum_decryption_version(), KeyVersion(1));
    assert_eq!(r.generation(), 0);
    let v: Vec<_> = r.versions().collect();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].version, KeyVersion(1));
    assert_eq!(v[0].created, t(0));
    assert_eq!(v[0].state, KeyState::Enabled);
    assert!(v[0].primary && !v[0].compromised);
    assert_eq!(r.policy(), RotationPolicy::new());
    assert!(matches!(
        keyring_err(r.version(KeyVersion(2)).unwrap_err()),
        KeyringError::UnknownVersion(KeyVersion(2))
    ));
}

#[test]
fn wraps_with_the_primary_and_names_it() {
    let r = ring();
    let env = lockbox::seal(&r, b"hello", &ctx()).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let w = &info.wrapped_keys()[0];
    assert_eq!(w.provider_id(), KEYRING_PROVIDER_ID);
    assert_eq!(w.key_id().as_str(), "payments");
    assert_eq!(w.key_version(), KeyVersion(1));
    assert_eq!(w.bytes().len(), 61);
    assert_eq!(w.bytes()[0], 1);
    assert!(r.matches(w.as_ref()));
    assert_eq!(lockbox::open(&r, &env, &ctx()).unwrap(), b"hello");
    assert!(!r.needs_migration(&info));
}

#[test]
fn a_wrapped_key_is_bound_to_its_context_and_version() {
    let mut r = ring();
    let env = lockbox::seal(&r, b"x", &ctx()).unwrap();
    let wrong = EncryptionContext::new()
        .with("purpose", "test")
        .unwrap()
        .with_required("tenant", "evil")
        .unwrap();
    match lockbox::open(&r, &env, &wrong) {
        Err(Error::NoProviderCouldUnwrap { source: Some(pe), .. }) => {
            assert_eq!(pe.kind(), ProviderErrorKind::Authentication);
            assert!(matches!(keyring_source(&pe), KeyringError::UnwrapFailed(KeyVersion(1))));
        }
        other => panic!("{other:?}"),
    }
    // The same bytes relabelled as version 2 do not unwrap under version 2's key.
    r.add_version(t(1)).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let w = &info.wrapped_keys()[0];
    let relabelled = WrappedKey::new(
        KEYRING_PROVIDER_ID,
        w.key_id().clone(),
        KeyVersion(2),
        w.bytes().to_vec(),
    )
    .unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let e = r.unwrap(relabelled.as_ref(), b.as_binding()).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Authentication);
    // Tampered bytes fail authentication; so do wrong lengths and wrap versions.
    for mutate in [
        |v: &mut Vec<u8>| v[20] ^= 1,
        |v: &mut Vec<u8>| v[0] = 2,
        |v: &mut Vec<u8>| v.truncate(60),
        |v: &mut Vec<u8>| v.push(0),
    ] {
        let mut bytes = w.bytes().to_vec();
        mutate(&mut bytes);
        let bad = WrappedKey::new(KEYRING_PROVIDER_ID, w.key_id().clone(), KeyVersion(1), bytes).unwrap();
        let e = r.unwrap(bad.as_ref(), b.as_binding()).unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Authentication);
    }
    // The untouched key still unwraps.
    assert!(r.unwrap(w.as_ref(), b.as_binding()).is_ok());
}

#[test]
fn wrapped_keys_of_other_providers_and_unknown_versions_are_not_found() {
    let r = ring();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let other = WrappedKey::new(
        KEYRING_PROVIDER_ID,
        KeyId::new("other").unwrap(),
        KeyVersion(1),
        vec![1; 61],
    )
    .unwrap();
    assert!(!r.matches(other.as_ref()));
    let e = r.unwrap(other.as_ref(), b.as_binding()).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::KeyNotFound);
    assert!(matches!(keyring_source(&e), KeyringError::NotThisKeyring(_)));

    let local = WrappedKey::new(
        "lockbox.local",
        KeyId::new("payments").unwrap(),
        KeyVersion(1),
        vec![1; 61],
    )
    .unwrap();
    assert!(!r.matches(local.as_ref()));
    assert_eq!(
        r.unwrap(local.as_ref(), b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::KeyNotFound
    );

    for v in [0, 2, u32::MAX] {
        let w = WrappedKey::new(
            KEYRING_PROVIDER_ID,
            KeyId::new("payments").unwrap(),
            KeyVersion(v),
            vec![1; 61],
        )
        .unwrap();
        assert!(r.matches(w.as_ref()));
        let e = r.unwrap(w.as_ref(), b.as_binding()).unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::KeyNotFound);
        assert!(matches!(keyring_source(&e), KeyringError::UnknownVersion(KeyVersion(x)) if *x == v));
    }
}

#[test]
fn staged_add_then_promote() {
    let mut r = ring();
    let old = lockbox::seal(&r, b"old", &ctx()).unwrap();
    let v2 = r.add_version(t(10)).unwrap();
    assert_eq!(v2, KeyVersion(2));
    // Staged: enabled but not primary; new envelopes still use v1.
    assert_eq!(r.primary(), KeyVersion(1));
    let info = r.version(v2).unwrap();
    assert_eq!(
        (info.state, info.primary, info.created),
        (KeyState::Enabled, false, t(10))
    );
    let env = lockbox::seal(&r, b"x", &ctx()).unwrap();
    assert_eq!(
        lockbox::inspect(&env).unwrap().wrapped_keys()[0].key_version(),
        KeyVersion(1)
    );

    r.promote(v2, t(20)).unwrap();
    assert_eq!(r.primary(), v2);
    let env2 = lockbox::seal(&r, b"new", &ctx()).unwrap();
    assert_eq!(lockbox::inspect(&env2).unwrap().wrapped_keys()[0].key_version(), v2);
    // The old primary stays enabled: it unwraps and can be promoted back.
    assert_eq!(r.version(KeyVersion(1)).unwrap().state, KeyState::Enabled);
    assert_eq!(lockbox::open(&r, &old, &ctx()).unwrap(), b"old");
    assert!(r.needs_migration(&lockbox::inspect(&old).unwrap()));
    assert!(!r.needs_migration(&lockbox::inspect(&env2).unwrap()));
    r.promote(KeyVersion(1), t(30)).unwrap();
    assert_eq!(r.primary(), KeyVersion(1));
}

#[test]
fn rotate_adds_and_promotes_in_one_call() {
    let mut r = ring();
    assert_eq!(r.rotate(t(5)).unwrap(), KeyVersion(2));
    assert_eq!(r.rotate(t(6)).unwrap(), KeyVersion(3));
    assert_eq!(r.primary(), KeyVersion(3));
    let primaries: Vec<_> = r.versions().filter(|v| v.primary).map(|v| v.version).collect();
    assert_eq!(primaries, [KeyVersion(3)]);
    assert_eq!(r.version(KeyVersion(3)).unwrap().created, t(6));
}

/// The states a non-primary version (or the primary) can be put in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    Enabled,
    DecryptOnly,
    Disabled,
    Scheduled,
    Destroyed,
    Primary,
    Compromised,
}

const SETUPS: [Setup; 7] = [
    Setup::Enabled,
    Setup::DecryptOnly,
    Setup::Disabled,
    Setup::Scheduled,
    Setup::Destroyed,
    Setup::Primary,
    Setup::Compromised,
];

/// A keyring with v1 (non-primary) in the given state, v2 primary; returns the
/// version under test.
fn ring_with(s: Setup) -> (Keyring, KeyVersion) {
    let mut r = ring();
    r.rotate(t(1)).unwrap();
    let v1 = KeyVersion(1);
    match s {
        Setup::Enabled => {}
        Setup::DecryptOnly => r.set_decrypt_only(v1, t(2)).unwrap(),
        Setup::Disabled => r.disable(v1, t(2)).unwrap(),
        Setup::Scheduled => r.schedule_destruction(v1, t(2 + WEEK), t(2)).unwrap(),
        Setup::Destroyed => {
            r.schedule_destruction(v1, t(2 + WEEK), t(2)).unwrap();
            r.destroy(v1, t(2 + WEEK)).unwrap();
        }
        Setup::Primary => return (r, KeyVersion(2)),
        Setup::Compromised => assert_eq!(r.compromised(v1, t(2)).unwrap(), None),
    }
    (r, v1)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Ok(KeyStateKind),
    Illegal(KeyStateKind),
    Destroyed,
    IsPrimary,
    Compromised,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Promote,
    Enable,
    DecryptOnly,
    Disable,
    Schedule,
    Cancel,
    Destroy,
    Compromise,
}

fn apply(r: &mut Keyring, op: Op, v: KeyVersion) -> Result<(), Error> {
    let now = t(3 + WEEK); // every scheduled destruction is due
    match op {
        Op::Promote => r.promote(v, now),
        Op::Enable => r.enable(v, now),
        Op::DecryptOnly => r.set_decrypt_only(v, now),
        Op::Disable => r.disable(v, now),
        Op::Schedule => r.schedule_destruction(v, now.plus_secs(WEEK), now),
        Op::Cancel => r.cancel_destruction(v, now),
        Op::Destroy => r.destroy(v, now),
        Op::Compromise => r.compromised(v, now).map(|_| ()),
    }
}

#[test]
fn every_transition_from_every_state() {
    use KeyStateKind::{DecryptOnly as D, Destroyed as T, Disabled as X, Enabled as E, ScheduledForDestruction as S};
    use Want::{Compromised as C, Destroyed as Gone, Illegal as No, IsPrimary as P, Ok as Yes};
    // Columns follow SETUPS: enabled, decrypt-only, disabled, scheduled,
    // destroyed, primary, compromised (decrypt-only).
    let table: [(Op, LifecycleOp, [Want; 7]); 8] = [
        (
            Op::Promote,
            LifecycleOp::Promote,
            [Yes(E), No(D), No(X), No(S), Gone, Yes(E), C],
        ),
        (
            Op::Enable,
            LifecycleOp::Enable,
            [Yes(E), Yes(E), Yes(E), No(S), Gone, Yes(E), C],
        ),
        (
            Op::DecryptOnly,
            LifecycleOp::DecryptOnly,
            [Yes(D), Yes(D), Yes(D), No(S), Gone, P, Yes(D)],
        ),
        (
            Op::Disable,
            LifecycleOp::Disable,
            [Yes(X), Yes(X), Yes(X), No(S), Gone, P, Yes(X)],
        ),
        (
            Op::Schedule,
            LifecycleOp::ScheduleDestruction,
            [Yes(S), Yes(S), Yes(S), No(S), Gone, P, Yes(S)],
        ),
        (
            Op::Cancel,
            LifecycleOp::CancelDestruction,
            [No(E), No(D), No(X), Yes(X), Gone, No(E), No(D)],
        ),
        (
            Op::Destroy,
            LifecycleOp::Destroy,
            [No(E), No(D), No(X), Yes(T), Gone, No(E), No(D)],
        ),
        (
            Op::Compromise,
            LifecycleOp::Compromise,
            [Yes(D), Yes(D), Yes(X), Yes(S), Gone, Yes(D), Yes(D)],
        ),
    ];
    let mut checked = 0;
    for (op, lop, row) in table {
        for (setup, want) in SETUPS.into_iter().zip(row) {
            let (mut r, v) = ring_with(setup);
            let before = r.version(v).unwrap();
            let primary_before = r.primary();
            let got = apply(&mut r, op, v);
            let after = r.version(v).unwrap();
            let case = format!("{op:?} on {setup:?}");
            match want {
                Want::Ok(kind) => {
                    got.unwrap_or_else(|e| panic!("{case}: {e}"));
                    assert_eq!(after.state.kind(), kind, "{case}");
                }
                _ => {
                    let e = keyring_err(got.expect_err(&case));
                    match (want, &e) {
                        (Want::Illegal(k), KeyringError::IllegalTransition { version, state, op: o }) => {
                            assert_eq!((*version, *state, *o), (v, k, lop), "{case}");
                            assert!(e.to_string().contains(&k.to_string()), "{case}: {e}");
                        }
                        (Want::Destroyed, KeyringError::Destroyed(x)) => assert_eq!(*x, v),
                        (Want::IsPrimary, KeyringError::IsPrimary(x)) => assert_eq!(*x, v),
                        (Want::Compromised, KeyringError::Compromised(x)) => assert_eq!(*x, v),
                        _ => panic!("{case}: wanted {want:?}, got {e:?}"),
                    }
                    // A refused operation changes nothing.
                    assert_eq!(after, before, "{case}");
                    assert_eq!(r.primary(), primary_before, "{case}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 56);
}

#[test]
fn compromising_the_primary_promotes_a_new_version_at_once() {
    let (mut r, v2) = ring_with(Setup::Primary);
    let env = lockbox::seal(&r, b"secret", &ctx()).unwrap();
    assert_eq!(r.compromised(v2, t(10)).unwrap(), Some(KeyVersion(3)));
    assert_eq!(r.primary(), KeyVersion(3));
    let info = r.version(v2).unwrap();
    assert!(info.compromised && !info.primary);
    assert_eq!(info.state, KeyState::DecryptOnly);
    // Again: nothing changes, no new version.
    assert_eq!(r.compromised(v2, t(11)).unwrap(), None);
    assert_eq!(r.versions().count(), 3);
    // It never wraps again.
    let new = lockbox::seal(&r, b"x", &ctx()).unwrap();
    assert_eq!(
        lockbox::inspect(&new).unwrap().wrapped_keys()[0].key_version(),
        KeyVersion(3)
    );
    // Ordinary opens refuse it...
    let (kind, msg) = open_failure(&r, &env);
    assert_eq!(kind, ProviderErrorKind::KeyCompromised);
    assert!(msg.contains("compromised"), "{msg}");
    // ...the migration provider opens it, and re-encrypting moves it to v3.
    let info = lockbox::inspect(&env).unwrap();
    assert!(r.needs_migration(&info) && r.uses_compromised_version(&info));
    let m = r.migration_provider();
    assert_eq!(m.provider_id(), KEYRING_PROVIDER_ID);
    let pt = lockbox::open(&m, &env, &ctx()).unwrap();
    assert_eq!(pt, b"secret");
    let migrated = lockbox::seal(&r, &pt, &ctx()).unwrap();
    let info = lockbox::inspect(&migrated).unwrap();
    assert!(!r.needs_migration(&info) && !r.uses_compromised_version(&info));
    assert_eq!(lockbox::open(&r, &migrated, &ctx()).unwrap(), b"secret");
    // The migration provider wraps with the primary too.
    let via_m = lockbox::seal(&m, b"y", &ctx()).unwrap();
    assert_eq!(
        lockbox::inspect(&via_m).unwrap().wrapped_keys()[0].key_version(),
        KeyVersion(3)
    );
    assert_eq!(lockbox::open(&r, &via_m, &ctx()).unwrap(), b"y");
}

#[test]
fn the_migration_provider_still_refuses_unusable_versions() {
    for (setup, kind) in [
        (Setup::Disabled, ProviderErrorKind::KeyDisabled),
        (Setup::Scheduled, ProviderErrorKind::KeyDisabled),
        (Setup::Destroyed, ProviderErrorKind::KeyDestroyed),
    ] {
        let mut r = ring();
        let env = lockbox::seal(&r, b"x", &ctx()).unwrap();
        r.rotate(t(1)).unwrap();
        r.compromised(KeyVersion(1), t(1)).unwrap();
        let (mut r2, _) = (r, ());
        match setup {
            Setup::Disabled => r2.disable(KeyVersion(1), t(2)).unwrap(),
            Setup::Scheduled => r2.schedule_destruction(KeyVersion(1), t(2 + WEEK), t(2)).unwrap(),
            _ => {
                r2.schedule_destruction(KeyVersion(1), t(2 + WEEK), t(2)).unwrap();
                r2.destroy(KeyVersion(1), t(2 + WEEK)).unwrap();
            }
        }
        let m = r2.migration_provider();
        assert_eq!(open_failure(&m, &env).0, kind, "{setup:?}");
    }
}

#[test]
fn unwrap_refusals_name_the_reason() {
    // (setup of v1 after sealing under it, expected kind, text in the message)
    let cases: [(&str, ProviderErrorKind, &str); 6] = [
        ("disabled", ProviderErrorKind::KeyDisabled, "disabled"),
        ("scheduled", ProviderErrorKind::KeyDisabled, "scheduled for destruction"),
        ("destroyed", ProviderErrorKind::KeyDestroyed, "destroyed"),
        (
            "below-minimum",
            ProviderErrorKind::KeyDisabled,
            "below the minimum decryption version v2",
        ),
        ("trimmed", ProviderErrorKind::KeyDestroyed, "trimmed"),
        ("compromised", ProviderErrorKind::KeyCompromised, "compromised"),
    ];
    for (case, kind, text) in cases {
        let mut r = ring();
        let env = lockbox::seal(&r, b"x", &ctx()).unwrap();
        r.rotate(t(1)).unwrap();
        let v1 = KeyVersion(1);
        match case {
            "disabled" => r.disable(v1, t(2)).unwrap(),
            "scheduled" => r.schedule_destruction(v1, t(2 + WEEK), t(2)).unwrap(),
            "destroyed" => {
                r.schedule_destruction(v1, t(2 + WEEK), t(2)).unwrap();
                r.destroy(v1, t(2 + WEEK)).unwrap();
            }
            "below-minimum" => r.set_minimum_decryption_version(KeyVersion(2), t(2)).unwrap(),
            "trimmed" => {
                r.set_minimum_decryption_version(KeyVersion(2), t(2)).unwrap();
                assert_eq!(r.trim(t(3)).unwrap(), 1);
            }
            _ => {
                r.compromised(v1, t(2)).unwrap();
            }
        }
        let (k, msg) = open_failure(&r, &env);
        assert_eq!(k, kind, "{case}");
        assert!(msg.contains(text), "{case}: {msg}");
    }
}

#[test]
fn decrypt_only_unwraps_and_reenabled_versions_open_again() {
    let mut r = ring();
    let env = lockbox::seal(&r, b"x", &ctx()).unwrap();
    r.rotate(t(1)).unwrap();
    let v1 = KeyVersion(1);
    r.set_decrypt_only(v1, t(2)).unwrap();
    assert_eq!(lockbox::open(&r, &env, &ctx()).unwrap(), b"x");
    // Decrypt-only may not be promoted.
    assert!(matches!(
        keyring_err(r.promote(v1, t(2)).unwrap_err()),
        KeyringError::IllegalTransition {
            state: KeyStateKind::DecryptOnly,
            op: LifecycleOp::Promote,
            ..
        }
    ));
    r.schedule_destruction(v1, t(3 + WEEK), t(3)).unwrap();
    assert!(lockbox::open(&r, &env, &ctx()).is_err());
    r.cancel_destruction(v1, t(4)).unwrap();
    assert_eq!(r.version(v1).unwrap().state, KeyState::Disabled);
    assert!(lockbox::open(&r, &env, &ctx()).is_err());
    r.enable(v1, t(5)).unwrap();
    assert_eq!(lockbox::open(&r, &env, &ctx()).unwrap(), b"x");
}

#[test]
fn destruction_timing_is_enforced() {
    let (mut r, v1) = ring_with(Setup::Enabled);
    // At least the policy's minimum delay ahead (7 days by default).
    match keyring_err(r.schedule_destruction(v1, t(10 + WEEK - 1), t(10)).unwrap_err()) {
        KeyringError::DestructionTooSoon {
            min_delay_secs,
            earliest,
        } => assert_eq!((min_delay_secs, earliest), (WEEK, t(10 + WEEK))),
        e => panic!("{e:?}"),
    }
    assert_eq!(r.version(v1).unwrap().state, KeyState::Enabled);
    r.schedule_destruction(v1, t(10 + WEEK), t(10)).unwrap();
    assert_eq!(
        r.version(v1).unwrap().state,
        KeyState::ScheduledForDestruction {
            not_before: t(10 + WEEK)
        }
    );
    match keyring_err(r.destroy(v1, t(10 + WEEK - 1)).unwrap_err()) {
        KeyringError::DestructionNotDue { version, not_before } => {
            assert_eq!((version, not_before), (v1, t(10 + WEEK)))
        }
        e => panic!("{e:?}"),
    }
    r.destroy(v1, t(10 + WEEK)).unwrap();
    assert_eq!(r.version(v1).unwrap().state, KeyState::Destroyed { at: t(10 + WEEK) });

    // A zero delay allows immediate destruction.
    let mut r = ring().with_policy(RotationPolicy::new().min_destruction_delay(0));
    r.rotate(t(1)).unwrap();
    r.schedule_destruction(KeyVersion(1), t(1), t(1)).unwrap();
    r.destroy(KeyVersion(1), t(1)).unwrap();
}

#[test]
fn minimum_decryption_version_and_trim() {
    let mut r = ring();
    r.rotate(t(1)).unwrap();
    r.rotate(t(2)).unwrap(); // v3 primary
    match keyring_err(r.set_minimum_decryption_version(KeyVersion(4), t(3)).unwrap_err()) {
        KeyringError::MinimumAbovePrimary { minimum, primary } => {
            assert_eq!((minimum, primary), (KeyVersion(4), KeyVersion(3)));
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        keyring_err(r.set_minimum_decryption_version(KeyVersion(0), t(3)).unwrap_err()),
        KeyringError::MinimumBelowTrimmed { .. }
    ));
    r.set_minimum_decryption_version(KeyVersion(3), t(3)).unwrap();
    // Lowering it again is allowed until the versions are trimmed.
    r.set_minimum_decryption_version(KeyVersion(2), t(3)).unwrap();
    assert_eq!(r.minimum_decryption_version(), KeyVersion(2));
    // A version below the minimum cannot be promoted.
    match keyring_err(r.promote(KeyVersion(1), t(4)).unwrap_err()) {
        KeyringError::BelowMinimum { version, minimum } => {
            assert_eq!((version, minimum), (KeyVersion(1), KeyVersion(2)))
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(r.trim(t(5)).unwrap(), 1);
    assert_eq!(r.trim(t(5)).unwrap(), 0);
    assert!(matches!(
        keyring_err(r.version(KeyVersion(1)).unwrap_err()),
        KeyringError::Trimmed(KeyVersion(1))
    ));
    assert!(matches!(
        keyring_err(r.disable(KeyVersion(1), t(6)).unwrap_err()),
        KeyringError::Trimmed(KeyVersion(1))
    ));
    match keyring_err(r.set_minimum_decryption_version(KeyVersion(1), t(6)).unwrap_err()) {
        KeyringError::MinimumBelowTrimmed { minimum, trimmed_below } => {
            assert_eq!((minimum, trimmed_below), (KeyVersion(1), KeyVersion(2)));
        }
        e => panic!("{e:?}"),
    }
    // Version numbers are never reused.
    assert_eq!(r.rotate(t(7)).unwrap(), KeyVersion(4));
    let left: Vec<_> = r.versions().map(|v| v.version.0).collect();
    assert_eq!(left, [2, 3, 4]);
}

#[test]
fn operations_on_unknown_versions_fail() {
    let mut r = ring();
    let v9 = KeyVersion(9);
    let results = [
        r.promote(v9, t(1)),
        r.enable(v9, t(1)),
        r.set_decrypt_only(v9, t(1)),
        r.disable(v9, t(1)),
        r.schedule_destruction(v9, t(1 + WEEK), t(1)),
        r.cancel_destruction(v9, t(1)),
        r.destroy(v9, t(1)),
        r.compromised(v9, t(1)).map(|_| ()),
    ];
    for res in results {
        assert!(matches!(
            keyring_err(res.unwrap_err()),
            KeyringError::UnknownVersion(KeyVersion(9))
        ));
    }
}

#[test]
fn rotation_policy() {
    let mut r = ring();
    assert!(!r.rotation_due(t(u64::MAX / 2)), "no period: never due");
    assert_eq!(r.rotate_if_due(t(1_000_000)).unwrap(), None);
    r.set_policy(RotationPolicy::new().rotate_every(100));
    assert_eq!(r.policy().rotation_period_secs(), Some(100));
    assert!(!r.rotation_due(t(99)));
    assert!(r.rotation_due(t(100)));
    assert_eq!(r.rotate_if_due(t(99)).unwrap(), None);
    assert_eq!(r.primary(), KeyVersion(1));
    assert_eq!(r.rotate_if_due(t(150)).unwrap(), Some(KeyVersion(2)));
    // The period restarts from the new primary's creation.
    assert!(!r.rotation_due(t(249)));
    assert!(r.rotation_due(t(250)));
    // A staged version does not reset the clock; promoting it does.
    r.add_version(t(240)).unwrap();
    assert!(r.rotation_due(t(250)));
    r.promote(KeyVersion(3), t(250)).unwrap();
    assert!(!r.rotation_due(t(250)));
    assert!(r.rotation_due(t(340)));
    assert_eq!(RotationPolicy::new().rotate_every(0).rotation_period_secs(), None);
}

/// Action, version, succeeded, Debug, Display.
type Recorded = (AuditAction, Option<KeyVersion>, bool, String, String);

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Recorded>>,
}

impl AuditSink for Recorder {
    fn record(&self, e: &AuditEvent<'_>) -> Result<(), lockbox::audit::AuditError> {
        let AuditEvent::Keyring(e) = e else { return Ok(()) };
        self.events
            .lock()
            .unwrap()
            .push((e.action, e.version, e.succeeded(), format!("{e:?}"), format!("{e}")));
        Ok(())
    }
}

#[test]
fn audit_receives_every_event_without_key_bytes() {
    let rec = Arc::new(Recorder::default());
    let mut r = ring().with_policy(RotationPolicy::new().min_destruction_delay(0));
    r.set_audit_sink(rec.clone());
    let env = lockbox::seal(&r, b"x", &ctx()).unwrap(); // wrap v1
    lockbox::open(&r, &env, &ctx()).unwrap(); // unwrap v1
    let v2 = r.add_version(t(1)).unwrap(); // generate + add
    r.promote(v2, t(2)).unwrap();
    let v1 = KeyVersion(1);
    r.set_decrypt_only(v1, t(3)).unwrap();
    r.enable(v1, t(3)).unwrap();
    r.disable(v1, t(4)).unwrap();
    assert!(lockbox::open(&r, &env, &ctx()).is_err()); // failed unwrap
    assert!(r.promote(v1, t(4)).is_err()); // failed promote
    r.schedule_destruction(v1, t(5), t(5)).unwrap();
    r.cancel_destruction(v1, t(5)).unwrap();
    r.enable(v1, t(5)).unwrap();
    r.compromised(v1, t(6)).unwrap();
    lockbox::open(&r.migration_provider(), &env, &ctx()).unwrap();
    r.schedule_destruction(v1, t(7), t(7)).unwrap();
    r.destroy(v1, t(7)).unwrap();
    r.set_minimum_decryption_version(v2, t(8)).unwrap();
    r.trim(t(8)).unwrap();
    let master = LocalKek::generate().unwrap();
    let file = r.to_sealed_bytes(&master).unwrap();

    let events = rec.events.lock().unwrap();
    let has = |want: &dyn Fn(&AuditAction) -> bool, ok: bool| events.iter().any(|(a, _, s, _, _)| want(a) && *s == ok);
    assert!(has(&|a| *a == AuditAction::Wrap, true));
    assert!(has(&|a| *a == AuditAction::Unwrap, true));
    assert!(has(&|a| *a == AuditAction::Unwrap, false));
    assert!(has(&|a| *a == AuditAction::Generate, true));
    assert!(has(&|a| *a == AuditAction::Add, true));
    assert!(has(&|a| *a == AuditAction::Promote { previous: v1 }, true));
    assert!(has(&|a| matches!(a, AuditAction::Promote { .. }), false));
    assert!(has(&|a| *a == AuditAction::DecryptOnly, true));
    assert!(has(&|a| *a == AuditAction::Enable, true));
    assert!(has(&|a| *a == AuditAction::Disable, true));
    assert!(has(
        &|a| *a == AuditAction::ScheduleDestruction { not_before: t(5) },
        true
    ));
    assert!(has(&|a| *a == AuditAction::CancelDestruction, true));
    assert!(has(&|a| *a == AuditAction::Compromise, true));
    assert!(has(&|a| *a == AuditAction::MigrationUnwrap, true));
    assert!(has(&|a| *a == AuditAction::Destroy, true));
    assert!(has(&|a| *a == AuditAction::SetMinimumDecryptionVersion, true));
    assert!(has(&|a| *a == AuditAction::Trim { removed: 1 }, true));
    assert!(has(&|a| *a == AuditAction::Save { generation: 1 }, true));
    // Failures carry the error; wraps and unwraps carry the context.
    let failed_unwrap = events
        .iter()
        .find(|(a, _, ok, _, _)| *a == AuditAction::Unwrap && !ok)
        .unwrap();
    assert!(failed_unwrap.4.contains("disabled"), "{}", failed_unwrap.4);
    assert!(
        failed_unwrap.4.contains("purpose") && failed_unwrap.4.contains("v1"),
        "{}",
        failed_unwrap.4
    );

    // No event's Debug or Display shows any key byte: check against the keys
    // decoded from the saved file (v2 is alive in it).
    let keys = version_keys(&file, &master);
    assert_eq!(keys.len(), 1);
    for (_, key) in &keys {
        let hex = hex::encode(key);
        let dec = format!("{key:?}");
        let inner = &dec[1..dec.len() - 1];
        for (_, _, _, dbg, disp) in events.iter() {
            for s in [dbg, disp] {
                assert!(!s.contains(&hex) && !s.contains(inner), "key bytes in {s}");
            }
        }
        for s in [format!("{r:?}"), format!("{:?}", r.migration_provider())] {
            assert!(!s.contains(&hex) && !s.contains(inner), "key bytes in {s}");
        }
    }
}

#[test]
fn generation_and_load_reach_the_sink() {
    let rec = Arc::new(Recorder::default());
    let r = Keyring::generate_with_audit(KeyId::new("g").unwrap(), t(0), rec.clone()).unwrap();
    let actions: Vec<_> = rec.events.lock().unwrap().iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        actions,
        [
            (AuditAction::Generate, Some(KeyVersion(1))),
            (AuditAction::Add, Some(KeyVersion(1)))
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    let master = LocalKek::generate().unwrap();
    let mut r = r;
    r.save(&path, &master).unwrap();
    let _l = Keyring::load_with_audit(&path, &master, rec.clone()).unwrap();
    let events = rec.events.lock().unwrap();
    assert_eq!(events[events.len() - 2].0, AuditAction::Save { generation: 1 });
    assert_eq!(events[events.len() - 1].0, AuditAction::Load { generation: 1 });
}

#[test]
fn the_keyring_works_through_arc_and_dyn() {
    let r: Arc<dyn KeyEncryptionProvider> = Arc::new(ring());
    let env = lockbox::seal(&*r, b"z", &ctx()).unwrap();
    assert_eq!(lockbox::open(&*r, &env, &ctx()).unwrap(), b"z");
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Keyring>();
    assert_send_sync::<lockbox::keyring::MigrationProvider>();
    assert_send_sync::<KeyringError>();
    let _ = UnixTime::now();
}

#[test]
fn a_keyring_holds_at_most_max_versions() {
    let mut r = ring();
    for i in 1..lockbox::keyring::MAX_VERSIONS {
        r.add_version(t(i as u64)).unwrap();
    }
    assert_eq!(r.versions().count(), lockbox::keyring::MAX_VERSIONS);
    match keyring_err(r.add_version(t(0)).unwrap_err()) {
        KeyringError::TooManyVersions { max } => assert_eq!(max, lockbox::keyring::MAX_VERSIONS),
        e => panic!("{e:?}"),
    }
    assert!(r.rotate(t(0)).is_err());
    // Trimming makes room again.
    r.promote(KeyVersion(100), t(1)).unwrap();
    r.set_minimum_decryption_version(KeyVersion(100), t(1)).unwrap();
    assert_eq!(r.trim(t(1)).unwrap(), 99);
    assert_eq!(r.rotate(t(2)).unwrap(), KeyVersion(65_536));
}

#[test]
fn the_keyring_serves_every_suite_several_providers_and_the_async_trait() {
    use lockbox::secrecy::ExposeSecret;
    use lockbox::{AsyncKeyEncryptionProvider, DataKey, Opener, Sealer};
    let mut r = ring();
    r.rotate(t(1)).unwrap();
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305, Suite::XChaCha20Poly1305] {
        let env = Sealer::new(&r).suite(suite).seal(b"s", &ctx()).unwrap();
        assert_eq!(lockbox::open(&r, &env, &ctx()).unwrap(), b"s");
        // The suite is bound into the wrap.
        let b = BindingBuf::new(suite, &ctx());
        let other = BindingBuf::new(
            if suite == Suite::Aes256Gcm {
                Suite::ChaCha20Poly1305
            } else {
                Suite::Aes256Gcm
            },
            &ctx(),
        );
        let info = lockbox::inspect(&env).unwrap();
        let w = info.wrapped_keys()[0].as_ref();
        assert!(r.unwrap(w, b.as_binding()).is_ok());
        assert_eq!(
            r.unwrap(w, other.as_binding()).unwrap_err().kind(),
            ProviderErrorKind::Authentication
        );
    }
    // A keyring next to a recovery KEK: either opens the envelope.
    let recovery = LocalKek::generate().unwrap();
    let env = Sealer::new(&r).also_wrap_with(&recovery).seal(b"dr", &ctx()).unwrap();
    assert_eq!(lockbox::open(&recovery, &env, &ctx()).unwrap(), b"dr");
    assert_eq!(Opener::new(&recovery).also_try(&r).open(&env, &ctx()).unwrap(), b"dr");
    assert!(!r.needs_migration(&lockbox::inspect(&env).unwrap()));
    // The async twin through the blanket implementation.
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let dek = DataKey::generate().unwrap();
    let p: &dyn AsyncKeyEncryptionProvider = &r;
    let w = poll_now(p.wrap_async(&dek, b.as_binding())).unwrap();
    assert_eq!(w.key_version(), KeyVersion(2));
    let back = poll_now(p.unwrap_async(w.as_ref(), b.as_binding())).unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
    assert!(
        r.generate_data_key(lockbox::DataKeyRequest::new(b.as_binding()))
            .unwrap()
            .is_none()
    );
}

#[test]
fn provider_side_rewrap_moves_a_stored_wrapped_key_to_the_primary() {
    use lockbox::DataKey;
    use lockbox::secrecy::ExposeSecret;
    let rec = Arc::new(Recorder::default());
    let mut r = ring();
    r.set_audit_sink(rec.clone());
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let dek = DataKey::generate().unwrap();
    let w1 = r.wrap(&dek, b.as_binding()).unwrap();
    r.rotate(t(1)).unwrap();
    let w2 = r.rewrap(w1.as_ref(), b.as_binding()).unwrap().unwrap();
    assert_eq!(w2.key_version(), KeyVersion(2));
    assert_eq!(
        r.unwrap(w2.as_ref(), b.as_binding()).unwrap().expose_secret(),
        dek.expose_secret()
    );
    assert!(
        rec.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.0 == AuditAction::Rewrap { from: KeyVersion(1) } && e.1 == Some(KeyVersion(2)) && e.2)
    );
    // Wrong binding: refused, as for unwrap.
    let other = BindingBuf::new(Suite::ChaCha20Poly1305, &ctx());
    assert_eq!(
        r.rewrap(w1.as_ref(), other.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::Authentication
    );
    // Compromised: only the migration provider rewraps it.
    r.compromised(KeyVersion(1), t(2)).unwrap();
    assert_eq!(
        r.rewrap(w1.as_ref(), b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::KeyCompromised
    );
    let m = r.migration_provider();
    let w3 = m.rewrap(w1.as_ref(), b.as_binding()).unwrap().unwrap();
    assert_eq!(w3.key_version(), KeyVersion(2));
    assert_eq!(
        r.unwrap(w3.as_ref(), b.as_binding()).unwrap().expose_secret(),
        dek.expose_secret()
    );
}

fn poll_now<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("not ready"),
    }
}

#[test]
fn threads_share_a_keyring_behind_a_rwlock_while_it_rotates() {
    use std::sync::RwLock;
    let ring = Arc::new(RwLock::new(ring()));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                for j in 0..50u32 {
                    let r = ring.read().unwrap();
                    let env = lockbox::seal(&*r, &j.to_be_bytes(), &ctx()).unwrap();
                    seen.insert(lockbox::inspect(&env).unwrap().wrapped_keys()[0].key_version().0);
                    assert_eq!(lockbox::open(&*r, &env, &ctx()).unwrap(), j.to_be_bytes(), "worker {i}");
                }
                seen
            })
        })
        .collect();
    for k in 1..=10 {
        ring.write().unwrap().rotate(t(k)).unwrap();
        std::thread::yield_now();
    }
    for w in workers {
        let seen = w.join().unwrap();
        assert!(seen.iter().all(|v| (1..=11).contains(v)));
    }
    assert_eq!(ring.read().unwrap().primary(), KeyVersion(11));
}
