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

mod keyring_common;

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

#[test]
fn every_field_of_the_frozen_vector_decodes_as_keyring_md_lists_it() {
    // KEYRING.md §6 lists the decoded contents; the independent test decoder
    // (keyring_common, written from KEYRING.md) must find each value.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let file = hex::decode(v["keyring_file_hex"].as_str().unwrap()).unwrap();
    assert_eq!(file.len(), 564);
    let (body, raw) = keyring_common::decode_file(&file, &master());
    assert_eq!(body.len(), 249);
    assert_eq!(
        (
            raw.id.as_str(),
            raw.generation,
            raw.primary,
            raw.minimum,
            raw.trimmed_below,
            raw.last_version,
            raw.rotation,
            raw.min_delay
        ),
        ("vector-ring", 1, 4, 2, 2, 5, 7_776_000, 86_400)
    );
    let key = |h: &str| -> Option<[u8; 32]> { Some(hex::decode(h).unwrap().try_into().unwrap()) };
    let expected = [
        (2, 1_700_000_100, 4, 0, 1_700_100_000, None),
        (
            3,
            1_700_000_200,
            1,
            1,
            0,
            key("f7bf33f29ebf0e9bc4d4abe5eb68fa6d8d12e4c2a64a7f14fbc2fefcd6813f46"),
        ),
        (
            4,
            1_700_000_300,
            0,
            0,
            0,
            key("2387d4c341978b3e39fb8ed29bd4e3a67ad5324ef3c5fde831988740a3ad1135"),
        ),
        (
            5,
            1_700_000_400,
            0,
            0,
            0,
            key("70e29667e4bae16400e61ad16aea40dc03451d536e89f23a8d46264e9f137da1"),
        ),
    ];
    let got: Vec<_> = raw
        .entries
        .iter()
        .map(|e| (e.version, e.created, e.state, e.flags, e.time, e.key))
        .collect();
    assert_eq!(got, expected);
    // The file's context: exactly the three stored entries.
    let info = lockbox::inspect(&file).unwrap();
    assert_eq!(
        info.stored_context().collect::<Vec<_>>(),
        [
            ("lockbox.keyring.format", "1"),
            ("lockbox.keyring.generation", "1"),
            ("lockbox.keyring.id", "vector-ring"),
        ]
    );
    assert_eq!(info.required_context_keys().count(), 0);
    assert_eq!(
        (info.suite(), info.segment_size()),
        (lockbox::Suite::Aes256Gcm, lockbox::SegmentSize::DEFAULT)
    );
}

/// The contents of a fresh keyring, resealed under `master` with `context`.
fn resealed(context: &EncryptionContext) -> Vec<u8> {
    let mut r = Keyring::generate(KeyId::new("ctx-rules").unwrap(), UnixTime(1)).unwrap();
    let file = r.to_sealed_bytes(&master()).unwrap();
    let (body, _) = keyring_common::decode_file(&file, &master());
    lockbox::seal(&master(), &body, context).unwrap()
}

#[test]
fn the_file_context_rules_of_keyring_md_section_2() {
    use lockbox::Error;
    use lockbox::keyring::KeyringError;
    let ctx = |pairs: &[(&str, &str)], required: &[(&str, &str)]| {
        let mut c = EncryptionContext::new();
        for (k, v) in pairs {
            c.insert(k, v).unwrap();
        }
        for (k, v) in required {
            c.insert_required(k, v).unwrap();
        }
        c
    };
    let good = [
        ("lockbox.keyring.format", "1"),
        ("lockbox.keyring.generation", "1"),
        ("lockbox.keyring.id", "ctx-rules"),
    ];
    let with = |k: &str, v: &str| {
        let mut p: Vec<(&str, String)> = good.iter().map(|(a, b)| (*a, (*b).to_owned())).collect();
        for e in &mut p {
            if e.0 == k {
                e.1 = v.to_owned();
            }
        }
        p
    };
    let load = |c: &EncryptionContext| Keyring::from_sealed_bytes(&resealed(c), &master());
    assert_eq!(load(&ctx(&good, &[])).unwrap().generation(), 1);
    let as_pairs = |p: &[(&str, String)]| ctx(&p.iter().map(|(a, b)| (*a, b.as_str())).collect::<Vec<_>>(), &[]);
    // 1. The format value: another decimal number is unsupported, anything else malformed.
    for (value, unsupported) in [
        ("2", Some(2u8)),
        ("0", Some(0)),
        ("255", Some(255)),
        ("01", None),
        ("+1", None),
        ("x", None),
        ("256", None),
    ] {
        match (load(&as_pairs(&with("lockbox.keyring.format", value))), unsupported) {
            (Err(Error::Keyring(KeyringError::UnsupportedFormat(n))), Some(m)) => assert_eq!(n, m),
            (Err(Error::Keyring(KeyringError::Malformed { .. })), None) => {}
            (other, _) => panic!("format {value:?}: {other:?}"),
        }
    }
    let missing = ctx(&good[1..], &[]);
    assert!(matches!(
        load(&missing),
        Err(Error::Keyring(KeyringError::Malformed { .. }))
    ));
    // 2. Extra entries, and one of the three made required, are rejected;
    // another required entry already fails the open.
    let mut extra: Vec<(&str, &str)> = good.to_vec();
    extra.push(("zzz", "1"));
    assert!(matches!(
        load(&ctx(&extra, &[])),
        Err(Error::Keyring(KeyringError::Malformed { .. }))
    ));
    match load(&ctx(&good, &[("tenant", "x")])) {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        other => panic!("{other:?}"),
    }
    // 4. The id must be the contents' id.
    assert!(matches!(
        load(&as_pairs(&with("lockbox.keyring.id", "other"))),
        Err(Error::Keyring(KeyringError::IdMismatch { .. }))
    ));
    // 5. The generation is compared as the canonical decimal string.
    for g in ["01", "2", "+1", " 1"] {
        assert!(
            matches!(
                load(&as_pairs(&with("lockbox.keyring.generation", g))),
                Err(Error::Keyring(KeyringError::Malformed { .. }))
            ),
            "generation {g:?}"
        );
    }
}
