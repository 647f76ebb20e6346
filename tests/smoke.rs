//! Smoke test.
use lockbox::*;
#[test]
fn smoke() {
    let kek = LocalKek::generate().unwrap();
    let ctx = EncryptionContext::new().with("a", "b").unwrap().with_required("t", "x").unwrap();
    for suite in Suite::ALL {
        for len in [0usize, 1, 63, 64, 65, 200] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let s = Sealer::new(&kek).suite(suite).segment_size(SegmentSize::MIN);
            let env = s.seal(&pt, &ctx).unwrap();
            assert_eq!(Opener::new(&kek).open(&env, &ctx).unwrap(), pt);
            let mut buf = pt.clone();
            s.seal_in_place(&mut buf, &ctx).unwrap();
            let info = inspect(&buf).unwrap();
            assert_eq!(info.plaintext_len(), len);
            assert_eq!(Opener::new(&kek).open(&buf, &ctx).unwrap(), pt);
            Opener::new(&kek).open_in_place(&mut buf, &ctx).unwrap();
            assert_eq!(buf, pt);
        }
    }
}
