//! Recipient and identity strings: arbitrary text never panics the parsers;
//! whatever parses prints back to the same string (up to case and
//! surrounding whitespace); and Bech32m round-trips arbitrary data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::recipient::{Identity, Recipient};
use lockbox::secrecy::ExposeSecret;

fuzz_target!(|input: (String, String, Vec<u8>)| {
    let (text, hrp, data) = input;
    if let Ok(r) = Recipient::parse(&text) {
        assert!(r.to_string().eq_ignore_ascii_case(text.trim_ascii()));
        assert_eq!(Recipient::parse(&r.to_string()).unwrap(), r);
    }
    if let Ok(id) = Identity::parse(&text) {
        let s = id.to_secret_string();
        assert!(s.expose_secret().eq_ignore_ascii_case(text.trim_ascii()));
        assert_eq!(Identity::parse(s.expose_secret()).unwrap().key_id(), id.key_id());
    }
    lockbox::fuzzing::bech32_round_trip(&hrp, &data, &text);
});
