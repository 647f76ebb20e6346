//! Property tests: round trips and tamper rejection over random sizes,
//! contexts, suites and segment sizes.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::LazyLock;

use lockbox::{EncryptionContext, LocalKek, Opener, Sealer, SegmentSize, Suite};
use proptest::prelude::*;

static KEK: LazyLock<LocalKek> = LazyLock::new(|| LocalKek::generate().unwrap());

fn suite() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

fn context() -> impl Strategy<Value = Vec<(String, String, bool)>> {
    prop::collection::vec(("[a-zé]{1,8}", "\\PC{0,12}", any::<bool>()), 0..6)
}

fn build(entries: &[(String, String, bool)]) -> EncryptionContext {
    let mut c = EncryptionContext::new();
    for (k, v, required) in entries {
        if *required {
            c.insert_required(k, v).unwrap();
        } else {
            c.insert(k, v).unwrap();
        }
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(pt in prop::collection::vec(any::<u8>(), 0..3000), suite in suite(),
                  exp in 6u8..=9, entries in context()) {
        let ctx = build(&entries);
        let sealer = Sealer::new(&*KEK).suite(suite).segment_size(SegmentSize::from_exponent(exp).unwrap());
        let env = sealer.seal(&pt, &ctx).unwrap();
        prop_assert_eq!(lockbox::inspect(&env).unwrap().plaintext_len(), pt.len());
        prop_assert_eq!(&Opener::new(&*KEK).open(&env, &ctx).unwrap(), &pt);
        let mut buf = pt.clone();
        sealer.seal_in_place(&mut buf, &ctx).unwrap();
        Opener::new(&*KEK).open_in_place(&mut buf, &ctx).unwrap();
        prop_assert_eq!(buf, pt);
    }

    #[test]
    fn tampering_is_rejected(pt in prop::collection::vec(any::<u8>(), 0..600), suite in suite(),
                             entries in context(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let ctx = build(&entries);
        let env = Sealer::new(&*KEK).suite(suite).segment_size(SegmentSize::MIN).seal(&pt, &ctx).unwrap();
        let mut bad = env.clone();
        let i = at.index(bad.len());
        bad[i] ^= xor;
        prop_assert!(lockbox::open(&*KEK, &bad, &ctx).is_err());
        // In place, the buffer comes back unchanged.
        let mut buf = bad.clone();
        prop_assert!(Opener::new(&*KEK).open_in_place(&mut buf, &ctx).is_err());
        prop_assert_eq!(buf, bad);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), prefix in any::<bool>()) {
        let mut input = bytes;
        if prefix {
            // Reach past the magic and version into the v1 parser.
            let mut v = b"LKBX\x01".to_vec();
            v.extend_from_slice(&input);
            input = v;
        }
        let _ = lockbox::inspect(&input);
        prop_assert!(lockbox::open(&*KEK, &input, &EncryptionContext::new()).is_err());
    }
}
