//! Fernet: the specification's vectors (`tests/vectors/fernet/`, from the
//! `cryptography_vectors` package: generate, verify, invalid), tokens made
//! by Python's `cryptography` (MultiFernet key order, every length class),
//! the order of the checks (HMAC before time, before decryption), and
//! migration to envelopes, one token and batches, sync and async.
#![cfg(feature = "fernet")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

#[path = "keyring_common/async_only.rs"]
mod async_only;

use async_only::{AsyncOnly, block_on};
use lockbox::fernet::{FernetError, FernetKey, MultiFernet, TimeCheck};
use lockbox::secrecy::ExposeSecret;
use lockbox::{AsyncSealer, EncryptionContext, Error, LocalKek, Sealer, hazmat};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/fernet/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Unix seconds of an RFC 3339 time with an offset (`1985-10-26T01:20:00-07:00`).
fn unix(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    let sign = if &s[19..20] == "-" { -1 } else { 1 };
    let off = sign * (n(20..22) * 3600 + n(23..25) * 60);
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss - off).unwrap()
}

#[test]
fn specification_vectors() {
    let (mut generated, mut verified, mut refused) = (0, 0, 0);
    for v in load("generate.json").as_array().unwrap() {
        let key = FernetKey::parse(v["secret"].as_str().unwrap()).unwrap();
        let iv: [u8; 16] = v["iv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let now = unix(v["now"].as_str().unwrap());
        let token = hazmat::fernet_encrypt_with_iv(&key, v["src"].as_str().unwrap().as_bytes(), now, iv);
        assert_eq!(token, v["token"].as_str().unwrap());
        generated += 1;
    }
    for v in load("verify.json").as_array().unwrap() {
        let f = MultiFernet::parse([v["secret"].as_str().unwrap()]).unwrap();
        let time = TimeCheck::max_age(v["ttl_sec"].as_u64().unwrap(), unix(v["now"].as_str().unwrap()));
        let plain = f.decrypt(v["token"].as_str().unwrap(), time).unwrap();
        assert_eq!(plain.as_slice(), v["src"].as_str().unwrap().as_bytes());
        verified += 1;
    }
    for v in load("invalid.json").as_array().unwrap() {
        let f = MultiFernet::parse([v["secret"].as_str().unwrap()]).unwrap();
        let time = TimeCheck::max_age(v["ttl_sec"].as_u64().unwrap(), unix(v["now"].as_str().unwrap()));
        let desc = v["desc"].as_str().unwrap();
        let r = f.decrypt(v["token"].as_str().unwrap(), time);
        let expected = match desc {
            "incorrect mac" | "payload padding error" | "incorrect IV (causes padding error)" => {
                matches!(r, Err(Error::Authentication))
            }
            "too short" | "invalid base64" | "payload size not multiple of block size" => {
                matches!(r, Err(Error::Fernet(FernetError::Malformed(_))))
            }
            "far-future TS (unacceptable clock skew)" => {
                matches!(r, Err(Error::Fernet(FernetError::FromTheFuture { .. })))
            }
            "expired TTL" => matches!(r, Err(Error::Fernet(FernetError::Expired { .. }))),
            other => panic!("unknown invalid vector {other:?}"),
        };
        assert!(expected, "{desc}: {:?}", r.map(|p| p.len()));
        refused += 1;
    }
    println!("Fernet specification vectors: {generated} generate, {verified} verify, {refused} invalid passed");
    assert_eq!((generated, verified, refused), (1, 1, 8));
}

#[test]
fn the_hmac_is_checked_before_the_time_and_the_decryption() {
    let key = FernetKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
    let f = MultiFernet::new(vec![
        FernetKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap(),
    ]);
    let token = key.encrypt(b"payload", 1000).unwrap();
    // An expired token with a broken HMAC is an authentication failure, not
    // "expired": the timestamp is not trusted before the HMAC verifies.
    let mut raw = token.into_bytes();
    let at = raw.len() - 5;
    raw[at] = if raw[at] == b'A' { b'B' } else { b'A' };
    let broken = String::from_utf8(raw).unwrap();
    assert!(matches!(
        f.decrypt(&broken, TimeCheck::max_age(1, 5000)),
        Err(Error::Authentication)
    ));
    // Wrong version byte (with a valid HMAC over it or not): refused before anything.
    let mut bytes = base64url_decode(&key.encrypt(b"x", 1).unwrap());
    bytes[0] = 0x81;
    assert!(matches!(
        f.decrypt(&base64url_encode(&bytes), TimeCheck::none()),
        Err(Error::Fernet(FernetError::UnsupportedVersion(0x81)))
    ));
    // Non-canonical or unpadded base64 is refused.
    let good = key.encrypt(b"x", 1).unwrap();
    assert!(f.decrypt(good.trim_end_matches('='), TimeCheck::none()).is_err());
    assert!(f.decrypt(&good.replace('-', "+"), TimeCheck::none()).is_err() || !good.contains('-'));
    // The clock-skew boundary: exactly 60 s in the future opens, 61 s does not.
    let t = key.encrypt(b"x", 1060).unwrap();
    assert!(f.decrypt(&t, TimeCheck::max_age(10, 1000)).is_ok());
    assert!(f.decrypt(&t, TimeCheck::max_age(10, 999)).is_err());
    // The TTL boundary: timestamp + ttl == now opens, one second later does not.
    assert!(f.decrypt(&t, TimeCheck::max_age(10, 1070)).is_ok());
    assert!(f.decrypt(&t, TimeCheck::max_age(10, 1071)).is_err());
    // Keys round-trip as Python writes them, and print nothing.
    let k = FernetKey::generate().unwrap();
    assert_eq!(
        FernetKey::from_secret(&k.to_secret_string())
            .unwrap()
            .to_secret_string()
            .expose_secret(),
        k.to_secret_string().expose_secret()
    );
    assert_eq!(format!("{k:?}"), "FernetKey([REDACTED])");
    let fresh = lockbox::token::fernet_key().unwrap();
    assert!(FernetKey::from_secret(&fresh).is_ok());
}

fn base64url_decode(s: &str) -> Vec<u8> {
    use base64ct::{Base64Url, Encoding};
    Base64Url::decode_vec(s).unwrap()
}

fn base64url_encode(b: &[u8]) -> String {
    use base64ct::{Base64Url, Encoding};
    Base64Url::encode_string(b)
}

#[test]
fn python_made_tokens_open_and_migrate() {
    let doc = load("python-tokens.json");
    let keys: Vec<&str> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let multi = MultiFernet::parse(keys.iter().copied()).unwrap();
    let tokens = doc["tokens"].as_array().unwrap();
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with("migrated-from", "fernet").unwrap();
    let sealer = Sealer::new(&kek);
    let mut opened = 0;
    for t in tokens {
        let token = t["token"].as_str().unwrap();
        let expected = hex::decode(t["plaintext_hex"].as_str().unwrap()).unwrap();
        let ts = t["timestamp"].as_u64().unwrap();
        let (plain, at) = multi
            .decrypt_with_timestamp(token, TimeCheck::max_age(60, ts + 10))
            .unwrap();
        assert_eq!((plain.as_slice(), at), (expected.as_slice(), ts));
        // Only the key that made it (MultiFernet tries each).
        let own = MultiFernet::parse([keys[t["key_index"].as_u64().unwrap() as usize]]).unwrap();
        assert!(own.decrypt(token, TimeCheck::none()).is_ok());
        let other = MultiFernet::parse([keys[(t["key_index"].as_u64().unwrap() as usize + 1) % 3]]).unwrap();
        assert!(matches!(
            other.decrypt(token, TimeCheck::none()),
            Err(Error::Authentication)
        ));
        let envelope = multi.migrate(token, TimeCheck::none(), &sealer, &ctx).unwrap();
        assert_eq!(lockbox::open(&kek, &envelope, &ctx).unwrap(), expected);
        opened += 1;
    }
    // Batches, with one bad token among them: one result per token.
    let mut batch: Vec<&str> = tokens.iter().map(|t| t["token"].as_str().unwrap()).collect();
    batch.insert(3, "gAAAAA-not-a-token");
    let results = multi.migrate_batch(batch.iter().copied(), TimeCheck::none(), &sealer, &ctx);
    assert_eq!(results.len(), tokens.len() + 1);
    assert!(results[3].is_err());
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), tokens.len());
    let a_kek = AsyncOnly::new(LocalKek::generate().unwrap());
    let async_results = block_on(multi.migrate_batch_async(
        batch.iter().copied(),
        TimeCheck::none(),
        &AsyncSealer::new(&a_kek),
        &ctx,
    ));
    assert_eq!(async_results.iter().filter(|r| r.is_ok()).count(), tokens.len());
    for (r, t) in async_results.iter().filter_map(|r| r.as_ref().ok()).zip(tokens) {
        let expected = hex::decode(t["plaintext_hex"].as_str().unwrap()).unwrap();
        assert_eq!(lockbox::open(&a_kek.inner, r, &ctx).unwrap(), expected);
    }
    println!(
        "{opened} tokens made by Python cryptography {} opened and migrated",
        doc["cryptography_version"].as_str().unwrap()
    );
}
