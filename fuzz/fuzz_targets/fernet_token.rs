//! Fernet tokens: arbitrary text through the strict token parser and the
//! HMAC check with the specification's key (never panics, never decrypts
//! before the HMAC verifies); valid tokens with one byte changed reach the
//! time checks and the padding. Seeded with the Fernet vectors.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::fernet::{MultiFernet, TimeCheck};

static FERNET: LazyLock<MultiFernet> =
    LazyLock::new(|| MultiFernet::parse(["cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="]).unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = FERNET.decrypt(token, TimeCheck::none());
    let _ = FERNET.decrypt(token, TimeCheck::max_age(60, 499_162_801));
    let _ = lockbox::fernet::FernetKey::parse(token);
});
