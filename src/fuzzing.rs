//! Entry points for fuzz targets into private parsers. Compiled only with
//! `--cfg fuzzing` (set by cargo-fuzz); not part of the public API.

use alloc::vec::Vec;

use crate::format::{self, Limits};

/// Parses a header with `limits` and re-encodes it with the production
/// encoder (`format::v1::encode`, the one the sealer uses) from what was
/// decoded. A strict, canonical parser must give back exactly the bytes it
/// accepted. Returns the header length if the input parsed.
pub fn header_round_trip(data: &[u8], limits: &Limits) -> Option<usize> {
    let (h, _) = format::parse(data, limits).ok()?;
    let format::Header::V1(v1) = h;
    let mut out: Vec<u8> = Vec::with_capacity(h.len());
    format::v1::encode(&mut out, v1.fields(), v1.context.iter(), v1.wrapped.iter());
    assert_eq!(
        out.as_slice(),
        h.authenticated(),
        "re-encoded header differs from the accepted bytes"
    );
    // The rewrap encoder, with the same entries, gives the same bytes too.
    let mut again: Vec<u8> = Vec::new();
    h.encode_rewrapped(&mut again, h.wrapped().iter());
    assert_eq!(again, out, "rewrap encoding differs from the accepted bytes");
    assert_eq!(
        h.rewrapped_len(h.wrapped().iter()),
        h.len(),
        "rewrapped length mismatch"
    );
    out.extend_from_slice(h.tag());
    assert_eq!(Some(out.as_slice()), data.get(..h.len()), "header length mismatch");
    Some(h.len())
}

/// Decodes arbitrary bytes as a binding's context entries (what providers
/// iterate); must never panic. Returns the number of entries decoded.
pub fn binding_entries(data: &[u8]) -> usize {
    let b = format::binding::Binding::from_encoded(crate::Suite::Aes256Gcm, data);
    b.entries().count()
}

/// Decodes arbitrary bytes as keyring file contents (`KEYRING.md` §3). Must
/// never panic; whatever is accepted must re-encode to exactly the same bytes
/// (the encoding is canonical). Returns whether the input was accepted.
pub fn keyring_contents_round_trip(data: &[u8]) -> bool {
    let Ok((table, generation)) = crate::keyring::codec::decode(data) else {
        return false;
    };
    let again = crate::keyring::codec::encode(&table, generation);
    assert_eq!(
        again.as_slice(),
        data,
        "re-encoded keyring contents differ from the accepted bytes"
    );
    true
}

/// Bech32m (`format::bech32`): encodes `data` under `hrp` (any visible-ASCII
/// prefix without `1`, one case), decodes it back, and checks both agree;
/// decodes `text` as given, and if it decodes, re-encodes it and checks the
/// result equals the input up to case.
#[cfg(feature = "recipients")]
pub fn bech32_round_trip(hrp: &str, data: &[u8], text: &str) {
    use crate::format::bech32;
    let valid_hrp = !hrp.is_empty()
        && hrp.bytes().all(|b| (33..=126).contains(&b) && b != b'1')
        && !(hrp.bytes().any(|b| b.is_ascii_lowercase()) && hrp.bytes().any(|b| b.is_ascii_uppercase()));
    if valid_hrp && bech32::encoded_len(hrp, data.len()) <= bech32::MAX_STRING_LEN {
        let s = bech32::encode(hrp, data);
        let d = bech32::decode(&s).expect("an encoded string decodes");
        assert_eq!(d.hrp, hrp);
        assert_eq!(d.data.as_slice(), data);
    }
    if let Ok(d) = bech32::decode(text) {
        let again = bech32::encode(&d.hrp.to_ascii_lowercase(), &d.data);
        assert!(
            again.eq_ignore_ascii_case(text),
            "decode then encode changed the string"
        );
    }
}
