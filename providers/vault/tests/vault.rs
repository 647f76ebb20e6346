//! The Vault / OpenBao Transit provider against a real OpenBao dev server on
//! 127.0.0.1 (started by `scripts/services.sh start openbao`). Without the
//! service these tests skip with a printed reason; with
//! `LOCKBOX_REQUIRE_SERVICES=1` they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::error::Error as _;
use std::time::Duration;

use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, DataKey, EncryptionContext, Error, KeyVersion,
    ProviderError, ProviderErrorKind, Suite, WrappedKey,
};
use lockbox_testing::check_async_provider;
use lockbox_vault::{BindingMode, VAULT_PROVIDER_ID, VaultApiError, VaultConfig, VaultTransit};

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

struct Env {
    addr: String,
    token: String,
    ca: Vec<u8>,
}

impl Env {
    fn config(&self, key: &str) -> VaultConfig {
        VaultConfig::new(&self.addr, SecretString::from(self.token.clone()), key).ca_certificate_pem(self.ca.clone())
    }
}

fn env() -> Option<Env> {
    Some(Env {
        addr: service_env("LOCKBOX_TEST_VAULT_ADDR")?,
        token: service_env("LOCKBOX_TEST_VAULT_TOKEN")?,
        ca: std::fs::read(service_env("LOCKBOX_TEST_VAULT_CA_CERT")?).unwrap(),
    })
}

fn key(var: &str) -> String {
    service_env(var).unwrap_or_else(|| panic!("{var} is set with the other OpenBao variables"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn binding(tenant: &str) -> BindingBuf {
    let ctx = EncryptionContext::new()
        .with("purpose", "test")
        .unwrap()
        .with_required("tenant", tenant)
        .unwrap();
    BindingBuf::new(Suite::Aes256Gcm, &ctx)
}

fn kind<T: std::fmt::Debug>(r: Result<T, ProviderError>) -> ProviderErrorKind {
    let e = r.unwrap_err();
    assert_eq!(e.provider_id(), VAULT_PROVIDER_ID);
    e.kind()
}

fn api_status(e: &ProviderError) -> u16 {
    e.source()
        .and_then(|s| s.downcast_ref::<VaultApiError>())
        .map(VaultApiError::status)
        .unwrap_or_else(|| panic!("the source of {e:?} is not a VaultApiError"))
}

#[test]
fn derived_context_mode_passes_the_conformance_suite() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        let transit = VaultTransit::connect(env.config(&key("LOCKBOX_TEST_VAULT_KEY")))
            .await
            .unwrap();
        let other = VaultTransit::connect(env.config(&key("LOCKBOX_TEST_VAULT_OTHER_KEY")))
            .await
            .unwrap();
        assert_eq!(transit.binding_mode(), BindingMode::DerivedKeyContext);
        let report = check_async_provider(&transit, &other).await.unwrap();
        assert_eq!(report.provider_id(), VAULT_PROVIDER_ID);
        assert_eq!(report.checks().len(), 9, "{:?}", report.checks());
        assert!(report.offers_rewrap());
        assert!(!report.offers_generate_data_key());
    });
}

#[test]
fn associated_data_mode_passes_the_conformance_suite() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        let cfg = |k: &str| env.config(k).binding_mode(BindingMode::AssociatedData);
        let transit = VaultTransit::connect(cfg(&key("LOCKBOX_TEST_VAULT_AD_KEY")))
            .await
            .unwrap();
        // The other key is chacha20-poly1305: both AEAD key types work.
        let other = VaultTransit::connect(cfg(&key("LOCKBOX_TEST_VAULT_AD_OTHER_KEY")))
            .await
            .unwrap();
        let report = check_async_provider(&transit, &other).await.unwrap();
        assert_eq!(report.checks().len(), 9, "{:?}", report.checks());
        // Transit's rewrap has no associated_data: not offered in this mode.
        assert!(!report.offers_rewrap());
        let dek = DataKey::generate().unwrap();
        let w = transit.wrap_async(&dek, binding("a").as_binding()).await.unwrap();
        assert!(
            transit
                .rewrap_async(w.as_ref(), binding("a").as_binding())
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn wrapped_keys_name_the_key_and_its_version() {
    let Some(env) = env() else { return };
    let name = key("LOCKBOX_TEST_VAULT_KEY");
    rt().block_on(async {
        let transit = VaultTransit::connect(env.config(&name)).await.unwrap();
        let dek = DataKey::generate().unwrap();
        let w = transit.wrap_async(&dek, binding("acme").as_binding()).await.unwrap();
        assert_eq!(w.provider_id(), VAULT_PROVIDER_ID);
        assert_eq!(w.key_id().as_str(), name);
        assert_eq!(w.key_version(), KeyVersion(1));
        assert_eq!(w.bytes()[0], 1);
        assert!(w.bytes()[1..].starts_with(b"vault:v1:"));

        // A whole envelope through the async sealer and opener.
        let ctx = EncryptionContext::new().with_required("tenant", "acme").unwrap();
        let sealed = AsyncSealer::new(&transit).seal(b"payload", &ctx).await.unwrap();
        let info = lockbox::inspect(&sealed).unwrap();
        assert_eq!(info.wrapped_keys()[0].key_id().as_str(), name);
        assert_eq!(
            AsyncOpener::new(&transit).open(&sealed, &ctx).await.unwrap(),
            b"payload"
        );
    });
}

#[test]
fn a_wrong_token_is_permission_denied() {
    let Some(env) = env() else { return };
    let name = key("LOCKBOX_TEST_VAULT_KEY");
    rt().block_on(async {
        let bad =
            VaultConfig::new(&env.addr, SecretString::from("not-the-token"), &name).ca_certificate_pem(env.ca.clone());
        let e = VaultTransit::connect(bad).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::PermissionDenied);
        assert_eq!(api_status(&e), 403);
        // The token is not in any message.
        let shown = format!("{e:?} {e} {:?}", e.source());
        assert!(
            !shown.contains("not-the-token") && !shown.contains(&env.token),
            "{shown}"
        );
    });
}

#[test]
fn a_missing_key_is_key_not_found() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        let e = VaultTransit::connect(env.config("lockbox-no-such-key"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::KeyNotFound);
        assert_eq!(api_status(&e), 404);
        // connect only reads: the key was not created by asking for it.
        let again = VaultTransit::connect(env.config("lockbox-no-such-key")).await;
        assert_eq!(kind(again), ProviderErrorKind::KeyNotFound);
        let other_mount = env.config(&key("LOCKBOX_TEST_VAULT_KEY")).mount("no-such-mount");
        let e = VaultTransit::connect(other_mount).await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ProviderErrorKind::KeyNotFound | ProviderErrorKind::PermissionDenied
            ),
            "{e:?}"
        );
    });
}

#[test]
fn a_key_that_does_not_fit_the_mode_is_refused() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        // A derived key in associated-data mode, and the reverse: either would
        // leave the binding unenforced or every call failing.
        let derived_as_ad = env
            .config(&key("LOCKBOX_TEST_VAULT_KEY"))
            .binding_mode(BindingMode::AssociatedData);
        assert_eq!(
            kind(VaultTransit::connect(derived_as_ad).await),
            ProviderErrorKind::Unsupported
        );
        let plain_as_derived = env.config(&key("LOCKBOX_TEST_VAULT_AD_KEY"));
        assert_eq!(
            kind(VaultTransit::connect(plain_as_derived).await),
            ProviderErrorKind::Unsupported
        );
    });
}

#[test]
fn wrong_context_is_refused() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        for (name, mode) in [
            (key("LOCKBOX_TEST_VAULT_KEY"), BindingMode::DerivedKeyContext),
            (key("LOCKBOX_TEST_VAULT_AD_KEY"), BindingMode::AssociatedData),
        ] {
            let transit = VaultTransit::connect(env.config(&name).binding_mode(mode))
                .await
                .unwrap();
            let dek = DataKey::generate().unwrap();
            let w = transit.wrap_async(&dek, binding("acme").as_binding()).await.unwrap();
            let r = transit.unwrap_async(w.as_ref(), binding("evil").as_binding()).await;
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ProviderErrorKind::Authentication, "{mode:?}");
            assert_eq!(api_status(&e), 400);
            let back = transit
                .unwrap_async(w.as_ref(), binding("acme").as_binding())
                .await
                .unwrap();
            assert_eq!(back.expose_secret(), dek.expose_secret());
        }

        // Through the envelope.
        let transit = VaultTransit::connect(env.config(&key("LOCKBOX_TEST_VAULT_KEY")))
            .await
            .unwrap();
        let ctx = EncryptionContext::new().with_required("tenant", "acme").unwrap();
        let sealed = AsyncSealer::new(&transit).seal(b"payload", &ctx).await.unwrap();
        let wrong = EncryptionContext::new().with_required("tenant", "evil").unwrap();
        match AsyncOpener::new(&transit).open(&sealed, &wrong).await {
            Err(Error::NoProviderCouldUnwrap {
                attempts: 1,
                source: Some(e),
                ..
            }) => assert_eq!(e.kind(), ProviderErrorKind::Authentication),
            other => panic!("expected NoProviderCouldUnwrap, got {other:?}"),
        }
    });
}

/// Rotates a Transit key through the HTTP API.
async fn rotate(env: &Env, name: &str) {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&env.ca).unwrap())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/v1/transit/keys/{name}/rotate", env.addr))
        .header("X-Vault-Token", &env.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "rotate: {}", r.status());
}

#[test]
fn rewrap_after_rotation_reports_the_new_version() {
    let Some(env) = env() else { return };
    let name = key("LOCKBOX_TEST_VAULT_ROTATE_KEY");
    rt().block_on(async {
        let transit = VaultTransit::connect(env.config(&name)).await.unwrap();
        let b = binding("acme");
        let dek = DataKey::generate().unwrap();
        let old = transit.wrap_async(&dek, b.as_binding()).await.unwrap();
        rotate(&env, &name).await;
        let new = transit
            .rewrap_async(old.as_ref(), b.as_binding())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(new.key_version().0, old.key_version().0 + 1);
        let prefix = format!("vault:v{}:", new.key_version().0);
        assert!(new.bytes()[1..].starts_with(prefix.as_bytes()));
        let back = transit.unwrap_async(new.as_ref(), b.as_binding()).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
        // The old wrapped key still opens (min_decryption_version is 1).
        let back = transit.unwrap_async(old.as_ref(), b.as_binding()).await.unwrap();
        assert_eq!(back.expose_secret(), dek.expose_secret());
        // Rewrap authenticates the binding: a wrong one is refused.
        let r = transit.rewrap_async(old.as_ref(), binding("evil").as_binding()).await;
        assert_eq!(kind(r), ProviderErrorKind::Authentication);
        // New wraps use the new version.
        let fresh = transit.wrap_async(&dek, b.as_binding()).await.unwrap();
        assert_eq!(fresh.key_version(), new.key_version());
        // A wrapped key whose recorded version disagrees with its ciphertext
        // is refused before it reaches the server.
        let lying = WrappedKey::new(
            VAULT_PROVIDER_ID,
            new.key_id().clone(),
            old.key_version(),
            new.bytes().to_vec(),
        )
        .unwrap();
        let r = transit.unwrap_async(lying.as_ref(), b.as_binding()).await;
        assert_eq!(kind(r), ProviderErrorKind::Authentication);
    });
}

#[test]
fn the_server_certificate_is_verified() {
    let Some(env) = env() else { return };
    rt().block_on(async {
        // The dev server's CA is not among the platform's roots.
        let untrusted = VaultConfig::new(&env.addr, SecretString::from(env.token.clone()), "lockbox-kek");
        let e = VaultTransit::connect(untrusted).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
        let mut chain = String::new();
        let mut next = e.source();
        while let Some(s) = next {
            chain.push_str(&format!("{s} / {s:?}\n"));
            next = s.source();
        }
        assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    });
}

#[test]
fn a_server_that_is_down_is_unavailable() {
    // Needs no service: a port on 127.0.0.1 that nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = VaultConfig::new(format!("http://127.0.0.1:{port}"), SecretString::from("t"), "k")
        .timeout(Duration::from_secs(2));
    rt().block_on(async {
        let e = VaultTransit::connect(config).await.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
        assert_eq!(e.provider_id(), VAULT_PROVIDER_ID);
        assert!(e.source().unwrap().downcast_ref::<reqwest::Error>().is_some());
    });
}

/// A fake Transit that accepts `associated_data` but ignores it, as a server
/// predating the parameter would: `connect` must refuse it. (Not a stand-in
/// for the real server, which every other test here uses: no real server
/// behaves like this, which is why it has to be faked.)
#[test]
fn a_server_that_ignores_associated_data_is_refused() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut stored = String::new();
        let mut seen = Vec::new();
        for stream in listener.incoming().take(3) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let path = request_line.split(' ').nth(1).unwrap().to_string();
            let answer = if path.ends_with("/keys/k") {
                serde_json::json!({"data": {"type": "aes256-gcm96", "derived": false}})
            } else if path.ends_with("/encrypt/k") {
                assert!(
                    json["associated_data"].is_string(),
                    "the provider sends associated_data"
                );
                stored = json["plaintext"].as_str().unwrap().to_string();
                serde_json::json!({"data": {"ciphertext": "vault:v1:QUJDRA=="}})
            } else {
                serde_json::json!({"data": {"plaintext": stored}})
            };
            seen.push(path);
            let text = answer.to_string();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
            .unwrap();
        }
        seen
    });
    let config = VaultConfig::new(addr, SecretString::from("t"), "k").binding_mode(BindingMode::AssociatedData);
    let e = rt().block_on(VaultTransit::connect(config)).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::Unsupported);
    let seen = server.join().unwrap();
    assert_eq!(
        seen,
        ["/v1/transit/keys/k", "/v1/transit/encrypt/k", "/v1/transit/decrypt/k"]
    );
}
