//! The keyring file: contents encoding (`KEYRING.md` §3) and sealing under
//! the master provider (§2).
//!
//! Sealing and opening are sans-IO steps around the one master call, so that
//! a sync master ([`KeyEncryptionProvider`]) and an async one
//! ([`AsyncKeyEncryptionProvider`]) share every check: [`Keyring::next_contents`]
//! before the seal and [`Keyring::adopt_sealed`] after it;
//! [`Keyring::from_opened`] after the open. The drivers differ only in `.await`.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec::Vec;

use secrecy::SecretBox;
use zeroize::Zeroizing;

use super::kek::{VERSION_KEY_LEN, VersionKey};
use super::{AuditAction, Entry, KeyState, Keyring, KeyringError, MAX_VERSIONS, NoAudit, RotationPolicy, Table};
use crate::context::{EncryptionContext, Storage};
use crate::error::Error;
use crate::keys::KeyId;
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};
use crate::{AsyncOpener, AsyncSealer, Opener, Sealer};

/// Magic at the start of the contents.
const MAGIC: &[u8; 8] = b"LKBXRING";
/// Contents format version.
const FORMAT_V1: u8 = 1;
/// Context keys of the sealed file (all stored).
pub(crate) const CTX_FORMAT: &str = "lockbox.keyring.format";
pub(crate) const CTX_ID: &str = "lockbox.keyring.id";
pub(crate) const CTX_GENERATION: &str = "lockbox.keyring.generation";

const STATE_ENABLED: u8 = 0;
const STATE_DECRYPT_ONLY: u8 = 1;
const STATE_DISABLED: u8 = 2;
const STATE_SCHEDULED: u8 = 3;
const STATE_DESTROYED: u8 = 4;
const FLAG_COMPROMISED: u8 = 1;

/// Fixed part of an entry: version, created, state, flags, time.
const ENTRY_FIXED_LEN: usize = 4 + 8 + 1 + 1 + 8;

fn entry_len(e: &Entry) -> usize {
    if e.key.is_some() {
        ENTRY_FIXED_LEN.saturating_add(VERSION_KEY_LEN)
    } else {
        ENTRY_FIXED_LEN
    }
}

/// Encodes the contents. The buffer is sized exactly up front (no
/// reallocation leaves key bytes in freed memory) and zeroized on drop.
pub(crate) fn encode(t: &Table, generation: u64) -> Zeroizing<Vec<u8>> {
    let id = t.id.as_str().as_bytes();
    let fixed = 8 + 1 + 1 + 8 + 4 * 4 + 8 + 8 + 4;
    let len = t
        .entries
        .values()
        .fold(id.len().saturating_add(fixed), |acc: usize, e| {
            acc.saturating_add(entry_len(e))
        });
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_V1);
    // A KeyId is 1 to 255 bytes.
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(&generation.to_be_bytes());
    for n in [t.primary, t.minimum, t.trimmed_below, t.last_version] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&t.policy.rotation_period_secs.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&t.policy.min_destruction_delay_secs.to_be_bytes());
    out.extend_from_slice(&u32::try_from(t.entries.len()).unwrap_or(u32::MAX).to_be_bytes());
    for (v, e) in &t.entries {
        out.extend_from_slice(&v.to_be_bytes());
        out.extend_from_slice(&e.created.0.to_be_bytes());
        let (state, time) = match e.state {
            KeyState::Enabled => (STATE_ENABLED, 0),
            KeyState::DecryptOnly => (STATE_DECRYPT_ONLY, 0),
            KeyState::Disabled => (STATE_DISABLED, 0),
            KeyState::ScheduledForDestruction { not_before } => (STATE_SCHEDULED, not_before.0),
            KeyState::Destroyed { at } => (STATE_DESTROYED, at.0),
        };
        out.push(state);
        out.push(if e.compromised { FLAG_COMPROMISED } else { 0 });
        out.extend_from_slice(&time.to_be_bytes());
        // A destroyed version's key is gone: nothing is written for it.
        if let Some(k) = &e.key {
            out.extend_from_slice(k.bytes());
        }
    }
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(offset: usize, what: &'static str) -> KeyringError {
    KeyringError::Malformed { offset, what }
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyringError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| malformed(self.pos, "length overflow"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| malformed(self.buf.len(), "truncated"))?;
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyringError> {
        let at = self.pos;
        self.take(N)?.try_into().map_err(|_| malformed(at, "truncated"))
    }
    fn u8(&mut self) -> Result<u8, KeyringError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, KeyringError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, KeyringError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Decodes and validates the contents (`KEYRING.md` §3.3). Returns the table
/// and its generation.
pub(crate) fn decode(buf: &[u8]) -> Result<(Table, u64), KeyringError> {
    let mut r = Cursor { buf, pos: 0 };
    if r.take(MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
        return Err(malformed(0, "not keyring contents (bad magic)"));
    }
    let format = r.u8()?;
    if format != FORMAT_V1 {
        return Err(KeyringError::UnsupportedFormat(format));
    }
    let at = r.pos;
    let id_len = r.u8()?;
    let id =
        core::str::from_utf8(r.take(usize::from(id_len))?).map_err(|_| malformed(at, "keyring id is not UTF-8"))?;
    let id = KeyId::new(id).map_err(|_| malformed(at, "keyring id is empty or has a control character"))?;
    let at = r.pos;
    let generation = r.u64()?;
    if generation == 0 {
        return Err(malformed(at, "generation 0"));
    }
    let at_primary = r.pos;
    let primary = r.u32()?;
    let minimum = r.u32()?;
    let trimmed_below = r.u32()?;
    let last_version = r.u32()?;
    let rotation = r.u64()?;
    let min_delay = r.u64()?;
    let at = r.pos;
    let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if count > MAX_VERSIONS {
        return Err(malformed(at, "more versions than a keyring holds"));
    }
    // Bound the work by the input before reading entries.
    if count > r.remaining() / ENTRY_FIXED_LEN {
        return Err(malformed(at, "version count exceeds the contents"));
    }
    if trimmed_below == 0 {
        return Err(malformed(at_primary, "trimmed-below version 0"));
    }
    let mut entries = BTreeMap::new();
    let mut prev = 0u32;
    for _ in 0..count {
        let at = r.pos;
        let v = r.u32()?;
        if v <= prev {
            return Err(malformed(at, "versions not strictly increasing"));
        }
        if v < trimmed_below || v > last_version {
            return Err(malformed(at, "version outside trimmed-below ..= last version"));
        }
        prev = v;
        let created = super::UnixTime(r.u64()?);
        let at_state = r.pos;
        let state = r.u8()?;
        let flags = r.u8()?;
        if flags & !FLAG_COMPROMISED != 0 {
            return Err(malformed(at_state.saturating_add(1), "reserved flag bits set"));
        }
        let compromised = flags & FLAG_COMPROMISED != 0;
        let at_time = r.pos;
        let time = super::UnixTime(r.u64()?);
        let state = match state {
            STATE_ENABLED => KeyState::Enabled,
            STATE_DECRYPT_ONLY => KeyState::DecryptOnly,
            STATE_DISABLED => KeyState::Disabled,
            STATE_SCHEDULED => KeyState::ScheduledForDestruction { not_before: time },
            STATE_DESTROYED => KeyState::Destroyed { at: time },
            _ => return Err(malformed(at_state, "unknown state")),
        };
        if matches!(state, KeyState::Enabled | KeyState::DecryptOnly | KeyState::Disabled) && time.0 != 0 {
            return Err(malformed(at_time, "time set for a state without one"));
        }
        if compromised && state == KeyState::Enabled {
            return Err(malformed(at_state, "compromised version is enabled"));
        }
        let key = if matches!(state, KeyState::Destroyed { .. }) {
            None
        } else {
            let mut k = Box::new([0u8; VERSION_KEY_LEN]);
            k.copy_from_slice(r.take(VERSION_KEY_LEN)?);
            Some(Arc::new(VersionKey::new(SecretBox::new(k))))
        };
        entries.insert(
            v,
            Entry {
                created,
                state,
                compromised,
                key,
            },
        );
    }
    if r.remaining() != 0 {
        return Err(malformed(r.pos, "trailing bytes"));
    }
    match entries.get(&primary) {
        Some(e) if e.state == KeyState::Enabled && !e.compromised => {}
        _ => {
            return Err(malformed(
                at_primary,
                "primary is not an enabled, uncompromised version",
            ));
        }
    }
    if minimum < trimmed_below || minimum > primary {
        return Err(malformed(
            at_primary,
            "minimum decryption version outside trimmed-below ..= primary",
        ));
    }
    let policy = RotationPolicy::new()
        .rotate_every(rotation)
        .min_destruction_delay(min_delay);
    Ok((
        Table {
            id,
            entries,
            primary,
            minimum,
            trimmed_below,
            last_version,
            policy,
        },
        generation,
    ))
}

/// The context a keyring file is sealed under.
fn file_context(id: &KeyId, generation: u64) -> Result<EncryptionContext, Error> {
    EncryptionContext::new()
        .with(CTX_FORMAT, "1")?
        .with(CTX_ID, id.as_str())?
        .with(CTX_GENERATION, &generation.to_string())
}

/// What a sealed keyring file's header claims (unauthenticated): its id and
/// generation. Used for the compare-and-swap before a save.
#[cfg(feature = "std")]
pub(crate) fn peek(bytes: &[u8]) -> Result<(KeyId, u64), Error> {
    let info = crate::inspect(bytes)?;
    let mut id = None;
    let mut generation = None;
    for (k, v) in info.stored_context() {
        match k {
            CTX_ID => id = KeyId::new(v).ok(),
            CTX_GENERATION => generation = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    match (id, generation) {
        (Some(id), Some(g)) => Ok((id, g)),
        _ => Err(Error::Keyring(malformed(
            0,
            "file context lacks a keyring id or generation",
        ))),
    }
}

fn context_value<'a>(ctx: &'a EncryptionContext, key: &str) -> Result<&'a str, Error> {
    ctx.get(key)
        .ok_or_else(|| Error::Keyring(malformed(0, "file context lacks a keyring entry")))
}

/// A keyring sealed as its next generation, which the keyring has not yet
/// adopted (it still reports the previous one): a file save adopts it only
/// once the bytes are on disk.
pub(crate) struct Sealed {
    pub(crate) bytes: Vec<u8>,
    pub(crate) generation: u64,
}

/// The opened contents and context of a keyring file, before validation.
type Opened = (Vec<u8>, EncryptionContext);

impl Keyring {
    /// The contents and file context of the next generation, ready for the
    /// master to seal. The contents are zeroized on drop.
    fn next_contents(&self) -> Result<(Zeroizing<Vec<u8>>, EncryptionContext, u64), Error> {
        let generation = self.generation.checked_add(1).ok_or(Error::InvalidArgument {
            what: "keyring generation exhausted",
        })?;
        let ctx = file_context(&self.table.id, generation)?;
        Ok((encode(&self.table, generation), ctx, generation))
    }

    /// Seals the next generation under a sync master (not yet adopted).
    pub(crate) fn seal_next(&self, master: &dyn KeyEncryptionProvider) -> Result<Sealed, Error> {
        let (body, ctx, generation) = self.next_contents()?;
        let bytes = Sealer::new(master).seal(&body, &ctx)?;
        Ok(Sealed { bytes, generation })
    }

    /// Seals the next generation under an async master (not yet adopted).
    pub(crate) async fn seal_next_async(&self, master: &dyn AsyncKeyEncryptionProvider) -> Result<Sealed, Error> {
        let (body, ctx, generation) = self.next_contents()?;
        let bytes = AsyncSealer::new(master).seal(&body, &ctx).await?;
        Ok(Sealed { bytes, generation })
    }

    /// This copy is now at the sealed generation (reported as a save).
    pub(crate) fn adopt_sealed(&mut self, sealed: Sealed) -> Vec<u8> {
        self.generation = sealed.generation;
        self.emit(
            AuditAction::Save {
                generation: sealed.generation,
            },
            None,
            None,
            None,
        );
        sealed.bytes
    }

    /// Serializes the keyring and seals it under `master`, as the next
    /// generation (`KEYRING.md`): for storing it somewhere other than a file.
    /// Destroyed versions are written without their key. Prefer
    /// [`save`](Self::save) for files: it is atomic, durable and guards
    /// against lost updates. For an async master (a KMS) use
    /// [`to_sealed_bytes_async`](Self::to_sealed_bytes_async).
    pub fn to_sealed_bytes(&mut self, master: &dyn KeyEncryptionProvider) -> Result<Vec<u8>, Error> {
        let sealed = self.seal_next(master)?;
        Ok(self.adopt_sealed(sealed))
    }

    /// [`to_sealed_bytes`](Self::to_sealed_bytes) under an async master, such
    /// as a cloud KMS or OpenBao: the same bytes, checks and audit event.
    pub async fn to_sealed_bytes_async(&mut self, master: &dyn AsyncKeyEncryptionProvider) -> Result<Vec<u8>, Error> {
        let sealed = self.seal_next_async(master).await?;
        Ok(self.adopt_sealed(sealed))
    }

    /// Opens a keyring sealed by [`to_sealed_bytes`](Self::to_sealed_bytes)
    /// or [`save`](Self::save) with `master`. A file sealed under another
    /// master fails with [`Error::NoProviderCouldUnwrap`]; any change to it
    /// fails with [`Error::Authentication`] (or a structural error); contents
    /// that do not follow `KEYRING.md` fail with [`KeyringError::Malformed`].
    pub fn from_sealed_bytes(bytes: &[u8], master: &dyn KeyEncryptionProvider) -> Result<Self, Error> {
        // Lenient on purpose: the file context is read here and checked in
        // full by `from_opened` (exactly its three entries).
        let none = EncryptionContext::new();
        Self::from_opened(Opener::new(master).lenient_context().open_with_context(bytes, &none)?)
    }

    /// [`from_sealed_bytes`](Self::from_sealed_bytes) under an async master:
    /// the same checks and errors.
    pub async fn from_sealed_bytes_async(bytes: &[u8], master: &dyn AsyncKeyEncryptionProvider) -> Result<Self, Error> {
        let none = EncryptionContext::new();
        Self::from_opened(
            AsyncOpener::new(master)
                .lenient_context()
                .open_with_context(bytes, &none)
                .await?,
        )
    }

    /// Validates opened contents against their file context (`KEYRING.md`
    /// §2, §3.3). The contents are zeroized when this returns.
    fn from_opened((body, ctx): Opened) -> Result<Self, Error> {
        let body = Zeroizing::new(body);
        match context_value(&ctx, CTX_FORMAT)? {
            "1" => {}
            other => {
                // Only a canonical decimal number is a format version (KEYRING.md §2).
                return Err(Error::Keyring(match other.parse::<u8>() {
                    Ok(v) if v.to_string() == other => KeyringError::UnsupportedFormat(v),
                    _ => malformed(0, "keyring file format in the context is not a decimal number"),
                }));
            }
        }
        if ctx.len() != 3 || ctx.iter().any(|e| e.storage != Storage::Stored) {
            return Err(Error::Keyring(malformed(
                0,
                "keyring file context has unexpected entries",
            )));
        }
        let (table, generation) = decode(&body)?;
        let ctx_id = context_value(&ctx, CTX_ID)?;
        if ctx_id != table.id.as_str() {
            return Err(Error::Keyring(KeyringError::IdMismatch {
                expected: KeyId::new(ctx_id).map_err(|_| malformed(0, "bad keyring id in the context"))?,
                found: table.id.clone(),
            }));
        }
        if context_value(&ctx, CTX_GENERATION)? != generation.to_string().as_str() {
            return Err(Error::Keyring(malformed(
                0,
                "generation in the context differs from the contents",
            )));
        }
        Ok(Self {
            table,
            generation,
            audit: Arc::new(NoAudit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::UnixTime;
    use crate::keys::KeyVersion;

    fn ring() -> Keyring {
        let mut r = Keyring::generate(KeyId::new("t").unwrap(), UnixTime(10)).unwrap();
        r.set_policy(RotationPolicy::new().min_destruction_delay(0).rotate_every(99));
        let v2 = r.rotate(UnixTime(11)).unwrap();
        r.add_version(UnixTime(12)).unwrap();
        r.compromised(KeyVersion(1), UnixTime(13)).unwrap();
        r.disable(KeyVersion(1), UnixTime(13)).unwrap();
        let _ = v2;
        r
    }

    #[test]
    fn contents_round_trip_exactly() {
        let r = ring();
        let bytes = encode(&r.table, 7);
        assert_eq!(bytes.len(), bytes.capacity());
        let (t, g) = decode(&bytes).unwrap();
        assert_eq!(g, 7);
        assert_eq!(*encode(&t, 7), *bytes);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&ring().table, 1);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n} accepted");
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            decode(&long),
            Err(KeyringError::Malformed {
                what: "trailing bytes",
                ..
            })
        ));
    }

    #[test]
    fn invalid_fields_are_rejected() {
        let good = encode(&ring().table, 1).to_vec();
        let id_end = 10 + 1;
        // (offset, new byte, expected message fragment)
        let cases: &[(usize, u8, &str)] = &[
            (0, b'X', "magic"),
            (id_end + 8 + 3, 9, "primary"),           // primary = 9: absent
            (id_end + 8 + 4 + 3, 9, "minimum"),       // minimum above primary
            (id_end + 8 + 8 + 3, 0, "trimmed-below"), // trimmed_below = 0
        ];
        for (at, b, what) in cases {
            let mut bad = good.clone();
            bad[*at] = *b;
            match decode(&bad) {
                Err(KeyringError::Malformed { what: w, .. }) => assert!(w.contains(what), "{w} vs {what}"),
                other => panic!("offset {at}: {other:?}"),
            }
        }
        let mut bad = good.clone();
        bad[8] = 2;
        assert!(matches!(decode(&bad), Err(KeyringError::UnsupportedFormat(2))));
        // First entry starts after the fixed part and the count.
        let first = id_end + 8 + 16 + 16 + 4;
        let mut bad = good.clone();
        bad[first + 12] = 9; // state
        assert!(matches!(
            decode(&bad),
            Err(KeyringError::Malformed {
                what: "unknown state",
                ..
            })
        ));
        let mut bad = good.clone();
        bad[first + 13] = 2; // reserved flag
        assert!(matches!(
            decode(&bad),
            Err(KeyringError::Malformed {
                what: "reserved flag bits set",
                ..
            })
        ));
        let mut bad = good.clone();
        bad[first + 21] = 1; // time on a disabled version
        assert!(matches!(
            decode(&bad),
            Err(KeyringError::Malformed {
                what: "time set for a state without one",
                ..
            })
        ));
        let mut bad = good;
        bad[first + 3] = 5; // version 5 > last version 3
        assert!(decode(&bad).is_err());
    }
}
