//! Secrets against moto on 127.0.0.1 (`scripts/services.sh start kms`):
//!
//! - a secrets file (both forms) whose key is wrapped by AWS KMS, two
//!   public-key recipients and a keyring round-trips, and opens with each of
//!   them alone; tampering is refused; rotating keeps every provider;
//! - AWS Secrets Manager: secrets fetched by pinned version id and by stage,
//!   as a local KEK, an identity and JSON application secrets; a wrong
//!   version, a missing secret and refused credentials are typed errors with
//!   the service's error as source.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::error::Error as _;

use lockbox::keyring::{Keyring, UnixTime};
use lockbox::recipient::Identity;
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::secrets::{CheckOutcome, Form, SecretsFile, Verify};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, EncryptionContext, Error, KeyId, LocalKek, ProviderErrorKind,
};
use lockbox_aws_kms::secrets_manager::{SecretsManager, Version};
use lockbox_aws_kms::{AwsKms, AwsKmsConfig};

#[path = "../../../tests/support/services.rs"]
mod services;
use services::service_env;

fn config() -> Option<(AwsKmsConfig, String)> {
    let endpoint = service_env("LOCKBOX_TEST_KMS_ENDPOINT")?;
    let region = service_env("LOCKBOX_TEST_KMS_REGION")?;
    let id = service_env("LOCKBOX_TEST_KMS_ACCESS_KEY_ID")?;
    let secret = service_env("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY")?;
    let ca = std::fs::read(service_env("LOCKBOX_TEST_KMS_CA_CERT")?).unwrap();
    let config = AwsKmsConfig::new(region, id, SecretString::from(secret))
        .endpoint_url(endpoint)
        .ca_certificate_pem(ca);
    Some((config, service_env("LOCKBOX_TEST_KMS_KEY_ARN")?))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn secrets_file_with_kms_two_recipients_and_a_keyring_opens_with_each_alone() {
    let Some((config, arn)) = config() else { return };
    rt().block_on(async {
        let kms = AwsKms::connect(&config, &arn).await.unwrap();
        let ring = Keyring::generate(KeyId::new("secrets-ring").unwrap(), UnixTime::now()).unwrap();
        let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let sealer = AsyncSealer::new(&kms)
            .also_wrap_with(alice.recipient())
            .also_wrap_with(bob.recipient())
            .also_wrap_with(&ring);
        let ctx = EncryptionContext::new();
        let openers: [(&str, &dyn AsyncKeyEncryptionProvider); 4] =
            [("aws-kms", &kms), ("alice", &alice), ("bob", &bob), ("keyring", &ring)];
        for form in [Form::Dotenv, Form::Json] {
            let mut f = SecretsFile::create_async(form, &sealer, &ctx, Verify::EachProvider)
                .await
                .unwrap();
            let outcomes: Vec<_> = f.verification().unwrap().checks().iter().map(|c| c.outcome()).collect();
            assert!(matches!(
                outcomes[..],
                [
                    CheckOutcome::Opened,
                    CheckOutcome::CannotUnwrap,
                    CheckOutcome::CannotUnwrap,
                    CheckOutcome::Opened
                ]
            ));
            let (a, b) = if form == Form::Dotenv {
                ("DB_PASSWORD", "API_TOKEN")
            } else {
                ("/db/password", "/api/token")
            };
            f.set(a, "hunter2").unwrap();
            f.set(b, "tok_123").unwrap();
            let bytes = f.to_bytes().unwrap();
            for (who, p) in openers {
                let opened = SecretsFile::parse(form, &bytes)
                    .unwrap()
                    .unlock_async(&AsyncOpener::new(p), &ctx)
                    .await;
                let s = opened.unwrap_or_else(|e| panic!("{form:?} {who}: {e}")).load().unwrap();
                assert_eq!(s.require(a).unwrap().expose_secret(), "hunter2", "{who}");
                assert_eq!(s.require(b).unwrap().expose_secret(), "tok_123", "{who}");
                println!("{form:?} file opened by {who} alone");
            }
            // A swapped value is refused.
            let text = String::from_utf8(bytes.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let tampered = if form == Form::Dotenv {
                let (x, y) = (lines[0].split_once('=').unwrap().1, lines[1].split_once('=').unwrap().1);
                text.replacen(x, "@", 1).replacen(y, x, 1).replacen('@', y, 1)
            } else {
                text.replacen("\"password\"", "\"passw0rd\"", 1)
            };
            let r = SecretsFile::parse(form, tampered.as_bytes())
                .unwrap()
                .unlock_async(&AsyncOpener::new(&kms), &ctx)
                .await;
            assert!(matches!(r, Err(Error::Authentication)), "{form:?}");
            // Rotation needs every provider again; it keeps all of them.
            let rotated = SecretsFile::parse(form, &bytes)
                .unwrap()
                .rotate_async(&AsyncOpener::new(&kms), &sealer, &ctx, Verify::EachProvider)
                .await
                .unwrap();
            let rb = rotated.to_bytes().unwrap();
            for (who, p) in openers {
                assert!(
                    SecretsFile::parse(form, &rb)
                        .unwrap()
                        .unlock_async(&AsyncOpener::new(p), &ctx)
                        .await
                        .is_ok(),
                    "{who}"
                );
            }
            let without_kms = AsyncSealer::new(&ring)
                .also_wrap_with(alice.recipient())
                .also_wrap_with(bob.recipient());
            let refused = SecretsFile::parse(form, &rb)
                .unwrap()
                .rotate_async(&AsyncOpener::new(&ring), &without_kms, &ctx, Verify::EachProvider)
                .await;
            assert!(refused.is_err(), "rotation without the KMS key must be refused");
        }
    });
}

#[test]
fn secrets_manager_by_pinned_version() {
    let Some((config, _)) = config() else { return };
    rt().block_on(async {
        let sm = SecretsManager::new(&config).unwrap();
        let client = sm.client();
        let name = format!("lockbox-test/{}", lockbox::token::hex(8 * 2).unwrap().expose_secret());
        // Version 1: a local KEK in its key-file form; version 2 replaces it.
        let kek1 = LocalKek::generate().unwrap();
        let kek1_text = lockbox::hazmat::local_kek_to_base64(&kek1);
        let v1 = client
            .create_secret()
            .name(&name)
            .secret_string(kek1_text.expose_secret())
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let kek2 = LocalKek::generate().unwrap();
        let v2 = client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(lockbox::hazmat::local_kek_to_base64(&kek2).expose_secret())
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        assert_ne!(v1, v2);
        let pinned = sm.fetch(&name, Version::Id(&v1)).await.unwrap();
        assert_eq!(pinned.version(), v1);
        assert_eq!(pinned.local_kek().unwrap().key_id(), kek1.key_id());
        let current = sm.fetch(&name, Version::Stage("AWSCURRENT")).await.unwrap();
        assert_eq!(current.version(), v2);
        assert_eq!(current.local_kek().unwrap().key_id(), kek2.key_id());
        assert!(!format!("{current:?}").contains(kek1_text.expose_secret()));
        // An identity, and JSON application secrets.
        let id = Identity::generate().unwrap();
        let id_name = format!("{name}-identity");
        let vid = client
            .create_secret()
            .name(&id_name)
            .secret_string(id.to_secret_string().expose_secret())
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let fetched: Identity = sm.fetch(&id_name, Version::Id(&vid)).await.unwrap().parse().unwrap();
        assert_eq!(fetched.key_id(), id.key_id());
        let app = format!("{name}-app");
        let va = client
            .create_secret()
            .name(&app)
            .secret_string(r#"{"user":"app","password":"hunter2","port":5432}"#)
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let value = sm.fetch(&app, Version::Id(&va)).await.unwrap();
        assert_eq!(value.field("password").unwrap().expose_secret(), "hunter2");
        assert_eq!(value.secrets().unwrap().parse::<u16>("port").unwrap(), 5432);
        // A binary secret.
        let bin = format!("{name}-bin");
        let vb = client
            .create_secret()
            .name(&bin)
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![7u8; 32]))
            .send()
            .await
            .unwrap()
            .version_id
            .unwrap();
        let b = sm.fetch(&bin, Version::Id(&vb)).await.unwrap();
        assert_eq!(b.bytes().unwrap().expose_secret(), &[7u8; 32][..]);
        assert!(b.local_kek().is_ok());
        // Errors: a missing secret, an unknown version; the service's error is the source.
        let missing = sm
            .fetch(&format!("{name}-missing"), Version::Stage("AWSCURRENT"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), ProviderErrorKind::KeyNotFound);
        assert!(missing.source().is_some());
        let wrong = sm
            .fetch(&name, Version::Id("00000000-0000-0000-0000-000000000000"))
            .await
            .unwrap_err();
        assert!(
            matches!(wrong.kind(), ProviderErrorKind::KeyNotFound | ProviderErrorKind::Other),
            "{wrong:?}"
        );
        // Only TLS or loopback endpoints.
        let remote =
            AwsKmsConfig::new("us-east-1", "id", SecretString::from("s")).endpoint_url("http://secrets.example.com");
        assert!(SecretsManager::new(&remote).is_err());
    });
}
