//! The wrapped-key decoders of the recipient and passphrase providers:
//! arbitrary wrapped bytes (and envelopes) handed to X25519 and X-Wing
//! identities and to a passphrase never panic and never unwrap. The
//! passphrase's limits are tiny so that no input makes a run slow: larger
//! parameters must be refused before any work.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::passphrase::{Passphrase, PassphraseLimits};
use lockbox::recipient::{Identity, RecipientKind};
use lockbox::secrecy::{SecretBox, SecretString};
use lockbox::{BindingBuf, EncryptionContext, KeyEncryptionProvider, Suite, WrappedKeyRef};

static X25519: LazyLock<Identity> = LazyLock::new(|| {
    lockbox::hazmat::identity_from_bytes(RecipientKind::X25519, SecretBox::new(Box::new([0x40; 32]))).unwrap()
});
static XWING: LazyLock<Identity> = LazyLock::new(|| {
    lockbox::hazmat::identity_from_bytes(RecipientKind::XWing, SecretBox::new(Box::new([0x60; 32]))).unwrap()
});
static PASS: LazyLock<Passphrase> = LazyLock::new(|| {
    Passphrase::new(SecretString::from("fuzz"))
        .unwrap()
        .with_limits(PassphraseLimits::new(64, 2, 2))
});

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (which, bytes) = input;
    let providers: [&dyn KeyEncryptionProvider; 3] = [&*X25519, &*XWING, &*PASS];
    let p = providers[usize::from(which % 3)];
    let key_id = match which % 3 {
        0 => X25519.key_id().as_str(),
        1 => XWING.key_id().as_str(),
        _ => PASS.label().as_str(),
    };
    let binding = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    if let Ok(w) = WrappedKeyRef::new(p.provider_id(), key_id, lockbox::KeyVersion(1), &bytes) {
        assert!(p.matches(w));
        assert!(p.unwrap(w, binding.as_binding()).is_err(), "forged a wrap");
    }
    // The same bytes as a whole envelope, opened by all three.
    let ctx = EncryptionContext::new();
    let _ = lockbox::Opener::new(&*X25519)
        .also_try(&*XWING)
        .also_try(&*PASS)
        .open(&bytes, &ctx);
});
