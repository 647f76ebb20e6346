//! Public-key recipients (X25519, X-Wing) and passphrases: round trips,
//! key strings (every typo refused), identity files, the no-downgrade rule in
//! sealers and rewrappers, `inspect`'s post-quantum report, changing
//! recipients by rewrap, and every failure path of the wrapped bytes.
#![cfg(all(feature = "recipients", feature = "passphrase"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

use std::fs;
use std::future::Future;

use lockbox::passphrase::{Argon2Params, PASSPHRASE_PROVIDER_ID, Passphrase, PassphraseLimits};
use lockbox::recipient::{Identity, Recipient, RecipientKind, X25519_PROVIDER_ID, XWING_PROVIDER_ID};
use lockbox::secrecy::{ExposeSecret, SecretBox, SecretString};
use lockbox::{
    AsyncRewrapper, AsyncSealer, BindingBuf, DataKey, EncryptionContext, Error, FileProblem, Keep,
    KeyEncryptionProvider, KeyStringError, LimitKind, LocalKek, Opener, PostQuantum, ProviderErrorKind,
    ProviderIdentity, Rewrapper, Sealer, Suite, WrappedKeyRef, hazmat,
};

mod common;

const KINDS: [RecipientKind; 2] = [RecipientKind::XWing, RecipientKind::X25519];

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("app", "recipients-test")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn identity(kind: RecipientKind, byte: u8) -> Identity {
    hazmat::identity_from_bytes(kind, SecretBox::new(Box::new([byte; 32]))).unwrap()
}

/// A cheap passphrase (the default cost is exercised in the benches and
/// `default_parameters_round_trip`).
fn pass(text: &str) -> Passphrase {
    Passphrase::new(SecretString::from(text))
        .unwrap()
        .with_params(hazmat::argon2_params_unchecked(64, 1, 1).unwrap())
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn key_string_err(r: Result<impl std::fmt::Debug, Error>) -> KeyStringError {
    match r {
        Err(Error::KeyString(e)) => e,
        other => panic!("expected a key-string error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Round trips

#[test]
fn each_kind_round_trips_and_only_its_identity_opens() {
    for kind in KINDS {
        let alice = Identity::generate_kind(kind).unwrap();
        let bob = Identity::generate_kind(kind).unwrap();
        let to_alice: Recipient = alice.recipient().to_string().parse().unwrap();
        assert_eq!(&to_alice, alice.recipient());
        assert_eq!(to_alice.kind(), kind);
        assert_eq!(to_alice.key_id(), alice.key_id());
        let env = Sealer::new(&to_alice).seal(b"for alice", &ctx()).unwrap();
        let info = lockbox::inspect(&env).unwrap();
        assert_eq!(info.wrapped_keys()[0].provider_id(), kind.provider_id());
        assert_eq!(info.wrapped_keys()[0].key_id(), alice.key_id());
        assert_eq!(Opener::new(&alice).open(&env, &ctx()).unwrap(), b"for alice");
        // Another identity of the same kind is not addressed: no attempt.
        match Opener::new(&bob).open(&env, &ctx()) {
            Err(Error::NoProviderCouldUnwrap { attempts: 0, .. }) => {}
            other => panic!("{other:?}"),
        }
        // The recipient matches its entry but cannot unwrap.
        match Opener::new(&to_alice).open(&env, &ctx()) {
            Err(Error::NoProviderCouldUnwrap {
                attempts: 1,
                source: Some(e),
                ..
            }) => assert_eq!(e.kind(), ProviderErrorKind::Unsupported),
            other => panic!("{other:?}"),
        }
        // The wrong required context fails authentication of the wrap.
        let wrong = ctx().with_required("tenant", "evil").unwrap();
        match Opener::new(&alice).open(&env, &wrong) {
            Err(Error::NoProviderCouldUnwrap { source: Some(e), .. }) => {
                assert_eq!(e.kind(), ProviderErrorKind::Authentication)
            }
            other => panic!("{other:?}"),
        }
        // An identity wraps to itself too.
        let env = Sealer::new(&alice)
            .suite(Suite::ChaCha20Poly1305)
            .seal(b"self", &ctx())
            .unwrap();
        assert_eq!(lockbox::open(&alice, &env, &ctx()).unwrap(), b"self");
    }
}

#[test]
fn wrapped_sizes_and_identity_strings() {
    let dek = DataKey::generate().unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    for (kind, wrap_len, recipient_len) in [(RecipientKind::X25519, 81, 77), (RecipientKind::XWing, 1169, 1970)] {
        let id = Identity::generate_kind(kind).unwrap();
        let w = id.recipient().wrap(&dek, b.as_binding()).unwrap();
        assert_eq!(w.bytes().len(), wrap_len, "{kind}");
        assert_eq!(w.bytes()[0], 1);
        assert_eq!(w.key_id().as_str().len(), 32);
        let r = id.recipient().to_string();
        assert_eq!(r.len(), recipient_len, "{kind}");
        let s = id.to_secret_string();
        let parsed = Identity::parse(s.expose_secret()).unwrap();
        assert_eq!(parsed.key_id(), id.key_id());
        assert_eq!(hazmat::identity_bytes(&parsed), hazmat::identity_bytes(&id));
        // Lowercase identity strings are the same key (Bech32 is case-insensitive).
        let lower = Identity::parse(&s.expose_secret().to_ascii_lowercase()).unwrap();
        assert_eq!(lower.key_id(), id.key_id());
        // Debug shows the key id only.
        let dbg = format!("{id:?}");
        assert!(
            dbg.contains(id.key_id().as_str()) && !dbg.contains(&s.expose_secret()[30..50]),
            "{dbg}"
        );
        assert!(!format!("{:?}", id.recipient()).contains(&r[20..40]));
    }
    let x = identity(RecipientKind::X25519, 1);
    assert!(
        x.to_secret_string()
            .expose_secret()
            .starts_with("LOCKBOX-X25519-SECRET-KEY-1")
    );
    assert!(x.recipient().to_string().starts_with("lockbox-x25519-pub1"));
    let w = identity(RecipientKind::XWing, 1);
    assert!(
        w.to_secret_string()
            .expose_secret()
            .starts_with("LOCKBOX-XWING-SECRET-KEY-1")
    );
    assert!(w.recipient().to_string().starts_with("lockbox-xwing-pub1"));
}

// ---------------------------------------------------------------------------
// Key strings: a typo is an error, never another key

#[test]
fn every_single_character_typo_in_a_recipient_string_is_refused() {
    let r = identity(RecipientKind::X25519, 7).recipient().to_string();
    let alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l1-";
    let mut tried = 0;
    for i in 0..r.len() {
        for c in alphabet.chars() {
            let mut t: Vec<char> = r.chars().collect();
            if t[i] == c {
                continue;
            }
            t[i] = c;
            let t: String = t.into_iter().collect();
            assert!(Recipient::parse(&t).is_err(), "{t}");
            tried += 1;
        }
        // A dropped character, and a doubled one.
        let mut t = r.clone();
        t.remove(i);
        assert!(Recipient::parse(&t).is_err(), "{t}");
        let mut t = r.clone();
        t.insert(i, r.as_bytes()[i] as char);
        assert!(Recipient::parse(&t).is_err(), "{t}");
    }
    // Two adjacent characters swapped.
    for i in 0..r.len() - 1 {
        let mut t: Vec<u8> = r.clone().into_bytes();
        if t[i] == t[i + 1] {
            continue;
        }
        t.swap(i, i + 1);
        assert!(Recipient::parse(std::str::from_utf8(&t).unwrap()).is_err());
    }
    assert!(tried > 2000);
}

#[test]
fn key_string_errors_are_typed() {
    let id = identity(RecipientKind::X25519, 7);
    let r = id.recipient().to_string();
    let s = id.to_secret_string();
    let s = s.expose_secret();
    // The wrong kind of string, both ways.
    assert!(matches!(
        key_string_err(Recipient::parse(s)),
        KeyStringError::WrongKeyType { .. }
    ));
    assert!(matches!(
        key_string_err(Identity::parse(&r)),
        KeyStringError::WrongKeyType { .. }
    ));
    // The message names the kinds, never the secret.
    let msg = Recipient::parse(s).unwrap_err().to_string();
    assert!(msg.contains("identity") && !msg.contains(&s[27..40]), "{msg}");
    // A typo in the checksum part.
    let mut bad = r.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'q' { b'p' } else { b'q' };
    assert_eq!(
        key_string_err(Recipient::parse(std::str::from_utf8(&bad).unwrap())),
        KeyStringError::Checksum
    );
    // Unknown prefixes, age's among them.
    for other in [
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        "lockbox-rsa-pub1qqqqqq",
        "hello",
        "",
    ] {
        assert_eq!(
            key_string_err(Recipient::parse(other)),
            KeyStringError::UnknownPrefix,
            "{other}"
        );
    }
    // Mixed case, a character outside the alphabet.
    let mut mixed = r.clone();
    mixed.replace_range(25..26, &r[25..26].to_ascii_uppercase());
    assert_eq!(key_string_err(Recipient::parse(&mixed)), KeyStringError::MixedCase);
    let mut odd = r.clone();
    odd.replace_range(30..31, "b");
    match key_string_err(Recipient::parse(&odd)) {
        KeyStringError::InvalidCharacter { position, .. } => assert_eq!(position, 30),
        other => panic!("{other:?}"),
    }
    // Whitespace around is fine; inside is not.
    assert_eq!(&Recipient::parse(&format!("  {r}\n")).unwrap(), id.recipient());
    assert!(Recipient::parse(&format!("{} {}", &r[..40], &r[40..])).is_err());
    // Too long (bounded work).
    assert_eq!(
        key_string_err(Recipient::parse(&format!("lockbox-x25519-pub1{}", "q".repeat(5000)))),
        KeyStringError::Length
    );
}

/// Bech32m encoding of arbitrary bytes under a prefix (test-side, from
/// BIP-350), to build strings the library would never write.
fn bech32m(hrp: &str, data: &[u8]) -> String {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(values: &[u8]) -> u32 {
        let generator = [0x3b6a57b2u32, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
        let mut chk = 1u32;
        for v in values {
            let b = chk >> 25;
            chk = ((chk & 0x1ffffff) << 5) ^ u32::from(*v);
            for (i, g) in generator.iter().enumerate() {
                if (b >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }
    let lower = hrp.to_ascii_lowercase();
    let mut values: Vec<u8> = lower.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(lower.bytes().map(|c| c & 31));
    let mut groups = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in data {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            groups.push(((acc >> bits) & 31) as u8);
        }
    }
    if bits > 0 {
        groups.push(((acc << (5 - bits)) & 31) as u8);
    }
    values.extend(&groups);
    values.extend([0u8; 6]);
    let chk = polymod(&values) ^ 0x2bc830a3;
    let upper = hrp.bytes().any(|b| b.is_ascii_uppercase());
    let mut out = format!("{hrp}1");
    for g in groups
        .iter()
        .copied()
        .chain((0..6).map(|i| ((chk >> (5 * (5 - i))) & 31) as u8))
    {
        let c = CHARSET[usize::from(g)] as char;
        out.push(if upper { c.to_ascii_uppercase() } else { c });
    }
    out
}

#[test]
fn well_formed_strings_holding_bad_keys_are_refused() {
    // Our test encoder agrees with the library's.
    let id = identity(RecipientKind::X25519, 9);
    assert_eq!(
        bech32m("lockbox-x25519-pub", id.recipient().as_bytes()),
        id.recipient().to_string()
    );
    // Wrong lengths under each prefix.
    for (hrp, len) in [
        ("lockbox-x25519-pub", 31),
        ("lockbox-x25519-pub", 33),
        ("lockbox-xwing-pub", 1215),
        ("lockbox-xwing-pub", 32),
    ] {
        assert_eq!(
            key_string_err(Recipient::parse(&bech32m(hrp, &vec![9u8; len]))),
            KeyStringError::Length,
            "{hrp} {len}"
        );
    }
    for hrp in ["LOCKBOX-X25519-SECRET-KEY-", "LOCKBOX-XWING-SECRET-KEY-"] {
        assert_eq!(
            key_string_err(Identity::parse(&bech32m(hrp, &[1u8; 31]))),
            KeyStringError::Length
        );
    }
    // An X25519 point of small order (all zeros): every wrap to it would fail.
    assert_eq!(
        key_string_err(Recipient::parse(&bech32m("lockbox-x25519-pub", &[0u8; 32]))),
        KeyStringError::InvalidKey
    );
    // An X-Wing key whose ML-KEM part fails FIPS 203's modulus check.
    assert_eq!(
        key_string_err(Recipient::parse(&bech32m("lockbox-xwing-pub", &[0xffu8; 1216]))),
        KeyStringError::InvalidKey
    );
    // Non-zero padding bits: 32 bytes are 52 groups with 4 padding bits.
    let good = bech32m("lockbox-x25519-pub", id.recipient().as_bytes());
    let sep = good.rfind('1').unwrap();
    let data = &good[sep + 1..good.len() - 6];
    let charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let last = charset.find(data.chars().last().unwrap()).unwrap();
    let mut groups: Vec<u8> = data.chars().map(|c| charset.find(c).unwrap() as u8).collect();
    *groups.last_mut().unwrap() = (last as u8) | 1;
    // Re-checksum over the altered groups by encoding bits directly.
    let mut bits = Vec::new();
    for g in &groups {
        for i in (0..5).rev() {
            bits.push((g >> i) & 1);
        }
    }
    // 52*5 = 260 bits = 32 bytes + 4 padding bits (the last one now set).
    assert_eq!(bits.len(), 260);
    let s = {
        // Build the string with a valid checksum over these exact groups.
        let hrp = "lockbox-x25519-pub";
        let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
        values.push(0);
        values.extend(hrp.bytes().map(|c| c & 31));
        values.extend(&groups);
        values.extend([0u8; 6]);
        let generator = [0x3b6a57b2u32, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
        let mut chk = 1u32;
        for v in &values {
            let b = chk >> 25;
            chk = ((chk & 0x1ffffff) << 5) ^ u32::from(*v);
            for (i, g) in generator.iter().enumerate() {
                if (b >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk ^= 0x2bc830a3;
        let mut out = format!("{hrp}1");
        for g in groups
            .iter()
            .copied()
            .chain((0..6).map(|i| ((chk >> (5 * (5 - i))) & 31) as u8))
        {
            out.push(charset.as_bytes()[usize::from(g)] as char);
        }
        out
    };
    assert_eq!(key_string_err(Recipient::parse(&s)), KeyStringError::NonCanonical);
}

// ---------------------------------------------------------------------------
// Wrapped bytes: every malformed or tampered form is a typed error

#[test]
fn malformed_and_tampered_wraps_fail_authentication() {
    let dek = DataKey::generate().unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let other = BindingBuf::new(Suite::ChaCha20Poly1305, &ctx());
    for kind in KINDS {
        let id = Identity::generate_kind(kind).unwrap();
        let w = id.wrap(&dek, b.as_binding()).unwrap();
        let open = |bytes: &[u8], binding: &BindingBuf| {
            let r = WrappedKeyRef::new(w.provider_id(), w.key_id().as_str(), w.key_version(), bytes).unwrap();
            id.unwrap(r, binding.as_binding())
        };
        assert_eq!(open(w.bytes(), &b).unwrap().expose_secret(), dek.expose_secret());
        assert_eq!(
            open(w.bytes(), &other).unwrap_err().kind(),
            ProviderErrorKind::Authentication
        );
        let mut longer = w.bytes().to_vec();
        longer.push(0);
        let mut version = w.bytes().to_vec();
        version[0] = 2;
        for (what, bytes) in [
            ("truncated", &w.bytes()[..w.bytes().len() - 1]),
            ("empty enc", &w.bytes()[..1]),
            ("extended", &longer[..]),
            ("version 2", &version[..]),
        ] {
            let e = open(bytes, &b).unwrap_err();
            assert_eq!(e.kind(), ProviderErrorKind::Authentication, "{kind} {what}");
            let src = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(src.contains("malformed wrapped key"), "{kind} {what}: {src}");
        }
        // Every byte of the KEM output, the ciphertext and the tag.
        for i in (1..w.bytes().len()).step_by(if kind == RecipientKind::XWing { 37 } else { 1 }) {
            let mut t = w.bytes().to_vec();
            t[i] ^= 0x01;
            assert_eq!(
                open(&t, &b).unwrap_err().kind(),
                ProviderErrorKind::Authentication,
                "{kind} byte {i}"
            );
        }
        // Another key version or key id is not this identity's.
        let r = WrappedKeyRef::new(w.provider_id(), w.key_id().as_str(), lockbox::KeyVersion(2), w.bytes()).unwrap();
        assert_eq!(
            id.unwrap(r, b.as_binding()).unwrap_err().kind(),
            ProviderErrorKind::KeyNotFound
        );
        assert!(!id.matches(WrappedKeyRef::new(w.provider_id(), "0123", w.key_version(), w.bytes()).unwrap()));
    }
}

// ---------------------------------------------------------------------------
// No silent downgrade

#[test]
fn providers_state_their_post_quantum_status() {
    assert_eq!(identity(RecipientKind::XWing, 1).post_quantum(), PostQuantum::Yes);
    assert_eq!(
        identity(RecipientKind::XWing, 1).recipient().post_quantum(),
        PostQuantum::Yes
    );
    assert_eq!(identity(RecipientKind::X25519, 1).post_quantum(), PostQuantum::No);
    assert_eq!(
        identity(RecipientKind::X25519, 1).recipient().post_quantum(),
        PostQuantum::No
    );
    assert_eq!(pass("p").post_quantum(), PostQuantum::Yes);
    assert_eq!(LocalKek::generate().unwrap().post_quantum(), PostQuantum::Yes);
    let boxed: Box<dyn KeyEncryptionProvider> = Box::new(identity(RecipientKind::X25519, 1).recipient().clone());
    assert_eq!(boxed.post_quantum(), PostQuantum::No);
    assert_eq!(common::FixedWrap.post_quantum(), PostQuantum::Unknown);
}

#[test]
fn sealers_refuse_to_mix_classical_with_post_quantum_unless_told() {
    let x = identity(RecipientKind::X25519, 1);
    let w = identity(RecipientKind::XWing, 2);
    let kek = LocalKek::generate().unwrap();
    let p = pass("pp");
    let c = ctx();
    let refused = |r: Result<Vec<u8>, Error>, classical: &str, pq: &str| match r {
        Err(Error::QuantumDowngrade {
            classical: c,
            post_quantum: p,
            ..
        }) => {
            assert_eq!((c.as_str(), p.as_str()), (classical, pq));
        }
        other => panic!("expected a downgrade refusal, got {other:?}"),
    };
    // X25519 with X-Wing, a local KEK or a passphrase, in either order.
    refused(
        Sealer::new(x.recipient()).also_wrap_with(w.recipient()).seal(b"m", &c),
        X25519_PROVIDER_ID,
        XWING_PROVIDER_ID,
    );
    refused(
        Sealer::new(&kek).also_wrap_with(x.recipient()).seal(b"m", &c),
        X25519_PROVIDER_ID,
        lockbox::LOCAL_PROVIDER_ID,
    );
    refused(
        Sealer::new(&p).also_wrap_with(&x).seal(b"m", &c),
        X25519_PROVIDER_ID,
        PASSPHRASE_PROVIDER_ID,
    );
    let e = Sealer::new(x.recipient())
        .also_wrap_with(&kek)
        .seal(b"m", &c)
        .unwrap_err();
    assert!(e.to_string().contains("allow_classical_with_post_quantum"), "{e}");
    // The async sealer applies the same rule, before any provider call.
    let r = block_on(
        AsyncSealer::new(w.recipient())
            .also_wrap_with(x.recipient())
            .seal(b"m", &c),
    );
    refused(r, X25519_PROVIDER_ID, XWING_PROVIDER_ID);
    // Opting in works, and inspect reports the envelope as classical.
    let env = Sealer::new(x.recipient())
        .also_wrap_with(w.recipient())
        .allow_classical_with_post_quantum()
        .seal(b"m", &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().post_quantum(), PostQuantum::No);
    let env2 = block_on(
        AsyncSealer::new(w.recipient())
            .also_wrap_with(x.recipient())
            .allow_classical_with_post_quantum()
            .seal(b"m", &c),
    )
    .unwrap();
    assert_eq!(lockbox::open(&x, &env2, &c).unwrap(), b"m");
    // Classical alone, post-quantum alone, and unknown providers are fine.
    let env = Sealer::new(x.recipient())
        .also_wrap_with(identity(RecipientKind::X25519, 3).recipient())
        .also_wrap_with(&common::FixedWrap)
        .seal(b"m", &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().post_quantum(), PostQuantum::No);
    let env = Sealer::new(w.recipient())
        .also_wrap_with(&kek)
        .also_wrap_with(&p)
        .seal(b"m", &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().post_quantum(), PostQuantum::Yes);
    let env = Sealer::new(w.recipient())
        .also_wrap_with(&common::FixedWrap)
        .seal(b"m", &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().post_quantum(), PostQuantum::Unknown);
    let env = lockbox::seal(&kek, b"m", &c).unwrap();
    assert_eq!(lockbox::inspect(&env).unwrap().post_quantum(), PostQuantum::Yes);
}

#[test]
fn rewrappers_refuse_to_add_a_classical_wrap_to_a_post_quantum_envelope() {
    let x = identity(RecipientKind::X25519, 1);
    let w = identity(RecipientKind::XWing, 2);
    let kek = LocalKek::generate().unwrap();
    let c = ctx();
    let env = Sealer::new(w.recipient()).also_wrap_with(&kek).seal(b"m", &c).unwrap();
    // Adding X25519 while keeping the post-quantum entries.
    let add = Rewrapper::new(&kek).also_wrap_with(x.recipient()).keep(Keep::All);
    assert!(matches!(add.rewrap(&env, &c), Err(Error::QuantumDowngrade { .. })));
    let r = block_on(
        AsyncRewrapper::new(&w)
            .wrap_with(x.recipient())
            .keep(Keep::All)
            .rewrap(&env, &c),
    );
    assert!(matches!(r, Err(Error::QuantumDowngrade { .. })));
    // Opted in, it works; replacing everything with X25519 alone needs no opt-in.
    let mixed = add.allow_classical_with_post_quantum().rewrap(&env, &c).unwrap();
    assert_eq!(lockbox::inspect(&mixed).unwrap().post_quantum(), PostQuantum::No);
    let only_x = Rewrapper::new(&w)
        .wrap_with(x.recipient())
        .keep(Keep::Nothing)
        .rewrap(&env, &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&only_x).unwrap().post_quantum(), PostQuantum::No);
    // Rewrapping a mixed envelope that stays mixed needs the opt-in again,
    // even with providers the rewrapper only knows by their ids.
    let rotate = Rewrapper::new(&kek).keep(Keep::Unmatched);
    assert!(matches!(rotate.rewrap(&mixed, &c), Err(Error::QuantumDowngrade { .. })));
    // Removing the classical entry makes it post-quantum again, no opt-in.
    let cleaned = Rewrapper::new(&kek)
        .keep(Keep::All)
        .no_new_wraps()
        .remove_entries_of(x.recipient())
        .rewrap(&mixed, &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&cleaned).unwrap().post_quantum(), PostQuantum::Yes);
    assert!(lockbox::open(&x, &cleaned, &c).is_err());
}

// ---------------------------------------------------------------------------
// Changing recipients without touching the payload

#[test]
fn rewrap_adds_and_removes_recipients_and_keeps_the_payload() {
    let alice = Identity::generate().unwrap();
    let bob = Identity::generate().unwrap();
    let carol = Identity::generate().unwrap();
    let c = ctx();
    let env = Sealer::new(alice.recipient())
        .also_wrap_with(bob.recipient())
        .seal(&[7u8; 1000], &c)
        .unwrap();
    let h = lockbox::inspect(&env).unwrap().header_len();
    // Alice adds Carol (keeping Bob); only Alice's identity is needed.
    let added = Rewrapper::new(&alice)
        .wrap_with(carol.recipient())
        .keep(Keep::All)
        .rewrap(&env, &c)
        .unwrap();
    assert_eq!(lockbox::inspect(&added).unwrap().wrapped_keys().len(), 3);
    let h2 = lockbox::inspect(&added).unwrap().header_len();
    assert_eq!(added[h2..], env[h..], "payload bytes unchanged");
    for id in [&alice, &bob, &carol] {
        assert_eq!(Opener::new(id).open(&added, &c).unwrap(), [7u8; 1000]);
    }
    // Bob is removed by his recipient alone (it matches his entries).
    let removed = Rewrapper::new(&alice)
        .keep(Keep::All)
        .no_new_wraps()
        .remove_entries_of(bob.recipient())
        .rewrap(&added, &c)
        .unwrap();
    let h3 = lockbox::inspect(&removed).unwrap().header_len();
    assert_eq!(removed[h3..], env[h..]);
    assert_eq!(lockbox::inspect(&removed).unwrap().wrapped_keys().len(), 2);
    assert!(matches!(
        Opener::new(&bob).open(&removed, &c),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert_eq!(Opener::new(&carol).open(&removed, &c).unwrap(), [7u8; 1000]);
}

// ---------------------------------------------------------------------------
// Identity files and the environment

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn identity_files_are_private_atomic_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("me.identity");
    let id = Identity::generate().unwrap();
    id.write_new_file(&path).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# lockbox identity"));
    assert!(text.contains(&format!("# recipient: {}\n", id.recipient())));
    assert_eq!(Identity::from_file(&path).unwrap().key_id(), id.key_id());
    // No temporary file left behind; no overwrite.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    match Identity::generate().unwrap().write_new_file(&path) {
        Err(Error::KeyLoad { what, .. }) => assert!(what.contains("refusing to overwrite"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(Identity::from_file(&path).unwrap().key_id(), id.key_id());
    // Readable by others: refused, saying how to fix it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        match Identity::from_file(&path) {
            Err(Error::UnsafeFile {
                problem: FileProblem::AccessibleByOthers { .. },
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Files with no identity, two identities, or a typo.
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        p
    };
    let s = id.to_secret_string();
    let s = s.expose_secret();
    let p = write("empty", "# nothing here\n\n");
    assert!(matches!(Identity::from_file(&p), Err(Error::KeyLoad { .. })));
    let p = write("two", &format!("{s}\n{s}\n"));
    assert!(matches!(Identity::from_file(&p), Err(Error::KeyLoad { .. })));
    let p = write("typo", &format!("{}X\n", &s[..s.len() - 1]));
    match Identity::from_file(&p) {
        Err(e @ Error::KeyString(_)) => assert!(!e.to_string().contains(&s[30..])),
        other => panic!("{other:?}"),
    }
    let p = write("bare", &format!("  {s}  "));
    assert_eq!(Identity::from_file(&p).unwrap().key_id(), id.key_id());
    assert!(matches!(
        Identity::from_file(dir.path()),
        Err(Error::UnsafeFile {
            problem: FileProblem::NotRegular,
            ..
        })
    ));
}

#[test]
fn identity_from_the_environment_in_a_child_process() {
    // `set_var` is unsafe in edition 2024 and unsafe code is forbidden: the
    // variables are set for a child, this test binary itself.
    if let Ok(expected) = std::env::var("LOCKBOX_TEST_CHILD_EXPECTED_ID") {
        assert_eq!(
            Identity::from_env("LOCKBOX_TEST_IDENTITY").unwrap().key_id().as_str(),
            expected
        );
        assert!(matches!(
            Identity::from_env("LOCKBOX_TEST_IDENTITY_BAD"),
            Err(Error::KeyString(_))
        ));
        let pass = Passphrase::from_env("LOCKBOX_TEST_PASSPHRASE").unwrap();
        assert_eq!(pass.label().as_str(), "passphrase");
        return;
    }
    assert!(matches!(
        Identity::from_env("LOCKBOX_TEST_IDENTITY_UNSET"),
        Err(Error::KeyLoad { .. })
    ));
    assert!(matches!(
        Passphrase::from_env("LOCKBOX_TEST_IDENTITY_UNSET"),
        Err(Error::KeyLoad { .. })
    ));
    let id = identity(RecipientKind::X25519, 5);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "identity_from_the_environment_in_a_child_process",
            "--nocapture",
        ])
        .env("LOCKBOX_TEST_CHILD_EXPECTED_ID", id.key_id().as_str())
        .env("LOCKBOX_TEST_IDENTITY", id.to_secret_string().expose_secret())
        .env("LOCKBOX_TEST_IDENTITY_BAD", "LOCKBOX-X25519-SECRET-KEY-1qqqq")
        .env("LOCKBOX_TEST_PASSPHRASE", "from the environment")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[test]
fn sealed_identity_files_open_only_with_their_provider() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    let kek = LocalKek::generate().unwrap();
    let path = dir.path().join("me.sealed");
    id.write_sealed_file(&path, &kek).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    // The secret is not in the file, in any form.
    let bytes = fs::read(&path).unwrap();
    let secret = id.to_secret_string();
    assert!(
        !bytes
            .windows(20)
            .any(|w| w == &secret.expose_secret().as_bytes()[26..46])
    );
    assert!(!bytes.windows(32).any(|w| w == hazmat::identity_bytes(&id)));
    let info = lockbox::inspect(&bytes).unwrap();
    assert_eq!(
        info.stored_context().collect::<Vec<_>>(),
        [("lockbox.content", "identity")]
    );
    assert_eq!(Identity::from_sealed_file(&path, &kek).unwrap().key_id(), id.key_id());
    assert!(Identity::from_sealed_file(&path, &LocalKek::generate().unwrap()).is_err());
    assert!(id.write_sealed_file(&path, &kek).is_err(), "never overwritten");
    // Under a passphrase, and through the async entry points.
    let p = pass("a long passphrase");
    let path2 = dir.path().join("me.pass");
    block_on(id.write_sealed_file_async(&path2, &p)).unwrap();
    assert_eq!(
        block_on(Identity::from_sealed_file_async(&path2, &p)).unwrap().key_id(),
        id.key_id()
    );
    assert_eq!(Identity::from_sealed_file(&path2, &p).unwrap().key_id(), id.key_id());
    assert!(Identity::from_sealed_file(&path2, &pass("wrong")).is_err());
    // Another envelope under the same key is not an identity file.
    let other = dir.path().join("other");
    fs::write(&other, lockbox::seal(&kek, b"x", &EncryptionContext::new()).unwrap()).unwrap();
    assert!(Identity::from_sealed_file(&other, &kek).is_err());
    let other = dir.path().join("other2");
    let ctx = EncryptionContext::new().with("lockbox.content", "identity").unwrap();
    fs::write(&other, lockbox::seal(&kek, b"not an identity", &ctx).unwrap()).unwrap();
    assert!(matches!(
        Identity::from_sealed_file(&other, &kek),
        Err(Error::KeyString(_))
    ));
}

// ---------------------------------------------------------------------------
// Passphrases

#[test]
fn passphrase_round_trips_and_refuses_the_wrong_one() {
    let p = pass("correct horse battery staple");
    let c = ctx();
    let env = Sealer::new(&p).seal(b"secret", &c).unwrap();
    let w = lockbox::inspect(&env).unwrap().wrapped_keys()[0].clone();
    assert_eq!(w.provider_id(), PASSPHRASE_PROVIDER_ID);
    assert_eq!(w.key_id().as_str(), "passphrase");
    assert_eq!(w.bytes().len(), 93);
    assert_eq!(&w.bytes()[..13], &[1, 0, 0, 0, 64, 0, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(Opener::new(&p).open(&env, &c).unwrap(), b"secret");
    match Opener::new(&pass("Correct horse battery staple")).open(&env, &c) {
        Err(Error::NoProviderCouldUnwrap { source: Some(e), .. }) => {
            assert_eq!(e.kind(), ProviderErrorKind::Authentication)
        }
        other => panic!("{other:?}"),
    }
    // Two wraps of the same key never share a salt.
    let env2 = Sealer::new(&p).seal(b"secret", &c).unwrap();
    let w2 = lockbox::inspect(&env2).unwrap().wrapped_keys()[0].clone();
    assert_ne!(w.bytes()[13..45], w2.bytes()[13..45]);
    // Labels: an opener only runs Argon2id for wraps with its own label.
    let labelled = pass("x").with_label("backup-2025").unwrap();
    let env = Sealer::new(&labelled).seal(b"l", &c).unwrap();
    assert!(matches!(
        Opener::new(&pass("x")).open(&env, &c),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert_eq!(Opener::new(&labelled).open(&env, &c).unwrap(), b"l");
    assert!(pass("x").with_label("").is_err());
    assert!(pass("x").with_label("a\nb").is_err());
    assert!(Passphrase::new(SecretString::from("")).is_err());
    assert!(!format!("{:?}", pass("hunter2hunter2")).contains("hunter2"));
}

#[test]
fn passphrase_parameters_above_the_limits_are_refused_before_any_work() {
    let p = pass("pw");
    let dek = DataKey::generate().unwrap();
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx());
    let w = p.wrap(&dek, b.as_binding()).unwrap();
    let with = |m: u32, t: u32, par: u32| {
        let mut bytes = w.bytes().to_vec();
        bytes[1..5].copy_from_slice(&m.to_be_bytes());
        bytes[5..9].copy_from_slice(&t.to_be_bytes());
        bytes[9..13].copy_from_slice(&par.to_be_bytes());
        bytes
    };
    let unwrap = |bytes: &[u8]| {
        let r = WrappedKeyRef::new(w.provider_id(), w.key_id().as_str(), w.key_version(), bytes).unwrap();
        let start = std::time::Instant::now();
        let out = p.unwrap(r, b.as_binding());
        (out, start.elapsed())
    };
    for (m, t, par, limit) in [
        (u32::MAX, 1, 1, LimitKind::KdfMemory),
        (1024 * 1024 + 1, 1, 1, LimitKind::KdfMemory),
        (64, u32::MAX, 1, LimitKind::KdfIterations),
        (64, 11, 1, LimitKind::KdfIterations),
        (1024, 1, u32::MAX, LimitKind::KdfParallelism),
    ] {
        let (r, took) = unwrap(&with(m, t, par));
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ProviderErrorKind::LimitExceeded, "{m} {t} {par}");
        let src = std::error::Error::source(&e).unwrap().downcast_ref::<Error>().unwrap();
        assert!(
            matches!(src, Error::LimitExceeded { limit: l, .. } if *l == limit),
            "{src:?}"
        );
        assert!(
            took < std::time::Duration::from_millis(100),
            "refused before any work: {took:?}"
        );
    }
    // Invalid for Argon2id itself (zero passes, zero lanes, too little memory per lane).
    for (m, t, par) in [(64, 0, 1), (64, 1, 0), (8, 1, 2)] {
        let (r, _) = unwrap(&with(m, t, par));
        assert_eq!(
            r.unwrap_err().kind(),
            ProviderErrorKind::Authentication,
            "{m} {t} {par}"
        );
    }
    // Changed (valid) parameters derive another key.
    let (r, _) = unwrap(&with(128, 1, 1));
    assert_eq!(r.unwrap_err().kind(), ProviderErrorKind::Authentication);
    // Stricter limits refuse what the default accepts; looser ones accept.
    let strict = pass("pw").with_limits(PassphraseLimits::new(32, 10, 1));
    let r = WrappedKeyRef::new(w.provider_id(), w.key_id().as_str(), w.key_version(), w.bytes()).unwrap();
    assert_eq!(
        strict.unwrap(r, b.as_binding()).unwrap_err().kind(),
        ProviderErrorKind::LimitExceeded
    );
    let (ok, _) = unwrap(w.bytes());
    assert_eq!(ok.unwrap().expose_secret(), dek.expose_secret());
    // Every byte of salt, ciphertext and tag is authenticated.
    for i in 13..w.bytes().len() {
        let mut t = w.bytes().to_vec();
        t[i] ^= 0x80;
        assert_eq!(
            unwrap(&t).0.unwrap_err().kind(),
            ProviderErrorKind::Authentication,
            "byte {i}"
        );
    }
}

#[test]
fn argon2_parameters_have_a_floor_and_a_ceiling() {
    let d = Argon2Params::default();
    assert_eq!((d.memory_kib(), d.iterations(), d.parallelism()), (262_144, 3, 1));
    assert_eq!(Argon2Params::new(19 * 1024, 2, 1).unwrap().memory_kib(), 19 * 1024);
    assert!(Argon2Params::new(19 * 1024 - 1, 2, 1).is_err());
    assert!(Argon2Params::new(64 * 1024, 1, 1).is_err());
    assert!(Argon2Params::new(64 * 1024, 2, 0).is_err());
    assert!(matches!(
        Argon2Params::new(2 * 1024 * 1024, 3, 1),
        Err(Error::LimitExceeded {
            limit: LimitKind::KdfMemory,
            ..
        })
    ));
    assert!(matches!(
        Argon2Params::new(64 * 1024, 11, 1),
        Err(Error::LimitExceeded {
            limit: LimitKind::KdfIterations,
            ..
        })
    ));
    assert!(hazmat::argon2_params_unchecked(8, 1, 1).is_ok());
    assert!(hazmat::argon2_params_unchecked(7, 1, 1).is_err());
    let l = PassphraseLimits::default();
    assert_eq!(
        (l.max_memory_kib(), l.max_iterations(), l.max_parallelism()),
        (1 << 20, 10, 16)
    );
}

#[test]
fn default_parameters_round_trip() {
    let p = Passphrase::new(SecretString::from("the default cost")).unwrap();
    assert_eq!(p.params(), Argon2Params::DEFAULT);
    let env = lockbox::seal(&p, b"slow on purpose", &EncryptionContext::new()).unwrap();
    let w = lockbox::inspect(&env).unwrap().wrapped_keys()[0].clone();
    assert_eq!(&w.bytes()[1..13], &[0, 4, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1]);
    assert_eq!(
        lockbox::open(&p, &env, &EncryptionContext::new()).unwrap(),
        b"slow on purpose"
    );
}

#[test]
fn envelope_sizes_for_32_bytes_to_one_recipient_of_each_kind() {
    // Empty context, default suite and segment size: header + one segment
    // (32 bytes and its tag). A local KEK is the baseline.
    let ctx = EncryptionContext::new();
    let size = |p: &dyn KeyEncryptionProvider| Sealer::new(p).seal(&[0u8; 32], &ctx).unwrap().len();
    let local = size(&LocalKek::generate().unwrap());
    let x25519 = size(identity(RecipientKind::X25519, 1).recipient());
    let xwing = size(identity(RecipientKind::XWing, 1).recipient());
    let passphrase = size(&pass("p"));
    assert_eq!((local, x25519, xwing, passphrase), (253, 274, 1361, 268));
}
