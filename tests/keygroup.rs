//! k-of-n key groups: every threshold and every subset of members, the sync
//! and async shells on the same bytes, tampering, the "how many shares"
//! error, and the frozen vectors in `tests/vectors/keygroup/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

use std::path::PathBuf;
use std::sync::Arc;

use lockbox::keygroup::{AsyncKeyGroup, KEYGROUP_PROVIDER_ID, KeyGroup, KeyGroupError};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, EncryptionContext, Error, KeyEncryptionProvider, KeyId, LocalKek, ProviderErrorKind,
};
use serde_json::{Value, json};

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("app", "vectors")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

fn members(n: usize) -> Vec<LocalKek> {
    (0..n).map(|_| LocalKek::generate().unwrap()).collect()
}

fn arcs(keks: &[LocalKek], pick: &[usize]) -> Vec<Arc<dyn KeyEncryptionProvider>> {
    pick.iter()
        .map(|i| {
            let b64 = lockbox::hazmat::local_kek_to_base64(&keks[*i]);
            Arc::new(lockbox::hazmat::local_kek_from_base64(b64.expose_secret()).unwrap())
                as Arc<dyn KeyEncryptionProvider>
        })
        .collect()
}

/// The same keys as async members (every sync provider is an async one).
fn async_arcs(keks: &[LocalKek], pick: &[usize]) -> Vec<Arc<dyn AsyncKeyEncryptionProvider>> {
    pick.iter()
        .map(|i| {
            let b64 = lockbox::hazmat::local_kek_to_base64(&keks[*i]);
            Arc::new(lockbox::hazmat::local_kek_from_base64(b64.expose_secret()).unwrap())
                as Arc<dyn AsyncKeyEncryptionProvider>
        })
        .collect()
}

/// The error chain of a failed open, as text.
fn chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn every_threshold_and_every_subset() {
    let id = KeyId::new("group").unwrap();
    for n in 1..=5usize {
        let keks = members(n);
        for k in 1..=n {
            let all: Vec<usize> = (0..n).collect();
            let group = KeyGroup::new(id.clone(), k, arcs(&keks, &all)).unwrap();
            let pt = format!("{k} of {n}");
            let env = lockbox::seal(&group, pt.as_bytes(), &ctx()).unwrap();
            let info = lockbox::inspect(&env).unwrap();
            assert_eq!(info.wrapped_keys()[0].provider_id(), KEYGROUP_PROVIDER_ID);
            for mask in 1u32..(1 << n) {
                let subset: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
                let opener = KeyGroup::unwrap_only(id.clone(), arcs(&keks, &subset)).unwrap();
                let r = lockbox::open(&opener, &env, &ctx());
                if subset.len() >= k {
                    assert_eq!(r.unwrap(), pt.as_bytes(), "n={n} k={k} subset={subset:?}");
                } else {
                    let e = r.unwrap_err();
                    let text = chain(&e);
                    assert!(
                        text.contains(&format!("{} of {k} required shares", subset.len())),
                        "n={n} k={k} subset={subset:?}: {text}"
                    );
                    let Error::NoProviderCouldUnwrap { source: Some(p), .. } = &e else {
                        panic!("{e:?}")
                    };
                    let ge = std::error::Error::source(p)
                        .unwrap()
                        .downcast_ref::<KeyGroupError>()
                        .unwrap();
                    assert!(matches!(ge, KeyGroupError::NotEnoughShares { obtained, needed, .. }
                        if *obtained == subset.len() && *needed == k));
                }
            }
        }
    }
}

#[test]
fn the_async_shell_reads_and_writes_the_same_bytes() {
    let id = KeyId::new("async-group").unwrap();
    let keks = members(3);
    let sync_group = KeyGroup::new(id.clone(), 2, arcs(&keks, &[0, 1, 2])).unwrap();
    let async_group = AsyncKeyGroup::new(id.clone(), 2, async_arcs(&keks, &[0, 1, 2])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let env = rt
        .block_on(lockbox::AsyncSealer::new(&async_group).seal(b"async", &ctx()))
        .unwrap();
    assert_eq!(lockbox::open(&sync_group, &env, &ctx()).unwrap(), b"async");
    let env2 = lockbox::seal(&sync_group, b"sync", &ctx()).unwrap();
    let opener = AsyncKeyGroup::unwrap_only(id, async_arcs(&keks, &[2, 0])).unwrap();
    assert_eq!(
        rt.block_on(lockbox::AsyncOpener::new(&opener).open(&env2, &ctx()))
            .unwrap(),
        b"sync"
    );
    // An unwrap-only group cannot seal.
    let e = rt
        .block_on(lockbox::AsyncSealer::new(&opener).seal(b"x", &ctx()))
        .unwrap_err();
    assert!(matches!(e, Error::Provider(p) if p.kind() == ProviderErrorKind::Unsupported));
}

#[test]
fn bad_groups_and_tampering_are_refused() {
    let id = KeyId::new("g").unwrap();
    let keks = members(3);
    assert!(KeyGroup::new(id.clone(), 0, arcs(&keks, &[0])).is_err());
    assert!(KeyGroup::new(id.clone(), 2, arcs(&keks, &[0])).is_err());
    assert!(KeyGroup::new(id.clone(), 1, Vec::new()).is_err());
    // The same member twice would give one holder two shares: refused.
    let twice = KeyGroup::new(id.clone(), 2, arcs(&keks, &[0, 0])).unwrap();
    assert!(lockbox::seal(&twice, b"x", &ctx()).is_err());
    // Another context: every share unwrap fails authentication.
    let group = KeyGroup::new(id.clone(), 2, arcs(&keks, &[0, 1, 2])).unwrap();
    let env = lockbox::seal(&group, b"x", &ctx()).unwrap();
    let other = EncryptionContext::new()
        .with("app", "vectors")
        .unwrap()
        .with_required("tenant", "evil")
        .unwrap();
    let e = lockbox::open(&group, &env, &other).unwrap_err();
    assert!(chain(&e).contains("0 of 2"), "{}", chain(&e));
    // Flip each byte of the wrapped key in turn: never opens.
    let info = lockbox::inspect(&env).unwrap();
    let w = info.wrapped_keys()[0].bytes().to_vec();
    let at = env.windows(w.len()).position(|win| win == w).unwrap();
    for i in 0..w.len() {
        let mut bad = env.clone();
        bad[at + i] ^= 0x01;
        assert!(lockbox::open(&group, &bad, &ctx()).is_err(), "byte {i}");
    }
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/keygroup")
}

fn kek_bytes(seed: u8) -> LocalKek {
    let b64 = {
        use base64ct::Encoding;
        base64ct::Base64::encode_string(&[seed; 32])
    };
    lockbox::hazmat::local_kek_from_base64(&b64).unwrap()
}

/// Writes the frozen vectors if asked (`LOCKBOX_WRITE_KEYGROUP_VECTORS=1`),
/// never over an existing file.
fn write_vector(name: &str, n: usize, k: usize, plaintext: &[u8], swap: bool) {
    let path = vectors_dir().join(format!("{name}.json"));
    if path.exists() {
        return;
    }
    assert!(
        std::env::var("LOCKBOX_WRITE_KEYGROUP_VECTORS").is_ok_and(|v| v == "1"),
        "missing frozen vector {}",
        path.display()
    );
    let seeds: Vec<u8> = (0..n).map(|i| 0x61 + u8::try_from(i).unwrap()).collect();
    let keks: Vec<LocalKek> = seeds.iter().map(|s| kek_bytes(*s)).collect();
    let members: Vec<Arc<dyn KeyEncryptionProvider>> = seeds
        .iter()
        .map(|s| Arc::new(kek_bytes(*s)) as Arc<dyn KeyEncryptionProvider>)
        .collect();
    let group = KeyGroup::new(KeyId::new("vector-group").unwrap(), k, members).unwrap();
    let mut env = lockbox::seal(&group, plaintext, &ctx()).unwrap();
    let wrapped = lockbox::inspect(&env).unwrap().wrapped_keys()[0].bytes().to_vec();
    let mut description = format!(
        "A {k}-of-{n} key group ({KEYGROUP_PROVIDER_ID}, FORMAT.md §10b) of lockbox.local KEKs; \
         every subset of members, with the expected outcome."
    );
    let mut cases = Vec::new();
    if swap {
        // Swap the x-coordinates of shares 1 and 2 (offset 3, and 3 + the
        // first share entry's length, within the wrapped bytes).
        let at = env.windows(wrapped.len()).position(|w| w == wrapped).unwrap();
        let first = 1 + 1 + wrapped[4] as usize + 1 + wrapped[5 + wrapped[4] as usize] as usize + 4 + 2;
        let len1 = first + u16::from_be_bytes([wrapped[3 + first - 2], wrapped[3 + first - 1]]) as usize;
        env.swap(at + 3, at + 3 + len1);
        description = format!(
            "Negative: the {k}-of-{n} group envelope with the x-coordinates of its first two shares swapped \
             (bytes {} and {} of the envelope). Any {k} members recombine a wrong key: the key commitment fails.",
            at + 3,
            at + 3 + len1
        );
        cases.push(json!({"members": [0, 1], "expect": "authentication"}));
        cases.push(json!({"members": [0, 1, 2], "expect": "authentication"}));
    } else {
        for mask in 1u32..(1 << n) {
            let subset: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            if subset.len() >= k {
                cases.push(json!({"members": subset, "expect": "success"}));
            } else {
                cases.push(json!({
                    "members": subset,
                    "expect": "no-provider-could-unwrap",
                    "error_detail": format!("{} of {k} required shares", subset.len()),
                }));
            }
        }
    }
    let v = json!({
        "format_version": 1,
        "name": name,
        "description": description,
        "group_provider_id": KEYGROUP_PROVIDER_ID,
        "group_key_id": "vector-group",
        "group_key_version": 1,
        "threshold": k,
        "members": keks.iter().zip(&seeds).map(|(kek, s)| json!({
            "kek_base64": lockbox::hazmat::local_kek_to_base64(&kek_bytes(*s)).expose_secret(),
            "key_id": kek.key_id().as_str(),
        })).collect::<Vec<_>>(),
        "open_context": [{"key": "app", "value": "vectors"}, {"key": "tenant", "value": "acme"}],
        "sealed_context": [
            {"key": "app", "value": "vectors", "storage": "stored"},
            {"key": "tenant", "value": "acme", "storage": "required"},
        ],
        "plaintext_hex": if swap { Value::Null } else { Value::String(hex::encode(plaintext)) },
        "wrapped_key_hex": hex::encode(&wrapped),
        "envelope_hex": hex::encode(&env),
        "cases": cases,
    });
    std::fs::create_dir_all(vectors_dir()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
}

#[test]
fn frozen_vectors() {
    write_vector("001-2of3", 3, 2, b"two of three", false);
    write_vector("002-3of5", 5, 3, b"three of five custodians", false);
    write_vector("003-1of2", 2, 1, b"", false);
    write_vector("004-2of3-swapped-coordinates", 3, 2, b"swapped", true);
    let mut count = 0;
    for e in std::fs::read_dir(vectors_dir()).unwrap() {
        let path = e.unwrap().path();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["name"].as_str().unwrap(), path.file_stem().unwrap().to_str().unwrap());
        let keks: Vec<String> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["kek_base64"].as_str().unwrap().to_string())
            .collect();
        for m in v["members"].as_array().unwrap() {
            let kek = lockbox::hazmat::local_kek_from_base64(m["kek_base64"].as_str().unwrap()).unwrap();
            assert_eq!(kek.key_id().as_str(), m["key_id"].as_str().unwrap());
        }
        let mut open_ctx = EncryptionContext::new();
        for e in v["open_context"].as_array().unwrap() {
            open_ctx
                .insert(e["key"].as_str().unwrap(), e["value"].as_str().unwrap())
                .unwrap();
        }
        let env = hex::decode(v["envelope_hex"].as_str().unwrap()).unwrap();
        let info = lockbox::inspect(&env).unwrap();
        assert_eq!(
            info.wrapped_keys()[0].key_id().as_str(),
            v["group_key_id"].as_str().unwrap()
        );
        for case in v["cases"].as_array().unwrap() {
            let pick: Vec<Arc<dyn KeyEncryptionProvider>> = case["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    Arc::new(lockbox::hazmat::local_kek_from_base64(&keks[i.as_u64().unwrap() as usize]).unwrap())
                        as Arc<dyn KeyEncryptionProvider>
                })
                .collect();
            let group = KeyGroup::unwrap_only(KeyId::new(v["group_key_id"].as_str().unwrap()).unwrap(), pick).unwrap();
            let r = lockbox::open(&group, &env, &open_ctx);
            match case["expect"].as_str().unwrap() {
                "success" => assert_eq!(
                    hex::encode(r.unwrap()),
                    v["plaintext_hex"].as_str().unwrap(),
                    "{}: {case}",
                    path.display()
                ),
                "authentication" => assert!(matches!(r, Err(Error::Authentication)), "{}: {case}", path.display()),
                "no-provider-could-unwrap" => {
                    let e = r.unwrap_err();
                    assert!(matches!(e, Error::NoProviderCouldUnwrap { .. }));
                    assert!(
                        chain(&e).contains(case["error_detail"].as_str().unwrap()),
                        "{}",
                        chain(&e)
                    );
                }
                other => panic!("unknown expectation {other}"),
            }
            count += 1;
        }
    }
    assert!(count >= 2 + 7 + 3 + 31, "{count} cases");
}
