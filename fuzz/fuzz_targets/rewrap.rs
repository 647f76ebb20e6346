//! Rewrap of arbitrary bytes, and of real envelopes with one byte changed:
//! never panics, and agrees with open. A rewrap succeeds only if the header
//! authenticated (so opening the input would get past the header), and the
//! rewrapped envelope opens under the new KEK exactly when the input opened
//! under the old one, to the same plaintext. The streaming rewrap gives the
//! same outcome and the same bytes as the one-shot rewrap.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::secrecy::SecretBox;
use lockbox::{EncryptionContext, Keep, LocalKek, Rewrapper, Sealer, SegmentSize};

// Keys no test vector uses.
static KEK: LazyLock<LocalKek> =
    LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| (i as u8) ^ 0xa5)))));
static NEW: LazyLock<LocalKek> =
    LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| (i as u8) ^ 0x5a)))));

fuzz_target!(|input: (bool, u16, u8, Vec<u8>)| {
    let (seal, at, xor, data) = input;
    let ctx = EncryptionContext::new();
    let env = if seal {
        let mut env = Sealer::new(&*KEK)
            .segment_size(SegmentSize::MIN)
            .seal(&data, &ctx)
            .expect("sealing never fails");
        let i = usize::from(at) % env.len();
        env[i] ^= xor;
        env
    } else {
        data
    };
    let opened = lockbox::open(&*KEK, &env, &ctx).ok();
    match Rewrapper::new(&*KEK).wrap_with(&*NEW).rewrap(&env, &ctx) {
        Ok(out) => assert_eq!(lockbox::open(&*NEW, &out, &ctx).ok(), opened),
        Err(_) => assert!(opened.is_none(), "rewrap refused an envelope that opens"),
    }
    // Deterministic rewrap (no new wraps): streaming and one-shot agree.
    let same = Rewrapper::new(&*KEK).no_new_wraps().keep(Keep::All);
    let one_shot = same.rewrap(&env, &ctx);
    let mut streamed = Vec::new();
    let stream = same.rewrap_stream(&env[..], &mut streamed, &ctx);
    match (one_shot, stream) {
        (Ok(a), Ok(n)) => {
            assert_eq!(a, streamed);
            assert_eq!(n, a.len() as u64);
            assert_eq!(a, env, "a no-op rewrap reproduces the envelope");
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("one-shot {:?} and streaming {:?} rewrap disagree", a.map(|_| ()), b.map(|_| ())),
    }
});
