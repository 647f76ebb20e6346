//! A loop for `perf record`: `profile_small <lockbox|v1min|v2|tink> <seal|open> <iters>`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use lockbox::{Backend, EncryptionContext, Opener, Sealer, hazmat};
use lockbox_perf::{tink_envelope, v1min, v2};
use secrecy::SecretBox;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n: u64 = a[3].parse().unwrap();
    let key = [9u8; 32];
    let kek = hazmat::local_kek_from_bytes(SecretBox::new(Box::new(key)));
    let ctx = EncryptionContext::new()
        .with("purpose", "bench")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap();
    let entries: &[v1min::Entry<'_>] = &[("purpose", "bench", true), ("tenant", "acme", false)];
    let pt = [0x5au8; 32];
    let v1 = v1min::LocalV1::new(&key);
    let v2 = v2::LocalV2::new(&key);
    let tink = tink_envelope();
    let sealer = Sealer::new(&kek).backend(Backend::AwsLc);
    let opener = Opener::new(&kek).backend(Backend::AwsLc);
    let env = match a[1].as_str() {
        "lockbox" | "v1min" => sealer.seal(&pt, &ctx).unwrap(),
        "v2" => v2.seal(entries, &pt, 0),
        _ => tink.encrypt(&pt, b"aad").unwrap(),
    };
    for _ in 0..n {
        match (a[1].as_str(), a[2].as_str()) {
            ("lockbox", "seal") => drop(black_box(sealer.seal(black_box(&pt), &ctx).unwrap())),
            ("lockbox", "open") => drop(black_box(opener.open(black_box(&env), &ctx).unwrap())),
            ("v1min", "seal") => drop(black_box(v1.seal(entries, black_box(&pt)))),
            ("v1min", "open") => drop(black_box(v1.open(entries, black_box(&env)).unwrap())),
            ("v2", "seal") => drop(black_box(v2.seal(entries, black_box(&pt), 0))),
            ("v2", "open") => drop(black_box(v2.open(entries, black_box(&env)).unwrap())),
            ("tink", "seal") => drop(black_box(tink.encrypt(black_box(&pt), b"aad").unwrap())),
            ("tink", "open") => drop(black_box(tink.decrypt(black_box(&env), b"aad").unwrap())),
            other => panic!("{other:?}"),
        }
    }
}
