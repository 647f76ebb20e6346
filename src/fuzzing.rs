//! Entry points for fuzz targets into private parsers. Compiled only with
//! `--cfg fuzzing` (set by cargo-fuzz); not part of the public API.

use alloc::vec::Vec;

use crate::format::{self, Limits, Put};

/// Parses a header with `limits` and re-encodes it field by field from what
/// was decoded (context entries and wrapped keys included). A strict,
/// canonical parser must give back exactly the bytes it accepted. Returns the
/// header length if the input parsed.
pub fn header_round_trip(data: &[u8], limits: &Limits) -> Option<usize> {
    let (h, _) = format::parse(data, limits).ok()?;
    let mut out: Vec<u8> = Vec::with_capacity(h.len);
    out.put(&format::MAGIC);
    out.put_u8(format::VERSION_1);
    out.put_u8(h.suite.id());
    out.put_u8(h.segment_size.exponent());
    out.put_u8(0);
    out.put(h.message_id);
    out.put_u16(u16::try_from(h.context.len()).unwrap_or(u16::MAX));
    for e in h.context.iter() {
        match e.value {
            Some(v) => {
                out.put_u8(format::KIND_STORED);
                put_str(&mut out, e.key);
                put_str(&mut out, v);
            }
            None => {
                out.put_u8(format::KIND_REQUIRED);
                put_str(&mut out, e.key);
            }
        }
    }
    out.put(h.commitment);
    let entries: Vec<_> = h.wrapped.iter().collect();
    out.put_u8(u8::try_from(entries.len()).unwrap_or(u8::MAX));
    for w in &entries {
        format::put_wrapped_entry(&mut out, w.provider_id, w.key_id, w.key_version, w.bytes);
    }
    assert_eq!(
        out.as_slice(),
        h.authenticated,
        "re-encoded header differs from the accepted bytes"
    );
    out.put(h.tag);
    assert_eq!(Some(out.as_slice()), data.get(..h.len), "header length mismatch");
    Some(h.len)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put(s.as_bytes());
}

/// Decodes arbitrary bytes as a binding's context entries (what providers
/// iterate); must never panic. Returns the number of entries decoded.
pub fn binding_entries(data: &[u8]) -> usize {
    let b = crate::context::Binding::from_encoded(crate::Suite::Aes256Gcm, data);
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
