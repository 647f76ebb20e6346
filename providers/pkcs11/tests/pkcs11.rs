//! The PKCS#11 provider against a real SoftHSM2 token.
//!
//! Start it with `bash scripts/services.sh start` and
//! `source "$(bash scripts/services.sh env)"`; without the token these tests
//! skip with a reason, unless `LOCKBOX_REQUIRE_SERVICES=1` makes that a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lockbox::secrecy::SecretString;
use lockbox::{
    BindingBuf, DataKey, EncryptionContext, Error, KeyEncryptionProvider, LocalKek, Opener, ProviderErrorKind, Sealer,
    Suite, WrappedKey,
};
use lockbox_pkcs11::{PKCS11_PROVIDER_ID, Pkcs11Kek, Pkcs11KekBuilder};
use lockbox_testing::{check_async_provider, check_provider};

/// SoftHSM2 keeps the token in files, and a login (failed or not) rewrites
/// them: another process logging in at the same moment makes reads fail
/// (`CKR_GENERAL_ERROR`). The tests that start a second process take this
/// lock exclusively; the others share it.
#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

static TOKEN_FILES: RwLock<()> = RwLock::new(());

/// The token the services script created.
struct Token {
    _shared: RwLockReadGuard<'static, ()>,
    module: String,
    pin: String,
    token: String,
    key: String,
    key_id: String,
    other_key: String,
    extractable: String,
    not_sensitive: String,
    aes128: String,
    public: String,
    duplicate: String,
}

fn token() -> Option<Token> {
    Some(Token {
        _shared: TOKEN_FILES.read().unwrap_or_else(PoisonError::into_inner),
        module: service_env("LOCKBOX_TEST_PKCS11_MODULE")?,
        pin: service_env("LOCKBOX_TEST_PKCS11_PIN")?,
        token: service_env("LOCKBOX_TEST_PKCS11_TOKEN_LABEL")?,
        key: service_env("LOCKBOX_TEST_PKCS11_KEY_LABEL")?,
        key_id: service_env("LOCKBOX_TEST_PKCS11_KEY_ID")?,
        other_key: service_env("LOCKBOX_TEST_PKCS11_OTHER_KEY_LABEL")?,
        extractable: service_env("LOCKBOX_TEST_PKCS11_EXTRACTABLE_KEY_LABEL")?,
        not_sensitive: service_env("LOCKBOX_TEST_PKCS11_NOT_SENSITIVE_KEY_LABEL")?,
        aes128: service_env("LOCKBOX_TEST_PKCS11_AES128_KEY_LABEL")?,
        public: service_env("LOCKBOX_TEST_PKCS11_PUBLIC_KEY_LABEL")?,
        duplicate: service_env("LOCKBOX_TEST_PKCS11_DUPLICATE_KEY_LABEL")?,
    })
}

impl Token {
    fn builder(&self) -> Pkcs11KekBuilder {
        Pkcs11Kek::builder(&self.module)
            .token_label(&self.token)
            .pin(SecretString::from(self.pin.clone()))
    }
    fn kek(&self, label: &str) -> Pkcs11Kek {
        self.builder().key_label(label).open().unwrap()
    }
}

/// For the tests that run a probe in another process: `None` (skip) without
/// the token, else the exclusive lock on its files.
fn exclusive() -> Option<RwLockWriteGuard<'static, ()>> {
    service_env("LOCKBOX_TEST_PKCS11_MODULE")?;
    Some(TOKEN_FILES.write().unwrap_or_else(PoisonError::into_inner))
}

fn hex_decode(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn provider_kind(e: &Error) -> ProviderErrorKind {
    match e {
        Error::Provider(p) => p.kind(),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[test]
fn passes_the_conformance_suite() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let other = t.kek(&t.other_key);
    let report = check_provider(&kek, &other).unwrap();
    assert_eq!(report.provider_id(), PKCS11_PROVIDER_ID);
    assert_eq!(report.wrapped_len(), 61);
    assert_eq!(report.checks().len(), 9, "{report:?}");
}

#[test]
fn passes_the_async_conformance_suite() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let other = t.kek(&t.other_key);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let report = rt.block_on(check_async_provider(&kek, &other)).unwrap();
    assert_eq!(report.checks().len(), 9, "{report:?}");
}

#[test]
fn round_trips_and_names_the_key_by_label() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    assert_eq!(kek.key_id().as_str(), t.key);
    assert_eq!(kek.token_label(), t.token);
    let ctx = EncryptionContext::new().with_required("tenant", "acme").unwrap();
    let env = lockbox::seal(&kek, b"held by the token", &ctx).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let w = &info.wrapped_keys()[0];
    assert_eq!(w.provider_id(), PKCS11_PROVIDER_ID);
    assert_eq!(w.key_id().as_str(), t.key);
    assert_eq!(w.key_version().0, 1);
    // Layout: version 1, 12-byte IV, 32-byte ciphertext, 16-byte tag.
    assert_eq!(w.bytes().len(), 61);
    assert_eq!(w.bytes()[0], 1);
    assert_eq!(lockbox::open(&kek, &env, &ctx).unwrap(), b"held by the token");
}

#[test]
fn fresh_ivs_for_every_wrap() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let dek = DataKey::generate().unwrap();
    let ivs: std::collections::HashSet<Vec<u8>> = (0..16)
        .map(|_| kek.wrap(&dek, b.as_binding()).unwrap().bytes()[1..13].to_vec())
        .collect();
    assert_eq!(ivs.len(), 16);
}

#[test]
fn a_key_found_by_id_is_the_same_key() {
    let Some(t) = token() else { return };
    let by_label = t.kek(&t.key);
    let by_id = t.builder().key_id(hex_decode(&t.key_id)).open().unwrap();
    // Named by its label either way, so envelopes match both.
    assert_eq!(by_id.key_id(), by_label.key_id());
    let ctx = EncryptionContext::new();
    let env = lockbox::seal(&by_label, b"x", &ctx).unwrap();
    assert_eq!(lockbox::open(&by_id, &env, &ctx).unwrap(), b"x");
}

#[test]
fn a_wrapped_key_with_another_version_byte_is_rejected() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let w = kek.wrap(&DataKey::generate().unwrap(), b.as_binding()).unwrap();
    let mut bytes = w.bytes().to_vec();
    bytes[0] = 2;
    let bad = WrappedKey::new(PKCS11_PROVIDER_ID, w.key_id().clone(), w.key_version(), bytes).unwrap();
    let e = kek.unwrap(bad.as_ref(), b.as_binding()).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Authentication);
    // Another key version is not this key.
    let other = WrappedKey::new(
        PKCS11_PROVIDER_ID,
        w.key_id().clone(),
        lockbox::KeyVersion(2),
        w.bytes().to_vec(),
    )
    .unwrap();
    assert_eq!(
        kek.unwrap(other.as_ref(), b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::KeyNotFound
    );
}

#[test]
fn a_wrong_binding_is_an_authentication_failure_with_the_token_error_as_source() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let ctx = EncryptionContext::new().with("a", "1").unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx);
    let w = kek.wrap(&DataKey::generate().unwrap(), b.as_binding()).unwrap();
    let other = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let e = kek.unwrap(w.as_ref(), other.as_binding()).unwrap_err();
    assert_eq!(
        e.kind(),
        ProviderErrorKind::Authentication,
        "{:?}",
        std::error::Error::source(&e)
    );
    // The token's own error is the source (cryptoki's Display: "<function>: PKCS11 error: ...").
    let source = std::error::Error::source(&e).expect("the cryptoki error");
    assert!(source.to_string().contains("PKCS11 error"), "{source}");
}

#[test]
fn a_missing_key_label_is_key_not_found() {
    let Some(t) = token() else { return };
    let e = t.builder().key_label("no-such-key").open().unwrap_err();
    assert_eq!(provider_kind(&e), ProviderErrorKind::KeyNotFound);
    let e = t.builder().key_id(vec![0xde, 0xad]).open().unwrap_err();
    assert_eq!(provider_kind(&e), ProviderErrorKind::KeyNotFound);
}

fn refused(e: Error, needle: &str) {
    match e {
        Error::KeyLoad { what, .. } => assert!(what.contains(needle), "{what}"),
        other => panic!("expected KeyLoad, got {other:?}"),
    }
}

#[test]
fn an_extractable_key_is_refused() {
    let Some(t) = token() else { return };
    refused(
        t.builder().key_label(&t.extractable).open().unwrap_err(),
        "CKA_EXTRACTABLE",
    );
}

#[test]
fn a_key_that_is_not_sensitive_is_refused() {
    let Some(t) = token() else { return };
    refused(
        t.builder().key_label(&t.not_sensitive).open().unwrap_err(),
        "CKA_SENSITIVE",
    );
}

#[test]
fn an_aes_128_key_is_refused() {
    let Some(t) = token() else { return };
    refused(t.builder().key_label(&t.aes128).open().unwrap_err(), "AES-256");
}

#[test]
fn a_key_usable_without_login_is_refused() {
    let Some(t) = token() else { return };
    refused(t.builder().key_label(&t.public).open().unwrap_err(), "CKA_PRIVATE");
}

#[test]
fn an_ambiguous_label_is_refused() {
    let Some(t) = token() else { return };
    refused(t.builder().key_label(&t.duplicate).open().unwrap_err(), "more than one");
}

#[test]
fn the_token_can_be_selected_by_slot() {
    let Some(t) = token() else { return };
    let by_label = t.kek(&t.key);
    let by_slot = Pkcs11Kek::builder(&t.module)
        .slot(by_label.slot_id())
        .pin(SecretString::from(t.pin.clone()))
        .key_label(&t.key)
        .open()
        .unwrap();
    assert_eq!(by_slot.token_label(), t.token);
    let ctx = EncryptionContext::new();
    let env = lockbox::seal(&by_label, b"slot", &ctx).unwrap();
    assert_eq!(lockbox::open(&by_slot, &env, &ctx).unwrap(), b"slot");
    // A slot that does not hold the labelled token.
    let e = Pkcs11Kek::builder(&t.module)
        .slot(by_label.slot_id())
        .token_label("another-token")
        .pin(SecretString::from(t.pin.clone()))
        .key_label(&t.key)
        .open()
        .unwrap_err();
    refused(e, "no PKCS#11 token labelled");
}

#[test]
fn configuration_errors_are_typed() {
    let Some(t) = token() else { return };
    refused(
        Pkcs11Kek::builder(&t.module)
            .token_label("no-such-token")
            .pin(SecretString::from(t.pin.clone()))
            .key_label(&t.key)
            .open()
            .unwrap_err(),
        "no PKCS#11 token labelled \"no-such-token\"",
    );
    match Pkcs11Kek::builder("/nonexistent/libpkcs11.so")
        .token_label(&t.token)
        .pin(SecretString::from(t.pin.clone()))
        .key_label(&t.key)
        .open()
        .unwrap_err()
    {
        Error::KeyLoad { what, source, .. } => {
            assert!(what.contains("/nonexistent/libpkcs11.so"), "{what}");
            assert!(source.is_some());
        }
        other => panic!("expected KeyLoad, got {other:?}"),
    }
    let e = Pkcs11Kek::builder(&t.module)
        .token_label(&t.token)
        .key_label(&t.key)
        .open()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    let e = t.builder().open().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    let e = Pkcs11Kek::builder(&t.module)
        .pin(SecretString::from(t.pin.clone()))
        .key_label(&t.key)
        .open()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
}

#[test]
fn debug_never_shows_the_pin() {
    let Some(t) = token() else { return };
    let builder = t.builder().key_label(&t.key);
    let shown = format!("{builder:?}");
    assert!(!shown.contains(&t.pin), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
    let kek = builder.open().unwrap();
    let shown = format!("{kek:?}");
    assert!(!shown.contains(&t.pin), "{shown}");
    assert!(shown.contains(&t.key) && shown.contains(&t.token), "{shown}");
}

#[test]
fn many_threads_share_a_small_session_pool() {
    let Some(t) = token() else { return };
    let kek = t.builder().key_label(&t.key).max_idle_sessions(2).open().unwrap();
    std::thread::scope(|s| {
        for i in 0..16 {
            let kek = &kek;
            s.spawn(move || {
                let ctx = EncryptionContext::new()
                    .with_required("thread", &i.to_string())
                    .unwrap();
                for round in 0..10 {
                    let pt = format!("thread {i} round {round}");
                    let env = Sealer::new(kek).seal(pt.as_bytes(), &ctx).unwrap();
                    assert_eq!(Opener::new(kek).open(&env, &ctx).unwrap(), pt.as_bytes());
                }
            });
        }
    });
    let idle = kek.idle_sessions();
    assert!((1..=2).contains(&idle), "{idle} idle sessions");
}

#[test]
fn the_pkcs11_key_and_a_local_key_seal_together() {
    let Some(t) = token() else { return };
    let kek = t.kek(&t.key);
    let recovery = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new();
    let env = Sealer::new(&kek).also_wrap_with(&recovery).seal(b"both", &ctx).unwrap();
    assert_eq!(lockbox::open(&kek, &env, &ctx).unwrap(), b"both");
    assert_eq!(lockbox::open(&recovery, &env, &ctx).unwrap(), b"both");
}

// A wrong PIN. PKCS#11 login state belongs to the process: once any provider
// in this test binary has logged in, the token accepts any PIN. So the check
// runs in a fresh process: this binary again, restricted to the probe.

const PROBE_VAR: &str = "LOCKBOX_TEST_PKCS11_PROBE";

#[test]
fn wrong_pin_probe() {
    if std::env::var_os(PROBE_VAR).is_none_or(|v| v != "wrong-pin") {
        return;
    }
    let t = token().expect("the probe runs with the token's variables");
    let e = Pkcs11Kek::builder(&t.module)
        .token_label(&t.token)
        .pin(SecretString::from(format!("{}0", t.pin)))
        .key_label(&t.key)
        .open()
        .unwrap_err();
    let Error::Provider(p) = &e else {
        panic!("expected a provider error, got {e:?}")
    };
    assert_eq!(p.kind(), ProviderErrorKind::PermissionDenied, "{p:?}");
    let source = std::error::Error::source(p).expect("the cryptoki error");
    assert!(source.to_string().contains("PIN"), "{source}");
    assert!(!format!("{e:?}{e}{source}").contains(&t.pin));
    // The right PIN still works afterwards.
    t.kek(&t.key);
    println!("wrong-pin probe passed");
}

#[test]
fn a_wrong_pin_is_permission_denied() {
    let Some(_exclusive) = exclusive() else { return };
    let out = probe_command("wrong_pin_probe")
        .env(PROBE_VAR, "wrong-pin")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("wrong-pin probe passed"), "{text}");
}

// Losing the login (token restarted, someone called C_Logout): the provider
// logs in again and carries on. Logging out affects the whole process, so
// this runs in a fresh one too.

#[test]
fn relogin_probe() {
    if std::env::var_os(PROBE_VAR).is_none_or(|v| v != "relogin") {
        return;
    }
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let t = token().expect("the probe runs with the token's variables");
    let kek = t.kek(&t.key);
    let ctx = EncryptionContext::new();
    let env = lockbox::seal(&kek, b"before", &ctx).unwrap();
    // Log the process out through a session of our own.
    let pkcs11 = Pkcs11::new(&t.module).unwrap();
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label() == t.token)
        .unwrap();
    let session = pkcs11.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    let state = || session.get_session_info().unwrap().session_state();
    assert_eq!(state(), cryptoki::session::SessionState::RoPublic);
    // Both directions work again, and the process is logged in again.
    assert_eq!(lockbox::open(&kek, &env, &ctx).unwrap(), b"before");
    assert_eq!(state(), cryptoki::session::SessionState::RoUser);
    let env = lockbox::seal(&kek, b"after", &ctx).unwrap();
    assert_eq!(lockbox::open(&kek, &env, &ctx).unwrap(), b"after");
    println!("relogin probe passed");
}

#[test]
fn the_provider_logs_in_again_after_a_logout() {
    let Some(_exclusive) = exclusive() else { return };
    let out = probe_command("relogin_probe")
        .env(PROBE_VAR, "relogin")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("relogin probe passed"), "{text}");
}

/// This test binary, set to run exactly `test`, without any environment
/// variable holding a local KEK (`LocalKek::from_env`'s form): a key in this
/// process's environment never reaches a process the tests start.
fn probe_command(test: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for (name, value) in std::env::vars_os() {
        if value
            .to_str()
            .is_some_and(|v| lockbox::hazmat::local_kek_from_base64(v).is_ok())
        {
            cmd.env_remove(name);
        }
    }
    cmd
}
