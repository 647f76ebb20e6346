//! Keyring files: arbitrary bytes as the decrypted contents (strict decoder,
//! canonical: whatever is accepted re-encodes to the same bytes), and as a
//! whole sealed file opened with a master key (never panics). Real contents
//! with one byte changed reach deep into the decoder.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::secrecy::SecretBox;
use lockbox::{KeyId, LocalKek};

// A key no test vector uses.
static MASTER: LazyLock<LocalKek> =
    LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| (i as u8) ^ 0x3c)))));

/// Contents of a small keyring with every kind of entry, for mutation.
static CONTENTS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut r = Keyring::generate(KeyId::new("fuzz").unwrap(), UnixTime(1)).unwrap();
    r.rotate(UnixTime(2)).unwrap();
    r.add_version(UnixTime(3)).unwrap();
    r.compromised(lockbox::KeyVersion(1), UnixTime(4)).unwrap();
    let file = r.to_sealed_bytes(&*MASTER).unwrap();
    // Lenient: the file's stored context (KEYRING.md §2) is not named here.
    lockbox::Opener::new(&*MASTER)
        .lenient_context()
        .open(&file, &lockbox::EncryptionContext::new())
        .unwrap()
});

fuzz_target!(|input: (u8, u16, u8, Vec<u8>)| {
    let (mode, at, xor, data) = input;
    match mode % 3 {
        0 => {
            lockbox::fuzzing::keyring_contents_round_trip(&data);
        }
        1 => {
            let mut c = CONTENTS.clone();
            let i = usize::from(at) % c.len();
            c[i] ^= xor;
            let cut = data.first().map_or(0, |b| usize::from(*b % 8));
            c.truncate(c.len() - cut);
            let accepted = lockbox::fuzzing::keyring_contents_round_trip(&c);
            // Unchanged contents are always accepted; a truncation never is.
            assert_eq!(accepted || xor != 0, cut == 0 || xor != 0);
            if cut != 0 {
                assert!(!accepted);
            }
        }
        _ => {
            let _ = Keyring::from_sealed_bytes(&data, &*MASTER);
        }
    }
});
