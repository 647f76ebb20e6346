//! Fernet tokens (feature `fernet`): open what Python's
//! `cryptography.fernet` made, and migrate it into lockbox envelopes.
//!
//! A Fernet token (the Fernet specification, github.com/fernet/spec) is
//! URL-safe base64 (with padding) of
//!
//! ```text
//! 0x80 || timestamp (u64, big-endian seconds) || IV (16) || ciphertext || HMAC (32)
//! ```
//!
//! with AES-128-CBC and PKCS#7 padding under the key's last 16 bytes, and
//! HMAC-SHA-256 under its first 16 over everything before the HMAC.
//!
//! Opening is strict and ordered so that **nothing is decrypted before the
//! HMAC verifies**:
//!
//! 1. canonical padded base64url, at least 73 bytes, ciphertext a non-zero
//!    multiple of 16 bytes, version byte `0x80`
//!    ([`FernetError::Malformed`], [`FernetError::UnsupportedVersion`]);
//! 2. the HMAC, compared in constant time with each key in turn
//!    ([`MultiFernet`]: the first key is the newest, as Python orders
//!    them); none verifies: [`Error::Authentication`];
//! 3. the time, only with a [`TimeCheck`] that has a TTL: expired when
//!    `timestamp + ttl < now` ([`FernetError::Expired`]), from the future
//!    when `timestamp > now + 60` (the spec's clock skew,
//!    [`FernetError::FromTheFuture`]). The caller passes `now`;
//! 4. AES-128-CBC and the PKCS#7 padding (a bad padding behind a valid HMAC
//!    is [`Error::Authentication`] too).
//!
//! Migration opens a token and seals its plaintext into an envelope with a
//! [`Sealer`] (or an [`AsyncSealer`]), one token or a batch with one result
//! per token; the plaintext lives only in zeroized buffers in between.
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::fernet::{FernetKey, MultiFernet, TimeCheck};
//! use lockbox::{EncryptionContext, LocalKek, Sealer};
//!
//! // The service's Fernet keys, newest first (what MultiFernet was given).
//! let key = FernetKey::parse("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")?;
//! let fernet = MultiFernet::new(vec![key]);
//! let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
//!
//! // Open, checking a TTL of 60 s one second after it was made.
//! let plain = fernet.decrypt(token, TimeCheck::max_age(60, 499_162_801))?;
//! assert_eq!(plain.as_slice(), b"hello");
//!
//! // Migrate: the same plaintext in a lockbox envelope.
//! let kek = LocalKek::generate()?;
//! let ctx = EncryptionContext::new().with("migrated-from", "fernet")?;
//! let envelope = fernet.migrate(token, TimeCheck::none(), &Sealer::new(&kek), &ctx)?;
//! assert_eq!(lockbox::open(&kek, &envelope, &ctx)?, b"hello");
//! # Ok(()) }
//! ```

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use aes::Aes128;
use aes::cipher::array::Array;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use base64ct::{Base64Url, Encoding};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::keys::os_random;
use crate::{AsyncSealer, Sealer};

/// The version byte of every Fernet token.
pub const VERSION: u8 = 0x80;
/// The clock skew the specification tolerates for timestamps in the future
/// (seconds).
pub const MAX_CLOCK_SKEW: u64 = 60;
/// Longest token accepted (characters): 64 MiB of base64.
pub const MAX_TOKEN_LEN: usize = 64 << 20;

const HEADER_LEN: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;
const BLOCK: usize = 16;

/// Why a Fernet token was refused (besides [`Error::Authentication`], for a
/// token whose HMAC no key verifies or whose padding is wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FernetError {
    /// Not a Fernet token: not canonical padded base64url, too short, or a
    /// ciphertext that is not a non-zero multiple of 16 bytes.
    #[error("malformed Fernet token: {0}")]
    Malformed(&'static str),
    /// A version byte other than `0x80`.
    #[error("unsupported Fernet version byte {0:#04x}")]
    UnsupportedVersion(u8),
    /// Older than the TTL (after the HMAC verified).
    #[error("Fernet token expired: made at {timestamp}, TTL {ttl} s, now {now}")]
    #[non_exhaustive]
    Expired {
        /// The token's timestamp (Unix seconds).
        timestamp: u64,
        /// The TTL checked.
        ttl: u64,
        /// The time given.
        now: u64,
    },
    /// Made more than [`MAX_CLOCK_SKEW`] seconds in the future (after the
    /// HMAC verified).
    #[error("Fernet token from the future: made at {timestamp}, now {now}")]
    #[non_exhaustive]
    FromTheFuture {
        /// The token's timestamp (Unix seconds).
        timestamp: u64,
        /// The time given.
        now: u64,
    },
    /// A key that is not URL-safe base64 of 32 bytes.
    #[error("a Fernet key is URL-safe base64 of exactly 32 bytes")]
    BadKey,
}

/// What time checks to make after the HMAC verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeCheck {
    ttl_now: Option<(u64, u64)>,
}

impl TimeCheck {
    /// No time check (Python's `decrypt(token)` without `ttl`).
    pub fn none() -> Self {
        Self { ttl_now: None }
    }

    /// Refuse tokens older than `ttl` seconds, or more than
    /// [`MAX_CLOCK_SKEW`] seconds in the future, at time `now` (Unix
    /// seconds): Python's `decrypt_at_time(token, ttl, now)`.
    pub fn max_age(ttl: u64, now: u64) -> Self {
        Self {
            ttl_now: Some((ttl, now)),
        }
    }

    fn check(&self, timestamp: u64) -> Result<(), Error> {
        let Some((ttl, now)) = self.ttl_now else {
            return Ok(());
        };
        if timestamp.saturating_add(ttl) < now {
            return Err(FernetError::Expired { timestamp, ttl, now }.into());
        }
        if now.saturating_add(MAX_CLOCK_SKEW) < timestamp {
            return Err(FernetError::FromTheFuture { timestamp, now }.into());
        }
        Ok(())
    }
}

/// One Fernet key: 16 bytes of HMAC-SHA-256 key and 16 of AES-128 key, on
/// the heap, zeroized on drop, never printed.
pub struct FernetKey(Box<Keys>);

#[derive(Zeroize, ZeroizeOnDrop)]
struct Keys {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl FernetKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut k = Box::new(Keys {
            signing: [0; 16],
            encryption: [0; 16],
        });
        os_random(&mut k.signing)?;
        os_random(&mut k.encryption)?;
        Ok(Self(k))
    }

    /// Parses a key as Python writes it: URL-safe base64 of 32 bytes, with
    /// padding (44 characters; surrounding whitespace ignored). Decoded
    /// through a zeroized buffer.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut raw = Zeroizing::new([0u8; 32]);
        match Base64Url::decode(text.trim_ascii(), raw.as_mut_slice()) {
            Ok(d) if d.len() == 32 => {}
            _ => return Err(FernetError::BadKey.into()),
        }
        let mut k = Box::new(Keys {
            signing: [0; 16],
            encryption: [0; 16],
        });
        let (s, e) = raw.split_at(16);
        k.signing.copy_from_slice(s);
        k.encryption.copy_from_slice(e);
        Ok(Self(k))
    }

    /// [`parse`](Self::parse) from a secret string.
    pub fn from_secret(text: &SecretString) -> Result<Self, Error> {
        Self::parse(text.expose_secret())
    }

    /// The key as Python's `Fernet(key)` takes it (URL-safe base64, padded).
    pub fn to_secret_string(&self) -> SecretString {
        let mut raw = Zeroizing::new([0u8; 32]);
        let (s, e) = raw.split_at_mut(16);
        s.copy_from_slice(&self.0.signing);
        e.copy_from_slice(&self.0.encryption);
        let mut buf = Zeroizing::new([0u8; 44]);
        let text = Base64Url::encode(raw.as_slice(), buf.as_mut_slice()).unwrap_or_default();
        SecretString::from(text)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC pads a short key with zeros to the 64-byte block.
        let mut block = Zeroizing::new([0u8; 64]);
        if let Some(k) = block.get_mut(..16) {
            k.copy_from_slice(&self.0.signing);
        }
        <Hmac<Sha256>>::new((&*block).into())
    }

    /// Whether `tag` authenticates `data` under this key (constant time).
    fn verifies(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac();
        m.update(data);
        bool::from(m.finalize().into_bytes().as_slice().ct_eq(tag))
    }

    fn cipher(&self) -> Aes128 {
        Aes128::new(&Array::from(self.0.encryption))
    }

    /// Makes a token of `plaintext` at `timestamp` (Unix seconds) with a
    /// random IV: for a service that must still hand tokens to Python
    /// readers while it migrates.
    pub fn encrypt(&self, plaintext: &[u8], timestamp: u64) -> Result<String, Error> {
        let mut iv = [0u8; 16];
        os_random(&mut iv)?;
        Ok(self.encrypt_with_iv(plaintext, timestamp, iv))
    }

    /// A token with a caller-chosen IV: the specification's `generate`
    /// vectors only (a repeated IV leaks equal prefixes). See
    /// [`hazmat::fernet_encrypt_with_iv`](crate::hazmat::fernet_encrypt_with_iv).
    pub(crate) fn encrypt_with_iv(&self, plaintext: &[u8], timestamp: u64, iv: [u8; 16]) -> String {
        let padded = plaintext
            .len()
            .saturating_add(BLOCK)
            .saturating_sub(plaintext.len() % BLOCK);
        let mut out = Zeroizing::new(Vec::with_capacity(
            HEADER_LEN.saturating_add(padded).saturating_add(MAC_LEN),
        ));
        out.push(VERSION);
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&iv);
        out.extend_from_slice(plaintext);
        let pad = u8::try_from(padded.saturating_sub(plaintext.len())).unwrap_or(16);
        out.resize(HEADER_LEN.saturating_add(padded), pad);
        let cipher = self.cipher();
        let mut prev = iv;
        for chunk in out.get_mut(HEADER_LEN..).unwrap_or_default().chunks_exact_mut(BLOCK) {
            for (c, p) in chunk.iter_mut().zip(prev.iter()) {
                *c ^= p;
            }
            let mut block = Array::try_from(&*chunk).unwrap_or_default();
            cipher.encrypt_block(&mut block);
            chunk.copy_from_slice(&block);
            prev.copy_from_slice(chunk);
        }
        let mut m = self.mac();
        m.update(&out);
        let tag = m.finalize().into_bytes();
        out.extend_from_slice(&tag);
        Base64Url::encode_string(&out)
    }
}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey([REDACTED])")
    }
}

/// A token's fields, before anything is trusted.
struct Token {
    bytes: Vec<u8>,
}

impl Token {
    fn parse(token: &str) -> Result<Self, Error> {
        let token = token.trim_ascii();
        if token.len() > MAX_TOKEN_LEN {
            return Err(FernetError::Malformed("token too long").into());
        }
        let bytes = Base64Url::decode_vec(token).map_err(|_| FernetError::Malformed("not padded URL-safe base64"))?;
        let body = bytes
            .len()
            .checked_sub(HEADER_LEN.saturating_add(MAC_LEN))
            .ok_or(FernetError::Malformed("too short"))?;
        if body == 0 || !body.is_multiple_of(BLOCK) {
            return Err(FernetError::Malformed("ciphertext is not a non-zero multiple of 16 bytes").into());
        }
        match bytes.first() {
            Some(&VERSION) => Ok(Self { bytes }),
            Some(&v) => Err(FernetError::UnsupportedVersion(v).into()),
            None => Err(FernetError::Malformed("too short").into()),
        }
    }

    fn signed(&self) -> (&[u8], &[u8]) {
        self.bytes
            .split_at_checked(self.bytes.len().saturating_sub(MAC_LEN))
            .unwrap_or_default()
    }

    fn timestamp(&self) -> u64 {
        let mut t = [0u8; 8];
        t.copy_from_slice(self.bytes.get(1..9).unwrap_or(&[0; 8]));
        u64::from_be_bytes(t)
    }

    /// Decrypts with `key` (whose HMAC verified) and strips the padding.
    fn decrypt(&self, key: &FernetKey) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (signed, _) = self.signed();
        let mut prev = [0u8; 16];
        prev.copy_from_slice(signed.get(9..HEADER_LEN).unwrap_or(&[0; 16]));
        let ct = signed.get(HEADER_LEN..).unwrap_or_default();
        let mut out = Zeroizing::new(ct.to_vec());
        let cipher = key.cipher();
        for chunk in out.chunks_exact_mut(BLOCK) {
            let mut next = [0u8; 16];
            next.copy_from_slice(chunk);
            let mut block = Array::try_from(&*chunk).unwrap_or_default();
            cipher.decrypt_block(&mut block);
            for ((o, b), p) in chunk.iter_mut().zip(block.iter()).zip(prev.iter()) {
                *o = b ^ p;
            }
            block.zeroize();
            prev = next;
        }
        let pad = usize::from(*out.last().ok_or(Error::Authentication)?);
        let valid = (1..=BLOCK).contains(&pad)
            && out
                .get(out.len().saturating_sub(pad)..)
                .is_some_and(|p| p.iter().all(|&b| usize::from(b) == pad));
        if !valid {
            return Err(Error::Authentication);
        }
        let keep = out.len().saturating_sub(pad);
        if let Some(tail) = out.get_mut(keep..) {
            tail.zeroize();
        }
        out.truncate(keep);
        Ok(out)
    }
}

/// Fernet keys, newest first, as Python's `MultiFernet` holds them: a
/// token opens with whichever key's HMAC verifies it.
#[derive(Debug)]
pub struct MultiFernet {
    keys: Vec<FernetKey>,
}

impl MultiFernet {
    /// The keys, newest first (at least one for anything to open).
    pub fn new(keys: Vec<FernetKey>) -> Self {
        Self { keys }
    }

    /// Parses keys as Python writes them, newest first.
    pub fn parse<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, Error> {
        keys.into_iter()
            .map(FernetKey::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The keys.
    pub fn keys(&self) -> &[FernetKey] {
        &self.keys
    }

    /// Opens `token` (see the [module docs](self) for the order of the
    /// checks); the plaintext in a zeroized buffer.
    pub fn decrypt(&self, token: &str, time: TimeCheck) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.decrypt_with_timestamp(token, time).map(|(p, _)| p)
    }

    /// [`decrypt`](Self::decrypt), also returning the token's (now
    /// authenticated) timestamp.
    pub fn decrypt_with_timestamp(&self, token: &str, time: TimeCheck) -> Result<(Zeroizing<Vec<u8>>, u64), Error> {
        let t = Token::parse(token)?;
        let (signed, tag) = t.signed();
        let key = self
            .keys
            .iter()
            .find(|k| k.verifies(signed, tag))
            .ok_or(Error::Authentication)?;
        let timestamp = t.timestamp();
        time.check(timestamp)?;
        Ok((t.decrypt(key)?, timestamp))
    }

    /// Opens `token` and seals its plaintext with `sealer` under `context`:
    /// a lockbox envelope of the same bytes. The plaintext is zeroized.
    pub fn migrate(
        &self,
        token: &str,
        time: TimeCheck,
        sealer: &Sealer<'_>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let plain = self.decrypt(token, time)?;
        sealer.seal(&plain, context)
    }

    /// [`migrate`](Self::migrate) with async providers.
    pub async fn migrate_async(
        &self,
        token: &str,
        time: TimeCheck,
        sealer: &AsyncSealer<'_>,
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, Error> {
        let plain = self.decrypt(token, time)?;
        sealer.seal(&plain, context).await
    }

    /// Migrates every token of a batch under one context: one result per
    /// token, in order; a token that fails never stops the others.
    pub fn migrate_batch<'t>(
        &self,
        tokens: impl IntoIterator<Item = &'t str>,
        time: TimeCheck,
        sealer: &Sealer<'_>,
        context: &EncryptionContext,
    ) -> Vec<Result<Vec<u8>, Error>> {
        tokens
            .into_iter()
            .map(|t| self.migrate(t, time, sealer, context))
            .collect()
    }

    /// [`migrate_batch`](Self::migrate_batch) with async providers (one
    /// token after the other).
    pub async fn migrate_batch_async<'t>(
        &self,
        tokens: impl IntoIterator<Item = &'t str>,
        time: TimeCheck,
        sealer: &AsyncSealer<'_>,
        context: &EncryptionContext,
    ) -> Vec<Result<Vec<u8>, Error>> {
        let mut out = Vec::new();
        for t in tokens {
            out.push(self.migrate_async(t, time, sealer, context).await);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

    #[test]
    fn round_trips_and_rejects() {
        let k = FernetKey::parse(KEY).unwrap();
        assert_eq!(k.to_secret_string().expose_secret(), KEY);
        let tok = k.encrypt_with_iv(
            b"hello",
            499_162_800,
            core::array::from_fn(|i| u8::try_from(i).unwrap()),
        );
        assert_eq!(
            tok,
            "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
        );
        let f = MultiFernet::new(alloc::vec![FernetKey::generate().unwrap(), k]);
        assert_eq!(f.decrypt(&tok, TimeCheck::none()).unwrap().as_slice(), b"hello");
        for len in [0usize, 15, 16, 17, 100] {
            let pt = alloc::vec![7u8; len];
            let t = f.keys()[0].encrypt(&pt, 100).unwrap();
            assert_eq!(
                f.decrypt(&t, TimeCheck::max_age(5, 105)).unwrap().as_slice(),
                pt.as_slice()
            );
            assert!(f.decrypt(&t, TimeCheck::max_age(5, 40)).is_ok());
            assert!(matches!(
                f.decrypt(&t, TimeCheck::max_age(5, 106)),
                Err(Error::Fernet(FernetError::Expired { .. }))
            ));
            assert!(matches!(
                f.decrypt(&t, TimeCheck::max_age(5, 39)),
                Err(Error::Fernet(FernetError::FromTheFuture { .. }))
            ));
        }
        let other = MultiFernet::new(alloc::vec![FernetKey::generate().unwrap()]);
        assert!(matches!(
            other.decrypt(&tok, TimeCheck::none()),
            Err(Error::Authentication)
        ));
        assert!(FernetKey::parse("short").is_err());
    }
}
