//! What an envelope proves, and what it does not (FORMAT.md §13.1, the
//! README and the crate docs): each limit the documentation states is shown
//! here to be real, and the documentation is checked to state it.
//!
//! - A holder of one KEK of a two-key envelope can make new envelopes the
//!   other key holder accepts (no sender authentication); the same is true of
//!   anyone holding a leaked data key and one of its wrapped keys.
//! - A sealer with wrap access can make one envelope open under two different
//!   values of a required context entry.
//! - The error kinds tell "did not unwrap under this context" from "unwrapped,
//!   but not this envelope's key".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::{
    Binding, BindingBuf, DataKey, DataKeyRequest, EncryptionContext, Error, KeyEncryptionProvider, LocalKek,
    ProviderError, ProviderErrorKind, ProviderIdentity, Sealer, WrappedKey, WrappedKeyRef,
};

/// A sealer's "provider" that hands out a data key it knows and a wrapped
/// key it copied: all a holder of one KEK (or of a leaked data key) needs.
#[derive(Debug)]
struct Replay {
    dek: [u8; 32],
    wrapped: WrappedKey,
}

impl ProviderIdentity for Replay {
    fn provider_id(&self) -> &str {
        lockbox::LOCAL_PROVIDER_ID
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.is_for(lockbox::LOCAL_PROVIDER_ID, self.wrapped.key_id().as_str())
    }
}

impl KeyEncryptionProvider for Replay {
    fn wrap(&self, _: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::Unsupported, "replay"))
    }
    fn unwrap(&self, _: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::KeyNotFound, "replay"))
    }
    fn generate_data_key(&self, _: DataKeyRequest<'_>) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        Ok(Some((
            lockbox::hazmat::data_key_from_bytes(self.dek),
            self.wrapped.clone(),
        )))
    }
}

fn owned(w: WrappedKeyRef<'_>) -> WrappedKey {
    WrappedKey::new(
        w.provider_id(),
        lockbox::KeyId::new(w.key_id()).unwrap(),
        w.key_version(),
        w.bytes().to_vec(),
    )
    .unwrap()
}

#[test]
fn one_key_holder_can_seal_for_the_other_holders() {
    let (alice, bob) = (LocalKek::generate().unwrap(), LocalKek::generate().unwrap());
    let ctx = EncryptionContext::new().with("channel", "payments").unwrap();
    // An honest envelope for both.
    let env = Sealer::new(&alice)
        .also_wrap_with(&bob)
        .seal(b"pay 10 to carol", &ctx)
        .unwrap();
    // Alice unwraps her entry: she now holds the data key, and Bob's wrapped
    // key is in the header for anyone to copy.
    let info = lockbox::inspect(&env).unwrap();
    let binding = BindingBuf::new(info.suite(), &ctx);
    let dek = alice
        .unwrap(info.wrapped_keys()[0].as_ref(), binding.as_binding())
        .unwrap();
    let replay = Replay {
        dek: *dek.expose_secret(),
        wrapped: owned(info.wrapped_keys()[1].as_ref()),
    };
    // A new envelope, new message id and payload, addressed to Bob alone.
    let forged = Sealer::new(&replay).seal(b"pay 10000 to mallory", &ctx).unwrap();
    assert_ne!(lockbox::inspect(&forged).unwrap().message_id(), info.message_id());
    assert_eq!(
        lockbox::open(&bob, &forged, &ctx).unwrap(),
        b"pay 10000 to mallory",
        "Bob cannot tell Alice's envelope from the sender's"
    );
    // The same data key under another context does not unwrap.
    let other = EncryptionContext::new().with("channel", "audit").unwrap();
    let elsewhere = Sealer::new(&replay).seal(b"x", &other).unwrap();
    assert!(matches!(
        lockbox::open(&bob, &elsewhere, &other),
        Err(Error::NoProviderCouldUnwrap { .. })
    ));
}

/// Wraps with a binding of its own choosing (a sealer with wrap access).
#[derive(Debug)]
struct WrapsFor {
    kek: LocalKek,
    binding: BindingBuf,
}

impl ProviderIdentity for WrapsFor {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(w)
    }
}

impl KeyEncryptionProvider for WrapsFor {
    fn wrap(&self, dek: &DataKey, _: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.kek.wrap(dek, self.binding.as_binding())
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.kek.unwrap(w, b)
    }
}

#[test]
fn one_envelope_can_open_under_two_required_values() {
    let key = || lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new([7u8; 32])));
    let kek = key();
    let tenant = |t: &str| EncryptionContext::new().with_required("tenant", t).unwrap();
    let second = WrapsFor {
        kek: key(),
        binding: BindingBuf::new(lockbox::Suite::Aes256Gcm, &tenant("globex")),
    };
    let env = Sealer::new(&kek)
        .also_wrap_with(&second)
        .seal(b"one record", &tenant("acme"))
        .unwrap();
    // The header holds the key "tenant" only; each wrapped key its own value.
    assert_eq!(lockbox::open(&kek, &env, &tenant("acme")).unwrap(), b"one record");
    assert_eq!(lockbox::open(&kek, &env, &tenant("globex")).unwrap(), b"one record");
    assert!(lockbox::open(&kek, &env, &tenant("initech")).is_err());
}

#[test]
fn the_error_kinds_tell_the_context_from_the_key() {
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with_required("tenant", "acme").unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx).unwrap();
    // A wrong required value: nothing unwraps under it.
    let wrong = EncryptionContext::new().with_required("tenant", "globex").unwrap();
    assert!(matches!(
        lockbox::open(&kek, &env, &wrong),
        Err(Error::NoProviderCouldUnwrap { attempts: 1, .. })
    ));
    // A wrapped key lifted from another envelope: it unwraps, to a key that
    // is not this envelope's.
    let donor = lockbox::seal(&kek, b"y", &ctx).unwrap();
    let (wa, wb) = (
        lockbox::inspect(&env).unwrap().wrapped_keys()[0].bytes().to_vec(),
        lockbox::inspect(&donor).unwrap().wrapped_keys()[0].bytes().to_vec(),
    );
    let at = env.windows(wa.len()).position(|w| w == wa).unwrap();
    let mut lifted = env.clone();
    lifted[at..at + wb.len()].copy_from_slice(&wb);
    assert!(matches!(lockbox::open(&kek, &lifted, &ctx), Err(Error::Authentication)));
}

#[test]
fn the_documentation_states_these_limits() {
    let format_md = include_str!("../FORMAT.md");
    let readme = include_str!("../README.md");
    let lib = include_str!("../src/lib.rs");
    for (doc, text, phrases) in [
        (
            "FORMAT.md §13.1",
            format_md,
            &[
                "### 13.1 What an envelope proves, and what it does not",
                "**No sender authentication.**",
                "**A leaked data key is a sealing key.**",
                "**Required values are authenticated only through the wrapped keys.**",
                "*Input for a future format version:*",
                "did not unwrap under your context",
            ][..],
        ),
        (
            "README.md",
            readme,
            &[
                "## What an envelope proves",
                "It does not\nsay who sealed it",
                "whoever has a\ndata key and its wrapped key can write new envelopes",
                "make one\nenvelope open under two different required values",
            ][..],
        ),
        (
            "the crate docs",
            lib,
            &[
                "## What an envelope proves, and what it does not",
                "It does **not** authenticate the sender",
                "a leaked data key plus its wrapped key lets anyone seal new envelopes",
                "can make one envelope open under two different required values",
            ][..],
        ),
    ] {
        for p in phrases {
            assert!(text.contains(p), "{doc} does not say {p:?}");
        }
    }
}
