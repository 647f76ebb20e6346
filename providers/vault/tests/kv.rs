//! Vault / OpenBao KV version 2 (`lockbox_vault::kv`) against the OpenBao
//! dev server (`scripts/services.sh start openbao`, which mounts KV v2 at
//! `lockbox-kv`): secrets written here in two versions are read back by
//! pinned version and as the latest, as a local KEK, an identity and
//! application secrets; missing, deleted and refused reads are typed errors
//! with the server's error as source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::error::Error as _;

use lockbox::recipient::Identity;
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{EncryptionContext, LocalKek, ProviderErrorKind};
use lockbox_vault::VaultApiError;
use lockbox_vault::kv::{KvVersion, VaultKv, VaultKvConfig};

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

struct Env {
    addr: String,
    token: String,
    mount: String,
    ca: Vec<u8>,
}

fn env() -> Option<Env> {
    Some(Env {
        addr: service_env("LOCKBOX_TEST_VAULT_ADDR")?,
        token: service_env("LOCKBOX_TEST_VAULT_TOKEN")?,
        mount: service_env("LOCKBOX_TEST_VAULT_KV_MOUNT")?,
        ca: std::fs::read(service_env("LOCKBOX_TEST_VAULT_CA_CERT")?).unwrap(),
    })
}

impl Env {
    fn kv(&self, token: &str) -> VaultKv {
        VaultKv::new(
            VaultKvConfig::new(&self.addr, SecretString::from(token))
                .mount(&self.mount)
                .ca_certificate_pem(self.ca.clone()),
        )
        .unwrap()
    }

    /// Writes `data` as a new version of `path` with the raw HTTP API.
    async fn write(&self, path: &str, data: serde_json::Value) -> u32 {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca).unwrap())
            .build()
            .unwrap();
        let r: serde_json::Value = http
            .post(format!("{}/v1/{}/data/{path}", self.addr, self.mount))
            .header("X-Vault-Token", &self.token)
            .json(&serde_json::json!({ "data": data }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        u32::try_from(r["data"]["version"].as_u64().unwrap()).unwrap()
    }

    async fn delete_latest(&self, path: &str) {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca).unwrap())
            .build()
            .unwrap();
        http.delete(format!("{}/v1/{}/data/{path}", self.addr, self.mount))
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

#[test]
fn kv_v2_by_pinned_version_into_secret_types() {
    let Some(env) = env() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kv = env.kv(&env.token);
        let path = format!("lockbox-test/{}", lockbox::token::hex(16).unwrap().expose_secret());
        let (kek1, kek2) = (LocalKek::generate().unwrap(), LocalKek::generate().unwrap());
        let id = Identity::generate().unwrap();
        let b64 = |k: &LocalKek| lockbox::hazmat::local_kek_to_base64(k).expose_secret().to_string();
        let v1 = env
            .write(
                &path,
                serde_json::json!({"kek": b64(&kek1), "identity": id.to_secret_string().expose_secret(), "port": 5432}),
            )
            .await;
        let v2 = env
            .write(&path, serde_json::json!({"kek": b64(&kek2), "password": "hunter2"}))
            .await;
        assert_eq!(v2, v1 + 1);
        // Pinned reads are repeatable; the latest moves.
        let k = kv.field(&path, "kek", KvVersion::Pinned(v1)).await.unwrap();
        assert_eq!(k.version(), v1.to_string());
        assert_eq!(k.local_kek().unwrap().key_id(), kek1.key_id());
        let latest = kv.field(&path, "kek", KvVersion::Latest).await.unwrap();
        assert_eq!(latest.local_kek().unwrap().key_id(), kek2.key_id());
        let fetched: Identity = kv
            .field(&path, "identity", KvVersion::Pinned(v1))
            .await
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(fetched.key_id(), id.key_id());
        let (secrets, read) = kv.read(&path, KvVersion::Pinned(v1)).await.unwrap();
        assert_eq!(read, v1);
        assert_eq!(secrets.parse::<u16>("port").unwrap(), 5432);
        assert!(!format!("{secrets:?} {latest:?}").contains("hunter2"));
        // The fetched KEK works as a provider.
        let ctx = EncryptionContext::new();
        let kek = latest.local_kek().unwrap();
        assert_eq!(
            lockbox::open(&kek, &lockbox::seal(&kek2, b"x", &ctx).unwrap(), &ctx).unwrap(),
            b"x"
        );
        // Missing field, version, path; a deleted version; a refused token.
        assert_eq!(
            kv.field(&path, "nope", KvVersion::Latest).await.unwrap_err().kind(),
            ProviderErrorKind::KeyNotFound
        );
        let missing = kv.read(&path, KvVersion::Pinned(v2 + 5)).await.unwrap_err();
        assert_eq!(missing.kind(), ProviderErrorKind::KeyNotFound);
        let nopath = kv.read(&format!("{path}-none"), KvVersion::Latest).await.unwrap_err();
        assert_eq!(nopath.kind(), ProviderErrorKind::KeyNotFound);
        assert!(nopath.source().unwrap().downcast_ref::<VaultApiError>().is_some());
        env.delete_latest(&path).await;
        assert_eq!(
            kv.read(&path, KvVersion::Latest).await.unwrap_err().kind(),
            ProviderErrorKind::KeyNotFound
        );
        assert!(
            kv.read(&path, KvVersion::Pinned(v1)).await.is_ok(),
            "older versions stay readable"
        );
        let refused = env.kv("not-a-token").read(&path, KvVersion::Latest).await.unwrap_err();
        assert_eq!(refused.kind(), ProviderErrorKind::PermissionDenied);
        // Paths and endpoints are checked before any request.
        assert!(kv.read("../sys/seal", KvVersion::Latest).await.is_err());
        assert!(VaultKv::new(VaultKvConfig::new("http://vault.example.com", SecretString::from("t"))).is_err());
        assert!(!format!("{kv:?}").contains(&env.token));
    });
}
