//! Header parse round trip: whatever the private parser accepts re-encodes,
//! field by field, to exactly the bytes it accepted (strict and canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::Limits;

fuzz_target!(|data: &[u8]| {
    let generous = Limits::default()
        .with_max_wrapped_keys(255)
        .with_max_context_entries(65535);
    let _ = lockbox::fuzzing::header_round_trip(data, &generous);
    let _ = lockbox::fuzzing::header_round_trip(data, &Limits::default());
});
