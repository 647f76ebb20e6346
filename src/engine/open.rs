//! The open side of the core: the key phase ([`Unlock`]) between provider
//! calls, and the payload of a one-shot open.
//!
//! The security ordering lives here and only here:
//!
//! 1. the context is reconciled before any provider is called
//!    ([`Error::ContextMismatch`], [`Error::MissingContext`]);
//! 2. wrapped keys are tried in header order, and for each the providers that
//!    [match](ProviderIdentity::matches) it, in the order given;
//! 3. an unwrapped key must match the key commitment (constant time), else
//!    the next candidate is tried;
//! 4. the first key that matches must authenticate the header tag, else the
//!    open fails at once with [`Error::Authentication`];
//! 5. if no candidate succeeded: [`Error::Authentication`] if any key failed
//!    the commitment, else [`Error::NoProviderCouldUnwrap`] with the number of
//!    attempts and the last provider error.

use alloc::string::ToString;
use alloc::vec::Vec;

use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::context::{EncryptionContext, Storage};
use crate::crypto::{self, PayloadCipher};
use crate::error::{Error, ProviderError};
use crate::format::binding::{self, Binding, BindingBytes};
use crate::format::v1::{ContextBlock, WrappedIter};
use crate::format::{Header, Limits, Segments, TAG_LEN};
use crate::keys::{DataKey, WrappedKeyRef};
use crate::provider::ProviderIdentity;
use crate::suite::{Backend, Suite};

use super::parallel;

/// An opener's options (shared by the sync and async openers).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenOptions {
    pub(crate) limits: Limits,
    /// Exact context (the default): every header entry must be supplied.
    /// `false` only through the openers' and rewrappers' `lenient_context`.
    pub(crate) strict_context: bool,
    pub(crate) backend: Backend,
    pub(crate) threads: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            strict_context: true,
            backend: Backend::default(),
            threads: 1,
        }
    }
}

/// The key phase of one open, advanced by a driver that makes the unwrap
/// calls:
///
/// ```text
/// let mut u = Unlock::new(header, context, &providers, &options, false)?;
/// while let Some((wrapped, provider)) = u.next() {
///     if let Some(cipher) = u.offer(provider.unwrap(wrapped, u.binding()))? {
///         return Ok(cipher);
///     }
/// }
/// Err(u.failure())
/// ```
pub(crate) struct Unlock<'h, 'p, P: ?Sized> {
    header: Header<'h>,
    providers: &'p [&'p P],
    backend: Backend,
    binding: BindingBytes,
    entries: WrappedIter<'h>,
    current: Option<WrappedKeyRef<'h>>,
    next_provider: usize,
    attempts: usize,
    last: Option<ProviderError>,
    wrong_key: bool,
    done: bool,
    /// Whether to keep the accepted data key (a rewrap wraps it again).
    keep_key: bool,
    dek: DataKey,
}

impl<'h, 'p, P: ProviderIdentity + ?Sized> Unlock<'h, 'p, P> {
    /// Reconciles the caller's context with the header's (no provider is
    /// called if that fails).
    pub(crate) fn new(
        header: Header<'h>,
        context: &EncryptionContext,
        providers: &'p [&'p P],
        opts: &OpenOptions,
        keep_key: bool,
    ) -> Result<Self, Error> {
        let binding = reconcile(context, header.context(), header.suite(), opts.strict_context)?;
        let mut entries = header.wrapped().iter();
        let current = entries.next();
        Ok(Self {
            header,
            providers,
            backend: opts.backend,
            binding,
            entries,
            current,
            next_provider: 0,
            attempts: 0,
            last: None,
            wrong_key: false,
            done: false,
            keep_key,
            dek: DataKey::zeroed(),
        })
    }

    /// The binding the envelope was sealed under (the caller's required
    /// values with the header's stored ones).
    pub(crate) fn binding(&self) -> Binding<'_> {
        Binding::from_encoded(self.header.suite(), self.binding.as_slice())
    }

    /// The next wrapped key to try and the provider to try it with, or `None`
    /// when every candidate was tried (or one succeeded).
    pub(crate) fn next(&mut self) -> Option<(WrappedKeyRef<'h>, &'p P)> {
        if self.done {
            return None;
        }
        loop {
            let w = self.current?;
            while let Some(p) = self.providers.get(self.next_provider).copied() {
                self.next_provider = self.next_provider.saturating_add(1);
                if p.matches(w) {
                    return Some((w, p));
                }
            }
            self.current = self.entries.next();
            self.next_provider = 0;
        }
    }

    /// Takes the result of unwrapping the candidate [`next`](Self::next)
    /// gave: the payload cipher if the key is this envelope's and the header
    /// authenticated with it, `None` to try the next candidate, or an error
    /// that ends the open (the header tag failed). The data key is dropped
    /// (zeroized) here, unless kept for a rewrap.
    pub(crate) fn offer(&mut self, unwrapped: Result<DataKey, ProviderError>) -> Result<Option<PayloadCipher>, Error> {
        self.attempts = self.attempts.saturating_add(1);
        let dek = match unwrapped {
            Ok(dek) => dek,
            Err(e) => {
                self.last = Some(e);
                return Ok(None);
            }
        };
        let h = &self.header;
        let keys = crypto::derive(h.suite(), self.backend, dek.expose_secret(), h.message_id());
        if !crypto::commitment_matches(&keys.commitment, h.commitment()) {
            // Not this envelope's data key (a wrapped key lifted from another
            // envelope): try the other candidates.
            self.wrong_key = true;
            return Ok(None);
        }
        keys.cipher.verify_header_tag(h.authenticated(), h.tag())?;
        if self.keep_key {
            self.dek.bytes_mut().copy_from_slice(dek.expose_secret());
        }
        self.done = true;
        Ok(Some(keys.cipher))
    }

    /// The accepted data key (all zeros unless an offer was accepted with
    /// `keep_key`).
    pub(crate) fn dek(&self) -> &DataKey {
        &self.dek
    }

    /// Why no candidate succeeded.
    pub(crate) fn failure(&mut self) -> Error {
        if self.wrong_key {
            return Error::Authentication;
        }
        Error::NoProviderCouldUnwrap {
            attempts: self.attempts,
            source: self.last.take(),
        }
    }
}

/// Rebuilds the binding an envelope was sealed under from its header and what
/// the caller supplies to open. In one pass over both (both are sorted by
/// key bytes). Precedence: the first header entry (in key order) that fails
/// (a stored value that differs, a required entry not supplied, or with
/// `strict` a stored entry not supplied) wins; then a supplied key the header
/// does not have.
pub(crate) fn reconcile(
    caller: &EncryptionContext,
    header: ContextBlock<'_>,
    suite: Suite,
    strict: bool,
) -> Result<BindingBytes, Error> {
    let mut out = BindingBytes::new();
    binding::put_prefix(&mut out, suite, header.len());
    let mut supplied = caller.iter().peekable();
    let mut extra: Option<&str> = None;
    for e in header.iter() {
        // Supplied keys that sort before this one are not in the header.
        while let Some(s) = supplied.next_if(|s| s.key.as_bytes() < e.key.as_bytes()) {
            extra = extra.or(Some(s.key));
        }
        let given = supplied.next_if(|s| s.key == e.key).map(|s| s.value);
        match (e.value, given) {
            (Some(stored), Some(v)) if v != stored => return Err(Error::ContextMismatch { key: e.key.to_string() }),
            (Some(_), None) if strict => return Err(Error::MissingContext { key: e.key.to_string() }),
            (Some(stored), _) => binding::put_entry(&mut out, e.key, stored, Storage::Stored),
            (None, Some(v)) => binding::put_entry(&mut out, e.key, v, Storage::Required),
            (None, None) => return Err(Error::MissingContext { key: e.key.to_string() }),
        }
    }
    if let Some(key) = extra.or_else(|| supplied.next().map(|s| s.key)) {
        // Something the caller expects is not in the envelope.
        return Err(Error::ContextMismatch { key: key.to_string() });
    }
    Ok(out)
}

/// The whole context of an opened envelope: its stored entries and the
/// required ones the caller supplied.
pub(crate) fn full_context(header: ContextBlock<'_>, context: &EncryptionContext) -> Result<EncryptionContext, Error> {
    let mut full = EncryptionContext::new();
    for e in header.iter() {
        match e.value {
            Some(v) => full.insert(e.key, v)?,
            None => {
                // Reconciling already required it; a typed error, not a default, if not.
                let v = context
                    .get(e.key)
                    .ok_or_else(|| Error::MissingContext { key: e.key.to_string() })?;
                full.insert_required(e.key, v)?;
            }
        }
    }
    Ok(full)
}

/// Decrypts an authenticated payload and appends the plaintext to `out`; on
/// error `out` is unchanged (anything written is zeroized first).
pub(crate) fn open_payload(
    cipher: &PayloadCipher,
    segs: Segments,
    payload: &[u8],
    threads: usize,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    let pt_len = segs.plaintext_len();
    out.try_reserve_exact(pt_len).map_err(|_| Error::InvalidArgument {
        what: "plaintext too large to allocate",
    })?;
    let threads = parallel::threads_for(threads, payload.len());
    let r = if threads > 1 && segs.count > 1 {
        out.resize(start.saturating_add(pt_len), 0);
        open_segments(cipher, segs, payload, threads, out.get_mut(start..).unwrap_or_default())
    } else {
        open_appending(cipher, segs, payload, out)
    };
    if r.is_err() {
        if let Some(written) = out.get_mut(start..) {
            written.zeroize();
        }
        out.truncate(start);
    }
    r
}

/// The caller's buffer for the plaintext of `segs`: its first
/// `plaintext_len` bytes, or [`Error::BufferTooSmall`]. Checked before any
/// provider is called.
pub(crate) fn plaintext_dst(segs: Segments, out: &mut [u8]) -> Result<&mut [u8], Error> {
    let needed = segs.plaintext_len();
    out.get_mut(..needed).ok_or(Error::BufferTooSmall { needed })
}

/// Decrypts an authenticated payload into `dst` (exactly its plaintext
/// length, from [`plaintext_dst`]) and returns that length; on error `dst`
/// is zeroized.
pub(crate) fn open_payload_into(
    cipher: &PayloadCipher,
    segs: Segments,
    payload: &[u8],
    threads: usize,
    dst: &mut [u8],
) -> Result<usize, Error> {
    let threads = parallel::threads_for(threads, payload.len());
    let r = open_segments(cipher, segs, payload, threads, dst);
    if r.is_err() {
        dst.zeroize();
    }
    r.map(|()| dst.len())
}

/// Verifies and decrypts every segment of `payload` into `dst` (exactly the
/// plaintext length) on up to `threads` threads.
fn open_segments(
    cipher: &PayloadCipher,
    segs: Segments,
    payload: &[u8],
    threads: usize,
    dst: &mut [u8],
) -> Result<(), Error> {
    if threads <= 1 || segs.count <= 1 {
        return open_run(cipher, segs, 0, payload, dst);
    }
    let per = segs.count.div_ceil(threads).max(1);
    let pairs = payload
        .chunks(per.saturating_mul(segs.stride()))
        .zip(dst.chunks_mut(per.saturating_mul(segs.size)));
    parallel::run(pairs, |t, (src, dst)| {
        open_run(cipher, segs, t.saturating_mul(per), src, dst)
    })
}

/// One thread: grows `out` by one segment (zeroed) at a time and verifies and
/// decrypts into it. On error the caller zeroizes what was appended (a failed
/// segment leaves zeros or, with AWS-LC, zeroized bytes: never plaintext).
fn open_appending(cipher: &PayloadCipher, segs: Segments, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    for (i, chunk) in payload.chunks(segs.stride()).enumerate() {
        let last = i.saturating_add(1) == segs.count;
        let (ct, tag) = split_tag(chunk, segs.len_of(i))?;
        let at = out.len();
        out.resize(at.saturating_add(ct.len()), 0);
        let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
        cipher.open_segment(index, last, ct, out.get_mut(at..).unwrap_or_default(), tag)?;
    }
    Ok(())
}

/// Verifies and decrypts consecutive segments starting at segment `first`.
fn open_run(cipher: &PayloadCipher, segs: Segments, first: usize, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
    let mut outs = dst.chunks_mut(segs.size.max(1));
    for (j, chunk) in src.chunks(segs.stride()).enumerate() {
        let i = first.saturating_add(j);
        let last = i.saturating_add(1) == segs.count;
        let (ct, tag) = split_tag(chunk, segs.len_of(i))?;
        let out = if ct.is_empty() {
            &mut [][..]
        } else {
            outs.next().ok_or(Error::Authentication)?
        };
        let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
        cipher.open_segment(index, last, ct, out, tag)?;
    }
    Ok(())
}

/// A segment's ciphertext (`ct_len` bytes) and its tag.
pub(crate) fn split_tag(chunk: &[u8], ct_len: usize) -> Result<(&[u8], &[u8; TAG_LEN]), Error> {
    let (ct, tag) = chunk.split_at_checked(ct_len).ok_or(Error::Authentication)?;
    Ok((ct, tag.try_into().map_err(|_| Error::Authentication)?))
}

/// Verifies and decrypts segment `i` of `segs` in place in `chunk` (its
/// ciphertext then its tag).
pub(crate) fn open_chunk_in_place(
    cipher: &PayloadCipher,
    segs: Segments,
    i: usize,
    chunk: &mut [u8],
) -> Result<(), Error> {
    let last = i.saturating_add(1) == segs.count;
    let (ct, tag) = chunk
        .split_at_mut_checked(segs.len_of(i))
        .ok_or(Error::Authentication)?;
    let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Authentication)?;
    let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
    cipher.open_segment_in_place(index, last, ct, &tag)
}

/// Opens in place: `buf` holds the envelope before (a header of
/// `header_len` bytes, then the payload) and the plaintext after. On error
/// `buf` still holds the envelope, byte for byte: segments already decrypted
/// are encrypted back (no plaintext is left behind).
///
/// A cipher that leaves a failed segment as it was (RustCrypto) decrypts
/// each segment where it lies, then the plaintext moves to the front. One
/// that overwrites it (AWS-LC zeroizes a segment that fails to open) goes
/// through a scratch buffer of one segment and a copy of the header
/// ([`open_through_scratch`]): the buffer's spare capacity if it has room
/// (no allocation), else one allocation, zeroized either way.
pub(crate) fn open_in_place(
    cipher: &PayloadCipher,
    segs: Segments,
    header_len: usize,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let env_len = buf.len();
    if cipher.zeroizes_on_failure() {
        let longest = if segs.count > 1 { segs.size } else { segs.last_len };
        let need = longest.saturating_add(header_len);
        if buf.capacity().saturating_sub(env_len) >= need {
            buf.resize(env_len.saturating_add(need), 0);
            let (env, scratch) = buf.split_at_mut(env_len);
            let r = open_through_scratch(cipher, segs, header_len, env, scratch);
            scratch.zeroize();
            buf.truncate(env_len);
            r?;
        } else {
            let mut scratch = Zeroizing::new(Vec::new());
            scratch.try_reserve_exact(need).map_err(|_| Error::InvalidArgument {
                what: "segment too large to allocate",
            })?;
            scratch.resize(need, 0);
            open_through_scratch(cipher, segs, header_len, buf, &mut scratch)?;
        }
    } else {
        decrypt_in_place(cipher, segs, buf.get_mut(header_len..).unwrap_or_default())?;
        let stride = segs.stride();
        for i in 0..segs.count {
            let from = header_len.saturating_add(i.saturating_mul(stride));
            let to = i.saturating_mul(segs.size);
            buf.copy_within(from..from.saturating_add(segs.len_of(i)), to);
        }
    }
    let pt_len = segs.plaintext_len();
    if let Some(tail) = buf.get_mut(pt_len..) {
        tail.zeroize();
    }
    buf.truncate(pt_len);
    Ok(())
}

/// Verifies and decrypts every segment of `payload` where it lies. On error
/// the segments already decrypted are encrypted back, so `payload` is as it
/// was (the cipher must leave a segment that fails untouched).
fn decrypt_in_place(cipher: &PayloadCipher, segs: Segments, payload: &mut [u8]) -> Result<(), Error> {
    let stride = segs.stride();
    let mut failed = None;
    for (i, chunk) in payload.chunks_mut(stride).enumerate() {
        if let Err(e) = open_chunk_in_place(cipher, segs, i, chunk) {
            failed = Some((i, e));
            break;
        }
    }
    let Some((bad, e)) = failed else {
        return Ok(());
    };
    // Restore the ciphertext of the segments before `bad` (the same key and
    // nonce give the same bytes; the tags were never touched).
    for (i, chunk) in payload.chunks_mut(stride).take(bad).enumerate() {
        let last = i.saturating_add(1) == segs.count;
        if let (Some((pt, _)), Ok(index)) = (chunk.split_at_mut_checked(segs.len_of(i)), u32::try_from(i))
            && cipher.seal_segment_in_place(index, last, pt).is_err()
        {
            pt.zeroize();
        }
    }
    Err(e)
}

/// The in-place open for a cipher that overwrites a segment that fails:
/// each segment is verified and decrypted out of place into the scratch
/// (never into `env`), then copied straight to its final place at the front
/// of `env`, while it is in cache (no second pass to move the plaintext).
/// That overwrites the header and consumed ciphertext, so the header is
/// copied into the scratch first. If a segment fails, the segments before
/// it move back to their places and are encrypted again (the same key and
/// nonce give the same ciphertext and tag), and the header is copied back:
/// `env` is the envelope again, byte for byte.
///
/// `scratch` holds at least the longest segment's plaintext and the header.
fn open_through_scratch(
    cipher: &PayloadCipher,
    segs: Segments,
    header_len: usize,
    env: &mut [u8],
    scratch: &mut [u8],
) -> Result<(), Error> {
    let longest = if segs.count > 1 { segs.size } else { segs.last_len };
    let (plain, saved) = scratch.split_at_mut_checked(longest).ok_or(Error::Authentication)?;
    let saved = saved.get_mut(..header_len).ok_or(Error::Authentication)?;
    saved.copy_from_slice(env.get(..header_len).ok_or(Error::Authentication)?);
    let stride = segs.stride();
    for i in 0..segs.count {
        let len = segs.len_of(i);
        let at = header_len.saturating_add(i.saturating_mul(stride));
        let r = (|| {
            let chunk = env.get(at..at.saturating_add(len).saturating_add(TAG_LEN));
            let (ct, tag) = split_tag(chunk.ok_or(Error::Authentication)?, len)?;
            let out = plain.get_mut(..len).ok_or(Error::Authentication)?;
            let index = u32::try_from(i).map_err(|_| Error::Authentication)?;
            cipher.open_segment(index, i.saturating_add(1) == segs.count, ct, out, tag)?;
            let to = i.saturating_mul(segs.size);
            env.get_mut(to..to.saturating_add(len))
                .ok_or(Error::Authentication)?
                .copy_from_slice(out);
            Ok(())
        })();
        if let Err(e) = r {
            restore_envelope(cipher, segs, header_len, env, i, saved);
            return Err(e);
        }
    }
    Ok(())
}

/// Undoes [`open_through_scratch`] up to segment `bad`: moves the plaintext
/// of each segment before it back to its place (last first: they only move
/// right), encrypts it there (its ciphertext and tag come back), then copies
/// the header back.
fn restore_envelope(
    cipher: &PayloadCipher,
    segs: Segments,
    header_len: usize,
    env: &mut [u8],
    bad: usize,
    header: &[u8],
) {
    let stride = segs.stride();
    for j in (0..bad).rev() {
        let len = segs.len_of(j);
        let from = j.saturating_mul(segs.size);
        let to = header_len.saturating_add(j.saturating_mul(stride));
        if to.saturating_add(len).saturating_add(TAG_LEN) > env.len() {
            continue;
        }
        env.copy_within(from..from.saturating_add(len), to);
        let Some((pt, tag)) = env
            .get_mut(to..to.saturating_add(len).saturating_add(TAG_LEN))
            .and_then(|c| c.split_at_mut_checked(len))
        else {
            continue;
        };
        let last = j.saturating_add(1) == segs.count;
        match u32::try_from(j)
            .map_err(|_| Error::Authentication)
            .and_then(|index| cipher.seal_segment_in_place(index, last, pt))
        {
            Ok(t) => tag.copy_from_slice(&t),
            Err(_) => pt.zeroize(),
        }
    }
    if let Some(h) = env.get_mut(..header_len) {
        h.copy_from_slice(header);
    }
}

#[cfg(test)]
mod tests {
    //! The security ordering with no provider at all: results are fed to
    //! [`Unlock`] by hand, as a driver would after each unwrap call.

    use super::*;
    use crate::error::ProviderErrorKind;
    use crate::format::{Parsed, parse_prefix};
    use crate::keys::WrappedKey;
    use crate::{KeyId, KeyVersion, hazmat};

    /// An identity that matches entries by key id.
    #[derive(Debug)]
    struct Id(&'static str);
    impl ProviderIdentity for Id {
        fn provider_id(&self) -> &str {
            "test.id"
        }
        fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
            w.is_for("test.id", self.0)
        }
    }

    /// An envelope sealed under `key` with wrapped-key entries named `ids`
    /// (their bytes are irrelevant: no provider runs).
    fn envelope(key: [u8; 32], ids: &[&'static str], ctx: &EncryptionContext) -> Vec<u8> {
        let names: Vec<Id> = ids.iter().map(|s| Id(s)).collect();
        let refs: Vec<&Id> = names.iter().collect();
        let opts = super::super::seal::SealOptions::default();
        let mut plan = super::super::seal::SealPlan::new(&opts, ctx, &refs, Some(0)).unwrap();
        plan.generated(Ok(None), |b| {
            b.fill(7);
            b.get_mut(..32).unwrap().copy_from_slice(&key);
            Ok(())
        })
        .unwrap();
        while let Some(p) = plan.next_wrapper() {
            let w = WrappedKey::new("test.id", KeyId::new(p.0).unwrap(), KeyVersion(1), alloc::vec![1]).unwrap();
            plan.wrapped(Ok(w)).unwrap();
        }
        let mut out = Vec::new();
        plan.finish().unwrap().seal_to(b"", &mut out).unwrap();
        out
    }

    fn header(env: &[u8]) -> Header<'_> {
        match parse_prefix(env, &Limits::default()).unwrap() {
            Parsed::Complete(h) => h,
            Parsed::Incomplete { .. } => panic!("incomplete"),
        }
    }

    fn refused() -> Result<DataKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::Authentication, "test.id"))
    }

    #[test]
    fn candidates_in_header_order_then_provider_order_matching_only() {
        let ctx = EncryptionContext::new();
        let env = envelope([1; 32], &["a", "b", "a"], &ctx);
        let (a, b, c) = (Id("a"), Id("b"), Id("c"));
        let providers: [&Id; 3] = [&c, &b, &a];
        let mut u = Unlock::new(header(&env), &ctx, &providers, &OpenOptions::default(), false).unwrap();
        let mut seen = Vec::new();
        while let Some((w, p)) = u.next() {
            seen.push((w.key_id(), p.0));
            assert!(u.offer(refused()).unwrap().is_none());
        }
        assert_eq!(seen, [("a", "a"), ("b", "b"), ("a", "a")]);
        match u.failure() {
            Error::NoProviderCouldUnwrap {
                attempts: 3,
                source: Some(e),
            } => {
                assert_eq!(e.kind(), ProviderErrorKind::Authentication)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_key_is_authentication_right_key_unlocks_bad_tag_stops() {
        let ctx = EncryptionContext::new();
        let env = envelope([1; 32], &["a", "a"], &ctx);
        let a = Id("a");
        let providers = [&a];
        let opts = OpenOptions::default();
        // A key that fails the commitment everywhere: Authentication, after every candidate.
        let mut u = Unlock::new(header(&env), &ctx, &providers, &opts, false).unwrap();
        while u.next().is_some() {
            assert!(u.offer(Ok(hazmat::data_key_from_bytes([2; 32]))).unwrap().is_none());
        }
        assert!(matches!(u.failure(), Error::Authentication));
        // The wrong key, a refusal, then the right key: unlocked on the second entry.
        let mut u = Unlock::new(header(&env), &ctx, &providers, &opts, true).unwrap();
        assert!(u.next().is_some());
        assert!(u.offer(refused()).unwrap().is_none());
        assert!(u.next().is_some());
        assert!(u.offer(Ok(hazmat::data_key_from_bytes([1; 32]))).unwrap().is_some());
        assert_eq!(u.dek().expose_secret(), &[1; 32]);
        assert!(u.next().is_none(), "nothing is tried after success");
        // The right key but a tampered header tag: fails at once.
        let mut bad = env.clone();
        let h = header(&env).len();
        bad[h - 1] ^= 1;
        let mut u = Unlock::new(header(&bad), &ctx, &providers, &opts, false).unwrap();
        assert!(u.next().is_some());
        assert!(matches!(
            u.offer(Ok(hazmat::data_key_from_bytes([1; 32]))),
            Err(Error::Authentication)
        ));
    }

    #[test]
    fn context_is_reconciled_before_any_candidate() {
        let sealed = EncryptionContext::new()
            .with("b", "2")
            .unwrap()
            .with_required("d", "4")
            .unwrap();
        let env = envelope([1; 32], &["a"], &sealed);
        let a = Id("a");
        let providers = [&a];
        let opts = OpenOptions::default();
        let try_open = |ctx: &EncryptionContext, strict: bool| {
            let opts = OpenOptions {
                strict_context: strict,
                ..opts
            };
            Unlock::new(header(&env), ctx, &providers, &opts, false).map(|_| ())
        };
        let with = |pairs: &[(&str, &str)]| {
            let mut c = EncryptionContext::new();
            for (k, v) in pairs {
                c.insert(k, v).unwrap();
            }
            c
        };
        assert!(try_open(&with(&[("d", "4")]), false).is_ok());
        assert!(matches!(try_open(&with(&[("d", "4")]), true), Err(Error::MissingContext { key }) if key == "b"));
        assert!(matches!(try_open(&with(&[]), false), Err(Error::MissingContext { key }) if key == "d"));
        assert!(
            matches!(try_open(&with(&[("b", "x"), ("d", "4")]), false), Err(Error::ContextMismatch { key }) if key == "b")
        );
        // A header failure wins over an extra key, whatever their order.
        assert!(matches!(try_open(&with(&[("a", "1")]), false), Err(Error::MissingContext { key }) if key == "d"));
        assert!(
            matches!(try_open(&with(&[("a", "1"), ("d", "4")]), false), Err(Error::ContextMismatch { key }) if key == "a")
        );
        assert!(
            matches!(try_open(&with(&[("d", "4"), ("z", "1")]), false), Err(Error::ContextMismatch { key }) if key == "z")
        );
    }
}
