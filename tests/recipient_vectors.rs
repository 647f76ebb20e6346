//! The frozen vectors of the recipient and passphrase providers
//! (`tests/vectors/recipients/*.json`, `FORMAT.md` §15): every positive one
//! opens to its plaintext, every negative one fails exactly as it says, and
//! every key string parses (or is refused) as `strings.json` says. The
//! identities are rebuilt from their strings and checked against their raw
//! bytes, recipient strings and key ids. `cargo xtask gen-recipient-vectors`
//! made them; the Python decoder in `tests/interop` checks the same files.
#![cfg(all(feature = "recipients", feature = "passphrase"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::Path;

use lockbox::passphrase::Passphrase;
use lockbox::recipient::{Identity, Recipient};
use lockbox::secrecy::SecretString;
use lockbox::{EncryptionContext, Error, KeyEncryptionProvider, KeyStringError, Opener, ProviderErrorKind, hazmat};
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/recipients")
}

fn provider(spec: &Value) -> Box<dyn KeyEncryptionProvider> {
    if let Some(text) = spec["passphrase"].as_str() {
        let p = Passphrase::new(SecretString::from(text))
            .unwrap()
            .with_label(spec["label"].as_str().unwrap())
            .unwrap();
        return Box::new(p);
    }
    let id = Identity::parse(spec["identity"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(hazmat::identity_bytes(&id)), spec["identity_secret_hex"]);
    assert_eq!(id.recipient().to_string(), spec["recipient"].as_str().unwrap());
    assert_eq!(hex::encode(id.recipient().as_bytes()), spec["recipient_public_hex"]);
    assert_eq!(id.key_id().as_str(), spec["key_id"].as_str().unwrap());
    assert_eq!(id.kind().provider_id(), spec["provider_id"].as_str().unwrap());
    let r = Recipient::parse(spec["recipient"].as_str().unwrap()).unwrap();
    assert_eq!(&r, id.recipient());
    Box::new(id)
}

fn outcome(r: &Result<Vec<u8>, Error>) -> (String, String) {
    match r {
        Ok(_) => ("success".into(), String::new()),
        Err(Error::NoProviderCouldUnwrap { attempts, source, .. }) => {
            let kind = match source.as_ref().map(lockbox::ProviderError::kind) {
                Some(ProviderErrorKind::Authentication) => "authentication",
                Some(ProviderErrorKind::LimitExceeded) => "limit-exceeded",
                Some(ProviderErrorKind::KeyNotFound) => "key-not-found",
                Some(ProviderErrorKind::Unsupported) => "unsupported",
                Some(_) => "other",
                None => "none",
            };
            (
                "no-provider-could-unwrap".into(),
                format!("attempts={attempts}; source={kind}"),
            )
        }
        Err(Error::Authentication) => ("authentication".into(), String::new()),
        Err(e) => (format!("{e:?}"), String::new()),
    }
}

#[test]
fn every_envelope_vector_opens_or_fails_as_it_says() {
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.file_name().unwrap() != "strings.json")
        .collect();
    files.sort();
    let (mut positive, mut negative) = (0, 0);
    for path in &files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let name = v["name"].as_str().unwrap();
        assert_eq!(format!("{name}.json"), path.file_name().unwrap().to_str().unwrap());
        let providers: Vec<_> = v["open_with"].as_array().unwrap().iter().map(provider).collect();
        // Lenient: the vectors name only their required entries (tests/vectors/README.md).
        let mut opener = Opener::new(providers[0].as_ref()).lenient_context();
        for p in &providers[1..] {
            opener = opener.also_try(p.as_ref());
        }
        let mut ctx = EncryptionContext::new();
        for e in v["open_context"].as_array().unwrap() {
            ctx = ctx
                .with_required(e["key"].as_str().unwrap(), e["value"].as_str().unwrap())
                .unwrap();
        }
        let envelope = hex::decode(v["envelope_hex"].as_str().unwrap()).unwrap();
        let info = lockbox::inspect(&envelope).unwrap();
        assert_eq!(
            info.post_quantum().to_string(),
            v["post_quantum"].as_str().unwrap(),
            "{name}"
        );
        for (w, want) in info.wrapped_keys().iter().zip(v["wrapped_keys"].as_array().unwrap()) {
            assert_eq!(w.provider_id(), want["provider_id"].as_str().unwrap(), "{name}");
            assert_eq!(hex::encode(w.bytes()), want["bytes_hex"].as_str().unwrap(), "{name}");
        }
        let r = opener.open(&envelope, &ctx);
        let (kind, detail) = outcome(&r);
        assert_eq!(kind, v["expect"].as_str().unwrap(), "{name}");
        if kind == "success" {
            assert_eq!(hex::encode(r.unwrap()), v["plaintext_hex"].as_str().unwrap(), "{name}");
            positive += 1;
        } else {
            assert_eq!(detail, v["error_detail"].as_str().unwrap(), "{name}");
            negative += 1;
        }
    }
    // Raise these when vectors are added (never lower them).
    assert!(positive >= 8, "{positive} positive vectors");
    assert!(negative >= 11, "{negative} negative vectors");
}

fn key_string_name(e: KeyStringError) -> &'static str {
    match e {
        KeyStringError::UnknownPrefix => "unknown-prefix",
        KeyStringError::WrongKeyType { .. } => "wrong-key-type",
        KeyStringError::InvalidCharacter { .. } => "invalid-character",
        KeyStringError::MixedCase => "mixed-case",
        KeyStringError::Checksum => "checksum",
        KeyStringError::Length => "length",
        KeyStringError::NonCanonical => "non-canonical",
        KeyStringError::InvalidKey => "invalid-key",
        _ => "other",
    }
}

#[test]
fn every_key_string_vector_parses_or_is_refused_as_it_says() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("strings.json")).unwrap()).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 13);
    for t in vectors {
        let input = t["input"].as_str().unwrap();
        let r = match t["parse_as"].as_str().unwrap() {
            "recipient" => Recipient::parse(input).map(|r| (r.kind(), hex::encode(r.as_bytes()))),
            _ => Identity::parse(input).map(|i| (i.kind(), hex::encode(hazmat::identity_bytes(&i)))),
        };
        match r {
            Ok((kind, key)) => {
                assert_eq!(t["expect"], "valid", "{}", t["name"]);
                assert_eq!(key, t["key_hex"].as_str().unwrap(), "{}", t["name"]);
                assert_eq!(kind.provider_id(), format!("lockbox.{}", t["kind"].as_str().unwrap()));
            }
            Err(Error::KeyString(e)) => assert_eq!(key_string_name(e), t["expect"].as_str().unwrap(), "{}", t["name"]),
            Err(e) => panic!("{}: {e:?}", t["name"]),
        }
    }
}
