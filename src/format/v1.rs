//! Envelope header, version 1 (`FORMAT.md` §2): the only parser and the only
//! encoder of its bytes. The sealer, rewrap and the fuzz round trip all encode
//! through [`encode`] / [`put_wrapped_block`], and the parser hands back the
//! exact bytes it accepted, so what a tag covers is what was received.

use core::str;

use crate::error::{Error, LimitKind};
use crate::keys::{KeyVersion, WrappedKeyRef};
use crate::suite::Suite;

use super::codec::{Put, ReadError, Reader, utf8};
use super::{
    COMMITMENT_LEN, KIND_REQUIRED, KIND_STORED, Limits, MAGIC, MESSAGE_ID_LEN, SegmentSize, TAG_LEN, valid_key_id,
    valid_provider_id,
};

/// The version byte.
pub(crate) const VERSION: u8 = 1;
/// magic, version, suite, segment exponent, flags, message id.
pub(crate) const FIXED_LEN: usize = 4 + 1 + 1 + 1 + 1 + MESSAGE_ID_LEN;

/// One encryption-context entry as it appears in a header: required entries
/// carry no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContextField<'a> {
    pub(crate) key: &'a str,
    /// `Some` for stored entries, `None` for required-but-not-stored ones.
    pub(crate) value: Option<&'a str>,
}

/// A validated context block; iterating it cannot fail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContextBlock<'a> {
    raw: &'a [u8],
    count: u16,
}

impl<'a> ContextBlock<'a> {
    pub(crate) fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// The entries, read again without the checks the parser made (parsing
    /// once: only the UTF-8 conversion, which safe code cannot skip).
    pub(crate) fn iter(&self) -> impl Iterator<Item = ContextField<'a>> + Clone + 'a {
        let raw = self.raw;
        let mut r = Reader::new(raw);
        (0..self.count).map_while(move |_| read_context_entry(&mut r, 0, Checks::Done).ok())
    }
}

/// Whether a read validates the fields (parsing) or reads a block the parser
/// already validated (iterating).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    Validate,
    Done,
}

/// Whether a context key holds no control (Cc) or format (Cf) character.
/// ASCII keys (the common case) are checked bytewise: no format character
/// is ASCII, and the ASCII control characters are `0x00..=0x1F` and `0x7F`.
fn clean_context_key(key: &str) -> bool {
    if key.is_ascii() {
        key.bytes().all(|b| b >= 0x20 && b != 0x7f)
    } else {
        !key.chars().any(super::forbidden_in_context_key)
    }
}

fn read_context_entry<'a>(r: &mut Reader<'a>, base: usize, checks: Checks) -> Result<ContextField<'a>, ReadError> {
    let at = base.saturating_add(r.pos());
    let kind = r.u8()?;
    if kind != KIND_STORED && kind != KIND_REQUIRED {
        return Err(bad(at, "unknown context entry kind"));
    }
    let klen = usize::from(r.u16()?);
    if klen == 0 {
        return Err(bad(at, "empty context key"));
    }
    let key_at = base.saturating_add(r.pos());
    let key = utf8(r.take(klen)?, key_at)?;
    if checks == Checks::Validate && !clean_context_key(key) {
        if key.chars().any(char::is_control) {
            return Err(bad(key_at, "control character in context key"));
        }
        return Err(bad(key_at, "format character (Unicode Cf) in context key"));
    }
    let value = if kind == KIND_STORED {
        let vlen = usize::from(r.u16()?);
        let val_at = base.saturating_add(r.pos());
        Some(utf8(r.take(vlen)?, val_at)?)
    } else {
        None
    };
    Ok(ContextField { key, value })
}

/// A validated wrapped-key block; iterating it cannot fail. The first entry
/// is kept as parsed (most envelopes have one: parsed once), the others are
/// read again from `rest`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WrappedBlock<'a> {
    first: WrappedKeyRef<'a>,
    rest: &'a [u8],
    count: u8,
}

impl<'a> WrappedBlock<'a> {
    pub(crate) fn iter(&self) -> WrappedIter<'a> {
        WrappedIter {
            first: Some(self.first),
            r: Reader::new(self.rest),
            left: self.count.saturating_sub(1),
        }
    }
}

/// The entries of a [`WrappedBlock`], in header order.
#[derive(Clone)]
pub(crate) struct WrappedIter<'a> {
    first: Option<WrappedKeyRef<'a>>,
    r: Reader<'a>,
    left: u8,
}

impl<'a> Iterator for WrappedIter<'a> {
    type Item = WrappedKeyRef<'a>;

    fn next(&mut self) -> Option<WrappedKeyRef<'a>> {
        if let Some(w) = self.first.take() {
            return Some(w);
        }
        self.left = self.left.checked_sub(1)?;
        // The block was validated when parsed: this cannot fail.
        let w = read_wrapped_entry(&mut self.r, 0, Checks::Done).ok();
        if w.is_none() {
            self.left = 0;
        }
        w
    }
}

fn read_wrapped_entry<'a>(r: &mut Reader<'a>, base: usize, checks: Checks) -> Result<WrappedKeyRef<'a>, ReadError> {
    let validate = checks == Checks::Validate;
    let at = base.saturating_add(r.pos());
    let plen = usize::from(r.u8()?);
    let provider_id = utf8(r.take(plen)?, at)?;
    if validate && !valid_provider_id(provider_id) {
        return Err(bad(at, "invalid provider id"));
    }
    let kat = base.saturating_add(r.pos());
    let klen = usize::from(r.u8()?);
    let key_id = utf8(r.take(klen)?, kat)?;
    if validate && !valid_key_id(key_id) {
        return Err(bad(kat, "invalid key id"));
    }
    let key_version = KeyVersion(r.u32()?);
    let wat = base.saturating_add(r.pos());
    let wlen = usize::from(r.u16()?);
    if wlen == 0 {
        return Err(bad(wat, "empty wrapped key"));
    }
    let bytes = r.take(wlen)?;
    Ok(WrappedKeyRef {
        provider_id,
        key_id,
        key_version,
        bytes,
    })
}

fn bad(offset: usize, what: &'static str) -> ReadError {
    ReadError::Bad(Error::Malformed { offset, what })
}

fn limit(limit: LimitKind, max: usize) -> ReadError {
    ReadError::Bad(Error::LimitExceeded { limit, max })
}

/// A parsed, validated v1 header borrowing from the envelope.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header<'a> {
    /// The bytes covered by the header tag: everything before it.
    pub(crate) authenticated: &'a [u8],
    /// Total header length, tag included: the payload starts here.
    pub(crate) len: usize,
    pub(crate) suite: Suite,
    pub(crate) segment_size: SegmentSize,
    pub(crate) message_id: &'a [u8; MESSAGE_ID_LEN],
    pub(crate) context: ContextBlock<'a>,
    pub(crate) commitment: &'a [u8; COMMITMENT_LEN],
    /// Offset of the wrapped-key count: the bytes before it (magic through
    /// commitment) are what a rewrap keeps.
    pub(crate) wrapped_at: usize,
    pub(crate) wrapped: WrappedBlock<'a>,
    pub(crate) tag: &'a [u8; TAG_LEN],
}

/// Parses and validates a v1 header at the start of `input` (magic and
/// version already checked by the caller). [`ReadError::Short`] says how many
/// bytes a complete header needs at least.
pub(crate) fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Header<'a>, ReadError> {
    let mut r = Reader::new(input);
    r.take(5)?; // magic + version
    let suite_id = r.u8()?;
    let suite = Suite::from_id(suite_id).ok_or_else(|| ReadError::Bad(Error::UnsupportedSuite(suite_id)))?;
    let exp_at = r.pos();
    let segment_size = SegmentSize::from_exponent(r.u8()?).map_err(|_| bad(exp_at, "segment size out of range"))?;
    if segment_size.bytes() > limits.max_segment_size() {
        return Err(limit(LimitKind::SegmentSize, limits.max_segment_size()));
    }
    let flags_at = r.pos();
    if r.u8()? != 0 {
        return Err(bad(flags_at, "reserved flags set"));
    }
    let message_id = r.array::<MESSAGE_ID_LEN>()?;

    // Context block: count, then entries in strictly increasing key order.
    let ctx_count = r.u16()?;
    if usize::from(ctx_count) > limits.max_context_entries() {
        return Err(limit(LimitKind::ContextEntries, limits.max_context_entries()));
    }
    let ctx_start = r.pos();
    let mut ctx_bytes = 0usize;
    let mut prev: Option<&str> = None;
    for _ in 0..ctx_count {
        let at = r.pos();
        let e = read_context_entry(&mut r, 0, Checks::Validate)?;
        if prev.is_some_and(|p| p.as_bytes() >= e.key.as_bytes()) {
            return Err(bad(at, "context keys not in strictly increasing order"));
        }
        prev = Some(e.key);
        ctx_bytes = ctx_bytes
            .saturating_add(e.key.len())
            .saturating_add(e.value.map_or(0, str::len));
        if ctx_bytes > limits.max_context_bytes() {
            return Err(limit(LimitKind::ContextBytes, limits.max_context_bytes()));
        }
    }
    let context = ContextBlock {
        raw: input.get(ctx_start..r.pos()).unwrap_or_default(),
        count: ctx_count,
    };

    let commitment = r.array::<COMMITMENT_LEN>()?;

    let wrapped_at = r.pos();
    let wcount = r.u8()?;
    if wcount == 0 {
        return Err(bad(wrapped_at, "no wrapped keys"));
    }
    if usize::from(wcount) > limits.max_wrapped_keys() {
        return Err(limit(LimitKind::WrappedKeys, limits.max_wrapped_keys()));
    }
    let first = read_wrapped_entry(&mut r, 0, Checks::Validate)?;
    let rest_start = r.pos();
    for _ in 1..wcount {
        read_wrapped_entry(&mut r, 0, Checks::Validate)?;
    }
    let wrapped = WrappedBlock {
        first,
        rest: input.get(rest_start..r.pos()).unwrap_or_default(),
        count: wcount,
    };
    // The header tag covers every header byte before it, wrapped keys included.
    let authenticated = input.get(..r.pos()).unwrap_or_default();
    let tag = r.array::<TAG_LEN>()?;
    Ok(Header {
        authenticated,
        len: r.pos(),
        suite,
        segment_size,
        message_id,
        context,
        commitment,
        wrapped_at,
        wrapped,
        tag,
    })
}

/// The fields of a header other than its context and wrapped keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    pub(crate) suite: Suite,
    pub(crate) segment_size: SegmentSize,
    pub(crate) message_id: &'a [u8; MESSAGE_ID_LEN],
    pub(crate) commitment: &'a [u8; COMMITMENT_LEN],
}

/// Encoded length of a context block holding `entries`.
pub(crate) fn context_block_len<'a>(entries: impl Iterator<Item = ContextField<'a>>) -> usize {
    entries.fold(2usize, |acc, e| {
        let v = e.value.map_or(0, |v| 2usize.saturating_add(v.len()));
        acc.saturating_add(3).saturating_add(e.key.len()).saturating_add(v)
    })
}

/// Encoded length of one wrapped-key entry.
pub(crate) fn wrapped_entry_len(w: WrappedKeyRef<'_>) -> usize {
    1usize
        .saturating_add(w.provider_id.len())
        .saturating_add(1)
        .saturating_add(w.key_id.len())
        .saturating_add(4)
        .saturating_add(2)
        .saturating_add(w.bytes.len())
}

/// Encoded length of a wrapped-key block (count byte included).
pub(crate) fn wrapped_block_len<'a>(entries: impl Iterator<Item = WrappedKeyRef<'a>>) -> usize {
    entries.fold(1usize, |acc, w| acc.saturating_add(wrapped_entry_len(w)))
}

/// The whole header's length, tag included.
pub(crate) fn header_len<'a, 'b>(
    context: impl Iterator<Item = ContextField<'a>>,
    wrapped: impl Iterator<Item = WrappedKeyRef<'b>>,
) -> usize {
    FIXED_LEN
        .saturating_add(context_block_len(context))
        .saturating_add(COMMITMENT_LEN)
        .saturating_add(wrapped_block_len(wrapped))
        .saturating_add(TAG_LEN)
}

/// Writes a header up to, not including, its tag. The caller checked the
/// counts (at most 65 535 context entries, 1 to 255 wrapped keys) and every
/// field was validated when its value was built.
pub(crate) fn encode<'a, 'b>(
    out: &mut impl Put,
    fields: Fields<'_>,
    context: impl Iterator<Item = ContextField<'a>> + Clone,
    wrapped: impl Iterator<Item = WrappedKeyRef<'b>> + Clone,
) {
    out.put(&MAGIC);
    out.put_u8(VERSION);
    out.put_u8(fields.suite.id());
    out.put_u8(fields.segment_size.exponent());
    out.put_u8(0);
    out.put(fields.message_id);
    // The count without walking the entries twice when the iterator knows it.
    let count = match context.size_hint() {
        (lo, Some(hi)) if lo == hi => lo,
        _ => context.clone().count(),
    };
    debug_assert_eq!(count, context.clone().count(), "an exact size hint that is wrong");
    out.put_u16(u16::try_from(count).unwrap_or(u16::MAX));
    for e in context {
        match e.value {
            Some(v) => {
                out.put_u8(KIND_STORED);
                put_field(out, e.key);
                put_field(out, v);
            }
            None => {
                out.put_u8(KIND_REQUIRED);
                put_field(out, e.key);
            }
        }
    }
    out.put(fields.commitment);
    put_wrapped_block(out, wrapped);
}

/// Writes a wrapped-key block: the count, then each entry.
pub(crate) fn put_wrapped_block<'b>(out: &mut impl Put, wrapped: impl Iterator<Item = WrappedKeyRef<'b>> + Clone) {
    let count = match wrapped.size_hint() {
        (lo, Some(hi)) if lo == hi => lo,
        _ => wrapped.clone().count(),
    };
    debug_assert_eq!(count, wrapped.clone().count(), "an exact size hint that is wrong");
    out.put_u8(u8::try_from(count).unwrap_or(u8::MAX));
    for w in wrapped {
        out.put_u8(u8::try_from(w.provider_id.len()).unwrap_or(u8::MAX));
        out.put(w.provider_id.as_bytes());
        out.put_u8(u8::try_from(w.key_id.len()).unwrap_or(u8::MAX));
        out.put(w.key_id.as_bytes());
        out.put_u32(w.key_version.0);
        out.put_u16(u16::try_from(w.bytes.len()).unwrap_or(u16::MAX));
        out.put(w.bytes);
    }
}

fn put_field(out: &mut impl Put, s: &str) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put(s.as_bytes());
}

impl Header<'_> {
    /// The fields to re-encode this header with.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            suite: self.suite,
            segment_size: self.segment_size,
            message_id: self.message_id,
            commitment: self.commitment,
        }
    }

    /// The authenticated bytes a rewrap keeps: magic through commitment.
    pub(crate) fn kept_prefix(&self) -> &[u8] {
        self.authenticated.get(..self.wrapped_at).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn encode_then_parse_is_the_identity() {
        let ctx = [
            ContextField {
                key: "a",
                value: Some("1"),
            },
            ContextField { key: "b", value: None },
        ];
        let w = WrappedKeyRef {
            provider_id: "p",
            key_id: "k",
            key_version: KeyVersion(7),
            bytes: &[9; 5],
        };
        let fields = Fields {
            suite: Suite::ChaCha20Poly1305,
            segment_size: SegmentSize::MIN,
            message_id: &[3; MESSAGE_ID_LEN],
            commitment: &[4; COMMITMENT_LEN],
        };
        let mut out = Vec::new();
        encode(&mut out, fields, ctx.iter().copied(), [w].into_iter());
        assert_eq!(out.len() + TAG_LEN, header_len(ctx.iter().copied(), [w].into_iter()));
        out.extend_from_slice(&[0; TAG_LEN]);
        let h = parse(&out, &Limits::default()).unwrap();
        assert_eq!(h.len, out.len());
        assert_eq!(h.context.iter().collect::<Vec<_>>(), ctx);
        assert_eq!(h.wrapped.iter().collect::<Vec<_>>(), [w]);
        assert_eq!(h.kept_prefix().len(), h.wrapped_at);
        let mut again = Vec::new();
        encode(&mut again, h.fields(), h.context.iter(), h.wrapped.iter());
        assert_eq!(again, h.authenticated);
        for cut in 0..out.len() {
            assert!(
                matches!(parse(&out[..cut], &Limits::default()), Err(ReadError::Short { .. })),
                "{cut}"
            );
        }
    }
}
