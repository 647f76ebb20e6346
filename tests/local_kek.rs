//! The local KEK provider: loading from files and the environment, atomic
//! writes, permission checks, and the wrap's binding to its context.
#![allow(
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;

#[path = "support/child.rs"]
mod child;

use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::{
    BindingBuf, EncryptionContext, Error, KeyEncryptionProvider, LocalKek, ProviderErrorKind, ProviderIdentity, Suite,
};

fn fixed_kek(byte: u8) -> LocalKek {
    lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([byte; 32])))
}

#[test]
fn write_then_load_gives_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek.b64");
    let kek = LocalKek::generate().unwrap();
    kek.write_new_file(&path).unwrap();
    let loaded = LocalKek::from_file(&path).unwrap();
    assert_eq!(loaded.key_id(), kek.key_id());
    let ctx = EncryptionContext::new();
    let env = lockbox::seal(&kek, b"data", &ctx).unwrap();
    assert_eq!(lockbox::open(&loaded, &env, &ctx).unwrap(), b"data");
    // Only the key file is left behind: no temporary files.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kek.b64"]);
}

#[cfg(unix)]
#[test]
fn key_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    LocalKek::generate().unwrap().write_new_file(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    for mode in [0o640, 0o604, 0o660, 0o644] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        match LocalKek::from_file(&path) {
            Err(
                e @ Error::UnsafeFile {
                    problem: lockbox::FileProblem::AccessibleByOthers { .. },
                    ..
                },
            ) => {
                let shown = e.to_string();
                assert!(shown.contains("chmod 600"), "{shown}");
                assert!(shown.contains(&format!("{mode:03o}")), "{shown}");
            }
            r => panic!("mode {mode:o} accepted: {r:?}"),
        }
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    LocalKek::from_file(&path).unwrap();
}

#[test]
fn an_existing_key_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kek");
    let first = LocalKek::generate().unwrap();
    first.write_new_file(&path).unwrap();
    let before = fs::read(&path).unwrap();
    let second = LocalKek::generate().unwrap();
    match second.write_new_file(&path) {
        Err(Error::KeyLoad { what, .. }) => assert!(what.contains("refusing to overwrite"), "{what}"),
        r => panic!("{r:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_key_files_are_refused_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        fs::write(&p, body).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    };
    let cases: [(&str, &[u8]); 5] = [
        ("short", b"AAAA\n"),
        ("not-base64", b"this is not base64 at all, not even close!!!\n"),
        ("binary", &[0xff; 32]),
        ("too-big", &[b'A'; 4096]),
        ("31-bytes", b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"),
    ];
    for (name, body) in cases {
        let p = write(name, body);
        match LocalKek::from_file(&p) {
            Err(Error::KeyLoad { what, .. }) => assert!(what.contains(name), "{name}: {what}"),
            r => panic!("{name}: {r:?}"),
        }
    }
    match LocalKek::from_file(dir.path().join("missing")) {
        Err(e @ Error::KeyLoad { source: Some(_), .. }) => assert!(e.to_string().contains("cannot open")),
        r => panic!("{r:?}"),
    }
    match LocalKek::from_file(dir.path()) {
        Err(
            e @ Error::UnsafeFile {
                problem: lockbox::FileProblem::NotRegular,
                ..
            },
        ) => assert!(e.to_string().contains("not a regular file"), "{e}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn environment_variables() {
    let kek = fixed_kek(7);
    let b64 = lockbox::hazmat::local_kek_to_base64(&kek);
    // The environment form is the base64 text; surrounding whitespace is ignored.
    let again = lockbox::hazmat::local_kek_from_base64(&format!("  {}\n", b64.expose_secret())).unwrap();
    assert_eq!(again.key_id(), kek.key_id());
    match LocalKek::from_env("LOCKBOX_TEST_SURELY_UNSET_VARIABLE") {
        Err(Error::KeyLoad { what, .. }) => assert!(what.contains("is not set"), "{what}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn environment_variable_round_trip_in_a_child_process() {
    // `std::env::set_var` is unsafe in edition 2024 and the crate forbids
    // unsafe code, so the variable is set for a child: this test binary itself.
    if let Ok(expected) = std::env::var("LOCKBOX_TEST_CHILD_EXPECTED_ID") {
        let kek = LocalKek::from_env("LOCKBOX_TEST_KEK").unwrap();
        assert_eq!(kek.key_id().as_str(), expected);
        match LocalKek::from_env("LOCKBOX_TEST_BAD_KEK") {
            Err(Error::KeyLoad { what, .. }) => {
                assert!(what.contains("LOCKBOX_TEST_BAD_KEK"), "{what}");
                assert!(!what.contains("c2hvcnQ"), "the value is never echoed: {what}");
            }
            r => panic!("{r:?}"),
        }
        return;
    }
    let kek = fixed_kek(3);
    let b64 = lockbox::hazmat::local_kek_to_base64(&kek);
    let out = child::test_binary("environment_variable_round_trip_in_a_child_process")
        .env("LOCKBOX_TEST_CHILD_EXPECTED_ID", kek.key_id().as_str())
        .env("LOCKBOX_TEST_KEK", b64.expose_secret())
        .env("LOCKBOX_TEST_BAD_KEK", "c2hvcnQ=")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn key_id_is_a_stable_fingerprint() {
    // Frozen: FORMAT.md specifies the id as hex(SHA-256("lockbox v1 local kek id" || key)[..16]).
    let kek = lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| i as u8))));
    assert_eq!(kek.key_id().as_str().len(), 32);
    assert_eq!(fixed_kek(1).key_id(), fixed_kek(1).key_id());
    assert_ne!(fixed_kek(1).key_id(), fixed_kek(2).key_id());
    // Known answer, computed independently: python3 -c "import hashlib;
    // print(hashlib.sha256(b'lockbox v1 local kek id' + bytes(range(32))).hexdigest()[:32])"
    assert_eq!(kek.key_id().as_str(), "fc1514ea31d1c234f5187fbb2e8af746");
}

#[test]
fn the_wrap_is_bound_to_suite_and_context() {
    let kek = fixed_kek(1);
    let dek = lockbox::DataKey::generate().unwrap();
    let ctx = EncryptionContext::new().with("a", "1").unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx);
    let w = kek.wrap(&dek, b.as_binding()).unwrap();
    assert_eq!(w.bytes().len(), 61);
    assert_eq!(w.bytes()[0], 1, "local wrap format version");
    let back = kek.unwrap(w.as_ref(), b.as_binding()).unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());

    let others = [
        BindingBuf::new(Suite::ChaCha20Poly1305, &ctx),
        BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new()),
        BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new().with("a", "2").unwrap()),
        BindingBuf::new(
            Suite::Aes256Gcm,
            &EncryptionContext::new().with_required("a", "1").unwrap(),
        ),
    ];
    for other in &others {
        let e = kek.unwrap(w.as_ref(), other.as_binding()).unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Authentication, "{other:?}");
    }
    // Tampered bytes and the wrong key fail the same way.
    for i in 0..w.bytes().len() {
        let mut bytes = w.bytes().to_vec();
        bytes[i] ^= 0x01;
        let bad = lockbox::WrappedKey::new(w.provider_id(), w.key_id().clone(), w.key_version(), bytes).unwrap();
        assert!(kek.unwrap(bad.as_ref(), b.as_binding()).is_err());
    }
    let short = lockbox::WrappedKey::new(w.provider_id(), w.key_id().clone(), w.key_version(), vec![1; 60]).unwrap();
    assert_eq!(
        kek.unwrap(short.as_ref(), b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::Authentication
    );
    // Another KEK does not hold the key at all.
    assert!(!fixed_kek(2).matches(w.as_ref()));
    assert_eq!(
        fixed_kek(2).unwrap(w.as_ref(), b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::KeyNotFound
    );
}

#[test]
fn no_process_the_tests_start_inherits_a_kek_variable() {
    // `LocalKek::from_env` cannot remove the variable (that is `unsafe`), so
    // a process holding a KEK in its environment passes it to every child it
    // starts unless the child's environment is cleaned. The tests start their
    // children through `child::test_binary`, which removes every variable
    // holding a KEK: here a child that read its KEK from the environment
    // starts a grandchild the same way, and the grandchild finds none.
    const ROLE: &str = "LOCKBOX_TEST_KEK_LEAK_ROLE";
    const NAME: &str = "no_process_the_tests_start_inherits_a_kek_variable";
    match std::env::var(ROLE).as_deref() {
        Ok("grandchild") => {
            let found = child::kek_variables();
            assert!(found.is_empty(), "a KEK reached a grandchild in {found:?}");
            return;
        }
        Ok("child") => {
            LocalKek::from_env("LOCKBOX_TEST_KEK").unwrap();
            LocalKek::from_env("APP_KEK").unwrap();
            let out = child::test_binary(NAME).env(ROLE, "grandchild").output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{stdout}");
            assert!(stdout.contains("1 passed"), "{stdout}");
            return;
        }
        _ => {}
    }
    let b64 = lockbox::hazmat::local_kek_to_base64(&fixed_kek(5));
    let out = child::test_binary(NAME)
        .env(ROLE, "child")
        .env("LOCKBOX_TEST_KEK", b64.expose_secret())
        .env("APP_KEK", format!("  {}\n", b64.expose_secret()))
        .env("NOT_A_KEK", "c2hvcnQ=")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(child::holds_a_kek(std::ffi::OsStr::new(b64.expose_secret())));
    assert!(!child::holds_a_kek(std::ffi::OsStr::new("c2hvcnQ=")));
}
