//! Reading an envelope's header without any key: [`inspect`] and
//! [`ciphertext_range`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::Error;
use crate::format::{self, Limits, MESSAGE_ID_LEN, SegmentSize, Segments};
use crate::keys::WrappedKey;
use crate::pq::PostQuantum;
use crate::suite::Suite;

/// Reads an envelope's header without any key, with the default limits.
///
/// Nothing reported here is authenticated yet: an attacker can forge any of
/// it. Use it to route (which provider, which key), never to decide trust.
pub fn inspect(envelope: &[u8]) -> Result<EnvelopeInfo, Error> {
    EnvelopeInfo::parse(envelope, &Limits::default())
}

/// For range reads (object stores): the byte range of an envelope that holds
/// the segments covering `plaintext` (a range of plaintext offsets).
///
/// `header_prefix` must start at the envelope's first byte and hold at least
/// the whole header (fetch, say, the first 64 KiB); `envelope_len` is the
/// envelope's total size (an object store's content length). Nothing is
/// authenticated here. Fetch the header and the returned range and decrypt
/// the segments with a [`Decryptor`](crate::Decryptor) over a reader that
/// serves those bytes at their offsets: its first seek also verifies the
/// final segment (which proves the length), so fetch that segment too.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// let kek = lockbox::LocalKek::generate()?;
/// let ctx = lockbox::EncryptionContext::new();
/// let env = lockbox::Sealer::new(&kek)
///     .segment_size(lockbox::SegmentSize::new(1024)?)
///     .seal(&[7u8; 10_000], &ctx)?;
/// let r = lockbox::ciphertext_range(&env, env.len() as u64, 2_000..2_100)?;
/// // Plaintext 2000..2100 lies in segment 1 (1024..2048) and 2 (2048..3072).
/// let h = lockbox::inspect(&env)?.header_len() as u64;
/// assert_eq!(r, h + 1040..h + 3 * 1040);
/// # Ok(()) }
/// ```
pub fn ciphertext_range(
    header_prefix: &[u8],
    envelope_len: u64,
    plaintext: core::ops::Range<u64>,
) -> Result<core::ops::Range<u64>, Error> {
    let (h, _) = format::parse(header_prefix, &Limits::default())?;
    let header_len = u64::try_from(h.len()).unwrap_or(u64::MAX);
    let payload = envelope_len.checked_sub(header_len).ok_or_else(|| Error::Malformed {
        offset: h.len(),
        what: "truncated payload",
    })?;
    let payload = usize::try_from(payload).map_err(|_| Error::InvalidArgument {
        what: "envelope too large for this platform",
    })?;
    let segs = Segments::for_payload(payload, h.segment_size(), h.len())?;
    segs.ciphertext_range(header_len, plaintext)
        .ok_or_else(|| Error::InvalidArgument {
            what: "plaintext range outside the envelope's plaintext",
        })
}

/// What [`inspect`] reads from a header. Unauthenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeInfo {
    version: u8,
    suite: Suite,
    message_id: [u8; MESSAGE_ID_LEN],
    segment_size: SegmentSize,
    segment_count: usize,
    stored_context: Vec<(String, String)>,
    required_context_keys: Vec<String>,
    wrapped_keys: Vec<WrappedKey>,
    post_quantum: PostQuantum,
    header_len: usize,
    payload_len: usize,
    plaintext_len: usize,
}

impl EnvelopeInfo {
    /// [`inspect`] with explicit limits.
    pub fn parse(envelope: &[u8], limits: &Limits) -> Result<Self, Error> {
        let (h, payload) = format::parse(envelope, limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size(), h.len())?;
        let mut stored = Vec::new();
        let mut required = Vec::new();
        for e in h.context().iter() {
            match e.value {
                Some(v) => stored.push((e.key.to_string(), v.to_string())),
                None => required.push(e.key.to_string()),
            }
        }
        Ok(EnvelopeInfo {
            version: h.version(),
            suite: h.suite(),
            message_id: *h.message_id(),
            segment_size: h.segment_size(),
            segment_count: segs.count,
            stored_context: stored,
            required_context_keys: required,
            wrapped_keys: h.wrapped().iter().map(|w| w.to_owned()).collect(),
            post_quantum: crate::pq::of_envelope(h.wrapped().iter()),
            header_len: h.len(),
            payload_len: payload.len(),
            plaintext_len: segs.plaintext_len(),
        })
    }

    /// Format version (1).
    pub fn version(&self) -> u8 {
        self.version
    }
    /// Algorithm suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }
    /// The random per-message id.
    pub fn message_id(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.message_id
    }
    /// Segment size.
    pub fn segment_size(&self) -> SegmentSize {
        self.segment_size
    }
    /// Number of payload segments.
    pub fn segment_count(&self) -> usize {
        self.segment_count
    }
    /// Stored encryption-context entries, in canonical order.
    pub fn stored_context(&self) -> impl Iterator<Item = (&str, &str)> {
        self.stored_context.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// Keys of the required (not stored) entries a caller must supply to open.
    pub fn required_context_keys(&self) -> impl Iterator<Item = &str> {
        self.required_context_keys.iter().map(String::as_str)
    }
    /// The wrapped data keys: provider, key id, version and opaque bytes.
    pub fn wrapped_keys(&self) -> &[WrappedKey] {
        &self.wrapped_keys
    }
    /// Whether the envelope resists an attacker with a quantum computer, as
    /// far as lockbox can tell from its wrapped keys' provider ids (it opens
    /// with any one of them, so it is as strong as the weakest):
    /// [`PostQuantum::No`] if any wrapped key is classical (`lockbox.x25519`);
    /// else [`PostQuantum::Unknown`] if any provider id is one lockbox does
    /// not know (a third-party provider); else [`PostQuantum::Yes`] (symmetric
    /// keys of lockbox's own providers, `lockbox.passphrase`,
    /// `lockbox.xwing`). Unauthenticated, like everything here.
    pub fn post_quantum(&self) -> PostQuantum {
        self.post_quantum
    }
    /// Header length in bytes (the payload starts here).
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// Payload length in bytes (segments and their tags).
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
    /// Plaintext length in bytes.
    pub fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }
}
