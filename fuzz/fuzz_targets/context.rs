//! Encryption-context decoding: binding entries from arbitrary bytes, and
//! contexts built from arbitrary strings, never panic, and a context built
//! from arbitrary entries round-trips through seal and open.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::{EncryptionContext, LocalKek, Storage};

static KEK: LazyLock<LocalKek> = LazyLock::new(|| LocalKek::generate().unwrap());

fuzz_target!(|input: (Vec<u8>, Vec<(String, String, bool)>)| {
    let (raw, entries) = input;
    let _ = lockbox::fuzzing::binding_entries(&raw);
    let mut ctx = EncryptionContext::new();
    for (k, v, required) in &entries {
        let r = if *required {
            ctx.insert_required(k, v)
        } else {
            ctx.insert(k, v)
        };
        if r.is_ok() {
            assert_eq!(ctx.get(k), Some(v.as_str()));
        }
    }
    let Ok(env) = lockbox::seal(&*KEK, b"x", &ctx) else {
        return;
    };
    let info = lockbox::inspect(&env).unwrap();
    let stored: Vec<_> = ctx
        .iter()
        .filter(|e| e.storage == Storage::Stored)
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(info.stored_context().collect::<Vec<_>>(), stored);
    assert_eq!(lockbox::open(&*KEK, &env, &ctx).unwrap(), b"x");
});
