//! Streaming decryption of arbitrary bytes: never panics, never reaches an
//! authenticated end (forging needs the key), and seeking to an arbitrary
//! offset fails cleanly or yields only verified bytes.
#![no_main]

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lockbox::secrecy::SecretBox;
use lockbox::{EncryptionContext, LocalKek, Opener};

// A key no test vector uses, so seeds from the vectors never legitimately open.
static KEK: LazyLock<LocalKek> =
    LazyLock::new(|| lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| (i as u8) ^ 0xa5)))));

fuzz_target!(|input: (u16, u16, Vec<u8>)| {
    let (chunk, seek_to, data) = input;
    let ctx = EncryptionContext::new();
    let opener = Opener::new(&*KEK);
    if let Ok(mut dec) = opener.decryptor(&data[..], &ctx) {
        let mut buf = vec![0u8; usize::from(chunk % 4096) + 1];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => panic!("arbitrary bytes reached an authenticated end"),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    if let Ok(mut dec) = opener.decryptor(Cursor::new(&data[..]), &ctx) {
        let _ = dec.seek(SeekFrom::Start(u64::from(seek_to)));
        let _ = dec.read(&mut [0u8; 64]);
        assert!(dec.read_to_end(&mut Vec::new()).is_err());
    }
});
