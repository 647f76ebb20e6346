//! Round trip of arbitrary plaintext and context through every suite and
//! segment size, and rejection of one arbitrary byte flip.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::{EncryptionContext, LocalKek, Opener, Sealer, SegmentSize, Suite};

static KEK: LazyLock<LocalKek> = LazyLock::new(|| LocalKek::generate().unwrap());

fuzz_target!(|input: (u8, u8, u16, Vec<(String, String, bool)>, Vec<u8>)| {
    let (suite, exp, flip, entries, plaintext) = input;
    let suite = Suite::ALL[usize::from(suite) % Suite::ALL.len()];
    let size = SegmentSize::from_exponent(6 + exp % 5).unwrap();
    let mut ctx = EncryptionContext::new();
    for (k, v, required) in entries.iter().take(8) {
        let _ = if *required {
            ctx.insert_required(k, v)
        } else {
            ctx.insert(k, v)
        };
    }
    let sealer = Sealer::new(&*KEK).suite(suite).segment_size(size);
    let env = match sealer.seal(&plaintext, &ctx) {
        Ok(env) => env,
        Err(lockbox::Error::LimitExceeded { .. }) => return,
        Err(e) => panic!("seal failed: {e}"),
    };
    assert_eq!(Opener::new(&*KEK).open(&env, &ctx).unwrap(), plaintext);
    let mut bad = env.clone();
    let at = usize::from(flip) % bad.len();
    bad[at] ^= 0x01;
    assert!(lockbox::open(&*KEK, &bad, &ctx).is_err());
});
