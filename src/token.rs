//! Tokens and keys from the operating system's CSPRNG, for what Python's
//! `secrets` module is used for: session tokens, API keys, password-reset
//! links, CSRF tokens, and keys for Fernet.
//!
//! Every function draws from the OS generator only (`getrandom`; there is
//! no seeded or user-space generator to misuse) and returns a secret type:
//! zeroized on drop, never printed, reachable through
//! [`expose_secret`](secrecy::ExposeSecret::expose_secret).
//!
//! Lengths are in **bytes of randomness**, not characters:
//!
//! | function | text | characters for `n` bytes |
//! |---|---|---|
//! | [`hex`] | lowercase hex | `2n` |
//! | [`urlsafe`] | URL-safe base64 without padding (Python's `token_urlsafe`) | `⌈4n/3⌉` |
//! | [`bytes`] | raw bytes | — |
//!
//! **Minimum: [`MIN_BYTES`] (16 bytes, 128 bits)**; shorter requests are
//! refused, not padded. [`DEFAULT_BYTES`] (32 bytes, 256 bits, Python's
//! default) suits session tokens and API keys; 16 bytes is the floor for
//! anything an attacker may try to guess online (OWASP's session-id
//! guidance asks for 64 bits of entropy; 128 leaves room for every token
//! of a large system to be attacked at once). The maximum is
//! [`MAX_BYTES`].
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::secrecy::ExposeSecret;
//! let session = lockbox::token::urlsafe(lockbox::token::DEFAULT_BYTES)?;
//! assert_eq!(session.expose_secret().len(), 43);
//! let api_key = lockbox::token::hex(16)?;
//! assert_eq!(api_key.expose_secret().len(), 32);
//! assert!(lockbox::token::hex(8).is_err()); // below the minimum
//! let fernet = lockbox::token::fernet_key()?; // for Python's Fernet
//! assert_eq!(fernet.expose_secret().len(), 44);
//! # Ok(()) }
//! ```

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;

use base64ct::{Base64Url, Base64UrlUnpadded, Encoding};
use secrecy::{ExposeSecretMut, SecretBox, SecretString};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::os_random;

/// Fewest bytes of randomness a token may have (128 bits).
pub const MIN_BYTES: usize = 16;
/// The usual length (256 bits), as Python's `secrets` module uses.
pub const DEFAULT_BYTES: usize = 32;
/// Most bytes of randomness in one token.
pub const MAX_BYTES: usize = 4096;
/// Length of a Fernet key: 16 bytes of HMAC-SHA-256 key, then 16 of AES-128.
pub const FERNET_KEY_BYTES: usize = 32;

fn check(n: usize) -> Result<(), Error> {
    if n < MIN_BYTES {
        return Err(Error::invalid_argument(
            "a token needs at least 16 bytes (128 bits) of randomness",
        ));
    }
    if n > MAX_BYTES {
        return Err(Error::invalid_argument("a token has at most 4096 bytes of randomness"));
    }
    Ok(())
}

/// `n` random bytes (`n` between [`MIN_BYTES`] and [`MAX_BYTES`]).
pub fn bytes(n: usize) -> Result<SecretBox<[u8]>, Error> {
    check(n)?;
    let mut b: SecretBox<[u8]> = SecretBox::new(vec![0u8; n].into_boxed_slice());
    os_random(b.expose_secret_mut())?;
    Ok(b)
}

/// A token of `n` random bytes as lowercase hex (`2n` characters).
pub fn hex(n: usize) -> Result<SecretString, Error> {
    let raw = bytes(n)?;
    let mut s = Zeroizing::new(String::with_capacity(n.saturating_mul(2)));
    for b in secrecy::ExposeSecret::expose_secret(&raw).iter() {
        s.extend(char::from_digit(u32::from(b >> 4), 16));
        s.extend(char::from_digit(u32::from(b & 0xF), 16));
    }
    Ok(SecretString::from(s.as_str()))
}

/// A token of `n` random bytes as URL-safe base64 without padding
/// (`A-Z a-z 0-9 - _`), as Python's `secrets.token_urlsafe(n)` makes.
pub fn urlsafe(n: usize) -> Result<SecretString, Error> {
    let raw = bytes(n)?;
    encode(secrecy::ExposeSecret::expose_secret(&raw), false)
}

/// A new Fernet key: 32 random bytes as URL-safe base64 *with* padding (44
/// characters), the form Python's `Fernet.generate_key()` makes and
/// `Fernet(key)` reads.
pub fn fernet_key() -> Result<SecretString, Error> {
    let mut raw = Box::new([0u8; FERNET_KEY_BYTES]);
    os_random(raw.as_mut_slice())?;
    let key = SecretBox::new(raw);
    encode(secrecy::ExposeSecret::expose_secret(&key).as_slice(), true)
}

/// `raw` in URL-safe base64, through a buffer sized up front and zeroized.
fn encode(raw: &[u8], padded: bool) -> Result<SecretString, Error> {
    let len = if padded {
        Base64Url::encoded_len(raw)
    } else {
        Base64UrlUnpadded::encoded_len(raw)
    };
    let mut buf = Zeroizing::new(vec![0u8; len]);
    let text = if padded {
        Base64Url::encode(raw, &mut buf)
    } else {
        Base64UrlUnpadded::encode(raw, &mut buf)
    }
    .map_err(|_| Error::invalid_argument("token encoding"))?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn lengths_alphabets_and_limits() {
        let h = hex(16).unwrap();
        assert_eq!(h.expose_secret().len(), 32);
        assert!(
            h.expose_secret()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        for n in [16, 17, 18, 32, 33] {
            let u = urlsafe(n).unwrap();
            assert_eq!(u.expose_secret().len(), (4 * n).div_ceil(3));
            assert!(
                u.expose_secret()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_eq!(bytes(MAX_BYTES).unwrap().expose_secret().len(), MAX_BYTES);
        for bad in [0, 1, 15, MAX_BYTES + 1] {
            assert!(bytes(bad).is_err() && hex(bad).is_err() && urlsafe(bad).is_err());
        }
        let k = fernet_key().unwrap();
        assert_eq!(k.expose_secret().len(), 44);
        assert!(k.expose_secret().ends_with('='));
        assert_eq!(Base64Url::decode_vec(k.expose_secret()).unwrap().len(), 32);
        // Two draws differ (a stuck generator would not).
        assert_ne!(hex(16).unwrap().expose_secret(), hex(16).unwrap().expose_secret());
    }
}
