//! Replays every input under `fuzz/regressions/` through the same checks the
//! fuzz targets make, so a crash found once stays fixed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

use std::path::Path;

use lockbox::secrecy::SecretBox;
use lockbox::{EncryptionContext, Opener};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn open_regressions_never_panic_and_never_open() {
    let kek = lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(std::array::from_fn(|i| i as u8))));
    let cases = inputs("open");
    assert!(cases.len() >= 9, "regression corpus went missing");
    for (name, data) in cases {
        let _ = lockbox::inspect(&data);
        assert!(
            lockbox::open(&kek, &data, &EncryptionContext::new()).is_err(),
            "{name} opened"
        );
        let mut buf = data.clone();
        assert!(
            Opener::new(&kek)
                .open_in_place(&mut buf, &EncryptionContext::new())
                .is_err()
        );
        assert_eq!(buf, data, "{name}: a failed in-place open must restore the input");
    }
}
