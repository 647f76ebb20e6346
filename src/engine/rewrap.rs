//! The rewrap side of the core: which entries a rewrap keeps, the unwrap (the
//! same [`Unlock`] as an open), the new wraps, and the new header.

use alloc::vec::Vec;

use zeroize::{Zeroize, Zeroizing};

use crate::context::EncryptionContext;
use crate::crypto::PayloadCipher;
use crate::error::{Error, LimitKind, ProviderError};
use crate::format::binding::Binding;
use crate::format::{Header, Segments};
use crate::keys::{DataKey, WrappedKey, WrappedKeyRef};
use crate::pq::{self, MixCheck};
use crate::provider::ProviderIdentity;
use crate::rewrap::Keep;

use super::open::{OpenOptions, Unlock, split_tag};
use super::seal::check_own;

/// A rewrapper's options (shared by the sync and async rewrappers).
#[derive(Clone, Debug, Default)]
pub(crate) struct RewrapOptions<'p> {
    pub(crate) remove: Vec<&'p dyn ProviderIdentity>,
    pub(crate) keep: Keep,
    pub(crate) open: OpenOptions,
    pub(crate) verify_payload: bool,
    /// The caller's opt-in to mixing classical and post-quantum wraps.
    pub(crate) allow_classical_with_pq: bool,
}

/// One rewrap, advanced by a driver that makes the provider calls:
///
/// ```text
/// let mut r = RewrapPlan::new(header, context, &unwrap_with, &wrap_with, &options)?;
/// while let Some((w, p)) = r.next_unwrap() { r.offer(p.unwrap(w, r.binding()))?; }
/// while let Some(p) = r.next_wrapper()? { r.wrapped(p.wrap(r.dek(), r.binding())?)?; }
/// let (new_header, cipher) = r.finish()?;
/// ```
///
/// Everything is decided from the header before any provider is called: the
/// context reconciliation, the kept entries and the entry-count limit.
pub(crate) struct RewrapPlan<'h, 'p, U: ?Sized, W: ?Sized> {
    unlock: Unlock<'h, 'p, U>,
    header: Header<'h>,
    wrap_with: &'p [&'p W],
    kept: Vec<WrappedKeyRef<'h>>,
    fresh: Vec<WrappedKey>,
    cipher: Option<PayloadCipher>,
    options: OpenOptions,
}

impl<'h, 'p, U, W> RewrapPlan<'h, 'p, U, W>
where
    U: ProviderIdentity + ?Sized,
    W: ProviderIdentity + ?Sized,
{
    /// Reconciles the context, selects the kept entries and refuses a rewrap
    /// whose result could not be written (no entry left, too many entries).
    pub(crate) fn new(
        header: Header<'h>,
        context: &EncryptionContext,
        unwrap_with: &'p [&'p U],
        wrap_with: &'p [&'p W],
        options: &RewrapOptions<'_>,
    ) -> Result<Self, Error> {
        let unlock = Unlock::new(header, context, unwrap_with, &options.open, true)?;
        let keeps = |w: &WrappedKeyRef<'_>| {
            if options.remove.iter().any(|p| p.matches(*w)) {
                return false;
            }
            match options.keep {
                Keep::All => true,
                Keep::Nothing => false,
                Keep::Unmatched => !unwrap_with.iter().any(|p| p.matches(*w)),
            }
        };
        let kept: Vec<WrappedKeyRef<'h>> = header.wrapped().iter().filter(keeps).collect();
        let count = kept.len().saturating_add(wrap_with.len());
        if count == 0 {
            return Err(Error::InvalidArgument {
                what: "a rewrap must leave at least one wrapped key",
            });
        }
        let max_wrapped = options.open.limits.max_wrapped_keys().min(usize::from(u8::MAX));
        if count > max_wrapped {
            return Err(Error::LimitExceeded {
                limit: LimitKind::WrappedKeys,
                max: max_wrapped,
            });
        }
        check_mix(&kept, unwrap_with, wrap_with, options)?;
        Ok(Self {
            unlock,
            header,
            wrap_with,
            kept,
            fresh: Vec::with_capacity(wrap_with.len()),
            cipher: None,
            options: options.open,
        })
    }

    /// The binding (unchanged by a rewrap: the new wraps are bound to it too).
    pub(crate) fn binding(&self) -> Binding<'_> {
        self.unlock.binding()
    }

    /// The next wrapped key to unwrap and the provider to try, until one
    /// unlocked the envelope.
    pub(crate) fn next_unwrap(&mut self) -> Option<(WrappedKeyRef<'h>, &'p U)> {
        self.unlock.next()
    }

    /// Takes an unwrap result (see [`Unlock::offer`]).
    pub(crate) fn offer(&mut self, unwrapped: Result<DataKey, ProviderError>) -> Result<(), Error> {
        if let Some(cipher) = self.unlock.offer(unwrapped)? {
            self.cipher = Some(cipher);
        }
        Ok(())
    }

    /// The next provider to wrap the data key with, once the envelope is
    /// unlocked; the open's error if it never was.
    pub(crate) fn next_wrapper(&mut self) -> Result<Option<&'p W>, Error> {
        if self.cipher.is_none() {
            return Err(self.unlock.failure());
        }
        Ok(self.wrap_with.get(self.fresh.len()).copied())
    }

    /// The envelope's data key (verified against its commitment and header).
    pub(crate) fn dek(&self) -> &DataKey {
        self.unlock.dek()
    }

    /// Records a new wrap; a wrapped key its own provider would not match is
    /// a provider bug, refused here.
    pub(crate) fn wrapped(&mut self, w: WrappedKey) -> Result<(), Error> {
        let provider = self.wrap_with.get(self.fresh.len()..).unwrap_or_default();
        check_own(provider.iter().copied(), core::iter::once(&w))?;
        self.fresh.push(w);
        Ok(())
    }

    /// The new header (tag included) and the payload cipher: the new entries
    /// first, then the kept ones; every byte before the entries is copied as
    /// received (it was authenticated).
    /// Takes `&mut self`, not `self`, so the data key inside is never moved
    /// (see [`SealPlan::finish`](super::seal::SealPlan::finish)).
    pub(crate) fn finish(&mut self) -> Result<(Vec<u8>, PayloadCipher), Error> {
        let cipher = self.cipher.take().ok_or_else(|| self.unlock.failure())?;
        let entries = self
            .fresh
            .iter()
            .map(WrappedKey::as_ref)
            .chain(self.kept.iter().copied());
        let max = self.options.limits.max_header_len();
        let header_len = self.header.rewrapped_len(entries.clone());
        if header_len > max {
            return Err(Error::LimitExceeded {
                limit: LimitKind::HeaderBytes,
                max,
            });
        }
        let mut out = Vec::with_capacity(header_len);
        self.header.encode_rewrapped(&mut out, entries);
        let tag = cipher.header_tag(&out)?;
        out.extend_from_slice(&tag);
        Ok((out, cipher))
    }
}

/// Refuses a new header that would mix classical and post-quantum wraps
/// (unless allowed): the new wraps as their providers state, each kept entry
/// as the first given provider that matches it states, else as its provider
/// id is known (`Unknown` otherwise).
fn check_mix<U, W>(
    kept: &[WrappedKeyRef<'_>],
    unwrap_with: &[&U],
    wrap_with: &[&W],
    options: &RewrapOptions<'_>,
) -> Result<(), Error>
where
    U: ProviderIdentity + ?Sized,
    W: ProviderIdentity + ?Sized,
{
    let mut mix = MixCheck::new(options.allow_classical_with_pq);
    for p in wrap_with {
        mix.add(p.provider_id(), p.post_quantum())?;
    }
    for w in kept {
        let stated = unwrap_with
            .iter()
            .map(|p| (p.matches(*w), p.post_quantum()))
            .chain(wrap_with.iter().map(|p| (p.matches(*w), p.post_quantum())))
            .find_map(|(m, pq)| m.then_some(pq))
            .unwrap_or_else(|| pq::of_provider_id(w.provider_id()));
        mix.add(w.provider_id(), stated)?;
    }
    Ok(())
}

/// Verifies every segment tag of `payload` into a zeroized scratch buffer
/// (the plaintext is never released).
pub(crate) fn verify_segments(cipher: &PayloadCipher, segs: Segments, payload: &[u8]) -> Result<(), Error> {
    let mut scratch = Zeroizing::new(Vec::new());
    scratch
        .try_reserve_exact(segs.size.min(payload.len()))
        .map_err(|_| Error::InvalidArgument {
            what: "segment too large to allocate",
        })?;
    for (i, chunk) in payload.chunks(segs.stride()).enumerate() {
        let last = i.saturating_add(1) == segs.count;
        verify_segment(cipher, i, last, segs.len_of(i), chunk, &mut scratch)?;
    }
    Ok(())
}

/// Verifies one segment (`chunk` = ciphertext of `ct_len` bytes, then tag)
/// by decrypting it into `scratch`, which is wiped after.
pub(crate) fn verify_segment(
    cipher: &PayloadCipher,
    index: usize,
    last: bool,
    ct_len: usize,
    chunk: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), Error> {
    let (ct, tag) = split_tag(chunk, ct_len)?;
    let index = u32::try_from(index).map_err(|_| Error::Authentication)?;
    scratch.clear();
    scratch.resize(ct.len(), 0);
    let r = cipher.open_segment(index, last, ct, scratch, tag);
    scratch.zeroize();
    r
}
