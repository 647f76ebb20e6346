//! Frozen keyring-file vector: `tests/vectors/keyring/v1-keyring.json` holds a
//! keyring file sealed under a fixed master key, made by the reference
//! implementation when the keyring format was frozen, and an envelope sealed
//! under one of its versions. Every release must load it to the same keyring
//! and open the envelope. Regenerate only for a new format version:
//! delete the file, then `cargo test --test keyring_vectors -- --ignored --nocapture generate`
//! (it never overwrites an existing vector).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::arithmetic_side_effects
)]

use std::path::Path;

use lockbox::keyring::{KeyState, Keyring, RotationPolicy, UnixTime};
use lockbox::secrecy::SecretBox;
use lockbox::{EncryptionContext, KeyId, KeyVersion, LocalKek};

fn master() -> LocalKek {
    lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([0x4b; 32])))
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "vector")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/keyring/v1-keyring.json")
}

/// Builds the keyring the vector holds (its keys are random: only the file
/// written at freeze time is normative).
#[test]
#[ignore = "generator: run by hand to create the frozen vector"]
fn generate() {
    let t = UnixTime;
    let mut r = Keyring::generate(KeyId::new("vector-ring").unwrap(), t(1_700_000_000))
        .unwrap()
        .with_policy(
            RotationPolicy::new()
                .rotate_every(7_776_000)
                .min_destruction_delay(86_400),
        );
    r.rotate(t(1_700_000_100)).unwrap(); // v2
    r.rotate(t(1_700_000_200)).unwrap(); // v3
    r.rotate(t(1_700_000_300)).unwrap(); // v4 primary
    r.add_version(t(1_700_000_400)).unwrap(); // v5 staged
    r.set_minimum_decryption_version(KeyVersion(2), t(1_700_000_500))
        .unwrap();
    r.trim(t(1_700_000_500)).unwrap(); // v1 trimmed
    r.schedule_destruction(KeyVersion(2), t(1_700_100_000), t(1_700_000_600))
        .unwrap();
    r.destroy(KeyVersion(2), t(1_700_100_000)).unwrap(); // v2 tombstone
    r.compromised(KeyVersion(3), t(1_700_100_100)).unwrap(); // v3 compromised, decrypt-only
    let envelope = lockbox::seal(&r, b"frozen keyring vector", &ctx()).unwrap(); // under v4
    let file = r.to_sealed_bytes(&master()).unwrap();
    let json = serde_json::json!({
        "comment": "keyring file v1 (KEYRING.md) sealed under a local master key of 32 bytes 0x4b; envelope sealed under version 4 with stored purpose=vector and required tenant=acme",
        "master_key_hex": hex::encode([0x4b; 32]),
        "keyring_file_hex": hex::encode(&file),
        "envelope_hex": hex::encode(&envelope),
        "plaintext": "frozen keyring vector",
    });
    std::fs::create_dir_all(path().parent().unwrap()).unwrap();
    // Never overwrites the frozen vector: delete it by hand for a new format.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path())
        .expect("the vector exists");
    std::io::Write::write_all(&mut f, (serde_json::to_string_pretty(&json).unwrap() + "\n").as_bytes()).unwrap();
    println!("wrote {}", path().display());
}

#[test]
fn the_frozen_keyring_file_loads_and_opens_its_envelope() {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let hex_field = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
    assert_eq!(hex_field("master_key_hex"), [0x4b; 32]);
    let file = hex_field("keyring_file_hex");
    let r = Keyring::from_sealed_bytes(&file, &master()).unwrap();
    assert_eq!(r.id().as_str(), "vector-ring");
    assert_eq!(r.generation(), 1);
    assert_eq!(r.primary(), KeyVersion(4));
    assert_eq!(r.minimum_decryption_version(), KeyVersion(2));
    assert_eq!(
        r.policy(),
        RotationPolicy::new()
            .rotate_every(7_776_000)
            .min_destruction_delay(86_400)
    );
    let got: Vec<_> = r
        .versions()
        .map(|i| (i.version.0, i.created.0, i.state, i.compromised, i.primary))
        .collect();
    let t = UnixTime;
    assert_eq!(
        got,
        [
            (
                2,
                1_700_000_100,
                KeyState::Destroyed { at: t(1_700_100_000) },
                false,
                false
            ),
            (3, 1_700_000_200, KeyState::DecryptOnly, true, false),
            (4, 1_700_000_300, KeyState::Enabled, false, true),
            (5, 1_700_000_400, KeyState::Enabled, false, false),
        ]
    );
    assert!(matches!(
        r.version(KeyVersion(1)),
        Err(lockbox::Error::Keyring(lockbox::keyring::KeyringError::Trimmed(
            KeyVersion(1)
        )))
    ));
    let envelope = hex_field("envelope_hex");
    assert_eq!(
        lockbox::inspect(&envelope).unwrap().wrapped_keys()[0].key_version(),
        KeyVersion(4)
    );
    let pt = lockbox::open(&r, &envelope, &ctx()).unwrap();
    assert_eq!(pt, v["plaintext"].as_str().unwrap().as_bytes());
    // Another master key does not open it.
    let other = lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([0x4c; 32])));
    assert!(Keyring::from_sealed_bytes(&file, &other).is_err());
}
