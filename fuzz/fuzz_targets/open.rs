//! Opening arbitrary bytes with a fixed local KEK: never panics, never opens.
//! (Forging an envelope under an unknown key would be a break of AES-GCM.)
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::secrecy::SecretBox;
use lockbox::{EncryptionContext, LocalKek, Opener};

// A key no test vector uses, so seeds from the vectors never legitimately open.
static KEK: LazyLock<LocalKek> =
    LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| (i as u8) ^ 0xa5)))));

fuzz_target!(|data: &[u8]| {
    let ctx = EncryptionContext::new();
    assert!(lockbox::open(&*KEK, data, &ctx).is_err());
    let mut buf = data.to_vec();
    assert!(Opener::new(&*KEK).open_in_place(&mut buf, &ctx).is_err());
    assert_eq!(buf, data, "a failed in-place open must restore the input");
});
