//! Header parsing on arbitrary bytes: never panics; whatever parses reports
//! lengths that add up to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = lockbox::inspect(data) {
        assert_eq!(info.header_len() + info.payload_len(), data.len());
        assert!(info.plaintext_len() <= info.payload_len());
        assert!(!info.wrapped_keys().is_empty());
    }
});
