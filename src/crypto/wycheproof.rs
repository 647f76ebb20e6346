//! Wycheproof AEAD vectors through lockbox's suite layer.
//!
//! Every vector goes through [`PayloadCipher`], the type lockbox itself uses to
//! seal and open segments and header tags, built with
//! [`PayloadCipher::with_backend`] exactly as the envelope code builds it, on
//! every backend compiled in (RustCrypto, and AWS-LC with the `aws-lc`
//! feature); only the nonce is caller-chosen (`seal_raw` / `open_raw`),
//! because Wycheproof nonces are arbitrary.
//!
//! Applicability: lockbox's suites use 256-bit keys, 128-bit tags and one nonce
//! size per suite (12 bytes for AES-256-GCM and ChaCha20-Poly1305, 24 bytes for
//! XChaCha20-Poly1305). Test groups with any other key, tag or nonce size are
//! not applicable and are counted as skipped; they test parameter choices the
//! suite layer cannot express.
//!
//! For every applicable vector:
//!
//! - `valid`: `open_raw` returns exactly the vector's plaintext, and `seal_raw`
//!   reproduces the vector's `ct || tag` byte for byte.
//! - `invalid`: `open_raw` fails with [`Error::Authentication`], and `seal_raw`
//!   with the same key, nonce, AAD and message must *not* produce the vector's
//!   `ct || tag` (if it did, the implementation would regard an invalid
//!   ciphertext as its own output).
//! - `acceptable`: the vector may legitimately be accepted or rejected (in
//!   Wycheproof AEAD sets this marks parameter choices, e.g. unusual nonce
//!   sizes, that an implementation may refuse by policy; the flags say which).
//!   None of the three sets in `wycheproof` 0.7 has any, and the exact counts
//!   below assert that, so a new data release that adds some is noticed. If one
//!   appears it is still checked for self-consistency: either `open_raw`
//!   returns the vector's plaintext *and* `seal_raw` reproduces `ct || tag`, or
//!   `open_raw` fails *and* `seal_raw` does not reproduce `ct || tag`.
//!
//! The observed counts are pinned with `assert_eq!`, so a silently empty or
//! shrunken run (a renamed set, a changed group filter) fails.

extern crate std;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ::wycheproof::TestResult;
use ::wycheproof::aead::{Test, TestName, TestSet};

use super::PayloadCipher;
use crate::error::Error;
use crate::suite::{Backend, Suite};

/// Every backend this build has.
fn backends() -> Vec<Backend> {
    #[allow(unused_mut, reason = "one backend without the aws-lc feature")]
    let mut v = alloc::vec![Backend::RustCrypto];
    #[cfg(feature = "aws-lc")]
    v.push(Backend::AwsLc);
    v
}

/// What one suite's run saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Applicable `valid` vectors (all passed).
    valid: usize,
    /// Applicable `invalid` vectors (all rejected).
    invalid: usize,
    /// Applicable `acceptable` vectors (all self-consistent).
    acceptable: usize,
    /// Vectors in groups whose key or tag size lockbox does not use.
    skipped_key_or_tag: usize,
    /// Vectors in groups whose nonce size is not the suite's.
    skipped_nonce: usize,
}

impl Counts {
    fn skipped(&self) -> usize {
        self.skipped_key_or_tag.saturating_add(self.skipped_nonce)
    }
}

/// The Wycheproof set and the nonce length (bytes) for `suite`.
fn set_for(suite: Suite) -> (TestName, usize) {
    match suite {
        Suite::Aes256Gcm => (TestName::AesGcm, 12),
        Suite::ChaCha20Poly1305 => (TestName::ChaCha20Poly1305, 12),
        Suite::XChaCha20Poly1305 => (TestName::XChaCha20Poly1305, 24),
    }
}

/// A short description of a vector for failure messages.
fn describe(suite: Suite, t: &Test) -> String {
    format!(
        "{suite} tcId {} ({:?}, flags {:?}, {:?})",
        t.tc_id, t.result, t.flags, t.comment
    )
}

/// Runs one vector; returns a failure description, if any.
#[allow(clippy::indexing_slicing, reason = "test helper")]
fn check(suite: Suite, backend: Backend, t: &Test) -> Option<String> {
    let Ok(key) = <[u8; 32]>::try_from(&t.key[..]) else {
        return Some(format!(
            "{}: key is {} bytes in a 256-bit group",
            describe(suite, t),
            t.key.len()
        ));
    };
    let cipher = PayloadCipher::with_backend(suite, backend, &key);
    let mut expected = t.ct.to_vec();
    expected.extend_from_slice(&t.tag);

    let opened = cipher.open_raw(&t.nonce, &t.aad, &expected);
    let sealed = cipher.seal_raw(&t.nonce, &t.aad, &t.pt);
    let reproduces = matches!(&sealed, Ok(s) if *s == expected);

    match t.result {
        TestResult::Valid => match opened {
            Ok(pt) if pt[..] != t.pt[..] => Some(format!("{}: opened to a different plaintext", describe(suite, t))),
            Ok(_) if !reproduces => Some(format!(
                "{}: seal_raw gave {:?}, not the vector's ct||tag",
                describe(suite, t),
                sealed.map(hex::encode)
            )),
            Ok(_) => None,
            Err(e) => Some(format!("{}: open_raw failed: {e:?}", describe(suite, t))),
        },
        TestResult::Invalid => match opened {
            Ok(_) => Some(format!("{}: open_raw accepted an invalid vector", describe(suite, t))),
            Err(Error::Authentication) if reproduces => Some(format!(
                "{}: rejected, but seal_raw reproduces the invalid ct||tag",
                describe(suite, t)
            )),
            Err(Error::Authentication) => None,
            Err(e) => Some(format!(
                "{}: rejected with {e:?}, not Authentication",
                describe(suite, t)
            )),
        },
        TestResult::Acceptable => match opened {
            Ok(pt) if pt[..] == t.pt[..] && reproduces => None,
            Ok(_) => Some(format!(
                "{}: accepted, but plaintext or seal_raw output disagrees with the vector",
                describe(suite, t)
            )),
            Err(_) if reproduces => Some(format!(
                "{}: rejected, but seal_raw reproduces its ct||tag",
                describe(suite, t)
            )),
            Err(_) => None,
        },
    }
}

/// Loads `suite`'s set and runs every applicable vector; panics listing every
/// failure.
#[allow(
    clippy::panic,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::print_stderr,
    reason = "test helper"
)]
fn run(suite: Suite) -> Counts {
    let (name, nonce_len) = set_for(suite);
    let set = TestSet::load(name).expect("wycheproof set loads");
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut total = 0usize;
    for group in &set.test_groups {
        total += group.tests.len();
        // Group sizes are in bits.
        if group.key_size != 256 || group.tag_size != 128 {
            counts.skipped_key_or_tag += group.tests.len();
            continue;
        }
        if group.nonce_size != nonce_len * 8 {
            counts.skipped_nonce += group.tests.len();
            continue;
        }
        for t in &group.tests {
            match t.result {
                TestResult::Valid => counts.valid += 1,
                TestResult::Invalid => counts.invalid += 1,
                TestResult::Acceptable => counts.acceptable += 1,
            }
            for backend in backends() {
                failures.extend(check(suite, backend, t).map(|f| format!("{backend:?}: {f}")));
            }
        }
    }
    assert_eq!(total, set.number_of_tests);
    assert_eq!(
        counts.valid + counts.invalid + counts.acceptable + counts.skipped(),
        total,
        "every vector is counted once"
    );
    std::eprintln!(
        "wycheproof {suite}: {} valid, {} invalid, {} acceptable passed; {} skipped ({} key/tag size, {} nonce size) of {total}",
        counts.valid,
        counts.invalid,
        counts.acceptable,
        counts.skipped(),
        counts.skipped_key_or_tag,
        counts.skipped_nonce,
    );
    if !failures.is_empty() {
        panic!(
            "{} Wycheproof failures for {suite}:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    counts
}

#[test]
fn aes_256_gcm() {
    let c = run(Suite::Aes256Gcm);
    // 128- and 192-bit key groups skipped; 96-bit nonces only (the other
    // nonce sizes, 0 to 2056 bits, are legal GCM but not lockbox's).
    let expected = Counts {
        valid: 39,
        invalid: 27,
        acceptable: 0,
        skipped_key_or_tag: 211,
        skipped_nonce: 39,
    };
    assert_eq!(c, expected);
}

#[test]
fn chacha20_poly1305() {
    let c = run(Suite::ChaCha20Poly1305);
    // The skipped vectors are the set's invalid-nonce-size cases.
    let expected = Counts {
        valid: 256,
        invalid: 60,
        acceptable: 0,
        skipped_key_or_tag: 0,
        skipped_nonce: 9,
    };
    assert_eq!(c, expected);
}

#[test]
fn xchacha20_poly1305() {
    let c = run(Suite::XChaCha20Poly1305);
    // The skipped vectors are the set's invalid-nonce-size cases.
    let expected = Counts {
        valid: 246,
        invalid: 60,
        acceptable: 0,
        skipped_key_or_tag: 0,
        skipped_nonce: 9,
    };
    assert_eq!(c, expected);
}

/// The suite layer itself refuses the nonce sizes the skipped groups use, so
/// skipping them hides nothing lockbox could be asked to do.
#[test]
fn other_nonce_sizes_are_refused() {
    for (suite, backend) in Suite::ALL
        .into_iter()
        .flat_map(|s| backends().into_iter().map(move |b| (s, b)))
    {
        let (_, nonce_len) = set_for(suite);
        let cipher = PayloadCipher::with_backend(suite, backend, &[7u8; 32]);
        for len in [0usize, 8, 11, 13, 16, 23, 25, 32] {
            if len == nonce_len {
                continue;
            }
            let nonce = alloc::vec![0u8; len];
            assert!(matches!(
                cipher.seal_raw(&nonce, b"", b"msg"),
                Err(Error::InvalidArgument { .. })
            ));
            assert!(matches!(
                cipher.open_raw(&nonce, b"", &[0u8; 19]),
                Err(Error::InvalidArgument { .. })
            ));
        }
        let nonce = alloc::vec![0u8; nonce_len];
        let ct = cipher.seal_raw(&nonce, b"aad", b"msg").unwrap();
        assert_eq!(cipher.open_raw(&nonce, b"aad", &ct).unwrap(), b"msg");
    }
}
