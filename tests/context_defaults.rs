//! Context defaults (FORMAT.md §9.2): opening is exact by default, so an
//! envelope whose stored context has entries the caller did not name (a
//! record sealed for another tenant) does not open, on every path: one-shot
//! `open`, `Opener`, `AsyncOpener`, std and tokio streams, rewrap (one-shot
//! and streaming, sync and async) and re-encrypt. The lenient behaviour is
//! opt-in and clearly named (`lenient_context`). Context keys with Unicode
//! format characters (Cf: invisible and bidirectional controls) are refused
//! by the builder and by the header parser, so `inspect` cannot show two
//! look-alike keys. A caller context of 16,385 entries is reconciled in one
//! pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

use std::io::Read;
use std::time::Instant;

use lockbox::{
    AsyncOpener, AsyncReencryptor, AsyncRewrapper, AsyncSealer, EncryptionContext, Error, LocalKek, Opener,
    Reencryptor, Rewrapper, Sealer,
};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A record of tenant "globex", sealed with its tenant stored next to the
/// record id; the caller of tenant "acme" checks only the record id.
fn substituted() -> (LocalKek, Vec<u8>, EncryptionContext, EncryptionContext) {
    let kek = LocalKek::generate().unwrap();
    let sealed = EncryptionContext::new()
        .with("record", "42")
        .unwrap()
        .with("tenant", "globex")
        .unwrap();
    let env = lockbox::seal(&kek, b"globex's record 42", &sealed).unwrap();
    let caller = EncryptionContext::new().with("record", "42").unwrap();
    (kek, env, caller, sealed)
}

#[track_caller]
fn assert_missing_tenant<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
        other => panic!("an envelope with an entry the caller did not name opened: {other:?}"),
    }
}

#[track_caller]
fn assert_missing_tenant_io<T: std::fmt::Debug>(r: std::io::Result<T>) {
    match r {
        Err(e) => match e.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            Some(Error::MissingContext { key, .. }) => assert_eq!(key, "tenant"),
            _ => panic!("{e:?}"),
        },
        Ok(v) => panic!("an envelope with an entry the caller did not name opened: {v:?}"),
    }
}

#[test]
fn one_shot_open_is_exact_by_default() {
    let (kek, env, caller, sealed) = substituted();
    assert_missing_tenant(lockbox::open(&kek, &env, &caller));
    assert_missing_tenant(Opener::new(&kek).open(&env, &caller));
    assert_missing_tenant(Opener::new(&kek).open_with_context(&env, &caller));
    let mut buf = env.clone();
    assert_missing_tenant(Opener::new(&kek).open_in_place(&mut buf, &caller));
    assert_eq!(buf, env);
    let mut out = Vec::new();
    assert_missing_tenant(Opener::new(&kek).open_to(&env, &caller, &mut out));
    assert!(out.is_empty());
    assert_missing_tenant(block_on(AsyncOpener::new(&kek).open(&env, &caller)));
    assert_missing_tenant(block_on(AsyncOpener::new(&kek).open_with_context(&env, &caller)));
    // The whole context opens; labels (stored or required) do not matter.
    assert_eq!(lockbox::open(&kek, &env, &sealed).unwrap(), b"globex's record 42");
    let relabelled = EncryptionContext::new()
        .with_required("record", "42")
        .unwrap()
        .with_required("tenant", "globex")
        .unwrap();
    assert_eq!(lockbox::open(&kek, &env, &relabelled).unwrap(), b"globex's record 42");
    // A wrong value, or an entry the envelope does not have, still fails.
    let wrong = sealed.clone().with("tenant", "acme").unwrap();
    assert!(matches!(
        lockbox::open(&kek, &env, &wrong),
        Err(Error::ContextMismatch { .. })
    ));
    let extra = sealed.clone().with("zone", "eu").unwrap();
    assert!(matches!(
        lockbox::open(&kek, &env, &extra),
        Err(Error::ContextMismatch { .. })
    ));
}

#[test]
fn the_lenient_variant_is_named_and_returns_the_context() {
    let (kek, env, caller, sealed) = substituted();
    let (pt, full) = Opener::new(&kek)
        .lenient_context()
        .open_with_context(&env, &caller)
        .unwrap();
    assert_eq!(pt, b"globex's record 42");
    assert_eq!(
        full.get("tenant"),
        Some("globex"),
        "the caller sees what it did not name"
    );
    assert_eq!(full, sealed);
    let (_, full) = block_on(
        AsyncOpener::new(&kek)
            .lenient_context()
            .open_with_context(&env, &caller),
    )
    .unwrap();
    assert_eq!(full, sealed);
    assert_eq!(
        Opener::new(&kek).lenient_context().open(&env, &caller).unwrap(),
        b"globex's record 42"
    );
    // strict_context() is the default again after lenient_context().
    assert_missing_tenant(Opener::new(&kek).lenient_context().strict_context().open(&env, &caller));
}

#[test]
fn streams_are_exact_by_default() {
    let (kek, env, caller, sealed) = substituted();
    assert_missing_tenant_io(Opener::new(&kek).decryptor(&env[..], &caller).map(drop));
    #[cfg(feature = "tokio")]
    assert_missing_tenant_io(block_on(AsyncOpener::new(&kek).decryptor(&env[..], &caller)).map(drop));
    let raw = lockbox::RawHeader::read(&mut &env[..], &lockbox::Limits::default()).unwrap();
    assert_missing_tenant(Opener::new(&kek).unlock(raw, &caller).map(drop));
    // Lenient: the decryptor's header carries the whole context.
    let raw = lockbox::RawHeader::read(&mut &env[..], &lockbox::Limits::default()).unwrap();
    let unlocked = Opener::new(&kek).lenient_context().unlock(raw, &caller).unwrap();
    assert_eq!(unlocked.context(), &sealed);
    let mut dec = Opener::new(&kek)
        .lenient_context()
        .decryptor(&env[..], &caller)
        .unwrap();
    let mut pt = Vec::new();
    dec.read_to_end(&mut pt).unwrap();
    assert_eq!(pt, b"globex's record 42");
}

#[test]
fn rewrap_and_reencrypt_are_exact_by_default() {
    let (kek, env, caller, sealed) = substituted();
    let new = LocalKek::generate().unwrap();
    assert_missing_tenant(Rewrapper::new(&kek).wrap_with(&new).rewrap(&env, &caller));
    assert_missing_tenant(Rewrapper::new(&kek).wrap_with(&new).rewrap_header(&env, &caller));
    assert_missing_tenant(block_on(
        AsyncRewrapper::new(&kek).wrap_with(&new).rewrap(&env, &caller),
    ));
    let mut out = Vec::new();
    assert_missing_tenant_io(Rewrapper::new(&kek).rewrap_stream(&env[..], &mut out, &caller));
    assert!(out.is_empty(), "nothing written");
    #[cfg(feature = "tokio")]
    assert_missing_tenant_io(block_on(AsyncRewrapper::new(&kek).wrap_with(&new).rewrap_stream(
        &env[..],
        &mut out,
        &caller,
    )));
    let re = Reencryptor::new(Opener::new(&kek), Sealer::new(&new));
    assert_missing_tenant(re.reencrypt(&env, &caller));
    assert_missing_tenant_io(re.reencrypt_stream(&env[..], Vec::new(), &caller).map(drop));
    let are = AsyncReencryptor::new(AsyncOpener::new(&kek), AsyncSealer::new(&new));
    assert_missing_tenant(block_on(are.reencrypt(&env, &caller)));

    // Lenient, on purpose: the whole context is kept.
    let moved = Rewrapper::new(&kek)
        .wrap_with(&new)
        .lenient_context()
        .rewrap(&env, &caller)
        .unwrap();
    assert_eq!(lockbox::open(&new, &moved, &sealed).unwrap(), b"globex's record 42");
    let moved = block_on(
        AsyncRewrapper::new(&kek)
            .wrap_with(&new)
            .lenient_context()
            .rewrap(&env, &caller),
    )
    .unwrap();
    assert_eq!(lockbox::open(&new, &moved, &sealed).unwrap(), b"globex's record 42");
    let fresh = Reencryptor::new(Opener::new(&kek).lenient_context(), Sealer::new(&new))
        .reencrypt(&env, &caller)
        .unwrap();
    assert_eq!(lockbox::open(&new, &fresh, &sealed).unwrap(), b"globex's record 42");
}

/// Unicode format characters (general category Cf), a few from each block.
const FORMAT_CHARS: &[char] = &[
    '\u{00AD}',
    '\u{0600}',
    '\u{061C}',
    '\u{06DD}',
    '\u{070F}',
    '\u{0890}',
    '\u{08E2}',
    '\u{180E}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{200E}',
    '\u{200F}',
    '\u{202A}',
    '\u{202E}',
    '\u{2060}',
    '\u{2064}',
    '\u{2066}',
    '\u{2069}',
    '\u{206F}',
    '\u{FEFF}',
    '\u{FFF9}',
    '\u{FFFB}',
    '\u{110BD}',
    '\u{110CD}',
    '\u{13430}',
    '\u{1343F}',
    '\u{1BCA0}',
    '\u{1BCA3}',
    '\u{1D173}',
    '\u{1D17A}',
    '\u{E0001}',
    '\u{E0020}',
    '\u{E007F}',
];

#[test]
fn context_keys_with_format_characters_are_refused() {
    for &c in FORMAT_CHARS {
        let key = format!("ten{c}ant");
        assert!(
            matches!(
                EncryptionContext::new().with(&key, "acme"),
                Err(Error::InvalidArgument { .. })
            ),
            "U+{:04X} accepted in a stored key",
            u32::from(c)
        );
        assert!(
            EncryptionContext::new().with_required(&key, "acme").is_err(),
            "U+{:04X} accepted in a required key",
            u32::from(c)
        );
        // Values may hold anything.
        EncryptionContext::new().with("note", &key).unwrap();
    }
    // Neighbours that are not format characters stay valid.
    for c in [
        '\u{2000}',
        '\u{2010}',
        '\u{2065}',
        '\u{FFF8}',
        '\u{FFFC}',
        '\u{E0000}',
        '\u{E0080}',
        'é',
        'ß',
    ] {
        EncryptionContext::new().with(&format!("k{c}"), "v").unwrap();
    }
}

#[test]
fn the_parser_refuses_a_format_character_in_a_header_key() {
    // Seal with U+2000 (EN QUAD, a space separator: E2 80 80) in a key, then
    // turn it into U+200B (ZERO WIDTH SPACE: E2 80 8B), same length.
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with("ten\u{2000}ant", "acme").unwrap();
    let env = lockbox::seal(&kek, b"x", &ctx).unwrap();
    let at = env.windows(5).position(|w| w == b"ten\xe2\x80").unwrap() + 5;
    assert_eq!(env[at], 0x80);
    for (last, c) in [(0x8b, '\u{200B}'), (0xae, '\u{202E}'), (0x8e, '\u{200E}')] {
        let mut bad = env.clone();
        bad[at] = last;
        match lockbox::inspect(&bad) {
            Err(Error::Malformed { offset, what, .. }) => {
                assert!(what.contains("format character"), "{what}");
                assert!(offset <= at, "{offset}");
            }
            other => panic!(
                "U+{:04X} in a header key was accepted: {:?}",
                u32::from(c),
                other.map(|i| i.stored_context().map(|(k, _)| k.to_owned()).collect::<Vec<_>>())
            ),
        }
        assert!(matches!(lockbox::open(&kek, &bad, &ctx), Err(Error::Malformed { .. })));
    }
}

#[test]
fn a_huge_caller_context_is_reconciled_in_one_pass() {
    // Found in review: reconciliation was quadratic (16,385 entries took
    // over 4 s). No timed assertion here; the time is printed.
    let kek = LocalKek::generate().unwrap();
    let sealed = EncryptionContext::new().with("k08192", "v").unwrap();
    let env = lockbox::seal(&kek, b"x", &sealed).unwrap();
    let mut caller = EncryptionContext::new();
    for i in 0..16_385 {
        caller.insert(&format!("k{i:05}"), "v").unwrap();
    }
    assert_eq!(caller.len(), 16_385);
    let start = Instant::now();
    let r = lockbox::open(&kek, &env, &caller);
    let lenient = Opener::new(&kek).lenient_context().open(&env, &caller);
    let elapsed = start.elapsed();
    println!("two opens with a 16,385-entry caller context: {elapsed:?}");
    // The bytewise-smallest supplied key the envelope lacks is named.
    for r in [r, lenient] {
        match r {
            Err(Error::ContextMismatch { key, .. }) => assert_eq!(key, "k00000"),
            other => panic!("{other:?}"),
        }
    }
}
