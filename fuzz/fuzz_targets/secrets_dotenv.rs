//! Secrets files, dotenv form (`SECRETS.md`): arbitrary bytes through the
//! strict parser (never panics; what is accepted writes back to a file that
//! parses to the same bytes), then unlocked with the vectors' KEK (0x5a):
//! the key envelope, the authenticator and every value are checked without
//! a panic. Seeded with the secrets vectors (`fuzz/seed_corpus.sh`).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::secrecy::SecretBox;
use lockbox::secrets::{Form, SecretsFile};
use lockbox::{EncryptionContext, LocalKek, Opener};

static KEK: LazyLock<LocalKek> = LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([0x5a; 32]))));

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SecretsFile::parse(Form::Dotenv, data) else {
        return;
    };
    let written = file.to_bytes();
    let again = SecretsFile::parse(Form::Dotenv, &written).expect("a written file parses");
    assert_eq!(again.to_bytes(), written, "writing is idempotent");
    assert_eq!(again.names(), file.names());
    if let Ok(opened) = file.unlock(&Opener::new(&*KEK), &EncryptionContext::new()) {
        let _ = opened.load();
        let _ = opened.to_bytes();
    }
});
